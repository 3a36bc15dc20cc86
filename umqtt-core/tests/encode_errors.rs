//! `encode` refuses packets that break the rules, before writing anything, and reports the
//! same error from `encoded_len`.

use umqtt_core::packet::{
    decode, encode_publish_header, ConnAck, Connect, ConnectReturnCode, Decoded, EncodeError,
    LastWill, Packet, PacketId, ProtocolVersion, Publish, QoS, SubAck, Subscribe, SubscribeTopics,
    Unsubscribe, UnsubscribeTopics,
};
use umqtt_core::topic::TopicError;

fn id(v: u16) -> PacketId {
    PacketId::new(v).unwrap()
}

/// Asserts that both `encoded_len` and `encode` (into a generous buffer) fail with `expected`,
/// and that `encode` leaves the buffer untouched.
fn assert_rejected(packet: Packet<'_>, expected: EncodeError) {
    assert_eq!(packet.encoded_len(), Err(expected), "{packet:?}");
    let mut buf = vec![0xAAu8; 1024];
    assert_eq!(packet.encode(&mut buf), Err(expected), "{packet:?}");
    assert!(
        buf.iter().all(|&b| b == 0xAA),
        "{packet:?} wrote bytes on error"
    );
    if let Packet::Publish(publish) = packet {
        assert_eq!(
            encode_publish_header(&publish, &mut buf),
            Err(expected),
            "{packet:?}"
        );
    }
}

fn publish<'a>(topic: &'a str, qos: QoS, packet_id: Option<u16>) -> Publish<'a> {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: packet_id.map(id),
        payload: b"payload",
        properties: Default::default(),
    }
}

fn connect<'a>() -> Connect<'a> {
    Connect {
        protocol: ProtocolVersion::V311,
        client_id: "client",
        keep_alive: 60,
        clean_session: true,
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }
}

/// One valid packet of each of the 14 types.
fn one_of_each() -> Vec<Packet<'static>> {
    vec![
        Packet::Connect(Connect {
            will: Some(LastWill {
                topic: "will/t",
                payload: b"bye",
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Default::default(),
            }),
            username: Some("user"),
            password: Some(b"pass"),
            ..connect()
        }),
        Packet::ConnAck(ConnAck::new(true, ConnectReturnCode::Accepted)),
        Packet::Publish(publish("a/b", QoS::ExactlyOnce, Some(7))),
        Packet::PubAck(umqtt_core::packet::Ack::new(id(1))),
        Packet::PubRec(umqtt_core::packet::Ack::new(id(2))),
        Packet::PubRel(umqtt_core::packet::Ack::new(id(3))),
        Packet::PubComp(umqtt_core::packet::Ack::new(id(4))),
        Packet::Subscribe(Subscribe {
            packet_id: id(5),
            topics: SubscribeTopics::List(&[("a/+", QoS::AtLeastOnce), ("#", QoS::AtMostOnce)]),
            properties: Default::default(),
        }),
        Packet::SubAck(SubAck {
            packet_id: id(5),
            return_codes: &[1, 0x80],
            properties: Default::default(),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: id(6),
            topics: UnsubscribeTopics::List(&["a/+", "#"]),
            properties: Default::default(),
        }),
        Packet::UnsubAck(umqtt_core::packet::UnsubAck::new(id(6))),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(umqtt_core::packet::Disconnect::NORMAL),
    ]
}

#[test]
fn buffer_too_small_reports_the_needed_size() {
    for packet in one_of_each() {
        let needed = packet.encoded_len().unwrap();
        for short in [0, 1, needed / 2, needed - 1] {
            let mut buf = vec![0xAAu8; short];
            assert_eq!(
                packet.encode(&mut buf),
                Err(EncodeError::BufferTooSmall { needed }),
                "{packet:?} into {short} bytes"
            );
            assert!(buf.iter().all(|&b| b == 0xAA));
        }
        let mut buf = vec![0u8; needed];
        assert_eq!(packet.encode(&mut buf), Ok(needed));
    }
}

#[test]
fn publish_header_buffer_too_small() {
    let p = publish("a/b", QoS::AtLeastOnce, Some(1));
    // 1 (type) + 1 (length) + 2 + 3 (topic) + 2 (packet id); the payload is not written.
    let mut buf = [0u8; 9];
    assert_eq!(
        encode_publish_header(&p, &mut buf[..8]),
        Err(EncodeError::BufferTooSmall { needed: 9 })
    );
    assert_eq!(encode_publish_header(&p, &mut buf), Ok(9));
    assert_eq!(buf, [0x32, 14, 0, 3, b'a', b'/', b'b', 0, 1]);
}

