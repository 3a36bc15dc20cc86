//! The blocking client: one method per MQTT operation, like MicroPython's `umqtt.simple`.
//!
//! ```no_run
//! use umqtt::simple::Client;
//! use umqtt::QoS;
//!
//! let mut client = Client::new("sensor-1", "127.0.0.1");
//! client.connect(true)?;
//! client.subscribe("cmd/#", QoS::AtLeastOnce)?;
//! client.publish("sensor-1/temp", b"21.5", QoS::AtLeastOnce, false)?;
//! let message = client.wait_msg()?;
//! println!("{}: {:?}", message.topic, message.payload);
//! client.disconnect()?;
//! # Ok::<(), umqtt::Error>(())
//! ```
//!
//! Every call drives the connection: keepalive PINGREQs go out automatically during any call,
//! and messages that arrive while a call waits for its acknowledgement are queued (bounded in
//! count, [`ClientConfig::max_queued_messages`], and in bytes,
//! [`ClientConfig::max_queued_bytes`]) and returned by the next [`Client::wait_msg`] / [`Client::check_msg`] — never dropped, never
//! delivered by recursion into a callback.
//!
//! # Receiving without allocating
//! [`Client::wait_msg`] and [`Client::check_msg`] return an owned [`Message`]: a `String` and a
//! `Vec` allocated per message. [`Client::wait_msg_into`], [`Client::wait_msg_timeout_into`]
//! and [`Client::check_msg_into`] instead write the message into one the caller keeps, so a
//! receive loop allocates nothing once its buffers have grown to the largest message:
//!
//! ```no_run
//! # use umqtt::simple::{Client, Message};
//! # let mut client = Client::new("sensor-1", "127.0.0.1");
//! let mut message = Message::default();
//! loop {
//!     client.wait_msg_into(&mut message)?;
//!     println!("{}: {} bytes", message.topic, message.payload.len());
//! }
//! # Ok::<(), umqtt::Error>(())
//! ```
//!
//! Messages queued while a call waited for its acknowledgement are handed over by swapping
//! buffers with the caller's message (no copy); the caller's previous buffers go to a pool the
//! queue takes from next time. The pool holds at most as many messages as the queue once held
//! at the same time (never more than `max_queued_messages`), and at most 1 MiB of buffer
//! capacity in total: after a burst of large messages the extra buffers are freed, so messages
//! larger than that allocate each time (a cost small next to copying them).

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use umqtt_core::packet::{
    Disconnect, PacketId, PacketType, Properties, ProtocolVersion, Publish, QoS, ReasonCode,
    SubscriptionOptions,
};
use umqtt_core::session::{ConnectOptions, Event, Session, SessionConfig, UsageError, Will};

use crate::error::Error;
use crate::transport::{self, Stream, TlsConfig, Transport, TransportConfig};

pub use umqtt_core::message::Message;

/// Settings of a [`Client`]. `Default` gives port 1883 (8883 with TLS), keepalive 60 s,
/// 10 s connect and response timeouts.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Client identifier (may be empty for a clean session; the broker then assigns one).
    pub client_id: String,
    /// Broker host name or IP address.
    pub server: String,
    /// Broker port; `None` means 1883, or 8883 with TLS.
    pub port: Option<u16>,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<TlsConfig>,
    /// What carries the bytes: TCP by default, or WebSocket, a Unix socket, through a proxy
    /// (see [`TransportConfig`]). TLS, when set, runs under the WebSocket framing (`wss://`).
    /// The robust clients use it for every server of their list.
    pub transport: TransportConfig,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Vec<u8>>,
    /// Keepalive in seconds (0 disables it).
    pub keep_alive: u16,
    /// Limit for TCP connect, TLS handshake and CONNACK together.
    pub connect_timeout: Duration,
    /// How long a call waits for its acknowledgement (PUBACK, SUBACK, PINGRESP…), and how long
    /// a write may make no progress before the link counts as lost.
    pub response_timeout: Duration,
    /// Largest incoming packet accepted, fixed header included (default 4 MiB). This is a local
    /// limit on memory, not MQTT's (which allows 256 MiB): a larger packet ends the connection
    /// with [`Error::PacketTooLarge`], decided from its fixed header before anything is stored.
    /// Raise it to receive larger messages.
    pub max_packet_size: usize,
    /// Most received messages queued while calls wait for acknowledgements.
    pub max_queued_messages: usize,
    /// Most topic and payload bytes queued while calls wait for acknowledgements (default
    /// 64 MiB). Reaching it, like reaching `max_queued_messages`, stops reading (nothing is
    /// dropped) until the queue is drained: calls that wait for something else then fail with
    /// [`Error::MessageQueueFull`]. One message is always accepted into an empty queue, so the
    /// queue may exceed this by at most one message.
    pub max_queued_bytes: usize,
    /// Protocol version announced in CONNECT (3.1.1 by default; 3.1 for old brokers; MQTT 5
    /// with [`ProtocolVersion::V5`]).
    pub protocol: ProtocolVersion,
    /// MQTT 5 connect options (session expiry, receive maximum, user properties); ignored
    /// unless `protocol` is MQTT 5. See [`SessionConfig::v5`].
    pub v5: ConnectOptions,
    /// Most QoS 1/2 messages in flight at once (for [`Client::publish_nowait`]). Keep it at or
    /// below the broker's limit (mosquitto: `max_inflight_messages`, default 20): a 3.1.1 broker
    /// silently drops what exceeds it. See [`SessionConfig::max_in_flight`].
    pub max_in_flight: u16,
    /// On a clean-session `connect`, publish unacknowledged QoS 1/2 messages again as new
    /// messages instead of discarding them (libmosquitto's behaviour across reconnects). See
    /// [`SessionConfig::republish_on_clean_session`]. Default false.
    pub republish_on_clean_session: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            client_id: String::new(),
            server: "127.0.0.1".to_string(),
            port: None,
            tls: None,
            transport: TransportConfig::default(),
            username: None,
            password: None,
            keep_alive: 60,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(10),
            max_packet_size: 4 * 1024 * 1024,
            max_queued_messages: 1024,
            max_queued_bytes: 64 * 1024 * 1024,
            max_in_flight: 20,
            republish_on_clean_session: false,
            protocol: ProtocolVersion::V311,
            v5: ConnectOptions::default(),
        }
    }
}

