//! MQTT 5: a catalogue of malformed inputs, each with the exact `DecodeError` it must produce —
//! every property identifier (not allowed, repeated, bad value) and every reason code byte in
//! every packet that carries one — plus byte-exact forms of the short packets.

use umqtt_core::packet::{
    decode, decode_with, Ack, DecodeError, Decoded, Disconnect, Packet, PacketId, PacketType,
    Properties, Property, PropertyId, PropertyList, ProtocolVersion, ReasonCode,
};
use umqtt_core::topic::TopicError;

const MAX: usize = 4096;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A packet with a one-byte remaining length.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    cat(&[&[first, body.len() as u8], body])
}

/// A property block: one-byte length prefix and the properties.
fn block(properties: &[u8]) -> Vec<u8> {
    assert!(properties.len() < 128);
    cat(&[&[properties.len() as u8], properties])
}

/// The smallest valid MQTT 5 packet of `packet_type` carrying `properties` (the bytes of the
/// properties, without their length); `will`: the properties are a CONNECT's will properties.
fn with_properties(packet_type: PacketType, will: bool, properties: &[u8]) -> Vec<u8> {
    let props = block(properties);
    if will {
        return packet(
            0x10,
            &cat(&[
                b"\x00\x04MQTT\x05\x06\x00\x3C\x00\x00\x01c",
                &props,
                b"\x00\x01t\x00\x00",
            ]),
        );
    }
    match packet_type {
        PacketType::Connect => packet(
            0x10,
            &cat(&[b"\x00\x04MQTT\x05\x02\x00\x3C", &props, b"\x00\x01c"]),
        ),
        PacketType::ConnAck => packet(0x20, &cat(&[b"\x00\x00", &props])),
        PacketType::Publish => packet(0x30, &cat(&[b"\x00\x01t", &props, b"payload"])),
        PacketType::PubAck => packet(0x40, &cat(&[b"\x00\x01\x00", &props])),
        PacketType::PubRec => packet(0x50, &cat(&[b"\x00\x01\x00", &props])),
        PacketType::PubRel => packet(0x62, &cat(&[b"\x00\x01\x00", &props])),
        PacketType::PubComp => packet(0x70, &cat(&[b"\x00\x01\x00", &props])),
        PacketType::Subscribe => packet(0x82, &cat(&[b"\x00\x01", &props, b"\x00\x01t\x00"])),
        PacketType::SubAck => packet(0x90, &cat(&[b"\x00\x01", &props, b"\x00"])),
        PacketType::Unsubscribe => packet(0xA2, &cat(&[b"\x00\x01", &props, b"\x00\x01t"])),
        PacketType::UnsubAck => packet(0xB0, &cat(&[b"\x00\x01", &props, b"\x00"])),
        PacketType::Disconnect => packet(0xE0, &cat(&[b"\x00", &props])),
        PacketType::Auth => packet(0xF0, &cat(&[b"\x00", &props])),
        other => panic!("{other:?} has no properties"),
    }
}

/// The packet types (and the will) that carry properties.
const CONTEXTS: [(PacketType, bool); 14] = [
    (PacketType::Connect, false),
    (PacketType::Connect, true),
    (PacketType::ConnAck, false),
    (PacketType::Publish, false),
    (PacketType::PubAck, false),
    (PacketType::PubRec, false),
    (PacketType::PubRel, false),
    (PacketType::PubComp, false),
    (PacketType::Subscribe, false),
    (PacketType::SubAck, false),
    (PacketType::Unsubscribe, false),
    (PacketType::UnsubAck, false),
    (PacketType::Disconnect, false),
    (PacketType::Auth, false),
];

fn all_property_ids() -> Vec<PropertyId> {
    (0..=0x7F).filter_map(PropertyId::from_u32).collect()
}

