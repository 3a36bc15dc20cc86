//! A session on `Fixed` storage allocates nothing once it is built: a whole life (connect,
//! subscribe, QoS 0/1/2 both ways, keepalive, a lost link, a resumed session with resends, a
//! clean disconnect) is run with every allocation on this thread counted. The same run on
//! the heap is counted too, so a counter that sees nothing cannot pass for a result.

mod support;

use support::counting;

use umqtt_core::packet::{encode_publish_header, Publish};
use umqtt_core::session::{Event, Session, SessionConfig};
use umqtt_core::storage::{Fixed, Heap, Storage};
use umqtt_core::{Instant, PacketId, QoS};

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Bytes written, checked packet by packet (first bytes counted), without allocating.
#[derive(Default)]
struct Wire {
    packets: [usize; 16],
    messages: usize,
    closed: usize,
}

fn drain<S: Storage>(session: &mut Session<S>, now: Instant, wire: &mut Wire) -> usize {
    let mut events = 0;
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                Event::Closed(_) => wire.closed += 1,
                Event::Message(_) => wire.messages += 1,
                _ => {}
            }
            events += 1;
        }
        let mut wrote = false;
        while let Some(bytes) = session.poll_transmit(now) {
            let mut rest = bytes;
            while let Some(&first) = rest.first() {
                wire.packets[usize::from(first >> 4)] += 1;
                let len = usize::from(rest[1]) + 2; // every packet here is < 128 bytes
                rest = &rest[len..];
            }
            wrote = true;
        }
        if !(wrote && session.has_unprocessed_input()) {
            return events;
        }
    }
}

fn publish_in(buf: &mut [u8; 64], qos: QoS, id: u16) -> usize {
    let publish = Publish {
        dup: false,
        qos,
        retain: false,
        topic: "in",
        packet_id: PacketId::new(id),
        payload: b"hi",
        properties: Default::default(),
    };
    let n = encode_publish_header(&publish, buf).expect("fits");
    buf[n..n + 2].copy_from_slice(b"hi");
    n + 2
}

/// Runs a whole life of a session and returns how many allocations it made after being built.
fn life<S: Storage>() -> usize {
    let config = SessionConfig {
        client_id: "fixed".into(),
        keep_alive: 10,
        max_in_flight: 2,
        ..SessionConfig::default()
    };
    counting::start();
    let mut session = Session::<S>::with_storage(config.clone());
    let built = counting::count();
    let mut wire = Wire::default();
    let mut buf = [0u8; 64];

    session.connect(t(0), false).unwrap();
    drain(&mut session, t(0), &mut wire);
    session.handle_read(t(1), &[0x20, 0x02, 0x00, 0x00]);
    drain(&mut session, t(1), &mut wire);
    let sub = session.subscribe(&[("in", QoS::ExactlyOnce)]).unwrap();
    drain(&mut session, t(2), &mut wire);
    let [hi, lo] = sub.get().to_be_bytes();
    session.handle_read(t(3), &[0x90, 0x03, hi, lo, 0x02]);
    drain(&mut session, t(3), &mut wire);

    // Outgoing: QoS 0, three QoS 1 (window 2), one QoS 2.
    session
        .publish("out", b"0", QoS::AtMostOnce, false)
        .unwrap();
    let ids: [PacketId; 4] = [
        session
            .publish("out", b"1", QoS::AtLeastOnce, false)
            .unwrap()
            .unwrap(),
        session
            .publish("out", b"2", QoS::AtLeastOnce, false)
            .unwrap()
            .unwrap(),
        session
            .publish("out", b"3", QoS::AtLeastOnce, false)
            .unwrap()
            .unwrap(),
        session
            .publish("out", b"4", QoS::ExactlyOnce, false)
            .unwrap()
            .unwrap(),
    ];
    drain(&mut session, t(4), &mut wire);
    for id in &ids[..3] {
        let [hi, lo] = id.get().to_be_bytes();
        session.handle_read(t(5), &[0x40, 0x02, hi, lo]);
        drain(&mut session, t(5), &mut wire);
    }
    let [hi, lo] = ids[3].get().to_be_bytes();
    session.handle_read(t(6), &[0x50, 0x02, hi, lo]);
    drain(&mut session, t(6), &mut wire);

    // The link drops before PUBCOMP; the broker resumes the session: PUBREL again.
    session.handle_connection_lost();
    session.connect(t(7), false).unwrap();
    drain(&mut session, t(7), &mut wire);
    session.handle_read(t(8), &[0x20, 0x02, 0x01, 0x00]);
    drain(&mut session, t(8), &mut wire);
    session.handle_read(t(9), &[0x70, 0x02, hi, lo]);
    drain(&mut session, t(9), &mut wire);

    // Incoming: QoS 1, QoS 2 (PUBREC, then PUBREL → PUBCOMP), in one read.
    let mut stream = [0u8; 64];
    let a = publish_in(&mut buf, QoS::AtLeastOnce, 7);
    stream[..a].copy_from_slice(&buf[..a]);
    let b = publish_in(&mut buf, QoS::ExactlyOnce, 8);
    stream[a..a + b].copy_from_slice(&buf[..b]);
    session.handle_read(t(10), &stream[..a + b]);
    drain(&mut session, t(10), &mut wire);
    session.handle_read(t(11), &[0x62, 0x02, 0x00, 0x08]);
    drain(&mut session, t(11), &mut wire);

    // Keepalive: PINGREQ after 10 s of quiet, PINGRESP.
    session.handle_timeout(t(10_011));
    drain(&mut session, t(10_011), &mut wire);
    session.handle_read(t(10_012), &[0xD0, 0x00]);
    drain(&mut session, t(10_012), &mut wire);
    session.disconnect().unwrap();
    drain(&mut session, t(10_013), &mut wire);
    let after = counting::count() - built;
    counting::stop();

    // What went on the wire: CONNECT ×2, SUBSCRIBE, 5 PUBLISH, PUBREL ×2, PUBACK, PUBREC,
    // PUBCOMP, PINGREQ, DISCONNECT.
    let p = &wire.packets;
    assert_eq!(
        [p[1], p[8], p[3], p[6], p[4], p[5], p[7], p[12], p[14]],
        [2, 1, 5, 2, 1, 1, 1, 1, 1]
    );
    assert_eq!(session.outgoing_len(), 0);
    // Both messages reached the application; the only close was the DISCONNECT's.
    assert_eq!((wire.messages, wire.closed), (2, 1));
    after
}