impl ClientConfig {
    /// The port in use: the configured one, else 8883 with TLS or 1883 without (443 and 80
    /// over WebSocket, see [`TransportConfig::default_port`]).
    pub fn effective_port(&self) -> u16 {
        self.port
            .unwrap_or_else(|| self.transport.default_port(self.tls.is_some()))
    }

    /// The session settings these client settings make, with `will` (for drivers of
    /// [`Session`] outside this crate, e.g. an async one).
    pub fn session_config(&self, will: Option<Will>) -> SessionConfig {
        session_config(self, will)
    }
}

/// What a drained session event meant, without borrowing the session.
enum Notice {
    Connected(bool),
    MessageQueued,
    Published(PacketId),
    PublishRefused(PacketId, ReasonCode),
    Subscribed(PacketId, Vec<u8>),
    /// The UNSUBACK's MQTT 5 reason codes (none with 3.1.1).
    Unsubscribed(PacketId, Vec<ReasonCode>),
    /// A stored message too large for the broker's new Maximum Packet Size was dropped.
    PublishTooLarge,
    Pong,
    Other,
}

const READ_CHUNK: usize = 16 * 1024;

/// A blocking MQTT 3.1.1 / MQTT 5 client over any [`Stream`] (TCP and TLS by default).
pub struct Client<S: Stream = Transport> {
    config: ClientConfig,
    session: Session,
    stream: Option<S>,
    epoch: std::time::Instant,
    /// Received messages not yet handed to the application.
    inbox: Inbox,
    read_buffer: Box<[u8]>,
    /// The read timeout last set on `stream` (`Some(None)`: blocking), `None` when unknown.
    /// Lets most reads skip the `setsockopt`; see `read_with_timeout`.
    read_timeout: Option<Option<Duration>>,
    /// How long a write may make no progress before the link counts as lost.
    write_stall: Duration,
}

impl Client<Transport> {
    /// A client for `server` with default settings; nothing is sent until [`Client::connect`].
    pub fn new(client_id: impl Into<String>, server: impl Into<String>) -> Self {
        Client::with_config(ClientConfig {
            client_id: client_id.into(),
            server: server.into(),
            ..ClientConfig::default()
        })
    }

    /// Opens the transport (TCP, TLS, WebSocket, Unix socket, proxy: as configured), sends
    /// CONNECT and waits for CONNACK. Returns whether the broker resumed a stored session
    /// (`session_present`). TLS sessions are resumed across calls (see
    /// [`TlsConfig::session_resumption`]).
    pub fn connect(&mut self, clean_session: bool) -> Result<bool, Error> {
        let started = std::time::Instant::now();
        let stream = transport::open(
            &self.config.server,
            self.config.effective_port(),
            self.config.tls.as_ref(),
            &self.config.transport,
            self.config.connect_timeout,
        )?;
        let remaining = self
            .config
            .connect_timeout
            .saturating_sub(started.elapsed());
        self.connect_over(stream, clean_session, remaining)
    }
}

