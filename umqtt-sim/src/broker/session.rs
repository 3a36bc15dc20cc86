//! The broker's per-client state (sessions, in-flight window, queues) and what it writes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use umqtt_core::packet::{
    Packet, PacketId, Properties, Property, PropertyList, ProtocolVersion, Publish, QoS,
};
use umqtt_core::Instant;

use super::records::Delivery;
use crate::ConnId;

/// What the broker asks the network to do with one of its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Write these bytes (one whole packet).
    Send(Vec<u8>),
    /// Close the connection (FIN).
    Close,
}

/// An application message as the broker stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Message {
    pub(super) topic: String,
    pub(super) payload: Vec<u8>,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    /// When its MQTT 5 Message Expiry Interval runs out (`None`: never).
    pub(super) expires_at: Option<Instant>,
}

impl Message {
    /// Whether its Message Expiry Interval has passed at `now`.
    pub(super) fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The Message Expiry Interval a PUBLISH sent at `now` carries: the received interval
    /// minus the time the message waited in the broker `[MQTT-3.3.2-6]`, in whole seconds
    /// rounded up (0 once it has run out).
    pub(super) fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        let at = self.expires_at?;
        let left = at.as_millis().saturating_sub(now.as_millis());
        Some(u32::try_from(left.div_ceil(1000)).unwrap_or(u32::MAX))
    }
}

/// The instant `interval` seconds after `now` (a Message or Session Expiry Interval).
pub(super) fn after_seconds(now: Instant, interval: u32) -> Instant {
    now.saturating_add(Duration::from_secs(u64::from(interval)))
}

/// Where an outgoing QoS 1/2 PUBLISH stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // named after the packets awaited
pub(super) enum Awaiting {
    /// QoS 1, PUBLISH sent, waiting for PUBACK.
    PubAck,
    /// QoS 2, PUBLISH sent, waiting for PUBREC.
    PubRec,
    /// QoS 2, PUBREL sent, waiting for PUBCOMP.
    PubComp,
}

#[derive(Debug, Clone)]
pub(super) struct InFlight {
    pub(super) packet_id: PacketId,
    pub(super) message: Message,
    pub(super) stage: Awaiting,
}

/// Session Expiry Interval meaning "never expires" (MQTT 5 section 3.1.2.11.2).
pub(super) const NEVER: u32 = u32::MAX;

/// State that outlives a connection when `clean_session` is 0 `[MQTT-3.1.2-4]` (MQTT 5: while
/// its Session Expiry Interval has not passed since the connection ended).
#[derive(Debug, Clone, Default)]
pub(super) struct Session {
    /// The session ends with its connection (3.1.1 clean session; MQTT 5 Session Expiry
    /// Interval 0).
    pub(super) clean: bool,
    /// Session Expiry Interval in seconds ([`NEVER`] for a 3.1.1 persistent session).
    pub(super) expiry: u32,
    /// When its last connection ended (the expiry clock starts then).
    pub(super) disconnected_at: Option<Instant>,
    pub(super) conn: Option<ConnId>,
    /// In order of first subscription; a re-subscribe replaces the QoS in place.
    pub(super) subscriptions: Vec<(String, QoS)>,
    pub(super) last_packet_id: u16,
    /// Outgoing QoS 1/2 messages sent and not completed, in sending order.
    pub(super) in_flight: Vec<InFlight>,
    /// Outgoing QoS 1/2 messages waiting for a window slot or for the client to come back.
    pub(super) queue: VecDeque<Message>,
    /// Incoming QoS 2 packet ids answered with PUBREC and not yet released.
    pub(super) incoming_qos2: BTreeSet<PacketId>,
    /// The client's MQTT 5 Receive Maximum for this connection (`None`: no limit but the
    /// broker's own window).
    pub(super) client_receive_maximum: Option<u16>,
}

impl Session {
    pub(super) fn next_packet_id(&mut self) -> PacketId {
        loop {
            self.last_packet_id = self.last_packet_id.checked_add(1).unwrap_or(1);
            let id = PacketId::new(self.last_packet_id).expect("never 0");
            if !self.in_flight.iter().any(|f| f.packet_id == id) {
                return id;
            }
        }
    }

    /// When this disconnected session expires, if it ever does.
    pub(super) fn expires_at(&self) -> Option<Instant> {
        match (self.conn, self.disconnected_at) {
            (None, Some(at)) if self.expiry != NEVER => Some(after_seconds(at, self.expiry)),
            _ => None,
        }
    }
}

/// How the broker writes to one connection.
#[derive(Debug, Clone, Copy, Default)]
struct ConnOut {
    version: ProtocolVersion,
    /// Bytes written so far.
    written: u64,
    /// The client's MQTT 5 Maximum Packet Size.
    max_packet_size: Option<u32>,
}

