//! Drives the robust `Engine` (reconnecting, delivery contracts, kept subscriptions) with an
//! arbitrary sequence of commands, time jumps (up to hours), transport outcomes (opened, open
//! failed, connection lost) and broker input (raw bytes or well-formed broker packets, whole
//! or split), servicing the engine after every step as a driver would: every action, every
//! transmit slice then `handle_written`, every store op, every event.
//!
//! Invariants checked:
//! - nothing panics; `poll_action`, `poll_transmit` and `poll_event` loops terminate;
//! - every `MessageId` a publish returns gets exactly one outcome (`Delivered`, `Expired` or
//!   `Dropped`), never two, never one for an unknown id; `pending()` is published minus
//!   settled; `StoreOp::Settled` comes exactly once for each durable message that settled and
//!   never for another; `StoreOp::Assigned` only for durable, unsettled messages;
//! - `Stats` agree with the events seen (delivered, expired, dropped, `dropped_by` per reason,
//!   received); no event is discarded (`events_overflowed` stays 0: the harness drains);
//! - after `handle_timeout(now)` and servicing, `poll_timeout()` is `None` or later than `now`
//!   unless an action or a transmission happened (no busy loop at one instant);
//! - `Action::Open` only while no transport is open or opening (a `Close` first); bytes to
//!   write only while the transport is open;
//! - everything transmitted is whole, valid client packets; CONNECT first on each connection
//!   and only there; nothing after DISCONNECT;
//! - received messages held by the application never exceed `max_received`, and
//!   `wants_read()` is false at the bound;
//! - `Delivered` only after the message's PUBLISH was written; no PUBLISH of a settled
//!   message; a QoS 2 message whose PUBLISH went out in the broker's current session is never
//!   expired or dropped (payloads carry their message id to tell);
//! - while the engine says it is connected, its session is connected too (no dead link held);
//! - a spurious `handle_timeout` before `poll_timeout()` (after the application consumed
//!   messages) finds nothing to do: no work is held without a timer;
//! - `disconnect()` on an established link sends DISCONNECT before closing, and drops nothing.
//!
//! Broker input is raw bytes, arbitrary broker packets (known or random ids), or the replies a
//! well-behaved broker owes for what was written; one to three of them per read, whole or split.
//!
//! Half the inputs (the first byte) run MQTT 5: arbitrary `ConnectOptions` and
//! `follow_server_references`; the broker sends CONNACK limits (Receive Maximum, Maximum Packet
//! Size down to 8, Maximum QoS, Retain Available, Topic Alias Maximum, Server Keep Alive,
//! Assigned Client Identifier, Server Reference) or refusals (0x9C/0x9D included), reason codes
//! in every acknowledgement, DISCONNECT (with Server Reference), AUTH, PUBLISH with topic
//! aliases and UNSUBACK reason codes. On top of every invariant above: transmissions decode as
//! MQTT 5; QoS 1/2 PUBLISH in flight never exceed the broker's Receive Maximum; no packet but
//! CONNECT exceeds its Maximum Packet Size; no PUBLISH above its Maximum QoS or retained
//! without Retain Available; outgoing aliases within its maximum and set up before use; a
//! `Within` message's Message Expiry Interval never exceeds what is left of its deadline at
//! write time; the `Refused` / `TooLarge` / `NotSupported` drops are counted; every `Message`
//! has a valid topic; the referenced server is opened only after a 0x9C/0x9D with a Server
//! Reference while following is on.
//!
//! Every input runs twice: with the engine's session on the heap, and on `Fixed<12, 128>`
//! storage (`Fixed<12, 128, 128, 2>` for inputs of odd length: message lists of 2), fed half
//! the time as a driver must, at most `input_room` per read, and half the time at once;
//! every invariant above holds on both.
//!
//! The engine bugs this target found are fixed and asserted unconditionally; their inputs are
//! in `fuzz/regressions/engine/` (run them to check the fixes hold). `UMQTT_FUZZ_TRACE=1` prints every step.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use umqtt_core::message::Received;
use umqtt_core::packet::{
    decode_with, Ack, Auth, ConnAck, ConnectReturnCode, Decoded, Disconnect, Packet, PacketId,
    PacketType, Properties, Property, PropertyList, ProtocolVersion, Publish, QoS, ReasonCode,
    SubAck, UnsubAck,
};
use umqtt_core::robust::{
    Action, BatteryAware, Deadline, Delivery, DropReason, Engine, EngineConfig, Event,
    ExponentialBackoff, FailureKind, FixedDelay, MessageId, NoRetry, OutageLimit, Overflow,
    ReconnectPolicy, ServerAddress, StoreOp, Unsupported,
};
use umqtt_core::session::SessionConfig;
use umqtt_core::storage::{Fixed, Heap, Storage};
use umqtt_core::topic::validate_topic_name;
use umqtt_core::Instant;

const TOPICS: &[&str] = &["a", "a/b", "$SYS/x", "t/é"];
const FILTERS: &[&str] = &["a", "a/+", "#", "+/b/#"];
const SECOND: u64 = 1000;
const HOUR: u64 = 3600 * SECOND;

/// Print every step and event (`UMQTT_FUZZ_TRACE=1`), to turn a crash into a story.
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("UMQTT_FUZZ_TRACE").is_some_and(|v| v == "1"))
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            eprintln!($($arg)*);
        }
    };
}

fn qos(u: &mut Unstructured<'_>) -> Result<QoS> {
    Ok(*u.choose(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])?)
}

fn millis(u: &mut Unstructured<'_>, max: u64) -> Result<Duration> {
    Ok(Duration::from_millis(u.int_in_range(1..=max)?))
}

/// A policy chosen by the input (`nested`: not another `OutageLimit`).
fn policy(u: &mut Unstructured<'_>, nested: bool) -> Result<Box<dyn ReconnectPolicy>> {
    let max_kind = if nested { 4 } else { 5 };
    let kind: u8 = u.int_in_range(0..=max_kind)?;
    trace!(
        "policy {}",
        [
            "NoRetry",
            "FixedDelay",
            "ExponentialBackoff",
            "Deadline",
            "BatteryAware",
            "OutageLimit"
        ][usize::from(kind)]
    );
    Ok(match kind {
        0 => Box::new(NoRetry),
        1 => Box::new(FixedDelay {
            delay: millis(u, 10 * SECOND)?,
        }),
        2 => {
            let initial = millis(u, 5 * SECOND)?;
            let max = initial + millis(u, 600 * SECOND)?;
            let jitter = f64::from(u.int_in_range(0..=100u8)?) / 100.0;
            Box::new(ExponentialBackoff::new(initial, max).with_jitter(jitter))
        }
        3 => Box::new(Deadline::new(millis(u, HOUR)?)),
        4 => {
            let mut policy = BatteryAware::new();
            policy.initial = millis(u, 10 * SECOND)?;
            policy.attempts_per_hour = u.int_in_range(1..=120)?;
            policy.min_per_hour = u.int_in_range(0..=4)?;
            policy.permanent_refusal_delay = millis(u, 2 * HOUR)?;
            Box::new(policy)
        }
        _ => Box::new(OutageLimit::new(millis(u, 2 * HOUR)?, policy(u, true)?)),
    })
}

