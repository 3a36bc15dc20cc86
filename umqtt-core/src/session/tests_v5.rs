// MQTT 5 state-machine tests: the session honours what the broker's CONNACK says and
// surfaces reason codes. Same scripted-broker style as `tests.rs`.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::tests::{config, events, feed, sent, t, Ev, Sent};
use super::*;
use crate::packet::{decode_with, Decoded, Property, SubscriptionOptions};

const V5: ProtocolVersion = ProtocolVersion::V5;

fn v5_config() -> SessionConfig {
    SessionConfig {
        protocol: V5,
        ..config()
    }
}

/// The MQTT 5 bytes of `packet`.
fn bytes(packet: Packet<'_>) -> Vec<u8> {
    let mut buf = vec![0; packet.encoded_len_with(V5).unwrap()];
    packet.encode_with(&mut buf, V5).unwrap();
    buf
}

fn connack(properties: &[Property<'_>]) -> Vec<u8> {
    let list = PropertyList(properties);
    bytes(Packet::ConnAck(ConnAck {
        properties: Properties::List(&list),
        ..ConnAck::new(false, ConnectReturnCode::Accepted)
    }))
}

fn ack(packet_type: PacketType, id: u16, reason_code: ReasonCode) -> Vec<u8> {
    let ack = Ack::with_reason(PacketId::new(id).unwrap(), reason_code, Properties::EMPTY);
    bytes(match packet_type {
        PacketType::PubAck => Packet::PubAck(ack),
        PacketType::PubRec => Packet::PubRec(ack),
        _ => Packet::PubComp(ack),
    })
}

/// A connected MQTT 5 session whose CONNACK carried `properties`.
fn connected_v5(config: SessionConfig, properties: &[Property<'_>]) -> Session {
    let mut session = Session::new(config);
    session.connect(t(0), true).unwrap();
    let _ = sent(&mut session, t(0));
    assert_eq!(
        feed(&mut session, t(1), &connack(properties)),
        vec![Ev::Connected(false)]
    );
    session
}

/// Every packet the session wrote, decoded as MQTT 5, with the properties of each as a list.
fn sent_v5(session: &mut Session) -> Vec<(PacketType, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(part) = session.poll_transmit(t(2)) {
        let mut rest = part;
        while !rest.is_empty() {
            let Ok(Decoded::Complete { packet, consumed }) = decode_with(rest, usize::MAX, V5)
            else {
                panic!("invalid MQTT 5 packet {rest:02x?}");
            };
            out.push((packet.packet_type(), rest[..consumed].to_vec()));
            rest = &rest[consumed..];
        }
    }
    out
}

#[test]
fn connect_announces_the_v5_options_and_maps_the_persistent_session_to_expiry() {
    let mut config = v5_config();
    config.v5.receive_maximum = Some(10);
    config.v5.user_properties = vec![("app".to_string(), "umqtt".to_string())];
    config.max_packet_size = 1000;
    let mut session = Session::new(config);
    session.connect(t(0), false).unwrap();
    let connect = session.poll_transmit(t(0)).unwrap().to_vec();
    let Ok(Decoded::Complete {
        packet: Packet::Connect(c),
        ..
    }) = decode_with(&connect, usize::MAX, V5)
    else {
        panic!("{connect:02x?}");
    };
    assert_eq!(c.protocol, V5);
    assert!(!c.clean_session);
    // A persistent session (clean session 0) lasts until it expires: never [MQTT-3.1.2-23].
    assert_eq!(c.properties.session_expiry_interval(), Some(u32::MAX));
    assert_eq!(c.properties.receive_maximum(), Some(10));
    assert_eq!(c.properties.maximum_packet_size(), Some(1000));
    assert_eq!(
        c.properties.user_properties().collect::<Vec<_>>(),
        [("app", "umqtt")]
    );

    // A clean session ends with the connection: no Session Expiry Interval (0).
    let mut session = Session::new(v5_config());
    session.connect(t(0), true).unwrap();
    let connect = session.poll_transmit(t(0)).unwrap().to_vec();
    let Ok(Decoded::Complete {
        packet: Packet::Connect(c),
        ..
    }) = decode_with(&connect, usize::MAX, V5)
    else {
        panic!("{connect:02x?}");
    };
    assert_eq!(c.properties.session_expiry_interval(), None);
}

#[test]
fn receive_maximum_bounds_the_in_flight_window_and_nothing_is_dropped() {
    let mut session = connected_v5(v5_config(), &[Property::ReceiveMaximum(2)]);
    assert_eq!(session.broker_limits().receive_maximum, 2);
    let ids: Vec<PacketId> = (0..5)
        .map(|i| {
            session
                .publish("t", &[i], QoS::AtLeastOnce, false)
                .unwrap()
                .unwrap()
        })
        .collect();
    // Only two go out; three wait in order.
    assert_eq!(
        sent(&mut session, t(2)),
        vec![
            Sent::Publish {
                id: Some(1),
                dup: false,
                qos: QoS::AtLeastOnce,
                topic: "t".to_string(),
                payload: vec![0]
            },
            Sent::Publish {
                id: Some(2),
                dup: false,
                qos: QoS::AtLeastOnce,
                topic: "t".to_string(),
                payload: vec![1]
            },
        ]
    );
    assert_eq!((session.in_flight(), session.outgoing_len()), (2, 5));
    let mut published = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        published.extend(feed(
            &mut session,
            t(10 + n as u64),
            &ack(PacketType::PubAck, id.get(), ReasonCode::Success),
        ));
        assert!(session.in_flight() <= 2);
        let now_sent = sent(&mut session, t(10 + n as u64));
        assert!(now_sent.len() <= 1, "{now_sent:?}");
    }
    assert_eq!(
        published,
        ids.iter()
            .map(|id| Ev::Published(id.get()))
            .collect::<Vec<_>>()
    );
    assert_eq!(session.outgoing_len(), 0);
}

/// Found by the `engine` fuzz target (its deadline expired the message): a QoS 1 message
/// withdrawn after it was sent still counts against the broker's Receive Maximum until its
/// PUBACK arrives — the broker has not acknowledged it [MQTT-4.9.0-2] — so the next message
/// waits for that PUBACK instead of going out at once.
#[test]
fn a_withdrawn_message_counts_against_the_receive_maximum_until_its_puback() {
    let mut session = connected_v5(v5_config(), &[Property::ReceiveMaximum(1)]);
    let first = session
        .publish("t", &[1], QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    let second = session
        .publish("t", &[2], QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert_eq!(sent(&mut session, t(2)).len(), 1);
    assert!(session.cancel_publish(first));
    assert_eq!(
        sent(&mut session, t(3)),
        vec![],
        "the broker still counts the first"
    );
    // Its PUBACK frees the broker's slot: the second goes out.
    assert_eq!(
        feed(
            &mut session,
            t(4),
            &ack(PacketType::PubAck, first.get(), ReasonCode::Success)
        ),
        vec![]
    );
    assert_eq!(
        sent(&mut session, t(4)),
        vec![Sent::Publish {
            id: Some(second.get()),
            dup: false,
            qos: QoS::AtLeastOnce,
            topic: "t".to_string(),
            payload: vec![2],
        }]
    );
    assert_eq!(
        feed(
            &mut session,
            t(5),
            &ack(PacketType::PubAck, second.get(), ReasonCode::Success)
        ),
        vec![Ev::Published(second.get())]
    );
}

#[test]
fn the_brokers_maximum_packet_size_is_never_exceeded() {
    let mut session = connected_v5(v5_config(), &[Property::MaximumPacketSize(30)]);
    // topic 2+1, id 2, property length 1, payload 40: 46 + fixed header 2.
    assert_eq!(
        session.publish("t", &[0; 40], QoS::AtLeastOnce, false),
        Err(UsageError::PacketTooLarge { size: 48, max: 30 })
    );
    assert_eq!(
        session.publish("t", &[0; 40], QoS::AtMostOnce, false),
        Err(UsageError::PacketTooLarge { size: 46, max: 30 })
    );
    assert_eq!(session.outgoing_len(), 0);
    assert!(sent(&mut session, t(2)).is_empty());
    // SUBSCRIBE and UNSUBSCRIBE too (found by the session fuzz target).
    let long = "x".repeat(40);
    assert_eq!(
        session.subscribe(&[(long.as_str(), QoS::AtMostOnce)]),
        Err(UsageError::PacketTooLarge { size: 48, max: 30 })
    );
    assert_eq!(
        session.unsubscribe(&[long.as_str()]),
        Err(UsageError::PacketTooLarge { size: 47, max: 30 })
    );
    // 2 + 3 + 2 + 1 + 22 = 30: exactly the maximum.
    assert!(session
        .publish("t", &[0; 22], QoS::AtLeastOnce, false)
        .is_ok());
    assert_eq!(sent(&mut session, t(2)).len(), 1);
}

#[test]
fn what_the_broker_does_not_offer_is_refused_locally() {
    let mut session = connected_v5(
        v5_config(),
        &[
            Property::RetainAvailable(false),
            Property::MaximumQoS(QoS::AtLeastOnce),
            Property::WildcardSubscriptionAvailable(false),
            Property::SharedSubscriptionAvailable(false),
            Property::SubscriptionIdentifierAvailable(false),
        ],
    );
    assert_eq!(
        session.publish("t", b"x", QoS::AtMostOnce, true),
        Err(UsageError::RetainNotAvailable)
    );
    assert_eq!(
        session.publish("t", b"x", QoS::ExactlyOnce, false),
        Err(UsageError::QoSNotSupported {
            max: QoS::AtLeastOnce
        })
    );
    assert_eq!(
        session.subscribe(&[("a/+", QoS::AtMostOnce)]),
        Err(UsageError::WildcardSubscriptionsNotAvailable)
    );
    assert_eq!(
        session.subscribe(&[("$share/g/a", QoS::AtMostOnce)]),
        Err(UsageError::SharedSubscriptionsNotAvailable)
    );
    let with_id = [Property::SubscriptionIdentifier(7)];
    assert_eq!(
        session.subscribe_with(
            &[("a", SubscriptionOptions::new(QoS::AtMostOnce))],
            Properties::List(&PropertyList(&with_id))
        ),
        Err(UsageError::SubscriptionIdentifiersNotAvailable)
    );
    assert!(sent(&mut session, t(2)).is_empty());
    // What is offered still works.
    assert!(session.publish("t", b"x", QoS::AtLeastOnce, false).is_ok());
    assert!(session.subscribe(&[("a/b", QoS::AtLeastOnce)]).is_ok());
    assert_eq!(sent(&mut session, t(2)).len(), 2);
}

#[test]
fn server_keep_alive_and_assigned_client_identifier_are_adopted() {
    let mut config = v5_config();
    config.client_id = String::new();
    config.keep_alive = 60;
    let mut session = connected_v5(
        config,
        &[
            Property::ServerKeepAlive(5),
            Property::AssignedClientIdentifier("auto-1"),
        ],
    );
    assert_eq!(session.keep_alive(), 5);
    assert_eq!(session.poll_timeout(), Some(t(5_000)));
    session.handle_timeout(t(5_000));
    assert_eq!(sent(&mut session, t(5_000)), vec![Sent::PingReq]);
    // The next connection names the assigned identifier, so it can resume the session.
    assert_eq!(session.client_id(), "auto-1");
    assert_eq!(session.config().client_id, "");
}

#[test]
fn refusing_acknowledgements_end_the_exchange_with_their_reason_code() {
    let mut session = connected_v5(v5_config(), &[]);
    let one = session
        .publish("t", b"1", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    let two = session
        .publish("t", b"2", QoS::ExactlyOnce, false)
        .unwrap()
        .unwrap();
    let _ = sent(&mut session, t(2));
    assert_eq!(
        feed(
            &mut session,
            t(3),
            &ack(PacketType::PubAck, one.get(), ReasonCode::NotAuthorized)
        ),
        vec![Ev::Refused(one.get(), ReasonCode::NotAuthorized)]
    );
    assert_eq!(
        feed(
            &mut session,
            t(4),
            &ack(PacketType::PubRec, two.get(), ReasonCode::QuotaExceeded)
        ),
        vec![Ev::Refused(two.get(), ReasonCode::QuotaExceeded)]
    );
    // No PUBREL after a refusing PUBREC; both ids are free again.
    assert!(sent(&mut session, t(5)).is_empty());
    assert_eq!(session.outgoing_len(), 0);
    // A success code below 0x80 (No matching subscribers) still completes the publish.
    let three = session
        .publish("t", b"3", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    let _ = sent(&mut session, t(6));
    assert_eq!(
        feed(
            &mut session,
            t(7),
            &ack(
                PacketType::PubAck,
                three.get(),
                ReasonCode::NoMatchingSubscribers
            )
        ),
        vec![Ev::Published(three.get())]
    );
}

#[test]
fn a_refused_subscription_reason_code_reaches_the_application() {
    let mut session = connected_v5(v5_config(), &[]);
    let id = session
        .subscribe(&[("ok", QoS::AtLeastOnce), ("secret", QoS::AtLeastOnce)])
        .unwrap();
    let _ = sent(&mut session, t(2));
    let suback = bytes(Packet::SubAck(SubAck {
        packet_id: id,
        return_codes: &[0x01, 0x87],
        properties: Properties::EMPTY,
    }));
    session.handle_read(t(3), &suback);
    let Some(Event::Subscribed(ack)) = session.poll_event() else {
        panic!("no SUBACK event");
    };
    assert_eq!(
        ack.reason_codes().collect::<Vec<_>>(),
        [ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized]
    );
}

#[test]
fn connack_refusal_and_server_disconnect_surface_their_reason_codes() {
    let mut session = Session::new(v5_config());
    session.connect(t(0), true).unwrap();
    let _ = sent(&mut session, t(0));
    let refused = bytes(Packet::ConnAck(ConnAck {
        session_present: false,
        code: ConnectReturnCode::BadUserNameOrPassword,
        reason_code: ReasonCode::BadUserNameOrPassword,
        properties: Properties::EMPTY,
    }));
    assert_eq!(
        feed(&mut session, t(1), &refused),
        vec![Ev::Closed(CloseReason::Rejected(
            ReasonCode::BadUserNameOrPassword
        ))]
    );

    let mut session = connected_v5(v5_config(), &[]);
    let reference = [Property::ServerReference("other:1883")];
    let disconnect = bytes(Packet::Disconnect(Disconnect::new(
        ReasonCode::ServerShuttingDown,
        Properties::List(&PropertyList(&reference)),
    )));
    assert_eq!(
        feed(&mut session, t(5), &disconnect),
        vec![Ev::Closed(CloseReason::ServerDisconnected(
            ReasonCode::ServerShuttingDown
        ))]
    );
    assert!(!session.is_connecting_or_connected());
    assert_eq!(
        session.broker_limits().server_reference.as_deref(),
        Some("other:1883")
    );
}

#[test]
fn messages_carry_their_properties_both_ways() {
    let mut session = connected_v5(v5_config(), &[]);
    let props = [
        Property::MessageExpiryInterval(30),
        Property::ResponseTopic("reply/to"),
        Property::CorrelationData(b"42"),
        Property::UserProperty("k", "v"),
    ];
    session
        .publish_with(
            "t",
            b"hi",
            QoS::AtLeastOnce,
            false,
            Properties::List(&PropertyList(&props)),
        )
        .unwrap();
    let written = sent_v5(&mut session);
    assert_eq!(written.len(), 1);
    let Ok(Decoded::Complete {
        packet: Packet::Publish(p),
        ..
    }) = decode_with(&written[0].1, usize::MAX, V5)
    else {
        panic!("{written:02x?}");
    };
    assert_eq!(p.properties.iter().collect::<Vec<_>>(), props);

    // Incoming: the application sees the properties.
    let incoming = bytes(Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "in",
        packet_id: None,
        payload: b"x",
        properties: Properties::List(&PropertyList(&[Property::UserProperty("a", "b")])),
    }));
    session.handle_read(t(3), &incoming);
    let Some(Event::Message(message)) = session.poll_event() else {
        panic!("no message");
    };
    assert_eq!(
        message.properties.user_properties().collect::<Vec<_>>(),
        [("a", "b")]
    );

    // The session allows no incoming topic alias: one is a protocol error.
    let aliased = bytes(Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "in",
        packet_id: None,
        payload: b"x",
        properties: Properties::List(&PropertyList(&[Property::TopicAlias(1)])),
    }));
    assert_eq!(
        feed(&mut session, t(4), &aliased),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::TopicAliasInvalid(1)
        ))]
    );
}

