//! Standard base64 (RFC 4648, with padding) for password hashes and PEM.

/// Standard base64 with padding, as mosquitto's password file expects.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let value = chunk.iter().enumerate().fold(0u32, |value, (index, byte)| {
            value | u32::from(*byte) << (16 - 8 * index)
        });
        for index in 0..4 {
            if index <= chunk.len() {
                text.push(char::from(
                    ALPHABET[((value >> (18 - 6 * index)) & 0x3F) as usize],
                ));
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// Decodes standard base64, ignoring whitespace; `None` on any other
/// character outside the alphabet.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut accumulator = 0u32;
    let mut bits = 0u32;
    for character in text.bytes() {
        let value = match character {
            b'A'..=b'Z' => character - b'A',
            b'a'..=b'z' => character - b'a' + 26,
            b'0'..=b'9' => character - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        accumulator = (accumulator << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((accumulator >> bits) as u8);
            accumulator &= (1 << bits) - 1;
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::encode as base64;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn decode_inverts_encode() {
        for length in 0..40u8 {
            let bytes: Vec<u8> = (0..length).map(|index| index.wrapping_mul(97)).collect();
            assert_eq!(super::decode(&base64(&bytes)), Some(bytes));
        }
        assert_eq!(super::decode("Zm9v\nYmFy"), Some(b"foobar".to_vec()));
        assert_eq!(super::decode("Zm9v!"), None);
    }
}
