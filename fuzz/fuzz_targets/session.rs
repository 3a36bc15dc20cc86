//! Drives a client `Session` with an arbitrary sequence of commands (`cancel_publish`
//! included), timer ticks and broker input (raw bytes or well-formed broker packets, whole or
//! split), draining events and transmissions after every step as a driver would.
//!
//! Invariants checked:
//! - nothing panics and `poll_event` terminates;
//! - every transmission is a sequence of whole, valid packets a client may send;
//! - every QoS 1/2 publish is reported exactly once, by `Published` or `PublishDiscarded`, or
//!   withdrawn by a successful `cancel_publish` (refused for a QoS 2 message once sent, as
//!   `can_cancel` says beforehand), and `outgoing()`
//!   lists exactly the publishes not yet reported;
//! - `in_flight() <= min(outgoing_len(), max_in_flight)` and `outgoing_len() <= max_outgoing`;
//! - after `Closed` the session is disconnected.
//!
//! Half the inputs run the session as MQTT 5: the broker's CONNACK then carries limits
//! (Receive Maximum, Maximum Packet Size, Maximum QoS, Retain Available, Server Keep Alive,
//! Topic Alias Maximum), acknowledgements carry any reason code their packet allows (a
//! refusal reports `PublishRefused`, which counts as the report), the broker may send
//! DISCONNECT or AUTH, and every transmission must decode as MQTT 5 and respect the Receive
//! Maximum (`in_flight() <= receive_maximum`) and the Maximum Packet Size — stored messages
//! a smaller new limit no longer allows included: they are reported by `PublishTooLarge`
//! (which counts as the report) instead of sent. The session then also announces a Topic
//! Alias Maximum and a Receive Maximum of its own: broker PUBLISH packets carry topic aliases
//! (set up, reused alone with an empty topic, or out of range) and every `Message` event has
//! its full topic name.
//!
//! Every input runs twice: with the session on the heap, and on `Fixed<10, 96>` storage (lists
//! of 10, 96-byte buffers — smaller than some packets here), fed half the time as a driver
//! must (at most `input_room` per read, servicing between reads) and half the time all at
//! once; the same invariants hold, with the storage's limits as typed refusals and closes.
#![no_main]

use std::collections::BTreeSet;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use umqtt_core::packet::{
    decode_with, Ack, Auth, ConnAck, ConnectReturnCode, Decoded, Disconnect, Packet, PacketId,
    PacketType, Properties, Property, PropertyList, ProtocolVersion, Publish, QoS, ReasonCode,
    SubAck,
};
use umqtt_core::session::{Event, OutgoingStage, Session, SessionConfig};
use umqtt_core::storage::{Fixed, Heap, Storage};
use umqtt_core::Instant;

const TOPICS: &[&str] = &["a", "a/b", "$SYS/x", "t/é"];
const FILTERS: &[&str] = &["a", "a/+", "#", "+/b/#"];

fn qos(u: &mut Unstructured<'_>) -> Result<QoS> {
    Ok(*u.choose(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])?)
}

/// A packet id: usually one the session is using, sometimes any.
fn packet_id(u: &mut Unstructured<'_>, known: &[u16]) -> Result<PacketId> {
    let raw = if !known.is_empty() && u.ratio(3, 4)? {
        *u.choose(known)?
    } else {
        u.int_in_range(1..=8)?
    };
    Ok(PacketId::new(raw).unwrap())
}

struct Harness<S: Storage> {
    session: Session<S>,
    now: u64,
    /// Ids returned by `publish` and not yet reported by an event.
    pending: BTreeSet<u16>,
    /// Ids of recent SUBSCRIBE/UNSUBSCRIBE requests.
    requests: Vec<u16>,
    max_in_flight: usize,
    max_outgoing: usize,
    version: ProtocolVersion,
}

/// A reason code the packet may carry, from the input.
fn reason(u: &mut Unstructured<'_>, packet_type: PacketType) -> Result<ReasonCode> {
    let codes: Vec<ReasonCode> = (0..=255)
        .filter_map(ReasonCode::from_u8)
        .filter(|r| r.is_allowed_in(packet_type))
        .collect();
    Ok(if u.ratio(1, 2)? {
        ReasonCode::Success
    } else {
        *u.choose(&codes)?
    })
}

