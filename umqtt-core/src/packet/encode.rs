//! Encoding into caller-provided buffers.

use super::decode::{DecodeError, EncodedStrings};
use super::properties::{self, Context, Violation, WILL};
use super::{
    Ack, Connect, Disconnect, Packet, PacketType, Properties, PropertyId, ProtocolVersion, Publish,
    QoS, ReasonCode, Subscribe, SubscribeReturnCode, SubscribeTopics, SubscriptionOptions,
    UnsubAck, Unsubscribe, UnsubscribeTopics, MAX_REMAINING_LENGTH,
};
use crate::topic::{validate_topic_filter, validate_topic_name, TopicError};

/// Why a packet could not be encoded. These are the caller's mistakes or limits, found before
/// any byte is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is smaller than the packet.
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
    },
    /// The packet's remaining length would exceed 268 435 455 bytes `[MQTT-2.2.3]`.
    PacketTooLarge,
    /// A string or binary field is longer than 65 535 bytes `[MQTT-1.5.3]`.
    StringTooLong,
    /// A string contains U+0000 `[MQTT-1.5.3-2]`.
    NullCharacter,
    /// The PUBLISH or will topic is not a valid topic name.
    InvalidTopicName(TopicError),
    /// A SUBSCRIBE/UNSUBSCRIBE filter is not a valid topic filter.
    InvalidTopicFilter(TopicError),
    /// QoS 1/2 PUBLISH without packet id, or QoS 0 PUBLISH with one `[MQTT-2.3.1-5]`.
    PacketIdMismatch,
    /// DUP set on a QoS 0 PUBLISH `[MQTT-3.3.1-2]`.
    DupWithQoS0,
    /// A password without a user name `[MQTT-3.1.2-22]`.
    PasswordWithoutUsername,
    /// SUBSCRIBE/UNSUBSCRIBE with no filters, or SUBACK with no codes `[MQTT-3.8.3-3]`.
    EmptyPayload,
    /// A SUBACK return code other than 0, 1, 2 or 0x80 `[MQTT-3.9.3-2]`.
    InvalidSubAckReturnCode(u8),
    /// [`SubscribeTopics::Encoded`] or [`UnsubscribeTopics::Encoded`] bytes that are not a
    /// well-formed list of entries (truncated, trailing bytes, bad UTF-8 or a requested QoS
    /// byte other than 0, 1, 2).
    MalformedTopicList,
    /// The packet carries something only MQTT 5 has (properties, a reason code other than
    /// success, subscription options beyond QoS, UNSUBACK reason codes, AUTH) but is encoded
    /// as 3.1.1 or 3.1: refused rather than silently dropped.
    RequiresMqtt5,
    /// The packet is to be written as MQTT 5, but this build of umqtt-core has no MQTT 5
    /// (its `mqtt5` cargo feature is off).
    Mqtt5NotCompiled,
    /// A property this packet (or the will) may not carry (MQTT 5 section 2.2.2.2, table 2-4).
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// The packet.
        packet_type: PacketType,
        /// It is in a will's properties.
        will: bool,
    },
    /// A property other than User Property (or Subscription Identifier in PUBLISH) given twice
    /// (MQTT 5 section 2.2.2.2).
    DuplicateProperty {
        /// The repeated property.
        property: PropertyId,
    },
    /// A property value the specification forbids (see
    /// [`DecodeError::InvalidPropertyValue`] for the list).
    InvalidPropertyValue {
        /// The property.
        property: PropertyId,
        /// The value given.
        value: u32,
    },
    /// A reason code this packet may not carry (MQTT 5 section 2.4, table 2-6).
    InvalidReasonCode {
        /// The packet.
        packet_type: PacketType,
        /// The code.
        code: u8,
    },
    /// [`Properties::Encoded`] bytes that do not decode as valid properties for the packet.
    MalformedProperties(DecodeError),
}

