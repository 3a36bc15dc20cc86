//! The seed note's three devices, each a robust client on its own thread, and the observer
//! that counts what reaches the broker.
//!
//! Everything the report shows is measured here: a scenario's thread records each publish,
//! the client's events record each outcome (delivered, expired, dropped and why) and the link
//! state, and the observer records every message it receives by sequence number.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use umqtt::robust::{
    BatteryAware, Client, Deadline, DropReason, Event, FixedDelay, NoRetry, ReconnectPolicy, Stats,
};
use umqtt::{ClientConfig, QoS};

use super::Rng;
use crate::error::CliError;

/// The button's deadline, from the seed note: a press older than this is no longer relevant.
pub const BUTTON_DEADLINE: Duration = Duration::from_secs(15);

/// One device of the seed note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A reading every second, QoS 0, never retried.
    Temperature,
    /// Presses at random, QoS 1, retried for 15 s.
    Button,
    /// Events at random, QoS 1, delivered whatever it takes.
    Alarm,
}

impl Kind {
    /// All three, in report order.
    pub const ALL: [Kind; 3] = [Kind::Temperature, Kind::Button, Kind::Alarm];

    /// Its name in topics, status lines and the table.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Temperature => "temperature",
            Kind::Button => "button",
            Kind::Alarm => "alarm",
        }
    }

    /// Its robust policy, as shown in the table.
    pub fn policy_name(self) -> &'static str {
        match self {
            Kind::Temperature => "NoRetry",
            Kind::Button => "Deadline(15s)",
            Kind::Alarm => "BatteryAware",
        }
    }

    /// The QoS of its messages.
    pub fn qos(self) -> QoS {
        match self {
            Kind::Temperature => QoS::AtMostOnce,
            Kind::Button | Kind::Alarm => QoS::AtLeastOnce,
        }
    }

    fn policy(self) -> Box<dyn ReconnectPolicy> {
        match self {
            Kind::Temperature => Box::new(NoRetry),
            Kind::Button => Box::new(Deadline::new(BUTTON_DEADLINE)),
            Kind::Alarm => Box::new(BatteryAware::new()),
        }
    }

    /// Time until the next message: a reading every second, a press every 2–6 s, an alarm
    /// event every 5–10 s.
    fn next_interval(self, rng: &mut Rng) -> Duration {
        let millis = match self {
            Kind::Temperature => 1000,
            Kind::Button => rng.between(2000, 6000),
            Kind::Alarm => rng.between(5000, 10_000),
        };
        Duration::from_millis(millis)
    }

    /// Delay before the first message.
    fn first_delay(self, rng: &mut Rng) -> Duration {
        match self {
            Kind::Temperature => Duration::ZERO,
            Kind::Button => Duration::from_millis(rng.between(500, 2000)),
            Kind::Alarm => Duration::from_millis(rng.between(1000, 3000)),
        }
    }

    fn payload(self, seq: u64, rng: &mut Rng) -> String {
        match self {
            Kind::Temperature => {
                let tenths = 215 + (seq % 20) as i64 - 10 + rng.between(0, 4) as i64 - 2;
                format!("seq={seq} {}.{} C", tenths / 10, tenths % 10)
            }
            Kind::Button => format!("seq={seq} pressed"),
            Kind::Alarm => {
                let what = [
                    "window broken",
                    "door opened",
                    "motion in hall",
                    "glass break",
                ];
                format!("seq={seq} {}", what[rng.between(0, 3) as usize])
            }
        }
    }
}

/// The link as the events describe it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Link {
    /// Not connected yet.
    Starting,
    /// Connected.
    Up,
    /// Down; the next attempt is scheduled.
    Retrying(Instant),
    /// Down; the policy stopped: the next message will try once.
    Idle,
}

/// How one message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged (QoS 1) or written (QoS 0).
    Delivered,
    /// Its deadline passed.
    Expired,
    /// Dropped.
    Dropped(DropReason),
}

/// What happened to one scenario's messages and link.
#[derive(Debug)]
pub struct Record {
    /// The link now.
    pub link: Link,
    /// Message id → (sequence number, publish time).
    pub published: HashMap<u64, (u64, Instant)>,
    /// Message id → (outcome, when).
    pub outcomes: HashMap<u64, (Outcome, Instant)>,
    /// When each connection was established.
    pub connected_at: Vec<Instant>,
    /// Connection attempts that failed (from events, for the live display).
    pub failed_attempts: u64,
    /// Publish calls that failed (not counted as sent).
    pub publish_errors: Vec<String>,
    /// The client's counters, once the scenario ended.
    pub stats: Option<Stats>,
}