impl<S: Storage> Harness<S> {
    fn now(&self) -> Instant {
        Instant::from_millis(self.now)
    }

    /// What a driver does after every input: drain events, then write what is to be written;
    /// again while input waits (fixed storage holds input back until its answers are
    /// written).
    fn drain(&mut self) {
        for pass in 0.. {
            assert!(pass < 1_000, "held input is never decoded");
            if !self.drain_once() || !self.session.has_unprocessed_input() {
                break;
            }
        }
        self.check_counts();
    }

    /// Feeds broker bytes. On fixed storage, half the time as a driver must (at most
    /// `input_room` per read, servicing between reads), else all at once (more than the room
    /// closes the connection with `StorageFull`); on the heap, all at once.
    fn feed(&mut self, u: &mut Unstructured<'_>, now: Instant, bytes: &[u8]) -> Result<()> {
        // (On the heap nothing is drawn, so the heap run reads an input as it always did.)
        if S::BYTES == usize::MAX || u.arbitrary()? {
            self.session.handle_read(now, bytes);
            return Ok(());
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.session.input_room().min(rest.len());
            if n == 0 {
                self.drain();
                if self.session.input_room() == 0 {
                    break;
                }
                continue;
            }
            self.session.handle_read(now, &rest[..n]);
            rest = &rest[n..];
            if !rest.is_empty() {
                self.drain();
            }
        }
        Ok(())
    }

    /// One pass of [`Harness::drain`]; whether anything was written.
    fn drain_once(&mut self) -> bool {
        let mut events = 0;
        while let Some(event) = self.session.poll_event() {
            events += 1;
            assert!(events < 100_000, "poll_event does not terminate");
            let closed = match event {
                Event::Published(id)
                | Event::PublishDiscarded(id)
                | Event::PublishRefused { packet_id: id, .. }
                | Event::PublishTooLarge { packet_id: id, .. } => {
                    assert!(
                        self.pending.remove(&id.get()),
                        "{event:?} for an id not pending"
                    );
                    false
                }
                Event::Message(publish) => {
                    assert_eq!(publish.qos == QoS::AtMostOnce, publish.packet_id.is_none());
                    // An alias-only PUBLISH reaches the application with the full topic.
                    assert!(!publish.topic.is_empty(), "message without a topic");
                    false
                }
                Event::Closed(_) => true,
                _ => false,
            };
            if closed {
                assert!(!self.session.is_connecting_or_connected());
            }
        }
        let now = self.now();
        let mut transmitted = Vec::new();
        while let Some(bytes) = self.session.poll_transmit(now) {
            assert!(!bytes.is_empty());
            transmitted.extend_from_slice(bytes);
        }
        if !transmitted.is_empty() {
            let max = self.session.broker_limits().maximum_packet_size;
            check_transmission(&transmitted, self.version, max);
        }
        assert!(self.session.poll_transmit(now).is_none());
        !transmitted.is_empty()
    }

    fn check_counts(&self) {
        let outgoing: BTreeSet<u16> = self.session.outgoing().map(|(id, _, _)| id.get()).collect();
        assert_eq!(outgoing.len(), self.session.outgoing_len());
        assert_eq!(outgoing, self.pending);
        assert!(self.session.outgoing_len() <= self.max_outgoing);
        assert!(self.session.in_flight() <= self.session.outgoing_len());
        assert!(self.session.in_flight() <= self.max_in_flight);
        assert!(
            self.session.in_flight()
                <= usize::from(self.session.broker_limits().receive_maximum.max(1))
        );
    }

    fn known_ids(&self) -> Vec<u16> {
        self.pending
            .iter()
            .copied()
            .chain(self.requests.iter().copied())
            .collect()
    }

