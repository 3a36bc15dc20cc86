//! Incremental, zero-copy decoding.

use super::properties::{self, read_properties, Context, Violation, WILL};
use super::{
    Ack, Auth, ConnAck, Connect, ConnectReturnCode, Disconnect, LastWill, Packet, PacketId,
    PacketType, Properties, PropertyId, ProtocolVersion, Publish, QoS, ReasonCode, SubAck,
    Subscribe, SubscribeReturnCode, SubscribeTopics, SubscriptionOptions, UnsubAck, Unsubscribe,
    UnsubscribeTopics,
};
use crate::topic::{validate_topic_filter, validate_topic_name, TopicError};

/// The outcome of [`decode`] when the input is not malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole packet was decoded from the front of the input.
    Complete {
        /// The packet, borrowing strings and payload from the input.
        packet: Packet<'a>,
        /// How many bytes of the input it occupied.
        consumed: usize,
    },
    /// The input holds only the start of a packet: read more bytes and call again.
    Incomplete,
}

/// Why bytes could not be decoded as an MQTT 3.1.1 or MQTT 5 packet. Each variant is one rule
/// broken; section numbers without a prefix are the MQTT 5 specification's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Packet type 0 or 15, which are reserved `[MQTT-2.2.1]`.
    ReservedPacketType(u8),
    /// Fixed-header flags other than those the packet type requires `[MQTT-2.2.2-2]`, or DUP
    /// set on a QoS 0 PUBLISH `[MQTT-3.3.1-2]`.
    InvalidFlags {
        /// The packet's type.
        packet_type: PacketType,
        /// The flags found (low nibble).
        flags: u8,
    },
    /// QoS 3 in a PUBLISH header or a will `[MQTT-3.3.1-4]`, `[MQTT-3.1.2-14]`.
    InvalidQoS,
    /// The remaining-length field continues past four bytes `[MQTT-2.2.3]`.
    MalformedRemainingLength,
    /// The packet is larger than the maximum the caller passed to [`decode`] (a local limit,
    /// not a rule the peer broke); detected from the fixed header alone, before waiting for or
    /// storing the body.
    PacketTooLarge {
        /// Total size announced (fixed header included).
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A packet with a fixed-size body has another size (e.g. PUBACK not 2 bytes).
    InvalidLength {
        /// The packet's type.
        packet_type: PacketType,
    },
    /// A field runs past the end of the packet (a length prefix larger than what remains).
    Truncated {
        /// The packet's type.
        packet_type: PacketType,
    },
    /// Bytes left over after the last field of a packet.
    TrailingBytes {
        /// The packet's type.
        packet_type: PacketType,
    },
    /// A string is not well-formed UTF-8 (overlong forms and surrogates included) `[MQTT-1.5.3-1]`.
    InvalidUtf8,
    /// A string contains U+0000 `[MQTT-1.5.3-2]`.
    NullCharacter,
    /// Packet identifier 0 where a non-zero one is required `[MQTT-2.3.1-1]`.
    PacketIdZero,
    /// A PUBLISH topic name is empty or has wildcards `[MQTT-3.3.2-2]`, `[MQTT-4.7.3-1]`.
    InvalidTopicName(TopicError),
    /// A SUBSCRIBE/UNSUBSCRIBE topic filter is malformed `[MQTT-4.7.1]`.
    InvalidTopicFilter(TopicError),
    /// CONNECT protocol name is neither `MQTT` nor `MQIsdp` `[MQTT-3.1.2-1]`.
    InvalidProtocolName,
    /// CONNECT protocol level does not match the name (4 for `MQTT`, 3 for `MQIsdp`).
    UnsupportedProtocolLevel(u8),
    /// CONNECT reserved flag bit set `[MQTT-3.1.2-3]`.
    ConnectReservedFlag,
    /// Will QoS or retain set without the will flag `[MQTT-3.1.2-11]`, `[MQTT-3.1.2-15]`.
    InvalidWillFlags,
    /// Password flag without user name flag `[MQTT-3.1.2-22]`.
    PasswordWithoutUsername,
    /// CONNACK acknowledge flags other than bit 0 set `[MQTT-3.2.2-1]`.
    InvalidConnAckFlags(u8),
    /// CONNACK return code 6..=255, which are reserved `[MQTT-3.2.2.3]`.
    InvalidConnectReturnCode(u8),
    /// CONNACK refused the connection but claimed a session is present `[MQTT-3.2.2-4]`.
    SessionPresentWithRefusal,
    /// SUBSCRIBE/UNSUBSCRIBE without filters or SUBACK without codes `[MQTT-3.8.3-3]`, `[MQTT-3.10.3-2]`.
    EmptyPayload {
        /// The packet's type.
        packet_type: PacketType,
    },
    /// SUBSCRIBE requested-QoS byte with reserved bits or QoS 3 `[MQTT-3.8.3-4]`; in MQTT 5
    /// the subscription-options byte with reserved bits 6-7, QoS 3 or Retain Handling 3
    /// `[MQTT-3.8.3-5]`, section 3.8.3.1.
    InvalidRequestedQoS(u8),
    /// SUBACK return code other than 0, 1, 2 or 0x80 `[MQTT-3.9.3-2]`.
    InvalidSubAckReturnCode(u8),
    /// A variable byte integer (property length, property identifier, subscription
    /// identifier) continues past four bytes, section 1.5.5. (A non-minimal encoding is
    /// accepted, as for the remaining length.)
    MalformedVariableByteInteger,
    /// Decoding as MQTT 5 was asked of a build of umqtt-core without MQTT 5 (its `mqtt5` cargo
    /// feature is off).
    Mqtt5NotCompiled,
    /// The property length is larger than what remains of the packet, section 2.2.2.1.
    PropertyLengthExceeded {
        /// The packet's type.
        packet_type: PacketType,
    },
    /// A property identifier the specification does not define, section 2.2.2.2 (table 2-4).
    InvalidPropertyId(u32),
    /// A property this packet (or the will) may not carry, section 2.2.2.2 (table 2-4).
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// The packet it appeared in.
        packet_type: PacketType,
        /// It appeared in a CONNECT's will properties.
        will: bool,
    },
    /// A property other than User Property (and Subscription Identifier in PUBLISH) appears
    /// twice; "It is a Protocol Error to include the … more than once" in each property's
    /// definition (sections 3.1.2.11, 3.2.2.3, 3.3.2.3, 3.8.2.1 …).
    DuplicateProperty {
        /// The repeated property.
        property: PropertyId,
    },
    /// A property value the specification forbids: a boolean or the Payload Format
    /// Indicator other than 0/1 (sections 3.1.2.11.6, 3.1.2.11.7, 3.2.2.3.5, 3.2.2.3.11-13,
    /// 3.3.2.3.2), Maximum QoS other than 0/1 (3.2.2.3.4), Receive Maximum 0 (3.1.2.11.3,
    /// 3.2.2.3.3), Maximum Packet Size 0 (3.1.2.11.4, 3.2.2.3.6), Topic Alias 0
    /// `[MQTT-3.3.2-8]`, Subscription Identifier 0 (3.3.2.3.8, 3.8.2.1.2).
    InvalidPropertyValue {
        /// The property.
        property: PropertyId,
        /// The value found.
        value: u32,
    },
    /// A reason code the packet may not carry (undefined, or defined for other packets),
    /// section 2.4 (table 2-6) and each packet's reason-code table.
    InvalidReasonCode {
        /// The packet's type.
        packet_type: PacketType,
        /// The byte found.
        code: u8,
    },
}

