//! The proxy handshakes: SOCKS5 (RFC 1928, user name / password per RFC 1929) and HTTP
//! `CONNECT` (RFC 9110 §9.3.6). Both run on a connected stream whose timeouts bound them, and
//! read no byte past the proxy's answer (what follows belongs to TLS or MQTT).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::IpAddr;

use super::config::{ProxyConfig, ProxyKind};

/// Why a proxy did not open the tunnel to the broker.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyError {
    /// The connection to the proxy failed or broke during the handshake (a timeout shows as
    /// `WouldBlock` / `TimedOut`).
    Io(io::Error),
    /// The HTTP proxy answered `CONNECT` with a status other than 2xx (e.g. 403 Forbidden,
    /// 407 Proxy Authentication Required, 502 Bad Gateway).
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// The SOCKS5 proxy could not or would not connect (RFC 1928 §6 reply code: 2 not
    /// allowed, 4 host unreachable, 5 connection refused…).
    SocksReply {
        /// The reply code.
        code: u8,
    },
    /// The SOCKS5 proxy accepts none of the authentication methods offered (none, or user
    /// name / password when credentials are configured).
    NoAcceptableAuth,
    /// The SOCKS5 proxy rejected the user name or password.
    AuthRejected,
    /// The answer is not the protocol's (not a SOCKS5 or HTTP proxy, or a garbled reply).
    Malformed,
    /// The broker's host name is longer than SOCKS5's 255 bytes.
    HostTooLong,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Io(error) => write!(f, "connection to the proxy failed: {error}"),
            ProxyError::HttpStatus { status } => {
                write!(f, "the HTTP proxy refused CONNECT with status {status}")
            }
            ProxyError::SocksReply { code } => write!(
                f,
                "the SOCKS proxy could not connect to the broker: {} (code {code})",
                socks_reply_text(*code)
            ),
            ProxyError::NoAcceptableAuth => {
                f.write_str("the SOCKS proxy accepts none of our authentication methods")
            }
            ProxyError::AuthRejected => {
                f.write_str("the SOCKS proxy refused the user name or password")
            }
            ProxyError::Malformed => f.write_str("the proxy's answer is malformed"),
            ProxyError::HostTooLong => f.write_str("broker host name too long for SOCKS5"),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProxyError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for ProxyError {
    fn from(error: io::Error) -> Self {
        ProxyError::Io(error)
    }
}