#[test]
fn properties_on_a_3_1_1_session_are_refused_not_dropped() {
    let mut session = Session::new(config());
    session.connect(t(0), true).unwrap();
    let _ = sent(&mut session, t(0));
    feed(&mut session, t(1), &[0x20, 0x02, 0x00, 0x00]);
    let props = [Property::UserProperty("k", "v")];
    assert_eq!(
        session.publish_with(
            "t",
            b"x",
            QoS::AtLeastOnce,
            false,
            Properties::List(&PropertyList(&props))
        ),
        Err(UsageError::Encode(EncodeError::RequiresMqtt5))
    );
    assert_eq!(session.outgoing_len(), 0);
    assert!(events(&mut session).is_empty());
}

/// The QoS 0 PUBLISH packets written: (topic, alias).
fn sent_aliases(session: &mut Session) -> Vec<(String, Option<u16>)> {
    sent_v5(session)
        .iter()
        .map(|(_, bytes)| {
            let Ok(Decoded::Complete {
                packet: Packet::Publish(p),
                ..
            }) = decode_with(bytes, usize::MAX, V5)
            else {
                panic!("{bytes:02x?}");
            };
            (p.topic.to_string(), p.properties.topic_alias())
        })
        .collect()
}

#[test]
fn outgoing_topic_aliases_within_the_brokers_maximum_and_per_connection() {
    let mut config = v5_config();
    config.v5.topic_aliases = true;
    let mut session = connected_v5(config, &[Property::TopicAliasMaximum(2)]);
    for topic in ["a/1", "a/1", "b/2", "c/3", "b/2", "a/1"] {
        session
            .publish(topic, b"x", QoS::AtMostOnce, false)
            .unwrap();
    }
    // QoS 1/2 messages never use one (they may be resent on another connection).
    session
        .publish("a/1", b"x", QoS::AtLeastOnce, false)
        .unwrap();
    let written = sent_aliases(&mut session);
    let s = |t: &str| t.to_string();
    assert_eq!(
        written,
        [
            (s("a/1"), Some(1)),
            (s(""), Some(1)),
            (s("b/2"), Some(2)),
            // Both aliases taken: the topic goes in full.
            (s("c/3"), None),
            (s(""), Some(2)),
            (s(""), Some(1)),
            (s("a/1"), None),
        ]
    );
    // A new connection starts without aliases.
    session.handle_connection_lost();
    session.connect(t(100), true).unwrap();
    let _ = sent(&mut session, t(100));
    feed(
        &mut session,
        t(101),
        &connack(&[Property::TopicAliasMaximum(2)]),
    );
    let _ = sent_v5(&mut session);
    session
        .publish("b/2", b"x", QoS::AtMostOnce, false)
        .unwrap();
    assert_eq!(sent_aliases(&mut session), [(s("b/2"), Some(1))]);

    // Off by default, and never without the broker's Topic Alias Maximum.
    let mut session = connected_v5(v5_config(), &[Property::TopicAliasMaximum(5)]);
    session.publish("a", b"x", QoS::AtMostOnce, false).unwrap();
    session.publish("a", b"x", QoS::AtMostOnce, false).unwrap();
    assert_eq!(sent_aliases(&mut session), [(s("a"), None), (s("a"), None)]);
    let mut config = v5_config();
    config.v5.topic_aliases = true;
    let mut session = connected_v5(config, &[]);
    session.publish("a", b"x", QoS::AtMostOnce, false).unwrap();
    session.publish("a", b"x", QoS::AtMostOnce, false).unwrap();
    assert_eq!(sent_aliases(&mut session), [(s("a"), None), (s("a"), None)]);
}

