//! The robust engine speaking MQTT 5 to the simulated broker on a virtual clock: the broker's
//! Receive Maximum, `Delivery::Within` as Message Expiry Interval, session expiry, refused
//! publishes, and the seed policies' numbers against 3.1.1. Every scenario counts messages and
//! events; none sleeps.

use std::collections::BTreeSet;
use std::time::Duration;

use umqtt_core::packet::{PacketType, ProtocolVersion, QoS, ReasonCode};
use umqtt_core::robust::{
    BatteryAware, Deadline, Delivery, DropReason, EngineConfig, Event, FixedDelay, LinkError,
    NoRetry, ReconnectPolicy,
};
use umqtt_core::session::{CloseReason, SessionConfig};
use umqtt_core::storage::{Fixed, Heap, Storage};
use umqtt_core::Instant;
use umqtt_sim::device::{run, Device};
use umqtt_sim::{ServerMode, SimNet};

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

fn at(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

fn config(client_id: &str, protocol: ProtocolVersion) -> EngineConfig {
    let mut config = EngineConfig::new(SessionConfig {
        client_id: client_id.to_string(),
        keep_alive: 10,
        protocol,
        ..SessionConfig::default()
    });
    config.servers = 1;
    config
}

fn v5(client_id: &str) -> EngineConfig {
    config(client_id, ProtocolVersion::V5)
}

/// Payloads the broker accepted on `topic`, duplicates removed.
fn accepted(net: &SimNet, topic: &str) -> BTreeSet<Vec<u8>> {
    net.broker(0)
        .accepted()
        .iter()
        .filter(|a| a.topic == topic)
        .map(|a| a.payload.clone())
        .collect()
}

/// DISCONNECTs the broker sent the device with `code`.
fn disconnected_with(device: &Device, code: ReasonCode) -> usize {
    device.count(|e| {
        matches!(
            e,
            Event::Disconnected {
                error: LinkError::Closed(CloseReason::ServerDisconnected(c)),
                ..
            } if *c == code
        )
    })
}

/// (a) The broker announces Receive Maximum 2; a burst of 50 QoS 1 (then QoS 2) messages goes
/// through a restart that keeps sessions, a cut, and a 30 s outage. The broker counts, from the
/// client's own view, the publications in flight on each connection: never more than 2, no
/// DISCONNECT 0x93, nothing lost.
#[test]
fn receive_maximum_caps_the_window_through_outages() {
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let mut net = SimNet::new(11);
        net.set_latency(Duration::from_millis(20));
        net.broker_mut(0).set_receive_maximum(2);
        let mut device = Device::new(v5("burst"), BatteryAware::new(), 7);
        run(&mut net, &mut [&mut device], 0, SECOND);
        assert!(device.engine.is_connected());
        assert_eq!(device.engine.session().broker_limits().receive_maximum, 2);
        let expected: BTreeSet<Vec<u8>> = (0..50).map(|n| format!("{n}").into_bytes()).collect();
        for payload in &expected {
            device
                .engine
                .publish(at(SECOND), "burst", payload, qos, false)
                .unwrap();
        }
        // Each while messages are in flight (reconnections take about a second).
        net.schedule(at(SECOND + 150), |net, now| net.restart(now, 0, true));
        net.schedule(at(2400), |net, now| net.cut(now, 0));
        net.schedule(at(3600), |net, now| net.set_mode(now, 0, ServerMode::Down));
        net.schedule(at(31 * SECOND), |net, now| {
            net.set_mode(now, 0, ServerMode::Up)
        });
        run(&mut net, &mut [&mut device], SECOND, 5 * MINUTE);

        let broker = net.broker(0);
        assert!(
            broker.protocol_violations().is_empty(),
            "{qos:?}: {:?}",
            broker.protocol_violations()
        );
        assert_eq!(
            disconnected_with(&device, ReasonCode::ReceiveMaximumExceeded),
            0
        );
        assert_eq!(
            broker.in_flight_peak("burst"),
            2,
            "{qos:?}: the window was used, never passed"
        );
        assert_eq!(accepted(&net, "burst"), expected, "{qos:?}: nothing lost");
        assert_eq!(
            device.count(|e| matches!(e, Event::Delivered { .. })),
            50,
            "{qos:?}"
        );
        assert_eq!(device.engine.pending(), 0);
        // The outages happened while messages were in flight.
        assert!(
            device.count(|e| matches!(e, Event::Disconnected { .. })) >= 3,
            "{qos:?}"
        );
        assert!(
            device
                .events
                .iter()
                .filter(|(_, e)| matches!(e, Event::Delivered { .. }))
                .any(|(t, _)| *t > 31 * SECOND),
            "{qos:?}: some messages waited for the end of the outage"
        );
    }
}

