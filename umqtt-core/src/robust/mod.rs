//! The robust engine: reconnecting, per-message delivery contracts and kept subscriptions, as a
//! state machine with no I/O and no clock — the same rules for the blocking, async and embedded
//! drivers and for the simulator.
//!
//! MicroPython's `umqtt.robust` notes there is no single meaning of "robust": a temperature
//! reading should not be retried, a button press only for a while, a burglar alarm no matter
//! what, smartly. The engine makes that an explicit choice: a [`ReconnectPolicy`] says when to
//! try again, a [`Delivery`] contract per message says how long it is worth keeping.
//!
//! # Driving an engine
//! ```text
//!          open / close a transport to server N   ◄── poll_action()
//! driver   bytes to write                         ◄── poll_transmit(now), then handle_written(now)
//!          events (outcomes, messages, link)      ◄── poll_event()
//!          when to call handle_timeout            ◄── poll_timeout()
//!     ──►  handle_opened / handle_open_failed / handle_read / handle_connection_lost /
//!          handle_timeout (all with `now`), commands: publish, subscribe, unsubscribe, nudge…
//! ```
//! After any input, a driver: performs every [`Engine::poll_action`] (writing
//! [`Engine::poll_transmit`]'s bytes before a [`Action::Close`]), writes every slice
//! [`Engine::poll_transmit`] returns (until `None`) and reports [`Engine::handle_written`],
//! drains [`Engine::poll_event`] and [`Engine::poll_store`] — and repeats these steps until a
//! pass finds nothing (on fixed storage, taking events lets the engine go on with input it
//! held, which can ask for more) — then waits for input, reading only
//! while [`Engine::wants_read`], until [`Engine::poll_timeout`]. When the application takes a
//! received message, the driver reports [`Engine::handle_consumed`] (and services again: input
//! held at the receive bound is processed then).
//!
//! # What it does not do
//! No sockets, no clock, no threads, no storage: the driver opens transports, tells the time,
//! and keeps the durable outbox the engine's [`StoreOp`]s describe. It speaks what its
//! session speaks (MQTT 3.1.1 or 5; with MQTT 5 it also follows a broker's Server Reference
//! when [`EngineSettings::follow_server_references`] is set). On
//! [`Fixed`](crate::storage::Fixed) storage ([`Engine::with_storage`]) it and its session
//! allocate nothing (the configuration's strings are `&'static`), and the crate builds
//! without the `alloc` feature.
//!
//! # What it guarantees
//! - Every message published ends in exactly one of [`Event::Delivered`], [`Event::Expired`]
//!   or [`Event::Dropped`].
//! - Sessions are persistent by default. When the broker resumes one, nothing is resubscribed
//!   and unacknowledged QoS 1/2 messages are resent with the same packet id and DUP set, in
//!   order, before new traffic. When the broker lost it, subscriptions are renewed and what is
//!   still owed is published again as new messages ([`Event::SessionLost`]).
//! - A QoS 2 message that was ever sent is never withdrawn: the broker may hold its packet
//!   id, so it completes with PUBREL / PUBCOMP, whatever its deadline.
//! - Subscriptions keep the link alive under every policy (see
//!   [`ReconnectPolicy::keep_listening`]).
//! - Received messages wait in the event stream up to a bound (count and bytes); past it the
//!   engine asks the driver to stop reading ([`Engine::wants_read`]), so TCP pushes back on
//!   the broker instead of memory growing. An application that holds the bound longer than
//!   1.5 × keepalive loses the link (the PINGRESP waits behind the messages): the engine
//!   reconnects, and nothing acknowledged is lost.
//! - With [`EngineSettings::manual_ack`], a QoS 1/2 message is acknowledged to the broker only
//!   after [`Engine::ack`], in arrival order.

mod event;
mod ledger;
mod policy;
mod reference;
mod subscriptions;

pub(crate) use event::PayloadMap;
pub use event::{
    Action, Delivery, DropCounts, DropReason, Event, LinkError, MessageId, Outcome, Overflow,
    Payloads, Stats, StoreOp, Unsupported,
};
pub use policy::{
    listening_backoff, BatteryAware, Deadline, Decision, ExponentialBackoff, Failure, FailureKind,
    FixedDelay, NoRetry, OutageLimit, PendingSummary, ReconnectPolicy,
};
pub use reference::{ServerAddress, MAX_REFERENCE_HOST_LEN};

use crate::message::Received;
use crate::packet::{
    ConnectReturnCode, PacketId, Properties, Publish, QoS, ReasonCode, SubAck, UnsubAck,
};
use crate::session::{self, CloseReason, Session, SessionConfig, UsageError};
use crate::storage::{
    Arena, Buffer, DefaultStorage, DefaultStrings, EventStash, List, Storage, Strings,
};
use crate::time::Instant;
use crate::topic::{validate_topic_filter, validate_topic_name};
use ledger::{Pending, Which};
use subscriptions::{Subscription, Unsubscription};

/// Settings of an [`Engine`]. Build with [`EngineConfig::new`], then set fields: the
/// session's in [`EngineConfig::session`], the engine's own ([`EngineSettings`]) directly on
/// the configuration, which dereferences to them (`config.max_queued = 16`). `T` says how
/// the session's strings are held ([`Strings`]: owned on the heap, `&'static` on fixed
/// storage).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig<T: Strings = DefaultStrings> {
    /// The MQTT session's settings (client id, keepalive, connect timeout — which bounds a
    /// whole attempt: opening the transport and the CONNACK together —, window, will…). The
    /// engine hands them to its session ([`Engine::session`]`().config()` reads them back).
    pub session: SessionConfig<T>,
    /// The engine's own settings (also reachable through `Deref`).
    pub engine: EngineSettings,
}

/// The robust engine's own settings, apart from the session's: what [`Engine::settings`]
/// gives back. Set them on an [`EngineConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineSettings {
    /// How many servers the driver can open (tried in turn after a failed attempt).
    pub servers: usize,
    /// Start clean sessions instead of persistent ones (default false: persistent, which
    /// needs a client id).
    pub clean_session: bool,
    /// Most messages waiting for delivery.
    pub max_queued: usize,
    /// Most payload bytes waiting for delivery.
    pub max_queued_bytes: usize,
    /// What to do when either limit is reached.
    pub overflow: Overflow,
    /// Most received messages waiting in the event stream before reading pauses.
    pub max_received: usize,
    /// Most received payload bytes waiting in the event stream before reading pauses.
    pub max_received_bytes: usize,
    /// Most other events kept when nobody drains them; the oldest are then discarded and
    /// counted in [`Stats::events_overflowed`].
    pub max_events: usize,
    /// Acknowledge received QoS 1/2 messages only when the application calls
    /// [`Engine::ack`] (see [`SessionConfig::manual_ack`]): a message is not lost if the
    /// application dies before processing it. Default false.
    pub manual_ack: bool,
    /// Also keep every outcome for [`Engine::poll_outcome`], apart from the event stream: a
    /// driver can then resolve a per-message receipt whether or not (and however late) the
    /// application reads the events. The driver must drain it after every input. Default
    /// false. Not on fixed storage ([`Engine::with_storage`] turns it off: the outcomes are in
    /// the events).
    pub track_outcomes: bool,
    /// Follow an MQTT 5 Server Reference: when a CONNACK or DISCONNECT says 0x9C Use another
    /// server or 0x9D Server moved and names a server ([`ServerAddress::parse_reference`]),
    /// the next attempt (when the policy schedules one) goes there: [`Action::Open`] with
    /// server index [`EngineSettings::servers`] (one past the configured list), whose address
    /// [`Engine::server_address`] gives, reported by [`Event::Redirected`]. If that attempt
    /// fails, the following ones go back to the configured list; a connection to it lasts
    /// until it ends. Default false (the driver must be able to open an address it was not
    /// configured with; the engine then never asks it to).
    pub follow_server_references: bool,
}