/// A valid value for the property (identifier included).
fn sample(id: PropertyId) -> Vec<u8> {
    let value: &[u8] = match id {
        PropertyId::PayloadFormatIndicator
        | PropertyId::RequestProblemInformation
        | PropertyId::RequestResponseInformation
        | PropertyId::MaximumQoS
        | PropertyId::RetainAvailable
        | PropertyId::WildcardSubscriptionAvailable
        | PropertyId::SubscriptionIdentifierAvailable
        | PropertyId::SharedSubscriptionAvailable => b"\x01",
        PropertyId::ServerKeepAlive
        | PropertyId::ReceiveMaximum
        | PropertyId::TopicAliasMaximum
        | PropertyId::TopicAlias => b"\x00\x01",
        PropertyId::MessageExpiryInterval
        | PropertyId::SessionExpiryInterval
        | PropertyId::WillDelayInterval
        | PropertyId::MaximumPacketSize => b"\x00\x00\x00\x01",
        PropertyId::SubscriptionIdentifier => b"\x01",
        PropertyId::CorrelationData | PropertyId::AuthenticationData => b"\x00\x01\x07",
        PropertyId::UserProperty => b"\x00\x01k\x00\x01v",
        _ => b"\x00\x01x",
    };
    cat(&[&[id as u8], value])
}

fn decode_v5(bytes: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    decode_with(bytes, MAX, V5)
}

fn assert_error(case: &str, bytes: &[u8], expected: DecodeError) {
    assert_eq!(
        decode_v5(bytes),
        Err(expected),
        "case: {case}, bytes {bytes:02X?}"
    );
}

fn assert_complete<'a>(case: &str, bytes: &'a [u8]) -> Packet<'a> {
    match decode_v5(bytes) {
        Ok(Decoded::Complete { packet, consumed }) => {
            assert_eq!(consumed, bytes.len(), "case: {case}");
            packet
        }
        other => panic!("case: {case}, bytes {bytes:02X?}: {other:?}"),
    }
}

#[test]
fn every_property_is_accepted_where_allowed_and_refused_elsewhere() {
    let mut refused = 0;
    for id in all_property_ids() {
        for (packet_type, will) in CONTEXTS {
            let bytes = with_properties(packet_type, will, &sample(id));
            let case = format!("{id:?} in {packet_type:?} (will: {will})");
            if id.is_allowed_in(packet_type, will) {
                assert_complete(&case, &bytes);
            } else {
                refused += 1;
                assert_error(
                    &case,
                    &bytes,
                    DecodeError::PropertyNotAllowed {
                        property: id,
                        packet_type,
                        will,
                    },
                );
            }
        }
    }
    assert_eq!(all_property_ids().len(), 27);
    assert!(refused > 250, "{refused}");
}

#[test]
fn every_property_but_user_property_is_refused_twice() {
    for id in all_property_ids() {
        for (packet_type, will) in CONTEXTS {
            if !id.is_allowed_in(packet_type, will) {
                continue;
            }
            let twice = cat(&[&sample(id), &sample(id)]);
            let bytes = with_properties(packet_type, will, &twice);
            let case = format!("{id:?} twice in {packet_type:?} (will: {will})");
            let repeatable = id == PropertyId::UserProperty
                || (id == PropertyId::SubscriptionIdentifier && packet_type == PacketType::Publish);
            if repeatable {
                assert_complete(&case, &bytes);
            } else {
                assert_error(
                    &case,
                    &bytes,
                    DecodeError::DuplicateProperty { property: id },
                );
            }
        }
    }
}

