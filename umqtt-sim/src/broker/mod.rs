//! The simulated MQTT 3.1.1 broker: sessions, routing, retained messages, QoS handshakes and
//! keepalive, behaving like mosquitto with `persistence true`.
//!
//! It never touches the network: the [`SimNet`](super::SimNet) feeds it opens, bytes and closes
//! and carries what it writes ([`Action`]s in its outbox) back to the clients.

mod incoming;
mod records;
mod session;

pub use records::{Accepted, ConnectRecord, Delivery};
pub(crate) use session::Action;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use umqtt_core::packet::{
    decode, ConnAck, ConnectReturnCode, Decoded, Packet, PacketId, PacketType, QoS, SubAck,
    SubscribeReturnCode, MAX_REMAINING_LENGTH,
};
use umqtt_core::{topic, Instant};

use super::ConnId;

/// mosquitto's default `max_inflight_messages`.
const DEFAULT_MAX_INFLIGHT: usize = 20;

use incoming::{ConnectRequest, Incoming};
use session::{Awaiting, Message, Output, Session};

/// One network connection as the broker sees it.
#[derive(Debug)]
struct Conn {
    /// Bytes received and not yet decoded.
    buffer: Vec<u8>,
    /// Set once CONNECT was accepted.
    client_id: Option<String>,
    keep_alive: u16,
    last_packet: Instant,
    will: Option<Message>,
}

/// A deterministic MQTT 3.1.1 broker, one per simulated server.
///
/// Like mosquitto with `persistence true`: persistent sessions (subscriptions, in-flight
/// messages, offline queue of QoS 1/2 messages, incoming QoS 2 table) and retained messages, an
/// outgoing in-flight window of 20 with the rest queued, DUP resends on a resumed session,
/// keepalive enforced at 1.5 × the client's keepalive `[MQTT-3.1.2-24]`, wills, client-id
/// takeover. Choices where the specification leaves room:
///
/// - a message matching several of one client's subscriptions is delivered once, at the highest
///   granted QoS `[MQTT-3.3.5-1]`;
/// - QoS 0 messages are not queued for a disconnected client (mosquitto's default);
/// - the will is published on any close without DISCONNECT (end of stream, reset, keepalive
///   timeout, protocol violation), but not when a takeover by the same client id closes the old
///   connection, nor when the broker process itself goes down;
/// - a connection that never sends CONNECT is kept open.
///
/// Tests read what happened through [`accepted`](Self::accepted),
/// [`delivered`](Self::delivered), [`connects`](Self::connects) and
/// [`protocol_violations`](Self::protocol_violations), and act as other clients through
/// [`publish`](Self::publish).
#[derive(Debug)]
pub struct SimBroker {
    conns: BTreeMap<ConnId, Conn>,
    sessions: BTreeMap<String, Session>,
    retained: BTreeMap<String, Message>,
    out: Output,
    accepted: Vec<Accepted>,
    connects: Vec<ConnectRecord>,
    received: BTreeMap<String, Vec<(Instant, PacketType)>>,
    violations: Vec<String>,
    opens: u64,
    max_packet_size: usize,
    max_in_flight: usize,
    refuse_connect: Option<ConnectReturnCode>,
    refused_filters: BTreeSet<String>,
    withhold_acks: bool,
    assigned_ids: u64,
    /// Keep `accepted`, `connects` and `received` (default true).
    history: bool,
}

impl Default for SimBroker {
    fn default() -> Self {
        SimBroker::new()
    }
}

impl SimBroker {
    /// A broker with no sessions, no retained messages and mosquitto's defaults.
    pub fn new() -> SimBroker {
        SimBroker {
            conns: BTreeMap::new(),
            sessions: BTreeMap::new(),
            retained: BTreeMap::new(),
            out: Output::default(),
            accepted: Vec::new(),
            connects: Vec::new(),
            received: BTreeMap::new(),
            violations: Vec::new(),
            opens: 0,
            max_packet_size: 1 + 4 + MAX_REMAINING_LENGTH,
            max_in_flight: DEFAULT_MAX_INFLIGHT,
            refuse_connect: None,
            refused_filters: BTreeSet::new(),
            withhold_acks: false,
            assigned_ids: 0,
            history: true,
        }
    }

    // ---- what tests configure ----

