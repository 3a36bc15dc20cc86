//! Servers that stand between a client and a broker the way real deployments do, each
//! recording what it was asked, counting the tunnels it opened, and able to cut them all (a
//! reconnect then has to go through it again):
//!
//! - [`ProxyServer`]: a SOCKS5 proxy (no authentication, or RFC 1929 user name / password)
//!   or an HTTP CONNECT proxy (optionally requiring `Basic` credentials), forwarding to
//!   whatever target the client names; it can refuse (SOCKS reply code, HTTP status).
//! - [`WsBridge`]: a WebSocket server (tungstenite) that accepts the upgrade, records the
//!   path, requested sub-protocols and headers, answers `mqtt` (or what the test says), and
//!   forwards binary frames to a broker's TCP port and back, cutting what the broker sends
//!   into small frames so that packets span frames. Used instead of mosquitto's own
//!   WebSocket listener (not built into the packaged mosquitto here) or rumqttd: the real
//!   broker stays behind it.
//! - [`TlsTerminator`]: a rustls server that records the ALPN protocols each client offered
//!   and whether each handshake was full or resumed, then forwards the plain bytes to a
//!   broker (or a [`WsBridge`], for `wss://`). TLS 1.2 or 1.3 as asked.
//!
//! Everything listens on 127.0.0.1 on a free port, runs on its own threads and stops when
//! dropped (open tunnels are cut).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often the polling pumps look for data when both sides are idle.
const POLL: Duration = Duration::from_millis(2);

/// What the servers share: counters, records, open connections to cut.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stopped: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Tunnels opened (after a successful handshake).
    tunnels: usize,
    /// Client-side sockets of open tunnels, to cut.
    open: Vec<TcpStream>,
    records: Vec<Record>,
}

impl Shared {
    fn opened(&self, client: &TcpStream, record: Record) {
        let mut state = self.state.lock().unwrap();
        state.tunnels += 1;
        if let Ok(clone) = client.try_clone() {
            state.open.push(clone);
        }
        state.records.push(record);
        self.changed.notify_all();
    }

    fn refused(&self, record: Record) {
        self.state.lock().unwrap().records.push(record);
        self.changed.notify_all();
    }

    fn wait_tunnels(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        while state.tunnels < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
        true
    }

    fn cut_all(&self) {
        for socket in self.state.lock().unwrap().open.drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Stops accepting (wakes the accept loop listening on `port`) and cuts every tunnel.
    fn stop(&self, port: u16) {
        self.stopped.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", port));
        self.cut_all();
    }
}

/// What one client asked for (each server fills the fields that apply to it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Proxies: the `host:port` the client asked to reach.
    pub target: String,
    /// Proxies: the user name and password presented, if any.
    pub credentials: Option<(String, String)>,
    /// WebSocket: the request path.
    pub path: String,
    /// WebSocket: the `Sec-WebSocket-Protocol` values requested.
    pub subprotocols: Vec<String>,
    /// WebSocket: every request header, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// TLS: the ALPN protocols the client offered.
    pub alpn_offered: Vec<Vec<u8>>,
    /// TLS: whether the handshake resumed a session.
    pub resumed: bool,
    /// Whether the server refused this one.
    pub refused: bool,
}

/// Accepts connections on a new thread and serves each on its own thread.
fn serve(
    shared: Arc<Shared>,
    handle: impl Fn(TcpStream, &Arc<Shared>) + Send + Sync + 'static,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server");
    let port = listener.local_addr().unwrap().port();
    let handle = Arc::new(handle);
    thread::spawn(move || {
        // Blocking accepts; dropping the server sets `stopped` and connects once to wake it.
        for client in listener.incoming() {
            if shared.stopped.load(Ordering::Relaxed) {
                break;
            }
            let Ok(client) = client else { continue };
            let _ = client.set_nodelay(true);
            let shared = shared.clone();
            let handle = handle.clone();
            thread::spawn(move || handle(client, &shared));
        }
    });
    port
}

/// Pipes bytes both ways between two TCP streams until either side closes.
fn pipe(client: TcpStream, upstream: TcpStream) {
    let (Ok(mut up_read), Ok(mut client_write)) = (upstream.try_clone(), client.try_clone()) else {
        return;
    };
    let (mut client_read, mut up_write) = (client, upstream);
    let back = thread::spawn(move || {
        let _ = io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Both);
    });
    let _ = io::copy(&mut client_read, &mut up_write);
    let _ = up_write.shutdown(Shutdown::Both);
    let _ = back.join();
}

