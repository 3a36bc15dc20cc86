//! MQTT over WebSocket (MQTT 3.1.1 §6): tungstenite's framing over a TCP or TLS
//! [`Transport`], presented as a byte stream.
//!
//! MQTT packets travel in binary frames [MQTT-6.0.0-1]; a packet may span frames and a frame
//! may hold several packets [MQTT-6.0.0-2], so reads hand out the frames' bytes in order,
//! whatever their boundaries, and each write becomes one frame.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::Duration;

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::WebSocketConfig as FramingConfig;
use tungstenite::{Message, WebSocket};

use super::config::WebSocketConfig;
use super::stream::{Stream, Transport};

/// The WebSocket sub-protocol MQTT registers [MQTT-6.0.0-3].
pub const SUBPROTOCOL: &str = "mqtt";

/// Why the WebSocket upgrade failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebSocketError {
    /// The server answered the upgrade with this HTTP status instead of 101 (e.g. 404 for a
    /// wrong path, 401 for a missing token).
    Rejected {
        /// The status code.
        status: u16,
    },
    /// The server did not select the `mqtt` sub-protocol [MQTT-6.0.0-3].
    Subprotocol {
        /// What it answered in `Sec-WebSocket-Protocol`, if anything.
        answered: Option<String>,
    },
    /// A header given in [`WebSocketConfig::headers`], or the host or path, cannot be sent in
    /// an HTTP request.
    InvalidRequest,
    /// The connection failed, timed out or broke during the upgrade.
    Io(io::Error),
    /// The server's answer is not a valid WebSocket upgrade.
    Handshake(Box<tungstenite::Error>),
}

impl fmt::Display for WebSocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebSocketError::Rejected { status } => {
                write!(
                    f,
                    "the server refused the WebSocket upgrade with status {status}"
                )
            }
            WebSocketError::Subprotocol { answered: None } => {
                f.write_str("the server did not accept the WebSocket sub-protocol \"mqtt\"")
            }
            WebSocketError::Subprotocol {
                answered: Some(answered),
            } => write!(
                f,
                "the server chose the WebSocket sub-protocol {answered:?} instead of \"mqtt\""
            ),
            WebSocketError::InvalidRequest => {
                f.write_str("invalid WebSocket request (host, path or header)")
            }
            WebSocketError::Io(error) => {
                write!(f, "connection failed during the WebSocket upgrade: {error}")
            }
            WebSocketError::Handshake(error) => {
                write!(f, "invalid WebSocket upgrade answer: {error}")
            }
        }
    }
}

impl std::error::Error for WebSocketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WebSocketError::Io(error) => Some(error),
            WebSocketError::Handshake(error) => Some(error),
            _ => None,
        }
    }
}

/// A WebSocket connection presented as a byte stream (see the module docs).
pub struct WebSocketStream {
    socket: WebSocket<Transport>,
    /// Bytes of the last binary frame not yet read.
    pending: Vec<u8>,
    pending_start: usize,
}

impl fmt::Debug for WebSocketStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("inner", self.socket.get_ref())
            .field("pending", &(self.pending.len() - self.pending_start))
            .finish()
    }
}

impl WebSocketStream {
    /// The TCP or TLS transport underneath.
    pub fn get_ref(&self) -> &Transport {
        self.socket.get_ref()
    }
}

/// Runs the upgrade on `inner` (whose timeouts bound it) to `host:port` with `config`.
pub(crate) fn upgrade(
    inner: Transport,
    host: &str,
    port: u16,
    config: &WebSocketConfig,
    timeout: Duration,
) -> Result<WebSocketStream, WebSocketError> {
    let mut inner = inner;
    inner
        .set_read_timeout(Some(timeout))
        .and_then(|()| inner.set_write_timeout(Some(timeout)))
        .map_err(WebSocketError::Io)?;
    let request = client_request(host, port, inner.is_tls(), config)?;
    let (socket, response) =
        match tungstenite::client::client_with_config(request, inner, Some(framing_config())) {
            Ok(done) => done,
            // A socket timeout mid-handshake: the connect timeout has passed.
            Err(HandshakeError::Interrupted(_)) => {
                return Err(WebSocketError::Io(io::ErrorKind::TimedOut.into()))
            }
            Err(HandshakeError::Failure(error)) => return Err(handshake_error(error)),
        };
    check_response(&response)?;
    let mut socket = socket;
    let inner = socket.get_mut();
    inner
        .set_read_timeout(None)
        .and_then(|()| inner.set_write_timeout(None))
        .map_err(WebSocketError::Io)?;
    Ok(WebSocketStream {
        socket,
        pending: Vec::new(),
        pending_start: 0,
    })
}

