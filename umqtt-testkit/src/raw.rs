//! A deliberately tiny MQTT 3.1.1 byte builder and reader.
//!
//! It lets the broker self-tests (and low-level transport tests) speak to
//! mosquitto without depending on the codec under test: if the codec is
//! wrong, these bytes are still right. Only what those tests need is here;
//! every builder follows the packet layouts of MQTT 3.1.1 section 3.

use std::io::{self, Read};

/// PINGREQ: fixed header only ([MQTT-3.12]).
pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
/// DISCONNECT: fixed header only ([MQTT-3.14]).
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];
/// CONNACK "accepted, no session present" ([MQTT-3.2]).
pub const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// Packet type of a fixed header's first byte (the high nibble).
pub fn packet_type(first_byte: u8) -> u8 {
    first_byte >> 4
}

/// CONNECT with protocol level 4, no will, no credentials.
pub fn connect(client_id: &str, keep_alive_seconds: u16, clean_session: bool) -> Vec<u8> {
    connect_with_credentials(client_id, keep_alive_seconds, clean_session, None)
}

/// CONNECT with optional user name and password.
pub fn connect_with_credentials(
    client_id: &str,
    keep_alive_seconds: u16,
    clean_session: bool,
    credentials: Option<(&str, &str)>,
) -> Vec<u8> {
    let mut flags = 0u8;
    if clean_session {
        flags |= 0x02;
    }
    if credentials.is_some() {
        flags |= 0x80 | 0x40;
    }
    let mut body = Vec::new();
    push_string(&mut body, "MQTT");
    body.push(4);
    body.push(flags);
    body.extend_from_slice(&keep_alive_seconds.to_be_bytes());
    push_string(&mut body, client_id);
    if let Some((user_name, password)) = credentials {
        push_string(&mut body, user_name);
        push_string(&mut body, password);
    }
    frame(0x10, &body)
}

/// PUBLISH at QoS 0.
pub fn publish(topic: &str, payload: &[u8], retain: bool) -> Vec<u8> {
    let mut body = Vec::new();
    push_string(&mut body, topic);
    body.extend_from_slice(payload);
    frame(0x30 | u8::from(retain), &body)
}

/// PUBLISH at QoS 1 or 2 with the given packet identifier.
pub fn publish_qos(topic: &str, payload: &[u8], qos: u8, packet_id: u16, retain: bool) -> Vec<u8> {
    let mut body = Vec::new();
    push_string(&mut body, topic);
    body.extend_from_slice(&packet_id.to_be_bytes());
    body.extend_from_slice(payload);
    frame(0x30 | ((qos & 0x03) << 1) | u8::from(retain), &body)
}

/// SUBSCRIBE to one topic filter.
pub fn subscribe(packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&packet_id.to_be_bytes());
    push_string(&mut body, filter);
    body.push(qos);
    // SUBSCRIBE's fixed header flags must be 0010 [MQTT-3.8.1-1].
    frame(0x82, &body)
}

/// Reads one whole packet: returns the fixed header's first byte and the
/// variable header plus payload.
pub fn read_packet(reader: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    reader.read_exact(&mut first)?;
    let mut length = 0usize;
    for index in 0..4 {
        let mut byte = [0u8; 1];
        reader.read_exact(&mut byte)?;
        length |= usize::from(byte[0] & 0x7F) << (7 * index);
        if byte[0] & 0x80 == 0 {
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            return Ok((first[0], body));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "remaining length longer than 4 bytes",
    ))
}

/// Splits a received PUBLISH body into topic and payload (QoS 0 only:
/// there is no packet identifier to skip).
pub fn parse_publish_qos0(body: &[u8]) -> Option<(String, Vec<u8>)> {
    let length = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let topic = body.get(2..2 + length)?;
    let payload = body.get(2 + length..)?;
    Some((
        String::from_utf8_lossy(topic).into_owned(),
        payload.to_vec(),
    ))
}

fn push_string(buffer: &mut Vec<u8>, text: &str) {
    let length = u16::try_from(text.len()).expect("test strings fit in 65535 bytes");
    buffer.extend_from_slice(&length.to_be_bytes());
    buffer.extend_from_slice(text.as_bytes());
}

fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![first_byte];
    let mut length = body.len();
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if length == 0 {
            break;
        }
    }
    packet.extend_from_slice(body);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_matches_the_reference_bytes() {
        let expected = [
            0x10, 0x0E, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02,
            0x74, 0x31,
        ];
        assert_eq!(connect("t1", 60, true), expected);
    }

    #[test]
    fn read_packet_reads_multi_byte_lengths() {
        let packet = publish("t", &[7u8; 200], false);
        let (first, body) = read_packet(&mut packet.as_slice()).unwrap();
        assert_eq!(first, 0x30);
        assert_eq!(
            parse_publish_qos0(&body),
            Some(("t".to_owned(), vec![7u8; 200]))
        );
    }
}