#[test]
fn forbidden_property_values() {
    use PacketType::*;
    /// Case name, packet, in the will, property bytes, expected property and value.
    type Case = (
        &'static str,
        PacketType,
        bool,
        &'static [u8],
        PropertyId,
        u32,
    );
    let cases: &[Case] = &[
        (
            "payload format 2",
            Publish,
            false,
            b"\x01\x02",
            PropertyId::PayloadFormatIndicator,
            2,
        ),
        (
            "will payload format 255",
            Connect,
            true,
            b"\x01\xFF",
            PropertyId::PayloadFormatIndicator,
            255,
        ),
        (
            "request problem information 2",
            Connect,
            false,
            b"\x17\x02",
            PropertyId::RequestProblemInformation,
            2,
        ),
        (
            "request response information 3",
            Connect,
            false,
            b"\x19\x03",
            PropertyId::RequestResponseInformation,
            3,
        ),
        (
            "maximum QoS 2",
            ConnAck,
            false,
            b"\x24\x02",
            PropertyId::MaximumQoS,
            2,
        ),
        (
            "retain available 2",
            ConnAck,
            false,
            b"\x25\x02",
            PropertyId::RetainAvailable,
            2,
        ),
        (
            "wildcard available 2",
            ConnAck,
            false,
            b"\x28\x02",
            PropertyId::WildcardSubscriptionAvailable,
            2,
        ),
        (
            "subscription ids available 2",
            ConnAck,
            false,
            b"\x29\x02",
            PropertyId::SubscriptionIdentifierAvailable,
            2,
        ),
        (
            "shared available 2",
            ConnAck,
            false,
            b"\x2A\x02",
            PropertyId::SharedSubscriptionAvailable,
            2,
        ),
        (
            "receive maximum 0 (CONNECT)",
            Connect,
            false,
            b"\x21\x00\x00",
            PropertyId::ReceiveMaximum,
            0,
        ),
        (
            "receive maximum 0 (CONNACK)",
            ConnAck,
            false,
            b"\x21\x00\x00",
            PropertyId::ReceiveMaximum,
            0,
        ),
        (
            "maximum packet size 0 (CONNECT)",
            Connect,
            false,
            b"\x27\x00\x00\x00\x00",
            PropertyId::MaximumPacketSize,
            0,
        ),
        (
            "maximum packet size 0 (CONNACK)",
            ConnAck,
            false,
            b"\x27\x00\x00\x00\x00",
            PropertyId::MaximumPacketSize,
            0,
        ),
        (
            "topic alias 0",
            Publish,
            false,
            b"\x23\x00\x00",
            PropertyId::TopicAlias,
            0,
        ),
        (
            "subscription identifier 0 (PUBLISH)",
            Publish,
            false,
            b"\x0B\x00",
            PropertyId::SubscriptionIdentifier,
            0,
        ),
        (
            "subscription identifier 0 (SUBSCRIBE)",
            Subscribe,
            false,
            b"\x0B\x00",
            PropertyId::SubscriptionIdentifier,
            0,
        ),
    ];
    for &(case, packet_type, will, properties, property, value) in cases {
        let bytes = with_properties(packet_type, will, properties);
        assert_error(
            case,
            &bytes,
            DecodeError::InvalidPropertyValue { property, value },
        );
    }
}

#[test]
fn malformed_property_encodings() {
    use PacketType::*;
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        (
            "property length with five bytes",
            packet(0x40, b"\x00\x01\x00\xFF\xFF\xFF\xFF"),
            DecodeError::MalformedVariableByteInteger,
        ),
        (
            "property length beyond the packet",
            packet(0x40, b"\x00\x01\x00\x05\x1F"),
            DecodeError::PropertyLengthExceeded {
                packet_type: PubAck,
            },
        ),
        (
            "property length beyond the CONNECT",
            packet(0x10, b"\x00\x04MQTT\x05\x02\x00\x3C\x7F\x00\x01c"),
            DecodeError::PropertyLengthExceeded {
                packet_type: Connect,
            },
        ),
        (
            "undefined property 0x05",
            with_properties(PubAck, false, b"\x05\x00"),
            DecodeError::InvalidPropertyId(5),
        ),
        (
            "undefined property 0x2B",
            with_properties(ConnAck, false, b"\x2B\x00"),
            DecodeError::InvalidPropertyId(0x2B),
        ),
        (
            "property identifier as a two-byte integer",
            with_properties(ConnAck, false, b"\x80\x01\x00"),
            DecodeError::InvalidPropertyId(128),
        ),
        (
            "property identifier with five bytes",
            with_properties(ConnAck, false, b"\xFF\xFF\xFF\xFF\x01"),
            DecodeError::MalformedVariableByteInteger,
        ),
        (
            "subscription identifier with five bytes",
            with_properties(Publish, false, b"\x0B\xFF\xFF\xFF\xFF\x01"),
            DecodeError::MalformedVariableByteInteger,
        ),
        (
            "two-byte value cut by the property length",
            with_properties(ConnAck, false, b"\x21\x00"),
            DecodeError::Truncated {
                packet_type: ConnAck,
            },
        ),
        (
            "four-byte value cut",
            with_properties(Publish, false, b"\x02\x00\x00"),
            DecodeError::Truncated {
                packet_type: Publish,
            },
        ),
        (
            "string longer than the block",
            with_properties(PubAck, false, b"\x1F\x00\x09ab"),
            DecodeError::Truncated {
                packet_type: PubAck,
            },
        ),
        (
            "user property without a value",
            with_properties(Disconnect, false, b"\x26\x00\x01k"),
            DecodeError::Truncated {
                packet_type: Disconnect,
            },
        ),
        (
            "reason string not UTF-8",
            with_properties(PubAck, false, b"\x1F\x00\x01\xFF"),
            DecodeError::InvalidUtf8,
        ),
        (
            "content type with U+0000",
            with_properties(Publish, false, b"\x03\x00\x01\x00"),
            DecodeError::NullCharacter,
        ),
        (
            "user property value with a surrogate",
            with_properties(Auth, false, b"\x26\x00\x01k\x00\x03\xED\xA0\x80"),
            DecodeError::InvalidUtf8,
        ),
        (
            "response topic not UTF-8 (will)",
            with_properties(Connect, true, b"\x08\x00\x01\xC0"),
            DecodeError::InvalidUtf8,
        ),
    ];
    for (case, bytes, expected) in cases {
        assert_error(case, &bytes, expected);
    }
}

