//! Scenario tests of the simulated broker and network: raw packets encoded with umqtt-core's
//! codec, compared byte for byte. No sockets, no sleeps, virtual time only.

use std::time::Duration;

use umqtt_core::packet::{
    decode, ConnAck, Connect, ConnectReturnCode, Decoded, LastWill, Packet, PacketId, PacketType,
    ProtocolVersion, Publish, QoS, SubAck, Subscribe, SubscribeTopics, Unsubscribe,
    UnsubscribeTopics,
};
use umqtt_core::session::{Event as SessionEvent, Session, SessionConfig};
use umqtt_core::Instant;
use umqtt_testkit::sim::{ClientEvent, ConnId, OpenError, ServerMode, SimNet};

const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;
const Q2: QoS = QoS::ExactlyOnce;

fn t(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn enc(packet: &Packet<'_>) -> Vec<u8> {
    let mut bytes = vec![0; packet.encoded_len().unwrap()];
    packet.encode(&mut bytes).unwrap();
    bytes
}

fn connect(client_id: &str, clean_session: bool, keep_alive: u16) -> Vec<u8> {
    connect_with_will(client_id, clean_session, keep_alive, None)
}

fn connect_with_will(
    client_id: &str,
    clean_session: bool,
    keep_alive: u16,
    will: Option<LastWill<'_>>,
) -> Vec<u8> {
    enc(&Packet::Connect(Connect {
        protocol: ProtocolVersion::V311,
        client_id,
        keep_alive,
        clean_session,
        will,
        username: None,
        password: None,
        properties: Default::default(),
    }))
}

fn connack(session_present: bool, code: ConnectReturnCode) -> Vec<u8> {
    enc(&Packet::ConnAck(ConnAck::new(session_present, code)))
}

fn accepted(session_present: bool) -> Vec<u8> {
    connack(session_present, ConnectReturnCode::Accepted)
}

fn publish(topic: &str, payload: &[u8], qos: QoS, packet_id: u16, dup: bool) -> Vec<u8> {
    publish_retain(topic, payload, qos, packet_id, dup, false)
}

fn publish_retain(
    topic: &str,
    payload: &[u8],
    qos: QoS,
    packet_id: u16,
    dup: bool,
    retain: bool,
) -> Vec<u8> {
    enc(&Packet::Publish(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id: PacketId::new(packet_id),
        payload,
        properties: Default::default(),
    }))
}

fn subscribe(packet_id: u16, filters: &[(&str, QoS)]) -> Vec<u8> {
    enc(&Packet::Subscribe(Subscribe {
        packet_id: id(packet_id),
        topics: SubscribeTopics::List(filters),
        properties: Default::default(),
    }))
}

fn suback(packet_id: u16, codes: &[u8]) -> Vec<u8> {
    enc(&Packet::SubAck(SubAck {
        packet_id: id(packet_id),
        return_codes: codes,
        properties: Default::default(),
    }))
}

fn unsubscribe(packet_id: u16, filters: &[&str]) -> Vec<u8> {
    enc(&Packet::Unsubscribe(Unsubscribe {
        packet_id: id(packet_id),
        topics: UnsubscribeTopics::List(filters),
        properties: Default::default(),
    }))
}

fn puback(n: u16) -> Vec<u8> {
    enc(&Packet::PubAck(umqtt_core::packet::Ack::new(id(n))))
}
fn pubrec(n: u16) -> Vec<u8> {
    enc(&Packet::PubRec(umqtt_core::packet::Ack::new(id(n))))
}
fn pubrel(n: u16) -> Vec<u8> {
    enc(&Packet::PubRel(umqtt_core::packet::Ack::new(id(n))))
}
fn pubcomp(n: u16) -> Vec<u8> {
    enc(&Packet::PubComp(umqtt_core::packet::Ack::new(id(n))))
}
fn disconnect() -> Vec<u8> {
    enc(&Packet::Disconnect(umqtt_core::packet::Disconnect::NORMAL))
}
fn pingreq() -> Vec<u8> {
    enc(&Packet::PingReq)
}
fn pingresp() -> Vec<u8> {
    enc(&Packet::PingResp)
}

/// The client side of one link as a test sees it.
#[derive(Debug)]
struct Peer {
    conn: ConnId,
    buffer: Vec<u8>,
    opened: bool,
    open_failed: Option<OpenError>,
    closed: Option<bool>,
    /// Data events received (more than packets when writes are split).
    pieces: usize,
}

/// A network plus a cursor of virtual time.
struct Rig {
    net: SimNet,
    now: Instant,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(SimNet::new(1))
    }

    fn with(net: SimNet) -> Rig {
        Rig { net, now: t(0) }
    }

    /// Advances the clock by `millis`.
    fn wait(&mut self, millis: u64) {
        self.now = self.now.saturating_add(Duration::from_millis(millis));
        self.net.advance(self.now);
    }

    fn open(&mut self, server: usize) -> Peer {
        let conn = self.net.open(self.now, server);
        Peer {
            conn,
            buffer: Vec::new(),
            opened: false,
            open_failed: None,
            closed: None,
            pieces: 0,
        }
    }

    fn send(&mut self, peer: &Peer, bytes: &[u8]) {
        self.net.send(self.now, peer.conn, bytes);
    }

    /// Drains the peer's events; returns the whole packets received, as bytes.
    fn recv(&mut self, peer: &mut Peer) -> Vec<Vec<u8>> {
        while let Some(event) = self.net.poll_client_event(peer.conn) {
            assert!(peer.closed.is_none(), "event after Closed: {event:?}");
            match event {
                ClientEvent::Opened => {
                    assert!(!peer.opened, "Opened twice");
                    peer.opened = true;
                }
                ClientEvent::OpenFailed(e) => peer.open_failed = Some(e),
                ClientEvent::Data(bytes) => {
                    assert!(peer.opened, "data before Opened");
                    peer.pieces += 1;
                    peer.buffer.extend_from_slice(&bytes);
                }
                ClientEvent::Closed { reset } => peer.closed = Some(reset),
            }
        }
        let mut packets = Vec::new();
        loop {
            match decode(&peer.buffer, usize::MAX) {
                Ok(Decoded::Complete { consumed, .. }) => {
                    packets.push(peer.buffer.drain(..consumed).collect());
                }
                Ok(Decoded::Incomplete) => break,
                Err(e) => panic!("broker sent a malformed packet: {e}"),
            }
        }
        packets
    }

    /// Opens a link to `server` and sends CONNECT; returns the peer and what came back within
    /// a few round trips.
    fn connect_raw(&mut self, server: usize, connect_bytes: &[u8]) -> (Peer, Vec<Vec<u8>>) {
        let mut peer = self.open(server);
        self.wait(2);
        assert!(self.recv(&mut peer).is_empty());
        assert!(peer.opened, "open did not complete: {peer:?}");
        self.send(&peer, connect_bytes);
        self.wait(2);
        let packets = self.recv(&mut peer);
        (peer, packets)
    }

    /// Connects and checks the CONNACK's session-present flag.
    fn connect(&mut self, client_id: &str, clean: bool, session_present: bool) -> Peer {
        let (peer, packets) = self.connect_raw(0, &connect(client_id, clean, 0));
        assert_eq!(packets, vec![accepted(session_present)], "{client_id}");
        peer
    }

    /// Sends bytes and returns what came back after `millis`.
    fn exchange(&mut self, peer: &mut Peer, bytes: &[u8], millis: u64) -> Vec<Vec<u8>> {
        self.send(peer, bytes);
        self.wait(millis);
        self.recv(peer)
    }
}

