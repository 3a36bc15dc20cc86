//! `sub -F FORMAT`: mosquitto_sub 2.0's output format, byte for byte.
//!
//! `%` conversions take mosquitto's optional flag (`-` left-aligns, `0` pads numbers with
//! zeros), field width and `.precision`:
//!
//! | conversion | prints |
//! |---|---|
//! | `%%` | `%` |
//! | `%t` | topic (width and precision as printf's `%s`) |
//! | `%p` | payload, raw; a width also *cuts* it to that many bytes, as mosquitto |
//! | `%x` `%X` | payload in lower / upper case hex (a width counts hex digits) |
//! | `%l` | payload length |
//! | `%m` | packet id (0 for QoS 0) |
//! | `%q` | QoS |
//! | `%r` | retain flag, `0` or `1` |
//! | `%I` | ISO 8601 local time, `2026-11-30T13:47:50+0000` |
//! | `%U` | Unix time with nanoseconds, `1796046470.896904342` |
//! | `%j` | JSON with the payload as a string |
//! | `%J` | JSON with the payload as JSON (an error line if it is not) |
//! | `%A` `%E` `%F` `%S` | MQTT 5 topic alias, message expiry interval, payload format indicator, (first) subscription identifier; padding when absent |
//! | `%C` `%R` | MQTT 5 content type, response topic (width and precision as `%t`); `%C` pads when absent |
//! | `%D` | MQTT 5 correlation data, raw |
//! | `%P` | MQTT 5 user properties, `name:value` separated by spaces |
//!
//! `@X` is the C library's `strftime` conversion `%X` of the local time (`@Y-@m-@d`), `@N`
//! the nanoseconds, `@@` an `@`. Escapes: `\\ \0 \a \e \n \r \t \v`. A newline follows each
//! message unless `-N`. The checks and error texts are mosquitto's (`Incomplete format
//! specifier.`, `Invalid format specifier 'Z'.`…).

use std::time::SystemTime;

use umqtt::Message;

use crate::clock::{LocalTime, Zone};
use crate::json;

/// One piece of a format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Literal(Vec<u8>),
    Conversion(Spec),
    /// `@X`: strftime conversion `X`.
    Time(char),
    /// `@N`: nanoseconds, 9 digits.
    Nanos,
}

/// A `%` conversion with its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    conversion: char,
    left: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
}

/// A checked `-F` format.
#[derive(Debug, Clone)]
pub struct Format {
    items: Vec<Item>,
    zone: Zone,
    pretty: bool,
}

/// What a message needs besides [`Message`] itself.
#[derive(Debug, Clone, Copy)]
pub struct Extra {
    /// The packet id it came with (0 at QoS 0).
    pub packet_id: u16,
    /// When it is printed.
    pub now: SystemTime,
}

const CONVERSIONS: &str = "%ACDEFIlmPpqRSrtjJUxX";