    /// Encodes a broker packet from the input.
    fn broker_packet(&self, u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let known = self.known_ids();
        let len = u.int_in_range(0..=40)?;
        let payload = u.bytes(len)?.to_vec();
        let codes: &[u8] = if self.version == ProtocolVersion::V5 {
            &[0, 1, 2, 0x80, 0x87, 0x8F, 0x97, 0xA2]
        } else {
            &[0, 1, 2, 0x80]
        };
        let suback_codes: Vec<u8> = (0..u.int_in_range(1..=4)?)
            .map(|_| u.choose(codes).copied())
            .collect::<Result<_>>()?;
        let v5 = self.version == ProtocolVersion::V5;
        // MQTT 5 CONNACK limits, and a reason code and properties for the other packets.
        let mut connack_properties = Vec::new();
        if v5 {
            if u.arbitrary()? {
                connack_properties.push(Property::ReceiveMaximum(u.int_in_range(1..=3)?));
            }
            if u.arbitrary()? {
                connack_properties.push(Property::MaximumPacketSize(u.int_in_range(8..=64)?));
            }
            if u.arbitrary()? {
                connack_properties.push(Property::MaximumQoS(
                    *u.choose(&[QoS::AtMostOnce, QoS::AtLeastOnce])?,
                ));
            }
            if u.arbitrary()? {
                connack_properties.push(Property::RetainAvailable(u.arbitrary()?));
            }
            if u.arbitrary()? {
                connack_properties.push(Property::ServerKeepAlive(u.int_in_range(0..=30)?));
            }
            if u.arbitrary()? {
                connack_properties.push(Property::TopicAliasMaximum(u.int_in_range(0..=2)?));
            }
            if u.arbitrary()? {
                connack_properties.push(Property::AssignedClientIdentifier("assigned"));
            }
        }
        let connack_list = PropertyList(&connack_properties);
        let reason_string = [Property::ReasonString("why")];
        let reason_list = PropertyList(&reason_string);
        let ack_properties = if v5 && u.ratio(1, 4)? {
            Properties::List(&reason_list)
        } else {
            Properties::EMPTY
        };
        // MQTT 5: a Topic Alias on a broker PUBLISH (sometimes with an empty topic: the alias
        // alone), and UNSUBACK reason codes.
        let alias = [Property::TopicAlias(u.int_in_range(1..=3)?)];
        let alias_list = PropertyList(&alias);
        let aliased = v5 && u.ratio(1, 2)?;
        let alias_only = aliased && u.ratio(1, 2)?;
        let unsuback_codes: Vec<u8> = (0..u.int_in_range(1..=2)?)
            .map(|_| u.choose(&[0x00, 0x11, 0x80, 0x87, 0x8F, 0x91]).copied())
            .collect::<Result<_>>()?;
        let packet = match u.int_in_range(0..=10)? {
            0 if v5 => {
                let reason_code = if u.ratio(3, 4)? {
                    ReasonCode::Success
                } else {
                    reason(u, PacketType::ConnAck)?
                };
                Packet::ConnAck(ConnAck {
                    session_present: u.arbitrary::<bool>()? && reason_code == ReasonCode::Success,
                    code: ConnectReturnCode::from_reason_code(reason_code),
                    reason_code,
                    properties: Properties::List(&connack_list),
                })
            }
            0 => Packet::ConnAck(ConnAck::new(
                u.arbitrary()?,
                ConnectReturnCode::from_u8(if u.ratio(3, 4)? {
                    0
                } else {
                    u.int_in_range(1..=5)?
                })
                .unwrap(),
            )),
            1 => {
                let qos = qos(u)?;
                let id = packet_id(u, &known)?;
                Packet::Publish(Publish {
                    dup: qos != QoS::AtMostOnce && u.arbitrary()?,
                    qos,
                    retain: u.arbitrary()?,
                    topic: if alias_only { "" } else { u.choose(TOPICS)? },
                    packet_id: (qos != QoS::AtMostOnce).then_some(id),
                    payload: &[],
                    properties: if aliased {
                        Properties::List(&alias_list)
                    } else {
                        Properties::EMPTY
                    },
                })
            }
            2..=5 if v5 => {
                let packet_type = match u.int_in_range(0..=3)? {
                    0 => PacketType::PubAck,
                    1 => PacketType::PubRec,
                    2 => PacketType::PubRel,
                    _ => PacketType::PubComp,
                };
                let ack = Ack::with_reason(
                    packet_id(u, &known)?,
                    reason(u, packet_type)?,
                    ack_properties,
                );
                match packet_type {
                    PacketType::PubAck => Packet::PubAck(ack),
                    PacketType::PubRec => Packet::PubRec(ack),
                    PacketType::PubRel => Packet::PubRel(ack),
                    _ => Packet::PubComp(ack),
                }
            }
            2 => Packet::PubAck(Ack::new(packet_id(u, &known)?)),
            3 => Packet::PubRec(Ack::new(packet_id(u, &known)?)),
            4 => Packet::PubRel(Ack::new(packet_id(u, &known)?)),
            5 => Packet::PubComp(Ack::new(packet_id(u, &known)?)),
            6 => Packet::SubAck(SubAck {
                packet_id: packet_id(u, &known)?,
                return_codes: &[],
                properties: Default::default(),
            }),
            7 => Packet::UnsubAck(umqtt_core::packet::UnsubAck::new(packet_id(u, &known)?)),
            8 if v5 => Packet::Disconnect(Disconnect::new(
                reason(u, PacketType::Disconnect)?,
                Properties::EMPTY,
            )),
            9 if v5 && u.ratio(1, 4)? => {
                Packet::Auth(Auth::new(reason(u, PacketType::Auth)?, Properties::EMPTY))
            }
            _ => Packet::PingResp,
        };
        // Fill in the borrowed parts.
        let packet = match packet {
            Packet::Publish(p) => Packet::Publish(Publish {
                payload: &payload,
                ..p
            }),
            Packet::SubAck(s) => Packet::SubAck(SubAck {
                return_codes: &suback_codes,
                ..s
            }),
            // In 3.1.1 an UNSUBACK has no reason codes; in MQTT 5 one per filter.
            Packet::UnsubAck(a) if v5 => {
                Packet::UnsubAck(umqtt_core::packet::UnsubAck::with_reasons(
                    a.packet_id,
                    &unsuback_codes,
                    Properties::EMPTY,
                ))
            }
            other => other,
        };
        let len = packet
            .encoded_len_with(self.version)
            .expect("broker packets are valid");
        let mut buf = vec![0u8; len];
        packet.encode_with(&mut buf, self.version).unwrap();
        Ok(buf)
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let now = self.now();
        match u.int_in_range(0..=12)? {
            0 => {
                let _ = self.session.connect(now, u.arbitrary()?);
            }
            1 => {
                let topic = if u.ratio(1, 20)? {
                    "bad/+"
                } else {
                    *u.choose(TOPICS)?
                };
                let len = u.int_in_range(0..=16)?;
                let payload = u.bytes(len)?;
                let qos = qos(u)?;
                if let Ok(Some(id)) = self.session.publish(topic, payload, qos, u.arbitrary()?) {
                    assert_ne!(qos, QoS::AtMostOnce);
                    assert!(self.pending.insert(id.get()), "packet id {id} reused");
                }
            }
            2 => {
                let n = u.int_in_range(0..=3)?;
                let filters: Vec<(&str, QoS)> = (0..n)
                    .map(|_| Ok((*u.choose(FILTERS)?, qos(u)?)))
                    .collect::<Result<_>>()?;
                if let Ok(id) = self.session.subscribe(&filters) {
                    self.requests.push(id.get());
                }
            }
            3 => {
                let n = u.int_in_range(0..=3)?;
                let filters: Vec<&str> = (0..n)
                    .map(|_| u.choose(FILTERS).copied())
                    .collect::<Result<_>>()?;
                if let Ok(id) = self.session.unsubscribe(&filters) {
                    self.requests.push(id.get());
                }
            }
            4 => {
                let _ = self.session.ping(now);
            }
            5 => {
                let _ = self.session.disconnect();
            }
            6 => self.session.handle_connection_lost(),
            7 => {
                let len = u.int_in_range(0..=32)?;
                let bytes = u.bytes(len)?;
                self.feed(u, now, bytes)?;
            }
            8 | 9 => {
                let bytes = self.broker_packet(u)?;
                if u.ratio(1, 4)? && bytes.len() > 1 {
                    let split = u.int_in_range(1..=bytes.len() - 1)?;
                    self.feed(u, now, &bytes[..split])?;
                    self.drain();
                    self.feed(u, self.now(), &bytes[split..])?;
                } else {
                    self.feed(u, now, &bytes)?;
                }
            }
            10 => {
                // Sleep until the session's next deadline, or a little.
                let until = match self.session.poll_timeout() {
                    Some(t) if u.ratio(3, 4)? => t.as_millis().max(self.now),
                    _ => self.now + u64::from(u.int_in_range(0..=5_000u32)?),
                };
                self.now = until;
                self.session.handle_timeout(self.now());
            }
            11 => {
                let known: Vec<u16> = self.pending.iter().copied().collect();
                let id = packet_id(u, &known)?;
                let awaiting_pubcomp = self
                    .session
                    .outgoing()
                    .any(|(o, _, stage)| o == id && stage == OutgoingStage::AwaitingPubComp);
                // A QoS 2 message that was ever sent is never withdrawn (the broker may hold
                // its id); everything else pending can be.
                let cancellable = self.session.can_cancel(id);
                assert!(
                    !awaiting_pubcomp || !cancellable,
                    "{id} cancellable after PUBREC"
                );
                if self.session.cancel_publish(id) {
                    assert!(cancellable, "cancelled {id} that can_cancel refused");
                    assert!(self.pending.remove(&id.get()), "cancelled unknown id {id}");
                } else {
                    assert!(!self.pending.contains(&id.get()) || !cancellable);
                }
            }
            _ => {
                self.now += u64::from(u.int_in_range(0..=200_000u32)?);
            }
        }
        if self.requests.len() > 8 {
            self.requests.remove(0);
        }
        self.drain();
        Ok(())
    }
}