impl Record {
    fn new() -> Record {
        Record {
            link: Link::Starting,
            published: HashMap::new(),
            outcomes: HashMap::new(),
            connected_at: Vec::new(),
            failed_attempts: 0,
            publish_errors: Vec::new(),
            stats: None,
        }
    }

    /// Messages published.
    pub fn sent(&self) -> u64 {
        self.published.len() as u64
    }

    /// Messages with this kind of outcome.
    pub fn count(&self, matches: impl Fn(Outcome) -> bool) -> u64 {
        self.outcomes.values().filter(|(o, _)| matches(*o)).count() as u64
    }

    /// Delivered messages.
    pub fn delivered(&self) -> u64 {
        self.count(|o| o == Outcome::Delivered)
    }

    /// Dropped messages.
    pub fn dropped(&self) -> u64 {
        self.count(|o| matches!(o, Outcome::Dropped(_)))
    }

    /// Expired messages.
    pub fn expired(&self) -> u64 {
        self.count(|o| o == Outcome::Expired)
    }

    /// Dropped messages by reason.
    pub fn dropped_by_reason(&self) -> BTreeMap<&'static str, u64> {
        let mut reasons = BTreeMap::new();
        for (outcome, _) in self.outcomes.values() {
            if let Outcome::Dropped(reason) = outcome {
                *reasons.entry(reason_text(*reason)).or_insert(0) += 1;
            }
        }
        reasons
    }

    fn on_event(&mut self, event: &Event) {
        let now = Instant::now();
        match event {
            Event::Connected { .. } => {
                self.link = Link::Up;
                self.connected_at.push(now);
            }
            Event::Disconnected { .. } => self.link = Link::Idle,
            Event::AttemptFailed { .. } => {
                self.failed_attempts += 1;
                self.link = Link::Idle;
            }
            Event::RetryScheduled { delay } => self.link = Link::Retrying(now + *delay),
            Event::GaveUp { .. } => self.link = Link::Idle,
            Event::Delivered { id } => {
                self.outcomes.insert(id.0, (Outcome::Delivered, now));
            }
            Event::Expired { id } => {
                self.outcomes.insert(id.0, (Outcome::Expired, now));
            }
            Event::Dropped { id, reason } => {
                self.outcomes.insert(id.0, (Outcome::Dropped(*reason), now));
            }
            _ => {}
        }
    }
}

/// Why a message was dropped, for people.
pub fn reason_text(reason: DropReason) -> &'static str {
    match reason {
        DropReason::NotConnected => "not connected",
        DropReason::LinkLost => "link lost before the ack",
        DropReason::PolicyStopped => "policy stopped",
        DropReason::QueueOverflow => "queue full",
        _ => "other",
    }
}

/// A record shared between a scenario's thread, its client's event handler and the display.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Mutex<Record>>);

