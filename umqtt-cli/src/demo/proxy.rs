//! The demo's network: a small TCP proxy in front of the broker that can script an outage.
//!
//! While the network is up it forwards every connection to the broker. An outage closes its
//! listening socket, so new connections are refused at once (as when Wi-Fi is down and the
//! broker is unreachable), and either cuts the established connections (both ends see the
//! connection close) or black-holes them (they stay open but nothing passes, so only
//! keepalive notices). When the outage ends the same port listens again; black-holed
//! connections that are still open resume.
//!
//! Plain threads: one accepting, two per connection (one per direction). Every blocking call
//! has a short timeout so that the threads notice an outage within [`POLL`].

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::CliError;

/// How long a proxy thread blocks before looking at the network state again.
const POLL: Duration = Duration::from_millis(20);
/// Connecting to the broker.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A write that cannot make progress for this long ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the port to open or close after a switch.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(2);

/// What an outage does to connections that are already established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutageKind {
    /// Close them: clients notice at once.
    Cut,
    /// Keep them open but pass nothing: clients notice by keepalive.
    Blackhole,
}

struct Shared {
    upstream: SocketAddr,
    addr: SocketAddr,
    /// An outage is in progress: the port is closed.
    down: AtomicBool,
    /// Established connections pass nothing.
    blackhole: AtomicBool,
    /// Bumped to cut every established connection.
    generation: AtomicU64,
    /// Connections accepted so far.
    accepted: AtomicU64,
    /// The port is open (the accepting thread's view).
    listening: AtomicBool,
}

/// The proxy; it runs until the process exits.
pub struct OutageProxy {
    shared: Arc<Shared>,
}

impl OutageProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<OutageProxy, CliError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| CliError::failed(format!("cannot start the demo's proxy: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::failed(format!("cannot start the demo's proxy: {e}")))?;
        let shared = Arc::new(Shared {
            upstream,
            addr,
            down: AtomicBool::new(false),
            blackhole: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            listening: AtomicBool::new(true),
        });
        let accept_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("demo-proxy".to_owned())
            .spawn(move || accept_loop(&accept_shared, Some(listener)))
            .map_err(|e| CliError::failed(format!("cannot start the demo's proxy: {e}")))?;
        Ok(OutageProxy { shared })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The network goes down: new connections are refused, established ones are cut or
    /// black-holed. Returns once the port is closed.
    pub fn begin_outage(&self, kind: OutageKind) {
        self.shared.down.store(true, Ordering::SeqCst);
        match kind {
            OutageKind::Cut => {
                self.shared.generation.fetch_add(1, Ordering::SeqCst);
            }
            OutageKind::Blackhole => self.shared.blackhole.store(true, Ordering::SeqCst),
        }
        self.wait_listening(false);
    }

    /// The network is back. Returns once the port accepts connections again, so that a
    /// client told "the network is back" right after this call can connect.
    pub fn end_outage(&self) {
        self.shared.blackhole.store(false, Ordering::SeqCst);
        self.shared.down.store(false, Ordering::SeqCst);
        self.wait_listening(true);
    }

    fn wait_listening(&self, listening: bool) {
        let deadline = Instant::now() + SWITCH_TIMEOUT;
        while self.shared.listening.load(Ordering::SeqCst) != listening && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

fn accept_loop(shared: &Arc<Shared>, mut listener: Option<TcpListener>) {
    loop {
        if shared.down.load(Ordering::SeqCst) {
            // Closing the listening socket is what makes `connect` fail with "refused".
            listener = None;
            shared.listening.store(false, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        let Some(current) = &listener else {
            // Listen on the same port again (std sets SO_REUSEADDR).
            listener = TcpListener::bind(shared.addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .ok();
            match listener {
                Some(_) => shared.listening.store(true, Ordering::SeqCst),
                None => thread::sleep(POLL / 4),
            }
            continue;
        };
        match current.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(shared);
                let _ = thread::Builder::new()
                    .name("demo-proxy-conn".to_owned())
                    .spawn(move || connection(&shared, client));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2))
            }
            Err(_) => thread::sleep(POLL / 4),
        }
    }
}

/// Forwards one connection both ways until either side closes or the connection is cut.
fn connection(shared: &Arc<Shared>, client: TcpStream) {
    let generation = shared.generation.load(Ordering::SeqCst);
    let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, UPSTREAM_CONNECT_TIMEOUT)
    else {
        // The client sees the connection close before CONNACK.
        return;
    };
    let setup = |stream: &TcpStream| {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(POLL))?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        stream.set_nonblocking(false)
    };
    if setup(&client).is_err() || setup(&upstream).is_err() {
        return;
    }
    let (Ok(client_reader), Ok(upstream_reader)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let down_shared = Arc::clone(shared);
    let down = thread::Builder::new()
        .name("demo-proxy-down".to_owned())
        .spawn(move || pump(&down_shared, generation, upstream_reader, client));
    pump(shared, generation, client_reader, upstream);
    if let Ok(down) = down {
        let _ = down.join();
    }
}

/// Copies `from` to `to` until end of stream, an error or a cut; then closes both.
fn pump(shared: &Shared, generation: u64, mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if shared.generation.load(Ordering::SeqCst) != generation {
            break;
        }
        if shared.blackhole.load(Ordering::SeqCst) {
            // Read nothing: the bytes wait in the socket buffers, as in a partition.
            thread::sleep(POLL);
            continue;
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                // Read just as the black hole opened: hold the bytes until it closes.
                while shared.blackhole.load(Ordering::SeqCst)
                    && shared.generation.load(Ordering::SeqCst) == generation
                {
                    thread::sleep(POLL);
                }
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server standing in for the broker.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                thread::spawn(move || {
                    let mut reader = stream.try_clone().unwrap();
                    let _ = io::copy(&mut reader, &mut stream);
                });
            }
        });
        addr
    }

    fn echo(stream: &mut TcpStream, text: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(text)?;
        let mut answer = vec![0; text.len()];
        stream.read_exact(&mut answer)?;
        Ok(answer)
    }

    fn connect(proxy: &OutageProxy) -> io::Result<TcpStream> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port()))?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(stream)
    }

    fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(Instant::now() < deadline, "{what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn cut_outage_refuses_and_closes_then_recovers() {
        let proxy = OutageProxy::start(echo_server()).unwrap();
        let mut stream = connect(&proxy).unwrap();
        assert_eq!(echo(&mut stream, b"hello").unwrap(), b"hello");

        proxy.begin_outage(OutageKind::Cut);
        eventually("new connections are refused", || connect(&proxy).is_err());
        // The established connection was closed.
        let mut byte = [0u8; 1];
        let closed = matches!(stream.read(&mut byte), Ok(0) | Err(_));
        assert!(closed);

        proxy.end_outage();
        eventually("the port listens again", || {
            connect(&proxy)
                .and_then(|mut s| echo(&mut s, b"back"))
                .is_ok()
        });
        assert!(proxy.accepted() >= 2);
    }

    #[test]
    fn blackhole_outage_holds_bytes_until_it_ends() {
        let proxy = OutageProxy::start(echo_server()).unwrap();
        let mut stream = connect(&proxy).unwrap();
        assert_eq!(echo(&mut stream, b"one").unwrap(), b"one");

        proxy.begin_outage(OutageKind::Blackhole);
        eventually("new connections are refused", || connect(&proxy).is_err());
        stream.write_all(b"two").unwrap();
        let mut answer = [0u8; 3];
        assert!(
            stream.read_exact(&mut answer).is_err(),
            "passed the black hole"
        );

        proxy.end_outage();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"two");
    }
}
