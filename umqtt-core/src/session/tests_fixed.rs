//! The session's state-machine tests again, word for word, on [`Fixed`] storage: the same
//! rules, kept in lists and buffers sized up front. `tests.rs` and `tests_v5.rs` are included
//! here with `Session` standing for a session on fixed storage.

use super::SessionConfig;
use crate::storage::Fixed;

/// 24 list entries (22 messages), 2 KiB packets.
type Storage = Fixed<24, 2048>;

/// `Session::new` for the fixed-storage session (the heap session's `new` is inherent).
trait NewFixed {
    fn new(config: SessionConfig) -> Self;
}

impl NewFixed for super::Session<Storage> {
    fn new(config: SessionConfig) -> Self {
        Self::with_storage(config.into_strings())
    }
}

// The included files' own `use super::*` is covered by the imports above them.
#[allow(unused_imports)]
pub(super) mod tests {
    pub(super) use super::super::*;
    pub(super) use super::NewFixed;
    pub(super) type Session = super::super::Session<super::Storage>;

    include!("tests.rs");
}

#[allow(unused_imports)]
#[cfg(feature = "mqtt5")]
mod tests_v5 {
    use super::super::*;
    use super::tests::Session;
    use super::NewFixed;

    include!("tests_v5.rs");
}

/// What only fixed storage does: its limits give typed errors, and input waits for room.
mod limits {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::tests::{config, events, feed, publish_bytes, sent, t, Ev, Sent};
    use super::super::*;
    use crate::storage::Fixed;

    /// 6 list entries (4 messages), 64-byte packets, 160 bytes for the stored PUBLISH packets.
    type Small = Session<Fixed<6, 64, 160>>;

    fn connected(config: SessionConfig) -> Small {
        connected_on(config)
    }

    /// A session on storage `S`, connected (clean session), its CONNECT taken.
    fn connected_on<S: crate::storage::Storage<Strings = crate::storage::Static>>(
        config: SessionConfig,
    ) -> Session<S> {
        let mut session = Session::<S>::with_storage(config.into_strings());
        session.connect(t(0), true).unwrap();
        while session.poll_transmit(t(0)).is_some() {}
        session.handle_read(t(1), &[0x20, 0x02, 0x00, 0x00]);
        assert_eq!(
            session.poll_event(),
            Some(Event::Connected {
                session_present: false
            })
        );
        session
    }

    /// Everything to write, as one byte string.
    fn written(session: &mut Small) -> Vec<u8> {
        let mut bytes = Vec::new();
        while let Some(part) = session.poll_transmit(t(2)) {
            bytes.extend_from_slice(part);
        }
        bytes
    }

    #[test]
    fn full_lists_and_small_buffers_give_typed_errors() {
        let mut session = connected(config());
        // Larger than a 64-byte buffer, whatever the QoS; nothing is kept.
        let big = [7u8; 80];
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            assert_eq!(
                session.publish("t", &big, qos, false),
                Err(UsageError::StorageFull)
            );
        }
        assert_eq!(session.outgoing_len(), 0);
        assert!(written(&mut session).is_empty());
        let ids: Vec<PacketId> = (0..4)
            .map(|_| {
                session
                    .publish("t", b"x", QoS::AtLeastOnce, false)
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            session.publish("t", b"x", QoS::AtLeastOnce, false),
            Err(UsageError::OutgoingFull)
        );
        assert_eq!(written(&mut session).len(), 4 * 8);
        // Six SUBSCRIBE wait for their SUBACK; the seventh has no room.
        for _ in 0..6 {
            session.subscribe(&[("a", QoS::AtLeastOnce)]).unwrap();
            let _ = written(&mut session);
        }
        assert_eq!(
            session.subscribe(&[("a", QoS::AtLeastOnce)]),
            Err(UsageError::StorageFull)
        );
        // The messages are still all there, and complete.
        for id in &ids {
            let [hi, lo] = id.get().to_be_bytes();
            session.handle_read(t(3), &[0x40, 0x02, hi, lo]);
        }
        let mut done = 0;
        while let Some(event) = session.poll_event() {
            assert!(matches!(event, Event::Published(_)), "{event:?}");
            done += 1;
        }
        assert_eq!(done, 4);
        assert_eq!(session.events_lost(), 0);
    }

