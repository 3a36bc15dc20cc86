//! A catalogue of malformed inputs, each with the exact `DecodeError` it must produce, and
//! properties that `decode` never panics and never claims more bytes than it was given.

use proptest::prelude::*;
use umqtt_core::packet::{decode, DecodeError, Decoded, Packet, PacketType};
use umqtt_core::topic::TopicError;

/// Maximum packet size used for the whole catalogue.
const MAX: usize = 1024;

/// Concatenates byte pieces.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A packet: first byte, a one-byte remaining length, then the body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    cat(&[&[first, body.len() as u8], body])
}

/// A CONNECT whose variable header is `MQTT`, level 4, `flags`, keepalive 60, followed by
/// `payload`.
fn connect(flags: u8, payload: &[u8]) -> Vec<u8> {
    packet(
        0x10,
        &cat(&[b"\x00\x04MQTT\x04", &[flags], b"\x00\x3C", payload]),
    )
}

/// A CONNECT with the given protocol name and level, clean session, client id "c".
fn connect_protocol(name: &[u8], level: u8) -> Vec<u8> {
    packet(
        0x10,
        &cat(&[
            &[0x00, name.len() as u8],
            name,
            &[level, 0x02, 0x00, 0x3C],
            b"\x00\x01c",
        ]),
    )
}

/// A QoS 0 PUBLISH whose topic field holds exactly `topic_bytes`.
fn publish_topic(topic_bytes: &[u8]) -> Vec<u8> {
    packet(
        0x30,
        &cat(&[&[0x00, topic_bytes.len() as u8], topic_bytes, b"payload"]),
    )
}

/// A SUBSCRIBE with packet id 1 and one filter.
fn subscribe_one(filter: &[u8], requested_qos: u8) -> Vec<u8> {
    packet(
        0x82,
        &cat(&[
            b"\x00\x01",
            &[0x00, filter.len() as u8],
            filter,
            &[requested_qos],
        ]),
    )
}

/// An UNSUBSCRIBE with packet id 1 and one filter.
fn unsubscribe_one(filter: &[u8]) -> Vec<u8> {
    packet(
        0xA2,
        &cat(&[b"\x00\x01", &[0x00, filter.len() as u8], filter]),
    )
}

/// `bytes` with its first byte replaced.
fn with_first_byte(first: u8, mut bytes: Vec<u8>) -> Vec<u8> {
    bytes[0] = first;
    bytes
}

fn flags(packet_type: PacketType, flags: u8) -> DecodeError {
    DecodeError::InvalidFlags { packet_type, flags }
}

fn invalid_length(packet_type: PacketType) -> DecodeError {
    DecodeError::InvalidLength { packet_type }
}

fn truncated(packet_type: PacketType) -> DecodeError {
    DecodeError::Truncated { packet_type }
}

fn empty(packet_type: PacketType) -> DecodeError {
    DecodeError::EmptyPayload { packet_type }
}

