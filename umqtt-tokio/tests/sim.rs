//! The async client against the testkit's simulated broker, on tokio's paused clock: hours of
//! outages in milliseconds of wall time, deterministic. Every test counts; none sleeps for
//! real.

mod support;

use std::time::Duration;

use support::sim::{Sim, SimConnector};
use tokio::time::Instant;
use umqtt_testkit::sim::{ServerMode, SimNet};
use umqtt_tokio::robust::{
    BatteryAware, Client, Deadline, Delivery, DropReason, Event, Events, FixedDelay, Handle,
    Outcome, Overflow, RobustConfig,
};
use umqtt_tokio::{ClientConfig, Error, QoS, UsageError};

const HOUR: Duration = Duration::from_secs(3600);

fn config(client_id: &str) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_string(),
        keep_alive: 10,
        ..ClientConfig::default()
    }
}

fn robust() -> RobustConfig {
    RobustConfig {
        seed: Some(7),
        ..RobustConfig::default()
    }
}

/// Collects every event with the (virtual) time since `start`, from its own task.
fn record(mut events: Events, start: Instant) -> tokio::task::JoinHandle<Vec<(Duration, Event)>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(event) = events.next().await {
            seen.push((start.elapsed(), event));
        }
        seen
    })
}

fn spawn(sim: &Sim, client: Client) -> (Handle, Events) {
    client
        .connector(sim.connector())
        .spawn()
        .expect("inside a runtime")
}

