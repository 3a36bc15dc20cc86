//! Decodes arbitrary bytes as MQTT 5, packet after packet, with an arbitrary maximum packet
//! size: the `decode` target's invariants for the MQTT 5 decoder (properties, reason codes,
//! AUTH, short forms).
//!
//! Invariants checked for every input:
//! - `decode_with(.., V5)` never panics and never consumes more than it was given or than the
//!   maximum;
//! - every packet it decodes encodes again as MQTT 5 (so the decoder accepts nothing the
//!   encoder refuses: property allow lists, duplicates, values, reason codes), and decoding that
//!   gives the same packet;
//! - when re-encoding gives as many bytes as were read, they are the input bytes;
//! - a non-empty decoded property block yields properties when iterated, and a CONNACK's
//!   Receive Maximum getter agrees with the iteration (and is never 0);
//! - an `Incomplete` verdict holds for every prefix of the input too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use umqtt_core::packet::{decode_with, Decoded, Packet, Properties, ProtocolVersion};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A decoded block is non-empty exactly when its iteration is.
fn check_properties(packet: &Packet<'_>, properties: &Properties<'_>) {
    let listed: Vec<_> = properties.iter().collect();
    if let Properties::Encoded(bytes) = properties {
        assert_eq!(
            listed.is_empty(),
            bytes.is_empty(),
            "{packet:?}: properties {bytes:02X?} iterate as {listed:?}"
        );
    }
}

fn properties_of<'a>(packet: &Packet<'a>) -> Vec<Properties<'a>> {
    match packet {
        Packet::Connect(c) => {
            let mut v = vec![c.properties];
            if let Some(w) = c.will {
                v.push(w.properties);
            }
            v
        }
        Packet::ConnAck(a) => vec![a.properties],
        Packet::Publish(p) => vec![p.properties],
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            vec![a.properties]
        }
        Packet::Subscribe(s) => vec![s.properties],
        Packet::SubAck(s) => vec![s.properties],
        Packet::Unsubscribe(u) => vec![u.properties],
        Packet::UnsubAck(u) => vec![u.properties],
        Packet::Disconnect(d) => vec![d.properties],
        Packet::Auth(a) => vec![a.properties],
        Packet::PingReq | Packet::PingResp => vec![],
    }
}

fuzz_target!(|input: (u32, &[u8])| {
    let (max, data) = input;
    let max = if max & 1 == 0 {
        usize::MAX
    } else {
        (max >> 1) as usize % 4096
    };
    let mut rest = data;
    loop {
        match decode_with(rest, max, V5) {
            Ok(Decoded::Complete { packet, consumed }) => {
                assert!(consumed >= 2 && consumed <= rest.len() && consumed <= max);
                for properties in properties_of(&packet) {
                    check_properties(&packet, &properties);
                }
                if let Packet::ConnAck(ack) = &packet {
                    let receive_maximum = ack.properties.iter().find_map(|p| match p {
                        umqtt_core::packet::Property::ReceiveMaximum(v) => Some(v),
                        _ => None,
                    });
                    assert_eq!(ack.properties.receive_maximum(), receive_maximum);
                    assert_ne!(receive_maximum, Some(0));
                }
                let len = packet
                    .encoded_len_with(V5)
                    .unwrap_or_else(|e| panic!("{packet:?} was decoded but does not encode: {e}"));
                assert!(len <= consumed);
                let mut buf = vec![0u8; len];
                assert_eq!(packet.encode_with(&mut buf, V5), Ok(len));
                match decode_with(&buf, usize::MAX, V5) {
                    Ok(Decoded::Complete {
                        packet: again,
                        consumed: c,
                    }) => {
                        assert_eq!(c, len);
                        assert_eq!(again, packet);
                    }
                    other => panic!("{packet:?} re-encoded as {buf:02X?} decodes to {other:?}"),
                }
                if len == consumed {
                    assert_eq!(&buf[..], &rest[..consumed]);
                }
                rest = &rest[consumed..];
            }
            Ok(Decoded::Incomplete) => {
                for end in 0..rest.len() {
                    assert_eq!(decode_with(&rest[..end], max, V5), Ok(Decoded::Incomplete));
                }
                break;
            }
            Err(_) => break,
        }
    }
});
