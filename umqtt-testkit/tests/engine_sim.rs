//! The robust engine (`umqtt_core::robust`) joined to the simulated broker on a virtual clock:
//! reconnecting, delivery contracts, subscriptions and outages, deterministic and in
//! milliseconds of wall time. Every scenario counts events; none sleeps.

use std::time::Duration;

use umqtt_core::packet::{ConnectReturnCode, QoS};
use umqtt_core::robust::{
    BatteryAware, Deadline, EngineConfig, Event, ExponentialBackoff, FailureKind, FixedDelay,
    LinkError, NoRetry, ReconnectPolicy,
};
use umqtt_core::session::SessionConfig;
use umqtt_core::Instant;
use umqtt_testkit::sim::device::{run, Device};
use umqtt_testkit::sim::{ServerMode, SimNet};

const SECOND: u64 = 1000;
const HOUR: u64 = 3600 * SECOND;

fn at(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

fn config(client_id: &str) -> EngineConfig {
    let mut config = EngineConfig::new(SessionConfig {
        client_id: client_id.to_string(),
        keep_alive: 10,
        ..SessionConfig::default()
    });
    config.servers = 1;
    config
}

fn payloads(net: &SimNet, topic: &str) -> Vec<Vec<u8>> {
    net.broker(0)
        .accepted()
        .iter()
        .filter(|a| a.topic == topic)
        .map(|a| a.payload.clone())
        .collect()
}

#[test]
fn guaranteed_messages_survive_a_restart_and_are_delivered_once_each() {
    let mut net = SimNet::new(1);
    let mut alarm = Device::new(config("alarm"), BatteryAware::new(), 7);
    run(&mut net, &mut [&mut alarm], 0, SECOND);
    assert!(alarm.engine.is_connected());
    for n in 0..50 {
        alarm
            .engine
            .publish(
                at(SECOND),
                "alarm",
                format!("{n}").as_bytes(),
                QoS::ExactlyOnce,
                false,
            )
            .unwrap();
    }
    net.schedule(at(SECOND + 5), |net, now| net.restart(now, 0, true));
    run(&mut net, &mut [&mut alarm], SECOND, 120 * SECOND);
    assert_eq!(alarm.engine.pending(), 0);
    assert_eq!(alarm.count(|e| matches!(e, Event::Delivered { .. })), 50);
    let got = payloads(&net, "alarm");
    let expected: Vec<Vec<u8>> = (0..50).map(|n| format!("{n}").into_bytes()).collect();
    assert_eq!(got, expected, "each exactly once, in order");
}

/// Item 2: a subscriber under a policy that gives up on messages keeps its link.
#[test]
fn subscribers_stay_connected_under_no_retry_and_deadline() {
    let policies: [(&str, Box<dyn ReconnectPolicy>); 2] = [
        ("no-retry", Box::new(NoRetry)),
        ("deadline", Box::new(Deadline::new(Duration::from_secs(15)))),
    ];
    for (name, policy) in policies {
        let mut net = SimNet::new(2);
        let mut sub = Device::new(config(name), policy, 7);
        sub.engine
            .subscribe(at(0), "cmd/#", QoS::AtLeastOnce)
            .unwrap();
        run(&mut net, &mut [&mut sub], 0, SECOND);
        net.set_mode(at(SECOND), 0, ServerMode::Down);
        run(&mut net, &mut [&mut sub], SECOND, 60 * SECOND);
        net.set_mode(at(60 * SECOND), 0, ServerMode::Up);
        run(&mut net, &mut [&mut sub], 60 * SECOND, 200 * SECOND);
        assert!(sub.engine.is_connected(), "{name}: deaf after the outage");
        net.broker_mut(0)
            .publish(at(200 * SECOND), "cmd/x", b"on", QoS::AtLeastOnce, false);
        run(&mut net, &mut [&mut sub], 200 * SECOND, 201 * SECOND);
        assert_eq!(
            sub.count(|e| matches!(e, Event::Message(m) if m.payload == b"on")),
            1,
            "{name}"
        );
        assert_eq!(
            sub.count(|e| matches!(e, Event::GaveUp { .. })),
            0,
            "{name}"
        );
    }
}

/// Items 3 and 9: a QoS 2 message past PUBREC whose deadline passes while the link is down is
/// neither expired (the broker holds it) nor spun on; it completes once the link is back.
#[test]
fn qos2_past_pubrec_completes_instead_of_expiring_or_spinning() {
    let mut net = SimNet::new(3);
    net.set_latency(Duration::from_millis(100));
    let mut button = Device::new(config("button"), Deadline::new(Duration::from_secs(5)), 7);
    run(&mut net, &mut [&mut button], 0, SECOND);
    assert!(button.engine.is_connected());
    let id = button
        .engine
        .publish(at(SECOND), "press", b"1", QoS::ExactlyOnce, false)
        .unwrap();
    // PUBLISH reaches the broker at +100 ms, PUBREC is back at +200 ms; the PUBREL sent then
    // falls into the black hole.
    net.schedule(at(SECOND + 250), |net, now| {
        net.set_mode(now, 0, ServerMode::BlackHole)
    });
    run(&mut net, &mut [&mut button], SECOND, 30 * SECOND);
    assert!(!button.engine.is_connected());
    assert_eq!(button.count(|e| matches!(e, Event::Expired { .. })), 0);
    net.set_mode(at(30 * SECOND), 0, ServerMode::Up);
    run(&mut net, &mut [&mut button], 30 * SECOND, 120 * SECOND);
    assert_eq!(button.count(|e| *e == Event::Delivered { id }), 1);
    assert_eq!(payloads(&net, "press"), vec![b"1".to_vec()]);
}

/// Item 4: unsubscribing while offline reaches a persistent session at the next connection.
#[test]
fn unsubscribe_while_offline_reaches_the_broker() {
    let mut net = SimNet::new(4);
    let mut sub = Device::new(config("unsub"), FixedDelay::default(), 7);
    sub.engine
        .subscribe(at(0), "a/#", QoS::AtLeastOnce)
        .unwrap();
    run(&mut net, &mut [&mut sub], 0, SECOND);
    assert_eq!(net.broker(0).subscriptions("unsub").len(), 1);
    net.set_mode(at(SECOND), 0, ServerMode::Down);
    run(&mut net, &mut [&mut sub], SECOND, 5 * SECOND);
    sub.engine.unsubscribe(at(5 * SECOND), "a/#").unwrap();
    net.set_mode(at(5 * SECOND), 0, ServerMode::Up);
    run(&mut net, &mut [&mut sub], 5 * SECOND, 20 * SECOND);
    assert!(sub.engine.is_connected());
    assert!(net.broker(0).subscriptions("unsub").is_empty());
    assert_eq!(sub.count(|e| matches!(e, Event::Unsubscribed { .. })), 1);
}

/// Item 5: a subscription the broker refuses when it is renewed is reported.
#[test]
fn refused_renewal_is_reported() {
    let mut net = SimNet::new(5);
    let mut sub = Device::new(config("renew"), FixedDelay::default(), 7);
    sub.engine
        .subscribe(at(0), "x/#", QoS::AtLeastOnce)
        .unwrap();
    run(&mut net, &mut [&mut sub], 0, SECOND);
    net.broker_mut(0).refuse_subscription("x/#", true);
    net.restart(at(SECOND), 0, false);
    run(&mut net, &mut [&mut sub], SECOND, 20 * SECOND);
    assert_eq!(sub.count(|e| matches!(e, Event::SessionLost { .. })), 1);
    assert_eq!(
        sub.count(|e| matches!(e, Event::SubscriptionRefused { filter } if filter == "x/#")),
        1
    );
    assert_eq!(sub.engine.subscriptions().count(), 0);
}

/// Item 6: incoming messages share the event stream; past the bound, reading pauses (no
/// error, nothing lost) until the application takes them.
#[test]
fn received_messages_are_bounded_and_none_is_lost() {
    let mut net = SimNet::new(6);
    let mut config = config("reader");
    config.max_received = 100;
    let mut sub = Device::new(config, FixedDelay::default(), 7);
    sub.consume = false;
    sub.engine
        .subscribe(at(0), "m/#", QoS::AtLeastOnce)
        .unwrap();
    run(&mut net, &mut [&mut sub], 0, SECOND);
    for n in 0..2000 {
        net.broker_mut(0).publish(
            at(SECOND),
            "m/x",
            format!("{n}").as_bytes(),
            QoS::AtLeastOnce,
            false,
        );
    }
    run(&mut net, &mut [&mut sub], SECOND, 2 * SECOND);
    let held = sub.count(|e| matches!(e, Event::Message(_)));
    assert_eq!(held, 100, "reading paused at the bound");
    assert!(!sub.engine.wants_read());
    // The application catches up.
    for _ in 0..held {
        sub.engine.handle_consumed(at(2 * SECOND), 4);
    }
    sub.consume = true;
    run(&mut net, &mut [&mut sub], 2 * SECOND, 60 * SECOND);
    let got: Vec<Vec<u8>> = sub
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Message(m) => Some(m.payload.clone()),
            _ => None,
        })
        .collect();
    let expected: Vec<Vec<u8>> = (0..2000).map(|n| format!("{n}").into_bytes()).collect();
    assert_eq!(got, expected);
    assert!(sub.engine.is_connected(), "keepalive survived the pause");
}

