//! A simulated network of MQTT 3.1.1 and MQTT 5 brokers on a virtual clock, for testing sans-IO
//! clients.
//!
//! No sockets, no threads, no wall clock: the test (or a driver of the client core) owns the
//! time and passes it in. A [`SimNet`] holds `n` servers, each a [`SimBroker`] behind a host
//! whose [`ServerMode`] can be switched, and the links clients open to them. Bytes travel after
//! a one-way latency (default 1 ms), in order per direction, optionally in random pieces; faults
//! (refuse, black hole, down, FIN, RST, restart with or without sessions, withheld acks) can be
//! applied now or scheduled at a virtual time. Everything is ordered and seeded: the same calls
//! with the same seed give the same bytes at the same instants.
//!
//! ```text
//!  client side                         SimNet                        server side
//!  open(now, server) ──► SYN (+latency) ──► host: Up / Refuse / Down / BlackHole
//!  poll_client_event ◄── Opened / OpenFailed (+latency) ◄──┘
//!  send(now, conn, bytes) ──► (+latency, FIFO) ──► SimBroker::handle_data
//!  poll_client_event ◄── Data / Closed (+latency, FIFO) ◄── SimBroker outbox
//!  advance(now): deliver everything due, run broker keepalive timers and scheduled faults
//!  next_timeout(): when to call advance next
//! ```
//!
//! MQTT 5: a CONNECT of protocol level 5 is answered in MQTT 5 (the core's codec, one copy of
//! the packet rules); what the broker announces and enforces, and how sessions and messages
//! expire on the virtual clock, is configured on [`SimBroker`] (see its type doc). To enforce
//! a Receive Maximum exactly, the network tells the broker when the client sent each PUBLISH
//! and when each byte the broker wrote reached the client, so the broker counts the
//! publications in flight as the client sees them ([`SimBroker::in_flight_peak`]). 3.1.1
//! behaves as it did before MQTT 5 was added, byte for byte.
//!
//! A minimal loop:
//!
//! ```
//! use umqtt_core::packet::{Connect, Packet, ProtocolVersion};
//! use umqtt_core::Instant;
//! use umqtt_sim::{ClientEvent, SimNet};
//!
//! let mut net = SimNet::new(7);
//! let t0 = Instant::from_millis(0);
//! let conn = net.open(t0, 0);
//! net.advance(Instant::from_millis(2)); // SYN there and SYN-ACK back: 2 × 1 ms
//! assert_eq!(net.poll_client_event(conn), Some(ClientEvent::Opened));
//!
//! let connect = Packet::Connect(Connect {
//!     protocol: ProtocolVersion::V311,
//!     client_id: "c1",
//!     keep_alive: 30,
//!     clean_session: true,
//!     will: None,
//!     username: None,
//!     password: None,
//!     properties: Default::default(),
//! });
//! let mut bytes = vec![0; connect.encoded_len().unwrap()];
//! connect.encode(&mut bytes).unwrap();
//! net.send(Instant::from_millis(2), conn, &bytes);
//! net.advance(Instant::from_millis(4));
//! assert_eq!(
//!     net.poll_client_event(conn),
//!     Some(ClientEvent::Data(vec![0x20, 2, 0, 0])) // CONNACK, accepted
//! );
//! ```
#![warn(missing_docs)]

mod broker;
pub mod device;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::Duration;

use umqtt_core::Instant;

pub use broker::{Accepted, ConnectRecord, Delivery, Refusal, SimBroker};

use broker::Action;

/// Identifies one link (one TCP-like connection) of a [`SimNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u64);

/// Why an open failed, as the client side sees it. (A black-holed open never answers: the
/// client must time out by itself.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenError {
    /// Connection refused: the host answered the SYN with RST (mode Refuse or Down).
    Refused,
    /// The connection was reset before the client saw it open (a reset or restart hit it
    /// while the SYN-ACK was on its way).
    Reset,
}