#[test]
fn connack_session_present_false_then_true_and_clean_session_discards() {
    let mut rig = Rig::new();
    let mut c = rig.connect("dev", false, false);
    assert!(rig.exchange(&mut c, &disconnect(), 2).is_empty());
    assert_eq!(c.closed, Some(false), "the broker closes after DISCONNECT");
    assert!(rig.net.broker(0).has_session("dev"));

    rig.connect("dev", false, true);
    // A clean session discards the stored one [MQTT-3.1.2-6] and answers 0.
    let mut c = rig.connect("dev", true, false);
    rig.exchange(&mut c, &disconnect(), 2);
    assert!(!rig.net.broker(0).has_session("dev"));
    rig.connect("dev", false, false);

    let records: Vec<(bool, bool)> = rig
        .net
        .broker(0)
        .connects()
        .iter()
        .map(|r| (r.clean_session, r.session_present))
        .collect();
    assert_eq!(
        records,
        [(false, false), (false, true), (true, false), (false, false)]
    );
    assert_eq!(rig.net.broker(0).opens(), 4);
    assert!(rig.net.broker(0).protocol_violations().is_empty());
}

#[test]
fn qos1_publish_is_acknowledged_and_accepted() {
    let mut rig = Rig::new();
    let mut c = rig.connect("pub", true, false);
    let sent_at = rig.now;
    let answer = rig.exchange(&mut c, &publish("a/b", b"hello", Q1, 7, false), 2);
    assert_eq!(answer, vec![puback(7)]);
    // A resend with DUP is a duplicate the client caused: accepted again.
    let answer = rig.exchange(&mut c, &publish("a/b", b"hello", Q1, 7, true), 2);
    assert_eq!(answer, vec![puback(7)]);

    let accepted = rig.net.broker(0).accepted();
    assert_eq!(accepted.len(), 2);
    assert_eq!(accepted[0].client_id, "pub");
    assert_eq!(accepted[0].topic, "a/b");
    assert_eq!(accepted[0].payload, b"hello");
    assert_eq!(accepted[0].qos, Q1);
    assert!(!accepted[0].dup && accepted[1].dup);
    assert_eq!(accepted[0].packet_id, Some(id(7)));
    assert_eq!(
        accepted[0].at,
        sent_at.saturating_add(Duration::from_millis(1))
    );
}

#[test]
fn qos2_handshake_deduplicates_resend_before_pubrel() {
    let mut rig = Rig::new();
    let mut c = rig.connect("q2", true, false);
    let answer = rig.exchange(&mut c, &publish("t", b"once", Q2, 3, false), 2);
    assert_eq!(answer, vec![pubrec(3)]);
    let answer = rig.exchange(&mut c, &publish("t", b"once", Q2, 3, true), 2);
    assert_eq!(answer, vec![pubrec(3)], "the resend is answered again");
    assert_eq!(
        rig.net.broker(0).accepted().len(),
        1,
        "but not accepted again"
    );

    assert_eq!(rig.exchange(&mut c, &pubrel(3), 2), vec![pubcomp(3)]);
    // A PUBREL for an unknown id is answered too (the PUBCOMP may have been lost).
    assert_eq!(rig.exchange(&mut c, &pubrel(3), 2), vec![pubcomp(3)]);
    // Released: the id is free, a new message with it is a new message.
    let answer = rig.exchange(&mut c, &publish("t", b"again", Q2, 3, false), 2);
    assert_eq!(answer, vec![pubrec(3)]);
    let payloads: Vec<&[u8]> = rig
        .net
        .broker(0)
        .accepted()
        .iter()
        .map(|a| a.payload.as_slice())
        .collect();
    assert_eq!(payloads, [b"once".as_slice(), b"again".as_slice()]);
    assert!(rig.net.broker(0).protocol_violations().is_empty());
}

