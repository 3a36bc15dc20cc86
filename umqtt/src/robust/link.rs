//! The driver's side of the link: opening transports off the caller's thread, waking a waiting
//! client (nudges, finished opens), and the errors events carry.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use umqtt_core::robust::FailureKind;

use crate::error::Error;
use crate::transport::{
    self, ProxyError, TlsConfig, Transport, TransportConfig, TransportError, WebSocketError,
};

/// A transport error shared by the events that report it: cloneable, typed (the
/// [`Error`] inside), compared by identity.
#[derive(Debug, Clone)]
pub struct LinkFailure(Arc<Error>);

impl LinkFailure {
    /// Wraps an error.
    pub fn new(error: Error) -> Self {
        LinkFailure(Arc::new(error))
    }

    /// The error.
    pub fn error(&self) -> &Error {
        &self.0
    }

    /// The shared error, e.g. to return it from a call.
    pub fn shared(&self) -> Arc<Error> {
        self.0.clone()
    }
}

impl PartialEq for LinkFailure {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LinkFailure {}

impl fmt::Display for LinkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LinkFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Maps a client error to the failure kind a policy sees.
pub fn classify(error: &Error) -> FailureKind {
    match error {
        Error::Transport(TransportError::Resolve { .. } | TransportError::NoAddress { .. }) => {
            FailureKind::Dns
        }
        Error::Transport(TransportError::Connect { .. }) => FailureKind::TcpConnect,
        Error::Transport(TransportError::Timeout { .. }) | Error::ConnectTimeout => {
            FailureKind::Timeout
        }
        Error::Transport(TransportError::Tls(_) | TransportError::TlsIo(_)) => FailureKind::Tls,
        Error::Transport(TransportError::Proxy { source, .. }) => match source {
            ProxyError::Io(e) if is_timeout(e) => FailureKind::Timeout,
            // A proxy that refuses (403, SOCKS "not allowed", bad credentials) may be
            // reconfigured, or the broker may come back behind it: worth retrying.
            _ => FailureKind::TcpConnect,
        },
        Error::Transport(TransportError::Unix { .. }) => FailureKind::TcpConnect,
        Error::Transport(TransportError::WebSocket(error)) => match error {
            WebSocketError::Io(e) if is_timeout(e) => FailureKind::Timeout,
            WebSocketError::Io(_) => FailureKind::ConnectionLost,
            WebSocketError::InvalidRequest => FailureKind::Configuration,
            // Refused upgrade, wrong sub-protocol, garbage: the server broke the protocol.
            _ => FailureKind::Protocol,
        },
        // Unusable local settings (TLS files, server name, a maximum packet size below what
        // the broker sends): retrying cannot help.
        Error::Transport(_) | Error::Usage(_) | Error::PacketTooLarge { .. } => {
            FailureKind::Configuration
        }
        Error::ConnectionRefused(code) => FailureKind::Refused(*code),
        Error::KeepAliveTimeout => FailureKind::KeepAliveExpired,
        Error::Decode(_) | Error::Protocol(_) => FailureKind::Protocol,
        Error::Connect(inner) => classify(inner),
        _ => FailureKind::ConnectionLost,
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

#[derive(Default)]
struct WakeState {
    nudged: bool,
    /// The outcome of the open with this generation.
    opened: Option<(u64, Result<Transport, Error>)>,
}

/// Wakes a client waiting for its next attempt; `Send + Clone`, for a network-status thread.
#[derive(Clone, Default)]
pub struct Nudger(Arc<(Mutex<WakeState>, Condvar)>);

impl fmt::Debug for Nudger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nudger")
    }
}

impl Nudger {
    /// The network is back: try to connect now.
    pub fn nudge(&self) {
        let (state, condvar) = &*self.0;
        state.lock().unwrap_or_else(|e| e.into_inner()).nudged = true;
        condvar.notify_all();
    }

    pub(super) fn take_nudge(&self) -> bool {
        let mut state = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut state.nudged, false)
    }

    /// The finished open of `generation`, if any (older ones are dropped: abandoned opens).
    pub(super) fn take_opened(&self, generation: u64) -> Option<Result<Transport, Error>> {
        let mut state = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        match state.opened.take() {
            Some((g, result)) if g == generation => Some(result),
            _ => None,
        }
    }

    /// Waits until nudged, an open finished, or `timeout`.
    pub(super) fn wait(&self, timeout: Duration) {
        let (state, condvar) = &*self.0;
        let guard = state.lock().unwrap_or_else(|e| e.into_inner());
        if !guard.nudged && guard.opened.is_none() {
            let _ = condvar.wait_timeout(guard, timeout);
        }
    }

    fn opened(&self, generation: u64, result: Result<Transport, Error>) {
        let (state, condvar) = &*self.0;
        state.lock().unwrap_or_else(|e| e.into_inner()).opened = Some((generation, result));
        condvar.notify_all();
    }
}

/// Where to open a transport, and how.
pub(super) struct OpenRequest {
    pub host: String,
    pub port: u16,
    pub tls: Option<TlsConfig>,
    pub transport: TransportConfig,
    pub timeout: Duration,
    /// How long a write may make no progress (see `transport::write_stall`).
    pub write_stall: Duration,
}

/// Opens a transport on a helper thread, so no call of the client waits for DNS, TCP or TLS;
/// the result wakes the client through `nudger`. The engine bounds the whole attempt (this
/// and CONNACK) with one deadline; an open still running then is abandoned (its result, when
/// it comes, is dropped by generation).
pub(super) fn open_in_background(request: OpenRequest, generation: u64, nudger: Nudger) {
    let spawned = std::thread::Builder::new()
        .name("umqtt-connect".into())
        .spawn({
            let nudger = nudger.clone();
            move || nudger.opened(generation, open(&request))
        });
    if let Err(e) = spawned {
        nudger.opened(generation, Err(Error::Io(e)));
    }
}

fn open(request: &OpenRequest) -> Result<Transport, Error> {
    let mut stream = transport::open(
        &request.host,
        request.port,
        request.tls.as_ref(),
        &request.transport,
        request.timeout,
    )?;
    // A write that makes no progress for this long means the peer stopped reading.
    transport::set_write_slice(&mut stream, request.write_stall)?;
    Ok(stream)
}