/// A payload that names its message: the id, then up to 24 arbitrary bytes.
fn tagged_payload(u: &mut Unstructured<'_>, id: u64) -> Result<Vec<u8>> {
    let mut payload = id.to_le_bytes().to_vec();
    let len = u.int_in_range(0..=24)?;
    payload.extend_from_slice(u.bytes(len)?);
    Ok(payload)
}

/// Server References a broker may send: usable ones and ones `parse_reference` refuses.
const REFERENCES: &[&str] = &[
    "other:1884",
    "[::1]:1883 x",
    "moved.example",
    "bad:port",
    "",
];

/// The packets in `bytes`, for traces.
fn describe(mut bytes: &[u8], version: ProtocolVersion) -> String {
    let mut packets = Vec::new();
    while !bytes.is_empty() {
        match decode_with(bytes, usize::MAX, version) {
            Ok(Decoded::Complete { packet, consumed }) => {
                packets.push(format!("{packet:?}"));
                bytes = &bytes[consumed..];
            }
            other => {
                packets.push(format!("{bytes:02X?} ({other:?})"));
                break;
            }
        }
    }
    packets.join(" + ")
}

fn open_failure(u: &mut Unstructured<'_>) -> Result<FailureKind> {
    Ok(match u.int_in_range(0..=6)? {
        0 => FailureKind::Dns,
        1 => FailureKind::TcpConnect,
        2 => FailureKind::Timeout,
        3 => FailureKind::Tls,
        4 => FailureKind::Configuration,
        5 => FailureKind::Refused(ConnectReturnCode::from_u8(u.int_in_range(1..=5)?).unwrap()),
        _ => FailureKind::ConnectionLost,
    })
}

fn link_failure(u: &mut Unstructured<'_>) -> Result<FailureKind> {
    Ok(*u.choose(&[
        FailureKind::ConnectionLost,
        FailureKind::KeepAliveExpired,
        FailureKind::Protocol,
        FailureKind::Tls,
        FailureKind::Configuration,
    ])?)
}

/// A reason code the packet may carry, from the input (half the time Success).
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Closed,
    Opening,
    /// `packets`: client packets written on this connection so far.
    Open {
        packets: usize,
        disconnect_sent: bool,
    },
}

/// What a well-behaved broker owes the client for a packet it wrote.
#[derive(Debug, Clone, Copy)]
enum Reply {
    ConnAck,
    PubAck(PacketId),
    PubRec(PacketId),
    PubRel(PacketId),
    PubComp(PacketId),
    SubAck(PacketId, usize),
    UnsubAck(PacketId, usize),
    PingResp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consume {
    /// The application takes every message as soon as it is seen.
    Always,
    /// Only when the input says so.
    Sometimes,
    /// Never: the receive bound must stop reading.
    Never,
}

#[derive(Default)]
struct Counts {
    delivered: u64,
    expired: u64,
    dropped: u64,
    dropped_by: BTreeMap<&'static str, u64>,
    received: u64,
}

fn reason_name(reason: DropReason) -> &'static str {
    match reason {
        DropReason::NotConnected => "not_connected",
        DropReason::LinkLost => "link_lost",
        DropReason::PolicyStopped => "policy_stopped",
        DropReason::QueueOverflow => "queue_overflow",
        DropReason::Refused(_) => "refused",
        DropReason::TooLarge { .. } => "too_large",
        DropReason::NotSupported(_) => "not_supported",
        _ => "other",
    }
}

struct Harness<S: Storage> {
    engine: Engine<Box<dyn ReconnectPolicy>, u8, S>,
    now: u64,
    servers: usize,
    clean_session: bool,
    max_received: usize,
    max_received_bytes: usize,
    consume: Consume,
    transport: Transport,
    /// Published, no outcome yet.
    outstanding: BTreeSet<u64>,
    /// Got their outcome.
    settled: BTreeSet<u64>,
    durable: BTreeSet<u64>,
    store_settled: BTreeSet<u64>,
    /// Messages whose PUBLISH was written.
    written: BTreeSet<u64>,
    /// QoS 2 messages whose PUBLISH was written in the broker's current session.
    qos2_sent: BTreeSet<u64>,
    /// Durable publishes that `Overflow::DropNewest` dropped at once (see the BUG in `check`).
    counts: Counts,
    /// Received messages the application has not taken (payload lengths).
    held: VecDeque<usize>,
    /// Recent received messages, to acknowledge.
    recent: VecDeque<S::Message>,
    /// Packet ids seen in recent client packets.
    known_ids: VecDeque<u16>,
    /// Replies a well-behaved broker owes on the current connection, in order.
    owed: VecDeque<Reply>,
    /// `disconnect()` was called on an established link: DISCONNECT must go out before Close.
    expect_disconnect: bool,
    /// The first Close after `disconnect()` was checked.
    disconnect_checked: bool,
    events_seen: u64,
    /// Packet ids of the PUBLISH packets written on the current connection.
    published_ids: BTreeSet<u16>,
    /// MQTT 3.1.1 or 5 (the first choice of the input).
    version: ProtocolVersion,
    /// `EngineSettings::follow_server_references`.
    follow_references: bool,
    /// MQTT 5: a usable Server Reference was fed on the current connection (in a CONNACK, or
    /// in a DISCONNECT with 0x9C/0x9D).
    reference_on_connection: bool,
    /// MQTT 5: a CONNACK/DISCONNECT with 0x9C/0x9D was fed while a usable Server Reference
    /// was known on that connection, with `follow_server_references` on: the engine may
    /// open the referenced server (index `servers`).
    redirect_allowed: bool,
    /// Delivery deadlines of `Delivery::Within` messages (ms).
    deadlines: BTreeMap<u64, u64>,
    /// MQTT 5: the Message Expiry Interval a message was published with (seconds).
    own_expiry: BTreeMap<u64, u32>,
    /// MQTT 5: packet ids of QoS 1/2 PUBLISH packets written on the current connection for
    /// which the harness has fed no PUBACK, PUBCOMP or refusing PUBREC yet (a lower bound of
    /// the broker's count against its Receive Maximum).
    unacked: BTreeSet<u16>,
    /// MQTT 5: the outgoing topic aliases the client set up on the current connection.
    out_aliases: BTreeMap<u16, String>,
}

impl<S: Storage> Harness<S> {
    fn now(&self) -> Instant {
        Instant::from_millis(self.now)
    }

    /// Feeds broker bytes. On fixed storage, half the time as a driver must (at most
    /// `input_room` per read, servicing between reads), else all at once (more than the room
    /// closes the connection with `StorageFull`); on the heap, all at once, drawing nothing.
    fn feed(&mut self, u: &mut Unstructured<'_>, now: Instant, bytes: &[u8]) -> Result<()> {
        if S::BYTES == usize::MAX || u.arbitrary()? {
            self.engine.handle_read(now, bytes);
            return Ok(());
        }
        let mut rest = bytes;
        while !rest.is_empty() && self.can_read() {
            let n = self.engine.input_room().min(rest.len());
            if n == 0 {
                self.service();
                if self.engine.input_room() == 0 {
                    break;
                }
                continue;
            }
            self.engine.handle_read(now, &rest[..n]);
            rest = &rest[n..];
            if !rest.is_empty() {
                self.service();
            }
        }
        Ok(())
    }

