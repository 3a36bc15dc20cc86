//! The simulated broker's MQTT 5: what its CONNACK announces and how it enforces it, session
//! and message expiry on virtual time, refusal reason codes, topic aliases, the client's own
//! limits. A raw client writes packets with the core codec and reads what comes back.

use umqtt_core::packet::{
    decode_with, Ack, Connect, Decoded, Disconnect, Packet, PacketId, Properties, Property,
    PropertyList, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe, SubscribeTopics,
    Unsubscribe, UnsubscribeTopics,
};
use umqtt_core::session::BrokerLimits;
use umqtt_core::Instant;
use umqtt_sim::{ClientEvent, ConnId, SimNet};

const V5: ProtocolVersion = ProtocolVersion::V5;

fn at(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn send(net: &mut SimNet, now: u64, conn: ConnId, packet: &Packet<'_>, version: ProtocolVersion) {
    let mut bytes = vec![0; packet.encoded_len_with(version).unwrap()];
    packet.encode_with(&mut bytes, version).unwrap();
    net.send(at(now), conn, &bytes);
}

/// What the client side received, split into whole packets; `closed` if the link ended.
#[derive(Debug, Default)]
struct Received {
    packets: Vec<Vec<u8>>,
    closed: bool,
}

impl Received {
    /// Packet `i`, decoded as MQTT 5.
    fn packet(&self, i: usize) -> Packet<'_> {
        match decode_with(&self.packets[i], usize::MAX, V5).unwrap() {
            Decoded::Complete { packet, .. } => packet,
            Decoded::Incomplete => panic!("split packet"),
        }
    }

    fn len(&self) -> usize {
        self.packets.len()
    }
}

fn receive(net: &mut SimNet, conn: ConnId) -> Received {
    let mut bytes = Vec::new();
    let mut received = Received::default();
    while let Some(event) = net.poll_client_event(conn) {
        match event {
            ClientEvent::Data(data) => bytes.extend_from_slice(&data),
            ClientEvent::Closed { .. } => received.closed = true,
            ClientEvent::Opened | ClientEvent::OpenFailed(_) => {}
        }
    }
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let Decoded::Complete { consumed, .. } = decode_with(rest, usize::MAX, V5).unwrap() else {
            panic!("split packet");
        };
        received.packets.push(rest[..consumed].to_vec());
        rest = &rest[consumed..];
    }
    received
}

/// Opens a link at `now` and sends an MQTT 5 CONNECT with `properties`; returns the link and
/// what came back (the CONNACK first) 4 ms later.
fn connect_v5(
    net: &mut SimNet,
    now: u64,
    client_id: &str,
    clean_start: bool,
    properties: &[Property<'_>],
) -> (ConnId, Received) {
    let conn = net.open(at(now), 0);
    net.advance(at(now + 2));
    assert_eq!(net.poll_client_event(conn), Some(ClientEvent::Opened));
    let list = PropertyList(properties);
    let connect = Packet::Connect(Connect {
        protocol: V5,
        client_id,
        keep_alive: 0,
        clean_session: clean_start,
        will: None,
        username: None,
        password: None,
        properties: Properties::List(&list),
    });
    send(net, now + 2, conn, &connect, V5);
    net.advance(at(now + 4));
    let received = receive(net, conn);
    (conn, received)
}

/// The CONNACK's session-present flag and the limits it announced.
fn connack(received: &Received) -> (bool, ReasonCode, BrokerLimits) {
    match received.packet(0) {
        Packet::ConnAck(ack) => (
            ack.session_present,
            ack.reason_code,
            BrokerLimits::from_properties(&ack.properties),
        ),
        other => panic!("not a CONNACK: {other:?}"),
    }
}

fn publish<'a>(topic: &'a str, qos: QoS, packet_id: Option<u16>) -> Packet<'a> {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: packet_id.map(id),
        payload: b"p",
        properties: Properties::EMPTY,
    })
}

