//! Test rig for umqtt's integration tests; not published.
//!
//! - [`broker::Mosquitto`] starts a real mosquitto on free loopback ports in
//!   a temporary directory (optionally with persistence, a password file, a
//!   TLS listener, client-certificate checks), can stop, kill and restart it
//!   on the same port, and exposes its `log_type all` log.
//! - [`certs::TestCerts`] generates a CA, server and client certificates and
//!   an unrelated CA as PEM files.
//! - [`raw`] builds and reads a few MQTT 3.1.1 packets byte by byte,
//!   independently of the codec under test.
//! - [`proxy::FaultProxy`] is a TCP proxy in front of a broker whose faults
//!   can be switched at run time: refuse connections, black-hole them, cut
//!   them with FIN or reset them with RST, add latency, split data into
//!   tiny pieces.
//! - [`tunnel`]: a SOCKS5 / HTTP CONNECT proxy, a WebSocket-to-TCP bridge and a recording
//!   TLS terminator to put in front of a broker, each counting the tunnels it opened.
//! - [`alloc_count::CountingAllocator`] counts allocations per thread.
//! - [`sim::SimNet`] is a deterministic network of simulated MQTT 3.1.1 and
//!   MQTT 5 brokers ([`sim::SimBroker`]) on a virtual clock, for sans-IO clients:
//!   no sockets, no threads, faults scripted at virtual times.
//!
//! ```no_run
//! use std::io::Write;
//! use std::net::TcpStream;
//! use umqtt_testkit::{broker::Mosquitto, certs::TestCerts, raw};
//!
//! let certs = TestCerts::generate();
//! let broker = Mosquitto::builder().tls(&certs).persistence(true).start();
//! let mut stream = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
//! stream.write_all(&raw::connect("t1", 60, true)).unwrap();
//! let (first_byte, _) = raw::read_packet(&mut stream).unwrap();
//! assert_eq!(raw::packet_type(first_byte), 2); // CONNACK
//! ```
//!
//! Mosquitto must be installed (`apt-get install -y mosquitto`): starting a
//! broker without it panics, so that integration tests fail instead of
//! silently skipping. Everything here panics on failure, as a test should.

pub mod alloc_count;
mod base64;
pub mod broker;
pub mod certs;
pub mod proxy;
pub mod raw;
#[cfg(feature = "tokio")]
pub mod sim_tokio;
pub mod tunnel;
/// The simulated broker and network on a virtual clock (the `umqtt-sim` crate).
pub use umqtt_sim as sim;
