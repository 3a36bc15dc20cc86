//! Session tests that only hold on the heap: packets larger than 64 KiB sent from their
//! stored copy, buffers that shrink back, the pool of spare buffers, all 65 535 packet ids in
//! use. (`tests.rs` runs on both storages.)

use alloc::vec;
use alloc::vec::Vec;

use super::tests::{config, connected, feed, publish_bytes, publish_sent, sent, t, Ev};
use super::*;
use crate::storage::SPARE_PACKETS_CAPACITY;

#[test]
fn cancelled_large_publish_is_skipped_before_it_is_sent() {
    let mut session = connected(config());
    let big = vec![7u8; 200 * 1024];
    let id = session
        .publish("t", &big, QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    session.publish("t", b"b", QoS::AtLeastOnce, false).unwrap();
    assert!(session.cancel_publish(id));
    assert_eq!(
        sent(&mut session, t(2)),
        vec![publish_sent(2, false, QoS::AtLeastOnce, b"b")]
    );
}

#[test]
fn large_publish_is_sent_from_its_stored_copy_in_order_with_dup_on_resend() {
    let mut session = connected(SessionConfig {
        max_in_flight: 10,
        ..config()
    });
    let big = vec![7u8; 200 * 1024];
    session.publish("t", b"a", QoS::AtLeastOnce, false).unwrap();
    session.publish("t", &big, QoS::AtLeastOnce, false).unwrap();
    session.publish("t", b"b", QoS::AtLeastOnce, false).unwrap();
    // Three slices: the small PUBLISH, the large one from its stored buffer, the small one.
    let parts: Vec<usize> =
        core::iter::from_fn(|| session.poll_transmit(t(2)).map(<[u8]>::len)).collect();
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert!(parts[1] > 200 * 1024);
    // Nothing of the large payload was copied into the transmit buffer.
    assert!(
        session.state.tx.capacity() < 1024,
        "{}",
        session.state.tx.capacity()
    );

    // Resent with DUP on a resumed session, same order.
    session.handle_connection_lost();
    session.connect(t(3), false).unwrap();
    let _ = sent(&mut session, t(3));
    feed(&mut session, t(4), &[0x20, 0x02, 0x01, 0x00]);
    assert_eq!(
        sent(&mut session, t(4)),
        vec![
            publish_sent(1, true, QoS::AtLeastOnce, b"a"),
            publish_sent(2, true, QoS::AtLeastOnce, &big),
            publish_sent(3, true, QoS::AtLeastOnce, b"b"),
        ]
    );
    // A lost session republishes them as new messages: DUP clear again.
    session.handle_connection_lost();
    session.connect(t(5), false).unwrap();
    let _ = sent(&mut session, t(5));
    feed(&mut session, t(6), &[0x20, 0x02, 0x00, 0x00]);
    assert_eq!(
        sent(&mut session, t(6)),
        vec![
            publish_sent(1, false, QoS::AtLeastOnce, b"a"),
            publish_sent(2, false, QoS::AtLeastOnce, &big),
            publish_sent(3, false, QoS::AtLeastOnce, b"b"),
        ]
    );
}

#[test]
fn large_packet_accepted_when_the_limit_is_raised_and_buffer_shrinks_after() {
    const SIZE: usize = 8 * 1024 * 1024;
    let mut session = connected(SessionConfig {
        max_packet_size: SIZE + 16,
        ..config()
    });
    let payload = vec![0xA5; SIZE];
    let bytes = publish_bytes(QoS::AtMostOnce, 0, "t", &payload);
    let mut evs = Vec::new();
    for chunk in bytes.chunks(16 * 1024) {
        evs.extend(feed(&mut session, t(2), chunk));
    }
    assert_eq!(evs.len(), 1);
    assert!(matches!(&evs[0], Ev::Message { payload: p, .. } if p.len() == SIZE));
    // Idle again: the 8 MiB receive buffer is given back at the next drain.
    assert!(session.poll_event().is_none());
    assert!(
        session.rx.capacity() <= BUFFER_KEEP,
        "rx kept {} bytes",
        session.rx.capacity()
    );
    // And it still decodes what follows.
    assert_eq!(feed(&mut session, t(3), &[0xD0, 0x00]), vec![Ev::Pong]);
}

#[test]
fn packet_ids_exhausted_is_an_error() {
    let mut session = connected(SessionConfig {
        max_outgoing: 70_000,
        max_in_flight: 1,
        ..config()
    });
    for _ in 0..65_535 {
        session.publish("t", b"", QoS::AtLeastOnce, false).unwrap();
    }
    assert_eq!(
        session.publish("t", b"", QoS::AtLeastOnce, false),
        Err(UsageError::OutgoingFull)
    );
    assert_eq!(
        session.subscribe(&[("a", QoS::AtMostOnce)]),
        Err(UsageError::OutgoingFull)
    );
}

#[test]
fn payload_too_large_for_mqtt_is_refused_before_copying() {
    let mut session = connected(config());
    let max = crate::packet::max_payload_len("t", QoS::AtLeastOnce);
    assert_eq!(max, crate::packet::MAX_REMAINING_LENGTH - 5);
    // A zero-filled allocation the OS maps lazily: the session must not copy it.
    let payload = vec![0u8; crate::packet::MAX_REMAINING_LENGTH - 2];
    assert_eq!(
        session.publish("t", &payload[..max + 1], QoS::AtLeastOnce, false),
        Err(UsageError::PayloadTooLarge { size: max + 1, max })
    );
    assert_eq!(
        session.publish("t", &payload, QoS::AtMostOnce, false),
        Err(UsageError::PayloadTooLarge {
            size: crate::packet::MAX_REMAINING_LENGTH - 2,
            max: crate::packet::MAX_REMAINING_LENGTH - 3
        })
    );
    assert_eq!(session.outgoing_len(), 0);
    assert_eq!(session.state.packets.spare().0, 0);
    assert_eq!(session.state.tx.capacity(), session.state.tx.len());
}

#[test]
fn spare_buffer_pool_is_bounded() {
    let mut session = connected(SessionConfig {
        max_in_flight: 100,
        ..config()
    });
    let payload = vec![1u8; 200 * 1024];
    let ids: Vec<PacketId> = (0..20)
        .map(|_| {
            session
                .publish("t", &payload, QoS::AtLeastOnce, false)
                .unwrap()
                .unwrap()
        })
        .collect();
    let _ = sent(&mut session, t(2));
    for id in ids {
        let [hi, lo] = id.get().to_be_bytes();
        feed(&mut session, t(3), &[0x40, 0x02, hi, lo]);
    }
    assert_eq!(session.outgoing_len(), 0);
    let (buffers, pooled, counted) = session.state.packets.spare();
    assert!(pooled <= SPARE_PACKETS_CAPACITY, "{pooled} bytes pooled");
    assert_eq!(pooled, counted);
    assert!(buffers > 0, "small bursts still reuse buffers");
    // The transmit buffer that held 4 MiB of PUBLISH shrinks when next used.
    session.publish("t", b"x", QoS::AtMostOnce, false).unwrap();
    assert!(session.state.tx.capacity() <= BUFFER_KEEP);
}
