//! The MQTT 3.1.1 control packets (section 3 of the specification) and their wire format.
//!
//! [`decode`] turns bytes into a [`Packet`] that borrows its strings and payloads from the input;
//! [`Packet::encode`] writes a packet into a caller-provided buffer. Neither allocates.

mod decode;
mod encode;

#[cfg(feature = "alloc")]
pub(crate) use decode::packet_size;
pub use decode::{decode, DecodeError, Decoded};
#[cfg(feature = "alloc")]
pub(crate) use encode::encode_publish_header_validated_topic;
pub use encode::{encode_publish_header, EncodeError};

use core::num::NonZeroU16;

/// Largest value the remaining-length field can express (four 7-bit groups) `[MQTT-2.2.3]`.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Largest payload a PUBLISH on `topic` at `qos` can carry: the remaining length
/// (`[MQTT-2.2.3]`, at most [`MAX_REMAINING_LENGTH`]) also holds the topic's two-byte length
/// prefix, the topic and, at QoS 1/2, the packet id `[MQTT-3.3.2]`. Lets a caller refuse a
/// too-large payload before reading or copying it.
pub const fn max_payload_len(topic: &str, qos: QoS) -> usize {
    let id_len = if matches!(qos, QoS::AtMostOnce) { 0 } else { 2 };
    MAX_REMAINING_LENGTH.saturating_sub(2 + topic.len() + id_len)
}

/// The delivery guarantee of a message `[MQTT-4.3]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// QoS 0: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: acknowledged by PUBACK, may arrive more than once.
    AtLeastOnce = 1,
    /// QoS 2: four-step handshake, arrives exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a two-bit wire value, or `None` for 3.
    pub const fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// A non-zero packet identifier `[MQTT-2.3.1-1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// The packet id `value`, or `None` for 0, which MQTT reserves.
    pub const fn new(value: u16) -> Option<PacketId> {
        match NonZeroU16::new(value) {
            Some(v) => Some(PacketId(v)),
            None => None,
        }
    }

    /// The numeric value, 1..=65535.
    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

impl core::fmt::Display for PacketId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

/// The kind of a control packet: the high nibble of the first byte `[MQTT-2.2.1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the names are the specification's
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
}

impl PacketType {
    /// The packet type for a high nibble, or `None` for the reserved values 0 and 15.
    pub const fn from_nibble(nibble: u8) -> Option<PacketType> {
        Some(match nibble {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => PacketType::Publish,
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            _ => return None,
        })
    }

    /// The fixed flags (low nibble) this type must carry; PUBLISH has none fixed.
    /// PUBREL, SUBSCRIBE and UNSUBSCRIBE use `0010` `[MQTT-2.2.2-1]`.
    pub(crate) const fn fixed_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }
}

/// The protocol version announced in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProtocolVersion {
    /// MQTT 3.1 (protocol name `MQIsdp`, level 3).
    V31,
    /// MQTT 3.1.1 (protocol name `MQTT`, level 4).
    #[default]
    V311,
}

/// The last will: published by the broker if the client's connection ends without DISCONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastWill<'a> {
    /// Topic name the will is published on.
    pub topic: &'a str,
    /// Will payload.
    pub payload: &'a [u8],
    /// QoS the broker publishes the will with.
    pub qos: QoS,
    /// Whether the will is retained.
    pub retain: bool,
}

/// CONNECT: the first packet of every connection `[MQTT-3.1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// Protocol name and level.
    pub protocol: ProtocolVersion,
    /// Client identifier; may be empty only with `clean_session` `[MQTT-3.1.3-7]`.
    pub client_id: &'a str,
    /// Keepalive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// Discard any previous session and start a new one.
    pub clean_session: bool,
    /// Optional last will.
    pub will: Option<LastWill<'a>>,
    /// Optional user name.
    pub username: Option<&'a str>,
    /// Optional password (binary data); requires a user name in 3.1.1 `[MQTT-3.1.2-22]`.
    pub password: Option<&'a [u8]>,
}

/// The CONNACK return code `[MQTT-3.2.2.3]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectReturnCode {
    /// 0: connection accepted.
    Accepted = 0,
    /// 1: the broker does not support the requested protocol level.
    UnacceptableProtocolVersion = 1,
    /// 2: the client identifier is not allowed.
    IdentifierRejected = 2,
    /// 3: the MQTT service is unavailable.
    ServerUnavailable = 3,
    /// 4: malformed user name or password.
    BadUserNameOrPassword = 4,
    /// 5: the client is not authorized to connect.
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    /// The code for a wire value, or `None` for the reserved 6..=255.
    pub const fn from_u8(value: u8) -> Option<ConnectReturnCode> {
        Some(match value {
            0 => ConnectReturnCode::Accepted,
            1 => ConnectReturnCode::UnacceptableProtocolVersion,
            2 => ConnectReturnCode::IdentifierRejected,
            3 => ConnectReturnCode::ServerUnavailable,
            4 => ConnectReturnCode::BadUserNameOrPassword,
            5 => ConnectReturnCode::NotAuthorized,
            _ => return None,
        })
    }
}

