//! Encoding into caller-provided buffers.

use super::decode::EncodedStrings;
use super::{
    Connect, Packet, PacketType, ProtocolVersion, Publish, QoS, SubscribeReturnCode,
    SubscribeTopics, UnsubscribeTopics, MAX_REMAINING_LENGTH,
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
        }
    }
}

impl core::error::Error for EncodeError {}

/// Number of bytes the remaining-length field takes for `len`.
const fn remaining_length_bytes(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn string_len(s: &str) -> Result<usize, EncodeError> {
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::NullCharacter);
    }
    binary_len(s.as_bytes())
}

fn binary_len(b: &[u8]) -> Result<usize, EncodeError> {
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

impl Packet<'_> {
    /// Validates the packet and returns `(first byte, remaining length)`.
    fn header(&self) -> Result<(u8, usize), EncodeError> {
        let type_bits = (self.packet_type() as u8) << 4;
        let (flags, remaining) = match self {
            Packet::Connect(connect) => (0, connect_body_len(connect)?),
            Packet::ConnAck(_) => (0, 2),
            Packet::Publish(publish) => (publish_flags(publish)?, publish_body_len(publish)?),
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) | Packet::UnsubAck(_) => {
                (0, 2)
            }
            Packet::PubRel(_) => (0b0010, 2),
            Packet::Subscribe(subscribe) => {
                let mut len = 2;
                let mut count = 0;
                for (filter, _) in subscribe.topics.iter() {
                    len += topic_filter_len(filter)? + 1;
                    count += 1;
                }
                if let SubscribeTopics::Encoded(bytes) = subscribe.topics {
                    // `iter` stops at the first malformed entry and reads a bad QoS byte as 0,
                    // but the bytes are written as they are: they must be exactly the entries.
                    if len != 2 + bytes.len()
                        || EncodedStrings::new(bytes, true).any(|(_, qos)| qos > 2)
                    {
                        return Err(EncodeError::MalformedTopicList);
                    }
                }
                if count == 0 {
                    return Err(EncodeError::EmptyPayload);
                }
                (0b0010, len)
            }
            Packet::SubAck(suback) => {
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
            Packet::Unsubscribe(unsubscribe) => {
                let mut len = 2;
                let mut count = 0;
                for filter in unsubscribe.topics.iter() {
                    len += topic_filter_len(filter)?;
                    count += 1;
                }
                if let UnsubscribeTopics::Encoded(bytes) = unsubscribe.topics {
                    if len != 2 + bytes.len() {
                        return Err(EncodeError::MalformedTopicList);
                    }
                }
                if count == 0 {
                    return Err(EncodeError::EmptyPayload);
                }
                (0b0010, len)
            }
            Packet::PingReq | Packet::PingResp | Packet::Disconnect => (0, 0),
        };
        if remaining > MAX_REMAINING_LENGTH {
            return Err(EncodeError::PacketTooLarge);
        }
        Ok((type_bits | flags, remaining))
    }

    /// The number of bytes [`Packet::encode`] will write, after validating the packet.
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        let (_, remaining) = self.header()?;
        Ok(1 + remaining_length_bytes(remaining) + remaining)
    }

    /// Writes the packet to the front of `buf` and returns how many bytes it used.
    ///
    /// The packet is validated first (topic rules, string lengths, packet-id presence); on error
    /// nothing meaningful is written.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let (first, remaining) = self.header()?;
        let needed = 1 + remaining_length_bytes(remaining) + remaining;
        if buf.len() < needed {
            return Err(EncodeError::BufferTooSmall { needed });
        }
        let mut w = Writer { buf, pos: 0 };
        w.u8(first);
        w.remaining_length(remaining);
        match self {
            Packet::Connect(connect) => write_connect(&mut w, connect),
            Packet::ConnAck(ack) => {
                w.u8(u8::from(ack.session_present));
                w.u8(ack.code as u8);
            }
            Packet::Publish(publish) => {
                w.string(publish.topic);
                if let Some(id) = publish.packet_id {
                    w.u16(id.get());
                }
                w.raw(publish.payload);
            }
            Packet::PubAck(id)
            | Packet::PubRec(id)
            | Packet::PubRel(id)
            | Packet::PubComp(id)
            | Packet::UnsubAck(id) => w.u16(id.get()),
            Packet::Subscribe(subscribe) => {
                w.u16(subscribe.packet_id.get());
                write_subscribe_topics(&mut w, &subscribe.topics);
            }
            Packet::SubAck(suback) => {
                w.u16(suback.packet_id.get());
                w.raw(suback.return_codes);
            }
            Packet::Unsubscribe(unsubscribe) => {
                w.u16(unsubscribe.packet_id.get());
                write_unsubscribe_topics(&mut w, &unsubscribe.topics);
            }
            Packet::PingReq | Packet::PingResp | Packet::Disconnect => {}
        }
        debug_assert_eq!(w.pos, needed);
        Ok(needed)
    }
}

