//! The robust client (the blocking driver of the core engine) against real mosquitto, through
//! a fault-injecting proxy, with short real times. Timing rules (deadlines, backoff, six-hour
//! outages, half-open detection, failover) are tested on the virtual clock against the
//! simulated broker in `umqtt-testkit/tests/engine_sim.rs`; these tests check that the driver
//! moves real bytes and real time the same way.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use umqtt::robust::{
    BatteryAware, Client, Delivery, DropReason, Event, ExponentialBackoff, FailureKind, FixedDelay,
    NoRetry, Overflow, ReconnectPolicy, RobustConfig,
};
use umqtt::{simple, ClientConfig, ConnectReturnCode, Error, QoS, UsageError};
use umqtt_testkit::broker::{free_port, Mosquitto};
use umqtt_testkit::proxy::{FaultProxy, Mode};

fn config(port: u16, client_id: &str) -> ClientConfig {
    ClientConfig {
        client_id: client_id.to_string(),
        server: "127.0.0.1".to_string(),
        port: Some(port),
        keep_alive: 2,
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

/// Collects events through the handler so a test can inspect them while the client runs.
fn recorded(client: &mut Client) -> Arc<Mutex<Vec<(Instant, Event)>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    client
        .set_event_handler(move |event| sink.lock().unwrap().push((Instant::now(), event.clone())));
    log
}

fn events(log: &Arc<Mutex<Vec<(Instant, Event)>>>) -> Vec<Event> {
    log.lock().unwrap().iter().map(|(_, e)| e.clone()).collect()
}

/// Drives `client` until the broker granted `filter` (the event arrives through the handler).
fn until_subscribed(client: &mut Client, log: &Arc<Mutex<Vec<(Instant, Event)>>>, filter: &str) {
    let granted = |log: &Arc<Mutex<Vec<(Instant, Event)>>>| {
        events(log)
            .iter()
            .any(|e| matches!(e, Event::Subscribed { filter: f, .. } if f == filter))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !granted(log) {
        assert!(Instant::now() < deadline, "no SUBACK for {filter}");
        client.run_for(Duration::from_millis(20)).unwrap();
    }
}

/// A plain subscriber that only observes what arrives. Its keepalive is long: it is not
/// polled while the robust client under test works (a 2 s keepalive would let the broker
/// drop it when that work takes over 3 s on a loaded machine).
fn simple_subscriber(broker: &Mosquitto, client_id: &str, filter: &str) -> simple::Client {
    let mut sub: simple::Client = simple::Client::with_config(ClientConfig {
        keep_alive: 60,
        ..config(broker.port(), client_id)
    });
    sub.connect(true).unwrap();
    sub.subscribe(filter, QoS::AtLeastOnce).unwrap();
    sub
}

#[test]
fn no_retry_drops_when_link_is_down_and_makes_no_further_attempts() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    proxy.set_mode(Mode::Refuse);
    let mut client = Client::new(config(proxy.port(), "temperature"), NoRetry);
    let log = recorded(&mut client);
    let id = client
        .publish("home/temp", b"21.5", QoS::AtLeastOnce, false)
        .unwrap();
    client.run_for(Duration::from_millis(1500)).unwrap();
    assert_eq!(
        client.stats().attempts,
        1,
        "only the publish's own attempt, no retries"
    );
    let evs = events(&log);
    assert!(
        evs.contains(&Event::Dropped {
            id,
            reason: DropReason::NotConnected
        }),
        "{evs:?}"
    );
    assert!(
        evs.iter().any(|e| matches!(
            e,
            Event::GaveUp {
                kind: FailureKind::TcpConnect
            }
        )),
        "{evs:?}"
    );
    assert_eq!(client.pending(), 0);

    // The next reading tries again, once, and gets through.
    proxy.set_mode(Mode::Forward);
    let mut sub = simple_subscriber(&broker, "temp-sub", "home/#");
    let id = client
        .publish("home/temp", b"21.7", QoS::AtLeastOnce, false)
        .unwrap();
    assert!(client.flush(Duration::from_secs(5)).unwrap());
    assert!(events(&log).contains(&Event::Delivered { id }));
    assert_eq!(client.stats().attempts, 2);
    let m = sub
        .wait_msg_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, b"21.7");
}

