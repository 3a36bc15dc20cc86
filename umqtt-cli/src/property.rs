//! `-D command identifier value` (`--property`): MQTT 5 properties, as mosquitto_pub and
//! mosquitto_sub 2.0 take them.
//!
//! mosquitto reads `-D` by hand: three arguments, four for `user-property` (name and value),
//! so the count depends on the identifier. clap cannot express that, so `-D` groups are taken
//! out of the command line ([`extract`]) before clap parses the rest. As in mosquitto, `-D`
//! selects MQTT 5 unless a `-V` after it says otherwise.
//!
//! Which property a packet may carry is the core's rule ([`PropertyId::is_allowed_in`]) and
//! the final check of each packet's list (duplicates, forbidden values such as a Receive
//! Maximum of 0) is the core's encoder ([`Properties::encode_for`]); this module only maps
//! mosquitto's names to packets and properties, parses values, and reports mistakes with
//! mosquitto's messages where it has one and exit status 1, as mosquitto.
//!
//! mosquitto's order of checks is kept: enough arguments, the command, the identifier, the
//! property allowed for the command, what the client cannot send (`auth`, acknowledgements,
//! a subscription identifier in PUBLISH), the value's range; then each packet's list.
//!
//! Deliberate differences (each refuses what mosquitto would send or silently turn into 0):
//! a number must be a whole number (mosquitto's `atol` reads `abc` as 0 and `12x` as 12); a
//! payload-format-indicator other than 0 or 1 is refused (MQTT 5 defines only those);
//! the properties the core's table allows are the specification's (mosquitto also
//! lets `reason-string` into a will); a value the core refuses (a Receive Maximum of 0) is
//! reported as its `-D` is read, not after the whole command line. A `publish topic-alias`
//! goes with the full topic on every PUBLISH (mosquitto_pub leaves the topic out after the
//! first): the same for subscribers, a few bytes more on the wire.

use std::ffi::OsString;

use umqtt_core::packet::{EncodeError, PacketType, Properties, Property, PropertyId, PropertyList};

use crate::error::CliError;

/// A packet the command line can put properties in: what `umqtt pub` and `umqtt sub` send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// CONNECT.
    Connect,
    /// Each PUBLISH of `pub`.
    Publish,
    /// The SUBSCRIBE of `sub`.
    Subscribe,
    /// The UNSUBSCRIBE of `sub -U`.
    Unsubscribe,
    /// DISCONNECT.
    Disconnect,
    /// The will properties of CONNECT.
    Will,
}

impl Target {
    const ALL: [Target; 6] = [
        Target::Connect,
        Target::Publish,
        Target::Subscribe,
        Target::Unsubscribe,
        Target::Disconnect,
        Target::Will,
    ];

    /// The packet (and whether it is the will part of it).
    fn packet(self) -> (PacketType, bool) {
        match self {
            Target::Connect => (PacketType::Connect, false),
            Target::Publish => (PacketType::Publish, false),
            Target::Subscribe => (PacketType::Subscribe, false),
            Target::Unsubscribe => (PacketType::Unsubscribe, false),
            Target::Disconnect => (PacketType::Disconnect, false),
            Target::Will => (PacketType::Connect, true),
        }
    }

