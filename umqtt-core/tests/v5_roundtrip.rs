//! MQTT 5 property tests: every packet type with any valid set of properties (every property
//! identifier, repeated user properties and subscription identifiers), reason codes and
//! subscription options survives `encode_with(V5)` → `decode_with(V5)`, whole or in prefixes.

use proptest::prelude::*;
use umqtt_core::packet::{
    decode_with, Ack, Auth, ConnAck, Connect, ConnectReturnCode, Decoded, Disconnect, LastWill,
    Packet, PacketId, PacketType, Properties, Property, PropertyId, PropertyList, ProtocolVersion,
    Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscribeTopics,
    SubscriptionOptions, UnsubAck, Unsubscribe, UnsubscribeTopics, MAX_VARIABLE_BYTE_INTEGER,
};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// An owned property value, so proptest can generate and shrink it.
#[derive(Debug, Clone)]
enum Value {
    Bool(bool),
    QoS(QoS),
    U16(u16),
    U32(u32),
    Str(String),
    Bin(Vec<u8>),
    Pair(String, String),
}

type OwnedProperties = Vec<(PropertyId, Value)>;

fn borrow(props: &OwnedProperties) -> Vec<Property<'_>> {
    props
        .iter()
        .map(|(id, value)| match (id, value) {
            (PropertyId::PayloadFormatIndicator, Value::Bool(b)) => {
                Property::PayloadFormatIndicator(*b)
            }
            (PropertyId::RequestProblemInformation, Value::Bool(b)) => {
                Property::RequestProblemInformation(*b)
            }
            (PropertyId::RequestResponseInformation, Value::Bool(b)) => {
                Property::RequestResponseInformation(*b)
            }
            (PropertyId::RetainAvailable, Value::Bool(b)) => Property::RetainAvailable(*b),
            (PropertyId::WildcardSubscriptionAvailable, Value::Bool(b)) => {
                Property::WildcardSubscriptionAvailable(*b)
            }
            (PropertyId::SubscriptionIdentifierAvailable, Value::Bool(b)) => {
                Property::SubscriptionIdentifierAvailable(*b)
            }
            (PropertyId::SharedSubscriptionAvailable, Value::Bool(b)) => {
                Property::SharedSubscriptionAvailable(*b)
            }
            (PropertyId::MaximumQoS, Value::QoS(q)) => Property::MaximumQoS(*q),
            (PropertyId::ServerKeepAlive, Value::U16(v)) => Property::ServerKeepAlive(*v),
            (PropertyId::ReceiveMaximum, Value::U16(v)) => Property::ReceiveMaximum(*v),
            (PropertyId::TopicAliasMaximum, Value::U16(v)) => Property::TopicAliasMaximum(*v),
            (PropertyId::TopicAlias, Value::U16(v)) => Property::TopicAlias(*v),
            (PropertyId::MessageExpiryInterval, Value::U32(v)) => {
                Property::MessageExpiryInterval(*v)
            }
            (PropertyId::SessionExpiryInterval, Value::U32(v)) => {
                Property::SessionExpiryInterval(*v)
            }
            (PropertyId::WillDelayInterval, Value::U32(v)) => Property::WillDelayInterval(*v),
            (PropertyId::MaximumPacketSize, Value::U32(v)) => Property::MaximumPacketSize(*v),
            (PropertyId::SubscriptionIdentifier, Value::U32(v)) => {
                Property::SubscriptionIdentifier(*v)
            }
            (PropertyId::ContentType, Value::Str(s)) => Property::ContentType(s),
            (PropertyId::ResponseTopic, Value::Str(s)) => Property::ResponseTopic(s),
            (PropertyId::AssignedClientIdentifier, Value::Str(s)) => {
                Property::AssignedClientIdentifier(s)
            }
            (PropertyId::AuthenticationMethod, Value::Str(s)) => Property::AuthenticationMethod(s),
            (PropertyId::ResponseInformation, Value::Str(s)) => Property::ResponseInformation(s),
            (PropertyId::ServerReference, Value::Str(s)) => Property::ServerReference(s),
            (PropertyId::ReasonString, Value::Str(s)) => Property::ReasonString(s),
            (PropertyId::CorrelationData, Value::Bin(b)) => Property::CorrelationData(b),
            (PropertyId::AuthenticationData, Value::Bin(b)) => Property::AuthenticationData(b),
            (PropertyId::UserProperty, Value::Pair(k, v)) => Property::UserProperty(k, v),
            other => panic!("generator mismatch {other:?}"),
        })
        .collect()
}