/// Which proxy protocol a [`ProxyServer`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// SOCKS5 (RFC 1928).
    Socks5,
    /// HTTP CONNECT.
    HttpConnect,
}

/// A SOCKS5 or HTTP CONNECT proxy for tests; see the [module documentation](self).
pub struct ProxyServer {
    protocol: ProxyProtocol,
    port: u16,
    credentials: Option<(String, String)>,
    /// SOCKS reply code or HTTP status to refuse with (0: accept).
    refusal: Arc<Mutex<u16>>,
    shared: Arc<Shared>,
}

impl ProxyServer {
    /// Starts a proxy; with `credentials`, clients must present them (SOCKS5: RFC 1929;
    /// HTTP: `Proxy-Authorization: Basic`, else 407).
    pub fn start(protocol: ProxyProtocol, credentials: Option<(&str, &str)>) -> ProxyServer {
        let shared = Arc::new(Shared::default());
        let refusal = Arc::new(Mutex::new(0u16));
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let port = {
            let refusal = refusal.clone();
            let credentials = credentials.clone();
            serve(shared.clone(), move |client, shared| {
                let refuse_with = *refusal.lock().unwrap();
                let _ = match protocol {
                    ProxyProtocol::Socks5 => {
                        socks5_session(client, credentials.as_ref(), refuse_with, shared)
                    }
                    ProxyProtocol::HttpConnect => {
                        http_session(client, credentials.as_ref(), refuse_with, shared)
                    }
                };
            })
        };
        ProxyServer {
            protocol,
            port,
            credentials,
            refusal,
            shared,
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL with its credentials: `socks5h://u:p@127.0.0.1:port` or `http://…`.
    pub fn url(&self) -> String {
        let scheme = match self.protocol {
            ProxyProtocol::Socks5 => "socks5h",
            ProxyProtocol::HttpConnect => "http",
        };
        match &self.credentials {
            Some((user, password)) => {
                format!("{scheme}://{user}:{password}@127.0.0.1:{}", self.port)
            }
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// From now on refuses every request: with this SOCKS5 reply code or HTTP status; 0
    /// accepts again.
    pub fn refuse_with(&self, code: u16) {
        *self.refusal.lock().unwrap() = code;
    }

    /// Tunnels opened so far.
    pub fn tunnels(&self) -> usize {
        self.shared.state.lock().unwrap().tunnels
    }

    /// Waits until at least `count` tunnels were opened.
    pub fn wait_tunnels(&self, count: usize, timeout: Duration) -> bool {
        self.shared.wait_tunnels(count, timeout)
    }

    /// What every client asked for, in order.
    pub fn records(&self) -> Vec<Record> {
        self.shared.state.lock().unwrap().records.clone()
    }

    /// Cuts every open tunnel (both sides see the connection closed).
    pub fn cut_all(&self) {
        self.shared.cut_all();
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.shared.stop(self.port);
    }
}

fn socks5_session(
    mut client: TcpStream,
    credentials: Option<&(String, String)>,
    refuse_with: u16,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head)?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods)?;
    let mut record = Record::default();
    match credentials {
        None => client.write_all(&[5, 0])?,
        Some((user, password)) => {
            if !methods.contains(&2) {
                client.write_all(&[5, 0xFF])?;
                return Ok(());
            }
            client.write_all(&[5, 2])?;
            let mut version_and_length = [0u8; 2];
            client.read_exact(&mut version_and_length)?;
            let mut name = vec![0u8; usize::from(version_and_length[1])];
            client.read_exact(&mut name)?;
            let mut length = [0u8; 1];
            client.read_exact(&mut length)?;
            let mut secret = vec![0u8; usize::from(length[0])];
            client.read_exact(&mut secret)?;
            let given = (
                String::from_utf8_lossy(&name).into_owned(),
                String::from_utf8_lossy(&secret).into_owned(),
            );
            let ok = given.0 == *user && given.1 == *password;
            record.credentials = Some(given);
            client.write_all(&[1, if ok { 0 } else { 1 }])?;
            if !ok {
                record.refused = true;
                shared.refused(record);
                return Ok(());
            }
        }
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request)?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip)?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip)?;
            std::net::Ipv6Addr::from(ip).to_string()
        }
        3 => {
            let mut length = [0u8; 1];
            client.read_exact(&mut length)?;
            let mut name = vec![0u8; usize::from(length[0])];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return Ok(()),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    let port = u16::from_be_bytes(port);
    record.target = format!("{host}:{port}");
    if refuse_with != 0 {
        client.write_all(&[5, refuse_with as u8, 0, 1, 0, 0, 0, 0, 0, 0])?;
        record.refused = true;
        shared.refused(record);
        return Ok(());
    }
    let upstream = match TcpStream::connect((host.as_str(), port)) {
        Ok(upstream) => upstream,
        Err(_) => {
            client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0])?;
            record.refused = true;
            shared.refused(record);
            return Ok(());
        }
    };
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
    shared.opened(&client, record);
    pipe(client, upstream);
    Ok(())
}