    /// What a driver does after every input. Returns whether an action was performed or bytes
    /// were written.
    fn service(&mut self) -> bool {
        let now = self.now();
        let mut activity = false;
        let mut actions = 0;
        // Taking received messages (`handle_consumed`) may let the engine process input it
        // held at the bound: service again until nothing is left to take.
        loop {
            loop {
                let mut busy = false;
                while let Some(action) = self.engine.poll_action() {
                    actions += 1;
                    assert!(actions < 10_000, "poll_action does not terminate");
                    busy = true;
                    trace!("  action {action:?}");
                    match action {
                        Action::Open { server } => {
                            // The referenced server (index `servers`) only after the broker
                            // named one with 0x9C/0x9D and following is on.
                            assert!(
                                server < self.servers
                                    || (server == self.servers
                                        && self.follow_references
                                        && self.redirect_allowed
                                        && self.engine.server_address(server).is_some()),
                                "Open for server {server}"
                            );
                            assert_eq!(
                                self.transport,
                                Transport::Closed,
                                "Action::Open while a transport is open or opening, without Close"
                            );
                            self.transport = Transport::Opening;
                        }
                        Action::Close => {
                            // Written before closing.
                            self.write(now);
                            if self.expect_disconnect && !self.disconnect_checked {
                                self.disconnect_checked = true;
                                let sent = matches!(
                                    self.transport,
                                    Transport::Open {
                                        disconnect_sent: true,
                                        ..
                                    }
                                );
                                // Was a bug (regressions/engine/disconnect): the DISCONNECT was
                                // dropped and the broker published the will.
                                assert!(sent, "disconnect() closed without sending DISCONNECT");
                            }
                            self.close_transport();
                        }
                    }
                }
                busy |= self.write(now);
                activity |= busy;
                if !busy {
                    break;
                }
            }
            self.drain_store();
            // On fixed storage taking events may let the engine go on with input it held
            // (new actions and bytes to write): service again until nothing is left.
            if self.drain_events() > 0 {
                continue;
            }
            if self.consume == Consume::Always && !self.held.is_empty() {
                self.consume_held(usize::MAX);
                continue;
            }
            break;
        }
        self.expect_disconnect = false;
        self.check();
        activity
    }

    fn close_transport(&mut self) {
        self.transport = Transport::Closed;
        self.owed.clear();
        self.reference_on_connection = false;
        self.unacked.clear();
        self.out_aliases.clear();
    }

    /// Writes every transmit slice; returns whether anything was written.
    fn write(&mut self, now: Instant) -> bool {
        let mut bytes = Vec::new();
        let mut slices = 0;
        while let Some(slice) = self.engine.poll_transmit(now) {
            slices += 1;
            assert!(slices < 100_000, "poll_transmit does not terminate");
            assert!(!slice.is_empty(), "empty transmit slice");
            bytes.extend_from_slice(slice);
        }
        if bytes.is_empty() {
            return false;
        }
        assert!(
            matches!(self.transport, Transport::Open { .. }),
            "bytes to write while the transport is {:?}",
            self.transport
        );
        trace!("  wrote {bytes:02X?}");
        self.check_transmission(&bytes);
        self.engine.handle_written(now);
        true
    }

    /// Everything written is whole client packets, CONNECT first on each connection.
    fn check_transmission(&mut self, mut bytes: &[u8]) {
        let Transport::Open {
            packets,
            disconnect_sent,
        } = &mut self.transport
        else {
            unreachable!()
        };
        let mut ids = Vec::new();
        let mut messages = Vec::new();
        let mut replies = Vec::new();
        let mut published_ids = Vec::new();
        while !bytes.is_empty() {
            let (packet, consumed) = match decode_with(bytes, usize::MAX, self.version) {
                Ok(Decoded::Complete { packet, consumed }) => (packet, consumed),
                other => panic!("client sent invalid bytes {bytes:02X?}: {other:?}"),
            };
            if self.version == ProtocolVersion::V5 && !matches!(packet, Packet::Connect(_)) {
                // The limits of the broker's CONNACK on this connection.
                let limits = self.engine.session().broker_limits();
                if let Some(max) = limits.maximum_packet_size {
                    assert!(
                        consumed <= max as usize,
                        "{packet:?} of {consumed} bytes over the broker's maximum {max}"
                    );
                }
                if let Packet::Publish(p) = &packet {
                    assert!(
                        p.qos <= limits.maximum_qos,
                        "{p:?} above the broker's maximum QoS"
                    );
                    assert!(
                        !p.retain || limits.retain_available,
                        "retained {p:?}, Retain Available 0"
                    );
                    let mut alias = None;
                    for property in p.properties.iter() {
                        match property {
                            Property::TopicAlias(a) => alias = Some(a),
                            Property::MessageExpiryInterval(seconds) => {
                                let tag = p.payload.get(..8).expect("tagged");
                                let id = u64::from_le_bytes(tag.try_into().unwrap());
                                let deadline = self.deadlines.get(&id).copied();
                                let own = self.own_expiry.get(&id).copied();
                                assert!(
                                    deadline.is_some() || own.is_some(),
                                    "Message Expiry Interval on message {id}, which has none"
                                );
                                // Never more than the caller gave.
                                assert!(
                                    own.is_none_or(|own| seconds <= own),
                                    "message {id} written with Message Expiry Interval {seconds} s, {own:?} given"
                                );
                                // What is left at write time, rounded up; at least 1.
                                if let Some(deadline) = deadline {
                                    let left = deadline.saturating_sub(self.now).div_ceil(SECOND);
                                    assert!(
                                        u64::from(seconds) <= left.max(1),
                                        "message {id} written with Message Expiry Interval {seconds} s, {} ms left of its deadline",
                                        deadline.saturating_sub(self.now)
                                    );
                                }
                            }
                            _ => {}
                        }
                    }
                    match alias {
                        Some(a) => {
                            assert!(
                                a >= 1 && a <= limits.topic_alias_maximum,
                                "topic alias {a} over the broker's maximum {}",
                                limits.topic_alias_maximum
                            );
                            if p.topic.is_empty() {
                                assert!(
                                    self.out_aliases.contains_key(&a),
                                    "alias {a} used before it was set up"
                                );
                            } else {
                                self.out_aliases.insert(a, p.topic.to_string());
                            }
                        }
                        None => assert!(!p.topic.is_empty(), "PUBLISH without topic or alias"),
                    }
                    if let Some(id) = p.packet_id {
                        self.unacked.insert(id.get());
                        assert!(
                            self.unacked.len() <= usize::from(limits.receive_maximum),
                            "{} QoS 1/2 PUBLISH in flight, the broker's Receive Maximum is {}",
                            self.unacked.len(),
                            limits.receive_maximum
                        );
                    }
                }
            }
            assert!(!*disconnect_sent, "{packet:?} after DISCONNECT");
            assert_eq!(
                *packets == 0,
                matches!(packet, Packet::Connect(_)),
                "packet {} on this connection is {packet:?}",
                *packets
            );
            *packets += 1;
            let id = match packet {
                Packet::Connect(connect) => {
                    assert_eq!(
                        connect.clean_session, self.clean_session,
                        "CONNECT clean session"
                    );
                    replies.push(Reply::ConnAck);
                    None
                }
                Packet::PingReq => {
                    replies.push(Reply::PingResp);
                    None
                }
                Packet::Disconnect(_) => {
                    *disconnect_sent = true;
                    None
                }
                Packet::Publish(p) => {
                    published_ids.extend(p.packet_id.map(PacketId::get));
                    let tag = p.payload.get(..8).expect("published payloads are tagged");
                    messages.push((u64::from_le_bytes(tag.try_into().unwrap()), p.qos));
                    match (p.qos, p.packet_id) {
                        (QoS::AtLeastOnce, Some(id)) => replies.push(Reply::PubAck(id)),
                        (QoS::ExactlyOnce, Some(id)) => replies.push(Reply::PubRec(id)),
                        _ => {}
                    }
                    p.packet_id
                }
                Packet::PubAck(umqtt_core::packet::Ack { packet_id: id, .. })
                | Packet::PubComp(umqtt_core::packet::Ack { packet_id: id, .. }) => Some(id),
                Packet::PubRec(umqtt_core::packet::Ack { packet_id: id, .. }) => {
                    replies.push(Reply::PubRel(id));
                    Some(id)
                }
                Packet::PubRel(umqtt_core::packet::Ack { packet_id: id, .. }) => {
                    replies.push(Reply::PubComp(id));
                    Some(id)
                }
                Packet::Subscribe(s) => {
                    replies.push(Reply::SubAck(s.packet_id, s.topics.iter().count()));
                    Some(s.packet_id)
                }
                Packet::Unsubscribe(s) => {
                    replies.push(Reply::UnsubAck(s.packet_id, s.topics.iter().count()));
                    Some(s.packet_id)
                }
                other => panic!("client sent {other:?}"),
            };
            ids.extend(id.map(PacketId::get));
            bytes = &bytes[consumed..];
        }
        self.owed.extend(replies);
        self.published_ids.extend(published_ids);
        for id in ids {
            self.known_ids.push_back(id);
            if self.known_ids.len() > 16 {
                self.known_ids.pop_front();
            }
        }
        for (id, qos) in messages {
            assert!(
                self.outstanding.contains(&id),
                "PUBLISH of message {id}, which is not pending"
            );
            self.written.insert(id);
            if qos == QoS::ExactlyOnce {
                self.qos2_sent.insert(id);
            }
        }
    }