    #[test]
    fn a_packet_larger_than_the_buffers_is_refused_from_its_header() {
        let mut session = connected(config());
        let message = publish_bytes(QoS::AtLeastOnce, 9, "t", &[1; 100]);
        session.handle_read(t(3), &message[..40]);
        assert_eq!(
            session.poll_event(),
            Some(Event::Closed(CloseReason::PacketTooLarge {
                size: message.len(),
                max: 64
            }))
        );
    }

    #[test]
    fn input_past_its_room_closes_the_connection_and_a_full_buffer_is_one_packet() {
        let mut session = connected(config());
        assert_eq!(session.input_room(), 64);
        // A packet of exactly 64 bytes, in two reads.
        let message = publish_bytes(QoS::AtMostOnce, 0, "t", &[3; 59]);
        assert_eq!(message.len(), 64);
        session.handle_read(t(3), &message[..30]);
        assert_eq!(session.poll_event(), None);
        assert_eq!(session.input_room(), 34);
        session.handle_read(t(3), &message[30..]);
        assert!(matches!(session.poll_event(), Some(Event::Message(p)) if p.payload == [3; 59]));
        // One byte more than the room: the stream cannot be followed any more.
        session.handle_read(t(4), &[0u8; 65]);
        assert_eq!(
            session.poll_event(),
            Some(Event::Closed(CloseReason::StorageFull))
        );
    }

    #[test]
    fn decoding_waits_for_room_to_answer_and_loses_nothing() {
        let mut session = connected(config());
        // 40 QoS 1 messages of 8 bytes, fed as fast as the receive buffer takes them, with
        // the acknowledgements written only when decoding stops for want of room.
        let stream: Vec<u8> = (1..=40u16)
            .flat_map(|id| publish_bytes(QoS::AtLeastOnce, id, "t", &[id as u8]))
            .collect();
        let (mut fed, mut received, mut acked, mut waits) = (0, Vec::new(), Vec::new(), 0);
        while received.len() < 40 {
            let n = session.input_room().min(stream.len() - fed);
            session.handle_read(t(3), &stream[fed..fed + n]);
            fed += n;
            while let Some(event) = session.poll_event() {
                let Event::Message(publish) = event else {
                    panic!("{event:?}");
                };
                received.push(publish.payload[0]);
            }
            // Written only when decoding stopped for want of room (or at the end).
            if session.has_unprocessed_input() {
                waits += 1;
            } else if fed < stream.len() {
                continue;
            }
            let bytes = written(&mut session);
            assert!(bytes.len() <= 64);
            acked.extend(bytes.chunks(4).map(|ack| {
                assert_eq!(&ack[..2], &[0x40, 0x02]);
                ack[3]
            }));
        }
        let all: Vec<u8> = (1..=40).collect();
        assert_eq!(received, all);
        assert_eq!(acked, all);
        assert!(
            waits > 0,
            "the transmit buffer never filled: the test proves nothing"
        );
        assert!(session.is_connected());
    }

    #[test]
    fn manual_acks_owed_past_the_list_hold_the_input_back() {
        let mut session = connected(SessionConfig {
            manual_ack: true,
            ..config()
        });
        let stream: Vec<u8> = (1..=7u16)
            .flat_map(|id| publish_bytes(QoS::AtLeastOnce, id, "t", b""))
            .collect();
        assert!(stream.len() <= 64);
        session.handle_read(t(3), &stream);
        let mut received = 0;
        while let Some(Event::Message(_)) = session.poll_event() {
            received += 1;
        }
        // Six acknowledgements owed fill the list: the seventh message waits, undecoded.
        assert_eq!(received, 6);
        assert!(session.has_unprocessed_input());
        assert!(written(&mut session).is_empty());
        assert!(session.ack(PacketId::new(1).unwrap()));
        assert_eq!(written(&mut session), [0x40, 0x02, 0, 1]);
        assert!(
            matches!(session.poll_event(), Some(Event::Message(p)) if p.packet_id == PacketId::new(7))
        );
        assert!(!session.has_unprocessed_input());
    }

