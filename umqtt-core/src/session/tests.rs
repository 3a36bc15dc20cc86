// State-machine tests on a virtual clock: a scripted broker written as bytes, no sockets.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::packet::{decode_with, Decoded};

pub(super) fn t(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

pub(super) fn config() -> SessionConfig {
    SessionConfig {
        client_id: "test".to_string(),
        keep_alive: 10,
        ..SessionConfig::default()
    }
}

/// An owned view of a packet the session sent, for assertions.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sent {
    Connect {
        clean_session: bool,
        keep_alive: u16,
    },
    Publish {
        id: Option<u16>,
        dup: bool,
        qos: QoS,
        topic: String,
        payload: Vec<u8>,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe(u16),
    Unsubscribe(u16),
    PingReq,
    Disconnect,
}

pub(super) fn sent(session: &mut Session, now: Instant) -> Vec<Sent> {
    let protocol = session.config().protocol;
    let mut bytes = Vec::new();
    while let Some(part) = session.poll_transmit(now) {
        assert!(!part.is_empty(), "poll_transmit returned an empty slice");
        bytes.extend_from_slice(part);
    }
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let Ok(Decoded::Complete { packet, consumed }) = decode_with(rest, usize::MAX, protocol)
        else {
            panic!("session wrote an invalid packet: {rest:02x?}");
        };
        rest = &rest[consumed..];
        out.push(match packet {
            Packet::Connect(c) => Sent::Connect {
                clean_session: c.clean_session,
                keep_alive: c.keep_alive,
            },
            Packet::Publish(p) => Sent::Publish {
                id: p.packet_id.map(PacketId::get),
                dup: p.dup,
                qos: p.qos,
                topic: p.topic.to_string(),
                payload: p.payload.to_vec(),
            },
            Packet::PubAck(crate::packet::Ack { packet_id: id, .. }) => Sent::PubAck(id.get()),
            Packet::PubRec(crate::packet::Ack { packet_id: id, .. }) => Sent::PubRec(id.get()),
            Packet::PubRel(crate::packet::Ack { packet_id: id, .. }) => Sent::PubRel(id.get()),
            Packet::PubComp(crate::packet::Ack { packet_id: id, .. }) => Sent::PubComp(id.get()),
            Packet::Subscribe(s) => Sent::Subscribe(s.packet_id.get()),
            Packet::Unsubscribe(u) => Sent::Unsubscribe(u.packet_id.get()),
            Packet::PingReq => Sent::PingReq,
            Packet::Disconnect(_) => Sent::Disconnect,
            other => panic!("a client never sends {other:?}"),
        });
    }
    out
}

/// Owned copies of events, so several can be collected.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ev {
    Connected(bool),
    Message {
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        dup: bool,
    },
    Published(u16),
    Refused(u16, ReasonCode),
    Discarded(u16),
    TooLarge(u16, usize, u32),
    Subscribed(u16, Vec<u8>),
    Unsubscribed(u16),
    Pong,
    Closed(CloseReason),
}

pub(super) fn events(session: &mut Session) -> Vec<Ev> {
    let mut out = Vec::new();
    while let Some(event) = session.poll_event() {
        out.push(match event {
            Event::Connected { session_present } => Ev::Connected(session_present),
            Event::Message(p) => Ev::Message {
                topic: p.topic.to_string(),
                payload: p.payload.to_vec(),
                qos: p.qos,
                dup: p.dup,
            },
            Event::Published(id) => Ev::Published(id.get()),
            Event::PublishRefused {
                packet_id,
                reason_code,
            } => Ev::Refused(packet_id.get(), reason_code),
            Event::PublishReceived(_) => continue,
            Event::PublishDiscarded(id) => Ev::Discarded(id.get()),
            Event::PublishTooLarge {
                packet_id,
                size,
                max,
            } => Ev::TooLarge(packet_id.get(), size, max),
            Event::Subscribed(s) => Ev::Subscribed(s.packet_id.get(), s.return_codes.to_vec()),
            Event::Unsubscribed(u) => Ev::Unsubscribed(u.packet_id.get()),
            Event::PingResponse => Ev::Pong,
            Event::Closed(reason) => Ev::Closed(reason),
        });
    }
    out
}

pub(super) fn feed(session: &mut Session, now: Instant, bytes: &[u8]) -> Vec<Ev> {
    session.handle_read(now, bytes);
    events(session)
}