/// The upgrade request for `host:port` (`wss` when `tls`): the path, the `mqtt`
/// sub-protocol, the configured headers. Shared with the async driver (umqtt-tokio), which
/// runs the same handshake over its own streams; not a stable API.
#[doc(hidden)]
pub fn client_request(
    host: &str,
    port: u16,
    tls: bool,
    config: &WebSocketConfig,
) -> Result<tungstenite::handshake::client::Request, WebSocketError> {
    let scheme = if tls { "wss" } else { "ws" };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let url = format!("{scheme}://{authority}{}", config.path);
    let mut request = url
        .into_client_request()
        .map_err(|_| WebSocketError::InvalidRequest)?;
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    for (name, value) in &config.headers {
        let name =
            HeaderName::try_from(name.as_str()).map_err(|_| WebSocketError::InvalidRequest)?;
        let value =
            HeaderValue::try_from(value.as_str()).map_err(|_| WebSocketError::InvalidRequest)?;
        headers.append(name, value);
    }
    Ok(request)
}

/// Checks the server's answer selected `mqtt` [MQTT-6.0.0-3] (tungstenite checks only that
/// an answered protocol is one we asked for). Shared with the async driver; not a stable API.
#[doc(hidden)]
pub fn check_response(
    response: &tungstenite::handshake::client::Response,
) -> Result<(), WebSocketError> {
    let answered = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    if answered.as_deref() != Some(SUBPROTOCOL) {
        return Err(WebSocketError::Subprotocol { answered });
    }
    Ok(())
}

/// The typed error for a failed upgrade. Shared with the async driver; not a stable API.
#[doc(hidden)]
pub fn handshake_error(error: tungstenite::Error) -> WebSocketError {
    match error {
        tungstenite::Error::Http(response) => WebSocketError::Rejected {
            status: response.status().as_u16(),
        },
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
        ) => WebSocketError::Subprotocol { answered: None },
        tungstenite::Error::Io(error) if is_timeout(&error) => {
            WebSocketError::Io(io::ErrorKind::TimedOut.into())
        }
        tungstenite::Error::Io(error) => WebSocketError::Io(error),
        tungstenite::Error::Url(_) | tungstenite::Error::HttpFormat(_) => {
            WebSocketError::InvalidRequest
        }
        other => WebSocketError::Handshake(Box::new(other)),
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// MQTT's own limits apply to packets; frames are only bounded so that a hostile server
/// cannot make us buffer more than the largest MQTT packet (256 MiB) plus framing.
#[doc(hidden)]
pub fn framing_config() -> FramingConfig {
    FramingConfig::default()
        .max_message_size(Some(256 * 1024 * 1024 + 16))
        .max_frame_size(Some(256 * 1024 * 1024 + 16))
}

/// A WebSocket error as the I/O error of a byte stream (shared with the async driver).
#[doc(hidden)]
pub fn to_io(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(error) => error,
        // The close handshake is the end of the byte stream, not an error.
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::ErrorKind::UnexpectedEof.into()
        }
        // The TCP connection ended without a close frame: a lost link, as for plain TCP.
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => io::Error::new(
            io::ErrorKind::ConnectionReset,
            "the WebSocket connection ended without a close frame",
        ),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl Read for WebSocketStream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pending_start < self.pending.len() {
                let available = &self.pending[self.pending_start..];
                let n = available.len().min(buffer.len());
                buffer[..n].copy_from_slice(&available[..n]);
                self.pending_start += n;
                return Ok(n);
            }
            match self.socket.read() {
                Ok(Message::Binary(bytes)) => {
                    self.pending.clear();
                    self.pending.extend_from_slice(&bytes);
                    self.pending_start = 0;
                }
                // [MQTT-6.0.0-1]: any other data frame closes the connection.
                Ok(Message::Text(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket text frame: MQTT travels in binary frames [MQTT-6.0.0-1]",
                    ))
                }
                // tungstenite answers pings itself (flushed with the next read or write).
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => return Ok(0),
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(0)
                }
                Err(error) => return Err(to_io(error)),
            }
        }
    }
}

impl Write for WebSocketStream {
    /// Takes all of `buffer` as one binary frame. The frame is queued even when the socket
    /// cannot take it yet ([`Write::flush`] then finishes it), so a `WouldBlock` from the
    /// socket after the frame was queued still reports the bytes as written.
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        if buffer.is_empty() {
            return Ok(0);
        }
        match self.socket.write(Message::binary(buffer.to_vec())) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(error)) if is_timeout(&error) => {}
            Err(error) => return Err(to_io(error)),
        }
        Ok(buffer.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush().map_err(to_io)
    }
}

impl Stream for WebSocketStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.get_mut().set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.get_mut().set_write_timeout(timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        self.socket.get_mut().set_nonblocking(nonblocking)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        // A close frame is a courtesy, as TLS's close_notify: the socket closes regardless.
        let _ = self.socket.close(None);
        let _ = self.socket.flush();
        self.socket.get_mut().shutdown()
    }
}
