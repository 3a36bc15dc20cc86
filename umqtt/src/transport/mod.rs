//! Byte streams to a broker: TCP, TLS, WebSocket (`ws://`, `wss://`), a Unix domain socket,
//! each optionally through an HTTP CONNECT or SOCKS5 proxy.
//!
//! [`open`] resolves the host, opens a TCP connection (through the [`ProxyConfig`] if any)
//! and, when given a [`TlsConfig`], completes the whole TLS handshake, then the WebSocket
//! upgrade if the [`TransportConfig`] asks for one, before returning: an unknown CA, a wrong
//! host name, a proxy's refusal or a WebSocket server that does not speak `mqtt` is reported
//! by `open` itself, as a typed [`TransportError`], and not by the first read of the MQTT
//! client. [`connect`] is `open` over plain TCP / TLS.
//!
//! ```text
//!   MQTT bytes ─► [WebSocket frames] ─► [TLS] ─► [proxy tunnel] ─► TCP ─► broker
//!   MQTT bytes ─► Unix socket ─► local broker
//! ```
//!
//! TLS sessions are resumed across reconnects: a [`TlsConfig`] and its clones share one
//! rustls configuration and its session store ([`TlsConfig::client_config`]), and
//! [`Transport::tls_handshake`] tells whether a handshake was full or resumed.
//!
//! ```no_run
//! use std::time::Duration;
//! use umqtt::transport::{connect, TlsConfig};
//!
//! # fn main() -> Result<(), umqtt::transport::TransportError> {
//! let tls = TlsConfig::new().ca_file("/etc/mosquitto/ca.pem");
//! let transport = connect("broker.example", 8883, Some(&tls), Duration::from_secs(10))?;
//! # let _ = transport;
//! # Ok(())
//! # }
//! ```
//!
//! What this module does not do: certificate revocation checks, HTTP proxies' other
//! authentication schemes than `Basic`, SOCKS4, WebSocket compression, or happy-eyeballs
//! racing of IPv6 against IPv4 (the resolved addresses are tried one after another).

mod config;
mod error;
mod proxy;
mod stream;
mod tls;
mod websocket;

pub use config::{
    Carrier, ProxyConfig, ProxyKind, ProxyUrlError, TransportConfig, WebSocketConfig,
};
pub use error::TransportError;
pub use proxy::{ProxyError, ProxyHandshake};
pub use stream::write_stall;
#[cfg(not(unix))]
pub use stream::UnixStream;
pub(crate) use stream::{set_write_slice, write_within};
pub use stream::{Stream, TlsHandshake, Transport, TransportStats};
pub use tls::{PemKind, TlsConfig, TlsVersion};
/// The WebSocket implementation under [`Carrier::WebSocket`], for the async driver (same
/// version); not a stable API.
#[doc(hidden)]
pub use tungstenite;
#[doc(hidden)]
pub use websocket::{
    check_response as websocket_check_response, client_request as websocket_request,
    framing_config as websocket_framing, handshake_error as websocket_error,
    to_io as websocket_io_error,
};
pub use websocket::{WebSocketError, WebSocketStream, SUBPROTOCOL};

/// Opens a connection to `host:port` as `transport` describes: through its proxy if any,
/// over TLS when `tls` is given, then the WebSocket upgrade for [`Carrier::WebSocket`]; a
/// [`Carrier::Unix`] socket ignores the host, port, proxy and TLS.
///
/// Each stage (TCP connect, proxy handshake, TLS handshake, WebSocket upgrade) must finish
/// within `connect_timeout`; name resolution is bounded by it too. Otherwise as [`connect`].
///
/// # Errors
///
/// As [`connect`], plus [`TransportError::Proxy`], [`TransportError::WebSocket`] and
/// [`TransportError::Unix`].
pub fn open(
    host: &str,
    port: u16,
    tls: Option<&TlsConfig>,
    transport: &TransportConfig,
    connect_timeout: Duration,
) -> Result<Transport, TransportError> {
    if let Carrier::Unix(path) = &transport.carrier {
        #[cfg(unix)]
        let connected = std::os::unix::net::UnixStream::connect(path).map(Transport::Unix);
        #[cfg(not(unix))]
        let connected = Err(io::Error::from(io::ErrorKind::Unsupported));
        return connected.map_err(|source| TransportError::Unix {
            path: path.clone(),
            source,
        });
    }
    let host = strip_ipv6_brackets(host);
    let tls_setup = tls_setup(tls, host)?;
    let (tcp, addr) = match &transport.proxy {
        None => connect_tcp(host, port, connect_timeout)?,
        Some(proxy) => connect_through(proxy, host, port, connect_timeout)?,
    };
    let stream = finish_connect(tcp, addr, tls_setup, connect_timeout)?;
    match &transport.carrier {
        Carrier::WebSocket(config) => {
            websocket::upgrade(stream, host, port, config, connect_timeout)
                .map(|ws| Transport::WebSocket(Box::new(ws)))
                .map_err(TransportError::WebSocket)
        }
        _ => Ok(stream),
    }
}