fn http_session(
    mut client: TcpStream,
    credentials: Option<&(String, String)>,
    refuse_with: u16,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut record = Record {
        target: target.to_owned(),
        ..Record::default()
    };
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("proxy-authorization") {
                let value = value.trim();
                if let Some(encoded) = value.strip_prefix("Basic ") {
                    let decoded = crate::base64::decode(encoded).unwrap_or_default();
                    let decoded = String::from_utf8_lossy(&decoded).into_owned();
                    let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
                    record.credentials = Some((user.to_owned(), password.to_owned()));
                }
            }
        }
    }
    let refuse = |client: &mut TcpStream, status: &str, mut record: Record| {
        let _ =
            client.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        record.refused = true;
        shared.refused(record);
    };
    if method != "CONNECT" {
        refuse(&mut client, "405 Method Not Allowed", record);
        return Ok(());
    }
    if credentials.is_some() && record.credentials.as_ref() != credentials {
        refuse(&mut client, "407 Proxy Authentication Required", record);
        return Ok(());
    }
    if refuse_with != 0 {
        refuse(&mut client, &format!("{refuse_with} Refused"), record);
        return Ok(());
    }
    let host = target
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(target);
    let port: u16 = target
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0);
    let Ok(upstream) = TcpStream::connect((host, port)) else {
        refuse(&mut client, "502 Bad Gateway", record);
        return Ok(());
    };
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    shared.opened(&client, record);
    pipe(client, upstream);
    Ok(())
}

/// How a [`WsBridge`] answers the upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsAnswer {
    /// Accepts, answering the sub-protocol `mqtt` when requested.
    Mqtt,
    /// Accepts, answering this sub-protocol instead.
    Subprotocol(String),
    /// Accepts without answering any sub-protocol.
    NoSubprotocol,
    /// Refuses with this HTTP status.
    Status(u16),
    /// Answers these bytes (not HTTP) and closes.
    Garbage(Vec<u8>),
}

/// A WebSocket-to-TCP bridge in front of a broker; see the [module documentation](self).
pub struct WsBridge {
    port: u16,
    answer: Arc<Mutex<WsAnswer>>,
    shared: Arc<Shared>,
}

/// Largest binary frame the bridge sends towards the client: small, so that MQTT packets
/// span several frames (and several packets that arrive together share one).
pub const WS_BRIDGE_FRAME: usize = 7;