    /// Publishes a message as if another client had: routed to subscribers, stored if retained
    /// (an empty retained payload deletes the stored one). Not recorded in
    /// [`accepted`](Self::accepted). Panics on an invalid topic name.
    pub fn publish(&mut self, now: Instant, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        topic::validate_topic_name(topic).expect("SimBroker::publish: invalid topic name");
        let message = Message {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos,
            retain,
        };
        self.route(now, &message);
    }

    /// Largest packet (fixed header included) the broker accepts; a larger one is a protocol
    /// violation and closes the connection. Default: the largest MQTT allows.
    pub fn set_max_packet_size(&mut self, max: usize) {
        self.max_packet_size = max;
    }

    /// Outgoing QoS 1/2 messages in flight per client before the rest are queued (default 20,
    /// mosquitto's `max_inflight_messages`). At least 1.
    pub fn set_max_in_flight(&mut self, max: usize) {
        self.max_in_flight = max.max(1);
    }

    /// Answers every CONNECT with this return code and closes the connection (e.g.
    /// `BadUserNameOrPassword`), or accepts them again with `None`.
    pub fn set_refuse_connect(&mut self, code: Option<ConnectReturnCode>) {
        self.refuse_connect = code.filter(|c| *c != ConnectReturnCode::Accepted);
    }

    /// Answers SUBSCRIBE to exactly this filter with 0x80 (failure) while `on`.
    pub fn refuse_subscription(&mut self, filter: &str, on: bool) {
        if on {
            self.refused_filters.insert(filter.to_owned());
        } else {
            self.refused_filters.remove(filter);
        }
    }

    /// While `on`, PUBACK, PUBREC, PUBCOMP, SUBACK and UNSUBACK are not sent (the packets are
    /// still processed). Nothing withheld is sent when it is turned off.
    pub fn set_withhold_acks(&mut self, on: bool) {
        self.withhold_acks = on;
    }

    // ---- what tests observe ----

    /// Keeps (`true`, the default) or stops keeping the records [`accepted`](Self::accepted),
    /// [`connects`](Self::connects) and [`received`](Self::received): a simulation of months
    /// that does not read them saves their memory and time.
    pub fn set_history(&mut self, on: bool) {
        self.history = on;
    }

    /// Every application message accepted from a client's PUBLISH, in order. A QoS 2 resend
    /// before PUBREL is not accepted again; a QoS 1 resend is (it is a duplicate).
    pub fn accepted(&self) -> &[Accepted] {
        &self.accepted
    }