#[test]
fn wildcard_subscriptions_route_to_a_second_client() {
    let mut rig = Rig::new();
    let mut sub = rig.connect("sub", true, false);
    let filters = [("a/+/c", Q1), ("x/#", Q0), ("#", Q2), ("none", Q0)];
    let answer = rig.exchange(&mut sub, &subscribe(1, &filters), 2);
    assert_eq!(answer, vec![suback(1, &[1, 0, 2, 0])]);
    assert_eq!(
        rig.net.broker(0).subscriptions("sub"),
        filters
            .iter()
            .map(|(f, q)| (f.to_string(), *q))
            .collect::<Vec<_>>()
    );

    let mut publisher = rig.connect("pub", true, false);
    rig.send(&publisher, &publish("a/b/c", b"1", Q1, 1, false));
    rig.send(&publisher, &publish("x/y/z", b"2", Q0, 0, false));
    rig.send(&publisher, &publish("$SYS/load", b"3", Q1, 2, false));
    rig.send(&publisher, &publish("a/b/c/d", b"4", Q2, 3, false));
    rig.send(&publisher, &publish("a/x/c", b"5", Q2, 4, false));
    rig.wait(2);
    assert_eq!(
        rig.recv(&mut publisher),
        vec![puback(1), puback(2), pubrec(3), pubrec(4)]
    );
    // One copy per message at the highest granted QoS of the matching filters; "#" does not
    // match "$SYS/load" [MQTT-4.7.2-1]; the broker numbers its own packet ids.
    assert_eq!(
        rig.recv(&mut sub),
        vec![
            publish("a/b/c", b"1", Q1, 1, false),
            publish("x/y/z", b"2", Q0, 0, false),
            publish("a/b/c/d", b"4", Q2, 2, false),
            publish("a/x/c", b"5", Q2, 3, false),
        ]
    );
    let delivered = rig.net.broker(0).delivered("sub");
    assert_eq!(delivered.len(), 4);
    assert_eq!(delivered[2].packet_id, Some(id(2)));

    // Unsubscribed filters stop matching; the others stay.
    assert_eq!(
        rig.exchange(&mut sub, &unsubscribe(2, &["#", "a/+/c"]), 2),
        vec![enc(&Packet::UnsubAck(umqtt_core::packet::UnsubAck::new(
            id(2)
        )))]
    );
    rig.send(&publisher, &publish("a/b/c", b"6", Q1, 5, false));
    rig.send(&publisher, &publish("x/1", b"7", Q1, 6, false));
    rig.wait(2);
    assert_eq!(rig.recv(&mut sub), vec![publish("x/1", b"7", Q0, 0, false)]);
}

#[test]
fn retained_message_is_sent_on_subscribe_and_deleted_by_empty_payload() {
    let mut rig = Rig::new();
    let mut publisher = rig.connect("pub", true, false);
    let answer = rig.exchange(
        &mut publisher,
        &publish_retain("s/temp", b"21", Q1, 1, false, true),
        2,
    );
    assert_eq!(answer, vec![puback(1)]);
    rig.net
        .broker_mut(0)
        .publish(rig.now, "s/hum", b"40", Q0, true);
    assert_eq!(
        rig.net.broker(0).retained("s/temp"),
        Some((b"21".to_vec(), Q1))
    );

    let mut sub = rig.connect("sub", true, false);
    let answer = rig.exchange(&mut sub, &subscribe(9, &[("s/+", Q2)]), 2);
    // RETAIN set on messages sent because of a new subscription [MQTT-3.3.1-8], QoS min'd.
    assert_eq!(
        answer,
        vec![
            suback(9, &[2]),
            publish_retain("s/hum", b"40", Q0, 0, false, true),
            publish_retain("s/temp", b"21", Q1, 1, false, true),
        ]
    );
    rig.send(&sub, &puback(1));
    // A retained publish to an established subscription goes out with RETAIN 0
    // [MQTT-3.3.1-9]; the empty payload deletes the stored message.
    let answer = rig.exchange(
        &mut publisher,
        &publish_retain("s/temp", b"", Q0, 0, false, true),
        2,
    );
    assert!(answer.is_empty());
    assert_eq!(
        rig.recv(&mut sub),
        vec![publish("s/temp", b"", Q0, 0, false)]
    );
    assert_eq!(rig.net.broker(0).retained("s/temp"), None);

    let mut late = rig.connect("late", true, false);
    let answer = rig.exchange(&mut late, &subscribe(1, &[("s/#", Q1)]), 2);
    assert_eq!(
        answer,
        vec![
            suback(1, &[1]),
            publish_retain("s/hum", b"40", Q0, 0, false, true)
        ]
    );
}

#[test]
fn persistent_session_queue_is_delivered_on_reconnect() {
    let mut rig = Rig::new();
    let mut sub = rig.connect("sub", false, false);
    rig.exchange(&mut sub, &subscribe(1, &[("q/#", Q2)]), 2);
    rig.exchange(&mut sub, &disconnect(), 2);
    assert!(!rig.net.broker(0).is_connected("sub"));

    let broker = rig.net.broker_mut(0);
    broker.publish(t(100), "q/1", b"a", Q1, false);
    broker.publish(t(100), "q/0", b"dropped", Q0, false);
    broker.publish(t(100), "q/2", b"b", Q2, false);
    rig.wait(200);
    assert_eq!(rig.net.broker(0).queued("sub"), 2);

    let (mut sub, answer) = rig.connect_raw(0, &connect("sub", false, 0));
    // QoS 0 is not queued for an offline client; QoS 1/2 are, in order.
    assert_eq!(
        answer,
        vec![
            accepted(true),
            publish("q/1", b"a", Q1, 1, false),
            publish("q/2", b"b", Q2, 2, false),
        ]
    );
    assert!(rig.exchange(&mut sub, &puback(1), 2).is_empty());
    assert_eq!(rig.exchange(&mut sub, &pubrec(2), 2), vec![pubrel(2)]);
    assert!(rig.exchange(&mut sub, &pubcomp(2), 2).is_empty());
    assert_eq!(rig.net.broker(0).in_flight("sub"), 0);
}

#[test]
fn unacknowledged_publish_is_resent_with_dup_after_reset() {
    let mut rig = Rig::new();
    let mut sub = rig.connect("sub", false, false);
    rig.exchange(&mut sub, &subscribe(1, &[("r/#", Q2)]), 2);
    rig.net
        .broker_mut(0)
        .publish(rig.now, "r/1", b"one", Q1, false);
    rig.net
        .broker_mut(0)
        .publish(rig.now, "r/2", b"two", Q2, false);
    rig.net
        .broker_mut(0)
        .publish(rig.now, "r/3", b"three", Q2, false);
    rig.wait(2);
    assert_eq!(rig.recv(&mut sub).len(), 3);
    // Only the third QoS 2 message gets as far as PUBREC.
    assert_eq!(rig.exchange(&mut sub, &pubrec(3), 2), vec![pubrel(3)]);

    rig.net.reset(rig.now, 0);
    rig.wait(1);
    rig.recv(&mut sub);
    assert_eq!(sub.closed, Some(true));

    let (_sub, answer) = rig.connect_raw(0, &connect("sub", false, 0));
    // Same ids, DUP set, original order; PUBREL for the one past PUBREC [MQTT-4.4.0-1].
    assert_eq!(
        answer,
        vec![
            accepted(true),
            publish("r/1", b"one", Q1, 1, true),
            publish("r/2", b"two", Q2, 2, true),
            pubrel(3),
        ]
    );
    let dups: Vec<bool> = rig
        .net
        .broker(0)
        .delivered("sub")
        .iter()
        .map(|d| d.dup)
        .collect();
    assert_eq!(dups, [false, false, false, true, true]);
}

