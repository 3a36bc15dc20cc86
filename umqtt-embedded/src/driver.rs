//! The driver: opens and closes the connection as the engine asks, writes what it transmits,
//! reads while it wants input, and sleeps until its next timer. The call order is the
//! engine's (see [`umqtt_core::robust`]); no rule is decided here.

use core::convert::Infallible;
use core::future::{pending, poll_fn};
use core::net::{IpAddr, SocketAddr};
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

use embassy_futures::select::{select, select4, Either, Either4};
use embedded_io_async::{Error as _, ErrorKind, Read, Write};
use embedded_nal_async::{Dns, TcpConnect};
use umqtt_core::robust::{Action, ReconnectPolicy, ServerAddress};
use umqtt_core::storage::{Buffer, DefaultStorage, Storage, Text};
use umqtt_core::Instant;

use crate::client::Client;
use crate::error::TransportError;
use crate::time::Clock;

/// Where server N is: an address, or a host name resolved (through the driver's [`Dns`]) at
/// every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Server<'a> {
    /// An IP address and port.
    Addr(SocketAddr),
    /// A host name and port.
    Host(&'a str, u16),
}

/// The resolver of a driver whose servers are all addresses ([`Driver::new`]): a
/// [`Server::Host`] then fails with [`TransportError::NoResolver`] (a configuration failure
/// the policies do not retry) without a look-up.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct NoDns;

impl NoDns {
    /// The resolver that resolves nothing.
    pub fn new() -> Self {
        NoDns
    }
}

/// [`NoDns`]'s error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NoResolver;

impl Dns for NoDns {
    type Error = NoResolver;

    async fn get_host_by_name(
        &self,
        _host: &str,
        _addr_type: embedded_nal_async::AddrType,
    ) -> Result<core::net::IpAddr, NoResolver> {
        Err(NoResolver)
    }

    async fn get_host_by_address(
        &self,
        _addr: core::net::IpAddr,
        _result: &mut [u8],
    ) -> Result<usize, NoResolver> {
        Err(NoResolver)
    }
}

/// Drives a [`Client`]'s engine over connections of an `embedded-nal-async` stack. Build it
/// with [`Driver::new`] (addresses only) or [`Driver::with_dns`], then await
/// [`Driver::run`] beside the application (same executor).
#[must_use = "the client does nothing unless its driver runs"]
pub struct Driver<'a, P, C, T, D = NoDns, S: Storage = DefaultStorage> {
    client: &'a Client<P, C, S>,
    net: &'a T,
    dns: D,
    /// False with [`NoDns`] ([`Driver::new`]): a host name fails without a look-up.
    resolver: bool,
    servers: &'a [Server<'a>],
    rx: &'a mut [u8],
    /// Bytes taken from the engine for one write: a growable buffer whose allocation is
    /// reused on the heap; with fixed storage, in place (one transmit slice, at most the
    /// session's buffer size, per write).
    tx: S::Bytes,
}

impl<P, C, T, D, S: Storage> core::fmt::Debug for Driver<'_, P, C, T, D, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Driver")
            .field("servers", &self.servers)
            .field("rx", &self.rx.len())
            .finish_non_exhaustive()
    }
}

/// How a service pass ended.
enum Pass<H> {
    /// Nothing more to do now.
    Idle,
    /// Open a connection to this server (abandoning any open in progress); with the address
    /// when it is one an MQTT 5 Server Reference named.
    Open(usize, Option<ServerAddress<H>>),
    /// Abandon the open in progress (the connection itself was closed).
    Close,
}