    /// As mosquitto names it in "Error in … properties".
    fn label(self) -> &'static str {
        match self {
            Target::Connect => "CONNECT",
            Target::Publish => "PUBLISH",
            Target::Subscribe => "SUBSCRIBE",
            Target::Unsubscribe => "UNSUBSCRIBE",
            Target::Disconnect => "DISCONNECT",
            Target::Will => "Will",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// mosquitto's command names (`mosquitto_string_to_command`, any case): the packet and
/// whether it is the will. SUBACK, UNSUBACK, PINGREQ and PINGRESP are not among them.
const COMMANDS: [(&str, PacketType, bool); 12] = [
    ("connect", PacketType::Connect, false),
    ("connack", PacketType::ConnAck, false),
    ("publish", PacketType::Publish, false),
    ("puback", PacketType::PubAck, false),
    ("pubrec", PacketType::PubRec, false),
    ("pubrel", PacketType::PubRel, false),
    ("pubcomp", PacketType::PubComp, false),
    ("subscribe", PacketType::Subscribe, false),
    ("unsubscribe", PacketType::Unsubscribe, false),
    ("disconnect", PacketType::Disconnect, false),
    ("auth", PacketType::Auth, false),
    ("will", PacketType::Connect, true),
];

/// mosquitto's property names (`mosquitto_string_to_property_info`, any case): the
/// specification's names with `-` between words.
const NAMES: [(&str, PropertyId); 27] = [
    (
        "payload-format-indicator",
        PropertyId::PayloadFormatIndicator,
    ),
    ("message-expiry-interval", PropertyId::MessageExpiryInterval),
    ("content-type", PropertyId::ContentType),
    ("response-topic", PropertyId::ResponseTopic),
    ("correlation-data", PropertyId::CorrelationData),
    (
        "subscription-identifier",
        PropertyId::SubscriptionIdentifier,
    ),
    ("session-expiry-interval", PropertyId::SessionExpiryInterval),
    (
        "assigned-client-identifier",
        PropertyId::AssignedClientIdentifier,
    ),
    ("server-keep-alive", PropertyId::ServerKeepAlive),
    ("authentication-method", PropertyId::AuthenticationMethod),
    ("authentication-data", PropertyId::AuthenticationData),
    (
        "request-problem-information",
        PropertyId::RequestProblemInformation,
    ),
    ("will-delay-interval", PropertyId::WillDelayInterval),
    (
        "request-response-information",
        PropertyId::RequestResponseInformation,
    ),
    ("response-information", PropertyId::ResponseInformation),
    ("server-reference", PropertyId::ServerReference),
    ("reason-string", PropertyId::ReasonString),
    ("receive-maximum", PropertyId::ReceiveMaximum),
    ("topic-alias-maximum", PropertyId::TopicAliasMaximum),
    ("topic-alias", PropertyId::TopicAlias),
    ("maximum-qos", PropertyId::MaximumQoS),
    ("retain-available", PropertyId::RetainAvailable),
    ("user-property", PropertyId::UserProperty),
    ("maximum-packet-size", PropertyId::MaximumPacketSize),
    (
        "wildcard-subscription-available",
        PropertyId::WildcardSubscriptionAvailable,
    ),
    (
        "subscription-identifier-available",
        PropertyId::SubscriptionIdentifierAvailable,
    ),
    (
        "shared-subscription-available",
        PropertyId::SharedSubscriptionAvailable,
    ),
];

/// mosquitto's name of a property.
fn name(id: PropertyId) -> &'static str {
    NAMES
        .iter()
        .find(|(_, known)| *known == id)
        .map_or("unknown property", |(name, _)| name)
}

/// The `-D` properties of a command line: per packet, their wire bytes (as
/// [`Properties::Encoded`] holds them), in command-line order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertySet {
    lists: [Vec<u8>; 6],
}

impl PropertySet {
    /// No `-D` at all.
    pub fn is_empty(&self) -> bool {
        self.lists.iter().all(Vec::is_empty)
    }

    /// Whether `target` has properties.
    pub fn has(&self, target: Target) -> bool {
        !self.lists[target.index()].is_empty()
    }

    /// The properties for `target`.
    pub fn get(&self, target: Target) -> Properties<'_> {
        Properties::Encoded(&self.lists[target.index()])
    }

    /// Adds `property` (checked for `target` and encoded by the core).
    fn push(&mut self, target: Target, property: Property<'_>) -> Result<(), CliError> {
        let (packet_type, will) = target.packet();
        let bytes = Properties::List(&PropertyList(&[property]))
            .encode_for(packet_type, will)
            .map_err(|error| list_error(target, &error))?;
        self.lists[target.index()].extend_from_slice(&bytes);
        Ok(())
    }

    /// The core's check of each packet's list (what mosquitto's `mosquitto_property_check_all`
    /// does after reading the command line), with `extra_connect` CONNECT properties added
    /// (the session expiry interval of `-x` / `-c`, which mosquitto adds to the same list).
    pub fn check(&self, extra_connect: &[Property<'_>]) -> Result<(), CliError> {
        for target in Target::ALL {
            let mut list: Vec<Property<'_>> = self.get(target).iter().collect();
            if target == Target::Connect {
                list.extend_from_slice(extra_connect);
            }
            if list.is_empty() {
                continue;
            }
            let (packet_type, will) = target.packet();
            Properties::List(&PropertyList(&list))
                .encode_for(packet_type, will)
                .map_err(|error| list_error(target, &error))?;
        }
        Ok(())
    }
}