impl EncodeError {
    pub(crate) fn from_violation(violation: Violation, ctx: Context) -> EncodeError {
        match violation {
            Violation::NotAllowed(property) => EncodeError::PropertyNotAllowed {
                property,
                packet_type: properties::packet_type_of(ctx),
                will: ctx == WILL,
            },
            Violation::Duplicate(property) => EncodeError::DuplicateProperty { property },
            Violation::InvalidValue(property, value) => {
                EncodeError::InvalidPropertyValue { property, value }
            }
        }
    }
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            EncodeError::PacketTooLarge => f.write_str("packet exceeds 268435455 bytes"),
            EncodeError::StringTooLong => f.write_str("string or binary field over 65535 bytes"),
            EncodeError::NullCharacter => f.write_str("string contains U+0000"),
            EncodeError::InvalidTopicName(e) => write!(f, "invalid topic name: {e}"),
            EncodeError::InvalidTopicFilter(e) => write!(f, "invalid topic filter: {e}"),
            EncodeError::PacketIdMismatch => {
                f.write_str("packet id must be present exactly for QoS 1 and 2")
            }
            EncodeError::DupWithQoS0 => f.write_str("DUP flag set on a QoS 0 PUBLISH"),
            EncodeError::PasswordWithoutUsername => f.write_str("password without user name"),
            EncodeError::EmptyPayload => f.write_str("no topic filters or return codes"),
            EncodeError::InvalidSubAckReturnCode(c) => {
                write!(f, "invalid SUBACK return code {c:#04x}")
            }
            EncodeError::MalformedTopicList => f.write_str("malformed encoded topic list"),
            EncodeError::RequiresMqtt5 => {
                f.write_str("packet has MQTT 5 properties or reason codes but is encoded as 3.1.1")
            }
            EncodeError::Mqtt5NotCompiled => f.write_str(
                "MQTT 5 is not compiled in (umqtt-core built without its `mqtt5` feature)",
            ),
            EncodeError::PropertyNotAllowed {
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
            EncodeError::DuplicateProperty { property } => {
                write!(f, "property {property:?} given more than once")
            }
            EncodeError::InvalidPropertyValue { property, value } => {
                write!(f, "invalid value {value} for property {property:?}")
            }
            EncodeError::InvalidReasonCode { packet_type, code } => {
                write!(f, "reason code {code:#04x} not allowed in {packet_type:?}")
            }
            EncodeError::MalformedProperties(e) => write!(f, "malformed encoded properties: {e}"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Number of bytes a variable byte integer (e.g. the remaining length) takes for `len`.
pub(crate) const fn vbi_len(len: usize) -> usize {
    remaining_length_bytes(len)
}

/// Number of bytes the remaining-length field takes for `len`.
const fn remaining_length_bytes(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub(crate) fn string_len(s: &str) -> Result<usize, EncodeError> {
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::NullCharacter);
    }
    binary_len(s.as_bytes())
}

pub(crate) fn binary_len(b: &[u8]) -> Result<usize, EncodeError> {
    if b.len() > usize::from(u16::MAX) {
        return Err(EncodeError::StringTooLong);
    }
    Ok(2 + b.len())
}

fn topic_name_len(topic: &str) -> Result<usize, EncodeError> {
    // A valid topic name has no U+0000 and fits in a string (the checks of `string_len`),
    // so the bytes are scanned once.
    validate_topic_name(topic).map_err(EncodeError::InvalidTopicName)?;
    Ok(2 + topic.len())
}

fn topic_filter_len(filter: &str) -> Result<usize, EncodeError> {
    validate_topic_filter(filter).map_err(EncodeError::InvalidTopicFilter)?;
    string_len(filter)
}

/// The SUBSCRIBE body after the packet id and properties: the packet id's 2 bytes plus each
/// filter (length-prefixed) and its options byte, checked in order. With 3.1.1 (`!v5`) an
/// entry with more than a QoS is refused. One loop per representation rather than
/// [`SubscribeTopics::iter_options`]' chain of three iterators, whose code is much larger.
fn subscribe_topics_len(topics: &SubscribeTopics<'_>, v5: bool) -> Result<usize, EncodeError> {
    /// One entry's length (filter and options byte).
    fn entry_len(
        filter: &str,
        options: SubscriptionOptions,
        v5: bool,
    ) -> Result<usize, EncodeError> {
        if !v5 && !options.is_qos_only() {
            return Err(EncodeError::RequiresMqtt5);
        }
        Ok(topic_filter_len(filter)? + 1)
    }
    let mut len = 2;
    let count = match *topics {
        SubscribeTopics::List(list) => {
            for &(filter, qos) in list {
                len += entry_len(filter, SubscriptionOptions::new(qos), v5)?;
            }
            list.len()
        }
        SubscribeTopics::WithOptions(list) => {
            for &(filter, options) in list {
                len += entry_len(filter, options, v5)?;
            }
            list.len()
        }
        SubscribeTopics::Encoded(bytes) => {
            // As `iter_options` reads them: it stops at the first malformed entry and reads a
            // bad options byte as QoS 0. But the bytes are written as they are: they must be
            // exactly the entries.
            let mut count = 0;
            for (filter, byte) in EncodedStrings::new(bytes, true) {
                let options = SubscriptionOptions::from_u8(byte)
                    .unwrap_or(SubscriptionOptions::new(QoS::AtMostOnce));
                len += entry_len(filter, options, v5)?;
                count += 1;
            }
            if len != 2 + bytes.len()
                || EncodedStrings::new(bytes, true).any(|(_, byte)| {
                    SubscriptionOptions::from_u8(byte).is_none() || (!v5 && byte > 2)
                })
            {
                return Err(EncodeError::MalformedTopicList);
            }
            count
        }
    };
    if count == 0 {
        return Err(EncodeError::EmptyPayload);
    }
    Ok(len)
}

/// The UNSUBSCRIBE body after the packet id and properties: the packet id's 2 bytes plus
/// each filter (length-prefixed), checked in order.
fn unsubscribe_topics_len(topics: &UnsubscribeTopics<'_>) -> Result<usize, EncodeError> {
    let mut len = 2;
    let mut count = 0;
    match *topics {
        UnsubscribeTopics::List(list) => {
            for filter in list {
                len += topic_filter_len(filter)?;
                count += 1;
            }
        }
        UnsubscribeTopics::Encoded(bytes) => {
            for (filter, _) in EncodedStrings::new(bytes, false) {
                len += topic_filter_len(filter)?;
                count += 1;
            }
            if len != 2 + bytes.len() {
                return Err(EncodeError::MalformedTopicList);
            }
        }
    }
    if count == 0 {
        return Err(EncodeError::EmptyPayload);
    }
    Ok(len)
}

/// What [`Encode::header_v5`] found: the first byte, the remaining length and the sizes of the
/// property blocks (prefix included; 0 when absent) so they are not computed twice.
pub(crate) struct Header {
    first: u8,
    remaining: usize,
    properties: usize,
    will_properties: usize,
}

impl Header {
    /// For a 3.1.1 CONNECT, which has no property blocks.
    const EMPTY: Header = Header {
        first: 0,
        remaining: 0,
        properties: 0,
        will_properties: 0,
    };
}

/// The size of a property block in an MQTT 5 packet; in 3.1.1 properties must be empty.
fn properties_len(
    properties: &Properties<'_>,
    ctx: Context,
    v5: bool,
) -> Result<usize, EncodeError> {
    if v5 {
        properties.encoded_len(ctx)
    } else if properties.is_empty() {
        Ok(0)
    } else {
        Err(EncodeError::RequiresMqtt5)
    }
}

/// An MQTT 5 reason code the packet may carry.
fn check_reason(code: ReasonCode, packet_type: PacketType) -> Result<(), EncodeError> {
    if code.is_allowed_in(packet_type) {
        Ok(())
    } else {
        Err(EncodeError::InvalidReasonCode {
            packet_type,
            code: code as u8,
        })
    }
}

fn check_reason_bytes(codes: &[u8], packet_type: PacketType) -> Result<(), EncodeError> {
    match codes
        .iter()
        .find(|&&c| !ReasonCode::from_u8(c).is_some_and(|reason| reason.is_allowed_in(packet_type)))
    {
        Some(&code) => Err(EncodeError::InvalidReasonCode { packet_type, code }),
        None => Ok(()),
    }
}

/// The length of an MQTT 5 acknowledgement body after the packet id: the short forms drop a
/// success code without properties (section 3.4.2.1), then properties alone.
const fn short_form_len(reason: ReasonCode, properties: usize, empty: bool) -> usize {
    if empty {
        if matches!(reason, ReasonCode::Success) {
            0
        } else {
            1
        }
    } else {
        1 + properties
    }
}

/// The layout of one kind of packet: [`Packet`] (every type, through one match) or one of the
/// types a client sends (CONNECT, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT). [`encoded_len`] and
/// [`encode_packet`] frame either; the session calls them with the single types, so a client build
/// carries only the layouts it sends, and [`Packet`]'s match calls the same implementations.
pub(crate) trait Encode {
    /// The version the packet is written in when encoded for `version` (a CONNECT goes by its
    /// own `protocol`).
    #[inline(always)]
    fn version_for(&self, version: ProtocolVersion) -> ProtocolVersion {
        version
    }

    /// Whether the packet's bytes are the same in 3.1.1 and MQTT 5: a successful
    /// acknowledgement without properties (the MQTT 5 short form, section 3.4.2.1), a ping, a
    /// plain DISCONNECT (remaining length 0, section 3.14.2.1). The 3.1.1 writer writes them.
    #[inline(always)]
    fn is_same_in_both(&self) -> bool {
        false
    }

    /// Validates a 3.1.1 packet and returns `(first byte, remaining length)`: the 3.1.1 layout
    /// plus the refusal of anything only MQTT 5 can carry. Kept apart from
    /// [`Encode::header_v5`] so the 3.1.1 hot path costs what it did before MQTT 5.
    fn header_v311(&self) -> Result<(u8, usize), EncodeError>;

    /// Writes what follows the fixed header of a packet [`Encode::header_v311`] validated.
    fn write_v311(&self, w: &mut Writer<'_>);

    /// Validates an MQTT 5 packet and sizes it.
    fn header_v5(&self) -> Result<Header, EncodeError>;

    /// Writes what follows the fixed header of a packet [`Encode::header_v5`] validated.
    fn write_v5(&self, w: &mut Writer<'_>, header: &Header);
}

/// The version `packet` is written in for `version`, refused when this build has no MQTT 5 (a
/// check the compiler removes when it has).
#[inline(always)]
fn supported_version<T: Encode + ?Sized>(
    packet: &T,
    version: ProtocolVersion,
) -> Result<ProtocolVersion, EncodeError> {
    let version = packet.version_for(version);
    if version.is_supported() {
        Ok(version)
    } else {
        Err(EncodeError::Mqtt5NotCompiled)
    }
}

/// The number of bytes [`encode_packet`] will write for `version`, after validating the packet.
#[inline]
pub(crate) fn encoded_len<T: Encode + ?Sized>(
    packet: &T,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    let remaining = if supported_version(packet, version)?.v5() {
        packet.header_v5()?.remaining
    } else {
        packet.header_v311()?.1
    };
    if remaining > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge);
    }
    Ok(1 + remaining_length_bytes(remaining) + remaining)
}

/// Writes `packet` as a packet of `version` to the front of `buf` (not a PUBLISH: see
/// [`encode_publish`]); [`Packet::encode_with`] for one type.
#[inline]
pub(crate) fn encode_packet<T: Encode + ?Sized>(
    packet: &T,
    buf: &mut [u8],
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    encode_packet_into(packet, version, |needed| {
        buf.get_mut(..needed)
            .ok_or(EncodeError::BufferTooSmall { needed })
    })
}

/// Validates `packet` for `version`, then writes it into `room(size)`, which must be exactly
/// its size: the caller places it (a slice of its buffer, or room appended to a growing one).
/// Nothing is asked of `room` when the packet is refused.
#[inline]
pub(crate) fn encode_packet_into<'b, T: Encode + ?Sized, E: From<EncodeError>>(
    packet: &T,
    version: ProtocolVersion,
    room: impl FnOnce(usize) -> Result<&'b mut [u8], E>,
) -> Result<usize, E> {
    // Two bodies, not one: the 3.1.1 writer stays small enough that it does not pay for
    // the MQTT 5 writer's register spills on every call.
    if supported_version(packet, version)?.v5() && !packet.is_same_in_both() {
        encode_v5(packet, room)
    } else {
        encode_v311(packet, room)
    }
}

/// Writes a packet validated by [`Encode::header_v311`].
#[inline]
fn encode_v311<'b, T: Encode + ?Sized, E: From<EncodeError>>(
    packet: &T,
    room: impl FnOnce(usize) -> Result<&'b mut [u8], E>,
) -> Result<usize, E> {
    let (first, remaining) = packet.header_v311()?;
    let mut w = Writer::framed(first, remaining, room)?;
    packet.write_v311(&mut w);
    debug_assert_eq!(w.pos, w.buf.len());
    Ok(w.pos)
}