impl DecodeError {
    pub(crate) fn from_violation(violation: Violation, ctx: Context) -> DecodeError {
        match violation {
            Violation::NotAllowed(property) => DecodeError::PropertyNotAllowed {
                property,
                packet_type: properties::packet_type_of(ctx),
                will: ctx == WILL,
            },
            Violation::Duplicate(property) => DecodeError::DuplicateProperty { property },
            Violation::InvalidValue(property, value) => {
                DecodeError::InvalidPropertyValue { property, value }
            }
        }
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::ReservedPacketType(t) => write!(f, "reserved packet type {t}"),
            DecodeError::InvalidFlags { packet_type, flags } => {
                write!(
                    f,
                    "invalid fixed-header flags {flags:#06b} for {packet_type:?}"
                )
            }
            DecodeError::InvalidQoS => f.write_str("QoS 3 is not a valid QoS"),
            DecodeError::MalformedRemainingLength => {
                f.write_str("remaining length longer than 4 bytes")
            }
            DecodeError::PacketTooLarge { size, max } => {
                write!(
                    f,
                    "packet of {size} bytes exceeds the configured maximum of {max}"
                )
            }
            DecodeError::InvalidLength { packet_type } => {
                write!(f, "{packet_type:?} has the wrong remaining length")
            }
            DecodeError::Truncated { packet_type } => {
                write!(f, "{packet_type:?} field runs past the end of the packet")
            }
            DecodeError::TrailingBytes { packet_type } => {
                write!(f, "{packet_type:?} has unexpected trailing bytes")
            }
            DecodeError::InvalidUtf8 => f.write_str("string is not valid UTF-8"),
            DecodeError::NullCharacter => f.write_str("string contains U+0000"),
            DecodeError::PacketIdZero => f.write_str("packet identifier is 0"),
            DecodeError::InvalidTopicName(e) => write!(f, "invalid topic name: {e}"),
            DecodeError::InvalidTopicFilter(e) => write!(f, "invalid topic filter: {e}"),
            DecodeError::InvalidProtocolName => f.write_str("unknown protocol name"),
            DecodeError::UnsupportedProtocolLevel(l) => {
                write!(f, "unsupported protocol level {l}")
            }
            DecodeError::ConnectReservedFlag => f.write_str("CONNECT reserved flag is set"),
            DecodeError::InvalidWillFlags => f.write_str("will QoS/retain set without will flag"),
            DecodeError::PasswordWithoutUsername => f.write_str("password without user name"),
            DecodeError::InvalidConnAckFlags(b) => write!(f, "invalid CONNACK flags {b:#04x}"),
            DecodeError::InvalidConnectReturnCode(c) => {
                write!(f, "reserved CONNACK return code {c}")
            }
            DecodeError::SessionPresentWithRefusal => {
                f.write_str("CONNACK refused the connection but set session present")
            }
            DecodeError::EmptyPayload { packet_type } => {
                write!(f, "{packet_type:?} carries no topics or return codes")
            }
            DecodeError::InvalidRequestedQoS(b) => write!(f, "invalid requested QoS byte {b:#04x}"),
            DecodeError::InvalidSubAckReturnCode(c) => {
                write!(f, "invalid SUBACK return code {c:#04x}")
            }
            DecodeError::MalformedVariableByteInteger => {
                f.write_str("variable byte integer longer than 4 bytes")
            }
            DecodeError::Mqtt5NotCompiled => f.write_str(
                "MQTT 5 is not compiled in (umqtt-core built without its `mqtt5` feature)",
            ),
            DecodeError::PropertyLengthExceeded { packet_type } => {
                write!(f, "{packet_type:?} property length exceeds the packet")
            }
            DecodeError::InvalidPropertyId(id) => {
                write!(f, "unknown property identifier {id:#04x}")
            }
            DecodeError::PropertyNotAllowed {
                property,
                packet_type,
                will,
            } => {
                if *will {
                    write!(f, "property {property:?} not allowed in will properties")
                } else {
                    write!(f, "property {property:?} not allowed in {packet_type:?}")
                }
            }
            DecodeError::DuplicateProperty { property } => {
                write!(f, "property {property:?} included more than once")
            }
            DecodeError::InvalidPropertyValue { property, value } => {
                write!(f, "invalid value {value} for property {property:?}")
            }
            DecodeError::InvalidReasonCode { packet_type, code } => {
                write!(f, "reason code {code:#04x} not allowed in {packet_type:?}")
            }
        }
    }
}

