//! The sans-IO core of umqtt: the MQTT 3.1.1 and MQTT 5 packet codec, topic rules and the session state
//! machine. No sockets, no clock, no threads — drivers feed it bytes and the time.
//!
//! ```text
//!            bytes from the network                 bytes to write
//! driver ──► Session::handle_read(now, &[u8]) ──►  Session::poll_transmit(now)
//!        ──► Session::handle_timeout(now)     ──►  Session::poll_event(now)
//!        ──► commands: publish / subscribe    ──►  Session::poll_timeout()
//! ```
//!
//! The session keeps its state in a [`storage::Storage`]: growable (`storage::Heap`, the
//! default) or sized up front ([`storage::Fixed`], which never allocates). Without the default
//! `alloc` feature there is no `Heap`: the codec ([`packet`]), the [`topic`] rules, the
//! [`session`] and the robust engine ([`robust`]) are built for fixed storage only, with
//! `&'static` configuration strings ([`storage::Static`]), and nothing needs an allocator.
#![no_std]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core
)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod message;
pub mod packet;
pub mod storage;
pub mod time;
pub mod topic;

pub use packet::{Packet, PacketId, QoS};
pub use time::Instant;
pub mod robust;
pub mod session;