/// `(name, bytes, expected error)`; every case is decoded with the maximum size [`MAX`].
fn catalogue() -> Vec<(&'static str, Vec<u8>, DecodeError)> {
    use DecodeError as E;
    use PacketType as T;
    vec![
        // --- Fixed header: packet type and flags [MQTT-2.2.1], [MQTT-2.2.2] ---
        (
            "reserved packet type 0",
            vec![0x00, 0x00],
            E::ReservedPacketType(0),
        ),
        (
            "reserved packet type 15",
            vec![0xF0, 0x00],
            E::ReservedPacketType(15),
        ),
        (
            "reserved packet type 15 with flags, no length yet",
            vec![0xFF],
            E::ReservedPacketType(15),
        ),
        (
            "CONNECT flags 0001",
            with_first_byte(0x11, connect(0x02, b"\x00\x01c")),
            flags(T::Connect, 0x1),
        ),
        (
            "CONNACK flags 0010",
            vec![0x22, 0x02, 0x00, 0x00],
            flags(T::ConnAck, 0x2),
        ),
        (
            "PUBACK flags 0010",
            vec![0x42, 0x02, 0x00, 0x01],
            flags(T::PubAck, 0x2),
        ),
        (
            "PUBREC flags 0001",
            vec![0x51, 0x02, 0x00, 0x01],
            flags(T::PubRec, 0x1),
        ),
        (
            "PUBREL flags 0000 (must be 0010)",
            vec![0x60, 0x02, 0x00, 0x0A],
            flags(T::PubRel, 0x0),
        ),
        (
            "PUBREL flags 0011",
            vec![0x63, 0x02, 0x00, 0x0A],
            flags(T::PubRel, 0x3),
        ),
        (
            "PUBCOMP flags 0010",
            vec![0x72, 0x02, 0x00, 0x01],
            flags(T::PubComp, 0x2),
        ),
        (
            "SUBSCRIBE flags 0000 (must be 0010)",
            vec![0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
            flags(T::Subscribe, 0x0),
        ),
        (
            "SUBACK flags 0010",
            vec![0x92, 0x03, 0x00, 0x01, 0x00],
            flags(T::SubAck, 0x2),
        ),
        (
            "UNSUBSCRIBE flags 0000 (must be 0010)",
            vec![0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'],
            flags(T::Unsubscribe, 0x0),
        ),
        (
            "UNSUBACK flags 1000",
            vec![0xB8, 0x02, 0x00, 0x01],
            flags(T::UnsubAck, 0x8),
        ),
        (
            "PINGREQ flags 0001",
            vec![0xC1, 0x00],
            flags(T::PingReq, 0x1),
        ),
        (
            "PINGRESP flags 0010",
            vec![0xD2, 0x00],
            flags(T::PingResp, 0x2),
        ),
        (
            "DISCONNECT flags 0001",
            vec![0xE1, 0x00],
            flags(T::Disconnect, 0x1),
        ),
        (
            "flags checked before the remaining length arrives",
            vec![0xE4],
            flags(T::Disconnect, 0x4),
        ),
        (
            "PUBLISH QoS 3",
            vec![0x36, 0x03, 0x00, 0x01, b'a'],
            E::InvalidQoS,
        ),
        (
            "PUBLISH QoS 3 with DUP and RETAIN",
            vec![0x3F],
            E::InvalidQoS,
        ),
        (
            "PUBLISH DUP with QoS 0 [MQTT-3.3.1-2]",
            vec![0x38, 0x03, 0x00, 0x01, b'a'],
            flags(T::Publish, 0x8),
        ),
        (
            "PUBLISH DUP and RETAIN with QoS 0",
            vec![0x39, 0x03, 0x00, 0x01, b'a'],
            flags(T::Publish, 0x9),
        ),
        // --- Remaining length [MQTT-2.2.3] ---
        (
            "remaining length of 5 bytes",
            vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            E::MalformedRemainingLength,
        ),
        (
            "remaining length: 4 continuation bytes, nothing after",
            vec![0xC0, 0x80, 0x80, 0x80, 0x80],
            E::MalformedRemainingLength,
        ),
        (
            "packet too large, from the fixed header alone",
            vec![0x30, 0xFF, 0xFF, 0xFF, 0x7F],
            E::PacketTooLarge {
                size: 268_435_460,
                max: MAX,
            },
        ),
        (
            "packet one byte over the maximum",
            // 1 + 2 + 1022 = 1025 bytes
            vec![0x30, 0xFE, 0x07],
            E::PacketTooLarge {
                size: MAX + 1,
                max: MAX,
            },
        ),
        // --- Fixed-size bodies ---
        (
            "PUBACK with remaining length 3",
            vec![0x40, 0x03, 0x00, 0x01, 0x00],
            invalid_length(T::PubAck),
        ),
        (
            "PUBACK with remaining length 1",
            vec![0x40, 0x01, 0x01],
            invalid_length(T::PubAck),
        ),
        (
            "PUBREL with remaining length 0",
            vec![0x62, 0x00],
            invalid_length(T::PubRel),
        ),
        (
            "UNSUBACK with remaining length 4",
            vec![0xB0, 0x04, 0x00, 0x01, 0x00, 0x02],
            invalid_length(T::UnsubAck),
        ),
        (
            "PINGREQ with remaining length 1",
            vec![0xC0, 0x01, 0x00],
            invalid_length(T::PingReq),
        ),
        (
            "PINGRESP with remaining length 1",
            vec![0xD0, 0x01, 0x00],
            invalid_length(T::PingResp),
        ),
        (
            "DISCONNECT with remaining length 2",
            vec![0xE0, 0x02, 0x00, 0x00],
            invalid_length(T::Disconnect),
        ),
        (
            "CONNACK with remaining length 3",
            vec![0x20, 0x03, 0x00, 0x00, 0x00],
            invalid_length(T::ConnAck),
        ),
        (
            "CONNACK with remaining length 1",
            vec![0x20, 0x01, 0x00],
            invalid_length(T::ConnAck),
        ),
        // --- CONNACK [MQTT-3.2] ---
        (
            "CONNACK acknowledge flags 0x02",
            vec![0x20, 0x02, 0x02, 0x00],
            E::InvalidConnAckFlags(0x02),
        ),
        (
            "CONNACK acknowledge flags 0x81",
            vec![0x20, 0x02, 0x81, 0x00],
            E::InvalidConnAckFlags(0x81),
        ),
        (
            "CONNACK return code 6",
            vec![0x20, 0x02, 0x00, 0x06],
            E::InvalidConnectReturnCode(6),
        ),
        (
            "CONNACK return code 255",
            vec![0x20, 0x02, 0x00, 0xFF],
            E::InvalidConnectReturnCode(255),
        ),
        (
            "CONNACK session present with refusal",
            vec![0x20, 0x02, 0x01, 0x05],
            E::SessionPresentWithRefusal,
        ),
        // --- Packet identifiers [MQTT-2.3.1-1] ---
        (
            "PUBLISH QoS 1 packet id 0",
            vec![0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00],
            E::PacketIdZero,
        ),
        (
            "PUBLISH QoS 2 packet id 0",
            vec![0x34, 0x07, 0x00, 0x01, b'a', 0x00, 0x00, b'h', b'i'],
            E::PacketIdZero,
        ),
        (
            "PUBACK packet id 0",
            vec![0x40, 0x02, 0x00, 0x00],
            E::PacketIdZero,
        ),
        (
            "PUBREC packet id 0",
            vec![0x50, 0x02, 0x00, 0x00],
            E::PacketIdZero,
        ),
        (
            "PUBREL packet id 0",
            vec![0x62, 0x02, 0x00, 0x00],
            E::PacketIdZero,
        ),
        (
            "PUBCOMP packet id 0",
            vec![0x70, 0x02, 0x00, 0x00],
            E::PacketIdZero,
        ),
        (
            "UNSUBACK packet id 0",
            vec![0xB0, 0x02, 0x00, 0x00],
            E::PacketIdZero,
        ),
        (
            "SUBSCRIBE packet id 0",
            vec![0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00],
            E::PacketIdZero,
        ),
        (
            "SUBACK packet id 0",
            vec![0x90, 0x03, 0x00, 0x00, 0x00],
            E::PacketIdZero,
        ),
        (
            "UNSUBSCRIBE packet id 0",
            vec![0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, b'a'],
            E::PacketIdZero,
        ),
        // --- PUBLISH topic names [MQTT-3.3.2-2], [MQTT-4.7.3-1] ---
        (
            "PUBLISH topic '+'",
            publish_topic(b"+"),
            E::InvalidTopicName(TopicError::WildcardInName),
        ),
        (
            "PUBLISH topic '#'",
            publish_topic(b"#"),
            E::InvalidTopicName(TopicError::WildcardInName),
        ),
        (
            "PUBLISH topic 'a/+/b'",
            publish_topic(b"a/+/b"),
            E::InvalidTopicName(TopicError::WildcardInName),
        ),
        (
            "PUBLISH topic 'sport/#'",
            publish_topic(b"sport/#"),
            E::InvalidTopicName(TopicError::WildcardInName),
        ),
        (
            "PUBLISH empty topic",
            publish_topic(b""),
            E::InvalidTopicName(TopicError::Empty),
        ),
        // --- Strings [MQTT-1.5.3] ---
        (
            "topic with overlong '/' C0 AF",
            publish_topic(b"\xC0\xAF"),
            E::InvalidUtf8,
        ),
        (
            "topic with overlong U+0000 C0 80",
            publish_topic(b"a\xC0\x80"),
            E::InvalidUtf8,
        ),
        (
            "topic with lone continuation byte 80",
            publish_topic(b"\x80"),
            E::InvalidUtf8,
        ),
        (
            "topic with UTF-16 surrogate ED A0 80",
            publish_topic(b"\xED\xA0\x80"),
            E::InvalidUtf8,
        ),
        (
            "topic with truncated 3-byte sequence E2 82",
            publish_topic(b"a\xE2\x82"),
            E::InvalidUtf8,
        ),
        (
            "topic above U+10FFFF F4 90 80 80",
            publish_topic(b"\xF4\x90\x80\x80"),
            E::InvalidUtf8,
        ),
        (
            "topic with byte FF",
            publish_topic(b"a\xFF"),
            E::InvalidUtf8,
        ),
        (
            "topic with U+0000",
            publish_topic(b"a\x00b"),
            E::NullCharacter,
        ),
        (
            "topic length prefix past the end of the packet",
            vec![0x30, 0x03, 0x00, 0x05, b'a'],
            truncated(T::Publish),
        ),
        (
            "topic length prefix cut in half",
            vec![0x30, 0x01, 0x00],
            truncated(T::Publish),
        ),
        (
            "PUBLISH with remaining length 0",
            vec![0x30, 0x00],
            truncated(T::Publish),
        ),
        (
            "PUBLISH QoS 1 without packet id",
            vec![0x32, 0x03, 0x00, 0x01, b'a'],
            truncated(T::Publish),
        ),
        (
            "PUBLISH QoS 2 with half a packet id",
            vec![0x34, 0x04, 0x00, 0x01, b'a', 0x00],
            truncated(T::Publish),
        ),
        // --- SUBSCRIBE [MQTT-3.8] ---
        (
            "SUBSCRIBE with no topics",
            vec![0x82, 0x02, 0x00, 0x01],
            empty(T::Subscribe),
        ),
        (
            "SUBSCRIBE requested QoS 3",
            subscribe_one(b"a/b", 0x03),
            E::InvalidRequestedQoS(0x03),
        ),
        (
            "SUBSCRIBE requested QoS with reserved bit 0x04",
            subscribe_one(b"a/b", 0x04),
            E::InvalidRequestedQoS(0x04),
        ),
        (
            "SUBSCRIBE requested QoS with reserved bits 0x81",
            subscribe_one(b"a/b", 0x81),
            E::InvalidRequestedQoS(0x81),
        ),
        (
            "SUBSCRIBE filter 'a/#/b'",
            subscribe_one(b"a/#/b", 0x00),
            E::InvalidTopicFilter(TopicError::MisplacedMultiLevelWildcard),
        ),
        (
            "SUBSCRIBE filter 'a#'",
            subscribe_one(b"a#", 0x00),
            E::InvalidTopicFilter(TopicError::MisplacedMultiLevelWildcard),
        ),
        (
            "SUBSCRIBE filter 'a+'",
            subscribe_one(b"a+", 0x01),
            E::InvalidTopicFilter(TopicError::MisplacedSingleLevelWildcard),
        ),
        (
            "SUBSCRIBE filter 'a/+b/c'",
            subscribe_one(b"a/+b/c", 0x01),
            E::InvalidTopicFilter(TopicError::MisplacedSingleLevelWildcard),
        ),
        (
            "SUBSCRIBE empty filter",
            subscribe_one(b"", 0x00),
            E::InvalidTopicFilter(TopicError::Empty),
        ),
        (
            "SUBSCRIBE filter with invalid UTF-8",
            subscribe_one(b"a/\xC3", 0x00),
            E::InvalidUtf8,
        ),
        (
            "SUBSCRIBE filter with U+0000",
            subscribe_one(b"a\x00", 0x00),
            E::NullCharacter,
        ),
        (
            "SUBSCRIBE filter without requested QoS",
            vec![0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'],
            truncated(T::Subscribe),
        ),
        (
            "SUBSCRIBE second filter bad after a good one",
            vec![
                0x82, 0x0A, 0x00, 0x01, 0x00, 0x01, b'a', 0x01, 0x00, 0x01, b'b', 0x03,
            ],
            E::InvalidRequestedQoS(0x03),
        ),
        (
            "SUBSCRIBE with only half a packet id",
            vec![0x82, 0x01, 0x00],
            truncated(T::Subscribe),
        ),
        // --- UNSUBSCRIBE [MQTT-3.10] ---
        (
            "UNSUBSCRIBE with no topics",
            vec![0xA2, 0x02, 0x00, 0x01],
            empty(T::Unsubscribe),
        ),
        (
            "UNSUBSCRIBE filter '#/a'",
            unsubscribe_one(b"#/a"),
            E::InvalidTopicFilter(TopicError::MisplacedMultiLevelWildcard),
        ),
        (
            "UNSUBSCRIBE filter length past the end",
            vec![0xA2, 0x05, 0x00, 0x01, 0x00, 0x09, b'a'],
            truncated(T::Unsubscribe),
        ),
        // --- SUBACK [MQTT-3.9] ---
        (
            "SUBACK return code 0x03",
            vec![0x90, 0x03, 0x00, 0x01, 0x03],
            E::InvalidSubAckReturnCode(0x03),
        ),
        (
            "SUBACK return code 0x81 after a good one",
            vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x81],
            E::InvalidSubAckReturnCode(0x81),
        ),
        (
            "SUBACK with no return codes",
            vec![0x90, 0x02, 0x00, 0x01],
            empty(T::SubAck),
        ),
        (
            "SUBACK with half a packet id",
            vec![0x90, 0x01, 0x00],
            truncated(T::SubAck),
        ),
        // --- CONNECT [MQTT-3.1] ---
        (
            "CONNECT with an empty body",
            vec![0x10, 0x00],
            truncated(T::Connect),
        ),
        (
            "CONNECT protocol name 'MQTX'",
            connect_protocol(b"MQTX", 4),
            E::InvalidProtocolName,
        ),
        (
            "CONNECT protocol name 'mqtt' (case matters)",
            connect_protocol(b"mqtt", 4),
            E::InvalidProtocolName,
        ),
        (
            "CONNECT empty protocol name",
            connect_protocol(b"", 4),
            E::InvalidProtocolName,
        ),
        (
            "CONNECT protocol level 5 with name MQTT",
            connect_protocol(b"MQTT", 5),
            E::UnsupportedProtocolLevel(5),
        ),
        (
            "CONNECT protocol level 3 with name MQTT",
            connect_protocol(b"MQTT", 3),
            E::UnsupportedProtocolLevel(3),
        ),
        (
            "CONNECT protocol level 4 with name MQIsdp",
            connect_protocol(b"MQIsdp", 4),
            E::UnsupportedProtocolLevel(4),
        ),
        (
            "CONNECT reserved flag set",
            connect(0x03, b"\x00\x01c"),
            E::ConnectReservedFlag,
        ),
        (
            "CONNECT will QoS 1 without will flag",
            connect(0x0A, b"\x00\x01c"),
            E::InvalidWillFlags,
        ),
        (
            "CONNECT will retain without will flag",
            connect(0x22, b"\x00\x01c"),
            E::InvalidWillFlags,
        ),
        (
            "CONNECT will QoS 3",
            connect(0x1E, b"\x00\x01c\x00\x01w\x00\x00"),
            E::InvalidQoS,
        ),
        (
            "CONNECT password without user name",
            connect(0x42, b"\x00\x01c\x00\x02pw"),
            E::PasswordWithoutUsername,
        ),
        (
            "CONNECT trailing bytes",
            connect(0x02, b"\x00\x01c\x00"),
            E::TrailingBytes {
                packet_type: T::Connect,
            },
        ),
        (
            "CONNECT user name flag without a user name",
            connect(0x82, b"\x00\x01c"),
            truncated(T::Connect),
        ),
        (
            "CONNECT will flag without will topic",
            connect(0x06, b"\x00\x01c"),
            truncated(T::Connect),
        ),
        (
            "CONNECT will topic with a wildcard",
            connect(0x06, b"\x00\x01c\x00\x03a/#\x00\x00"),
            E::InvalidTopicName(TopicError::WildcardInName),
        ),
        (
            "CONNECT client id past the end",
            connect(0x02, b"\x00\x05c"),
            truncated(T::Connect),
        ),
        (
            "CONNECT client id with invalid UTF-8",
            connect(0x02, b"\x00\x02\xC3\x28"),
            E::InvalidUtf8,
        ),
        (
            "CONNECT user name with U+0000",
            connect(0x82, b"\x00\x01c\x00\x02u\x00"),
            E::NullCharacter,
        ),
        (
            "CONNECT missing keepalive",
            packet(0x10, b"\x00\x04MQTT\x04\x02\x00"),
            truncated(T::Connect),
        ),
    ]
}

#[test]
fn catalogue_of_malformed_packets() {
    let cases = catalogue();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|(name, _, _)| *name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "duplicate case names");

    let mut failures = Vec::new();
    for (name, bytes, expected) in &cases {
        let got = decode(bytes, MAX);
        if got != Err(*expected) {
            failures.push(format!(
                "{name}: {bytes:02X?} decoded to {got:?}, expected Err({expected:?})"
            ));
        }
        // Every error has a message.
        assert!(!expected.to_string().is_empty(), "{name}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Whatever follows a malformed packet does not change the verdict, and the catalogue's
/// packets that are complete are rejected the same way with a bigger maximum (except the size
/// cases).
#[test]
fn catalogue_verdicts_do_not_depend_on_trailing_input() {
    for (name, bytes, expected) in catalogue() {
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0xE0, 0x00, 0xC0, 0x00]);
        assert_eq!(decode(&longer, MAX), Err(expected), "{name}");
        if !matches!(expected, DecodeError::PacketTooLarge { .. }) {
            assert_eq!(decode(&bytes, usize::MAX), Err(expected), "{name}");
        }
    }
}

/// A decoded packet can be encoded again, and the result decodes to the same packet. When the
/// input used the shortest remaining-length encoding, the bytes are identical.
fn check_reencodes(input: &[u8], packet: &Packet<'_>, consumed: usize) {
    let len = packet
        .encoded_len()
        .unwrap_or_else(|e| panic!("{packet:?} decoded from {input:02X?} does not encode: {e}"));
    assert!(len <= consumed, "{packet:?}");
    let mut buf = vec![0u8; len];
    assert_eq!(packet.encode(&mut buf), Ok(len));
    match decode(&buf, usize::MAX) {
        Ok(Decoded::Complete {
            packet: again,
            consumed: c,
        }) => {
            assert_eq!(c, len);
            assert_eq!(&again, packet);
        }
        other => panic!("re-encoded {packet:?} decodes to {other:?}"),
    }
    if len == consumed {
        assert_eq!(&buf[..], &input[..consumed]);
    }
}

/// Decodes packets from the front of `input` until it is exhausted, incomplete or malformed,
/// checking the invariants that hold for every input.
fn decode_all(input: &[u8], max: usize) {
    let mut rest = input;
    loop {
        match decode(rest, max) {
            Ok(Decoded::Complete { packet, consumed }) => {
                assert!(consumed >= 2 && consumed <= rest.len());
                assert!(consumed <= max);
                check_reencodes(rest, &packet, consumed);
                rest = &rest[consumed..];
            }
            Ok(Decoded::Incomplete) => {
                // More input could complete the packet: every prefix is also incomplete.
                for end in 0..rest.len() {
                    assert_eq!(decode(&rest[..end], max), Ok(Decoded::Incomplete));
                }
                return;
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return;
            }
        }
    }
}

#[test]
fn all_one_and_two_byte_inputs() {
    for max in [0, 1, 2, 3, MAX, usize::MAX] {
        assert_eq!(decode(&[], max), Ok(Decoded::Incomplete));
        for a in 0..=255u8 {
            decode_all(&[a], max);
            for b in 0..=255u8 {
                decode_all(&[a, b], max);
            }
        }
    }
}

#[test]
fn zero_length_packets() {
    // The only 2-byte packets.
    for (bytes, packet) in [
        ([0xC0, 0x00], Packet::PingReq),
        ([0xD0, 0x00], Packet::PingResp),
        (
            [0xE0, 0x00],
            Packet::Disconnect(umqtt_core::packet::Disconnect::NORMAL),
        ),
    ] {
        assert_eq!(
            decode(&bytes, 2),
            Ok(Decoded::Complete {
                packet,
                consumed: 2
            })
        );
        assert_eq!(
            decode(&bytes, 1),
            Err(DecodeError::PacketTooLarge { size: 2, max: 1 })
        );
    }
}

/// First bytes with a valid type and flags, so random bodies get past the fixed header.
fn valid_first_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(0x10u8),
        Just(0x20),
        (0u8..16).prop_map(|f| 0x30 | f),
        Just(0x40),
        Just(0x50),
        Just(0x62),
        Just(0x70),
        Just(0x82),
        Just(0x90),
        Just(0xA2),
        Just(0xB0),
        Just(0xC0),
        Just(0xD0),
        Just(0xE0),
    ]
}

