//! The robust MQTT client on a microcontroller: umqtt-core's [`Engine`] (reconnect policies,
//! per-message delivery contracts, kept subscriptions) driven over `embedded-io-async` streams
//! opened by an `embedded-nal-async` stack ([`TcpConnect`], and [`Dns`] for host names), so it
//! runs on embassy-net and the vendors' stacks. `no_std`, no threads, time from the caller.
//!
//! # Allocation
//! Built with [`Client::with_storage`] on [`Fixed`]`<N, B, Q>` storage, the client needs no
//! allocator at all: build the crate with `default-features = false` (no `alloc` feature).
//! The session's and the engine's lists hold `N` entries, their buffers `B` bytes (the
//! largest packet), and what the engine holds — queued messages' topics and payloads, the
//! subscriptions' filters — shares an arena of `Q` bytes (by default `B`). The configuration's
//! strings (client id, credentials, will) are `&'static` ([`Static`]): constants, or a
//! `static` buffer filled at start-up. The engine lowers its limits to what the lists hold
//! (see [`Engine::with_storage`]); the application then hears `OutgoingFull` sooner, receives
//! a message as a [`FixedMessage`] (read through [`Received`]), and must take events as they
//! come (the engine holds input until there is room for what it reports). The driver reads at
//! most what the session has room for, into your buffer (`B` bytes are enough), and writes
//! from a buffer of the session's size, in place.
//!
//! With the `alloc` feature (on by default) there is also `Heap` storage (the default,
//! `Client::new`): the engine and session grow as needed, as on a server, and the
//! configuration's strings are owned.
//!
//! # Shape
//! ```text
//!  application task(s)                     driver (one future, same executor)
//!  ──────────────────                      ──────────────────────────────────
//!  Client::publish / subscribe ──┐         Driver::run:
//!  Client::nudge (link up)     ──┼──► engine ◄── read ready · engine timer · a command woke it
//!  Client::next_event().await ◄──┘         opens / writes / closes what the engine asks
//! ```
//! A [`Client`] holds the engine in a `RefCell`: its commands take `&self`, run at once (they
//! never wait on the network) and wake the driver. The [`Driver`] borrows the client, the
//! network stack and your read buffer, and waits on whichever comes first: bytes to read, the
//! engine's next timer ([`Engine::poll_timeout`]), an open completing, or a command. Every rule
//! (when to reconnect, what to resend, keepalive, deadlines) is the engine's: the driver only
//! moves bytes and tells the time. Both futures must run on one executor (the client is not
//! `Sync`); `embassy_futures::join::join` them, or spawn them as tasks of one executor.
//!
//! ```no_run
//! # async fn firmware<T: embedded_nal_async::TcpConnect, C: umqtt_embedded::Clock>(stack: &T, clock: C) {
//! use umqtt_embedded::{Client, Driver, Server, BatteryAware, EngineConfig, SessionConfig, QoS};
//!
//! let mut session = SessionConfig::default();
//! session.client_id = "alarm-7".into();
//! let client = Client::new(EngineConfig::new(session), BatteryAware::new(), 0x5eed, clock);
//! let servers = [Server::Addr("192.168.1.10:1883".parse().unwrap())];
//! let mut rx = [0u8; 1024];
//! let driver = Driver::new(&client, stack, &servers, &mut rx);
//! let app = async {
//!     client.publish("home/alarm", b"window", QoS::AtLeastOnce, false).unwrap();
//!     loop {
//!         let event = client.next_event().await; // Connected, Delivered, Message(…)…
//!         # let _ = event;
//!     }
//! };
//! embassy_futures::select::select(driver.run(), app).await;
//! # }
//! ```
//!
//! # MQTT 5 is a cargo feature
//! The default `mqtt5` feature compiles MQTT 5 into umqtt-core. A device that speaks 3.1.1
//! only builds with `default-features = false` and saves about 17 KB of flash on a Cortex-M
//! (BENCHMARKS.md); asking such a build for MQTT 5 fails the connection attempt with a
//! configuration error (`UsageError::Mqtt5NotCompiled`), never silently as 3.1.1.
//!
//! # MQTT 5 Server References
//! With [`EngineSettings::follow_server_references`] set (off by default), a broker's 0x9C Use
//! another server / 0x9D Server moved with a Server Reference sends the next attempt there:
//! an IP address is opened directly, a host name resolved through the driver's [`Dns`] (a
//! driver without one fails that attempt with [`TransportError::NoResolver`], and the engine
//! goes back to the configured servers).
//!
//! # What it does not do (yet)
//! No TLS (wrap the stream yourself once a no_std TLS crate fits), no durable outbox, no
//! manual acks beyond [`Client::ack`]. It never panics on network input: malformed bytes and
//! broken rules end the connection with a typed reason in [`Event::Disconnected`].
#![no_std]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core
)]

mod client;
mod driver;
mod error;
mod time;

pub use client::Client;
pub use driver::{Driver, NoDns, Server};
pub use error::TransportError;
pub use time::Clock;
#[cfg(feature = "embassy-time")]
pub use time::EmbassyClock;

pub use embedded_nal_async::{Dns, TcpConnect};
#[cfg(feature = "alloc")]
pub use umqtt_core::message::Message;
pub use umqtt_core::message::{FixedMessage, Received};
pub use umqtt_core::robust::{
    BatteryAware, Deadline, Delivery, DropReason, Engine, EngineConfig, EngineSettings,
    ExponentialBackoff, FailureKind, FixedDelay, MessageId, NoRetry, OutageLimit, Outcome,
    Overflow, ReconnectPolicy, Stats, Unsupported,
};
pub use umqtt_core::session::{SessionConfig, UsageError, Will};
pub use umqtt_core::storage::{DefaultStorage, Fixed, Static, Storage, Strings};
#[cfg(feature = "alloc")]
pub use umqtt_core::storage::{Heap, Owned};
pub use umqtt_core::{Instant, QoS};

/// What happened: the link's life, every message's outcome, messages received. `S` is the
/// client's storage: on [`Fixed`] storage a received message is a
/// [`FixedMessage`] and a filter a
/// [`FixedText`](umqtt_core::storage::FixedText), read the same way ([`Received`]).
pub type Event<S = DefaultStorage> = umqtt_core::robust::Event<TransportError, S>;