pub(super) fn connected(config: SessionConfig) -> Session {
    let keep_alive = config.keep_alive;
    let mut session = Session::new(config);
    session.connect(t(0), true).unwrap();
    assert_eq!(
        sent(&mut session, t(0)),
        vec![Sent::Connect {
            clean_session: true,
            keep_alive
        }]
    );
    assert_eq!(
        feed(&mut session, t(1), &[0x20, 0x02, 0x00, 0x00]),
        vec![Ev::Connected(false)]
    );
    session
}

pub(super) fn publish_bytes(qos: QoS, id: u16, topic: &str, payload: &[u8]) -> Vec<u8> {
    let packet = Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: PacketId::new(id),
        payload,
        properties: Default::default(),
    });
    let mut buf = vec![0; packet.encoded_len().unwrap()];
    packet.encode(&mut buf).unwrap();
    buf
}

pub(super) fn publish_sent(id: u16, dup: bool, qos: QoS, payload: &[u8]) -> Sent {
    Sent::Publish {
        id: Some(id),
        dup,
        qos,
        topic: "t".to_string(),
        payload: payload.to_vec(),
    }
}

#[test]
fn connack_refused_closes_with_code() {
    let mut session = Session::new(config());
    session.connect(t(0), true).unwrap();
    let _ = sent(&mut session, t(0));
    assert_eq!(
        feed(&mut session, t(5), &[0x20, 0x02, 0x00, 0x05]),
        vec![Ev::Closed(CloseReason::Refused(
            ConnectReturnCode::NotAuthorized
        ))]
    );
    assert!(!session.is_connecting_or_connected());
}

#[test]
fn no_connack_times_out() {
    let mut session = Session::new(config());
    session.connect(t(0), true).unwrap();
    assert_eq!(session.poll_timeout(), Some(t(10_000)));
    session.handle_timeout(t(9_999));
    assert!(events(&mut session).is_empty());
    session.handle_timeout(t(10_000));
    assert_eq!(
        events(&mut session),
        vec![Ev::Closed(CloseReason::ConnectTimeout)]
    );
}

#[test]
fn packet_before_connack_is_protocol_error() {
    let mut session = Session::new(config());
    session.connect(t(0), true).unwrap();
    assert_eq!(
        feed(&mut session, t(1), &[0xD0, 0x00]),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::PacketBeforeConnAck(PacketType::PingResp)
        ))]
    );
}

#[test]
fn empty_client_id_needs_clean_session() {
    let mut session = Session::new(SessionConfig::default());
    assert_eq!(
        session.connect(t(0), false),
        Err(UsageError::EmptyClientIdNeedsCleanSession)
    );
    assert_eq!(session.connect(t(0), true), Ok(()));
    assert_eq!(
        session.connect(t(0), true),
        Err(UsageError::AlreadyConnected)
    );
}

