//! Decodes arbitrary bytes, packet after packet, with an arbitrary maximum packet size.
//!
//! Invariants checked for every input:
//! - `decode` never panics and never consumes more than it was given or than the maximum;
//! - every packet it decodes encodes again, and decoding that gives the same packet;
//! - when the input used the shortest remaining-length encoding, re-encoding reproduces the
//!   input bytes exactly;
//! - an `Incomplete` verdict holds for every prefix of the input too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use umqtt_core::packet::{decode, Decoded};

fuzz_target!(|input: (u32, &[u8])| {
    let (max, data) = input;
    // Half the inputs use no limit, the others a limit that small packets can hit.
    let max = if max & 1 == 0 {
        usize::MAX
    } else {
        (max >> 1) as usize % 4096
    };
    let mut rest = data;
    loop {
        match decode(rest, max) {
            Ok(Decoded::Complete { packet, consumed }) => {
                assert!(consumed >= 2 && consumed <= rest.len() && consumed <= max);
                let len = packet
                    .encoded_len()
                    .unwrap_or_else(|e| panic!("{packet:?} was decoded but does not encode: {e}"));
                assert!(len <= consumed);
                let mut buf = vec![0u8; len];
                assert_eq!(packet.encode(&mut buf), Ok(len));
                match decode(&buf, usize::MAX) {
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
                    assert_eq!(decode(&rest[..end], max), Ok(Decoded::Incomplete));
                }
                break;
            }
            Err(_) => break,
        }
    }
});