fn mqtt_string() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}

fn value(id: PropertyId) -> BoxedStrategy<(PropertyId, Value)> {
    let v: BoxedStrategy<Value> = match id {
        PropertyId::PayloadFormatIndicator
        | PropertyId::RequestProblemInformation
        | PropertyId::RequestResponseInformation
        | PropertyId::RetainAvailable
        | PropertyId::WildcardSubscriptionAvailable
        | PropertyId::SubscriptionIdentifierAvailable
        | PropertyId::SharedSubscriptionAvailable => any::<bool>().prop_map(Value::Bool).boxed(),
        PropertyId::MaximumQoS => prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]
            .prop_map(Value::QoS)
            .boxed(),
        PropertyId::ReceiveMaximum | PropertyId::TopicAlias => {
            (1..=u16::MAX).prop_map(Value::U16).boxed()
        }
        PropertyId::ServerKeepAlive | PropertyId::TopicAliasMaximum => {
            any::<u16>().prop_map(Value::U16).boxed()
        }
        PropertyId::MaximumPacketSize => (1..=u32::MAX).prop_map(Value::U32).boxed(),
        PropertyId::SubscriptionIdentifier => prop_oneof![
            Just(1u32),
            Just(127),
            Just(128),
            Just(16_383),
            Just(16_384),
            Just(MAX_VARIABLE_BYTE_INTEGER),
            1..=MAX_VARIABLE_BYTE_INTEGER
        ]
        .prop_map(Value::U32)
        .boxed(),
        PropertyId::MessageExpiryInterval
        | PropertyId::SessionExpiryInterval
        | PropertyId::WillDelayInterval => any::<u32>().prop_map(Value::U32).boxed(),
        PropertyId::CorrelationData | PropertyId::AuthenticationData => {
            prop::collection::vec(any::<u8>(), 0..16)
                .prop_map(Value::Bin)
                .boxed()
        }
        PropertyId::UserProperty => (mqtt_string(), mqtt_string())
            .prop_map(|(k, v)| Value::Pair(k, v))
            .boxed(),
        _ => mqtt_string().prop_map(Value::Str).boxed(),
    };
    v.prop_map(move |v| (id, v)).boxed()
}

/// Any valid property set for a packet (or the will): a subset of the allowed identifiers,
/// plus repeated user properties (and subscription identifiers in PUBLISH), in any order.
fn properties(packet_type: PacketType, will: bool) -> BoxedStrategy<OwnedProperties> {
    let allowed: Vec<PropertyId> = (0..=0x7F)
        .filter_map(PropertyId::from_u32)
        .filter(|id| id.is_allowed_in(packet_type, will))
        .collect();
    let n = allowed.len();
    (
        prop::sample::subsequence(allowed, 0..=n),
        0usize..3,
        0usize..3,
    )
        .prop_flat_map(move |(mut ids, users, sub_ids)| {
            if !ids.is_empty() || users > 0 {
                ids.extend(std::iter::repeat_n(PropertyId::UserProperty, users));
            }
            if packet_type == PacketType::Publish && !will {
                ids.extend(std::iter::repeat_n(
                    PropertyId::SubscriptionIdentifier,
                    sub_ids,
                ));
            }
            ids.into_iter()
                .map(value)
                .collect::<Vec<_>>()
                .prop_shuffle()
        })
        .boxed()
}