async fn wait_connected(handle: &Handle) {
    for _ in 0..10_000 {
        if handle.is_connected() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never connected");
}

#[tokio::test(start_paused = true)]
async fn battery_aware_six_hour_outage_costs_few_attempts_and_a_nudge_delivers_at_once() {
    let wall = std::time::Instant::now();
    let start = Instant::now();
    let mut net = SimNet::new(10);
    net.set_mode(umqtt_core::Instant::from_millis(0), 0, ServerMode::Refuse);
    let sim = Sim::new(net);
    let (handle, events) = spawn(
        &sim,
        Client::new(config("alarm"), BatteryAware::new()).robust_config(robust()),
    );
    let recorder = record(events, start);
    let receipt = handle
        .publish("alarm", b"window", QoS::AtLeastOnce, false)
        .await
        .expect("queued");
    tokio::time::sleep(6 * HOUR).await;
    assert_eq!(handle.pending(), 1, "guaranteed: kept through the outage");
    sim.with(|net, now| net.set_mode(now, 0, ServerMode::Up));
    handle.nudge();
    let outcome = tokio::time::timeout(Duration::from_secs(1), receipt.outcome()).await;
    assert_eq!(
        outcome,
        Ok(Ok(Outcome::Delivered)),
        "delivered within 1 s of the nudge"
    );
    drop(handle);
    let seen = recorder.await.expect("recorder");
    let per_hour: Vec<usize> = (0..6u32)
        .map(|h| {
            seen.iter()
                .filter(|(t, e)| {
                    *t >= HOUR * h
                        && *t < HOUR * (h + 1)
                        && matches!(e, Event::AttemptFailed { .. })
                })
                .count()
        })
        .collect();
    assert!(per_hour.windows(2).all(|w| w[1] <= w[0]), "{per_hour:?}");
    assert!(per_hour.iter().sum::<usize>() < 150, "{per_hour:?}");
    assert!(per_hour[5] >= 1, "never gives up: {per_hour:?}");
    let accepted = sim.with(|net, _| net.broker(0).accepted().len());
    assert_eq!(accepted, 1);
    println!(
        "6 h outage: attempts per hour {per_hour:?}, {:?} wall",
        wall.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn button_press_expires_at_its_deadline_and_attempts_stop() {
    let start = Instant::now();
    let mut net = SimNet::new(9);
    net.set_mode(umqtt_core::Instant::from_millis(0), 0, ServerMode::Refuse);
    let sim = Sim::new(net);
    let (handle, events) = spawn(
        &sim,
        Client::new(config("btn"), Deadline::new(Duration::from_secs(15))).robust_config(robust()),
    );
    let recorder = record(events, start);
    let receipt = handle
        .publish("press", b"1", QoS::AtLeastOnce, false)
        .await
        .expect("queued");
    assert_eq!(receipt.outcome().await, Ok(Outcome::Expired));
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(15),
        "expired at its deadline exactly"
    );
    tokio::time::sleep(Duration::from_secs(600)).await;
    let attempts = handle.stats().attempts;
    drop(handle);
    let seen = recorder.await.expect("recorder");
    let late = seen
        .iter()
        .filter(|(t, e)| *t >= Duration::from_secs(16) && matches!(e, Event::AttemptFailed { .. }))
        .count();
    assert_eq!(late, 0, "no attempts after the deadline");
    assert!(attempts >= 5, "{attempts}");
}

#[tokio::test(start_paused = true)]
async fn restart_with_persistent_session_loses_nothing_and_duplicates_nothing() {
    let sim = Sim::new(SimNet::new(1));
    let (handle, events) = spawn(
        &sim,
        Client::new(config("alarm"), BatteryAware::new()).robust_config(robust()),
    );
    let recorder = record(events, Instant::now());
    wait_connected(&handle).await;
    let mut receipts = Vec::new();
    for n in 0..50 {
        let qos = if n % 2 == 0 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        };
        let receipt = handle
            .publish(
                &format!("alarm/{}", n % 2),
                format!("{n}").as_bytes(),
                qos,
                false,
            )
            .await
            .expect("queued");
        receipts.push(receipt);
    }
    sim.with(|net, now| {
        net.schedule(now.saturating_add(Duration::from_millis(5)), |net, now| {
            net.restart(now, 0, true)
        })
    });
    for receipt in receipts {
        assert_eq!(receipt.outcome().await, Ok(Outcome::Delivered));
    }
    assert_eq!(handle.pending(), 0);
    let stats = handle.stats();
    assert!(stats.disconnects >= 1 && stats.connects >= 2, "{stats:?}");
    drop(handle);
    let seen = recorder.await.expect("recorder");
    let delivered = seen
        .iter()
        .filter(|(_, e)| matches!(e, Event::Delivered { .. }))
        .count();
    assert_eq!(delivered, 50);
    for parity in 0..2 {
        let topic = format!("alarm/{parity}");
        let got: Vec<Vec<u8>> = sim.with(|net, _| {
            net.broker(0)
                .accepted()
                .iter()
                .filter(|a| a.topic == topic)
                .map(|a| a.payload.clone())
                .collect()
        });
        let expected: Vec<Vec<u8>> = (0..50)
            .filter(|n| n % 2 == parity)
            .map(|n| format!("{n}").into_bytes())
            .collect();
        assert_eq!(got, expected, "{topic}: each exactly once, in order");
    }
}

/// A publish future dropped while it waits for room queues nothing; one that completed
/// queued exactly one message.
#[tokio::test(start_paused = true)]
async fn cancelled_publish_queues_nothing_and_completed_publish_exactly_once() {
    let mut net = SimNet::new(3);
    net.set_mode(umqtt_core::Instant::from_millis(0), 0, ServerMode::Refuse);
    let sim = Sim::new(net);
    let robust = RobustConfig {
        max_queued: 2,
        overflow: Overflow::RefuseNew,
        ..robust()
    };
    let (handle, events) = spawn(
        &sim,
        Client::new(config("cancel"), FixedDelay::default()).robust_config(robust),
    );
    drop(events);
    let first = handle
        .publish_with("t", b"1", QoS::AtLeastOnce, false, Delivery::Guaranteed)
        .await
        .expect("room");
    let second = handle
        .publish_with("t", b"2", QoS::AtLeastOnce, false, Delivery::Guaranteed)
        .await
        .expect("room");
    // The queue is full: these wait, and are cancelled while waiting.
    for n in 3..10 {
        let payload = format!("{n}");
        let publish = handle.publish_with(
            "t",
            payload.as_bytes(),
            QoS::AtLeastOnce,
            false,
            Delivery::Guaranteed,
        );
        let timed = tokio::time::timeout(Duration::from_millis(100), publish).await;
        assert!(timed.is_err(), "waited for room");
    }
    assert_eq!(
        handle
            .try_publish_with("t", b"x", QoS::AtLeastOnce, false, Delivery::Guaranteed)
            .map(|r| r.id()),
        Err(Error::Usage(UsageError::OutgoingFull))
    );
    assert_eq!(handle.pending(), 2);
    // A waiting publish completes once room is made.
    let waiting = {
        let handle = handle.clone();
        tokio::spawn(async move {
            handle
                .publish_with("t", b"10", QoS::AtLeastOnce, false, Delivery::Guaranteed)
                .await
        })
    };
    sim.with(|net, now| net.set_mode(now, 0, ServerMode::Up));
    handle.nudge();
    assert_eq!(first.outcome().await, Ok(Outcome::Delivered));
    assert_eq!(second.outcome().await, Ok(Outcome::Delivered));
    let third = waiting.await.expect("task").expect("room made");
    assert_eq!(third.outcome().await, Ok(Outcome::Delivered));
    let got: Vec<Vec<u8>> = sim.with(|net, _| {
        net.broker(0)
            .accepted()
            .iter()
            .map(|a| a.payload.clone())
            .collect()
    });
    assert_eq!(got, vec![b"1".to_vec(), b"2".to_vec(), b"10".to_vec()]);
    assert_eq!(handle.stats().delivered, 3);
}

/// `Events::next` cancelled over and over (a select! with a short timer, as an application
/// with other work does) loses no message and duplicates none; the receive bound holds
/// reading back meanwhile.
#[tokio::test(start_paused = true)]
async fn cancelled_event_reads_lose_and_duplicate_nothing() {
    let sim = Sim::new(SimNet::new(4));
    let robust = RobustConfig {
        max_received: 10,
        ..robust()
    };
    let (handle, mut events) = spawn(
        &sim,
        Client::new(config("reader"), FixedDelay::default()).robust_config(robust),
    );
    handle.subscribe("m/#", QoS::AtLeastOnce).expect("valid");
    loop {
        if let Some(Event::Subscribed { .. }) = events.next().await {
            break;
        }
    }
    sim.with(|net, now| {
        for n in 0..500 {
            let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][n % 3];
            net.broker_mut(0)
                .publish(now, "m/x", format!("{n}").as_bytes(), qos, false);
        }
    });
    let mut got = Vec::new();
    let mut cancelled = 0;
    while got.len() < 500 {
        tokio::select! {
            event = events.next() => {
                if let Some(Event::Message(message)) = event {
                    got.push(String::from_utf8(message.payload).expect("utf-8"));
                }
            }
            () = tokio::time::sleep(Duration::from_micros(300)) => cancelled += 1,
        }
        if got.len() % 50 == 0 {
            // A slow reader: the engine holds reading back at its bound.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Every message exactly once; in order per QoS (the broker's in-flight window lets QoS 0
    // overtake QoS 1/2, as MQTT allows).
    let numbers: Vec<usize> = got.iter().map(|p| p.parse().expect("number")).collect();
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..500).collect::<Vec<_>>(),
        "each message exactly once"
    );
    for class in 0..3 {
        let in_class: Vec<usize> = numbers.iter().copied().filter(|n| n % 3 == class).collect();
        assert!(
            in_class.windows(2).all(|w| w[0] < w[1]),
            "QoS class {class} in order"
        );
    }
    assert!(cancelled > 0, "some reads were cancelled");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(events
        .try_next()
        .is_none_or(|e| !matches!(e, Event::Message(_))));
    assert_eq!(handle.stats().received, 500);
}

