//! The reconnecting client: a blocking driver of the core's robust engine
//! ([`umqtt_core::robust::Engine`]), whose policy says how hard to try, per application and
//! per message.
//!
//! ```no_run
//! use std::time::Duration;
//! use umqtt::robust::{BatteryAware, Client, Delivery, Event};
//! use umqtt::{ClientConfig, QoS};
//!
//! let config = ClientConfig { client_id: "alarm-7".into(), server: "broker.local".into(), ..Default::default() };
//! let mut client = Client::new(config, BatteryAware::new());
//! let id = client.publish_with("home/alarm", b"window broken", QoS::AtLeastOnce, false, Delivery::Guaranteed)?;
//! // `poll` returns `None` when a quiet second passes; the loop goes on until the outcome.
//! loop {
//!     match client.poll(Duration::from_secs(1))? {
//!         Some(Event::Delivered { id: done }) if done == id => break,
//!         Some(event) => println!("{event:?}"), // Connected, RetryScheduled, Message(…)…
//!         None => {}                           // a quiet second: blink an LED, feed a watchdog
//!     }
//! }
//! # Ok::<(), umqtt::Error>(())
//! ```
//!
//! # What it guarantees
//! The engine's guarantees (see [`umqtt_core::robust`]): every message ends in exactly one of
//! [`Event::Delivered`], [`Event::Expired`] or [`Event::Dropped`]; persistent sessions by
//! default, resend with DUP on a resumed session, subscriptions renewed when the broker lost
//! the session; subscribers stay connected under every shipped policy. This driver adds:
//! - no call blocks longer than its timeout argument for the network: connections are opened
//!   on a helper thread, and `publish` never waits (one caveat: a write into a socket whose
//!   send buffer is full waits up to `response_timeout`, then the link counts as lost);
//! - events and received messages come out of one stream ([`Client::poll`]); messages also
//!   through [`Client::wait_msg`]. Reading from the network pauses while
//!   [`RobustConfig::max_received`] messages wait, so memory stays bounded.

mod link;

pub use link::{classify, LinkFailure, Nudger};
pub use umqtt_core::robust::{
    listening_backoff, BatteryAware, Deadline, Decision, Delivery, DropCounts, DropReason,
    ExponentialBackoff, Failure, FailureKind, FixedDelay, LinkError, MessageId, NoRetry,
    OutageLimit, Overflow, PendingSummary, ReconnectPolicy, Stats, Unsupported,
};

use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use umqtt_core::packet::QoS;
use umqtt_core::robust::{Action, Engine, EngineConfig};
use umqtt_core::session::{SessionConfig, UsageError, Will};

use crate::error::Error;
use crate::outbox::{self, OutboxStore, StoredMessage};
use crate::simple::{ClientConfig, Message};
use crate::transport::{self, Stream, Transport, TransportStats};
use link::OpenRequest;

/// What happened: the link's life, every message's outcome, messages received.
pub type Event = umqtt_core::robust::Event<LinkFailure>;

/// Settings of the robust layer on top of [`ClientConfig`].
#[derive(Debug, Clone)]
pub struct RobustConfig {
    /// Further brokers tried in turn after `ClientConfig::server` (failover).
    pub extra_servers: Vec<(String, Option<u16>)>,
    /// Start clean sessions instead of persistent ones (default false: persistent, which
    /// needs a client id).
    pub clean_session: bool,
    /// Most messages waiting for delivery.
    pub max_queued: usize,
    /// Most payload bytes waiting for delivery.
    pub max_queued_bytes: usize,
    /// What to do when either limit is reached.
    pub overflow: Overflow,
    /// Most events other than messages kept when nobody drains them; the oldest are
    /// discarded and counted.
    pub max_events: usize,
    /// Most received messages waiting for the application before reading pauses.
    pub max_received: usize,
    /// Most received payload bytes waiting for the application before reading pauses.
    pub max_received_bytes: usize,
    /// Seed of the policies' jitter; `None` draws one per client (so a fleet spreads out).
    pub seed: Option<u64>,
    /// Acknowledge received QoS 1/2 messages only through [`Client::ack`], once processed:
    /// a message the process dies holding is redelivered by the broker instead of lost.
    pub manual_ack: bool,
}