#[test]
fn nudge_reconnects_at_once() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    proxy.set_mode(Mode::Refuse);
    let mut alarm = BatteryAware::new();
    alarm.initial = Duration::from_secs(30); // without a nudge the next attempt is far away
    let mut client = Client::new(config(proxy.port(), "alarm"), alarm);
    let log = recorded(&mut client);
    let id = client
        .publish("home/alarm", b"window", QoS::AtLeastOnce, false)
        .unwrap();
    client.run_for(Duration::from_millis(300)).unwrap();
    assert_eq!(client.stats().attempts, 1);
    proxy.set_mode(Mode::Forward);
    let nudger = client.nudger();
    let nudged_at = Instant::now();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        nudger.nudge();
    });
    assert!(
        client.flush(Duration::from_secs(5)).unwrap(),
        "delivered after the nudge"
    );
    assert!(
        nudged_at.elapsed() < Duration::from_secs(3),
        "{:?}",
        nudged_at.elapsed()
    );
    assert!(events(&log).contains(&Event::Delivered { id }));
    assert_eq!(client.stats().attempts, 2);
}

#[test]
fn bad_credentials_do_not_spin() {
    let broker = Mosquitto::builder().user("alice", "secret").start();
    for policy in [
        Box::new(FixedDelay::default()) as Box<dyn ReconnectPolicy>,
        Box::new(ExponentialBackoff::default()),
        Box::new(BatteryAware::new()),
    ] {
        let mut cfg = config(broker.port(), "creds");
        cfg.username = Some("alice".into());
        cfg.password = Some(b"wrong".to_vec());
        let mut client = Client::new(cfg, policy);
        let log = recorded(&mut client);
        client
            .publish_with("t", b"x", QoS::AtLeastOnce, false, Delivery::Guaranteed)
            .unwrap();
        client.run_for(Duration::from_secs(2)).unwrap();
        assert_eq!(client.stats().attempts, 1, "{:?}", events(&log));
        assert!(events(&log).iter().any(|e| matches!(
            e,
            Event::AttemptFailed {
                kind: FailureKind::Refused(ConnectReturnCode::NotAuthorized),
                ..
            }
        )));
    }
}

#[test]
fn half_open_link_detected_within_one_and_a_half_keepalives() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let keep_alive = 2;
    let mut cfg = config(proxy.port(), "half-open");
    cfg.keep_alive = keep_alive;
    let mut client = Client::new(
        cfg,
        FixedDelay {
            delay: Duration::from_millis(200),
        },
    );
    let log = recorded(&mut client);
    client.connect().unwrap();
    client
        .publish("t", b"warm", QoS::AtLeastOnce, false)
        .unwrap();
    assert!(client.flush(Duration::from_secs(2)).unwrap());
    // The peer goes silent while the socket stays open.
    proxy.set_mode(Mode::BlackHole);
    let silent_since = Instant::now();
    let deadline = silent_since + Duration::from_secs(10);
    let mut detected = None;
    while Instant::now() < deadline && detected.is_none() {
        client.run_for(Duration::from_millis(50)).unwrap();
        detected = log.lock().unwrap().iter().find_map(|(t, e)| match e {
            Event::Disconnected {
                kind: FailureKind::KeepAliveExpired,
                ..
            } => Some(t.duration_since(silent_since)),
            _ => None,
        });
    }
    let detected = detected.expect("half-open link detected");
    let limit = Duration::from_secs(u64::from(keep_alive)).mul_f64(1.5);
    println!("half-open detected after {detected:?} (keepalive {keep_alive} s, limit {limit:?})");
    assert!(
        detected <= limit + Duration::from_millis(1000),
        "{detected:?} > {limit:?} + 1 s"
    );
    // And it recovers once the network heals.
    proxy.set_mode(Mode::Forward);
    proxy.cut();
    let id = client
        .publish("t", b"after", QoS::AtLeastOnce, false)
        .unwrap();
    assert!(client.flush(Duration::from_secs(10)).unwrap());
    assert!(events(&log).contains(&Event::Delivered { id }));
}