#[test]
fn malformed_packets() {
    use PacketType::*;
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        (
            "PUBLISH empty topic without alias",
            packet(0x30, b"\x00\x00\x00payload"),
            DecodeError::InvalidTopicName(TopicError::Empty),
        ),
        (
            "PUBLISH wildcard topic",
            packet(0x30, b"\x00\x01#\x00"),
            DecodeError::InvalidTopicName(TopicError::WildcardInName),
        ),
        (
            "CONNACK refused with session present",
            packet(0x20, b"\x01\x87\x00"),
            DecodeError::SessionPresentWithRefusal,
        ),
        (
            "CONNACK without property length",
            packet(0x20, b"\x00\x00"),
            DecodeError::Truncated {
                packet_type: ConnAck,
            },
        ),
        (
            "CONNACK reserved flags",
            packet(0x20, b"\x02\x00\x00"),
            DecodeError::InvalidConnAckFlags(2),
        ),
        (
            "SUBSCRIBE options reserved bits",
            packet(0x82, b"\x00\x01\x00\x00\x01t\xC0"),
            DecodeError::InvalidRequestedQoS(0xC0),
        ),
        (
            "SUBSCRIBE retain handling 3",
            packet(0x82, b"\x00\x01\x00\x00\x01t\x30"),
            DecodeError::InvalidRequestedQoS(0x30),
        ),
        (
            "SUBSCRIBE QoS 3",
            packet(0x82, b"\x00\x01\x00\x00\x01t\x03"),
            DecodeError::InvalidRequestedQoS(3),
        ),
        (
            "SUBACK without reason codes",
            packet(0x90, b"\x00\x01\x00"),
            DecodeError::EmptyPayload {
                packet_type: SubAck,
            },
        ),
        (
            "UNSUBACK without reason codes",
            packet(0xB0, b"\x00\x01\x00"),
            DecodeError::EmptyPayload {
                packet_type: UnsubAck,
            },
        ),
        (
            "UNSUBSCRIBE without filters",
            packet(0xA2, b"\x00\x01\x00"),
            DecodeError::EmptyPayload {
                packet_type: Unsubscribe,
            },
        ),
        (
            "DISCONNECT trailing bytes after properties",
            packet(0xE0, b"\x00\x00\x00"),
            DecodeError::TrailingBytes {
                packet_type: Disconnect,
            },
        ),
        (
            "PUBACK trailing bytes after properties",
            packet(0x40, b"\x00\x01\x00\x00\x00"),
            DecodeError::TrailingBytes {
                packet_type: PubAck,
            },
        ),
        (
            "PUBACK packet id 0",
            packet(0x40, b"\x00\x00"),
            DecodeError::PacketIdZero,
        ),
        (
            // Found by the decode_v5 fuzz target: AUTH omits reason code and property length
            // together or not at all.
            "AUTH reason code without property length",
            packet(0xF0, b"\x18"),
            DecodeError::Truncated { packet_type: Auth },
        ),
        (
            "AUTH with flags",
            packet(0xF1, b""),
            DecodeError::InvalidFlags {
                packet_type: Auth,
                flags: 1,
            },
        ),
        (
            "CONNECT level 6",
            packet(0x10, b"\x00\x04MQTT\x06\x02\x00\x3C\x00\x00\x01c"),
            DecodeError::UnsupportedProtocolLevel(6),
        ),
        (
            "CONNECT v5 will property not allowed in CONNECT",
            with_properties(Connect, false, b"\x18\x00\x00\x00\x01"),
            DecodeError::PropertyNotAllowed {
                property: PropertyId::WillDelayInterval,
                packet_type: Connect,
                will: false,
            },
        ),
    ];
    for (case, bytes, expected) in cases {
        assert_error(case, &bytes, expected);
    }
}