#[test]
fn restart_keeps_or_loses_sessions() {
    for keep in [true, false] {
        let mut rig = Rig::new();
        let mut sub = rig.connect("sub", false, false);
        rig.exchange(&mut sub, &subscribe(1, &[("k", Q1)]), 2);
        rig.net
            .broker_mut(0)
            .publish(rig.now, "kept", b"r", Q1, true);
        // Half-way through an incoming QoS 2 handshake: PUBREC received, PUBREL not sent.
        let answer = rig.exchange(&mut sub, &publish("in", b"q2", Q2, 5, false), 2);
        assert_eq!(answer, vec![pubrec(5)]);
        rig.net.restart(rig.now, 0, keep);
        rig.wait(1);
        assert!(rig.recv(&mut sub).is_empty());
        assert_eq!(sub.closed, Some(true), "links are reset");
        assert_eq!(rig.net.broker(0).has_session("sub"), keep);
        assert_eq!(rig.net.broker(0).retained("kept").is_some(), keep);

        let mut sub = rig.connect("sub", false, keep);
        assert_eq!(
            rig.net.broker(0).subscriptions("sub").len(),
            usize::from(keep)
        );
        // The resent PUBLISH is a duplicate only if the incoming QoS 2 table survived.
        let answer = rig.exchange(&mut sub, &publish("in", b"q2", Q2, 5, true), 2);
        assert_eq!(answer, vec![pubrec(5)]);
        let expected = if keep { 1 } else { 2 };
        assert_eq!(rig.net.broker(0).accepted().len(), expected, "keep={keep}");
    }
}

#[test]
fn keepalive_closes_a_silent_client_at_one_and_a_half_times_and_publishes_its_will() {
    let mut rig = Rig::new();
    let mut watcher = rig.connect("watcher", true, false);
    rig.exchange(&mut watcher, &subscribe(1, &[("will/#", Q1)]), 2);

    let will = LastWill {
        topic: "will/dev",
        payload: b"gone",
        qos: Q1,
        retain: false,
        properties: Default::default(),
    };
    let (mut dev, answer) = rig.connect_raw(0, &connect_with_will("dev", true, 10, Some(will)));
    assert_eq!(answer, vec![accepted(false)]);
    // A PINGREQ 5 s later restarts the broker's 15 s count when it arrives.
    rig.wait(5_000);
    let ping_arrives = rig.now.as_millis() + 1;
    assert_eq!(rig.exchange(&mut dev, &pingreq(), 2), vec![pingresp()]);
    let deadline = ping_arrives + 15_000;
    assert_eq!(
        rig.net.broker(0).received("dev"),
        [
            (t(ping_arrives - 5_002), PacketType::Connect),
            (t(ping_arrives), PacketType::PingReq)
        ]
    );

    rig.wait(deadline - 1 - rig.now.as_millis());
    rig.recv(&mut dev);
    assert_eq!(dev.closed, None, "still open 1 ms before 1.5 × keepalive");
    assert!(rig.net.broker(0).is_connected("dev"));
    rig.wait(1);
    assert!(!rig.net.broker(0).is_connected("dev"));
    rig.wait(1);
    rig.recv(&mut dev);
    assert_eq!(dev.closed, Some(false));
    assert_eq!(
        rig.recv(&mut watcher),
        vec![publish("will/dev", b"gone", Q1, 1, false)]
    );
}

#[test]
fn disconnect_discards_the_will_and_takeover_closes_the_first_connection() {
    let mut rig = Rig::new();
    let mut watcher = rig.connect("watcher", true, false);
    rig.exchange(&mut watcher, &subscribe(1, &[("will", Q0)]), 2);
    let will = LastWill {
        topic: "will",
        payload: b"x",
        qos: Q0,
        retain: false,
        properties: Default::default(),
    };
    let (mut first, _) = rig.connect_raw(0, &connect_with_will("dev", true, 0, Some(will)));
    let (mut second, answer) = rig.connect_raw(0, &connect_with_will("dev", true, 0, Some(will)));
    assert_eq!(answer, vec![accepted(false)]);
    rig.recv(&mut first);
    assert_eq!(first.closed, Some(false), "taken over [MQTT-3.1.4-2]");
    rig.exchange(&mut second, &disconnect(), 2);
    assert_eq!(second.closed, Some(false));
    assert!(rig.recv(&mut watcher).is_empty(), "no will in either case");
}

#[test]
fn black_hole_delivers_nothing_and_opens_hang() {
    let mut rig = Rig::new();
    let mut watcher = rig.connect("watcher", true, false);
    rig.exchange(&mut watcher, &subscribe(1, &[("w", Q0)]), 2);
    let will = LastWill {
        topic: "w",
        payload: b"dead",
        qos: Q0,
        retain: false,
        properties: Default::default(),
    };
    let (dev, _) = rig.connect_raw(0, &connect_with_will("dev", true, 60, Some(will)));

    rig.net.set_mode(rig.now, 0, ServerMode::BlackHole);
    let accepted_before = rig.net.broker(0).accepted().len();
    rig.send(&dev, &publish("x", b"lost", Q1, 1, false));
    rig.send(&dev, &pingreq());
    let hung = rig.open(0);
    rig.net.close(rig.now, dev.conn); // the FIN is lost as well

    // Hours of virtual time: no event at all on either link, ever.
    for _ in 0..6 {
        rig.wait(3_600_000);
        assert_eq!(rig.net.poll_client_event(hung.conn), None);
        assert_eq!(rig.net.poll_client_event(watcher.conn), None);
    }
    assert_eq!(rig.net.broker(0).accepted().len(), accepted_before);
    // The broker noticed the silent link only through keepalive (90 s) and published the will,
    // which the black-holed watcher never received.
    assert!(!rig.net.broker(0).is_connected("dev"));
    assert_eq!(rig.net.broker(0).delivered("watcher").len(), 1);
    assert_eq!(rig.net.open_attempts(0), 3);
    assert_eq!(
        rig.net.broker(0).opens(),
        2,
        "the black-holed SYN never arrived"
    );
    assert_eq!(rig.net.next_timeout(), None, "nothing left to happen");

    // Back up: new links work, old ones stay dead.
    rig.net.set_mode(rig.now, 0, ServerMode::Up);
    rig.connect("dev", true, false);
    rig.wait(10);
    assert_eq!(rig.net.poll_client_event(hung.conn), None);
}