/// "Error in CONNECT properties: …", as mosquitto starts it.
fn list_error(target: Target, error: &EncodeError) -> CliError {
    CliError::usage(format!(
        "Error in {} properties: {}",
        target.label(),
        encode_error(error)
    ))
}

/// What is wrong with a list, in words.
fn encode_error(error: &EncodeError) -> String {
    match error {
        // mosquitto's MOSQ_ERR_DUPLICATE_PROPERTY text, naming the property.
        EncodeError::DuplicateProperty { property } => format!(
            "Duplicate property in property list ({} given twice)",
            name(*property)
        ),
        EncodeError::InvalidPropertyValue { property, value } => format!(
            "{} {value} is not allowed (MQTT 5 forbids this value)",
            name(*property)
        ),
        EncodeError::StringTooLong => "a value is longer than 65535 bytes".to_owned(),
        EncodeError::NullCharacter => "a string contains the character U+0000".to_owned(),
        other => other.to_string(),
    }
}

/// The result of [`extract`]: the arguments left for clap, and the properties.
#[derive(Debug)]
pub struct Extracted {
    /// The command line without its `-D` groups (`-V mqttv5` appended if `-D` chose MQTT 5).
    pub args: Vec<OsString>,
    /// The properties.
    pub properties: PropertySet,
}

/// Takes the `-D command identifier value` (`--property`) groups out of a `pub` / `sub`
/// command line, parsing each as mosquitto does. `subcommand` is clap's definition of the
/// subcommand: it says which other flags take a value, so that a value such as `-m -D` is
/// left alone. As mosquitto, each `-D` selects MQTT 5 and a later `-V` overrides it: unless a
/// `-V` follows the last `-D`, `-V mqttv5` is appended for clap.
pub fn extract(args: Vec<OsString>, subcommand: &clap::Command) -> Result<Extracted, CliError> {
    let mut kept = Vec::with_capacity(args.len());
    let mut properties = PropertySet::default();
    let mut iter = args.into_iter().peekable();
    // The program and the subcommand's name.
    kept.extend(iter.next());
    kept.extend(iter.next());
    let mut version_after_property = false;
    let mut any_property = false;
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy().into_owned();
        if text == "--" {
            kept.push(arg);
            kept.extend(iter.by_ref());
            break;
        }
        if text == "-D" || text == "--property" {
            let mut group: Vec<OsString> = Vec::with_capacity(4);
            // mosquitto needs three arguments before it looks at any; a fourth for
            // user-property.
            while group.len() < 3 {
                match iter.next() {
                    Some(value) => group.push(value),
                    None => return Err(not_enough()),
                }
            }
            let needs_pair = check_names(&group)?;
            if needs_pair {
                match iter.next() {
                    Some(value) => group.push(value),
                    None => return Err(not_enough()),
                }
            }
            parse_group(&group, &mut properties)?;
            any_property = true;
            version_after_property = false;
            continue;
        }
        let takes_value = flag_takes_value(&text, subcommand);
        if is_version_flag(&text) {
            version_after_property = true;
        }
        kept.push(arg);
        if takes_value {
            kept.extend(iter.next());
        }
    }
    if any_property && !version_after_property {
        kept.push("-V".into());
        kept.push("mqttv5".into());
    }
    Ok(Extracted {
        args: kept,
        properties,
    })
}

/// `-V` / `--protocol-version`, alone or with its value attached.
fn is_version_flag(text: &str) -> bool {
    text == "--protocol-version"
        || text.starts_with("--protocol-version=")
        || (text.starts_with("-V") && !text.starts_with("--"))
}

/// Whether the flag `text` (`-x`, `--long`, a cluster such as `-vt`) consumes the next
/// argument as its value.
fn flag_takes_value(text: &str, subcommand: &clap::Command) -> bool {
    if let Some(long) = text.strip_prefix("--") {
        if long.is_empty() || long.contains('=') {
            return false;
        }
        return subcommand.get_arguments().any(|arg| {
            arg.get_action().takes_values()
                && arg
                    .get_long_and_visible_aliases()
                    .is_some_and(|names| names.contains(&long))
        });
    }
    let Some(shorts) = text.strip_prefix('-') else {
        return false;
    };
    let mut chars = shorts.chars().peekable();
    while let Some(short) = chars.next() {
        let takes = subcommand.get_arguments().any(|arg| {
            arg.get_action().takes_values()
                && arg
                    .get_short_and_visible_aliases()
                    .is_some_and(|names| names.contains(&short))
        });
        if takes {
            // The value is the rest of this argument, or the next one.
            return chars.peek().is_none();
        }
    }
    false
}