impl WsBridge {
    /// Starts a bridge forwarding to `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> WsBridge {
        let shared = Arc::new(Shared::default());
        let answer = Arc::new(Mutex::new(WsAnswer::Mqtt));
        let port = {
            let answer = answer.clone();
            serve(shared.clone(), move |client, shared| {
                let answer = answer.lock().unwrap().clone();
                let _ = ws_session(client, upstream_port, answer, shared);
            })
        };
        WsBridge {
            port,
            answer,
            shared,
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How later upgrades are answered.
    pub fn answer_with(&self, answer: WsAnswer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Upgrades accepted so far.
    pub fn tunnels(&self) -> usize {
        self.shared.state.lock().unwrap().tunnels
    }

    /// Waits until at least `count` upgrades were accepted.
    pub fn wait_tunnels(&self, count: usize, timeout: Duration) -> bool {
        self.shared.wait_tunnels(count, timeout)
    }

    /// What every client asked for, in order.
    pub fn records(&self) -> Vec<Record> {
        self.shared.state.lock().unwrap().records.clone()
    }

    /// Cuts every open connection.
    pub fn cut_all(&self) {
        self.shared.cut_all();
    }
}

impl Drop for WsBridge {
    fn drop(&mut self) {
        self.shared.stop(self.port);
    }
}

fn ws_session(
    mut client: TcpStream,
    upstream_port: u16,
    answer: WsAnswer,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    use tungstenite::handshake::server::{ErrorResponse, Request, Response};
    if let WsAnswer::Garbage(bytes) = &answer {
        // Read the request first, so the client is not reset while still writing it.
        let mut buffer = [0u8; 4096];
        let _ = client.read(&mut buffer);
        client.write_all(bytes)?;
        shared.refused(Record {
            refused: true,
            ..Record::default()
        });
        return Ok(());
    }
    let mut record = Record::default();
    // tungstenite's callback type, large error included.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        record.path = request.uri().path().to_owned();
        record.headers = request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        record.subprotocols = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .flat_map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .map(|p| p.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        let chosen = match &answer {
            WsAnswer::Mqtt => record
                .subprotocols
                .iter()
                .any(|p| p == "mqtt")
                .then(|| "mqtt".to_owned()),
            WsAnswer::Subprotocol(other) => Some(other.clone()),
            WsAnswer::NoSubprotocol => None,
            WsAnswer::Status(status) => {
                let mut refusal = ErrorResponse::new(None);
                *refusal.status_mut() =
                    tungstenite::http::StatusCode::from_u16(*status).unwrap_or_default();
                record.refused = true;
                return Err(refusal);
            }
            WsAnswer::Garbage(_) => None,
        };
        if let Some(chosen) = chosen {
            response.headers_mut().insert(
                "sec-websocket-protocol",
                chosen.parse().expect("a header value"),
            );
        }
        Ok(response)
    };
    let socket_for_cut = client.try_clone()?;
    let accepted = tungstenite::accept_hdr(client, callback);
    let mut socket = match accepted {
        Ok(socket) => socket,
        Err(_) => {
            shared.refused(record);
            return Ok(());
        }
    };
    let upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    shared.opened(&socket_for_cut, record);
    socket.get_mut().set_read_timeout(Some(POLL))?;
    upstream.set_nonblocking(true)?;
    let mut upstream = upstream;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let mut idle = true;
        match socket.read() {
            Ok(tungstenite::Message::Binary(bytes)) => {
                idle = false;
                upstream.set_nonblocking(false)?;
                upstream.write_all(&bytes)?;
                upstream.set_nonblocking(true)?;
            }
            Ok(tungstenite::Message::Close(_)) => break,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        match upstream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                idle = false;
                for frame in buffer[..n].chunks(WS_BRIDGE_FRAME) {
                    socket
                        .write(tungstenite::Message::binary(frame.to_vec()))
                        .map_err(io::Error::other)?;
                }
                socket.flush().map_err(io::Error::other)?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if idle && shared.stopped.load(Ordering::Relaxed) {
            break;
        }
    }
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = socket_for_cut.shutdown(Shutdown::Both);
    Ok(())
}

/// A TLS server in front of a plain TCP port; see the [module documentation](self).
pub struct TlsTerminator {
    port: u16,
    shared: Arc<Shared>,
}

/// Which TLS versions a [`TlsTerminator`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
    /// Both.
    Both,
}

impl TlsTerminator {
    /// Starts a TLS server with `server` (a certificate and its key, PEM) forwarding the
    /// decrypted bytes to `127.0.0.1:upstream_port`. `alpn`: the protocols it selects from
    /// (empty: it selects none, and accepts any offer).
    pub fn start(
        server: &crate::certs::CertificateFiles,
        upstream_port: u16,
        versions: TlsVersions,
        alpn: &[&str],
    ) -> TlsTerminator {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(server.cert_pem().as_bytes())
                .collect::<Result<_, _>>()
                .expect("server certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(server.key_pem().as_bytes()).expect("server key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&'static rustls::SupportedProtocolVersion] = match versions {
            TlsVersions::Tls12 => &[&rustls::version::TLS12],
            TlsVersions::Tls13 => &[&rustls::version::TLS13],
            TlsVersions::Both => &[&rustls::version::TLS12, &rustls::version::TLS13],
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let config = Arc::new(config);
        let shared = Arc::new(Shared::default());
        let port = serve(shared.clone(), move |client, shared| {
            let _ = tls_session(client, config.clone(), upstream_port, shared);
        });
        TlsTerminator { port, shared }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Handshakes completed so far.
    pub fn tunnels(&self) -> usize {
        self.shared.state.lock().unwrap().tunnels
    }

    /// Waits until at least `count` handshakes completed.
    pub fn wait_tunnels(&self, count: usize, timeout: Duration) -> bool {
        self.shared.wait_tunnels(count, timeout)
    }

    /// One record per handshake: ALPN offered, resumed or not.
    pub fn records(&self) -> Vec<Record> {
        self.shared.state.lock().unwrap().records.clone()
    }

    /// Cuts every open connection.
    pub fn cut_all(&self) {
        self.shared.cut_all();
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.shared.stop(self.port);
    }
}

fn tls_session(
    client: TcpStream,
    config: Arc<rustls::ServerConfig>,
    upstream_port: u16,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    let socket_for_cut = client.try_clone()?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    // The ClientHello first, to record what ALPN protocols the client offered.
    let mut acceptor = rustls::server::Acceptor::default();
    let mut client = client;
    let accepted = loop {
        if acceptor.read_tls(&mut client)? == 0 {
            return Ok(());
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => break accepted,
            Ok(None) => {}
            Err(_) => return Ok(()),
        }
    };
    let alpn_offered: Vec<Vec<u8>> = accepted
        .client_hello()
        .alpn()
        .map(|protocols| protocols.map(<[u8]>::to_vec).collect())
        .unwrap_or_default();
    let connection = match accepted.into_connection(config) {
        Ok(connection) => connection,
        Err(_) => return Ok(()),
    };
    let mut tls = rustls::StreamOwned::new(connection, client);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            shared.refused(Record {
                alpn_offered,
                refused: true,
                ..Record::default()
            });
            return Ok(());
        }
    }
    let resumed = tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    let _ = upstream.set_nodelay(true);
    shared.opened(
        &socket_for_cut,
        Record {
            alpn_offered,
            resumed,
            ..Record::default()
        },
    );
    // Two blocking pumps sharing the connection state: no polling, no added latency.
    let rustls::StreamOwned { conn, sock } = tls;
    sock.set_read_timeout(None)?;
    let connection = Arc::new(Mutex::new(conn));
    let socket_out = Arc::new(Mutex::new(sock.try_clone()?));
    let flush = |conn: &mut rustls::ServerConnection, out: &Mutex<TcpStream>| -> io::Result<()> {
        let mut out = out.lock().unwrap();
        while conn.wants_write() {
            conn.write_tls(&mut *out)?;
        }
        Ok(())
    };
    let backward = {
        let connection = connection.clone();
        let socket_out = socket_out.clone();
        let mut upstream_in = upstream.try_clone()?;
        thread::spawn(move || {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                let n = match upstream_in.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut conn = connection.lock().unwrap();
                if conn.writer().write_all(&buffer[..n]).is_err()
                    || flush(&mut conn, &socket_out).is_err()
                {
                    break;
                }
            }
            let socket = socket_out.lock().unwrap();
            let _ = socket.shutdown(Shutdown::Both);
        })
    };
    let mut socket_in = sock;
    let mut upstream_out = upstream;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut plain = vec![0u8; 16 * 1024];
    // What came with the handshake's last flight (the client's first bytes), and what the
    // server still has to send (TLS 1.3 session tickets).
    {
        let mut early = Vec::new();
        let mut conn = connection.lock().unwrap();
        while let Ok(k) = conn.reader().read(&mut plain) {
            if k == 0 {
                break;
            }
            early.extend_from_slice(&plain[..k]);
        }
        flush(&mut conn, &socket_out)?;
        drop(conn);
        upstream_out.write_all(&early)?;
    }
    'pump: loop {
        let n = match socket_in.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut received = Vec::new();
        {
            let mut conn = connection.lock().unwrap();
            let mut rest = &buffer[..n];
            while !rest.is_empty() {
                if conn.read_tls(&mut rest).is_err() || conn.process_new_packets().is_err() {
                    break 'pump;
                }
                loop {
                    match conn.reader().read(&mut plain) {
                        Ok(0) => break,
                        Ok(k) => received.extend_from_slice(&plain[..k]),
                        Err(_) => break,
                    }
                }
            }
            if flush(&mut conn, &socket_out).is_err() {
                break;
            }
        }
        if !received.is_empty() && upstream_out.write_all(&received).is_err() {
            break;
        }
    }
    let _ = upstream_out.shutdown(Shutdown::Both);
    let _ = socket_for_cut.shutdown(Shutdown::Both);
    let _ = backward.join();
    Ok(())
}
