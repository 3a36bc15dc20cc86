//! Property tests: every valid packet of the 14 types survives `encode` → `decode`, however the
//! bytes arrive (all at once, in prefixes, one byte at a time, several packets back to back),
//! plus the remaining-length boundaries of `[MQTT-2.2.3]`.

use proptest::prelude::*;
use umqtt_core::packet::{
    decode, encode_publish_header, ConnAck, Connect, ConnectReturnCode, DecodeError, Decoded,
    EncodeError, LastWill, Packet, PacketId, ProtocolVersion, Publish, QoS, SubAck, Subscribe,
    SubscribeTopics, Unsubscribe, UnsubscribeTopics, MAX_REMAINING_LENGTH,
};
use umqtt_core::topic::{validate_topic_filter, validate_topic_name};

// ---------------------------------------------------------------------------------------------
// An owned model of a packet, so proptest can generate and shrink it; `Packet` borrows from it.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct OwnedWill {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
}

#[derive(Debug, Clone)]
enum Owned {
    Connect {
        protocol: ProtocolVersion,
        client_id: String,
        keep_alive: u16,
        clean_session: bool,
        will: Option<OwnedWill>,
        username: Option<String>,
        password: Option<Vec<u8>>,
    },
    ConnAck(ConnAck<'static>),
    Publish {
        dup: bool,
        qos: QoS,
        retain: bool,
        topic: String,
        packet_id: Option<PacketId>,
        payload: Vec<u8>,
    },
    PubAck(PacketId),
    PubRec(PacketId),
    PubRel(PacketId),
    PubComp(PacketId),
    Subscribe(PacketId, Vec<(String, QoS)>),
    SubAck(PacketId, Vec<u8>),
    Unsubscribe(PacketId, Vec<String>),
    UnsubAck(PacketId),
    PingReq,
    PingResp,
    Disconnect,
}

impl Owned {
    /// Calls `f` with the borrowed packet this model describes.
    fn with_packet<R>(&self, f: impl FnOnce(Packet<'_>) -> R) -> R {
        match self {
            Owned::Connect {
                protocol,
                client_id,
                keep_alive,
                clean_session,
                will,
                username,
                password,
            } => f(Packet::Connect(Connect {
                protocol: *protocol,
                client_id,
                keep_alive: *keep_alive,
                clean_session: *clean_session,
                will: will.as_ref().map(|w| LastWill {
                    topic: &w.topic,
                    payload: &w.payload,
                    qos: w.qos,
                    retain: w.retain,
                    properties: Default::default(),
                }),
                username: username.as_deref(),
                password: password.as_deref(),
                properties: Default::default(),
            })),
            Owned::ConnAck(ack) => f(Packet::ConnAck(*ack)),
            Owned::Publish {
                dup,
                qos,
                retain,
                topic,
                packet_id,
                payload,
            } => f(Packet::Publish(Publish {
                dup: *dup,
                qos: *qos,
                retain: *retain,
                topic,
                packet_id: *packet_id,
                payload,
                properties: Default::default(),
            })),
            Owned::PubAck(id) => f(Packet::PubAck(umqtt_core::packet::Ack::new(*id))),
            Owned::PubRec(id) => f(Packet::PubRec(umqtt_core::packet::Ack::new(*id))),
            Owned::PubRel(id) => f(Packet::PubRel(umqtt_core::packet::Ack::new(*id))),
            Owned::PubComp(id) => f(Packet::PubComp(umqtt_core::packet::Ack::new(*id))),
            Owned::Subscribe(packet_id, topics) => {
                let list: Vec<(&str, QoS)> = topics.iter().map(|(t, q)| (t.as_str(), *q)).collect();
                f(Packet::Subscribe(Subscribe {
                    packet_id: *packet_id,
                    topics: SubscribeTopics::List(&list),
                    properties: Default::default(),
                }))
            }
            Owned::SubAck(packet_id, codes) => f(Packet::SubAck(SubAck {
                packet_id: *packet_id,
                return_codes: codes,
                properties: Default::default(),
            })),
            Owned::Unsubscribe(packet_id, topics) => {
                let list: Vec<&str> = topics.iter().map(String::as_str).collect();
                f(Packet::Unsubscribe(Unsubscribe {
                    packet_id: *packet_id,
                    topics: UnsubscribeTopics::List(&list),
                    properties: Default::default(),
                }))
            }
            Owned::UnsubAck(id) => f(Packet::UnsubAck(umqtt_core::packet::UnsubAck::new(*id))),
            Owned::PingReq => f(Packet::PingReq),
            Owned::PingResp => f(Packet::PingResp),
            Owned::Disconnect => f(Packet::Disconnect(umqtt_core::packet::Disconnect::NORMAL)),
        }
    }

    /// The encoded bytes, in a buffer sized by `encoded_len`.
    fn encode(&self) -> Vec<u8> {
        self.with_packet(|packet| {
            let len = packet.encoded_len().expect("generated packets are valid");
            let mut buf = vec![0u8; len];
            assert_eq!(packet.encode(&mut buf), Ok(len));
            buf
        })
    }
}

/// Asserts that a decoded packet is the one that was encoded. Decoded SUBSCRIBE/UNSUBSCRIBE
/// carry their payload bytes rather than the caller's list, so those compare through `iter()`.
fn assert_same(decoded: &Packet<'_>, expected: &Packet<'_>) {
    match (decoded, expected) {
        (Packet::Subscribe(a), Packet::Subscribe(b)) => {
            assert_eq!(a.packet_id, b.packet_id);
            assert!(matches!(a.topics, SubscribeTopics::Encoded(_)));
            assert_eq!(
                a.topics.iter().collect::<Vec<_>>(),
                b.topics.iter().collect::<Vec<_>>()
            );
        }
        (Packet::Unsubscribe(a), Packet::Unsubscribe(b)) => {
            assert_eq!(a.packet_id, b.packet_id);
            assert!(matches!(a.topics, UnsubscribeTopics::Encoded(_)));
            assert_eq!(
                a.topics.iter().collect::<Vec<_>>(),
                b.topics.iter().collect::<Vec<_>>()
            );
        }
        (Packet::SubAck(a), Packet::SubAck(b)) => {
            assert_eq!(a.packet_id, b.packet_id);
            assert_eq!(a.return_codes, b.return_codes);
            assert_eq!(a.codes().collect::<Vec<_>>(), b.codes().collect::<Vec<_>>());
        }
        _ => assert_eq!(decoded, expected),
    }
}

/// Decodes `bytes` expecting exactly one whole packet equal to `owned`.
fn assert_decodes_to(bytes: &[u8], owned: &Owned) {
    match decode(bytes, usize::MAX) {
        Ok(Decoded::Complete { packet, consumed }) => {
            assert_eq!(consumed, bytes.len());
            owned.with_packet(|expected| assert_same(&packet, &expected));
        }
        other => panic!("expected a complete packet, got {other:?} for {owned:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------------

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    prop_oneof![
        1 => Just(1u16),
        1 => Just(u16::MAX),
        8 => 1u16..=u16::MAX,
    ]
    .prop_map(|v| PacketId::new(v).unwrap())
}

/// Any UTF-8 string without U+0000, mostly short, sometimes long enough for a 2-byte length.
fn mqtt_string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[^\u{0}]{0,12}",
        2 => "[a-zA-Z0-9_-]{0,23}",
        1 => "[^\u{0}]{100,300}",
    ]
}

/// One level of a topic: no separator, no wildcard, no U+0000; may be empty.
fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9]{0,6}",
        2 => "[^\u{0}+#/]{0,6}",
        1 => Just("$SYS".to_string()),
    ]
}

