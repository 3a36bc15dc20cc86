//! umqtt: a small, predictable MQTT 3.1.1 client.
//!
//! - [`simple::Client`] — blocking, one method per MQTT operation, mirroring MicroPython's
//!   `umqtt.simple` (connect, publish, subscribe, wait_msg, check_msg, ping, last will, TLS).
//! - [`transport`] — TCP, TLS (rustls, sessions resumed), WebSocket, Unix socket, HTTP CONNECT
//!   and SOCKS5 proxies.
//!
//! The protocol itself lives in the sans-IO [`umqtt_core`] crate; this crate moves bytes and
//! time. It does not spawn threads or hide an async runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod outbox;
pub mod robust;
pub mod simple;
pub mod transport;

pub use error::Error;
pub use simple::{Client, ClientConfig, Message};
pub use transport::{TlsConfig, TlsVersion, TransportConfig, TransportError};
pub use umqtt_core::packet::{ConnectReturnCode, PacketId, ProtocolVersion, QoS};
pub use umqtt_core::session::{CloseReason, ProtocolError, UsageError};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