/// The count (a) relies on is real: a 3.1.1 client (which is told no Receive Maximum) keeps its
/// own window of 20 in flight on the same broker; the broker counts it and, the rule being MQTT
/// 5's, lets it be.
#[test]
fn the_broker_counts_a_wider_window_it_does_not_announce_to_3_1_1() {
    let mut net = SimNet::new(12);
    net.set_latency(Duration::from_millis(20));
    net.broker_mut(0).set_receive_maximum(2);
    let mut device = Device::new(
        config("wide", ProtocolVersion::V311),
        BatteryAware::new(),
        7,
    );
    run(&mut net, &mut [&mut device], 0, SECOND);
    for n in 0..50 {
        device
            .engine
            .publish(
                at(SECOND),
                "wide",
                format!("{n}").as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .unwrap();
    }
    run(&mut net, &mut [&mut device], SECOND, 10 * SECOND);
    assert_eq!(net.broker(0).in_flight_peak("wide"), 20);
    assert!(net.broker(0).protocol_violations().is_empty());
    assert_eq!(accepted(&net, "wide").len(), 50);
}

/// A subscriber with a persistent MQTT 5 session, offline for a while.
fn subscriber(net: &mut SimNet, name: &str, from: u64) -> Device {
    let mut sub = Device::new(v5(name), FixedDelay::default(), 3);
    sub.engine
        .subscribe(at(from), "news/#", QoS::AtLeastOnce)
        .unwrap();
    run(net, &mut [&mut sub], from, from + SECOND);
    assert!(sub.engine.is_connected());
    sub
}

/// Received messages on `topic` and the Message Expiry Interval each carried.
fn received(device: &Device) -> Vec<(Vec<u8>, Option<u32>)> {
    device
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Message(m) => {
                Some((m.payload.clone(), m.properties().message_expiry_interval()))
            }
            _ => None,
        })
        .collect()
}

/// (b) A `Delivery::Within(10 s)` message travels with Message Expiry Interval 10; queued at the
/// broker for an offline subscriber it expires there after 10 s of virtual time, while one
/// whose subscriber returns within 10 s is delivered with the interval decremented by the
/// time it waited.
#[test]
fn within_expires_at_the_broker_for_an_offline_subscriber() {
    let mut net = SimNet::new(13);
    let mut publisher = Device::new(v5("press"), Deadline::new(Duration::from_secs(10)), 5);
    run(&mut net, &mut [&mut publisher], 0, SECOND);
    let mut sub = subscriber(&mut net, "screen", SECOND);
    let within = Delivery::Within(Duration::from_secs(10));

    // Late: the subscriber is away for 15 s.
    sub.engine.disconnect(at(2 * SECOND));
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        2 * SECOND,
        3 * SECOND,
    );
    assert!(!net.broker(0).is_connected("screen"));
    publisher
        .engine
        .publish_with(
            at(3 * SECOND),
            "news/late",
            b"late",
            QoS::AtLeastOnce,
            false,
            within,
        )
        .unwrap();
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        3 * SECOND,
        18 * SECOND,
    );
    assert_eq!(
        net.broker(0).queued("screen"),
        1,
        "held for the offline subscriber"
    );
    sub.engine.connect(at(18 * SECOND));
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        18 * SECOND,
        20 * SECOND,
    );
    assert!(sub.engine.is_connected());
    assert_eq!(net.broker(0).expired("screen"), 1, "expired at the broker");
    assert!(received(&sub).is_empty(), "{:?}", received(&sub));
    assert_eq!(net.broker(0).delivered("screen").len(), 0);

    // In time: away for 4 s.
    sub.engine.disconnect(at(20 * SECOND));
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        20 * SECOND,
        21 * SECOND,
    );
    publisher
        .engine
        .publish_with(
            at(21 * SECOND),
            "news/fresh",
            b"fresh",
            QoS::AtLeastOnce,
            false,
            within,
        )
        .unwrap();
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        21 * SECOND,
        25 * SECOND,
    );
    sub.engine.connect(at(25 * SECOND));
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        25 * SECOND,
        27 * SECOND,
    );
    // Sent at 21 s with 10 s left (the engine rounds up what is left of the deadline); it
    // reached the broker at 21.001 s and left it at 25.003 s (open, CONNECT, 1 ms each way):
    // 4.002 s waited, 5.998 s left, carried as 6 (whole seconds, rounded up).
    assert_eq!(received(&sub), vec![(b"fresh".to_vec(), Some(6))]);
    let delivered = net.broker(0).delivered("screen");
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].message_expiry_interval, Some(6));
    assert_eq!(delivered[0].at, at(25 * SECOND + 3));
    assert_eq!(net.broker(0).expired("screen"), 1);
    // Both reached the broker in time: the publisher's contract was kept both times.
    assert_eq!(publisher.count(|e| matches!(e, Event::Delivered { .. })), 2);
    assert_eq!(publisher.count(|e| matches!(e, Event::Expired { .. })), 0);
}

