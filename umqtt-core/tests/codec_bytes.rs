//! Exact wire bytes for each packet type, checked in both directions: encoding the packet gives
//! the bytes, and decoding the bytes gives the packet.

use umqtt_core::packet::{
    decode, ConnAck, Connect, ConnectReturnCode, Decoded, LastWill, Packet, PacketId,
    ProtocolVersion, Publish, QoS, SubAck, Subscribe, SubscribeReturnCode, SubscribeTopics,
    Unsubscribe, UnsubscribeTopics,
};

fn id(v: u16) -> PacketId {
    PacketId::new(v).unwrap()
}

/// Bytes from hex pairs separated by spaces, e.g. `"E0 00"`.
fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|pair| u8::from_str_radix(pair, 16).unwrap())
        .collect()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Asserts that a decoded packet is the expected one. Decoded SUBSCRIBE/UNSUBSCRIBE carry their
/// payload bytes, so those compare through `iter()`.
fn assert_same(name: &str, decoded: &Packet<'_>, expected: &Packet<'_>) {
    match (decoded, expected) {
        (Packet::Subscribe(a), Packet::Subscribe(b)) => {
            assert_eq!(a.packet_id, b.packet_id, "{name}");
            assert_eq!(
                a.topics.iter().collect::<Vec<_>>(),
                b.topics.iter().collect::<Vec<_>>(),
                "{name}"
            );
        }
        (Packet::Unsubscribe(a), Packet::Unsubscribe(b)) => {
            assert_eq!(a.packet_id, b.packet_id, "{name}");
            assert_eq!(
                a.topics.iter().collect::<Vec<_>>(),
                b.topics.iter().collect::<Vec<_>>(),
                "{name}"
            );
        }
        (Packet::SubAck(a), Packet::SubAck(b)) => {
            assert_eq!(a.packet_id, b.packet_id, "{name}");
            assert_eq!(a.return_codes, b.return_codes, "{name}");
        }
        _ => assert_eq!(decoded, expected, "{name}"),
    }
}

fn publish(
    dup: bool,
    qos: QoS,
    retain: bool,
    packet_id: Option<u16>,
    payload: &'static [u8],
) -> Packet<'static> {
    Packet::Publish(Publish {
        dup,
        qos,
        retain,
        topic: "a/b",
        packet_id: packet_id.map(id),
        payload,
        properties: Default::default(),
    })
}