impl core::error::Error for DecodeError {}

/// Decodes the MQTT 3.1.1 packet at the front of `buf`: [`decode_with`] for
/// [`ProtocolVersion::V311`].
#[inline]
pub fn decode(buf: &[u8], max_packet_size: usize) -> Result<Decoded<'_>, DecodeError> {
    decode_with(buf, max_packet_size, ProtocolVersion::V311)
}

/// Decodes the packet at the front of `buf` as a packet of `version`.
///
/// Returns [`Decoded::Incomplete`] when more bytes are needed. A packet whose total size would
/// exceed `max_packet_size` is rejected as soon as its fixed header is readable, so a peer cannot
/// make the caller buffer a huge body. The returned packet borrows from `buf`.
///
/// A CONNECT declares its own version: the decoder accepts levels up to `version` (3 and 4 for
/// 3.1.1; 3, 4 and 5 for MQTT 5) and reports the one found in [`super::Connect::protocol`].
/// `V31` and `V311` decode every other packet the same way.
pub fn decode_with(
    buf: &[u8],
    max_packet_size: usize,
    version: ProtocolVersion,
) -> Result<Decoded<'_>, DecodeError> {
    decode_packet(buf, max_packet_size, version)
}

/// Decodes the packet at the front of `buf` as a client receives it: as [`decode_with`], except
/// that a packet only a client sends (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ) is reported from
/// its fixed header, as [`FromServerError::ClientPacket`], without its body being parsed. The
/// session refuses those anyway; not parsing them keeps their parsers out of a client build.
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
pub(crate) fn decode_from_server(
    buf: &[u8],
    max_packet_size: usize,
    version: ProtocolVersion,
) -> Result<Decoded<'_>, FromServerError> {
    decode_packet(buf, max_packet_size, version)
}