    fn drain_store(&mut self) {
        let mut ops = 0;
        while let Some(op) = self.engine.poll_store() {
            trace!("  store {op:?}");
            ops += 1;
            assert!(ops < 1_000_000, "poll_store does not terminate");
            match op {
                StoreOp::Assigned { id, .. } => {
                    assert!(
                        self.durable.contains(&id.0),
                        "{op:?} for a non-durable message"
                    );
                    assert!(!self.store_settled.contains(&id.0), "{op:?} after Settled");
                }
                StoreOp::Settled { id } => {
                    assert!(
                        self.durable.contains(&id.0),
                        "{op:?} for a non-durable message"
                    );
                    assert!(self.store_settled.insert(id.0), "{op:?} twice");
                }
            }
        }
    }

    fn settle(&mut self, id: u64, what: &str) {
        assert!(
            !self.settled.contains(&id),
            "second outcome {what} for message {id}"
        );
        assert!(
            self.outstanding.remove(&id),
            "outcome {what} for message {id}, never published"
        );
        self.settled.insert(id);
    }

    /// Takes every event; returns how many.
    fn drain_events(&mut self) -> usize {
        let mut events = 0;
        while let Some(event) = self.engine.poll_event() {
            trace!("  event {event:?}");
            self.events_seen += 1;
            events += 1;
            assert!(events < 1_000_000, "poll_event does not terminate");
            match event {
                Event::Delivered { id } => {
                    // Was a bug (regressions/engine/premature-ack): an acknowledgement in the
                    // same read as the CONNACK that released the PUBLISH completed it before
                    // the driver had written it.
                    assert!(
                        self.written.contains(&id.0),
                        "message {} delivered, its PUBLISH never written",
                        id.0
                    );
                    self.settle(id.0, "Delivered");
                    self.counts.delivered += 1;
                }
                Event::Expired { id } => {
                    self.check_withdrawable(id.0, "expired");
                    self.settle(id.0, "Expired");
                    self.counts.expired += 1;
                }
                Event::Dropped { id, reason } => {
                    // MQTT 5: the broker refused it (PUBREC 0x80+), or a resumed session's
                    // stored QoS 2 PUBLISH no longer fits the new broker's Maximum Packet
                    // Size or Maximum QoS: ending it is all the client can do.
                    if !matches!(
                        reason,
                        DropReason::Refused(_)
                            | DropReason::TooLarge { .. }
                            | DropReason::NotSupported(_)
                    ) {
                        self.check_withdrawable(id.0, "dropped");
                    }
                    if let DropReason::Refused(code) = reason {
                        assert!(code.is_error(), "refused with {code:?}");
                    }
                    // Was a bug (regressions/engine/disconnect-drops): `disconnect()` ran the
                    // link-lost path and a stopping policy dropped what should stay.
                    if self.expect_disconnect {
                        assert_ne!(
                            reason,
                            DropReason::PolicyStopped,
                            "disconnect() dropped {id:?}"
                        );
                    }
                    self.settle(id.0, "Dropped");
                    self.counts.dropped += 1;
                    *self
                        .counts
                        .dropped_by
                        .entry(reason_name(reason))
                        .or_default() += 1;
                }
                // The broker holds no QoS 2 packet id of ours any more.
                Event::Connected {
                    session_present, ..
                } if !session_present || self.clean_session => self.qos2_sent.clear(),
                Event::Redirected { address, .. } => {
                    assert!(
                        self.follow_references && self.version == ProtocolVersion::V5,
                        "redirected without following references"
                    );
                    assert!(
                        REFERENCES
                            .iter()
                            .any(|r| ServerAddress::parse_reference(r).as_ref() == Some(&address)),
                        "redirected to {address:?}"
                    );
                }
                Event::Message(message) => {
                    // Aliases resolved: every message has its full, valid topic name.
                    assert!(
                        !message.topic().is_empty() && validate_topic_name(message.topic()).is_ok(),
                        "message with topic {:?}",
                        message.topic()
                    );
                    self.counts.received += 1;
                    self.held.push_back(message.payload().len());
                    self.recent.push_back(message);
                    if self.recent.len() > 8 {
                        self.recent.pop_front();
                    }
                }
                _ => {}
            }
        }
        events
    }

    /// Whether the received messages held reach the bound (count or bytes).
    fn at_receive_bound(&self) -> bool {
        self.held.len() >= self.max_received
            || self.held.iter().sum::<usize>() >= self.max_received_bytes
    }

    /// A QoS 2 message whose PUBLISH went out in the broker's current session may be held
    /// there: it must complete, never be withdrawn.
    fn check_withdrawable(&self, id: u64, what: &str) {
        assert!(
            !self.qos2_sent.contains(&id),
            "QoS 2 message {id} {what} after its PUBLISH was sent (the broker may hold it)"
        );
    }

    fn consume_held(&mut self, n: usize) {
        for _ in 0..n {
            let Some(len) = self.held.pop_front() else {
                break;
            };
            let now = self.now();
            self.engine.handle_consumed(now, len);
        }
    }

