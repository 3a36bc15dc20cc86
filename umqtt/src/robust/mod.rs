//! The reconnecting client: [`simple::Client`] plus a policy that says
//! how hard to try, per application and per message.
//!
//! ```no_run
//! use std::time::Duration;
//! use umqtt::robust::{BatteryAware, Client, Delivery, Event};
//! use umqtt::{ClientConfig, QoS};
//!
//! let config = ClientConfig { client_id: "alarm-7".into(), server: "broker.local".into(), ..Default::default() };
//! let mut client = Client::new(config, BatteryAware::new());
//! let id = client.publish_with("home/alarm", b"window broken", QoS::AtLeastOnce, false, Delivery::Guaranteed)?;
//! while let Some(event) = client.poll(Duration::from_secs(1))? {
//!     println!("{event:?}"); // Connected, RetryScheduled, Delivered { id }, …
//!     if event == (Event::Delivered { id }) { break; }
//! }
//! # Ok::<(), umqtt::Error>(())
//! ```
//!
//! # What it guarantees
//! - Every message published ends in exactly one of [`Event::Delivered`], [`Event::Expired`]
//!   or [`Event::Dropped`]; none vanishes silently.
//! - Sessions are persistent by default (`clean_session = false`). When the broker resumes the
//!   session, nothing is resubscribed and unacknowledged QoS 1/2 messages are resent with the
//!   same packet id and DUP set, in the original order, before new traffic. When the broker
//!   lost it, subscriptions are renewed and what is still owed is published again as new
//!   messages ([`Event::SessionLost`] warns: the guarantees need a persistent broker).
//! - Dead and half-open links are detected by keepalive (within 1.5 × keepalive) and by write
//!   errors, and trigger the policy.

mod policy;

pub use policy::{
    BatteryAware, Deadline, Decision, ExponentialBackoff, Failure, FailureKind, FixedDelay,
    NoRetry, PendingSummary, ReconnectPolicy,
};

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use umqtt_core::packet::{PacketId, QoS};
use umqtt_core::session::UsageError;
use umqtt_core::topic::validate_topic_name;

use crate::error::Error;
use crate::outbox::{OutboxStore, StoredMessage};
use crate::simple::{self, ClientConfig, Completion, Message};
use crate::transport::TransportError;

/// How robust one message must be: its delivery contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Sent only if the link is up now; dropped (and reported) if it is down or breaks before
    /// the acknowledgement. The temperature reading.
    NoRetry,
    /// Retried until delivered or until this long after `publish`, then expired (and
    /// reported). The button press.
    Within(Duration),
    /// Kept until delivered, across any outage. The burglar alarm.
    Guaranteed,
}

/// A handle for one published message, named by the events about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// A [`Delivery::NoRetry`] message found no link.
    NotConnected,
    /// The link broke before a [`Delivery::NoRetry`] message was acknowledged.
    LinkLost,
    /// The policy stopped retrying and the message is not guaranteed.
    PolicyStopped,
    /// The offline queue was full (see [`Overflow`]).
    QueueOverflow,
}

/// What the offline queue does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop the oldest waiting message (reported) to make room.
    DropOldest,
    /// Drop the new message (reported); `publish` still returns its id.
    DropNewest,
    /// `publish` fails with [`Error::Usage`]`(`[`UsageError::OutgoingFull`]`)`.
    #[default]
    RefuseNew,
}

/// Something the application may want to show (blink an LED) or log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A connection was established.
    Connected {
        /// The broker resumed the stored session.
        session_present: bool,
        /// Broker address used.
        server: String,
    },
    /// An established connection ended.
    Disconnected {
        /// Why.
        kind: FailureKind,
        /// The error, for logs.
        detail: String,
    },
    /// A connection attempt failed.
    AttemptFailed {
        /// Why.
        kind: FailureKind,
        /// Attempts failed in a row.
        consecutive: u32,
        /// The error, for logs.
        detail: String,
    },
    /// The next attempt is due after this delay.
    RetryScheduled {
        /// Delay chosen by the policy.
        delay: Duration,
    },
    /// The policy stopped retrying; the next publish, subscribe or nudge tries again.
    GaveUp {
        /// The last failure.
        kind: FailureKind,
    },
    /// The broker acknowledged the message (QoS 1/2), or it was written (QoS 0).
    Delivered {
        /// The message.
        id: MessageId,
    },
    /// The message's delivery deadline passed before it could be delivered.
    Expired {
        /// The message.
        id: MessageId,
    },
    /// The message was dropped.
    Dropped {
        /// The message.
        id: MessageId,
        /// Why.
        reason: DropReason,
    },
    /// The broker had no session although a persistent one was used before: its
    /// subscriptions were renewed and owed messages republished, but messages queued for us
    /// meanwhile are gone. A broker that keeps doing this is not persistent.
    SessionLost {
        /// How often it happened so far.
        count: u32,
    },
}

