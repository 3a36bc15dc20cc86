//! A driver joining one robust [`Engine`] to a [`SimNet`]: it opens, writes, reads and closes
//! what the engine asks, and [`run`] moves virtual time from timer to timer. The engine's
//! scenario tests and `umqtt simulate` both drive engines through it, so the few lines a driver
//! needs are written once.
//!
//! ```
//! use umqtt_core::robust::{EngineConfig, FixedDelay};
//! use umqtt_core::session::SessionConfig;
//! use umqtt_sim::device::{run, Device};
//! use umqtt_sim::SimNet;
//!
//! let mut net = SimNet::new(1);
//! let config = EngineConfig::new(SessionConfig {
//!     client_id: "d1".into(),
//!     ..SessionConfig::default()
//! });
//! let mut device = Device::new(config, FixedDelay::default(), 7);
//! run(&mut net, &mut [&mut device], 0, 1000);
//! assert!(device.engine.is_connected());
//! ```

use umqtt_core::message::Received;
use umqtt_core::robust::{Action, Engine, EngineConfig, Event, FailureKind, ReconnectPolicy};
use umqtt_core::storage::{Heap, Storage};
use umqtt_core::Instant;

use super::{ClientEvent, ConnId, SimNet};

/// One device: a robust engine under a (boxed) policy plus its link on the simulated network.
/// `S` is where the engine's session keeps its state ([`Heap`], or fixed storage through
/// [`Device::with_storage`]).
pub struct Device<S: Storage = Heap> {
    /// The engine; call its commands (`publish`, `nudge`…) directly, then [`Device::service`]
    /// (or [`run`]) to carry out what they ask.
    pub engine: Engine<Box<dyn ReconnectPolicy>, String, S>,
    /// The link currently open (or opening), if any.
    pub conn: Option<ConnId>,
    /// The engine's events with the virtual time (ms) they came out, in order. Take them
    /// (`drain(..)`) to keep long runs small.
    pub events: Vec<(u64, Event<String, S>)>,
    /// Virtual times (ms) of every transport open the engine asked for: one per connection
    /// attempt.
    pub opens: Vec<u64>,
    /// Bursts of bytes written (one per [`Engine::poll_transmit`] drain that wrote something).
    pub writes: u64,
    /// Transports that opened (the TCP handshake succeeded; TLS would follow).
    pub opened: u64,
    /// Take received messages out of the engine (an application that keeps up). Default true.
    pub consume: bool,
    /// The engine's next timer as [`run`] last read it.
    due: Option<Instant>,
    /// Bytes received and not yet fed: with fixed storage the engine takes at most
    /// [`Engine::input_room`] at a time.
    unread: Vec<u8>,
}

impl Device {
    /// A device at virtual time 0 whose engine draws jitter from `seed`. It speaks the
    /// protocol of `config.session.protocol` (3.1.1 by default; `ProtocolVersion::V5` with
    /// `config.session.v5` for MQTT 5): the simulated broker answers in kind.
    pub fn new(config: EngineConfig, policy: impl ReconnectPolicy + 'static, seed: u64) -> Device {
        Device::with_storage(config, policy, seed)
    }
}

impl<S: Storage> Device<S> {
    /// [`Device::new`] with the engine's session on storage `S`
    /// ([`Engine::with_storage`]).
    pub fn with_storage(
        config: EngineConfig,
        policy: impl ReconnectPolicy + 'static,
        seed: u64,
    ) -> Device<S> {
        let policy: Box<dyn ReconnectPolicy> = Box::new(policy);
        Device {
            engine: Engine::with_storage(
                config.into_strings(),
                policy,
                seed,
                Instant::from_millis(0),
            ),
            conn: None,
            events: Vec::new(),
            opens: Vec::new(),
            writes: 0,
            opened: 0,
            consume: true,
            due: None,
            unread: Vec::new(),
        }
    }

