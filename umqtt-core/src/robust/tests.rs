//! Policy behaviour on made-up times: no sockets, no sleeps.

extern crate std;

use alloc::boxed::Box;
#[cfg(feature = "mqtt5")]
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::*;
use crate::packet::ConnectReturnCode;

fn failure(
    kind: FailureKind,
    consecutive: u32,
    outage: Duration,
    pending: PendingSummary,
) -> Failure {
    let mut failure = Failure::new(kind, consecutive, outage);
    failure.pending = pending;
    failure
}

fn lost(consecutive: u32, outage_secs: u64) -> Failure {
    failure(
        FailureKind::TcpConnect,
        consecutive,
        Duration::from_secs(outage_secs),
        PendingSummary::default(),
    )
}

const PERMANENT: [ConnectReturnCode; 4] = [
    ConnectReturnCode::BadUserNameOrPassword,
    ConnectReturnCode::NotAuthorized,
    ConnectReturnCode::UnacceptableProtocolVersion,
    ConnectReturnCode::IdentifierRejected,
];

#[test]
fn no_retry_never_schedules_an_attempt() {
    let mut policy = NoRetry;
    for n in 1..5 {
        assert_eq!(policy.on_failure(&lost(n, 0)), Decision::Stop);
    }
    assert_eq!(policy.default_delivery(), Delivery::NoRetry);
}

#[test]
fn fixed_delay_is_two_seconds_and_stops_on_bad_credentials() {
    let mut policy = FixedDelay::default();
    assert_eq!(
        policy.on_failure(&lost(1, 0)),
        Decision::RetryAfter(Duration::from_secs(2))
    );
    assert_eq!(
        policy.on_failure(&lost(50, 100)),
        Decision::RetryAfter(Duration::from_secs(2))
    );
    for code in PERMANENT {
        let f = failure(
            FailureKind::Refused(code),
            1,
            Duration::ZERO,
            PendingSummary::default(),
        );
        assert_eq!(policy.on_failure(&f), Decision::Stop, "{code:?}");
    }
    // Server unavailable is transient.
    let f = failure(
        FailureKind::Refused(ConnectReturnCode::ServerUnavailable),
        1,
        Duration::ZERO,
        PendingSummary::default(),
    );
    assert_eq!(
        policy.on_failure(&f),
        Decision::RetryAfter(Duration::from_secs(2))
    );
}

#[test]
fn backoff_grows_and_is_capped() {
    let mut policy =
        ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(60)).with_jitter(0.0);
    let delays: Vec<Duration> = (1..=10)
        .map(|n| match policy.on_failure(&lost(n, 0)) {
            Decision::RetryAfter(d) => d,
            Decision::Stop => panic!("backoff stopped"),
        })
        .collect();
    let secs: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
    assert_eq!(
        policy.on_failure(&lost(u32::MAX, 0)),
        Decision::RetryAfter(Duration::from_secs(60))
    );
}

#[test]
fn backoff_jitter_stays_within_bounds_and_varies() {
    let mut policy =
        ExponentialBackoff::new(Duration::from_secs(10), Duration::from_secs(100)).with_jitter(0.2);
    let mut seen = std::collections::BTreeSet::new();
    let mut random = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..200 {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let mut f = lost(2, 0);
        f.random = random;
        let Decision::RetryAfter(d) = policy.on_failure(&f) else {
            panic!()
        };
        assert!(
            d >= Duration::from_secs(16) && d <= Duration::from_secs(24),
            "{d:?}"
        );
        seen.insert(d.as_millis());
    }
    assert!(
        seen.len() > 50,
        "jitter should spread delays, got {} distinct",
        seen.len()
    );
}

#[test]
fn backoff_jitter_reaches_both_ends_and_is_centred() {
    let policy = |permille| {
        ExponentialBackoff::new(Duration::from_secs(10), Duration::from_secs(100))
            .with_jitter_permille(permille)
    };
    let delay = |permille, random| {
        let mut f = lost(1, 0);
        f.random = random;
        match policy(permille).on_failure(&f) {
            Decision::RetryAfter(d) => d,
            Decision::Stop => panic!("stopped"),
        }
    };
    // The lowest draw gives 1 − j, the highest just under 1 + j, the middle exactly 1.
    assert_eq!(delay(200, 0), Duration::from_secs(8));
    assert!(delay(200, u64::MAX) < Duration::from_secs(12));
    assert!(delay(200, u64::MAX) > Duration::from_millis(11_999));
    assert_eq!(delay(200, 1 << 63), Duration::from_secs(10));
    assert_eq!(delay(0, 12345), Duration::from_secs(10));
    // Full jitter never goes below zero; the fraction API keeps thousandths.
    assert_eq!(delay(1000, 0), Duration::ZERO);
    assert_eq!(
        ExponentialBackoff::default().with_jitter(0.25).jitter(),
        0.25
    );
    assert_eq!(ExponentialBackoff::default().with_jitter(7.0).jitter(), 1.0);
    assert_eq!(
        ExponentialBackoff::default().with_jitter(-1.0).jitter(),
        0.0
    );
}

#[test]
fn deadline_retries_until_the_message_deadline_then_stops() {
    let mut policy = Deadline::new(Duration::from_secs(15));
    assert_eq!(
        policy.default_delivery(),
        Delivery::Within(Duration::from_secs(15))
    );
    let pending = |left: u64| PendingSummary {
        messages: 1,
        guaranteed: 0,
        earliest_deadline: Some(Duration::from_secs(left)),
    };
    let mut waited = Duration::ZERO;
    let mut attempts = 0;
    loop {
        let left = Duration::from_secs(15).saturating_sub(waited);
        let f = failure(
            FailureKind::TcpConnect,
            attempts + 1,
            waited,
            pending(left.as_secs()),
        );
        match policy.on_failure(&f) {
            Decision::RetryAfter(d) => {
                assert!(d <= left, "never sleeps past the deadline");
                assert!(d > Duration::ZERO);
                waited += d;
                attempts += 1;
            }
            Decision::Stop => break,
        }
        assert!(attempts < 100, "deadline policy must stop");
    }
    assert!(
        waited >= Duration::from_secs(14),
        "kept trying until the deadline, stopped at {waited:?}"
    );
    assert!(waited <= Duration::from_secs(16));
    // With nothing pending there is nothing to retry for.
    assert_eq!(policy.on_failure(&lost(1, 0)), Decision::Stop);
}

#[test]
fn battery_aware_attempts_per_hour_fall_over_a_long_outage() {
    let mut policy = BatteryAware::new();
    assert_eq!(policy.default_delivery(), Delivery::Guaranteed);
    // Simulate a 6-hour outage on a virtual clock.
    let mut clock = Duration::ZERO;
    let mut per_hour = [0u32; 6];
    let mut consecutive = 0;
    while clock < Duration::from_secs(6 * 3600) {
        per_hour[(clock.as_secs() / 3600) as usize] += 1;
        consecutive += 1;
        match policy.on_failure(&lost(consecutive, clock.as_secs())) {
            Decision::RetryAfter(d) => {
                assert!(d >= Duration::from_secs(1));
                clock += d;
            }
            Decision::Stop => panic!("guaranteed delivery never gives up"),
        }
    }
    for pair in per_hour.windows(2) {
        assert!(
            pair[1] <= pair[0],
            "attempts per hour must not rise: {per_hour:?}"
        );
    }
    assert!(per_hour[0] <= 70, "first hour within budget: {per_hour:?}");
    assert!(
        per_hour[5] <= 4,
        "late in the outage only a few attempts: {per_hour:?}"
    );
    assert!(per_hour[5] >= 1, "never gives up: {per_hour:?}");
    let total: u32 = per_hour.iter().sum();
    // A fixed 2 s delay would have made 10 800 attempts.
    assert!(
        total < 150,
        "total attempts over 6 h: {total} ({per_hour:?})"
    );
}