#[test]
fn resends_on_a_resumed_session_respect_the_new_receive_maximum() {
    let mut session = connected_v5(v5_config(), &[]);
    for i in 0..3u8 {
        session.publish("t", &[i], QoS::AtLeastOnce, false).unwrap();
    }
    assert_eq!(sent(&mut session, t(2)).len(), 3);
    session.handle_connection_lost();
    session.connect(t(10), false).unwrap();
    let _ = sent(&mut session, t(10));
    let resumed = bytes(Packet::ConnAck(ConnAck {
        properties: Properties::List(&PropertyList(&[Property::ReceiveMaximum(1)])),
        ..ConnAck::new(true, ConnectReturnCode::Accepted)
    }));
    assert_eq!(
        feed(&mut session, t(11), &resumed),
        vec![Ev::Connected(true)]
    );
    // One resend (DUP) at a time, in order.
    let dup = |id: u16, payload: u8| Sent::Publish {
        id: Some(id),
        dup: true,
        qos: QoS::AtLeastOnce,
        topic: "t".to_string(),
        payload: vec![payload],
    };
    assert_eq!(sent(&mut session, t(12)), vec![dup(1, 0)]);
    for (id, next) in [(1u16, Some(dup(2, 1))), (2, Some(dup(3, 2))), (3, None)] {
        assert_eq!(
            feed(
                &mut session,
                t(20 + u64::from(id)),
                &ack(PacketType::PubAck, id, ReasonCode::Success)
            ),
            vec![Ev::Published(id)]
        );
        assert_eq!(
            sent(&mut session, t(30)),
            next.into_iter().collect::<Vec<_>>()
        );
    }
}