impl<S: Stream> Client<S> {
    /// A client with explicit settings.
    pub fn with_config(config: ClientConfig) -> Self {
        let response_timeout = config.response_timeout;
        let mut session = Session::new(session_config(&config, None));
        // Reads decode everything before reading again, so the session holds at most a partial
        // packet plus one read: with room for that reserved now, receiving packets up to
        // READ_CHUNK never grows the buffer later, whatever the burst sizes.
        session.reserve_input(2 * READ_CHUNK);
        Client {
            config,
            session,
            stream: None,
            epoch: std::time::Instant::now(),
            inbox: Inbox::default(),
            read_buffer: vec![0; READ_CHUNK].into_boxed_slice(),
            read_timeout: None,
            write_stall: response_timeout,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sets the last will, published by the broker if this client vanishes without
    /// `disconnect`. Takes effect at the next `connect`.
    pub fn set_last_will(&mut self, topic: &str, payload: &[u8], retain: bool, qos: QoS) {
        self.session.config_mut().will = Some(Will {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
            properties: Vec::new(),
        });
    }

    /// [`Client::set_last_will`] with MQTT 5 will properties (will delay interval, message
    /// expiry, content type, response topic, correlation data, user properties). Properties
    /// a will may not carry are refused here ([`UsageError::Encode`]); with 3.1.1 the next
    /// `connect` refuses non-empty ones.
    pub fn set_last_will_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        qos: QoS,
        properties: Properties<'_>,
    ) -> Result<(), Error> {
        let properties = properties
            .encode_for(PacketType::Connect, true)
            .map_err(|e| Error::Usage(UsageError::Encode(e)))?;
        self.session.config_mut().will = Some(Will {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
            properties,
        });
        Ok(())
    }

    /// Sends CONNECT over an already open stream and waits for CONNACK; returns
    /// `session_present`. Use it for custom transports (WebSocket, a test pipe, a proxy).
    pub fn connect_with_stream(&mut self, stream: S, clean_session: bool) -> Result<bool, Error> {
        let timeout = self.config.connect_timeout;
        self.connect_over(stream, clean_session, timeout)
    }

    fn connect_over(
        &mut self,
        stream: S,
        clean_session: bool,
        timeout: Duration,
    ) -> Result<bool, Error> {
        if self.stream.is_some() {
            return Err(Error::Usage(UsageError::AlreadyConnected));
        }
        let will = self.session.config().will.clone();
        *self.session.config_mut() = session_config(&self.config, will);
        self.session.config_mut().connect_timeout = timeout;
        let now = self.now();
        self.session.connect(now, clean_session)?;
        let mut stream = stream;
        // A write that makes no progress for this long means the peer stopped reading: fail
        // rather than block forever. The session's timers cannot fire while a write blocks,
        // so with a keepalive the stall is also bounded by the keepalive's clock
        // (1.5 × keepalive, as for a silent link), not only by the response timeout.
        self.write_stall =
            transport::write_stall(self.config.response_timeout, self.session.config());
        transport::set_write_slice(&mut stream, self.write_stall)?;
        self.stream = Some(stream);
        self.read_timeout = None;
        let deadline = std::time::Instant::now() + timeout;
        self.run_until(Some(deadline), |notice, _| match notice {
            Notice::Connected(session_present) => Some(*session_present),
            _ => None,
        })
    }

    /// Whether a connection is established.
    pub fn is_connected(&self) -> bool {
        self.stream.is_some() && self.session.is_connected()
    }

    /// Publishes a message. QoS 0 returns once written; QoS 1 and 2 return when the broker has
    /// acknowledged (PUBACK, or PUBCOMP). Returns the packet id used for QoS 1/2.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Option<PacketId>, Error> {
        self.publish_with(topic, payload, qos, retain, Properties::EMPTY)
    }