/// A fixed header with a correct remaining length followed by random body bytes drawn from a
/// small alphabet that hits the interesting values often.
fn plausible_packet() -> impl Strategy<Value = Vec<u8>> {
    let body_byte = prop_oneof![
        4 => Just(0u8),
        2 => 1u8..8,
        2 => prop::sample::select(b"MQTTIsdp/+#ab".to_vec()),
        1 => Just(0x80u8),
        1 => Just(0xFFu8),
        2 => any::<u8>(),
    ];
    (valid_first_byte(), prop::collection::vec(body_byte, 0..40)).prop_map(|(first, body)| {
        let mut out = vec![first, body.len() as u8];
        out.extend(body);
        out
    })
}

/// A CONNECT with a valid variable header and random flags and payload.
fn plausible_connect() -> impl Strategy<Value = Vec<u8>> {
    let payload_byte = prop_oneof![
        4 => 0u8..4,
        2 => prop::sample::select(b"abc/+#".to_vec()),
        1 => any::<u8>(),
    ];
    (any::<u8>(), prop::collection::vec(payload_byte, 0..30))
        .prop_map(|(flags, payload)| connect(flags & 0xFE, &payload))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), max in any::<usize>()) {
        decode_all(&bytes, max);
        decode_all(&bytes, usize::MAX);
    }

    #[test]
    fn random_bodies_never_panic(
        packets in prop::collection::vec(prop_oneof![3 => plausible_packet(), 1 => plausible_connect()], 1..4),
        max in prop_oneof![Just(usize::MAX), 0usize..64],
    ) {
        let bytes = packets.concat();
        decode_all(&bytes, max);
        decode_all(&bytes, usize::MAX);
    }
}