#[test]
fn disconnect_with_a_reason_and_properties() {
    let mut session = connected_v5(v5_config(), &[]);
    let expiry = [Property::SessionExpiryInterval(0)];
    session
        .disconnect_with(Disconnect::new(
            ReasonCode::DisconnectWithWillMessage,
            Properties::List(&PropertyList(&expiry)),
        ))
        .unwrap();
    let written = sent_v5(&mut session);
    let Ok(Decoded::Complete {
        packet: Packet::Disconnect(d),
        ..
    }) = decode_with(&written[0].1, usize::MAX, V5)
    else {
        panic!("{written:02x?}");
    };
    assert_eq!(d.reason_code, ReasonCode::DisconnectWithWillMessage);
    assert_eq!(d.properties.session_expiry_interval(), Some(0));
    assert_eq!(
        events(&mut session),
        vec![Ev::Closed(CloseReason::Disconnected)]
    );

    // A reason code DISCONNECT cannot carry is refused, and the connection stays.
    let mut session = connected_v5(v5_config(), &[]);
    assert_eq!(
        session.disconnect_with(Disconnect::new(ReasonCode::GrantedQoS1, Properties::EMPTY)),
        Err(UsageError::Encode(EncodeError::InvalidReasonCode {
            packet_type: PacketType::Disconnect,
            code: 0x01
        }))
    );
    assert!(session.is_connected());
    // With 3.1.1 only a normal disconnection exists.
    let mut session = Session::new(config());
    session.connect(t(0), true).unwrap();
    let _ = sent(&mut session, t(0));
    feed(&mut session, t(1), &[0x20, 0x02, 0x00, 0x00]);
    assert_eq!(
        session.disconnect_with(Disconnect::new(
            ReasonCode::DisconnectWithWillMessage,
            Properties::EMPTY
        )),
        Err(UsageError::Encode(EncodeError::RequiresMqtt5))
    );
    assert!(session.is_connected());
}

/// The reason code of the DISCONNECT the session wrote last, if it wrote one.
fn sent_disconnect_reason(session: &mut Session) -> Option<ReasonCode> {
    sent_v5(session)
        .into_iter()
        .filter(|(kind, _)| *kind == PacketType::Disconnect)
        .map(|(_, raw)| match decode_with(&raw, usize::MAX, V5) {
            Ok(Decoded::Complete {
                packet: Packet::Disconnect(d),
                ..
            }) => d.reason_code,
            other => panic!("not a DISCONNECT: {other:?}"),
        })
        .next_back()
}