/// Every transmission is whole packets that a client may send, none larger than the broker's
/// Maximum Packet Size (CONNECT excepted: it goes before the limit is known).
fn check_transmission(mut bytes: &[u8], version: ProtocolVersion, max: Option<u32>) {
    assert!(!bytes.is_empty());
    while !bytes.is_empty() {
        match decode_with(bytes, usize::MAX, version) {
            Ok(Decoded::Complete { packet, consumed }) => {
                if let (Some(max), false) = (max, packet.packet_type() == PacketType::Connect) {
                    // PUBREL and other acks are 4 bytes; a stored message published before a
                    // smaller limit arrived is dropped, never sent.
                    assert!(consumed <= (max as usize).max(4), "{packet:?} over {max}");
                }
                assert!(
                    matches!(
                        packet.packet_type(),
                        PacketType::Connect
                            | PacketType::Publish
                            | PacketType::PubAck
                            | PacketType::PubRec
                            | PacketType::PubRel
                            | PacketType::PubComp
                            | PacketType::Subscribe
                            | PacketType::Unsubscribe
                            | PacketType::PingReq
                            | PacketType::Disconnect
                    ),
                    "client sent {packet:?}"
                );
                bytes = &bytes[consumed..];
            }
            other => panic!("client sent invalid bytes {bytes:02X?}: {other:?}"),
        }
    }
}

