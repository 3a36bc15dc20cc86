//! Async (tokio) drivers for umqtt, over the same sans-IO core as the blocking client: no MQTT
//! or reconnect rule lives here, only sockets, tokio's clock and the hand-off between tasks.
//!
//! - [`robust`]: the reconnecting client. A cloneable [`robust::Handle`] for any number of
//!   tasks (publish, subscribe, nudge, ack, disconnect), one [`robust::Events`] stream for
//!   everything that happens (received messages included), and a driver task that owns the
//!   connection. Per-message delivery contracts and reconnect policies are the engine's
//!   ([`umqtt_core::robust`]).
//! - [`simple`]: one method per MQTT operation over the core's session, no reconnecting, no
//!   background task (the async twin of `umqtt::simple::Client`).
//! - [`connect`]: how the driver opens a connection: TCP, TLS (tokio-rustls, with umqtt's
//!   [`TlsConfig`], sessions resumed across reconnects), WebSocket (tokio-tungstenite), a Unix
//!   socket, through an HTTP CONNECT or SOCKS5 proxy (umqtt's `TransportConfig`), or any
//!   `AsyncRead + AsyncWrite` stream a closure opens.
//!
//! ```text
//!  tasks ── Handle::publish / subscribe / nudge / ack ──┐        (each locks the engine
//!                                                       ▼         briefly, never across .await)
//!                                              Engine (umqtt-core) ◄── driver task: connects,
//!  task ◄── Events::next (messages, outcomes, link) ───┘               reads, writes, timers
//! ```
//!
//! Time is tokio's clock ([`tokio::time::Instant`]) converted to the core's milliseconds, so a
//! test on tokio's paused clock (`#[tokio::test(start_paused = true)]`) replays hours of
//! outages in milliseconds, deterministically.
//!
//! What this crate does not do (yet): a durable outbox (the blocking client's redb outbox is
//! not wired to the async driver), MQTT 5.
//!
//! # Notes for the core
//! The driver needs nothing the engine does not give, with one exception that shapes the
//! API: outcomes come out of the engine's single event queue, in order with everything else,
//! so a [`robust::Receipt`] resolves only when the event stream passes its outcome (or when
//! the stream was dropped). An `Engine::poll_outcome` (outcomes apart from other events)
//! would let receipts resolve whatever the application does with the stream; until then the
//! driver does not keep a second, unbounded queue of its own.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod connect;
mod error;
pub mod robust;
pub mod simple;
mod time;

pub use error::{Error, OutboxError};
pub use umqtt::{ClientConfig, Message, QoS, TlsConfig, UsageError};