    fn check(&mut self) {
        let engine = &self.engine;
        assert_eq!(engine.pending(), self.outstanding.len(), "pending()");
        for id in &self.durable {
            // Was a bug (regressions/engine/outbox): a durable message dropped as the newest
            // got no `StoreOp::Settled` and stayed in the outbox.
            assert_eq!(
                self.store_settled.contains(id),
                self.settled.contains(id),
                "StoreOp::Settled vs outcome of durable message {id}"
            );
        }
        let stats = engine.stats();
        assert_eq!(stats.delivered, self.counts.delivered, "stats.delivered");
        assert_eq!(stats.expired, self.counts.expired, "stats.expired");
        assert_eq!(stats.dropped, self.counts.dropped, "stats.dropped");
        let by = |name| self.counts.dropped_by.get(name).copied().unwrap_or(0);
        let reasons = [
            DropReason::NotConnected,
            DropReason::LinkLost,
            DropReason::PolicyStopped,
            DropReason::QueueOverflow,
            DropReason::Refused(ReasonCode::UnspecifiedError),
            DropReason::TooLarge { size: 0, max: 0 },
            DropReason::NotSupported(Unsupported::Retain),
        ];
        for reason in reasons {
            assert_eq!(
                stats.dropped_by.get(reason),
                by(reason_name(reason)),
                "stats.dropped_by {reason:?}"
            );
        }
        assert_eq!(stats.received, self.counts.received, "stats.received");
        assert_eq!(stats.events_overflowed, 0, "events discarded");
        assert!(
            self.held.len() <= self.max_received,
            "{} received messages held, bound {}",
            self.held.len(),
            self.max_received
        );
        if self.at_receive_bound() {
            assert!(!engine.wants_read(), "wants_read at the receive bound");
        }
        if engine.wants_read() {
            assert!(matches!(self.transport, Transport::Open { .. }));
        }
        if self.version == ProtocolVersion::V5 && engine.is_connected() {
            let limits = engine.session().broker_limits();
            assert!(
                engine.session().in_flight() <= usize::from(limits.receive_maximum),
                "{} in flight, the broker's Receive Maximum is {}",
                engine.session().in_flight(),
                limits.receive_maximum
            );
        }
        if engine.is_connected() {
            assert!(matches!(self.transport, Transport::Open { .. }));
            // Was a bug (regressions/engine/dead-link): at the receive bound a close the
            // session raised on a timer was never seen.
            assert!(
                engine.session().is_connected(),
                "engine connected, session not"
            );
        }
    }