/// The same late message from a 3.1.1 publisher carries no expiry: the broker delivers it 15 s
/// late. (What (b) buys.)
#[test]
fn a_3_1_1_publisher_cannot_make_the_broker_expire_a_message() {
    let mut net = SimNet::new(14);
    let mut publisher = Device::new(
        config("press", ProtocolVersion::V311),
        Deadline::new(Duration::from_secs(10)),
        5,
    );
    run(&mut net, &mut [&mut publisher], 0, SECOND);
    let mut sub = subscriber(&mut net, "screen", SECOND);
    sub.engine.disconnect(at(2 * SECOND));
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        2 * SECOND,
        3 * SECOND,
    );
    let within = Delivery::Within(Duration::from_secs(10));
    publisher
        .engine
        .publish_with(
            at(3 * SECOND),
            "news/late",
            b"late",
            QoS::AtLeastOnce,
            false,
            within,
        )
        .unwrap();
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        3 * SECOND,
        18 * SECOND,
    );
    sub.engine.connect(at(18 * SECOND));
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        18 * SECOND,
        20 * SECOND,
    );
    assert_eq!(received(&sub), vec![(b"late".to_vec(), None)]);
    assert_eq!(net.broker(0).expired("screen"), 0);
}

/// (c) A persistent MQTT 5 session with Session Expiry Interval 60 s: resumed after a 30 s
/// outage (session present, no new SUBSCRIBE, messages queued meanwhile delivered), gone after
/// a 120 s one (session lost, the engine subscribes again) — and no guaranteed message is lost
/// either way.
#[test]
fn session_expiry_decides_between_resume_and_resubscribe() {
    let mut net = SimNet::new(15);
    let mut config = v5("meter");
    config.session.v5.session_expiry_interval = Some(60);
    let mut device = Device::new(config, BatteryAware::new(), 9);
    device
        .engine
        .subscribe(at(0), "cmd/#", QoS::AtLeastOnce)
        .unwrap();
    run(&mut net, &mut [&mut device], 0, SECOND);
    assert!(device.engine.is_connected());
    assert_eq!(net.broker(0).connects()[0].session_expiry_interval, 60);
    let subscribes = |net: &SimNet| {
        net.broker(0)
            .received("meter")
            .iter()
            .filter(|(_, t)| *t == PacketType::Subscribe)
            .count()
    };
    assert_eq!(subscribes(&net), 1);
    let mut published = BTreeSet::new();
    let mut publish = |device: &mut Device, now: u64, n: u32| {
        let payload = format!("{n}").into_bytes();
        device
            .engine
            .publish_with(
                at(now),
                "meter",
                &payload,
                QoS::AtLeastOnce,
                false,
                Delivery::Guaranteed,
            )
            .unwrap();
        published.insert(payload);
    };

    // 30 s outage: the session survives.
    net.set_mode(at(10 * SECOND), 0, ServerMode::Down);
    publish(&mut device, 10 * SECOND, 1);
    run(&mut net, &mut [&mut device], 10 * SECOND, 20 * SECOND);
    net.broker_mut(0)
        .publish(at(20 * SECOND), "cmd/a", b"kept", QoS::AtLeastOnce, false);
    publish(&mut device, 20 * SECOND, 2);
    run(&mut net, &mut [&mut device], 20 * SECOND, 40 * SECOND);
    assert!(net.broker(0).has_session("meter"), "30 s < 60 s");
    net.set_mode(at(40 * SECOND), 0, ServerMode::Up);
    run(&mut net, &mut [&mut device], 40 * SECOND, 3 * MINUTE);
    assert!(device.engine.is_connected());
    assert_eq!(
        device.count(|e| matches!(
            e,
            Event::Connected {
                session_present: true,
                ..
            }
        )),
        1
    );
    assert_eq!(device.count(|e| matches!(e, Event::SessionLost { .. })), 0);
    assert_eq!(subscribes(&net), 1, "resumed: nothing to renew");
    assert_eq!(
        device.count(|e| matches!(e, Event::Message(m) if m.payload == b"kept")),
        1
    );

    // 120 s outage: the session expires at the broker 60 s after the link went down.
    net.set_mode(at(3 * MINUTE), 0, ServerMode::Down);
    publish(&mut device, 3 * MINUTE, 3);
    run(
        &mut net,
        &mut [&mut device],
        3 * MINUTE,
        3 * MINUTE + 59 * SECOND,
    );
    assert!(net.broker(0).has_session("meter"));
    run(
        &mut net,
        &mut [&mut device],
        3 * MINUTE + 59 * SECOND,
        3 * MINUTE + 61 * SECOND,
    );
    assert!(
        !net.broker(0).has_session("meter"),
        "expired on virtual time"
    );
    net.broker_mut(0)
        .publish(at(4 * MINUTE), "cmd/a", b"lost", QoS::AtLeastOnce, false);
    publish(&mut device, 4 * MINUTE, 4);
    net.set_mode(at(5 * MINUTE), 0, ServerMode::Up);
    run(
        &mut net,
        &mut [&mut device],
        3 * MINUTE + 61 * SECOND,
        8 * MINUTE,
    );
    assert!(device.engine.is_connected());
    assert_eq!(device.count(|e| matches!(e, Event::SessionLost { .. })), 1);
    assert_eq!(subscribes(&net), 2, "the engine subscribed again");
    assert_eq!(
        net.broker(0).subscriptions("meter"),
        vec![("cmd/#".to_string(), QoS::AtLeastOnce)]
    );
    assert_eq!(
        device.count(|e| matches!(e, Event::Message(m) if m.payload == b"lost")),
        0,
        "queued in the expired session"
    );
    // Guaranteed messages: every one arrived.
    assert_eq!(accepted(&net, "meter"), published);
    assert_eq!(device.engine.pending(), 0);
    // And the renewed subscription works.
    net.broker_mut(0)
        .publish(at(8 * MINUTE), "cmd/b", b"after", QoS::AtLeastOnce, false);
    run(
        &mut net,
        &mut [&mut device],
        8 * MINUTE,
        8 * MINUTE + SECOND,
    );
    assert_eq!(
        device.count(|e| matches!(e, Event::Message(m) if m.payload == b"after")),
        1
    );
}