/// Items 7 and 8: one deadline bounds the whole attempt (a black-holed open), and events carry
/// typed errors.
#[test]
fn one_deadline_bounds_an_attempt_and_errors_are_typed() {
    let mut net = SimNet::new(8);
    net.set_mode(at(0), 0, ServerMode::BlackHole);
    let mut device = Device::new(config("bh"), FixedDelay::default(), 7);
    run(&mut net, &mut [&mut device], 0, 11 * SECOND);
    let failures: Vec<(u64, LinkError<String>)> = device
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::AttemptFailed { error, kind, .. } => {
                assert_eq!(*kind, FailureKind::Timeout);
                Some((*t, error.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failures, vec![(10 * SECOND, LinkError::AttemptTimeout)]);

    let mut net = SimNet::new(8);
    net.broker_mut(0)
        .set_refuse_connect(Some(ConnectReturnCode::NotAuthorized));
    let mut device = Device::new(config("refused"), FixedDelay::default(), 7);
    run(&mut net, &mut [&mut device], 0, 60 * SECOND);
    assert!(device.events.iter().any(|(_, e)| matches!(
        e,
        Event::AttemptFailed {
            error: LinkError::Closed(umqtt_core::session::CloseReason::Refused(
                ConnectReturnCode::NotAuthorized
            )),
            ..
        }
    )));
    assert_eq!(
        device.engine.stats().attempts,
        1,
        "no retry loop on a refusal"
    );
}

/// Item 1's rule on the core: a publish while an attempt hangs returns at once and waits.
#[test]
fn button_press_expires_at_its_deadline_and_attempts_stop() {
    let mut net = SimNet::new(9);
    net.set_mode(at(0), 0, ServerMode::Refuse);
    let mut button = Device::new(config("btn"), Deadline::new(Duration::from_secs(15)), 7);
    let id = button
        .engine
        .publish(at(0), "press", b"1", QoS::AtLeastOnce, false)
        .unwrap();
    let end = run(&mut net, &mut [&mut button], 0, 600 * SECOND);
    let expired: Vec<u64> = button
        .events
        .iter()
        .filter(|(_, e)| *e == Event::Expired { id })
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(expired, vec![15 * SECOND]);
    assert_eq!(button.attempts_between(16 * SECOND, end), 0);
    assert!(button.engine.stats().attempts >= 5);
}

#[test]
fn battery_aware_six_hour_outage_costs_few_attempts_and_a_nudge_delivers_at_once() {
    let started = std::time::Instant::now();
    let mut net = SimNet::new(10);
    net.set_mode(at(0), 0, ServerMode::Refuse);
    let mut alarm = Device::new(config("alarm"), BatteryAware::new(), 7);
    let id = alarm
        .engine
        .publish(at(0), "alarm", b"window", QoS::AtLeastOnce, false)
        .unwrap();
    run(&mut net, &mut [&mut alarm], 0, 6 * HOUR);
    let per_hour: Vec<usize> = (0..6)
        .map(|h| alarm.attempts_between(h * HOUR, (h + 1) * HOUR))
        .collect();
    assert!(per_hour.windows(2).all(|w| w[1] <= w[0]), "{per_hour:?}");
    assert!(per_hour.iter().sum::<usize>() < 150, "{per_hour:?}");
    assert!(per_hour[5] >= 1, "never gives up: {per_hour:?}");
    // The network is back; the application says so.
    net.set_mode(at(6 * HOUR), 0, ServerMode::Up);
    alarm.engine.nudge(at(6 * HOUR));
    run(
        &mut net,
        &mut [&mut alarm],
        6 * HOUR,
        6 * HOUR + 10 * SECOND,
    );
    let delivered_at = alarm
        .events
        .iter()
        .find(|(_, e)| *e == Event::Delivered { id })
        .map(|(t, _)| *t)
        .expect("delivered after the nudge");
    assert!(delivered_at - 6 * HOUR < SECOND, "{delivered_at}");
    println!(
        "6 h outage: attempts per hour {per_hour:?}, delivered {} ms after the nudge, {:?} wall",
        delivered_at - 6 * HOUR,
        started.elapsed()
    );
}

#[test]
fn backoff_spacing_and_failover_to_the_second_server() {
    let mut net = SimNet::with_servers(11, 2);
    net.set_mode(at(0), 0, ServerMode::Refuse);
    let mut config = config("failover");
    config.servers = 2;
    let policy = ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(1))
        .with_jitter(0.0);
    let mut device = Device::new(config, policy, 7);
    run(&mut net, &mut [&mut device], 0, 5 * SECOND);
    assert!(device.engine.is_connected());
    assert_eq!(device.engine.connected_server(), Some(1));
    assert_eq!(net.broker(1).connects().len(), 1);

    // Both down: the delays double up to the cap.
    net.set_mode(at(5 * SECOND), 1, ServerMode::Down);
    run(&mut net, &mut [&mut device], 5 * SECOND, 20 * SECOND);
    let delays: Vec<u128> = device
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::RetryScheduled { delay } if *t >= 5 * SECOND => Some(delay.as_millis()),
            _ => None,
        })
        .take(6)
        .collect();
    assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
}

