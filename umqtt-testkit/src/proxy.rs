//! An in-process TCP proxy whose faults a test switches on and off.
//!
//! [`FaultProxy::start`] listens on a free loopback port and forwards each
//! accepted connection to an upstream address (typically a
//! [`Mosquitto`](crate::broker::Mosquitto) port). From the test thread one
//! can then, at any time:
//!
//! - [`FaultProxy::set_mode`]: [`Mode::Forward`], [`Mode::Refuse`] (the port
//!   is closed: `connect` fails with `ConnectionRefused`) or
//!   [`Mode::BlackHole`] (connections stay open but hear nothing);
//! - [`FaultProxy::cut`] every current connection with FIN (the client reads
//!   EOF) or [`FaultProxy::reset`] it with RST (the client gets
//!   `ConnectionReset`);
//! - [`FaultProxy::set_delay`] to add latency to every chunk in both
//!   directions, and [`FaultProxy::set_slice`] to deliver data a few bytes
//!   at a time, so that packets are split across many reads;
//! - read counters of connections and forwarded bytes.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use umqtt_testkit::{broker::Mosquitto, proxy::{FaultProxy, Mode}, raw};
//!
//! let broker = Mosquitto::start();
//! let proxy = FaultProxy::start(broker.addr());
//! let mut stream = TcpStream::connect(proxy.addr()).unwrap();
//! stream.write_all(&raw::connect("t1", 60, true)).unwrap();
//! let (first_byte, _) = raw::read_packet(&mut stream).unwrap();
//! assert_eq!(raw::packet_type(first_byte), 2); // CONNACK
//!
//! proxy.set_mode(Mode::BlackHole); // the client now hears nothing
//! proxy.reset(); // and now its socket reads ConnectionReset
//! proxy.set_mode(Mode::Refuse); // new connects are refused
//! proxy.set_mode(Mode::Forward); // same port, forwarding again
//! ```
//!
//! Everything runs on plain threads: one accepting, and per connection one
//! supervising plus a reader and a writer for each direction. Every blocking
//! call has a 20 ms timeout so that threads notice mode changes, actions and
//! the proxy's drop; dropping the proxy closes all connections and joins all
//! threads. I/O errors never panic: they close the connection concerned.
//!
//! Linux (and Unix) only: [`FaultProxy::reset`] sets `SO_LINGER` through
//! `libc`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long any proxy thread blocks before looking at its flags again.
const POLL: Duration = Duration::from_millis(20);
/// How long the accepting thread sleeps when nobody is connecting.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Timeout of the connection to the upstream.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long [`FaultProxy::set_mode`] retries binding the old port again.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`FaultProxy::cut`] and [`FaultProxy::reset`] wait for the
/// connections to be closed.
const ACTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest chunk read at once.
const CHUNK_SIZE: usize = 16 * 1024;
/// Chunks queued per direction between its reader and its writer; beyond
/// that the reader stops reading, so back-pressure still reaches the sender.
const QUEUE_CHUNKS: usize = 64;
/// Default pause between two pieces with [`FaultProxy::set_slice`].
const DEFAULT_SLICE_PAUSE: Duration = Duration::from_millis(1);

/// What the proxy does with connections; see [`FaultProxy::set_mode`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Accepts connections and forwards bytes both ways.
    #[default]
    Forward,
    /// Closes the listening socket, so that a new `connect` fails at once
    /// with `ConnectionRefused` (the port is really closed, as when a
    /// broker is down). Connections already established keep forwarding:
    /// add [`FaultProxy::cut`] or [`FaultProxy::reset`] to drop them too.
    /// Switching back to another mode binds the same port again.
    Refuse,
    /// A network partition: existing connections stay open but nothing is
    /// forwarded in either direction, and new connections are accepted
    /// (their `connect` succeeds) but hear nothing; the upstream is only
    /// dialled once the mode is no longer `BlackHole`. Nothing is read or
    /// discarded: the bytes sent meanwhile wait in the socket buffers (and
    /// back-pressure builds up), and are delivered when the mode switches
    /// back, as TCP retransmission would after a healed partition. Neither
    /// side ever sees EOF or a reset because of it.
    BlackHole,
}

impl Mode {
    fn to_u8(self) -> u8 {
        match self {
            Mode::Forward => 0,
            Mode::Refuse => 1,
            Mode::BlackHole => 2,
        }
    }

    fn from_u8(value: u8) -> Mode {
        match value {
            1 => Mode::Refuse,
            2 => Mode::BlackHole,
            _ => Mode::Forward,
        }
    }
}

