//! `sub -F %j / %J`: the JSON document mosquitto_sub 2.0 prints, which it builds with cJSON.
//!
//! So that scripts see the same bytes, this follows cJSON's rules: keys in the order `tst`,
//! `topic`, `qos`, `retain`, `payloadlen`, `mid` (QoS 1/2 only), `properties` (MQTT 5, when
//! the message has any), `payload`; strings escaped
//! as cJSON does (`\"`, `\\`, `\b \f \n \r \t`, other control bytes as `\u00XX`, everything
//! else raw); `%j` takes the payload as a C string (up to its first NUL byte, `null` when
//! empty); `%J` parses it as JSON and prints it again minified (numbers as cJSON prints them:
//! `%1.15g`, else `%1.17g` when 15 significant digits do not read back); `--pretty` indents as `cJSON_Print` (tabs, `"key":\tvalue`, arrays on one line).

use std::fmt::Write as _;

use umqtt::Message;

use crate::clock::LocalTime;

/// Deepest nesting accepted, as cJSON's `CJSON_NESTING_LIMIT`.
const NESTING_LIMIT: usize = 1000;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(Vec<u8>),
    Array(Vec<Value>),
    Object(Vec<(Vec<u8>, Value)>),
}

/// The `%j` (`escaped`) or `%J` document for `message`; `None` for `%J` when the payload is
/// not JSON.
pub fn message(
    message: &Message,
    packet_id: u16,
    time: &LocalTime,
    escaped: bool,
    pretty: bool,
) -> Option<Vec<u8>> {
    let mut tst = String::new();
    for conversion in ['Y', 'm', 'd'] {
        if !tst.is_empty() {
            tst.push('-');
        }
        time.strftime(conversion, &mut tst);
    }
    tst.push('T');
    time.strftime('T', &mut tst);
    let _ = write!(tst, ".{:06}Z{}", time.nanos / 1000, time.offset_text());

    let payload = if message.payload.is_empty() {
        Value::Null
    } else if escaped {
        let end = message
            .payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(message.payload.len());
        Value::String(message.payload[..end].to_vec())
    } else {
        parse(&message.payload)?
    };
    let mut fields = vec![
        (b"tst".to_vec(), Value::String(tst.into_bytes())),
        (
            b"topic".to_vec(),
            Value::String(message.topic.as_bytes().to_vec()),
        ),
        (b"qos".to_vec(), Value::Number(f64::from(message.qos as u8))),
        (
            b"retain".to_vec(),
            Value::Number(f64::from(u8::from(message.retain))),
        ),
        (
            b"payloadlen".to_vec(),
            Value::Number(message.payload.len() as f64),
        ),
    ];
    if message.qos as u8 > 0 {
        fields.push((b"mid".to_vec(), Value::Number(f64::from(packet_id))));
    }
    if !message.properties.is_empty() {
        fields.push((b"properties".to_vec(), properties(message)));
    }
    fields.push((b"payload".to_vec(), payload));
    let mut out = Vec::new();
    print(&Value::Object(fields), pretty, 0, &mut out);
    Some(out)
}

/// The MQTT 5 properties as mosquitto_sub's `json_print_properties` lists them: in the order
/// received, named as mosquitto names them, user properties gathered in one
/// `user-properties` object (at the place of the first, duplicate names kept), correlation
/// data as a C string (up to its first NUL byte).
fn properties(message: &Message) -> Value {
    use umqtt_core::packet::Property;
    let mut fields: Vec<(Vec<u8>, Value)> = Vec::new();
    let mut user: Option<usize> = None;
    // mosquitto reads a topic alias with the wrong identifier, so it prints the last 16-bit
    // value it read: the length of a correlation data before it, else 0 (a broker that sends
    // topic aliases is rare: mosquitto never does).
    let mut last_sixteen_bits = 0u16;
    for property in message.properties().iter() {
        let (name, value) = match property {
            Property::PayloadFormatIndicator(flag) => (
                "payload-format-indicator",
                Value::Number(f64::from(u8::from(flag))),
            ),
            Property::MessageExpiryInterval(seconds) => {
                ("message-expiry-interval", Value::Number(f64::from(seconds)))
            }
            Property::ContentType(text) => {
                ("content-type", Value::String(text.as_bytes().to_vec()))
            }
            Property::ResponseTopic(text) => {
                ("response-topic", Value::String(text.as_bytes().to_vec()))
            }
            Property::CorrelationData(data) => {
                last_sixteen_bits = data.len() as u16;
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                ("correlation-data", Value::String(data[..end].to_vec()))
            }
            Property::SubscriptionIdentifier(id) => {
                ("subscription-identifier", Value::Number(f64::from(id)))
            }
            Property::TopicAlias(_) => ("topic-alias", Value::Number(f64::from(last_sixteen_bits))),
            Property::UserProperty(name, value) => {
                let index = *user.get_or_insert_with(|| {
                    fields.push((b"user-properties".to_vec(), Value::Object(Vec::new())));
                    fields.len() - 1
                });
                if let Value::Object(pairs) = &mut fields[index].1 {
                    pairs.push((
                        name.as_bytes().to_vec(),
                        Value::String(value.as_bytes().to_vec()),
                    ));
                }
                continue;
            }
            // PUBLISH carries no other property.
            _ => continue,
        };
        fields.push((name.as_bytes().to_vec(), value));
    }
    Value::Object(fields)
}