#[test]
fn version_3_decoder_refuses_what_only_mqtt_5_has() {
    assert_eq!(
        decode(b"\xF0\x00", MAX),
        Err(DecodeError::ReservedPacketType(15))
    );
    let connect = packet(0x10, b"\x00\x04MQTT\x05\x02\x00\x3C\x00\x00\x01c");
    assert_eq!(
        decode(&connect, MAX),
        Err(DecodeError::UnsupportedProtocolLevel(5))
    );
    // A 3.1.1 PUBACK is exactly 2 bytes; the MQTT 5 reason code makes it malformed.
    assert_eq!(
        decode(b"\x40\x03\x00\x01\x10", MAX),
        Err(DecodeError::InvalidLength {
            packet_type: PacketType::PubAck
        })
    );
    // An MQTT 5 decoder still decodes a 3.1.1 or 3.1 CONNECT (a broker reads CONNECT first).
    let v311 = packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3C\x00\x01c");
    match decode_v5(&v311) {
        Ok(Decoded::Complete {
            packet: Packet::Connect(c),
            ..
        }) => {
            assert_eq!(c.protocol, ProtocolVersion::V311);
            assert_eq!(c.client_id, "c");
        }
        other => panic!("{other:?}"),
    }
}

/// Every reason-code byte 0..=255 in every packet that carries one: decoded exactly when the
/// specification lists it for that packet (table 2-6), `InvalidReasonCode` otherwise.
#[test]
fn every_reason_code_byte_in_every_packet() {
    use PacketType::*;
    let mut accepted = 0;
    for packet_type in [
        ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth,
    ] {
        for code in 0..=255u8 {
            let bytes = match packet_type {
                ConnAck => packet(0x20, &[0x00, code, 0x00]),
                PubAck => packet(0x40, &[0x00, 0x01, code]),
                PubRec => packet(0x50, &[0x00, 0x01, code]),
                PubRel => packet(0x62, &[0x00, 0x01, code]),
                PubComp => packet(0x70, &[0x00, 0x01, code]),
                SubAck => packet(0x90, &[0x00, 0x01, 0x00, 0x00, code]),
                UnsubAck => packet(0xB0, &[0x00, 0x01, 0x00, code]),
                Disconnect => packet(0xE0, &[code]),
                _ => packet(0xF0, &[code, 0x00]),
            };
            let case = format!("reason {code:#04x} in {packet_type:?}");
            let allowed = ReasonCode::from_u8(code).filter(|r| r.is_allowed_in(packet_type));
            match allowed {
                Some(reason) => {
                    accepted += 1;
                    let packet = assert_complete(&case, &bytes);
                    let found = match packet {
                        Packet::ConnAck(a) => a.reason_code,
                        Packet::PubAck(a)
                        | Packet::PubRec(a)
                        | Packet::PubRel(a)
                        | Packet::PubComp(a) => a.reason_code,
                        Packet::SubAck(a) => a.reason_codes().nth(1).unwrap(),
                        Packet::UnsubAck(a) => a.codes().next().unwrap(),
                        Packet::Disconnect(d) => d.reason_code,
                        Packet::Auth(a) => a.reason_code,
                        other => panic!("{other:?}"),
                    };
                    assert_eq!(found, reason, "case: {case}");
                    assert_eq!(found.to_u8(), code);
                }
                None => assert_error(
                    &case,
                    &bytes,
                    DecodeError::InvalidReasonCode { packet_type, code },
                ),
            }
        }
    }
    // Table 2-6 counted per packet: CONNACK 22, PUBACK 9, PUBREC 9, PUBREL 2, PUBCOMP 2,
    // SUBACK 12, UNSUBACK 7, DISCONNECT 30, AUTH 3. (Table 2-6 lists 0x8C Bad authentication
    // method for DISCONNECT, the table of section 3.14.2.1 does not; the decoder accepts it.)
    assert_eq!(accepted, 22 + 9 + 9 + 2 + 2 + 12 + 7 + 30 + 3);
}

