//! The byte stream a client runs over (`Stream`), TCP, TLS, WebSocket and Unix sockets as one
//! `Transport`, and writing that gives up when the peer stops reading.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};

use super::websocket::WebSocketStream;

/// A connected, blocking byte stream to a broker.
///
/// The MQTT client needs a little more than [`Read`] + [`Write`]: read
/// timeouts (keepalive deadlines), non-blocking mode (draining without
/// waiting) and an orderly close.
pub trait Stream: Read + Write + Send {
    /// Sets the timeout of blocking reads; `None` blocks forever.
    ///
    /// A read that times out fails with [`io::ErrorKind::WouldBlock`] or
    /// [`io::ErrorKind::TimedOut`], depending on the platform.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Sets how long a blocking write may make no progress; `None` blocks forever. The client
    /// sets it so that writing into a link that stopped draining (a half-open connection
    /// with a full send buffer) fails instead of hanging.
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Switches the underlying socket in or out of non-blocking mode.
    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()>;

    /// Closes the stream, best effort: for TLS a `close_notify` alert is sent
    /// first, then the TCP connection is shut down in both directions.
    ///
    /// A peer that already closed the connection is not an error.
    fn shutdown(&mut self) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, nonblocking)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        shutdown_tcp(self)
    }
}

impl Stream for StreamOwned<ClientConnection, TcpStream> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_write_timeout(timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_nonblocking(nonblocking)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        // The alert is a courtesy: a peer that is gone, or a non-blocking
        // socket that is full, must not prevent the TCP close below.
        let mut alert_result = Ok(());
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    alert_result = Err(error);
                    break;
                }
            }
        }
        let tcp_result = shutdown_tcp(&mut self.sock);
        match alert_result {
            Err(error) if !is_disconnect(&error) => Err(error),
            _ => tcp_result,
        }
    }
}

/// Shuts a TCP stream down in both directions, treating "already closed"
/// as success because the goal (no connection) is reached.
fn shutdown_tcp(stream: &mut TcpStream) -> io::Result<()> {
    match TcpStream::shutdown(stream, Shutdown::Both) {
        Err(error) if is_disconnect(&error) => Ok(()),
        other => other,
    }
}

fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotConnected
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

/// A connection to a broker returned by [`connect`](super::connect) or [`open`](super::open).
#[derive(Debug)]
#[non_exhaustive]
pub enum Transport {
    /// An unencrypted TCP connection (MQTT's port 1883).
    Tcp(TcpStream),
    /// A TLS connection whose handshake has completed (MQTT's port 8883).
    ///
    /// Boxed because the TLS state is much larger than a socket.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// A WebSocket connection (over TCP or TLS) whose upgrade has completed.
    WebSocket(Box<WebSocketStream>),
    /// A Unix domain socket.
    Unix(UnixStream),
}

/// How a TLS handshake went, see [`Transport::tls_handshake`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsHandshake {
    /// A full handshake: certificate chain sent and verified, new key exchange.
    Full,
    /// An abbreviated handshake resuming an earlier session (TLS 1.3 ticket / PSK, TLS 1.2
    /// session id or ticket): no certificate verification, fewer bytes and less computation.
    Resumed,
}

impl Transport {
    /// The TCP socket underneath, for socket options not covered here; `None` for a Unix
    /// socket.
    pub fn tcp_stream(&self) -> Option<&TcpStream> {
        match self {
            Transport::Tcp(stream) => Some(stream),
            Transport::Tls(stream) => Some(&stream.sock),
            Transport::WebSocket(stream) => stream.get_ref().tcp_stream(),
            Transport::Unix(_) => None,
        }
    }

    /// The address of the broker this transport is connected to (through a proxy: the
    /// proxy's). A Unix socket has none (`Unsupported`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp_stream()
            .ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?
            .peer_addr()
    }

    /// The local address of this end of the connection (`Unsupported` for a Unix socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp_stream()
            .ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?
            .local_addr()
    }

    /// Whether the connection is encrypted with TLS (directly or under WebSocket).
    pub fn is_tls(&self) -> bool {
        match self {
            Transport::Tls(_) => true,
            Transport::WebSocket(stream) => stream.get_ref().is_tls(),
            Transport::Tcp(_) | Transport::Unix(_) => false,
        }
    }

    /// How the TLS handshake went (full or resumed); `None` without TLS.
    pub fn tls_handshake(&self) -> Option<TlsHandshake> {
        match self {
            Transport::Tls(stream) => Some(match stream.conn.handshake_kind() {
                Some(rustls::HandshakeKind::Resumed) => TlsHandshake::Resumed,
                _ => TlsHandshake::Full,
            }),
            Transport::WebSocket(stream) => stream.get_ref().tls_handshake(),
            Transport::Tcp(_) | Transport::Unix(_) => None,
        }
    }

    /// The ALPN protocol the server selected, if any (see
    /// [`TlsConfig::alpn`](super::TlsConfig::alpn)).
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            Transport::Tls(stream) => stream.conn.alpn_protocol(),
            Transport::WebSocket(stream) => stream.get_ref().alpn_protocol(),
            Transport::Tcp(_) | Transport::Unix(_) => None,
        }
    }
}

