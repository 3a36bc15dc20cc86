//! Client packets copied out of the broker's read buffer.

use umqtt_core::packet::{Packet, PacketId, PacketType, QoS};

use super::session::Message;

/// The fields of a CONNECT the broker acts on.
pub(super) struct ConnectRequest {
    pub(super) client_id: String,
    pub(super) keep_alive: u16,
    pub(super) clean_session: bool,
    pub(super) username: Option<String>,
    pub(super) will: Option<Message>,
}

/// A decoded packet, copied out of the read buffer.
pub(super) enum Incoming {
    Connect(ConnectRequest),
    Publish {
        message: Message,
        dup: bool,
        packet_id: Option<PacketId>,
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
    Disconnect,
    /// A packet only a server may send.
    ServerOnly(PacketType),
}

impl Incoming {
    pub(super) fn from_packet(packet: &Packet<'_>) -> Incoming {
        match packet {
            Packet::Connect(c) => Incoming::Connect(ConnectRequest {
                client_id: c.client_id.to_owned(),
                keep_alive: c.keep_alive,
                clean_session: c.clean_session,
                username: c.username.map(str::to_owned),
                will: c.will.map(|w| Message {
                    topic: w.topic.to_owned(),
                    payload: w.payload.to_vec(),
                    qos: w.qos,
                    retain: w.retain,
                }),
            }),
            Packet::Publish(p) => Incoming::Publish {
                message: Message {
                    topic: p.topic.to_owned(),
                    payload: p.payload.to_vec(),
                    qos: p.qos,
                    retain: p.retain,
                },
                dup: p.dup,
                packet_id: p.packet_id,
            },
            Packet::PubAck(umqtt_core::packet::Ack { packet_id: id, .. }) => Incoming::PubAck(*id),
            Packet::PubRec(umqtt_core::packet::Ack { packet_id: id, .. }) => Incoming::PubRec(*id),
            Packet::PubRel(umqtt_core::packet::Ack { packet_id: id, .. }) => Incoming::PubRel(*id),
            Packet::PubComp(umqtt_core::packet::Ack { packet_id: id, .. }) => {
                Incoming::PubComp(*id)
            }
            Packet::Subscribe(s) => Incoming::Subscribe {
                packet_id: s.packet_id,
                filters: s.topics.iter().map(|(f, q)| (f.to_owned(), q)).collect(),
            },
            Packet::Unsubscribe(u) => Incoming::Unsubscribe {
                packet_id: u.packet_id,
                filters: u.topics.iter().map(str::to_owned).collect(),
            },
            Packet::PingReq => Incoming::PingReq,
            Packet::Disconnect(_) => Incoming::Disconnect,
            other => Incoming::ServerOnly(other.packet_type()),
        }
    }
}