    #[test]
    fn messages_that_do_not_fit_together_go_one_slice_at_a_time() {
        let mut session = connected(config());
        // Four 37-byte PUBLISH packets, one at a time in a 64-byte transmit buffer.
        let ids: Vec<PacketId> = (0..4u8)
            .map(|n| {
                session
                    .publish("t", &[n; 30], QoS::AtLeastOnce, false)
                    .unwrap()
                    .unwrap()
            })
            .collect();
        let mut slices = Vec::new();
        while let Some(slice) = session.poll_transmit(t(2)) {
            assert!(slice.len() <= 64);
            slices.push(slice.to_vec());
        }
        assert_eq!(slices.len(), 4, "one PUBLISH per slice");
        for (n, slice) in slices.iter().enumerate() {
            assert_eq!(slice.len(), 37);
            assert_eq!(slice[0], 0x32);
            assert_eq!(&slice[7..], &[n as u8; 30]);
        }
        assert_eq!(session.in_flight(), 4);
        for id in &ids {
            let [hi, lo] = id.get().to_be_bytes();
            session.handle_read(t(3), &[0x40, 0x02, hi, lo]);
            assert_eq!(session.poll_event(), Some(Event::Published(*id)));
        }
    }

    #[test]
    fn stored_packets_take_the_room_they_need_and_wait_for_it() {
        // 64 bytes for stored packets: one 37-byte PUBLISH, or three 20-byte ones.
        let mut session = connected_on::<Fixed<6, 64>>(config());
        let first = session
            .publish("t", &[1; 30], QoS::AtLeastOnce, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            session.publish("t", &[2; 30], QoS::AtLeastOnce, false),
            Err(UsageError::StorageFull)
        );
        assert_eq!(session.outgoing_len(), 1);
        while session.poll_transmit(t(2)).is_some() {}
        let [hi, lo] = first.get().to_be_bytes();
        session.handle_read(t(3), &[0x40, 0x02, hi, lo]);
        assert_eq!(session.poll_event(), Some(Event::Published(first)));
        // The acknowledged packet's room is back; smaller packets share it.
        for n in 0..3u8 {
            assert!(session
                .publish("t", &[n; 13], QoS::AtLeastOnce, false)
                .is_ok());
        }
        assert_eq!(
            session.publish("t", &[9; 13], QoS::AtLeastOnce, false),
            Err(UsageError::StorageFull)
        );
        assert_eq!(session.outgoing_len(), 3);
        let mut sent = Vec::new();
        while let Some(slice) = session.poll_transmit(t(4)) {
            sent.extend_from_slice(slice);
        }
        assert_eq!(sent.len(), 60);
        for (n, packet) in sent.chunks(20).enumerate() {
            assert_eq!(&packet[..2], &[0x32, 18]);
            assert_eq!(&packet[7..], &[n as u8; 13]);
        }
    }

    #[test]
    fn m_bounds_the_messages_held() {
        // 6 list entries, but message lists of 2: two QoS 1/2 messages held, not four.
        let mut session = connected_on::<Fixed<6, 64, 160, 2>>(config());
        for n in 0..2u8 {
            assert!(session.publish("t", &[n], QoS::AtLeastOnce, false).is_ok());
        }
        assert_eq!(
            session.publish("t", &[2], QoS::AtLeastOnce, false),
            Err(UsageError::OutgoingFull)
        );
        // QoS 0 messages are not held: they still go.
        assert!(session.publish("t", &[3], QoS::AtMostOnce, false).is_ok());
        assert_eq!(session.outgoing_len(), 2);
    }

    #[test]
    fn commands_leave_room_for_the_disconnect() {
        let mut session = connected(config());
        // QoS 0 messages of 8 bytes, not written: they stop short of the reserve.
        let mut queued = 0;
        while session.publish("t", b"abc", QoS::AtMostOnce, false).is_ok() {
            queued += 1;
            assert!(queued < 10);
        }
        assert_eq!(
            session.publish("t", b"abc", QoS::AtMostOnce, false),
            Err(UsageError::StorageFull)
        );
        assert_eq!(queued, 7, "56 bytes of 64: the last 8 are kept");
        session.disconnect().unwrap();
        let bytes = written(&mut session);
        assert_eq!(bytes.len(), 7 * 8 + 2);
        assert_eq!(&bytes[56..], &[0xE0, 0x00]);
        assert_eq!(
            session.poll_event(),
            Some(Event::Closed(CloseReason::Disconnected))
        );
    }