/// Stands in for `std::os::unix::net::UnixStream` where there is none: no value of it exists,
/// so [`Transport::Unix`] never occurs there ([`open`](super::open) refuses
/// [`Carrier::Unix`](super::Carrier::Unix) with `Unsupported`).
#[cfg(not(unix))]
#[derive(Debug)]
pub enum UnixStream {}

#[cfg(not(unix))]
impl Read for UnixStream {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match *self {}
    }
}

#[cfg(not(unix))]
impl Write for UnixStream {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        match *self {}
    }

    fn flush(&mut self) -> io::Result<()> {
        match *self {}
    }
}

#[cfg(not(unix))]
impl Stream for UnixStream {
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        match *self {}
    }

    fn set_write_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        match *self {}
    }

    fn set_nonblocking(&mut self, _: bool) -> io::Result<()> {
        match *self {}
    }

    fn shutdown(&mut self) -> io::Result<()> {
        match *self {}
    }
}

/// Counts of the transports a driver opened, kept by the driver (the MQTT engine knows
/// nothing of TLS): see `umqtt::robust::Client::transport_stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// Transports opened (every stage done: proxy, TLS, WebSocket).
    pub opened: u64,
    /// TLS handshakes that were full (certificate exchange and verification).
    pub tls_full_handshakes: u64,
    /// TLS handshakes that resumed an earlier session (abbreviated).
    pub tls_resumed_handshakes: u64,
}

impl TransportStats {
    /// Counts `transport`, just opened.
    pub fn record(&mut self, transport: &Transport) {
        self.record_handshake(transport.tls_handshake());
    }

    /// Counts a transport just opened whose TLS handshake (if any) went as `handshake`; for
    /// drivers whose streams are not a [`Transport`] (e.g. async ones).
    pub fn record_handshake(&mut self, handshake: Option<TlsHandshake>) {
        self.opened += 1;
        match handshake {
            Some(TlsHandshake::Full) => self.tls_full_handshakes += 1,
            Some(TlsHandshake::Resumed) => self.tls_resumed_handshakes += 1,
            None => {}
        }
    }
}

#[cfg(unix)]
impl Stream for UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        UnixStream::set_nonblocking(self, nonblocking)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        match UnixStream::shutdown(self, Shutdown::Both) {
            Err(error) if is_disconnect(&error) => Ok(()),
            other => other,
        }
    }
}

/// Runs `$body` with `$stream` bound to whichever stream the transport holds.
macro_rules! each {
    ($transport:expr, $stream:ident => $body:expr) => {
        match $transport {
            Transport::Tcp($stream) => $body,
            Transport::Tls($stream) => {
                let $stream = $stream.as_mut();
                $body
            }
            Transport::WebSocket($stream) => {
                let $stream = $stream.as_mut();
                $body
            }
            Transport::Unix($stream) => $body,
        }
    };
}

impl Read for Transport {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        each!(self, stream => stream.read(buffer))
    }
}

impl Write for Transport {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        each!(self, stream => stream.write(buffer))
    }

    fn flush(&mut self) -> io::Result<()> {
        each!(self, stream => stream.flush())
    }
}

impl Stream for Transport {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, stream => Stream::set_read_timeout(stream, timeout))
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, stream => Stream::set_write_timeout(stream, timeout))
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        each!(self, stream => Stream::set_nonblocking(stream, nonblocking))
    }

    fn shutdown(&mut self) -> io::Result<()> {
        each!(self, stream => Stream::shutdown(stream))
    }
}

/// Shortest socket write timeout: shorter slices would only add wake-ups.
const MIN_WRITE_SLICE: Duration = Duration::from_millis(100);

/// How long a write may make no progress before the link counts as lost: the session's rule
/// ([`SessionConfig::write_stall`](umqtt_core::session::SessionConfig::write_stall)) with
/// the client's response timeout.
pub fn write_stall(
    response_timeout: Duration,
    session: &umqtt_core::session::SessionConfig,
) -> Duration {
    session.write_stall(Some(response_timeout))
}

/// Sets the socket's write timeout to a slice of `stall`. The socket's own timeout bounds one
/// write call (Linux returns a partial write only when it expires), so [`write_within`]
/// measures progress between calls and gives up within stall + slice of the last progress.
pub(crate) fn set_write_slice<S: Stream + ?Sized>(
    stream: &mut S,
    stall: Duration,
) -> io::Result<()> {
    stream.set_write_timeout(Some((stall / 8).max(MIN_WRITE_SLICE)))
}

/// Writes all of `bytes` and flushes, failing with the last `WouldBlock` / `TimedOut` once no
/// call has made progress for `stall`. The stream's write timeout must be set (to a fraction of
/// `stall`): each blocked call then returns in time to check. Retrying after a timeout is safe
/// for TCP and for rustls, whose `write` reports a timeout only before taking any byte.
pub(crate) fn write_within<S: Stream + ?Sized>(
    stream: &mut S,
    bytes: &[u8],
    stall: Duration,
) -> io::Result<()> {
    let mut rest = bytes;
    // The clock is read only once a call times out: a write that goes through costs none.
    // The first timeout comes one write slice after the last progress, so this still gives
    // up within stall + slice of it.
    let mut stalled_since: Option<std::time::Instant> = None;
    let mut flushed = false;
    while !flushed {
        let result = if rest.is_empty() {
            stream.flush().map(|()| {
                flushed = true;
            })
        } else {
            match stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    rest = &rest[n..];
                    stalled_since = None;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let since = *stalled_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= stall {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