fn subscribe<'a>(topics: &'a [(&'a str, QoS)]) -> Packet<'a> {
    Packet::Subscribe(Subscribe {
        packet_id: id(1),
        topics: SubscribeTopics::List(topics),
        properties: Properties::EMPTY,
    })
}

fn disconnect_code(received: &Received, i: usize) -> ReasonCode {
    match received.packet(i) {
        Packet::Disconnect(d) => d.reason_code,
        other => panic!("not a DISCONNECT: {other:?}"),
    }
}

#[test]
fn connack_announces_what_is_configured() {
    let mut net = SimNet::new(1);
    let broker = net.broker_mut(0);
    broker.set_receive_maximum(2);
    broker.set_max_packet_size(1000);
    broker.set_topic_alias_maximum(5);
    broker.set_retain_available(false);
    broker.set_maximum_qos(QoS::AtLeastOnce);
    broker.set_server_keep_alive(Some(30));
    broker.set_max_session_expiry(Some(60));
    let (_, received) = connect_v5(
        &mut net,
        0,
        "",
        false,
        &[Property::SessionExpiryInterval(3600)],
    );
    let (present, code, limits) = connack(&received);
    assert!(!present);
    assert_eq!(code, ReasonCode::Success);
    let mut expected = BrokerLimits::default();
    expected.receive_maximum = 2;
    expected.maximum_packet_size = Some(1000);
    expected.topic_alias_maximum = 5;
    expected.retain_available = false;
    expected.maximum_qos = QoS::AtLeastOnce;
    expected.server_keep_alive = Some(30);
    expected.session_expiry_interval = Some(60);
    expected.assigned_client_identifier = Some("auto-1".into());
    expected.subscription_identifiers_available = false;
    assert_eq!(limits, expected);
    let record = &net.broker(0).connects()[0];
    assert_eq!(record.protocol, V5);
    assert_eq!(record.client_id, "auto-1");
    assert_eq!(record.session_expiry_interval, 60);
    // Default limits: only what is not the specification's default is announced.
    let mut net = SimNet::new(1);
    let (_, received) = connect_v5(&mut net, 0, "plain", true, &[]);
    let mut expected = BrokerLimits::default();
    expected.subscription_identifiers_available = false;
    assert_eq!(connack(&received).2, expected);
}

/// Receive Maximum 2, judged from the client's view: a third QoS 1 PUBLISH sent before the
/// first PUBACK arrived is answered with DISCONNECT 0x93; sent at the instant it arrived, it
/// is fine.
#[test]
fn receive_maximum_is_enforced_from_the_clients_view() {
    for (third_at, exceeded) in [(5, true), (6, false)] {
        let mut net = SimNet::new(2);
        net.broker_mut(0).set_receive_maximum(2);
        let (conn, _) = connect_v5(&mut net, 0, "c", true, &[]);
        // Sent at 4, at the broker at 5, PUBACKs back at the client at 6.
        send(
            &mut net,
            4,
            conn,
            &publish("t", QoS::AtLeastOnce, Some(1)),
            V5,
        );
        send(
            &mut net,
            4,
            conn,
            &publish("t", QoS::AtLeastOnce, Some(2)),
            V5,
        );
        net.advance(at(third_at));
        send(
            &mut net,
            third_at,
            conn,
            &publish("t", QoS::AtLeastOnce, Some(3)),
            V5,
        );
        net.advance(at(20));
        let received = receive(&mut net, conn);
        let broker = net.broker(0);
        if exceeded {
            assert_eq!(received.len(), 3, "{received:?}");
            assert_eq!(
                disconnect_code(&received, 2),
                ReasonCode::ReceiveMaximumExceeded
            );
            assert!(received.closed);
            assert_eq!(broker.in_flight_peak("c"), 3);
            assert_eq!(broker.protocol_violations().len(), 1);
            assert!(broker.protocol_violations()[0].contains("[MQTT-3.3.4-7]"));
            assert_eq!(broker.accepted().len(), 2);
        } else {
            assert_eq!(received.len(), 3);
            assert!(matches!(received.packet(2), Packet::PubAck(_)));
            assert!(!received.closed);
            assert_eq!(broker.in_flight_peak("c"), 2);
            assert!(broker.protocol_violations().is_empty());
            assert_eq!(broker.accepted().len(), 3);
        }
    }
}

/// A QoS 2 flow stays in flight until PUBCOMP reaches the client; a withheld PUBACK keeps a
/// QoS 1 one in flight.
#[test]
fn qos2_and_withheld_acks_count_until_the_final_ack() {
    let mut net = SimNet::new(3);
    net.broker_mut(0).set_receive_maximum(1);
    let (conn, _) = connect_v5(&mut net, 0, "c", true, &[]);
    send(
        &mut net,
        4,
        conn,
        &publish("t", QoS::ExactlyOnce, Some(1)),
        V5,
    );
    net.advance(at(6)); // PUBREC back
    send(&mut net, 6, conn, &Packet::PubRel(Ack::new(id(1))), V5);
    net.advance(at(8)); // PUBCOMP back
    send(
        &mut net,
        8,
        conn,
        &publish("t", QoS::AtLeastOnce, Some(2)),
        V5,
    );
    net.advance(at(20));
    assert!(net.broker(0).protocol_violations().is_empty());
    net.broker_mut(0).set_withhold_acks(true);
    send(
        &mut net,
        20,
        conn,
        &publish("t", QoS::AtLeastOnce, Some(3)),
        V5,
    );
    send(
        &mut net,
        100,
        conn,
        &publish("t", QoS::AtLeastOnce, Some(4)),
        V5,
    );
    net.advance(at(200));
    let received = receive(&mut net, conn);
    assert_eq!(
        disconnect_code(&received, received.len() - 1),
        ReasonCode::ReceiveMaximumExceeded
    );
    assert_eq!(net.broker(0).in_flight_peak("c"), 2);
}

#[test]
fn refused_topics_get_the_reason_code_in_mqtt_5_and_a_plain_ack_in_3_1_1() {
    let mut net = SimNet::new(4);
    net.broker_mut(0)
        .refuse_publish("deny/#", Some(ReasonCode::NotAuthorized));
    net.broker_mut(0)
        .refuse_publish("quota", Some(ReasonCode::QuotaExceeded));
    let (conn, _) = connect_v5(&mut net, 0, "c5", true, &[]);
    send(
        &mut net,
        4,
        conn,
        &publish("deny/x", QoS::AtLeastOnce, Some(1)),
        V5,
    );
    send(
        &mut net,
        4,
        conn,
        &publish("quota", QoS::ExactlyOnce, Some(2)),
        V5,
    );
    send(
        &mut net,
        4,
        conn,
        &publish("deny/y", QoS::AtMostOnce, None),
        V5,
    );
    send(
        &mut net,
        4,
        conn,
        &publish("open", QoS::AtLeastOnce, Some(3)),
        V5,
    );
    net.advance(at(10));
    let received = receive(&mut net, conn);
    assert_eq!(received.len(), 3);
    let codes: Vec<(u8, ReasonCode)> = (0..3)
        .map(|i| match received.packet(i) {
            Packet::PubAck(a) => (4, a.reason_code),
            Packet::PubRec(a) => (5, a.reason_code),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (4, ReasonCode::NotAuthorized),
            (5, ReasonCode::QuotaExceeded),
            (4, ReasonCode::Success)
        ]
    );
    // 3.1.1 cannot carry a code: a plain PUBACK, and the message is dropped all the same.
    let conn = net.open(at(10), 0);
    net.advance(at(12));
    let connect = Packet::Connect(Connect {
        protocol: ProtocolVersion::V311,
        client_id: "c3",
        keep_alive: 0,
        clean_session: true,
        will: None,
        username: None,
        password: None,
        properties: Properties::EMPTY,
    });
    send(&mut net, 12, conn, &connect, ProtocolVersion::V311);
    send(
        &mut net,
        12,
        conn,
        &publish("deny/z", QoS::AtLeastOnce, Some(1)),
        ProtocolVersion::V311,
    );
    net.advance(at(20));
    let _ = net.poll_client_event(conn); // Opened
    let mut bytes = Vec::new();
    while let Some(ClientEvent::Data(d)) = net.poll_client_event(conn) {
        bytes.extend(d);
    }
    assert_eq!(bytes, [0x20, 2, 0, 0, 0x40, 2, 0, 1]);
    let broker = net.broker(0);
    let refused: Vec<(&str, &str, ReasonCode)> = broker
        .refused()
        .iter()
        .map(|r| (r.client_id.as_str(), r.topic.as_str(), r.reason_code))
        .collect();
    assert_eq!(
        refused,
        vec![
            ("c5", "deny/x", ReasonCode::NotAuthorized),
            ("c5", "quota", ReasonCode::QuotaExceeded),
            ("c5", "deny/y", ReasonCode::NotAuthorized),
            ("c3", "deny/z", ReasonCode::NotAuthorized),
        ]
    );
    assert_eq!(broker.accepted().len(), 1);
    assert_eq!(broker.accepted()[0].topic, "open");
}

/// Messages queued for an offline MQTT 5 subscriber expire on virtual time; one sent carries
/// what is left of its interval. Retained messages expire too.
#[test]
fn message_expiry_on_virtual_time() {
    let mut net = SimNet::new(5);
    let (conn, _) = connect_v5(
        &mut net,
        0,
        "sub",
        false,
        &[Property::SessionExpiryInterval(u32::MAX)],
    );
    send(
        &mut net,
        4,
        conn,
        &subscribe(&[("m/#", QoS::AtLeastOnce)]),
        V5,
    );
    net.advance(at(10));
    net.close(at(10), conn);
    net.advance(at(20));
    assert!(!net.broker(0).is_connected("sub"));
    let broker = net.broker_mut(0);
    broker.publish_with_expiry(at(1000), "m/short", b"s", QoS::AtLeastOnce, false, Some(2));
    broker.publish_with_expiry(at(1000), "m/long", b"l", QoS::AtLeastOnce, false, Some(10));
    broker.publish_with_expiry(at(1000), "m/never", b"n", QoS::AtLeastOnce, false, None);
    broker.publish_with_expiry(at(1000), "r/kept", b"r", QoS::AtLeastOnce, true, Some(5));
    assert_eq!(net.broker(0).queued("sub"), 3);
    // Back 3.5 s later: "short" expired, "long" has 6.5 s left, carried as 7.
    let (conn, received) = connect_v5(
        &mut net,
        4500,
        "sub",
        false,
        &[Property::SessionExpiryInterval(u32::MAX)],
    );
    assert!(connack(&received).0, "session present");
    let sent: Vec<(String, Option<u32>)> = (1..received.len())
        .map(|i| match received.packet(i) {
            Packet::Publish(p) => (p.topic.to_owned(), p.properties.message_expiry_interval()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            ("m/long".to_string(), Some(7)),
            ("m/never".to_string(), None)
        ]
    );
    assert_eq!(net.broker(0).expired("sub"), 1);
    let delivered = net.broker(0).delivered("sub");
    assert_eq!(delivered[0].message_expiry_interval, Some(7));
    // The retained message: sent with 2 s left at 4 s, not at all after 6 s.
    send(
        &mut net,
        4504,
        conn,
        &subscribe(&[("r/#", QoS::AtLeastOnce)]),
        V5,
    );
    net.advance(at(4510));
    let received = receive(&mut net, conn);
    match received.packet(1) {
        Packet::Publish(p) => {
            assert!(p.retain);
            assert_eq!(p.properties.message_expiry_interval(), Some(2));
        }
        other => panic!("{other:?}"),
    }
    send(
        &mut net,
        6000,
        conn,
        &subscribe(&[("r/#", QoS::AtLeastOnce)]),
        V5,
    );
    net.advance(at(6010));
    let received = receive(&mut net, conn);
    assert_eq!(received.len(), 1, "SUBACK only: {received:?}");
}

/// Session Expiry Interval on virtual time: gone when it has passed while the client was away
/// (even with the broker down meanwhile), kept when it has not, never gone when "never";
/// DISCONNECT may change it.
#[test]
fn session_expiry_on_virtual_time() {
    let mut net = SimNet::new(6);
    let expiry = |s| [Property::SessionExpiryInterval(s)];
    let (conn, _) = connect_v5(&mut net, 0, "ten", false, &expiry(10));
    net.close(at(1000), conn);
    let (conn, _) = connect_v5(&mut net, 0, "never", false, &expiry(u32::MAX));
    net.close(at(1000), conn);
    let (conn, _) = connect_v5(&mut net, 0, "zero", false, &[]);
    net.close(at(1000), conn);
    let (conn, _) = connect_v5(&mut net, 0, "changed", false, &expiry(10));
    let list = PropertyList(&[Property::SessionExpiryInterval(100)]);
    let disconnect = Disconnect::new(ReasonCode::Success, Properties::List(&list));
    send(&mut net, 10, conn, &Packet::Disconnect(disconnect), V5);
    net.advance(at(1001 + 9_998));
    let broker = net.broker(0);
    assert!(broker.has_session("ten"), "ends 10 s after 1.001 s");
    assert!(broker.has_session("never"));
    assert!(
        !broker.has_session("zero"),
        "expiry 0: ends with the connection"
    );
    assert!(broker.has_session("changed"));
    assert_eq!(
        net.next_timeout(),
        Some(at(11_001)),
        "the expiry is a timer"
    );
    net.advance(at(11_001));
    assert!(!net.broker(0).has_session("ten"));
    assert!(net.broker(0).has_session("changed"));
    // A restart keeps persistent sessions; the expiry counts on.
    net.restart(at(20_000), 0, true);
    net.advance(at(24 * 3600 * 1000));
    assert!(net.broker(0).has_session("never"));
    assert!(!net.broker(0).has_session("changed"), "100 s after 11 ms");
    let (_, received) = connect_v5(&mut net, 24 * 3600 * 1000, "ten", false, &expiry(10));
    assert!(!connack(&received).0);
    let (_, received) = connect_v5(&mut net, 24 * 3600 * 1000, "never", false, &expiry(10));
    assert!(connack(&received).0);
}

#[test]
fn topic_aliases_resolve_per_connection_and_out_of_range_is_0x94() {
    let mut net = SimNet::new(7);
    net.broker_mut(0).set_topic_alias_maximum(2);
    let (conn, _) = connect_v5(&mut net, 0, "a", true, &[]);
    // Set alias 1, use it, then use alias 3 (above the maximum).
    for (now, topic, alias) in [(4, "x/1", 1), (5, "", 1), (6, "", 3)] {
        let list = [Property::TopicAlias(alias)];
        let list = PropertyList(&list);
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            payload: b"v",
            properties: Properties::List(&list),
        });
        send(&mut net, now, conn, &packet, V5);
    }
    net.advance(at(20));
    let received = receive(&mut net, conn);
    assert_eq!(received.len(), 1);
    assert_eq!(disconnect_code(&received, 0), ReasonCode::TopicAliasInvalid);
    let topics: Vec<&str> = net
        .broker(0)
        .accepted()
        .iter()
        .map(|a| a.topic.as_str())
        .collect();
    assert_eq!(topics, ["x/1", "x/1"]);
}

#[test]
fn maximum_qos_and_retain_available_are_enforced() {
    let mut net = SimNet::new(8);
    net.broker_mut(0).set_maximum_qos(QoS::AtLeastOnce);
    net.broker_mut(0).set_retain_available(false);
    let (conn, _) = connect_v5(&mut net, 0, "q", true, &[]);
    send(
        &mut net,
        4,
        conn,
        &subscribe(&[("s/#", QoS::ExactlyOnce)]),
        V5,
    );
    send(
        &mut net,
        4,
        conn,
        &publish("s/x", QoS::ExactlyOnce, Some(2)),
        V5,
    );
    net.advance(at(10));
    let received = receive(&mut net, conn);
    match received.packet(0) {
        Packet::SubAck(s) => assert_eq!(s.return_codes, [1], "granted at most QoS 1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(disconnect_code(&received, 1), ReasonCode::QoSNotSupported);
    let (conn, _) = connect_v5(&mut net, 20, "r", true, &[]);
    let retained = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: "s/r",
        packet_id: None,
        payload: b"r",
        properties: Properties::EMPTY,
    });
    send(&mut net, 24, conn, &retained, V5);
    net.advance(at(30));
    assert_eq!(
        disconnect_code(&receive(&mut net, conn), 0),
        ReasonCode::RetainNotSupported
    );
    assert_eq!(net.broker(0).protocol_violations().len(), 2);
}

/// The client's Receive Maximum and Maximum Packet Size bound what the broker sends it.
#[test]
fn the_clients_limits_bound_what_the_broker_sends() {
    let mut net = SimNet::new(9);
    let (conn, _) = connect_v5(
        &mut net,
        0,
        "small",
        true,
        &[Property::ReceiveMaximum(1), Property::MaximumPacketSize(40)],
    );
    send(
        &mut net,
        4,
        conn,
        &subscribe(&[("#", QoS::AtLeastOnce)]),
        V5,
    );
    net.advance(at(10));
    receive(&mut net, conn);
    let broker = net.broker_mut(0);
    broker.publish(at(10), "a", b"1", QoS::AtLeastOnce, false);
    broker.publish(at(10), "big", &[0; 100], QoS::AtLeastOnce, false);
    broker.publish(at(10), "b", b"2", QoS::AtLeastOnce, false);
    net.advance(at(20));
    let received = receive(&mut net, conn);
    assert_eq!(received.len(), 1, "one in flight");
    assert_eq!(net.broker(0).in_flight("small"), 1);
    send(&mut net, 20, conn, &Packet::PubAck(Ack::new(id(1))), V5);
    net.advance(at(30));
    let received = receive(&mut net, conn);
    // "big" (over 40 bytes) was discarded as if sent; "b" followed.
    match received.packet(0) {
        Packet::Publish(p) => assert_eq!(p.topic, "b"),
        other => panic!("{other:?}"),
    }
    assert_eq!(net.broker(0).too_large("small"), 1);
}

#[test]
fn takeover_keepalive_and_unsubscribe_speak_mqtt_5() {
    let mut net = SimNet::new(10);
    net.broker_mut(0).set_server_keep_alive(Some(2));
    let (old, _) = connect_v5(&mut net, 0, "dup", false, &[]);
    send(&mut net, 4, old, &subscribe(&[("a", QoS::AtMostOnce)]), V5);
    let unsubscribe = Packet::Unsubscribe(Unsubscribe {
        packet_id: id(2),
        topics: UnsubscribeTopics::List(&["a", "b"]),
        properties: Properties::EMPTY,
    });
    send(&mut net, 4, old, &unsubscribe, V5);
    net.advance(at(10));
    let received = receive(&mut net, old);
    match received.packet(1) {
        Packet::UnsubAck(u) => assert_eq!(u.reason_codes, [0x00, 0x11]),
        other => panic!("{other:?}"),
    }
    let (new, _) = connect_v5(&mut net, 10, "dup", false, &[]);
    let received = receive(&mut net, old);
    assert_eq!(disconnect_code(&received, 0), ReasonCode::SessionTakenOver);
    assert!(received.closed);
    // Server Keep Alive 2 s: silent after its last packet at 13 ms, closed at 3.013 s.
    net.advance(at(3012));
    assert!(net.broker(0).is_connected("dup"));
    net.advance(at(3020));
    let received = receive(&mut net, new);
    assert_eq!(disconnect_code(&received, 0), ReasonCode::KeepAliveTimeout);
    assert!(!net.broker(0).is_connected("dup"));
}

/// A 3.1.1-only broker (`set_accept_v5(false)`) treats a level-5 CONNECT as malformed, as it
/// did before it spoke MQTT 5.
#[test]
fn a_3_1_1_only_broker_refuses_level_5() {
    let mut net = SimNet::new(11);
    net.broker_mut(0).set_accept_v5(false);
    let (_, received) = connect_v5(&mut net, 0, "c", true, &[]);
    assert_eq!(received.len(), 0);
    assert!(received.closed);
    assert!(net.broker(0).protocol_violations()[0].contains("malformed packet"));
    assert!(net.broker(0).connects().is_empty());
}