impl Default for RobustConfig {
    fn default() -> Self {
        RobustConfig {
            extra_servers: Vec::new(),
            clean_session: false,
            max_queued: 100_000,
            max_queued_bytes: 64 * 1024 * 1024,
            overflow: Overflow::RefuseNew,
            max_events: 65_536,
            max_received: 1024,
            max_received_bytes: 16 * 1024 * 1024,
            seed: None,
            manual_ack: false,
        }
    }
}

impl RobustConfig {
    /// The server list: `config.server` first, then [`RobustConfig::extra_servers`]; events
    /// name servers by index into it.
    pub fn servers(&self, config: &ClientConfig) -> Vec<(String, Option<u16>)> {
        let mut servers = vec![(config.server.clone(), config.port)];
        servers.extend(self.extra_servers.iter().cloned());
        servers
    }

    /// The engine's settings for `config` with these robust-layer settings (what every driver
    /// of the engine — this blocking one, the async one — runs with).
    pub fn engine_config(&self, config: &ClientConfig) -> EngineConfig {
        let mut engine_config = EngineConfig::new(session_config(config));
        engine_config.servers = 1 + self.extra_servers.len();
        engine_config.clean_session = self.clean_session;
        engine_config.max_queued = self.max_queued;
        engine_config.max_queued_bytes = self.max_queued_bytes;
        engine_config.overflow = self.overflow;
        engine_config.max_events = self.max_events;
        engine_config.max_received = self.max_received.max(1);
        engine_config.max_received_bytes = self.max_received_bytes;
        engine_config.manual_ack = self.manual_ack;
        engine_config
    }

    /// [`RobustConfig::seed`], or a seed drawn for this client.
    pub fn seed_or_random(&self) -> u64 {
        self.seed.unwrap_or_else(random_seed)
    }
}

type EventHandler = Box<dyn FnMut(&Event) + Send>;

const READ_CHUNK: usize = 16 * 1024;

/// A client that reconnects according to a [`ReconnectPolicy`] and keeps each message until
/// its [`Delivery`] contract is settled.
pub struct Client {
    engine: Engine<Box<dyn ReconnectPolicy>, LinkFailure>,
    config: ClientConfig,
    servers: Vec<(String, Option<u16>)>,
    stream: Option<Transport>,
    /// Generation of the open in progress (results of older ones are dropped).
    generation: u64,
    opening: bool,
    nudger: Nudger,
    epoch: Instant,
    read_buffer: Box<[u8]>,
    /// The read timeout set on `stream`, if known: most reads then skip the `setsockopt`.
    read_timeout: Option<Duration>,
    /// How long a write may make no progress before the link counts as lost.
    write_stall: Duration,
    /// Events drained from the engine, not yet taken by the application.
    events: VecDeque<Event>,
    handler: Option<EventHandler>,
    store: Option<Box<dyn OutboxStore>>,
    last_durable_commit: umqtt_core::Instant,
    /// The outcome of the last attempt, for [`Client::connect`].
    last_attempt: Option<Result<bool, LinkError<LinkFailure>>>,
    transport_stats: TransportStats,
}

impl Client {
    /// A robust client with `config` for the connection and `policy` for reconnecting. Nothing
    /// is sent until the first call that drives it (`connect`, `publish`, `poll`…).
    pub fn new(config: ClientConfig, policy: impl ReconnectPolicy + 'static) -> Self {
        Client::with_robust_config(config, policy, RobustConfig::default())
    }

    /// Like [`Client::new`] with robust-layer settings.
    pub fn with_robust_config(
        config: ClientConfig,
        policy: impl ReconnectPolicy + 'static,
        robust: RobustConfig,
    ) -> Self {
        let servers = robust.servers(&config);
        let mut engine_config = robust.engine_config(&config);
        // This driver opens any host: an MQTT 5 Server Reference is followed.
        engine_config.follow_server_references = true;
        let seed = robust.seed_or_random();
        let epoch = Instant::now();
        let write_stall = transport::write_stall(config.response_timeout, &engine_config.session);
        let policy: Box<dyn ReconnectPolicy> = Box::new(policy);
        Client {
            engine: Engine::new(engine_config, policy, seed, umqtt_core::Instant::default()),
            config,
            servers,
            stream: None,
            generation: 0,
            opening: false,
            nudger: Nudger::default(),
            epoch,
            read_buffer: vec![0; READ_CHUNK].into_boxed_slice(),
            read_timeout: None,
            write_stall,
            events: VecDeque::new(),
            handler: None,
            store: None,
            last_durable_commit: umqtt_core::Instant::default(),
            last_attempt: None,
            transport_stats: TransportStats::default(),
        }
    }