    /// Carries out what the engine asks, then feeds it what the network delivered, until
    /// neither side has anything more at `now`.
    pub fn service(&mut self, net: &mut SimNet, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(action) = self.engine.poll_action() {
                busy = true;
                match action {
                    Action::Open { server } => {
                        if let Some(conn) = self.conn.take() {
                            net.close(now, conn);
                        }
                        self.opens.push(now.as_millis());
                        self.unread.clear();
                        self.conn = Some(net.open(now, server));
                    }
                    Action::Close => {
                        self.write(net, now);
                        self.unread.clear();
                        if let Some(conn) = self.conn.take() {
                            net.close(now, conn);
                        }
                    }
                }
            }
            self.write(net, now);
            while let Some(event) = self.engine.poll_event() {
                // (Taking events may let the engine go on with input it held: look again.)
                busy = true;
                if let (Event::Message(m), true) = (&event, self.consume) {
                    self.engine.handle_consumed(now, m.payload().len());
                }
                self.events.push((now.as_millis(), event));
            }
            if !self.unread.is_empty() && self.engine.input_room() > 0 {
                busy = true;
                self.feed(now);
            }
            if let Some(conn) = self.conn {
                if self.engine.wants_read() || !self.engine.is_connected() {
                    if let Some(input) = net.poll_client_event(conn) {
                        busy = true;
                        self.handle(net, now, input);
                    }
                }
            }
            if !busy {
                return;
            }
        }
    }

    fn handle(&mut self, net: &mut SimNet, now: Instant, input: ClientEvent) {
        match input {
            ClientEvent::Opened => {
                self.opened += 1;
                self.engine.handle_opened(now)
            }
            ClientEvent::OpenFailed(e) => {
                // A driver drops its socket after a failure.
                if let Some(conn) = self.conn.take() {
                    net.close(now, conn);
                }
                self.engine
                    .handle_open_failed(now, FailureKind::TcpConnect, format!("{e:?}"));
            }
            ClientEvent::Data(bytes) => {
                self.unread.extend_from_slice(&bytes);
                self.feed(now);
            }
            ClientEvent::Closed { reset } => {
                self.unread.clear();
                if let Some(conn) = self.conn.take() {
                    net.close(now, conn);
                }
                self.engine.handle_connection_lost(
                    now,
                    FailureKind::ConnectionLost,
                    format!("closed (reset: {reset})"),
                );
            }
        }
    }

    /// Feeds the engine what was received, as much as it has room for (all of it on the heap).
    fn feed(&mut self, now: Instant) {
        let n = self.engine.input_room().min(self.unread.len());
        if n > 0 {
            self.engine.handle_read(now, &self.unread[..n]);
            self.unread.drain(..n);
        }
    }

    /// Writes what the engine has to send, if a link is open; with fixed storage, until what
    /// waited for the writes (held input, queued messages) has gone out too.
    pub fn write(&mut self, net: &mut SimNet, now: Instant) {
        while let Some(conn) = self.conn {
            let mut wrote = false;
            while let Some(bytes) = self.engine.poll_transmit(now) {
                net.send(now, conn, bytes);
                wrote = true;
            }
            if !wrote {
                return;
            }
            self.writes += 1;
            self.engine.handle_written(now);
            self.feed(now);
        }
    }

    /// How many recorded events match `predicate`.
    pub fn count(&self, predicate: impl Fn(&Event<String, S>) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| predicate(e)).count()
    }

    /// Failed attempts recorded in `[from, to)` (virtual ms).
    pub fn attempts_between(&self, from: u64, to: u64) -> usize {
        self.events
            .iter()
            .filter(|(t, e)| *t >= from && *t < to && matches!(e, Event::AttemptFailed { .. }))
            .count()
    }
}

/// Runs the devices and the network from `from` up to `until` (virtual ms), jumping from timer
/// to timer, never stepping by a fixed tick; returns `until`. Panics on a busy loop (a device
/// asking to be woken at the same instant over and over).
pub fn run<S: Storage>(
    net: &mut SimNet,
    devices: &mut [&mut Device<S>],
    from: u64,
    until: u64,
) -> u64 {
    let mut now = Instant::from_millis(from);
    let end = Instant::from_millis(until);
    let mut same_instant = 0;
    for device in devices.iter_mut() {
        device.service(net, now);
    }
    loop {
        let mut next = end;
        for device in devices.iter_mut() {
            device.due = device.engine.poll_timeout();
            if let Some(t) = device.due {
                next = next.min(t);
            }
        }
        if let Some(t) = net.next_timeout() {
            next = next.min(t);
        }
        let next = next.max(now);
        same_instant = if next == now { same_instant + 1 } else { 0 };
        assert!(same_instant < 10_000, "busy loop at {} ms", now.as_millis());
        now = next;
        net.advance(now);
        for device in devices.iter_mut() {
            // Only a timer that is due needs the engine's attention.
            if device.due.is_some_and(|t| t <= now) {
                device.engine.handle_timeout(now);
            }
            device.service(net, now);
        }
        if now >= end {
            return now.as_millis();
        }
    }
}