#[test]
fn half_open_link_is_detected_within_one_and_a_half_keepalives() {
    let mut net = SimNet::new(12);
    let mut device = Device::new(config("halfopen"), FixedDelay::default(), 7);
    run(&mut net, &mut [&mut device], 0, SECOND);
    net.set_mode(at(SECOND), 0, ServerMode::BlackHole);
    run(&mut net, &mut [&mut device], SECOND, 60 * SECOND);
    let lost_at = device
        .events
        .iter()
        .find(|(_, e)| {
            matches!(
                e,
                Event::Disconnected {
                    kind: FailureKind::KeepAliveExpired,
                    ..
                }
            )
        })
        .map(|(t, _)| *t)
        .expect("dead link detected");
    // Keepalive 10 s: silence since ~0 s, detected by 15 s after the last packet.
    assert!(lost_at <= 16 * SECOND, "{lost_at}");
}

/// Manual acknowledgement: nothing is acknowledged before the application says so, acks go
/// out in arrival order, and what was never acknowledged is redelivered after a reconnect.
#[test]
fn manual_ack_holds_acknowledgements_until_the_application_is_done() {
    let mut net = SimNet::new(13);
    let mut config = config("manual");
    config.manual_ack = true;
    let mut sub = Device::new(config, FixedDelay::default(), 7);
    sub.engine
        .subscribe(at(0), "m/#", QoS::ExactlyOnce)
        .unwrap();
    run(&mut net, &mut [&mut sub], 0, SECOND);
    let broker = net.broker_mut(0);
    broker.publish(at(SECOND), "m/1", b"a", QoS::AtLeastOnce, false);
    broker.publish(at(SECOND), "m/2", b"b", QoS::AtLeastOnce, false);
    broker.publish(at(SECOND), "m/3", b"c", QoS::ExactlyOnce, false);
    run(&mut net, &mut [&mut sub], SECOND, 2 * SECOND);
    let messages = |sub: &Device| -> Vec<umqtt_core::message::Message> {
        sub.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    };
    let first = messages(&sub);
    assert_eq!(first.len(), 3);
    assert_eq!(
        net.broker(0).in_flight("manual"),
        3,
        "nothing acknowledged yet"
    );

    // The application crashes before processing: the link goes, the broker redelivers the
    // QoS 1 messages; the QoS 2 one is not reported twice.
    net.reset(at(2 * SECOND), 0);
    run(&mut net, &mut [&mut sub], 2 * SECOND, 10 * SECOND);
    assert!(sub.engine.is_connected());
    let all = messages(&sub);
    assert_eq!(all.len(), 5, "{all:?}");
    assert!(all[3].dup && all[4].dup);

    // Acknowledged out of order: nothing goes out until the first is done.
    let now = at(10 * SECOND);
    assert!(sub.engine.ack(now, &all[4]));
    sub.service(&mut net, now);
    run(&mut net, &mut [&mut sub], 10 * SECOND, 11 * SECOND);
    assert_eq!(net.broker(0).in_flight("manual"), 3);
    assert!(sub.engine.ack(at(11 * SECOND), &all[3]));
    assert!(sub.engine.ack(at(11 * SECOND), &all[2]));
    assert!(
        !sub.engine.ack(at(11 * SECOND), &all[2]),
        "acknowledged once"
    );
    run(&mut net, &mut [&mut sub], 11 * SECOND, 12 * SECOND);
    assert_eq!(net.broker(0).in_flight("manual"), 0, "all acknowledged");
    // The first delivery's QoS 1 acks were forgotten with their connection.
    assert!(!sub.engine.ack(at(12 * SECOND), &all[0]));
}