#[test]
fn battery_aware_nudge_restarts_the_quick_phase() {
    let mut policy = BatteryAware::new();
    let late = policy.on_failure(&lost(40, 3 * 3600));
    assert!(
        matches!(late, Decision::RetryAfter(d) if d >= Duration::from_secs(400)),
        "{late:?}"
    );
    policy.on_nudge();
    assert_eq!(
        policy.on_failure(&lost(41, 3 * 3600)),
        Decision::RetryAfter(Duration::from_secs(1))
    );
}

#[test]
fn no_shipped_policy_spins_on_bad_credentials() {
    let mut policies: Vec<Box<dyn ReconnectPolicy>> = vec![
        Box::new(NoRetry),
        Box::new(FixedDelay::default()),
        Box::new(ExponentialBackoff::default()),
        Box::new(Deadline::default()),
        Box::new(BatteryAware::new()),
    ];
    for policy in policies.iter_mut() {
        for code in PERMANENT {
            let pending = PendingSummary {
                messages: 1,
                guaranteed: 1,
                earliest_deadline: Some(Duration::from_secs(10)),
            };
            match policy.on_failure(&failure(
                FailureKind::Refused(code),
                3,
                Duration::from_secs(5),
                pending,
            )) {
                Decision::Stop => {}
                Decision::RetryAfter(d) => assert!(
                    d >= Duration::from_secs(600),
                    "{code:?} retried after {d:?}"
                ),
            }
        }
    }
}

/// Writes everything the engine has to send, as a driver would.
fn flush(engine: &mut Engine<FixedDelay, ()>, now: Instant) -> usize {
    let mut bytes = 0;
    while let Some(chunk) = engine.poll_transmit(now) {
        bytes += chunk.len();
    }
    engine.handle_written(now);
    bytes
}

#[test]
fn a_full_window_is_refilled_in_batches_of_a_quarter() {
    let mut config = EngineConfig::new(SessionConfig {
        client_id: "batch".into(),
        max_in_flight: 8,
        ..SessionConfig::default()
    });
    config.clean_session = true;
    let now = Instant::from_millis(0);
    let mut engine: Engine<FixedDelay, ()> = Engine::new(config, FixedDelay::default(), 1, now);
    engine.handle_timeout(now);
    assert_eq!(engine.poll_action(), Some(Action::Open { server: 0 }));
    engine.handle_opened(now);
    flush(&mut engine, now);
    engine.handle_read(now, &[0x20, 2, 0, 0]);
    assert!(engine.is_connected());
    for n in 0..20u8 {
        engine
            .publish(now, "t", &[n], QoS::AtLeastOnce, false)
            .unwrap();
    }
    assert_eq!(engine.session().outgoing_len(), 8, "the window is full");
    flush(&mut engine, now);
    // One acknowledgement frees one slot: less than a quarter of the window, nothing moves.
    engine.handle_read(now, &[0x40, 2, 0, 1]);
    assert_eq!(engine.session().outgoing_len(), 7);
    assert_eq!(
        flush(&mut engine, now),
        0,
        "no PUBLISH for a single free slot"
    );
    // The second frees a quarter: two go out together.
    engine.handle_read(now, &[0x40, 2, 0, 2]);
    assert_eq!(engine.session().outgoing_len(), 8);
    assert_eq!(
        flush(&mut engine, now),
        2 * 8,
        "two 8-byte PUBLISH packets in one write"
    );
    // Everything is delivered in the end, the last messages without a full batch to wait for.
    let mut next_ack = 3u16;
    while engine.pending() > 0 {
        let [hi, lo] = next_ack.to_be_bytes();
        engine.handle_read(now, &[0x40, 2, hi, lo]);
        flush(&mut engine, now);
        next_ack += 1;
        assert!(next_ack < 100, "stuck with {} pending", engine.pending());
    }
    assert_eq!(engine.stats().delivered, 20);
}

/// Past `max_events` (received messages aside), the oldest event that is not a message is
/// discarded, and everything else keeps its order.
#[test]
fn an_event_overflow_discards_the_oldest_non_message_and_keeps_the_order() {
    let mut config = EngineConfig::new(SessionConfig {
        client_id: "events".into(),
        ..SessionConfig::default()
    });
    config.clean_session = true;
    config.max_events = 2;
    let now = Instant::from_millis(0);
    let mut engine: Engine<FixedDelay, ()> = Engine::new(config, FixedDelay::default(), 1, now);
    engine.handle_timeout(now);
    assert_eq!(engine.poll_action(), Some(Action::Open { server: 0 }));
    engine.handle_opened(now);
    flush(&mut engine, now);
    engine.handle_read(now, &[0x20, 2, 0, 0]);
    assert!(matches!(engine.poll_event(), Some(Event::Connected { .. })));
    // Two received messages, then three outcomes: the first outcome is pushed out.
    engine.handle_read(now, &[0x30, 4, 0, 1, b't', b'1', 0x30, 4, 0, 1, b't', b'2']);
    let ids: Vec<MessageId> = (0..3u8)
        .map(|n| {
            let id = engine
                .publish(now, "t", &[n], QoS::AtMostOnce, false)
                .unwrap();
            flush(&mut engine, now);
            id
        })
        .collect();
    let events: Vec<_> = core::iter::from_fn(|| engine.poll_event())
        .map(|e| match e {
            Event::Message(m) => std::format!("message {:?}", m.payload),
            Event::Delivered { id } => {
                std::format!("delivered {}", ids.iter().position(|&i| i == id).unwrap())
            }
            other => std::format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        events,
        ["message [49]", "message [50]", "delivered 1", "delivered 2"]
    );
    assert_eq!(engine.stats().events_overflowed, 1);
}

/// MQTT 5: a `Delivery::Within` message carries what is left of its lifetime as its Message
/// Expiry Interval, so the broker does not deliver it late either; a guaranteed one carries
/// none.
#[test]
#[cfg(feature = "mqtt5")]
fn within_maps_onto_message_expiry_with_mqtt_5() {
    use crate::packet::{decode_with, Decoded, Packet, Properties, ProtocolVersion};
    let t = Instant::from_millis;
    let session = session::SessionConfig {
        client_id: "e".into(),
        protocol: ProtocolVersion::V5,
        ..session::SessionConfig::default()
    };
    let mut engine: Engine<FixedDelay, ()> =
        Engine::new(EngineConfig::new(session), FixedDelay::default(), 1, t(0));
    engine
        .publish_with(
            t(0),
            "t",
            b"soon",
            QoS::AtLeastOnce,
            false,
            Delivery::Within(Duration::from_secs(10)),
        )
        .unwrap();
    engine
        .publish_with(
            t(0),
            "t",
            b"kept",
            QoS::AtLeastOnce,
            false,
            Delivery::Guaranteed,
        )
        .unwrap();
    engine.connect(t(0));
    assert!(matches!(
        engine.poll_action(),
        Some(Action::Open { server: 0 })
    ));
    // The link comes up 2.5 s later: 7.5 s of the 10 are left, announced as 7 (rounded down:
    // the broker must not keep it past the deadline).
    engine.handle_opened(t(2_500));
    while engine.poll_transmit(t(2_500)).is_some() {}
    engine.handle_written(t(2_500));
    // A v5 CONNACK: accepted, no properties.
    engine.handle_read(t(2_500), &[0x20, 0x03, 0x00, 0x00, 0x00]);
    let mut bytes = Vec::new();
    while let Some(part) = engine.poll_transmit(t(2_500)) {
        bytes.extend_from_slice(part);
    }
    let mut expiries = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let Ok(Decoded::Complete { packet, consumed }) =
            decode_with(rest, usize::MAX, ProtocolVersion::V5)
        else {
            panic!("{rest:02x?}");
        };
        if let Packet::Publish(p) = packet {
            expiries.push((p.payload.to_vec(), p.properties.message_expiry_interval()));
            assert!(p.properties != Properties::EMPTY || p.payload == b"kept");
        }
        rest = &rest[consumed..];
    }
    assert_eq!(
        expiries,
        [(b"soon".to_vec(), Some(7)), (b"kept".to_vec(), None)]
    );
}

