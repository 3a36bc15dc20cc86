//! The simulated MQTT 3.1.1 and MQTT 5 broker: sessions, routing, retained messages, QoS
//! handshakes and keepalive, behaving like mosquitto with `persistence true`.
//!
//! It never touches the network: the [`SimNet`](super::SimNet) feeds it opens, bytes and closes
//! and carries what it writes ([`Action`]s in its outbox) back to the clients.

mod incoming;
mod records;
mod session;
mod window;

pub use records::{Accepted, ConnectRecord, Delivery, Refusal};
pub(crate) use session::Action;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use umqtt_core::packet::{
    decode_with, Ack, ConnAck, ConnectReturnCode, DecodeError, Decoded, Disconnect, Packet,
    PacketId, PacketType, Properties, Property, PropertyList, ProtocolVersion, QoS, ReasonCode,
    SubAck, SubscribeReturnCode, UnsubAck, MAX_REMAINING_LENGTH,
};
use umqtt_core::{topic, Instant};

use super::ConnId;

/// mosquitto's default `max_inflight_messages`.
const DEFAULT_MAX_INFLIGHT: usize = 20;

use incoming::{ConnectRequest, Incoming};
use session::{after_seconds, Awaiting, Message, Output, Session, NEVER};
use window::IncomingWindow;

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
    /// The will's MQTT 5 Message Expiry Interval.
    will_expiry: Option<u32>,
    /// Protocol of the accepted CONNECT.
    protocol: ProtocolVersion,
    /// MQTT 5 topic aliases the client set up on this connection.
    aliases: BTreeMap<u16, String>,
    /// The client's QoS 1/2 publications in flight, as it sees them.
    window: IncomingWindow,
}