/// The broker may shorten the session expiry the client asked for (here: the engine's
/// default "never" for a persistent session, capped at 30 s); the engine then finds the
/// session gone after a longer outage, and renews its subscription.
#[test]
fn a_session_expiry_capped_by_the_broker_is_honoured() {
    let mut net = SimNet::new(16);
    net.broker_mut(0).set_max_session_expiry(Some(30));
    let mut device = Device::new(v5("capped"), FixedDelay::default(), 9);
    device
        .engine
        .subscribe(at(0), "cmd/#", QoS::AtLeastOnce)
        .unwrap();
    run(&mut net, &mut [&mut device], 0, SECOND);
    assert_eq!(net.broker(0).connects()[0].session_expiry_interval, 30);
    assert_eq!(
        device
            .engine
            .session()
            .broker_limits()
            .session_expiry_interval,
        Some(30)
    );
    net.set_mode(at(SECOND), 0, ServerMode::Down);
    run(&mut net, &mut [&mut device], SECOND, 40 * SECOND);
    net.set_mode(at(40 * SECOND), 0, ServerMode::Up);
    run(&mut net, &mut [&mut device], 40 * SECOND, 2 * MINUTE);
    assert!(device.engine.is_connected());
    assert_eq!(device.count(|e| matches!(e, Event::SessionLost { .. })), 1);
    assert_eq!(net.broker(0).subscriptions("capped").len(), 1);
}

