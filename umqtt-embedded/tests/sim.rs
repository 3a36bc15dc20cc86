//! The embedded driver against the testkit's simulated broker, on tokio's paused clock: hours
//! of outages in milliseconds of wall time, deterministic. The driver runs over
//! `embedded-io-async` streams (tokio's, through `embedded-io-adapters`) exactly as on a
//! device. Every test counts; none sleeps for real.

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use support::sim::{sim_server, Sim, SimStack};
use support::TokioClock;
use tokio::time::Instant;
use umqtt_embedded::{
    BatteryAware, Client, Deadline, Delivery, Driver, DropReason, EngineConfig, Event,
    ExponentialBackoff, MessageId, NoRetry, QoS, ReconnectPolicy, SessionConfig,
};
use umqtt_testkit::sim::{ServerMode, SimNet};

const HOUR: Duration = Duration::from_secs(3600);

fn config(client_id: &str) -> EngineConfig {
    let session = SessionConfig {
        client_id: client_id.to_string(),
        keep_alive: 10,
        ..SessionConfig::default()
    };
    EngineConfig::new(session)
}

/// Runs `body` while the client's driver runs beside it (one task, as on a device).
async fn drive<P: ReconnectPolicy, T>(
    client: &Client<P, TokioClock>,
    stack: &SimStack,
    body: impl Future<Output = T>,
) -> T {
    let servers = [sim_server(0)];
    let mut rx = [0u8; 512];
    let driver = Driver::new(client, stack, &servers, &mut rx);
    tokio::select! {
        biased;
        out = body => out,
        never = driver.run() => match never {},
    }
}

/// What came out of a client's event stream so far.
#[derive(Debug, Default)]
struct Seen {
    delivered: BTreeSet<MessageId>,
    expired: BTreeSet<MessageId>,
    dropped: Vec<(MessageId, DropReason)>,
    attempts_failed: usize,
    subscribed: usize,
    sessions_lost: usize,
    payloads: Vec<Vec<u8>>,
}

impl Seen {
    fn take<P: ReconnectPolicy>(&mut self, client: &Client<P, TokioClock>) {
        while let Some(event) = client.try_next_event() {
            match event {
                Event::Delivered { id } => {
                    self.delivered.insert(id);
                }
                Event::Expired { id } => {
                    self.expired.insert(id);
                }
                Event::Dropped { id, reason } => self.dropped.push((id, reason)),
                Event::AttemptFailed { .. } => self.attempts_failed += 1,
                Event::Subscribed { .. } => self.subscribed += 1,
                Event::SessionLost { .. } => self.sessions_lost += 1,
                Event::Message(message) => self.payloads.push(message.payload),
                _ => {}
            }
        }
    }