/// Writes an MQTT 5 packet validated by [`Encode::header_v5`].
#[inline(never)]
fn encode_v5<'b, T: Encode + ?Sized, E: From<EncodeError>>(
    packet: &T,
    room: impl FnOnce(usize) -> Result<&'b mut [u8], E>,
) -> Result<usize, E> {
    let header = packet.header_v5()?;
    let mut w = Writer::framed(header.first, header.remaining, room)?;
    packet.write_v5(&mut w, &header);
    debug_assert_eq!(w.pos, w.buf.len());
    Ok(w.pos)
}

impl Packet<'_> {
    /// The number of bytes [`Packet::encode`] will write, after validating the packet.
    #[inline]
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        self.encoded_len_with(ProtocolVersion::V311)
    }

    /// The number of bytes [`Packet::encode_with`] will write for `version`, after validating
    /// the packet.
    pub fn encoded_len_with(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        encoded_len(self, version)
    }

    /// Writes the packet as MQTT 3.1.1 to the front of `buf` and returns how many bytes it
    /// used: [`Packet::encode_with`] for [`ProtocolVersion::V311`].
    #[inline]
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.encode_with(buf, ProtocolVersion::V311)
    }

    /// Writes the packet as a packet of `version` to the front of `buf` and returns how many
    /// bytes it used.
    ///
    /// The packet is validated first (topic rules, string lengths, packet-id presence, and for
    /// MQTT 5 the property allow lists and reason codes; MQTT 5 parts in a 3.1.1 packet are
    /// refused); on error nothing meaningful is written. A CONNECT is written in the version
    /// its `protocol` field names, whatever `version` says.
    #[inline]
    pub fn encode_with(
        &self,
        buf: &mut [u8],
        version: ProtocolVersion,
    ) -> Result<usize, EncodeError> {
        match self {
            Packet::Publish(publish) => {
                supported_version(self, version)?;
                encode_publish(publish, buf, version)
            }
            _ => self.encode_other(buf, version),
        }
    }

    /// [`encode_packet`] for a packet other than PUBLISH, compiled once, in this crate.
    fn encode_other(&self, buf: &mut [u8], version: ProtocolVersion) -> Result<usize, EncodeError> {
        encode_packet(self, buf, version)
    }
}