    /// [`Client::publish`] with MQTT 5 PUBLISH properties (user properties, response topic,
    /// correlation data, message expiry…). A QoS 1/2 message the broker refuses with a reason
    /// code is [`Error::PublishRefused`]. With 3.1.1, properties are refused
    /// ([`UsageError::Encode`]).
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: Properties<'_>,
    ) -> Result<Option<PacketId>, Error> {
        let packet_id = self.publish_nowait_with(topic, payload, qos, retain, properties)?;
        if let Some(id) = packet_id {
            let deadline = std::time::Instant::now() + self.config.response_timeout;
            self.run_until(Some(deadline), |notice, _| match notice {
                Notice::Published(done) if *done == id => Some(Ok(())),
                Notice::PublishRefused(done, reason_code) if *done == id => {
                    Some(Err(Error::PublishRefused {
                        packet_id: id,
                        reason_code: *reason_code,
                    }))
                }
                _ => None,
            })??;
        } else {
            self.flush()?;
        }
        Ok(packet_id)
    }

    /// Publishes without waiting for the acknowledgement: QoS 1/2 messages are pipelined up to
    /// `max_in_flight` and queued beyond it. Bytes are written when a call drives the connection
    /// (e.g. [`Client::flush`], [`Client::wait_all_published`]), so many small messages go out
    /// in one write. Returns the packet id for QoS 1/2.
    pub fn publish_nowait(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Option<PacketId>, Error> {
        self.publish_nowait_with(topic, payload, qos, retain, Properties::EMPTY)
    }

    /// [`Client::publish_nowait`] with MQTT 5 PUBLISH properties.
    pub fn publish_nowait_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: Properties<'_>,
    ) -> Result<Option<PacketId>, Error> {
        if !self.is_connected() {
            return Err(Error::Usage(UsageError::NotConnected));
        }
        Ok(self
            .session
            .publish_with(topic, payload, qos, retain, properties)?)
    }

    /// Number of QoS 1/2 messages published and not yet acknowledged.
    pub fn pending_publishes(&self) -> usize {
        self.session.outgoing_len()
    }

    /// Waits until every QoS 1/2 message published so far is acknowledged, or `timeout`.
    pub fn wait_all_published(&mut self, timeout: Duration) -> Result<(), Error> {
        self.wait_published_at_most(0, timeout)
    }

    /// Waits until at most `pending` QoS 1/2 messages are unacknowledged ([`Error::Timeout`]
    /// after `timeout`): a pipelining producer publishes while below its depth and waits here
    /// above it. Acknowledgements come in publish order `[MQTT-4.6.0-2]`, so the oldest
    /// messages are the ones acknowledged.
    pub fn wait_published_at_most(
        &mut self,
        pending: usize,
        timeout: Duration,
    ) -> Result<(), Error> {
        if self.session.outgoing_len() <= pending {
            return self.flush();
        }
        let deadline = std::time::Instant::now() + timeout;
        let mut remaining = self.session.outgoing_len();
        self.run_until(Some(deadline), |notice, _| {
            if let Notice::Published(_) | Notice::PublishRefused(..) | Notice::PublishTooLarge =
                notice
            {
                remaining = remaining.saturating_sub(1);
            }
            (remaining <= pending).then_some(())
        })
    }

    /// Subscribes to one filter; returns the QoS the broker granted. A refusal (0x80) is
    /// [`Error::SubscribeRefused`].
    ///
    /// A broker may send matching messages before the SUBACK (MQTT 3.1.1 §3.8.4). They are
    /// acknowledged and queued as they arrive, and stay queued whatever the outcome: after a
    /// failed subscribe (no SUBACK in time, a broken SUBACK, a lost connection) they are still
    /// returned by [`Client::take_queued_msg`], [`Client::check_msg`] and [`Client::wait_msg`].
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<QoS, Error> {
        Ok(self.subscribe_many(&[(filter, qos)])?[0])
    }

    /// Subscribes to several filters in one SUBSCRIBE; returns the granted QoS per filter.
    pub fn subscribe_many(&mut self, filters: &[(&str, QoS)]) -> Result<Vec<QoS>, Error> {
        self.require_connection()?;
        let id = self.session.subscribe(filters)?;
        self.wait_suback(id, filters)
    }

    /// [`Client::subscribe_many`] with MQTT 5 SUBSCRIBE properties (a subscription
    /// identifier, user properties). With 3.1.1, properties are refused
    /// ([`UsageError::Encode`]).
    pub fn subscribe_many_with(
        &mut self,
        filters: &[(&str, QoS)],
        properties: Properties<'_>,
    ) -> Result<Vec<QoS>, Error> {
        if properties.is_empty() {
            return self.subscribe_many(filters);
        }
        self.require_connection()?;
        let options: Vec<(&str, SubscriptionOptions)> = filters
            .iter()
            .map(|(filter, qos)| (*filter, SubscriptionOptions::new(*qos)))
            .collect();
        let id = self.session.subscribe_with(&options, properties)?;
        self.wait_suback(id, filters)
    }

    /// Waits for the SUBACK of `id`; the granted QoS per filter.
    fn wait_suback(&mut self, id: PacketId, filters: &[(&str, QoS)]) -> Result<Vec<QoS>, Error> {
        let deadline = std::time::Instant::now() + self.config.response_timeout;
        let codes = self.run_until(Some(deadline), |notice, _| match notice {
            Notice::Subscribed(done, codes) if *done == id => Some(codes.clone()),
            _ => None,
        })?;
        codes
            .iter()
            .zip(filters)
            .map(|(&code, (filter, _))| Error::subscribe_outcome(code, filter))
            .collect()
    }

    /// Unsubscribes from one filter; returns the UNSUBACK reason code: with MQTT 5
    /// [`ReasonCode::Success`] or [`ReasonCode::NoSubscriptionExisted`] (informational: the
    /// filter is not subscribed either way), with 3.1.1 always `Success`. A refusal (0x80 or
    /// above) is [`Error::UnsubscribeRefused`].
    pub fn unsubscribe(&mut self, filter: &str) -> Result<ReasonCode, Error> {
        Ok(self.unsubscribe_codes(&[filter])?[0])
    }

    /// Unsubscribes from several filters in one UNSUBSCRIBE; the first refusal is
    /// [`Error::UnsubscribeRefused`] ([`Client::unsubscribe_codes`] gives every code).
    pub fn unsubscribe_many(&mut self, filters: &[&str]) -> Result<(), Error> {
        self.unsubscribe_codes(filters).map(drop)
    }

    /// [`Client::unsubscribe_many`] with MQTT 5 UNSUBSCRIBE properties (user properties).
    /// With 3.1.1, properties are refused ([`UsageError::Encode`]).
    pub fn unsubscribe_many_with(
        &mut self,
        filters: &[&str],
        properties: Properties<'_>,
    ) -> Result<(), Error> {
        self.unsubscribe_codes_with(filters, properties).map(drop)
    }

    /// Unsubscribes from several filters in one UNSUBSCRIBE; returns the reason code per
    /// filter (see [`Client::unsubscribe`]); the first refusal is
    /// [`Error::UnsubscribeRefused`].
    pub fn unsubscribe_codes(&mut self, filters: &[&str]) -> Result<Vec<ReasonCode>, Error> {
        self.unsubscribe_codes_with(filters, Properties::EMPTY)
    }

    /// [`Client::unsubscribe_codes`] with MQTT 5 UNSUBSCRIBE properties.
    pub fn unsubscribe_codes_with(
        &mut self,
        filters: &[&str],
        properties: Properties<'_>,
    ) -> Result<Vec<ReasonCode>, Error> {
        self.require_connection()?;
        let id = self.session.unsubscribe_with(filters, properties)?;
        let deadline = std::time::Instant::now() + self.config.response_timeout;
        let codes = self.run_until(Some(deadline), |notice, _| match notice {
            Notice::Unsubscribed(done, codes) if *done == id => Some(codes.clone()),
            _ => None,
        })?;
        filters
            .iter()
            .enumerate()
            .map(|(i, filter)| {
                // 3.1.1's UNSUBACK carries no codes: success.
                let code = codes.get(i).copied().unwrap_or(ReasonCode::Success);
                Error::unsubscribe_outcome(code, filter)
            })
            .collect()
    }

    /// Sends PINGREQ and waits for PINGRESP.
    pub fn ping(&mut self) -> Result<(), Error> {
        self.require_connection()?;
        let now = self.now();
        self.session.ping(now)?;
        let deadline = std::time::Instant::now() + self.config.response_timeout;
        self.run_until(Some(deadline), |notice, _| {
            matches!(notice, Notice::Pong).then_some(())
        })
    }

    /// Blocks until a message arrives and returns it. Keepalive runs meanwhile, so a dead link
    /// ends the wait with [`Error::KeepAliveTimeout`] rather than hanging.
    pub fn wait_msg(&mut self) -> Result<Message, Error> {
        self.wait_msg_until(None)?.ok_or(Error::Timeout)
    }

    /// Like [`Client::wait_msg`] but gives up after `timeout`, returning `Ok(None)`.
    pub fn wait_msg_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, Error> {
        self.wait_msg_until(Some(std::time::Instant::now() + timeout))
    }

    /// Like [`Client::wait_msg`], but writes the message into `message`, reusing its buffers:
    /// no allocation once they are large enough (see the [module docs](self)). On error
    /// `message` is unchanged.
    pub fn wait_msg_into(&mut self, message: &mut Message) -> Result<(), Error> {
        if self.wait_queued(None)? {
            self.take_queued_into(message);
            Ok(())
        } else {
            Err(Error::Timeout)
        }
    }

    /// Like [`Client::wait_msg_timeout`], but writes the message into `message`, reusing its
    /// buffers. Returns whether a message was written; if not, `message` is unchanged.
    pub fn wait_msg_timeout_into(
        &mut self,
        message: &mut Message,
        timeout: Duration,
    ) -> Result<bool, Error> {
        let received = self.wait_queued(Some(std::time::Instant::now() + timeout))?;
        if received {
            self.take_queued_into(message);
        }
        Ok(received)
    }

    fn wait_msg_until(
        &mut self,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<Message>, Error> {
        self.wait_queued(deadline)?;
        Ok(self.inbox.pop())
    }

    /// Drives the connection until a message is queued; `false` if the deadline passed first.
    fn wait_queued(&mut self, deadline: Option<std::time::Instant>) -> Result<bool, Error> {
        if !self.inbox.messages.is_empty() {
            return Ok(true);
        }
        self.require_connection()?;
        match self.run_until(deadline, |_, messages| (!messages.is_empty()).then_some(())) {
            Ok(()) => Ok(true),
            Err(Error::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Returns a received message if one is available, without blocking. Also sends any due
    /// keepalive PINGREQ, so calling it regularly keeps the connection alive.
    pub fn check_msg(&mut self) -> Result<Option<Message>, Error> {
        self.check_queued()?;
        Ok(self.inbox.pop())
    }

    /// Like [`Client::check_msg`], but writes the message into `message`, reusing its buffers.
    /// Returns whether a message was written; if not, `message` is unchanged.
    pub fn check_msg_into(&mut self, message: &mut Message) -> Result<bool, Error> {
        let received = self.check_queued()?;
        if received {
            self.take_queued_into(message);
        }
        Ok(received)
    }

    /// Reads what is available without blocking; whether a message is queued.
    fn check_queued(&mut self) -> Result<bool, Error> {
        if !self.inbox.messages.is_empty() {
            return Ok(true);
        }
        self.require_connection()?;
        self.process_events(&mut |_, _| None::<()>)?;
        self.flush()?;
        if self.inbox.messages.is_empty() {
            self.read_available(true)?;
            self.process_events(&mut |_, _| None::<()>)?;
            self.flush()?;
        }
        Ok(!self.inbox.messages.is_empty())
    }

    /// Moves the oldest queued message into `message` by swapping buffers; the caller's old
    /// buffers become a spare for the queue.
    fn take_queued_into(&mut self, message: &mut Message) {
        if let Some(mut queued) = self.inbox.pop() {
            std::mem::swap(message, &mut queued);
            self.inbox.recycle(queued, self.config.max_queued_messages);
        }
    }

    /// Writes any pending bytes (pipelined publishes, acknowledgements, keepalive).
    pub fn flush(&mut self) -> Result<(), Error> {
        let now = self.now();
        self.session.handle_timeout(now);
        self.process_events(&mut |_, _| None::<()>)?;
        self.write_pending()
    }

    /// Sends DISCONNECT and closes the connection; the broker discards the last will.
    pub fn disconnect(&mut self) -> Result<(), Error> {
        self.disconnect_with(Disconnect::NORMAL)
    }

    /// [`Client::disconnect`] with an MQTT 5 reason code and DISCONNECT properties (a new
    /// session expiry interval, a reason string, user properties). With 3.1.1 anything but a
    /// normal disconnection is refused ([`UsageError::Encode`]) and the connection stays.
    pub fn disconnect_with(&mut self, disconnect: Disconnect<'_>) -> Result<(), Error> {
        self.require_connection()?;
        self.session.disconnect_with(disconnect)?;
        let result = self.write_pending();
        if let Some(mut stream) = self.stream.take() {
            let _ = stream.shutdown();
        }
        self.drain_close_events();
        result
    }

    /// The underlying stream, if connected.
    pub fn get_ref(&self) -> Option<&S> {
        self.stream.as_ref()
    }

    /// The underlying stream, mutably, if connected. Writing to it directly corrupts the MQTT
    /// stream; this is for socket options and tests.
    pub fn get_mut(&mut self) -> Option<&mut S> {
        // The caller may change the read timeout.
        self.read_timeout = None;
        self.stream.as_mut()
    }

    /// The session state machine (pending publishes, in-flight count).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Withdraws an unacknowledged QoS 1/2 message; see
    /// [`Session::cancel_publish`](umqtt_core::session::Session::cancel_publish).
    pub fn cancel_publish(&mut self, packet_id: PacketId) -> bool {
        self.session.cancel_publish(packet_id)
    }

    /// The oldest message already received and queued, without reading the network: works
    /// while connected or not, e.g. after a failed [`Client::subscribe`] or a lost
    /// connection. Every QoS 1/2 message the client acknowledged reaches the application
    /// through this, [`Client::check_msg`] or [`Client::wait_msg`].
    pub fn take_queued_msg(&mut self) -> Option<Message> {
        self.inbox.pop()
    }

    fn require_connection(&self) -> Result<(), Error> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(Error::Usage(UsageError::NotConnected))
        }
    }

    fn now(&self) -> umqtt_core::Instant {
        umqtt_core::Instant::from_millis(self.epoch.elapsed().as_millis() as u64)
    }

    /// Drives the connection until `done` returns a value or the deadline passes.
    fn run_until<R>(
        &mut self,
        deadline: Option<std::time::Instant>,
        mut done: impl FnMut(&Notice, &VecDeque<Message>) -> Option<R>,
    ) -> Result<R, Error> {
        loop {
            let now = self.now();
            self.session.handle_timeout(now);
            if let Some(result) = self.process_events(&mut done)? {
                self.write_pending()?;
                return Ok(result);
            }
            self.write_pending()?;
            if self.inbox.is_full(&self.config) && self.session.has_unprocessed_input() {
                return Err(Error::MessageQueueFull);
            }
            let wait = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout);
                    }
                    Some(left)
                }
                None => None,
            };
            let timer = self.session.poll_timeout().map(|at| {
                Duration::from_millis(at.as_millis().saturating_sub(self.now().as_millis()))
            });
            let wait = match (wait, timer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.read_with_timeout(wait)?;
        }
    }

    /// Turns session events into notices; queues messages; stops at `done` or when the
    /// message queue is full.
    fn process_events<R>(
        &mut self,
        done: &mut impl FnMut(&Notice, &VecDeque<Message>) -> Option<R>,
    ) -> Result<Option<R>, Error> {
        // A full queue stops decoding (no message is dropped), except when the session is not
        // connected: then no message can come, only CONNACK or the close that must be seen.
        while !self.inbox.is_full(&self.config) || !self.session.is_connected() {
            let notice = match self.session.poll_event() {
                None => return Ok(None),
                Some(Event::Closed(reason)) => {
                    // What the session sends on its way out (an MQTT 5 DISCONNECT with the
                    // reason of a protocol violation) goes first, best effort.
                    let now = self.now();
                    while let Some(bytes) = self.session.poll_transmit(now) {
                        if let Some(stream) = self.stream.as_mut() {
                            if transport::write_within(stream, bytes, self.write_stall).is_err() {
                                break;
                            }
                        }
                    }
                    self.stream = None;
                    return Err(reason.into());
                }
                Some(Event::Message(publish)) => {
                    self.inbox.push(&publish);
                    Notice::MessageQueued
                }
                Some(Event::Connected { session_present }) => Notice::Connected(session_present),
                Some(Event::Published(id)) => Notice::Published(id),
                Some(Event::PublishRefused {
                    packet_id,
                    reason_code,
                }) => Notice::PublishRefused(packet_id, reason_code),
                Some(Event::Subscribed(suback)) => {
                    Notice::Subscribed(suback.packet_id, suback.return_codes.to_vec())
                }
                Some(Event::Unsubscribed(unsuback)) => {
                    Notice::Unsubscribed(unsuback.packet_id, unsuback.codes().collect())
                }
                Some(Event::PublishTooLarge { .. }) => Notice::PublishTooLarge,
                Some(Event::PingResponse) => Notice::Pong,
                Some(_) => Notice::Other,
            };
            if let Some(result) = done(&notice, &self.inbox.messages) {
                return Ok(Some(result));
            }
        }
        Ok(None)
    }

    fn write_pending(&mut self) -> Result<(), Error> {
        let now = self.now();
        // Small packets come in one slice; a large PUBLISH in its own, from the session's
        // stored copy (not copied again for sending).
        while let Some(bytes) = self.session.poll_transmit(now) {
            let Some(stream) = self.stream.as_mut() else {
                return Err(Error::Usage(UsageError::NotConnected));
            };
            if let Err(e) = transport::write_within(stream, bytes, self.write_stall) {
                self.connection_lost();
                return Err(match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::WriteStalled,
                    _ => Error::Io(e),
                });
            }
        }
        Ok(())
    }

    fn read_with_timeout(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(Error::Usage(UsageError::NotConnected));
        };
        // A zero timeout means "block forever" to the OS: wait at least 1 ms.
        let wanted = timeout.map(|t| t.max(Duration::from_millis(1)));
        // Setting the timeout is a system call per read, as costly as the read itself when
        // small packets ping-pong. A timeout already set is kept while it is no longer than
        // wanted (the read then returns early and the caller's loop waits again: never late)
        // and at least half of it (so an early return costs at most one extra wake-up). A new
        // one is set a little short (7/8) so that the next waits, which want slightly less,
        // keep it.
        let keep = match (self.read_timeout, wanted) {
            (Some(None), None) => true,
            (Some(Some(set)), Some(wanted)) => set <= wanted && set >= wanted / 2,
            _ => false,
        };
        if !keep {
            let timeout = wanted.map(|t| (t * 7 / 8).max(Duration::from_millis(1)));
            self.read_timeout = None;
            if let Err(e) = stream.set_read_timeout(timeout) {
                self.connection_lost();
                return Err(Error::Io(e));
            }
            self.read_timeout = Some(timeout);
        }
        self.read_available(false)
    }

    /// One read from the stream into the session. `nonblocking` returns at once if nothing is
    /// there. Timeouts are not errors.
    fn read_available(&mut self, nonblocking: bool) -> Result<(), Error> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(Error::Usage(UsageError::NotConnected));
        };
        let result = if nonblocking {
            stream.set_nonblocking(true).and_then(|()| {
                let r = stream.read(&mut self.read_buffer);
                stream.set_nonblocking(false).and(r)
            })
        } else {
            stream.read(&mut self.read_buffer)
        };
        match result {
            Ok(0) => {
                self.connection_lost();
                Err(Error::ConnectionClosed)
            }
            Ok(n) => {
                let now = self.now();
                self.session.handle_read(now, &self.read_buffer[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) => {
                self.connection_lost();
                Err(Error::Io(e))
            }
        }
    }

    fn connection_lost(&mut self) {
        self.stream = None;
        self.session.handle_connection_lost();
        self.drain_close_events();
    }

    /// Events left after the connection ended (e.g. `Closed(Disconnected)`) carry nothing the
    /// caller is waiting for; messages among them are kept.
    fn drain_close_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            if let Event::Message(publish) = event {
                self.inbox.push(&publish);
            }
        }
    }
}

