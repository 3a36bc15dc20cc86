//! How the driver opens a connection to server N: TCP, TLS, WebSocket, a Unix socket or
//! through a proxy, from the [`ClientConfig`] ([`TcpConnector`]), or any `AsyncRead + AsyncWrite` stream a closure opens
//! ([`connector_fn`]: a Unix socket, a SOCKS tunnel, an in-memory pipe, a simulator).
//!
//! The engine bounds a whole attempt (opening and the CONNACK) with one deadline: when it
//! passes, the driver drops the open future, so a connector needs no timeout of its own.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use std::sync::Mutex;
use std::task::{ready, Context, Poll};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::{self, Message};
use umqtt::transport::{
    self, Carrier, ProxyConfig, ProxyError, TlsConfig, TlsHandshake, TransportConfig,
    TransportError, TransportStats,
};
use umqtt::{ClientConfig, Error};
use umqtt_core::robust::ServerAddress;

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

    /// Whether [`Connector::connect_address`] opens addresses outside the list. Only then
    /// does the robust client follow an MQTT 5 Server Reference (a broker's 0x9C Use another
    /// server / 0x9D Server moved). Default false.
    fn follows_references(&self) -> bool {
        false
    }

    /// Starts opening a connection to `address`, a server a broker's MQTT 5 Server Reference
    /// named (a port it left out is the connector's to choose). Called only when
    /// [`Connector::follows_references`] says so; the default opens nothing (`None`).
    fn connect_address(&mut self, address: &ServerAddress) -> Option<ConnectFuture> {
        let _ = address;
        None
    }
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

/// Every transport of umqtt's [`TransportConfig`] (TCP, TLS, WebSocket, Unix socket, through
/// an HTTP CONNECT or SOCKS5 proxy) with umqtt's [`TlsConfig`] (the same settings as the
/// blocking client), to each `(host, port)` of a server list. `TCP_NODELAY` is set, as in the
/// blocking transport; with TLS the whole handshake (and the WebSocket upgrade) completes
/// before the stream is handed over, so a certificate problem is an open failure
/// ([`TransportError::Tls`]). TLS sessions are resumed across reconnects (the rustls
/// configuration of [`TlsConfig::client_config`] is shared), and the handshakes counted in
/// [`TcpConnector::stats`].
#[derive(Debug, Clone)]
pub struct TcpConnector {
    servers: Vec<(String, u16)>,
    tls: Option<TlsConfig>,
    transport: TransportConfig,
    stats: Arc<Mutex<TransportStats>>,
}

impl TcpConnector {
    /// Connects to `servers` (`(host, port)`), over TLS when `tls` is given.
    pub fn new(servers: Vec<(String, u16)>, tls: Option<TlsConfig>) -> Self {
        TcpConnector {
            servers,
            tls,
            transport: TransportConfig::default(),
            stats: Arc::default(),
        }
    }

    /// Uses `transport` (WebSocket, a Unix socket, a proxy) instead of plain TCP.
    #[must_use]
    pub fn transport(mut self, transport: TransportConfig) -> Self {
        self.transport = transport;
        self
    }

    /// The servers of `config` (and `extra`, tried after it), ports defaulting as
    /// [`ClientConfig::effective_port`] says, over `config.transport`.
    pub fn from_config(config: &ClientConfig, extra: &[(String, Option<u16>)]) -> Self {
        let port = config.effective_port();
        let servers = std::iter::once((config.server.clone(), config.port))
            .chain(extra.iter().cloned())
            .map(|(host, p)| (host, p.unwrap_or(port)))
            .collect();
        TcpConnector::new(servers, config.tls.clone()).transport(config.transport.clone())
    }

    /// The transports this connector (and its clones) opened: how many, and how many TLS
    /// handshakes were full or resumed.
    pub fn stats(&self) -> TransportStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn stats_cell(&self) -> Arc<Mutex<TransportStats>> {
        self.stats.clone()
    }
}

impl Connector for TcpConnector {
    fn connect(&mut self, server: usize) -> ConnectFuture {
        let target = match self.servers.len() {
            0 => None,
            n => self.servers.get(server % n).cloned(),
        };
        self.open_target(target)
    }