fn topic_name() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..6)
        .prop_map(|levels| levels.join("/"))
        .prop_map(|t| if t.is_empty() { "/".to_string() } else { t })
        .prop_map(|t| {
            assert_eq!(validate_topic_name(&t), Ok(()), "{t:?}");
            t
        })
}

fn topic_filter() -> impl Strategy<Value = String> {
    let filter_level = prop_oneof![3 => level(), 1 => Just("+".to_string())];
    (prop::collection::vec(filter_level, 0..6), any::<bool>())
        .prop_map(|(mut levels, hash)| {
            if hash || levels.is_empty() {
                levels.push("#".to_string());
            }
            let f = levels.join("/");
            if f.is_empty() {
                "/".to_string()
            } else {
                f
            }
        })
        .prop_map(|f| {
            assert_eq!(validate_topic_filter(&f), Ok(()), "{f:?}");
            f
        })
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..16),
        3 => prop::collection::vec(any::<u8>(), 0..400),
        1 => prop::collection::vec(any::<u8>(), 0..20_000),
    ]
}

/// Binary fields in CONNECT are limited to 65535 bytes; keep them small.
fn binary() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

fn will() -> impl Strategy<Value = OwnedWill> {
    (topic_name(), binary(), qos(), any::<bool>()).prop_map(|(topic, payload, qos, retain)| {
        OwnedWill {
            topic,
            payload,
            qos,
            retain,
        }
    })
}