/// Most topic and payload capacity kept in the pool of emptied messages.
const SPARE_MESSAGES_CAPACITY: usize = 1024 * 1024;

/// Received messages waiting for `wait_msg` / `check_msg`, bounded in count and bytes, and
/// the emptied messages whose buffers the queue reuses (see "Receiving without allocating").
#[derive(Debug, Default)]
struct Inbox {
    messages: VecDeque<Message>,
    /// Topic and payload bytes held by `messages`.
    bytes: usize,
    spares: Vec<Message>,
    /// Topic and payload capacity held by `spares`, at most [`SPARE_MESSAGES_CAPACITY`].
    spare_capacity: usize,
}

impl Inbox {
    /// Queues a received message, in a spare's buffers when there is one.
    fn push(&mut self, publish: &Publish<'_>) {
        let message = match self.spares.pop() {
            Some(mut spare) => {
                self.spare_capacity -= capacity(&spare);
                spare.set_from(publish);
                spare
            }
            None => Message::from(publish),
        };
        self.bytes += size(&message);
        self.messages.push_back(message);
    }

    fn pop(&mut self) -> Option<Message> {
        let message = self.messages.pop_front()?;
        self.bytes -= size(&message);
        Some(message)
    }

    /// Whether the queue takes no more messages: decoding stops until it is drained.
    fn is_full(&self, config: &ClientConfig) -> bool {
        self.messages.len() >= config.max_queued_messages
            || (self.bytes >= config.max_queued_bytes && !self.messages.is_empty())
    }