/// A fault-injecting TCP proxy on `127.0.0.1`; see the
/// [module documentation](self).
///
/// All methods take `&self` and the proxy is `Send + Sync`, so it can be
/// shared (for instance in an `Arc`) with other test threads. Dropping it
/// stops everything.
pub struct FaultProxy {
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultProxy")
            .field("addr", &self.shared.addr)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .field("active_connections", &self.active_connections())
            .finish()
    }
}

struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: AtomicU8,
    /// Serialises [`FaultProxy::set_mode`] calls.
    mode_change: Mutex<()>,
    /// `None` while in [`Mode::Refuse`].
    listener: Mutex<Option<TcpListener>>,
    delay_nanos: AtomicU64,
    /// 0 means no slicing.
    slice: AtomicUsize,
    slice_pause_nanos: AtomicU64,
    shutdown: AtomicBool,
    connections: Mutex<Vec<Arc<Connection>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    active: AtomicUsize,
    upstream_failures: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

struct Connection {
    id: u64,
    client: TcpStream,
    upstream: OnceLock<TcpStream>,
    /// Set by a cut, a reset, an I/O error or the proxy's drop: every
    /// thread of the connection returns, and the sockets are closed.
    stop: AtomicBool,
    /// Close both sockets with RST (`SO_LINGER` 0) rather than FIN.
    rst: AtomicBool,
}

#[derive(Clone, Copy)]
enum Direction {
    /// Client to upstream.
    Up,
    /// Upstream to client.
    Down,
}

enum Chunk {
    Data { due: Instant, bytes: Vec<u8> },
    Eof,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Cut,
    Reset,
}