impl<'a, P, C, T, S> Driver<'a, P, C, T, NoDns, S>
where
    P: ReconnectPolicy,
    C: Clock,
    T: TcpConnect,
    S: Storage,
{
    /// A driver for `client` connecting through `net` to `servers` (index N is the engine's
    /// server N), reading into `rx`. `rx` bounds one read, not a packet (the engine
    /// reassembles packets); 512 bytes to a few KiB suit a microcontroller. An empty `rx`
    /// reads nothing: every connection then ends at once.
    pub fn new(
        client: &'a Client<P, C, S>,
        net: &'a T,
        servers: &'a [Server<'a>],
        rx: &'a mut [u8],
    ) -> Self {
        let mut driver = Driver::with_dns(client, net, NoDns, servers, rx);
        driver.resolver = false;
        driver
    }
}

impl<'a, P, C, T, D, S> Driver<'a, P, C, T, D, S>
where
    P: ReconnectPolicy,
    C: Clock,
    T: TcpConnect,
    D: Dns,
    S: Storage,
{
    /// Like [`Driver::new`], resolving [`Server::Host`] names through `dns` at each attempt.
    pub fn with_dns(
        client: &'a Client<P, C, S>,
        net: &'a T,
        dns: D,
        servers: &'a [Server<'a>],
        rx: &'a mut [u8],
    ) -> Self {
        Driver {
            client,
            net,
            dns,
            resolver: true,
            servers,
            rx,
            tx: S::Bytes::default(),
        }
    }

    /// Runs the client for ever: connects, reconnects by the policy, writes, reads, fires
    /// timers. Dropping the future drops the connection (no DISCONNECT: the broker publishes
    /// the will); the engine, with its queue, stays in the [`Client`], and a new driver
    /// carries on from there. It never returns (`Infallible`).
    pub async fn run(self) -> Infallible {
        let Driver {
            client,
            net,
            dns,
            resolver,
            servers,
            rx,
            tx,
        } = self;
        let dns = resolver.then_some(&dns);
        let mut pump = Pump { client, tx };
        let mut connection: Option<T::Connection<'a>> = None;
        // The open in progress, kept across passes (an open is not restarted by a command).
        // Pinned on this future's stack, no allocation; the `if false` only names its type.
        let mut opening = pin!(None);
        if false {
            opening.set(Some(open(net, dns, servers, 0, None)));
        }
        loop {
            loop {
                match pump.service(&mut connection).await {
                    Pass::Idle => break,
                    Pass::Open(server, referenced) => {
                        connection = None;
                        opening.set(Some(open(net, dns, servers, server, referenced)));
                    }
                    Pass::Close => opening.set(None),
                }
            }
            let (timeout, read, room) = {
                let state = client.state();
                // With fixed storage, at most what the session's receive buffer has room for
                // (none while it waits for its answers to be written: the service pass
                // before this one wrote them, so it is the application's turn).
                let room = state.engine.input_room().min(rx.len());
                let read = connection.is_some() && state.engine.wants_read() && room > 0;
                (state.engine.poll_timeout(), read, room)
            };
            let buffer = &mut rx[..room];
            let opened = async {
                match opening.as_mut().as_pin_mut() {
                    Some(open) => open.await,
                    None => pending().await,
                }
            };
            let input = async {
                match connection.as_mut() {
                    Some(connection) if read => connection.read(buffer).await,
                    _ => pending().await,
                }
            };
            let timer = async {
                match timeout {
                    Some(at) => client.clock().sleep_until(at).await,
                    None => pending().await,
                }
            };
            let woken = poll_fn(|cx| {
                let mut state = client.state();
                if core::mem::take(&mut state.woken) {
                    Poll::Ready(())
                } else {
                    state.driver_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            });
            // Every branch is cancel-safe: the open stays in `opening` until it completes, a
            // read loses no bytes when dropped (embedded-io-async asks implementations to be
            // cancel-safe; embassy-net's are), the rest are wake-ups.
            match select4(opened, input, timer, woken).await {
                Either4::First(result) => {
                    opening.set(None);
                    let now = client.clock().now();
                    let mut state = client.state();
                    match result {
                        Ok(opened) => {
                            connection = Some(opened);
                            state.engine.handle_opened(now);
                        }
                        Err(error) => state.engine.handle_open_failed(now, error.kind(), error),
                    }
                }
                Either4::Second(result) => {
                    let now = client.clock().now();
                    let error = match result {
                        Ok(0) => TransportError::Closed,
                        Ok(n) => {
                            // `n` is at most the buffer's length for a correct stream; a wrong
                            // one cannot make this panic.
                            let bytes = rx.get(..n).unwrap_or(&rx[..]);
                            client.state().engine.handle_read(now, bytes);
                            continue;
                        }
                        Err(error) => TransportError::Read(error.kind()),
                    };
                    connection = None;
                    lost(client, now, error);
                }
                Either4::Third(()) => {
                    let now = client.clock().now();
                    client.state().engine.handle_timeout(now);
                }
                Either4::Fourth(()) => {}
            }
        }
    }
}