/// Why [`decode_from_server`] returned no packet.
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FromServerError {
    /// The bytes are malformed.
    Malformed(DecodeError),
    /// A packet only a client sends, with a well-formed fixed header; its body was not read.
    ClientPacket {
        /// The packet's type.
        packet_type: PacketType,
        /// Its whole size (fixed header included).
        consumed: usize,
    },
}

impl From<DecodeError> for FromServerError {
    #[inline]
    fn from(error: DecodeError) -> Self {
        FromServerError::Malformed(error)
    }
}

/// The error type of a decoder, which also says what it does with a packet only a client sends:
/// [`DecodeError`] for [`decode_with`] (it parses them: a broker, the simulator, the tests),
/// [`FromServerError`] for [`decode_from_server`] (it reports them unparsed).
pub(crate) trait DecoderError: From<DecodeError> {
    /// `Some(error)` to report a packet only a client sends instead of parsing its body.
    fn client_packet(packet_type: PacketType, consumed: usize) -> Option<Self>;
}

impl DecoderError for DecodeError {
    #[inline(always)]
    fn client_packet(_: PacketType, _: usize) -> Option<Self> {
        None
    }
}

impl DecoderError for FromServerError {
    #[inline(always)]
    fn client_packet(packet_type: PacketType, consumed: usize) -> Option<Self> {
        Some(FromServerError::ClientPacket {
            packet_type,
            consumed,
        })
    }
}

/// The body of [`decode_with`] and [`decode_from_server`].
fn decode_packet<E: DecoderError>(
    buf: &[u8],
    max_packet_size: usize,
    version: ProtocolVersion,
) -> Result<Decoded<'_>, E> {
    if !version.is_supported() {
        return Err(DecodeError::Mqtt5NotCompiled.into());
    }
    let Some(&first) = buf.first() else {
        return Ok(Decoded::Incomplete);
    };
    let packet_type = match PacketType::from_nibble(first >> 4) {
        Some(PacketType::Auth) if !version.v5() => None,
        other => other,
    }
    .ok_or(DecodeError::ReservedPacketType(first >> 4))?;
    let flags = first & 0x0F;
    if let Some(fixed) = packet_type.fixed_flags() {
        if flags != fixed {
            return Err(DecodeError::InvalidFlags { packet_type, flags }.into());
        }
    } else if (flags >> 1) & 0b11 == 3 {
        return Err(DecodeError::InvalidQoS.into());
    } else if flags & 0b1110 == 0b1000 {
        // DUP on a QoS 0 PUBLISH [MQTT-3.3.1-2]; `encode` refuses to produce it.
        return Err(DecodeError::InvalidFlags { packet_type, flags }.into());
    }

    let Some((remaining, length_bytes)) = read_remaining_length(&buf[1..])? else {
        return Ok(Decoded::Incomplete);
    };
    let total = 1 + length_bytes + remaining;
    if total > max_packet_size {
        return Err(DecodeError::PacketTooLarge {
            size: total,
            max: max_packet_size,
        }
        .into());
    }
    if buf.len() < total {
        return Ok(Decoded::Incomplete);
    }
    let body = &buf[1 + length_bytes..total];
    // The body decoders build the `Decoded` themselves so the packet is written once, in
    // place (a `Packet` returned and then wrapped costs a copy on the hot path).
    if version.v5() {
        decode_body_v5(packet_type, flags, body, total)
    } else {
        decode_body(packet_type, flags, body, total)
    }
}

