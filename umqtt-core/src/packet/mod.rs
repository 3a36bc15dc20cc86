//! The MQTT 3.1.1 and MQTT 5 control packets (section 3 of each specification) and their wire
//! format: one set of types for both versions.
//!
//! [`decode`] (3.1.1) and [`decode_with`] (either version) turn bytes into a [`Packet`] that
//! borrows its strings, payloads and properties from the input; [`Packet::encode`] and
//! [`Packet::encode_with`] write a packet into a caller-provided buffer. Neither allocates.
//!
//! The MQTT 5 parts — [`Properties`], [`ReasonCode`]s, [`SubscriptionOptions`], the AUTH
//! packet — are optional fields of the same types: a 3.1.1 packet has [`Properties::EMPTY`] and
//! [`ReasonCode::Success`], and encoding anything else as 3.1.1 is refused
//! ([`EncodeError::RequiresMqtt5`]) rather than silently dropped.

mod decode;
mod encode;
mod properties;
mod reason;

pub(crate) use decode::packet_size;
pub use decode::{decode, decode_with, DecodeError, Decoded};
pub(crate) use decode::{decode_from_server, FromServerError};
pub(crate) use encode::{
    encode_packet_into, encode_publish_header_validated_topic, encoded_len, Encode,
};

/// Appends the wire bytes of PUBLISH properties (without the length prefix) to `out`:
/// decoded ones as they came, a caller's list encoded (nothing if it is not valid for PUBLISH).
#[cfg(feature = "alloc")]
pub(crate) fn append_publish_properties(
    properties: &Properties<'_>,
    out: &mut alloc::vec::Vec<u8>,
) {
    match properties {
        Properties::Encoded(bytes) => out.extend_from_slice(bytes),
        // Without MQTT 5 no message carries a list (the encoder refuses it in 3.1.1).
        Properties::List(_) if !cfg!(feature = "mqtt5") || properties.is_empty() => {}
        Properties::List(_) => {
            if let Ok(bytes) = properties.encode_for(PacketType::Publish, false) {
                out.extend_from_slice(&bytes);
            }
        }
    }
}

/// The size of a PUBLISH's MQTT 5 property block (length prefix included), validated.
#[inline]
pub(crate) fn publish_properties_len(properties: &Properties<'_>) -> Result<usize, EncodeError> {
    properties.encoded_len(properties::context(PacketType::Publish))
}
pub use encode::{encode_publish_header, encode_publish_header_with, EncodeError};
pub(crate) use properties::{checked_property_len, write_property};
pub(crate) use properties::{shorten_message_expiry, with_message_expiry};
pub use properties::{
    Properties, Property, PropertyId, PropertyIter, PropertyList, MAX_VARIABLE_BYTE_INTEGER,
};
pub use reason::ReasonCode;

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
    /// MQTT 5 only; reserved in 3.1.1.
    Auth = 15,
}

impl PacketType {
    /// The packet type for a high nibble, or `None` for the reserved value 0. (15 is AUTH,
    /// which only MQTT 5 defines; a 3.1.1 decoder rejects it as reserved.)
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
            15 => PacketType::Auth,
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
    /// MQTT 5 (protocol name `MQTT`, level 5): properties, reason codes, AUTH.
    V5,
}

impl ProtocolVersion {
    /// Whether this is MQTT 5.
    pub const fn is_v5(self) -> bool {
        matches!(self, ProtocolVersion::V5)
    }

    /// Whether this build can speak this version: always, except MQTT 5 without the `mqtt5`
    /// cargo feature.
    pub const fn is_supported(self) -> bool {
        cfg!(feature = "mqtt5") || !self.is_v5()
    }

    /// Whether packets of this version take MQTT 5's layout in this build: MQTT 5 with the
    /// `mqtt5` feature. Every MQTT 5 path tests this, so without the feature they compile
    /// away (the entry points refuse MQTT 5 first).
    #[inline(always)]
    pub(crate) const fn v5(self) -> bool {
        cfg!(feature = "mqtt5") && self.is_v5()
    }
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
    /// Will properties (MQTT 5 only).
    pub properties: Properties<'a>,
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
    /// Optional password (binary data); requires a user name in 3.1.1 `[MQTT-3.1.2-22]`
    /// (MQTT 5 allows it alone).
    pub password: Option<&'a [u8]>,
    /// CONNECT properties (MQTT 5 only).
    pub properties: Properties<'a>,
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

impl ConnectReturnCode {
    /// The MQTT 5 reason code with the same meaning.
    pub const fn to_reason_code(self) -> ReasonCode {
        match self {
            ConnectReturnCode::Accepted => ReasonCode::Success,
            ConnectReturnCode::UnacceptableProtocolVersion => {
                ReasonCode::UnsupportedProtocolVersion
            }
            ConnectReturnCode::IdentifierRejected => ReasonCode::ClientIdentifierNotValid,
            ConnectReturnCode::ServerUnavailable => ReasonCode::ServerUnavailable,
            ConnectReturnCode::BadUserNameOrPassword => ReasonCode::BadUserNameOrPassword,
            ConnectReturnCode::NotAuthorized => ReasonCode::NotAuthorized,
        }
    }