#[test]
fn a_session_on_fixed_storage_allocates_nothing_once_built() {
    assert_eq!(life::<Fixed<8, 256>>(), 0);
}

#[test]
fn the_same_life_on_the_heap_allocates_so_the_count_is_real() {
    assert!(life::<Heap>() > 0);
}

/// The same, speaking MQTT 5: CONNECT and CONNACK with properties (an assigned client
/// identifier, a reason string, Topic Alias Maximum, Server Keep Alive), QoS 0 with outgoing
/// topic aliases, incoming topic aliases, QoS 1/2 both ways, a DISCONNECT from the broker with
/// a Server Reference, and a resumed session.
#[cfg(feature = "mqtt5")]
mod v5 {

    use umqtt_core::packet::{
        ConnAck, ConnectReturnCode, Disconnect, Packet, Properties, Property, PropertyList,
        ProtocolVersion, Publish, ReasonCode,
    };
    use umqtt_core::session::{CloseReason, ConnectOptions, Event, Session, SessionConfig};
    use umqtt_core::storage::{Fixed, Heap, Storage, Strings};
    use umqtt_core::{PacketId, QoS};

    use super::{counting, t};

    const V5: ProtocolVersion = ProtocolVersion::V5;

    fn encoded(packet: Packet<'_>) -> Vec<u8> {
        let mut buf = vec![0; packet.encoded_len_with(V5).unwrap()];
        packet.encode_with(&mut buf, V5).unwrap();
        buf
    }