    fn distinct(&self) -> BTreeSet<&[u8]> {
        self.payloads.iter().map(Vec::as_slice).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn battery_aware_six_hour_outage_costs_few_attempts_and_a_nudge_delivers_at_once() {
    let wall = std::time::Instant::now();
    let mut net = SimNet::new(10);
    net.set_mode(umqtt_core::Instant::from_millis(0), 0, ServerMode::Refuse);
    let sim = Sim::new(net);
    let stack = SimStack(sim.clone());
    let clock = TokioClock { epoch: sim.epoch() };
    let client = Client::new(config("alarm"), BatteryAware::new(), 7, clock);
    let (per_hour, seen) = drive(&client, &stack, async {
        let id = client
            .publish("alarm", b"window", QoS::AtLeastOnce, false)
            .expect("queued");
        let mut seen = Seen::default();
        let mut per_hour = Vec::new();
        for _ in 0..6 {
            let before = seen.attempts_failed;
            tokio::time::sleep(HOUR).await;
            seen.take(&client);
            per_hour.push(seen.attempts_failed - before);
        }
        assert_eq!(client.pending(), 1, "guaranteed: kept through the outage");
        sim.with(|net, now| net.set_mode(now, 0, ServerMode::Up));
        // The network stack's link-up event.
        let nudged = Instant::now();
        client.nudge();
        while !seen.delivered.contains(&id) {
            assert!(
                nudged.elapsed() < Duration::from_secs(1),
                "delivered within 1 s of the nudge"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            seen.take(&client);
        }
        (per_hour, seen)
    })
    .await;
    assert!(per_hour.windows(2).all(|w| w[1] <= w[0]), "{per_hour:?}");
    assert!(per_hour.iter().sum::<usize>() < 150, "{per_hour:?}");
    assert!(per_hour[5] >= 1, "never gives up: {per_hour:?}");
    assert!(seen.dropped.is_empty() && seen.expired.is_empty());
    let accepted = sim.with(|net, _| net.broker(0).accepted().len());
    assert_eq!(accepted, 1, "delivered once");
    println!(
        "6 h outage: attempts per hour {per_hour:?}, {:?} wall",
        wall.elapsed()
    );
}

/// The seed's button (deadline 15 s) and temperature sensor (no retry) through an outage:
/// the press expires at its deadline, the reading is dropped at once, attempts stop.
#[tokio::test(start_paused = true)]
async fn button_expires_at_its_deadline_and_a_reading_is_not_retried() {
    let mut net = SimNet::new(9);
    net.set_mode(umqtt_core::Instant::from_millis(0), 0, ServerMode::Refuse);
    let sim = Sim::new(net);
    let stack = SimStack(sim.clone());
    let clock = TokioClock { epoch: sim.epoch() };
    let button = Client::new(
        config("btn"),
        Deadline::new(Duration::from_secs(15)),
        7,
        clock,
    );
    let seen = drive(&button, &stack, async {
        let start = Instant::now();
        let id = button
            .publish("press", b"1", QoS::AtLeastOnce, false)
            .expect("queued");
        let mut seen = Seen::default();
        while !seen.expired.contains(&id) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            seen.take(&button);
        }
        assert!(
            start.elapsed() <= Duration::from_millis(15_100),
            "at its deadline"
        );
        let attempts = button.stats().attempts;
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(button.stats().attempts, attempts, "attempts stopped");
        seen
    })
    .await;
    assert!(seen.delivered.is_empty());

    let sensor = Client::new(config("temp"), NoRetry, 7, clock);
    let seen = drive(&sensor, &stack, async {
        let mut seen = Seen::default();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let id = sensor
            .publish_with("temp", b"21.5", QoS::AtLeastOnce, false, Delivery::NoRetry)
            .expect("accepted");
        tokio::time::sleep(Duration::from_secs(60)).await;
        seen.take(&sensor);
        assert_eq!(seen.dropped.len(), 1, "{seen:?}");
        assert_eq!(seen.dropped[0].0, id);
        seen
    })
    .await;
    assert!(seen.delivered.is_empty());
}

/// Takes both clients' events until the publisher has `delivered` deliveries and the
/// subscriber `subscribed` SUBACKs.
async fn wait<P: ReconnectPolicy>(
    publisher: &Client<P, TokioClock>,
    subscriber: &Client<P, TokioClock>,
    pub_seen: &mut Seen,
    sub_seen: &mut Seen,
    delivered: usize,
    subscribed: usize,
) {
    for _ in 0..10_000 {
        pub_seen.take(publisher);
        sub_seen.take(subscriber);
        if pub_seen.delivered.len() >= delivered && sub_seen.subscribed >= subscribed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stuck: {pub_seen:?} {sub_seen:?}");
}

/// A publisher and a subscriber (both embedded clients) through a cut link, a broker restart
/// that keeps sessions and one that loses them: every QoS 1 message is delivered, the
/// subscriber renews its subscription by itself and receives every message published while
/// it was subscribed.
#[tokio::test(start_paused = true)]
async fn cut_restart_and_lost_session_lose_nothing() {
    let sim = Sim::new(SimNet::new(3));
    let stack = SimStack(sim.clone());
    let clock = TokioClock { epoch: sim.epoch() };
    let policy = || ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let publisher = Client::new(config("pub"), policy(), 1, clock);
    let subscriber = Client::new(config("sub"), policy(), 2, clock);
    subscriber
        .subscribe("s/#", QoS::AtLeastOnce)
        .expect("valid filter");
    const BATCH: usize = 50;
    let mut sent = 0;
    let (pub_seen, sub_seen) = drive(&publisher, &stack, async {
        drive(&subscriber, &stack, async {
            let mut pub_seen = Seen::default();
            let mut sub_seen = Seen::default();
            wait(&publisher, &subscriber, &mut pub_seen, &mut sub_seen, 0, 1).await;
            type Fault = fn(&mut SimNet, umqtt_core::Instant);
            let faults: [(&str, Fault); 3] = [
                ("cut", |net, now| net.cut(now, 0)),
                ("restart", |net, now| net.restart(now, 0, true)),
                ("session lost", |net, now| net.restart(now, 0, false)),
            ];
            for (name, fault) in faults {
                for _ in 0..BATCH {
                    publisher
                        .publish_with(
                            "s/1",
                            sent.to_string().as_bytes(),
                            QoS::AtLeastOnce,
                            false,
                            Delivery::Guaranteed,
                        )
                        .expect("queued");
                    sent += 1;
                }
                // Let the driver write part of the batch, then the fault.
                tokio::time::sleep(Duration::from_millis(1)).await;
                let expected_subscribed = sub_seen.subscribed + usize::from(name == "session lost");
                sim.with(fault);
                wait(
                    &publisher,
                    &subscriber,
                    &mut pub_seen,
                    &mut sub_seen,
                    sent,
                    expected_subscribed,
                )
                .await;
            }
            // One more batch after the lost session: the renewed subscription carries it.
            for _ in 0..BATCH {
                publisher
                    .publish("s/1", sent.to_string().as_bytes(), QoS::AtLeastOnce, false)
                    .expect("queued");
                sent += 1;
            }
            wait(
                &publisher,
                &subscriber,
                &mut pub_seen,
                &mut sub_seen,
                sent,
                0,
            )
            .await;
            for _ in 0..200 {
                sub_seen.take(&subscriber);
                if sub_seen.distinct().len() >= sent {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (pub_seen, sub_seen)
        })
        .await
    })
    .await;
    assert_eq!(pub_seen.delivered.len(), sent, "every message delivered");
    assert!(pub_seen.dropped.is_empty() && pub_seen.expired.is_empty());
    assert!(sub_seen.sessions_lost >= 1, "{sub_seen:?}");
    let distinct = sub_seen.distinct();
    // What the broker held for the subscriber when it lost the session is gone with it (the
    // broker's loss, reported as SessionLost); everything else arrived.
    let last_batch: BTreeSet<Vec<u8>> = (sent - BATCH..sent)
        .map(|n| n.to_string().into_bytes())
        .collect();
    assert!(
        last_batch.iter().all(|p| distinct.contains(p.as_slice())),
        "the batch after the renewed subscription arrived whole"
    );
    let first_two: BTreeSet<Vec<u8>> = (0..2 * BATCH).map(|n| n.to_string().into_bytes()).collect();
    assert!(
        first_two.iter().all(|p| distinct.contains(p.as_slice())),
        "cut and restart with sessions: all arrived"
    );
    assert!(publisher.stats().connects >= 4, "{:?}", publisher.stats());
}