#[test]
fn qos1_publish_completes_on_puback() {
    let mut session = connected(config());
    let packet_id = session
        .publish("t", b"hello", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert_eq!(
        sent(&mut session, t(2)),
        vec![publish_sent(
            packet_id.get(),
            false,
            QoS::AtLeastOnce,
            b"hello"
        )]
    );
    let ack = packet_id.get().to_be_bytes();
    assert_eq!(
        feed(&mut session, t(3), &[0x40, 0x02, ack[0], ack[1]]),
        vec![Ev::Published(packet_id.get())]
    );
    assert_eq!(session.outgoing_len(), 0);
    // A second PUBACK for the same id is ignored without harm.
    assert_eq!(
        feed(&mut session, t(4), &[0x40, 0x02, ack[0], ack[1]]),
        vec![]
    );
    assert!(session.is_connected());
}

#[test]
fn unexpected_acks_are_ignored() {
    let mut session = connected(config());
    for bytes in [
        [0x40, 2, 0, 9],
        [0x50, 2, 0, 9],
        [0x70, 2, 0, 9],
        [0xB0, 2, 0, 9],
        [0x90, 3, 0, 9],
    ] {
        let bytes: &[u8] = if bytes[0] == 0x90 {
            &[0x90, 3, 0, 9, 0]
        } else {
            &bytes
        };
        assert_eq!(feed(&mut session, t(2), bytes), vec![], "{bytes:02x?}");
    }
    assert!(session.is_connected());
    assert!(sent(&mut session, t(3)).is_empty());
}

#[test]
fn qos2_publish_handshake_never_resends_publish_after_pubrel() {
    let mut session = connected(SessionConfig {
        client_id: "c".to_string(),
        ..config()
    });
    let packet_id = session
        .publish("t", b"x", QoS::ExactlyOnce, false)
        .unwrap()
        .unwrap()
        .get();
    assert_eq!(
        sent(&mut session, t(2)),
        vec![publish_sent(packet_id, false, QoS::ExactlyOnce, b"x")]
    );
    let ack = packet_id.to_be_bytes();
    assert_eq!(
        feed(&mut session, t(3), &[0x50, 0x02, ack[0], ack[1]]),
        vec![]
    );
    assert_eq!(sent(&mut session, t(3)), vec![Sent::PubRel(packet_id)]);
    // Link drops before PUBCOMP; the broker resumes the session: PUBREL again, not PUBLISH.
    session.handle_connection_lost();
    session.connect(t(10), false).unwrap();
    let _ = sent(&mut session, t(10));
    assert_eq!(
        feed(&mut session, t(11), &[0x20, 0x02, 0x01, 0x00]),
        vec![Ev::Connected(true)]
    );
    assert_eq!(sent(&mut session, t(11)), vec![Sent::PubRel(packet_id)]);
    assert_eq!(
        feed(&mut session, t(12), &[0x70, 0x02, ack[0], ack[1]]),
        vec![Ev::Published(packet_id)]
    );
}

#[test]
fn in_flight_window_limits_and_refills() {
    let mut session = connected(SessionConfig {
        max_in_flight: 2,
        ..config()
    });
    let ids: Vec<u16> = (0..5)
        .map(|_| {
            session
                .publish("t", b"m", QoS::AtLeastOnce, false)
                .unwrap()
                .unwrap()
                .get()
        })
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        sent(&mut session, t(2)),
        vec![
            publish_sent(1, false, QoS::AtLeastOnce, b"m"),
            publish_sent(2, false, QoS::AtLeastOnce, b"m")
        ]
    );
    assert_eq!(session.in_flight(), 2);
    // Acks may come out of order; each frees one slot.
    assert_eq!(
        feed(&mut session, t(3), &[0x40, 2, 0, 2]),
        vec![Ev::Published(2)]
    );
    assert_eq!(
        sent(&mut session, t(3)),
        vec![publish_sent(3, false, QoS::AtLeastOnce, b"m")]
    );
    assert_eq!(
        feed(&mut session, t(4), &[0x40, 2, 0, 1, 0x40, 2, 0, 3]),
        vec![Ev::Published(1), Ev::Published(3)]
    );
    assert_eq!(
        sent(&mut session, t(4)),
        vec![
            publish_sent(4, false, QoS::AtLeastOnce, b"m"),
            publish_sent(5, false, QoS::AtLeastOnce, b"m")
        ]
    );
}