impl<T: Strings> core::ops::Deref for EngineConfig<T> {
    type Target = EngineSettings;
    fn deref(&self) -> &EngineSettings {
        &self.engine
    }
}

impl<T: Strings> core::ops::DerefMut for EngineConfig<T> {
    fn deref_mut(&mut self) -> &mut EngineSettings {
        &mut self.engine
    }
}

#[cfg(feature = "alloc")]
impl EngineConfig<crate::storage::Owned> {
    /// The same configuration with its strings held as `T` holds them (see
    /// [`SessionConfig::into_strings`]): for a configuration built at run time on a host, for
    /// an engine on fixed storage.
    pub fn into_strings<T: Strings>(self) -> EngineConfig<T> {
        EngineConfig {
            session: self.session.into_strings(),
            engine: self.engine,
        }
    }
}

impl<T: Strings> EngineConfig<T> {
    /// Defaults around `session`: one server, persistent sessions, up to 100 000 messages /
    /// 64 MiB waiting, [`Overflow::RefuseNew`], 1 024 received messages / 16 MiB waiting.
    pub fn new(session: SessionConfig<T>) -> Self {
        EngineConfig {
            session,
            engine: EngineSettings {
                servers: 1,
                clean_session: false,
                max_queued: 100_000,
                max_queued_bytes: 64 * 1024 * 1024,
                overflow: Overflow::RefuseNew,
                max_received: 1024,
                max_received_bytes: 16 * 1024 * 1024,
                max_events: 65_536,
                manual_ack: false,
                track_outcomes: false,
                follow_server_references: false,
            },
        }
    }
}

/// An event as the engine's list keeps it (see [`EventStash`]).
type StoredEvent<E, S> = Event<E, <<S as Storage>::EventStash as EventStash<S>>::Payloads>;

/// Most events about the link one input can report besides the messages' outcomes (e.g.
/// `Disconnected`, `RetryScheduled`; `Connected`, `SessionLost`): what fixed storage keeps
/// room for in the event list ([`Engine::with_storage`]).
const LINK_EVENTS: usize = 4;

#[derive(Debug, Clone, Copy)]
enum Link {
    Down {
        consecutive: u32,
        outage_started: Instant,
        /// `None`: nothing scheduled (the policy stopped, or the application disconnected);
        /// new work re-arms an attempt.
        next_attempt: Option<Instant>,
    },
    /// Waiting for the driver to open the transport, then for CONNACK; `deadline` bounds both.
    Attempt {
        server: usize,
        opened: bool,
        deadline: Instant,
        consecutive: u32,
        outage_started: Instant,
    },
    Up {
        server: usize,
    },
}

/// The robust engine: a [`Session`] plus reconnecting, delivery contracts and subscriptions.
/// `P` is the policy, `E` the driver's transport error carried in events, `S` where the
/// session keeps its state ([`Heap`](crate::storage::Heap), or [`Fixed`](crate::storage::Fixed) through
/// [`Engine::with_storage`]). See the [module docs](self) for the call order.
pub struct Engine<P, E, S: Storage = DefaultStorage> {
    session: Session<S>,
    policy: P,
    /// The engine's own settings (the session keeps its own).
    settings: EngineSettings,
    link: Link,
    next_server: usize,
    /// The last Server Reference followed (with [`EngineSettings::follow_server_references`]).
    referenced: Option<ServerAddress<S::Text>>,
    /// The next attempt goes to `referenced`.
    redirect_pending: bool,
    /// QoS 1/2 messages handed to the session, in publish order.
    in_session: S::Messages<Pending<S>>,
    /// First the `qos0_handed` QoS 0 messages handed to the session (their PUBLISH is in its
    /// send buffer; the first `qos0_transmitted` of them went out with the last
    /// `poll_transmit`), then the messages waiting for the link or for room in the in-flight
    /// window; each part in publish order. (One list: a QoS 0 message is handed over from the
    /// front of those waiting, and goes back there if the link fails before it is written.)
    queue: S::Messages<Pending<S>>,
    qos0_handed: usize,
    qos0_transmitted: usize,
    /// The bytes of the messages in `queue`.
    arena: S::Arena,
    queued_bytes: usize,
    next_id: u64,
    /// Kept subscriptions, in the order they were made.
    subscriptions: S::Vec<Subscription<S>>,
    /// Filters to unsubscribe from (a persistent session still has them), until their
    /// UNSUBACK.
    unsubscriptions: S::Vec<Unsubscription<S>>,
    had_session: bool,
    /// On fixed storage with their payloads in `event_stash` (see [`EventStash`]).
    events: S::Deque<StoredEvent<E, S>>,
    event_stash: S::EventStash,
    /// With `track_outcomes` (never on fixed storage).
    outcomes: S::HeapOnly<(MessageId, Outcome)>,
    received: usize,
    received_bytes: usize,
    actions: S::Deque<Action>,
    /// Changes for the durable outbox (none on fixed storage).
    store_ops: S::HeapOnly<StoreOp>,
    /// Earliest deadline among pending messages; may be earlier than the real one after
    /// messages settled (the next expiry pass corrects it), never later.
    earliest_deadline: Option<Instant>,
    rng: u64,
    /// Fixed storage: received input waits for room in the event list.
    held_for_events: bool,
    /// The time of the last input processed.
    last_pump: Instant,
    stats: Stats,
}

#[cfg(feature = "alloc")]
impl<P: ReconnectPolicy, E: Clone> Engine<P, E> {
    /// An engine that will attempt a connection at its first drive. `seed` feeds the jitter of
    /// the policies (a device-specific value spreads a fleet out; a fixed one replays).
    pub fn new(config: EngineConfig, policy: P, seed: u64, now: Instant) -> Self {
        Engine::with_storage(config, policy, seed, now)
    }
}

