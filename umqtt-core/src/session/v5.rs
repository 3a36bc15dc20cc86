//! What MQTT 5 adds to the session: the connect options it announces and what the broker's
//! CONNACK allows this connection (section 3.2.2.3 of the MQTT 5 specification).

use super::UsageError;
use crate::packet::{checked_property_len, write_property, PacketType, Properties, Property, QoS};
use crate::storage::{Buffer, DefaultStrings, DefaultText, Strings, Text};

/// What the broker's CONNACK allows this connection. With MQTT 3.1.1, or for a property the
/// broker left out, the specification's default applies (no limit, everything available).
///
/// `T` holds the broker's strings: a `String` for a session on the heap, a
/// [`FixedText<B>`](crate::storage::FixedText) on [`Fixed`](crate::storage::Fixed)`<N, B>`
/// storage ([`Session::broker_limits`](super::Session::broker_limits) gives the storage's
/// [`Text`](crate::storage::TextStorage::Text)): nothing is allocated for them. A
/// `FixedText<B>` keeps at most `B` bytes and a longer string is cut at a char boundary. A
/// session never needs to cut (it receives no packet larger than `B`, so no string of a
/// CONNACK or DISCONNECT is longer); [`BrokerLimits::from_properties`] with a shorter
/// `FixedText` cuts the Reason String, Server Reference and Assigned Client Identifier alike.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerLimits<T = DefaultText> {
    /// Receive Maximum: most QoS 1/2 publications the broker takes unacknowledged at once;
    /// the session's in-flight window never exceeds it (section 3.2.2.3.3). 65 535 when absent.
    pub receive_maximum: u16,
    /// Maximum Packet Size: the session refuses to send a larger packet (section 3.2.2.3.6).
    pub maximum_packet_size: Option<u32>,
    /// Topic Alias Maximum: highest topic alias the broker accepts; 0 = none (3.2.2.3.8).
    pub topic_alias_maximum: u16,
    /// Maximum QoS the broker accepts in PUBLISH (section 3.2.2.3.4).
    pub maximum_qos: QoS,
    /// Retain Available: false means retained publications are refused (3.2.2.3.5).
    pub retain_available: bool,
    /// Wildcard Subscription Available (section 3.2.2.3.11).
    pub wildcard_subscription_available: bool,
    /// Subscription Identifiers Available (section 3.2.2.3.12).
    pub subscription_identifiers_available: bool,
    /// Shared Subscription Available (section 3.2.2.3.13).
    pub shared_subscription_available: bool,
    /// Server Keep Alive: the keepalive the broker imposes, which the session adopts
    /// `[MQTT-3.2.2-21]`.
    pub server_keep_alive: Option<u16>,
    /// Session Expiry Interval the broker chose, if it changed the one asked for.
    pub session_expiry_interval: Option<u32>,
    /// Assigned Client Identifier, for a CONNECT with an empty one; the session adopts it so
    /// the next connection can resume the session (section 3.2.2.3.7).
    pub assigned_client_identifier: Option<T>,
    /// Server Reference: another server to use (section 3.2.2.3.16), from the CONNACK or
    /// from a DISCONNECT.
    pub server_reference: Option<T>,
    /// Reason String: the broker's human-readable diagnostic.
    pub reason_string: Option<T>,
}

impl<T> Default for BrokerLimits<T> {
    fn default() -> Self {
        BrokerLimits {
            receive_maximum: u16::MAX,
            maximum_packet_size: None,
            topic_alias_maximum: 0,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            wildcard_subscription_available: true,
            subscription_identifiers_available: true,
            shared_subscription_available: true,
            server_keep_alive: None,
            session_expiry_interval: None,
            assigned_client_identifier: None,
            server_reference: None,
            reason_string: None,
        }
    }
}

impl<T: Text> BrokerLimits<T> {
    /// The limits a CONNACK's properties announce (defaults for those left out).
    pub fn from_properties(properties: &Properties<'_>) -> Self {
        let mut limits = Self::default();
        for property in properties.iter() {
            match property {
                Property::ReceiveMaximum(v) => limits.receive_maximum = v,
                Property::MaximumPacketSize(v) => limits.maximum_packet_size = Some(v),
                Property::TopicAliasMaximum(v) => limits.topic_alias_maximum = v,
                Property::MaximumQoS(q) => limits.maximum_qos = q,
                Property::RetainAvailable(b) => limits.retain_available = b,
                Property::WildcardSubscriptionAvailable(b) => {
                    limits.wildcard_subscription_available = b
                }
                Property::SubscriptionIdentifierAvailable(b) => {
                    limits.subscription_identifiers_available = b
                }
                Property::SharedSubscriptionAvailable(b) => {
                    limits.shared_subscription_available = b
                }
                Property::ServerKeepAlive(v) => limits.server_keep_alive = Some(v),
                Property::SessionExpiryInterval(v) => limits.session_expiry_interval = Some(v),
                Property::AssignedClientIdentifier(s) => {
                    limits.assigned_client_identifier = Some(text(s))
                }
                Property::ServerReference(s) => limits.server_reference = Some(text(s)),
                Property::ReasonString(s) => limits.reason_string = Some(text(s)),
                _ => {}
            }
        }
        limits
    }
}