    fn connack(session_present: bool, properties: &[Property<'_>]) -> Vec<u8> {
        encoded(Packet::ConnAck(ConnAck {
            properties: Properties::List(&PropertyList(properties)),
            ..ConnAck::new(session_present, ConnectReturnCode::Accepted)
        }))
    }

    fn publish(topic: &str, alias: Option<u16>, qos: QoS, id: u16) -> Vec<u8> {
        let alias = alias.map(Property::TopicAlias);
        encoded(Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic,
            packet_id: PacketId::new(id),
            payload: b"hi",
            properties: Properties::List(&PropertyList(alias.as_slice())),
        }))
    }

    /// What the session wrote, packet by packet, without allocating.
    #[derive(Default)]
    struct Wire {
        /// Packets by type.
        packets: [usize; 16],
        /// PUBLISH packets sent with an empty topic (the alias stands for it).
        alias_only: usize,
        /// Messages received, and those whose topic is the one the broker aliased.
        messages: usize,
        aliased_topic: usize,
        closed: usize,
        /// Closed by the broker's DISCONNECT 0x9C Use another server.
        redirected: usize,
    }

    fn drain<S: Storage>(session: &mut Session<S>, wire: &mut Wire) {
        loop {
            while let Some(event) = session.poll_event() {
                match event {
                    Event::Closed(reason) => {
                        wire.closed += 1;
                        wire.redirected += usize::from(
                            reason == CloseReason::ServerDisconnected(ReasonCode::UseAnotherServer),
                        );
                    }
                    Event::Message(message) => {
                        wire.messages += 1;
                        wire.aliased_topic += usize::from(message.topic == "in/aliased");
                    }
                    _ => {}
                }
            }
            let mut wrote = false;
            while let Some(bytes) = session.poll_transmit(t(0)) {
                let mut rest = bytes;
                while let Some(&first) = rest.first() {
                    let kind = usize::from(first >> 4);
                    wire.packets[kind] += 1;
                    // Every packet here is < 128 bytes: one length byte.
                    if kind == 3 && rest[2..4] == [0, 0] {
                        wire.alias_only += 1;
                    }
                    rest = &rest[usize::from(rest[1]) + 2..];
                }
                wrote = true;
            }
            if !(wrote && session.has_unprocessed_input()) {
                return;
            }
        }
    }

    /// The broker's packets, encoded before counting starts.
    struct Script {
        connack: Vec<u8>,
        reconnack: Vec<u8>,
        alias_setup: Vec<u8>,
        alias_only_qos1: Vec<u8>,
        alias_only_qos2: Vec<u8>,
        disconnect: Vec<u8>,
    }

    fn script() -> Script {
        let reference = [Property::ServerReference("other.example:1883")];
        Script {
            connack: connack(
                false,
                &[
                    Property::AssignedClientIdentifier("auto-7f3a"),
                    Property::ReasonString("welcome, device"),
                    Property::TopicAliasMaximum(4),
                    Property::ServerKeepAlive(20),
                    Property::ReceiveMaximum(8),
                ],
            ),
            reconnack: connack(true, &[Property::TopicAliasMaximum(4)]),
            alias_setup: publish("in/aliased", Some(1), QoS::AtMostOnce, 0),
            alias_only_qos1: publish("", Some(1), QoS::AtLeastOnce, 7),
            alias_only_qos2: publish("", Some(1), QoS::ExactlyOnce, 8),
            disconnect: encoded(Packet::Disconnect(Disconnect::new(
                ReasonCode::UseAnotherServer,
                Properties::List(&PropertyList(&reference)),
            ))),
        }
    }

    fn id_bytes(id: PacketId) -> [u8; 2] {
        id.get().to_be_bytes()
    }

    /// Runs an MQTT 5 life and returns how many allocations it made after being built. `user`
    /// is the CONNECT's user property `site=lab`, as the storage's configuration holds it.
    fn life<S: Storage>(user: <S::Strings as Strings>::Pairs) -> usize {
        let mut options = ConnectOptions::default();
        options.session_expiry_interval = Some(600);
        options.receive_maximum = Some(4);
        options.topic_alias_maximum = Some(4);
        options.topic_aliases = true;
        options.user_properties = user;
        let config = SessionConfig {
            protocol: V5,
            // Empty: the broker assigns one, which the session adopts.
            client_id: "".into(),
            keep_alive: 10,
            v5: options,
            ..SessionConfig::default()
        };
        let s = script();
        counting::start();
        let mut session = Session::<S>::with_storage(config);
        let built = counting::count();
        let mut wire = Wire::default();

        session.connect(t(0), true).unwrap();
        drain(&mut session, &mut wire);
        session.handle_read(t(1), &s.connack);
        drain(&mut session, &mut wire);
        let limits = session.broker_limits();
        assert_eq!(
            limits.assigned_client_identifier.as_deref(),
            Some("auto-7f3a")
        );
        assert_eq!(limits.reason_string.as_deref(), Some("welcome, device"));
        assert_eq!(limits.topic_alias_maximum, 4);
        assert_eq!(session.keep_alive(), 20);
        assert_eq!(session.client_id(), "auto-7f3a");

        let sub = session.subscribe(&[("in/#", QoS::ExactlyOnce)]).unwrap();
        drain(&mut session, &mut wire);
        let [hi, lo] = id_bytes(sub);
        session.handle_read(t(2), &[0x90, 0x04, hi, lo, 0x00, 0x02]);
        drain(&mut session, &mut wire);

        // QoS 0 with outgoing aliases: topic and alias, then the alias alone (twice), and a
        // second topic.
        for topic in ["out/a", "out/a", "out/b", "out/a"] {
            session
                .publish(topic, b"0", QoS::AtMostOnce, false)
                .unwrap();
        }
        drain(&mut session, &mut wire);
        assert_eq!(wire.alias_only, 2);

        // QoS 1 and QoS 2 out.
        let one = session
            .publish("out/1", b"1", QoS::AtLeastOnce, false)
            .unwrap()
            .unwrap();
        let two = session
            .publish("out/2", b"2", QoS::ExactlyOnce, false)
            .unwrap()
            .unwrap();
        drain(&mut session, &mut wire);
        let [hi, lo] = id_bytes(two);
        session.handle_read(t(3), &[0x50, 0x02, hi, lo]);
        drain(&mut session, &mut wire);
        let [hi, lo] = id_bytes(two);
        session.handle_read(t(4), &[0x70, 0x02, hi, lo]);
        drain(&mut session, &mut wire);

        // Incoming: the broker sets up alias 1, then sends QoS 1 and QoS 2 with the alias alone.
        session.handle_read(t(5), &s.alias_setup);
        drain(&mut session, &mut wire);
        session.handle_read(t(6), &s.alias_only_qos1);
        drain(&mut session, &mut wire);
        session.handle_read(t(7), &s.alias_only_qos2);
        drain(&mut session, &mut wire);
        session.handle_read(t(8), &[0x62, 0x02, 0x00, 0x08]);
        drain(&mut session, &mut wire);
        assert_eq!((wire.messages, wire.aliased_topic), (3, 3));

        // The broker sends us elsewhere before the QoS 1 message is acknowledged.
        session.handle_read(t(9), &s.disconnect);
        drain(&mut session, &mut wire);
        assert_eq!(
            session.broker_limits().server_reference.as_deref(),
            Some("other.example:1883")
        );
        assert_eq!(wire.closed, 1);

        // Reconnect with the assigned identifier; the broker resumes: the QoS 1 message again.
        session.connect(t(10), false).unwrap();
        drain(&mut session, &mut wire);
        session.handle_read(t(11), &s.reconnack);
        drain(&mut session, &mut wire);
        let [hi, lo] = id_bytes(one);
        session.handle_read(t(12), &[0x40, 0x02, hi, lo]);
        drain(&mut session, &mut wire);
        assert_eq!(session.outgoing_len(), 0);
        // Aliases last one connection: the topic goes with a new alias setup.
        session
            .publish("out/a", b"0", QoS::AtMostOnce, false)
            .unwrap();
        session.disconnect().unwrap();
        drain(&mut session, &mut wire);
        let after = counting::count() - built;
        counting::stop();

        // CONNECT ×2, SUBSCRIBE, PUBLISH 4 + 2 + 1 (resent) + 1, PUBREL, PUBACK, PUBREC, PUBCOMP,
        // DISCONNECT.
        let p = &wire.packets;
        assert_eq!(
            [p[1], p[8], p[3], p[6], p[4], p[5], p[7], p[14]],
            [2, 1, 8, 1, 1, 1, 1, 1]
        );
        assert_eq!(wire.alias_only, 2);
        // The broker's DISCONNECT, then ours.
        assert_eq!((wire.redirected, wire.closed), (1, 2));
        after
    }

    #[test]
    fn an_mqtt5_session_on_fixed_storage_allocates_nothing_once_built() {
        assert_eq!(life::<Fixed<8, 256>>(&[("site", "lab")]), 0);
    }

    #[test]
    fn the_same_mqtt5_life_on_the_heap_allocates_so_the_count_is_real() {
        let heap = life::<Heap>(vec![("site".into(), "lab".into())]);
        eprintln!("allocations after the session was built, on the heap: {heap}");
        assert!(heap > 0);
    }
}