impl Encode for Packet<'_> {
    #[inline(always)]
    fn version_for(&self, version: ProtocolVersion) -> ProtocolVersion {
        match self {
            Packet::Connect(connect) => connect.version_for(version),
            _ => version,
        }
    }

    #[inline]
    fn is_same_in_both(&self) -> bool {
        match self {
            Packet::PubAck(ack)
            | Packet::PubRec(ack)
            | Packet::PubRel(ack)
            | Packet::PubComp(ack) => {
                ack.reason_code == ReasonCode::Success && ack.properties.is_empty()
            }
            Packet::PingReq | Packet::PingResp => true,
            Packet::Disconnect(disconnect) => disconnect.is_same_in_both(),
            _ => false,
        }
    }

    fn header_v311(&self) -> Result<(u8, usize), EncodeError> {
        let type_bits = (self.packet_type() as u8) << 4;
        let (flags, remaining) = match self {
            Packet::Connect(connect) => return connect.header_v311(),
            Packet::Subscribe(subscribe) => return subscribe.header_v311(),
            Packet::Unsubscribe(unsubscribe) => return unsubscribe.header_v311(),
            Packet::Disconnect(disconnect) => return disconnect.header_v311(),
            Packet::ConnAck(ack) => {
                if !ack.properties.is_empty() {
                    return Err(EncodeError::RequiresMqtt5);
                }
                (0, 2)
            }
            Packet::Publish(publish) => {
                if !publish.properties.is_empty() {
                    return Err(EncodeError::RequiresMqtt5);
                }
                (publish_flags(publish)?, publish_body_len(publish, false)?)
            }
            Packet::PubAck(ack)
            | Packet::PubRec(ack)
            | Packet::PubRel(ack)
            | Packet::PubComp(ack) => {
                if ack.reason_code != ReasonCode::Success || !ack.properties.is_empty() {
                    return Err(EncodeError::RequiresMqtt5);
                }
                let flags = if matches!(self, Packet::PubRel(_)) {
                    0b0010
                } else {
                    0
                };
                (flags, 2)
            }
            Packet::UnsubAck(unsuback) => {
                if !unsuback.reason_codes.is_empty() || !unsuback.properties.is_empty() {
                    return Err(EncodeError::RequiresMqtt5);
                }
                (0, 2)
            }
            Packet::SubAck(suback) => {
                if !suback.properties.is_empty() {
                    return Err(EncodeError::RequiresMqtt5);
                }
                if suback.return_codes.is_empty() {
                    return Err(EncodeError::EmptyPayload);
                }
                if let Some(&bad) = suback
                    .return_codes
                    .iter()
                    .find(|&&c| SubscribeReturnCode::from_u8(c).is_none())
                {
                    return Err(EncodeError::InvalidSubAckReturnCode(bad));
                }
                (0, 2 + suback.return_codes.len())
            }
            Packet::PingReq | Packet::PingResp => (0, 0),
            Packet::Auth(_) => return Err(EncodeError::RequiresMqtt5),
        };
        Ok((type_bits | flags, remaining))
    }

    #[inline]
    fn write_v311(&self, w: &mut Writer<'_>) {
        match self {
            Packet::Connect(connect) => connect.write_v311(w),
            Packet::Subscribe(subscribe) => subscribe.write_v311(w),
            Packet::Unsubscribe(unsubscribe) => unsubscribe.write_v311(w),
            Packet::ConnAck(ack) => {
                w.u8(u8::from(ack.session_present));
                w.u8(ack.code as u8);
            }
            // Written by `encode_publish`, never reached from `encode_with`.
            Packet::Publish(_) => {}
            Packet::PubAck(Ack { packet_id, .. })
            | Packet::PubRec(Ack { packet_id, .. })
            | Packet::PubRel(Ack { packet_id, .. })
            | Packet::PubComp(Ack { packet_id, .. })
            | Packet::UnsubAck(UnsubAck { packet_id, .. }) => w.u16(packet_id.get()),
            Packet::SubAck(suback) => {
                w.u16(suback.packet_id.get());
                w.raw(suback.return_codes);
            }
            Packet::PingReq | Packet::PingResp | Packet::Disconnect(_) | Packet::Auth(_) => {}
        }
    }

    fn header_v5(&self) -> Result<Header, EncodeError> {
        let packet_type = self.packet_type();
        let type_bits = (packet_type as u8) << 4;
        let ctx = properties::context(packet_type);
        let mut props = 0;
        let (flags, remaining) = match self {
            Packet::Connect(connect) => return connect.header_v5(),
            Packet::Subscribe(subscribe) => return subscribe.header_v5(),
            Packet::Unsubscribe(unsubscribe) => return unsubscribe.header_v5(),
            Packet::Disconnect(disconnect) => return disconnect.header_v5(),
            Packet::ConnAck(ack) => {
                check_reason(ack.reason_code, packet_type)?;
                props = ack.properties.encoded_len(ctx)?;
                (0, 2 + props)
            }
            Packet::Publish(publish) => {
                props = publish.properties.encoded_len(ctx)?;
                (
                    publish_flags(publish)?,
                    publish_body_len(publish, true)? + props,
                )
            }
            Packet::PubAck(ack)
            | Packet::PubRec(ack)
            | Packet::PubRel(ack)
            | Packet::PubComp(ack) => {
                check_reason(ack.reason_code, packet_type)?;
                props = ack.properties.encoded_len(ctx)?;
                let flags = if packet_type == PacketType::PubRel {
                    0b0010
                } else {
                    0
                };
                (
                    flags,
                    2 + short_form_len(ack.reason_code, props, ack.properties.is_empty()),
                )
            }
            Packet::SubAck(suback) => {
                props = suback.properties.encoded_len(ctx)?;
                if suback.return_codes.is_empty() {
                    return Err(EncodeError::EmptyPayload);
                }
                check_reason_bytes(suback.return_codes, packet_type)?;
                (0, 2 + props + suback.return_codes.len())
            }
            Packet::UnsubAck(unsuback) => {
                props = unsuback.properties.encoded_len(ctx)?;
                // One reason code per filter of the UNSUBSCRIBE (section 3.11.3).
                if unsuback.reason_codes.is_empty() {
                    return Err(EncodeError::EmptyPayload);
                }
                check_reason_bytes(unsuback.reason_codes, packet_type)?;
                (0, 2 + props + unsuback.reason_codes.len())
            }
            Packet::PingReq | Packet::PingResp => (0, 0),
            Packet::Auth(auth) => {
                check_reason(auth.reason_code, packet_type)?;
                props = auth.properties.encoded_len(ctx)?;
                let len = if auth.properties.is_empty() && auth.reason_code == ReasonCode::Success {
                    0
                } else {
                    1 + props
                };
                (0, len)
            }
        };
        Ok(Header {
            first: type_bits | flags,
            remaining,
            properties: props,
            will_properties: 0,
        })
    }

    fn write_v5(&self, w: &mut Writer<'_>, header: &Header) {
        match self {
            Packet::Connect(connect) => connect.write_v5(w, header),
            Packet::Subscribe(subscribe) => subscribe.write_v5(w, header),
            Packet::Unsubscribe(unsubscribe) => unsubscribe.write_v5(w, header),
            Packet::Disconnect(disconnect) => disconnect.write_v5(w, header),
            Packet::ConnAck(ack) => {
                w.u8(u8::from(ack.session_present));
                w.u8(ack.reason_code as u8);
                ack.properties.write(w, header.properties);
            }
            // Written by `encode_publish`, never reached from `encode_with`.
            Packet::Publish(_) => {}
            Packet::PubAck(ack)
            | Packet::PubRec(ack)
            | Packet::PubRel(ack)
            | Packet::PubComp(ack) => write_ack(w, ack, header.properties),
            Packet::SubAck(suback) => {
                w.u16(suback.packet_id.get());
                suback.properties.write(w, header.properties);
                w.raw(suback.return_codes);
            }
            Packet::UnsubAck(unsuback) => {
                w.u16(unsuback.packet_id.get());
                unsuback.properties.write(w, header.properties);
                w.raw(unsuback.reason_codes);
            }
            Packet::PingReq | Packet::PingResp => {}
            Packet::Auth(auth) => {
                if header.remaining > 0 {
                    w.u8(auth.reason_code as u8);
                    auth.properties.write(w, header.properties);
                }
            }
        }
    }
}