    /// Keeps an emptied message's buffers for the next `push`, unless the pool is full (in
    /// count or capacity): then they are freed.
    fn recycle(&mut self, message: Message, max_count: usize) {
        let capacity = capacity(&message);
        if self.spares.len() < max_count
            && self.spare_capacity + capacity <= SPARE_MESSAGES_CAPACITY
        {
            self.spare_capacity += capacity;
            self.spares.push(message);
        }
    }
}

fn size(message: &Message) -> usize {
    message.topic.len() + message.payload.len()
}

fn capacity(message: &Message) -> usize {
    message.topic.capacity() + message.payload.capacity()
}

fn session_config(config: &ClientConfig, will: Option<Will>) -> SessionConfig {
    SessionConfig {
        client_id: config.client_id.clone(),
        keep_alive: config.keep_alive,
        connect_timeout: config.connect_timeout,
        max_in_flight: config.max_in_flight,
        max_packet_size: config.max_packet_size,
        protocol: config.protocol,
        v5: config.v5.clone(),
        username: config.username.clone(),
        password: config.password.clone(),
        will,
        republish_on_clean_session: config.republish_on_clean_session,
        ..SessionConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish<'a>(topic: &'a str, payload: &'a [u8]) -> Publish<'a> {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            payload,
            properties: Default::default(),
        }
    }

    #[test]
    fn inbox_is_full_by_count_or_bytes_but_always_takes_one_message() {
        let config = ClientConfig {
            max_queued_messages: 3,
            max_queued_bytes: 10,
            ..ClientConfig::default()
        };
        let mut inbox = Inbox::default();
        assert!(!inbox.is_full(&config));
        // One message larger than the byte bound is still accepted into an empty queue.
        inbox.push(&publish("t", &[0; 50]));
        assert!(inbox.is_full(&config));
        assert_eq!(inbox.pop().map(|m| m.payload.len()), Some(50));
        assert_eq!(inbox.bytes, 0);
        assert!(!inbox.is_full(&config));
        for _ in 0..3 {
            inbox.push(&publish("t", b"x"));
        }
        assert_eq!(inbox.bytes, 6);
        assert!(inbox.is_full(&config), "full by count");
    }

    #[test]
    fn spare_pool_frees_buffers_beyond_its_capacity() {
        let mut inbox = Inbox::default();
        // A burst of large messages comes back as spares: most are freed.
        for _ in 0..8 {
            let message = Message::from(&publish("t", &[0; 512 * 1024]));
            inbox.recycle(message, 1024);
        }
        assert!(inbox.spare_capacity <= SPARE_MESSAGES_CAPACITY);
        assert_eq!(
            inbox.spare_capacity,
            inbox.spares.iter().map(capacity).sum::<usize>()
        );
        assert!(inbox.spares.len() < 8);
        // Small messages are still pooled, up to the count bound.
        let mut small = Inbox::default();
        for _ in 0..5 {
            small.recycle(Message::from(&publish("t", b"abc")), 3);
        }
        assert_eq!(small.spares.len(), 3);
        // Taking a spare for a new message updates the pooled capacity.
        small.push(&publish("t", b"x"));
        assert_eq!(
            small.spare_capacity,
            small.spares.iter().map(capacity).sum::<usize>()
        );
    }
}