/// `(name, packet, exact bytes)`.
fn table() -> Vec<(&'static str, Packet<'static>, Vec<u8>)> {
    vec![
        // The example of section 3.1.2.10 (figure 3.6): protocol MQTT level 4, connect flags
        // 0xCE = user name, password, will QoS 1, will flag, clean session; keepalive 10.
        (
            "CONNECT with will, user name and password",
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V311,
                client_id: "client",
                keep_alive: 10,
                clean_session: true,
                will: Some(LastWill {
                    topic: "will/t",
                    payload: b"bye",
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    properties: Default::default(),
                }),
                username: Some("user"),
                password: Some(b"pass"),
                properties: Default::default(),
            }),
            cat(&[
                // fixed header: CONNECT, remaining length 43
                &hex("10 2B"),
                // protocol name "MQTT", level 4, flags 0xCE, keepalive 10
                &hex("00 04 4D 51 54 54 04 CE 00 0A"),
                &hex("00 06"),
                b"client",
                &hex("00 06"),
                b"will/t",
                &hex("00 03"),
                b"bye",
                &hex("00 04"),
                b"user",
                &hex("00 04"),
                b"pass",
            ]),
        ),
        (
            "CONNECT minimal, clean session, keepalive 60",
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V311,
                client_id: "c",
                keep_alive: 60,
                clean_session: true,
                will: None,
                username: None,
                password: None,
                properties: Default::default(),
            }),
            hex("10 0D 00 04 4D 51 54 54 04 02 00 3C 00 01 63"),
        ),
        (
            "CONNECT empty client id, persistent session, retained QoS 2 will",
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V311,
                client_id: "",
                keep_alive: 0,
                clean_session: false,
                will: Some(LastWill {
                    topic: "w",
                    payload: b"",
                    qos: QoS::ExactlyOnce,
                    retain: true,
                    properties: Default::default(),
                }),
                username: Some(""),
                password: None,
                properties: Default::default(),
            }),
            // flags 0xB4 = user name, will retain, will QoS 2, will flag
            hex("10 13 00 04 4D 51 54 54 04 B4 00 00 00 00 00 01 77 00 00 00 00"),
        ),
        (
            "CONNECT MQTT 3.1 (MQIsdp, level 3)",
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V31,
                client_id: "c",
                keep_alive: 0x1234,
                clean_session: true,
                will: None,
                username: Some("u"),
                password: Some(b"p"),
                properties: Default::default(),
            }),
            hex("10 15 00 06 4D 51 49 73 64 70 03 C2 12 34 00 01 63 00 01 75 00 01 70"),
        ),
        (
            "CONNACK accepted",
            Packet::ConnAck(ConnAck::new(false, ConnectReturnCode::Accepted)),
            hex("20 02 00 00"),
        ),
        (
            "CONNACK accepted, session present",
            Packet::ConnAck(ConnAck::new(true, ConnectReturnCode::Accepted)),
            hex("20 02 01 00"),
        ),
        (
            "CONNACK not authorized",
            Packet::ConnAck(ConnAck::new(false, ConnectReturnCode::NotAuthorized)),
            hex("20 02 00 05"),
        ),
        (
            "CONNACK unacceptable protocol version",
            Packet::ConnAck(ConnAck::new(
                false,
                ConnectReturnCode::UnacceptableProtocolVersion,
            )),
            hex("20 02 00 01"),
        ),
        (
            "PUBLISH QoS 0",
            publish(false, QoS::AtMostOnce, false, None, b"hi"),
            hex("30 07 00 03 61 2F 62 68 69"),
        ),
        (
            "PUBLISH QoS 0 retained, empty payload",
            publish(false, QoS::AtMostOnce, true, None, b""),
            hex("31 05 00 03 61 2F 62"),
        ),
        (
            "PUBLISH QoS 1 id 10",
            publish(false, QoS::AtLeastOnce, false, Some(10), b"hi"),
            hex("32 09 00 03 61 2F 62 00 0A 68 69"),
        ),
        (
            "PUBLISH QoS 1 dup retain id 10",
            publish(true, QoS::AtLeastOnce, true, Some(10), b"hi"),
            hex("3B 09 00 03 61 2F 62 00 0A 68 69"),
        ),
        (
            "PUBLISH QoS 2 id 65535",
            publish(false, QoS::ExactlyOnce, false, Some(65535), b"hi"),
            hex("34 09 00 03 61 2F 62 FF FF 68 69"),
        ),
        (
            "PUBLISH QoS 2 dup id 0x1234",
            publish(true, QoS::ExactlyOnce, false, Some(0x1234), b""),
            hex("3C 07 00 03 61 2F 62 12 34"),
        ),
        (
            "PUBLISH QoS 2 dup retain",
            publish(true, QoS::ExactlyOnce, true, Some(1), b"\x00"),
            hex("3D 08 00 03 61 2F 62 00 01 00"),
        ),
        (
            "PUBLISH multi-byte UTF-8 topic",
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "é/€",
                packet_id: None,
                payload: b"",
                properties: Default::default(),
            }),
            hex("30 08 00 06 C3 A9 2F E2 82 AC"),
        ),
        (
            "PUBACK id 1",
            Packet::PubAck(umqtt_core::packet::Ack::new(id(1))),
            hex("40 02 00 01"),
        ),
        (
            "PUBREC id 0x0102",
            Packet::PubRec(umqtt_core::packet::Ack::new(id(0x0102))),
            hex("50 02 01 02"),
        ),
        (
            "PUBREL id 10",
            Packet::PubRel(umqtt_core::packet::Ack::new(id(10))),
            hex("62 02 00 0A"),
        ),
        (
            "PUBCOMP id 65535",
            Packet::PubComp(umqtt_core::packet::Ack::new(id(65535))),
            hex("70 02 FF FF"),
        ),
        (
            "SUBSCRIBE two filters",
            Packet::Subscribe(Subscribe {
                packet_id: id(1),
                topics: SubscribeTopics::List(&[
                    ("a/b", QoS::AtLeastOnce),
                    ("c/#", QoS::ExactlyOnce),
                ]),
                properties: Default::default(),
            }),
            hex("82 0E 00 01 00 03 61 2F 62 01 00 03 63 2F 23 02"),
        ),
        (
            "SUBSCRIBE '+' at QoS 0",
            Packet::Subscribe(Subscribe {
                packet_id: id(0x0A0B),
                topics: SubscribeTopics::List(&[("+", QoS::AtMostOnce)]),
                properties: Default::default(),
            }),
            hex("82 06 0A 0B 00 01 2B 00"),
        ),
        (
            "SUBACK four codes",
            Packet::SubAck(SubAck {
                packet_id: id(1),
                return_codes: &[0x01, 0x80, 0x02, 0x00],
                properties: Default::default(),
            }),
            hex("90 06 00 01 01 80 02 00"),
        ),
        (
            "UNSUBSCRIBE two filters",
            Packet::Unsubscribe(Unsubscribe {
                packet_id: id(2),
                topics: UnsubscribeTopics::List(&["a/b", "c/+"]),
                properties: Default::default(),
            }),
            hex("A2 0C 00 02 00 03 61 2F 62 00 03 63 2F 2B"),
        ),
        (
            "UNSUBACK id 2",
            Packet::UnsubAck(umqtt_core::packet::UnsubAck::new(id(2))),
            hex("B0 02 00 02"),
        ),
        ("PINGREQ", Packet::PingReq, hex("C0 00")),
        ("PINGRESP", Packet::PingResp, hex("D0 00")),
        (
            "DISCONNECT",
            Packet::Disconnect(umqtt_core::packet::Disconnect::NORMAL),
            hex("E0 00"),
        ),
    ]
}

