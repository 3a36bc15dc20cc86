//! The application's side: commands on the engine and the event stream.

use core::cell::{RefCell, RefMut};
use core::future::poll_fn;
use core::task::{Poll, Waker};

use umqtt_core::message::Received;
use umqtt_core::robust::{Delivery, Engine, EngineConfig, MessageId, ReconnectPolicy, Stats};
use umqtt_core::session::UsageError;
use umqtt_core::storage::{DefaultStorage, Storage};
use umqtt_core::QoS;

use crate::error::TransportError;
use crate::time::Clock;
use crate::Event;

/// A robust MQTT client: the engine, its clock, and the wake-ups between the application and
/// the [`Driver`](crate::Driver). Commands take `&self` and never wait on the network; the
/// driver (which borrows the client) carries them out. Not `Sync`: the application and the
/// driver run on one executor. `S` is where the engine's session keeps its state:
/// [`Heap`](umqtt_core::storage::Heap) by default (with the `alloc` feature), or
/// [`Fixed`](umqtt_core::storage::Fixed) through [`Client::with_storage`].
pub struct Client<P, C, S: Storage = DefaultStorage> {
    state: RefCell<State<P, S>>,
    clock: C,
}

impl<P, C, S: Storage> core::fmt::Debug for Client<P, C, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Client")
    }
}

/// Inputs that may end the connection, applied by the driver between its writes, never while
/// bytes taken from the engine are being written (the engine would count written QoS 0
/// messages as unwritten and send them again).
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    /// Received messages the application took, and their payload bytes.
    pub(crate) consumed: usize,
    pub(crate) consumed_bytes: usize,
    pub(crate) nudge: bool,
    pub(crate) disconnect: bool,
}

pub(crate) struct State<P, S: Storage = DefaultStorage> {
    pub(crate) engine: Engine<P, TransportError, S>,
    pub(crate) deferred: Deferred,
    /// Something changed for the driver (a command): it services the engine again.
    pub(crate) woken: bool,
    pub(crate) driver_waker: Option<Waker>,
    pub(crate) events_waker: Option<Waker>,
}

impl<P: ReconnectPolicy, S: Storage> State<P, S> {
    /// Applies what [`Deferred`] holds (only the driver calls this, between writes).
    pub(crate) fn apply_deferred(&mut self, now: umqtt_core::Instant) {
        let deferred = core::mem::take(&mut self.deferred);
        // One call per message; the bytes with the last one (the engine only sums them).
        for i in 0..deferred.consumed {
            let bytes = if i + 1 == deferred.consumed {
                deferred.consumed_bytes
            } else {
                0
            };
            self.engine.handle_consumed(now, bytes);
        }
        if deferred.nudge {
            self.engine.nudge(now);
        }
        if deferred.disconnect {
            self.engine.disconnect(now);
        }
    }

    pub(crate) fn has_deferred(&self) -> bool {
        let d = &self.deferred;
        d.consumed > 0 || d.nudge || d.disconnect
    }
}

#[cfg(feature = "alloc")]
impl<P: ReconnectPolicy, C: Clock> Client<P, C> {
    /// A client for `config` reconnecting by `policy` (the shipped ones — [`NoRetry`],
    /// [`Deadline`], [`BatteryAware`]… — or yours). `seed` feeds the policies' jitter (a
    /// device-specific value spreads a fleet out). The first attempt starts when the driver
    /// runs. [`EngineSettings::servers`](umqtt_core::robust::EngineSettings::servers) must not exceed the driver's server list.
    ///
    /// [`NoRetry`]: crate::NoRetry
    /// [`Deadline`]: crate::Deadline
    /// [`BatteryAware`]: crate::BatteryAware
    pub fn new(config: EngineConfig, policy: P, seed: u64, clock: C) -> Self {
        Client::with_storage(config, policy, seed, clock)
    }
}

impl<P: ReconnectPolicy, C: Clock, S: Storage> Client<P, C, S> {
    /// [`Client::new`] with the engine's and the session's state in storage `S`: on
    /// [`Fixed`](crate::Fixed)`<N, B, Q>` their lists, buffers and the engine's arena are sized
    /// up front and nothing is allocated, the configuration's strings being `&'static` (see
    /// [`Engine::with_storage`] for the limits it lowers to what `N` entries hold). The driver
    /// then reads at most what the session has room for, so a read buffer of `B` bytes is
    /// enough.
    ///
    /// ```no_run
    /// # async fn firmware<T: embedded_nal_async::TcpConnect, C: umqtt_embedded::Clock>(stack: &T, clock: C) {
    /// use umqtt_embedded::{
    ///     BatteryAware, Client, Driver, EngineConfig, Event, Fixed, QoS, Received, Server,
    ///     SessionConfig,
    /// };
    ///
    /// // 10 list entries, 128-byte packets, arenas of 384 bytes (queued messages and filters,
    /// // stored packets, what waiting events hold), 4 messages held.
    /// type Storage = Fixed<10, 128, 384, 4>;
    /// let mut session = SessionConfig::default();
    /// session.client_id = "alarm-7".into();
    /// let client: Client<_, _, Storage> =
    ///     Client::with_storage(EngineConfig::new(session), BatteryAware::new(), 0x5eed, clock);
    /// let servers = [Server::Addr("192.168.1.10:1883".parse().unwrap())];
    /// let mut rx = [0u8; 128];
    /// let driver = Driver::new(&client, stack, &servers, &mut rx);
    /// let app = async {
    ///     let _ = client.subscribe("home/alarm/arm", QoS::AtLeastOnce);
    ///     loop {
    ///         // Take events as they come: the engine holds input until there is room for
    ///         // what it reports.
    ///         if let Event::Message(message) = client.next_event().await {
    ///             let _armed = message.payload() == b"on";
    ///         }
    ///     }
    /// };
    /// embassy_futures::select::select(driver.run(), app).await;
    /// # }
    /// ```
    pub fn with_storage(
        config: EngineConfig<<S as Storage>::Strings>,
        policy: P,
        seed: u64,
        clock: C,
    ) -> Self {
        let engine = Engine::with_storage(config, policy, seed, clock.now());
        Client {
            state: RefCell::new(State {
                engine,
                deferred: Deferred::default(),
                woken: false,
                driver_waker: None,
                events_waker: None,
            }),
            clock,
        }
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The engine's state, borrowed for the duration of one synchronous step. Never held
    /// across an `.await`, so it cannot be borrowed twice.
    pub(crate) fn state(&self) -> RefMut<'_, State<P, S>> {
        self.state.borrow_mut()
    }