/// Reads the variable-length remaining-length field: `Ok(None)` when more bytes are needed.
/// The total size (fixed header included) of the packet starting at `buf[0]`, read from its
/// fixed header alone; `Ok(None)` while the remaining-length field is incomplete.
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
#[inline]
pub(crate) fn packet_size(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.is_empty() {
        return Ok(None);
    }
    Ok(read_remaining_length(&buf[1..])?
        .map(|(remaining, length_bytes)| 1 + length_bytes + remaining))
}

fn read_remaining_length(bytes: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (index, &byte) in bytes.iter().enumerate().take(4) {
        value |= usize::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some((value, index + 1)));
        }
    }
    if bytes.len() >= 4 {
        Err(DecodeError::MalformedRemainingLength)
    } else {
        Ok(None)
    }
}

fn decode_body<E: DecoderError>(
    packet_type: PacketType,
    flags: u8,
    body: &[u8],
    consumed: usize,
) -> Result<Decoded<'_>, E> {
    let mut reader = Reader {
        bytes: body,
        packet_type,
    };
    let packet = match packet_type {
        PacketType::Connect
        | PacketType::Subscribe
        | PacketType::Unsubscribe
        | PacketType::PingReq => return decode_client_packet(reader, false, consumed),
        PacketType::ConnAck => {
            reader.expect_len(2)?;
            let ack_flags = reader.u8()?;
            if ack_flags & 0xFE != 0 {
                return Err(DecodeError::InvalidConnAckFlags(ack_flags).into());
            }
            let raw_code = reader.u8()?;
            let code = ConnectReturnCode::from_u8(raw_code)
                .ok_or(DecodeError::InvalidConnectReturnCode(raw_code))?;
            let session_present = ack_flags & 1 == 1;
            if session_present && code != ConnectReturnCode::Accepted {
                return Err(DecodeError::SessionPresentWithRefusal.into());
            }
            Packet::ConnAck(ConnAck::new(session_present, code))
        }
        PacketType::Publish => {
            let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
            let topic = reader.string()?;
            validate_topic_name(topic).map_err(DecodeError::InvalidTopicName)?;
            let packet_id = match qos {
                QoS::AtMostOnce => None,
                _ => Some(reader.packet_id()?),
            };
            Packet::Publish(Publish {
                dup: flags & 0b1000 != 0,
                qos,
                retain: flags & 1 != 0,
                topic,
                packet_id,
                payload: reader.bytes,
                properties: Properties::EMPTY,
            })
        }
        PacketType::PubAck => Packet::PubAck(Ack::new(reader.only_packet_id()?)),
        PacketType::PubRec => Packet::PubRec(Ack::new(reader.only_packet_id()?)),
        PacketType::PubRel => Packet::PubRel(Ack::new(reader.only_packet_id()?)),
        PacketType::PubComp => Packet::PubComp(Ack::new(reader.only_packet_id()?)),
        PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::new(reader.only_packet_id()?)),
        PacketType::SubAck => {
            let packet_id = reader.packet_id()?;
            let return_codes = reader.bytes;
            if return_codes.is_empty() {
                return Err(DecodeError::EmptyPayload { packet_type }.into());
            }
            if let Some(&bad) = return_codes
                .iter()
                .find(|&&c| SubscribeReturnCode::from_u8(c).is_none())
            {
                return Err(DecodeError::InvalidSubAckReturnCode(bad).into());
            }
            Packet::SubAck(SubAck {
                packet_id,
                return_codes,
                properties: Properties::EMPTY,
            })
        }
        PacketType::PingResp => {
            reader.expect_len(0)?;
            Packet::PingResp
        }
        PacketType::Disconnect => {
            reader.expect_len(0)?;
            Packet::Disconnect(Disconnect::NORMAL)
        }
        PacketType::Auth => return Err(DecodeError::ReservedPacketType(15).into()),
    };
    Ok(Decoded::Complete { packet, consumed })
}