    /// The closest 3.1.1 return code for an MQTT 5 CONNACK reason code: the five with a
    /// 3.1.1 twin map to it, Banned and Bad authentication method to `NotAuthorized`, every
    /// other refusal to `ServerUnavailable`.
    pub const fn from_reason_code(code: ReasonCode) -> ConnectReturnCode {
        match code {
            ReasonCode::Success => ConnectReturnCode::Accepted,
            ReasonCode::UnsupportedProtocolVersion => {
                ConnectReturnCode::UnacceptableProtocolVersion
            }
            ReasonCode::ClientIdentifierNotValid => ConnectReturnCode::IdentifierRejected,
            ReasonCode::BadUserNameOrPassword => ConnectReturnCode::BadUserNameOrPassword,
            ReasonCode::NotAuthorized
            | ReasonCode::Banned
            | ReasonCode::BadAuthenticationMethod => ConnectReturnCode::NotAuthorized,
            _ => ConnectReturnCode::ServerUnavailable,
        }
    }
}

/// CONNACK `[MQTT-3.2]`.
///
/// `code` is what a 3.1.1 CONNACK carries, `reason_code` what an MQTT 5 one carries; decoding
/// fills both (the other one mapped, see [`ConnectReturnCode::from_reason_code`]) and encoding
/// writes the one of its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck<'a> {
    /// The broker resumed a stored session.
    pub session_present: bool,
    /// Accepted or why not (3.1.1).
    pub code: ConnectReturnCode,
    /// Accepted or why not (MQTT 5).
    pub reason_code: ReasonCode,
    /// CONNACK properties (MQTT 5 only): what the broker allows this connection.
    pub properties: Properties<'a>,
}

impl ConnAck<'_> {
    /// A 3.1.1 CONNACK (no properties, the reason code mapped from `code`).
    pub const fn new(session_present: bool, code: ConnectReturnCode) -> ConnAck<'static> {
        ConnAck {
            session_present,
            code,
            reason_code: code.to_reason_code(),
            properties: Properties::EMPTY,
        }
    }
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
    /// PUBLISH properties (MQTT 5 only). With a Topic Alias the topic may be empty
    /// `[MQTT-3.3.2-8]`.
    pub properties: Properties<'a>,
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP `[MQTT-3.4]`..`[MQTT-3.7]`: a packet id, and in MQTT 5 a
/// reason code and properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ack<'a> {
    /// The acknowledged packet's id.
    pub packet_id: PacketId,
    /// The outcome (MQTT 5); always [`ReasonCode::Success`] in 3.1.1.
    pub reason_code: ReasonCode,
    /// Properties (MQTT 5 only): a reason string, user properties.
    pub properties: Properties<'a>,
}

impl<'a> Ack<'a> {
    /// A successful acknowledgement without properties (the only kind 3.1.1 has).
    pub const fn new(packet_id: PacketId) -> Ack<'static> {
        Ack {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: Properties::EMPTY,
        }
    }

    /// An MQTT 5 acknowledgement with a reason code and properties.
    pub const fn with_reason(
        packet_id: PacketId,
        reason_code: ReasonCode,
        properties: Properties<'a>,
    ) -> Ack<'a> {
        Ack {
            packet_id,
            reason_code,
            properties,
        }
    }
}

/// What the broker should do with retained messages when a subscription is made
/// (MQTT 5, `[MQTT-3.8.3.1]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at subscribe time.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not exist.
    SendAtSubscribeIfNew = 1,
    /// 2: do not send them.
    DoNotSend = 2,
}