/// An MQTT 5 PUBLISH from the broker with `topic` and an optional Topic Alias.
fn incoming(topic: &str, alias: Option<u16>, qos: QoS, id: u16, payload: &[u8]) -> Vec<u8> {
    let list = alias.map(Property::TopicAlias);
    let list = list.as_slice();
    let list = PropertyList(list);
    bytes(Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: PacketId::new(id).filter(|_| qos != QoS::AtMostOnce),
        payload,
        properties: Properties::List(&list),
    }))
}

fn message(topic: &str, payload: &[u8], qos: QoS) -> Ev {
    Ev::Message {
        topic: topic.to_string(),
        payload: payload.to_vec(),
        qos,
        dup: false,
    }
}

/// Most incoming topic aliases the session's storage holds (`u16::MAX` on the heap).
fn storage_alias_maximum<S: crate::storage::Storage>(_: &crate::session::Session<S>) -> u16 {
    crate::session::IncomingAliases::<S>::MAX
}

#[test]
fn incoming_topic_aliases_resolve_to_the_full_topic_within_the_announced_maximum() {
    let mut config = v5_config();
    config.v5.topic_alias_maximum = Some(2);
    let mut session = Session::new(config.clone());
    session.connect(t(0), true).unwrap();
    let (_, connect) = sent_v5(&mut session).remove(0);
    let Ok(Decoded::Complete {
        packet: Packet::Connect(c),
        ..
    }) = decode_with(&connect, usize::MAX, V5)
    else {
        panic!("no CONNECT");
    };
    assert!(c
        .properties
        .iter()
        .any(|p| p == Property::TopicAliasMaximum(2)));
    feed(&mut session, t(1), &connack(&[]));

    let q0 = QoS::AtMostOnce;
    // Alias and topic set the alias up; the alias alone then stands for the topic.
    assert_eq!(
        feed(&mut session, t(2), &incoming("a/b", Some(1), q0, 0, b"1")),
        vec![message("a/b", b"1", q0)]
    );
    assert_eq!(
        feed(&mut session, t(3), &incoming("", Some(1), q0, 0, b"2")),
        vec![message("a/b", b"2", q0)]
    );
    // A QoS 1 message with only the alias, and a second alias.
    assert_eq!(
        feed(
            &mut session,
            t(4),
            &[
                incoming("", Some(1), QoS::AtLeastOnce, 7, b"3"),
                incoming("c/d", Some(2), q0, 0, b"4"),
            ]
            .concat()
        ),
        vec![
            message("a/b", b"3", QoS::AtLeastOnce),
            message("c/d", b"4", q0)
        ]
    );
    // Replacing a mapping.
    feed(&mut session, t(5), &incoming("e", Some(1), q0, 0, b"5"));
    assert_eq!(
        feed(&mut session, t(6), &incoming("", Some(1), q0, 0, b"6")),
        vec![message("e", b"6", q0)]
    );
    let _ = sent_v5(&mut session);

    // Above the maximum: DISCONNECT 0x94 Topic Alias invalid.
    assert_eq!(
        feed(&mut session, t(7), &incoming("x", Some(3), q0, 0, b"7")),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::TopicAliasInvalid(3)
        ))]
    );
    assert_eq!(
        sent_disconnect_reason(&mut session),
        Some(ReasonCode::TopicAliasInvalid)
    );

    // A new connection starts with no aliases: the alias alone is a protocol error.
    session.connect(t(10), true).unwrap();
    let _ = sent_v5(&mut session);
    feed(&mut session, t(11), &connack(&[]));
    assert_eq!(
        feed(&mut session, t(12), &incoming("", Some(1), q0, 0, b"8")),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::UnknownTopicAlias(1)
        ))]
    );
    assert_eq!(
        sent_disconnect_reason(&mut session),
        Some(ReasonCode::ProtocolError)
    );

    // The table is bounded: no more than MAX_INCOMING_TOPIC_ALIASES are announced or taken
    // (on fixed storage, no more than the aliases it holds).
    let mut large = v5_config();
    large.v5.topic_alias_maximum = Some(u16::MAX);
    let mut session = Session::new(large);
    let bound = MAX_INCOMING_TOPIC_ALIASES.min(storage_alias_maximum(&session));
    session.connect(t(0), true).unwrap();
    let (_, connect) = sent_v5(&mut session).remove(0);
    let max = bound.to_be_bytes();
    assert!(connect.windows(3).any(|w| w == [0x22, max[0], max[1]]));
    feed(&mut session, t(1), &connack(&[]));
    let above = bound + 1;
    assert_eq!(
        feed(&mut session, t(2), &incoming("x", Some(above), q0, 0, b"9")),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::TopicAliasInvalid(above)
        ))]
    );

    // Alias 0 is never valid (the encoder refuses it: raw bytes).
    let mut session = connected_v5(config, &[]);
    let alias_zero = [0x30, 8, 0, 1, b'x', 3, 0x23, 0, 0, b'9'];
    assert_eq!(
        feed(&mut session, t(2), &alias_zero),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::TopicAliasInvalid(0)
        ))]
    );
    assert_eq!(
        sent_disconnect_reason(&mut session),
        Some(ReasonCode::TopicAliasInvalid)
    );
}

