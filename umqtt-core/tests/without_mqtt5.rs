//! umqtt-core built without its `mqtt5` feature (as a 3.1.1 device ships it): MQTT 5 is
//! refused with a typed error where it enters — decoder, encoder, session — and 3.1.1 works.
//! Run with `cargo test -p umqtt-core --no-default-features --features alloc --test
//! without_mqtt5` (CI does); with the feature on, this file is empty.
#![cfg(all(not(feature = "mqtt5"), feature = "alloc"))]

use umqtt_core::packet::{
    decode_with, encode_publish_header_with, DecodeError, Decoded, EncodeError, Packet, Properties,
    ProtocolVersion, Publish,
};
use umqtt_core::session::{Event, Session, SessionConfig, UsageError};
use umqtt_core::{Instant, QoS};

#[test]
fn mqtt5_is_refused_where_it_enters() {
    assert!(!ProtocolVersion::V5.is_supported());
    assert!(ProtocolVersion::V311.is_supported());
    // A v5 CONNACK, a PUBACK: refused before a byte is read as MQTT 5.
    for bytes in [
        &[0x20, 0x03, 0x00, 0x00, 0x00][..],
        &[0x40, 0x02, 0x00, 0x01],
    ] {
        assert_eq!(
            decode_with(bytes, 1024, ProtocolVersion::V5),
            Err(DecodeError::Mqtt5NotCompiled)
        );
    }
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t",
        packet_id: None,
        payload: b"p",
        properties: Properties::EMPTY,
    };
    let mut buf = [0u8; 64];
    assert_eq!(
        Packet::Publish(publish).encode_with(&mut buf, ProtocolVersion::V5),
        Err(EncodeError::Mqtt5NotCompiled)
    );
    assert_eq!(
        Packet::Publish(publish).encoded_len_with(ProtocolVersion::V5),
        Err(EncodeError::Mqtt5NotCompiled)
    );
    assert_eq!(
        encode_publish_header_with(&publish, &mut buf, ProtocolVersion::V5),
        Err(EncodeError::Mqtt5NotCompiled)
    );
    let mut session = Session::new(SessionConfig {
        client_id: "d".into(),
        protocol: ProtocolVersion::V5,
        ..SessionConfig::default()
    });
    assert_eq!(
        session.connect(Instant::from_millis(0), true),
        Err(UsageError::Mqtt5NotCompiled)
    );
    assert!(session.poll_transmit(Instant::from_millis(0)).is_none());
}

#[test]
fn mqtt_3_1_1_works_without_it() {
    let now = Instant::from_millis(0);
    let mut session = Session::new(SessionConfig {
        client_id: "d".into(),
        ..SessionConfig::default()
    });
    session.connect(now, true).unwrap();
    let connect = session.poll_transmit(now).unwrap().to_vec();
    assert_eq!(connect[0], 0x10);
    session.handle_read(now, &[0x20, 0x02, 0x00, 0x00]);
    assert!(matches!(
        session.poll_event(),
        Some(Event::Connected { .. })
    ));
    let id = session
        .publish("t", b"p", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    let sent = session.poll_transmit(now).unwrap().to_vec();
    let Ok(Decoded::Complete {
        packet: Packet::Publish(p),
        ..
    }) = decode_with(&sent, 1024, ProtocolVersion::V311)
    else {
        panic!("{sent:02x?}")
    };
    assert_eq!((p.topic, p.payload), ("t", &b"p"[..]));
    let id_bytes = id.get().to_be_bytes();
    session.handle_read(now, &[0x40, 0x02, id_bytes[0], id_bytes[1]]);
    assert_eq!(session.poll_event(), Some(Event::Published(id)));
}