fn connect() -> impl Strategy<Value = Owned> {
    (
        prop_oneof![Just(ProtocolVersion::V311), Just(ProtocolVersion::V31)],
        mqtt_string(),
        any::<u16>(),
        any::<bool>(),
        prop::option::of(will()),
        prop::option::of(mqtt_string()),
        prop::option::of(binary()),
    )
        .prop_map(
            |(protocol, client_id, keep_alive, clean_session, will, username, password)| {
                // A password needs a user name [MQTT-3.1.2-22].
                let password = if username.is_some() { password } else { None };
                Owned::Connect {
                    protocol,
                    client_id,
                    keep_alive,
                    clean_session,
                    will,
                    username,
                    password,
                }
            },
        )
}

fn connack() -> impl Strategy<Value = Owned> {
    (0u8..=5, any::<bool>()).prop_map(|(code, session_present)| {
        let code = ConnectReturnCode::from_u8(code).unwrap();
        Owned::ConnAck(ConnAck::new(
            session_present && code == ConnectReturnCode::Accepted,
            code,
        ))
    })
}

fn publish() -> impl Strategy<Value = Owned> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        packet_id(),
        payload(),
    )
        .prop_map(|(qos, dup, retain, topic, id, payload)| {
            let qos0 = qos == QoS::AtMostOnce;
            Owned::Publish {
                dup: dup && !qos0,
                qos,
                retain,
                topic,
                packet_id: if qos0 { None } else { Some(id) },
                payload,
            }
        })
}

fn suback_code() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), Just(1), Just(2), Just(0x80)]
}