fn write_subscribe_topics(w: &mut Writer<'_>, topics: &SubscribeTopics<'_>) {
    match topics {
        SubscribeTopics::Encoded(bytes) => w.raw(bytes),
        SubscribeTopics::List(list) => {
            for (filter, qos) in list.iter() {
                w.string(filter);
                w.u8(*qos as u8);
            }
        }
    }
}

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

fn publish_body_len(publish: &Publish<'_>) -> Result<usize, EncodeError> {
    let id_len = if publish.packet_id.is_some() { 2 } else { 0 };
    Ok(topic_name_len(publish.topic)? + id_len + publish.payload.len())
}

fn connect_body_len(connect: &Connect<'_>) -> Result<usize, EncodeError> {
    let protocol_name = match connect.protocol {
        ProtocolVersion::V311 => 6,
        ProtocolVersion::V31 => 8,
    };
    // name + level + flags + keepalive
    let mut len = protocol_name + 1 + 1 + 2 + string_len(connect.client_id)?;
    if let Some(will) = &connect.will {
        len += topic_name_len(will.topic)? + binary_len(will.payload)?;
    }
    if let Some(username) = connect.username {
        len += string_len(username)?;
    }
    if let Some(password) = connect.password {
        if connect.username.is_none() {
            return Err(EncodeError::PasswordWithoutUsername);
        }
        len += binary_len(password)?;
    }
    Ok(len)
}

fn write_connect(w: &mut Writer<'_>, connect: &Connect<'_>) {
    match connect.protocol {
        ProtocolVersion::V311 => {
            w.string("MQTT");
            w.u8(4);
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
    w.string(connect.client_id);
    if let Some(will) = &connect.will {
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
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn raw(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    fn u8(&mut self, byte: u8) {
        self.raw(&[byte]);
    }

    fn u16(&mut self, value: u16) {
        self.raw(&value.to_be_bytes());
    }

    fn binary(&mut self, bytes: &[u8]) {
        // Lengths were checked to fit in u16 by the *_len functions.
        self.u16(bytes.len() as u16);
        self.raw(bytes);
    }

    fn string(&mut self, s: &str) {
        self.binary(s.as_bytes());
    }

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

/// Encodes only the fixed header and variable header of a PUBLISH (everything before the
/// payload) into `buf`, returning its length. Lets a caller write the payload separately
/// (vectored I/O) without copying it.
pub fn encode_publish_header(publish: &Publish<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    write_publish_header(publish, buf, true)
}

/// [`encode_publish_header`] for a caller that has already checked the topic name with
/// [`validate_topic_name`] (the session does, to report it as a usage error): the topic is not
/// scanned a second time. Any other field is still validated.
#[cfg(feature = "alloc")]
pub(crate) fn encode_publish_header_validated_topic(
    publish: &Publish<'_>,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    debug_assert!(validate_topic_name(publish.topic).is_ok());
    write_publish_header(publish, buf, false)
}

fn write_publish_header(
    publish: &Publish<'_>,
    buf: &mut [u8],
    validate_topic: bool,
) -> Result<usize, EncodeError> {
    let first = (PacketType::Publish as u8) << 4 | publish_flags(publish)?;
    let remaining = if validate_topic {
        publish_body_len(publish)?
    } else {
        let id_len = if publish.packet_id.is_some() { 2 } else { 0 };
        2 + publish.topic.len() + id_len + publish.payload.len()
    };
    if remaining > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge);
    }
    let id_len = if publish.packet_id.is_some() { 2 } else { 0 };
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
