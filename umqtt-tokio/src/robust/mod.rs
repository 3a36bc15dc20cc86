//! The reconnecting async client: the core's robust engine ([`umqtt_core::robust::Engine`])
//! driven by a tokio task.
//!
//! ```no_run
//! use umqtt_tokio::robust::{BatteryAware, Client, Delivery, Event, Outcome};
//! use umqtt_tokio::{ClientConfig, QoS};
//!
//! # async fn run() -> Result<(), umqtt_tokio::Error> {
//! let config = ClientConfig { client_id: "alarm-7".into(), server: "broker.local".into(), ..Default::default() };
//! let (handle, mut events) = Client::new(config, BatteryAware::new()).spawn()?;
//! tokio::spawn(async move {
//!     while let Some(event) = events.next().await {
//!         println!("{event:?}"); // Connected, RetryScheduled, Message(…), Delivered…
//!     }
//! });
//! let receipt = handle
//!     .publish_with("home/alarm", b"window broken", QoS::AtLeastOnce, false, Delivery::Guaranteed)
//!     .await?;
//! assert_eq!(receipt.outcome().await?, Outcome::Delivered);
//! # Ok(())
//! # }
//! ```
//!
//! # Shape
//! One engine, shared: every [`Handle`] call locks it for the few microseconds its command
//! takes (never across an `.await`), so `publish` returns the engine's [`MessageId`] without a
//! round trip through a task. A driver task owns the connection: it opens and closes it as the
//! engine asks, writes what the engine transmits, reads while the engine wants input, and
//! sleeps until the engine's next timer. The event stream ([`Events`]) takes events straight
//! out of the engine, so the engine's bounds are the stream's bounds.
//!
//! # Backpressure (all bounded)
//! - Outgoing: the engine's offline queue (`RobustConfig::max_queued`, `max_queued_bytes`)
//!   and its overflow rule. With [`Overflow::RefuseNew`] (the default), [`Handle::publish`]
//!   waits for room and [`Handle::try_publish_with`] fails with `OutgoingFull`; with
//!   `DropOldest` / `DropNewest` the engine drops (and reports) instead.
//! - Incoming: received messages count against the engine's receive bound
//!   (`RobustConfig::max_received`, `max_received_bytes`) until [`Events::next`] returns
//!   them; past it the driver stops reading, so TCP pushes back on the broker. Other events
//!   are bounded by `RobustConfig::max_events` (oldest discarded, counted in
//!   [`Stats::events_overflowed`]).
//! - There is no command channel: a command is the engine call itself.
//!
//! # Outcomes and the event stream
//! Every outcome is both an event in the one event stream (in order with everything else)
//! and, apart from it, handed to the message's [`Receipt`] by the engine
//! ([`Engine::poll_outcome`]): a receipt resolves as soon as the outcome is known, whether
//! or not the event stream is read. A receipt whose outcome never came before the driver
//! ended resolves with [`Error::DriverStopped`]. Receipts cost no allocation: a receipt is
//! a slot in a table the driver fills, removed when the receipt is dropped or resolved.
//!
//! # Cancel safety
//! - [`Handle::publish`] / [`Handle::publish_with`]: the only `.await` is waiting for room in
//!   the offline queue, before anything is queued; the engine takes the message and returns
//!   its id in one step after that. Dropping the future therefore either queued nothing, or
//!   — once it returned `Ready` — the message is queued exactly once. Nothing is ever queued
//!   by a future that was dropped.
//!   With a durable outbox ([`Client::outbox`]) the message is stored in that same step,
//!   before the engine takes it: a future that returned `Ready` stored it exactly once, one
//!   dropped before did not store it.
//! - [`Receipt::outcome`]: dropping it (or the receipt) changes nothing for the message; its
//!   outcome still comes out of the event stream.
//! - [`Events::next`]: an event is taken out of the engine only in the same step that returns
//!   it, so dropping a pending `next()` loses no event and no message, and a message is
//!   acknowledged (with automatic acks) only once it was handed over.
//! - [`Handle::disconnect`]: DISCONNECT is requested before the first `.await`; dropping the
//!   future only stops waiting for the driver to have written it.
//! - [`Handle::subscribe`], [`Handle::unsubscribe`], [`Handle::nudge`], [`Handle::ack`] are
//!   not futures: they take effect when they return (a nudge at the driver's next pass).
//! - Whatever is cancelled, bytes taken from the engine are written whole before anything
//!   that may end the connection is applied (a disconnect, a nudge, room in the receive
//!   bound): the engine never counts written QoS 0 messages as unwritten (which would send
//!   them twice).
//! - The driver ([`Driver`]): dropping or aborting it ends the connection (no DISCONNECT:
//!   the broker publishes the will); queued messages are then lost with the process's memory
//!   (unless kept in a durable outbox) and pending receipts resolve with
//!   [`Error::DriverStopped`].

