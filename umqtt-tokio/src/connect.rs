//! How the driver opens a connection to server N: TCP or TLS from the [`ClientConfig`]
//! ([`TcpConnector`]), or any `AsyncRead + AsyncWrite` stream a closure opens
//! ([`connector_fn`]: a Unix socket, a SOCKS tunnel, an in-memory pipe, a simulator).
//!
//! The engine bounds a whole attempt (opening and the CONNACK) with one deadline: when it
//! passes, the driver drops the open future, so a connector needs no timeout of its own.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use umqtt::transport::{self, TlsConfig, TransportError};
use umqtt::{ClientConfig, Error};

/// A byte stream the driver can use: anything `AsyncRead + AsyncWrite + Unpin + Send`.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// An open stream, type-erased.
pub type BoxStream = Box<dyn AsyncStream>;

/// An open in progress. Dropping it abandons the open.
pub type ConnectFuture = Pin<Box<dyn Future<Output = Result<BoxStream, Error>> + Send>>;

/// Opens connections for the driver.
pub trait Connector: Send + 'static {
    /// Starts opening a connection to server `server` (an index into the client's server
    /// list: `ClientConfig::server` first, then `RobustConfig::extra_servers`). Errors are
    /// classified for the reconnect policy by [`umqtt::robust::classify`].
    fn connect(&mut self, server: usize) -> ConnectFuture;
}

/// A connector from a closure `FnMut(server) -> impl Future<Output = Result<S, Error>>`.
///
/// ```
/// use umqtt_tokio::connect::connector_fn;
/// let connector = connector_fn(|_server| async {
///     let (client, _broker_side) = tokio::io::duplex(4096);
///     Ok::<_, umqtt::Error>(client)
/// });
/// # let _ = connector;
/// ```
pub fn connector_fn<F, Fut, S>(open: F) -> FnConnector<F>
where
    F: FnMut(usize) -> Fut + Send + 'static,
    Fut: Future<Output = Result<S, Error>> + Send + 'static,
    S: AsyncStream + 'static,
{
    FnConnector(open)
}

/// See [`connector_fn`].
#[derive(Debug, Clone)]
pub struct FnConnector<F>(F);

impl<F, Fut, S> Connector for FnConnector<F>
where
    F: FnMut(usize) -> Fut + Send + 'static,
    Fut: Future<Output = Result<S, Error>> + Send + 'static,
    S: AsyncStream + 'static,
{
    fn connect(&mut self, server: usize) -> ConnectFuture {
        let open = (self.0)(server);
        Box::pin(async move { open.await.map(|stream| Box::new(stream) as BoxStream) })
    }
}

/// TCP, or TLS over TCP with umqtt's [`TlsConfig`] (the same settings as the blocking
/// client), to each `(host, port)` of a server list. `TCP_NODELAY` is set, as in the blocking
/// transport; with TLS the whole handshake completes before the stream is handed over, so a
/// certificate problem is an open failure ([`TransportError::Tls`]).
#[derive(Debug, Clone)]
pub struct TcpConnector {
    servers: Vec<(String, u16)>,
    tls: Option<TlsConfig>,
}

impl TcpConnector {
    /// Connects to `servers` (`(host, port)`), over TLS when `tls` is given.
    pub fn new(servers: Vec<(String, u16)>, tls: Option<TlsConfig>) -> Self {
        TcpConnector { servers, tls }
    }

    /// The servers of `config` (and `extra`, tried after it), ports defaulting as
    /// [`ClientConfig::effective_port`] says.
    pub fn from_config(config: &ClientConfig, extra: &[(String, Option<u16>)]) -> Self {
        let port = config.effective_port();
        let servers = std::iter::once((config.server.clone(), config.port))
            .chain(extra.iter().cloned())
            .map(|(host, p)| (host, p.unwrap_or(port)))
            .collect();
        TcpConnector::new(servers, config.tls.clone())
    }
}

impl Connector for TcpConnector {
    fn connect(&mut self, server: usize) -> ConnectFuture {
        let target = match self.servers.len() {
            0 => None,
            n => self.servers.get(server % n).cloned(),
        };
        let tls = self.tls.clone();
        Box::pin(async move {
            let (host, port) = target.ok_or_else(|| {
                Error::Transport(TransportError::NoAddress {
                    host: String::new(),
                })
            })?;
            open(&host, port, tls.as_ref())
                .await
                .map_err(Error::Transport)
        })
    }
}

/// Opens `host:port` (addresses tried in the resolver's order), then TLS if asked.
pub async fn open(
    host: &str,
    port: u16,
    tls: Option<&TlsConfig>,
) -> Result<BoxStream, TransportError> {
    let host = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    // Local mistakes (unreadable files, a bad server name) before any network traffic.
    let tls_setup = match tls {
        Some(tls) => {
            let name = transport::server_name(tls, host)?;
            Some((TlsConnector::from(Arc::new(tls.to_client_config()?)), name))
        }
        None => None,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| TransportError::Resolve {
            host: host.to_string(),
            source,
        })?
        .collect();
    let mut last = None;
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(source) => last = Some(TransportError::Connect { addr, source }),
        }
    }
    let Some(tcp) = tcp else {
        return Err(last.unwrap_or(TransportError::NoAddress {
            host: host.to_string(),
        }));
    };
    // Best effort: without it the connection still works, only slower.
    let _ = tcp.set_nodelay(true);
    match tls_setup {
        None => Ok(Box::new(tcp)),
        Some((connector, name)) => match connector.connect(name, tcp).await {
            Ok(stream) => Ok(Box::new(stream)),
            Err(error) => Err(tls_error(error)),
        },
    }
}

/// tokio-rustls reports a TLS failure as an `io::Error` wrapping the `rustls::Error`.
fn tls_error(error: io::Error) -> TransportError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => TransportError::Tls(tls.clone()),
        None => TransportError::TlsIo(error),
    }
}