    /// MQTT 5 CONNACK limits from the input (small Maximum Packet Size values included, so
    /// stored and queued messages become too large), and sometimes a Server Reference.
    fn connack_properties(&self, u: &mut Unstructured<'_>) -> Result<Vec<Property<'static>>> {
        let mut properties = Vec::new();
        if u.arbitrary()? {
            properties.push(Property::ReceiveMaximum(u.int_in_range(1..=3)?));
        }
        if u.arbitrary()? {
            properties.push(Property::MaximumPacketSize(if u.arbitrary()? {
                u.int_in_range(8..=48)?
            } else {
                u.int_in_range(49..=200)?
            }));
        }
        if u.arbitrary()? {
            properties.push(Property::MaximumQoS(
                *u.choose(&[QoS::AtMostOnce, QoS::AtLeastOnce])?,
            ));
        }
        if u.arbitrary()? {
            properties.push(Property::RetainAvailable(u.arbitrary()?));
        }
        if u.arbitrary()? {
            properties.push(Property::TopicAliasMaximum(u.int_in_range(0..=2)?));
        }
        if u.arbitrary()? {
            properties.push(Property::ServerKeepAlive(u.int_in_range(0..=30)?));
        }
        if u.ratio(1, 4)? {
            properties.push(Property::AssignedClientIdentifier("assigned"));
        }
        if u.ratio(1, 4)? {
            properties.push(Property::ServerReference(u.choose(REFERENCES)?));
        }
        Ok(properties)
    }

    /// Records what a fed CONNACK or DISCONNECT says about Server References: the engine may
    /// then open the referenced server.
    fn note_reference(&mut self, code: ReasonCode, properties: &[Property<'_>]) {
        let usable = properties.iter().any(|p| {
            matches!(p, Property::ServerReference(r) if ServerAddress::<String>::parse_reference(r).is_some())
        });
        self.reference_on_connection |= usable;
        if matches!(code, ReasonCode::UseAnotherServer | ReasonCode::ServerMoved)
            && self.follow_references
            && self.reference_on_connection
        {
            self.redirect_allowed = true;
        }
    }

    /// MQTT 5: what a fed acknowledgement gives back of the broker's Receive Maximum quota
    /// (section 4.9: PUBACK, PUBCOMP, or PUBREC with an error code).
    fn note_ack(&mut self, packet: &Packet<'_>) {
        match packet {
            Packet::PubAck(a) | Packet::PubComp(a) => {
                self.unacked.remove(&a.packet_id.get());
            }
            Packet::PubRec(a) if a.reason_code.is_error() => {
                self.unacked.remove(&a.packet_id.get());
            }
            _ => {}
        }
    }

    /// MQTT 5: [`Harness::note_ack`] for the packets of `bytes` (broker packets) that the
    /// read of `bytes[from..to]` completes.
    fn note_acks(&mut self, mut bytes: &[u8], from: usize, to: usize) {
        if self.version != ProtocolVersion::V5 {
            return;
        }
        let mut end = 0;
        while let Ok(Decoded::Complete { packet, consumed }) =
            decode_with(bytes, usize::MAX, self.version)
        {
            end += consumed;
            if end > to {
                break;
            }
            if end > from {
                self.note_ack(&packet);
            }
            bytes = &bytes[consumed..];
        }
    }

    fn encode(&self, packet: &Packet<'_>) -> Vec<u8> {
        let len = packet
            .encoded_len_with(self.version)
            .expect("broker packets are valid");
        let mut buf = vec![0u8; len];
        packet.encode_with(&mut buf, self.version).unwrap();
        buf
    }

    /// A packet the broker could send, encoded.
    fn broker_packet(&mut self, u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let v5 = self.version == ProtocolVersion::V5;
        let known: Vec<u16> = self.known_ids.iter().copied().collect();
        // Usually an id the client is using, sometimes any.
        let raw = if !known.is_empty() && u.ratio(3, 4)? {
            *u.choose(&known)?
        } else {
            u.int_in_range(1..=8)?
        };
        let packet_id = PacketId::new(raw).unwrap();
        let len = u.int_in_range(0..=24)?;
        let payload = u.bytes(len)?.to_vec();
        let codes: &[u8] = if v5 {
            &[0, 1, 2, 0x80, 0x87, 0x8F, 0x97, 0xA2]
        } else {
            &[0, 1, 2, 0x80]
        };
        let suback_codes: Vec<u8> = (0..u.int_in_range(1..=4)?)
            .map(|_| u.choose(codes).copied())
            .collect::<Result<_>>()?;
        // MQTT 5 parts, borrowed by the packet.
        let mut connack_properties = Vec::new();
        let mut disconnect_properties = Vec::new();
        let mut alias = Vec::new();
        let mut alias_only = false;
        let mut unsuback_codes = Vec::new();
        let reason_string = [Property::ReasonString("why")];
        let reason_list = PropertyList(&reason_string);
        let mut ack_properties = Properties::EMPTY;
        if v5 {
            connack_properties = self.connack_properties(u)?;
            if u.arbitrary()? {
                disconnect_properties.push(Property::ServerReference(u.choose(REFERENCES)?));
            }
            // A Topic Alias: set up (with the topic), alone (empty topic) or out of range.
            if u.arbitrary()? {
                alias.push(Property::TopicAlias(u.int_in_range(1..=3)?));
                alias_only = u.arbitrary()?;
            }
            unsuback_codes = (0..u.int_in_range(1..=2)?)
                .map(|_| u.choose(&[0x00, 0x11, 0x80, 0x87, 0x8F, 0x91]).copied())
                .collect::<Result<_>>()?;
            if u.ratio(1, 4)? {
                ack_properties = Properties::List(&reason_list);
            }
        }
        let connack_list = PropertyList(&connack_properties);
        let disconnect_list = PropertyList(&disconnect_properties);
        let alias_list = PropertyList(&alias);
        let packet = match u.int_in_range(0..=if v5 { 11 } else { 9 })? {
            0 | 1 if v5 => {
                let reason_code = match u.int_in_range(0..=7)? {
                    0..=4 => ReasonCode::Success,
                    5 => *u.choose(&[ReasonCode::UseAnotherServer, ReasonCode::ServerMoved])?,
                    _ => reason(u, PacketType::ConnAck)?,
                };
                self.note_reference(reason_code, &connack_properties);
                Packet::ConnAck(ConnAck {
                    session_present: u.arbitrary::<bool>()? && reason_code == ReasonCode::Success,
                    code: ConnectReturnCode::from_reason_code(reason_code),
                    reason_code,
                    properties: Properties::List(&connack_list),
                })
            }
            0 | 1 => Packet::ConnAck(ConnAck::new(
                u.arbitrary()?,
                ConnectReturnCode::from_u8(if u.ratio(4, 5)? {
                    0
                } else {
                    u.int_in_range(1..=5)?
                })
                .unwrap(),
            )),
            2 => {
                let qos = qos(u)?;
                Packet::Publish(Publish {
                    dup: qos != QoS::AtMostOnce && u.arbitrary()?,
                    qos,
                    retain: u.arbitrary()?,
                    topic: if alias_only { "" } else { u.choose(TOPICS)? },
                    packet_id: (qos != QoS::AtMostOnce).then_some(packet_id),
                    payload: &payload,
                    properties: if alias.is_empty() {
                        Properties::EMPTY
                    } else {
                        Properties::List(&alias_list)
                    },
                })
            }
            3..=6 if v5 => {
                let packet_type = match u.int_in_range(0..=3)? {
                    0 => PacketType::PubAck,
                    1 => PacketType::PubRec,
                    2 => PacketType::PubRel,
                    _ => PacketType::PubComp,
                };
                let ack = Ack::with_reason(packet_id, reason(u, packet_type)?, ack_properties);
                match packet_type {
                    PacketType::PubAck => Packet::PubAck(ack),
                    PacketType::PubRec => Packet::PubRec(ack),
                    PacketType::PubRel => Packet::PubRel(ack),
                    _ => Packet::PubComp(ack),
                }
            }
            3 => Packet::PubAck(Ack::new(packet_id)),
            4 => Packet::PubRec(Ack::new(packet_id)),
            5 => Packet::PubRel(Ack::new(packet_id)),
            6 => Packet::PubComp(Ack::new(packet_id)),
            7 => Packet::SubAck(SubAck {
                packet_id,
                return_codes: &suback_codes,
                properties: Default::default(),
            }),
            8 if v5 => Packet::UnsubAck(UnsubAck::with_reasons(
                packet_id,
                &unsuback_codes,
                Properties::EMPTY,
            )),
            8 => Packet::UnsubAck(UnsubAck::new(packet_id)),
            10 if v5 => {
                let reason_code = if u.arbitrary()? {
                    *u.choose(&[ReasonCode::UseAnotherServer, ReasonCode::ServerMoved])?
                } else {
                    reason(u, PacketType::Disconnect)?
                };
                self.note_reference(reason_code, &disconnect_properties);
                Packet::Disconnect(Disconnect::new(
                    reason_code,
                    if disconnect_properties.is_empty() {
                        Properties::EMPTY
                    } else {
                        Properties::List(&disconnect_list)
                    },
                ))
            }
            11 if v5 && u.ratio(1, 2)? => {
                Packet::Auth(Auth::new(reason(u, PacketType::Auth)?, Properties::EMPTY))
            }
            _ => Packet::PingResp,
        };
        Ok(self.encode(&packet))
    }

    /// The next replies a well-behaved broker owes, encoded.
    fn replies(&mut self, u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let v5 = self.version == ProtocolVersion::V5;
        let mut bytes = Vec::new();
        for _ in 0..u.int_in_range(1..=8)? {
            let Some(reply) = self.owed.pop_front() else {
                break;
            };
            let codes: Vec<u8>;
            // MQTT 5: an accepting CONNACK still announces limits.
            let connack_properties = if v5 {
                self.connack_properties(u)?
            } else {
                Vec::new()
            };
            let connack_list = PropertyList(&connack_properties);
            let packet = match reply {
                Reply::ConnAck if v5 => {
                    self.note_reference(ReasonCode::Success, &connack_properties);
                    Packet::ConnAck(ConnAck {
                        session_present: !self.clean_session && u.arbitrary()?,
                        code: ConnectReturnCode::Accepted,
                        reason_code: ReasonCode::Success,
                        properties: Properties::List(&connack_list),
                    })
                }
                Reply::ConnAck => Packet::ConnAck(ConnAck::new(
                    !self.clean_session && u.arbitrary()?,
                    ConnectReturnCode::Accepted,
                )),
                Reply::PubAck(id) => Packet::PubAck(Ack::new(id)),
                Reply::PubRec(id) => Packet::PubRec(Ack::new(id)),
                Reply::PubRel(id) => Packet::PubRel(Ack::new(id)),
                Reply::PubComp(id) => Packet::PubComp(Ack::new(id)),
                Reply::SubAck(id, n) => {
                    codes = (0..n)
                        .map(|_| {
                            Ok(if u.ratio(1, 8)? {
                                0x80
                            } else {
                                u.int_in_range(0..=2)?
                            })
                        })
                        .collect::<Result<_>>()?;
                    Packet::SubAck(SubAck {
                        packet_id: id,
                        return_codes: &codes,
                        properties: Default::default(),
                    })
                }
                Reply::UnsubAck(id, n) if v5 => {
                    codes = (0..n)
                        .map(|_| u.choose(&[0x00, 0x00, 0x11]).copied())
                        .collect::<Result<_>>()?;
                    Packet::UnsubAck(UnsubAck::with_reasons(id, &codes, Properties::EMPTY))
                }
                Reply::UnsubAck(id, _) => Packet::UnsubAck(UnsubAck::new(id)),
                Reply::PingResp => Packet::PingResp,
            };
            trace!("{} broker replies {packet:?}", self.now);
            bytes.extend(self.encode(&packet));
        }
        Ok(bytes)
    }

    fn publish(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let now = self.now();
        let topic = if u.ratio(1, 30)? {
            "bad/+"
        } else {
            *u.choose(TOPICS)?
        };
        let expected = self.engine.next_message_id();
        let payload = tagged_payload(u, expected.0)?;
        let qos = qos(u)?;
        let retain = u.arbitrary()?;
        // `None`: the policy's default contract.
        let (delivery, durable) = match u.int_in_range(0..=4)? {
            0 => (None, false),
            1 => (Some(Delivery::NoRetry), false),
            2 => {
                let max_age = if u.arbitrary()? {
                    Duration::from_millis(u.int_in_range(0..=60 * SECOND)?)
                } else {
                    Duration::from_millis(u.int_in_range(0..=6 * HOUR)?)
                };
                (Some(Delivery::Within(max_age)), false)
            }
            3 => (Some(Delivery::Guaranteed), false),
            _ => (Some(Delivery::Guaranteed), true),
        };
        // MQTT 5: sometimes a Message Expiry Interval of the caller's own too.
        let own_expiry = if self.version == ProtocolVersion::V5 && u.ratio(1, 4)? {
            Some([Property::MessageExpiryInterval(u.int_in_range(1..=7200)?)])
        } else {
            None
        };
        let own_list = own_expiry.as_ref().map(|p| PropertyList(p));
        let result = match (delivery, durable) {
            (_, true) => self
                .engine
                .publish_durable(now, topic, &payload, qos, retain),
            (Some(delivery), false) if own_list.is_some() => self.engine.publish_with_properties(
                now,
                topic,
                &payload,
                qos,
                retain,
                delivery,
                Properties::List(own_list.as_ref().unwrap()),
            ),
            (Some(delivery), false) => self
                .engine
                .publish_with(now, topic, &payload, qos, retain, delivery),
            (None, false) => self.engine.publish(now, topic, &payload, qos, retain),
        };
        trace!(
            "{} publish {topic:?} {} bytes {qos:?} {} -> {result:?}",
            self.now,
            payload.len(),
            match (delivery, durable) {
                (_, true) => "durable".to_string(),
                (Some(delivery), _) => format!("{delivery:?}"),
                (None, _) => format!("default {:?}", self.engine.policy().default_delivery()),
            }
        );
        if let Ok(id) = result {
            assert_eq!(id, expected, "message ids are handed out in order");
            assert!(!self.settled.contains(&id.0) && self.outstanding.insert(id.0));
            if durable {
                self.durable.insert(id.0);
            }
            if let (Some([Property::MessageExpiryInterval(own)]), Some(_), false) =
                (own_expiry, delivery, durable)
            {
                self.own_expiry.insert(id.0, own);
            }
            let delivery = delivery.unwrap_or(self.engine.policy().default_delivery());
            if let (Delivery::Within(max_age), false) = (delivery, durable) {
                let max_age = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
                self.deadlines
                    .insert(id.0, self.now.saturating_add(max_age));
            }
        } else {
            assert_eq!(
                self.engine.next_message_id(),
                expected,
                "a refused publish used an id"
            );
        }
        Ok(())
    }

    /// A driver woken before the engine's timer (after the application took messages, say)
    /// calls `handle_timeout` anyway: that must be a no-op, or the engine was holding work that
    /// a driver following the contract (wait for input or `poll_timeout`) would not get to.
    fn spurious_wakeup(&mut self) {
        let now = self.now();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            return;
        }
        let events = self.events_seen;
        trace!("{} spurious handle_timeout", self.now);
        self.engine.handle_timeout(now);
        let activity = self.service();
        // Was a bug (regressions/engine/stranded): input received behind the bound waited,
        // without a timer, after the application consumed.
        assert!(
            !activity && self.events_seen == events,
            "a spurious handle_timeout found work the engine held without a timer"
        );
    }

    /// Moves the clock to `until`, fires the timers, services; no busy loop.
    fn advance(&mut self, until: u64) {
        self.now = until.max(self.now);
        let now = self.now();
        trace!("{} handle_timeout", self.now);
        self.engine.handle_timeout(now);
        let activity = self.service();
        if !activity {
            if let Some(next) = self.engine.poll_timeout() {
                assert!(
                    next > now,
                    "busy loop: poll_timeout {} ms after handle_timeout({} ms) with nothing to do",
                    next.as_millis(),
                    now.as_millis()
                );
            }
        }
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let now = self.now();
        match u.int_in_range(0..=19)? {
            0..=2 => self.publish(u)?,
            3 => {
                let filter = if u.ratio(1, 30)? {
                    "a/#/b"
                } else {
                    *u.choose(FILTERS)?
                };
                let qos = qos(u)?;
                trace!("{} subscribe {filter:?} {qos:?}", self.now);
                let _ = self.engine.subscribe(now, filter, qos);
            }
            4 => {
                let filter = *u.choose(FILTERS)?;
                trace!("{} unsubscribe {filter:?}", self.now);
                let _ = self.engine.unsubscribe(now, filter);
            }
            5 => {
                trace!("{} nudge", self.now);
                self.engine.nudge(now);
            }
            6 => {
                trace!("{} connect", self.now);
                self.engine.connect(now);
            }
            7 => {
                trace!("{} disconnect", self.now);
                self.expect_disconnect = self.engine.is_connected();
                self.disconnect_checked = false;
                self.engine.disconnect(now);
            }
            8 => {
                if let Some(message) = u.choose(self.recent.make_contiguous()).ok().cloned() {
                    let owed = self.engine.ack(now, &message);
                    trace!("{} ack {:?} -> {owed}", self.now, message.packet_id());
                }
            }
            9 => {
                if self.consume == Consume::Sometimes {
                    let n = u.int_in_range(0..=4)?;
                    trace!("{} consume {n}", self.now);
                    self.consume_held(n);
                }
                self.service();
                self.spurious_wakeup();
            }
            10 | 11 => {
                // Sleep until the engine's next timer (what a driver does), or a while.
                let until = match self.engine.poll_timeout() {
                    Some(t) if u.ratio(3, 4)? => t.as_millis(),
                    _ => {
                        self.now
                            + match u.int_in_range(0..=3)? {
                                0 => u.int_in_range(0..=100)?,
                                1 => u.int_in_range(0..=60 * SECOND)?,
                                2 => u.int_in_range(0..=HOUR)?,
                                _ => u.int_in_range(0..=12 * HOUR)?,
                            }
                    }
                };
                self.advance(until);
                return Ok(());
            }
            12 => {
                // The transport being opened: opened or failed.
                if self.transport == Transport::Opening {
                    if u.ratio(3, 4)? {
                        self.transport = Transport::Open {
                            packets: 0,
                            disconnect_sent: false,
                        };
                        self.published_ids.clear();
                        trace!("{} handle_opened", self.now);
                        self.engine.handle_opened(now);
                    } else {
                        self.close_transport();
                        let kind = open_failure(u)?;
                        trace!("{} handle_open_failed {kind:?}", self.now);
                        self.engine.handle_open_failed(now, kind, u.arbitrary()?);
                    }
                }
            }
            13 => {
                if matches!(self.transport, Transport::Open { .. }) {
                    self.close_transport();
                    let kind = link_failure(u)?;
                    trace!("{} handle_connection_lost {kind:?}", self.now);
                    self.engine
                        .handle_connection_lost(now, kind, u.arbitrary()?);
                }
            }
            14 => {
                // Garbage from the broker.
                if self.can_read() {
                    let len = u.int_in_range(1..=16)?;
                    let bytes = u.bytes(len)?.to_vec();
                    trace!("{} handle_read garbage {bytes:02X?}", self.now);
                    self.feed(u, now, &bytes)?;
                }
            }
            _ => {
                if self.can_read() {
                    // Usually one packet per read; sometimes several arrive together.
                    let mut bytes = Vec::new();
                    let reads = if u.ratio(1, 4)? {
                        u.int_in_range(2..=3)?
                    } else {
                        1
                    };
                    for _ in 0..reads {
                        if !self.owed.is_empty() && u.ratio(2, 3)? {
                            bytes.extend(self.replies(u)?);
                        } else {
                            bytes.extend(self.broker_packet(u)?);
                        }
                    }
                    trace!(
                        "{} handle_read {}",
                        self.now,
                        describe(&bytes, self.version)
                    );
                    if u.ratio(1, 4)? && bytes.len() > 1 {
                        let split = u.int_in_range(1..=bytes.len() - 1)?;
                        self.note_acks(&bytes, 0, split);
                        self.feed(u, now, &bytes[..split])?;
                        self.service();
                        if self.can_read() {
                            self.note_acks(&bytes, split, bytes.len());
                            self.feed(u, self.now(), &bytes[split..])?;
                        }
                    } else {
                        self.note_acks(&bytes, 0, bytes.len());
                        self.feed(u, now, &bytes)?;
                    }
                }
            }
        }
        self.service();
        Ok(())
    }

    /// A driver reads only from an open transport, and only while the engine wants it.
    fn can_read(&self) -> bool {
        matches!(self.transport, Transport::Open { .. }) && self.engine.wants_read()
    }
}

/// Each input runs twice: with the engine's session on the heap and on fixed storage (12
/// entries, 128-byte buffers; inputs of odd length with message lists of 2, so that the
/// lists are exactly as large as the messages the engine may hold).
fn run(data: &[u8]) -> Result<()> {
    let heap = run_on::<Heap>(data);
    let fixed = if data.len() % 2 == 0 {
        run_on::<Fixed<12, 128>>(data)
    } else {
        run_on::<Fixed<12, 128, 128, 2>>(data)
    };
    heap.and(fixed)
}

fn run_on<S: Storage>(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    // The first choice: MQTT 3.1.1 (a 0 byte, as the regression inputs start) or 5.
    let version = if u.arbitrary()? {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V311
    };
    let session = SessionConfig {
        client_id: if u.ratio(1, 16)? {
            "".into()
        } else {
            "fuzz".into()
        },
        keep_alive: *u.choose(&[0, 1, 5, 60, 600])?,
        ping_timeout: if u.arbitrary()? {
            Some(Duration::from_millis(u.int_in_range(0..=10_000)?))
        } else {
            None
        },
        connect_timeout: if u.ratio(1, 8)? {
            millis(&mut u, 100)?
        } else {
            millis(&mut u, 30 * SECOND)?
        },
        max_in_flight: u.int_in_range(1..=4)?,
        max_outgoing: u.int_in_range(1..=8)?,
        max_packet_size: if u.ratio(1, 8)? {
            u.int_in_range(2..=32)?
        } else {
            4096
        },
        ..SessionConfig::default()
    };
    let mut config = EngineConfig::new(session);
    config.servers = u.int_in_range(1..=3)?;
    config.clean_session = u.ratio(1, 4)?;
    config.max_queued = u.int_in_range(1..=16)?;
    config.max_queued_bytes = u.int_in_range(0..=256)?;
    config.overflow = *u.choose(&[
        Overflow::DropOldest,
        Overflow::DropNewest,
        Overflow::RefuseNew,
    ])?;
    config.max_received = u.int_in_range(1..=8)?;
    config.max_received_bytes = if u.arbitrary()? {
        u.int_in_range(1..=64)?
    } else {
        1 << 20
    };
    config.manual_ack = u.arbitrary()?;
    if version == ProtocolVersion::V5 {
        let v5 = &mut config.session.v5;
        v5.session_expiry_interval = match u.int_in_range(0..=3)? {
            0 => None,
            1 => Some(0),
            2 => Some(u.int_in_range(1..=7200)?),
            _ => Some(u32::MAX),
        };
        v5.receive_maximum = u.arbitrary::<bool>()?.then_some(u.int_in_range(1..=3)?);
        v5.topic_alias_maximum = u.arbitrary::<bool>()?.then_some(u.int_in_range(0..=2)?);
        v5.topic_aliases = u.arbitrary()?;
        config.session.protocol = version;
        config.follow_server_references = u.arbitrary()?;
    }
    let consume = *u.choose(&[Consume::Always, Consume::Sometimes, Consume::Never])?;
    let policy = policy(&mut u, false)?;
    let seed = u.arbitrary()?;
    let now = u.int_in_range(0..=1_000_000)?;
    trace!("{config:#?}\nconsume {consume:?}, seed {seed}, start at {now} ms");
    let config_follow = config.follow_server_references;
    let mut harness = Harness::<S> {
        servers: config.servers,
        clean_session: config.clean_session,
        written: BTreeSet::new(),
        qos2_sent: BTreeSet::new(),
        max_received: config.max_received,
        max_received_bytes: config.max_received_bytes,
        engine: Engine::with_storage(config, policy, seed, Instant::from_millis(now)),
        now,
        consume,
        transport: Transport::Closed,
        outstanding: BTreeSet::new(),
        settled: BTreeSet::new(),
        durable: BTreeSet::new(),
        store_settled: BTreeSet::new(),
        counts: Counts::default(),
        held: VecDeque::new(),
        recent: VecDeque::new(),
        known_ids: VecDeque::new(),
        owed: VecDeque::new(),
        expect_disconnect: false,
        disconnect_checked: false,
        events_seen: 0,
        published_ids: BTreeSet::new(),
        version,
        follow_references: config_follow,
        reference_on_connection: false,
        redirect_allowed: false,
        deadlines: BTreeMap::new(),
        own_expiry: BTreeMap::new(),
        unacked: BTreeSet::new(),
        out_aliases: BTreeMap::new(),
    };
    // Messages a previous process left in its durable outbox.
    for _ in 0..u.int_in_range(0..=3)? {
        let id = harness.engine.next_message_id().0 + u.int_in_range(0..=2)?;
        let payload = tagged_payload(&mut u, id)?;
        let topic = *u.choose(TOPICS)?;
        let qos = qos(&mut u)?;
        let packet_id = if u.arbitrary()? {
            PacketId::new(u.int_in_range(1..=8)?)
        } else {
            None
        };
        let result = harness.engine.restore(
            MessageId(id),
            topic,
            &payload,
            qos,
            u.arbitrary()?,
            packet_id,
        );
        trace!("restore {id} {topic:?} {qos:?} {packet_id:?} -> {result:?}");
        if result.is_ok() {
            assert!(harness.outstanding.insert(id) && harness.durable.insert(id));
        }
    }
    // The first drive: the engine asks for a connection at once.
    harness.advance(now);
    while !u.is_empty() {
        harness.step(&mut u)?;
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
