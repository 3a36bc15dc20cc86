//! The broker's per-client state (sessions, in-flight window, queues) and what it writes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use umqtt_core::packet::{Packet, PacketId, Publish, QoS};
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

/// State that outlives a connection when `clean_session` is 0 `[MQTT-3.1.2-4]`.
#[derive(Debug, Clone, Default)]
pub(super) struct Session {
    pub(super) clean: bool,
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
}

/// What the broker writes, and the record of every PUBLISH it wrote.
#[derive(Debug, Default)]
pub(super) struct Output {
    pub(super) outbox: Vec<(Instant, ConnId, Action)>,
    pub(super) delivered: BTreeMap<String, Vec<Delivery>>,
}

impl Output {
    pub(super) fn send(&mut self, now: Instant, conn: ConnId, packet: &Packet<'_>) {
        self.outbox.push((now, conn, Action::Send(encode(packet))));
    }

    pub(super) fn publish(
        &mut self,
        now: Instant,
        conn: ConnId,
        client_id: &str,
        message: &Message,
        dup: bool,
        packet_id: Option<PacketId>,
    ) {
        self.send(
            now,
            conn,
            &Packet::Publish(Publish {
                dup,
                qos: message.qos,
                retain: message.retain,
                topic: &message.topic,
                packet_id,
                payload: &message.payload,
                properties: Default::default(),
            }),
        );
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
                at: now,
            });
    }

    /// Sends queued messages while the in-flight window has room.
    pub(super) fn fill_window(
        &mut self,
        now: Instant,
        client_id: &str,
        session: &mut Session,
        max_in_flight: usize,
    ) {
        let Some(conn) = session.conn else { return };
        while session.in_flight.len() < max_in_flight {
            let Some(message) = session.queue.pop_front() else {
                break;
            };
            let packet_id = session.next_packet_id();
            self.publish(now, conn, client_id, &message, false, Some(packet_id));
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
pub(super) fn encode(packet: &Packet<'_>) -> Vec<u8> {
    let len = packet.encoded_len().expect("broker packets are valid");
    let mut bytes = vec![0; len];
    packet.encode(&mut bytes).expect("sized by encoded_len");
    bytes
}