/// Counters for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connection attempts made.
    pub attempts: u64,
    /// Attempts that succeeded.
    pub connects: u64,
    /// Established connections that ended.
    pub disconnects: u64,
    /// Times the broker had lost the session.
    pub sessions_lost: u32,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages expired.
    pub expired: u64,
    /// Messages dropped.
    pub dropped: u64,
    /// Events discarded because the event queue was full and nobody drained it.
    pub events_overflowed: u64,
}

/// Wakes a client waiting for its next attempt; `Send + Clone`, for a network-status thread.
#[derive(Debug, Clone, Default)]
pub struct Nudger(Arc<(Mutex<bool>, Condvar)>);

impl Nudger {
    /// The network is back: try to connect now.
    pub fn nudge(&self) {
        let (flag, condvar) = &*self.0;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        condvar.notify_all();
    }

    fn take(&self) -> bool {
        let mut flag = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *flag, false)
    }

    fn sleep(&self, timeout: Duration) {
        let (flag, condvar) = &*self.0;
        let guard = flag.lock().unwrap_or_else(|e| e.into_inner());
        if !*guard {
            let _ = condvar.wait_timeout(guard, timeout);
        }
    }
}

/// Settings of the robust layer on top of [`ClientConfig`].
#[derive(Debug, Clone)]
pub struct RobustConfig {
    /// Further brokers tried in turn after `ClientConfig::server` (failover).
    pub extra_servers: Vec<(String, Option<u16>)>,
    /// Start clean sessions instead of persistent ones (default false: persistent, which
    /// needs a client id).
    pub clean_session: bool,
    /// Most messages waiting for delivery.
    pub max_queued: usize,
    /// Most payload bytes waiting for delivery.
    pub max_queued_bytes: usize,
    /// What to do when either limit is reached.
    pub overflow: Overflow,
    /// Most events kept when no handler drains them; the oldest are discarded and counted.
    pub max_events: usize,
}

impl Default for RobustConfig {
    fn default() -> Self {
        RobustConfig {
            extra_servers: Vec::new(),
            clean_session: false,
            max_queued: 100_000,
            max_queued_bytes: 64 * 1024 * 1024,
            overflow: Overflow::RefuseNew,
            max_events: 65_536,
        }
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Delivered,
    Expired,
    Dropped(DropReason),
}

struct Pending {
    id: MessageId,
    /// Written to the durable outbox.
    stored: bool,
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
    delivery: Delivery,
    deadline: Option<Instant>,
    /// Set once handed to the session (QoS 1/2).
    packet_id: Option<PacketId>,
}

struct Subscription {
    filter: String,
    qos: QoS,
    /// Acknowledged by the broker within the current session.
    active: bool,
}

enum Link {
    Up,
    Down {
        consecutive: u32,
        outage_started: Instant,
        /// `None`: the policy stopped; new work re-arms an attempt.
        next_attempt: Option<Instant>,
    },
}

type EventHandler = Box<dyn FnMut(&Event) + Send>;

/// A client that reconnects according to a [`ReconnectPolicy`] and keeps each message until
/// its [`Delivery`] contract is settled.
pub struct Client {
    simple: simple::Client,
    servers: Vec<(String, Option<u16>)>,
    next_server: usize,
    config: RobustConfig,
    policy: Box<dyn ReconnectPolicy>,
    /// Handed to the session (in flight or queued there), in publish order.
    in_session: VecDeque<Pending>,
    /// Waiting for the link or for room in the in-flight window, in publish order.
    queue: VecDeque<Pending>,
    queued_bytes: usize,
    next_id: u64,
    subscriptions: Vec<Subscription>,
    link: Link,
    nudger: Nudger,
    had_session: bool,
    events: VecDeque<Event>,
    handler: Option<EventHandler>,
    /// Durable outbox for guaranteed messages, if any.
    store: Option<Box<dyn OutboxStore>>,
    last_durable_commit: Instant,
    /// Cached earliest deadline of pending messages (see `next_expiry`).
    earliest_deadline: Option<Instant>,
    stats: Stats,
}

impl Client {
    /// A robust client with `config` for the connection and `policy` for reconnecting. Nothing
    /// is sent until the first call that drives it (`connect`, `publish`, `poll`…).
    pub fn new(config: ClientConfig, policy: impl ReconnectPolicy + 'static) -> Self {
        Client::with_robust_config(config, policy, RobustConfig::default())
    }

