//! Client packets copied out of the broker's read buffer.

use umqtt_core::packet::{Packet, PacketId, PacketType, ProtocolVersion, QoS, ReasonCode};
use umqtt_core::Instant;

use super::session::{after_seconds, Message};

/// The fields of a CONNECT the broker acts on.
pub(super) struct ConnectRequest {
    pub(super) protocol: ProtocolVersion,
    pub(super) client_id: String,
    pub(super) keep_alive: u16,
    pub(super) clean_session: bool,
    pub(super) username: Option<String>,
    pub(super) will: Option<Message>,
    /// The will's Message Expiry Interval (MQTT 5): it runs from when the will is published.
    pub(super) will_expiry: Option<u32>,
    /// MQTT 5 Session Expiry Interval (absent: 0).
    pub(super) session_expiry: Option<u32>,
    /// MQTT 5 Receive Maximum of the client.
    pub(super) receive_maximum: Option<u16>,
    /// MQTT 5 Maximum Packet Size of the client.
    pub(super) max_packet_size: Option<u32>,
}

/// A decoded packet, copied out of the read buffer.
pub(super) enum Incoming {
    Connect(ConnectRequest),
    Publish {
        message: Message,
        dup: bool,
        packet_id: Option<PacketId>,
        /// MQTT 5 Topic Alias.
        topic_alias: Option<u16>,
    },
    PubAck(PacketId),
    PubRec(PacketId),
    PubRel(PacketId),
    PubComp(PacketId),
    Subscribe {
        packet_id: PacketId,
        filters: Vec<(String, QoS)>,
    },
    Unsubscribe {
        packet_id: PacketId,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect {
        reason_code: ReasonCode,
        /// MQTT 5: a new Session Expiry Interval.
        session_expiry: Option<u32>,
    },
    /// MQTT 5 AUTH (the simulated broker has no enhanced authentication).
    Auth,
    /// A packet only a server may send.
    ServerOnly(PacketType),
}

impl Incoming {
    /// Copies `packet`, received at `now`, out of the read buffer.
    pub(super) fn from_packet(packet: &Packet<'_>, now: Instant) -> Incoming {
        match packet {
            Packet::Connect(c) => Incoming::Connect(ConnectRequest {
                protocol: c.protocol,
                client_id: c.client_id.to_owned(),
                keep_alive: c.keep_alive,
                clean_session: c.clean_session,
                username: c.username.map(str::to_owned),
                will: c.will.map(|w| Message {
                    topic: w.topic.to_owned(),
                    payload: w.payload.to_vec(),
                    qos: w.qos,
                    retain: w.retain,
                    expires_at: None,
                }),
                will_expiry: c.will.and_then(|w| w.properties.message_expiry_interval()),
                session_expiry: c.properties.session_expiry_interval(),
                receive_maximum: c.properties.receive_maximum(),
                max_packet_size: c.properties.maximum_packet_size(),
            }),
            Packet::Publish(p) => Incoming::Publish {
                message: Message {
                    topic: p.topic.to_owned(),
                    payload: p.payload.to_vec(),
                    qos: p.qos,
                    retain: p.retain,
                    expires_at: p
                        .properties
                        .message_expiry_interval()
                        .map(|interval| after_seconds(now, interval)),
                },
                dup: p.dup,
                packet_id: p.packet_id,
                topic_alias: p.properties.topic_alias(),
            },
            Packet::PubAck(ack) => Incoming::PubAck(ack.packet_id),
            Packet::PubRec(ack) => Incoming::PubRec(ack.packet_id),
            Packet::PubRel(ack) => Incoming::PubRel(ack.packet_id),
            Packet::PubComp(ack) => Incoming::PubComp(ack.packet_id),
            Packet::Subscribe(s) => Incoming::Subscribe {
                packet_id: s.packet_id,
                filters: s.topics.iter().map(|(f, q)| (f.to_owned(), q)).collect(),
            },
            Packet::Unsubscribe(u) => Incoming::Unsubscribe {
                packet_id: u.packet_id,
                filters: u.topics.iter().map(str::to_owned).collect(),
            },
            Packet::PingReq => Incoming::PingReq,
            Packet::Disconnect(d) => Incoming::Disconnect {
                reason_code: d.reason_code,
                session_expiry: d.properties.session_expiry_interval(),
            },
            Packet::Auth(_) => Incoming::Auth,
            other => Incoming::ServerOnly(other.packet_type()),
        }
    }
}