#[test]
fn the_announced_receive_maximum_is_enforced_counting_unacknowledged_messages() {
    // QoS 2: each counts until its PUBCOMP is written.
    let mut config = v5_config();
    config.v5.receive_maximum = Some(2);
    let mut session = connected_v5(config.clone(), &[]);
    let q2 = QoS::ExactlyOnce;
    feed(&mut session, t(2), &incoming("t", None, q2, 1, b"1"));
    feed(&mut session, t(2), &incoming("t", None, q2, 2, b"2"));
    // Released: PUBCOMP goes out, room for one more.
    feed(&mut session, t(3), &[0x62, 0x02, 0x00, 0x01]);
    assert_eq!(
        feed(&mut session, t(4), &incoming("t", None, q2, 3, b"3")),
        vec![message("t", b"3", q2)]
    );
    let _ = sent_v5(&mut session);
    assert_eq!(
        feed(&mut session, t(5), &incoming("t", None, q2, 4, b"4")),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::ReceiveMaximumExceeded { max: 2 }
        ))]
    );
    assert_eq!(
        sent_disconnect_reason(&mut session),
        Some(ReasonCode::ReceiveMaximumExceeded)
    );

    // QoS 1 with manual acknowledgement: what the application has not acknowledged counts.
    config.manual_ack = true;
    let mut session = connected_v5(config.clone(), &[]);
    let q1 = QoS::AtLeastOnce;
    feed(&mut session, t(2), &incoming("t", None, q1, 1, b"1"));
    feed(&mut session, t(2), &incoming("t", None, q1, 2, b"2"));
    assert!(session.ack(PacketId::new(1).unwrap()));
    assert_eq!(
        feed(&mut session, t(3), &incoming("t", None, q1, 3, b"3")),
        vec![message("t", b"3", q1)]
    );
    assert_eq!(
        feed(&mut session, t(4), &incoming("t", None, q1, 4, b"4")),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::ReceiveMaximumExceeded { max: 2 }
        ))]
    );

    // The quota is per connection: a new one starts with all of it (section 4.9), and
    // automatic acknowledgement never exceeds it. QoS 0 never counts.
    config.manual_ack = false;
    let mut session = connected_v5(config, &[]);
    for id in 1..=10u16 {
        let got = feed(&mut session, t(2), &incoming("t", None, q1, id, b"x"));
        assert_eq!(got, vec![message("t", b"x", q1)]);
        let got = feed(
            &mut session,
            t(2),
            &incoming("t", None, QoS::AtMostOnce, 0, b"y"),
        );
        assert_eq!(got.len(), 1);
    }
}

#[test]
fn auth_from_the_broker_is_a_typed_protocol_error_with_disconnect() {
    let mut session = connected_v5(v5_config(), &[]);
    let auth = bytes(Packet::Auth(crate::packet::Auth::new(
        ReasonCode::ContinueAuthentication,
        Properties::EMPTY,
    )));
    assert_eq!(
        feed(&mut session, t(2), &auth),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::UnexpectedAuth
        ))]
    );
    assert_eq!(
        sent_disconnect_reason(&mut session),
        Some(ReasonCode::ProtocolError)
    );
}

#[test]
fn unsuback_reason_codes_reach_the_application() {
    let mut session = connected_v5(v5_config(), &[]);
    let id = session.unsubscribe(&["a", "b", "c"]).unwrap();
    let _ = sent_v5(&mut session);
    let codes = [0x00, 0x11, 0x87];
    session.handle_read(
        t(2),
        &bytes(Packet::UnsubAck(UnsubAck::with_reasons(
            id,
            &codes,
            Properties::EMPTY,
        ))),
    );
    let Some(Event::Unsubscribed(unsuback)) = session.poll_event() else {
        panic!("no UNSUBACK event");
    };
    assert_eq!(unsuback.packet_id, id);
    assert_eq!(
        unsuback.codes().collect::<Vec<_>>(),
        vec![
            ReasonCode::Success,
            ReasonCode::NoSubscriptionExisted,
            ReasonCode::NotAuthorized
        ]
    );
    // One code per filter [MQTT-3.11.3-2].
    let id = session.unsubscribe(&["a", "b"]).unwrap();
    let _ = sent_v5(&mut session);
    assert_eq!(
        feed(
            &mut session,
            t(3),
            &bytes(Packet::UnsubAck(UnsubAck::with_reasons(
                id,
                &[0x00],
                Properties::EMPTY
            )))
        ),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::UnsubAckCountMismatch
        ))]
    );
}