/// The MQTT 5 bodies: the 3.1.1 layout plus properties and reason codes.
fn decode_body_v5<E: DecoderError>(
    packet_type: PacketType,
    flags: u8,
    body: &[u8],
    consumed: usize,
) -> Result<Decoded<'_>, E> {
    let mut reader = Reader::new(body, packet_type);
    let ctx = properties::context(packet_type);
    let packet = match packet_type {
        PacketType::Connect
        | PacketType::Subscribe
        | PacketType::Unsubscribe
        | PacketType::PingReq => return decode_client_packet(reader, true, consumed),
        PacketType::ConnAck => {
            let ack_flags = reader.u8()?;
            if ack_flags & 0xFE != 0 {
                return Err(DecodeError::InvalidConnAckFlags(ack_flags).into());
            }
            let reason_code = reader.reason_code()?;
            let session_present = ack_flags & 1 == 1;
            // [MQTT-3.2.2-6]: a refusal carries Session Present 0.
            if session_present && reason_code != ReasonCode::Success {
                return Err(DecodeError::SessionPresentWithRefusal.into());
            }
            let properties = read_properties(&mut reader, ctx)?;
            reader.expect_end()?;
            Packet::ConnAck(ConnAck {
                session_present,
                code: ConnectReturnCode::from_reason_code(reason_code),
                reason_code,
                properties,
            })
        }
        PacketType::Publish => {
            let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
            let topic = reader.string()?;
            let packet_id = match qos {
                QoS::AtMostOnce => None,
                _ => Some(reader.packet_id()?),
            };
            // The common empty block inline: a call here costs the hot path ~5 %.
            let properties = if reader.take_zero_byte() {
                Properties::EMPTY
            } else {
                read_properties(&mut reader, ctx)?
            };
            // An empty topic stands for the one a Topic Alias names [MQTT-3.3.2-8].
            if !(topic.is_empty() && properties.topic_alias().is_some()) {
                validate_topic_name(topic).map_err(DecodeError::InvalidTopicName)?;
            }
            Packet::Publish(Publish {
                dup: flags & 0b1000 != 0,
                qos,
                retain: flags & 1 != 0,
                topic,
                packet_id,
                payload: reader.bytes,
                properties,
            })
        }
        PacketType::PubAck => Packet::PubAck(reader.ack_v5()?),
        PacketType::PubRec => Packet::PubRec(reader.ack_v5()?),
        PacketType::PubRel => Packet::PubRel(reader.ack_v5()?),
        PacketType::PubComp => Packet::PubComp(reader.ack_v5()?),
        PacketType::SubAck | PacketType::UnsubAck => {
            let packet_id = reader.packet_id()?;
            let properties = read_properties(&mut reader, ctx)?;
            let codes = reader.bytes;
            if codes.is_empty() {
                return Err(DecodeError::EmptyPayload { packet_type }.into());
            }
            for _ in codes {
                reader.reason_code()?;
            }
            if packet_type == PacketType::SubAck {
                Packet::SubAck(SubAck {
                    packet_id,
                    return_codes: codes,
                    properties,
                })
            } else {
                Packet::UnsubAck(UnsubAck {
                    packet_id,
                    reason_codes: codes,
                    properties,
                })
            }
        }
        PacketType::PingResp => {
            reader.expect_len(0)?;
            Packet::PingResp
        }
        // Remaining length 0: reason 0x00 and no properties (sections 3.14.2.1, 3.15.2.1).
        PacketType::Disconnect | PacketType::Auth => {
            let (reason_code, properties) = if reader.is_empty() {
                (ReasonCode::Success, Properties::EMPTY)
            } else {
                let reason_code = reader.reason_code()?;
                // DISCONNECT may stop after the reason code (section 3.14.2.2.1); AUTH omits
                // both or neither (section 3.15.2.1).
                let properties = if reader.is_empty() && packet_type == PacketType::Disconnect {
                    Properties::EMPTY
                } else {
                    read_properties(&mut reader, ctx)?
                };
                reader.expect_end()?;
                (reason_code, properties)
            };
            if packet_type == PacketType::Disconnect {
                Packet::Disconnect(Disconnect {
                    reason_code,
                    properties,
                })
            } else {
                Packet::Auth(Auth {
                    reason_code,
                    properties,
                })
            }
        }
    };
    Ok(Decoded::Complete { packet, consumed })
}