/// RFC 1928 §6 reply codes.
fn socks_reply_text(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

/// Asks the proxy behind `stream` for a tunnel to `target:port` (blocking; the stream's
/// timeouts bound it).
pub(crate) fn handshake(
    proxy: &ProxyConfig,
    stream: &mut (impl Read + Write),
    target: &str,
    port: u16,
) -> Result<(), ProxyError> {
    let mut handshake = ProxyHandshake::new(proxy, target, port)?;
    let mut buffer = [0u8; 512];
    loop {
        let output = handshake.take_output();
        if !output.is_empty() {
            stream.write_all(&output)?;
            stream.flush()?;
        }
        if handshake.is_done() {
            return Ok(());
        }
        let wanted = handshake.wanted().min(buffer.len());
        let n = match stream.read(&mut buffer[..wanted]) {
            Ok(0) => return Err(ProxyError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ProxyError::Io(e)),
        };
        handshake.handle_input(&buffer[..n])?;
    }
}

/// A proxy handshake as a state machine with no I/O, for every driver (blocking, async):
/// write what [`ProxyHandshake::take_output`] gives, read at most
/// [`ProxyHandshake::wanted`] bytes (never more: what follows the proxy's answer is the
/// broker's) and feed them to [`ProxyHandshake::handle_input`], until
/// [`ProxyHandshake::is_done`].
#[derive(Debug)]
pub struct ProxyHandshake {
    stage: Stage,
    credentials: Option<(String, String)>,
    /// The CONNECT request (SOCKS5), sent once authentication is settled.
    connect_request: Vec<u8>,
    output: Vec<u8>,
    input: Vec<u8>,
    /// How many bytes the current stage needs in `input`.
    need: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    SocksMethod,
    SocksAuth,
    SocksReply,
    SocksDomainLength,
    SocksBoundAddress,
    HttpHead,
    Done,
}

impl ProxyHandshake {
    /// Starts a handshake with `proxy` for a tunnel to `target:port`.
    ///
    /// # Errors
    ///
    /// [`ProxyError::HostTooLong`] for a SOCKS5 target name over 255 bytes, and
    /// [`ProxyError::AuthRejected`] for SOCKS5 credentials over 255 bytes (RFC 1929).
    pub fn new(proxy: &ProxyConfig, target: &str, port: u16) -> Result<Self, ProxyError> {
        let target = target.trim_start_matches('[').trim_end_matches(']');
        let mut handshake = ProxyHandshake {
            stage: Stage::Done,
            credentials: proxy.credentials.clone(),
            connect_request: Vec::new(),
            output: Vec::new(),
            input: Vec::new(),
            need: 0,
        };
        match proxy.kind {
            ProxyKind::Socks5 => {
                if let Some((user, password)) = &proxy.credentials {
                    if user.len() > 255 || password.len() > 255 {
                        return Err(ProxyError::AuthRejected);
                    }
                }
                handshake.connect_request = socks_connect_request(target, port)?;
                // Greeting: the methods we can do (0 = none, 2 = user name / password).
                handshake.output = match &proxy.credentials {
                    Some(_) => vec![5, 2, 0, 2],
                    None => vec![5, 1, 0],
                };
                handshake.expect(Stage::SocksMethod, 2);
            }
            ProxyKind::HttpConnect => {
                handshake.output = http_connect_request(proxy, target, port).into_bytes();
                // The head is read byte by byte: anything after the blank line is the
                // broker's.
                handshake.expect(Stage::HttpHead, 1);
            }
        }
        Ok(handshake)
    }

    fn expect(&mut self, stage: Stage, bytes: usize) {
        self.stage = stage;
        self.need = self.input.len() + bytes;
    }

    /// Bytes to write to the proxy now (empty when nothing is due).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Whether the tunnel is open: the stream now carries the broker's bytes.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// The most bytes to read next (0 when done).
    pub fn wanted(&self) -> usize {
        self.need.saturating_sub(self.input.len())
    }

    /// Takes bytes read from the proxy (at most [`ProxyHandshake::wanted`]).
    ///
    /// # Errors
    ///
    /// The proxy's refusal or a malformed answer, typed.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), ProxyError> {
        let take = bytes.len().min(self.wanted());
        self.input.extend_from_slice(&bytes[..take]);
        if self.input.len() < self.need {
            return Ok(());
        }
        match self.stage {
            Stage::SocksMethod => match (&self.input[..], &self.credentials) {
                ([5, 0], _) => self.send_connect(),
                ([5, 2], Some((user, password))) => {
                    let mut request = vec![1, user.len() as u8];
                    request.extend_from_slice(user.as_bytes());
                    request.push(password.len() as u8);
                    request.extend_from_slice(password.as_bytes());
                    self.output = request;
                    self.input.clear();
                    self.expect(Stage::SocksAuth, 2);
                }
                ([5, 0xFF], _) => return Err(ProxyError::NoAcceptableAuth),
                _ => return Err(ProxyError::Malformed),
            },
            Stage::SocksAuth => {
                if self.input[1] != 0 {
                    return Err(ProxyError::AuthRejected);
                }
                self.send_connect();
            }
            Stage::SocksReply => {
                let reply = &self.input[..4];
                if reply[0] != 5 {
                    return Err(ProxyError::Malformed);
                }
                if reply[1] != 0 {
                    return Err(ProxyError::SocksReply { code: reply[1] });
                }
                // The address the proxy bound, then its port: skipped.
                match reply[3] {
                    1 => self.expect(Stage::SocksBoundAddress, 4 + 2),
                    4 => self.expect(Stage::SocksBoundAddress, 16 + 2),
                    3 => self.expect(Stage::SocksDomainLength, 1),
                    _ => return Err(ProxyError::Malformed),
                }
            }
            Stage::SocksDomainLength => {
                let length = usize::from(self.input[self.input.len() - 1]);
                self.expect(Stage::SocksBoundAddress, length + 2);
            }
            Stage::SocksBoundAddress => self.finish(),
            Stage::HttpHead => {
                if self.input.ends_with(b"\r\n\r\n") {
                    let status = parse_status_line(&self.input).ok_or(ProxyError::Malformed)?;
                    if !(200..300).contains(&status) {
                        return Err(ProxyError::HttpStatus { status });
                    }
                    self.finish();
                } else if self.input.len() >= MAX_HTTP_HEAD {
                    return Err(ProxyError::Malformed);
                } else {
                    self.expect(Stage::HttpHead, 1);
                }
            }
            Stage::Done => {}
        }
        Ok(())
    }

    fn send_connect(&mut self) {
        self.output = std::mem::take(&mut self.connect_request);
        self.input.clear();
        self.expect(Stage::SocksReply, 4);
    }

    fn finish(&mut self) {
        self.stage = Stage::Done;
        self.input = Vec::new();
        self.need = 0;
    }
}

