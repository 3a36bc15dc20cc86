//! What the simulated broker records for tests to read.

use umqtt_core::packet::{ConnectReturnCode, PacketId, QoS};
use umqtt_core::Instant;

/// An application message the broker accepted from a client's PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Client id of the publisher.
    pub client_id: String,
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS of the PUBLISH.
    pub qos: QoS,
    /// Retain flag of the PUBLISH.
    pub retain: bool,
    /// DUP flag of the PUBLISH.
    pub dup: bool,
    /// Packet id of the PUBLISH (QoS 1 and 2).
    pub packet_id: Option<PacketId>,
    /// When the broker processed it.
    pub at: Instant,
}

/// A PUBLISH the broker sent to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS the broker sent it with: min(published, granted).
    pub qos: QoS,
    /// Retain flag: set only for retained messages sent because of a new subscription.
    pub retain: bool,
    /// DUP flag: set on a resend after the session was resumed.
    pub dup: bool,
    /// The broker's packet id (QoS 1 and 2).
    pub packet_id: Option<PacketId>,
    /// When the broker wrote it (not when the client received it).
    pub at: Instant,
}

/// One CONNECT the broker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRecord {
    /// Client id as sent (or as assigned by the broker for an empty one).
    pub client_id: String,
    /// The CONNECT's clean-session flag.
    pub clean_session: bool,
    /// The CONNECT's keepalive, in seconds.
    pub keep_alive: u16,
    /// The CONNECT's user name.
    pub username: Option<String>,
    /// Session present, as answered in CONNACK.
    pub session_present: bool,
    /// Return code, as answered in CONNACK.
    pub code: ConnectReturnCode,
    /// When the broker answered.
    pub at: Instant,
}