/// What the client side of a link receives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The open succeeded; bytes may be sent.
    Opened,
    /// The open failed; the link is finished.
    OpenFailed(OpenError),
    /// Bytes from the broker: one whole packet, or a piece of one with split writes.
    Data(Vec<u8>),
    /// The link ended: with FIN (`reset: false`) or RST (`reset: true`). Nothing follows.
    Closed {
        /// RST rather than an orderly FIN.
        reset: bool,
    },
}

/// The state of a server's host, switched with [`SimNet::set_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ServerMode {
    /// Accepts opens; links work.
    #[default]
    Up,
    /// New opens fail with [`OpenError::Refused`]; existing links are unaffected.
    Refuse,
    /// New opens hang forever; existing links silently stop delivering in both directions
    /// (half-open: no FIN, no RST). A link black-holed once stays dead even after the mode
    /// changes back, as a TCP connection does after a long partition; the broker notices only
    /// through keepalive.
    BlackHole,
    /// The broker process is down: existing links are reset (the broker sees nothing: no will),
    /// new opens are refused. Persistent sessions survive (as after a mosquitto stop with
    /// persistence); switching back to `Up` is the broker starting again.
    Down,
}

/// A tiny seeded xorshift64* generator: the sim's only source of randomness.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // xorshift has a fixed point at 0; mix the seed so every seed gives a good stream.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `1..=max` (`max` ≥ 1).
    fn between_1_and(&mut self, max: usize) -> usize {
        1 + (self.next() % max as u64) as usize
    }
}

/// A scripted fault, run by `advance`.
type Fault = Box<dyn FnOnce(&mut SimNet, Instant) + Send>;

/// Something due at an instant.
enum Event {
    /// The SYN reaches the server's host.
    OpenArrives { conn: ConnId },
    /// Client bytes reach the broker.
    ToServer {
        conn: ConnId,
        generation: u64,
        bytes: Vec<u8>,
        /// When the client sent them.
        sent_at: Instant,
    },
    /// The client's FIN reaches the broker.
    ServerSeesEof { conn: ConnId, generation: u64 },
    /// Something reaches the client side.
    ToClient {
        conn: ConnId,
        generation: u64,
        event: ClientEvent,
    },
    /// A scripted fault.
    Fault(Fault),
}

/// An event in the queue, ordered so that the heap's top is the earliest (first pushed at
/// equal times). A heap keeps its allocation, where a map freed and allocated a node each
/// time the queue emptied and filled again.
struct Queued {
    at: Instant,
    sequence: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        (other.at, other.sequence).cmp(&(self.at, self.sequence))
    }
}

/// One TCP-like connection.
#[derive(Debug)]
struct Link {
    server: usize,
    /// Bumped by a cut or reset: everything in flight under an older generation is lost.
    generation: u64,
    /// The client called `close`: it receives nothing more and sends nothing more.
    client_closed: bool,
    /// A terminal event (OpenFailed or Closed) is on its way to the client.
    client_finished: bool,
    /// The client has received Opened.
    opened_delivered: bool,
    /// The broker holds this connection.
    server_open: bool,
    /// Nothing is delivered any more, either way.
    black_holed: bool,
    /// Events received by the client side, not yet polled.
    ready: VecDeque<ClientEvent>,
    /// Due time of the last event scheduled in each direction (TCP keeps order).
    last_to_server: Instant,
    last_to_client: Instant,
}

/// One simulated server: its host's mode and its broker.
#[derive(Debug)]
struct Server {
    mode: ServerMode,
    open_attempts: u64,
    broker: SimBroker,
}

/// A deterministic network of simulated MQTT brokers on a virtual clock.
///
/// Call order for a driver: the client-side calls ([`open`](Self::open),
/// [`send`](Self::send), [`close`](Self::close)) with the current virtual time; then
/// [`advance`](Self::advance) to a time; then [`poll_client_event`](Self::poll_client_event)
/// until `None` for each link; [`next_timeout`](Self::next_timeout) tells when something is
/// next due. Time never goes backwards: an earlier `now` is treated as the latest one seen.
pub struct SimNet {
    now: Instant,
    servers: Vec<Server>,
    links: BTreeMap<ConnId, Link>,
    /// Due events, earliest first (then in the order they were pushed).
    queue: BinaryHeap<Queued>,
    sequence: u64,
    next_conn: u64,
    latency: Duration,
    split_writes: bool,
    rng: Rng,
}