mod driver;

pub use driver::Driver;
pub use umqtt::robust::{
    classify, BatteryAware, Deadline, Decision, Delivery, DropCounts, DropReason,
    ExponentialBackoff, Failure, FailureKind, FixedDelay, LinkError, LinkFailure, MessageId,
    NoRetry, OutageLimit, Overflow, PendingSummary, ReconnectPolicy, RobustConfig, Stats,
};
pub use umqtt_core::robust::Outcome;

use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use tokio::sync::Notify;
use umqtt::outbox::{OutboxStore, StoredMessage};
use umqtt::{ClientConfig, Message, QoS};
use umqtt_core::robust::Engine;
use umqtt_core::session::{UsageError, Will};

use crate::connect::{Connector, TcpConnector};
use crate::error::Error;
use crate::time::Clock;
use umqtt::transport::TransportStats;

/// What happened: the link's life, every message's outcome, messages received.
pub type Event = umqtt::robust::Event;

type PolicyBox = Box<dyn ReconnectPolicy>;

/// Builds a client: settings, then [`Client::spawn`] (driver on the current runtime) or
/// [`Client::build`] (the driver future, for you to spawn).
#[must_use = "a client does nothing until spawned or built"]
pub struct Client {
    config: ClientConfig,
    robust: RobustConfig,
    policy: PolicyBox,
    connector: Option<Box<dyn Connector>>,
    will: Option<Will>,
    store: Option<Box<dyn OutboxStore>>,
    restored: Vec<StoredMessage>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("robust", &self.robust)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config` (server, client id, keepalive, TLS…) reconnecting by `policy`.
    pub fn new(config: ClientConfig, policy: impl ReconnectPolicy + 'static) -> Self {
        Client {
            config,
            robust: RobustConfig::default(),
            policy: Box::new(policy),
            connector: None,
            will: None,
            store: None,
            restored: Vec::new(),
        }
    }

    /// Keeps guaranteed messages in `store` (e.g. `umqtt::outbox::DurableOutbox`) until they
    /// are settled, so that they survive the process dying: a [`Handle::publish_with`] of a
    /// [`Delivery::Guaranteed`] message returns only after the message was stored durably.
    /// Messages a previous process left in the store are loaded now and sent again first
    /// (those that had a packet id with that id, and DUP if the broker resumes the session):
    /// use the same client id as that process.
    ///
    /// The store is written on the task that publishes (inside
    /// `tokio::task::block_in_place` on a multi-threaded runtime) and by the driver, which
    /// records hand-overs and settlements cheaply at every pass and durably at most once a
    /// second — as the blocking client does.
    ///
    /// # Errors
    /// [`Error::Outbox`] if the store cannot be read; [`Error::Usage`] if a stored message
    /// has an invalid topic (a store written by something else).
    pub fn outbox(mut self, store: impl OutboxStore + 'static) -> Result<Self, Error> {
        let mut store: Box<dyn OutboxStore> = Box::new(store);
        let restored = blocking(|| store.load())?;
        for message in &restored {
            umqtt_core::topic::validate_topic_name(&message.topic)
                .map_err(|e| Error::Usage(UsageError::InvalidTopicName(e)))?;
        }
        self.restored = restored;
        self.store = Some(store);
        Ok(self)
    }

    /// Robust-layer settings: failover servers, queue and receive bounds, overflow rule,
    /// manual acks, jitter seed.
    pub fn robust_config(mut self, robust: RobustConfig) -> Self {
        self.robust = robust;
        self
    }

    /// Opens connections with `connector` instead of TCP/TLS to the configured servers.
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.connector = Some(Box::new(connector));
        self
    }

    /// The last will, sent with every CONNECT.
    pub fn last_will(mut self, topic: &str, payload: &[u8], retain: bool, qos: QoS) -> Self {
        self.will = Some(Will {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
            properties: Vec::new(),
        });
        self
    }

    /// Spawns the driver on the current tokio runtime and returns the handle and the event
    /// stream. The first connection attempt starts at once.
    ///
    /// # Errors
    /// [`Error::NoRuntime`] outside a tokio runtime.
    pub fn spawn(self) -> Result<(Handle, Events), Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (handle, events, driver) = self.build();
        runtime.spawn(driver);
        Ok((handle, events))
    }

    /// The handle, the event stream and the driver future, which does all the I/O: spawn it
    /// (or `select!` on it); nothing is sent or received while it is not polled. It ends
    /// after every [`Handle`] was dropped (sending DISCONNECT first if connected).
    pub fn build(self) -> (Handle, Events, Driver) {
        let mut transport_stats = None;
        let connector = self.connector.unwrap_or_else(|| {
            let connector = TcpConnector::from_config(&self.config, &self.robust.extra_servers);
            transport_stats = Some(connector.stats_cell());
            Box::new(connector)
        });
        let mut engine_config = self.robust.engine_config(&self.config);
        // Receipts resolve from the engine's outcomes, not from the event stream.
        engine_config.track_outcomes = true;
        engine_config.follow_server_references = connector.follows_references();
        let write_stall =
            umqtt::transport::write_stall(self.config.response_timeout, &engine_config.session);
        let clock = Clock::new();
        let start = clock.now();
        let mut engine = Engine::new(
            engine_config,
            self.policy,
            self.robust.seed_or_random(),
            start,
        );
        if self.will.is_some() {
            engine.set_will(self.will);
        }
        // Topics were checked by `outbox`: this cannot fail.
        let _ = umqtt::outbox::restore(&mut engine, &self.restored);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                engine,
                clock,
                receipts: HashMap::default(),
                events_dropped: false,
                deferred: Deferred::default(),
                driver_done: false,
                handles: 1,
                serviced: 0,
                store: self.store,
                last_durable_commit: start,
                store_error: None,
            }),
            driver: Notify::new(),
            events: Notify::new(),
            progress: Notify::new(),
            transport_stats,
        });
        let driver = Driver::new(shared.clone(), connector, write_stall);
        (
            Handle {
                shared: shared.clone(),
            },
            Events { shared },
            driver,
        )
    }
}

/// What the handle, the event stream and the driver share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Wakes the driver: new work, consumed messages, a dropped handle or event stream.
    pub(crate) driver: Notify,
    /// Wakes the event stream (one consumer): new events, or the driver ended.
    pub(crate) events: Notify,
    /// Wakes publishers waiting for room and `disconnect` waiting for the driver.
    pub(crate) progress: Notify,
    /// The default connector's counters (none with a connector of the application's).
    pub(crate) transport_stats: Option<Arc<std::sync::Mutex<TransportStats>>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the engine half-updated in a way the
        // next call cannot handle any worse than a lost connection: carry on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// See [`State::deferred`].
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    /// Payload lengths of received messages the application took.
    pub(crate) consumed: Vec<usize>,
    pub(crate) nudge: bool,
    pub(crate) disconnect: bool,
}

impl Deferred {
    pub(crate) fn is_empty(&self) -> bool {
        self.consumed.is_empty() && !self.nudge && !self.disconnect
    }
}

pub(crate) struct State {
    pub(crate) engine: Engine<PolicyBox, LinkFailure>,
    pub(crate) clock: Clock,
    /// Live receipts: the outcome once known, and who waits for it.
    pub(crate) receipts: HashMap<MessageId, Slot, BuildHasherDefault<IdHasher>>,
    pub(crate) events_dropped: bool,
    /// Inputs that may end the connection, applied by the driver between its writes (never
    /// while a write of bytes already taken from the engine is under way: the engine would
    /// count them unwritten and send them again).
    pub(crate) deferred: Deferred,
    pub(crate) driver_done: bool,
    pub(crate) handles: usize,
    /// Driver service passes so far.
    pub(crate) serviced: u64,
    /// The durable outbox, if any.
    pub(crate) store: Option<Box<dyn OutboxStore>>,
    pub(crate) last_durable_commit: umqtt_core::Instant,
    /// A failure of the driver's store writes, reported by the next publish.
    pub(crate) store_error: Option<Error>,
}

/// Runs blocking store I/O: inside `block_in_place` on a multi-threaded runtime (other tasks
/// move to other workers meanwhile), directly elsewhere.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A receipt's place in [`State::receipts`].
#[derive(Debug, Default)]
pub(crate) struct Slot {
    outcome: Option<Outcome>,
    waker: Option<Waker>,
}

/// Message ids are unique, increasing integers: they are their own hash.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Spread the low bits over the whole word (hashbrown uses the top 7 bits as tags).
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl State {
    /// Takes the next event out of the engine; a message frees its room in the receive
    /// bound once the driver applies it.
    pub(crate) fn take_event(&mut self) -> Option<Event> {
        let event = self.engine.poll_event()?;
        if let Event::Message(message) = &event {
            self.deferred.consumed.push(message.payload.len());
        }
        Some(event)
    }

    /// Hands the engine's new outcomes to their receipts (an outcome nobody holds a receipt
    /// for is dropped here: it is in the event stream too).
    pub(crate) fn route_outcomes(&mut self) {
        while let Some((id, outcome)) = self.engine.poll_outcome() {
            if let Some(slot) = self.receipts.get_mut(&id) {
                slot.outcome = Some(outcome);
                if let Some(waker) = slot.waker.take() {
                    waker.wake();
                }
            }
        }
    }

    /// Records the engine's hand-overs and settlements in the durable outbox: at every pass,
    /// durably at most once a second (or when `force_durable`).
    pub(crate) fn apply_store_ops(&mut self, force_durable: bool) {
        let now = self.clock.now();
        let State {
            engine,
            store,
            last_durable_commit,
            store_error,
            ..
        } = self;
        let Some(store) = store.as_mut() else {
            while engine.poll_store().is_some() {}
            return;
        };
        let lazy = umqtt::outbox::record_store_ops(engine, store.as_mut());
        if lazy || force_durable {
            let written = blocking(|| {
                umqtt::outbox::commit(store.as_mut(), now, last_durable_commit, force_durable)
            });
            if let Err(error) = written {
                *store_error = Some(error.into());
            }
        }
    }

    /// The driver ended: receipts still waiting will never get an outcome.
    pub(crate) fn wake_all_receipts(&mut self) {
        self.route_outcomes();
        for slot in self.receipts.values_mut() {
            if let Some(waker) = slot.waker.take() {
                waker.wake();
            }
        }
    }
}

/// Sends commands to the client; cheap to clone, usable from any task. The driver runs while
/// at least one handle exists; when the last is dropped it disconnects and ends.
pub struct Handle {
    shared: Arc<Shared>,
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        self.shared.lock().handles += 1;
        Handle {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.lock();
            state.handles = state.handles.saturating_sub(1);
            state.handles == 0
        };
        if last {
            self.shared.driver.notify_one();
        }
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Handle")
            .field("connected", &state.engine.is_connected())
            .field("pending", &state.engine.pending())
            .finish_non_exhaustive()
    }
}

/// A published message's id and, awaited, its outcome. Dropping it changes nothing for the
/// message.
pub struct Receipt {
    id: MessageId,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt").field("id", &self.id).finish()
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        self.shared.lock().receipts.remove(&self.id);
    }
}

impl Receipt {
    /// The message's id (as in the outcome events).
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Waits for the message's outcome. Cancel-safe: dropping this changes nothing for the
    /// message. Resolves whether or not the event stream is read.
    ///
    /// # Errors
    /// [`Error::DriverStopped`] if the driver ended before the outcome was known.
    pub async fn outcome(self) -> Result<Outcome, Error> {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            let driver_done = state.driver_done;
            let Some(slot) = state.receipts.get_mut(&self.id) else {
                return Poll::Ready(Err(Error::DriverStopped));
            };
            if let Some(outcome) = slot.outcome {
                return Poll::Ready(Ok(outcome));
            }
            if driver_done {
                return Poll::Ready(Err(Error::DriverStopped));
            }
            match &mut slot.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                waker => *waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }
}

impl Handle {
    /// Publishes with the policy's default [`Delivery`]; see [`Handle::publish_with`].
    ///
    /// # Errors
    /// As [`Handle::publish_with`].
    pub async fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Receipt, Error> {
        let delivery = self.shared.lock().engine.policy().default_delivery();
        self.publish_with(topic, payload, qos, retain, delivery)
            .await
    }

    /// Publishes with an explicit delivery contract. Returns once the engine took the message
    /// (never waiting for the network): with [`Overflow::RefuseNew`] it first waits for room in
    /// the offline queue. Cancel-safe (see the module docs).
    ///
    /// # Errors
    /// [`Error::Usage`] for an invalid topic (checked before waiting) or payload,
    /// [`Error::DriverStopped`] if the driver ended.
    pub async fn publish_with(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
    ) -> Result<Receipt, Error> {
        let mut validated = false;
        loop {
            let mut progress = pin!(self.shared.progress.notified());
            progress.as_mut().enable();
            {
                let mut state = self.shared.lock();
                let refuse = state.engine.settings().overflow == Overflow::RefuseNew;
                if !refuse || state.engine.has_room(1, payload.len()) || state.driver_done {
                    return self.enqueue(&mut state, topic, payload, qos, retain, delivery);
                }
            }
            if !validated {
                // A mistake is reported at once, not after waiting for room (the engine
                // checks again when it takes the message).
                umqtt_core::topic::validate_topic_name(topic)
                    .map_err(|e| Error::Usage(UsageError::InvalidTopicName(e)))?;
                validated = true;
            }
            progress.await;
        }
    }

    /// Like [`Handle::publish_with`], failing with `OutgoingFull` instead of waiting for room.
    ///
    /// # Errors
    /// [`Error::Usage`] (including a full queue), [`Error::DriverStopped`].
    pub fn try_publish_with(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
    ) -> Result<Receipt, Error> {
        let mut state = self.shared.lock();
        self.enqueue(&mut state, topic, payload, qos, retain, delivery)
    }

    fn enqueue(
        &self,
        state: &mut State,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
    ) -> Result<Receipt, Error> {
        if state.driver_done {
            return Err(Error::DriverStopped);
        }
        if let Some(error) = state.store_error.take() {
            return Err(error);
        }
        let now = state.clock.now();
        let id = if delivery == Delivery::Guaranteed && state.store.is_some() {
            Self::enqueue_durable(state, now, topic, payload, qos, retain)?
        } else {
            state
                .engine
                .publish_with(now, topic, payload, qos, retain, delivery)?
        };
        // Under the same lock as the publish: the outcome cannot have been routed yet (it
        // may be known already: a message dropped at once by the overflow rule).
        state.receipts.insert(id, Slot::default());
        state.route_outcomes();
        self.shared.driver.notify_one();
        Ok(Receipt {
            id,
            shared: self.shared.clone(),
        })
    }

    /// Stores the message durably under the id the engine will give it, then hands it over.
    fn enqueue_durable(
        state: &mut State,
        now: umqtt_core::Instant,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<MessageId, Error> {
        // Everything that could make the engine refuse it is checked before it is stored.
        Engine::<PolicyBox, LinkFailure>::check_publish(topic, payload, qos)?;
        if state.engine.settings().overflow == Overflow::RefuseNew
            && !state.engine.has_room(1, payload.len())
        {
            return Err(Error::Usage(UsageError::OutgoingFull));
        }
        let id = state.engine.next_message_id();
        let record = StoredMessage {
            id: id.0,
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos,
            retain,
            packet_id: None,
        };
        if let Some(store) = state.store.as_mut() {
            blocking(|| store.insert(std::slice::from_ref(&record)))?;
        }
        state.last_durable_commit = now;
        match state
            .engine
            .publish_durable(now, topic, payload, qos, retain)
        {
            Ok(taken) => {
                debug_assert_eq!(taken, id);
                Ok(taken)
            }
            Err(error) => {
                // Refused after all (no room with an overflow rule that could not make any):
                // forget it again.
                if let Some(store) = state.store.as_mut() {
                    store.remove(id.0);
                }
                Err(error.into())
            }
        }
    }

    /// Subscribes now if connected, else at the next connection, and keeps the subscription
    /// across reconnects (renewed only when the broker lost the session). The broker's answer
    /// is [`Event::Subscribed`] or [`Event::SubscriptionRefused`]. Not a future: in effect
    /// when it returns.
    ///
    /// # Errors
    /// [`Error::Usage`] for an invalid filter, [`Error::DriverStopped`].
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), Error> {
        self.command(|engine, now| engine.subscribe(now, filter, qos))
    }

    /// Forgets a subscription and unsubscribes (now, or at the next connection). Not a
    /// future.
    ///
    /// # Errors
    /// [`Error::Usage`] for an invalid filter, [`Error::DriverStopped`].
    pub fn unsubscribe(&self, filter: &str) -> Result<(), Error> {
        self.command(|engine, now| engine.unsubscribe(now, filter))
    }

    /// The network is back (e.g. Wi-Fi up): an attempt starts at once if the link is down.
    /// Applied by the driver at its next pass, like every input that may end a connection
    /// (so that it never lands while a write is under way).
    pub fn nudge(&self) {
        self.shared.lock().deferred.nudge = true;
        self.shared.driver.notify_one();
    }

    /// With `RobustConfig::manual_ack`: `message` is processed; the broker gets its PUBACK /
    /// PUBREC (in arrival order). Returns whether an acknowledgement was owed.
    pub fn ack(&self, message: &Message) -> bool {
        let mut owed = false;
        let _ = self.command(|engine, now| {
            owed = engine.ack(now, message);
            Ok(())
        });
        owed
    }

    /// Attempts a connection now, whatever the policy's schedule (no-op while connected or
    /// connecting).
    pub fn connect(&self) {
        let _ = self.command(|engine, now| {
            engine.connect(now);
            Ok(())
        });
    }

    /// Sends DISCONNECT if connected and stops reconnecting until new work (a publish,
    /// subscribe, connect or nudge); waits until the driver wrote it and closed the
    /// connection. Pending messages stay. Cancel-safe: the disconnect is requested before the
    /// first `.await`.
    pub async fn disconnect(&self) {
        let requested = {
            let mut state = self.shared.lock();
            state.deferred.disconnect = true;
            state.serviced
        };
        self.shared.driver.notify_one();
        loop {
            let mut progress = pin!(self.shared.progress.notified());
            progress.as_mut().enable();
            {
                let state = self.shared.lock();
                // Two passes: the one that may have been running, then one that saw this.
                if state.driver_done || state.serviced >= requested + 2 {
                    return;
                }
            }
            progress.await;
        }
    }

    /// Whether the link is up.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().engine.is_connected()
    }

    /// Messages not yet settled.
    pub fn pending(&self) -> usize {
        self.shared.lock().engine.pending()
    }

    /// The engine's counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().engine.stats()
    }

    /// Counters of the transports the driver opened: how many, and how many TLS handshakes
    /// were full or resumed (kept by the connector, not the engine). With a connector of the
    /// application's ([`Client::connector`]), zeros: a [`TcpConnector`] given there keeps
    /// its own ([`TcpConnector::stats`]).
    pub fn transport_stats(&self) -> TransportStats {
        self.shared
            .transport_stats
            .as_ref()
            .map(|stats| *stats.lock().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_default()
    }

    fn command(
        &self,
        command: impl FnOnce(
            &mut Engine<PolicyBox, LinkFailure>,
            umqtt_core::Instant,
        ) -> Result<(), UsageError>,
    ) -> Result<(), Error> {
        {
            let mut state = self.shared.lock();
            if state.driver_done {
                return Err(Error::DriverStopped);
            }
            let now = state.clock.now();
            command(&mut state.engine, now)?;
        }
        self.shared.driver.notify_one();
        Ok(())
    }
}

/// The one stream of events: the link's life, every message's outcome, received messages.
/// Read it from one task; or drop it if you want none of it (received messages are then
/// acknowledged and discarded).
pub struct Events {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    /// The next event; `None` once the driver ended and every event was taken. Cancel-safe:
    /// an event leaves the engine only in the step that returns it.
    pub async fn next(&mut self) -> Option<Event> {
        let shared = self.shared.clone();
        loop {
            let mut ready = pin!(shared.events.notified());
            ready.as_mut().enable();
            if let Some(event) = self.try_next() {
                return Some(event);
            }
            {
                let mut state = shared.lock();
                if state.driver_done {
                    return state.take_event();
                }
            }
            ready.await;
        }
    }

    /// The next event if one is ready, without waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        let (event, message) = {
            let mut state = self.shared.lock();
            let event = state.take_event()?;
            let message = matches!(event, Event::Message(_));
            (event, message)
        };
        // Room in the receive bound (and maybe input processed behind it): the driver may
        // have acknowledgements to write or reading to resume.
        if message {
            self.shared.driver.notify_one();
        }
        Some(event)
    }

    /// Like [`Events::next`], for received messages only: other events are taken and passed
    /// to `other` (e.g. a logger) on the way.
    pub async fn next_message(&mut self, mut other: impl FnMut(&Event)) -> Option<Message> {
        loop {
            match self.next().await? {
                Event::Message(message) => return Some(message),
                event => other(&event),
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.events_dropped = true;
            if state.driver_done {
                while state.take_event().is_some() {}
            }
        }
        self.shared.driver.notify_one();
    }
}