/// No-retry messages are dropped (not queued) while the link is down; the temperature
/// reading is not worth keeping.
#[tokio::test(start_paused = true)]
async fn no_retry_is_dropped_while_down_and_delivered_while_up() {
    let mut net = SimNet::new(5);
    net.set_mode(umqtt_core::Instant::from_millis(0), 0, ServerMode::Refuse);
    let sim = Sim::new(net);
    let (handle, events) = spawn(
        &sim,
        Client::new(config("temp"), umqtt_tokio::robust::NoRetry).robust_config(robust()),
    );
    drop(events);
    let receipt = handle
        .publish("temp", b"21.5", QoS::AtMostOnce, false)
        .await
        .expect("accepted");
    assert_eq!(
        receipt.outcome().await,
        Ok(Outcome::Dropped(DropReason::NotConnected))
    );
    sim.with(|net, now| net.set_mode(now, 0, ServerMode::Up));
    handle.connect();
    wait_connected(&handle).await;
    let receipt = handle
        .publish("temp", b"21.6", QoS::AtMostOnce, false)
        .await
        .expect("accepted");
    assert_eq!(receipt.outcome().await, Ok(Outcome::Delivered));
    handle.disconnect().await;
    assert!(!handle.is_connected());
    tokio::time::sleep(Duration::from_millis(10)).await; // the network's latency
    let accepted: Vec<Vec<u8>> = sim.with(|net, _| {
        net.broker(0)
            .accepted()
            .iter()
            .map(|a| a.payload.clone())
            .collect()
    });
    assert_eq!(accepted, vec![b"21.6".to_vec()]);
}