impl Format {
    /// Checks `text` as mosquitto does; the error is mosquitto's line without `Error: `.
    pub fn parse(text: &str, pretty: bool) -> Result<Format, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut items = Vec::new();
        let mut literal = String::new();
        let incomplete = || "Incomplete format specifier.".to_owned();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '%' => {
                    let mut spec = Spec {
                        conversion: '%',
                        left: false,
                        zero: false,
                        width: 0,
                        precision: None,
                    };
                    i += 1;
                    // One flag character, as mosquitto checks (`%-05t` reads `-`, then `0` as
                    // the padding flag, as mosquitto prints it).
                    match chars.get(i) {
                        Some('-') => {
                            spec.left = true;
                            i += 1;
                            if chars.get(i) == Some(&'0') {
                                spec.zero = true;
                                i += 1;
                            }
                        }
                        Some('0') => {
                            spec.zero = true;
                            i += 1;
                        }
                        _ => {}
                    }
                    while let Some(digit) = chars.get(i).and_then(|c| c.to_digit(10)) {
                        spec.width = spec.width.saturating_mul(10).saturating_add(digit as usize);
                        i += 1;
                    }
                    if chars.get(i) == Some(&'.') {
                        i += 1;
                        let mut precision = 0usize;
                        while let Some(digit) = chars.get(i).and_then(|c| c.to_digit(10)) {
                            precision = precision.saturating_mul(10).saturating_add(digit as usize);
                            i += 1;
                        }
                        spec.precision = Some(precision);
                    }
                    let Some(&conversion) = chars.get(i) else {
                        return Err(incomplete());
                    };
                    if !CONVERSIONS.contains(conversion) {
                        return Err(format!("Invalid format specifier '{conversion}'."));
                    }
                    spec.conversion = conversion;
                    flush(&mut literal, &mut items);
                    items.push(Item::Conversion(spec));
                }
                '@' => {
                    i += 1;
                    match chars.get(i) {
                        None => return Err(incomplete()),
                        Some('@') => literal.push('@'),
                        Some('N') => {
                            flush(&mut literal, &mut items);
                            items.push(Item::Nanos);
                        }
                        Some(&other) => {
                            flush(&mut literal, &mut items);
                            items.push(Item::Time(other));
                        }
                    }
                }
                '\\' => {
                    i += 1;
                    let byte = match chars.get(i) {
                        None => return Err("Incomplete escape specifier.".to_owned()),
                        Some('\\') => '\\',
                        Some('0') => '\0',
                        Some('a') => '\x07',
                        Some('e') => '\x1b',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('v') => '\x0b',
                        Some(other) => return Err(format!("Invalid escape specifier '{other}'.")),
                    };
                    literal.push(byte);
                }
                other => literal.push(other),
            }
            i += 1;
        }
        flush(&mut literal, &mut items);
        Ok(Format {
            items,
            zone: Zone::local(),
            pretty,
        })
    }

    /// Appends `message` as formatted (without the end of line) to `out`; returns the error
    /// lines to print on stderr (`%J` with a payload that is not JSON).
    pub fn render(&self, message: &Message, extra: Extra, out: &mut Vec<u8>) -> Vec<String> {
        let mut errors = Vec::new();
        let mut time: Option<LocalTime> = None;
        for item in &self.items {
            match item {
                Item::Literal(bytes) => out.extend_from_slice(bytes),
                Item::Time(conversion) => {
                    let time = time.get_or_insert_with(|| self.zone.local_time(extra.now));
                    let mut text = String::new();
                    time.strftime(*conversion, &mut text);
                    out.extend_from_slice(text.as_bytes());
                }
                Item::Nanos => {
                    let time = time.get_or_insert_with(|| self.zone.local_time(extra.now));
                    out.extend_from_slice(format!("{:09}", time.nanos).as_bytes());
                }
                Item::Conversion(spec) => {
                    if let Err(error) = self.conversion(spec, message, extra, out) {
                        errors.push(error);
                    }
                }
            }
        }
        errors
    }

    fn conversion(
        &self,
        spec: &Spec,
        message: &Message,
        extra: Extra,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let pad = if spec.zero { b'0' } else { b' ' };
        match spec.conversion {
            '%' => out.push(b'%'),
            't' => string(out, message.topic.as_bytes(), spec),
            'p' => payload(out, &message.payload, Hex::No, spec, pad),
            'x' => payload(out, &message.payload, Hex::Lower, spec, pad),
            'X' => payload(out, &message.payload, Hex::Upper, spec, pad),
            'l' => integer(out, message.payload.len() as i64, spec),
            'm' => integer(out, i64::from(extra.packet_id), spec),
            'q' => out.push(b'0' + message.qos as u8),
            'r' => out.push(if message.retain { b'1' } else { b'0' }),
            'I' => {
                let time = self.zone.local_time(extra.now);
                let mut text = String::new();
                for conversion in ['F', 'T', 'z'] {
                    time.strftime(conversion, &mut text);
                    if conversion == 'F' {
                        text.push('T');
                    }
                }
                string(out, text.as_bytes(), spec);
            }
            'U' => {
                let time = self.zone.local_time(extra.now);
                out.extend_from_slice(format!("{}.{:09}", time.unix, time.nanos).as_bytes());
            }
            'j' | 'J' => {
                let time = self.zone.local_time(extra.now);
                let document = json::message(
                    message,
                    extra.packet_id,
                    &time,
                    spec.conversion == 'j',
                    self.pretty,
                );
                match document {
                    Some(text) => out.extend_from_slice(&text),
                    None => {
                        return Err(format!(
                            "Message payload is not valid JSON on topic {}.",
                            message.topic
                        ))
                    }
                }
            }
            // MQTT 5 properties (none with MQTT 3.1.1). Numbers as printf's %d of a C int
            // (mosquitto casts the 32-bit ones); an absent number or content type prints the
            // padding of its width, an absent D, P or R nothing.
            'A' | 'E' | 'F' | 'S' => {
                let properties = message.properties();
                let value = match spec.conversion {
                    'A' => properties.topic_alias().map(i64::from),
                    'E' => properties
                        .message_expiry_interval()
                        .map(|v| i64::from(v as i32)),
                    'F' => properties.payload_format_indicator().map(i64::from),
                    _ => properties
                        .subscription_identifiers()
                        .next()
                        .map(|v| i64::from(v as i32)),
                };
                match value {
                    Some(value) => integer(out, value, spec),
                    None => out.extend(std::iter::repeat_n(pad, spec.width)),
                }
            }
            'C' => match message.properties().content_type() {
                Some(text) => string(out, text.as_bytes(), spec),
                None => out.extend(std::iter::repeat_n(b' ', spec.width)),
            },
            'R' => {
                if let Some(text) = message.properties().response_topic() {
                    string(out, text.as_bytes(), spec);
                }
            }
            'D' => {
                if let Some(data) = message.properties().correlation_data() {
                    out.extend_from_slice(data);
                }
            }
            // `name:value`, separated by spaces.
            'P' => {
                for (i, (name, value)) in message.user_properties().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(name.as_bytes());
                    out.push(b':');
                    out.extend_from_slice(value.as_bytes());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn flush(literal: &mut String, items: &mut Vec<Item>) {
    if !literal.is_empty() {
        items.push(Item::Literal(std::mem::take(literal).into_bytes()));
    }
}

/// printf's `%*.*s` / `%-*.*s`: precision cuts (in bytes), width pads with spaces.
fn string(out: &mut Vec<u8>, value: &[u8], spec: &Spec) {
    let value = match spec.precision {
        Some(precision) => &value[..precision.min(value.len())],
        None => value,
    };
    let padding = spec.width.saturating_sub(value.len());
    if !spec.left {
        out.extend(std::iter::repeat_n(b' ', padding));
    }
    out.extend_from_slice(value);
    if spec.left {
        out.extend(std::iter::repeat_n(b' ', padding));
    }
}

/// printf's `%d`, `%-*d`, `%0*d`, `%*d`.
fn integer(out: &mut Vec<u8>, value: i64, spec: &Spec) {
    let text = value.to_string();
    let padding = spec.width.saturating_sub(text.len());
    if spec.left {
        out.extend_from_slice(text.as_bytes());
        out.extend(std::iter::repeat_n(b' ', padding));
    } else if spec.zero {
        let (sign, digits) = match text.strip_prefix('-') {
            Some(digits) => ("-", digits),
            None => ("", text.as_str()),
        };
        out.extend_from_slice(sign.as_bytes());
        out.extend(std::iter::repeat_n(b'0', padding));
        out.extend_from_slice(digits.as_bytes());
    } else {
        out.extend(std::iter::repeat_n(b' ', padding));
        out.extend_from_slice(text.as_bytes());
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hex {
    No,
    Lower,
    Upper,
}

/// mosquitto's payload printing: a width cuts the payload to at most that many bytes (hex: to
/// half as many bytes, each two digits) and pads what is left with `pad` (spaces when
/// left-aligned).
fn payload(out: &mut Vec<u8>, payload: &[u8], hex: Hex, spec: &Spec, pad: u8) {
    let mut length = payload.len();
    let mut padding = 0;
    if spec.width > 0 {
        length = length.min(spec.width);
        if hex == Hex::No {
            padding = spec.width - length;
        } else {
            length /= 2;
            padding = spec.width - length * 2;
        }
    }
    if !spec.left {
        out.extend(std::iter::repeat_n(pad, padding));
    }
    let shown = &payload[..length];
    match hex {
        Hex::No => out.extend_from_slice(shown),
        Hex::Lower => {
            for byte in shown {
                out.extend_from_slice(format!("{byte:02x}").as_bytes());
            }
        }
        Hex::Upper => {
            for byte in shown {
                out.extend_from_slice(format!("{byte:02X}").as_bytes());
            }
        }
    }
    if spec.left {
        out.extend(std::iter::repeat_n(b' ', padding));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};
    use umqtt::QoS;

    fn render(format: &str, payload: &[u8]) -> Vec<u8> {
        let mut format = Format::parse(format, false).unwrap();
        format.zone = Zone::default();
        let message = Message {
            topic: "a/b".to_owned(),
            payload: payload.to_vec(),
            qos: QoS::AtLeastOnce,
            retain: true,
            dup: false,
            packet_id: None,
            properties: Vec::new(),
        };
        let extra = Extra {
            packet_id: 9,
            now: UNIX_EPOCH + Duration::new(1_796_046_470, 896_904_342),
        };
        let mut out = Vec::new();
        format.render(&message, extra, &mut out);
        out
    }

    /// Expected bytes as mosquitto_sub 2.0.11 printed them for the same message.
    #[test]
    fn conversions_match_mosquitto() {
        let payload = b"hello \"w\"";
        let cases: [(&str, &[u8]); 9] = [
            ("%t|%p|%q|%r|%l|%m", b"a/b|hello \"w\"|1|1|9|9"),
            ("%x %X", b"68656c6c6f20227722 68656C6C6F20227722"),
            (
                "%10t|%-10t|%.2t|%5.1t|%05l|%-5l|",
                b"       a/b|a/b       |a/|    a|00009|9    |",
            ),
            (
                "%10p|%-10p|%.2p|%10x|%3x|",
                b" hello \"w\"|hello \"w\" |hello \"w\"|  68656c6c| 68|",
            ),
            (
                "%A|%5A|%C|%5C|%D|%E|%F|%P|%R|%S|%05S|",
                b"|     ||     |||||||00000|",
            ),
            ("\\n\\t\\e\\a\\0\\v\\r|\\\\", b"\n\t\x1b\x07\0\x0b\r|\\"),
            ("@Y-@m @@ @N %%", b"2026-11 @ 896904342 %"),
            ("%I|%U", b"2026-11-30T13:47:50+0000|1796046470.896904342"),
            ("%-05t|%.t", b"a/b  |"),
        ];
        for (format, expected) in cases {
            let out = render(format, payload);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expected),
                "{format}"
            );
        }
    }

    /// The MQTT 5 conversions, against what mosquitto_sub 2.0.11 printed for a message with
    /// these properties (in the order the broker sent them).
    #[test]
    fn property_conversions_match_mosquitto() {
        use umqtt_core::packet::{PacketType, Properties, Property, PropertyList};
        let list = [
            Property::SubscriptionIdentifier(3),
            Property::UserProperty("k", "v"),
            Property::UserProperty("k", "v2"),
            Property::ContentType("text/plain"),
            Property::ResponseTopic("r/t"),
            Property::CorrelationData(b"c d"),
            Property::PayloadFormatIndicator(true),
            Property::MessageExpiryInterval(100),
        ];
        let mut format = Format::parse(
            "%t|%P|%C|%R|%D|%E|%F|%S|%A|%5A|%5S|%-5E|%05F|%5C|%.2C|%-6R|%j",
            false,
        )
        .unwrap();
        format.zone = Zone::default();
        let message = Message {
            topic: "w/1".to_owned(),
            payload: b"{\"a\":1}".to_vec(),
            qos: QoS::AtMostOnce,
            retain: false,
            dup: false,
            packet_id: None,
            properties: Properties::List(&PropertyList(&list))
                .encode_for(PacketType::Publish, false)
                .unwrap(),
        };
        let extra = Extra {
            packet_id: 0,
            now: UNIX_EPOCH + Duration::new(1_796_046_470, 896_904_342),
        };
        let mut out = Vec::new();
        format.render(&message, extra, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "w/1|k:v k:v2|text/plain|r/t|c d|100|1|3||     |    3|100  |00001|text/plain|te|r/t   \
             |{\"tst\":\"2026-11-30T13:47:50.896904Z+0000\",\"topic\":\"w/1\",\"qos\":0,\
             \"retain\":0,\"payloadlen\":7,\"properties\":{\"subscription-identifier\":3,\
             \"user-properties\":{\"k\":\"v\",\"k\":\"v2\"},\"content-type\":\"text/plain\",\
             \"response-topic\":\"r/t\",\"correlation-data\":\"c d\",\
             \"payload-format-indicator\":1,\"message-expiry-interval\":100},\
             \"payload\":\"{\\\"a\\\":1}\"}"
        );
    }

    #[test]
    fn bad_formats_get_mosquittos_errors() {
        for (format, error) in [
            ("%", "Incomplete format specifier."),
            ("%0", "Incomplete format specifier."),
            ("%-", "Incomplete format specifier."),
            ("%1", "Incomplete format specifier."),
            ("%.", "Incomplete format specifier."),
            ("%.1", "Incomplete format specifier."),
            ("abc%q%", "Incomplete format specifier."),
            ("%Z", "Invalid format specifier 'Z'."),
            ("@", "Incomplete format specifier."),
            ("\\", "Incomplete escape specifier."),
            ("\\Z", "Invalid escape specifier 'Z'."),
        ] {
            assert_eq!(Format::parse(format, false).unwrap_err(), error, "{format}");
        }
    }
}