    /// Runs a command on the engine and wakes the driver to carry it out.
    fn command<T>(&self, f: impl FnOnce(&mut State<P, S>, umqtt_core::Instant) -> T) -> T {
        let now = self.clock.now();
        let mut state = self.state();
        let result = f(&mut state, now);
        state.woken = true;
        if let Some(waker) = state.driver_waker.take() {
            waker.wake();
        }
        result
    }

    /// Publishes with the policy's default [`Delivery`]. Never waits for the network: the
    /// message is queued and its outcome comes as an event ([`Event::Delivered`],
    /// [`Event::Expired`] or [`Event::Dropped`], exactly one).
    ///
    /// # Errors
    /// An invalid topic, a payload too large, or a full queue
    /// ([`UsageError::OutgoingFull`] with [`Overflow::RefuseNew`](crate::Overflow)).
    pub fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<MessageId, UsageError> {
        self.command(|s, now| s.engine.publish(now, topic, payload, qos, retain))
    }

    /// Publishes with an explicit delivery contract (see [`Client::publish`]).
    ///
    /// # Errors
    /// As [`Client::publish`].
    pub fn publish_with(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
    ) -> Result<MessageId, UsageError> {
        self.command(|s, now| {
            s.engine
                .publish_with(now, topic, payload, qos, retain, delivery)
        })
    }

    /// Subscribes now if connected, and again whenever the broker lost the session; the
    /// answer comes as [`Event::Subscribed`] or [`Event::SubscriptionRefused`].
    ///
    /// # Errors
    /// An invalid topic filter.
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), UsageError> {
        self.command(|s, now| s.engine.subscribe(now, filter, qos))
    }

    /// Forgets a subscription and unsubscribes (now if connected, else at the next
    /// connection).
    ///
    /// # Errors
    /// An invalid topic filter.
    pub fn unsubscribe(&self, filter: &str) -> Result<(), UsageError> {
        self.command(|s, now| s.engine.unsubscribe(now, filter))
    }

    /// The network is back (the stack's link-up or DHCP-bound event): if the link is down,
    /// an attempt starts at once, whatever the policy had scheduled. Applied by the driver at
    /// its next pass.
    pub fn nudge(&self) {
        self.command(|s, _| s.deferred.nudge = true);
    }

    /// Attempts a connection now if the link is down (no-op otherwise).
    pub fn connect(&self) {
        self.command(|s, now| s.engine.connect(now));
    }

    /// Sends DISCONNECT if connected and stops reconnecting until new work (a publish,
    /// subscribe, connect or nudge). Pending messages stay. Applied by the driver at its next
    /// pass.
    pub fn disconnect(&self) {
        self.command(|s, _| s.deferred.disconnect = true);
    }

    /// With [`EngineSettings::manual_ack`](umqtt_core::robust::EngineSettings::manual_ack): the application processed `message`; the broker
    /// gets its acknowledgement (in arrival order). Returns whether one was owed.
    pub fn ack(&self, message: &S::Message) -> bool {
        self.command(|s, now| s.engine.ack(now, message))
    }

    /// Whether CONNACK accepted the current connection.
    pub fn is_connected(&self) -> bool {
        self.state().engine.is_connected()
    }

    /// Messages not yet settled.
    pub fn pending(&self) -> usize {
        self.state().engine.pending()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.state().engine.stats()
    }

    /// The next event, waiting until there is one (the driver must be running). Cancel-safe:
    /// an event is taken out of the engine only in the step that returns it. A received
    /// message frees its room in the receive bound when returned.
    pub async fn next_event(&self) -> Event<S> {
        poll_fn(|cx| self.try_next_event_inner(Some(cx.waker()))).await
    }

    /// The next event if there is one now.
    pub fn try_next_event(&self) -> Option<Event<S>> {
        match self.try_next_event_inner(None) {
            Poll::Ready(event) => Some(event),
            Poll::Pending => None,
        }
    }

    fn try_next_event_inner(&self, waker: Option<&Waker>) -> Poll<Event<S>> {
        let mut state = self.state();
        match state.engine.poll_event() {
            Some(event) => {
                let is_message = if let Event::Message(message) = &event {
                    state.deferred.consumed += 1;
                    state.deferred.consumed_bytes += message.payload().len();
                    true
                } else {
                    false
                };
                // On fixed storage, taking an event may have let the engine go on with input
                // it held (its answers are to be written).
                if is_message || S::ITEMS != usize::MAX {
                    state.woken = true;
                    if let Some(waker) = state.driver_waker.take() {
                        waker.wake();
                    }
                }
                Poll::Ready(event)
            }
            None => {
                if let Some(waker) = waker {
                    match &state.events_waker {
                        Some(old) if old.will_wake(waker) => {}
                        _ => state.events_waker = Some(waker.clone()),
                    }
                }
                Poll::Pending
            }
        }
    }
}