#[test]
fn qos0_while_down_follows_its_contract() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let mut sub = simple_subscriber(&broker, "qos0-sub", "q0/#");
    let mut client = Client::new(
        config(proxy.port(), "qos0"),
        FixedDelay {
            delay: Duration::from_millis(100),
        },
    );
    let log = recorded(&mut client);
    client.connect().unwrap();
    proxy.set_mode(Mode::Refuse);
    proxy.cut();
    // Let the client notice the cut.
    client.run_for(Duration::from_millis(300)).unwrap();
    assert!(!client.is_connected());
    let dropped = client
        .publish_with(
            "q0/t",
            b"dropped",
            QoS::AtMostOnce,
            false,
            Delivery::NoRetry,
        )
        .unwrap();
    let kept = client
        .publish_with(
            "q0/t",
            b"kept",
            QoS::AtMostOnce,
            false,
            Delivery::Guaranteed,
        )
        .unwrap();
    // A no-retry message waits at most for the attempt in progress (refused here).
    client.run_for(Duration::from_millis(300)).unwrap();
    assert!(events(&log).contains(&Event::Dropped {
        id: dropped,
        reason: DropReason::NotConnected
    }));
    proxy.set_mode(Mode::Forward);
    assert!(client.flush(Duration::from_secs(5)).unwrap());
    assert!(events(&log).contains(&Event::Delivered { id: kept }));
    let m = sub
        .wait_msg_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, b"kept");
    assert!(sub
        .wait_msg_timeout(Duration::from_millis(300))
        .unwrap()
        .is_none());
}

#[test]
fn offline_queue_overflow_rules() {
    let port = free_port();
    let robust = |overflow| RobustConfig {
        max_queued: 3,
        overflow,
        ..RobustConfig::default()
    };
    let policy = || FixedDelay {
        delay: Duration::from_secs(60),
    };

    let mut refuse =
        Client::with_robust_config(config(port, "q1"), policy(), robust(Overflow::RefuseNew));
    for _ in 0..3 {
        refuse.publish("t", b"m", QoS::AtLeastOnce, false).unwrap();
    }
    assert!(matches!(
        refuse.publish("t", b"m", QoS::AtLeastOnce, false),
        Err(Error::Usage(UsageError::OutgoingFull))
    ));
    assert_eq!(refuse.pending(), 3);

    let mut oldest =
        Client::with_robust_config(config(port, "q2"), policy(), robust(Overflow::DropOldest));
    let log = recorded(&mut oldest);
    let first = oldest.publish("t", b"1", QoS::AtLeastOnce, false).unwrap();
    for _ in 0..3 {
        oldest.publish("t", b"m", QoS::AtLeastOnce, false).unwrap();
    }
    assert_eq!(oldest.pending(), 3);
    assert!(events(&log).contains(&Event::Dropped {
        id: first,
        reason: DropReason::QueueOverflow
    }));

    let mut newest =
        Client::with_robust_config(config(port, "q3"), policy(), robust(Overflow::DropNewest));
    let log = recorded(&mut newest);
    for _ in 0..3 {
        newest.publish("t", b"m", QoS::AtLeastOnce, false).unwrap();
    }
    let fourth = newest.publish("t", b"4", QoS::AtLeastOnce, false).unwrap();
    assert_eq!(newest.pending(), 3);
    assert!(events(&log).contains(&Event::Dropped {
        id: fourth,
        reason: DropReason::QueueOverflow
    }));
}

#[test]
fn server_list_fails_over_to_the_next_broker() {
    let broker = Mosquitto::start();
    let dead = free_port();
    let robust = RobustConfig {
        extra_servers: vec![("127.0.0.1".into(), Some(broker.port()))],
        ..RobustConfig::default()
    };
    let mut client = Client::with_robust_config(
        config(dead, "failover"),
        FixedDelay {
            delay: Duration::from_millis(50),
        },
        robust,
    );
    let log = recorded(&mut client);
    let id = client.publish("t", b"x", QoS::AtLeastOnce, false).unwrap();
    assert!(client.flush(Duration::from_secs(5)).unwrap());
    assert!(events(&log).contains(&Event::Delivered { id }));
    assert_eq!(client.stats().attempts, 2);
}