/// A TCP connection to `host:port` through `proxy`, its handshake done within `timeout`.
fn connect_through(
    proxy: &ProxyConfig,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), TransportError> {
    let (mut tcp, addr) = connect_tcp(strip_ipv6_brackets(&proxy.host), proxy.port, timeout)?;
    let failed = |source| TransportError::Proxy {
        proxy: format!("{}:{}", proxy.host, proxy.port),
        source,
    };
    tcp.set_read_timeout(Some(timeout))
        .and_then(|()| tcp.set_write_timeout(Some(timeout)))
        .map_err(|e| failed(ProxyError::Io(e)))?;
    proxy::handshake(proxy, &mut tcp, host, port).map_err(failed)?;
    tcp.set_read_timeout(None)
        .and_then(|()| tcp.set_write_timeout(None))
        .map_err(|e| failed(ProxyError::Io(e)))?;
    Ok((tcp, addr))
}

fn tls_setup(
    tls: Option<&TlsConfig>,
    host: &str,
) -> Result<Option<(Arc<ClientConfig>, ServerName<'static>)>, TransportError> {
    match tls {
        Some(tls) => {
            let server_name = parse_server_name(tls.server_name.as_deref().unwrap_or(host))?;
            Ok(Some((tls.client_config()?, server_name)))
        }
        None => Ok(None),
    }
}

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

/// Opens a connection to `host:port`, over TLS when `tls` is given.
///
/// `host` is a DNS name or an IP literal (IPv6 with or without brackets).
/// Its addresses are tried in the resolver's order until one accepts;
/// `connect_timeout` bounds each TCP attempt and, separately, the TLS
/// handshake; it must not be zero (the operating system rejects that, as a
/// [`TransportError::Connect`] with `InvalidInput`). Name resolution uses the
/// system resolver and is not bounded.
///
/// `TCP_NODELAY` is set: MQTT packets are small and a ping or an
/// acknowledgement must not wait for Nagle's algorithm; the client batches by
/// writing whole buffers.
///
/// With TLS, the certificate is verified against `tls.server_name` if set,
/// else against `host`. SNI is sent only for DNS names: for an IP address
/// rustls sends none (as RFC 6066 requires) and checks the certificate's IP
/// address entries instead. The handshake is complete when this returns.
///
/// # Errors
///
/// Local problems (unreadable certificate files, a bad server name) are
/// reported before any network traffic; then resolution, TCP and TLS
/// failures, each as its own [`TransportError`] variant.
pub fn connect(
    host: &str,
    port: u16,
    tls: Option<&TlsConfig>,
    connect_timeout: Duration,
) -> Result<Transport, TransportError> {
    // Builds the TLS configuration first: a missing file is a local mistake that should not
    // cost a network round trip to discover.
    open(host, port, tls, &TransportConfig::tcp(), connect_timeout)
}

/// Like [`connect`], over a TCP connection the caller already opened (for a proxy,
/// prefer [`open`] with a [`ProxyConfig`]): with `tls`, the handshake (verifying the
/// certificate against `tls.server_name` or `host`) completes within
/// `handshake_timeout`; without, the stream is used as is.
///
/// # Errors
///
/// As [`connect`], minus resolution and TCP failures.
pub fn connect_over(
    tcp: TcpStream,
    host: &str,
    tls: Option<&TlsConfig>,
    handshake_timeout: Duration,
) -> Result<Transport, TransportError> {
    let host = strip_ipv6_brackets(host);
    let tls_setup = tls_setup(tls, host)?;
    let addr = tcp.peer_addr().map_err(TransportError::TlsIo)?;
    finish_connect(tcp, addr, tls_setup, handshake_timeout)
}

fn finish_connect(
    tcp: TcpStream,
    addr: SocketAddr,
    tls_setup: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
) -> Result<Transport, TransportError> {
    // Best effort: without it the connection still works, only slower.
    let _ = tcp.set_nodelay(true);
    match tls_setup {
        None => Ok(Transport::Tcp(tcp)),
        Some((config, server_name)) => {
            let connection =
                ClientConnection::new(config, server_name).map_err(TransportError::Tls)?;
            let mut stream = StreamOwned::new(connection, tcp);
            complete_handshake(&mut stream, addr, timeout)?;
            Ok(Transport::Tls(Box::new(stream)))
        }
    }
}