/// Parses a whole document, as `cJSON_ParseWithOpts(…, require_null_terminated)` with the
/// end required to be the end of the payload.
fn parse(bytes: &[u8]) -> Option<Value> {
    let mut parser = Parser { bytes, at: 0 };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    (parser.at == bytes.len()).then_some(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// cJSON skips every byte up to and including space.
    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b <= 32 && b != 0) {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        let rest = &self.bytes[self.at..];
        for (word, value) in [
            (&b"null"[..], Value::Null),
            (b"false", Value::Bool(false)),
            (b"true", Value::Bool(true)),
        ] {
            if rest.starts_with(word) {
                self.at += word.len();
                return Some(value);
            }
        }
        match self.peek()? {
            b'"' => self.string().map(Value::String),
            b'-' | b'0'..=b'9' => self.number(),
            b'[' => self.array(depth + 1),
            b'{' => self.object(depth + 1),
            _ => None,
        }
    }

    /// cJSON gathers `0-9 + - e E .` and lets `strtod` take the longest number it can.
    fn number(&mut self) -> Option<Value> {
        let candidate = self.bytes[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || b"+-eE.".contains(b))
            .count();
        let text = &self.bytes[self.at..self.at + candidate];
        let length = strtod_length(text);
        if length == 0 {
            return None;
        }
        let number: f64 = std::str::from_utf8(&text[..length]).ok()?.parse().ok()?;
        self.at += length;
        Some(Value::Number(number))
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        self.at += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let byte = self.peek()?;
            self.at += 1;
            match byte {
                b'"' => return Some(out),
                b'\\' => {
                    let escape = self.peek()?;
                    self.at += 1;
                    match escape {
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'"' | b'\\' | b'/' => out.push(escape),
                        b'u' => {
                            let mut code = u32::from(self.hex4()?);
                            if (0xDC00..0xE000).contains(&code) {
                                return None;
                            }
                            if (0xD800..0xDC00).contains(&code) {
                                if self.bytes.get(self.at..self.at + 2)? != b"\\u" {
                                    return None;
                                }
                                self.at += 2;
                                let low = u32::from(self.hex4()?);
                                if !(0xDC00..0xE000).contains(&low) {
                                    return None;
                                }
                                code = 0x10000 + ((code & 0x3FF) << 10) + (low & 0x3FF);
                            }
                            let character = char::from_u32(code)?;
                            let mut buffer = [0u8; 4];
                            out.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
                        }
                        _ => return None,
                    }
                }
                other => out.push(other),
            }
        }
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.bytes.get(self.at..self.at + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.at += 4;
        u16::from_str_radix(text, 16).ok()
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        if depth > NESTING_LIMIT {
            return None;
        }
        self.at += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(Value::Array(items));
                }
                _ => return None,
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        if depth > NESTING_LIMIT {
            return None;
        }
        self.at += 1;
        let mut fields = Vec::new();
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(Value::Object(fields));
        }
        loop {
            self.skip_whitespace();
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.skip_whitespace();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            self.skip_whitespace();
            let value = self.value(depth)?;
            fields.push((key, value));
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(Value::Object(fields));
                }
                _ => return None,
            }
        }
    }
}