/// `disconnect` is the application's doing: DISCONNECT goes out (no will), no failure is
/// reported to the policy and nothing reconnects until new work.
#[test]
fn disconnect_is_not_a_failure_and_new_work_reconnects() {
    let mut net = SimNet::new(14);
    let mut device = Device::new(config("bye"), FixedDelay::default(), 7);
    run(&mut net, &mut [&mut device], 0, SECOND);
    device.engine.disconnect(at(SECOND));
    run(&mut net, &mut [&mut device], SECOND, 60 * SECOND);
    assert!(!device.engine.is_connected());
    assert_eq!(
        device.count(|e| matches!(
            e,
            Event::Disconnected { .. } | Event::RetryScheduled { .. } | Event::AttemptFailed { .. }
        )),
        0,
        "{:?}",
        device.events
    );
    assert_eq!(device.engine.stats().attempts, 1);
    assert!(!net.broker(0).is_connected("bye"));
    assert!(
        net.broker(0)
            .received("bye")
            .iter()
            .any(|(_, t)| *t == umqtt_core::packet::PacketType::Disconnect),
        "DISCONNECT went out"
    );
    let id = device
        .engine
        .publish(at(60 * SECOND), "t", b"x", QoS::AtLeastOnce, false)
        .unwrap();
    run(&mut net, &mut [&mut device], 60 * SECOND, 61 * SECOND);
    assert_eq!(device.count(|e| *e == Event::Delivered { id }), 1);
    assert_eq!(device.engine.stats().attempts, 2);
}