    /// Like [`Client::new`] with robust-layer settings.
    pub fn with_robust_config(
        config: ClientConfig,
        policy: impl ReconnectPolicy + 'static,
        robust: RobustConfig,
    ) -> Self {
        let mut servers = vec![(config.server.clone(), config.port)];
        servers.extend(robust.extra_servers.iter().cloned());
        let mut simple = simple::Client::with_config(config);
        simple.record_completions();
        let now = Instant::now();
        Client {
            simple,
            servers,
            next_server: 0,
            config: robust,
            policy: Box::new(policy),
            in_session: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_id: 1,
            subscriptions: Vec::new(),
            link: Link::Down {
                consecutive: 0,
                outage_started: now,
                next_attempt: Some(now),
            },
            nudger: Nudger::default(),
            had_session: false,
            events: VecDeque::new(),
            handler: None,
            store: None,
            last_durable_commit: now,
            earliest_deadline: None,
            stats: Stats::default(),
        }
    }

    /// Like [`Client::with_robust_config`], with guaranteed messages kept in `store` so they
    /// survive the process dying. Messages a previous process left in the store are loaded and
    /// will be sent again (those that had a packet id go first, with that id, and with DUP if
    /// the broker resumes the session). Use the same client id as that process.
    pub fn with_outbox(
        config: ClientConfig,
        policy: impl ReconnectPolicy + 'static,
        robust: RobustConfig,
        store: impl OutboxStore + 'static,
    ) -> Result<Self, Error> {
        let mut client = Client::with_robust_config(config, policy, robust);
        let mut store: Box<dyn OutboxStore> = Box::new(store);
        let stored = store.load()?;
        for message in stored {
            client.next_id = client.next_id.max(message.id + 1);
            let mut pending = Pending {
                id: MessageId(message.id),
                stored: true,
                topic: message.topic,
                payload: message.payload,
                qos: message.qos,
                retain: message.retain,
                delivery: Delivery::Guaranteed,
                deadline: None,
                packet_id: None,
            };
            client.queued_bytes += pending.payload.len();
            let restored = match message.packet_id {
                Some(packet_id) if pending.qos != QoS::AtMostOnce && client.queue.is_empty() => {
                    client
                        .simple
                        .restore_publish(
                            packet_id,
                            &pending.topic,
                            &pending.payload,
                            pending.qos,
                            pending.retain,
                        )
                        .is_ok()
                        .then_some(packet_id)
                }
                _ => None,
            };
            match restored {
                Some(packet_id) => {
                    pending.packet_id = Some(packet_id);
                    client.in_session.push_back(pending);
                }
                None => client.queue.push_back(pending),
            }
        }
        client.store = Some(store);
        Ok(client)
    }

    /// Sets the last will (before the first connection).
    pub fn set_last_will(&mut self, topic: &str, payload: &[u8], retain: bool, qos: QoS) {
        self.simple.set_last_will(topic, payload, retain, qos);
    }

    /// Sends every event to `handler` instead of queueing it for [`Client::poll`].
    pub fn set_event_handler(&mut self, handler: impl FnMut(&Event) + Send + 'static) {
        self.handler = Some(Box::new(handler));
    }

    /// A handle another thread can use to say "the network is back".
    pub fn nudger(&self) -> Nudger {
        self.nudger.clone()
    }

    /// The network is back (e.g. Wi-Fi up): the next drive attempts a connection at once.
    pub fn nudge(&mut self) {
        self.nudger.nudge();
    }

    /// Whether the link is up.
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Up) && self.simple.is_connected()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Messages not yet settled.
    pub fn pending(&self) -> usize {
        self.in_session.len() + self.queue.len()
    }

    /// Attempts a connection now (whatever the schedule) and returns `session_present`. On
    /// failure the policy schedules the next attempt and the error is returned.
    pub fn connect(&mut self) -> Result<bool, Error> {
        if self.is_connected() {
            return Err(Error::Usage(UsageError::AlreadyConnected));
        }
        self.attempt(Instant::now())
    }

    /// Publishes with the policy's default [`Delivery`].
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<MessageId, Error> {
        let delivery = self.policy.default_delivery();
        self.publish_with(topic, payload, qos, retain, delivery)
    }