/// What the broker writes, and the record of every PUBLISH it wrote.
#[derive(Debug, Default)]
pub(super) struct Output {
    pub(super) outbox: Vec<(Instant, ConnId, Action)>,
    pub(super) delivered: BTreeMap<String, Vec<Delivery>>,
    /// Queued messages whose Message Expiry Interval passed before they could be sent, per
    /// client.
    pub(super) expired: BTreeMap<String, u64>,
    /// Messages discarded because they exceeded the client's Maximum Packet Size, per client.
    pub(super) too_large: BTreeMap<String, u64>,
    conns: BTreeMap<ConnId, ConnOut>,
}

impl Output {
    /// From now on, packets to `conn` are written as `version` and none larger than
    /// `max_packet_size` is sent.
    pub(super) fn set_version(
        &mut self,
        conn: ConnId,
        version: ProtocolVersion,
        max_packet_size: Option<u32>,
    ) {
        let out = self.conns.entry(conn).or_default();
        out.version = version;
        out.max_packet_size = max_packet_size;
    }

    /// The connection is gone.
    pub(super) fn forget(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    /// The version packets to `conn` are written in.
    pub(super) fn version(&self, conn: ConnId) -> ProtocolVersion {
        self.conns
            .get(&conn)
            .map_or(ProtocolVersion::V311, |c| c.version)
    }

    /// Bytes written to `conn` so far.
    pub(super) fn written(&self, conn: ConnId) -> u64 {
        self.conns.get(&conn).map_or(0, |c| c.written)
    }

    pub(super) fn send(&mut self, now: Instant, conn: ConnId, packet: &Packet<'_>) {
        let out = self.conns.entry(conn).or_default();
        let bytes = encode(packet, out.version);
        out.written += bytes.len() as u64;
        self.outbox.push((now, conn, Action::Send(bytes)));
    }

    /// Writes a PUBLISH of `message` (carrying its remaining Message Expiry Interval to an
    /// MQTT 5 client) and records it. Returns false, writing nothing, when the packet exceeds
    /// the client's Maximum Packet Size: the broker then behaves as if it had sent it
    /// `[MQTT-3.1.2-25]`.
    pub(super) fn publish(
        &mut self,
        now: Instant,
        conn: ConnId,
        client_id: &str,
        message: &Message,
        dup: bool,
        packet_id: Option<PacketId>,
    ) -> bool {
        let out = self.conns.get(&conn).copied().unwrap_or_default();
        let expiry = message
            .remaining_expiry(now)
            .filter(|_| out.version.is_v5());
        let list = [Property::MessageExpiryInterval(expiry.unwrap_or(0))];
        let list = PropertyList(if expiry.is_some() { &list } else { &[] });
        let packet = Packet::Publish(Publish {
            dup,
            qos: message.qos,
            retain: message.retain,
            topic: &message.topic,
            packet_id,
            payload: &message.payload,
            properties: Properties::List(&list),
        });
        if let Some(max) = out.max_packet_size {
            let len = packet.encoded_len_with(out.version).unwrap_or(usize::MAX);
            if len > max as usize {
                *self.too_large.entry(client_id.to_owned()).or_default() += 1;
                return false;
            }
        }
        self.send(now, conn, &packet);
        self.delivered
            .entry(client_id.to_owned())
            .or_default()
            .push(Delivery {
                topic: message.topic.clone(),
                payload: message.payload.clone(),
                qos: message.qos,
                retain: message.retain,
                dup,
                packet_id,
                message_expiry_interval: expiry,
                at: now,
            });
        true
    }

    /// Sends queued messages while the in-flight window (the broker's, and an MQTT 5 client's
    /// Receive Maximum) has room; queued messages whose Message Expiry Interval has passed are
    /// dropped instead `[MQTT-3.3.2-5]`.
    pub(super) fn fill_window(
        &mut self,
        now: Instant,
        client_id: &str,
        session: &mut Session,
        max_in_flight: usize,
    ) {
        let Some(conn) = session.conn else { return };
        let max = session
            .client_receive_maximum
            .map_or(max_in_flight, |m| max_in_flight.min(usize::from(m)));
        while session.in_flight.len() < max {
            let Some(message) = session.queue.pop_front() else {
                break;
            };
            if message.is_expired(now) {
                *self.expired.entry(client_id.to_owned()).or_default() += 1;
                continue;
            }
            let packet_id = session.next_packet_id();
            if !self.publish(now, conn, client_id, &message, false, Some(packet_id)) {
                continue;
            }
            let stage = if message.qos == QoS::ExactlyOnce {
                Awaiting::PubRec
            } else {
                Awaiting::PubAck
            };
            session.in_flight.push(InFlight {
                packet_id,
                message,
                stage,
            });
        }
    }
}

/// Encodes a packet the broker built itself; they are always valid.
pub(super) fn encode(packet: &Packet<'_>, version: ProtocolVersion) -> Vec<u8> {
    let len = packet
        .encoded_len_with(version)
        .expect("broker packets are valid");
    let mut bytes = vec![0; len];
    packet
        .encode_with(&mut bytes, version)
        .expect("sized by encoded_len");
    bytes
}