fn reason(packet_type: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = (0..=255)
        .filter_map(ReasonCode::from_u8)
        .filter(|r| r.is_allowed_in(packet_type))
        .collect();
    prop::sample::select(codes)
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|v| PacketId::new(v).unwrap())
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn topic() -> impl Strategy<Value = String> {
    "[a-z]{1,4}(/[a-z0-9]{0,4}){0,3}"
}

fn filter() -> impl Strategy<Value = String> {
    prop_oneof![topic(), Just("#".to_owned()), Just("a/+/c".to_owned())]
}

fn options() -> impl Strategy<Value = SubscriptionOptions> {
    (qos(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(|(q, nl, rap, rh)| {
        SubscriptionOptions::new(q)
            .no_local(nl)
            .retain_as_published(rap)
            .retain_handling(match rh {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendAtSubscribeIfNew,
                _ => RetainHandling::DoNotSend,
            })
    })
}

#[derive(Debug, Clone)]
struct OwnedWill {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
    props: OwnedProperties,
}

#[derive(Debug, Clone)]
enum Owned {
    Connect {
        client_id: String,
        keep_alive: u16,
        clean: bool,
        will: Option<OwnedWill>,
        username: Option<String>,
        password: Option<Vec<u8>>,
        props: OwnedProperties,
    },
    ConnAck(bool, ReasonCode, OwnedProperties),
    Publish {
        dup: bool,
        qos: QoS,
        retain: bool,
        topic: String,
        packet_id: PacketId,
        payload: Vec<u8>,
        props: OwnedProperties,
    },
    Ack(PacketType, PacketId, ReasonCode, OwnedProperties),
    Subscribe(
        PacketId,
        Vec<(String, SubscriptionOptions)>,
        OwnedProperties,
    ),
    SubAck(PacketId, Vec<u8>, OwnedProperties),
    Unsubscribe(PacketId, Vec<String>, OwnedProperties),
    UnsubAck(PacketId, Vec<u8>, OwnedProperties),
    PingReq,
    PingResp,
    Disconnect(ReasonCode, OwnedProperties),
    Auth(ReasonCode, OwnedProperties),
}

impl Owned {
    fn with_packet<R>(&self, f: impl FnOnce(Packet<'_>) -> R) -> R {
        match self {
            Owned::Connect {
                client_id,
                keep_alive,
                clean,
                will,
                username,
                password,
                props,
            } => {
                let list = borrow(props);
                let list = PropertyList(&list);
                let will_list = will.as_ref().map(|w| borrow(&w.props)).unwrap_or_default();
                let will_list = PropertyList(&will_list);
                f(Packet::Connect(Connect {
                    protocol: V5,
                    client_id,
                    keep_alive: *keep_alive,
                    clean_session: *clean,
                    will: will.as_ref().map(|w| LastWill {
                        topic: &w.topic,
                        payload: &w.payload,
                        qos: w.qos,
                        retain: w.retain,
                        properties: Properties::List(&will_list),
                    }),
                    username: username.as_deref(),
                    password: password.as_deref(),
                    properties: Properties::List(&list),
                }))
            }
            Owned::ConnAck(session_present, reason_code, props) => {
                let list = borrow(props);
                let list = PropertyList(&list);
                f(Packet::ConnAck(ConnAck {
                    session_present: *session_present,
                    code: ConnectReturnCode::from_reason_code(*reason_code),
                    reason_code: *reason_code,
                    properties: Properties::List(&list),
                }))
            }
            Owned::Publish {
                dup,
                qos,
                retain,
                topic,
                packet_id,
                payload,
                props,
            } => {
                let list = borrow(props);
                let list = PropertyList(&list);
                let at_most_once = *qos == QoS::AtMostOnce;
                f(Packet::Publish(Publish {
                    dup: *dup && !at_most_once,
                    qos: *qos,
                    retain: *retain,
                    topic,
                    packet_id: (!at_most_once).then_some(*packet_id),
                    payload,
                    properties: Properties::List(&list),
                }))
            }
            Owned::Ack(packet_type, packet_id, reason_code, props) => {
                let list = borrow(props);
                let list = PropertyList(&list);
                let ack = Ack::with_reason(*packet_id, *reason_code, Properties::List(&list));
                f(match packet_type {
                    PacketType::PubAck => Packet::PubAck(ack),
                    PacketType::PubRec => Packet::PubRec(ack),
                    PacketType::PubRel => Packet::PubRel(ack),
                    _ => Packet::PubComp(ack),
                })
            }
            Owned::Subscribe(packet_id, filters, props) => {
                let list = borrow(props);
                let list = PropertyList(&list);
                let topics: Vec<(&str, SubscriptionOptions)> =
                    filters.iter().map(|(t, o)| (t.as_str(), *o)).collect();
                f(Packet::Subscribe(Subscribe {
                    packet_id: *packet_id,
                    topics: SubscribeTopics::WithOptions(&topics),
                    properties: Properties::List(&list),
                }))
            }
            Owned::SubAck(packet_id, codes, props) => {
                let list = borrow(props);
                let list = PropertyList(&list);
                f(Packet::SubAck(SubAck {
                    packet_id: *packet_id,
                    return_codes: codes,
                    properties: Properties::List(&list),
                }))
            }
            Owned::Unsubscribe(packet_id, filters, props) => {
                let list = borrow(props);
                let list = PropertyList(&list);
                let topics: Vec<&str> = filters.iter().map(String::as_str).collect();
                f(Packet::Unsubscribe(Unsubscribe {
                    packet_id: *packet_id,
                    topics: UnsubscribeTopics::List(&topics),
                    properties: Properties::List(&list),
                }))
            }
            Owned::UnsubAck(packet_id, codes, props) => {
                let list = borrow(props);
                let list = PropertyList(&list);
                f(Packet::UnsubAck(UnsubAck::with_reasons(
                    *packet_id,
                    codes,
                    Properties::List(&list),
                )))
            }
            Owned::PingReq => f(Packet::PingReq),
            Owned::PingResp => f(Packet::PingResp),
            Owned::Disconnect(reason_code, props) => {
                let list = borrow(props);
                let list = PropertyList(&list);
                f(Packet::Disconnect(Disconnect::new(
                    *reason_code,
                    Properties::List(&list),
                )))
            }
            Owned::Auth(reason_code, props) => {
                let list = borrow(props);
                let list = PropertyList(&list);
                f(Packet::Auth(Auth::new(
                    *reason_code,
                    Properties::List(&list),
                )))
            }
        }
    }
}

fn props_vec(p: &Properties<'_>) -> Vec<String> {
    p.iter().map(|p| format!("{p:?}")).collect()
}

/// A description of a packet that does not depend on how its lists are held (given or
/// decoded), so an encoded and a decoded packet compare equal exactly when they mean the same.
fn describe(packet: &Packet<'_>) -> String {
    match packet {
        Packet::Connect(c) => format!(
            "CONNECT {:?} {} {} {} {:?} {:?} {:?} {:?}",
            c.protocol,
            c.client_id,
            c.keep_alive,
            c.clean_session,
            c.will.map(|w| (
                w.topic,
                w.payload,
                w.qos,
                w.retain,
                props_vec(&w.properties)
            )),
            c.username,
            c.password,
            props_vec(&c.properties)
        ),
        Packet::ConnAck(a) => format!(
            "CONNACK {} {:?} {:?} {:?}",
            a.session_present,
            a.code,
            a.reason_code,
            props_vec(&a.properties)
        ),
        Packet::Publish(p) => format!(
            "PUBLISH {} {:?} {} {} {:?} {:?} {:?}",
            p.dup,
            p.qos,
            p.retain,
            p.topic,
            p.packet_id,
            p.payload,
            props_vec(&p.properties)
        ),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => format!(
            "{:?} {} {:?} {:?}",
            packet.packet_type(),
            a.packet_id,
            a.reason_code,
            props_vec(&a.properties)
        ),
        Packet::Subscribe(s) => format!(
            "SUBSCRIBE {} {:?} {:?}",
            s.packet_id,
            s.topics.iter_options().collect::<Vec<_>>(),
            props_vec(&s.properties)
        ),
        Packet::SubAck(s) => format!(
            "SUBACK {} {:?} {:?}",
            s.packet_id,
            s.reason_codes().collect::<Vec<_>>(),
            props_vec(&s.properties)
        ),
        Packet::Unsubscribe(u) => format!(
            "UNSUBSCRIBE {} {:?} {:?}",
            u.packet_id,
            u.topics.iter().collect::<Vec<_>>(),
            props_vec(&u.properties)
        ),
        Packet::UnsubAck(u) => format!(
            "UNSUBACK {} {:?} {:?}",
            u.packet_id,
            u.codes().collect::<Vec<_>>(),
            props_vec(&u.properties)
        ),
        Packet::PingReq => "PINGREQ".into(),
        Packet::PingResp => "PINGRESP".into(),
        Packet::Disconnect(d) => format!(
            "DISCONNECT {:?} {:?}",
            d.reason_code,
            props_vec(&d.properties)
        ),
        Packet::Auth(a) => format!("AUTH {:?} {:?}", a.reason_code, props_vec(&a.properties)),
    }
}

fn codes(packet_type: PacketType) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(reason(packet_type).prop_map(|r| r.to_u8()), 1..5)
}

fn any_packet() -> impl Strategy<Value = Owned> {
    let will = (
        topic(),
        prop::collection::vec(any::<u8>(), 0..8),
        qos(),
        any::<bool>(),
        properties(PacketType::Connect, true),
    )
        .prop_map(|(topic, payload, qos, retain, props)| OwnedWill {
            topic,
            payload,
            qos,
            retain,
            props,
        });
    let connect = (
        mqtt_string(),
        any::<u16>(),
        any::<bool>(),
        prop::option::of(will),
        prop::option::of(mqtt_string()),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
        properties(PacketType::Connect, false),
    )
        .prop_map(
            |(client_id, keep_alive, clean, will, username, password, props)| Owned::Connect {
                client_id,
                keep_alive,
                clean,
                will,
                username,
                password,
                props,
            },
        );
    let connack = (
        any::<bool>(),
        reason(PacketType::ConnAck),
        properties(PacketType::ConnAck, false),
    )
        .prop_map(|(sp, r, p)| Owned::ConnAck(sp && r == ReasonCode::Success, r, p));
    let publish = (
        (qos(), any::<bool>(), any::<bool>()),
        topic(),
        packet_id(),
        prop::collection::vec(any::<u8>(), 0..32),
        properties(PacketType::Publish, false),
        any::<bool>(),
    )
        .prop_map(
            |((qos, dup, retain), topic, packet_id, payload, props, alias_only)| {
                // With a Topic Alias the topic may be empty [MQTT-3.3.2-8].
                let has_alias = props.iter().any(|(id, _)| *id == PropertyId::TopicAlias);
                Owned::Publish {
                    dup,
                    qos,
                    retain,
                    topic: if has_alias && alias_only {
                        String::new()
                    } else {
                        topic
                    },
                    packet_id,
                    payload,
                    props,
                }
            },
        );
    let ack = prop_oneof![
        Just(PacketType::PubAck),
        Just(PacketType::PubRec),
        Just(PacketType::PubRel),
        Just(PacketType::PubComp)
    ]
    .prop_flat_map(|t| (Just(t), packet_id(), reason(t), properties(t, false)))
    .prop_map(|(t, id, r, p)| Owned::Ack(t, id, r, p));
    prop_oneof![
        connect,
        connack,
        publish,
        ack,
        (
            packet_id(),
            prop::collection::vec((filter(), options()), 1..4),
            properties(PacketType::Subscribe, false)
        )
            .prop_map(|(id, f, p)| Owned::Subscribe(id, f, p)),
        (
            packet_id(),
            codes(PacketType::SubAck),
            properties(PacketType::SubAck, false)
        )
            .prop_map(|(id, c, p)| Owned::SubAck(id, c, p)),
        (
            packet_id(),
            prop::collection::vec(filter(), 1..4),
            properties(PacketType::Unsubscribe, false)
        )
            .prop_map(|(id, f, p)| Owned::Unsubscribe(id, f, p)),
        (
            packet_id(),
            codes(PacketType::UnsubAck),
            properties(PacketType::UnsubAck, false)
        )
            .prop_map(|(id, c, p)| Owned::UnsubAck(id, c, p)),
        Just(Owned::PingReq),
        Just(Owned::PingResp),
        (
            reason(PacketType::Disconnect),
            properties(PacketType::Disconnect, false)
        )
            .prop_map(|(r, p)| Owned::Disconnect(r, p)),
        (
            reason(PacketType::Auth),
            properties(PacketType::Auth, false)
        )
            .prop_map(|(r, p)| Owned::Auth(r, p)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn roundtrip(owned in any_packet()) {
        owned.with_packet(|packet| {
            let len = packet.encoded_len_with(V5).expect("generated packets are valid");
            let mut buf = vec![0u8; len];
            prop_assert_eq!(packet.encode_with(&mut buf, V5), Ok(len));
            match decode_with(&buf, usize::MAX, V5) {
                Ok(Decoded::Complete { packet: decoded, consumed }) => {
                    prop_assert_eq!(consumed, len);
                    prop_assert_eq!(describe(&decoded), describe(&packet));
                    // Re-encoding the decoded (borrowed, `Encoded`) form gives the same bytes.
                    let mut again = vec![0u8; len];
                    prop_assert_eq!(decoded.encode_with(&mut again, V5), Ok(len));
                    prop_assert_eq!(&again, &buf);
                }
                other => prop_assert!(false, "{:?}", other),
            }
            for cut in 0..len {
                prop_assert_eq!(decode_with(&buf[..cut], usize::MAX, V5), Ok(Decoded::Incomplete));
            }
            Ok(())
        })?;
    }

    /// Every property set is refused by the 3.1.1 encoder rather than dropped.
    #[test]
    fn v311_encoder_refuses_mqtt5_parts(owned in any_packet()) {
        owned.with_packet(|packet| {
            let has_v5_parts = match &packet {
                Packet::Connect(_) | Packet::PingReq | Packet::PingResp => false,
                Packet::ConnAck(a) => !a.properties.is_empty(),
                Packet::Publish(p) => !p.properties.is_empty(),
                Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
                    !a.properties.is_empty() || a.reason_code != ReasonCode::Success
                }
                Packet::Subscribe(s) => {
                    !s.properties.is_empty() || s.topics.iter_options().any(|(_, o)| !o.is_qos_only())
                }
                Packet::SubAck(s) => !s.properties.is_empty(),
                Packet::Unsubscribe(u) => !u.properties.is_empty(),
                Packet::UnsubAck(_) | Packet::Auth(_) => true,
                Packet::Disconnect(d) => {
                    !d.properties.is_empty() || d.reason_code != ReasonCode::Success
                }
            };
            if has_v5_parts {
                prop_assert_eq!(
                    packet.encoded_len(),
                    Err(umqtt_core::packet::EncodeError::RequiresMqtt5)
                );
            }
            Ok(())
        })?;
    }
}