    /// Publishes with an explicit delivery contract. Returns at once with the message's id;
    /// its fate is reported by [`Event::Delivered`], [`Event::Expired`] or [`Event::Dropped`].
    /// If the link is down and an attempt is due (or the policy had stopped), one attempt is
    /// made within this call. With a durable outbox, a guaranteed message is on disk when this
    /// returns.
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
    ) -> Result<MessageId, Error> {
        let ids = self.publish_batch(&[(topic, payload)], qos, retain, delivery)?;
        ids.first()
            .copied()
            .ok_or(Error::Usage(UsageError::OutgoingFull))
    }

    /// Publishes several messages at once: with a durable outbox they are written in one
    /// commit (group commit: one fsync for the batch instead of one per message). Either all
    /// are accepted or, on an error, none.
    pub fn publish_batch(
        &mut self,
        messages: &[(&str, &[u8])],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
    ) -> Result<Vec<MessageId>, Error> {
        for (topic, _) in messages {
            validate_topic_name(topic)
                .map_err(|e| Error::Usage(UsageError::InvalidTopicName(e)))?;
        }
        let now = Instant::now();
        let deadline = match delivery {
            Delivery::Within(max_age) => Some(now + max_age),
            _ => None,
        };
        let durable = delivery == Delivery::Guaranteed && self.store.is_some();
        let mut batch: Vec<Pending> = Vec::with_capacity(messages.len());
        let mut ids = Vec::with_capacity(messages.len());
        let mut overflowed = Vec::new();
        let mut batch_bytes = 0;
        for (topic, payload) in messages {
            let id = MessageId(self.next_id + ids.len() as u64);
            ids.push(id);
            let full = |client: &Client, batch_len: usize, batch_bytes: usize| {
                client.pending() + batch_len >= client.config.max_queued
                    || client.queued_bytes + batch_bytes + payload.len()
                        > client.config.max_queued_bytes
            };
            if full(self, batch.len(), batch_bytes) {
                match self.config.overflow {
                    Overflow::RefuseNew => return Err(Error::Usage(UsageError::OutgoingFull)),
                    Overflow::DropNewest => {
                        overflowed.push(id);
                        continue;
                    }
                    Overflow::DropOldest => {
                        while full(self, batch.len(), batch_bytes) {
                            let Some(oldest) = self.queue.pop_front() else {
                                break;
                            };
                            self.settle(oldest, Outcome::Dropped(DropReason::QueueOverflow));
                        }
                        if full(self, batch.len(), batch_bytes) {
                            // Everything left is already in flight with the broker.
                            return Err(Error::Usage(UsageError::OutgoingFull));
                        }
                    }
                }
            }
            batch_bytes += payload.len();
            batch.push(Pending {
                id,
                stored: durable,
                topic: topic.to_string(),
                payload: payload.to_vec(),
                qos,
                retain,
                delivery,
                deadline,
                packet_id: None,
            });
        }
        if durable && !batch.is_empty() {
            let records: Vec<StoredMessage> = batch
                .iter()
                .map(|p| StoredMessage {
                    id: p.id.0,
                    topic: p.topic.clone(),
                    payload: p.payload.clone(),
                    qos: p.qos,
                    retain: p.retain,
                    packet_id: None,
                })
                .collect();
            if let Some(store) = self.store.as_mut() {
                store.insert(&records)?;
                self.last_durable_commit = now;
            }
        }
        self.next_id += ids.len() as u64;
        for id in overflowed {
            self.settle_dropped(id, DropReason::QueueOverflow);
        }
        self.queued_bytes += batch_bytes;
        if let Some(deadline) = deadline.filter(|_| !batch.is_empty()) {
            self.earliest_deadline =
                Some(self.earliest_deadline.map_or(deadline, |e| e.min(deadline)));
        }
        self.queue.extend(batch);
        self.rearm(now);
        self.step(now)?;
        Ok(ids)
    }

    /// Subscribes (now if connected, else at the next connection) and keeps the subscription
    /// across reconnects; renewed only if the broker lost the session.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), Error> {
        umqtt_core::topic::validate_topic_filter(filter)
            .map_err(|e| Error::Usage(UsageError::InvalidTopicFilter(e)))?;
        self.subscriptions.retain(|s| s.filter != filter);
        self.subscriptions.push(Subscription {
            filter: filter.to_string(),
            qos,
            active: false,
        });
        let now = Instant::now();
        self.rearm(now);
        if self.is_connected() {
            self.renew_subscriptions(false)?;
        } else {
            self.step(now)?;
        }
        Ok(())
    }

    /// Unsubscribes and forgets the subscription.
    pub fn unsubscribe(&mut self, filter: &str) -> Result<(), Error> {
        self.subscriptions.retain(|s| s.filter != filter);
        if self.is_connected() {
            if let Err(e) = self.simple.unsubscribe(filter) {
                self.handle_error(e, Instant::now())?;
            }
        }
        Ok(())
    }

    /// Drives the client for up to `timeout` and returns the next event, if any.
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        let deadline = Instant::now() + timeout;
        self.drive_until(deadline, |client| !client.events.is_empty())?;
        Ok(self.events.pop_front())
    }

    /// The next queued event without driving the connection.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Drives the client until a message arrives or `timeout` passes.
    pub fn wait_msg(&mut self, timeout: Duration) -> Result<Option<Message>, Error> {
        if let Some(message) = self.simple.pop_message() {
            return Ok(Some(message));
        }
        let deadline = Instant::now() + timeout;
        let mut received = None;
        self.drive_until(deadline, |client| {
            if received.is_none() {
                received = client.simple.pop_message();
            }
            received.is_some()
        })?;
        Ok(received)
    }

    /// Drives the client until every message is settled or `timeout` passes; returns whether
    /// nothing is pending.
    pub fn flush(&mut self, timeout: Duration) -> Result<bool, Error> {
        let deadline = Instant::now() + timeout;
        self.drive_until(deadline, |client| client.pending() == 0)?;
        Ok(self.pending() == 0)
    }

    /// Drives the client for `duration`: reconnects, sends, receives, expires.
    pub fn run_for(&mut self, duration: Duration) -> Result<(), Error> {
        self.drive_until(Instant::now() + duration, |_| false)
    }

    /// Sends DISCONNECT if connected. Pending messages stay (and are resent by a later
    /// connection with the same client id if the session persists).
    pub fn disconnect(&mut self) -> Result<(), Error> {
        if self.is_connected() {
            self.simple.disconnect()?;
        }
        self.link = Link::Down {
            consecutive: 0,
            outage_started: Instant::now(),
            next_attempt: None,
        };
        Ok(())
    }

    /// The underlying simple client.
    pub fn simple(&self) -> &simple::Client {
        &self.simple
    }

    fn drive_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&mut Client) -> bool,
    ) -> Result<(), Error> {
        loop {
            let now = Instant::now();
            self.step(now)?;
            if done(self) || Instant::now() >= deadline {
                return Ok(());
            }
            let now = Instant::now();
            let mut wake = deadline;
            if let Some(expiry) = self.next_expiry() {
                wake = wake.min(expiry);
            }
            match self.link {
                Link::Up => {
                    let wait = wake.saturating_duration_since(now);
                    if let Err(e) = self.simple.drive(wait) {
                        self.handle_error(e, Instant::now())?;
                    }
                    self.collect_completions();
                }
                Link::Down { next_attempt, .. } => {
                    if let Some(at) = next_attempt {
                        wake = wake.min(at);
                    }
                    self.nudger.sleep(wake.saturating_duration_since(now));
                }
            }
        }
    }

    /// One non-blocking pass: nudges, expiries, a due connection attempt, hand-off, flush.
    fn step(&mut self, now: Instant) -> Result<(), Error> {
        if self.nudger.take() {
            self.policy.on_nudge();
            if let Link::Down { next_attempt, .. } = &mut self.link {
                *next_attempt = Some(now);
            }
        }
        self.expire(now);
        if let Link::Down {
            next_attempt: Some(at),
            ..
        } = self.link
        {
            if now >= at {
                // A failure is already reported by events and scheduled by the policy.
                let _ = self.attempt(now);
            }
        }
        if !matches!(self.link, Link::Up) {
            // NoRetry messages never wait for a later attempt.
            self.drop_waiting(
                |p| p.delivery == Delivery::NoRetry,
                Outcome::Dropped(DropReason::NotConnected),
            );
        } else {
            self.collect_completions();
            self.hand_off();
            if let Err(e) = self.simple.flush() {
                self.handle_error(e, Instant::now())?;
            }
            self.settle_written_qos0();
            self.collect_completions();
        }
        self.commit_store(now)
    }

    /// Writes the outbox's lazy updates (hand-offs, removals): cheaply at every pass, durably
    /// at most once a second.
    fn commit_store(&mut self, now: Instant) -> Result<(), Error> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        if store.lazy_updates() == 0 {
            return Ok(());
        }
        let durable =
            now.saturating_duration_since(self.last_durable_commit) >= Duration::from_secs(1);
        store.commit(durable)?;
        if durable {
            self.last_durable_commit = now;
        }
        Ok(())
    }

    /// New work while the policy had stopped: allow one more attempt now.
    fn rearm(&mut self, now: Instant) {
        if let Link::Down { next_attempt, .. } = &mut self.link {
            if next_attempt.is_none() {
                *next_attempt = Some(now);
            }
        }
    }

    fn attempt(&mut self, now: Instant) -> Result<bool, Error> {
        let (server, port) = self.servers[self.next_server % self.servers.len()].clone();
        self.simple.set_server(&server, port);
        self.stats.attempts += 1;
        let result = self
            .simple
            .connect(self.config.clean_session)
            .and_then(|session_present| {
                self.link = Link::Up;
                self.stats.connects += 1;
                self.policy.on_connected();
                self.emit(Event::Connected {
                    session_present,
                    server: server.clone(),
                });
                if !session_present {
                    if self.had_session && !self.config.clean_session {
                        self.stats.sessions_lost += 1;
                        let count = self.stats.sessions_lost;
                        self.emit(Event::SessionLost { count });
                    }
                    self.subscriptions.iter_mut().for_each(|s| s.active = false);
                }
                self.had_session = !self.config.clean_session;
                self.renew_subscriptions(!session_present)?;
                Ok(session_present)
            });
        match result {
            Ok(session_present) => Ok(session_present),
            Err(e) if matches!(self.link, Link::Up) => {
                // Connected, then renewing subscriptions failed: a refusal leaves the link up.
                if e.is_connection_lost() || matches!(e, Error::Usage(UsageError::NotConnected)) {
                    self.link_lost(classify(&e), &e, Instant::now());
                }
                Err(e)
            }
            Err(e) => {
                self.next_server += 1;
                self.attempt_failed(classify(&e), &e, now);
                Err(e)
            }
        }
    }

    fn renew_subscriptions(&mut self, all: bool) -> Result<(), Error> {
        let filters: Vec<(String, QoS)> = self
            .subscriptions
            .iter()
            .filter(|s| all || !s.active)
            .map(|s| (s.filter.clone(), s.qos))
            .collect();
        if filters.is_empty() {
            return Ok(());
        }
        let borrowed: Vec<(&str, QoS)> = filters.iter().map(|(f, q)| (f.as_str(), *q)).collect();
        match self.simple.subscribe_many(&borrowed) {
            Ok(_) => {
                self.subscriptions.iter_mut().for_each(|s| s.active = true);
                Ok(())
            }
            Err(Error::SubscribeRefused { filter }) => {
                self.subscriptions.retain(|s| s.filter != filter);
                Err(Error::SubscribeRefused { filter })
            }
            Err(e) => Err(e),
        }
    }

    fn attempt_failed(&mut self, kind: FailureKind, error: &Error, now: Instant) {
        let (consecutive, outage_started) = match self.link {
            Link::Down {
                consecutive,
                outage_started,
                ..
            } => (consecutive + 1, outage_started),
            Link::Up => (1, now),
        };
        self.emit(Event::AttemptFailed {
            kind,
            consecutive,
            detail: error.to_string(),
        });
        self.schedule(kind, consecutive, outage_started, now);
    }

    fn link_lost(&mut self, kind: FailureKind, error: &Error, now: Instant) {
        self.stats.disconnects += 1;
        self.emit(Event::Disconnected {
            kind,
            detail: error.to_string(),
        });
        // NoRetry messages die with the link.
        self.withdraw(
            |p| p.delivery == Delivery::NoRetry,
            Outcome::Dropped(DropReason::LinkLost),
        );
        // QoS 0 messages handed over but not known to be written go back to wait, in order.
        let mut unwritten = Vec::new();
        let mut index = 0;
        while index < self.in_session.len() {
            if self.in_session[index].packet_id.is_none() {
                unwritten.extend(self.in_session.remove(index));
            } else {
                index += 1;
            }
        }
        for pending in unwritten.into_iter().rev() {
            self.queue.push_front(pending);
        }
        self.link = Link::Down {
            consecutive: 0,
            outage_started: now,
            next_attempt: None,
        };
        self.schedule(kind, 1, now, now);
    }

    fn schedule(
        &mut self,
        kind: FailureKind,
        consecutive: u32,
        outage_started: Instant,
        now: Instant,
    ) {
        let failure = Failure {
            kind,
            consecutive,
            outage: now.saturating_duration_since(outage_started),
            pending: self.summary(now),
        };
        let next_attempt = match self.policy.on_failure(&failure) {
            Decision::RetryAfter(delay) => {
                self.emit(Event::RetryScheduled { delay });
                Some(now + delay)
            }
            Decision::Stop => {
                self.emit(Event::GaveUp { kind });
                None
            }
        };
        // NoRetry messages never wait for a later attempt.
        self.drop_waiting(
            |p| p.delivery == Delivery::NoRetry,
            Outcome::Dropped(DropReason::NotConnected),
        );
        if next_attempt.is_none() {
            self.drop_unguaranteed();
        }
        self.link = Link::Down {
            consecutive,
            outage_started,
            next_attempt,
        };
    }

    fn drop_unguaranteed(&mut self) {
        self.withdraw(
            |p| p.delivery != Delivery::Guaranteed,
            Outcome::Dropped(DropReason::PolicyStopped),
        );
    }

    /// Settles every message matching `predicate` with `outcome`: all those still waiting,
    /// and those handed to the session if it lets go of them (not a QoS 2 message after
    /// PUBREC: the broker owns it then).
    fn withdraw(&mut self, predicate: impl Fn(&Pending) -> bool, outcome: Outcome) {
        self.drop_waiting(&predicate, outcome);
        let mut index = 0;
        while index < self.in_session.len() {
            let pending = &self.in_session[index];
            let withdrawn = predicate(pending)
                && pending
                    .packet_id
                    .is_none_or(|id| self.simple.cancel_publish(id));
            match withdrawn.then(|| self.in_session.remove(index)).flatten() {
                Some(pending) => self.settle(pending, outcome),
                None => index += 1,
            }
        }
    }

    /// Settles the waiting (not yet handed over) messages matching `predicate`.
    fn drop_waiting(&mut self, predicate: impl Fn(&Pending) -> bool, outcome: Outcome) {
        if !self.queue.iter().any(&predicate) {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for pending in std::mem::take(&mut self.queue) {
            if predicate(&pending) {
                self.settle(pending, outcome);
            } else {
                kept.push_back(pending);
            }
        }
        self.queue = kept;
    }

    fn summary(&self, now: Instant) -> PendingSummary {
        let all = || self.in_session.iter().chain(self.queue.iter());
        PendingSummary {
            messages: self.pending(),
            guaranteed: all().filter(|p| p.delivery == Delivery::Guaranteed).count(),
            earliest_deadline: all()
                .filter_map(|p| p.deadline)
                .min()
                .map(|d| d.saturating_duration_since(now)),
        }
    }

    /// Reacts to an error from the simple client: connection-level errors take the link down
    /// (and go to the policy); others go to the caller.
    fn handle_error(&mut self, error: Error, now: Instant) -> Result<(), Error> {
        match error {
            Error::MessageQueueFull | Error::SubscribeRefused { .. } | Error::Timeout => Err(error),
            Error::Usage(UsageError::NotConnected) => {
                self.link_lost(FailureKind::ConnectionLost, &error, now);
                Ok(())
            }
            Error::Usage(_) => Err(error),
            other => {
                self.link_lost(classify(&other), &other, now);
                Ok(())
            }
        }
    }

    /// Moves waiting messages into the session while its in-flight window has room; when it is
    /// full, reads the acknowledgements already there without waiting, to make room.
    fn hand_off(&mut self) {
        let window = usize::from(self.simple.config().max_in_flight.max(1));
        if !self.queue.is_empty() && self.simple.pending_publishes() >= window {
            if self.simple.pump().is_err() {
                return; // the next drive reports the broken link
            }
            self.collect_completions();
        }
        self.fill_session();
    }

    fn fill_session(&mut self) {
        let window = usize::from(self.simple.config().max_in_flight.max(1));
        while let Some(front) = self.queue.front() {
            if front.qos != QoS::AtMostOnce && self.simple.pending_publishes() >= window {
                break;
            }
            let Some(mut pending) = self.queue.pop_front() else {
                break;
            };
            match self.simple.publish_nowait(
                &pending.topic,
                &pending.payload,
                pending.qos,
                pending.retain,
            ) {
                Ok(packet_id) => {
                    pending.packet_id = packet_id;
                    if let (true, Some(store), Some(packet_id)) =
                        (pending.stored, self.store.as_mut(), packet_id)
                    {
                        store.set_packet_id(pending.id.0, packet_id);
                    }
                    self.in_session.push_back(pending);
                }
                Err(_) => {
                    // The link went away under us; keep the message for the next one.
                    self.queue.push_front(pending);
                    break;
                }
            }
        }
    }

    /// QoS 0 messages are delivered once written.
    fn settle_written_qos0(&mut self) {
        if !self.simple.is_connected() {
            return;
        }
        let mut index = 0;
        while index < self.in_session.len() {
            if self.in_session[index].qos == QoS::AtMostOnce {
                if let Some(pending) = self.in_session.remove(index) {
                    self.settle(pending, Outcome::Delivered);
                }
            } else {
                index += 1;
            }
        }
    }

    fn collect_completions(&mut self) {
        let mut discarded = Vec::new();
        while let Some(completion) = self.simple.take_completion() {
            let (packet_id, published) = match completion {
                Completion::Published(packet_id) => (packet_id, true),
                Completion::Discarded(packet_id) => (packet_id, false),
            };
            let Some(index) = self
                .in_session
                .iter()
                .position(|p| p.packet_id == Some(packet_id))
            else {
                continue;
            };
            let Some(mut pending) = self.in_session.remove(index) else {
                continue;
            };
            if published {
                self.settle(pending, Outcome::Delivered);
            } else {
                // A clean session dropped it: publish it again as a new message.
                pending.packet_id = None;
                discarded.push(pending);
            }
        }
        // Ahead of what was queued after them, in their original order.
        for pending in discarded.into_iter().rev() {
            self.queue.push_front(pending);
        }
    }

    /// The earliest delivery deadline; may be earlier than the real one after messages
    /// settled (the next expiry pass corrects it), never later.
    fn next_expiry(&self) -> Option<Instant> {
        self.earliest_deadline
    }

    fn expire(&mut self, now: Instant) {
        if self.next_expiry().is_none_or(|at| at > now) {
            return;
        }
        self.withdraw(|p| p.deadline.is_some_and(|d| d <= now), Outcome::Expired);
        self.earliest_deadline = self
            .in_session
            .iter()
            .chain(self.queue.iter())
            .filter_map(|p| p.deadline)
            .min();
    }

    /// Ends a message's life: exactly one event says how, and the store forgets it.
    fn settle(&mut self, pending: Pending, outcome: Outcome) {
        self.queued_bytes -= pending.payload.len();
        if pending.stored {
            if let Some(store) = self.store.as_mut() {
                store.remove(pending.id.0);
            }
        }
        let id = pending.id;
        match outcome {
            Outcome::Delivered => {
                self.stats.delivered += 1;
                self.emit(Event::Delivered { id });
            }
            Outcome::Expired => {
                self.stats.expired += 1;
                self.emit(Event::Expired { id });
            }
            Outcome::Dropped(reason) => self.settle_dropped(id, reason),
        }
    }

    fn settle_dropped(&mut self, id: MessageId, reason: DropReason) {
        self.stats.dropped += 1;
        self.emit(Event::Dropped { id, reason });
    }

    fn emit(&mut self, event: Event) {
        if let Some(handler) = self.handler.as_mut() {
            handler(&event);
            return;
        }
        if self.events.len() >= self.config.max_events {
            self.events.pop_front();
            self.stats.events_overflowed += 1;
        }
        self.events.push_back(event);
    }
}

/// Maps a client error to the failure kind a policy sees.
pub fn classify(error: &Error) -> FailureKind {
    match error {
        Error::Transport(TransportError::Resolve { .. } | TransportError::NoAddress { .. }) => {
            FailureKind::Dns
        }
        Error::Transport(TransportError::Connect { .. }) => FailureKind::TcpConnect,
        Error::Transport(TransportError::Timeout { .. }) | Error::ConnectTimeout => {
            FailureKind::Timeout
        }
        Error::Transport(TransportError::Tls(_) | TransportError::TlsIo(_)) => FailureKind::Tls,
        // Unusable local settings (TLS files, server name, an empty client id with a
        // persistent session): retrying cannot help.
        Error::Transport(_) | Error::Usage(_) => FailureKind::Configuration,
        Error::ConnectionRefused(code) => FailureKind::Refused(*code),
        Error::KeepAliveTimeout => FailureKind::KeepAliveExpired,
        Error::Decode(_) | Error::Protocol(_) => FailureKind::Protocol,
        _ => FailureKind::ConnectionLost,
    }
}

#[cfg(test)]
mod tests;