/// Dropping the last handle sends DISCONNECT (no will), ends the driver, and then the event
/// stream; the futures and types are `Send`, for multi-threaded runtimes.
#[tokio::test(start_paused = true)]
async fn last_handle_dropped_disconnects_and_ends_the_driver() {
    fn is_send<T: Send>(_: &T) {}
    let sim = Sim::new(SimNet::new(6));
    let (handle, mut events, driver) = Client::new(config("bye"), FixedDelay::default())
        .robust_config(robust())
        .connector(sim.connector())
        .build();
    is_send(&driver);
    is_send(&handle.publish("t", b"", QoS::AtMostOnce, false));
    is_send(&events.next());
    let driver = tokio::spawn(driver);
    let second = handle.clone();
    wait_connected(&second).await;
    drop(handle);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!driver.is_finished(), "a handle is left");
    drop(second);
    driver.await.expect("driver ended cleanly");
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        seen.push(event);
    }
    assert!(
        matches!(seen.first(), Some(Event::Connected { .. })),
        "{seen:?}"
    );
    assert_eq!(seen.len(), 1, "a DISCONNECT is not a failure: {seen:?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let connected = sim.with(|net, _| net.broker(0).is_connected("bye"));
    assert!(!connected);
}

/// A receipt whose message can no longer be settled (the driver was dropped with the message
/// queued) learns it instead of waiting forever.
#[tokio::test(start_paused = true)]
async fn receipts_learn_that_the_driver_stopped() {
    let mut net = SimNet::new(8);
    net.set_mode(umqtt_core::Instant::from_millis(0), 0, ServerMode::Refuse);
    let sim = Sim::new(net);
    let (handle, events, driver) = Client::new(config("gone"), BatteryAware::new())
        .robust_config(robust())
        .connector(sim.connector())
        .build();
    let driver = tokio::spawn(driver);
    let receipt = handle
        .publish("t", b"1", QoS::AtLeastOnce, false)
        .await
        .expect("queued");
    tokio::time::sleep(Duration::from_secs(10)).await;
    driver.abort();
    let _ = driver.await;
    drop(events);
    assert_eq!(receipt.outcome().await, Err(Error::DriverStopped));
    assert_eq!(
        handle
            .publish("t", b"2", QoS::AtLeastOnce, false)
            .await
            .map(|r| r.id()),
        Err(Error::DriverStopped)
    );
}