impl core::fmt::Debug for SimNet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimNet")
            .field("now", &self.now)
            .field("servers", &self.servers)
            .field("links", &self.links)
            .field("scheduled", &self.queue.len())
            .field("latency", &self.latency)
            .field("split_writes", &self.split_writes)
            .finish_non_exhaustive()
    }
}

impl SimNet {
    /// A network with one server (index 0), up, 1 ms one-way latency.
    pub fn new(seed: u64) -> SimNet {
        SimNet::with_servers(seed, 1)
    }

    /// A network with `n` independent servers (indices `0..n`), for failover tests.
    pub fn with_servers(seed: u64, n: usize) -> SimNet {
        SimNet {
            now: Instant::from_millis(0),
            servers: (0..n)
                .map(|_| Server {
                    mode: ServerMode::Up,
                    open_attempts: 0,
                    broker: SimBroker::new(),
                })
                .collect(),
            links: BTreeMap::new(),
            queue: BinaryHeap::new(),
            sequence: 0,
            next_conn: 1,
            latency: Duration::from_millis(1),
            split_writes: false,
            rng: Rng::new(seed),
        }
    }

    // ---- client side ----

    /// Starts opening a link to `server`. The SYN reaches the host after the latency; the
    /// outcome ([`ClientEvent::Opened`] or [`ClientEvent::OpenFailed`]) reaches the client one
    /// latency later (a round trip). A black-holed open never answers.
    pub fn open(&mut self, now: Instant, server: usize) -> ConnId {
        assert!(server < self.servers.len(), "no server {server}");
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.servers[server].open_attempts += 1;
        let due = now.saturating_add(self.latency);
        self.links.insert(
            conn,
            Link {
                server,
                generation: 0,
                client_closed: false,
                client_finished: false,
                opened_delivered: false,
                server_open: false,
                black_holed: self.servers[server].mode == ServerMode::BlackHole,
                ready: VecDeque::new(),
                last_to_server: due,
                last_to_client: now,
            },
        );
        self.push(due, Event::OpenArrives { conn });
        conn
    }

    /// Sends bytes to the broker: they arrive after the latency, after everything sent before.
    /// Ignored once the client closed the link; lost if the broker has closed it meanwhile.
    pub fn send(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let (latency, split) = (self.latency, self.split_writes);
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if link.client_closed || link.black_holed || bytes.is_empty() {
            return;
        }
        let due = now.saturating_add(latency).max(link.last_to_server);
        link.last_to_server = due;
        let generation = link.generation;
        if !split {
            // One piece: no intermediate list.
            let bytes = bytes.to_vec();
            self.push(
                due,
                Event::ToServer {
                    conn,
                    generation,
                    bytes,
                    sent_at: now,
                },
            );
            return;
        }
        for piece in self.pieces(bytes, split) {
            self.push(
                due,
                Event::ToServer {
                    conn,
                    generation,
                    bytes: piece,
                    sent_at: now,
                },
            );
        }
    }

    /// The client closes the link (FIN): it receives nothing more, and the broker sees the end
    /// of the stream after the latency (and publishes the will unless DISCONNECT came first).
    pub fn close(&mut self, now: Instant, conn: ConnId) {
        let latency = self.latency;
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if link.client_closed {
            return;
        }
        link.client_closed = true;
        link.ready.clear();
        if link.client_finished && !link.server_open {
            // Over on both sides: forget it, so that millions of refused attempts in a long
            // simulation cost no memory and no time.
            self.links.remove(&conn);
            return;
        }
        if link.black_holed {
            return;
        }
        let due = now.saturating_add(latency).max(link.last_to_server);
        link.last_to_server = due;
        let generation = link.generation;
        self.push(due, Event::ServerSeesEof { conn, generation });
    }