impl Encode for Connect<'_> {
    #[inline(always)]
    fn version_for(&self, _: ProtocolVersion) -> ProtocolVersion {
        self.protocol
    }

    fn header_v311(&self) -> Result<(u8, usize), EncodeError> {
        Ok(((PacketType::Connect as u8) << 4, connect_body_len(self)?.0))
    }

    fn write_v311(&self, w: &mut Writer<'_>) {
        write_connect(w, self, &Header::EMPTY);
    }

    fn header_v5(&self) -> Result<Header, EncodeError> {
        let (remaining, properties, will_properties) = connect_body_len(self)?;
        Ok(Header {
            first: (PacketType::Connect as u8) << 4,
            remaining,
            properties,
            will_properties,
        })
    }

    fn write_v5(&self, w: &mut Writer<'_>, header: &Header) {
        write_connect(w, self, header);
    }
}

impl Encode for Subscribe<'_> {
    fn header_v311(&self) -> Result<(u8, usize), EncodeError> {
        if !self.properties.is_empty() {
            return Err(EncodeError::RequiresMqtt5);
        }
        Ok((
            (PacketType::Subscribe as u8) << 4 | 0b0010,
            subscribe_topics_len(&self.topics, false)?,
        ))
    }

    fn write_v311(&self, w: &mut Writer<'_>) {
        w.u16(self.packet_id.get());
        write_subscribe_topics(w, &self.topics);
    }

    fn header_v5(&self) -> Result<Header, EncodeError> {
        let properties = self
            .properties
            .encoded_len(properties::context(PacketType::Subscribe))?;
        Ok(Header {
            first: (PacketType::Subscribe as u8) << 4 | 0b0010,
            remaining: subscribe_topics_len(&self.topics, true)? + properties,
            properties,
            will_properties: 0,
        })
    }

    fn write_v5(&self, w: &mut Writer<'_>, header: &Header) {
        w.u16(self.packet_id.get());
        self.properties.write(w, header.properties);
        write_subscribe_topics(w, &self.topics);
    }
}