/// With manual acks, the broker gets PUBACK only when the application calls `Handle::ack`:
/// a message taken from the stream but not processed is still the broker's to redeliver.
#[tokio::test(start_paused = true)]
async fn manual_ack_holds_acknowledgements_until_the_application_acks() {
    let sim = Sim::new(SimNet::new(12));
    let robust = RobustConfig {
        manual_ack: true,
        ..robust()
    };
    let (handle, mut events) = spawn(
        &sim,
        Client::new(config("ackme"), FixedDelay::default()).robust_config(robust),
    );
    handle.subscribe("m", QoS::AtLeastOnce).expect("valid");
    while !matches!(events.next().await, Some(Event::Subscribed { .. })) {}
    sim.with(|net, now| {
        for n in 0..3 {
            net.broker_mut(0)
                .publish(now, "m", format!("{n}").as_bytes(), QoS::AtLeastOnce, false);
        }
    });
    let mut messages = Vec::new();
    while messages.len() < 3 {
        if let Some(Event::Message(message)) = events.next().await {
            messages.push(message);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let unacked = sim.with(|net, _| net.broker(0).in_flight("ackme"));
    assert_eq!(
        unacked, 3,
        "nothing acknowledged before the application says so"
    );
    for message in &messages {
        assert!(handle.ack(message), "an acknowledgement was owed");
        assert!(!handle.ack(message), "only once");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let unacked = sim.with(|net, _| net.broker(0).in_flight("ackme"));
    assert_eq!(unacked, 0);
}

/// A receipt resolves from the engine's outcomes, not from the event stream: with the stream
/// held but never read, and far more events than `max_events` pushing the oldest out, every
/// receipt still learns its message was delivered.
#[tokio::test(start_paused = true)]
async fn receipts_resolve_while_the_event_stream_is_held_unread_and_overflowing() {
    let sim = Sim::new(SimNet::new(21));
    let (handle, events) = spawn(
        &sim,
        Client::new(config("unread"), FixedDelay::default()).robust_config(RobustConfig {
            max_events: 4,
            ..robust()
        }),
    );
    wait_connected(&handle).await;
    let mut receipts = Vec::new();
    for i in 0..200u32 {
        let receipt = handle
            .publish("counted", &i.to_be_bytes(), QoS::AtLeastOnce, false)
            .await
            .expect("queued");
        receipts.push(receipt);
    }
    for receipt in receipts {
        let outcome = tokio::time::timeout(Duration::from_secs(60), receipt.outcome()).await;
        assert_eq!(outcome, Ok(Ok(Outcome::Delivered)));
    }
    let stats = handle.stats();
    assert_eq!(stats.delivered, 200);
    assert!(stats.events_overflowed > 0, "{stats:?}");
    assert_eq!(sim.with(|net, _| net.broker(0).accepted().len()), 200);
    drop(events);
}

/// A receipt dropped before its outcome leaves nothing behind, and one awaited after the
/// driver ended learns `DriverStopped` when its outcome never came.
#[tokio::test(start_paused = true)]
async fn dropped_receipts_leave_nothing_and_late_ones_learn_the_driver_stopped() {
    let mut net = SimNet::new(22);
    net.set_mode(umqtt_core::Instant::from_millis(0), 0, ServerMode::Refuse);
    let sim = Sim::new(net);
    let (handle, events) = spawn(
        &sim,
        Client::new(config("late"), FixedDelay::default()).robust_config(robust()),
    );
    drop(events);
    for _ in 0..10 {
        let receipt = handle
            .publish("x", b"1", QoS::AtLeastOnce, false)
            .await
            .expect("queued");
        drop(receipt);
    }
    let kept = handle
        .publish("x", b"2", QoS::AtLeastOnce, false)
        .await
        .expect("queued");
    assert_eq!(handle.pending(), 11);
    drop(handle);
    assert_eq!(kept.outcome().await, Err(Error::DriverStopped));
}