/// How many bytes of `text` `strtod` reads as a decimal number (0 if none).
fn strtod_length(text: &[u8]) -> usize {
    let mut at = 0;
    if matches!(text.first(), Some(b'+' | b'-')) {
        at += 1;
    }
    let digits_before = text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    at += digits_before;
    let mut digits_after = 0;
    if text.get(at) == Some(&b'.') {
        digits_after = text[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits_before + digits_after > 0 {
            at += 1 + digits_after;
        }
    }
    if digits_before + digits_after == 0 {
        return 0;
    }
    if matches!(text.get(at), Some(b'e' | b'E')) {
        let mut exponent = at + 1;
        if matches!(text.get(exponent), Some(b'+' | b'-')) {
            exponent += 1;
        }
        let digits = text[exponent..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            at = exponent + digits;
        }
    }
    at
}

fn print(value: &Value, pretty: bool, depth: usize, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => out.extend_from_slice(number_text(*number).as_bytes()),
        Value::String(text) => print_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                    if pretty {
                        out.push(b' ');
                    }
                }
                print(item, pretty, depth + 1, out);
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            let depth = depth + 1;
            out.push(b'{');
            if pretty {
                out.push(b'\n');
            }
            for (index, (key, item)) in fields.iter().enumerate() {
                if pretty {
                    out.extend(std::iter::repeat_n(b'\t', depth));
                }
                print_string(key, out);
                out.push(b':');
                if pretty {
                    out.push(b'\t');
                }
                print(item, pretty, depth, out);
                if index + 1 < fields.len() {
                    out.push(b',');
                }
                if pretty {
                    out.push(b'\n');
                }
            }
            if pretty {
                out.extend(std::iter::repeat_n(b'\t', depth - 1));
            }
            out.push(b'}');
        }
    }
}

fn print_string(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &byte in text {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=31 => out.extend_from_slice(format!("\\u{byte:04x}").as_bytes()),
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

/// cJSON's `print_number` (as built for mosquitto 2.0.11 on Debian 12): `null` for NaN and
/// infinities, else `%1.15g`, or `%1.17g` when 15 digits do not read back (`-0` stays `-0`).
fn number_text(number: f64) -> String {
    if !number.is_finite() {
        return "null".to_owned();
    }
    let short = format_g(number, 15);
    let read_back: f64 = short.parse().unwrap_or(f64::NAN);
    let max = number.abs().max(read_back.abs());
    if (read_back - number).abs() <= max * f64::EPSILON {
        short
    } else {
        format_g(number, 17)
    }
}

/// C's `%1.<precision>g`.
fn format_g(number: f64, precision: usize) -> String {
    if number == 0.0 {
        return if number.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let scientific = format!("{:.*e}", precision - 1, number);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        let mantissa = strip_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        strip_zeros(&format!("{number:.decimals$}")).to_owned()
    }
}

fn strip_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minified(json: &str) -> Option<String> {
        let mut out = Vec::new();
        print(&parse(json.as_bytes())?, false, 0, &mut out);
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn reprinted_as_cjson_does() {
        let cases = [
            ("{\"x\": [1, 2]}", "{\"x\":[1,2]}"),
            (" [ true , false,null ] ", "[true,false,null]"),
            ("1.50", "1.5"),
            ("1e2", "100"),
            ("0.1", "0.1"),
            ("-0", "-0"),
            ("3000000000", "3000000000"),
            ("1e300", "1e+300"),
            ("123456789012345678", "1.2345678901234568e+17"),
            ("0.00001", "1e-05"),
            ("\"a\\u00e9\\n\\/\"", "\"a\u{e9}\\n/\""),
            ("\"\\ud83d\\ude00\"", "\"\u{1F600}\""),
            ("{}", "{}"),
        ];
        for (input, expected) in cases {
            assert_eq!(minified(input).as_deref(), Some(expected), "{input}");
        }
    }

    #[test]
    fn not_json() {
        for input in [
            "",
            "hello",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "1 2",
            "\"\\q\"",
            "01x",
            "+1",
            "tru",
        ] {
            assert_eq!(minified(input), None, "{input:?}");
        }
        let deep = "[".repeat(5000);
        assert_eq!(minified(&deep), None);
    }

    #[test]
    fn pretty_as_cjson_print() {
        let mut out = Vec::new();
        let value = parse(b"{\"a\":{\"x\":[1,{\"y\":2}]},\"e\":{}}").unwrap();
        print(&value, true, 0, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n\t\"a\":\t{\n\t\t\"x\":\t[1, {\n\t\t\t\t\"y\":\t2\n\t\t\t}]\n\t},\n\t\"e\":\t{\n\t}\n}"
        );
    }

    #[test]
    fn strings_escape_control_bytes() {
        let mut out = Vec::new();
        print_string(b"a\tb\x01\xff\"\\", &mut out);
        assert_eq!(out, b"\"a\\tb\\u0001\xff\\\"\\\\\"");
    }
}