#[test]
fn invalid_topic_names() {
    for (topic, error) in [
        ("", TopicError::Empty),
        ("+", TopicError::WildcardInName),
        ("#", TopicError::WildcardInName),
        ("a/+/b", TopicError::WildcardInName),
        ("sport/#", TopicError::WildcardInName),
        ("a\0b", TopicError::NullCharacter),
    ] {
        assert_rejected(
            Packet::Publish(publish(topic, QoS::AtMostOnce, None)),
            EncodeError::InvalidTopicName(error),
        );
        // The will topic follows the same rules.
        assert_rejected(
            Packet::Connect(Connect {
                will: Some(LastWill {
                    topic,
                    payload: b"",
                    qos: QoS::AtMostOnce,
                    retain: false,
                    properties: Default::default(),
                }),
                ..connect()
            }),
            EncodeError::InvalidTopicName(error),
        );
    }
    let long = "t".repeat(65_536);
    assert_rejected(
        Packet::Publish(publish(&long, QoS::AtMostOnce, None)),
        EncodeError::InvalidTopicName(TopicError::TooLong),
    );
}

#[test]
fn invalid_topic_filters() {
    for (filter, error) in [
        ("", TopicError::Empty),
        ("a/#/b", TopicError::MisplacedMultiLevelWildcard),
        ("a#", TopicError::MisplacedMultiLevelWildcard),
        ("#/", TopicError::MisplacedMultiLevelWildcard),
        ("a+", TopicError::MisplacedSingleLevelWildcard),
        ("a/b+/c", TopicError::MisplacedSingleLevelWildcard),
        ("a\0", TopicError::NullCharacter),
    ] {
        let list = [("ok/+", QoS::AtMostOnce), (filter, QoS::AtLeastOnce)];
        assert_rejected(
            Packet::Subscribe(Subscribe {
                packet_id: id(1),
                topics: SubscribeTopics::List(&list),
                properties: Default::default(),
            }),
            EncodeError::InvalidTopicFilter(error),
        );
        let list = ["ok/#", filter];
        assert_rejected(
            Packet::Unsubscribe(Unsubscribe {
                packet_id: id(1),
                topics: UnsubscribeTopics::List(&list),
                properties: Default::default(),
            }),
            EncodeError::InvalidTopicFilter(error),
        );
    }
}

#[test]
fn packet_id_must_match_qos() {
    assert_rejected(
        Packet::Publish(publish("a", QoS::AtLeastOnce, None)),
        EncodeError::PacketIdMismatch,
    );
    assert_rejected(
        Packet::Publish(publish("a", QoS::ExactlyOnce, None)),
        EncodeError::PacketIdMismatch,
    );
    assert_rejected(
        Packet::Publish(publish("a", QoS::AtMostOnce, Some(1))),
        EncodeError::PacketIdMismatch,
    );
}

#[test]
fn dup_needs_qos_above_zero() {
    let p = Publish {
        dup: true,
        ..publish("a", QoS::AtMostOnce, None)
    };
    assert_rejected(Packet::Publish(p), EncodeError::DupWithQoS0);
    // Allowed at QoS 1 and 2.
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let p = Publish {
            dup: true,
            ..publish("a", qos, Some(1))
        };
        assert!(Packet::Publish(p).encoded_len().is_ok());
    }
}

#[test]
fn strings_longer_than_65535_bytes() {
    let max = "x".repeat(65_535);
    let over = "x".repeat(65_536);
    let max_bin = vec![0u8; 65_535];
    let over_bin = vec![0u8; 65_536];

    // Exactly 65535 bytes is fine everywhere.
    let ok = Packet::Connect(Connect {
        client_id: &max,
        will: Some(LastWill {
            topic: "w",
            payload: &max_bin,
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
        }),
        username: Some(&max),
        password: Some(&max_bin),
        ..connect()
    });
    let len = ok.encoded_len().unwrap();
    let mut buf = vec![0u8; len];
    assert_eq!(ok.encode(&mut buf), Ok(len));
    match decode(&buf, usize::MAX) {
        Ok(Decoded::Complete { packet, consumed }) => {
            assert_eq!(consumed, len);
            assert_eq!(packet, ok);
        }
        other => panic!("{other:?}"),
    }

    let will = |payload| {
        Some(LastWill {
            topic: "w",
            payload,
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
        })
    };
    for packet in [
        Packet::Connect(Connect {
            client_id: &over,
            ..connect()
        }),
        Packet::Connect(Connect {
            username: Some(&over),
            ..connect()
        }),
        Packet::Connect(Connect {
            username: Some("u"),
            password: Some(&over_bin),
            ..connect()
        }),
        Packet::Connect(Connect {
            will: will(&over_bin),
            ..connect()
        }),
    ] {
        assert_rejected(packet, EncodeError::StringTooLong);
    }
    // A filter that long is rejected by the topic rules.
    let list = [(over.as_str(), QoS::AtMostOnce)];
    assert_rejected(
        Packet::Subscribe(Subscribe {
            packet_id: id(1),
            topics: SubscribeTopics::List(&list),
            properties: Default::default(),
        }),
        EncodeError::InvalidTopicFilter(TopicError::TooLong),
    );
}

#[test]
fn password_needs_a_user_name() {
    assert_rejected(
        Packet::Connect(Connect {
            password: Some(b"secret"),
            ..connect()
        }),
        EncodeError::PasswordWithoutUsername,
    );
    assert_rejected(
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V31,
            password: Some(b""),
            ..connect()
        }),
        EncodeError::PasswordWithoutUsername,
    );
    // A user name without a password is fine.
    let p = Packet::Connect(Connect {
        username: Some("u"),
        ..connect()
    });
    assert!(p.encoded_len().is_ok());
}