#[test]
fn stored_messages_larger_than_a_new_maximum_packet_size_are_dropped_not_sent() {
    let mut session = connected_v5(v5_config(), &[]);
    let big = session
        .publish("t", &[1; 200], QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    let big2 = session
        .publish("t", &[2; 200], QoS::ExactlyOnce, false)
        .unwrap()
        .unwrap();
    let small = session
        .publish("t", &[3; 10], QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert_eq!(sent(&mut session, t(2)).len(), 3);
    session.handle_connection_lost();

    // The broker resumes the session but now takes at most 100 bytes.
    session.connect(t(10), false).unwrap();
    let _ = sent(&mut session, t(10));
    let resumed = bytes(Packet::ConnAck(ConnAck {
        properties: Properties::List(&PropertyList(&[Property::MaximumPacketSize(100)])),
        ..ConnAck::new(true, ConnectReturnCode::Accepted)
    }));
    assert_eq!(
        feed(&mut session, t(11), &resumed),
        vec![
            Ev::TooLarge(big.get(), 209, 100),
            Ev::TooLarge(big2.get(), 209, 100),
            Ev::Connected(true)
        ]
    );
    // Only the small one is resent.
    assert_eq!(
        sent(&mut session, t(12)),
        vec![Sent::Publish {
            id: Some(small.get()),
            dup: true,
            qos: QoS::AtLeastOnce,
            topic: "t".to_string(),
            payload: vec![3; 10],
        }]
    );
    assert_eq!(session.outgoing_len(), 1);
    // The QoS 2 message's id may be in the broker's QoS 2 table: it stays reserved while the
    // broker's session lasts, the QoS 1 message's is free.
    assert!(session.state.used_ids.contains(big2));
    assert!(!session.state.used_ids.contains(big));
    session.handle_connection_lost();
    session.connect(t(20), false).unwrap();
    let _ = sent(&mut session, t(20));
    feed(&mut session, t(21), &connack(&[]));
    assert!(!session.state.used_ids.contains(big2));
}

/// Stored messages a resumed session's new CONNACK rules out (above its Maximum QoS, or
/// retained with Retain Available 0) are removed and reported, not resent [MQTT-3.2.2-11],
/// [MQTT-3.2.2-14].
#[test]
fn stored_messages_a_new_connack_rules_out_are_refused_not_sent() {
    let mut session = connected_v5(v5_config(), &[]);
    let qos2 = session
        .publish("t", &[1], QoS::ExactlyOnce, false)
        .unwrap()
        .unwrap();
    let retained = session
        .publish("t", &[2], QoS::AtLeastOnce, true)
        .unwrap()
        .unwrap();
    let plain = session
        .publish("t", &[3], QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert_eq!(sent(&mut session, t(2)).len(), 3);
    session.handle_connection_lost();
    session.connect(t(10), false).unwrap();
    let _ = sent(&mut session, t(10));
    let resumed = bytes(Packet::ConnAck(ConnAck {
        properties: Properties::List(&PropertyList(&[
            Property::MaximumQoS(QoS::AtLeastOnce),
            Property::RetainAvailable(false),
        ])),
        ..ConnAck::new(true, ConnectReturnCode::Accepted)
    }));
    assert_eq!(
        feed(&mut session, t(11), &resumed),
        vec![
            Ev::Refused(qos2.get(), ReasonCode::QoSNotSupported),
            Ev::Refused(retained.get(), ReasonCode::RetainNotSupported),
            Ev::Connected(true)
        ]
    );
    assert_eq!(
        sent(&mut session, t(12)),
        vec![Sent::Publish {
            id: Some(plain.get()),
            dup: true,
            qos: QoS::AtLeastOnce,
            topic: "t".to_string(),
            payload: vec![3],
        }]
    );
    // The QoS 2 message's id may be in the broker's QoS 2 table: it stays reserved.
    assert!(session.state.used_ids.contains(qos2));
    assert!(!session.state.used_ids.contains(retained));
}

/// Found by the `engine` fuzz target: a QoS 2 message past PUBREC only sends PUBREL on a
/// resumed session, but a broker that lost the session gets it again as a new PUBLISH — which
/// its new CONNACK's Maximum QoS or Maximum Packet Size may rule out.
#[test]
fn a_released_qos2_message_republished_to_a_new_session_is_checked_too() {
    let mut session = connected_v5(v5_config(), &[]);
    let small = session
        .publish("t", &[1], QoS::ExactlyOnce, false)
        .unwrap()
        .unwrap();
    let big = session
        .publish("t", &[2; 200], QoS::ExactlyOnce, false)
        .unwrap()
        .unwrap();
    assert_eq!(sent(&mut session, t(2)).len(), 2);
    for id in [small, big] {
        feed(
            &mut session,
            t(3),
            &ack(PacketType::PubRec, id.get(), ReasonCode::Success),
        );
    }
    assert_eq!(sent(&mut session, t(3)).len(), 2, "two PUBREL");
    session.handle_connection_lost();
    session.connect(t(10), false).unwrap();
    let _ = sent(&mut session, t(10));
    // No session: both would be published again, at QoS 2, one of 209 bytes.
    let fresh = bytes(Packet::ConnAck(ConnAck {
        properties: Properties::List(&PropertyList(&[
            Property::MaximumQoS(QoS::AtLeastOnce),
            Property::MaximumPacketSize(100),
        ])),
        ..ConnAck::new(false, ConnectReturnCode::Accepted)
    }));
    assert_eq!(
        feed(&mut session, t(11), &fresh),
        vec![
            Ev::Refused(small.get(), ReasonCode::QoSNotSupported),
            Ev::TooLarge(big.get(), 209, 100),
            Ev::Connected(false)
        ]
    );
    assert_eq!(sent(&mut session, t(12)), vec![]);
    assert_eq!(session.outgoing_len(), 0);
}

#[test]
fn a_client_only_packet_is_answered_with_protocol_error() {
    // A SUBSCRIBE without filters from the broker: its type is the violation (its body is not
    // parsed), so Protocol Error rather than Malformed Packet.
    let mut session = connected_v5(v5_config(), &[]);
    assert_eq!(
        feed(&mut session, t(2), &[0x82, 0x03, 0x00, 0x01, 0x00]),
        vec![Ev::Closed(CloseReason::Protocol(
            ProtocolError::UnexpectedPacket(PacketType::Subscribe)
        ))]
    );
    assert_eq!(
        sent_disconnect_reason(&mut session),
        Some(ReasonCode::ProtocolError)
    );
}

#[test]
fn malformed_and_oversized_input_is_answered_with_its_disconnect_reason() {
    // A PUBLISH whose topic length runs past the packet: Malformed Packet.
    let mut session = connected_v5(v5_config(), &[]);
    let closed = feed(&mut session, t(2), &[0x30, 0x03, 0x00, 0x09, b'x']);
    assert!(
        matches!(closed[..], [Ev::Closed(CloseReason::Decode(_))]),
        "{closed:?}"
    );
    assert_eq!(
        sent_disconnect_reason(&mut session),
        Some(ReasonCode::MalformedPacket)
    );
    // Larger than the Maximum Packet Size we announced: Packet too large.
    let mut config = v5_config();
    config.max_packet_size = 16;
    let mut session = connected_v5(config, &[]);
    let closed = feed(&mut session, t(2), &[0x30, 0x20]);
    assert_eq!(
        closed,
        vec![Ev::Closed(CloseReason::PacketTooLarge {
            size: 34,
            max: 16
        })]
    );
    assert_eq!(
        sent_disconnect_reason(&mut session),
        Some(ReasonCode::PacketTooLarge)
    );
    // MQTT 3.1.1 has no DISCONNECT reasons: nothing is sent.
    let mut session = Session::new(super::tests::config());
    session.connect(t(0), true).unwrap();
    let _ = sent(&mut session, t(0));
    feed(&mut session, t(1), &[0x20, 0x02, 0x00, 0x00]);
    feed(&mut session, t(2), &[0x30, 0x03, 0x00, 0x09, b'x']);
    assert!(sent(&mut session, t(3)).is_empty());
}

#[test]
fn a_stored_publish_is_resent_with_the_message_expiry_set_for_it() {
    let mut session = Session::new(v5_config());
    session.connect(t(0), false).unwrap();
    let _ = sent(&mut session, t(0));
    feed(&mut session, t(1), &connack(&[]));
    let expiry = [
        Property::MessageExpiryInterval(10),
        Property::ContentType("c"),
    ];
    let list = PropertyList(&expiry);
    let id = session
        .publish_with(
            "t/x",
            b"p",
            QoS::AtLeastOnce,
            false,
            Properties::List(&list),
        )
        .unwrap()
        .unwrap();
    let _ = sent_v5(&mut session);
    session.handle_connection_lost();
    assert!(session.shorten_message_expiry(id, 7));
    // Never lengthened: a message keeps the shorter of the two.
    assert!(session.shorten_message_expiry(id, 20));
    session.connect(t(2), false).unwrap();
    let _ = sent_v5(&mut session);
    let resumed = bytes(Packet::ConnAck(ConnAck::new(
        true,
        ConnectReturnCode::Accepted,
    )));
    feed(&mut session, t(3), &resumed);
    let publishes: Vec<_> = sent_v5(&mut session)
        .into_iter()
        .filter(|(kind, _)| *kind == PacketType::Publish)
        .collect();
    assert_eq!(publishes.len(), 1);
    let Ok(Decoded::Complete {
        packet: Packet::Publish(publish),
        ..
    }) = decode_with(&publishes[0].1, usize::MAX, V5)
    else {
        panic!("{publishes:?}")
    };
    let properties: Vec<_> = publish.properties.iter().collect();
    assert_eq!(
        properties,
        [
            Property::MessageExpiryInterval(7),
            Property::ContentType("c")
        ]
    );
    // Nothing to patch: no such message, or no expiry on it.
    assert!(!session.shorten_message_expiry(PacketId::new(999).unwrap(), 7));
    let plain = session
        .publish("t/y", b"p", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    assert!(!session.shorten_message_expiry(plain, 7));
}

/// Found by the `engine` fuzz target: a QoS 2 message past PUBREC that a broker without the
/// session gets again as a new PUBLISH carried the Message Expiry Interval of its first send:
/// it can be shortened too.
#[test]
fn a_released_qos2_message_republished_carries_its_shortened_expiry() {
    let mut session = connected_v5(v5_config(), &[]);
    let expiry = [Property::MessageExpiryInterval(10)];
    let list = PropertyList(&expiry);
    let id = session
        .publish_with("t", b"p", QoS::ExactlyOnce, false, Properties::List(&list))
        .unwrap()
        .unwrap();
    let _ = sent_v5(&mut session);
    feed(
        &mut session,
        t(3),
        &ack(PacketType::PubRec, id.get(), ReasonCode::Success),
    );
    let _ = sent_v5(&mut session);
    session.handle_connection_lost();
    assert!(session.shorten_message_expiry(id, 3));
    session.connect(t(4), false).unwrap();
    let _ = sent_v5(&mut session);
    feed(&mut session, t(5), &connack(&[]));
    let publishes: Vec<_> = sent_v5(&mut session)
        .into_iter()
        .filter(|(kind, _)| *kind == PacketType::Publish)
        .collect();
    let [(_, packet)] = &publishes[..] else {
        panic!("{publishes:?}")
    };
    let Ok(Decoded::Complete {
        packet: Packet::Publish(publish),
        ..
    }) = decode_with(packet, usize::MAX, V5)
    else {
        panic!("{packet:?}")
    };
    assert_eq!(publish.properties.message_expiry_interval(), Some(3));
}

#[test]
fn will_properties_and_the_other_connect_options_reach_the_connect() {
    let will_list = [
        Property::WillDelayInterval(30),
        Property::ContentType("text/plain"),
        Property::UserProperty("k", "v"),
    ];
    let will_properties = Properties::List(&PropertyList(&will_list))
        .encode_for(PacketType::Connect, true)
        .unwrap();
    // Checked for a will: Topic Alias may not be in one, Will Delay Interval only there.
    assert_eq!(
        Properties::List(&PropertyList(&[Property::TopicAlias(1)]))
            .encode_for(PacketType::Connect, true),
        Err(EncodeError::PropertyNotAllowed {
            property: crate::packet::PropertyId::TopicAlias,
            packet_type: PacketType::Connect,
            will: true
        })
    );
    assert!(
        Properties::List(&PropertyList(&[Property::WillDelayInterval(1)]))
            .encode_for(PacketType::Publish, false)
            .is_err()
    );
    let mut config = v5_config();
    config.will = Some(Will {
        topic: "w".to_string(),
        payload: b"gone".to_vec(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: will_properties,
    });
    config.v5.request_response_information = Some(true);
    config.v5.authentication_method = Some("m".to_string());
    config.v5.authentication_data = Some(b"d".to_vec());
    let mut session = Session::new(config);
    session.connect(t(0), true).unwrap();
    let connect = session.poll_transmit(t(0)).unwrap().to_vec();
    let Ok(Decoded::Complete {
        packet: Packet::Connect(c),
        ..
    }) = decode_with(&connect, usize::MAX, V5)
    else {
        panic!("{connect:02x?}");
    };
    let will = c.will.unwrap();
    assert_eq!(will.properties.iter().collect::<Vec<_>>(), will_list);
    let properties: Vec<Property<'_>> = c.properties.iter().collect();
    for expected in [
        Property::RequestResponseInformation(true),
        Property::AuthenticationMethod("m"),
        Property::AuthenticationData(b"d"),
    ] {
        assert!(properties.contains(&expected), "{properties:?}");
    }

    // A will with properties cannot be sent as 3.1.1.
    let mut v311 = super::tests::config();
    v311.will = Some(Will {
        topic: "w".to_string(),
        payload: Vec::new(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: vec![0x18, 0, 0, 0, 1],
    });
    let mut session = Session::new(v311);
    assert!(session.connect(t(0), true).is_err());
}

#[test]
fn unsubscribe_carries_its_properties() {
    let mut session = connected_v5(v5_config(), &[]);
    let list = [Property::UserProperty("why", "done")];
    let id = session
        .unsubscribe_with(&["a/#"], Properties::List(&PropertyList(&list)))
        .unwrap();
    let sent = sent_v5(&mut session);
    assert_eq!(sent.len(), 1);
    let Ok(Decoded::Complete {
        packet: Packet::Unsubscribe(u),
        ..
    }) = decode_with(&sent[0].1, usize::MAX, V5)
    else {
        panic!("{sent:02x?}");
    };
    assert_eq!(u.packet_id, id);
    assert_eq!(u.properties.iter().collect::<Vec<_>>(), list);
    // Not a property of UNSUBSCRIBE: refused before anything is sent.
    let list = [Property::ContentType("x")];
    assert!(session
        .unsubscribe_with(&["a/#"], Properties::List(&PropertyList(&list)))
        .is_err());
    assert!(sent_v5(&mut session).is_empty());
}
