//! Fixed-work loops over the codec and the session for instruction counting with callgrind
//! (BENCHMARKS.md, "MQTT 5 in the codec"): `valgrind --tool=callgrind <binary> MODE N` for
//! N = 0 and N = 100 000, per-operation count = difference / 100 000.
//!
//! Modes: decode_publish16, decode_publish256, decode_puback, decode_suback, encode_publish16,
//! encode_puback, session_qos0, session_qos1 (3.1.1; this part uses only API that predates
//! MQTT 5, so the same program runs against an older commit), and the same with a `v5_`
//! prefix (v5_session_qos0 and v5_session_qos1 included) plus v5_decode_publish16_props / v5_encode_publish16_props (MQTT 5),
//! and engine_qos0 / engine_qos1: the robust engine on the heap, connected, publishing one
//! message per operation (its PUBLISH taken and written, the PUBACK read, its events taken).

use std::hint::black_box;
use umqtt_core::packet::{decode, Decoded};

const MAX: usize = 1 << 20;

fn publish(payload_len: usize) -> Vec<u8> {
    // QoS 1 PUBLISH, topic bench/sensor/temperature, packet id 42.
    let topic = b"bench/sensor/temperature";
    let remaining = 2 + topic.len() + 2 + payload_len;
    let mut v = vec![0x32];
    let mut len = remaining;
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        v.push(b);
        if len == 0 {
            break;
        }
    }
    v.extend_from_slice(&[0, topic.len() as u8]);
    v.extend_from_slice(topic);
    v.extend_from_slice(&[0, 42]);
    v.extend(std::iter::repeat_n(0xA5, payload_len));
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args[1].as_str();
    let n: usize = args[2].parse().unwrap();
    if let Some(mode) = mode.strip_prefix("v5_") {
        main_v5(mode, n);
        return;
    }
    if mode.starts_with("session") {
        black_box(session_bench(n, mode == "session_qos1", false));
        return;
    }
    if mode.starts_with("engine") {
        black_box(engine_bench(n, mode == "engine_qos1"));
        return;
    }
    let bytes = match mode {
        "decode_publish16" | "encode_publish16" => publish(16),
        "decode_publish256" => publish(256),
        "decode_puback" | "encode_puback" => vec![0x40, 0x02, 0x00, 0x2A],
        "decode_suback" => vec![0x90, 0x03, 0x00, 0x2A, 0x01],
        _ => panic!("mode"),
    };
    let mut out = vec![0u8; 1024];
    let mut total = 0usize;
    if mode.starts_with("decode") {
        for _ in 0..n {
            match decode(black_box(&bytes), MAX).unwrap() {
                Decoded::Complete { packet, consumed } => {
                    black_box(packet);
                    total += consumed;
                }
                Decoded::Incomplete => unreachable!(),
            }
        }
    } else {
        let Decoded::Complete { packet, .. } = decode(&bytes, MAX).unwrap() else {
            unreachable!()
        };
        for _ in 0..n {
            total += black_box(&packet).encode(black_box(&mut out)).unwrap();
        }
    }
    black_box(total);
}

/// The robust engine (heap storage, 3.1.1) connected; per operation one message published,
/// its PUBLISH taken and written, at QoS 1 its PUBACK read; every event taken.
pub fn engine_bench(n: usize, qos1: bool) -> usize {
    use umqtt_core::robust::{Engine, EngineConfig, FixedDelay};
    use umqtt_core::session::SessionConfig;
    use umqtt_core::{Instant, QoS};
    let config = EngineConfig::new(SessionConfig {
        client_id: "bench".into(),
        max_in_flight: u16::MAX,
        ..SessionConfig::default()
    });
    let now = Instant::from_millis(0);
    let mut engine: Engine<FixedDelay, ()> = Engine::new(config, FixedDelay::default(), 1, now);
    engine.handle_timeout(now);
    while engine.poll_action().is_some() {}
    engine.handle_opened(now);
    while engine.poll_transmit(now).is_some() {}
    engine.handle_written(now);
    engine.handle_read(now, &[0x20, 0x02, 0x00, 0x00]);
    while engine.poll_event().is_some() {}
    assert!(engine.is_connected());
    let payload = [0xA5u8; 16];
    let qos = if qos1 {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    };
    let mut total = 0;
    for i in 0..n {
        engine
            .publish(
                now,
                black_box("bench/sensor/temperature"),
                black_box(&payload),
                qos,
                false,
            )
            .unwrap();
        let mut id = None;
        while let Some(bytes) = engine.poll_transmit(now) {
            total += bytes.len();
            if qos1 {
                // The packet id: the last two bytes before the payload.
                let at = bytes.len() - payload.len() - 2;
                id = Some([bytes[at], bytes[at + 1]]);
            }
        }
        engine.handle_written(now);
        if let Some([hi, lo]) = id {
            engine.handle_read(now, &[0x40, 0x02, hi, lo]);
        }
        while let Some(event) = engine.poll_event() {
            black_box(&event);
        }
        black_box(i);
    }
    total
}