#[test]
fn refuse_fails_new_opens_and_keeps_existing_links() {
    let mut rig = Rig::new();
    let mut dev = rig.connect("dev", true, false);
    rig.net.set_mode(rig.now, 0, ServerMode::Refuse);
    let mut refused = rig.open(0);
    rig.wait(2);
    rig.recv(&mut refused);
    assert_eq!(refused.open_failed, Some(OpenError::Refused));
    assert!(!refused.opened);
    assert_eq!(rig.exchange(&mut dev, &pingreq(), 2), vec![pingresp()]);
    assert_eq!(
        rig.net.broker(0).opens(),
        2,
        "a refused open reached the host"
    );
}

#[test]
fn down_resets_links_refuses_opens_and_comes_back_with_sessions() {
    let mut rig = Rig::new();
    let mut watcher = rig.connect("watcher", false, false);
    rig.exchange(&mut watcher, &subscribe(1, &[("w", Q1)]), 2);
    let will = LastWill {
        topic: "w",
        payload: b"dead",
        qos: Q1,
        retain: false,
        properties: Default::default(),
    };
    let (mut dev, _) = rig.connect_raw(0, &connect_with_will("dev", false, 0, Some(will)));
    rig.net.set_mode(rig.now, 0, ServerMode::Down);
    let mut refused = rig.open(0);
    rig.wait(2);
    rig.recv(&mut dev);
    rig.recv(&mut watcher);
    rig.recv(&mut refused);
    assert_eq!(dev.closed, Some(true));
    assert_eq!(watcher.closed, Some(true));
    assert_eq!(refused.open_failed, Some(OpenError::Refused));
    rig.net.set_mode(rig.now, 0, ServerMode::Up);
    rig.connect("dev", false, true);
    assert_eq!(
        rig.net.broker(0).queued("watcher"),
        0,
        "a dead broker publishes no will"
    );
    rig.connect("watcher", false, true);
    rig.wait(10);
    assert!(rig.net.broker(0).delivered("watcher").is_empty());
}

#[test]
fn cut_closes_both_sides_with_fin_and_the_broker_publishes_the_will() {
    let mut rig = Rig::with(SimNet::with_servers(3, 2));
    let (mut watcher, _) = rig.connect_raw(1, &connect("watcher", false, 0));
    rig.exchange(&mut watcher, &subscribe(1, &[("w", Q1)]), 2);
    let (mut w0, _) = rig.connect_raw(0, &connect("watcher", true, 0));
    rig.exchange(&mut w0, &subscribe(1, &[("w", Q1)]), 2);
    let will = LastWill {
        topic: "w",
        payload: b"cut",
        qos: Q1,
        retain: false,
        properties: Default::default(),
    };
    let (mut dev, _) = rig.connect_raw(1, &connect_with_will("dev", true, 0, Some(will)));
    rig.send(&dev, &pingreq()); // in flight: lost by the cut
    rig.net.cut(rig.now, 1);
    assert!(
        !rig.net.broker(1).is_connected("dev"),
        "the broker sees it at once"
    );
    rig.wait(1);
    assert!(rig.recv(&mut dev).is_empty());
    assert_eq!(dev.closed, Some(false));
    assert!(rig.recv(&mut watcher).is_empty());
    assert_eq!(watcher.closed, Some(false));
    // The will went to the watcher's persistent session, cut as well: queued for it.
    assert_eq!(rig.net.broker(1).queued("watcher"), 1);
    let (_watcher, answer) = rig.connect_raw(1, &connect("watcher", false, 0));
    assert_eq!(
        answer,
        vec![accepted(true), publish("w", b"cut", Q1, 1, false)]
    );
    // Server 0 is independent: its link is untouched and never sees server 1's will.
    assert_eq!(rig.exchange(&mut w0, &pingreq(), 2), vec![pingresp()]);
    assert!(rig.net.broker(0).delivered("watcher").is_empty());
}

#[test]
fn reset_before_opened_arrives_fails_the_open() {
    let mut rig = Rig::new();
    let mut peer = rig.open(0);
    rig.wait(1); // SYN arrived, SYN-ACK on its way
    rig.net.reset(rig.now, 0);
    rig.wait(5);
    rig.recv(&mut peer);
    assert!(!peer.opened);
    assert_eq!(peer.open_failed, Some(OpenError::Reset));
}

#[test]
fn withheld_acks_are_never_sent_but_packets_are_processed() {
    let mut rig = Rig::new();
    let mut c = rig.connect("c", true, false);
    rig.net.withhold_acks(0, true);
    rig.send(&c, &publish("a", b"1", Q1, 1, false));
    rig.send(&c, &publish("a", b"2", Q2, 2, false));
    rig.send(&c, &subscribe(3, &[("a", Q0)]));
    rig.send(&c, &pingreq());
    rig.wait(5);
    assert_eq!(rig.recv(&mut c), vec![pingresp()], "PINGRESP is not an ack");
    assert_eq!(rig.net.broker(0).accepted().len(), 2);
    assert_eq!(rig.net.broker(0).subscriptions("c").len(), 1);
    assert!(rig.exchange(&mut c, &pubrel(2), 2).is_empty());

    rig.net.withhold_acks(0, false);
    rig.wait(100);
    assert!(rig.recv(&mut c).is_empty(), "nothing sent retroactively");
    let answer = rig.exchange(&mut c, &publish("a", b"3", Q1, 4, false), 2);
    assert_eq!(answer, vec![puback(4), publish("a", b"3", Q0, 0, false)]);
}

#[test]
fn split_writes_are_reassembled_on_both_sides() {
    let mut rig = Rig::with(SimNet::new(42));
    rig.net.set_split_writes(true);
    let mut sub = rig.connect("sub", true, false);
    rig.exchange(&mut sub, &subscribe(1, &[("s/#", Q1)]), 2);
    let mut publisher = rig.connect("pub", true, false);
    let payload = vec![0xA5; 300];
    let answer = rig.exchange(&mut publisher, &publish("s/big", &payload, Q1, 1, false), 2);
    assert_eq!(answer, vec![puback(1)]);
    assert_eq!(
        rig.recv(&mut sub),
        vec![publish("s/big", &payload, Q1, 1, false)]
    );
    assert!(
        sub.pieces > 3 * 2,
        "the client side got pieces: {}",
        sub.pieces
    );
    assert_eq!(rig.net.broker(0).accepted()[0].payload, payload);
    assert!(rig.net.broker(0).protocol_violations().is_empty());
}

