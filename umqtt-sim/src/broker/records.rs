//! What the simulated broker records for tests to read.

use umqtt_core::packet::{ConnectReturnCode, PacketId, ProtocolVersion, QoS, ReasonCode};
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
    /// The MQTT 5 Topic Alias it carried (the topic above is the resolved one).
    pub topic_alias: Option<u16>,
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
    /// The Message Expiry Interval it carried (MQTT 5 only): what the publisher set, minus
    /// the whole seconds it waited in the broker, rounded up.
    pub message_expiry_interval: Option<u32>,
    /// When the broker wrote it (not when the client received it).
    pub at: Instant,
}

/// One CONNECT the broker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRecord {
    /// Protocol version of the CONNECT.
    pub protocol: ProtocolVersion,
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
    /// Return code, as answered in CONNACK (an MQTT 5 CONNACK carries
    /// [`ConnectReturnCode::to_reason_code`] of it).
    pub code: ConnectReturnCode,
    /// The Session Expiry Interval the session got, in seconds: MQTT 5 as asked (or as capped
    /// by [`SimBroker::set_max_session_expiry`](super::SimBroker::set_max_session_expiry));
    /// 3.1.1: 0 for a clean session, `u32::MAX` (never) otherwise.
    pub session_expiry_interval: u32,
    /// When the broker answered.
    pub at: Instant,
}

/// A PUBLISH the broker refused (see [`SimBroker::refuse_publish`](super::SimBroker::refuse_publish)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// Client id of the publisher.
    pub client_id: String,
    /// Topic name.
    pub topic: String,
    /// Packet id of the PUBLISH (QoS 1 and 2).
    pub packet_id: Option<PacketId>,
    /// The reason code: sent in PUBACK / PUBREC to an MQTT 5 client; a 3.1.1 client gets a
    /// plain acknowledgement (it cannot carry one) and the message is dropped.
    pub reason_code: ReasonCode,
    /// When the broker processed it.
    pub at: Instant,
}
