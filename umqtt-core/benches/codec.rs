//! Micro benchmarks of the sans-IO core: PUBLISH encode/decode and the session's per-message
//! work. Run with `cargo bench -p umqtt-core --bench codec`; see BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use umqtt_core::packet::{decode, Decoded, Packet, PacketId, Publish, QoS};
use umqtt_core::session::{Event, Session, SessionConfig};
use umqtt_core::Instant;

const TOPIC: &str = "bench/sensor/temperature";
const SIZES: [(usize, &str); 3] = [(16, "16B"), (256, "256B"), (64 * 1024, "64KiB")];
const MAX_PACKET: usize = 1024 * 1024;

fn publish(payload: &[u8]) -> Packet<'_> {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: TOPIC,
        packet_id: PacketId::new(42),
        payload,
        properties: Default::default(),
    })
}

fn encoded(payload: &[u8]) -> Vec<u8> {
    let packet = publish(payload);
    let mut buffer = vec![0; packet.encoded_len().unwrap()];
    packet.encode(&mut buffer).unwrap();
    buffer
}

fn encode_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_publish_qos1");
    for (size, name) in SIZES {
        let payload = vec![0xA5; size];
        let mut buffer = vec![0; size + 64];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &payload, |b, payload| {
            b.iter(|| {
                let packet = publish(black_box(payload));
                black_box(packet.encode(black_box(&mut buffer)).unwrap())
            })
        });
    }
    group.finish();
}

fn decode_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_publish_qos1");
    for (size, name) in SIZES {
        let bytes = encoded(&vec![0xA5; size]);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| match decode(black_box(bytes), MAX_PACKET).unwrap() {
                Decoded::Complete { packet, consumed } => {
                    black_box(packet);
                    consumed
                }
                Decoded::Incomplete => unreachable!("a whole packet"),
            })
        });
    }
    group.finish();
}

/// A session that has sent CONNECT and received CONNACK.
fn connected_session() -> Session {
    let mut session = Session::new(SessionConfig {
        client_id: "bench".into(),
        max_packet_size: MAX_PACKET,
        ..SessionConfig::default()
    });
    let now = Instant::from_millis(0);
    session.connect(now, true).unwrap();
    let _ = session.poll_transmit(now);
    session.handle_read(now, &[0x20, 0x02, 0x00, 0x00]);
    assert!(matches!(
        session.poll_event(),
        Some(Event::Connected { .. })
    ));
    session
}

/// One received QoS 1 PUBLISH: `handle_read`, `poll_event` (decode, queue the PUBACK, report
/// the message), `poll_transmit` (the PUBACK bytes).
fn session_receive_qos1(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_receive_qos1");
    for (size, name) in SIZES {
        let bytes = encoded(&vec![0xA5; size]);
        let mut session = connected_session();
        let now = Instant::from_millis(1);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| {
                session.handle_read(now, black_box(bytes));
                match session.poll_event() {
                    Some(Event::Message(publish)) => {
                        black_box(publish.payload);
                    }
                    other => panic!("expected a message, got {other:?}"),
                }
                assert!(session.poll_event().is_none());
                let ack = session.poll_transmit(now).expect("a PUBACK");
                assert_eq!(ack.len(), 4);
                black_box(ack);
            })
        });
    }
    group.finish();
}

/// One QoS 0 publish: `publish` (validate, encode into the transmit buffer) + `poll_transmit`.
fn session_publish_qos0(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_publish_qos0");
    for (size, name) in SIZES {
        let payload = vec![0xA5; size];
        let mut session = connected_session();
        let now = Instant::from_millis(1);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(name), &payload, |b, payload| {
            b.iter(|| {
                session
                    .publish(TOPIC, black_box(payload), QoS::AtMostOnce, false)
                    .unwrap();
                black_box(session.poll_transmit(now).expect("a PUBLISH"));
            })
        });
    }
    group.finish();
}

/// One QoS 1 publish round trip inside the session: `publish` + `poll_transmit`, then the
/// PUBACK through `handle_read` + `poll_event`.
fn session_publish_qos1(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_publish_qos1");
    for (size, name) in SIZES {
        let payload = vec![0xA5; size];
        let mut session = connected_session();
        let now = Instant::from_millis(1);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(name), &payload, |b, payload| {
            b.iter(|| {
                let id = session
                    .publish(TOPIC, black_box(payload), QoS::AtLeastOnce, false)
                    .unwrap()
                    .expect("a packet id");
                black_box(session.poll_transmit(now).expect("a PUBLISH"));
                let id = id.get().to_be_bytes();
                session.handle_read(now, &[0x40, 0x02, id[0], id[1]]);
                assert!(matches!(session.poll_event(), Some(Event::Published(_))));
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    encode_publish,
    decode_publish,
    session_receive_qos1,
    session_publish_qos0,
    session_publish_qos1
);
criterion_main!(benches);