#[test]
fn null_characters_in_strings() {
    assert_rejected(
        Packet::Connect(Connect {
            client_id: "a\0",
            ..connect()
        }),
        EncodeError::NullCharacter,
    );
    assert_rejected(
        Packet::Connect(Connect {
            username: Some("\0"),
            ..connect()
        }),
        EncodeError::NullCharacter,
    );
    // Binary fields may hold zeros.
    let p = Packet::Connect(Connect {
        username: Some("u"),
        password: Some(b"\0\0"),
        ..connect()
    });
    assert!(p.encoded_len().is_ok());
}

#[test]
fn empty_lists() {
    assert_rejected(
        Packet::Subscribe(Subscribe {
            packet_id: id(1),
            topics: SubscribeTopics::List(&[]),
            properties: Default::default(),
        }),
        EncodeError::EmptyPayload,
    );
    assert_rejected(
        Packet::Subscribe(Subscribe {
            packet_id: id(1),
            topics: SubscribeTopics::Encoded(&[]),
            properties: Default::default(),
        }),
        EncodeError::EmptyPayload,
    );
    assert_rejected(
        Packet::Unsubscribe(Unsubscribe {
            packet_id: id(1),
            topics: UnsubscribeTopics::List(&[]),
            properties: Default::default(),
        }),
        EncodeError::EmptyPayload,
    );
    assert_rejected(
        Packet::SubAck(SubAck {
            packet_id: id(1),
            return_codes: &[],
            properties: Default::default(),
        }),
        EncodeError::EmptyPayload,
    );
}

#[test]
fn suback_return_codes_are_checked() {
    for bad in [0x03u8, 0x04, 0x7F, 0x81, 0xFF] {
        assert_rejected(
            Packet::SubAck(SubAck {
                packet_id: id(1),
                return_codes: &[0x00, bad, 0x80],
                properties: Default::default(),
            }),
            EncodeError::InvalidSubAckReturnCode(bad),
        );
    }
}

/// Hand-built `Encoded` topic lists must be well-formed payloads: encoding one that is not
/// must fail instead of panicking or writing a packet whose length field is wrong.
#[test]
fn malformed_encoded_topic_lists() {
    let bad_subscribe: [&[u8]; 5] = [
        b"\x00\x01a\x00\x00",         // trailing byte after the last entry
        b"\x00\x01a",                 // requested QoS missing
        b"\x00\x05a\x00",             // length past the end
        b"\x00\x01a\x03",             // requested QoS 3
        b"\x00\x01a\x01\x00\x01\xFF", // second filter not UTF-8
    ];
    for bytes in bad_subscribe {
        assert_rejected(
            Packet::Subscribe(Subscribe {
                packet_id: id(1),
                topics: SubscribeTopics::Encoded(bytes),
                properties: Default::default(),
            }),
            EncodeError::MalformedTopicList,
        );
    }
    let bad_unsubscribe: [&[u8]; 3] = [b"\x00\x01a\x00", b"\x00\x05a", b"\x00\x01a\x00\x01\xC0"];
    for bytes in bad_unsubscribe {
        assert_rejected(
            Packet::Unsubscribe(Unsubscribe {
                packet_id: id(1),
                topics: UnsubscribeTopics::Encoded(bytes),
                properties: Default::default(),
            }),
            EncodeError::MalformedTopicList,
        );
    }
    // Invalid filters inside a well-formed payload are reported as such.
    assert_rejected(
        Packet::Subscribe(Subscribe {
            packet_id: id(1),
            topics: SubscribeTopics::Encoded(b"\x00\x02a#\x00"),
            properties: Default::default(),
        }),
        EncodeError::InvalidTopicFilter(TopicError::MisplacedMultiLevelWildcard),
    );
    // A well-formed hand-built payload encodes as given.
    let p = Packet::Subscribe(Subscribe {
        packet_id: id(1),
        topics: SubscribeTopics::Encoded(b"\x00\x01a\x01\x00\x01#\x02"),
        properties: Default::default(),
    });
    let mut buf = [0u8; 12];
    assert_eq!(p.encode(&mut buf), Ok(12));
    assert_eq!(
        buf,
        [0x82, 10, 0, 1, 0, 1, b'a', 1, 0, 1, b'#', 2],
        "{:02X?}",
        buf
    );
}

#[test]
fn every_error_has_a_message() {
    for e in [
        EncodeError::BufferTooSmall { needed: 3 },
        EncodeError::PacketTooLarge,
        EncodeError::StringTooLong,
        EncodeError::NullCharacter,
        EncodeError::InvalidTopicName(TopicError::Empty),
        EncodeError::InvalidTopicFilter(TopicError::Empty),
        EncodeError::PacketIdMismatch,
        EncodeError::DupWithQoS0,
        EncodeError::PasswordWithoutUsername,
        EncodeError::EmptyPayload,
        EncodeError::InvalidSubAckReturnCode(3),
        EncodeError::MalformedTopicList,
    ] {
        assert!(!e.to_string().is_empty());
    }
}