    fn follows_references(&self) -> bool {
        true
    }

    /// Opens the referenced host over the same transport and TLS settings; without a port
    /// in the reference, the first configured server's port.
    fn connect_address(&mut self, address: &ServerAddress) -> Option<ConnectFuture> {
        let port = address
            .port
            .or_else(|| self.servers.first().map(|s| s.1))
            .unwrap_or_else(|| self.transport.default_port(self.tls.is_some()));
        Some(self.open_target(Some((address.host.clone(), port))))
    }
}

impl TcpConnector {
    fn open_target(&self, target: Option<(String, u16)>) -> ConnectFuture {
        let tls = self.tls.clone();
        let transport = self.transport.clone();
        let stats = self.stats.clone();
        Box::pin(async move {
            let (host, port) = target.ok_or_else(|| {
                Error::Transport(TransportError::NoAddress {
                    host: String::new(),
                })
            })?;
            let (stream, handshake) = open_counted(&host, port, tls.as_ref(), &transport)
                .await
                .map_err(Error::Transport)?;
            stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record_handshake(handshake);
            Ok(stream)
        })
    }
}

/// Opens `host:port` (addresses tried in the resolver's order), then TLS if asked.
pub async fn open(
    host: &str,
    port: u16,
    tls: Option<&TlsConfig>,
) -> Result<BoxStream, TransportError> {
    open_transport(host, port, tls, &TransportConfig::default()).await
}

/// Opens `host:port` as `transport` describes, as the blocking `umqtt::transport::open`: a
/// Unix socket (host, port, proxy and TLS unused), or TCP (through the proxy if any), then
/// TLS if asked, then the WebSocket upgrade. Unbounded in time: the caller bounds it (the
/// robust driver with its attempt deadline, the simple client with its connect timeout).
pub async fn open_transport(
    host: &str,
    port: u16,
    tls: Option<&TlsConfig>,
    transport: &TransportConfig,
) -> Result<BoxStream, TransportError> {
    Ok(open_counted(host, port, tls, transport).await?.0)
}

async fn open_counted(
    host: &str,
    port: u16,
    tls: Option<&TlsConfig>,
    transport: &TransportConfig,
) -> Result<(BoxStream, Option<TlsHandshake>), TransportError> {
    if let Carrier::Unix(path) = &transport.carrier {
        #[cfg(unix)]
        let connected = tokio::net::UnixStream::connect(path)
            .await
            .map(|socket| Box::new(socket) as BoxStream);
        #[cfg(not(unix))]
        let connected: io::Result<BoxStream> = Err(io::ErrorKind::Unsupported.into());
        let socket = connected.map_err(|source| TransportError::Unix {
            path: path.clone(),
            source,
        })?;
        return Ok((socket, None));
    }
    let host = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    // Local mistakes (unreadable files, a bad server name) before any network traffic.
    let tls_setup = match tls {
        Some(tls) => {
            let name = transport::server_name(tls, host)?;
            Some((TlsConnector::from(tls.client_config()?), name))
        }
        None => None,
    };
    let tcp = match &transport.proxy {
        None => connect_tcp(host, port).await?,
        Some(proxy) => {
            let proxy_host = proxy.host.trim_start_matches('[').trim_end_matches(']');
            let mut tcp = connect_tcp(proxy_host, proxy.port).await?;
            proxy_handshake(&mut tcp, proxy, host, port)
                .await
                .map_err(|source| TransportError::Proxy {
                    proxy: format!("{}:{}", proxy.host, proxy.port),
                    source,
                })?;
            tcp
        }
    };
    let (stream, handshake): (BoxStream, _) = match tls_setup {
        None => (Box::new(tcp), None),
        Some((connector, name)) => match connector.connect(name, tcp).await {
            Ok(stream) => {
                let handshake = match stream.get_ref().1.handshake_kind() {
                    Some(rustls::HandshakeKind::Resumed) => TlsHandshake::Resumed,
                    _ => TlsHandshake::Full,
                };
                (Box::new(stream), Some(handshake))
            }
            Err(error) => return Err(tls_error(error)),
        },
    };
    match &transport.carrier {
        Carrier::WebSocket(config) => {
            let request = transport::websocket_request(host, port, tls.is_some(), config)
                .map_err(TransportError::WebSocket)?;
            let (socket, response) = tokio_tungstenite::client_async_with_config(
                request,
                stream,
                Some(transport::websocket_framing()),
            )
            .await
            .map_err(|e| TransportError::WebSocket(transport::websocket_error(e)))?;
            transport::websocket_check_response(&response).map_err(TransportError::WebSocket)?;
            Ok((Box::new(WebSocketStream::new(socket)), handshake))
        }
        _ => Ok((stream, handshake)),
    }
}