/// Each input runs twice: with the session on the heap and on fixed storage (10 entries,
/// 96-byte buffers: smaller than some of the packets the harness makes).
fn run(data: &[u8]) -> Result<()> {
    let heap = run_on::<Heap>(data);
    let fixed = run_on::<Fixed<10, 96>>(data);
    heap.and(fixed)
}

fn run_on<S: Storage>(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let max_in_flight: u16 = u.int_in_range(1..=4)?;
    let max_outgoing: usize = u.int_in_range(1..=8)?;
    let config = SessionConfig {
        client_id: if u.ratio(1, 8)? {
            "".into()
        } else {
            "fuzz".into()
        },
        keep_alive: u.int_in_range(0..=120)?,
        ping_timeout: if u.arbitrary()? {
            Some(Duration::from_millis(u.int_in_range(0..=10_000)?))
        } else {
            None
        },
        connect_timeout: Duration::from_millis(u.int_in_range(0..=20_000)?),
        max_in_flight,
        max_outgoing,
        max_packet_size: u.int_in_range(2..=256)?,
        ..SessionConfig::default()
    };
    let version = if u.arbitrary()? {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V311
    };
    let mut config = config;
    config.protocol = version;
    config.v5.topic_aliases = u.arbitrary()?;
    config.v5.topic_alias_maximum = Some(u.int_in_range(0..=2)?);
    config.v5.receive_maximum = u.arbitrary::<bool>()?.then_some(u.int_in_range(1..=3)?);
    let mut harness = Harness::<S> {
        session: Session::with_storage(config),
        now: u.int_in_range(0..=1_000_000)?,
        pending: BTreeSet::new(),
        requests: Vec::new(),
        max_in_flight: usize::from(max_in_flight),
        max_outgoing,
        version,
    };
    while !u.is_empty() {
        harness.step(&mut u)?;
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