impl<P: ReconnectPolicy, E: Clone, S: Storage> Engine<P, E, S> {
    /// [`Engine::new`] with its session on storage `S` ([`Session::with_storage`]), e.g.
    /// [`Fixed`](crate::storage::Fixed) on a device: the session's lists and buffers are then
    /// sized up front. A message too large for them ends as [`DropReason::TooLarge`]; one
    /// that finds them full waits in the engine's queue, as for a full in-flight window.
    ///
    /// On fixed storage (`N` items per list) the event list holds `N` events, and the engine
    /// keeps room in it for everything one input can report — an outcome for each message it
    /// holds, the received messages, the link's changes — so a driver that drains events
    /// after every input never loses one:
    /// - [`EngineSettings::max_received`] is lowered to `max(1, N / 4)`;
    /// - [`EngineSettings::max_queued`] to `max(1, N - max_received - 4)`, and to the
    ///   storage's message lists (`M` of [`Fixed`](crate::storage::Fixed)) (the engine's
    ///   messages: waiting, and with the session); their bytes are in the storage's arena,
    ///   and a message that does not fit there waits as for a full queue (see [`Overflow`]);
    /// - [`EngineSettings::max_events`] to `N - max_received`;
    /// - [`EngineSettings::track_outcomes`] is turned off (the outcomes are in the events).
    ///
    /// One read may hold many packets: the engine decodes the next one only while the event
    /// list has room for all it may report (received messages aside), so on fixed storage
    /// input waits in the session until the events are taken — [`Engine::poll_event`] goes
    /// on with it (a SUBSCRIBE names at most `max_events` filters for the same reason).
    ///
    /// It keeps at most `N` subscriptions and `N` filters waiting to be unsubscribed
    /// ([`UsageError::StorageFull`] beyond), and no durable outbox
    /// ([`Engine::publish_durable`] and [`Engine::restore`] are refused). The lowered values
    /// are in [`Engine::settings`].
    pub fn with_storage(
        mut config: EngineConfig<S::Strings>,
        policy: P,
        seed: u64,
        now: Instant,
    ) -> Self {
        config.session.republish_on_clean_session = true;
        config.session.manual_ack = config.manual_ack;
        config.servers = config.servers.max(1);
        if S::ITEMS != usize::MAX {
            let items = S::ITEMS;
            config.max_received = config.max_received.min((items / 4).max(1));
            let room = items.saturating_sub(config.max_received + LINK_EVENTS);
            config.max_queued = config.max_queued.min(room.max(1)).min(S::MESSAGES);
            config.max_events = config
                .max_events
                .min(items.saturating_sub(config.max_received));
            config.track_outcomes = false;
        }
        Engine {
            session: Session::with_storage(config.session),
            policy,
            settings: config.engine,
            link: Link::Down {
                consecutive: 0,
                outage_started: now,
                next_attempt: Some(now),
            },
            next_server: 0,
            referenced: None,
            redirect_pending: false,
            in_session: Default::default(),
            queue: Default::default(),
            qos0_handed: 0,
            qos0_transmitted: 0,
            arena: Default::default(),
            queued_bytes: 0,
            next_id: 1,
            subscriptions: Default::default(),
            unsubscriptions: Default::default(),
            had_session: false,
            events: Default::default(),
            event_stash: Default::default(),
            outcomes: Default::default(),
            received: 0,
            received_bytes: 0,
            actions: Default::default(),
            store_ops: Default::default(),
            earliest_deadline: None,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            held_for_events: false,
            last_pump: now,
            stats: Stats::default(),
        }
    }

    // ----- getters ---------------------------------------------------------------------------