#[test]
fn latency_is_honoured_in_both_directions() {
    let mut rig = Rig::new();
    rig.net.set_latency(Duration::from_millis(50));
    let mut c = rig.open(0);
    // An open takes a round trip.
    rig.wait(99);
    rig.recv(&mut c);
    assert!(!c.opened);
    assert_eq!(rig.net.next_timeout(), Some(t(100)));
    rig.wait(1);
    rig.recv(&mut c);
    assert!(c.opened);

    rig.send(&c, &connect("c", true, 0));
    rig.wait(99);
    assert!(rig.recv(&mut c).is_empty());
    assert_eq!(rig.net.broker(0).connects()[0].at, t(150));
    rig.wait(1);
    assert_eq!(rig.recv(&mut c), vec![accepted(false)]);
}

#[test]
fn protocol_violations_are_recorded_and_close_the_link() {
    let cases: [(&str, Vec<Vec<u8>>); 6] = [
        ("not CONNECT", vec![pingreq()]),
        (
            "second CONNECT",
            vec![connect("v", true, 0), connect("v", true, 0)],
        ),
        ("malformed", vec![connect("v", true, 0), vec![0xF0, 0x00]]),
        (
            "ConnAck is sent only by servers",
            vec![connect("v", true, 0), accepted(false)],
        ),
        (
            "reuses packet id",
            vec![
                connect("v", true, 0),
                publish("a", b"", Q2, 5, false),
                publish("a", b"", Q2, 5, false),
            ],
        ),
        (
            "exceeds the configured maximum",
            vec![connect("v", true, 0), publish("a", &[0; 100], Q0, 0, false)],
        ),
    ];
    for (what, packets) in cases {
        let mut rig = Rig::new();
        rig.net.broker_mut(0).set_max_packet_size(64);
        let mut c = rig.open(0);
        rig.wait(2);
        for p in &packets {
            rig.send(&c, p);
        }
        rig.wait(4);
        rig.recv(&mut c);
        assert_eq!(c.closed, Some(false), "{what}");
        let violations = rig.net.broker(0).protocol_violations();
        assert_eq!(violations.len(), 1, "{what}: {violations:?}");
        assert!(violations[0].contains(what), "{what}: {violations:?}");
    }
}

#[test]
fn refused_connect_and_refused_subscription() {
    let mut rig = Rig::new();
    rig.net
        .broker_mut(0)
        .set_refuse_connect(Some(ConnectReturnCode::BadUserNameOrPassword));
    let (mut c, answer) = rig.connect_raw(0, &connect("c", false, 0));
    assert_eq!(
        answer,
        vec![connack(false, ConnectReturnCode::BadUserNameOrPassword)]
    );
    rig.recv(&mut c);
    assert_eq!(c.closed, Some(false));
    assert!(!rig.net.broker(0).has_session("c"));

    rig.net.broker_mut(0).set_refuse_connect(None);
    rig.net.broker_mut(0).refuse_subscription("secret/#", true);
    let mut c = rig.connect("c", true, false);
    let answer = rig.exchange(&mut c, &subscribe(1, &[("ok", Q1), ("secret/#", Q1)]), 2);
    assert_eq!(answer, vec![suback(1, &[1, 0x80])]);
    assert_eq!(
        rig.net.broker(0).subscriptions("c"),
        vec![("ok".to_string(), Q1)]
    );
}

#[test]
fn in_flight_window_of_twenty_queues_the_rest() {
    let mut rig = Rig::new();
    let mut sub = rig.connect("sub", true, false);
    rig.exchange(&mut sub, &subscribe(1, &[("n", Q1)]), 2);
    for i in 0..25u8 {
        rig.net.broker_mut(0).publish(rig.now, "n", &[i], Q1, false);
    }
    rig.wait(2);
    let first = rig.recv(&mut sub);
    assert_eq!(first.len(), 20);
    assert_eq!(rig.net.broker(0).queued("sub"), 5);
    assert_eq!(
        rig.exchange(&mut sub, &puback(3), 2),
        vec![publish("n", &[20], Q1, 21, false)]
    );
}

#[test]
fn scheduled_faults_run_at_their_virtual_time() {
    let mut rig = Rig::new();
    let mut c = rig.connect("c", true, false);
    let at = rig.now.saturating_add(Duration::from_secs(60));
    rig.net.schedule(at, |net, now| net.reset(now, 0));
    assert_eq!(rig.net.next_timeout(), Some(at));
    rig.wait(60_000);
    rig.recv(&mut c);
    assert_eq!(c.closed, None, "the RST needs the latency to arrive");
    rig.wait(1);
    rig.recv(&mut c);
    assert_eq!(c.closed, Some(true));
}

/// The whole trace (event kinds and times) of a scripted run with split writes.
fn trace(seed: u64) -> Vec<(u64, ClientEvent)> {
    let mut net = SimNet::new(seed);
    net.set_split_writes(true);
    let conn = net.open(t(0), 0);
    net.send(t(0), conn, &connect("d", true, 5));
    net.send(t(0), conn, &subscribe(1, &[("d/#", Q2)]));
    net.schedule(t(3), |net, now| {
        net.broker_mut(0).publish(now, "d/x", &[7; 40], Q2, false);
    });
    let mut out = Vec::new();
    for ms in 0..20_000 {
        net.advance(t(ms));
        while let Some(e) = net.poll_client_event(conn) {
            out.push((ms, e));
        }
    }
    out
}

#[test]
fn same_seed_same_trace() {
    let a = trace(5);
    assert_eq!(a, trace(5));
    assert_ne!(a, trace(6), "the seed drives the split sizes");
    assert!(a
        .iter()
        .any(|(_, e)| matches!(e, ClientEvent::Data(d) if d.len() < 5)));
    // Keepalive 5 s, silent after CONNECT and SUBSCRIBE (arrived at 1 ms): the broker closes at
    // 1 + 7500 ms, the FIN arrives 1 ms later.
    assert_eq!(a.last().unwrap().1, ClientEvent::Closed { reset: false });
    assert_eq!(a.last().unwrap().0, 1 + 7_500 + 1);
}