async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, TransportError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| TransportError::Resolve {
            host: host.to_string(),
            source,
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Best effort: without it the connection still works, only slower.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(source) => last = Some(TransportError::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or(TransportError::NoAddress {
        host: host.to_string(),
    }))
}

/// The proxy handshake of the blocking transport (one state machine,
/// [`transport::ProxyHandshake`]) over an async stream.
async fn proxy_handshake(
    tcp: &mut TcpStream,
    proxy: &ProxyConfig,
    host: &str,
    port: u16,
) -> Result<(), ProxyError> {
    let mut handshake = transport::ProxyHandshake::new(proxy, host, port)?;
    let mut buffer = [0u8; 512];
    loop {
        let output = handshake.take_output();
        if !output.is_empty() {
            tcp.write_all(&output).await?;
            tcp.flush().await?;
        }
        if handshake.is_done() {
            return Ok(());
        }
        let wanted = handshake.wanted().min(buffer.len());
        let n = tcp.read(&mut buffer[..wanted]).await?;
        if n == 0 {
            return Err(ProxyError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        handshake.handle_input(&buffer[..n])?;
    }
}

/// A tokio-tungstenite WebSocket presented as a byte stream, as the blocking
/// `umqtt::transport::WebSocketStream`: binary frames in order, whatever their boundaries
/// [MQTT-6.0.0-2]; each write one binary frame [MQTT-6.0.0-1].
struct WebSocketStream {
    socket: tokio_tungstenite::WebSocketStream<BoxStream>,
    pending: Vec<u8>,
    pending_start: usize,
}

impl WebSocketStream {
    fn new(socket: tokio_tungstenite::WebSocketStream<BoxStream>) -> Self {
        WebSocketStream {
            socket,
            pending: Vec::new(),
            pending_start: 0,
        }
    }
}

fn ws_io(error: tungstenite::Error) -> io::Error {
    transport::websocket_io_error(error)
}

impl AsyncRead for WebSocketStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pending_start < this.pending.len() {
                let available = &this.pending[this.pending_start..];
                let n = available.len().min(buf.remaining());
                buf.put_slice(&available[..n]);
                this.pending_start += n;
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.socket).poll_next(cx)) {
                Some(Ok(Message::Binary(bytes))) => {
                    this.pending.clear();
                    this.pending.extend_from_slice(&bytes);
                    this.pending_start = 0;
                }
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket text frame: MQTT travels in binary frames [MQTT-6.0.0-1]",
                    )))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => return Poll::Ready(Ok(())),
                Some(Err(error)) => return Poll::Ready(Err(ws_io(error))),
            }
        }
    }
}

impl AsyncWrite for WebSocketStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let socket = &mut self.socket;
        ready!(Pin::new(&mut *socket).poll_ready(cx)).map_err(ws_io)?;
        Pin::new(&mut *socket)
            .start_send(Message::binary(buf.to_vec()))
            .map_err(ws_io)?;
        // Start sending at once; poll_flush finishes what the socket could not take.
        if let Poll::Ready(Err(error)) = Pin::new(&mut *socket).poll_flush(cx) {
            return Poll::Ready(Err(ws_io(error)));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx).map_err(ws_io)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_close(cx).map_err(ws_io)
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