/// The options byte of one SUBSCRIBE entry: the maximum QoS, and in MQTT 5 No Local, Retain As
/// Published and Retain Handling `[MQTT-3.8.3.1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct SubscriptionOptions {
    /// Maximum QoS the broker may deliver with.
    pub qos: QoS,
    /// Do not receive one's own publications (MQTT 5).
    pub no_local: bool,
    /// Keep the retain flag of forwarded messages (MQTT 5).
    pub retain_as_published: bool,
    /// When retained messages are sent (MQTT 5).
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with only a maximum QoS (all 3.1.1 has).
    pub const fn new(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }

    /// Sets No Local.
    pub const fn no_local(mut self, no_local: bool) -> Self {
        self.no_local = no_local;
        self
    }

    /// Sets Retain As Published.
    pub const fn retain_as_published(mut self, retain_as_published: bool) -> Self {
        self.retain_as_published = retain_as_published;
        self
    }

    /// Sets Retain Handling.
    pub const fn retain_handling(mut self, retain_handling: RetainHandling) -> Self {
        self.retain_handling = retain_handling;
        self
    }

    /// The wire byte.
    pub const fn to_u8(self) -> u8 {
        (self.qos as u8)
            | ((self.no_local as u8) << 2)
            | ((self.retain_as_published as u8) << 3)
            | ((self.retain_handling as u8) << 4)
    }

    /// The options for a wire byte, or `None` when reserved bits are set, QoS is 3 or Retain
    /// Handling is 3 `[MQTT-3.8.3-5]`.
    pub const fn from_u8(byte: u8) -> Option<SubscriptionOptions> {
        let Some(qos) = QoS::from_u8(byte & 0b11) else {
            return None;
        };
        let retain_handling = match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return None,
        };
        if byte & 0b1100_0000 != 0 {
            return None;
        }
        Some(SubscriptionOptions {
            qos,
            no_local: byte & 0b100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling,
        })
    }

    /// Whether only the QoS is set (the options 3.1.1 can express).
    pub const fn is_qos_only(self) -> bool {
        self.to_u8() < 4
    }
}

impl From<QoS> for SubscriptionOptions {
    fn from(qos: QoS) -> Self {
        SubscriptionOptions::new(qos)
    }
}

/// A list of topic filters with requested QoS, as carried by SUBSCRIBE.
///
/// Built from a slice when encoding; when decoding it borrows the validated payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeTopics<'a> {
    /// Filters given by the caller.
    List(&'a [(&'a str, QoS)]),
    /// Filters with MQTT 5 subscription options given by the caller.
    WithOptions(&'a [(&'a str, SubscriptionOptions)]),
    /// The validated payload of a decoded SUBSCRIBE.
    Encoded(&'a [u8]),
}

impl<'a> SubscribeTopics<'a> {
    /// The filters in order with their maximum QoS.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, QoS)> + 'a {
        self.iter_options().map(|(s, o)| (s, o.qos))
    }

    /// The filters in order with their full subscription options.
    pub fn iter_options(&self) -> impl Iterator<Item = (&'a str, SubscriptionOptions)> + 'a {
        type Parts<'a> = (
            &'a [(&'a str, QoS)],
            &'a [(&'a str, SubscriptionOptions)],
            &'a [u8],
        );
        let (list, options, encoded): Parts<'a> = match *self {
            SubscribeTopics::List(list) => (list, &[], &[]),
            SubscribeTopics::WithOptions(options) => (&[], options, &[]),
            SubscribeTopics::Encoded(bytes) => (&[], &[], bytes),
        };
        list.iter()
            .map(|&(s, q)| (s, SubscriptionOptions::new(q)))
            .chain(options.iter().copied())
            .chain(decode::EncodedStrings::new(encoded, true).map(|(s, b)| {
                (
                    s,
                    SubscriptionOptions::from_u8(b)
                        .unwrap_or(SubscriptionOptions::new(QoS::AtMostOnce)),
                )
            }))
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
    /// SUBSCRIBE properties (MQTT 5 only): a subscription identifier, user properties.
    pub properties: Properties<'a>,
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
    /// Raw return codes: in 3.1.1 each validated to be 0, 1, 2 or 0x80; in MQTT 5 each a
    /// reason code allowed in SUBACK.
    pub return_codes: &'a [u8],
    /// SUBACK properties (MQTT 5 only).
    pub properties: Properties<'a>,
}