    #[test]
    fn a_connect_larger_than_the_buffers_is_a_usage_error() {
        let config = SessionConfig {
            client_id: "c".repeat(70),
            ..config()
        };
        let mut session = Small::with_storage(config.into_strings());
        assert_eq!(session.connect(t(0), true), Err(UsageError::StorageFull));
        assert!(!session.is_connecting_or_connected());
        let _ = (events, feed, sent, Ev::Pong, Sent::PingReq, vec![0u8]);
    }
}

/// Found by the session fuzz target on fixed storage: a message sent on this connection can
/// be withdrawn only while there is room to keep its id out of use, and `can_cancel` says so
/// beforehand.
#[test]
fn a_sent_message_is_not_withdrawn_without_room_to_quarantine_its_id() {
    use super::tests::{config, t};
    use super::*;

    let mut session = Session::<Fixed<6, 64>>::with_storage(config().into_strings());
    session.connect(t(0), true).unwrap();
    while session.poll_transmit(t(0)).is_some() {}
    session.handle_read(t(1), &[0x20, 0x02, 0x00, 0x00]);
    assert!(session.poll_event().is_some());
    // Six messages sent and withdrawn on this connection fill the quarantine.
    for _ in 0..6 {
        let id = session
            .publish("t", b"x", QoS::AtLeastOnce, false)
            .unwrap()
            .unwrap();
        while session.poll_transmit(t(2)).is_some() {}
        assert!(session.can_cancel(id));
        assert!(session.cancel_publish(id));
    }
    let id = session
        .publish("t", b"x", QoS::AtLeastOnce, false)
        .unwrap()
        .unwrap();
    while session.poll_transmit(t(3)).is_some() {}
    assert!(!session.can_cancel(id));
    assert!(!session.cancel_publish(id));
    assert_eq!(session.outgoing_len(), 1);
    // It completes as usual.
    let [hi, lo] = id.get().to_be_bytes();
    session.handle_read(t(4), &[0x40, 0x02, hi, lo]);
    assert_eq!(session.poll_event(), Some(Event::Published(id)));
}

/// What fixed storage bounds in MQTT 5: the topic alias tables (`N` aliases, their topics
/// `B` bytes together), the broker's strings (`B` bytes each), the CONNECT's properties.
#[cfg(feature = "mqtt5")]
mod v5_limits {
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::tests::{config, t};
    use super::super::*;
    use crate::packet::{decode_with, Decoded, Property};
    use crate::storage::{Fixed, FixedText};

    const V5: ProtocolVersion = ProtocolVersion::V5;

    /// 6 list entries, 64-byte packets.
    type Small = Session<Fixed<6, 64>>;

    fn encoded(packet: Packet<'_>) -> Vec<u8> {
        let mut buf = vec![0; packet.encoded_len_with(V5).unwrap()];
        packet.encode_with(&mut buf, V5).unwrap();
        buf
    }