fn strip_ipv6_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host)
}

/// The name the certificate is verified against when connecting to `host` with `tls`:
/// [`TlsConfig::server_name`] if set, else `host`. An IP literal (with or without brackets)
/// becomes an IP address name (checked against the certificate's IP entries, no SNI), anything
/// else a DNS name. For drivers that run the TLS handshake themselves (e.g. an async one) with
/// [`TlsConfig::to_client_config`].
///
/// # Errors
///
/// [`TransportError::InvalidServerName`] when the name is neither.
pub fn server_name(tls: &TlsConfig, host: &str) -> Result<ServerName<'static>, TransportError> {
    parse_server_name(tls.server_name.as_deref().unwrap_or(host))
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>, TransportError> {
    let name = strip_ipv6_brackets(name);
    // An IP literal must become `ServerName::IpAddress`: it is then checked
    // against the certificate's IP address entries and sent as no SNI.
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(name.to_owned()).map_err(|_| TransportError::InvalidServerName {
        name: name.to_owned(),
    })
}

fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), TransportError> {
    let addresses = resolve(host, port, timeout).map_err(|source| TransportError::Resolve {
        host: host.to_owned(),
        source,
    })?;
    let mut last_error = None;
    for addr in addresses {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok((stream, addr)),
            Err(source) if source.kind() == io::ErrorKind::TimedOut => {
                last_error = Some(TransportError::Timeout { addr });
            }
            Err(source) => last_error = Some(TransportError::Connect { addr, source }),
        }
    }
    Err(last_error.unwrap_or_else(|| TransportError::NoAddress {
        host: host.to_owned(),
    }))
}

/// Resolves `host` within `timeout`. The system resolver has no timeout of its own (a
/// broken DNS server can stall it for tens of seconds), so a name is looked up on a helper
/// thread and abandoned when the time is up; IP literals need no lookup.
fn resolve(host: &str, port: u16, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("umqtt-dns".into())
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect);
            let _ = sender.send(result);
        })?;
    receiver.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "name lookup did not finish within the connect timeout",
        ))
    })
}

/// Drives the TLS handshake to completion within `timeout`, so that TLS
/// failures surface here and not on the client's first read.
fn complete_handshake(
    stream: &mut StreamOwned<ClientConnection, TcpStream>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), TransportError> {
    let deadline = Instant::now() + timeout;
    while stream.conn.is_handshaking() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(TransportError::Timeout { addr });
        }
        // The socket timeouts make each blocking read or write wait at most
        // until the deadline.
        stream
            .sock
            .set_read_timeout(Some(remaining))
            .and_then(|()| stream.sock.set_write_timeout(Some(remaining)))
            .map_err(TransportError::TlsIo)?;
        match stream.conn.complete_io(&mut stream.sock) {
            Ok((0, 0)) if stream.conn.is_handshaking() => {
                // No progress and no error would loop forever; rustls
                // reports EOF as an error, so this is only a safeguard.
                return Err(TransportError::TlsIo(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(_) => {}
            Err(error) => return Err(handshake_error(error, addr)),
        }
    }
    // The last flight (client Finished) is written by complete_io before it
    // reports the handshake done; flush anything still queued anyway.
    while stream.conn.wants_write() {
        match stream.conn.write_tls(&mut stream.sock) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => return Err(handshake_error(error, addr)),
        }
    }
    stream
        .sock
        .set_read_timeout(None)
        .and_then(|()| stream.sock.set_write_timeout(None))
        .map_err(TransportError::TlsIo)
}

fn handshake_error(error: io::Error, addr: SocketAddr) -> TransportError {
    // complete_io wraps TLS protocol failures (bad certificate, alerts) in
    // an InvalidData io::Error; unwrap them so callers can match on them.
    if let Some(tls_error) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return TransportError::Tls(tls_error.clone());
    }
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TransportError::Timeout { addr },
        _ => TransportError::TlsIo(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_need_no_lookup_and_names_resolve_within_the_timeout() {
        let addrs = resolve("127.0.0.1", 1883, Duration::from_millis(1)).unwrap();
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], 1883))]);
        let addrs = resolve("::1", 8883, Duration::from_millis(1)).unwrap();
        assert_eq!(addrs[0].port(), 8883);
        let addrs = resolve("localhost", 1883, Duration::from_secs(5)).unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