impl core::fmt::Display for ConnectReturnCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ConnectReturnCode::Accepted => "connection accepted",
            ConnectReturnCode::UnacceptableProtocolVersion => "unacceptable protocol version",
            ConnectReturnCode::IdentifierRejected => "client identifier rejected",
            ConnectReturnCode::ServerUnavailable => "server unavailable",
            ConnectReturnCode::BadUserNameOrPassword => "bad user name or password",
            ConnectReturnCode::NotAuthorized => "not authorized",
        })
    }
}

/// CONNACK `[MQTT-3.2]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    /// The broker resumed a stored session.
    pub session_present: bool,
    /// Accepted or why not.
    pub code: ConnectReturnCode,
}

/// PUBLISH `[MQTT-3.3]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    /// Redelivery of an earlier attempt; always false at QoS 0 `[MQTT-3.3.1-2]`.
    pub dup: bool,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name (no wildcards).
    pub topic: &'a str,
    /// Present exactly when `qos` is 1 or 2 `[MQTT-2.3.1-5]`.
    pub packet_id: Option<PacketId>,
    /// Application payload, possibly empty.
    pub payload: &'a [u8],
}

/// A list of topic filters with requested QoS, as carried by SUBSCRIBE.
///
/// Built from a slice when encoding; when decoding it borrows the validated payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeTopics<'a> {
    /// Filters given by the caller.
    List(&'a [(&'a str, QoS)]),
    /// The validated payload of a decoded SUBSCRIBE.
    Encoded(&'a [u8]),
}

impl<'a> SubscribeTopics<'a> {
    /// The filters in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, QoS)> + 'a {
        let (list, encoded): (&'a [(&'a str, QoS)], &'a [u8]) = match *self {
            SubscribeTopics::List(list) => (list, &[]),
            SubscribeTopics::Encoded(bytes) => (&[], bytes),
        };
        list.iter().copied().chain(
            decode::EncodedStrings::new(encoded, true)
                .map(|(s, q)| (s, QoS::from_u8(q).unwrap_or(QoS::AtMostOnce))),
        )
    }
}

/// A list of topic filters, as carried by UNSUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeTopics<'a> {
    /// Filters given by the caller.
    List(&'a [&'a str]),
    /// The validated payload of a decoded UNSUBSCRIBE.
    Encoded(&'a [u8]),
}

impl<'a> UnsubscribeTopics<'a> {
    /// The filters in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (list, encoded): (&'a [&'a str], &'a [u8]) = match *self {
            UnsubscribeTopics::List(list) => (list, &[]),
            UnsubscribeTopics::Encoded(bytes) => (&[], bytes),
        };
        list.iter()
            .copied()
            .chain(decode::EncodedStrings::new(encoded, false).map(|(s, _)| s))
    }
}

/// SUBSCRIBE `[MQTT-3.8]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// Packet id echoed by SUBACK.
    pub packet_id: PacketId,
    /// At least one filter `[MQTT-3.8.3-3]`.
    pub topics: SubscribeTopics<'a>,
}

/// One entry of a SUBACK `[MQTT-3.9.3]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscribeReturnCode {
    /// Granted at this maximum QoS.
    Success(QoS),
    /// 0x80: the subscription was refused.
    Failure,
}

impl SubscribeReturnCode {
    /// The code for a wire byte, or `None` for reserved values.
    pub const fn from_u8(value: u8) -> Option<SubscribeReturnCode> {
        match value {
            0x80 => Some(SubscribeReturnCode::Failure),
            v => match QoS::from_u8(v) {
                Some(qos) => Some(SubscribeReturnCode::Success(qos)),
                None => None,
            },
        }
    }

    /// The wire byte.
    pub const fn to_u8(self) -> u8 {
        match self {
            SubscribeReturnCode::Success(qos) => qos as u8,
            SubscribeReturnCode::Failure => 0x80,
        }
    }
}

/// SUBACK `[MQTT-3.9]`: one return code per filter, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubAck<'a> {
    /// The SUBSCRIBE's packet id.
    pub packet_id: PacketId,
    /// Raw return codes, each validated to be 0, 1, 2 or 0x80.
    pub return_codes: &'a [u8],
}

impl<'a> SubAck<'a> {
    /// The return codes in order.
    pub fn codes(&self) -> impl Iterator<Item = SubscribeReturnCode> + 'a {
        self.return_codes
            .iter()
            .map(|&b| SubscribeReturnCode::from_u8(b).unwrap_or(SubscribeReturnCode::Failure))
    }
}

/// UNSUBSCRIBE `[MQTT-3.10]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    /// Packet id echoed by UNSUBACK.
    pub packet_id: PacketId,
    /// At least one filter `[MQTT-3.10.3-2]`.
    pub topics: UnsubscribeTopics<'a>,
}

/// Every MQTT 3.1.1 control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the packet of the same name
pub enum Packet<'a> {
    Connect(Connect<'a>),
    ConnAck(ConnAck),
    Publish(Publish<'a>),
    PubAck(PacketId),
    PubRec(PacketId),
    PubRel(PacketId),
    PubComp(PacketId),
    Subscribe(Subscribe<'a>),
    SubAck(SubAck<'a>),
    Unsubscribe(Unsubscribe<'a>),
    UnsubAck(PacketId),
    PingReq,
    PingResp,
    Disconnect,
}

impl Packet<'_> {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect => PacketType::Disconnect,
        }
    }
}
