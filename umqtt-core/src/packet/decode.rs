//! Incremental, zero-copy decoding.

use super::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, PacketId, PacketType, ProtocolVersion,
    Publish, QoS, SubAck, Subscribe, SubscribeReturnCode, SubscribeTopics, Unsubscribe,
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

/// Why bytes could not be decoded as an MQTT 3.1.1 packet. Each variant is one rule broken.
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
    /// SUBSCRIBE requested-QoS byte with reserved bits or QoS 3 `[MQTT-3.8.3-4]`.
    InvalidRequestedQoS(u8),
    /// SUBACK return code other than 0, 1, 2 or 0x80 `[MQTT-3.9.3-2]`.
    InvalidSubAckReturnCode(u8),
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
        }
    }
}

impl core::error::Error for DecodeError {}

/// Decodes the packet at the front of `buf`.
///
/// Returns [`Decoded::Incomplete`] when more bytes are needed. A packet whose total size would
/// exceed `max_packet_size` is rejected as soon as its fixed header is readable, so a peer cannot
/// make the caller buffer a huge body. The returned packet borrows from `buf`.
pub fn decode(buf: &[u8], max_packet_size: usize) -> Result<Decoded<'_>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(Decoded::Incomplete);
    };
    let packet_type =
        PacketType::from_nibble(first >> 4).ok_or(DecodeError::ReservedPacketType(first >> 4))?;
    let flags = first & 0x0F;
    if let Some(fixed) = packet_type.fixed_flags() {
        if flags != fixed {
            return Err(DecodeError::InvalidFlags { packet_type, flags });
        }
    } else if (flags >> 1) & 0b11 == 3 {
        return Err(DecodeError::InvalidQoS);
    } else if flags & 0b1110 == 0b1000 {
        // DUP on a QoS 0 PUBLISH [MQTT-3.3.1-2]; `encode` refuses to produce it.
        return Err(DecodeError::InvalidFlags { packet_type, flags });
    }

    let Some((remaining, length_bytes)) = read_remaining_length(&buf[1..])? else {
        return Ok(Decoded::Incomplete);
    };
    let total = 1 + length_bytes + remaining;
    if total > max_packet_size {
        return Err(DecodeError::PacketTooLarge {
            size: total,
            max: max_packet_size,
        });
    }
    if buf.len() < total {
        return Ok(Decoded::Incomplete);
    }
    let body = &buf[1 + length_bytes..total];
    let packet = decode_body(packet_type, flags, body)?;
    Ok(Decoded::Complete {
        packet,
        consumed: total,
    })
}

/// Reads the variable-length remaining-length field: `Ok(None)` when more bytes are needed.
/// The total size (fixed header included) of the packet starting at `buf[0]`, read from its
/// fixed header alone; `Ok(None)` while the remaining-length field is incomplete.
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
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

fn decode_body(packet_type: PacketType, flags: u8, body: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let mut reader = Reader {
        bytes: body,
        packet_type,
    };
    let packet = match packet_type {
        PacketType::Connect => return decode_connect(reader),
        PacketType::ConnAck => {
            reader.expect_len(2)?;
            let ack_flags = reader.u8()?;
            if ack_flags & 0xFE != 0 {
                return Err(DecodeError::InvalidConnAckFlags(ack_flags));
            }
            let raw_code = reader.u8()?;
            let code = ConnectReturnCode::from_u8(raw_code)
                .ok_or(DecodeError::InvalidConnectReturnCode(raw_code))?;
            let session_present = ack_flags & 1 == 1;
            if session_present && code != ConnectReturnCode::Accepted {
                return Err(DecodeError::SessionPresentWithRefusal);
            }
            Packet::ConnAck(ConnAck {
                session_present,
                code,
            })
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
            })
        }
        PacketType::PubAck => Packet::PubAck(reader.only_packet_id()?),
        PacketType::PubRec => Packet::PubRec(reader.only_packet_id()?),
        PacketType::PubRel => Packet::PubRel(reader.only_packet_id()?),
        PacketType::PubComp => Packet::PubComp(reader.only_packet_id()?),
        PacketType::UnsubAck => Packet::UnsubAck(reader.only_packet_id()?),
        PacketType::Subscribe => {
            let packet_id = reader.packet_id()?;
            let payload = reader.bytes;
            validate_topic_list(&mut reader, true)?;
            Packet::Subscribe(Subscribe {
                packet_id,
                topics: SubscribeTopics::Encoded(payload),
            })
        }
        PacketType::Unsubscribe => {
            let packet_id = reader.packet_id()?;
            let payload = reader.bytes;
            validate_topic_list(&mut reader, false)?;
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                topics: UnsubscribeTopics::Encoded(payload),
            })
        }
        PacketType::SubAck => {
            let packet_id = reader.packet_id()?;
            let return_codes = reader.bytes;
            if return_codes.is_empty() {
                return Err(DecodeError::EmptyPayload { packet_type });
            }
            if let Some(&bad) = return_codes
                .iter()
                .find(|&&c| SubscribeReturnCode::from_u8(c).is_none())
            {
                return Err(DecodeError::InvalidSubAckReturnCode(bad));
            }
            Packet::SubAck(SubAck {
                packet_id,
                return_codes,
            })
        }
        PacketType::PingReq => {
            reader.expect_len(0)?;
            Packet::PingReq
        }
        PacketType::PingResp => {
            reader.expect_len(0)?;
            Packet::PingResp
        }
        PacketType::Disconnect => {
            reader.expect_len(0)?;
            Packet::Disconnect
        }
    };
    Ok(packet)
}

fn validate_topic_list(reader: &mut Reader<'_>, with_qos: bool) -> Result<(), DecodeError> {
    if reader.bytes.is_empty() {
        return Err(DecodeError::EmptyPayload {
            packet_type: reader.packet_type,
        });
    }
    while !reader.bytes.is_empty() {
        let filter = reader.string()?;
        validate_topic_filter(filter).map_err(DecodeError::InvalidTopicFilter)?;
        if with_qos {
            let requested = reader.u8()?;
            if requested > 2 {
                return Err(DecodeError::InvalidRequestedQoS(requested));
            }
        }
    }
    Ok(())
}

fn decode_connect(mut reader: Reader<'_>) -> Result<Packet<'_>, DecodeError> {
    let protocol = match (reader.string()?, reader.u8()?) {
        ("MQTT", 4) => ProtocolVersion::V311,
        ("MQIsdp", 3) => ProtocolVersion::V31,
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
    if password_flag && !username_flag {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let client_id = reader.string()?;
    let will = if will_flag {
        let topic = reader.string()?;
        validate_topic_name(topic).map_err(DecodeError::InvalidTopicName)?;
        let payload = reader.binary()?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
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
    }))
}

/// A cursor over a packet body; every read is bounds-checked against the body.
struct Reader<'a> {
    bytes: &'a [u8],
    packet_type: PacketType,
}

impl<'a> Reader<'a> {
    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            packet_type: self.packet_type,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(self.truncated());
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
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

    fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    fn string(&mut self) -> Result<&'a str, DecodeError> {
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