    /// The engine's own settings, as [`Engine::with_storage`] adjusted them (the session's:
    /// [`Engine::session`]`().config()`).
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The session (packet ids, in-flight messages).
    pub fn session(&self) -> &Session<S> {
        &self.session
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Whether CONNACK accepted the current connection.
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Up { .. })
    }

    /// The server of the current connection, if connected.
    pub fn connected_server(&self) -> Option<usize> {
        match self.link {
            Link::Up { server } => Some(server),
            _ => None,
        }
    }

    /// The address of server index `server` when it is the one a broker's Server Reference
    /// named (index [`EngineSettings::servers`], see
    /// [`EngineSettings::follow_server_references`]); `None` for a configured server, which the
    /// driver resolves from its own list.
    pub fn server_address(&self, server: usize) -> Option<&ServerAddress<S::Text>> {
        if !cfg!(feature = "mqtt5") {
            // Only an MQTT 5 CONNACK or DISCONNECT names another server.
            return None;
        }
        self.referenced
            .as_ref()
            .filter(|_| server == self.settings.servers)
    }

    /// The engine's own copy of a caller's MQTT 5 properties for a `packet_type` it will send
    /// (once or again after reconnections), checked for that packet: empty stays empty; with
    /// 3.1.1, properties are refused.
    fn owned_properties(
        &self,
        properties: crate::packet::Properties<'_>,
        packet_type: crate::packet::PacketType,
    ) -> Result<S::Bytes, UsageError> {
        let mut owned = S::Bytes::default();
        if properties.is_empty() {
            return Ok(owned);
        }
        let protocol = self.session.config().protocol;
        if !protocol.v5() {
            return Err(if protocol.is_supported() {
                UsageError::Encode(crate::packet::EncodeError::RequiresMqtt5)
            } else {
                UsageError::Mqtt5NotCompiled
            });
        }
        if properties.encode_for_into(packet_type, false, &mut owned)? {
            Ok(owned)
        } else {
            // Larger than the session's buffers: no packet could carry them.
            Err(UsageError::StorageFull)
        }
    }

    /// Whether a connection attempt is in progress.
    pub fn is_connecting(&self) -> bool {
        matches!(self.link, Link::Attempt { .. })
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Messages not yet settled.
    pub fn pending(&self) -> usize {
        self.in_session.len() + self.queue.len()
    }

    /// The id the next published message gets.
    pub fn next_message_id(&self) -> MessageId {
        MessageId(self.next_id)
    }

    /// Whether `messages` more messages of `bytes` payload bytes in all fit in the queue.
    pub fn has_room(&self, messages: usize, bytes: usize) -> bool {
        self.pending() + messages <= self.settings.max_queued
            && self.queued_bytes + bytes <= self.settings.max_queued_bytes
    }

    /// The subscriptions kept, with their QoS.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&str, QoS)> + '_ {
        self.subscriptions
            .iter()
            .filter(|s| s.kept())
            .map(|s| (s.entry.parts(&self.arena).0, s.qos))
    }

    // ----- outputs ---------------------------------------------------------------------------

    /// The next thing to do with the transport.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        List::pop_front(&mut self.actions)
    }

    /// The next bytes to write. Call it until it returns `None`, write every slice in order,
    /// then report [`Engine::handle_written`].
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        // QoS 0 messages handed to the session are in these bytes.
        self.qos0_transmitted = self.qos0_handed;
        self.session.poll_transmit(now)
    }

    /// The next event: link changes, outcomes, received messages. A received message counts
    /// against the receive bound until the driver reports [`Engine::handle_consumed`] (when
    /// the application took it), so a driver may queue events without defeating the bound.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<E, S>> {
        let event = List::pop_front(&mut self.events).map(|e| self.event_stash.unstash(e));
        if S::ITEMS != usize::MAX && self.held_for_events && self.event_room() {
            // Fixed storage: input waited for room in the event list (see
            // `Engine::with_storage`); it is processed now, at the time of the last input.
            self.held_for_events = false;
            self.pump(self.last_pump);
        }
        event
    }

    /// The next message outcome, with [`EngineSettings::track_outcomes`] (else always `None`):
    /// the same outcomes as the [`Event::Delivered`] / [`Event::Expired`] /
    /// [`Event::Dropped`] events, in the same order, but not subject to
    /// [`EngineSettings::max_events`]. One entry per settled message until taken: drain it after
    /// every input and command.
    #[must_use]
    pub fn poll_outcome(&mut self) -> Option<(MessageId, Outcome)> {
        List::pop_front(&mut self.outcomes)
    }

    /// The application took a received message of `payload_len` bytes: room for another, and
    /// input already received behind the bound is processed now.
    pub fn handle_consumed(&mut self, now: Instant, payload_len: usize) {
        let was_full = self.receive_full();
        self.received = self.received.saturating_sub(1);
        self.received_bytes = self.received_bytes.saturating_sub(payload_len);
        if was_full {
            self.pump(now);
        }
    }

    /// Sets (or clears) the last will, from the next connection on.
    pub fn set_will(&mut self, will: Option<session::Will<S::Strings>>) {
        self.session.config_mut().will = will;
    }

    /// A change to record in the durable outbox.
    #[must_use]
    pub fn poll_store(&mut self) -> Option<StoreOp> {
        List::pop_front(&mut self.store_ops)
    }

    /// When [`Engine::handle_timeout`] is due next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let link = match self.link {
            Link::Down { next_attempt, .. } => next_attempt,
            Link::Attempt { deadline, .. } => Some(deadline),
            Link::Up { .. } => None,
        };
        earliest(
            earliest(link, self.session.poll_timeout()),
            self.earliest_deadline,
        )
    }

    /// Whether the driver should read from the transport: false while received messages fill
    /// the event stream up to its bound (and while no transport is open).
    pub fn wants_read(&self) -> bool {
        matches!(
            self.link,
            Link::Up { .. } | Link::Attempt { opened: true, .. }
        ) && !self.receive_full()
    }

    /// Whether the event list has room for all one decoded packet can report: an outcome
    /// for each message held and the link's changes, or the filters of one SUBACK (at most
    /// `max_events` each, see [`Engine::with_storage`]), and their payloads: a received
    /// message, the filters or a server's host name, at most one packet's bytes. Always on
    /// the heap, where it grows.
    fn event_room(&self) -> bool {
        S::ITEMS == usize::MAX
            || (S::ITEMS - self.events.len() >= self.settings.max_events
                && self.event_stash.room() >= S::BYTES)
    }

    fn receive_full(&self) -> bool {
        self.received >= self.settings.max_received
            || self.received_bytes >= self.settings.max_received_bytes
    }

    // ----- inputs from the driver ------------------------------------------------------------

    /// The transport asked for by [`Action::Open`] is open: CONNECT goes out.
    pub fn handle_opened(&mut self, now: Instant) {
        let Link::Attempt { opened, .. } = &mut self.link else {
            return;
        };
        *opened = true;
        self.refresh_expiries(now);
        if let Err(error) = self.session.connect(now, self.settings.clean_session) {
            // Unusable settings (a will that cannot be encoded): retrying cannot help.
            self.push_action(Action::Close);
            self.attempt_failed(now, FailureKind::Configuration, LinkError::Usage(error));
        }
    }

    /// Opening the transport failed (`kind` as a policy should see it).
    pub fn handle_open_failed(&mut self, now: Instant, kind: FailureKind, error: E) {
        if matches!(self.link, Link::Attempt { .. }) {
            self.session.handle_connection_lost();
            self.attempt_failed(now, kind, LinkError::Transport(error));
        }
    }

    /// The transport failed or the broker closed it.
    pub fn handle_connection_lost(&mut self, now: Instant, kind: FailureKind, error: E) {
        self.connection_ended(now, kind, LinkError::Transport(error));
    }

    /// The bytes of the last [`Engine::poll_transmit`] were written: QoS 0 messages in them
    /// are delivered. With [`Fixed`](crate::storage::Fixed) storage, what waited for room in
    /// the session's transmit buffer goes on now (received input it held back, messages
    /// waiting in the queue): the driver services the engine again, as after any input.
    pub fn handle_written(&mut self, now: Instant) {
        for _ in 0..core::mem::take(&mut self.qos0_transmitted) {
            if self.qos0_handed == 0 {
                break;
            }
            if let Some(pending) = self.queue.pop_front() {
                self.qos0_handed -= 1;
                self.settle(pending, Outcome::Delivered);
            }
        }
        if S::BYTES != usize::MAX {
            if self.session.has_unprocessed_input() {
                self.pump(now);
            } else {
                self.fill_session(now);
            }
        }
    }

    /// Most bytes the next [`Engine::handle_read`] may feed ([`Session::input_room`]):
    /// unlimited on the heap; with [`Fixed`](crate::storage::Fixed) storage a driver reads at
    /// most this much at a time.
    #[must_use]
    pub fn input_room(&self) -> usize {
        self.session.input_room()
    }

    /// Bytes read from the transport.
    pub fn handle_read(&mut self, now: Instant, data: &[u8]) {
        self.session.handle_read(now, data);
        self.pump(now);
    }

    /// Fires what is due at `now`: attempts, the attempt deadline, keepalive, expiries.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
        match self.link {
            Link::Down {
                next_attempt: Some(at),
                ..
            } if now >= at => self.start_attempt(now),
            Link::Attempt { deadline, .. } if now >= deadline => {
                self.session.handle_connection_lost();
                self.push_action(Action::Close);
                self.attempt_failed(now, FailureKind::Timeout, LinkError::AttemptTimeout);
            }
            _ => {
                self.session.handle_timeout(now);
                self.pump(now);
            }
        }
    }

    // ----- commands --------------------------------------------------------------------------

    /// Publishes with the policy's default [`Delivery`].
    pub fn publish(
        &mut self,
        now: Instant,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<MessageId, UsageError> {
        let delivery = self.policy.default_delivery();
        self.publish_with(now, topic, payload, qos, retain, delivery)
    }

    /// Publishes with an explicit delivery contract. Never waits for the network: the message
    /// is queued and its fate reported by an outcome event. While the link is down and the
    /// policy had stopped, this starts an attempt.
    pub fn publish_with(
        &mut self,
        now: Instant,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
    ) -> Result<MessageId, UsageError> {
        self.enqueue(now, topic, payload, qos, retain, (delivery, false, &[]))
    }

    /// [`Engine::publish_with`] with MQTT 5 PUBLISH properties (user properties, content
    /// type, response topic, correlation data, message expiry…), checked for PUBLISH here.
    /// A [`Delivery::Within`] deadline still bounds the Message Expiry Interval sent (the
    /// shorter of the two). With 3.1.1, properties are refused
    /// ([`EncodeError::RequiresMqtt5`](crate::packet::EncodeError::RequiresMqtt5)).
    #[allow(clippy::too_many_arguments)]
    pub fn publish_with_properties(
        &mut self,
        now: Instant,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        delivery: Delivery,
        properties: crate::packet::Properties<'_>,
    ) -> Result<MessageId, UsageError> {
        let properties = self.owned_properties(properties, crate::packet::PacketType::Publish)?;
        self.enqueue(
            now,
            topic,
            payload,
            qos,
            retain,
            (delivery, false, &properties),
        )
    }

    /// Like [`Engine::publish_with`] for a guaranteed message the driver keeps in a durable
    /// outbox: its packet id and settlement are reported by [`Engine::poll_store`]. Refused
    /// on [`Fixed`](crate::storage::Fixed) storage ([`UsageError::StorageFull`]), which keeps
    /// no list of outbox changes.
    pub fn publish_durable(
        &mut self,
        now: Instant,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<MessageId, UsageError> {
        self.enqueue(
            now,
            topic,
            payload,
            qos,
            retain,
            (Delivery::Guaranteed, true, &[]),
        )
    }

    fn enqueue(
        &mut self,
        now: Instant,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        (delivery, durable, properties): (Delivery, bool, &[u8]),
    ) -> Result<MessageId, UsageError> {
        Self::check_publish(topic, payload, qos)?;
        if durable && S::ITEMS != usize::MAX {
            return Err(UsageError::StorageFull);
        }
        let id = MessageId(self.next_id);
        let stored = topic.len() + properties.len() + payload.len();
        if stored > self.arena.max_len() {
            // Larger than fixed storage can hold, so larger than its PUBLISH buffers too.
            self.next_id += 1;
            let size = self.publish_size(
                topic,
                payload,
                qos,
                retain,
                crate::packet::Properties::Encoded(properties),
            );
            self.conclude(id, Outcome::Dropped(ledger::too_large::<S>(size)));
            return Ok(id);
        }
        if !self.room_for(payload.len(), stored) {
            match self.settings.overflow {
                Overflow::RefuseNew => return Err(UsageError::OutgoingFull),
                Overflow::DropNewest => {
                    self.next_id += 1;
                    if durable {
                        // The driver stored it before asking: it must forget it again.
                        self.push_store_op(StoreOp::Settled { id });
                    }
                    self.conclude(id, Outcome::Dropped(DropReason::QueueOverflow));
                    return Ok(id);
                }
                Overflow::DropOldest => {
                    while !self.room_for(payload.len(), stored) {
                        let Some(oldest) = self.take_first_waiting() else {
                            break;
                        };
                        self.settle(oldest, Outcome::Dropped(DropReason::QueueOverflow));
                    }
                    if !self.room_for(payload.len(), stored) {
                        // Everything left is already with the session.
                        return Err(UsageError::OutgoingFull);
                    }
                }
            }
        }
        self.next_id += 1;
        let deadline = match delivery {
            Delivery::Within(max_age) => Some(now.saturating_add(max_age)),
            _ => None,
        };
        if let Some(deadline) = deadline {
            self.earliest_deadline =
                Some(self.earliest_deadline.map_or(deadline, |e| e.min(deadline)));
        }
        self.queued_bytes += payload.len();
        let mut pending = Pending {
            id,
            durable,
            data: None,
            topic_len: u16::try_from(topic.len()).unwrap_or(u16::MAX),
            properties_len: u32::try_from(properties.len()).unwrap_or(u32::MAX),
            size: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            qos,
            retain,
            contract: delivery.into(),
            deadline_at: deadline.unwrap_or_default(),
            packet_id: None,
        };
        let parts = [topic.as_bytes(), properties, payload];
        // Straight into the session when nothing waits ahead of it and there is room: a QoS
        // 1/2 message is then copied once (into the session's encoded PUBLISH). A QoS 0 one
        // keeps its copy until written, in case the link fails first.
        if self.waiting() == 0 && self.session_has_room(qos) {
            if qos == QoS::AtMostOnce {
                pending.data = self.arena.insert(&parts).ok();
            }
            match self.hand_over(pending, Some((topic, properties, payload)), now) {
                Ok(()) => return Ok(id),
                Err(back) => pending = back,
            }
        }
        if pending.data.is_none() {
            // (`room_for` said it fits.)
            pending.data = self.arena.insert(&parts).ok();
        }
        if let Err(pending) = self.queue.push(pending) {
            // (Never: `room_for` counted it.)
            self.settle(pending, Outcome::Dropped(DropReason::QueueOverflow));
        }
        self.rearm(now);
        if delivery == Delivery::NoRetry && matches!(self.link, Link::Down { .. }) {
            // Down with a later attempt scheduled: a no-retry message does not wait for it.
            self.drop_waiting(Which::NoRetry, Outcome::Dropped(DropReason::NotConnected));
        }
        self.fill_session(now);
        Ok(id)
    }

    /// Whether the queue and the arena take one more message of `payload` bytes, `stored`
    /// with its topic and properties.
    fn room_for(&self, payload: usize, stored: usize) -> bool {
        self.has_room(1, payload) && self.arena.fits(stored)
    }

    /// What [`Engine::publish_with`] checks of a message before taking it (a valid topic
    /// name, a payload that fits one PUBLISH): a driver with a durable outbox asks this
    /// before storing, so that it never stores what the engine will refuse.
    pub fn check_publish(topic: &str, payload: &[u8], qos: QoS) -> Result<(), UsageError> {
        validate_topic_name(topic).map_err(UsageError::InvalidTopicName)?;
        session::check_payload_len(topic, payload, qos)
    }

    /// Puts back a guaranteed message a previous process left in a durable outbox, before the
    /// first connection. With a `packet_id` it goes to the session first, with that id (and
    /// DUP if the broker resumes the session). Refused on [`Fixed`](crate::storage::Fixed)
    /// storage ([`UsageError::StorageFull`]), which keeps no durable outbox.
    pub fn restore(
        &mut self,
        id: MessageId,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        packet_id: Option<PacketId>,
    ) -> Result<(), UsageError> {
        validate_topic_name(topic).map_err(UsageError::InvalidTopicName)?;
        if S::ITEMS != usize::MAX {
            return Err(UsageError::StorageFull);
        }
        self.next_id = self.next_id.max(id.0 + 1);
        let mut pending = Pending {
            id,
            durable: true,
            data: None,
            topic_len: u16::try_from(topic.len()).unwrap_or(u16::MAX),
            properties_len: 0,
            size: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            qos,
            retain,
            contract: ledger::Contract::Guaranteed,
            deadline_at: Instant::default(),
            packet_id: None,
        };
        self.queued_bytes += pending.payload_len();
        if let (Some(packet_id), true) = (packet_id, qos != QoS::AtMostOnce && self.waiting() == 0)
        {
            let publish = Publish {
                dup: false,
                qos,
                retain,
                topic,
                packet_id: Some(packet_id),
                payload,
                properties: crate::packet::Properties::EMPTY,
            };
            if self
                .session
                .restore_publish(packet_id, &publish, true)
                .is_ok()
            {
                pending.packet_id = Some(packet_id);
                // (Heap storage, refused above otherwise: the lists grow.)
                let _ = self.in_session.push(pending);
                return Ok(());
            }
        }
        pending.data = self.arena.insert(&[topic.as_bytes(), payload]).ok();
        // (Heap storage: the list grows.)
        let _ = self.queue.push(pending);
        Ok(())
    }

    /// Subscribes now if connected, else at the next connection, and keeps the subscription
    /// across reconnects (renewed only when the broker lost the session). Reported by
    /// [`Event::Subscribed`] or [`Event::SubscriptionRefused`].
    pub fn subscribe(&mut self, now: Instant, filter: &str, qos: QoS) -> Result<(), UsageError> {
        self.subscribe_with_properties(now, filter, qos, crate::packet::Properties::EMPTY)
    }

    /// [`Engine::subscribe`] with MQTT 5 SUBSCRIBE properties (a subscription identifier,
    /// user properties), checked for SUBSCRIBE here and sent with every SUBSCRIBE for this
    /// filter, renewals included (filters with the same properties share one SUBSCRIBE).
    /// Refused with 3.1.1.
    pub fn subscribe_with_properties(
        &mut self,
        now: Instant,
        filter: &str,
        qos: QoS,
        properties: crate::packet::Properties<'_>,
    ) -> Result<(), UsageError> {
        validate_topic_filter(filter).map_err(UsageError::InvalidTopicFilter)?;
        let properties = self.owned_properties(properties, crate::packet::PacketType::Subscribe)?;
        self.keep_subscription(filter, qos, &properties)?;
        self.rearm(now);
        self.send_subscriptions();
        Ok(())
    }

    /// Forgets a subscription and unsubscribes: now if connected, else at the next connection
    /// (a persistent session would otherwise keep delivering).
    pub fn unsubscribe(&mut self, now: Instant, filter: &str) -> Result<(), UsageError> {
        self.unsubscribe_with_properties(now, filter, crate::packet::Properties::EMPTY)
    }

    /// [`Engine::unsubscribe`] with MQTT 5 UNSUBSCRIBE properties (user properties), checked
    /// for UNSUBSCRIBE here (filters with the same properties share one UNSUBSCRIBE). Refused
    /// with 3.1.1.
    pub fn unsubscribe_with_properties(
        &mut self,
        now: Instant,
        filter: &str,
        properties: crate::packet::Properties<'_>,
    ) -> Result<(), UsageError> {
        validate_topic_filter(filter).map_err(UsageError::InvalidTopicFilter)?;
        let properties =
            self.owned_properties(properties, crate::packet::PacketType::Unsubscribe)?;
        self.keep_unsubscription(filter, &properties)?;
        self.rearm(now);
        self.send_subscriptions();
        Ok(())
    }

    /// The network is back (e.g. Wi-Fi up): an attempt starts at once if the link is down.
    pub fn nudge(&mut self, now: Instant) {
        self.policy.on_nudge();
        if let Link::Down { next_attempt, .. } = &mut self.link {
            *next_attempt = Some(now);
        }
        self.handle_timeout(now);
    }

    /// With [`EngineSettings::manual_ack`]: the application processed the received message
    /// (its [`Received::packet_id`]); the broker gets its PUBACK / PUBREC, in arrival order.
    /// Returns whether an acknowledgement was owed.
    pub fn ack(&mut self, _now: Instant, message: &S::Message) -> bool {
        message
            .packet_id()
            .is_some_and(|packet_id| self.session.ack(packet_id))
    }

    /// Attempts a connection now, whatever the schedule (no-op while connected or connecting).
    pub fn connect(&mut self, now: Instant) {
        if matches!(self.link, Link::Down { .. }) {
            self.start_attempt(now);
        }
    }

    /// Sends DISCONNECT if connected and stops reconnecting until new work (a publish,
    /// subscribe, connect or nudge). Pending messages stay, and are resent by a later
    /// connection if the session persists.
    pub fn disconnect(&mut self, now: Instant) {
        let _ = self.disconnect_with(now, crate::packet::Disconnect::NORMAL);
    }

    /// [`Engine::disconnect`] with an MQTT 5 reason code and DISCONNECT properties (a session
    /// expiry interval, a reason string, user properties). A DISCONNECT that cannot be
    /// encoded (a property it may not carry; anything but a normal one with 3.1.1) is refused
    /// before anything changes.
    pub fn disconnect_with(
        &mut self,
        now: Instant,
        disconnect: crate::packet::Disconnect<'_>,
    ) -> Result<(), UsageError> {
        if matches!(self.link, Link::Up { .. }) {
            // Any other error: not connected after all, and the link is closed below.
            if let Err(error @ UsageError::Encode(_)) = self.session.disconnect_with(disconnect) {
                return Err(error);
            }
        }
        let link = core::mem::replace(
            &mut self.link,
            Link::Down {
                consecutive: 0,
                outage_started: now,
                next_attempt: None,
            },
        );
        // Down before the pump reads the session's `Closed(Disconnected)`: it is the
        // application's doing, not a failure for the policy.
        match link {
            Link::Up { .. } => {
                self.pump(now);
                self.push_action(Action::Close);
            }
            Link::Attempt { .. } => {
                self.session.handle_connection_lost();
                self.push_action(Action::Close);
            }
            Link::Down { .. } => {}
        }
        self.requeue_unwritten();
        Ok(())
    }

    // ----- internals -------------------------------------------------------------------------

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn push_event(&mut self, mut event: Event<E, S>) {
        if self.events.len() >= self.settings.max_events.saturating_add(self.received) {
            self.discard_oldest_event();
        }
        // Fixed storage: an event whose payload finds no room in the arena makes room the
        // same way. (Never for what input reports: it is decoded only with room for it.)
        while let Err(back) = self.store_event(event) {
            if !self.discard_oldest_event() {
                self.stats.events_overflowed += 1;
                return;
            }
            event = back;
        }
    }

    /// Adds `event` to the list; back if its payload finds no room. An event that finds the
    /// list full is counted lost: fixed storage holds `max_events` + `max_received` events
    /// (`Engine::with_storage`), so only a non-message event can, and only after
    /// `push_event` discarded one.
    fn store_event(&mut self, event: Event<E, S>) -> Result<(), Event<E, S>> {
        let stored = self.event_stash.stash(event)?;
        if let Err(stored) = self.events.push(stored) {
            drop(self.event_stash.unstash(stored));
            self.stats.events_overflowed += 1;
        }
        Ok(())
    }

    /// Discards the oldest event that is not a received message (counted in
    /// [`Stats::events_overflowed`]); false if there is none.
    fn discard_oldest_event(&mut self) -> bool {
        let Some(index) = self
            .events
            .iter()
            .position(|e| !matches!(e, Event::Message(_)))
        else {
            return false;
        };
        // Moved to the front and dropped there; the messages before it keep their order.
        // (Not `VecDeque::remove`: its ring-buffer shifting is a routine of its own for this
        // element type, 0.5 KB on a microcontroller, for a rare case.)
        for i in (0..index).rev() {
            self.events.swap(i, i + 1);
        }
        if let Some(oldest) = self.events.pop_front() {
            drop(self.event_stash.unstash(oldest));
        }
        self.stats.events_overflowed += 1;
        true
    }

    /// Asks the driver to do something with the transport. On fixed storage, a driver that
    /// does not take the actions after every input finds only the latest (each describes what
    /// the link is now; the oldest goes first).
    fn push_action(&mut self, action: Action) {
        if let Err(action) = self.actions.push(action) {
            self.actions.pop_front();
            let _ = self.actions.push(action);
        }
    }

    fn rearm(&mut self, now: Instant) {
        if let Link::Down { next_attempt, .. } = &mut self.link {
            if next_attempt.is_none() {
                *next_attempt = Some(now);
                self.start_attempt(now);
            }
        }
    }

    fn start_attempt(&mut self, now: Instant) {
        let (consecutive, outage_started) = match self.link {
            Link::Down {
                consecutive,
                outage_started,
                ..
            } => (consecutive, outage_started),
            _ => return,
        };
        let server = if core::mem::take(&mut self.redirect_pending) && self.referenced.is_some() {
            self.settings.servers
        } else {
            self.next_server % self.settings.servers
        };
        self.stats.attempts += 1;
        self.link = Link::Attempt {
            server,
            opened: false,
            deadline: now.saturating_add(self.session.config().connect_timeout),
            consecutive,
            outage_started,
        };
        if self.session.client_id().is_empty() && !self.settings.clean_session {
            // [MQTT-3.1.3-7]: found before opening anything; retrying cannot help.
            let error = LinkError::Usage(UsageError::EmptyClientIdNeedsCleanSession);
            self.attempt_failed(now, FailureKind::Configuration, error);
            return;
        }
        self.push_action(Action::Open { server });
    }

    /// Reads what the session decoded, while the event stream has room for messages (and,
    /// on fixed storage, for all the next packet may report).
    fn pump(&mut self, now: Instant) {
        if S::ITEMS != usize::MAX {
            self.last_pump = now;
        }
        // What the session decodes now (CONNACK, acknowledgements) may release PUBLISH
        // packets it holds back.
        self.refresh_waiting_expiries(now);
        loop {
            // At the receive bound nothing more is decoded, but what the session already
            // decided (a keepalive close, say) is still handled.
            let room = self.event_room();
            let event = if self.receive_full() || !room {
                self.session.poll_queued_event()
            } else {
                self.session.poll_event()
            };
            let Some(event) = event else {
                // Fixed storage: `poll_event` goes on once the events were taken.
                if S::ITEMS != usize::MAX {
                    self.held_for_events = !room && self.session.has_unprocessed_input();
                }
                break;
            };
            // Owned from here on: the session's event borrows its receive buffer.
            let step: Step<S> = match event {
                session::Event::Message(publish) => {
                    Step::Message(S::Message::try_from_publish(&publish).ok())
                }
                session::Event::Connected { session_present } => Step::Connected(session_present),
                session::Event::Published(packet_id) => {
                    Step::Settled(packet_id, Outcome::Delivered)
                }
                // 0x9B / 0x9A come from the session itself (never in a PUBACK or PUBREC): a
                // stored message the broker's new CONNACK rules out.
                session::Event::PublishRefused {
                    packet_id,
                    reason_code: ReasonCode::QoSNotSupported,
                } => {
                    let max = self.session.broker_limits().maximum_qos;
                    let reason = DropReason::NotSupported(Unsupported::QoS { max });
                    Step::Settled(packet_id, Outcome::Dropped(reason))
                }
                session::Event::PublishRefused {
                    packet_id,
                    reason_code: ReasonCode::RetainNotSupported,
                } => Step::Settled(
                    packet_id,
                    Outcome::Dropped(DropReason::NotSupported(Unsupported::Retain)),
                ),
                session::Event::PublishRefused {
                    packet_id,
                    reason_code,
                } => Step::Settled(
                    packet_id,
                    Outcome::Dropped(DropReason::Refused(reason_code)),
                ),
                session::Event::PublishDiscarded(_) => Step::Discarded,
                session::Event::PublishTooLarge {
                    packet_id,
                    size,
                    max,
                } => Step::Settled(
                    packet_id,
                    Outcome::Dropped(DropReason::TooLarge { size, max }),
                ),
                // The raw codes, read through the packet's own accessors below (one copy of
                // bytes instead of a collected vector per code type).
                session::Event::Subscribed(suback) => {
                    Step::Subscribed(suback.packet_id, raw_codes::<S>(suback.return_codes))
                }
                session::Event::Unsubscribed(unsuback) => {
                    Step::Unsubscribed(unsuback.packet_id, raw_codes::<S>(unsuback.reason_codes))
                }
                session::Event::Closed(reason) => Step::Closed(reason),
                session::Event::PublishReceived(_) | session::Event::PingResponse => continue,
            };
            match step {
                Step::Message(Some(message)) => {
                    self.received += 1;
                    self.received_bytes += Received::payload(&message).len();
                    self.stats.received += 1;
                    // (Room: reading stops at `max_received`, see `Engine::with_storage`, and
                    // input is decoded only with room for one packet's payload.)
                    if self.store_event(Event::Message(message)).is_err() {
                        self.stats.events_overflowed += 1;
                    }
                }
                // (Never: a fixed message holds what the session's buffer of the same size
                // received.)
                Step::Message(None) => self.stats.events_overflowed += 1,
                Step::Connected(session_present) => self.connected(session_present, now),
                Step::Settled(packet_id, outcome) => {
                    if let Some(index) = self.position(packet_id) {
                        if let Some(pending) = List::remove(&mut self.in_session, index) {
                            self.settle(pending, outcome);
                        }
                    }
                }
                Step::Discarded => {
                    // Never with `republish_on_clean_session` (set by `Engine::new`): the
                    // session keeps and republishes what it holds.
                }
                Step::Subscribed(packet_id, codes) => {
                    let suback = SubAck {
                        packet_id,
                        return_codes: &codes,
                        properties: Properties::EMPTY,
                    };
                    self.subscribed(packet_id, suback.codes());
                    self.send_subscriptions();
                }
                Step::Unsubscribed(packet_id, codes) => {
                    let unsuback = UnsubAck {
                        packet_id,
                        reason_codes: &codes,
                        properties: Properties::EMPTY,
                    };
                    self.unsubscribed(packet_id, unsuback.codes());
                    self.send_subscriptions();
                }
                Step::Closed(reason) => {
                    self.follow_reference(reason);
                    let kind = close_kind(reason);
                    // The session ended the connection itself: what it still has to send (an
                    // MQTT 5 DISCONNECT with the reason) goes out before the Close action.
                    self.session_closed(now, kind, LinkError::Closed(reason));
                    return;
                }
            }
        }
        self.fill_session(now);
    }

    fn connected(&mut self, session_present: bool, now: Instant) {
        let Link::Attempt { server, .. } = self.link else {
            return;
        };
        self.link = Link::Up { server };
        self.stats.connects += 1;
        self.policy.on_connected();
        self.push_event(Event::Connected {
            session_present,
            server,
        });
        let persistent = !self.settings.clean_session;
        if !session_present && self.had_session && persistent {
            self.stats.sessions_lost += 1;
            let count = self.stats.sessions_lost;
            self.push_event(Event::SessionLost { count });
        }
        self.reset_subscriptions(session_present);
        self.had_session = persistent;
        self.send_subscriptions();
        self.fill_session(now);
    }

    /// The session closed the connection (or the attempt's handshake): like
    /// [`Engine::connection_ended`], but what the session queued to send on its way out stays
    /// for [`Engine::poll_transmit`].
    fn session_closed(&mut self, now: Instant, kind: FailureKind, error: LinkError<E>) {
        match self.link {
            Link::Attempt { .. } => {
                self.push_action(Action::Close);
                self.attempt_failed(now, kind, error);
            }
            Link::Up { .. } => {
                self.push_action(Action::Close);
                self.link_lost(now, kind, error);
            }
            Link::Down { .. } => {}
        }
    }

    /// MQTT 5: a CONNACK or DISCONNECT with 0x9C Use another server or 0x9D Server moved and a
    /// usable Server Reference sends the next attempt there (section 4.11).
    fn follow_reference(&mut self, reason: CloseReason) {
        let code = match reason {
            CloseReason::Rejected(code) | CloseReason::ServerDisconnected(code) => code,
            _ => return,
        };
        if !self.session.config().protocol.v5()
            || !self.settings.follow_server_references
            || !matches!(code, ReasonCode::UseAnotherServer | ReasonCode::ServerMoved)
        {
            return;
        }
        let Some(address) = self
            .session
            .broker_limits()
            .server_reference
            .as_deref()
            .and_then(ServerAddress::parse_reference)
        else {
            return;
        };
        self.stats.redirects += 1;
        self.push_event(Event::Redirected {
            address: address.clone(),
            reason_code: code,
        });
        self.referenced = Some(address);
        self.redirect_pending = true;
    }

    /// The connection (or the attempt's handshake) ended.
    fn connection_ended(&mut self, now: Instant, kind: FailureKind, error: LinkError<E>) {
        match self.link {
            Link::Attempt { .. } => {
                self.session.handle_connection_lost();
                self.push_action(Action::Close);
                self.attempt_failed(now, kind, error);
            }
            Link::Up { .. } => {
                self.session.handle_connection_lost();
                self.push_action(Action::Close);
                self.link_lost(now, kind, error);
            }
            Link::Down { .. } => {}
        }
    }

    fn attempt_failed(&mut self, now: Instant, kind: FailureKind, error: LinkError<E>) {
        let Link::Attempt {
            server,
            consecutive,
            outage_started,
            ..
        } = self.link
        else {
            return;
        };
        if server < self.settings.servers {
            // A failed referenced server sends the next attempt back to the configured list,
            // where it left off.
            self.next_server = self.next_server.wrapping_add(1);
        }
        let consecutive = consecutive + 1;
        self.push_event(Event::AttemptFailed {
            kind,
            consecutive,
            server,
            error,
        });
        self.schedule(now, kind, consecutive, outage_started);
    }

    fn link_lost(&mut self, now: Instant, kind: FailureKind, error: LinkError<E>) {
        self.stats.disconnects += 1;
        self.push_event(Event::Disconnected { kind, error });
        // QoS 0 messages not known to be written wait again, in order; then no-retry
        // messages die with the link (unless the broker may hold them).
        self.requeue_unwritten();
        self.withdraw(Which::NoRetry, Outcome::Dropped(DropReason::LinkLost));
        self.link = Link::Down {
            consecutive: 0,
            outage_started: now,
            next_attempt: None,
        };
        self.schedule(now, kind, 1, now);
    }

    fn schedule(
        &mut self,
        now: Instant,
        kind: FailureKind,
        consecutive: u32,
        outage_started: Instant,
    ) {
        let failure = Failure {
            kind,
            consecutive,
            outage: now.saturating_duration_since(outage_started),
            pending: self.summary(now),
            subscriptions: self.kept_subscriptions(),
            random: self.next_random(),
        };
        // No-retry messages never wait for a later attempt: this one failed, so they found no
        // link (the policy saw them in `pending`).
        self.drop_waiting(Which::NoRetry, Outcome::Dropped(DropReason::NotConnected));
        let mut decision = self.policy.on_failure(&failure);
        if decision == Decision::Stop {
            self.withdraw(
                Which::NotGuaranteed,
                Outcome::Dropped(DropReason::PolicyStopped),
            );
            if self.kept_subscriptions() > 0 || self.unsent_unsubscriptions() > 0 {
                decision = self.policy.keep_listening(&failure);
            }
        }
        let next_attempt = match decision {
            Decision::RetryAfter(delay) => {
                self.push_event(Event::RetryScheduled { delay });
                Some(now.saturating_add(delay))
            }
            Decision::Stop => {
                self.push_event(Event::GaveUp { kind });
                None
            }
        };
        self.link = Link::Down {
            consecutive,
            outage_started,
            next_attempt,
        };
    }
}

/// The earlier of two optional instants (`None`: never).
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A session event, owned.
enum Step<S: Storage> {
    /// (`None`: it did not fit the storage's message.)
    Message(Option<S::Message>),
    Connected(bool),
    /// A message the session held ended: delivered, or dropped.
    Settled(PacketId, Outcome),
    Discarded,
    /// The SUBACK's raw return codes.
    Subscribed(PacketId, S::Bytes),
    /// The UNSUBACK's raw reason codes.
    Unsubscribed(PacketId, S::Bytes),
    Closed(CloseReason),
}

/// An owned copy of a SUBACK's or UNSUBACK's codes (one per filter: at most what one packet
/// of the storage's size names).
fn raw_codes<S: Storage>(codes: &[u8]) -> S::Bytes {
    let mut owned = S::Bytes::default();
    let _ = owned.try_extend(codes);
    owned
}

/// How a policy sees a connection the session closed.
pub fn close_kind(reason: CloseReason) -> FailureKind {
    match reason {
        CloseReason::Refused(code) => FailureKind::Refused(code),
        CloseReason::Rejected(code) => {
            FailureKind::Refused(ConnectReturnCode::from_reason_code(code))
        }
        CloseReason::Decode(_) | CloseReason::Protocol(_) => FailureKind::Protocol,
        CloseReason::ConnectTimeout => FailureKind::Timeout,
        CloseReason::KeepAliveTimeout => FailureKind::KeepAliveExpired,
        // A message larger than the configured maximum: on a persistent session the broker
        // sends it again at every connection, so retrying cannot help until the limit is
        // raised.
        CloseReason::PacketTooLarge { .. } => FailureKind::Configuration,
        _ => FailureKind::ConnectionLost,
    }
}

#[cfg(test)]
mod tests;