#[test]
fn encode_gives_the_exact_bytes() {
    for (name, packet, bytes) in table() {
        assert_eq!(packet.encoded_len(), Ok(bytes.len()), "{name}");
        let mut buf = vec![0u8; bytes.len()];
        assert_eq!(packet.encode(&mut buf), Ok(bytes.len()), "{name}");
        assert_eq!(buf, bytes, "{name}: got {buf:02X?}");
    }
}

#[test]
fn decode_gives_the_packet() {
    for (name, packet, bytes) in table() {
        match decode(&bytes, bytes.len()) {
            Ok(Decoded::Complete {
                packet: decoded,
                consumed,
            }) => {
                assert_eq!(consumed, bytes.len(), "{name}");
                assert_same(name, &decoded, &packet);
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn the_table_covers_all_14_packet_types() {
    let mut types: Vec<u8> = table()
        .iter()
        .map(|(_, p, _)| p.packet_type() as u8)
        .collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types, (1..=14).collect::<Vec<u8>>());
}

#[test]
fn decoded_subscribe_borrows_its_payload() {
    let bytes = hex("82 0E 00 01 00 03 61 2F 62 01 00 03 63 2F 23 02");
    let Ok(Decoded::Complete {
        packet: Packet::Subscribe(subscribe),
        ..
    }) = decode(&bytes, 64)
    else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(subscribe.topics, SubscribeTopics::Encoded(&bytes[4..]));
    assert_eq!(
        subscribe.topics.iter().collect::<Vec<_>>(),
        [("a/b", QoS::AtLeastOnce), ("c/#", QoS::ExactlyOnce)]
    );
}

#[test]
fn decoded_suback_codes() {
    let bytes = hex("90 06 00 01 01 80 02 00");
    let Ok(Decoded::Complete {
        packet: Packet::SubAck(suback),
        ..
    }) = decode(&bytes, 64)
    else {
        panic!("not a SUBACK");
    };
    assert_eq!(
        suback.codes().collect::<Vec<_>>(),
        [
            SubscribeReturnCode::Success(QoS::AtLeastOnce),
            SubscribeReturnCode::Failure,
            SubscribeReturnCode::Success(QoS::ExactlyOnce),
            SubscribeReturnCode::Success(QoS::AtMostOnce),
        ]
    );
}