#[test]
fn six_hours_of_pings_and_outages_in_ten_thousand_steps() {
    let wall = std::time::Instant::now();
    let mut rig = Rig::new();
    const HOUR: u64 = 3_600_000;
    // Down for an hour from 2 h, black hole for 30 min from 4 h.
    rig.net.schedule(t(2 * HOUR), |net, now| {
        net.set_mode(now, 0, ServerMode::Down);
    });
    rig.net.schedule(t(3 * HOUR), |net, now| {
        net.set_mode(now, 0, ServerMode::Up);
    });
    rig.net.schedule(t(4 * HOUR), |net, now| {
        net.set_mode(now, 0, ServerMode::BlackHole);
    });
    rig.net.schedule(t(4 * HOUR + HOUR / 2), |net, now| {
        net.set_mode(now, 0, ServerMode::Up);
    });

    // A crude client: keepalive 30 s, PINGREQ every 15 s, retries 10 s after losing the link,
    // gives up on a link after 45 s without an answer (how it sees the black hole).
    let step = 6 * HOUR / 10_000; // 2.16 s
    let mut peer: Option<(Peer, u64)> = None; // (link, time of the last answer)
    let mut retry_at = 0u64;
    let mut last_ping = 0u64;
    let (mut connacks, mut pongs) = (0, 0);
    let (mut resets, mut refusals, mut give_ups) = (0u64, 0u64, 0u64);
    let mut answered_in_hour = [false; 6];
    for _ in 0..10_000 {
        rig.wait(step);
        let now = rig.now.as_millis();
        if let Some((p, last_answer)) = peer.as_mut() {
            for packet in rig.recv(p) {
                *last_answer = now;
                answered_in_hour[((now - 1) / HOUR) as usize] = true;
                if packet == accepted(false) {
                    connacks += 1;
                } else if packet == pingresp() {
                    pongs += 1;
                }
            }
            if p.closed == Some(true) {
                resets += 1;
            } else if p.open_failed == Some(OpenError::Refused) {
                refusals += 1;
            } else if now - *last_answer > 45_000 {
                rig.net.close(rig.now, p.conn);
                give_ups += 1;
            } else {
                assert_eq!((p.closed, p.open_failed), (None, None));
                if p.opened && now - last_ping >= 15_000 {
                    rig.send(p, &pingreq());
                    last_ping = now;
                }
                continue;
            }
            peer = None;
            retry_at = now + 10_000;
        } else if now >= retry_at {
            let p = rig.open(0);
            // Sent right away: it follows the SYN (and is lost with it if the open fails).
            rig.send(&p, &connect("dev", true, 30));
            peer = Some((p, now));
        }
    }
    println!(
        "six virtual hours in {:?} of wall time: {resets} reset, {refusals} refused, \
         {give_ups} given up, {pongs} PINGRESP",
        wall.elapsed()
    );

    assert_eq!(rig.now, t(6 * HOUR));
    // One reset when the broker went down; a refusal every ~12 s for an hour; the black-holed
    // link and every black-holed open given up after 45 s; connected three times.
    assert_eq!(resets, 1);
    assert!((250..=330).contains(&refusals), "{refusals}");
    assert!((25..=40).contains(&give_ups), "{give_ups}");
    assert_eq!(connacks, 3);
    let broker = rig.net.broker(0);
    assert_eq!(broker.connects().len(), 3);
    assert_eq!(broker.opens(), 3 + refusals);
    assert_eq!(rig.net.open_attempts(0), broker.opens() + give_ups - 1);
    // Answered for 4.5 h with a ping every 7 steps of 2.16 s: 16 200 s / 15.12 s ≈ 1071.
    assert!((1_050..=1_075).contains(&pongs), "{pongs}");
    assert!(broker.is_connected("dev"));
    assert!(broker.protocol_violations().is_empty());
    assert_eq!(answered_in_hour, [true, true, false, true, true, true]);
}

/// A minimal driver joining umqtt-core's client [`Session`] to the simulated network, the way
/// a robust engine's driver will: open, feed link events, write what the session asks, run its
/// timers, reopen a second after a loss, give up on an open after 5 s.
struct SessionDriver {
    session: Session,
    conn: Option<ConnId>,
    open_deadline: Option<Instant>,
    retry_at: Option<Instant>,
    log: Vec<(u64, String)>,
}

impl SessionDriver {
    fn new(net: &mut SimNet, now: Instant, config: SessionConfig) -> SessionDriver {
        let mut driver = SessionDriver {
            session: Session::new(config),
            conn: None,
            open_deadline: None,
            retry_at: Some(now),
            log: Vec::new(),
        };
        driver.step(net, now);
        driver
    }

    fn lost(&mut self, now: Instant, what: String) {
        self.log.push((now.as_millis(), what));
        self.session.handle_connection_lost();
        self.conn = None;
        self.open_deadline = None;
        self.retry_at = Some(now.saturating_add(Duration::from_secs(1)));
    }

    /// Drains the session's events and writes what it asks.
    fn drain(&mut self, net: &mut SimNet, now: Instant) {
        let mut closed = None;
        while let Some(event) = self.session.poll_event() {
            let line = match event {
                SessionEvent::Connected { session_present } => {
                    format!("connected session_present={session_present}")
                }
                SessionEvent::Message(p) => format!(
                    "message {} {} dup={}",
                    p.topic,
                    String::from_utf8_lossy(p.payload),
                    p.dup
                ),
                SessionEvent::Published(id) => format!("published {id}"),
                SessionEvent::PublishReceived(_) => continue,
                SessionEvent::Subscribed(_) => "subscribed".to_string(),
                SessionEvent::Closed(reason) => {
                    closed = Some(format!("closed: {reason}"));
                    continue;
                }
                other => format!("{other:?}"),
            };
            self.log.push((now.as_millis(), line));
        }
        if let (Some(conn), Some(bytes)) = (self.conn, self.session.poll_transmit(now)) {
            net.send(now, conn, bytes);
        }
        if let (Some(conn), Some(what)) = (self.conn, closed) {
            net.close(now, conn);
            self.lost(now, what);
        }
    }