/// SOCKS5 CONNECT to the broker, by address or by name (the proxy resolves it).
fn socks_connect_request(target: &str, port: u16) -> Result<Vec<u8>, ProxyError> {
    let mut request = vec![5, 1, 0];
    match target.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            request.push(4);
            request.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let name = target.as_bytes();
            if name.len() > 255 {
                return Err(ProxyError::HostTooLong);
            }
            request.push(3);
            request.push(name.len() as u8);
            request.extend_from_slice(name);
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

/// Longest HTTP answer head accepted from a proxy: a hostile one cannot make us read forever.
const MAX_HTTP_HEAD: usize = 16 * 1024;

fn http_connect_request(proxy: &ProxyConfig, target: &str, port: u16) -> String {
    let authority = if target.contains(':') {
        format!("[{target}]:{port}")
    } else {
        format!("{target}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, password)) = &proxy.credentials {
        request.push_str("Proxy-Authorization: Basic ");
        request.push_str(&base64(format!("{user}:{password}").as_bytes()));
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

/// The status code of `HTTP/1.x NNN reason`.
fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// Standard base64 with padding (RFC 4648 §4), for `Basic` credentials.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted proxy: the bytes it answers, and what it was sent.
    struct Script {
        replies: io::Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Script {
        fn new(replies: &[u8]) -> Self {
            Script {
                replies: io::Cursor::new(replies.to_vec()),
                sent: Vec::new(),
            }
        }
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.replies.read(buf)
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn socks5_with_password_and_a_name() {
        let proxy = ProxyConfig::socks5("h", 1080).credentials("u", "p");
        let mut script = Script::new(&[5, 2, 1, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        handshake(&proxy, &mut script, "broker", 1883).unwrap();
        let mut expected = vec![5, 2, 0, 2, 1, 1, b'u', 1, b'p', 5, 1, 0, 3, 6];
        expected.extend_from_slice(b"broker");
        expected.extend_from_slice(&1883u16.to_be_bytes());
        assert_eq!(script.sent, expected);
    }

    #[test]
    fn socks5_refusals_are_typed() {
        let proxy = ProxyConfig::socks5("h", 1080);
        type Expected = fn(&ProxyError) -> bool;
        let cases: [(&[u8], Expected); 5] = [
            (&[5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0], |e| {
                matches!(e, ProxyError::SocksReply { code: 5 })
            }),
            (&[5, 0xFF], |e| matches!(e, ProxyError::NoAcceptableAuth)),
            (&[4, 0], |e| matches!(e, ProxyError::Malformed)),
            (&[5, 0, 5, 0, 0, 9], |e| matches!(e, ProxyError::Malformed)),
            (&[5], |e| matches!(e, ProxyError::Io(_))),
        ];
        for (replies, expected) in cases {
            let error = handshake(&proxy, &mut Script::new(replies), "127.0.0.1", 1883)
                .expect_err("refused");
            assert!(expected(&error), "{replies:?}: {error:?}");
        }
        let rejected = handshake(
            &ProxyConfig::socks5("h", 1).credentials("u", "bad"),
            &mut Script::new(&[5, 2, 1, 1]),
            "b",
            1,
        );
        assert!(matches!(rejected, Err(ProxyError::AuthRejected)));
    }

    #[test]
    fn http_connect_reads_only_the_head() {
        let proxy = ProxyConfig::http_connect("h", 3128).credentials("Aladdin", "open sesame");
        let mut script =
            Script::new(b"HTTP/1.1 200 Connection established\r\nX: y\r\n\r\n\x20\x02\x00\x00");
        handshake(&proxy, &mut script, "::1", 1883).unwrap();
        assert_eq!(
            String::from_utf8(script.sent).unwrap(),
            "CONNECT [::1]:1883 HTTP/1.1\r\nHost: [::1]:1883\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
        // The CONNACK after the head is left for the client.
        let mut rest = Vec::new();
        script.replies.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, [0x20, 2, 0, 0]);
    }

    #[test]
    fn http_refusals_are_typed() {
        let proxy = ProxyConfig::http_connect("h", 3128);
        let error = handshake(
            &proxy,
            &mut Script::new(b"HTTP/1.1 403 Forbidden\r\n\r\n"),
            "b",
            1,
        )
        .unwrap_err();
        assert!(
            matches!(error, ProxyError::HttpStatus { status: 403 }),
            "{error:?}"
        );
        for garbage in [&b"SSH-2.0-OpenSSH\r\n\r\n"[..], b"HTTP/1.1 2000 x\r\n\r\n"] {
            let error = handshake(&proxy, &mut Script::new(garbage), "b", 1).unwrap_err();
            assert!(matches!(error, ProxyError::Malformed), "{error:?}");
        }
        let endless = vec![b'a'; MAX_HTTP_HEAD + 10];
        let error = handshake(&proxy, &mut Script::new(&endless), "b", 1).unwrap_err();
        assert!(matches!(error, ProxyError::Malformed), "{error:?}");
        let error = handshake(&proxy, &mut Script::new(b"HTTP/1.1 200"), "b", 1).unwrap_err();
        assert!(matches!(error, ProxyError::Io(_)), "{error:?}");
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }
}
