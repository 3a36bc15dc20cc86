//! The fault scenarios of `mosquitto.rs` (broker restart, link cut, black hole, session lost,
//! every QoS 1 message counted) with the session on fixed storage: 16 list entries (14
//! messages in the session), 512-byte buffers, so the driver reads at most what the session's
//! receive buffer has room for and decoding waits for its answers to be written.

mod support;

/// The session's lists and buffers sized up front.
type SessionStorage = umqtt_embedded::Fixed<16, 512>;

include!("support/scenarios.rs");