/// `s` as a `T` (cut to what fits, see [`BrokerLimits`]).
pub(super) fn text<T: Text>(s: &str) -> T {
    let mut text = T::default();
    text.set(s);
    text
}

/// The MQTT 5 options of CONNECT, kept in [`super::SessionConfig::v5`]. Ignored with 3.1.1.
/// `T` says how its strings are held ([`Strings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions<T: Strings = DefaultStrings> {
    /// Session Expiry Interval in seconds (section 3.1.2.11.2). `None` maps the 3.1.1
    /// meaning of the clean-session flag: 0 (the session ends with the connection) for a
    /// clean session, `u32::MAX` (never expires) otherwise, so a persistent session keeps its
    /// guarantees.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum announced: most QoS 1/2 messages the broker may send unacknowledged.
    pub receive_maximum: Option<u16>,
    /// Request Problem Information (section 3.1.2.11.7).
    pub request_problem_information: Option<bool>,
    /// User properties of CONNECT.
    pub user_properties: T::Pairs,
    /// Send QoS 0 messages with outgoing topic aliases when the broker allows them (its
    /// Topic Alias Maximum): the first message on a topic sets up an alias, the next ones
    /// carry only the alias, which saves the topic's bytes on every message. Off by default.
    /// At most 64 aliases per connection; a message with 16 properties of its own or more
    /// goes without one. On [`Fixed`](crate::storage::Fixed)`<N, B>` storage at most `N`
    /// aliases, whose topics take at most `B` bytes together: a topic that does not fit is
    /// sent in full, every time (nothing is allocated, nothing is refused).
    pub topic_aliases: bool,
    /// Topic Alias Maximum announced in CONNECT: the highest topic alias the broker may use in
    /// the PUBLISH packets it sends us (section 3.1.2.11.5), at most
    /// [`MAX_INCOMING_TOPIC_ALIASES`]. With a maximum, the session keeps one table per
    /// connection (emptied at every new connection) of at most that many topics, each at most
    /// 65 535 bytes and never more than
    /// [`SessionConfig::max_packet_size`](super::SessionConfig::max_packet_size), and hands
    /// every message to the application with its full topic name, whether the broker sent
    /// the topic, the alias or both (borrowed from the table: no allocation per message).
    ///
    /// On [`Fixed`](crate::storage::Fixed)`<N, B>` storage the session announces at most `N`
    /// (the aliases its table holds), so a broker that keeps to the announced maximum never
    /// sets up more; the topics of all aliases share `B` bytes: a broker alias whose topic
    /// finds no room closes the connection with
    /// [`CloseReason::StorageFull`](super::CloseReason::StorageFull) (nothing is allocated, and
    /// no message is handed over without its topic). Ask for at most `B` divided by the
    /// longest topic the broker may alias.
    ///
    /// `None` or 0 — the default, in the core and in the std clients — allows none, as the
    /// specification's default does: a broker alias is then a protocol error (DISCONNECT
    /// 0x94). Off by default because the broker decides when to use aliases, the saving is
    /// on the broker's side of the link, and the table costs memory on every connection;
    /// AWS's MQTT 5 SDKs make the same choice (inbound aliasing disabled unless asked for).
    pub topic_alias_maximum: Option<u16>,
    /// Request Response Information (section 3.1.2.11.6): ask the broker for a Response
    /// Information string in CONNACK.
    pub request_response_information: Option<bool>,
    /// Authentication Method (section 3.1.2.11.9): the name of an enhanced authentication
    /// method. A broker that does not know it refuses the connection (0x8C).
    pub authentication_method: Option<T::Str>,
    /// Authentication Data (section 3.1.2.11.10), for the authentication method.
    pub authentication_data: Option<T::Bytes>,
}