    fn step(&mut self, net: &mut SimNet, now: Instant) {
        net.advance(now);
        if let Some(conn) = self.conn {
            while let Some(event) = net.poll_client_event(conn) {
                match event {
                    ClientEvent::Opened => {
                        self.open_deadline = None;
                        self.session.connect(now, false).unwrap();
                    }
                    ClientEvent::Data(bytes) => self.session.handle_read(now, &bytes),
                    other => {
                        self.lost(now, format!("link: {other:?}"));
                        break;
                    }
                }
                self.drain(net, now);
                if self.conn.is_none() {
                    break;
                }
            }
        }
        if self.open_deadline.is_some_and(|d| d <= now) {
            net.close(now, self.conn.unwrap());
            self.lost(now, "open timed out".to_string());
        }
        if self.retry_at.is_some_and(|r| r <= now) {
            self.retry_at = None;
            self.conn = Some(net.open(now, 0));
            self.open_deadline = Some(now.saturating_add(Duration::from_secs(5)));
        }
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        self.drain(net, now);
    }

    /// Runs every instant anything is due, up to `end`.
    fn run_until(&mut self, net: &mut SimNet, end: Instant) {
        for _ in 0..100_000 {
            let next = [
                net.next_timeout(),
                self.session.poll_timeout(),
                self.open_deadline,
                self.retry_at,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end)
            .clamp(net.now(), end);
            self.step(net, next);
            if next == end {
                return;
            }
        }
        panic!("no progress towards {end:?}");
    }

    fn lines(&self, from_ms: u64) -> Vec<&str> {
        self.log
            .iter()
            .filter(|(at, _)| *at >= from_ms)
            .map(|(_, line)| line.as_str())
            .collect()
    }
}

#[test]
fn core_session_survives_a_black_hole_against_the_sim_broker() {
    let mut net = SimNet::new(9);
    net.set_split_writes(true);
    let config = SessionConfig {
        client_id: "e2e".to_string(),
        keep_alive: 10,
        ..SessionConfig::default()
    };
    let mut d = SessionDriver::new(&mut net, t(0), config);
    d.run_until(&mut net, t(1_000));
    d.session.subscribe(&[("e2e/#", Q2)]).unwrap();
    d.drain(&mut net, t(1_000));
    d.run_until(&mut net, t(2_000));
    let a = d
        .session
        .publish("e2e/a", b"1", Q1, false)
        .unwrap()
        .unwrap();
    let b = d
        .session
        .publish("e2e/b", b"2", Q2, false)
        .unwrap()
        .unwrap();
    d.drain(&mut net, t(2_000));
    d.run_until(&mut net, t(60_000));
    let mut first = d.lines(0);
    first.sort_unstable();
    let mut expected = vec![
        "connected session_present=false".to_string(),
        "subscribed".to_string(),
        format!("published {a}"),
        format!("published {b}"),
        "message e2e/a 1 dup=false".to_string(),
        "message e2e/b 2 dup=false".to_string(),
        "PingResponse".to_string(),
        "PingResponse".to_string(),
        "PingResponse".to_string(),
        "PingResponse".to_string(),
        "PingResponse".to_string(),
    ];
    expected.sort_unstable();
    assert_eq!(first, expected, "{:?}", d.log);

    // The link goes half-open; a message published now is lost on it.
    net.set_mode(t(60_000), 0, ServerMode::BlackHole);
    let c = d
        .session
        .publish("e2e/c", b"3", Q1, false)
        .unwrap()
        .unwrap();
    d.drain(&mut net, t(60_000));
    d.run_until(&mut net, t(120_000));
    let (detected_at, _) = d
        .log
        .iter()
        .find(|(_, line)| line.contains("no PINGRESP"))
        .expect("the session noticed the dead link");
    // Last PINGREQ at 52 s: the next at 62 s, its PINGRESP awaited 5 s (half the keepalive).
    assert_eq!(*detected_at, 67_006, "{:?}", d.log);
    assert!(
        !net.broker(0).is_connected("e2e"),
        "the broker gave up after 15 s"
    );
    assert!(d.lines(60_000).contains(&"open timed out"));
    assert_eq!(net.broker(0).accepted().len(), 2);

    net.set_mode(t(120_000), 0, ServerMode::Up);
    d.run_until(&mut net, t(130_000));
    let after: Vec<&str> = d
        .lines(120_000)
        .into_iter()
        .filter(|l| !l.starts_with("link") && !l.starts_with("open"))
        .collect();
    let published = format!("published {c}");
    assert_eq!(
        after,
        [
            "connected session_present=true",
            published.as_str(),
            "message e2e/c 3 dup=false"
        ],
        "{:?}",
        d.log
    );
    let accepted = net.broker(0).accepted();
    assert_eq!(accepted.len(), 3);
    assert_eq!(
        (accepted[2].topic.as_str(), accepted[2].dup),
        ("e2e/c", true)
    );
    assert!(net.broker(0).protocol_violations().is_empty());
}

#[test]
fn failover_to_an_independent_second_server() {
    let mut rig = Rig::with(SimNet::with_servers(11, 2));
    rig.net.set_mode(rig.now, 0, ServerMode::Down);
    let mut first = rig.open(0);
    rig.wait(2);
    rig.recv(&mut first);
    assert_eq!(first.open_failed, Some(OpenError::Refused));

    let (mut c, answer) = rig.connect_raw(1, &connect("dev", false, 0));
    assert_eq!(answer, vec![accepted(false)]);
    rig.exchange(&mut c, &subscribe(1, &[("d", Q1)]), 2);
    assert!(rig.net.broker(1).has_session("dev"));
    assert!(
        !rig.net.broker(0).has_session("dev"),
        "brokers share nothing"
    );

    // Server 0 comes back; server 1 goes away: the session does not follow.
    rig.net.set_mode(rig.now, 0, ServerMode::Up);
    rig.net.set_mode(rig.now, 1, ServerMode::Refuse);
    let (_c0, answer) = rig.connect_raw(0, &connect("dev", false, 0));
    assert_eq!(answer, vec![accepted(false)]);
    assert_eq!(
        (rig.net.open_attempts(0), rig.net.broker(0).opens()),
        (2, 2)
    );
    assert_eq!(rig.net.broker(1).opens(), 1);
    assert!(rig.net.broker(0).subscriptions("dev").is_empty());
    assert_eq!(rig.net.broker(1).subscriptions("dev").len(), 1);
    assert_eq!(rig.net.servers(), 2);
    assert_eq!(rig.net.mode(1), ServerMode::Refuse);
}