impl Encode for Unsubscribe<'_> {
    fn header_v311(&self) -> Result<(u8, usize), EncodeError> {
        if !self.properties.is_empty() {
            return Err(EncodeError::RequiresMqtt5);
        }
        Ok((
            (PacketType::Unsubscribe as u8) << 4 | 0b0010,
            unsubscribe_topics_len(&self.topics)?,
        ))
    }

    fn write_v311(&self, w: &mut Writer<'_>) {
        w.u16(self.packet_id.get());
        write_unsubscribe_topics(w, &self.topics);
    }

    fn header_v5(&self) -> Result<Header, EncodeError> {
        let properties = self
            .properties
            .encoded_len(properties::context(PacketType::Unsubscribe))?;
        Ok(Header {
            first: (PacketType::Unsubscribe as u8) << 4 | 0b0010,
            remaining: unsubscribe_topics_len(&self.topics)? + properties,
            properties,
            will_properties: 0,
        })
    }

    fn write_v5(&self, w: &mut Writer<'_>, header: &Header) {
        w.u16(self.packet_id.get());
        self.properties.write(w, header.properties);
        write_unsubscribe_topics(w, &self.topics);
    }
}

impl Encode for Disconnect<'_> {
    #[inline(always)]
    fn is_same_in_both(&self) -> bool {
        self.reason_code == ReasonCode::Success && self.properties.is_empty()
    }

    fn header_v311(&self) -> Result<(u8, usize), EncodeError> {
        if !self.is_same_in_both() {
            return Err(EncodeError::RequiresMqtt5);
        }
        Ok(((PacketType::Disconnect as u8) << 4, 0))
    }

    fn write_v311(&self, _: &mut Writer<'_>) {}

    fn header_v5(&self) -> Result<Header, EncodeError> {
        check_reason(self.reason_code, PacketType::Disconnect)?;
        let properties = self
            .properties
            .encoded_len(properties::context(PacketType::Disconnect))?;
        let remaining = if self.properties.is_empty() {
            usize::from(self.reason_code != ReasonCode::Success)
        } else {
            1 + properties
        };
        Ok(Header {
            first: (PacketType::Disconnect as u8) << 4,
            remaining,
            properties,
            will_properties: 0,
        })
    }

    fn write_v5(&self, w: &mut Writer<'_>, header: &Header) {
        if header.remaining > 0 {
            w.u8(self.reason_code as u8);
        }
        if !self.properties.is_empty() {
            self.properties.write(w, header.properties);
        }
    }
}

/// An acknowledgement's body; 3.1.1 acks (success, no properties) are the MQTT 5 short form.
fn write_ack(w: &mut Writer<'_>, ack: &Ack<'_>, properties: usize) {
    w.u16(ack.packet_id.get());
    if !ack.properties.is_empty() {
        w.u8(ack.reason_code as u8);
        ack.properties.write(w, properties);
    } else if ack.reason_code != ReasonCode::Success {
        w.u8(ack.reason_code as u8);
    }
}