/// Found by the engine fuzz target: at the receive bound the engine still sees the session
/// close (keepalive), and after the application takes a message, input already received is
/// processed without waiting for more bytes.
#[test]
fn receive_bound_never_strands_input_or_hides_a_dead_link() {
    let mut net = SimNet::new(15);
    let mut config = config("bound");
    config.max_received = 1;
    config.session.keep_alive = 2;
    let mut sub = Device::new(config, FixedDelay::default(), 7);
    sub.consume = false;
    sub.engine.subscribe(at(0), "b/#", QoS::AtMostOnce).unwrap();
    run(&mut net, &mut [&mut sub], 0, SECOND);
    for n in 0..3 {
        net.broker_mut(0).publish(
            at(SECOND),
            "b/x",
            format!("{n}").as_bytes(),
            QoS::AtMostOnce,
            false,
        );
    }
    run(&mut net, &mut [&mut sub], SECOND, 2 * SECOND);
    assert_eq!(sub.count(|e| matches!(e, Event::Message(_))), 1);
    // The application takes the first: the second, already received, comes at once.
    sub.engine.handle_consumed(at(2 * SECOND), 1);
    sub.service(&mut net, at(2 * SECOND));
    assert_eq!(sub.count(|e| matches!(e, Event::Message(_))), 2);
    // Held at the bound past the keepalive: the link dies, and the engine says so.
    run(&mut net, &mut [&mut sub], 2 * SECOND, 30 * SECOND);
    assert!(
        sub.count(|e| matches!(e, Event::Disconnected { .. })) >= 1,
        "{:?}",
        sub.events
    );
    assert!(!sub.engine.is_connected() || sub.engine.session().is_connected());
}