impl FaultProxy {
    /// Listens on a free port of `127.0.0.1` and forwards every connection
    /// to `upstream`, in [`Mode::Forward`].
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound or no thread started.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0 for the fault proxy");
        listener
            .set_nonblocking(true)
            .expect("cannot make the proxy's listener non-blocking");
        let addr = listener
            .local_addr()
            .expect("the proxy's listener has no address");
        let shared = Arc::new(Shared {
            addr,
            upstream,
            mode: AtomicU8::new(Mode::Forward.to_u8()),
            mode_change: Mutex::new(()),
            listener: Mutex::new(Some(listener)),
            delay_nanos: AtomicU64::new(0),
            slice: AtomicUsize::new(0),
            slice_pause_nanos: AtomicU64::new(duration_to_nanos(DEFAULT_SLICE_PAUSE)),
            shutdown: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            upstream_failures: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name(format!("fault-proxy-accept-{}", addr.port()))
            .spawn(move || accept_loop(&accept_shared))
            .expect("cannot start the proxy's accepting thread");
        FaultProxy {
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// The listening port (the same across [`Mode::Refuse`]).
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The listening address, `127.0.0.1:port()`.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Where connections are forwarded.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Switches mode; see [`Mode`]. Takes effect before it returns:
    /// entering [`Mode::Refuse`] closes the listening socket, and leaving it
    /// binds the same port again (retrying while it is briefly in use).
    ///
    /// # Panics
    ///
    /// If the port cannot be bound again within 10 s (another process took
    /// it while it was closed).
    pub fn set_mode(&self, mode: Mode) {
        let _serialised = lock(&self.shared.mode_change);
        let old = self.shared.mode();
        if mode == old {
            return;
        }
        self.shared.mode.store(mode.to_u8(), Ordering::SeqCst);
        if mode == Mode::Refuse {
            drop(lock(&self.shared.listener).take());
        } else if old == Mode::Refuse {
            let listener = bind_again(self.shared.addr);
            *lock(&self.shared.listener) = Some(listener);
        }
    }

    /// Adds `delay` of latency to every chunk forwarded from now on, in
    /// both directions, keeping the order of bytes. `Duration::ZERO` turns
    /// it off.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_nanos
            .store(duration_to_nanos(delay), Ordering::SeqCst);
    }

    /// The current added latency.
    pub fn delay(&self) -> Duration {
        Duration::from_nanos(self.shared.delay_nanos.load(Ordering::SeqCst))
    }

    /// Forwards in pieces of at most `max_piece` bytes (`Some(0)` counts as
    /// 1), each written separately with `TCP_NODELAY` and followed by a
    /// short pause (1 ms by default, see [`FaultProxy::set_slice_pause`]),
    /// so that the receiver sees its packets split across many reads.
    /// `None` forwards whole chunks again.
    pub fn set_slice(&self, max_piece: Option<usize>) {
        let value = max_piece.map_or(0, |size| size.max(1));
        self.shared.slice.store(value, Ordering::SeqCst);
    }

    /// The pause between two pieces when slicing; 1 ms by default.
    pub fn set_slice_pause(&self, pause: Duration) {
        self.shared
            .slice_pause_nanos
            .store(duration_to_nanos(pause), Ordering::SeqCst);
    }

    /// Closes every current connection on both sides with FIN
    /// (`shutdown(Both)`): the client reads EOF, and so does the upstream.
    /// Connections whose `connect` completed but that the proxy had not yet
    /// accepted are cut too. New connections are then accepted as usual in
    /// the current mode. Returns once the sockets are closed (at most 5 s).
    pub fn cut(&self) {
        self.act(Action::Cut);
    }

    /// Aborts every current connection on both sides with RST (`SO_LINGER`
    /// 0, then close): the client's next read (or write) fails with
    /// `ErrorKind::ConnectionReset`. Otherwise like [`FaultProxy::cut`].
    pub fn reset(&self) {
        self.act(Action::Reset);
    }

    /// Client connections accepted so far, including those whose upstream
    /// could not be reached.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Client connections currently open through the proxy.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Accepted connections closed at once because the upstream refused or
    /// did not answer (for instance while the broker is down).
    pub fn upstream_failures(&self) -> u64 {
        self.shared.upstream_failures.load(Ordering::SeqCst)
    }

    /// Bytes written to the upstream so far (client to broker).
    ///
    /// Both byte counters include a write while it is being made (and drop
    /// what it could not write right after), so once the receiver has read
    /// some bytes they are already counted, and the counters are exact once
    /// traffic stops.
    pub fn bytes_up(&self) -> u64 {
        self.shared.bytes_up.load(Ordering::SeqCst)
    }

    /// Bytes written to clients so far (broker to client).
    pub fn bytes_down(&self) -> u64 {
        self.shared.bytes_down.load(Ordering::SeqCst)
    }

    fn act(&self, action: Action) {
        // First accept what is waiting in the backlog, so that every client
        // whose connect already succeeded is affected.
        {
            let listener = lock(&self.shared.listener);
            if let Some(listener) = listener.as_ref() {
                while let Ok((stream, _)) = listener.accept() {
                    spawn_connection(&self.shared, stream);
                }
            }
        }
        let targets: Vec<Arc<Connection>> = lock(&self.shared.connections).clone();
        let ids: Vec<u64> = targets.iter().map(|connection| connection.id).collect();
        for connection in &targets {
            if action == Action::Reset {
                connection.rst.store(true, Ordering::SeqCst);
            }
            connection.stop.store(true, Ordering::SeqCst);
            if action == Action::Cut {
                let _ = connection.client.shutdown(Shutdown::Both);
                if let Some(upstream) = connection.upstream.get() {
                    let _ = upstream.shutdown(Shutdown::Both);
                }
            }
        }
        // The supervising threads close the sockets (they hold the only
        // file descriptors) and unregister them within about POLL.
        drop(targets);
        let deadline = Instant::now() + ACTION_TIMEOUT;
        while Instant::now() < deadline {
            let remaining = lock(&self.shared.connections)
                .iter()
                .any(|connection| ids.contains(&connection.id));
            if !remaining {
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        drop(lock(&self.shared.listener).take());
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
        // The accepting thread has stopped, so no handle is added any more.
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_nanos.load(Ordering::SeqCst))
    }

    fn counter(&self, direction: Direction) -> &AtomicU64 {
        match direction {
            Direction::Up => &self.bytes_up,
            Direction::Down => &self.bytes_down,
        }
    }
}

impl Connection {
    fn stopped(&self, shared: &Shared) -> bool {
        self.stop.load(Ordering::SeqCst) || shared.shutdown.load(Ordering::SeqCst)
    }

    /// Stops the connection after an I/O error; a reset on one side is
    /// passed on as a reset of the other.
    fn fail(&self, error: &io::Error) {
        if error.kind() == io::ErrorKind::ConnectionReset {
            self.rst.store(true, Ordering::SeqCst);
        }
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(shared: &Arc<Shared>) {
    while !shared.shutdown.load(Ordering::SeqCst) {
        let accepted = match lock(&shared.listener).as_ref() {
            Some(listener) => listener.accept().map(|(stream, _)| stream),
            None => Err(io::ErrorKind::WouldBlock.into()),
        };
        match accepted {
            Ok(stream) => spawn_connection(shared, stream),
            // WouldBlock, and also transient failures such as EMFILE or an
            // aborted handshake: try again shortly.
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

/// Registers an accepted client connection and starts its supervising
/// thread.
fn spawn_connection(shared: &Arc<Shared>, client: TcpStream) {
    let connection = Arc::new(Connection {
        id: shared.next_id.fetch_add(1, Ordering::SeqCst),
        client,
        upstream: OnceLock::new(),
        stop: AtomicBool::new(false),
        rst: AtomicBool::new(false),
    });
    shared.accepted.fetch_add(1, Ordering::SeqCst);
    shared.active.fetch_add(1, Ordering::SeqCst);
    lock(&shared.connections).push(Arc::clone(&connection));
    let cleanup = Cleanup {
        shared: Arc::clone(shared),
        connection: Some(connection),
    };
    // If the thread cannot start, the closure and so `cleanup` are dropped,
    // which closes and unregisters the connection.
    let spawned = thread::Builder::new()
        .name(format!("fault-proxy-{}", shared.addr.port()))
        .spawn(move || {
            let cleanup = cleanup;
            if let Some(connection) = &cleanup.connection {
                run_connection(&cleanup.shared, connection);
            }
        });
    if let Ok(handle) = spawned {
        let mut threads = lock(&shared.threads);
        threads.retain(|thread| !thread.is_finished());
        threads.push(handle);
    }
}

/// Closes and unregisters a connection when its supervising thread ends,
/// however it ends.
struct Cleanup {
    shared: Arc<Shared>,
    connection: Option<Arc<Connection>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        if connection.rst.load(Ordering::SeqCst) {
            set_linger_zero(&connection.client);
            if let Some(upstream) = connection.upstream.get() {
                set_linger_zero(upstream);
            }
        }
        let id = connection.id;
        drop(connection);
        // The registry holds the last reference: removing it closes the
        // sockets, before anyone waiting in `act` sees the connection gone.
        lock(&self.shared.connections).retain(|connection| connection.id != id);
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn run_connection(shared: &Shared, connection: &Connection) {
    if configure(&connection.client).is_err() {
        return;
    }
    // A black-holed newcomer hears nothing, not even that the upstream is
    // unreachable: dial only once the partition is over.
    while shared.mode() == Mode::BlackHole {
        if connection.stopped(shared) {
            return;
        }
        thread::sleep(POLL);
    }
    if connection.stopped(shared) {
        return;
    }
    let upstream = match TcpStream::connect_timeout(&shared.upstream, UPSTREAM_CONNECT_TIMEOUT) {
        Ok(upstream) => upstream,
        Err(_) => {
            shared.upstream_failures.fetch_add(1, Ordering::SeqCst);
            // Dropping the client closes it: it reads EOF (or a reset if
            // it had sent bytes we never read).
            return;
        }
    };
    if configure(&upstream).is_err() {
        return;
    }
    let upstream = connection.upstream.get_or_init(|| upstream);
    // A cut between the connect and the line above did not see the
    // upstream socket.
    if connection.stopped(shared) {
        return;
    }
    let client = &connection.client;
    thread::scope(|scope| {
        let (up_sender, up_receiver) = mpsc::sync_channel(QUEUE_CHUNKS);
        let (down_sender, down_receiver) = mpsc::sync_channel(QUEUE_CHUNKS);
        let spawns = [
            thread::Builder::new().spawn_scoped(scope, move || {
                read_side(shared, connection, client, up_sender)
            }),
            thread::Builder::new().spawn_scoped(scope, move || {
                write_side(shared, connection, upstream, up_receiver, Direction::Up)
            }),
            thread::Builder::new().spawn_scoped(scope, move || {
                read_side(shared, connection, upstream, down_sender)
            }),
        ];
        if spawns.iter().any(Result::is_err) {
            connection.stop.store(true, Ordering::SeqCst);
        }
        write_side(shared, connection, client, down_receiver, Direction::Down);
    });
}

fn configure(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(POLL))?;
    Ok(())
}

/// Reads from `source` and queues the chunks, stamped with when they are
/// due, for the writer of the same direction.
fn read_side(
    shared: &Shared,
    connection: &Connection,
    mut source: &TcpStream,
    sender: SyncSender<Chunk>,
) {
    let mut buffer = vec![0u8; CHUNK_SIZE];
    loop {
        if connection.stopped(shared) {
            return;
        }
        if shared.mode() == Mode::BlackHole {
            thread::sleep(POLL);
            continue;
        }
        match source.read(&mut buffer) {
            Ok(0) => {
                let _ = sender.send(Chunk::Eof);
                return;
            }
            Ok(count) => {
                let chunk = Chunk::Data {
                    due: Instant::now() + shared.delay(),
                    bytes: buffer[..count].to_vec(),
                };
                // Blocks while the queue is full; fails once the writer
                // has returned.
                if sender.send(chunk).is_err() {
                    return;
                }
            }
            Err(error) if is_transient(&error) => {}
            Err(error) => {
                connection.fail(&error);
                return;
            }
        }
    }
}

/// Writes the queued chunks to `target` when they are due, in pieces when
/// slicing, and passes a half-close on.
fn write_side(
    shared: &Shared,
    connection: &Connection,
    target: &TcpStream,
    receiver: Receiver<Chunk>,
    direction: Direction,
) {
    loop {
        match receiver.recv_timeout(POLL) {
            Ok(Chunk::Data { due, bytes }) => {
                if !wait_until(shared, connection, due) {
                    return;
                }
                if !write_sliced(shared, connection, target, &bytes, direction) {
                    return;
                }
            }
            Ok(Chunk::Eof) => {
                if wait_while_black_hole(shared, connection) {
                    let _ = target.shutdown(Shutdown::Write);
                }
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                if connection.stopped(shared) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn write_sliced(
    shared: &Shared,
    connection: &Connection,
    target: &TcpStream,
    bytes: &[u8],
    direction: Direction,
) -> bool {
    let slice = shared.slice.load(Ordering::SeqCst);
    let piece_size = if slice == 0 { bytes.len() } else { slice };
    for (index, piece) in bytes.chunks(piece_size.max(1)).enumerate() {
        if index > 0 {
            let pause = Duration::from_nanos(shared.slice_pause_nanos.load(Ordering::SeqCst));
            if !pause.is_zero() && !wait_until(shared, connection, Instant::now() + pause) {
                return false;
            }
        }
        if !wait_while_black_hole(shared, connection) {
            return false;
        }
        if !write_all(shared, connection, target, piece, direction) {
            return false;
        }
    }
    true
}

/// Like `write_all`, but gives up when the connection stops, and counts
/// the bytes written.
fn write_all(
    shared: &Shared,
    connection: &Connection,
    mut target: &TcpStream,
    bytes: &[u8],
    direction: Direction,
) -> bool {
    let counter = shared.counter(direction);
    let mut written = 0;
    while written < bytes.len() {
        if connection.stopped(shared) {
            return false;
        }
        // Counted before the write, so that a receiver that has seen the
        // bytes never finds them missing from the counter; what is not
        // written is taken back at once.
        let remaining = bytes.len() - written;
        counter.fetch_add(remaining as u64, Ordering::SeqCst);
        let result = target.write(&bytes[written..]);
        let count = *result.as_ref().unwrap_or(&0);
        counter.fetch_sub((remaining - count) as u64, Ordering::SeqCst);
        match result {
            Ok(0) => {
                connection.stop.store(true, Ordering::SeqCst);
                return false;
            }
            Ok(count) => written += count,
            Err(error) if is_transient(&error) => {}
            Err(error) => {
                connection.fail(&error);
                return false;
            }
        }
    }
    true
}

/// Sleeps until `due`; false if the connection stopped meanwhile.
fn wait_until(shared: &Shared, connection: &Connection, due: Instant) -> bool {
    loop {
        if connection.stopped(shared) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        thread::sleep((due - now).min(POLL));
    }
}

/// Waits while in [`Mode::BlackHole`]; false if the connection stopped.
fn wait_while_black_hole(shared: &Shared, connection: &Connection) -> bool {
    loop {
        if connection.stopped(shared) {
            return false;
        }
        if shared.mode() != Mode::BlackHole {
            return true;
        }
        thread::sleep(POLL);
    }
}

/// Timeouts (`WouldBlock` on Unix) and interruptions.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Binds `addr` again after [`Mode::Refuse`]. std sets `SO_REUSEADDR`, so
/// our own closed connections in `TIME_WAIT` do not block it, but an
/// outgoing connection of anyone may have been given the port as its
/// ephemeral port meanwhile: retry until it is free.
fn bind_again(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + REBIND_TIMEOUT;
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                listener
                    .set_nonblocking(true)
                    .expect("cannot make the proxy's listener non-blocking");
                return listener;
            }
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("the fault proxy cannot bind {addr} again: {error}"),
        }
    }
}

/// Makes the next close send RST instead of FIN.
fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor, and a pointer to a live `linger`
    // of the size given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast::<libc::c_void>(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn duration_to_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Locks, ignoring poisoning: a panicking test thread must not wedge the
/// proxy's own threads or its drop.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