fn any_packet() -> impl Strategy<Value = Owned> {
    prop_oneof![
        connect(),
        connack(),
        publish(),
        packet_id().prop_map(Owned::PubAck),
        packet_id().prop_map(Owned::PubRec),
        packet_id().prop_map(Owned::PubRel),
        packet_id().prop_map(Owned::PubComp),
        (
            packet_id(),
            prop::collection::vec((topic_filter(), qos()), 1..8)
        )
            .prop_map(|(id, topics)| Owned::Subscribe(id, topics)),
        (packet_id(), prop::collection::vec(suback_code(), 1..12))
            .prop_map(|(id, codes)| Owned::SubAck(id, codes)),
        (packet_id(), prop::collection::vec(topic_filter(), 1..8))
            .prop_map(|(id, topics)| Owned::Unsubscribe(id, topics)),
        packet_id().prop_map(Owned::UnsubAck),
        Just(Owned::PingReq),
        Just(Owned::PingResp),
        Just(Owned::Disconnect),
    ]
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// encode → decode gives the same packet, consuming exactly the encoded bytes.
    #[test]
    fn roundtrip(owned in any_packet()) {
        let bytes = owned.encode();
        assert_decodes_to(&bytes, &owned);
        // Encoding writes only `encoded_len` bytes, even into a larger buffer.
        owned.with_packet(|packet| {
            let mut big = vec![0xAAu8; bytes.len() + 7];
            assert_eq!(packet.encode(&mut big), Ok(bytes.len()));
            assert_eq!(&big[..bytes.len()], &bytes[..]);
            assert!(big[bytes.len()..].iter().all(|&b| b == 0xAA));
        });
        // Bytes after the packet are not part of it.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0xFF, 0x00, 0x13]);
        match decode(&longer, usize::MAX) {
            Ok(Decoded::Complete { consumed, .. }) => prop_assert_eq!(consumed, bytes.len()),
            other => prop_assert!(false, "{:?}", other),
        }
        // A maximum equal to the size is enough; one less is not.
        let fits = matches!(decode(&bytes, bytes.len()), Ok(Decoded::Complete { .. }));
        prop_assert!(fits);
        prop_assert_eq!(
            decode(&bytes, bytes.len() - 1),
            Err(DecodeError::PacketTooLarge { size: bytes.len(), max: bytes.len() - 1 })
        );
    }

    /// Every strict prefix of an encoded packet is `Incomplete`: never an error, never a panic.
    #[test]
    fn strict_prefixes_are_incomplete(owned in any_packet()) {
        let bytes = owned.encode();
        for end in 0..bytes.len() {
            prop_assert_eq!(decode(&bytes[..end], usize::MAX), Ok(Decoded::Incomplete), "prefix of {} bytes", end);
        }
    }

    /// Several packets back to back decode one after another.
    #[test]
    fn concatenated_packets(packets in prop::collection::vec(any_packet(), 1..8)) {
        let encoded: Vec<Vec<u8>> = packets.iter().map(Owned::encode).collect();
        let stream = encoded.concat();
        let mut rest = &stream[..];
        for (owned, bytes) in packets.iter().zip(&encoded) {
            match decode(rest, usize::MAX) {
                Ok(Decoded::Complete { packet, consumed }) => {
                    prop_assert_eq!(consumed, bytes.len());
                    owned.with_packet(|expected| assert_same(&packet, &expected));
                    rest = &rest[consumed..];
                }
                other => prop_assert!(false, "{:?} for {:?}", other, owned),
            }
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(decode(rest, usize::MAX), Ok(Decoded::Incomplete));
    }

    /// A stream fed one byte at a time yields each packet exactly when its last byte arrives.
    #[test]
    fn byte_at_a_time(packets in prop::collection::vec(any_packet(), 1..5)) {
        let encoded: Vec<Vec<u8>> = packets.iter().map(Owned::encode).collect();
        let stream = encoded.concat();
        let mut buffer: Vec<u8> = Vec::new();
        let mut next = 0;
        let mut since_last = 0;
        for &byte in &stream {
            buffer.push(byte);
            since_last += 1;
            match decode(&buffer, usize::MAX) {
                Ok(Decoded::Incomplete) => {
                    prop_assert!(since_last < encoded[next].len());
                }
                Ok(Decoded::Complete { packet, consumed }) => {
                    prop_assert_eq!(since_last, encoded[next].len());
                    prop_assert_eq!(consumed, buffer.len());
                    packets[next].with_packet(|expected| assert_same(&packet, &expected));
                    buffer.clear();
                    since_last = 0;
                    next += 1;
                }
                Err(e) => prop_assert!(false, "{:?} for {:?}", e, packets[next]),
            }
        }
        prop_assert_eq!(next, packets.len());
        prop_assert!(buffer.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Remaining-length boundaries [MQTT-2.2.3], table 2.4.
// ---------------------------------------------------------------------------------------------

/// A QoS 0 PUBLISH on topic "t" has a variable header of 3 bytes.
const TOPIC_HEADER: usize = 3;

/// Encodes a QoS 0 PUBLISH with remaining length `remaining`, checks the length bytes, and
/// decodes it back.
fn check_publish_boundary(remaining: usize, length_bytes: &[u8]) {
    let payload = vec![0x5Au8; remaining - TOPIC_HEADER];
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t",
        packet_id: None,
        payload: &payload,
        properties: Default::default(),
    };
    let packet = Packet::Publish(publish);
    let total = 1 + length_bytes.len() + remaining;
    assert_eq!(packet.encoded_len(), Ok(total), "remaining {remaining}");
    let mut buf = vec![0u8; total];
    assert_eq!(packet.encode(&mut buf), Ok(total));
    assert_eq!(buf[0], 0x30);
    assert_eq!(
        &buf[1..1 + length_bytes.len()],
        length_bytes,
        "remaining {remaining}"
    );
    let rest = &buf[1 + length_bytes.len()..];
    assert_eq!(&rest[..TOPIC_HEADER], &[0x00, 0x01, b't']);

    // The header alone (fixed + variable) matches what `encode_publish_header` produces.
    let mut header = [0u8; 16];
    let header_len = encode_publish_header(&publish, &mut header).unwrap();
    assert_eq!(header_len, 1 + length_bytes.len() + TOPIC_HEADER);
    assert_eq!(&header[..header_len], &buf[..header_len]);

    match decode(&buf, usize::MAX) {
        Ok(Decoded::Complete {
            packet: got,
            consumed,
        }) => {
            assert_eq!(consumed, total);
            assert_eq!(got, packet);
        }
        other => panic!("remaining {remaining}: {other:?}"),
    }
    // Incomplete up to the last byte; the header alone is enough to learn the size is too big.
    assert_eq!(
        decode(&buf[..total - 1], usize::MAX),
        Ok(Decoded::Incomplete)
    );
    assert_eq!(
        decode(&buf[..1 + length_bytes.len()], total - 1),
        Err(DecodeError::PacketTooLarge {
            size: total,
            max: total - 1
        })
    );
    assert_eq!(
        decode(&buf[..1 + length_bytes.len()], total),
        Ok(Decoded::Incomplete)
    );
    // One byte short of the length field is Incomplete.
    assert_eq!(
        decode(&buf[..length_bytes.len()], usize::MAX),
        Ok(Decoded::Incomplete)
    );
}

#[test]
fn remaining_length_zero() {
    for (packet, first) in [
        (Packet::PingReq, 0xC0),
        (
            Packet::Disconnect(umqtt_core::packet::Disconnect::NORMAL),
            0xE0,
        ),
    ] {
        let mut buf = [0xAAu8; 2];
        assert_eq!(packet.encoded_len(), Ok(2));
        assert_eq!(packet.encode(&mut buf), Ok(2));
        assert_eq!(buf, [first, 0x00]);
        assert_eq!(
            decode(&buf, 2),
            Ok(Decoded::Complete {
                packet,
                consumed: 2
            })
        );
        assert_eq!(decode(&buf[..1], 2), Ok(Decoded::Incomplete));
    }
}

#[test]
fn remaining_length_one_byte_max() {
    check_publish_boundary(127, &[0x7F]);
}

#[test]
fn remaining_length_two_bytes_min() {
    check_publish_boundary(128, &[0x80, 0x01]);
}

#[test]
fn remaining_length_two_bytes_max() {
    check_publish_boundary(16_383, &[0xFF, 0x7F]);
}

#[test]
fn remaining_length_three_bytes_min() {
    check_publish_boundary(16_384, &[0x80, 0x80, 0x01]);
}

#[test]
fn remaining_length_three_bytes_max() {
    check_publish_boundary(2_097_151, &[0xFF, 0xFF, 0x7F]);
}

#[test]
fn remaining_length_four_bytes_min() {
    check_publish_boundary(2_097_152, &[0x80, 0x80, 0x80, 0x01]);
}

#[test]
fn remaining_length_maximum() {
    // The payload is needed only for its length: `encode_publish_header` never reads it, and a
    // zeroed allocation this large is mapped lazily, so no 256 MiB is actually touched.
    let payload = vec![0u8; MAX_REMAINING_LENGTH - TOPIC_HEADER];
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t",
        packet_id: None,
        payload: &payload,
        properties: Default::default(),
    };
    let mut header = [0u8; 16];
    assert_eq!(encode_publish_header(&publish, &mut header), Ok(8));
    assert_eq!(
        &header[..8],
        &[0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01, b't']
    );
    assert_eq!(
        Packet::Publish(publish).encoded_len(),
        Ok(1 + 4 + MAX_REMAINING_LENGTH)
    );

    // The header alone decides that the packet is too large; no body is needed.
    assert_eq!(
        decode(&header[..5], 1024),
        Err(DecodeError::PacketTooLarge {
            size: 1 + 4 + MAX_REMAINING_LENGTH,
            max: 1024
        })
    );
    assert_eq!(
        decode(&header[..8], MAX_REMAINING_LENGTH + 4),
        Err(DecodeError::PacketTooLarge {
            size: MAX_REMAINING_LENGTH + 5,
            max: MAX_REMAINING_LENGTH + 4
        })
    );
    assert_eq!(
        decode(&header[..8], MAX_REMAINING_LENGTH + 5),
        Ok(Decoded::Incomplete)
    );
    assert_eq!(decode(&header[..8], usize::MAX), Ok(Decoded::Incomplete));

    // One byte more does not fit the remaining-length field.
    let one_more = vec![0u8; MAX_REMAINING_LENGTH - TOPIC_HEADER + 1];
    let too_big = Publish {
        payload: &one_more,
        ..publish
    };
    assert_eq!(
        encode_publish_header(&too_big, &mut header),
        Err(EncodeError::PacketTooLarge)
    );
    assert_eq!(
        Packet::Publish(too_big).encoded_len(),
        Err(EncodeError::PacketTooLarge)
    );
    assert_eq!(
        Packet::Publish(too_big).encode(&mut header),
        Err(EncodeError::PacketTooLarge)
    );
}

/// Each remaining length around the boundaries encodes in the number of bytes table 2.4 gives.
#[test]
fn remaining_length_sizes_near_boundaries() {
    for (remaining, size) in [
        (3usize, 1usize),
        (126, 1),
        (129, 2),
        (16_382, 2),
        (16_385, 3),
        (2_097_150, 3),
        (2_097_153, 4),
    ] {
        let payload = vec![0u8; remaining - TOPIC_HEADER];
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t",
            packet_id: None,
            payload: &payload,
            properties: Default::default(),
        });
        assert_eq!(
            packet.encoded_len(),
            Ok(1 + size + remaining),
            "remaining {remaining}"
        );
    }
}