#[cfg(feature = "mqtt5")]
/// The Message Expiry Intervals of the PUBLISH packets the engine writes at `now`.
fn written_expiries(engine: &mut Engine<FixedDelay, ()>, now: Instant) -> Vec<Option<u32>> {
    use crate::packet::{decode_with, Decoded, Packet, ProtocolVersion};
    let mut bytes = Vec::new();
    while let Some(part) = engine.poll_transmit(now) {
        bytes.extend_from_slice(part);
    }
    engine.handle_written(now);
    let mut expiries = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let Ok(Decoded::Complete { packet, consumed }) =
            decode_with(rest, usize::MAX, ProtocolVersion::V5)
        else {
            panic!("{rest:02x?}");
        };
        if let Packet::Publish(p) = packet {
            expiries.push(p.properties.message_expiry_interval());
        }
        rest = &rest[consumed..];
    }
    expiries
}

/// Found by the `engine` fuzz target: a message the session held back (the broker's Receive
/// Maximum was smaller than the window, or the CONNACK came seconds after the transport
/// opened) went out with the Message Expiry Interval of its hand-over, more than what was
/// left of its `Within` deadline when it was written.
#[test]
#[cfg(feature = "mqtt5")]
fn a_message_held_back_by_the_session_carries_what_is_left_when_written() {
    let t = Instant::from_millis;
    let within = Delivery::Within(Duration::from_secs(100));
    let mut engine = v5_engine();
    engine.connect(t(0));
    engine.handle_timeout(t(0));
    while engine.poll_action().is_some() {}
    engine.handle_opened(t(0));
    engine
        .publish_with(t(0), "t", b"1", QoS::AtLeastOnce, false, within)
        .unwrap();
    written_expiries(&mut engine, t(0));
    // The CONNACK (Receive Maximum 1) comes 5.5 s after the transport opened: 94.5 s are
    // left, sent as 94.
    let connack_rm_1 = [0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x01];
    engine.handle_read(t(5_500), &connack_rm_1);
    assert!(engine.is_connected());
    assert_eq!(written_expiries(&mut engine, t(5_500)), vec![Some(94)]);
    engine
        .publish_with(t(6_000), "t", b"2", QoS::AtLeastOnce, false, within)
        .unwrap();
    // Held back by the Receive Maximum.
    assert_eq!(written_expiries(&mut engine, t(6_000)), vec![]);
    // The first one's PUBACK 30 s later releases it: 70 s left of its 100.
    let (packet_id, _, _) = engine.session().outgoing().next().unwrap();
    let [hi, lo] = packet_id.get().to_be_bytes();
    engine.handle_read(t(36_000), &[0x40, 0x02, hi, lo]);
    assert_eq!(written_expiries(&mut engine, t(36_000)), vec![Some(70)]);
    // The link breaks; the next transport opens at 40 s and its CONNACK (session present)
    // comes at 45.5 s: the resend carries the 60.5 s left then, not the 66 left at opening.
    engine.handle_connection_lost(t(36_000), FailureKind::ConnectionLost, ());
    while engine.poll_action().is_some() {}
    engine.handle_timeout(t(40_000));
    assert!(matches!(engine.poll_action(), Some(Action::Open { .. })));
    engine.handle_opened(t(40_000));
    written_expiries(&mut engine, t(40_000));
    engine.handle_read(t(45_500), &[0x20, 0x03, 0x01, 0x00, 0x00]);
    assert!(engine.is_connected());
    assert_eq!(written_expiries(&mut engine, t(45_500)), vec![Some(60)]);
}

#[cfg(feature = "mqtt5")]
/// An MQTT 5 engine (persistent session, window 8) and a clock in milliseconds.
fn v5_engine() -> Engine<FixedDelay, ()> {
    let session = session::SessionConfig {
        client_id: "v5".into(),
        protocol: crate::packet::ProtocolVersion::V5,
        max_in_flight: 8,
        ..session::SessionConfig::default()
    };
    Engine::new(
        EngineConfig::new(session),
        FixedDelay::default(),
        1,
        Instant::from_millis(0),
    )
}

#[cfg(feature = "mqtt5")]
/// Every packet the engine writes, decoded as MQTT 5: type and size.
fn written_v5(engine: &mut Engine<FixedDelay, ()>, now: Instant) -> Vec<(u8, usize)> {
    use crate::packet::packet_size;
    let mut bytes = Vec::new();
    while let Some(part) = engine.poll_transmit(now) {
        bytes.extend_from_slice(part);
    }
    engine.handle_written(now);
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while let Ok(Some(size)) = packet_size(rest) {
        out.push((rest[0] >> 4, size));
        rest = &rest[size..];
    }
    assert!(rest.is_empty());
    out
}

#[cfg(feature = "mqtt5")]
/// Opens the link the engine asks for and feeds `connack`.
fn open_with(engine: &mut Engine<FixedDelay, ()>, now: Instant, connack: &[u8]) {
    engine.handle_timeout(now);
    let open = core::iter::from_fn(|| engine.poll_action()).last();
    assert!(matches!(open, Some(Action::Open { .. })), "{open:?}");
    engine.handle_opened(now);
    let connect = written_v5(engine, now);
    assert_eq!(connect.first().map(|p| p.0), Some(1), "CONNECT first");
    engine.handle_read(now, connack);
}