#[test]
fn packet_ids_wrap_and_skip_ids_in_flight() {
    let mut session = connected(config());
    let first = session
        .publish("t", b"", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert_eq!(first.get(), 1);
    session.state.next_packet_id = 65_535;
    let last = session
        .publish("t", b"", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert_eq!(last.get(), 65_535);
    // Wraps past 0 and skips 1, which is still in flight.
    let wrapped = session
        .publish("t", b"", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert_eq!(wrapped.get(), 2);
}

#[test]
fn incoming_qos1_acked_in_arrival_order() {
    let mut session = connected(config());
    let mut bytes = publish_bytes(QoS::AtLeastOnce, 7, "a", b"1");
    bytes.extend(publish_bytes(QoS::AtLeastOnce, 3, "a", b"2"));
    bytes.extend(publish_bytes(QoS::AtMostOnce, 0, "a", b"3"));
    let evs = feed(&mut session, t(2), &bytes);
    assert_eq!(evs.len(), 3);
    assert_eq!(
        sent(&mut session, t(2)),
        vec![Sent::PubAck(7), Sent::PubAck(3)]
    );
}

#[test]
fn incoming_qos2_delivered_exactly_once() {
    let mut session = connected(config());
    let message = publish_bytes(QoS::ExactlyOnce, 9, "a", b"once");
    assert_eq!(feed(&mut session, t(2), &message).len(), 1);
    assert_eq!(sent(&mut session, t(2)), vec![Sent::PubRec(9)]);
    // The broker repeats the PUBLISH (e.g. with DUP) before PUBREL: PUBREC again, no event.
    let mut duplicate = message.clone();
    duplicate[0] |= DUP_FLAG;
    assert_eq!(feed(&mut session, t(3), &duplicate), vec![]);
    assert_eq!(sent(&mut session, t(3)), vec![Sent::PubRec(9)]);
    assert_eq!(feed(&mut session, t(4), &[0x62, 2, 0, 9]), vec![]);
    assert_eq!(sent(&mut session, t(4)), vec![Sent::PubComp(9)]);
    // After release the id may be reused for a new message.
    assert_eq!(feed(&mut session, t(5), &message).len(), 1);
    // PUBREL for an unknown id still gets PUBCOMP.
    let _ = sent(&mut session, t(5));
    assert_eq!(feed(&mut session, t(6), &[0x62, 2, 0x12, 0x34]), vec![]);
    assert_eq!(sent(&mut session, t(6)), vec![Sent::PubComp(0x1234)]);
}

#[test]
fn incoming_qos2_table_survives_resumed_session() {
    let mut session = Session::new(config());
    session.connect(t(0), false).unwrap();
    let _ = feed(&mut session, t(0), &[0x20, 2, 0, 0]);
    let message = publish_bytes(QoS::ExactlyOnce, 4, "a", b"m");
    assert_eq!(feed(&mut session, t(1), &message).len(), 1);
    session.handle_connection_lost();
    session.connect(t(2), false).unwrap();
    assert_eq!(
        feed(&mut session, t(2), &[0x20, 2, 1, 0]),
        vec![Ev::Connected(true)]
    );
    // Redelivered after reconnect, still before PUBREL: not delivered twice.
    assert_eq!(feed(&mut session, t(3), &message), vec![]);
}

#[test]
fn byte_at_a_time_input_decodes() {
    let mut session = connected(config());
    let mut bytes = publish_bytes(QoS::AtLeastOnce, 5, "topic/x", b"payload");
    bytes.extend([0xD0, 0x00]);
    let mut all = Vec::new();
    for (i, byte) in bytes.iter().enumerate() {
        all.extend(feed(&mut session, t(2 + i as u64), &[*byte]));
    }
    assert_eq!(
        all,
        vec![
            Ev::Message {
                topic: "topic/x".to_string(),
                payload: b"payload".to_vec(),
                qos: QoS::AtLeastOnce,
                dup: false
            },
            Ev::Pong
        ]
    );
}

#[test]
fn malformed_input_closes_with_decode_error() {
    let mut session = connected(config());
    assert_eq!(
        feed(&mut session, t(2), &[0x40, 0x03, 0, 1, 0]),
        vec![Ev::Closed(CloseReason::Decode(
            DecodeError::InvalidLength {
                packet_type: PacketType::PubAck
            }
        ))]
    );
    assert!(!session.is_connecting_or_connected());
}

#[test]
fn oversized_packet_rejected_from_header() {
    let mut session = connected(SessionConfig {
        max_packet_size: 100,
        ..config()
    });
    // Header announces 200 bytes; only the header has arrived.
    assert_eq!(
        feed(&mut session, t(2), &[0x30, 0xC8, 0x01]),
        vec![Ev::Closed(CloseReason::PacketTooLarge {
            size: 203,
            max: 100
        })]
    );
}

#[test]
fn trickled_packet_is_no_sign_of_life() {
    // A broker starts a PUBLISH announcing 1000 bytes, then sends one byte every 2 s. With
    // keepalive 5 s the link must be declared dead 1.5 x keepalive after the last complete
    // packet (CONNACK at 1 ms), as for a silent broker.
    let mut session = connected(SessionConfig {
        keep_alive: 5,
        ..config()
    });
    let mut now = 1;
    assert!(feed(&mut session, t(now), &[0x30, 0xE8, 0x07, 0x00, 0x01, b't']).is_empty());
    let mut closed_at = None;
    let mut pings = 0;
    while now < 120_000 && closed_at.is_none() {
        // Whichever comes first: the session's next timer or the next trickled byte.
        let next_byte = now - now % 2_000 + 2_000;
        match session.poll_timeout() {
            Some(timer) if timer.as_millis() <= next_byte => {
                now = timer.as_millis();
                session.handle_timeout(t(now));
            }
            _ => {
                now = next_byte;
                session.handle_read(t(now), b"x");
            }
        }
        for ev in events(&mut session) {
            if ev == Ev::Closed(CloseReason::KeepAliveTimeout) {
                closed_at = Some(now);
            }
        }
        pings += sent(&mut session, t(now))
            .iter()
            .filter(|p| **p == Sent::PingReq)
            .count();
    }
    assert_eq!(pings, 1, "one PINGREQ, at the keepalive");
    assert_eq!(closed_at, Some(7_500), "dead at 1.5 x keepalive");
}

#[test]
fn complete_packets_keep_the_link_alive_while_a_ping_is_outstanding() {
    let mut session = connected(SessionConfig {
        keep_alive: 10,
        ..config()
    });
    session.handle_timeout(t(10_000));
    assert_eq!(sent(&mut session, t(10_000)), vec![Sent::PingReq]);
    // A whole message at 14 s: the PINGRESP may be queued behind it.
    let message = publish_bytes(QoS::AtMostOnce, 0, "t", b"hi");
    assert_eq!(feed(&mut session, t(14_000), &message).len(), 1);
    assert_eq!(session.poll_timeout(), Some(t(19_000)));
    // Half of another message at 18 s does not count.
    feed(&mut session, t(18_000), &message[..3]);
    assert_eq!(session.poll_timeout(), Some(t(19_000)));
    session.handle_timeout(t(19_000));
    assert_eq!(
        events(&mut session),
        vec![Ev::Closed(CloseReason::KeepAliveTimeout)]
    );
}

#[test]
fn link_timeout_is_one_and_a_half_keepalives() {
    let config = SessionConfig {
        keep_alive: 10,
        ..config()
    };
    assert_eq!(config.link_timeout(), Some(Duration::from_secs(15)));
    let off = SessionConfig {
        keep_alive: 0,
        ..config
    };
    assert_eq!(off.link_timeout(), None);
}

#[test]
fn server_only_packets_are_protocol_errors() {
    for bytes in [&[0xC0u8, 0x00][..], &[0xE0, 0x00], &[0x20, 0x02, 0, 0]] {
        let mut session = connected(config());
        let evs = feed(&mut session, t(2), bytes);
        assert!(
            matches!(
                evs[..],
                [Ev::Closed(CloseReason::Protocol(
                    ProtocolError::UnexpectedPacket(_)
                ))]
            ),
            "{evs:?}"
        );
    }
}

#[test]
fn client_only_packets_are_refused_from_their_fixed_header() {
    // CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ from the broker: well-formed, and with bodies
    // the decoder would call malformed (the session does not parse them: either way the type
    // alone breaks the protocol).
    let cases: [(&[u8], PacketType, bool); 8] = [
        (
            &[0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 10, 0, 0],
            PacketType::Connect,
            true,
        ),
        (&[0x10, 0x02, 0, 9], PacketType::Connect, false),
        (
            &[0x82, 0x06, 0, 1, 0, 1, b'a', 1],
            PacketType::Subscribe,
            true,
        ),
        (&[0x82, 0x02, 0, 0], PacketType::Subscribe, false),
        (
            &[0xA2, 0x05, 0, 1, 0, 1, b'a'],
            PacketType::Unsubscribe,
            true,
        ),
        (&[0xA2, 0x03, 0, 1, 0xFF], PacketType::Unsubscribe, false),
        (&[0xC0, 0x00], PacketType::PingReq, true),
        (&[0xC0, 0x01, 0], PacketType::PingReq, false),
    ];
    for (bytes, packet_type, well_formed) in cases {
        // The public decoder still parses them (a broker needs it).
        let decoded = decode_with(bytes, usize::MAX, ProtocolVersion::V311);
        assert_eq!(
            matches!(decoded, Ok(Decoded::Complete { .. })),
            well_formed,
            "{decoded:?}"
        );
        let mut session = connected(config());
        assert_eq!(
            feed(&mut session, t(2), bytes),
            vec![Ev::Closed(CloseReason::Protocol(
                ProtocolError::UnexpectedPacket(packet_type)
            ))],
            "{bytes:02x?}"
        );
        // Before CONNACK the same packet breaks that rule first [MQTT-3.2.0-1].
        let mut session = Session::new(config());
        session.connect(t(0), true).unwrap();
        assert_eq!(
            feed(&mut session, t(1), bytes),
            vec![Ev::Closed(CloseReason::Protocol(
                ProtocolError::PacketBeforeConnAck(packet_type)
            ))],
            "{bytes:02x?}"
        );
    }
    // The fixed header is still checked: reserved flags on a SUBSCRIBE are malformed.
    let mut session = connected(config());
    assert_eq!(
        feed(&mut session, t(2), &[0x80, 0x02, 0, 1]),
        vec![Ev::Closed(CloseReason::Decode(DecodeError::InvalidFlags {
            packet_type: PacketType::Subscribe,
            flags: 0
        }))]
    );
    // The next connection starts on fresh input.
    session.connect(t(3), true).unwrap();
    let _ = sent(&mut session, t(3));
    assert_eq!(
        feed(&mut session, t(4), &[0x20, 0x02, 0x00, 0x00]),
        vec![Ev::Connected(false)]
    );
}

#[test]
fn keepalive_pings_after_quiet_period_and_detects_dead_link() {
    let mut session = connected(config());
    // CONNECT was written at t=0 (last packet sent), so the first ping is due at 10 s.
    assert_eq!(session.poll_timeout(), Some(t(10_000)));
    session.handle_timeout(t(10_000));
    assert_eq!(sent(&mut session, t(10_000)), vec![Sent::PingReq]);
    assert_eq!(feed(&mut session, t(10_050), &[0xD0, 0x00]), vec![Ev::Pong]);
    // Sending resets the keepalive timer.
    session.publish("t", b"", QoS::AtMostOnce, false).unwrap();
    let _ = sent(&mut session, t(15_000));
    assert_eq!(session.poll_timeout(), Some(t(20_050)));
    session.handle_timeout(t(20_050));
    assert_eq!(sent(&mut session, t(20_050)), vec![Sent::PingReq]);
    // No PINGRESP: dead after the ping timeout (half the keepalive), i.e. 1.5 x keepalive after
    // the link went quiet.
    assert_eq!(session.poll_timeout(), Some(t(25_050)));
    session.handle_timeout(t(25_049));
    assert!(events(&mut session).is_empty());
    session.handle_timeout(t(25_050));
    assert_eq!(
        events(&mut session),
        vec![Ev::Closed(CloseReason::KeepAliveTimeout)]
    );
}

#[test]
fn keepalive_zero_never_pings() {
    let session = connected(SessionConfig {
        keep_alive: 0,
        ..config()
    });
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn resumed_session_resends_with_dup_in_order_before_new_traffic() {
    let mut session = Session::new(SessionConfig {
        max_in_flight: 3,
        ..config()
    });
    session.connect(t(0), false).unwrap();
    let _ = sent(&mut session, t(0));
    let _ = feed(&mut session, t(0), &[0x20, 2, 0, 0]);
    for payload in [b"1", b"2", b"3", b"4"] {
        session
            .publish("t", payload, QoS::AtLeastOnce, false)
            .unwrap();
    }
    let _ = sent(&mut session, t(1));
    // 2 is acked; 1 and 3 are in flight, 4 queued.
    let _ = feed(&mut session, t(2), &[0x40, 2, 0, 2]);
    session.handle_connection_lost();
    let queued_while_down = session
        .publish("t", b"5", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert_eq!(queued_while_down.get(), 5);
    session.connect(t(10), false).unwrap();
    assert_eq!(
        sent(&mut session, t(10)),
        vec![Sent::Connect {
            clean_session: false,
            keep_alive: 10
        }]
    );
    assert_eq!(
        feed(&mut session, t(11), &[0x20, 2, 1, 0]),
        vec![Ev::Connected(true)]
    );
    assert_eq!(
        sent(&mut session, t(11)),
        vec![
            publish_sent(1, true, QoS::AtLeastOnce, b"1"),
            publish_sent(3, true, QoS::AtLeastOnce, b"3"),
            publish_sent(4, true, QoS::AtLeastOnce, b"4"),
        ]
    );
}

#[test]
fn lost_session_republishes_as_new_messages() {
    let mut session = Session::new(config());
    session.connect(t(0), false).unwrap();
    let _ = feed(&mut session, t(0), &[0x20, 2, 0, 0]);
    session.publish("t", b"a", QoS::AtLeastOnce, false).unwrap();
    session.publish("t", b"b", QoS::ExactlyOnce, false).unwrap();
    let _ = sent(&mut session, t(1));
    let _ = feed(&mut session, t(2), &[0x50, 2, 0, 2]); // PUBREC for b
    session.handle_connection_lost();
    session.connect(t(10), false).unwrap();
    let _ = sent(&mut session, t(10));
    assert_eq!(
        feed(&mut session, t(11), &[0x20, 2, 0, 0]),
        vec![Ev::Connected(false)]
    );
    assert_eq!(
        sent(&mut session, t(11)),
        vec![
            publish_sent(1, false, QoS::AtLeastOnce, b"a"),
            publish_sent(2, false, QoS::ExactlyOnce, b"b")
        ]
    );
}

#[test]
fn clean_session_discards_and_reports() {
    let mut session = Session::new(config());
    session.connect(t(0), false).unwrap();
    let _ = feed(&mut session, t(0), &[0x20, 2, 0, 0]);
    session.publish("t", b"a", QoS::AtLeastOnce, false).unwrap();
    session.handle_connection_lost();
    session.connect(t(10), true).unwrap();
    assert_eq!(events(&mut session), vec![Ev::Discarded(1)]);
    assert_eq!(session.outgoing_len(), 0);
}

#[test]
fn session_present_on_clean_session_is_protocol_error() {
    let mut session = Session::new(config());
    session.connect(t(0), true).unwrap();
    assert_eq!(
        feed(&mut session, t(1), &[0x20, 2, 1, 0]),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::SessionPresentOnCleanSession
        ))]
    );
}

#[test]
fn subscribe_and_unsubscribe_acks() {
    let mut session = connected(config());
    let sub = session
        .subscribe(&[("a/#", QoS::AtLeastOnce), ("b", QoS::ExactlyOnce)])
        .unwrap()
        .get();
    let unsub = session.unsubscribe(&["a/#"]).unwrap().get();
    assert_eq!(
        sent(&mut session, t(2)),
        vec![Sent::Subscribe(sub), Sent::Unsubscribe(unsub)]
    );
    assert_eq!(
        feed(&mut session, t(3), &[0x90, 4, 0, sub as u8, 1, 0x80]),
        vec![Ev::Subscribed(sub, vec![1, 0x80])]
    );
    assert_eq!(
        feed(&mut session, t(3), &[0xB0, 2, 0, unsub as u8]),
        vec![Ev::Unsubscribed(unsub)]
    );
    assert_eq!(session.subscribe(&[]), Err(UsageError::NoTopicFilters));
    assert_eq!(
        session.subscribe(&[("a/#/b", QoS::AtMostOnce)]),
        Err(UsageError::InvalidTopicFilter(
            TopicError::MisplacedMultiLevelWildcard
        ))
    );
}

#[test]
fn suback_count_mismatch_is_protocol_error() {
    let mut session = connected(config());
    let sub = session
        .subscribe(&[("a", QoS::AtLeastOnce), ("b", QoS::AtLeastOnce)])
        .unwrap()
        .get();
    assert_eq!(
        feed(&mut session, t(3), &[0x90, 3, 0, sub as u8, 1]),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::SubAckCountMismatch
        ))]
    );
}