#[inline(never)]
fn write_subscribe_topics(w: &mut Writer<'_>, topics: &SubscribeTopics<'_>) {
    match topics {
        SubscribeTopics::Encoded(bytes) => w.raw(bytes),
        SubscribeTopics::List(list) => {
            for (filter, qos) in list.iter() {
                w.string(filter);
                w.u8(*qos as u8);
            }
        }
        SubscribeTopics::WithOptions(list) => {
            for (filter, options) in list.iter() {
                w.string(filter);
                w.u8(options.to_u8());
            }
        }
    }
}

#[inline(never)]
fn write_unsubscribe_topics(w: &mut Writer<'_>, topics: &UnsubscribeTopics<'_>) {
    match topics {
        UnsubscribeTopics::Encoded(bytes) => w.raw(bytes),
        UnsubscribeTopics::List(list) => list.iter().for_each(|filter| w.string(filter)),
    }
}

fn publish_flags(publish: &Publish<'_>) -> Result<u8, EncodeError> {
    if (publish.qos == QoS::AtMostOnce) != publish.packet_id.is_none() {
        return Err(EncodeError::PacketIdMismatch);
    }
    if publish.dup && publish.qos == QoS::AtMostOnce {
        return Err(EncodeError::DupWithQoS0);
    }
    Ok((u8::from(publish.dup) << 3) | ((publish.qos as u8) << 1) | u8::from(publish.retain))
}

/// The PUBLISH body without properties. In MQTT 5 an empty topic is allowed with a Topic
/// Alias `[MQTT-3.3.2-8]`.
fn publish_body_len(publish: &Publish<'_>, v5: bool) -> Result<usize, EncodeError> {
    let id_len = if publish.packet_id.is_some() { 2 } else { 0 };
    let topic_len = if v5 && publish.topic.is_empty() && publish.properties.topic_alias().is_some()
    {
        2
    } else {
        topic_name_len(publish.topic)?
    };
    Ok(topic_len + id_len + publish.payload.len())
}

/// The CONNECT body length and its two property block sizes.
#[inline(never)]
fn connect_body_len(connect: &Connect<'_>) -> Result<(usize, usize, usize), EncodeError> {
    let v5 = connect.protocol.v5();
    let protocol_name = match connect.protocol {
        ProtocolVersion::V311 | ProtocolVersion::V5 => 6,
        ProtocolVersion::V31 => 8,
    };
    let properties = properties_len(
        &connect.properties,
        properties::context(PacketType::Connect),
        v5,
    )?;
    // name + level + flags + keepalive
    let mut len = protocol_name + 1 + 1 + 2 + properties + string_len(connect.client_id)?;
    let mut will_properties = 0;
    if let Some(will) = &connect.will {
        will_properties = properties_len(&will.properties, WILL, v5)?;
        len += will_properties + topic_name_len(will.topic)? + binary_len(will.payload)?;
    }
    if let Some(username) = connect.username {
        len += string_len(username)?;
    }
    if let Some(password) = connect.password {
        // MQTT 5 allows a password alone (section 3.1.2.9).
        if connect.username.is_none() && !v5 {
            return Err(EncodeError::PasswordWithoutUsername);
        }
        len += binary_len(password)?;
    }
    Ok((len, properties, will_properties))
}

#[inline(never)]
fn write_connect(w: &mut Writer<'_>, connect: &Connect<'_>, header: &Header) {
    match connect.protocol {
        ProtocolVersion::V311 => {
            w.string("MQTT");
            w.u8(4);
        }
        ProtocolVersion::V5 => {
            w.string("MQTT");
            w.u8(5);
        }
        ProtocolVersion::V31 => {
            w.string("MQIsdp");
            w.u8(3);
        }
    }
    let mut flags = 0u8;
    if connect.clean_session {
        flags |= 0b10;
    }
    if let Some(will) = &connect.will {
        flags |= 0b100 | ((will.qos as u8) << 3);
        if will.retain {
            flags |= 0b10_0000;
        }
    }
    if connect.password.is_some() {
        flags |= 0b100_0000;
    }
    if connect.username.is_some() {
        flags |= 0b1000_0000;
    }
    w.u8(flags);
    w.u16(connect.keep_alive);
    let v5 = connect.protocol.v5();
    if v5 {
        connect.properties.write(w, header.properties);
    }
    w.string(connect.client_id);
    if let Some(will) = &connect.will {
        if v5 {
            will.properties.write(w, header.will_properties);
        }
        w.string(will.topic);
        w.binary(will.payload);
    }
    if let Some(username) = connect.username {
        w.string(username);
    }
    if let Some(password) = connect.password {
        w.binary(password);
    }
}

/// Writes into a buffer whose size was checked beforehand.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// A writer over `room(size)` for a packet of `remaining` bytes after the fixed header
    /// (the size checked against the protocol's limit first), the fixed header written.
    #[inline]
    fn framed<E: From<EncodeError>>(
        first: u8,
        remaining: usize,
        room: impl FnOnce(usize) -> Result<&'a mut [u8], E>,
    ) -> Result<Self, E> {
        if remaining > MAX_REMAINING_LENGTH {
            return Err(EncodeError::PacketTooLarge.into());
        }
        let buf = room(1 + remaining_length_bytes(remaining) + remaining)?;
        let mut w = Writer { buf, pos: 0 };
        w.u8(first);
        w.remaining_length(remaining);
        Ok(w)
    }

    /// A variable byte integer (section 1.5.5), the same encoding as the remaining length.
    #[inline]
    pub(crate) fn vbi(&mut self, value: usize) {
        self.remaining_length(value);
    }

    #[inline]
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    #[inline]
    pub(crate) fn u8(&mut self, byte: u8) {
        self.raw(&[byte]);
    }

    #[inline]
    pub(crate) fn u16(&mut self, value: u16) {
        self.raw(&value.to_be_bytes());
    }

    #[inline]
    pub(crate) fn binary(&mut self, bytes: &[u8]) {
        // Lengths were checked to fit in u16 by the *_len functions.
        self.u16(bytes.len() as u16);
        self.raw(bytes);
    }

    #[inline]
    pub(crate) fn string(&mut self, s: &str) {
        self.binary(s.as_bytes());
    }

    #[inline]
    fn remaining_length(&mut self, mut len: usize) {
        loop {
            let mut byte = (len % 128) as u8;
            len /= 128;
            if len > 0 {
                byte |= 0x80;
            }
            self.u8(byte);
            if len == 0 {
                break;
            }
        }
    }
}