impl Shared {
    /// The record.
    pub fn lock(&self) -> MutexGuard<'_, Record> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where the demo's clients connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A running scenario.
pub struct Scenario {
    /// Which device.
    pub kind: Kind,
    /// What happened.
    pub record: Shared,
    /// Wakes the client ("Wi-Fi is back").
    pub nudger: umqtt::robust::Nudger,
    thread: Option<JoinHandle<()>>,
}

/// Settings of the demo's device clients: short keepalive and timeouts, so that a dead link
/// is noticed within seconds.
fn device_config(client_id: String, endpoint: &Endpoint) -> ClientConfig {
    ClientConfig {
        client_id,
        server: endpoint.host.clone(),
        port: Some(endpoint.port),
        keep_alive: 4,
        connect_timeout: Duration::from_secs(3),
        response_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

impl Scenario {
    /// Starts `kind`'s device: it publishes on `{topic_root}/{name}` through `endpoint` from
    /// now until `end`, then waits at most `grace` for what is still pending.
    pub fn start(
        kind: Kind,
        endpoint: &Endpoint,
        run_id: &str,
        topic_root: &str,
        end: Instant,
        grace: Duration,
        mut rng: Rng,
    ) -> Result<Scenario, CliError> {
        let config = device_config(format!("umqtt-demo-{run_id}-{}", kind.name()), endpoint);
        let mut client = Client::new(config, kind.policy());
        let record = Shared(Arc::new(Mutex::new(Record::new())));
        let handler_record = record.clone();
        client.set_event_handler(move |event| handler_record.lock().on_event(event));
        let nudger = client.nudger();
        let topic = format!("{topic_root}/{}", kind.name());
        let thread_record = record.clone();
        let thread = thread::Builder::new()
            .name(format!("demo-{}", kind.name()))
            .spawn(move || {
                let mut next = Instant::now() + kind.first_delay(&mut rng);
                let mut seq = 0;
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    if now >= next {
                        seq += 1;
                        let payload = kind.payload(seq, &mut rng);
                        let published_at = Instant::now();
                        match client.publish(&topic, payload.as_bytes(), kind.qos(), false) {
                            Ok(id) => {
                                thread_record
                                    .lock()
                                    .published
                                    .insert(id.0, (seq, published_at));
                            }
                            Err(e) => thread_record.lock().publish_errors.push(e.to_string()),
                        }
                        next += kind.next_interval(&mut rng);
                    }
                    let wait = next
                        .min(end)
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(100));
                    if let Err(e) = client.run_for(wait) {
                        thread_record.lock().publish_errors.push(e.to_string());
                    }
                }
                // Let what is still pending settle: delivered, or expired by its deadline.
                let grace_end = Instant::now() + grace;
                while client.pending() > 0 && Instant::now() < grace_end {
                    let _ = client.run_for(Duration::from_millis(50));
                }
                thread_record.lock().stats = Some(client.stats());
                let _ = client.disconnect();
            })
            .map_err(|e| CliError::failed(format!("cannot start a demo thread: {e}")))?;
        Ok(Scenario {
            kind,
            record,
            nudger,
            thread: Some(thread),
        })
    }

    /// Whether its thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for its thread.
    pub fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Messages the observer received, per scenario: sequence number → copies.
pub type Received = HashMap<&'static str, HashMap<u64, u32>>;

/// The subscriber that counts what arrives: a robust client with a persistent session,
/// connected straight to the broker (not through the proxy, so the outage does not hide
/// anything from it).
pub struct Observer {
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Observer {
    /// Connects, subscribes to `{topic_root}/#` with QoS 1 and starts counting.
    pub fn start(
        endpoint: &Endpoint,
        run_id: &str,
        topic_root: &str,
    ) -> Result<Observer, CliError> {
        let config = device_config(format!("umqtt-demo-{run_id}-observer"), endpoint);
        let mut client = Client::new(
            config,
            FixedDelay {
                delay: Duration::from_millis(500),
            },
        );
        let filter = format!("{topic_root}/#");
        let deadline = Instant::now() + Duration::from_secs(10);
        client
            .subscribe(&filter, QoS::AtLeastOnce)
            .map_err(|e| CliError::failed(format!("the observer cannot subscribe: {e}")))?;
        while !client.is_connected() {
            if Instant::now() >= deadline {
                return Err(CliError::failed(format!(
                    "the observer cannot connect to the broker at {}:{}",
                    endpoint.host, endpoint.port
                )));
            }
            let _ = client.run_for(Duration::from_millis(50));
        }
        let received = Arc::new(Mutex::new(Received::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread_received = Arc::clone(&received);
        let thread_stop = Arc::clone(&stop);
        let prefix = format!("{topic_root}/");
        let thread = thread::Builder::new()
            .name("demo-observer".to_owned())
            .spawn(move || {
                while !thread_stop.load(Ordering::SeqCst) {
                    let Ok(Some(message)) = client.wait_msg(Duration::from_millis(50)) else {
                        continue;
                    };
                    let Some(kind) = message
                        .topic
                        .strip_prefix(&prefix)
                        .and_then(|name| Kind::ALL.into_iter().find(|k| k.name() == name))
                    else {
                        continue;
                    };
                    let seq = std::str::from_utf8(&message.payload)
                        .ok()
                        .and_then(|text| text.strip_prefix("seq="))
                        .and_then(|rest| rest.split(' ').next())
                        .and_then(|n| n.parse::<u64>().ok());
                    if let Some(seq) = seq {
                        let mut received = thread_received
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        *received
                            .entry(kind.name())
                            .or_default()
                            .entry(seq)
                            .or_insert(0) += 1;
                    }
                }
                let _ = client.disconnect();
            })
            .map_err(|e| CliError::failed(format!("cannot start the observer thread: {e}")))?;
        Ok(Observer {
            received,
            stop,
            thread: Some(thread),
        })
    }

    /// Distinct messages received so far for `kind`.
    pub fn distinct(&self, kind: Kind) -> u64 {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kind.name())
            .map_or(0, |seqs| seqs.len() as u64)
    }

    /// Stops counting; returns what was received.
    pub fn stop(mut self) -> Received {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.received.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