/// Validates a SUBSCRIBE (`options`: `Some(v5)`) or UNSUBSCRIBE (`None`) payload.
fn validate_topic_list(reader: &mut Reader<'_>, options: Option<bool>) -> Result<(), DecodeError> {
    if reader.bytes.is_empty() {
        return Err(DecodeError::EmptyPayload {
            packet_type: reader.packet_type,
        });
    }
    while !reader.bytes.is_empty() {
        let filter = reader.string()?;
        validate_topic_filter(filter).map_err(DecodeError::InvalidTopicFilter)?;
        match options {
            Some(false) => {
                let requested = reader.u8()?;
                if requested > 2 {
                    return Err(DecodeError::InvalidRequestedQoS(requested));
                }
            }
            Some(true) => {
                let byte = reader.u8()?;
                if SubscriptionOptions::from_u8(byte).is_none() {
                    return Err(DecodeError::InvalidRequestedQoS(byte));
                }
            }
            None => {}
        }
    }
    Ok(())
}

/// The packets only a client sends (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ), in 3.1.1 or
/// (`v5`) MQTT 5; reported unparsed when `E` says so.
fn decode_client_packet<E: DecoderError>(
    mut reader: Reader<'_>,
    v5: bool,
    consumed: usize,
) -> Result<Decoded<'_>, E> {
    let packet_type = reader.packet_type;
    if let Some(error) = E::client_packet(packet_type, consumed) {
        return Err(error);
    }
    let packet = match packet_type {
        PacketType::Connect => decode_connect_with(reader, v5)?,
        PacketType::Subscribe | PacketType::Unsubscribe => {
            let packet_id = reader.packet_id()?;
            let properties = if v5 {
                read_properties(&mut reader, properties::context(packet_type))?
            } else {
                Properties::EMPTY
            };
            let payload = reader.bytes;
            if packet_type == PacketType::Subscribe {
                validate_topic_list(&mut reader, Some(v5))?;
                Packet::Subscribe(Subscribe {
                    packet_id,
                    topics: SubscribeTopics::Encoded(payload),
                    properties,
                })
            } else {
                validate_topic_list(&mut reader, None)?;
                Packet::Unsubscribe(Unsubscribe {
                    packet_id,
                    topics: UnsubscribeTopics::Encoded(payload),
                    properties,
                })
            }
        }
        _ => {
            reader.expect_len(0)?;
            Packet::PingReq
        }
    };
    Ok(Decoded::Complete { packet, consumed })
}