/// A deterministic MQTT 3.1.1 and MQTT 5 broker, one per simulated server.
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
/// MQTT 5 (a CONNECT of protocol level 5, answered in MQTT 5 with the core's codec): the
/// CONNACK announces what [`set_receive_maximum`](Self::set_receive_maximum),
/// [`set_max_packet_size`](Self::set_max_packet_size),
/// [`set_topic_alias_maximum`](Self::set_topic_alias_maximum),
/// [`set_retain_available`](Self::set_retain_available),
/// [`set_maximum_qos`](Self::set_maximum_qos),
/// [`set_server_keep_alive`](Self::set_server_keep_alive) and
/// [`set_max_session_expiry`](Self::set_max_session_expiry) configure (and that subscription
/// identifiers are not available), and the broker enforces it with a DISCONNECT carrying the
/// specification's reason code. Sessions expire on virtual time after their Session Expiry
/// Interval; queued messages after their Message Expiry Interval (a delivered copy carries
/// what is left of it); the client's Receive Maximum and Maximum Packet Size bound what the
/// broker sends; [`refuse_publish`](Self::refuse_publish) answers chosen topics with a
/// failure reason code. Not implemented: enhanced authentication (AUTH is a protocol error),
/// will delay, subscription options (No Local, Retain As Published, Retain Handling) and
/// subscription identifiers, request/response information.
///
/// Tests read what happened through [`accepted`](Self::accepted),
/// [`delivered`](Self::delivered), [`connects`](Self::connects),
/// [`refused`](Self::refused), [`in_flight_peak`](Self::in_flight_peak) and
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
    accept_v5: bool,
    receive_maximum: u16,
    topic_alias_maximum: u16,
    retain_available: bool,
    maximum_qos: QoS,
    server_keep_alive: Option<u16>,
    max_session_expiry: Option<u32>,
    refused_topics: Vec<(String, ReasonCode)>,
    refusals: Vec<Refusal>,
    in_flight_peak: BTreeMap<String, usize>,
    /// No session expires before this (it may be early: the timer then finds nothing), so
    /// that [`next_timeout`](Self::next_timeout) need not scan every session.
    next_expiry: Option<Instant>,
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
            accept_v5: true,
            receive_maximum: u16::MAX,
            topic_alias_maximum: 0,
            retain_available: true,
            maximum_qos: QoS::ExactlyOnce,
            server_keep_alive: None,
            max_session_expiry: None,
            refused_topics: Vec::new(),
            refusals: Vec::new(),
            in_flight_peak: BTreeMap::new(),
            next_expiry: None,
        }
    }

    // ---- what tests configure ----

    /// Publishes a message as if another client had: routed to subscribers, stored if retained
    /// (an empty retained payload deletes the stored one). Not recorded in
    /// [`accepted`](Self::accepted). Panics on an invalid topic name.
    pub fn publish(&mut self, now: Instant, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        topic::validate_topic_name(topic).expect("SimBroker::publish: invalid topic name");
        self.publish_with_expiry(now, topic, payload, qos, retain, None);
    }

    /// [`publish`](Self::publish) with an MQTT 5 Message Expiry Interval in seconds: the
    /// message is not sent to a subscriber once it has waited that long in the broker.
    pub fn publish_with_expiry(
        &mut self,
        now: Instant,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        message_expiry_interval: Option<u32>,
    ) {
        topic::validate_topic_name(topic).expect("SimBroker::publish: invalid topic name");
        let message = Message {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos,
            retain,
            expires_at: message_expiry_interval.map(|i| after_seconds(now, i)),
        };
        self.route(now, &message);
    }

    /// Largest packet (fixed header included) the broker accepts; a larger one is a protocol
    /// violation and closes the connection (MQTT 5: after DISCONNECT 0x95). Default: the
    /// largest MQTT allows. Announced to MQTT 5 clients as Maximum Packet Size when smaller.
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

    /// Accepts MQTT 5 CONNECTs (`true`, the default) or, like a 3.1.1-only broker, treats
    /// protocol level 5 as a malformed CONNECT and closes the connection.
    pub fn set_accept_v5(&mut self, on: bool) {
        self.accept_v5 = on;
    }

    /// MQTT 5 Receive Maximum: most QoS 1/2 PUBLISH packets a client may have in flight to
    /// the broker (default 65 535, not announced). One more, counted from the client's own
    /// view (see [`in_flight_peak`](Self::in_flight_peak)), is answered with DISCONNECT 0x93
    /// `[MQTT-3.3.4-7]`. At least 1.
    pub fn set_receive_maximum(&mut self, max: u16) {
        self.receive_maximum = max.max(1);
    }

    /// MQTT 5 Topic Alias Maximum: highest topic alias a client may use (default 0: none).
    /// Aliases are resolved per connection; a larger one is answered with DISCONNECT 0x94.
    pub fn set_topic_alias_maximum(&mut self, max: u16) {
        self.topic_alias_maximum = max;
    }

    /// MQTT 5 Retain Available (default true). When false, a retained PUBLISH from an MQTT 5
    /// client is answered with DISCONNECT 0x9A `[MQTT-3.2.2-14]`.
    pub fn set_retain_available(&mut self, on: bool) {
        self.retain_available = on;
    }

    /// MQTT 5 Maximum QoS (default 2). A PUBLISH above it from an MQTT 5 client is answered
    /// with DISCONNECT 0x9B `[MQTT-3.2.2-11]`; subscriptions are granted at most this QoS.
    pub fn set_maximum_qos(&mut self, qos: QoS) {
        self.maximum_qos = qos;
    }

    /// MQTT 5 Server Keep Alive: the keepalive (seconds) imposed on MQTT 5 clients instead of
    /// theirs, and enforced (default `None`: the client's).
    pub fn set_server_keep_alive(&mut self, keep_alive: Option<u16>) {
        self.server_keep_alive = keep_alive;
    }

    /// Caps the MQTT 5 Session Expiry Interval (seconds) a client asks for, announcing the
    /// capped value in CONNACK (default `None`: as asked, `u32::MAX` never expiring).
    pub fn set_max_session_expiry(&mut self, max: Option<u32>) {
        self.max_session_expiry = max;
    }

    /// Refuses PUBLISH to topics matching `filter` with `code` (e.g. 0x87 Not authorized,
    /// 0x97 Quota exceeded), or stops refusing them with `None`. An MQTT 5 client gets the
    /// code in PUBACK / PUBREC; a 3.1.1 one a plain acknowledgement, as mosquitto does for a
    /// denied publish. Either way the message is not routed, not in
    /// [`accepted`](Self::accepted), but in [`refused`](Self::refused). Panics on a code that
    /// is not a failure allowed in PUBACK and PUBREC.
    pub fn refuse_publish(&mut self, filter: &str, code: Option<ReasonCode>) {
        self.refused_topics.retain(|(f, _)| f != filter);
        if let Some(code) = code {
            assert!(
                code.is_error() && code.is_allowed_in(PacketType::PubAck),
                "SimBroker::refuse_publish: {code:?} is not a PUBACK failure code"
            );
            self.refused_topics.push((filter.to_owned(), code));
        }
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

    /// Every PUBLISH refused by [`refuse_publish`](Self::refuse_publish), in order.
    pub fn refused(&self) -> &[Refusal] {
        &self.refusals
    }

    /// The most QoS 1/2 PUBLISH packets `client_id` ever had in flight to this broker on one
    /// connection, counted as the client sees them: from when it sent a PUBLISH until the
    /// PUBACK, PUBCOMP or failure PUBREC reached it (the network tells the broker both
    /// instants). An MQTT 5 client must keep it within the announced Receive Maximum.
    pub fn in_flight_peak(&self, client_id: &str) -> usize {
        self.in_flight_peak.get(client_id).copied().unwrap_or(0)
    }

    /// Queued messages for `client_id` dropped because their Message Expiry Interval passed
    /// before they could be sent `[MQTT-3.3.2-5]`.
    pub fn expired(&self, client_id: &str) -> u64 {
        self.out.expired.get(client_id).copied().unwrap_or(0)
    }

    /// Messages for `client_id` discarded because they exceeded its MQTT 5 Maximum Packet
    /// Size `[MQTT-3.1.2-25]`.
    pub fn too_large(&self, client_id: &str) -> u64 {
        self.out.too_large.get(client_id).copied().unwrap_or(0)
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

    /// Whether the broker holds a session for `client_id`: a persistent one (connected, or
    /// not and not yet expired) or a clean one whose connection is open.
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

    /// Every rule of MQTT 3.1.1 or 5 a client broke, in order, each as
    /// `"<ms> conn <id>: <what> [MQTT-x.y.z-n]"`. The broker closed the connection each time
    /// (after a DISCONNECT with the reason code, in MQTT 5).
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
                will_expiry: None,
                protocol: ProtocolVersion::V311,
                aliases: BTreeMap::new(),
                window: IncomingWindow::default(),
            },
        );
    }

    /// `bytes` the broker wrote on `conn` reached the client at `now`.
    pub(crate) fn handle_client_received(&mut self, now: Instant, conn: ConnId, bytes: usize) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.window.client_received(bytes, now);
        }
    }

    /// The peer closed (end of stream) or reset the connection.
    pub(crate) fn handle_peer_closed(&mut self, now: Instant, conn: ConnId) {
        self.close(now, conn, true, false);
    }

    /// The broker process stops at `now`: every connection vanishes without wills; sessions
    /// and retained messages survive only if `keep_sessions` (their expiry clocks start now).
    pub(crate) fn crash(&mut self, now: Instant, keep_sessions: bool) {
        for conn in std::mem::take(&mut self.conns).into_keys() {
            self.out.forget(conn);
        }
        self.out.outbox.clear();
        if keep_sessions {
            self.sessions.retain(|_, s| !s.clean);
            for session in self.sessions.values_mut() {
                if session.conn.take().is_some() {
                    session.disconnected_at = Some(now);
                }
            }
        } else {
            self.sessions.clear();
            self.retained.clear();
        }
        self.next_expiry = self.sessions.values().filter_map(Session::expires_at).min();
    }

    /// Earliest keepalive deadline or session expiry.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let keepalive = self.conns.values().filter_map(keepalive_deadline).min();
        match (keepalive, self.next_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closes every connection whose keepalive deadline has passed `[MQTT-3.1.2-24]` (MQTT 5:
    /// after DISCONNECT 0x8D) and forgets every session whose expiry has passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.next_expiry.is_some_and(|at| at <= now) {
            self.sessions
                .retain(|_, s| s.expires_at().is_none_or(|at| at > now));
            self.next_expiry = self.sessions.values().filter_map(Session::expires_at).min();
        }
        let expired: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| keepalive_deadline(c).is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for conn in expired {
            self.send_disconnect(now, conn, ReasonCode::KeepAliveTimeout);
            self.close(now, conn, true, true);
        }
    }

    /// Bytes from the client of `conn`, sent by it at `sent_at`, arrive at `now`.
    pub(crate) fn handle_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        bytes: &[u8],
        sent_at: Instant,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.buffer.extend_from_slice(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            // Before CONNECT a level-5 CONNECT is welcome (the decoder reads the level from
            // it); after it, the connection's version decides.
            let version = match c.client_id {
                Some(_) => c.protocol,
                None if self.accept_v5 && c.buffer.first().is_some_and(|b| b >> 4 == 1) => {
                    ProtocolVersion::V5
                }
                None => ProtocolVersion::V311,
            };
            let decoded = decode_with(&c.buffer, self.max_packet_size, version);
            let (incoming, packet_type, consumed) = match decoded {
                Ok(Decoded::Complete { packet, consumed }) => (
                    Incoming::from_packet(&packet, now),
                    packet.packet_type(),
                    consumed,
                ),
                Ok(Decoded::Incomplete) => return,
                Err(e) => {
                    let code = match e {
                        DecodeError::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
                        _ => ReasonCode::MalformedPacket,
                    };
                    self.violation_with(now, conn, &format!("malformed packet: {e}"), code);
                    return;
                }
            };
            c.buffer.drain(..consumed);
            // Only complete packets are signs of life.
            c.last_packet = now;
            if !self.history {
                self.handle_packet(now, conn, incoming, sent_at);
                continue;
            }
            let before = c.client_id.clone();
            self.handle_packet(now, conn, incoming, sent_at);
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
        self.violation_with(now, conn, what, ReasonCode::ProtocolError);
    }

    /// [`violation`](Self::violation), telling an MQTT 5 client why with DISCONNECT `code`.
    fn violation_with(&mut self, now: Instant, conn: ConnId, what: &str, code: ReasonCode) {
        self.violations
            .push(format!("{} conn {}: {what}", now.as_millis(), conn.0));
        self.send_disconnect(now, conn, code);
        self.close(now, conn, true, true);
    }

    /// Sends DISCONNECT with `code` if `conn` is an established MQTT 5 connection (3.1.1 has
    /// no server DISCONNECT).
    fn send_disconnect(&mut self, now: Instant, conn: ConnId, code: ReasonCode) {
        let established = self.conns.get(&conn).is_some_and(|c| c.client_id.is_some());
        if established && self.out.version(conn).is_v5() {
            let packet = Packet::Disconnect(Disconnect::new(code, Properties::EMPTY));
            self.out.send(now, conn, &packet);
        }
    }

    /// Whether `conn` speaks MQTT 5.
    fn is_v5(&self, conn: ConnId) -> bool {
        self.out.version(conn).is_v5()
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
        self.out.forget(conn);
        if let Some(client_id) = &c.client_id {
            if let Some(session) = self.sessions.get_mut(client_id) {
                if session.conn == Some(conn) {
                    session.conn = None;
                    session.disconnected_at = Some(now);
                    if session.clean {
                        self.sessions.remove(client_id);
                    } else if let Some(at) = session.expires_at() {
                        self.next_expiry = Some(self.next_expiry.map_or(at, |t| t.min(at)));
                    }
                }
            }
        }
        if publish_will {
            if let Some(mut will) = c.will {
                will.expires_at = c.will_expiry.map(|i| after_seconds(now, i));
                self.route(now, &will);
            }
        }
    }

    /// Sends an acknowledgement unless acks are withheld; returns whether it was sent.
    fn send_ack(&mut self, now: Instant, conn: ConnId, packet: &Packet<'_>) -> bool {
        if !self.withhold_acks {
            self.out.send(now, conn, packet);
        }
        !self.withhold_acks
    }

    /// Sends the acknowledgement that ends the client's flow for `id` (PUBACK, PUBCOMP, or a
    /// failure PUBREC) and notes where it ends for the client's in-flight count.
    fn send_final_ack(&mut self, now: Instant, conn: ConnId, id: PacketId, packet: &Packet<'_>) {
        if self.send_ack(now, conn, packet) {
            let end = self.out.written(conn);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.window.ack_written(id, end);
            }
        }
    }

    fn handle_packet(&mut self, now: Instant, conn: ConnId, incoming: Incoming, sent_at: Instant) {
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
                topic_alias,
            } => {
                let Some(message) = self.resolve_alias(now, conn, message, topic_alias) else {
                    return;
                };
                let publish = PublishIn {
                    message,
                    dup,
                    packet_id,
                    topic_alias,
                    sent_at,
                };
                self.handle_publish(now, conn, &client_id, publish)
            }
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
                        self.out.send(now, conn, &Packet::PubRel(Ack::new(id)));
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
                self.send_final_ack(now, conn, id, &Packet::PubComp(Ack::new(id)));
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
                let mut codes = Vec::with_capacity(filters.len());
                if let Some(session) = self.sessions.get_mut(&client_id) {
                    for filter in &filters {
                        let existed = session.subscriptions.iter().any(|(f, _)| f == filter);
                        codes.push(if existed {
                            ReasonCode::Success.to_u8()
                        } else {
                            ReasonCode::NoSubscriptionExisted.to_u8()
                        });
                    }
                    session
                        .subscriptions
                        .retain(|(f, _)| !filters.iter().any(|u| u == f));
                }
                let ack = if self.is_v5(conn) {
                    UnsubAck::with_reasons(packet_id, &codes, Properties::EMPTY)
                } else {
                    UnsubAck::new(packet_id)
                };
                self.send_ack(now, conn, &Packet::UnsubAck(ack));
            }
            Incoming::PingReq => self.out.send(now, conn, &Packet::PingResp),
            Incoming::Disconnect {
                reason_code,
                session_expiry,
            } => {
                if let (Some(expiry), Some(session)) =
                    (session_expiry, self.sessions.get_mut(&client_id))
                {
                    if session.expiry == 0 && expiry != 0 {
                        return self.violation(
                            now,
                            conn,
                            "DISCONNECT sets a Session Expiry Interval after CONNECT had 0 \
                             [MQTT-3.14.2-2]",
                        );
                    }
                    session.expiry = expiry;
                    session.clean = expiry == 0;
                }
                // A DISCONNECT discards the will [MQTT-3.14.4-3], unless MQTT 5's reason
                // code 0x04 asks for it.
                let will = reason_code == ReasonCode::DisconnectWithWillMessage;
                self.close(now, conn, will, true);
            }
            Incoming::Auth => self.violation(
                now,
                conn,
                "AUTH without an authentication method in CONNECT [MQTT-4.12.0-1]",
            ),
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
            protocol,
            client_id,
            keep_alive,
            clean_session,
            username,
            will,
            will_expiry,
            session_expiry,
            receive_maximum,
            max_packet_size,
        } = request;
        let v5 = protocol.is_v5();
        // MQTT 5: the session lives as long as asked (capped by the broker); 3.1.1: a clean
        // session ends with its connection, a persistent one never expires.
        let asked_expiry = if v5 {
            session_expiry.unwrap_or(0)
        } else if clean_session {
            0
        } else {
            NEVER
        };
        let expiry = match self.max_session_expiry {
            Some(max) if v5 => asked_expiry.min(max),
            _ => asked_expiry,
        };
        if v5 {
            self.out.set_version(conn, protocol, max_packet_size);
        }
        let mut record = ConnectRecord {
            protocol,
            client_id: client_id.clone(),
            clean_session,
            keep_alive,
            username,
            session_present: false,
            code: ConnectReturnCode::Accepted,
            session_expiry_interval: expiry,
            at: now,
        };
        let refusal = if let Some(code) = self.refuse_connect {
            Some(code)
        } else if client_id.is_empty() && !clean_session && !v5 {
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
        let assigned = client_id.is_empty();
        let client_id = if assigned {
            self.assigned_ids += 1;
            format!("auto-{}", self.assigned_ids)
        } else {
            client_id
        };
        record.client_id.clone_from(&client_id);

        // Takeover: the existing connection of this client id is closed [MQTT-3.1.4-2]
        // (MQTT 5: with DISCONNECT 0x8E).
        if let Some(old) = self.sessions.get(&client_id).and_then(|s| s.conn) {
            self.send_disconnect(now, old, ReasonCode::SessionTakenOver);
            self.close(now, old, false, true);
        }
        let expired = self
            .sessions
            .get(&client_id)
            .and_then(Session::expires_at)
            .is_some_and(|at| at <= now);
        if clean_session || expired {
            // [MQTT-3.1.2-6]; MQTT 5 Clean Start [MQTT-3.1.2-4]; an expired session is gone.
            self.sessions.remove(&client_id);
        }
        let session_present = self.sessions.contains_key(&client_id);
        let session = self.sessions.entry(client_id.clone()).or_default();
        session.clean = expiry == 0;
        session.expiry = expiry;
        session.disconnected_at = None;
        session.conn = Some(conn);
        session.client_receive_maximum = receive_maximum.filter(|_| v5);
        let keep_alive = match self.server_keep_alive {
            Some(server) if v5 => server,
            _ => keep_alive,
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.client_id = Some(client_id.clone());
            c.keep_alive = keep_alive;
            c.will = will;
            c.will_expiry = will_expiry;
            c.protocol = protocol;
        }
        record.session_present = session_present;
        if self.history {
            self.connects.push(record);
        }
        let mut properties = Vec::new();
        if v5 {
            if expiry != asked_expiry {
                properties.push(Property::SessionExpiryInterval(expiry));
            }
            if self.receive_maximum != u16::MAX {
                properties.push(Property::ReceiveMaximum(self.receive_maximum));
            }
            if self.maximum_qos != QoS::ExactlyOnce {
                properties.push(Property::MaximumQoS(self.maximum_qos));
            }
            if !self.retain_available {
                properties.push(Property::RetainAvailable(false));
            }
            if self.max_packet_size < 1 + 4 + MAX_REMAINING_LENGTH {
                let max = u32::try_from(self.max_packet_size).unwrap_or(u32::MAX);
                properties.push(Property::MaximumPacketSize(max));
            }
            if assigned {
                properties.push(Property::AssignedClientIdentifier(&client_id));
            }
            if self.topic_alias_maximum > 0 {
                properties.push(Property::TopicAliasMaximum(self.topic_alias_maximum));
            }
            if let Some(keep_alive) = self.server_keep_alive {
                properties.push(Property::ServerKeepAlive(keep_alive));
            }
            properties.push(Property::SubscriptionIdentifierAvailable(false));
        }
        let list = PropertyList(&properties);
        let connack = ConnAck {
            properties: Properties::List(&list),
            ..ConnAck::new(session_present, ConnectReturnCode::Accepted)
        };
        self.out.send(now, conn, &Packet::ConnAck(connack));
        if session_present {
            // Resume: unacknowledged PUBLISH again with DUP, PUBREL for those past PUBREC, in
            // the original order [MQTT-4.4.0-1].
            for f in &session.in_flight {
                match f.stage {
                    Awaiting::PubAck | Awaiting::PubRec => {
                        // A message too large for this connection's client is still owed:
                        // it stays in flight for a later connection.
                        let _sent = self.out.publish(
                            now,
                            conn,
                            &client_id,
                            &f.message,
                            true,
                            Some(f.packet_id),
                        );
                    }
                    Awaiting::PubComp => {
                        self.out
                            .send(now, conn, &Packet::PubRel(Ack::new(f.packet_id)));
                    }
                }
            }
        }
        self.out
            .fill_window(now, &client_id, session, self.max_in_flight);
    }

    /// Resolves an MQTT 5 Topic Alias `[MQTT-3.3.2-12]`: `None` (connection closed) for an
    /// alias out of range or unknown.
    fn resolve_alias(
        &mut self,
        now: Instant,
        conn: ConnId,
        mut message: Message,
        alias: Option<u16>,
    ) -> Option<Message> {
        let Some(alias) = alias else {
            return Some(message);
        };
        if alias == 0 || alias > self.topic_alias_maximum {
            let what = format!(
                "topic alias {alias} outside 1..={} [MQTT-3.3.2-9] [MQTT-3.3.2-10]",
                self.topic_alias_maximum
            );
            self.violation_with(now, conn, &what, ReasonCode::TopicAliasInvalid);
            return None;
        }
        let c = self.conns.get_mut(&conn)?;
        if message.topic.is_empty() {
            match c.aliases.get(&alias) {
                Some(topic) => message.topic.clone_from(topic),
                None => {
                    let what = format!("unknown topic alias {alias} [MQTT-3.3.4]");
                    self.violation(now, conn, &what);
                    return None;
                }
            }
        } else {
            c.aliases.insert(alias, message.topic.clone());
        }
        Some(message)
    }

    fn handle_publish(&mut self, now: Instant, conn: ConnId, client_id: &str, publish: PublishIn) {
        let PublishIn {
            message,
            dup,
            packet_id,
            topic_alias,
            sent_at,
        } = publish;
        let v5 = self.is_v5(conn);
        if v5 && message.qos > self.maximum_qos {
            let what = format!(
                "PUBLISH at {:?} above Maximum QoS {:?} [MQTT-3.2.2-11]",
                message.qos, self.maximum_qos
            );
            return self.violation_with(now, conn, &what, ReasonCode::QoSNotSupported);
        }
        if v5 && message.retain && !self.retain_available {
            let what = "retained PUBLISH while Retain Available is 0 [MQTT-3.2.2-14]";
            return self.violation_with(now, conn, what, ReasonCode::RetainNotSupported);
        }
        if let Some(id) = packet_id {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let in_flight = c.window.publish(id, sent_at);
            match self.in_flight_peak.get_mut(client_id) {
                Some(peak) => *peak = (*peak).max(in_flight),
                None => {
                    self.in_flight_peak.insert(client_id.to_owned(), in_flight);
                }
            }
            if v5 && in_flight > usize::from(self.receive_maximum) {
                let what = format!(
                    "{in_flight} QoS 1/2 PUBLISH in flight, Receive Maximum is {} \
                     [MQTT-3.3.4-7]",
                    self.receive_maximum
                );
                return self.violation_with(now, conn, &what, ReasonCode::ReceiveMaximumExceeded);
            }
        }
        if let (QoS::ExactlyOnce, Some(id)) = (message.qos, packet_id) {
            if self.id_in_incoming_qos2(client_id, id) {
                if !dup {
                    return self.packet_id_reuse(now, conn, "PUBLISH", id);
                }
                // A resend before PUBREL: already accepted, answer again [MQTT-4.3.3-2].
                self.send_ack(now, conn, &Packet::PubRec(Ack::new(id)));
                return;
            }
        }
        let refusal = self
            .refused_topics
            .iter()
            .find(|(f, _)| topic::matches(f, &message.topic))
            .map(|(_, code)| *code);
        if let Some(code) = refusal {
            return self.refuse(now, conn, client_id, &message, packet_id, code);
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
                topic_alias,
                at: now,
            });
        }
        // Acknowledged before it is routed, as mosquitto writes its PUBACK first.
        match (message.qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                self.send_final_ack(now, conn, id, &Packet::PubAck(Ack::new(id)))
            }
            (QoS::ExactlyOnce, Some(id)) => {
                if let Some(session) = self.sessions.get_mut(client_id) {
                    session.incoming_qos2.insert(id);
                }
                self.send_ack(now, conn, &Packet::PubRec(Ack::new(id)));
            }
            _ => {}
        }
        self.route(now, &message);
    }

    /// A PUBLISH to a refused topic: recorded and answered, not routed.
    fn refuse(
        &mut self,
        now: Instant,
        conn: ConnId,
        client_id: &str,
        message: &Message,
        packet_id: Option<PacketId>,
        code: ReasonCode,
    ) {
        self.refusals.push(Refusal {
            client_id: client_id.to_owned(),
            topic: message.topic.clone(),
            packet_id,
            reason_code: code,
            at: now,
        });
        let Some(id) = packet_id else {
            return;
        };
        if self.is_v5(conn) {
            // A failure PUBACK or PUBREC ends the flow: no PUBREL follows [MQTT-4.3.3].
            let ack = Ack::with_reason(id, code, Properties::EMPTY);
            let packet = match message.qos {
                QoS::ExactlyOnce => Packet::PubRec(ack),
                _ => Packet::PubAck(ack),
            };
            return self.send_final_ack(now, conn, id, &packet);
        }
        // 3.1.1 cannot say no: acknowledged as usual, and dropped.
        match message.qos {
            QoS::ExactlyOnce => {
                if let Some(session) = self.sessions.get_mut(client_id) {
                    session.incoming_qos2.insert(id);
                }
                self.send_ack(now, conn, &Packet::PubRec(Ack::new(id)));
            }
            _ => self.send_final_ack(now, conn, id, &Packet::PubAck(Ack::new(id))),
        }
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
                let qos = (*qos).min(self.maximum_qos);
                codes.push(SubscribeReturnCode::Success(qos).to_u8());
                granted.push((filter.clone(), qos));
                // A subscription to an existing filter replaces it [MQTT-3.8.4-3].
                match session.subscriptions.iter_mut().find(|(f, _)| f == filter) {
                    Some(existing) => existing.1 = qos,
                    None => session.subscriptions.push((filter.clone(), qos)),
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
                if topic::matches(filter, &message.topic) && !message.is_expired(now) {
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
            if session.expires_at().is_some_and(|at| at <= now) {
                continue; // gone, though its timer has not run yet
            }
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
                // Too large for the client: discarded [MQTT-3.1.2-25].
                let _sent = self
                    .out
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

/// A client's PUBLISH as the broker handles it.
struct PublishIn {
    message: Message,
    dup: bool,
    packet_id: Option<PacketId>,
    topic_alias: Option<u16>,
    /// When the client sent it.
    sent_at: Instant,
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