    /// The next event the client side of `conn` received (due at or before the last
    /// [`advance`](Self::advance)), in order; `None` when there is none (yet).
    pub fn poll_client_event(&mut self, conn: ConnId) -> Option<ClientEvent> {
        self.links.get_mut(&conn)?.ready.pop_front()
    }

    // ---- time ----

    /// Moves the clock to `now`, delivering everything due up to it in time order: bytes and
    /// closes in both directions, broker keepalive timers (1.5 × keepalive `[MQTT-3.1.2-24]`)
    /// and scheduled faults. At the same instant, deliveries and faults go before timers.
    pub fn advance(&mut self, now: Instant) {
        let now = now.max(self.now);
        loop {
            self.flush_brokers();
            let next_event = self.queue.peek().map(|q| q.at);
            let next_timer = self
                .servers
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.broker.next_timeout().map(|t| (t, i)))
                .min();
            match (next_event, next_timer) {
                (Some(at), timer) if at <= now && timer.is_none_or(|(t, _)| at <= t) => {
                    let Queued { at, event, .. } = self.queue.pop().expect("peeked");
                    self.now = self.now.max(at);
                    self.process(at, event);
                }
                (_, Some((at, server))) if at <= now => {
                    self.now = self.now.max(at);
                    self.servers[server].broker.handle_timeout(at);
                }
                _ => break,
            }
        }
        self.now = now;
    }

    /// The earliest instant at which something is scheduled (a delivery, a broker timer, a
    /// fault, bytes a test made a broker write), or `None` when nothing is. It can be at or
    /// before [`now`](Self::now) (a fault scheduled in the past): advance to `now` then.
    pub fn next_timeout(&self) -> Option<Instant> {
        let queued = self.queue.peek().map(|q| q.at);
        let brokers = self
            .servers
            .iter()
            .flat_map(|s| [s.broker.next_timeout(), s.broker.has_output()])
            .flatten();
        queued.into_iter().chain(brokers).min()
    }

    /// The time of the last [`advance`](Self::advance).
    pub fn now(&self) -> Instant {
        self.now
    }

    // ---- faults ----

    /// Switches a server's host to `mode` (see [`ServerMode`] for what each does to existing
    /// links and new opens).
    pub fn set_mode(&mut self, now: Instant, server: usize, mode: ServerMode) {
        self.flush_brokers();
        self.servers[server].mode = mode;
        match mode {
            ServerMode::Up | ServerMode::Refuse => {}
            ServerMode::BlackHole => {
                for link in self.links.values_mut().filter(|l| l.server == server) {
                    link.black_holed = true;
                }
            }
            ServerMode::Down => {
                self.sever(now, server, Some(true), false);
                self.servers[server].broker.crash(now, true);
            }
        }
    }

    /// A server's host mode.
    pub fn mode(&self, server: usize) -> ServerMode {
        self.servers[server].mode
    }

    /// Sets the one-way latency of every link, for everything sent from now on (order per
    /// direction is kept even when it shrinks).
    pub fn set_latency(&mut self, one_way: Duration) {
        self.latency = one_way;
    }

    /// Delivers bytes in seeded random pieces (1 to 7 bytes), both directions, so that both
    /// sides must reassemble packets.
    pub fn set_split_writes(&mut self, on: bool) {
        self.split_writes = on;
    }

    /// Closes every established link to `server` with FIN: in-flight bytes are lost, the broker
    /// sees the end of the stream now (will published), the client sees
    /// `Closed { reset: false }` after the latency.
    pub fn cut(&mut self, now: Instant, server: usize) {
        self.flush_brokers();
        self.sever(now, server, Some(false), true);
    }

    /// Like [`cut`](Self::cut) with RST: the client sees `Closed { reset: true }` (or
    /// `OpenFailed(Reset)` if its Opened was still on the way).
    pub fn reset(&mut self, now: Instant, server: usize) {
        self.flush_brokers();
        self.sever(now, server, Some(true), true);
    }

    /// The broker restarts at once: every link is reset (no wills: the process died);
    /// persistent sessions (subscriptions, in-flight state, offline queues, incoming QoS 2
    /// table) and retained messages are kept if `keep_sessions`, else lost. The host mode is
    /// unchanged.
    pub fn restart(&mut self, now: Instant, server: usize, keep_sessions: bool) {
        self.flush_brokers();
        self.sever(now, server, Some(true), false);
        self.servers[server].broker.crash(now, keep_sessions);
    }

    /// Makes `server`'s broker stop (`on`) or resume sending PUBACK, PUBREC, PUBCOMP, SUBACK
    /// and UNSUBACK (see [`SimBroker::set_withhold_acks`]).
    pub fn withhold_acks(&mut self, server: usize, on: bool) {
        self.servers[server].broker.set_withhold_acks(on);
    }

    /// Runs `fault` at virtual time `at` (during the [`advance`](Self::advance) that passes
    /// it, after deliveries scheduled earlier for the same instant). A time already passed
    /// runs at the next advance.
    pub fn schedule<F>(&mut self, at: Instant, fault: F)
    where
        F: FnOnce(&mut SimNet, Instant) + Send + 'static,
    {
        self.push(at, Event::Fault(Box::new(fault)));
    }

    // ---- servers ----

    /// The broker of `server`.
    pub fn broker(&self, server: usize) -> &SimBroker {
        &self.servers[server].broker
    }

    /// The broker of `server`, to configure it or publish as another client. What it writes
    /// is picked up by the next [`advance`](Self::advance), at the time it was written.
    pub fn broker_mut(&mut self, server: usize) -> &mut SimBroker {
        &mut self.servers[server].broker
    }

    /// Every [`open`](Self::open) addressed to `server`, black-holed ones included.
    pub fn open_attempts(&self, server: usize) -> u64 {
        self.servers[server].open_attempts
    }

    /// The number of servers.
    pub fn servers(&self) -> usize {
        self.servers.len()
    }

    // ---- internals ----

    fn push(&mut self, at: Instant, event: Event) {
        self.sequence += 1;
        self.queue.push(Queued {
            at,
            sequence: self.sequence,
            event,
        });
    }

    fn pieces(&mut self, bytes: &[u8], split: bool) -> Vec<Vec<u8>> {
        if !split {
            return vec![bytes.to_vec()];
        }
        let mut pieces = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.rng.between_1_and(rest.len().min(7));
            pieces.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        pieces
    }

    /// Schedules an event for the client side of `conn`, after everything before it.
    fn deliver_to_client(&mut self, now: Instant, conn: ConnId, event: ClientEvent) {
        let (latency, split) = (self.latency, self.split_writes);
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if link.client_closed || link.black_holed {
            return;
        }
        let due = now.saturating_add(latency).max(link.last_to_client);
        link.last_to_client = due;
        let generation = link.generation;
        let events: Vec<ClientEvent> = match event {
            ClientEvent::Data(bytes) if split => self
                .pieces(&bytes, split)
                .into_iter()
                .map(ClientEvent::Data)
                .collect(),
            event => {
                self.push(
                    due,
                    Event::ToClient {
                        conn,
                        generation,
                        event,
                    },
                );
                return;
            }
        };
        for event in events {
            self.push(
                due,
                Event::ToClient {
                    conn,
                    generation,
                    event,
                },
            );
        }
    }

    /// Ends every link the broker of `server` holds: in-flight bytes are lost; the client is
    /// told with FIN or RST (`client_reset`); the broker is told now if `tell_broker`.
    fn sever(
        &mut self,
        now: Instant,
        server: usize,
        client_reset: Option<bool>,
        tell_broker: bool,
    ) {
        let affected: Vec<ConnId> = self
            .links
            .iter()
            .filter(|(_, l)| l.server == server && l.server_open)
            .map(|(id, _)| *id)
            .collect();
        for conn in affected {
            let link = self.links.get_mut(&conn).expect("listed");
            link.generation += 1;
            link.server_open = false;
            let live = !link.client_closed && !link.client_finished && !link.black_holed;
            let opened = link.opened_delivered;
            link.client_finished = true;
            if tell_broker {
                self.servers[server].broker.handle_peer_closed(now, conn);
            }
            if let (true, Some(reset)) = (live, client_reset) {
                if opened {
                    self.deliver_to_client(now, conn, ClientEvent::Closed { reset });
                } else if reset {
                    self.deliver_to_client(now, conn, ClientEvent::OpenFailed(OpenError::Reset));
                } else {
                    self.deliver_to_client(now, conn, ClientEvent::Opened);
                    self.deliver_to_client(now, conn, ClientEvent::Closed { reset });
                }
            }
        }
        // The broker's reactions (wills to other clients) are written at `now`.
        self.flush_brokers();
    }

    /// Moves what the brokers wrote onto the links.
    fn flush_brokers(&mut self) {
        for server in 0..self.servers.len() {
            if self.servers[server].broker.has_output().is_none() {
                continue;
            }
            for (at, conn, action) in self.servers[server].broker.take_outbox() {
                let Some(link) = self.links.get_mut(&conn) else {
                    continue;
                };
                if !link.server_open {
                    continue;
                }
                match action {
                    Action::Send(bytes) => {
                        self.deliver_to_client(at, conn, ClientEvent::Data(bytes))
                    }
                    Action::Close => {
                        link.server_open = false;
                        if !link.client_finished {
                            link.client_finished = true;
                            self.deliver_to_client(at, conn, ClientEvent::Closed { reset: false });
                        }
                    }
                }
            }
        }
    }

    fn process(&mut self, at: Instant, event: Event) {
        match event {
            Event::Fault(fault) => fault(self, at),
            Event::OpenArrives { conn } => {
                let Some(link) = self.links.get_mut(&conn) else {
                    return;
                };
                if link.black_holed {
                    return;
                }
                let server = &mut self.servers[link.server];
                server.broker.count_open();
                match server.mode {
                    ServerMode::Up => {
                        link.server_open = true;
                        server.broker.handle_open(at, conn);
                        self.deliver_to_client(at, conn, ClientEvent::Opened);
                    }
                    ServerMode::Refuse | ServerMode::Down => {
                        link.client_finished = true;
                        self.deliver_to_client(
                            at,
                            conn,
                            ClientEvent::OpenFailed(OpenError::Refused),
                        );
                    }
                    ServerMode::BlackHole => link.black_holed = true,
                }
            }
            Event::ToServer {
                conn,
                generation,
                bytes,
                sent_at,
            } => {
                let Some(link) = self.links.get(&conn) else {
                    return;
                };
                if link.generation == generation && link.server_open && !link.black_holed {
                    let server = link.server;
                    self.servers[server]
                        .broker
                        .handle_data(at, conn, &bytes, sent_at);
                }
            }
            Event::ServerSeesEof { conn, generation } => {
                let Some(link) = self.links.get_mut(&conn) else {
                    return;
                };
                if link.generation == generation && link.server_open && !link.black_holed {
                    link.server_open = false;
                    let server = link.server;
                    // The client closed it before: nothing more can happen on it.
                    self.links.remove(&conn);
                    self.servers[server].broker.handle_peer_closed(at, conn);
                }
            }
            Event::ToClient {
                conn,
                generation,
                event,
            } => {
                let Some(link) = self.links.get_mut(&conn) else {
                    return;
                };
                if link.generation != generation || link.client_closed || link.black_holed {
                    return;
                }
                if event == ClientEvent::Opened {
                    link.opened_delivered = true;
                }
                if let ClientEvent::Data(bytes) = &event {
                    // The broker counts what its client has read (MQTT 5 Receive Maximum).
                    self.servers[link.server]
                        .broker
                        .handle_client_received(at, conn, bytes.len());
                }
                link.ready.push_back(event);
            }
        }
    }
}