fn id(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

#[test]
fn short_forms() {
    // PUBACK with only a packet id: reason 0x00, no properties (section 3.4.2.1).
    let p = assert_complete("PUBACK short", b"\x40\x02\x00\x01");
    assert_eq!(p, Packet::PubAck(Ack::new(id(1))));
    // With a reason code but no property length.
    let p = assert_complete("PUBREC reason only", b"\x50\x03\x00\x01\x10");
    let Packet::PubRec(ack) = p else {
        panic!("{p:?}")
    };
    assert_eq!(ack.reason_code, ReasonCode::NoMatchingSubscribers);
    assert!(ack.properties.is_empty());
    // DISCONNECT with remaining length 0: normal disconnection (section 3.14.2.1).
    assert_eq!(
        assert_complete("DISCONNECT short", b"\xE0\x00"),
        Packet::Disconnect(Disconnect::NORMAL)
    );
    // Found by the decode_v5 fuzz target: an explicit empty property block is the same packet
    // as the short form (and re-encodes as it).
    assert_eq!(
        assert_complete("DISCONNECT empty properties", b"\xE0\x02\x00\x00"),
        Packet::Disconnect(Disconnect::NORMAL)
    );
    let p = assert_complete("PUBACK empty properties", b"\x40\x04\x00\x01\x00\x00");
    assert_eq!(p, Packet::PubAck(Ack::new(id(1))));
    let p = assert_complete("DISCONNECT reason only", b"\xE0\x01\x8E");
    let Packet::Disconnect(d) = p else {
        panic!("{p:?}")
    };
    assert_eq!(d.reason_code, ReasonCode::SessionTakenOver);
    // AUTH with remaining length 0: success.
    let p = assert_complete("AUTH short", b"\xF0\x00");
    let Packet::Auth(a) = p else { panic!("{p:?}") };
    assert_eq!(a.reason_code, ReasonCode::Success);

    // And the encoder writes the short forms.
    let mut buf = [0u8; 16];
    let cases: Vec<(Packet<'_>, &[u8])> = vec![
        (Packet::PubAck(Ack::new(id(1))), b"\x40\x02\x00\x01"),
        (
            Packet::PubRec(Ack::with_reason(
                id(1),
                ReasonCode::NoMatchingSubscribers,
                Properties::EMPTY,
            )),
            b"\x50\x03\x00\x01\x10",
        ),
        (
            Packet::PubRel(Ack::with_reason(
                id(2),
                ReasonCode::Success,
                Properties::List(&PropertyList(&[Property::ReasonString("x")])),
            )),
            b"\x62\x08\x00\x02\x00\x04\x1F\x00\x01x",
        ),
        (Packet::Disconnect(Disconnect::NORMAL), b"\xE0\x00"),
        (
            Packet::Disconnect(Disconnect::new(
                ReasonCode::DisconnectWithWillMessage,
                Properties::EMPTY,
            )),
            b"\xE0\x01\x04",
        ),
        (
            Packet::Disconnect(Disconnect::new(
                ReasonCode::Success,
                Properties::List(&PropertyList(&[Property::SessionExpiryInterval(60)])),
            )),
            b"\xE0\x07\x00\x05\x11\x00\x00\x00\x3C",
        ),
    ];
    for (packet, expected) in cases {
        let n = packet.encode_with(&mut buf, V5).unwrap();
        assert_eq!(&buf[..n], expected, "{packet:?}");
        assert_eq!(packet.encoded_len_with(V5), Ok(n));
    }
}

#[test]
fn known_bytes() {
    // CONNACK: Receive Maximum 10, Retain Available 0.
    let bytes = b"\x20\x08\x00\x00\x05\x21\x00\x0A\x25\x00";
    let p = assert_complete("CONNACK properties", bytes);
    let Packet::ConnAck(ack) = p else {
        panic!("{p:?}")
    };
    assert_eq!(ack.properties.receive_maximum(), Some(10));
    assert_eq!(ack.properties.retain_available(), Some(false));
    assert_eq!(ack.properties.maximum_qos(), None);
    // PUBLISH QoS 1, topic a/b, id 7, no properties, payload "hi".
    let bytes = b"\x32\x0A\x00\x03a/b\x00\x07\x00hi";
    let p = assert_complete("PUBLISH", bytes);
    let Packet::Publish(publish) = p else {
        panic!("{p:?}")
    };
    assert_eq!((publish.topic, publish.payload), ("a/b", &b"hi"[..]));
    let mut buf = [0u8; 64];
    let n = p.encode_with(&mut buf, V5).unwrap();
    assert_eq!(&buf[..n], bytes);
    // A minimal MQTT 5 CONNECT.
    let bytes = b"\x10\x0E\x00\x04MQTT\x05\x02\x00\x3C\x00\x00\x01c";
    let p = assert_complete("CONNECT", bytes);
    let Packet::Connect(c) = p else {
        panic!("{p:?}")
    };
    assert_eq!(c.protocol, ProtocolVersion::V5);
    let n = p.encode_with(&mut buf, V5).unwrap();
    assert_eq!(&buf[..n], bytes);
    // SUBSCRIBE a/b with QoS 1, No Local, Retain As Published, Retain Handling 2.
    let bytes = b"\x82\x09\x00\x01\x00\x00\x03a/b\x2D";
    let p = assert_complete("SUBSCRIBE options", bytes);
    let Packet::Subscribe(s) = p else {
        panic!("{p:?}")
    };
    let (filter, options) = s.topics.iter_options().next().unwrap();
    assert_eq!(filter, "a/b");
    assert_eq!(options.to_u8(), 0x2D);
    assert!(options.no_local && options.retain_as_published);
    // SUBACK refusing with Not authorized.
    let p = assert_complete("SUBACK 0x87", b"\x90\x04\x00\x01\x00\x87");
    let Packet::SubAck(s) = p else {
        panic!("{p:?}")
    };
    assert_eq!(
        s.reason_codes().collect::<Vec<_>>(),
        [ReasonCode::NotAuthorized]
    );
    // PUBLISH with a topic alias and an empty topic.
    let bytes = b"\x30\x07\x00\x00\x03\x23\x00\x01x";
    let p = assert_complete("PUBLISH alias", bytes);
    let Packet::Publish(publish) = p else {
        panic!("{p:?}")
    };
    assert_eq!(
        (publish.topic, publish.properties.topic_alias()),
        ("", Some(1))
    );
    let n = p.encode_with(&mut buf, V5).unwrap();
    assert_eq!(&buf[..n], bytes);
    // Two subscription identifiers and user properties in order.
    let bytes = with_properties(
        PacketType::Publish,
        false,
        b"\x0B\x01\x26\x00\x01a\x00\x01b\x0B\x80\x01\x26\x00\x01a\x00\x01c",
    );
    let p = assert_complete("PUBLISH repeated", &bytes);
    let Packet::Publish(publish) = p else {
        panic!("{p:?}")
    };
    assert_eq!(
        publish
            .properties
            .subscription_identifiers()
            .collect::<Vec<_>>(),
        [1, 128]
    );
    assert_eq!(
        publish.properties.user_properties().collect::<Vec<_>>(),
        [("a", "b"), ("a", "c")]
    );
}

#[test]
fn encoder_refuses_what_the_decoder_would_reject() {
    use umqtt_core::packet::EncodeError;
    let mut buf = [0u8; 64];
    let ack = |properties| Packet::PubAck(Ack::with_reason(id(1), ReasonCode::Success, properties));
    let cases: Vec<(&str, Packet<'_>, EncodeError)> = vec![
        (
            "topic alias in PUBACK",
            ack(Properties::List(&PropertyList(&[Property::TopicAlias(1)]))),
            EncodeError::PropertyNotAllowed {
                property: PropertyId::TopicAlias,
                packet_type: PacketType::PubAck,
                will: false,
            },
        ),
        (
            "reason string twice",
            ack(Properties::List(&PropertyList(&[
                Property::ReasonString("a"),
                Property::ReasonString("b"),
            ]))),
            EncodeError::DuplicateProperty {
                property: PropertyId::ReasonString,
            },
        ),
        (
            "receive maximum 0",
            Packet::ConnAck(umqtt_core::packet::ConnAck {
                properties: Properties::List(&PropertyList(&[Property::ReceiveMaximum(0)])),
                ..umqtt_core::packet::ConnAck::new(
                    false,
                    umqtt_core::packet::ConnectReturnCode::Accepted,
                )
            }),
            EncodeError::InvalidPropertyValue {
                property: PropertyId::ReceiveMaximum,
                value: 0,
            },
        ),
        (
            "maximum QoS 2",
            Packet::ConnAck(umqtt_core::packet::ConnAck {
                properties: Properties::List(&PropertyList(&[Property::MaximumQoS(
                    umqtt_core::QoS::ExactlyOnce,
                )])),
                ..umqtt_core::packet::ConnAck::new(
                    false,
                    umqtt_core::packet::ConnectReturnCode::Accepted,
                )
            }),
            EncodeError::InvalidPropertyValue {
                property: PropertyId::MaximumQoS,
                value: 2,
            },
        ),
        (
            "subscription identifier in DISCONNECT",
            Packet::Disconnect(Disconnect::new(
                ReasonCode::Success,
                Properties::List(&PropertyList(&[Property::SubscriptionIdentifier(1)])),
            )),
            EncodeError::PropertyNotAllowed {
                property: PropertyId::SubscriptionIdentifier,
                packet_type: PacketType::Disconnect,
                will: false,
            },
        ),
        (
            "granted QoS 1 in PUBACK",
            Packet::PubAck(Ack::with_reason(
                id(1),
                ReasonCode::GrantedQoS1,
                Properties::EMPTY,
            )),
            EncodeError::InvalidReasonCode {
                packet_type: PacketType::PubAck,
                code: 1,
            },
        ),
        (
            "user property with U+0000",
            ack(Properties::List(&PropertyList(&[Property::UserProperty(
                "a\0", "b",
            )]))),
            EncodeError::NullCharacter,
        ),
        (
            "encoded properties that do not decode",
            ack(Properties::Encoded(b"\x1F\x00")),
            EncodeError::MalformedProperties(DecodeError::Truncated {
                packet_type: PacketType::PubAck,
            }),
        ),
        (
            "encoded properties not allowed here",
            ack(Properties::Encoded(b"\x23\x00\x01")),
            EncodeError::MalformedProperties(DecodeError::PropertyNotAllowed {
                property: PropertyId::TopicAlias,
                packet_type: PacketType::PubAck,
                will: false,
            }),
        ),
    ];
    for (case, packet, expected) in cases {
        assert_eq!(
            packet.encode_with(&mut buf, V5),
            Err(expected),
            "case: {case}"
        );
        assert_eq!(packet.encoded_len_with(V5), Err(expected), "case: {case}");
    }
    // Subscription identifier above the variable-byte-integer range, in PUBLISH.
    let publish = Packet::Publish(umqtt_core::packet::Publish {
        dup: false,
        qos: umqtt_core::QoS::AtMostOnce,
        retain: false,
        topic: "t",
        packet_id: None,
        payload: b"",
        properties: Properties::List(&PropertyList(&[Property::SubscriptionIdentifier(
            MAX_VBI + 1,
        )])),
    });
    assert_eq!(
        publish.encoded_len_with(V5),
        Err(EncodeError::InvalidPropertyValue {
            property: PropertyId::SubscriptionIdentifier,
            value: MAX_VBI + 1
        })
    );
    // An empty topic needs a topic alias.
    let publish = Packet::Publish(umqtt_core::packet::Publish {
        dup: false,
        qos: umqtt_core::QoS::AtMostOnce,
        retain: false,
        topic: "",
        packet_id: None,
        payload: b"",
        properties: Properties::EMPTY,
    });
    assert_eq!(
        publish.encoded_len_with(V5),
        Err(EncodeError::InvalidTopicName(TopicError::Empty))
    );
}

const MAX_VBI: u32 = umqtt_core::packet::MAX_VARIABLE_BYTE_INTEGER;