/// The driver's writing half: services the engine and writes what it transmits.
struct Pump<'a, P, C, S: Storage> {
    client: &'a Client<P, C, S>,
    /// Bytes taken from the engine for one write: a growable buffer whose allocation is
    /// reused on the heap; with fixed storage, in place (one transmit slice, at most the
    /// session's buffer size, per write).
    tx: S::Bytes,
}

impl<P: ReconnectPolicy, C: Clock, S: Storage> Pump<'_, P, C, S> {
    /// Carries out what the engine asks until it asks for an open or a close of an open in
    /// progress (the caller does those), or has nothing more: applies deferred commands,
    /// writes, closes; then wakes the application if events wait.
    async fn service<Io: Read + Write>(&mut self, connection: &mut Option<Io>) -> Pass<S::Text> {
        let client = self.client;
        loop {
            let now = client.clock().now();
            let pass = {
                let mut state = client.state();
                if state.has_deferred() {
                    state.apply_deferred(now);
                }
                match state.engine.poll_action() {
                    Some(Action::Open { server }) => Some(Pass::Open(
                        server,
                        state.engine.server_address(server).cloned(),
                    )),
                    Some(Action::Close) => {
                        // What the engine has to say before closing (DISCONNECT) goes first.
                        // (A slice that does not fit is lost with the connection anyway.)
                        if connection.is_some() {
                            let _ = take_transmit(&mut self.tx, &mut state.engine, now);
                        }
                        Some(Pass::Close)
                    }
                    None => {
                        if connection.is_some()
                            && !take_transmit(&mut self.tx, &mut state.engine, now)
                        {
                            // A slice larger than the write buffer (the session never hands
                            // one out; a guard, not a path): it cannot be written whole, so
                            // the connection goes and the engine resends what it owes.
                            *connection = None;
                            self.tx.clear();
                            state.engine.handle_connection_lost(
                                now,
                                TransportError::Write(ErrorKind::OutOfMemory).kind(),
                                TransportError::Write(ErrorKind::OutOfMemory),
                            );
                            continue;
                        }
                        // No durable outbox here: the engine only reports store changes for
                        // messages published as durable, which this client never does.
                        while state.engine.poll_store().is_some() {}
                        if self.tx.is_empty() {
                            if let Some(waker) = state.events_waker.take() {
                                waker.wake();
                            }
                            Some(Pass::Idle)
                        } else {
                            None
                        }
                    }
                }
            };
            if !self.tx.is_empty() {
                self.write(connection).await;
            }
            match pass {
                Some(Pass::Close) => {
                    // Dropping the connection closes it (embedded-nal-async has no shutdown).
                    *connection = None;
                    return Pass::Close;
                }
                Some(pass) => return pass,
                // Written: look again (commands may have come during the write).
                None => {}
            }
        }
    }

    /// Writes the taken bytes; a write that does not complete within the engine's link
    /// timeout counts as a lost link.
    async fn write<Io: Read + Write>(&mut self, connection: &mut Option<Io>) {
        let client = self.client;
        let Some(stream) = connection.as_mut() else {
            self.tx.clear();
            return;
        };
        let now = client.clock().now();
        let bound = write_bound(&client.state().engine);
        let bytes = &self.tx;
        let written = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        let result = select(
            written,
            client.clock().sleep_until(now.saturating_add(bound)),
        )
        .await;
        self.tx.clear();
        let now = client.clock().now();
        match result {
            Either::First(Ok(())) => client.state().engine.handle_written(now),
            Either::First(Err(error)) => {
                *connection = None;
                lost(client, now, TransportError::Write(error.kind()));
            }
            Either::Second(()) => {
                *connection = None;
                lost(client, now, TransportError::WriteStalled);
            }
        }
    }
}