/// Found by the engine fuzz target: a QoS 0 message handed to the session but not written
/// when the link broke is sent again, whole, on the next connection.
#[test]
fn unwritten_qos0_goes_out_whole_after_a_lost_link() {
    let mut net = SimNet::new(16);
    let mut device = Device::new(config("q0"), FixedDelay::default(), 7);
    run(&mut net, &mut [&mut device], 0, SECOND);
    // Published while connected, then the link breaks before the driver writes.
    let id = device
        .engine
        .publish_with(
            at(SECOND),
            "q0/t",
            b"reading",
            QoS::AtMostOnce,
            false,
            umqtt_core::robust::Delivery::Guaranteed,
        )
        .unwrap();
    device.engine.handle_connection_lost(
        at(SECOND),
        FailureKind::ConnectionLost,
        "cut".to_string(),
    );
    if let Some(conn) = device.conn.take() {
        net.close(at(SECOND), conn);
    }
    run(&mut net, &mut [&mut device], SECOND, 10 * SECOND);
    assert_eq!(device.count(|e| *e == Event::Delivered { id }), 1);
    assert_eq!(payloads(&net, "q0/t"), vec![b"reading".to_vec()]);
}

/// Found by the engine fuzz target: a durable message dropped as the newest is also
/// forgotten by the outbox.
#[test]
fn durable_message_dropped_as_newest_is_settled_in_the_outbox() {
    let mut config = config("full");
    config.max_queued = 1;
    config.overflow = umqtt_core::robust::Overflow::DropNewest;
    let mut device = Device::new(config, FixedDelay::default(), 7);
    device
        .engine
        .publish_durable(at(0), "t", b"1", QoS::AtLeastOnce, false)
        .unwrap();
    let dropped = device
        .engine
        .publish_durable(at(0), "t", b"2", QoS::AtLeastOnce, false)
        .unwrap();
    let mut settled = Vec::new();
    while let Some(op) = device.engine.poll_store() {
        if let umqtt_core::robust::StoreOp::Settled { id } = op {
            settled.push(id);
        }
    }
    assert_eq!(settled, vec![dropped]);
}