fn not_enough() -> CliError {
    CliError::usage("--property argument given but not enough arguments specified.")
}

/// Checks the command and identifier of a group (mosquitto's first checks); whether the
/// identifier takes a name and a value (user-property).
fn check_names(group: &[OsString]) -> Result<bool, CliError> {
    let (_, id) = command_and_id(group)?;
    Ok(id == PropertyId::UserProperty)
}

/// The command's packet (and will flag) and the property, checked for each other.
fn command_and_id(group: &[OsString]) -> Result<((PacketType, bool), PropertyId), CliError> {
    let command_name = group[0].to_string_lossy();
    let Some(&(_, packet_type, will)) = COMMANDS
        .iter()
        .find(|(name, _, _)| name.eq_ignore_ascii_case(&command_name))
    else {
        return Err(CliError::usage(
            "Invalid command given in --property argument.",
        ));
    };
    let property_name = group[1].to_string_lossy();
    let Some(&(_, id)) = NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&property_name))
    else {
        return Err(CliError::usage(
            "Invalid property name given in --property argument.",
        ));
    };
    if !id.is_allowed_in(packet_type, will) {
        return Err(CliError::usage(format!(
            "{property_name} property not allowed for {command_name} in --property argument."
        )));
    }
    Ok(((packet_type, will), id))
}

/// Parses a whole group (3 or 4 arguments) into `set`.
fn parse_group(group: &[OsString], set: &mut PropertySet) -> Result<(), CliError> {
    let ((packet_type, will), id) = command_and_id(group)?;
    let command_name = group[0].to_string_lossy();
    let property_name = group[1].to_string_lossy();
    let not_supported = || {
        CliError::usage(format!(
            "{property_name} property not supported for {command_name} in --property argument."
        ))
    };
    let target = match (packet_type, will) {
        (_, true) => Target::Will,
        (PacketType::Connect, _) => Target::Connect,
        // As mosquitto: PUBLISH carries a subscription identifier only from the broker.
        (PacketType::Publish, _) if id == PropertyId::SubscriptionIdentifier => {
            return Err(not_supported())
        }
        (PacketType::Publish, _) => Target::Publish,
        (PacketType::Subscribe, _) => Target::Subscribe,
        (PacketType::Unsubscribe, _) => Target::Unsubscribe,
        (PacketType::Disconnect, _) => Target::Disconnect,
        // CONNACK, the acknowledgements and AUTH are never sent with properties by the
        // client (mosquitto exits 1, silently for CONNACK).
        _ => return Err(not_supported()),
    };
    let name = &*property_name;
    let text = |value: &OsString| {
        value.to_str().map(str::to_owned).ok_or_else(|| {
            CliError::usage(format!(
                "Malformed UTF-8 in --property argument for property {name}."
            ))
        })
    };
    let value = &group[2];
    use PropertyId as Id;
    match id {
        Id::UserProperty => {
            let (key, value) = (text(&group[2])?, text(&group[3])?);
            set.push(target, Property::UserProperty(&key, &value))
        }
        Id::CorrelationData | Id::AuthenticationData => {
            let bytes = crate::common::os_bytes(value);
            if bytes.len() > usize::from(u16::MAX) {
                return Err(CliError::usage(format!(
                    "Property value too long for property {name}."
                )));
            }
            set.push(
                target,
                if id == Id::CorrelationData {
                    Property::CorrelationData(&bytes)
                } else {
                    Property::AuthenticationData(&bytes)
                },
            )
        }
        Id::ContentType
        | Id::ResponseTopic
        | Id::AuthenticationMethod
        | Id::ReasonString
        | Id::ServerReference => {
            let text = text(value)?;
            set.push(
                target,
                match id {
                    Id::ContentType => Property::ContentType(&text),
                    Id::ResponseTopic => Property::ResponseTopic(&text),
                    Id::AuthenticationMethod => Property::AuthenticationMethod(&text),
                    Id::ReasonString => Property::ReasonString(&text),
                    _ => Property::ServerReference(&text),
                },
            )
        }
        Id::PayloadFormatIndicator
        | Id::RequestProblemInformation
        | Id::RequestResponseInformation => {
            let flag = match number(value, u64::from(u8::MAX), name)? {
                0 => false,
                1 => true,
                // MQTT 5 defines 0 and 1 only (mosquitto refuses other values of the two
                // CONNECT flags when it checks the list; it would send a format indicator 2).
                other => {
                    return Err(CliError::usage(format!(
                        "Error in {} properties: {name} must be 0 or 1, not {other}.",
                        target.label()
                    )))
                }
            };
            set.push(
                target,
                match id {
                    Id::PayloadFormatIndicator => Property::PayloadFormatIndicator(flag),
                    Id::RequestProblemInformation => Property::RequestProblemInformation(flag),
                    _ => Property::RequestResponseInformation(flag),
                },
            )
        }
        Id::ReceiveMaximum | Id::TopicAlias | Id::TopicAliasMaximum => {
            let n = number(value, u64::from(u16::MAX), name)? as u16;
            set.push(
                target,
                match id {
                    Id::ReceiveMaximum => Property::ReceiveMaximum(n),
                    Id::TopicAlias => Property::TopicAlias(n),
                    _ => Property::TopicAliasMaximum(n),
                },
            )
        }
        Id::MessageExpiryInterval
        | Id::SessionExpiryInterval
        | Id::WillDelayInterval
        | Id::MaximumPacketSize
        | Id::SubscriptionIdentifier => {
            let n = number(value, u64::from(u32::MAX), name)? as u32;
            set.push(
                target,
                match id {
                    Id::MessageExpiryInterval => Property::MessageExpiryInterval(n),
                    Id::SessionExpiryInterval => Property::SessionExpiryInterval(n),
                    Id::WillDelayInterval => Property::WillDelayInterval(n),
                    Id::MaximumPacketSize => Property::MaximumPacketSize(n),
                    _ => Property::SubscriptionIdentifier(n),
                },
            )
        }
        // Only CONNACK and AUTH carry the others, and the client sends neither.
        _ => Err(not_supported()),
    }
}