    /// Every PUBLISH the broker wrote to connections of `client_id`, resends included.
    pub fn delivered(&self, client_id: &str) -> Vec<Delivery> {
        self.out
            .delivered
            .get(client_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Every packet received from connections of `client_id` (from its accepted CONNECT on),
    /// with the time it was decoded: to check pings, resubscriptions, resends.
    pub fn received(&self, client_id: &str) -> Vec<(Instant, PacketType)> {
        self.received.get(client_id).cloned().unwrap_or_default()
    }

    /// Every CONNECT answered, in order (refused ones included).
    pub fn connects(&self) -> &[ConnectRecord] {
        &self.connects
    }

    /// Connection opens that reached this broker's host, refused ones included (black-holed
    /// ones never reach it; see [`SimNet::open_attempts`](super::SimNet::open_attempts)).
    pub fn opens(&self) -> u64 {
        self.opens
    }

    /// The subscriptions of `client_id`'s session with their granted QoS, in order of first
    /// subscription; empty without a session.
    pub fn subscriptions(&self, client_id: &str) -> Vec<(String, QoS)> {
        self.sessions
            .get(client_id)
            .map(|s| s.subscriptions.clone())
            .unwrap_or_default()
    }

    /// Whether the broker holds a session for `client_id`: a persistent one (connected or not)
    /// or a clean one whose connection is open.
    pub fn has_session(&self, client_id: &str) -> bool {
        self.sessions.contains_key(client_id)
    }

    /// Whether a connection of `client_id` is open as far as the broker knows (a half-open link
    /// stays connected until keepalive notices).
    pub fn is_connected(&self, client_id: &str) -> bool {
        self.sessions
            .get(client_id)
            .is_some_and(|s| s.conn.is_some())
    }

    /// Outgoing QoS 1/2 messages for `client_id` sent and not yet completed.
    pub fn in_flight(&self, client_id: &str) -> usize {
        self.sessions
            .get(client_id)
            .map_or(0, |s| s.in_flight.len())
    }

    /// Outgoing QoS 1/2 messages for `client_id` waiting (window full or client offline).
    pub fn queued(&self, client_id: &str) -> usize {
        self.sessions.get(client_id).map_or(0, |s| s.queue.len())
    }

    /// The retained message stored for `topic`, as (payload, QoS).
    pub fn retained(&self, topic: &str) -> Option<(Vec<u8>, QoS)> {
        self.retained.get(topic).map(|m| (m.payload.clone(), m.qos))
    }

    /// Every rule of MQTT 3.1.1 a client broke, in order, each as
    /// `"<ms> conn <id>: <what> [MQTT-x.y.z-n]"`. The broker closed the connection each time.
    pub fn protocol_violations(&self) -> &[String] {
        &self.violations
    }

    // ---- what the network drives ----

    pub(crate) fn take_outbox(&mut self) -> Vec<(Instant, ConnId, Action)> {
        std::mem::take(&mut self.out.outbox)
    }

    pub(crate) fn has_output(&self) -> Option<Instant> {
        self.out.outbox.first().map(|(at, _, _)| *at)
    }

    /// A host-level open reached this server (counted whether or not it is accepted).
    pub(crate) fn count_open(&mut self) {
        self.opens += 1;
    }

    pub(crate) fn handle_open(&mut self, now: Instant, conn: ConnId) {
        self.conns.insert(
            conn,
            Conn {
                buffer: Vec::new(),
                client_id: None,
                keep_alive: 0,
                last_packet: now,
                will: None,
            },
        );
    }

    /// The peer closed (end of stream) or reset the connection.
    pub(crate) fn handle_peer_closed(&mut self, now: Instant, conn: ConnId) {
        self.close(now, conn, true, false);
    }

    /// The broker process stops: every connection vanishes without wills; sessions and retained
    /// messages survive only if `keep_sessions`.
    pub(crate) fn crash(&mut self, keep_sessions: bool) {
        self.conns.clear();
        self.out.outbox.clear();
        if keep_sessions {
            self.sessions.retain(|_, s| !s.clean);
            for session in self.sessions.values_mut() {
                session.conn = None;
            }
        } else {
            self.sessions.clear();
            self.retained.clear();
        }
    }

    /// Earliest keepalive deadline.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.conns.values().filter_map(keepalive_deadline).min()
    }

    /// Closes every connection whose keepalive deadline has passed `[MQTT-3.1.2-24]`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| keepalive_deadline(c).is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for conn in expired {
            self.close(now, conn, true, true);
        }
    }

    pub(crate) fn handle_data(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.buffer.extend_from_slice(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let (incoming, packet_type, consumed) = match decode(&c.buffer, self.max_packet_size) {
                Ok(Decoded::Complete { packet, consumed }) => (
                    Incoming::from_packet(&packet),
                    packet.packet_type(),
                    consumed,
                ),
                Ok(Decoded::Incomplete) => return,
                Err(e) => {
                    self.violation(now, conn, &format!("malformed packet: {e}"));
                    return;
                }
            };
            c.buffer.drain(..consumed);
            // Only complete packets are signs of life.
            c.last_packet = now;
            if !self.history {
                self.handle_packet(now, conn, incoming);
                continue;
            }
            let before = c.client_id.clone();
            self.handle_packet(now, conn, incoming);
            // CONNECT is filed under the client id it established.
            let client_id =
                before.or_else(|| self.conns.get(&conn).and_then(|c| c.client_id.clone()));
            if let Some(client_id) = client_id {
                self.received
                    .entry(client_id)
                    .or_default()
                    .push((now, packet_type));
            }
        }
    }

    // ---- internals ----

    /// Records a violation and closes the connection like a real broker (will published).
    fn violation(&mut self, now: Instant, conn: ConnId, what: &str) {
        self.violations
            .push(format!("{} conn {}: {what}", now.as_millis(), conn.0));
        self.close(now, conn, true, true);
    }

    /// Forgets a connection; publishes its will if asked and it has one; tells the network to
    /// close it if `notify`.
    fn close(&mut self, now: Instant, conn: ConnId, publish_will: bool, notify: bool) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if notify {
            self.out.outbox.push((now, conn, Action::Close));
        }
        if let Some(client_id) = &c.client_id {
            if let Some(session) = self.sessions.get_mut(client_id) {
                if session.conn == Some(conn) {
                    session.conn = None;
                    if session.clean {
                        self.sessions.remove(client_id);
                    }
                }
            }
        }
        if publish_will {
            if let Some(will) = c.will {
                self.route(now, &will);
            }
        }
    }

    fn send_ack(&mut self, now: Instant, conn: ConnId, packet: &Packet<'_>) {
        if !self.withhold_acks {
            self.out.send(now, conn, packet);
        }
    }

    fn handle_packet(&mut self, now: Instant, conn: ConnId, incoming: Incoming) {
        let Some(client_id) = self.conns.get(&conn).and_then(|c| c.client_id.clone()) else {
            return match incoming {
                Incoming::Connect(request) => self.handle_connect(now, conn, request),
                _ => self.violation(now, conn, "first packet is not CONNECT [MQTT-3.1.0-1]"),
            };
        };
        match incoming {
            Incoming::Connect(_) => self.violation(now, conn, "second CONNECT [MQTT-3.1.0-2]"),
            Incoming::Publish {
                message,
                dup,
                packet_id,
            } => self.handle_publish(now, conn, &client_id, message, dup, packet_id),
            Incoming::PubAck(id) => {
                self.complete(now, &client_id, id, Awaiting::PubAck);
            }
            Incoming::PubRec(id) => {
                let Some(session) = self.sessions.get_mut(&client_id) else {
                    return;
                };
                if let Some(f) = session.in_flight.iter_mut().find(|f| f.packet_id == id) {
                    if f.stage != Awaiting::PubAck {
                        f.stage = Awaiting::PubComp;
                        self.out
                            .send(now, conn, &Packet::PubRel(umqtt_core::packet::Ack::new(id)));
                    }
                }
            }
            Incoming::PubComp(id) => {
                self.complete(now, &client_id, id, Awaiting::PubComp);
            }
            Incoming::PubRel(id) => {
                if let Some(session) = self.sessions.get_mut(&client_id) {
                    session.incoming_qos2.remove(&id);
                }
                // PUBCOMP even for an unknown id [MQTT-4.3.3-2]: the PUBCOMP may have been lost.
                self.send_ack(
                    now,
                    conn,
                    &Packet::PubComp(umqtt_core::packet::Ack::new(id)),
                );
            }
            Incoming::Subscribe { packet_id, filters } => {
                if self.id_in_incoming_qos2(&client_id, packet_id) {
                    return self.packet_id_reuse(now, conn, "SUBSCRIBE", packet_id);
                }
                self.handle_subscribe(now, conn, &client_id, packet_id, &filters);
            }
            Incoming::Unsubscribe { packet_id, filters } => {
                if self.id_in_incoming_qos2(&client_id, packet_id) {
                    return self.packet_id_reuse(now, conn, "UNSUBSCRIBE", packet_id);
                }
                if let Some(session) = self.sessions.get_mut(&client_id) {
                    session
                        .subscriptions
                        .retain(|(f, _)| !filters.iter().any(|u| u == f));
                }
                self.send_ack(
                    now,
                    conn,
                    &Packet::UnsubAck(umqtt_core::packet::UnsubAck::new(packet_id)),
                );
            }
            Incoming::PingReq => self.out.send(now, conn, &Packet::PingResp),
            Incoming::Disconnect => {
                // A DISCONNECT discards the will [MQTT-3.14.4-3].
                self.close(now, conn, false, true);
            }
            Incoming::ServerOnly(packet_type) => {
                self.violation(
                    now,
                    conn,
                    &format!("{packet_type:?} is sent only by servers [MQTT-2.2.1]"),
                );
            }
        }
    }

    fn id_in_incoming_qos2(&self, client_id: &str, id: PacketId) -> bool {
        self.sessions
            .get(client_id)
            .is_some_and(|s| s.incoming_qos2.contains(&id))
    }

    fn packet_id_reuse(&mut self, now: Instant, conn: ConnId, what: &str, id: PacketId) {
        self.violation(
            now,
            conn,
            &format!(
                "{what} reuses packet id {id} of a QoS 2 PUBLISH not yet released [MQTT-2.3.1-2]"
            ),
        );
    }

    /// PUBACK or PUBCOMP: frees the slot if the message was at `stage`, then refills the window.
    fn complete(&mut self, now: Instant, client_id: &str, id: PacketId, stage: Awaiting) {
        let max = self.max_in_flight;
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        let Some(index) = session
            .in_flight
            .iter()
            .position(|f| f.packet_id == id && f.stage == stage)
        else {
            return;
        };
        session.in_flight.remove(index);
        self.out.fill_window(now, client_id, session, max);
    }

    fn handle_connect(&mut self, now: Instant, conn: ConnId, request: ConnectRequest) {
        let ConnectRequest {
            client_id,
            keep_alive,
            clean_session,
            username,
            will,
        } = request;
        let mut record = ConnectRecord {
            client_id: client_id.clone(),
            clean_session,
            keep_alive,
            username,
            session_present: false,
            code: ConnectReturnCode::Accepted,
            at: now,
        };
        let refusal = if let Some(code) = self.refuse_connect {
            Some(code)
        } else if client_id.is_empty() && !clean_session {
            Some(ConnectReturnCode::IdentifierRejected) // [MQTT-3.1.3-8]
        } else {
            None
        };
        if let Some(code) = refusal {
            record.code = code;
            if self.history {
                self.connects.push(record);
            }
            self.out
                .send(now, conn, &Packet::ConnAck(ConnAck::new(false, code)));
            // Not yet connected: no will [MQTT-3.2.2-5].
            self.close(now, conn, false, true);
            return;
        }
        let client_id = if client_id.is_empty() {
            self.assigned_ids += 1;
            format!("auto-{}", self.assigned_ids)
        } else {
            client_id
        };
        record.client_id.clone_from(&client_id);

        // Takeover: the existing connection of this client id is closed [MQTT-3.1.4-2].
        if let Some(old) = self.sessions.get(&client_id).and_then(|s| s.conn) {
            self.close(now, old, false, true);
        }
        if clean_session {
            // [MQTT-3.1.2-6]
            self.sessions.remove(&client_id);
        }
        let session_present = self.sessions.contains_key(&client_id);
        let session = self.sessions.entry(client_id.clone()).or_default();
        session.clean = clean_session;
        session.conn = Some(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.client_id = Some(client_id.clone());
            c.keep_alive = keep_alive;
            c.will = will;
        }
        record.session_present = session_present;
        if self.history {
            self.connects.push(record);
        }
        self.out.send(
            now,
            conn,
            &Packet::ConnAck(ConnAck::new(session_present, ConnectReturnCode::Accepted)),
        );
        if session_present {
            // Resume: unacknowledged PUBLISH again with DUP, PUBREL for those past PUBREC, in
            // the original order [MQTT-4.4.0-1].
            for f in &session.in_flight {
                match f.stage {
                    Awaiting::PubAck | Awaiting::PubRec => {
                        self.out
                            .publish(now, conn, &client_id, &f.message, true, Some(f.packet_id))
                    }
                    Awaiting::PubComp => {
                        self.out.send(
                            now,
                            conn,
                            &Packet::PubRel(umqtt_core::packet::Ack::new(f.packet_id)),
                        );
                    }
                }
            }
        }
        self.out
            .fill_window(now, &client_id, session, self.max_in_flight);
    }

    fn handle_publish(
        &mut self,
        now: Instant,
        conn: ConnId,
        client_id: &str,
        message: Message,
        dup: bool,
        packet_id: Option<PacketId>,
    ) {
        if let (QoS::ExactlyOnce, Some(id)) = (message.qos, packet_id) {
            if self.id_in_incoming_qos2(client_id, id) {
                if !dup {
                    return self.packet_id_reuse(now, conn, "PUBLISH", id);
                }
                // A resend before PUBREL: already accepted, answer again [MQTT-4.3.3-2].
                self.send_ack(now, conn, &Packet::PubRec(umqtt_core::packet::Ack::new(id)));
                return;
            }
        }
        if self.history {
            self.accepted.push(Accepted {
                client_id: client_id.to_owned(),
                topic: message.topic.clone(),
                payload: message.payload.clone(),
                qos: message.qos,
                retain: message.retain,
                dup,
                packet_id,
                at: now,
            });
        }
        // Acknowledged before it is routed, as mosquitto writes its PUBACK first.
        match (message.qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                self.send_ack(now, conn, &Packet::PubAck(umqtt_core::packet::Ack::new(id)))
            }
            (QoS::ExactlyOnce, Some(id)) => {
                if let Some(session) = self.sessions.get_mut(client_id) {
                    session.incoming_qos2.insert(id);
                }
                self.send_ack(now, conn, &Packet::PubRec(umqtt_core::packet::Ack::new(id)));
            }
            _ => {}
        }
        self.route(now, &message);
    }

    fn handle_subscribe(
        &mut self,
        now: Instant,
        conn: ConnId,
        client_id: &str,
        packet_id: PacketId,
        filters: &[(String, QoS)],
    ) {
        let mut codes = Vec::with_capacity(filters.len());
        let mut granted = Vec::new();
        if let Some(session) = self.sessions.get_mut(client_id) {
            for (filter, qos) in filters {
                if self.refused_filters.contains(filter) {
                    codes.push(SubscribeReturnCode::Failure.to_u8());
                    continue;
                }
                codes.push(SubscribeReturnCode::Success(*qos).to_u8());
                granted.push((filter.clone(), *qos));
                // A subscription to an existing filter replaces it [MQTT-3.8.4-3].
                match session.subscriptions.iter_mut().find(|(f, _)| f == filter) {
                    Some(existing) => existing.1 = *qos,
                    None => session.subscriptions.push((filter.clone(), *qos)),
                }
            }
        }
        self.send_ack(
            now,
            conn,
            &Packet::SubAck(SubAck {
                packet_id,
                return_codes: &codes,
                properties: Default::default(),
            }),
        );
        // Retained messages for each new subscription, with RETAIN set [MQTT-3.3.1-6],
        // [MQTT-3.3.1-8].
        let mut retained = Vec::new();
        for (filter, qos) in &granted {
            for message in self.retained.values() {
                if topic::matches(filter, &message.topic) {
                    let mut copy = message.clone();
                    copy.qos = copy.qos.min(*qos);
                    copy.retain = true;
                    retained.push(copy);
                }
            }
        }
        for message in retained {
            self.deliver(now, client_id, message);
        }
    }

    /// Stores or deletes a retained message, then delivers to every matching subscriber.
    fn route(&mut self, now: Instant, message: &Message) {
        if message.retain {
            if message.payload.is_empty() {
                // [MQTT-3.3.1-10], [MQTT-3.3.1-11]
                self.retained.remove(&message.topic);
            } else {
                // [MQTT-3.3.1-5]
                self.retained.insert(message.topic.clone(), message.clone());
            }
        }
        let mut targets = Vec::new();
        for (client_id, session) in &self.sessions {
            let granted = session
                .subscriptions
                .iter()
                .filter(|(f, _)| topic::matches(f, &message.topic))
                .map(|(_, q)| *q)
                .max();
            if let Some(granted) = granted {
                targets.push((client_id.clone(), granted));
            }
        }
        for (client_id, granted) in targets {
            let mut copy = message.clone();
            copy.qos = copy.qos.min(granted);
            // RETAIN is 0 for a match of an established subscription [MQTT-3.3.1-9].
            copy.retain = false;
            self.deliver(now, &client_id, copy);
        }
    }

    /// Sends (QoS 0, or QoS 1/2 with a free slot) or queues a message for `client_id`.
    fn deliver(&mut self, now: Instant, client_id: &str, message: Message) {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        match (session.conn, message.qos) {
            (Some(conn), QoS::AtMostOnce) => {
                self.out
                    .publish(now, conn, client_id, &message, false, None);
            }
            (None, QoS::AtMostOnce) => {}
            (_, _) => {
                session.queue.push_back(message);
                self.out
                    .fill_window(now, client_id, session, self.max_in_flight);
            }
        }
    }
}

/// When the broker gives up on a silent client: 1.5 × keepalive after its last packet.
fn keepalive_deadline(conn: &Conn) -> Option<Instant> {
    if conn.client_id.is_none() || conn.keep_alive == 0 {
        return None;
    }
    Some(
        conn.last_packet
            .saturating_add(Duration::from_millis(u64::from(conn.keep_alive) * 1500)),
    )
}