/// Encodes only the fixed header and variable header of a 3.1.1 PUBLISH (everything before
/// the payload) into `buf`, returning its length. Lets a caller write the payload separately
/// (vectored I/O) without copying it.
pub fn encode_publish_header(publish: &Publish<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    write_publish_header(publish, buf, true, ProtocolVersion::V311)
}

/// [`encode_publish_header`] for a PUBLISH of `version` (in MQTT 5 the properties are part of
/// the header).
pub fn encode_publish_header_with(
    publish: &Publish<'_>,
    buf: &mut [u8],
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    if !version.is_supported() {
        return Err(EncodeError::Mqtt5NotCompiled);
    }
    write_publish_header(publish, buf, true, version)
}

/// [`encode_publish_header_with`] for a caller that has already checked the topic name with
/// [`validate_topic_name`] (the session does, to report it as a usage error): the topic is not
/// scanned a second time. Any other field is still validated.
#[inline]
pub(crate) fn encode_publish_header_validated_topic(
    publish: &Publish<'_>,
    buf: &mut [u8],
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    debug_assert!(
        validate_topic_name(publish.topic).is_ok()
            || (publish.topic.is_empty() && publish.properties.topic_alias().is_some())
    );
    write_publish_header(publish, buf, false, version)
}

/// A whole PUBLISH: the header by [`write_publish_header`] (the one writer of its layout,
/// shared with the session), then the payload.
fn encode_publish(
    publish: &Publish<'_>,
    buf: &mut [u8],
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    // The header must fit before the payload's room, so a buffer too small for the whole
    // packet is refused before anything is written.
    let limit = buf.len().saturating_sub(publish.payload.len());
    let header =
        write_publish_header(publish, &mut buf[..limit], true, version).map_err(|e| match e {
            EncodeError::BufferTooSmall { needed } => EncodeError::BufferTooSmall {
                needed: needed + publish.payload.len(),
            },
            e => e,
        })?;
    let needed = header + publish.payload.len();
    let Some(room) = buf.get_mut(header..needed) else {
        return Err(EncodeError::BufferTooSmall { needed });
    };
    room.copy_from_slice(publish.payload);
    Ok(needed)
}

fn write_publish_header(
    publish: &Publish<'_>,
    buf: &mut [u8],
    validate_topic: bool,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    if version.v5() {
        return write_publish_header_v5(publish, buf, validate_topic);
    }
    // 3.1.1: the layout and cost of before MQTT 5, plus the refusal of properties.
    if !publish.properties.is_empty() {
        return Err(EncodeError::RequiresMqtt5);
    }
    let first = (PacketType::Publish as u8) << 4 | publish_flags(publish)?;
    let id_len = if publish.packet_id.is_some() { 2 } else { 0 };
    let remaining = if validate_topic {
        publish_body_len(publish, false)?
    } else {
        2 + publish.topic.len() + id_len + publish.payload.len()
    };
    if remaining > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge);
    }
    let needed = 1 + remaining_length_bytes(remaining) + 2 + publish.topic.len() + id_len;
    if buf.len() < needed {
        return Err(EncodeError::BufferTooSmall { needed });
    }
    let mut w = Writer { buf, pos: 0 };
    w.u8(first);
    w.remaining_length(remaining);
    w.string(publish.topic);
    if let Some(id) = publish.packet_id {
        w.u16(id.get());
    }
    Ok(w.pos)
}

fn write_publish_header_v5(
    publish: &Publish<'_>,
    buf: &mut [u8],
    validate_topic: bool,
) -> Result<usize, EncodeError> {
    let v5 = true;
    let first = (PacketType::Publish as u8) << 4 | publish_flags(publish)?;
    let properties = properties_len(
        &publish.properties,
        properties::context(PacketType::Publish),
        v5,
    )?;
    let id_len = if publish.packet_id.is_some() { 2 } else { 0 };
    let remaining = if validate_topic {
        publish_body_len(publish, v5)?
    } else {
        2 + publish.topic.len() + id_len + publish.payload.len()
    } + properties;
    if remaining > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge);
    }
    let needed =
        1 + remaining_length_bytes(remaining) + 2 + publish.topic.len() + id_len + properties;
    if buf.len() < needed {
        return Err(EncodeError::BufferTooSmall { needed });
    }
    let mut w = Writer { buf, pos: 0 };
    w.u8(first);
    w.remaining_length(remaining);
    w.string(publish.topic);
    if let Some(id) = publish.packet_id {
        w.u16(id.get());
    }
    if v5 {
        publish.properties.write(&mut w, properties);
    }
    Ok(w.pos)
}
