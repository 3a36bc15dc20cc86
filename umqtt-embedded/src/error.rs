//! The transport errors the driver reports to the engine (carried in its events).

use core::fmt;

use embedded_io_async::ErrorKind;
use umqtt_core::robust::FailureKind;

/// Why the driver could not open a connection, or lost one. `Copy`: it travels in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// The engine asked for a server index the driver has no address for (the
    /// [`EngineSettings::servers`](umqtt_core::robust::EngineSettings::servers) count is larger
    /// than the driver's server list).
    NoSuchServer(usize),
    /// A server is a host name but the driver has no resolver ([`crate::NoDns`]).
    NoResolver,
    /// The resolver could not resolve the host name.
    Dns,
    /// The stack could not open the TCP connection.
    Connect(ErrorKind),
    /// Reading from the connection failed.
    Read(ErrorKind),
    /// Writing to the connection failed.
    Write(ErrorKind),
    /// The broker closed the connection (a read returned end of stream).
    Closed,
    /// A write made no progress for the write bound (the peer stopped reading).
    WriteStalled,
}

impl TransportError {
    /// How a reconnect policy sees this error.
    pub fn kind(self) -> FailureKind {
        match self {
            TransportError::NoSuchServer(_) | TransportError::NoResolver => {
                FailureKind::Configuration
            }
            TransportError::Dns => FailureKind::Dns,
            TransportError::Connect(_) => FailureKind::TcpConnect,
            TransportError::Read(_)
            | TransportError::Write(_)
            | TransportError::Closed
            | TransportError::WriteStalled => FailureKind::ConnectionLost,
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::NoSuchServer(index) => write!(f, "no address for server {index}"),
            TransportError::NoResolver => f.write_str("host name without a resolver"),
            TransportError::Dns => f.write_str("host name did not resolve"),
            TransportError::Connect(kind) => write!(f, "TCP connect failed: {kind:?}"),
            TransportError::Read(kind) => write!(f, "read failed: {kind:?}"),
            TransportError::Write(kind) => write!(f, "write failed: {kind:?}"),
            TransportError::Closed => f.write_str("connection closed by the peer"),
            TransportError::WriteStalled => f.write_str("write made no progress"),
        }
    }
}

impl core::error::Error for TransportError {}