/// `v5`: the same loop in MQTT 5 (the PUBACK short form is the same 4 bytes).
pub fn session_bench(n: usize, qos1: bool, v5: bool) -> usize {
    use umqtt_core::session::{Event, Session, SessionConfig};
    use umqtt_core::{Instant, QoS};
    let mut config = SessionConfig {
        client_id: "bench".into(),
        max_in_flight: u16::MAX,
        ..SessionConfig::default()
    };
    if v5 {
        config.protocol = ProtocolVersion::V5;
    }
    let mut session = Session::new(config);
    let now = Instant::from_millis(0);
    session.connect(now, true).unwrap();
    while session.poll_transmit(now).is_some() {}
    if v5 {
        session.handle_read(now, &[0x20, 0x03, 0x00, 0x00, 0x00]);
    } else {
        session.handle_read(now, &[0x20, 0x02, 0x00, 0x00]);
    }
    while let Some(e) = session.poll_event() {
        assert!(matches!(e, Event::Connected { .. }));
    }
    let payload = [0xA5u8; 16];
    let mut total = 0;
    for i in 0..n {
        let qos = if qos1 {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        let id = session
            .publish(
                black_box("bench/sensor/temperature"),
                black_box(&payload),
                qos,
                false,
            )
            .unwrap();
        while let Some(bytes) = session.poll_transmit(now) {
            total += bytes.len();
        }
        if let Some(id) = id {
            let b = id.get().to_be_bytes();
            session.handle_read(now, &[0x40, 0x02, b[0], b[1]]);
            while let Some(e) = session.poll_event() {
                black_box(&e);
            }
        }
        black_box(i);
    }
    total
}

use umqtt_core::packet::{decode_with, ProtocolVersion};

fn publish_v5(payload_len: usize, props: &[u8]) -> Vec<u8> {
    let topic = b"bench/sensor/temperature";
    let remaining = 2 + topic.len() + 2 + 1 + props.len() + payload_len;
    let mut v = vec![0x32];
    let mut len = remaining;
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        v.push(b);
        if len == 0 {
            break;
        }
    }
    v.extend_from_slice(&[0, topic.len() as u8]);
    v.extend_from_slice(topic);
    v.extend_from_slice(&[0, 42]);
    v.push(props.len() as u8);
    v.extend_from_slice(props);
    v.extend(std::iter::repeat_n(0xA5, payload_len));
    v
}

fn main_v5(mode: &str, n: usize) {
    if mode.starts_with("session") {
        black_box(session_bench(n, mode == "session_qos1", true));
        return;
    }
    // Message expiry 60 s and one user property.
    let props: &[u8] = b"\x02\x00\x00\x00\x3C\x26\x00\x01k\x00\x01v";
    let bytes = match mode {
        "decode_publish16" | "encode_publish16" => publish_v5(16, b""),
        "decode_publish16_props" | "encode_publish16_props" => publish_v5(16, props),
        "decode_publish256" => publish_v5(256, b""),
        "decode_puback" | "encode_puback" => vec![0x40, 0x02, 0x00, 0x2A],
        "decode_suback" => vec![0x90, 0x04, 0x00, 0x2A, 0x00, 0x01],
        _ => panic!("mode"),
    };
    let v5 = ProtocolVersion::V5;
    let mut out = vec![0u8; 1024];
    let mut total = 0usize;
    if mode.starts_with("decode") {
        for _ in 0..n {
            match decode_with(black_box(&bytes), MAX, v5).unwrap() {
                Decoded::Complete { packet, consumed } => {
                    black_box(packet);
                    total += consumed;
                }
                Decoded::Incomplete => unreachable!(),
            }
        }
    } else {
        let Decoded::Complete { packet, .. } = decode_with(&bytes, MAX, v5).unwrap() else {
            unreachable!()
        };
        for _ in 0..n {
            total += black_box(&packet)
                .encode_with(black_box(&mut out), v5)
                .unwrap();
        }
    }
    black_box(total);
}