/// CONNECT; `accept_v5`: the decoder is an MQTT 5 one, so level 5 is accepted.
fn decode_connect_with(mut reader: Reader<'_>, accept_v5: bool) -> Result<Packet<'_>, DecodeError> {
    let protocol = match (reader.string()?, reader.u8()?) {
        ("MQTT", 4) => ProtocolVersion::V311,
        ("MQIsdp", 3) => ProtocolVersion::V31,
        ("MQTT", 5) if accept_v5 => ProtocolVersion::V5,
        ("MQTT", level) | ("MQIsdp", level) => {
            return Err(DecodeError::UnsupportedProtocolLevel(level))
        }
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    let connect_flags = reader.u8()?;
    if connect_flags & 1 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let keep_alive = reader.u16()?;
    let clean_session = connect_flags & 0b10 != 0;
    let will_flag = connect_flags & 0b100 != 0;
    let will_qos_bits = (connect_flags >> 3) & 0b11;
    let will_retain = connect_flags & 0b10_0000 != 0;
    let password_flag = connect_flags & 0b100_0000 != 0;
    let username_flag = connect_flags & 0b1000_0000 != 0;
    if !will_flag && (will_qos_bits != 0 || will_retain) {
        return Err(DecodeError::InvalidWillFlags);
    }
    let will_qos = QoS::from_u8(will_qos_bits).ok_or(DecodeError::InvalidQoS)?;
    let v5 = protocol.v5();
    // MQTT 5 allows a password without a user name (section 3.1.2.9).
    if password_flag && !username_flag && !v5 {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let properties = if v5 {
        read_properties(&mut reader, properties::context(PacketType::Connect))?
    } else {
        Properties::EMPTY
    };
    let client_id = reader.string()?;
    let will = if will_flag {
        let will_properties = if v5 {
            read_properties(&mut reader, WILL)?
        } else {
            Properties::EMPTY
        };
        let topic = reader.string()?;
        validate_topic_name(topic).map_err(DecodeError::InvalidTopicName)?;
        let payload = reader.binary()?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties: will_properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(reader.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(reader.binary()?)
    } else {
        None
    };
    if !reader.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes {
            packet_type: PacketType::Connect,
        });
    }
    Ok(Packet::Connect(Connect {
        protocol,
        client_id,
        keep_alive,
        clean_session,
        will,
        username,
        password,
        properties,
    }))
}

/// A cursor over a packet body; every read is bounds-checked against the body.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    packet_type: PacketType,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], packet_type: PacketType) -> Self {
        Reader { bytes, packet_type }
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A variable byte integer, section 1.5.5.
    pub(crate) fn vbi(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for index in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedVariableByteInteger)
    }

    /// A reason code allowed in this packet.
    fn reason_code(&mut self) -> Result<ReasonCode, DecodeError> {
        let code = self.u8()?;
        match ReasonCode::from_u8(code) {
            Some(reason) if reason.is_allowed_in(self.packet_type) => Ok(reason),
            _ => Err(DecodeError::InvalidReasonCode {
                packet_type: self.packet_type,
                code,
            }),
        }
    }

    /// An MQTT 5 PUBACK/PUBREC/PUBREL/PUBCOMP: remaining length 2 means reason 0x00 and no
    /// properties, 3 means no properties (section 3.4.2.1).
    fn ack_v5(&mut self) -> Result<Ack<'a>, DecodeError> {
        let packet_id = self.packet_id()?;
        let reason_code = if self.is_empty() {
            ReasonCode::Success
        } else {
            self.reason_code()?
        };
        let properties = if self.is_empty() {
            Properties::EMPTY
        } else {
            read_properties(self, properties::context(self.packet_type))?
        };
        self.expect_end()?;
        Ok(Ack {
            packet_id,
            reason_code,
            properties,
        })
    }

    fn expect_end(&self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                packet_type: self.packet_type,
            })
        }
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            packet_type: self.packet_type,
        }
    }

    /// Consumes the next byte if it is 0 (an empty property block's length).
    #[inline]
    pub(crate) fn take_zero_byte(&mut self) -> bool {
        match self.bytes.split_first() {
            Some((0, rest)) => {
                self.bytes = rest;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(self.truncated());
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?).ok_or(DecodeError::PacketIdZero)
    }

    fn expect_len(&self, len: usize) -> Result<(), DecodeError> {
        if self.bytes.len() == len {
            Ok(())
        } else {
            Err(DecodeError::InvalidLength {
                packet_type: self.packet_type,
            })
        }
    }

    fn only_packet_id(&mut self) -> Result<PacketId, DecodeError> {
        self.expect_len(2)?;
        self.packet_id()
    }

    pub(crate) fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    pub(crate) fn string(&mut self) -> Result<&'a str, DecodeError> {
        let raw = self.binary()?;
        let s = core::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8)?;
        if raw.contains(&0) {
            return Err(DecodeError::NullCharacter);
        }
        Ok(s)
    }
}

/// Iterates the `(string, byte)` entries of an already validated SUBSCRIBE payload (or the
/// strings of an UNSUBSCRIBE payload, with byte 0). Stops at the first malformed entry, which
/// validation has ruled out.
pub(crate) struct EncodedStrings<'a> {
    bytes: &'a [u8],
    with_byte: bool,
}

impl<'a> EncodedStrings<'a> {
    pub(crate) fn new(bytes: &'a [u8], with_byte: bool) -> Self {
        EncodedStrings { bytes, with_byte }
    }
}

impl<'a> Iterator for EncodedStrings<'a> {
    type Item = (&'a str, u8);

    fn next(&mut self) -> Option<Self::Item> {
        let mut reader = Reader {
            bytes: self.bytes,
            packet_type: PacketType::Subscribe,
        };
        let s = reader.string().ok()?;
        let byte = if self.with_byte { reader.u8().ok()? } else { 0 };
        self.bytes = reader.bytes;
        Some((s, byte))
    }
}