/// Gap: a reconnection brings a smaller Maximum Packet Size than stored messages. They must
/// end as `Dropped(TooLarge)` — never sent (the broker would close the link and every
/// reconnection would send them again) and never block the messages behind them.
#[test]
#[cfg(feature = "mqtt5")]
fn messages_larger_than_a_new_maximum_packet_size_are_dropped_and_the_rest_flows() {
    let t = Instant::from_millis;
    let mut engine = v5_engine();
    // First connection: no limit. A large message goes out and is not acknowledged.
    open_with(&mut engine, t(0), &[0x20, 0x03, 0x00, 0x00, 0x00]);
    assert!(engine.is_connected());
    let big_sent = engine
        .publish(t(1), "t", &[1; 300], QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(written_v5(&mut engine, t(1)).len(), 1);
    engine.handle_connection_lost(t(2), FailureKind::ConnectionLost, ());
    // While down: another large one and a small one wait in the engine's queue.
    let big_queued = engine
        .publish(t(3), "t", &[2; 300], QoS::AtLeastOnce, false)
        .unwrap();
    let small = engine
        .publish(t(3), "t", &[3; 10], QoS::AtLeastOnce, false)
        .unwrap();
    while engine.poll_event().is_some() {}
    // The broker comes back with the session and a 100-byte Maximum Packet Size.
    let connack_100 = [0x20, 0x08, 0x01, 0x00, 0x05, 0x27, 0, 0, 0, 100];
    open_with(&mut engine, t(2_002), &connack_100);
    assert!(engine.is_connected());
    let written = written_v5(&mut engine, t(2_003));
    assert_eq!(
        written,
        vec![(3, 2 + 2 + 1 + 2 + 1 + 10)],
        "only the small PUBLISH"
    );
    let mut dropped = Vec::new();
    while let Some(event) = engine.poll_event() {
        if let Event::Dropped { id, reason } = event {
            dropped.push((id, reason));
        }
    }
    let too_large = DropReason::TooLarge {
        size: 309,
        max: 100,
    };
    assert_eq!(
        dropped,
        vec![(big_sent, too_large), (big_queued, too_large)]
    );
    // The small one completes; the link stays up: no reconnection loop.
    let (packet_id, _, _) = engine.session().outgoing().next().unwrap();
    let [hi, lo] = packet_id.get().to_be_bytes();
    engine.handle_read(t(2_004), &[0x40, 0x02, hi, lo]);
    let delivered: Vec<_> = core::iter::from_fn(|| engine.poll_event())
        .filter_map(|e| match e {
            Event::Delivered { id } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec![small]);
    assert!(engine.is_connected());
    assert_eq!(engine.stats().connects, 2);
    assert_eq!(engine.stats().dropped_by.too_large, 2);
    assert_eq!(engine.pending(), 0);
}

/// Found by the `engine` fuzz target: messages the session stored (sent and not acknowledged,
/// or waiting for the window) went out again after a reconnection whose CONNACK ruled them
/// out — a QoS 2 PUBLISH above the new Maximum QoS, a retained one with Retain Available 0 —
/// and the broker would close the link at every attempt. They end as `Dropped(NotSupported)`
/// instead, and the rest flows.
#[test]
#[cfg(feature = "mqtt5")]
fn stored_messages_a_new_connack_rules_out_are_dropped_not_sent() {
    let t = Instant::from_millis;
    let mut engine = v5_engine();
    open_with(&mut engine, t(0), &[0x20, 0x03, 0x00, 0x00, 0x00]);
    assert!(engine.is_connected());
    let qos2 = engine
        .publish(t(1), "t", &[1], QoS::ExactlyOnce, false)
        .unwrap();
    let retained = engine
        .publish(t(1), "t", &[2], QoS::AtLeastOnce, true)
        .unwrap();
    let plain = engine
        .publish(t(1), "t", &[3], QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(written_v5(&mut engine, t(1)).len(), 3);
    engine.handle_connection_lost(t(2), FailureKind::ConnectionLost, ());
    while engine.poll_event().is_some() {}
    // The broker resumes the session: Maximum QoS 1, Retain Available 0.
    let connack = [0x20, 0x07, 0x01, 0x00, 0x04, 0x24, 0x01, 0x25, 0x00];
    open_with(&mut engine, t(2_002), &connack);
    assert!(engine.is_connected());
    // Only the plain message is resent (QoS 1, not retained, DUP set).
    assert_eq!(
        written_v5(&mut engine, t(2_003)),
        vec![(3, 2 + 2 + 1 + 2 + 1 + 1)]
    );
    let dropped: Vec<_> = core::iter::from_fn(|| engine.poll_event())
        .filter_map(|e| match e {
            Event::Dropped { id, reason } => Some((id, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        dropped,
        vec![
            (
                qos2,
                DropReason::NotSupported(Unsupported::QoS {
                    max: QoS::AtLeastOnce
                })
            ),
            (retained, DropReason::NotSupported(Unsupported::Retain)),
        ]
    );
    let (packet_id, _, _) = engine.session().outgoing().next().unwrap();
    let [hi, lo] = packet_id.get().to_be_bytes();
    engine.handle_read(t(2_004), &[0x40, 0x02, hi, lo]);
    let delivered: Vec<_> = core::iter::from_fn(|| engine.poll_event())
        .filter_map(|e| match e {
            Event::Delivered { id } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec![plain]);
    assert_eq!(engine.stats().dropped_by.not_supported, 2);
    assert_eq!(engine.pending(), 0);
    assert!(engine.is_connected());
}

/// A protocol violation the session closes for (here AUTH) sends an MQTT 5 DISCONNECT with
/// its reason code before the engine asks the driver to close.
#[test]
#[cfg(feature = "mqtt5")]
fn the_sessions_disconnect_is_written_before_the_close_action() {
    let t = Instant::from_millis;
    let mut engine = v5_engine();
    open_with(&mut engine, t(0), &[0x20, 0x03, 0x00, 0x00, 0x00]);
    while engine.poll_action().is_some() {}
    // AUTH, Continue authentication, no properties.
    engine.handle_read(t(1), &[0xF0, 0x02, 0x18, 0x00]);
    assert_eq!(engine.poll_action(), Some(Action::Close));
    let mut bytes = Vec::new();
    while let Some(part) = engine.poll_transmit(t(1)) {
        bytes.extend_from_slice(part);
    }
    assert_eq!(bytes, [0xE0, 0x01, 0x82], "DISCONNECT 0x82 Protocol Error");
    let closed = core::iter::from_fn(|| engine.poll_event()).find_map(|e| match e {
        Event::Disconnected {
            error: LinkError::Closed(reason),
            ..
        } => Some(reason),
        _ => None,
    });
    assert_eq!(
        closed,
        Some(CloseReason::Protocol(
            session::ProtocolError::UnexpectedAuth
        ))
    );
}

/// The UNSUBACK reason code of each filter reaches the application.
#[test]
#[cfg(feature = "mqtt5")]
fn unsubscribed_events_carry_the_unsuback_reason_codes() {
    let t = Instant::from_millis;
    let mut engine = v5_engine();
    open_with(&mut engine, t(0), &[0x20, 0x03, 0x00, 0x00, 0x00]);
    engine.unsubscribe(t(1), "a").unwrap();
    let written = written_v5(&mut engine, t(1));
    assert_eq!(written.iter().filter(|p| p.0 == 10).count(), 1);
    // UNSUBACK id 1, no properties, 0x87 Not authorized.
    engine.handle_read(t(2), &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x87]);
    let unsubscribed = core::iter::from_fn(|| engine.poll_event()).find_map(|e| match e {
        Event::Unsubscribed {
            filter,
            reason_code,
        } => Some((filter, reason_code)),
        _ => None,
    });
    assert_eq!(unsubscribed, Some(("a".into(), ReasonCode::NotAuthorized)));
}

#[cfg(feature = "mqtt5")]
/// A v5 CONNACK refusing with `code` and naming `reference` as the server to use.
fn connack_redirect(code: u8, reference: &str) -> Vec<u8> {
    let mut properties = vec![0x1C];
    properties.extend_from_slice(&(reference.len() as u16).to_be_bytes());
    properties.extend_from_slice(reference.as_bytes());
    let mut packet = vec![
        0x20,
        (3 + properties.len()) as u8,
        0x00,
        code,
        properties.len() as u8,
    ];
    packet.extend_from_slice(&properties);
    packet
}

#[cfg(feature = "mqtt5")]
/// Runs timers until the engine asks to open a server; returns its index.
fn next_open(engine: &mut Engine<FixedDelay, ()>, now: &mut u64) -> usize {
    for _ in 0..100 {
        while let Some(action) = engine.poll_action() {
            if let Action::Open { server } = action {
                return server;
            }
        }
        *now = engine
            .poll_timeout()
            .map_or(*now, |t| t.as_millis().max(*now));
        engine.handle_timeout(Instant::from_millis(*now));
    }
    panic!("no Open action");
}

/// MQTT 5 Server Reference: a CONNACK 0x9C Use another server or a DISCONNECT 0x9D Server
/// moved sends the next attempt to the named server (index `servers`, address from
/// `server_address`); when that fails, attempts go back to the configured list. Without
/// `follow_server_references` the configured list alone is used.
#[test]
#[cfg(feature = "mqtt5")]
fn a_server_reference_sends_the_next_attempt_there_then_back_to_the_list() {
    let engine_with = |follow: bool| {
        let mut config = EngineConfig::new(session::SessionConfig {
            client_id: "moved".into(),
            protocol: crate::packet::ProtocolVersion::V5,
            ..session::SessionConfig::default()
        });
        config.servers = 2;
        config.follow_server_references = follow;
        Engine::<FixedDelay, ()>::new(config, FixedDelay::default(), 1, Instant::from_millis(0))
    };
    let mut now = 0;
    let mut engine = engine_with(true);
    assert_eq!(next_open(&mut engine, &mut now), 0);
    engine.handle_opened(Instant::from_millis(now));
    written_v5(&mut engine, Instant::from_millis(now));
    engine.handle_read(
        Instant::from_millis(now),
        &connack_redirect(0x9C, "elsewhere:1999 [::1]:1"),
    );
    let address = ServerAddress {
        host: "elsewhere".into(),
        port: Some(1999),
    };
    let events: Vec<_> = core::iter::from_fn(|| engine.poll_event()).collect();
    assert!(events.contains(&Event::Redirected {
        address: address.clone(),
        reason_code: ReasonCode::UseAnotherServer
    }));
    // The next attempt opens the referenced server.
    assert_eq!(next_open(&mut engine, &mut now), 2);
    assert_eq!(engine.server_address(2), Some(&address));
    assert_eq!(engine.server_address(0), None);
    // It cannot be reached: back to the configured list, where it left off (server 1).
    engine.handle_open_failed(Instant::from_millis(now), FailureKind::TcpConnect, ());
    assert_eq!(next_open(&mut engine, &mut now), 1);
    // Server 1 accepts, then moves us with DISCONNECT 0x9D: the referenced server next, and
    // this time it accepts.
    engine.handle_opened(Instant::from_millis(now));
    written_v5(&mut engine, Instant::from_millis(now));
    engine.handle_read(Instant::from_millis(now), &[0x20, 0x03, 0x00, 0x00, 0x00]);
    assert_eq!(engine.connected_server(), Some(1));
    let reference = b"elsewhere:1999";
    let mut disconnect = vec![0xE0, (2 + 3 + reference.len()) as u8, 0x9D];
    disconnect.extend_from_slice(&[
        (3 + reference.len()) as u8,
        0x1C,
        0x00,
        reference.len() as u8,
    ]);
    disconnect.extend_from_slice(reference);
    engine.handle_read(Instant::from_millis(now), &disconnect);
    assert!(!engine.is_connected());
    assert_eq!(next_open(&mut engine, &mut now), 2);
    engine.handle_opened(Instant::from_millis(now));
    written_v5(&mut engine, Instant::from_millis(now));
    engine.handle_read(Instant::from_millis(now), &[0x20, 0x03, 0x00, 0x00, 0x00]);
    assert_eq!(engine.connected_server(), Some(2));
    assert_eq!(engine.stats().redirects, 2);

    // Not followed unless asked: the configured list goes on.
    let mut now = 0;
    let mut engine = engine_with(false);
    assert_eq!(next_open(&mut engine, &mut now), 0);
    engine.handle_opened(Instant::from_millis(now));
    written_v5(&mut engine, Instant::from_millis(now));
    engine.handle_read(
        Instant::from_millis(now),
        &connack_redirect(0x9C, "elsewhere:1999"),
    );
    assert_eq!(next_open(&mut engine, &mut now), 1);
    assert_eq!(engine.stats().redirects, 0);
}

/// MQTT 5: a message's own PUBLISH properties go with it, queued while the link is down; its
/// Message Expiry Interval is the shorter of its own and what is left of its deadline. A
/// DISCONNECT carries its properties; one it may not carry is refused and the link stays.
#[test]
#[cfg(feature = "mqtt5")]
fn publish_properties_wait_with_the_message_and_disconnect_carries_its_own() {
    use crate::packet::{
        decode_with, Decoded, Disconnect, Packet, Properties, Property, PropertyList,
        ProtocolVersion,
    };
    let t = Instant::from_millis;
    let session = session::SessionConfig {
        client_id: "e".into(),
        protocol: ProtocolVersion::V5,
        ..session::SessionConfig::default()
    };
    let mut engine: Engine<FixedDelay, ()> =
        Engine::new(EngineConfig::new(session), FixedDelay::default(), 1, t(0));
    let own = [
        Property::UserProperty("k", "v"),
        Property::MessageExpiryInterval(5),
        Property::ContentType("text/plain"),
    ];
    for (payload, delivery) in [
        (
            &b"deadline-later"[..],
            Delivery::Within(Duration::from_secs(60)),
        ),
        (b"deadline-sooner", Delivery::Within(Duration::from_secs(3))),
        (b"guaranteed", Delivery::Guaranteed),
    ] {
        engine
            .publish_with_properties(
                t(0),
                "t",
                payload,
                QoS::AtLeastOnce,
                false,
                delivery,
                Properties::List(&PropertyList(&own)),
            )
            .unwrap();
    }
    // Not a PUBLISH property: refused at once.
    assert!(engine
        .publish_with_properties(
            t(0),
            "t",
            b"x",
            QoS::AtMostOnce,
            false,
            Delivery::Guaranteed,
            Properties::List(&PropertyList(&[Property::WillDelayInterval(1)])),
        )
        .is_err());
    engine.connect(t(0));
    assert!(matches!(
        engine.poll_action(),
        Some(Action::Open { server: 0 })
    ));
    engine.handle_opened(t(1_000));
    while engine.poll_transmit(t(1_000)).is_some() {}
    engine.handle_written(t(1_000));
    engine.handle_read(t(1_000), &[0x20, 0x03, 0x00, 0x00, 0x00]);
    let mut bytes = Vec::new();
    while let Some(part) = engine.poll_transmit(t(1_000)) {
        bytes.extend_from_slice(part);
    }
    let mut sent = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let Ok(Decoded::Complete { packet, consumed }) =
            decode_with(rest, usize::MAX, ProtocolVersion::V5)
        else {
            panic!("{rest:02x?}");
        };
        if let Packet::Publish(p) = packet {
            let user: Vec<(&str, &str)> = p.properties.user_properties().collect();
            assert_eq!(user, [("k", "v")]);
            assert_eq!(p.properties.content_type(), Some("text/plain"));
            sent.push((p.payload.to_vec(), p.properties.message_expiry_interval()));
        }
        rest = &rest[consumed..];
    }
    // 2 s of the 3 are left at 1 s: 2 beats the message's own 5.
    assert_eq!(
        sent,
        [
            (b"deadline-later".to_vec(), Some(5)),
            (b"deadline-sooner".to_vec(), Some(2)),
            (b"guaranteed".to_vec(), Some(5)),
        ]
    );

    // DISCONNECT: a property it may not carry is refused, nothing changes.
    let bad = [Property::ContentType("x")];
    assert!(engine
        .disconnect_with(
            t(1_000),
            Disconnect::new(ReasonCode::Success, Properties::List(&PropertyList(&bad)))
        )
        .is_err());
    assert!(engine.poll_transmit(t(1_000)).is_none());
    let good = [Property::ReasonString("bye")];
    engine
        .disconnect_with(
            t(1_000),
            Disconnect::new(ReasonCode::Success, Properties::List(&PropertyList(&good))),
        )
        .unwrap();
    let disconnect = engine.poll_transmit(t(1_000)).unwrap().to_vec();
    let Ok(Decoded::Complete {
        packet: Packet::Disconnect(d),
        ..
    }) = decode_with(&disconnect, usize::MAX, ProtocolVersion::V5)
    else {
        panic!("{disconnect:02x?}");
    };
    assert_eq!(d.properties.reason_string(), Some("bye"));
}

/// MQTT 5: kept subscriptions carry their SUBSCRIBE properties; filters with the same
/// properties share one SUBSCRIBE, others get their own; a renewal after a lost session sends
/// them again.
#[test]
#[cfg(feature = "mqtt5")]
fn subscriptions_keep_their_properties_across_renewals() {
    use crate::packet::{
        decode_with, Decoded, Packet, Properties, Property, PropertyList, ProtocolVersion,
    };
    let t = Instant::from_millis;
    let session = session::SessionConfig {
        client_id: "e".into(),
        protocol: ProtocolVersion::V5,
        ..session::SessionConfig::default()
    };
    let mut engine: Engine<FixedDelay, ()> =
        Engine::new(EngineConfig::new(session), FixedDelay::default(), 1, t(0));
    let tagged = [
        Property::SubscriptionIdentifier(7),
        Property::UserProperty("k", "v"),
    ];
    for filter in ["a/#", "b/#"] {
        engine
            .subscribe_with_properties(
                t(0),
                filter,
                QoS::AtLeastOnce,
                Properties::List(&PropertyList(&tagged)),
            )
            .unwrap();
    }
    engine.subscribe(t(0), "plain", QoS::AtMostOnce).unwrap();
    // Not a SUBSCRIBE property: refused at once.
    assert!(engine
        .subscribe_with_properties(
            t(0),
            "c",
            QoS::AtMostOnce,
            Properties::List(&PropertyList(&[Property::ContentType("x")])),
        )
        .is_err());
    // (filters, properties) of each SUBSCRIBE sent on a fresh connection.
    let connect_and_read = |engine: &mut Engine<FixedDelay, ()>, at: u64| {
        engine.connect(t(at));
        while engine.poll_action().is_some() {}
        engine.handle_opened(t(at));
        while engine.poll_transmit(t(at)).is_some() {}
        engine.handle_written(t(at));
        // A v5 CONNACK: accepted, no session present.
        engine.handle_read(t(at), &[0x20, 0x03, 0x00, 0x00, 0x00]);
        let mut bytes = Vec::new();
        while let Some(part) = engine.poll_transmit(t(at)) {
            bytes.extend_from_slice(part);
        }
        let mut subscribes = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let Ok(Decoded::Complete { packet, consumed }) =
                decode_with(rest, usize::MAX, ProtocolVersion::V5)
            else {
                panic!("{rest:02x?}");
            };
            if let Packet::Subscribe(s) = packet {
                let filters: Vec<String> = s.topics.iter().map(|(f, _)| f.to_string()).collect();
                let properties: Vec<String> = s
                    .properties
                    .iter()
                    .map(|p| alloc::format!("{p:?}"))
                    .collect();
                subscribes.push((filters, properties));
            }
            rest = &rest[consumed..];
        }
        subscribes
    };
    let expected = [
        (
            vec!["a/#".to_string(), "b/#".to_string()],
            vec![
                "SubscriptionIdentifier(7)".to_string(),
                "UserProperty(\"k\", \"v\")".to_string(),
            ],
        ),
        (vec!["plain".to_string()], vec![]),
    ];
    assert_eq!(connect_and_read(&mut engine, 0), expected);
    // The link drops before any SUBACK; the broker kept no session: all renewed as before.
    engine.handle_connection_lost(t(10), FailureKind::ConnectionLost, ());
    while engine.poll_action().is_some() {}
    assert_eq!(connect_and_read(&mut engine, 5_000), expected);
}

/// MQTT 5: UNSUBSCRIBE carries its properties; filters with the same properties share one.
#[test]
#[cfg(feature = "mqtt5")]
fn unsubscribes_carry_their_properties() {
    use crate::packet::{
        decode_with, Decoded, Packet, Properties, Property, PropertyList, ProtocolVersion,
    };
    let t = Instant::from_millis;
    let session = session::SessionConfig {
        client_id: "e".into(),
        protocol: ProtocolVersion::V5,
        ..session::SessionConfig::default()
    };
    // A persistent session the broker kept: there is something to unsubscribe from.
    let mut config = EngineConfig::new(session);
    config.clean_session = false;
    let mut engine: Engine<FixedDelay, ()> = Engine::new(config, FixedDelay::default(), 1, t(0));
    let why = [Property::UserProperty("why", "done")];
    // Queued while down, sent once connected.
    for filter in ["a/#", "b/#"] {
        engine
            .unsubscribe_with_properties(t(0), filter, Properties::List(&PropertyList(&why)))
            .unwrap();
    }
    engine.unsubscribe(t(0), "plain").unwrap();
    assert!(engine
        .unsubscribe_with_properties(
            t(0),
            "c",
            Properties::List(&PropertyList(&[Property::ReasonString("x")])),
        )
        .is_err());
    engine.connect(t(0));
    while engine.poll_action().is_some() {}
    engine.handle_opened(t(0));
    while engine.poll_transmit(t(0)).is_some() {}
    engine.handle_written(t(0));
    engine.handle_read(t(0), &[0x20, 0x03, 0x01, 0x00, 0x00]);
    let mut bytes = Vec::new();
    while let Some(part) = engine.poll_transmit(t(0)) {
        bytes.extend_from_slice(part);
    }
    let mut unsubscribes = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let Ok(Decoded::Complete { packet, consumed }) =
            decode_with(rest, usize::MAX, ProtocolVersion::V5)
        else {
            panic!("{rest:02x?}");
        };
        if let Packet::Unsubscribe(u) = packet {
            let filters: Vec<String> = u.topics.iter().map(|f| f.to_string()).collect();
            let user: Vec<(String, String)> = u
                .properties
                .user_properties()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            unsubscribes.push((filters, user));
        }
        rest = &rest[consumed..];
    }
    assert_eq!(
        unsubscribes,
        [
            (
                vec!["a/#".to_string(), "b/#".to_string()],
                vec![("why".to_string(), "done".to_string())]
            ),
            (vec!["plain".to_string()], vec![]),
        ]
    );
}

/// An engine on storage `S` (clean sessions, a window of 4) whose transport just opened.
fn fixed_engine_opened<S: crate::storage::Storage>(now: Instant) -> Engine<FixedDelay, (), S> {
    let mut config = EngineConfig::new(SessionConfig {
        client_id: "fixed".into(),
        max_in_flight: 4,
        ..SessionConfig::default()
    });
    config.clean_session = true;
    let mut engine = Engine::with_storage(config, FixedDelay::default(), 1, now);
    engine.handle_timeout(now);
    assert_eq!(engine.poll_action(), Some(Action::Open { server: 0 }));
    engine.handle_opened(now);
    engine
}

/// The engine, its transport open, writes its CONNECT and reads a CONNACK (clean session);
/// its events are taken.
fn connack<S: crate::storage::Storage>(engine: &mut Engine<FixedDelay, (), S>, now: Instant) {
    while engine.poll_transmit(now).is_some() {}
    engine.handle_written(now);
    engine.handle_read(now, &[0x20, 2, 0, 0]);
    while engine.poll_event().is_some() {}
    assert!(engine.is_connected());
}

/// The engine on fixed storage (12 entries, 64-byte buffers and arena): a message too large
/// for the buffers ends as `TooLarge`; the engine holds at most 5 messages (the application
/// gets `OutgoingFull` and tries again after the driver's next round); QoS 0 messages that
/// find the transmit buffer full wait in the queue and go out after the driver wrote; every
/// message settles once, and the driver drains the events after every input.
#[test]
fn on_fixed_storage_messages_wait_for_room_and_the_too_large_are_dropped() {
    let now = Instant::from_millis(0);
    let mut engine = fixed_engine_opened::<crate::storage::Fixed<12, 64>>(now);
    assert_eq!(engine.settings().max_queued, 5);
    assert_eq!(engine.settings().max_received, 3);
    assert_eq!(engine.settings().max_events, 9);
    let mut written = 0;
    while let Some(chunk) = engine.poll_transmit(now) {
        written += chunk.len();
    }
    engine.handle_written(now);
    assert!(written > 0);
    engine.handle_read(now, &[0x20, 2, 0, 0]);
    assert!(engine.is_connected());

    // The too-large one, 20 QoS 0 messages of 8 bytes (160 bytes, more than the 64-byte
    // transmit buffer), 10 QoS 1 messages (more than the session holds: 4).
    let mut to_send: Vec<(&str, Vec<u8>, QoS)> = vec![("t", vec![0; 100], QoS::AtLeastOnce)];
    to_send.extend((0..20u8).map(|n| ("t", vec![n; 3], QoS::AtMostOnce)));
    to_send.extend((0..10u8).map(|n| ("q", vec![n], QoS::AtLeastOnce)));
    let mut to_send = to_send.into_iter().peekable();
    let (mut publishes, mut rounds, mut refused) = (0, 0, 0);
    let mut too_large = None;
    let mut outcomes = Vec::new();
    loop {
        while let Some((topic, payload, qos)) = to_send.peek() {
            match engine.publish(now, topic, payload, *qos, false) {
                Ok(id) => {
                    too_large = too_large.or(Some(id));
                    to_send.next();
                }
                Err(UsageError::OutgoingFull) => {
                    refused += 1;
                    break;
                }
                Err(error) => panic!("{error}"),
            }
        }
        assert!(engine.pending() <= 5);
        assert!(engine.session().outgoing_len() <= 4);
        while let Some(event) = engine.poll_event() {
            match event {
                Event::Delivered { .. } => outcomes.push(0),
                Event::Dropped { id, reason, .. } => {
                    assert_eq!(Some(id), too_large);
                    assert_eq!(reason, DropReason::TooLarge { size: 107, max: 64 });
                    outcomes.push(1);
                }
                Event::Expired { .. } => panic!("nothing expires here"),
                _ => {}
            }
        }
        if to_send.peek().is_none() && engine.pending() == 0 {
            break;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = engine.poll_transmit(now) {
            bytes.extend_from_slice(chunk);
        }
        engine.handle_written(now);
        assert!(bytes.len() <= 64 * 5, "{} bytes in one round", bytes.len());
        // The broker acknowledges every QoS 1 PUBLISH written.
        let mut rest = &bytes[..];
        let mut acks = Vec::new();
        while let Ok(crate::packet::Decoded::Complete { packet, consumed }) =
            crate::packet::decode(rest, usize::MAX)
        {
            if let crate::packet::Packet::Publish(publish) = packet {
                publishes += 1;
                if let Some(id) = publish.packet_id {
                    acks.extend_from_slice(&[0x40, 2]);
                    acks.extend_from_slice(&id.get().to_be_bytes());
                }
            }
            rest = &rest[consumed..];
        }
        assert!(rest.is_empty());
        engine.handle_read(now, &acks);
        rounds += 1;
        assert!(rounds < 50, "stuck with {} pending", engine.pending());
    }
    assert_eq!(outcomes.iter().filter(|&&o| o == 0).count(), 30);
    assert_eq!(outcomes.iter().filter(|&&o| o == 1).count(), 1);
    assert_eq!(publishes, 30);
    assert!(refused > 0, "the engine held at most 5 messages");
    assert!(rounds > 2, "the QoS 0 messages needed several writes");
    assert_eq!(engine.session().events_lost(), 0);
    assert_eq!(engine.stats().events_overflowed, 0);
}

/// Fixed storage: one read holds more acknowledgements than the event list reports at once.
/// The engine decodes the next packet only while the list has room for all it may report,
/// and goes on as the events are taken: every SUBACK and PUBACK is reported, none discarded.
#[test]
fn on_fixed_storage_input_waits_for_room_in_the_event_list() {
    let now = Instant::from_millis(0);
    let mut engine = fixed_engine_opened::<crate::storage::Fixed<8, 128>>(now);
    connack(&mut engine, now);
    assert_eq!(engine.settings().max_events, 6);

    for n in 0..6u8 {
        let filter = std::format!("f/{n}");
        engine.subscribe(now, &filter, QoS::AtLeastOnce).unwrap();
    }
    for n in 0..2u8 {
        engine
            .publish(now, "t", &[n], QoS::AtLeastOnce, false)
            .unwrap();
    }
    // The broker answers everything in one read.
    let mut written = Vec::new();
    while let Some(chunk) = engine.poll_transmit(now) {
        written.extend_from_slice(chunk);
    }
    engine.handle_written(now);
    let mut answers = Vec::new();
    let mut rest = &written[..];
    while let Ok(crate::packet::Decoded::Complete { packet, consumed }) =
        crate::packet::decode(rest, usize::MAX)
    {
        match packet {
            crate::packet::Packet::Subscribe(subscribe) => {
                answers.extend_from_slice(&[0x90, 3]);
                answers.extend_from_slice(&subscribe.packet_id.get().to_be_bytes());
                answers.push(1);
            }
            crate::packet::Packet::Publish(publish) => {
                answers.extend_from_slice(&[0x40, 2]);
                answers.extend_from_slice(&publish.packet_id.unwrap().get().to_be_bytes());
            }
            _ => {}
        }
        rest = &rest[consumed..];
    }
    assert_eq!(answers.len(), 6 * 5 + 2 * 4);
    engine.handle_read(now, &answers);
    assert!(
        engine.session().has_unprocessed_input(),
        "input waits for room in the event list"
    );
    let (mut subscribed, mut delivered) = (0, 0);
    while let Some(event) = engine.poll_event() {
        match event {
            Event::Subscribed { filter, .. } => {
                assert_eq!(*filter, std::format!("f/{subscribed}"));
                subscribed += 1;
            }
            Event::Delivered { .. } => delivered += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((subscribed, delivered), (6, 2));
    assert!(!engine.session().has_unprocessed_input());
    assert_eq!(engine.stats().events_overflowed, 0);
    assert_eq!(engine.subscriptions().count(), 6);
}

/// Fixed storage keeps the payloads of its events in an arena of `Q` bytes: a received
/// message that would not fit beside the one waiting stays undecoded until the application
/// takes that one. Both arrive whole and in order; nothing is discarded.
#[test]
fn on_fixed_storage_received_messages_wait_for_room_for_their_payloads() {
    let now = Instant::from_millis(0);
    let mut engine = fixed_engine_opened::<crate::storage::Fixed<8, 64>>(now);
    connack(&mut engine, now);
    assert_eq!(engine.settings().max_received, 2);
    // Two QoS 0 messages of 4 + 20 bytes (topic and payload) in one read: the second
    // needs room for a whole packet (64 bytes) while the first holds 24 of the arena's 64.
    let mut read = Vec::new();
    for n in 0..2u8 {
        read.extend_from_slice(&[0x30, 26, 0, 4, b't', b'/', b'm', b'0' + n]);
        read.extend_from_slice(&[n; 20]);
    }
    assert!(read.len() <= engine.input_room());
    engine.handle_read(now, &read);
    assert!(engine.session().has_unprocessed_input());
    for n in 0..2u8 {
        let Some(Event::Message(message)) = engine.poll_event() else {
            panic!("message {n}");
        };
        assert_eq!(Received::topic(&message), std::format!("t/m{n}"));
        assert_eq!(Received::payload(&message), &[n; 20]);
        engine.handle_consumed(now, 20);
    }
    assert_eq!(engine.poll_event(), None);
    assert!(!engine.session().has_unprocessed_input());
    // Two messages of 4 + 36 bytes, one read each: the second could not be kept beside the
    // first (40 + 40 > 64); it is read, and decoded once the first is taken.
    for n in 2..4u8 {
        let mut read = std::vec![0x30, 42, 0, 4, b't', b'/', b'm', b'0' + n];
        read.extend_from_slice(&[n; 36]);
        assert!(engine.wants_read() && read.len() <= engine.input_room());
        engine.handle_read(now, &read);
    }
    assert!(engine.session().has_unprocessed_input());
    for n in 2..4u8 {
        let Some(Event::Message(message)) = engine.poll_event() else {
            panic!("message {n}");
        };
        assert_eq!(Received::payload(&message), &[n; 36]);
        engine.handle_consumed(now, 36);
    }
    assert_eq!(engine.stats().received, 4);
    assert_eq!(engine.stats().events_overflowed, 0);
}

/// Fixed storage with its message lists sized apart (`M = 1`): the engine holds one message
/// (the session one), refuses the next while it is held, and takes one again after its
/// outcome; nothing is lost.
#[test]
fn on_fixed_storage_m_bounds_the_messages_held() {
    let now = Instant::from_millis(0);
    let mut engine = fixed_engine_opened::<crate::storage::Fixed<8, 128, 128, 1>>(now);
    connack(&mut engine, now);
    assert_eq!(engine.settings().max_queued, 1);
    let first = engine
        .publish(now, "t", b"1", QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(
        engine.publish(now, "t", b"2", QoS::AtLeastOnce, false),
        Err(UsageError::OutgoingFull)
    );
    let mut written = Vec::new();
    while let Some(chunk) = engine.poll_transmit(now) {
        written.extend_from_slice(chunk);
    }
    engine.handle_written(now);
    // One PUBLISH, packet id 1.
    assert_eq!(&written[..2], &[0x32, 6]);
    engine.handle_read(now, &[0x40, 2, 0, 1]);
    assert_eq!(engine.poll_event(), Some(Event::Delivered { id: first }));
    let second = engine
        .publish(now, "t", b"2", QoS::AtLeastOnce, false)
        .unwrap();
    assert_ne!(second, first);
    assert_eq!(engine.pending(), 1);
}

/// Fixed storage with every subscription entry taken: subscribing again to a filter whose
/// SUBSCRIBE is in flight is refused (`StorageFull`) and changes nothing — the subscription is
/// still kept and granted; one to a filter already granted replaces it in its entry.
#[test]
fn on_fixed_storage_a_full_subscription_list_refuses_without_losing_one() {
    let now = Instant::from_millis(0);
    let mut engine = fixed_engine_opened::<crate::storage::Fixed<4, 128>>(now);
    connack(&mut engine, now);
    for n in 0..4u8 {
        let filter = std::format!("f/{n}");
        engine
            .subscribe(now, &filter, QoS::AtMostOnce)
            .expect(&filter);
    }
    assert_eq!(
        engine.subscribe(now, "f/4", QoS::AtMostOnce),
        Err(UsageError::StorageFull)
    );
    // "f/0" waits for its SUBACK: replacing it needs a second entry, and there is none.
    assert_eq!(
        engine.subscribe(now, "f/0", QoS::AtLeastOnce),
        Err(UsageError::StorageFull)
    );
    assert_eq!(engine.subscriptions().count(), 4);
    // The broker grants all four.
    let mut written = Vec::new();
    while let Some(chunk) = engine.poll_transmit(now) {
        written.extend_from_slice(chunk);
    }
    engine.handle_written(now);
    let mut rest = &written[..];
    let mut granted = 0;
    while let Ok(crate::packet::Decoded::Complete { packet, consumed }) =
        crate::packet::decode(rest, usize::MAX)
    {
        if let crate::packet::Packet::Subscribe(subscribe) = packet {
            let [hi, lo] = subscribe.packet_id.get().to_be_bytes();
            engine.handle_read(now, &[0x90, 3, hi, lo, 0]);
            while let Some(event) = engine.poll_event() {
                granted += usize::from(matches!(event, Event::Subscribed { .. }));
            }
        }
        rest = &rest[consumed..];
    }
    assert_eq!(granted, 4);
    // Granted, "f/0" can be replaced in place.
    engine.subscribe(now, "f/0", QoS::AtLeastOnce).unwrap();
    let kept: Vec<(&str, QoS)> = engine.subscriptions().collect();
    assert_eq!(kept.len(), 4);
    assert!(kept.contains(&("f/0", QoS::AtLeastOnce)));
}

/// MQTT 5 on fixed storage: a message's own properties are kept and sent exactly as on the
/// heap (the deadline's Message Expiry Interval added to them in a buffer of the session's
/// size, nothing allocated); properties larger than the buffers are refused at once.
#[test]
#[cfg(feature = "mqtt5")]
fn on_fixed_storage_a_messages_own_properties_go_as_on_the_heap() {
    use crate::packet::{decode_with, Decoded, Packet, Properties, Property, PropertyList};
    use crate::storage::{Fixed, Heap, Storage};

    fn sent<S: Storage>(own: &[Property<'_>]) -> Result<Vec<u8>, UsageError> {
        let now = Instant::from_millis(0);
        let mut config = EngineConfig::new(SessionConfig {
            client_id: "p".into(),
            protocol: crate::packet::ProtocolVersion::V5,
            ..SessionConfig::default()
        });
        config.clean_session = true;
        let mut engine: Engine<FixedDelay, (), S> =
            Engine::with_storage(config, FixedDelay::default(), 1, now);
        engine.handle_timeout(now);
        assert_eq!(engine.poll_action(), Some(Action::Open { server: 0 }));
        engine.handle_opened(now);
        while engine.poll_transmit(now).is_some() {}
        engine.handle_written(now);
        engine.handle_read(now, &[0x20, 3, 0, 0, 0]);
        while engine.poll_event().is_some() {}
        assert!(engine.is_connected());
        engine.publish_with_properties(
            now,
            "t",
            b"x",
            QoS::AtLeastOnce,
            false,
            Delivery::Within(Duration::from_secs(60)),
            Properties::List(&PropertyList(own)),
        )?;
        let mut bytes = Vec::new();
        while let Some(part) = engine.poll_transmit(now) {
            bytes.extend_from_slice(part);
        }
        Ok(bytes)
    }

    let own = [
        Property::UserProperty("k", "v"),
        Property::ContentType("text/plain"),
    ];
    let heap = sent::<Heap>(&own).unwrap();
    assert_eq!(sent::<Fixed<8, 128>>(&own).unwrap(), heap);
    let Ok(Decoded::Complete {
        packet: Packet::Publish(publish),
        ..
    }) = decode_with(&heap, usize::MAX, crate::packet::ProtocolVersion::V5)
    else {
        panic!("{heap:02x?}");
    };
    let properties: Vec<Property<'_>> = publish.properties.iter().collect();
    assert_eq!(
        properties,
        [own[0], own[1], Property::MessageExpiryInterval(60)]
    );

    let long = "v".repeat(200);
    let large = [Property::UserProperty("k", &long)];
    assert_eq!(sent::<Fixed<8, 128>>(&large), Err(UsageError::StorageFull));
    assert!(sent::<Heap>(&large).is_ok());
}