/// (d) The broker refuses two topics with 0x87 (QoS 1 and QoS 2) and 0x97: each message ends
/// `Dropped(Refused(code))` at once — counted, never retried, even across a reconnection —
/// while the others are delivered.
#[test]
fn refused_publishes_end_once_with_the_brokers_reason_code() {
    let mut net = SimNet::new(17);
    net.broker_mut(0)
        .refuse_publish("secret/#", Some(ReasonCode::NotAuthorized));
    net.broker_mut(0)
        .refuse_publish("full", Some(ReasonCode::QuotaExceeded));
    let mut device = Device::new(v5("spy"), BatteryAware::new(), 4);
    run(&mut net, &mut [&mut device], 0, SECOND);
    let guaranteed = Delivery::Guaranteed;
    let publish = |device: &mut Device, topic: &str, qos| {
        device
            .engine
            .publish_with(at(SECOND), topic, b"x", qos, false, guaranteed)
            .unwrap()
    };
    let a = publish(&mut device, "secret/a", QoS::AtLeastOnce);
    let b = publish(&mut device, "secret/b", QoS::ExactlyOnce);
    let c = publish(&mut device, "full", QoS::AtLeastOnce);
    let ok = publish(&mut device, "open", QoS::ExactlyOnce);
    run(&mut net, &mut [&mut device], SECOND, 2 * SECOND);
    net.restart(at(2 * SECOND), 0, true);
    run(&mut net, &mut [&mut device], 2 * SECOND, 10 * MINUTE);

    let refused = |id| {
        device
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Dropped {
                    id: i,
                    reason: DropReason::Refused(code),
                } if *i == id => Some(*code),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(refused(a), vec![ReasonCode::NotAuthorized]);
    assert_eq!(refused(b), vec![ReasonCode::NotAuthorized]);
    assert_eq!(refused(c), vec![ReasonCode::QuotaExceeded]);
    assert_eq!(device.count(|e| *e == Event::Delivered { id: ok }), 1);
    assert_eq!(device.count(|e| matches!(e, Event::Dropped { .. })), 3);
    let stats = device.engine.stats();
    assert_eq!(stats.dropped_by.refused, 3);
    assert_eq!(stats.delivered, 1);
    assert_eq!(device.engine.pending(), 0);
    // Sent once each: the broker refused each exactly once and accepted only the open one.
    let broker = net.broker(0);
    let codes: Vec<(String, ReasonCode)> = broker
        .refused()
        .iter()
        .map(|r| (r.topic.clone(), r.reason_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("secret/a".to_string(), ReasonCode::NotAuthorized),
            ("secret/b".to_string(), ReasonCode::NotAuthorized),
            ("full".to_string(), ReasonCode::QuotaExceeded),
        ]
    );
    assert_eq!(accepted(&net, "open").len(), 1);
    assert!(broker.protocol_violations().is_empty());
    // No PUBREL for the refused QoS 2 message: its flow ended at the failure PUBREC.
    let pubrels = broker
        .received("spy")
        .iter()
        .filter(|(_, t)| *t == PacketType::PubRel)
        .count();
    assert_eq!(pubrels, 1);
}

/// What one run of a seed device counted.
#[derive(Debug, PartialEq, Eq)]
struct Tally {
    attempts: usize,
    opened: u64,
    writes: u64,
    published: usize,
    delivered: usize,
    expired: usize,
    dropped: usize,
    /// Virtual times (ms) of every outcome, in order.
    outcomes: Vec<u64>,
    /// Packets the broker received, by type, in order.
    received: Vec<(u64, PacketType)>,
}

/// One seed device under its policy for a day with outages (`outages`: (start, end) in ms):
/// publishes every `period` ms.
fn seed_day<S: Storage>(
    protocol: ProtocolVersion,
    policy: Box<dyn ReconnectPolicy>,
    period: u64,
    outages: &[(u64, u64)],
) -> Tally {
    let mut net = SimNet::new(21);
    net.set_latency(Duration::from_millis(30));
    let name = "seed";
    let mut device = Device::<S>::with_storage(config(name, protocol), policy, 21);
    // Edges and publish times, merged in time order.
    let mut times: Vec<u64> = (1..)
        .map(|n| n * period)
        .take_while(|t| *t < 24 * HOUR)
        .collect();
    for &(start, end) in outages {
        times.push(start);
        times.push(end);
    }
    times.sort_unstable();
    times.dedup();
    let mut now = 0;
    let mut published = 0;
    for t in times {
        run(&mut net, &mut [&mut device], now, t);
        now = t;
        for &(start, end) in outages {
            if start == t {
                net.set_mode(at(t), 0, ServerMode::Refuse);
                net.reset(at(t), 0);
            }
            if end == t {
                net.set_mode(at(t), 0, ServerMode::Up);
            }
        }
        if t % period == 0 {
            let payload = format!("{t}");
            device
                .engine
                .publish(at(t), name, payload.as_bytes(), QoS::AtLeastOnce, false)
                .unwrap();
            published += 1;
        }
    }
    run(&mut net, &mut [&mut device], now, 25 * HOUR);
    assert!(net
        .broker(0)
        .connects()
        .iter()
        .all(|c| c.protocol == protocol));
    let outcome = |e: &Event<String, S>| {
        matches!(
            e,
            Event::Delivered { .. } | Event::Expired { .. } | Event::Dropped { .. }
        )
    };
    Tally {
        attempts: device.opens.len(),
        opened: device.opened,
        writes: device.writes,
        published,
        delivered: device.count(|e| matches!(e, Event::Delivered { .. })),
        expired: device.count(|e| matches!(e, Event::Expired { .. })),
        dropped: device.count(|e| matches!(e, Event::Dropped { .. })),
        outcomes: device
            .events
            .iter()
            .filter(|(_, e)| outcome(e))
            .map(|(t, _)| *t)
            .collect(),
        received: net
            .broker(0)
            .received(name)
            .iter()
            .map(|(t, p)| (t.as_millis(), *p))
            .collect(),
    }
}

type MakePolicy = fn() -> Box<dyn ReconnectPolicy>;

/// The seed's three devices: name, policy, publish period.
fn seed_devices() -> [(&'static str, MakePolicy, u64); 3] {
    [
        ("temperature", || Box::new(NoRetry), MINUTE),
        (
            "button",
            || Box::new(Deadline::new(Duration::from_secs(15))),
            72 * MINUTE,
        ),
        ("alarm", || Box::new(BatteryAware::new()), 6 * HOUR),
    ]
}

/// (e) The seed's three devices under their policies (temperature / NoRetry, button /
/// Deadline 15 s, alarm / BatteryAware) through a day: on a clean network and through
/// outages, MQTT 5 and 3.1.1 give the same attempts, writes, outcomes at the same instants and
/// the same packets at the broker at the same instants. MQTT 5 packets are a byte or two
/// longer, which the virtual clock does not price.
#[test]
fn seed_policies_count_the_same_with_mqtt_5() {
    let outage_sets: [&[(u64, u64)]; 2] = [
        &[],
        &[
            (HOUR, HOUR + 10 * MINUTE),
            (5 * HOUR, 11 * HOUR),
            (15 * HOUR + 7 * SECOND, 15 * HOUR + 40 * SECOND),
        ],
    ];
    let seeds = seed_devices();
    for outages in outage_sets {
        for (name, policy, period) in seeds {
            let v311 = seed_day::<Heap>(ProtocolVersion::V311, policy(), period, outages);
            let v5 = seed_day::<Heap>(ProtocolVersion::V5, policy(), period, outages);
            assert_eq!(v311, v5, "{name}, {} outages", outages.len());
            assert_eq!(
                v5.delivered + v5.expired + v5.dropped,
                v5.published,
                "{name}: one outcome each"
            );
            if outages.is_empty() {
                assert_eq!(v5.delivered, v5.published, "{name}: clean network");
                assert_eq!(v5.attempts, 1, "{name}: clean network");
            } else {
                assert!(v5.attempts > 1, "{name}");
            }
        }
    }
}

/// The same seed days with the engine's session on fixed storage (16 entries, 256-byte
/// buffers): the rules are the same code, so every attempt, write, outcome and packet at the
/// broker happens at the same virtual instant as on the heap, in 3.1.1 and in MQTT 5.
#[test]
fn seed_policies_count_the_same_on_fixed_storage() {
    let outages: &[(u64, u64)] = &[
        (HOUR, HOUR + 10 * MINUTE),
        (5 * HOUR, 11 * HOUR),
        (15 * HOUR + 7 * SECOND, 15 * HOUR + 40 * SECOND),
    ];
    let seeds = seed_devices();
    for protocol in [ProtocolVersion::V311, ProtocolVersion::V5] {
        for (name, policy, period) in seeds {
            let heap = seed_day::<Heap>(protocol, policy(), period, outages);
            let fixed = seed_day::<Fixed<16, 256>>(protocol, policy(), period, outages);
            assert_eq!(heap, fixed, "{name}, {protocol:?}");
            assert!(fixed.attempts > 1 && fixed.published > 0, "{name}");
        }
    }
}

/// QoS 0 messages with the engine's outgoing topic aliases (the broker takes 2): the broker
/// resolves every one to its topic, also after a reconnection (aliases live per connection).
#[test]
fn outgoing_topic_aliases_survive_reconnections() {
    let mut net = SimNet::new(18);
    net.broker_mut(0).set_topic_alias_maximum(2);
    let mut config = v5("alias");
    config.session.v5.topic_aliases = true;
    let mut device = Device::new(config, FixedDelay::default(), 2);
    run(&mut net, &mut [&mut device], 0, SECOND);
    let topics = ["sensors/a", "sensors/b", "sensors/c"];
    let mut expected = Vec::new();
    let mut now = SECOND;
    for round in 0..3 {
        for n in 0..6 {
            let topic = topics[n % 3];
            let payload = format!("{round}-{n}");
            device
                .engine
                .publish(at(now), topic, payload.as_bytes(), QoS::AtMostOnce, false)
                .unwrap();
            expected.push((topic.to_string(), payload.into_bytes()));
            run(&mut net, &mut [&mut device], now, now + 100);
            now += 100;
        }
        net.cut(at(now), 0);
        run(&mut net, &mut [&mut device], now, now + 5 * SECOND);
        now += 5 * SECOND;
        assert!(device.engine.is_connected());
    }
    let broker = net.broker(0);
    assert!(
        broker.protocol_violations().is_empty(),
        "{:?}",
        broker.protocol_violations()
    );
    let got: Vec<(String, Vec<u8>)> = broker
        .accepted()
        .iter()
        .map(|a| (a.topic.clone(), a.payload.clone()))
        .collect();
    assert_eq!(got, expected);
    // Per connection: alias 1 and 2 set up with their topic, then used alone; the third topic
    // goes in full.
    let aliases: Vec<Option<u16>> = broker.accepted()[..6]
        .iter()
        .map(|a| a.topic_alias)
        .collect();
    assert_eq!(aliases, [Some(1), Some(2), None, Some(1), Some(2), None]);
    assert_eq!(broker.accepted()[6].topic_alias, Some(1));
}

/// Server Keep Alive: the broker imposes 5 s on an engine asking for 60 s; the engine adopts
/// it (pings every 5 s), so the broker never drops it for silence.
#[test]
fn server_keep_alive_is_adopted() {
    let mut net = SimNet::new(19);
    net.broker_mut(0).set_server_keep_alive(Some(5));
    let mut config = v5("sleepy");
    config.session.keep_alive = 60;
    let mut device = Device::new(config, FixedDelay::default(), 2);
    run(&mut net, &mut [&mut device], 0, 10 * MINUTE);
    assert!(device.engine.is_connected());
    assert_eq!(device.count(|e| matches!(e, Event::Connected { .. })), 1);
    let pings = net
        .broker(0)
        .received("sleepy")
        .iter()
        .filter(|(_, t)| *t == PacketType::PingReq)
        .count();
    assert!((115..=120).contains(&pings), "{pings} pings in 10 minutes");
}

/// What the broker's CONNACK says it does not take — QoS 2 above Maximum QoS 1, a retained
/// message without Retain Available, a PUBLISH above Maximum Packet Size — must not be sent
/// (the broker would disconnect) and must end with one outcome, without holding up the
/// messages behind it.
#[test]
fn messages_the_broker_cannot_take_end_without_blocking_the_queue() {
    type Publish =
        fn(&mut Device) -> Result<umqtt_core::robust::MessageId, umqtt_core::session::UsageError>;
    let cases: [(&str, Publish); 3] = [
        ("QoS 2 above Maximum QoS 1", |d| {
            d.engine
                .publish(at(SECOND), "t", b"q2", QoS::ExactlyOnce, false)
        }),
        ("retained without Retain Available", |d| {
            d.engine
                .publish(at(SECOND), "t", b"r", QoS::AtLeastOnce, true)
        }),
        ("above Maximum Packet Size", |d| {
            d.engine
                .publish(at(SECOND), "t", &[7; 500], QoS::AtLeastOnce, false)
        }),
    ];
    for (case, publish) in cases {
        let mut net = SimNet::new(20);
        let broker = net.broker_mut(0);
        broker.set_maximum_qos(QoS::AtLeastOnce);
        broker.set_retain_available(false);
        broker.set_max_packet_size(200);
        let mut device = Device::new(v5("limited"), BatteryAware::new(), 2);
        run(&mut net, &mut [&mut device], 0, SECOND);
        // Refusing it at once (Err) would be fine too; taking it means one outcome later.
        let refused = publish(&mut device);
        let fine = device
            .engine
            .publish(at(SECOND), "t", b"ok", QoS::AtLeastOnce, false)
            .unwrap();
        run(&mut net, &mut [&mut device], SECOND, 10 * MINUTE);
        let broker = net.broker(0);
        assert!(
            broker.protocol_violations().is_empty(),
            "{case}: {:?}",
            broker.protocol_violations()
        );
        assert_eq!(
            device.count(|e| matches!(e, Event::Connected { .. })),
            1,
            "{case}"
        );
        assert_eq!(
            device.count(|e| *e == Event::Delivered { id: fine }),
            1,
            "{case}: held up"
        );
        if let Ok(id) = refused {
            let outcomes = device.count(|e| {
                matches!(e, Event::Dropped { id: i, .. } | Event::Expired { id: i } if *i == id)
            });
            assert_eq!(outcomes, 1, "{case}: no outcome");
        }
        assert_eq!(device.engine.pending(), 0, "{case}");
        let payloads: Vec<&[u8]> = broker.accepted().iter().map(|a| &a.payload[..]).collect();
        assert_eq!(payloads, [b"ok"], "{case}");
    }
}

/// The broker's Receive Maximum is per connection: 3 when the engine filled its window (acks
/// withheld), 1 after the reconnection. The resumed session's resends must respect the new
/// one too — and every message arrives.
#[test]
fn resends_on_a_resumed_session_respect_a_smaller_receive_maximum() {
    let mut net = SimNet::new(22);
    net.broker_mut(0).set_receive_maximum(3);
    let mut device = Device::new(v5("shrink"), BatteryAware::new(), 7);
    run(&mut net, &mut [&mut device], 0, SECOND);
    net.withhold_acks(0, true);
    for n in 0..10 {
        device
            .engine
            .publish(
                at(SECOND),
                "s",
                format!("{n}").as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .unwrap();
    }
    run(&mut net, &mut [&mut device], SECOND, 2 * SECOND);
    assert_eq!(net.broker(0).in_flight_peak("shrink"), 3);
    net.withhold_acks(0, false);
    net.broker_mut(0).set_receive_maximum(1);
    net.cut(at(2 * SECOND), 0);
    run(&mut net, &mut [&mut device], 2 * SECOND, 2 * MINUTE);
    let broker = net.broker(0);
    assert!(
        broker.protocol_violations().is_empty(),
        "{:?}",
        broker.protocol_violations()
    );
    assert_eq!(
        disconnected_with(&device, ReasonCode::ReceiveMaximumExceeded),
        0
    );
    assert_eq!(accepted(&net, "s").len(), 10);
    assert_eq!(device.engine.pending(), 0);
    assert_eq!(
        device.count(|e| matches!(
            e,
            Event::Connected {
                session_present: true,
                ..
            }
        )),
        1
    );
    assert_eq!(
        broker.accepted().iter().filter(|a| a.dup).count(),
        3,
        "the 3 resent"
    );
}

/// A `Delivery::Within(10 s)` PUBLISH lost with its link and resent on the next connection
/// must not live at the broker beyond the 10 s the application allowed: the subscriber, back
/// 10.5 s after the publish, must not get it.
#[test]
fn a_resent_within_message_does_not_outlive_its_deadline_at_the_broker() {
    let mut net = SimNet::new(23);
    net.set_latency(Duration::from_millis(100));
    let mut publisher = Device::new(v5("press"), Deadline::new(Duration::from_secs(10)), 5);
    run(&mut net, &mut [&mut publisher], 0, SECOND);
    let mut sub = subscriber(&mut net, "screen", SECOND);
    sub.engine.disconnect(at(2 * SECOND));
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        2 * SECOND,
        3 * SECOND,
    );
    let within = Delivery::Within(Duration::from_secs(10));
    let id = publisher
        .engine
        .publish_with(
            at(3 * SECOND),
            "news/x",
            b"x",
            QoS::AtLeastOnce,
            false,
            within,
        )
        .unwrap();
    // The PUBLISH is on the wire when the link is cut: lost; the engine resends it.
    net.schedule(at(3 * SECOND + 50), |net, now| net.cut(now, 0));
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        3 * SECOND,
        13 * SECOND + 500,
    );
    assert_eq!(publisher.count(|e| *e == Event::Delivered { id }), 1);
    let resent_at = net
        .broker(0)
        .accepted()
        .iter()
        .find(|a| a.topic == "news/x")
        .unwrap()
        .at;
    assert!(
        resent_at > at(4 * SECOND),
        "resent on the next connection: {resent_at:?}"
    );
    sub.engine.connect(at(13 * SECOND + 500));
    run(
        &mut net,
        &mut [&mut publisher, &mut sub],
        13 * SECOND + 500,
        15 * SECOND,
    );
    assert!(sub.engine.is_connected());
    assert!(received(&sub).is_empty(), "{:?}", received(&sub));
    assert_eq!(net.broker(0).expired("screen"), 1);
}