    /// Like [`Client::with_robust_config`], with guaranteed messages kept in `store` so they
    /// survive the process dying. Messages a previous process left in the store are loaded and
    /// will be sent again (those that had a packet id go first, with that id, and with DUP if
    /// the broker resumes the session). Use the same client id as that process.
    pub fn with_outbox(
        config: ClientConfig,
        policy: impl ReconnectPolicy + 'static,
        robust: RobustConfig,
        store: impl OutboxStore + 'static,
    ) -> Result<Self, Error> {
        let mut client = Client::with_robust_config(config, policy, robust);
        let mut store: Box<dyn OutboxStore> = Box::new(store);
        outbox::restore(&mut client.engine, &store.load()?)?;
        client.store = Some(store);
        Ok(client)
    }

    /// Sets the last will (from the next connection on).
    pub fn set_last_will(&mut self, topic: &str, payload: &[u8], retain: bool, qos: QoS) {
        self.engine.set_will(Some(Will {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
            properties: Vec::new(),
        }));
    }

    /// [`Client::set_last_will`] with MQTT 5 will properties (will delay interval, message
    /// expiry, content type, response topic, correlation data, user properties); properties
    /// a will may not carry are refused ([`UsageError::Encode`]).
    pub fn set_last_will_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        qos: QoS,
        properties: umqtt_core::packet::Properties<'_>,
    ) -> Result<(), Error> {
        let properties = properties
            .encode_for(umqtt_core::packet::PacketType::Connect, true)
            .map_err(|e| Error::Usage(UsageError::Encode(e)))?;
        self.engine.set_will(Some(Will {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
            properties,
        }));
        Ok(())
    }

    /// Sends every event except received messages to `handler` instead of queueing it for
    /// [`Client::poll`]; messages stay for [`Client::poll`] / [`Client::wait_msg`].
    pub fn set_event_handler(&mut self, handler: impl FnMut(&Event) + Send + 'static) {
        self.handler = Some(Box::new(handler));
    }

    /// A handle another thread can use to say "the network is back".
    pub fn nudger(&self) -> Nudger {
        self.nudger.clone()
    }

    /// The network is back (e.g. Wi-Fi up): the next drive attempts a connection at once.
    pub fn nudge(&mut self) {
        self.nudger.nudge();
    }

    /// Whether the link is up.
    pub fn is_connected(&self) -> bool {
        self.engine.is_connected()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Counters of the transports this client opened: how many, and how many TLS handshakes
    /// were full or resumed (see [`TlsConfig::session_resumption`]). Kept by this driver, not
    /// the engine, which knows nothing of transports.
    ///
    /// [`TlsConfig::session_resumption`]: crate::transport::TlsConfig::session_resumption
    pub fn transport_stats(&self) -> TransportStats {
        self.transport_stats
    }

    /// Messages not yet settled.
    pub fn pending(&self) -> usize {
        self.engine.pending()
    }

    /// The server list: `ClientConfig::server` first, then [`RobustConfig::extra_servers`];
    /// [`Event::Connected`] and [`Event::AttemptFailed`] name servers by index into it.
    pub fn servers(&self) -> &[(String, Option<u16>)] {
        &self.servers
    }

    /// Attempts a connection now (whatever the schedule) and waits for its outcome, at most
    /// the connect timeout; returns `session_present`. On failure the policy schedules the
    /// next attempt and the error is returned.
    pub fn connect(&mut self) -> Result<bool, Error> {
        if self.is_connected() {
            return Err(Error::Usage(UsageError::AlreadyConnected));
        }
        self.last_attempt = None;
        let now = self.now();
        self.engine.connect(now);
        let deadline = now.saturating_add(self.config.connect_timeout + Duration::from_millis(100));
        self.drive_until(deadline, |client| client.last_attempt.is_some())?;
        match self.last_attempt.take() {
            Some(Ok(session_present)) => Ok(session_present),
            Some(Err(error)) => Err(link_error(error)),
            None => Err(Error::ConnectTimeout),
        }
    }

    /// Publishes with the policy's default [`Delivery`].
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<MessageId, Error> {
        let delivery = self.engine.policy().default_delivery();
        self.publish_with(topic, payload, qos, retain, delivery)
    }

    /// Publishes with an explicit delivery contract. Returns at once with the message's id
    /// (never waiting for the network); its fate is reported by [`Event::Delivered`],
    /// [`Event::Expired`] or [`Event::Dropped`]. With a durable outbox, a guaranteed message
    /// is on disk when this returns.
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
    ) -> Result<MessageId, Error> {
        let mut first = None;
        self.publish_each(&[(topic, payload)], qos, retain, delivery, |id| {
            first = Some(id);
        })?;
        first.ok_or(Error::Usage(UsageError::OutgoingFull))
    }

    /// [`Client::publish_with`] with MQTT 5 PUBLISH properties (user properties, content
    /// type, response topic, correlation data, message expiry…); a [`Delivery::Within`]
    /// deadline still bounds the Message Expiry Interval sent (the shorter of the two).
    /// Refused with 3.1.1, or for a property PUBLISH may not carry. The message and its
    /// properties are kept in memory only, never in a durable outbox (which stores no
    /// properties): a message that must survive a crash is published without them.
    pub fn publish_with_properties(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
        properties: umqtt_core::packet::Properties<'_>,
    ) -> Result<MessageId, Error> {
        let now = self.now();
        let id = self
            .engine
            .publish_with_properties(now, topic, payload, qos, retain, delivery, properties)?;
        self.service(now)?;
        Ok(id)
    }

    /// Publishes several messages at once: with a durable outbox they are written in one
    /// commit (one fsync for the batch). Either all are accepted or, on an error, none.
    pub fn publish_batch(
        &mut self,
        messages: &[(&str, &[u8])],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
    ) -> Result<Vec<MessageId>, Error> {
        let mut ids = Vec::with_capacity(messages.len());
        self.publish_each(messages, qos, retain, delivery, |id| ids.push(id))?;
        Ok(ids)
    }

    /// [`Client::publish_batch`], handing each id to `taken` (no allocation for one message
    /// without an outbox).
    fn publish_each(
        &mut self,
        messages: &[(&str, &[u8])],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
        mut taken: impl FnMut(MessageId),
    ) -> Result<(), Error> {
        // Nothing is stored (or queued) unless the engine will take every message.
        for (topic, payload) in messages {
            Engine::<Box<dyn ReconnectPolicy>, LinkFailure>::check_publish(topic, payload, qos)?;
        }
        let durable = delivery == Delivery::Guaranteed && self.store.is_some();
        let bytes = messages.iter().map(|(_, p)| p.len()).sum();
        if messages.len() > 1
            && self.engine.settings().overflow == Overflow::RefuseNew
            && !self.engine.has_room(messages.len(), bytes)
        {
            return Err(Error::Usage(UsageError::OutgoingFull));
        }
        let now = self.now();
        if durable {
            if !self.engine.has_room(messages.len(), bytes) {
                return Err(Error::Usage(UsageError::OutgoingFull));
            }
            let first = self.engine.next_message_id().0;
            let records: Vec<StoredMessage> = messages
                .iter()
                .zip(first..)
                .map(|((topic, payload), id)| StoredMessage {
                    id,
                    topic: topic.to_string(),
                    payload: payload.to_vec(),
                    qos,
                    retain,
                    packet_id: None,
                })
                .collect();
            if let Some(store) = self.store.as_mut() {
                store.insert(&records)?;
                self.last_durable_commit = now;
            }
        }
        for (topic, payload) in messages {
            let id = if durable {
                self.engine
                    .publish_durable(now, topic, payload, qos, retain)?
            } else {
                self.engine
                    .publish_with(now, topic, payload, qos, retain, delivery)?
            };
            taken(id);
        }
        self.service(now)
    }

    /// Subscribes (now if connected, else at the next connection) and keeps the subscription
    /// across reconnects; renewed only if the broker lost the session. The broker's answer is
    /// reported by [`Event::Subscribed`] or [`Event::SubscriptionRefused`].
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), Error> {
        let now = self.now();
        self.engine.subscribe(now, filter, qos)?;
        self.service(now)
    }

    /// [`Client::subscribe`] with MQTT 5 SUBSCRIBE properties (a subscription identifier,
    /// user properties), sent again with every renewal. Refused with 3.1.1, or for a property
    /// SUBSCRIBE may not carry.
    pub fn subscribe_with_properties(
        &mut self,
        filter: &str,
        qos: QoS,
        properties: umqtt_core::packet::Properties<'_>,
    ) -> Result<(), Error> {
        let now = self.now();
        self.engine
            .subscribe_with_properties(now, filter, qos, properties)?;
        self.service(now)
    }

    /// Forgets a subscription and unsubscribes: now if connected, else at the next connection
    /// (a persistent session would otherwise keep delivering).
    pub fn unsubscribe(&mut self, filter: &str) -> Result<(), Error> {
        let now = self.now();
        self.engine.unsubscribe(now, filter)?;
        self.service(now)
    }

    /// [`Client::unsubscribe`] with MQTT 5 UNSUBSCRIBE properties (user properties). Refused
    /// with 3.1.1, or for a property UNSUBSCRIBE may not carry.
    pub fn unsubscribe_with_properties(
        &mut self,
        filter: &str,
        properties: umqtt_core::packet::Properties<'_>,
    ) -> Result<(), Error> {
        let now = self.now();
        self.engine
            .unsubscribe_with_properties(now, filter, properties)?;
        self.service(now)
    }

    /// With [`RobustConfig::manual_ack`]: `message` is processed; the broker gets its PUBACK /
    /// PUBREC (in the order messages arrived). Returns whether an acknowledgement was owed
    /// (false for QoS 0, a second ack, or a QoS 1 message whose connection ended: the broker
    /// redelivers it and the redelivery is acknowledged instead).
    pub fn ack(&mut self, message: &Message) -> Result<bool, Error> {
        let now = self.now();
        let owed = self.engine.ack(now, message);
        self.service(now)?;
        Ok(owed)
    }

    /// Drives the client for up to `timeout` and returns the next event (received messages
    /// included), or `None` if none came in that time.
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        if self.events.is_empty() {
            let deadline = self.now().saturating_add(timeout);
            self.drive_until(deadline, |client| !client.events.is_empty())?;
        }
        Ok(self.take_event(0))
    }

    /// The next queued event without driving the connection.
    pub fn next_event(&mut self) -> Option<Event> {
        self.take_event(0)
    }

    /// Drives the client until a message arrives or `timeout` passes. Other events stay
    /// queued for [`Client::poll`] (or go to the handler).
    pub fn wait_msg(&mut self, timeout: Duration) -> Result<Option<Message>, Error> {
        let is_message = |e: &Event| matches!(e, Event::Message(_));
        if !self.events.iter().any(is_message) {
            let deadline = self.now().saturating_add(timeout);
            self.drive_until(deadline, |client| client.events.iter().any(is_message))?;
        }
        let Some(index) = self.events.iter().position(is_message) else {
            return Ok(None);
        };
        match self.take_event(index) {
            Some(Event::Message(message)) => Ok(Some(message)),
            _ => Ok(None),
        }
    }

    /// Drives the client until every message is settled or `timeout` passes; returns whether
    /// nothing is pending.
    pub fn flush(&mut self, timeout: Duration) -> Result<bool, Error> {
        self.wait_pending_at_most(0, timeout)
    }

    /// Drives the client until at most `messages` are pending (not yet settled) or `timeout`
    /// passes; returns whether that many or fewer are. Backpressure for a producer: publish
    /// while below a bound, wait here when above it — the wait ends as soon as enough
    /// acknowledgements came, not at the timeout.
    pub fn wait_pending_at_most(
        &mut self,
        messages: usize,
        timeout: Duration,
    ) -> Result<bool, Error> {
        let deadline = self.now().saturating_add(timeout);
        self.drive_until(deadline, |client| client.pending() <= messages)?;
        Ok(self.pending() <= messages)
    }

    /// Drives the client for `duration`: reconnects, sends, receives, expires.
    pub fn run_for(&mut self, duration: Duration) -> Result<(), Error> {
        let deadline = self.now().saturating_add(duration);
        self.drive_until(deadline, |_| false)
    }

    /// Sends DISCONNECT if connected and stops reconnecting until new work. Pending messages
    /// stay (and are resent by a later connection with the same client id if the session
    /// persists).
    pub fn disconnect(&mut self) -> Result<(), Error> {
        self.disconnect_with(umqtt_core::packet::Disconnect::NORMAL)
    }

    /// [`Client::disconnect`] with an MQTT 5 reason code and DISCONNECT properties (a session
    /// expiry interval, a reason string, user properties); one that cannot be encoded is
    /// refused ([`UsageError::Encode`]) and nothing changes.
    pub fn disconnect_with(
        &mut self,
        disconnect: umqtt_core::packet::Disconnect<'_>,
    ) -> Result<(), Error> {
        let now = self.now();
        self.engine.disconnect_with(now, disconnect)?;
        self.service(now)?;
        if let Some(mut stream) = self.stream.take() {
            let _ = stream.shutdown();
        }
        Ok(())
    }

    // ----- the driver ------------------------------------------------------------------------

    /// The engine's time: milliseconds since the client was built. The driver's only read of
    /// the wall clock; its deadlines are in this time too.
    fn now(&self) -> umqtt_core::Instant {
        let millis = self.epoch.elapsed().as_millis();
        umqtt_core::Instant::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    fn take_event(&mut self, index: usize) -> Option<Event> {
        let event = self.events.remove(index)?;
        if let Event::Message(message) = &event {
            let now = self.now();
            self.engine.handle_consumed(now, message.payload.len());
        }
        Some(event)
    }

    /// Drives until `done` or `deadline`.
    fn drive_until(
        &mut self,
        deadline: umqtt_core::Instant,
        mut done: impl FnMut(&mut Client) -> bool,
    ) -> Result<(), Error> {
        loop {
            let now = self.now();
            if self.nudger.take_nudge() {
                self.engine.nudge(now);
            }
            if let Some(result) = self.take_opened() {
                self.opened(now, result);
            }
            self.engine.handle_timeout(now);
            self.service(now)?;
            if done(self) || self.now() >= deadline {
                return Ok(());
            }
            self.wait(deadline);
        }
    }

    fn take_opened(&mut self) -> Option<Result<Transport, Error>> {
        if !self.opening {
            return None;
        }
        let result = self.nudger.take_opened(self.generation)?;
        self.opening = false;
        Some(result)
    }

    fn opened(&mut self, now: umqtt_core::Instant, result: Result<Transport, Error>) {
        match result {
            Ok(stream) => {
                self.transport_stats.record(&stream);
                self.stream = Some(stream);
                self.read_timeout = None;
                self.engine.handle_opened(now);
            }
            Err(error) => {
                let kind = classify(&error);
                self.engine
                    .handle_open_failed(now, kind, LinkFailure::new(error));
            }
        }
    }

    /// Waits for input until the engine's next timer or `deadline`, whichever is first.
    fn wait(&mut self, deadline: umqtt_core::Instant) {
        let now = self.now();
        let mut wake = deadline;
        if let Some(at) = self.engine.poll_timeout() {
            wake = wake.min(at);
        }
        // Millisecond timers: never wait less than 1 ms (a zero timeout means "forever").
        let timeout = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        if self.stream.is_some() && self.engine.wants_read() {
            self.read(timeout);
        } else {
            self.nudger.wait(timeout);
        }
    }

    fn read(&mut self, timeout: Duration) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        // A timeout already set is kept while it is no longer than wanted (the read may return
        // early; the caller's loop waits again, never late) and at least half of it; a new one
        // is set a little short so the next, slightly shorter waits keep it. This saves a
        // system call per read when small packets ping-pong.
        let keep = self
            .read_timeout
            .is_some_and(|set| set <= timeout && set >= timeout / 2);
        let mut result = Ok(());
        if !keep {
            let wanted = (timeout * 7 / 8).max(Duration::from_millis(1));
            result = stream.set_read_timeout(Some(wanted));
            self.read_timeout = result.is_ok().then_some(wanted);
        }
        let result = result.and_then(|()| stream.read(&mut self.read_buffer));
        let now = self.now();
        match result {
            Ok(0) => self.lost(now, Error::ConnectionClosed),
            Ok(n) => self.engine.handle_read(now, &self.read_buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => self.lost(now, Error::Io(e)),
        }
    }

    fn lost(&mut self, now: umqtt_core::Instant, error: Error) {
        let kind = classify(&error);
        self.stream = None;
        self.engine
            .handle_connection_lost(now, kind, LinkFailure::new(error));
    }

    /// Carries out what the engine asks: opens and closes, writes, outbox records, events.
    fn service(&mut self, now: umqtt_core::Instant) -> Result<(), Error> {
        loop {
            let mut acted = false;
            while let Some(action) = self.engine.poll_action() {
                acted = true;
                match action {
                    Action::Open { server } => self.open(server),
                    Action::Close => {
                        self.write(now);
                        self.opening = false;
                        if let Some(mut stream) = self.stream.take() {
                            let _ = stream.shutdown();
                        }
                    }
                }
            }
            self.write(now);
            if !acted && self.engine.poll_action().is_none() {
                break;
            }
        }
        self.apply_store_ops(now)?;
        self.dispatch_events();
        Ok(())
    }

    fn open(&mut self, server: usize) {
        self.stream = None;
        self.generation += 1;
        self.opening = true;
        // Past the configured list: the server an MQTT 5 Server Reference named.
        let (host, port) = match self.engine.server_address(server) {
            Some(address) => (address.host.clone(), address.port),
            None => self.servers[server % self.servers.len()].clone(),
        };
        let port = port.unwrap_or_else(|| self.config.effective_port());
        let request = OpenRequest {
            host,
            port,
            tls: self.config.tls.clone(),
            transport: self.config.transport.clone(),
            timeout: self.config.connect_timeout,
            write_stall: self.write_stall,
        };
        link::open_in_background(request, self.generation, self.nudger.clone());
    }

    fn write(&mut self, now: umqtt_core::Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let mut result = None;
        while let Some(bytes) = self.engine.poll_transmit(now) {
            let written = transport::write_within(stream, bytes, self.write_stall);
            let failed = written.is_err();
            result = Some(written);
            if failed {
                break;
            }
        }
        let Some(result) = result else {
            return;
        };
        match result {
            Ok(()) => self.engine.handle_written(now),
            Err(e) => {
                let error = match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::WriteStalled,
                    _ => Error::Io(e),
                };
                self.lost(now, error);
            }
        }
    }

    /// Records hand-offs and settlements in the durable outbox: cheaply at every pass,
    /// durably at most once a second.
    fn apply_store_ops(&mut self, now: umqtt_core::Instant) -> Result<(), Error> {
        let Some(store) = self.store.as_mut() else {
            while self.engine.poll_store().is_some() {}
            return Ok(());
        };
        if outbox::record_store_ops(&mut self.engine, store.as_mut()) {
            outbox::commit(store.as_mut(), now, &mut self.last_durable_commit, false)?;
        }
        Ok(())
    }

    fn dispatch_events(&mut self) {
        while let Some(event) = self.engine.poll_event() {
            match &event {
                Event::Connected {
                    session_present, ..
                } => self.last_attempt = Some(Ok(*session_present)),
                Event::AttemptFailed { error, .. } => {
                    self.last_attempt = Some(Err(error.clone()));
                }
                _ => {}
            }
            match (&mut self.handler, &event) {
                (Some(handler), event) if !matches!(event, Event::Message(_)) => handler(event),
                _ => self.events.push_back(event),
            }
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.servers)
            .field("connected", &self.is_connected())
            .field("pending", &self.pending())
            .field("stats", &self.stats())
            .finish()
    }
}

/// The error a failed attempt returns from [`Client::connect`].
fn link_error(error: LinkError<LinkFailure>) -> Error {
    match error {
        LinkError::Closed(reason) => Error::from(reason),
        LinkError::Transport(failure) => Error::Connect(failure.shared()),
        LinkError::Usage(error) => Error::Usage(error),
        _ => Error::ConnectTimeout,
    }
}

fn session_config(config: &ClientConfig) -> SessionConfig {
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
        ..SessionConfig::default()
    }
}

/// A per-client seed from std's randomly keyed hasher (no dependency).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}