/// A whole number from 0 to `max` (mosquitto's "out of range" message otherwise).
fn number(value: &OsString, max: u64, name: &str) -> Result<u64, CliError> {
    let given = value.to_string_lossy();
    let number = parse_integer(&given).ok_or_else(|| {
        CliError::usage(format!(
            "Property value {} is not a whole number for property {name}.",
            crate::error::echo(&given)
        ))
    })?;
    match u64::try_from(number) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(CliError::usage(format!(
            "Property value ({number}) out of range for property {name}."
        ))),
    }
}

/// A decimal whole number as C's `atol` reads a complete one: leading white space, an
/// optional sign, digits and nothing after. Saturates far beyond any property's range.
fn parse_integer(text: &str) -> Option<i64> {
    let text = text.trim_start();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn sub_command() -> clap::Command {
        clap::Command::new("sub")
            .arg(clap::Arg::new("topic").short('t').num_args(1))
            .arg(
                clap::Arg::new("message")
                    .short('m')
                    .long("message")
                    .num_args(1),
            )
            .arg(
                clap::Arg::new("verbose")
                    .short('v')
                    .action(clap::ArgAction::SetTrue),
            )
            .arg(
                clap::Arg::new("version")
                    .short('V')
                    .long("protocol-version")
                    .num_args(1),
            )
    }

    fn extracted(args: &[&str]) -> Result<Extracted, String> {
        extract(os(args), &sub_command()).map_err(|e| e.to_string())
    }

    #[test]
    fn groups_are_taken_out_and_select_mqtt5() {
        let out = extracted(&[
            "umqtt",
            "pub",
            "-t",
            "a",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-m",
            "-D",
            "-D",
            "PUBLISH",
            "Content-Type",
            "text/plain",
        ])
        .unwrap();
        assert_eq!(
            out.args,
            os(&["umqtt", "pub", "-t", "a", "-m", "-D", "-V", "mqttv5"])
        );
        assert_eq!(
            out.properties
                .get(Target::Publish)
                .iter()
                .collect::<Vec<_>>(),
            [
                Property::UserProperty("k", "v"),
                Property::ContentType("text/plain")
            ]
        );
        // A -V after the last -D decides; one before it does not.
        let out = extracted(&[
            "umqtt",
            "sub",
            "-D",
            "connect",
            "receive-maximum",
            "5",
            "-V",
            "311",
        ])
        .unwrap();
        assert_eq!(out.args, os(&["umqtt", "sub", "-V", "311"]));
        let out = extracted(&[
            "umqtt",
            "sub",
            "-V311",
            "-D",
            "connect",
            "receive-maximum",
            "5",
        ])
        .unwrap();
        assert_eq!(out.args, os(&["umqtt", "sub", "-V311", "-V", "mqttv5"]));
        // A cluster whose last flag takes the next argument.
        let out = extracted(&["umqtt", "sub", "-vt", "-D"]).unwrap();
        assert_eq!(out.args, os(&["umqtt", "sub", "-vt", "-D"]));
        assert!(out.properties.is_empty());
    }

    #[test]
    fn mistakes_get_mosquittos_messages_in_its_order() {
        for (args, message) in [
            (
                &["-D", "connect", "receive-maximum"][..],
                "not enough arguments",
            ),
            (
                &["-D", "connect", "user-property", "k"],
                "not enough arguments",
            ),
            (&["-D", "suback", "x", "1"], "Invalid command given"),
            (
                &["-D", "connect", "bogus", "1"],
                "Invalid property name given",
            ),
            (
                &["-D", "publish", "session-expiry-interval", "1"],
                "session-expiry-interval property not allowed for publish",
            ),
            (
                &["-D", "will", "reason-string", "x"],
                "reason-string property not allowed for will",
            ),
            (
                &["-D", "puback", "reason-string", "x"],
                "reason-string property not supported for puback",
            ),
            (
                &["-D", "auth", "authentication-method", "x"],
                "not supported for auth",
            ),
            (
                &["-D", "connack", "maximum-qos", "1"],
                "maximum-qos property not supported for connack",
            ),
            (
                &["-D", "publish", "subscription-identifier", "1"],
                "subscription-identifier property not supported for publish",
            ),
            (
                &["-D", "connect", "receive-maximum", "70000"],
                "Property value (70000) out of range for property receive-maximum.",
            ),
            (
                &["-D", "connect", "receive-maximum", "-1"],
                "Property value (-1) out of range",
            ),
            (
                &["-D", "publish", "message-expiry-interval", "12x"],
                "is not a whole number for property message-expiry-interval",
            ),
            (
                &["-D", "publish", "payload-format-indicator", "2"],
                "Error in PUBLISH properties: payload-format-indicator must be 0 or 1",
            ),
        ] {
            let mut all = vec!["umqtt", "pub"];
            all.extend_from_slice(args);
            let error = extracted(&all).unwrap_err();
            assert!(error.contains(message), "{args:?}: {error}");
        }
    }

    #[test]
    fn each_packets_list_is_checked_by_the_core() {
        // Values are checked as each -D is read, the whole list once all are.
        let check = |args: &[&str]| {
            let mut all = vec!["umqtt", "pub"];
            all.extend_from_slice(args);
            extracted(&all).and_then(|out| out.properties.check(&[]).map_err(|e| e.to_string()))
        };
        let error = check(&[
            "-D",
            "connect",
            "receive-maximum",
            "5",
            "-D",
            "connect",
            "receive-maximum",
            "6",
        ])
        .unwrap_err();
        assert!(
            error.contains("Error in CONNECT properties: Duplicate property"),
            "{error}"
        );
        let error = check(&["-D", "connect", "receive-maximum", "0"]).unwrap_err();
        assert!(
            error.contains("receive-maximum 0 is not allowed"),
            "{error}"
        );
        let error = check(&["-D", "publish", "topic-alias", "0"]).unwrap_err();
        assert!(error.contains("Error in PUBLISH properties"), "{error}");
        let error =
            check(&["-D", "subscribe", "subscription-identifier", "268435456"]).unwrap_err();
        assert!(error.contains("Error in SUBSCRIBE properties"), "{error}");
        check(&[
            "-D",
            "publish",
            "user-property",
            "a",
            "1",
            "-D",
            "publish",
            "user-property",
            "a",
            "2",
            "-D",
            "will",
            "will-delay-interval",
            "10",
        ])
        .unwrap();
    }

    #[test]
    fn integers_as_atol_reads_whole_ones() {
        assert_eq!(parse_integer("42"), Some(42));
        assert_eq!(parse_integer("  +7"), Some(7));
        assert_eq!(parse_integer("-3"), Some(-3));
        assert_eq!(parse_integer("99999999999999999999999"), Some(i64::MAX));
        for bad in ["", "-", "abc", "12abc", "0x10", "1 "] {
            assert_eq!(parse_integer(bad), None, "{bad}");
        }
    }
}