impl<T: Strings> Default for ConnectOptions<T> {
    fn default() -> Self {
        ConnectOptions {
            session_expiry_interval: None,
            receive_maximum: None,
            request_problem_information: None,
            user_properties: T::Pairs::default(),
            topic_aliases: false,
            topic_alias_maximum: None,
            request_response_information: None,
            authentication_method: None,
            authentication_data: None,
        }
    }
}

/// Most incoming topic aliases a session accepts, whatever
/// [`ConnectOptions::topic_alias_maximum`] asks for: the table then holds at most 1 024 topics
/// (each at most 64 KiB, and at most the configured maximum packet size).
pub const MAX_INCOMING_TOPIC_ALIASES: u16 = 1024;

#[cfg(feature = "alloc")]
impl ConnectOptions<crate::storage::Owned> {
    /// The same options with their strings held as `T` holds them (see
    /// [`SessionConfig::into_strings`](super::SessionConfig::into_strings)).
    pub fn into_strings<T: Strings>(self) -> ConnectOptions<T> {
        ConnectOptions {
            session_expiry_interval: self.session_expiry_interval,
            receive_maximum: self.receive_maximum,
            request_problem_information: self.request_problem_information,
            user_properties: T::pairs_from(self.user_properties),
            topic_aliases: self.topic_aliases,
            topic_alias_maximum: self.topic_alias_maximum,
            request_response_information: self.request_response_information,
            authentication_method: self.authentication_method.map(T::str_from),
            authentication_data: self.authentication_data.map(T::bytes_from),
        }
    }
}

impl<T: Strings> ConnectOptions<T> {
    /// The Topic Alias Maximum announced in CONNECT: [`ConnectOptions::topic_alias_maximum`]
    /// up to [`MAX_INCOMING_TOPIC_ALIASES`]; 0 when none (on fixed storage the session
    /// announces at most the `N` aliases it holds).
    pub fn announced_topic_alias_maximum(&self) -> u16 {
        self.topic_alias_maximum
            .unwrap_or(0)
            .min(MAX_INCOMING_TOPIC_ALIASES)
    }

    /// Appends the wire bytes of the CONNECT properties for these options (without the
    /// block's length prefix) to `out`: each checked as a [`Properties::List`] is, without
    /// building a list (nothing allocated on fixed storage). `max_packet_size` is the
    /// session's local limit, announced as Maximum Packet Size so the broker does not send
    /// larger packets; `topic_alias_maximum` what the session announces (see
    /// [`ConnectOptions::topic_alias_maximum`]).
    ///
    /// # Errors
    /// An invalid property ([`UsageError::Encode`]), or [`UsageError::StorageFull`] when a
    /// fixed `out` has no room (the CONNECT would not fit the session's buffers either).
    pub(crate) fn append_properties(
        &self,
        clean_session: bool,
        max_packet_size: usize,
        topic_alias_maximum: u16,
        out: &mut impl Buffer,
    ) -> Result<(), UsageError> {
        // At most the eight properties below, then the user properties.
        let mut head = [Property::TopicAliasMaximum(0); 8];
        let mut len = 0;
        let mut add = |property| {
            head[len] = property;
            len += 1;
        };
        let expiry =
            self.session_expiry_interval
                .unwrap_or(if clean_session { 0 } else { u32::MAX });
        if expiry != 0 {
            add(Property::SessionExpiryInterval(expiry));
        }
        if let Some(v) = self.receive_maximum {
            add(Property::ReceiveMaximum(v));
        }
        if let Ok(max) = u32::try_from(max_packet_size) {
            if max > 0 {
                add(Property::MaximumPacketSize(max));
            }
        }
        if topic_alias_maximum > 0 {
            add(Property::TopicAliasMaximum(topic_alias_maximum));
        }
        if let Some(b) = self.request_problem_information {
            add(Property::RequestProblemInformation(b));
        }
        if let Some(b) = self.request_response_information {
            add(Property::RequestResponseInformation(b));
        }
        if let Some(method) = &self.authentication_method {
            add(Property::AuthenticationMethod(method.as_ref()));
        }
        if let Some(data) = &self.authentication_data {
            add(Property::AuthenticationData(data.as_ref()));
        }
        let user = self
            .user_properties
            .as_ref()
            .iter()
            .map(|(k, v)| Property::UserProperty(k.as_ref(), v.as_ref()));
        let mut seen = 0;
        for property in head[..len].iter().copied().chain(user) {
            let size = checked_property_len(&property, PacketType::Connect, &mut seen)?;
            let start = out.len();
            out.try_resize(start + size)?;
            write_property(&property, &mut out[start..]);
        }
        Ok(())
    }
}