#[test]
fn subscriber_resumes_session_without_resubscribing() {
    let broker = Mosquitto::builder().persistence(true).start();
    let proxy = FaultProxy::start(broker.addr());
    let mut sub = Client::new(
        config(proxy.port(), "resume-sub"),
        FixedDelay {
            delay: Duration::from_millis(100),
        },
    );
    let log = recorded(&mut sub);
    sub.connect().unwrap();
    sub.subscribe("r/#", QoS::AtLeastOnce).unwrap();
    until_subscribed(&mut sub, &log, "r/#");
    assert!(sub.is_connected());
    // The subscriber's link dies; messages are published meanwhile.
    proxy.set_mode(Mode::Refuse);
    proxy.cut();
    sub.run_for(Duration::from_millis(300)).unwrap();
    let mut publisher: simple::Client =
        simple::Client::with_config(config(broker.port(), "resume-pub"));
    publisher.connect(true).unwrap();
    for i in 0..10 {
        publisher
            .publish("r/x", format!("{i}").as_bytes(), QoS::AtLeastOnce, false)
            .unwrap();
    }
    proxy.set_mode(Mode::Forward);
    let mut got = Vec::new();
    while got.len() < 10 {
        let m = sub
            .wait_msg(Duration::from_secs(5))
            .unwrap()
            .expect("queued message after reconnect");
        got.push(String::from_utf8(m.payload).unwrap());
    }
    assert_eq!(got, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    let connects: Vec<bool> = events(&log)
        .iter()
        .filter_map(|e| match e {
            Event::Connected {
                session_present, ..
            } => Some(*session_present),
            _ => None,
        })
        .collect();
    assert_eq!(connects, vec![false, true]);
    let subscribes = broker
        .log_contents()
        .matches("Received SUBSCRIBE from resume-sub")
        .count();
    assert_eq!(subscribes, 1, "no resubscribe when the session was resumed");
}

#[test]
fn subscriber_resubscribes_when_the_broker_lost_the_session() {
    // No persistence: a restart forgets every session.
    let mut broker = Mosquitto::start();
    let mut sub = Client::new(
        config(broker.port(), "lost-sub"),
        FixedDelay {
            delay: Duration::from_millis(100),
        },
    );
    let log = recorded(&mut sub);
    sub.connect().unwrap();
    sub.subscribe("l/#", QoS::AtLeastOnce).unwrap();
    until_subscribed(&mut sub, &log, "l/#");
    broker.stop();
    broker.restart();
    // The subscriber notices, reconnects, finds no session and resubscribes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events(&log)
        .iter()
        .any(|e| matches!(e, Event::SessionLost { .. }))
        && Instant::now() < deadline
    {
        sub.run_for(Duration::from_millis(100)).unwrap();
    }
    assert!(
        events(&log).contains(&Event::SessionLost { count: 1 }),
        "{:?}",
        events(&log)
    );
    let mut publisher: simple::Client =
        simple::Client::with_config(config(broker.port(), "lost-pub"));
    publisher.connect(true).unwrap();
    publisher
        .publish("l/x", b"after restart", QoS::AtLeastOnce, false)
        .unwrap();
    let m = sub
        .wait_msg(Duration::from_secs(5))
        .unwrap()
        .expect("delivered after resubscribing");
    assert_eq!(m.payload, b"after restart");
}

#[test]
fn clean_session_republishes_unacknowledged_messages_in_order() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let mut sub = simple_subscriber(&broker, "clean-sub", "c/#");
    let robust = RobustConfig {
        clean_session: true,
        ..RobustConfig::default()
    };
    let mut client = Client::with_robust_config(
        config(proxy.port(), "clean-pub"),
        FixedDelay {
            delay: Duration::from_millis(100),
        },
        robust,
    );
    client.connect().unwrap();
    // PUBLISH packets leave but no PUBACK comes back; then the link dies.
    proxy.set_mode(Mode::BlackHole);
    for i in 0..5 {
        client
            .publish("c/n", format!("{i}").as_bytes(), QoS::AtLeastOnce, false)
            .unwrap();
    }
    client.run_for(Duration::from_millis(300)).unwrap();
    assert_eq!(client.pending(), 5);
    proxy.set_mode(Mode::Refuse);
    proxy.reset();
    client.run_for(Duration::from_millis(300)).unwrap();
    proxy.set_mode(Mode::Forward);
    assert!(client.flush(Duration::from_secs(10)).unwrap());
    // The black-holed bytes may also arrive when the partition heals: duplicates are allowed,
    // loss and reordering of the first copies are not.
    let mut first_seen = Vec::new();
    while let Some(m) = sub.wait_msg_timeout(Duration::from_millis(500)).unwrap() {
        let n = String::from_utf8(m.payload).unwrap();
        if !first_seen.contains(&n) {
            first_seen.push(n);
        }
    }
    assert_eq!(
        first_seen,
        (0..5).map(|i| i.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn writes_into_a_black_hole_fail_instead_of_blocking_forever() {
    let broker = Mosquitto::start();
    let proxy = FaultProxy::start(broker.addr());
    let mut cfg = config(proxy.port(), "flood");
    cfg.keep_alive = 60; // keepalive alone would take 90 s to notice
    let mut client: simple::Client = simple::Client::with_config(cfg);
    client.connect(true).unwrap();
    proxy.set_mode(Mode::BlackHole);
    let payload = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let mut written = 0usize;
    let error = loop {
        match client.publish("flood", &payload, QoS::AtMostOnce, false) {
            Ok(_) => written += payload.len(),
            Err(e) => break e,
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still writing after {written} bytes"
        );
    };
    println!(
        "write stalled after {} KiB, failed after {:?}: {error}",
        written / 1024,
        started.elapsed()
    );
    assert!(matches!(error, umqtt::Error::WriteStalled), "{error:?}");
    assert!(error.is_connection_lost());
    assert!(!client.is_connected());
}

#[test]
fn persistent_session_without_client_id_is_a_configuration_error_not_a_retry_loop() {
    let broker = Mosquitto::start();
    let mut client = Client::new(
        config(broker.port(), ""),
        FixedDelay {
            delay: Duration::from_millis(10),
        },
    );
    let log = recorded(&mut client);
    assert!(matches!(
        client.connect(),
        Err(Error::Usage(UsageError::EmptyClientIdNeedsCleanSession))
    ));
    client.run_for(Duration::from_millis(300)).unwrap();
    assert_eq!(client.stats().attempts, 1, "{:?}", events(&log));
    assert!(events(&log).contains(&Event::GaveUp {
        kind: FailureKind::Configuration
    }));
}

/// Issue 9 item 1: with an attempt in progress that the broker never answers (the kernel
/// accepts the TCP connection, nobody sends CONNACK), `publish` returns at once and
/// `poll(50 ms)` after about 50 ms — not after the 10 s connect timeout.
#[test]
fn publish_and_poll_never_wait_for_a_hanging_attempt() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut client = Client::new(
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            ..config(port, "no-freeze")
        },
        FixedDelay::default(),
    );
    let started = Instant::now();
    client.publish("t", b"1", QoS::AtLeastOnce, false).unwrap();
    let publish_took = started.elapsed();
    let started = Instant::now();
    let mut polls = 0;
    while started.elapsed() < Duration::from_millis(500) {
        let _ = client.poll(Duration::from_millis(50)).unwrap();
        polls += 1;
    }
    println!("publish took {publish_took:?}; {polls} polls of 50 ms in 500 ms");
    // Liveness, not speed: the old loop took the whole 10 s connect timeout here.
    assert!(publish_took < Duration::from_secs(2), "{publish_took:?}");
    assert!(polls >= 3, "poll(50 ms) blocked: {polls} polls in 500 ms");
    assert_eq!(client.pending(), 1);
    drop(silent);
}

/// Issue 9 item 6: a loop that only calls `poll` receives every message (they share the
/// event stream) and never fails with a full queue, however many arrive.
#[test]
fn a_poll_only_loop_receives_every_message() {
    const TOTAL: usize = 3000;
    let broker = Mosquitto::builder().max_queued_messages(10_000).start();
    let mut sub = Client::with_robust_config(
        config(broker.port(), "poll-only"),
        FixedDelay::default(),
        RobustConfig {
            max_received: 64,
            ..RobustConfig::default()
        },
    );
    sub.subscribe("p/#", QoS::AtLeastOnce).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(
        sub.poll(Duration::from_millis(100)).unwrap(),
        Some(Event::Subscribed { .. })
    ) {
        assert!(Instant::now() < deadline, "no SUBACK");
    }
    let mut publisher: simple::Client =
        simple::Client::with_config(config(broker.port(), "poll-only-pub"));
    publisher.connect(true).unwrap();
    for n in 0..TOTAL {
        publisher
            .publish_nowait("p/x", n.to_string().as_bytes(), QoS::AtLeastOnce, false)
            .unwrap();
        if n % 100 == 99 {
            publisher
                .wait_all_published(Duration::from_secs(10))
                .unwrap();
        }
    }
    publisher
        .wait_all_published(Duration::from_secs(10))
        .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < TOTAL && Instant::now() < deadline {
        if let Some(Event::Message(m)) = sub.poll(Duration::from_millis(500)).unwrap() {
            got.push(String::from_utf8(m.payload).unwrap());
        }
    }
    let expected: Vec<String> = (0..TOTAL).map(|n| n.to_string()).collect();
    assert_eq!(got.len(), TOTAL);
    assert_eq!(got, expected);
    assert_eq!(sub.stats().received, TOTAL as u64);
}