    fn connack(properties: &[Property<'_>]) -> Vec<u8> {
        encoded(Packet::ConnAck(ConnAck {
            properties: Properties::List(&PropertyList(properties)),
            ..ConnAck::new(false, ConnectReturnCode::Accepted)
        }))
    }

    fn incoming(topic: &str, alias: u16) -> Vec<u8> {
        encoded(Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            payload: b"p",
            properties: Properties::List(&PropertyList(&[Property::TopicAlias(alias)])),
        }))
    }

    fn v5_config(options: ConnectOptions) -> SessionConfig {
        SessionConfig {
            protocol: V5,
            v5: options,
            ..config()
        }
    }

    /// A connected session whose CONNACK carried `properties`, and its CONNECT's bytes.
    fn connected(options: ConnectOptions, properties: &[Property<'_>]) -> (Small, Vec<u8>) {
        let mut session = Small::with_storage(v5_config(options).into_strings());
        session.connect(t(0), true).unwrap();
        let connect = written(&mut session);
        session.handle_read(t(1), &connack(properties));
        assert_eq!(
            session.poll_event(),
            Some(Event::Connected {
                session_present: false
            })
        );
        (session, connect)
    }

    fn written(session: &mut Small) -> Vec<u8> {
        let mut bytes = Vec::new();
        while let Some(part) = session.poll_transmit(t(2)) {
            bytes.extend_from_slice(part);
        }
        bytes
    }

    /// The topic and Topic Alias of each PUBLISH written.
    fn sent_publishes(session: &mut Small) -> Vec<(String, Option<u16>)> {
        let bytes = written(session);
        let mut rest = &bytes[..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let Ok(Decoded::Complete { packet, consumed }) = decode_with(rest, usize::MAX, V5)
            else {
                panic!("invalid packet {rest:02x?}");
            };
            if let Packet::Publish(p) = packet {
                out.push((String::from(p.topic), p.properties.topic_alias()));
            }
            rest = &rest[consumed..];
        }
        out
    }

    /// What `poll_event` reports: the topic of each message, or why the connection closed.
    fn received(session: &mut Small) -> Vec<Result<String, CloseReason>> {
        let mut out = Vec::new();
        while let Some(event) = session.poll_event() {
            match event {
                Event::Message(m) => out.push(Ok(String::from(m.topic))),
                Event::Closed(reason) => out.push(Err(reason)),
                _ => {}
            }
        }
        out
    }

    fn aliases_on() -> ConnectOptions {
        ConnectOptions {
            topic_aliases: true,
            ..ConnectOptions::default()
        }
    }

    #[test]
    fn outgoing_aliases_stop_at_n_topics_the_others_go_in_full() {
        let (mut session, _) = connected(aliases_on(), &[Property::TopicAliasMaximum(20)]);
        let topics = ["a", "b", "c", "d", "e", "f", "g"];
        let mut sent = Vec::new();
        for topic in topics.iter().chain(&topics) {
            session
                .publish(topic, b"x", QoS::AtMostOnce, false)
                .unwrap();
            sent.extend(sent_publishes(&mut session));
        }
        // Six aliases (N); the seventh topic goes in full, every time.
        let mut expected: Vec<(String, Option<u16>)> = (1..=6)
            .map(|n| (String::from(topics[n - 1]), Some(n as u16)))
            .collect();
        expected.push((String::from("g"), None));
        expected.extend((1..=6).map(|n| (String::new(), Some(n as u16))));
        expected.push((String::from("g"), None));
        assert_eq!(sent, expected);
    }

    #[test]
    fn outgoing_alias_topics_share_b_bytes_one_that_does_not_fit_goes_in_full() {
        let (mut session, _) = connected(aliases_on(), &[Property::TopicAliasMaximum(20)]);
        let long = ["t/".repeat(12), "u/".repeat(12), "v/".repeat(12)];
        let long: Vec<&str> = long.iter().map(|t| t.trim_end_matches('/')).collect();
        for topic in long.iter().chain(&long) {
            session
                .publish(topic, b"x", QoS::AtMostOnce, false)
                .unwrap();
            // One at a time: each PUBLISH is about 30 bytes.
            let sent = sent_publishes(&mut session);
            assert_eq!(sent.len(), 1);
        }
        // 23 + 23 bytes fit in 64; the third topic does not, and is never aliased.
        session
            .publish(long[0], b"x", QoS::AtMostOnce, false)
            .unwrap();
        assert_eq!(sent_publishes(&mut session), [(String::new(), Some(1))]);
        session
            .publish(long[2], b"x", QoS::AtMostOnce, false)
            .unwrap();
        assert_eq!(
            sent_publishes(&mut session),
            [(String::from(long[2]), None)]
        );
    }

    #[test]
    fn at_most_n_incoming_aliases_are_announced_and_their_topics_share_b_bytes() {
        let options = ConnectOptions {
            topic_alias_maximum: Some(100),
            ..ConnectOptions::default()
        };
        let (mut session, connect) = connected(options.clone(), &[]);
        // Topic Alias Maximum 6 (N), not 100.
        assert!(connect.windows(3).any(|w| w == [0x22, 0, 6]));
        assert_eq!(
            received(&mut {
                let (mut s, _) = connected(options.clone(), &[]);
                s.handle_read(t(2), &incoming("x", 7));
                s
            }),
            [Err(CloseReason::Protocol(
                ProtocolError::TopicAliasInvalid(7)
            ))]
        );

        // Replacing a mapping with a topic of another length moves the others: all resolve.
        let mut got = Vec::new();
        for (topic, alias) in [("a/one", 1), ("b/two", 2), ("c/three", 3), ("a/1", 1)] {
            session.handle_read(t(2), &incoming(topic, alias));
            got.extend(received(&mut session));
        }
        for alias in [2, 1, 3] {
            session.handle_read(t(3), &incoming("", alias));
            got.extend(received(&mut session));
        }
        assert_eq!(
            got,
            ["a/one", "b/two", "c/three", "a/1", "b/two", "a/1", "c/three"].map(|t| Ok(t.into()))
        );

        // The 15 bytes of topics above and 3 × 17 more do not fit in 64: at the third the
        // connection closes with a typed reason; nothing was allocated or handed over without
        // its topic.
        let topics = ["d".repeat(17), "e".repeat(17), "f".repeat(17)];
        let mut got = Vec::new();
        for (alias, topic) in (4..).zip(&topics) {
            session.handle_read(t(4), &incoming(topic, alias));
            got.extend(received(&mut session));
        }
        assert_eq!(got[..2], [Ok(topics[0].clone()), Ok(topics[1].clone())]);
        assert_eq!(got[2..], [Err(CloseReason::StorageFull)]);
    }

    #[test]
    fn the_brokers_strings_are_kept_whole_up_to_b_bytes_and_cut_at_a_char_boundary() {
        // A reason string and a server reference as long as a 64-byte packet allows.
        let reason = "r".repeat(50);
        let (mut session, _) = connected(
            ConnectOptions::default(),
            &[Property::ReasonString(&reason)],
        );
        assert_eq!(
            session.broker_limits().reason_string.as_deref(),
            Some(&*reason)
        );
        let reference = "host.example:".repeat(4);
        let disconnect = encoded(Packet::Disconnect(Disconnect::new(
            ReasonCode::ServerMoved,
            Properties::List(&PropertyList(&[Property::ServerReference(&reference)])),
        )));
        session.handle_read(t(2), &disconnect);
        assert_eq!(
            received(&mut session),
            [Err(CloseReason::ServerDisconnected(
                ReasonCode::ServerMoved
            ))]
        );
        assert_eq!(
            session.broker_limits().server_reference.as_deref(),
            Some(&*reference)
        );

        // A text shorter than the strings: cut at a char boundary, never split inside one.
        let limits =
            BrokerLimits::<FixedText<8>>::from_properties(&Properties::List(&PropertyList(&[
                Property::ReasonString("ddéjàé"),
                Property::ServerReference("a:1883"),
            ])));
        // "é" would take bytes 8 and 9.
        assert_eq!(limits.reason_string.as_deref(), Some("ddéjà"));
        assert_eq!(limits.server_reference.as_deref(), Some("a:1883"));
    }

    #[test]
    fn connect_properties_larger_than_the_buffers_are_a_usage_error() {
        let options = ConnectOptions {
            user_properties: vec![(String::from("k"), "v".repeat(80))],
            ..ConnectOptions::default()
        };
        let mut session = Small::with_storage(v5_config(options).into_strings());
        assert_eq!(session.connect(t(0), true), Err(UsageError::StorageFull));
        assert!(!session.is_connecting_or_connected());
        assert!(!session.has_unprocessed_input());
        assert!(written(&mut session).is_empty());
        // Fewer bytes: it goes.
        session.config_mut().v5.user_properties = &[("k", "vvvvvvvvvv")];
        session.connect(t(0), true).unwrap();
        assert!(!written(&mut session).is_empty());
    }
}