#[test]
fn qos0_needs_connection_but_qos1_queues() {
    let mut session = Session::new(config());
    assert_eq!(
        session.publish("t", b"", QoS::AtMostOnce, false),
        Err(UsageError::NotConnected)
    );
    assert!(session
        .publish("t", b"", QoS::AtLeastOnce, false)
        .unwrap()
        .is_some());
    assert_eq!(
        session.publish("a/+", b"", QoS::AtLeastOnce, false),
        Err(UsageError::InvalidTopicName(TopicError::WildcardInName))
    );
}

#[test]
fn disconnect_writes_e0_00() {
    let mut session = connected(config());
    session.disconnect().unwrap();
    assert_eq!(session.poll_transmit(t(2)), Some(&[0xE0, 0x00][..]));
    assert_eq!(
        events(&mut session),
        vec![Ev::Closed(CloseReason::Disconnected)]
    );
}

#[test]
fn cancel_publish_frees_window_but_keeps_released_qos2() {
    let mut session = connected(SessionConfig {
        max_in_flight: 1,
        ..config()
    });
    let a = session
        .publish("t", b"a", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    let b = session
        .publish("t", b"b", QoS::ExactlyOnce, false)
        .unwrap()
        .unwrap();
    let _ = sent(&mut session, t(1));
    assert!(session.cancel_publish(a));
    assert!(!session.cancel_publish(a), "already gone");
    // The window slot went to b.
    assert_eq!(
        sent(&mut session, t(2)),
        vec![publish_sent(b.get(), false, QoS::ExactlyOnce, b"b")]
    );
    let id = b.get().to_be_bytes();
    let _ = feed(&mut session, t(3), &[0x50, 2, id[0], id[1]]);
    assert!(
        !session.cancel_publish(b),
        "after PUBREC only PUBREL may follow"
    );
    assert_eq!(session.outgoing_len(), 1);
    // A PUBACK for the cancelled id is ignored, and the id is not reused on this connection.
    assert_eq!(
        feed(&mut session, t(4), &[0x40, 2, 0, a.get() as u8]),
        vec![]
    );
    session.state.next_packet_id = a.get();
    let c = session
        .publish("t", b"c", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert_ne!(c, a);
}

/// Issue 9 item 9: a QoS 2 PUBLISH that was sent may sit in the broker's QoS 2 table even
/// though its PUBREC never arrived; cancelling it would free its id for a new message the
/// broker would then take for a duplicate and drop. It stays (and completes) instead, also
/// across connections; an unsent QoS 2 message can still be withdrawn.
#[test]
fn a_sent_qos2_message_is_never_cancelled() {
    let mut session = connected(SessionConfig {
        max_in_flight: 1,
        ..config()
    });
    let sent_one = session
        .publish("t", b"a", QoS::ExactlyOnce, false)
        .unwrap()
        .unwrap();
    let unsent = session
        .publish("t", b"b", QoS::ExactlyOnce, false)
        .unwrap()
        .unwrap();
    let _ = sent(&mut session, t(1));
    assert!(!session.can_cancel(sent_one));
    assert!(
        !session.cancel_publish(sent_one),
        "the broker may hold its id"
    );
    session.handle_connection_lost();
    assert!(
        !session.cancel_publish(sent_one),
        "nor after the link is gone"
    );
    assert!(
        session.cancel_publish(unsent),
        "never sent: free to withdraw"
    );
    assert_eq!(session.outgoing_len(), 1);
}

#[test]
fn restored_messages_resend_with_dup_and_same_id_on_resumed_session() {
    let mut session = Session::new(config());
    let publish = |payload: &'static [u8]| Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "t",
        packet_id: None,
        payload,
        properties: Default::default(),
    };
    session
        .restore_publish(PacketId::new(7).unwrap(), &publish(b"a"), true)
        .unwrap();
    session
        .restore_publish(PacketId::new(9).unwrap(), &publish(b"b"), true)
        .unwrap();
    assert!(
        session
            .restore_publish(PacketId::new(7).unwrap(), &publish(b"c"), true)
            .is_err(),
        "id in use"
    );
    session.connect(t(0), false).unwrap();
    let _ = sent(&mut session, t(0));
    assert_eq!(
        feed(&mut session, t(1), &[0x20, 2, 1, 0]),
        vec![Ev::Connected(true)]
    );
    assert_eq!(
        sent(&mut session, t(1)),
        vec![
            publish_sent(7, true, QoS::AtLeastOnce, b"a"),
            publish_sent(9, true, QoS::AtLeastOnce, b"b")
        ]
    );
    // New messages never collide with restored ids.
    let next = session
        .publish("t", b"n", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert!(next.get() != 7 && next.get() != 9);
    assert!(
        session
            .restore_publish(PacketId::new(11).unwrap(), &publish(b"x"), false)
            .is_err(),
        "only while disconnected"
    );
}

/// Found by the engine fuzz target: a PUBACK in the same input as the CONNACK that lets a
/// queued PUBLISH go out cannot be for it (the driver has not written it yet); it is
/// ignored, and the message completes with the PUBACK that follows its sending.
#[test]
fn an_ack_in_the_same_input_as_the_release_of_its_publish_is_ignored() {
    let mut session = Session::new(config());
    let id = session
        .publish("t", b"x", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    session.connect(t(0), false).unwrap();
    let _ = sent(&mut session, t(0));
    let [hi, lo] = id.get().to_be_bytes();
    // CONNACK (no session) and a PUBACK for the id, in one read.
    let events = feed(
        &mut session,
        t(1),
        &[0x20, 0x02, 0x00, 0x00, 0x40, 0x02, hi, lo],
    );
    assert_eq!(events, vec![Ev::Connected(false)]);
    assert_eq!(
        session.outgoing_len(),
        1,
        "not completed before it was written"
    );
    assert_eq!(
        sent(&mut session, t(1)),
        vec![publish_sent(id.get(), false, QoS::AtLeastOnce, b"x")]
    );
    assert_eq!(
        feed(&mut session, t(2), &[0x40, 0x02, hi, lo]),
        vec![Ev::Published(id.get())]
    );
}