impl<'a> SubAck<'a> {
    /// The return codes in order (an MQTT 5 failure code reads as `Failure`).
    pub fn codes(&self) -> impl Iterator<Item = SubscribeReturnCode> + 'a {
        self.return_codes
            .iter()
            .map(|&b| SubscribeReturnCode::from_u8(b).unwrap_or(SubscribeReturnCode::Failure))
    }

    /// The return codes in order as MQTT 5 reason codes (3.1.1's 0x80 reads as
    /// `UnspecifiedError`, which has the same value).
    pub fn reason_codes(&self) -> impl Iterator<Item = ReasonCode> + 'a {
        self.return_codes
            .iter()
            .map(|&b| ReasonCode::from_u8(b).unwrap_or(ReasonCode::UnspecifiedError))
    }
}

/// UNSUBSCRIBE `[MQTT-3.10]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    /// Packet id echoed by UNSUBACK.
    pub packet_id: PacketId,
    /// At least one filter `[MQTT-3.10.3-2]`.
    pub topics: UnsubscribeTopics<'a>,
    /// UNSUBSCRIBE properties (MQTT 5 only).
    pub properties: Properties<'a>,
}

/// UNSUBACK `[MQTT-3.11]`: in MQTT 5 one reason code per filter, in 3.1.1 none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnsubAck<'a> {
    /// The UNSUBSCRIBE's packet id.
    pub packet_id: PacketId,
    /// Raw reason codes (MQTT 5), each validated to be allowed in UNSUBACK; empty in 3.1.1.
    pub reason_codes: &'a [u8],
    /// UNSUBACK properties (MQTT 5 only).
    pub properties: Properties<'a>,
}

impl<'a> UnsubAck<'a> {
    /// A 3.1.1 UNSUBACK.
    pub const fn new(packet_id: PacketId) -> UnsubAck<'static> {
        UnsubAck {
            packet_id,
            reason_codes: &[],
            properties: Properties::EMPTY,
        }
    }

    /// An MQTT 5 UNSUBACK; `reason_codes` are wire bytes, one per filter.
    pub const fn with_reasons(
        packet_id: PacketId,
        reason_codes: &'a [u8],
        properties: Properties<'a>,
    ) -> UnsubAck<'a> {
        UnsubAck {
            packet_id,
            reason_codes,
            properties,
        }
    }

    /// The reason codes in order.
    pub fn codes(&self) -> impl Iterator<Item = ReasonCode> + 'a {
        self.reason_codes
            .iter()
            .map(|&b| ReasonCode::from_u8(b).unwrap_or(ReasonCode::UnspecifiedError))
    }
}

/// DISCONNECT `[MQTT-3.14]`: in MQTT 5 with a reason code and properties, in either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Disconnect<'a> {
    /// Why (MQTT 5); [`ReasonCode::Success`] is a normal disconnection.
    pub reason_code: ReasonCode,
    /// DISCONNECT properties (MQTT 5 only): session expiry, reason string, server reference.
    pub properties: Properties<'a>,
}

impl<'a> Disconnect<'a> {
    /// A normal disconnection (the only kind 3.1.1 has).
    pub const NORMAL: Disconnect<'static> = Disconnect {
        reason_code: ReasonCode::Success,
        properties: Properties::EMPTY,
    };

    /// An MQTT 5 DISCONNECT with a reason code and properties.
    pub const fn new(reason_code: ReasonCode, properties: Properties<'a>) -> Disconnect<'a> {
        Disconnect {
            reason_code,
            properties,
        }
    }
}

/// AUTH (MQTT 5 only) `[MQTT-3.15]`: a step of enhanced authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Auth<'a> {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// Authentication method and data, reason string, user properties.
    pub properties: Properties<'a>,
}

impl<'a> Auth<'a> {
    /// An AUTH packet.
    pub const fn new(reason_code: ReasonCode, properties: Properties<'a>) -> Auth<'a> {
        Auth {
            reason_code,
            properties,
        }
    }
}

/// Every MQTT 3.1.1 and MQTT 5 control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the packet of the same name
pub enum Packet<'a> {
    Connect(Connect<'a>),
    ConnAck(ConnAck<'a>),
    Publish(Publish<'a>),
    PubAck(Ack<'a>),
    PubRec(Ack<'a>),
    PubRel(Ack<'a>),
    PubComp(Ack<'a>),
    Subscribe(Subscribe<'a>),
    SubAck(SubAck<'a>),
    Unsubscribe(Unsubscribe<'a>),
    UnsubAck(UnsubAck<'a>),
    PingReq,
    PingResp,
    Disconnect(Disconnect<'a>),
    /// MQTT 5 only.
    Auth(Auth<'a>),
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
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }
}