/// How long one write may make no progress: the session's rule (no response timeout here).
fn write_bound<P: ReconnectPolicy, S: Storage>(
    engine: &umqtt_core::robust::Engine<P, TransportError, S>,
) -> Duration {
    engine.session().config().write_stall(None)
}

fn lost<P: ReconnectPolicy, C: Clock, S: Storage>(
    client: &Client<P, C, S>,
    now: Instant,
    error: TransportError,
) {
    client
        .state()
        .engine
        .handle_connection_lost(now, error.kind(), error);
}

/// What the engine has to write, in `tx`: everything on the heap; with fixed storage the next
/// slice, which the session hands out at most its transmit buffer's size — `tx`'s capacity —
/// so it fits the empty `tx` (the rest follows after this write). False if a slice did not
/// fit (its bytes are lost: the caller drops the connection).
#[must_use]
fn take_transmit<P: ReconnectPolicy, S: Storage>(
    tx: &mut S::Bytes,
    engine: &mut umqtt_core::robust::Engine<P, TransportError, S>,
    now: Instant,
) -> bool {
    while let Some(chunk) = engine.poll_transmit(now) {
        if tx.try_extend(chunk).is_err() {
            return false;
        }
        if S::BYTES != usize::MAX {
            break;
        }
    }
    true
}

/// Resolves server `server` and opens a TCP connection to it.
async fn open<'n, T: TcpConnect, D: Dns, H: Text>(
    net: &'n T,
    dns: Option<&D>,
    servers: &[Server<'_>],
    server: usize,
    referenced: Option<ServerAddress<H>>,
) -> Result<T::Connection<'n>, TransportError> {
    // Only an MQTT 5 CONNACK or DISCONNECT names another server: without the `mqtt5` feature
    // the engine never gives one, and this branch (with its IP address parser) compiles away.
    if let Some(reference) = referenced.filter(|_| cfg!(feature = "mqtt5")) {
        // An MQTT 5 Server Reference (with `EngineSettings::follow_server_references`): an IP
        // address, or a host name for the driver's `Dns`; without a port, the first
        // configured server's.
        let port = reference
            .port
            .or_else(|| {
                servers.first().map(|s| match s {
                    Server::Addr(addr) => addr.port(),
                    Server::Host(_, port) => *port,
                })
            })
            .unwrap_or(1883);
        let ip = match reference.host.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => dns
                .ok_or(TransportError::NoResolver)?
                .get_host_by_name(&reference.host, embedded_nal_async::AddrType::Either)
                .await
                .map_err(|_| TransportError::Dns)?,
        };
        return net
            .connect(SocketAddr::new(ip, port))
            .await
            .map_err(|error| TransportError::Connect(error.kind()));
    }
    let addr = match servers.get(server) {
        None => return Err(TransportError::NoSuchServer(server)),
        Some(Server::Addr(addr)) => *addr,
        Some(Server::Host(host, port)) => {
            let dns = dns.ok_or(TransportError::NoResolver)?;
            let ip = dns
                .get_host_by_name(host, embedded_nal_async::AddrType::Either)
                .await
                .map_err(|_| TransportError::Dns)?;
            SocketAddr::new(ip, *port)
        }
    };
    net.connect(addr)
        .await
        .map_err(|error| TransportError::Connect(error.kind()))
}
