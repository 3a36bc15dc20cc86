//! The MQTT 3.1.1 / MQTT 5 client session as a pure state machine.
//!
//! With [`SessionConfig::protocol`] set to [`ProtocolVersion::V5`] the session speaks MQTT 5:
//! CONNECT carries [`SessionConfig::v5`], and what the broker's CONNACK allows
//! ([`BrokerLimits`]) is honoured — Receive Maximum bounds the in-flight window, Maximum Packet
//! Size, Maximum QoS, Retain / Wildcard / Shared Subscription Available refuse requests
//! locally with a [`UsageError`], Server Keep Alive and an Assigned Client Identifier are
//! adopted — and reason codes come out as [`Event::PublishRefused`],
//! [`CloseReason::Rejected`], [`CloseReason::ServerDisconnected`] and [`Event::Unsubscribed`].
//! A stored message larger than a new CONNACK's Maximum Packet Size is removed, not sent
//! ([`Event::PublishTooLarge`]), as is one above its Maximum QoS or retained when it has no
//! Retain Available ([`Event::PublishRefused`] with 0x9B / 0x9A). What the session announces
//! is enforced too: its Receive Maximum ([`ProtocolError::ReceiveMaximumExceeded`]) and Topic
//! Alias Maximum (broker topic aliases are resolved, so a [`Event::Message`] always has its
//! full topic; see [`ConnectOptions::topic_alias_maximum`]). A broker's protocol violation
//! closes the connection with a DISCONNECT carrying its reason code (written before the
//! driver closes the socket); an AUTH is one ([`ProtocolError::UnexpectedAuth`]: enhanced
//! authentication is not supported).
//!
//! A [`Session`] holds everything that outlives one network connection: packet ids, messages
//! not yet acknowledged, the incoming QoS 2 table. Each connection is started with
//! [`Session::connect`] and ends with an [`Event::Closed`] or [`Session::handle_connection_lost`].
//!
//! # Driving a session
//! After any input (a command, [`Session::handle_read`] or [`Session::handle_timeout`]) the
//! driver:
//! 1. calls [`Session::poll_event`] until it returns `None` (this is also where received packets
//!    are decoded and answered, so it must be drained before reading more);
//! 2. calls [`Session::poll_transmit`] until it returns `None`, writing each slice in order
//!    (a large PUBLISH comes as its own slice, straight from the message's stored copy);
//! 3. sleeps or reads until [`Session::poll_timeout`], then calls [`Session::handle_timeout`].
//!
//! After [`Event::Closed`] the driver closes the socket; the session keeps its state for the
//! next [`Session::connect`].

mod aliases;
mod id_set;
mod v5;

use core::fmt;
use core::time::Duration;

use crate::packet::{
    decode_from_server, encode_packet_into, encode_publish_header_validated_topic,
    encode_publish_header_with, encoded_len, max_payload_len, packet_size, publish_properties_len,
    Ack, ConnAck, Connect, ConnectReturnCode, DecodeError, Decoded, Disconnect, Encode,
    EncodeError, FromServerError, LastWill, Packet, PacketId, PacketType, Properties, Property,
    PropertyId, PropertyList, ProtocolVersion, Publish, QoS, ReasonCode, SubAck, Subscribe,
    SubscribeTopics, SubscriptionOptions, UnsubAck, Unsubscribe, UnsubscribeTopics,
};
use crate::storage::{
    Buffer, DefaultStorage, DefaultStrings, Full, List, PacketStore, Storage, Strings,
};
use crate::time::Instant;
use crate::topic::{validate_topic_filter, validate_topic_name, TopicError};
use aliases::{IncomingAliases, OutgoingAliases};
use id_set::IdSet;
pub use v5::{BrokerLimits, ConnectOptions, MAX_INCOMING_TOPIC_ALIASES};

/// A last will, kept in the session configuration. `T` says how its strings are held
/// ([`Strings`]): owned on the heap, `&'static` on fixed storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will<T: Strings = DefaultStrings> {
    /// Topic name.
    pub topic: T::Str,
    /// Payload.
    pub payload: T::Bytes,
    /// QoS the broker publishes it with.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// MQTT 5 will properties as wire bytes without the length prefix (will delay, message
    /// expiry, content type, response topic, correlation data, user properties); empty for
    /// none (always, with 3.1.1). Build them with [`Properties::encode_for`], which checks
    /// them for a will.
    pub properties: T::Bytes,
}

/// Settings of a session. Changes take effect at the next [`Session::connect`].
///
/// `T` says how its strings are held ([`Strings`]): owned (`String`, `Vec<u8>`) for a session
/// on the heap, `&'static` on [`Fixed`](crate::storage::Fixed) storage, whose session then
/// needs no allocator at all. The same code fills either: `client_id: "sensor-1".into()`.
#[derive(Debug, Clone)]
pub struct SessionConfig<T: Strings = DefaultStrings> {
    /// Client identifier. May be empty only with a clean session `[MQTT-3.1.3-7]`.
    pub client_id: T::Str,
    /// Keepalive in seconds; 0 disables PINGREQ and dead-link detection.
    pub keep_alive: u16,
    /// How long to wait for a PINGRESP (measured from the PINGREQ, extended while other
    /// *complete* packets keep arriving) before the link is declared dead. `None` means half the keepalive, so a
    /// silent link is detected within 1.5 × keepalive. Never less than one second, whatever is
    /// set: a shorter wait would mistake scheduling hiccups for a dead link.
    pub ping_timeout: Option<Duration>,
    /// How long to wait for CONNACK after CONNECT.
    pub connect_timeout: Duration,
    /// Most QoS 1/2 PUBLISH packets awaiting acknowledgement at once; more are queued.
    ///
    /// MQTT 3.1.1 cannot negotiate this, and brokers enforce their own limit by dropping the
    /// excess *while still acknowledging it*: mosquitto 2 answers a PUBLISH beyond its
    /// `max_inflight_messages` (default 20) with "quota exceeded", which a 3.1.1 PUBACK cannot
    /// carry. So the default is 20; raise it only with the broker's limit.
    pub max_in_flight: u16,
    /// Most messages the session holds (in flight and queued) before `publish` refuses more.
    pub max_outgoing: usize,
    /// Largest incoming packet accepted, fixed header included: a local limit on what this
    /// client buffers (MQTT itself allows up to 256 MiB). A larger packet is refused from its
    /// fixed header, before its body is waited for or stored, with
    /// [`CloseReason::PacketTooLarge`].
    pub max_packet_size: usize,
    /// Protocol version announced: 3.1.1 (default), 3.1 or 5.
    pub protocol: ProtocolVersion,
    /// The MQTT 5 connect options (session expiry, receive maximum, user properties…);
    /// ignored unless `protocol` is [`ProtocolVersion::V5`].
    pub v5: ConnectOptions<T>,
    /// User name.
    pub username: Option<T::Str>,
    /// Password (requires a user name).
    pub password: Option<T::Bytes>,
    /// Last will.
    pub will: Option<Will<T>>,
    /// On a clean-session `connect`, keep the unacknowledged messages and publish them again
    /// as new messages (DUP clear), as after a lost session, instead of discarding them with
    /// [`Event::PublishDiscarded`]. The robust engine sets this: its messages outlive sessions.
    pub republish_on_clean_session: bool,
    /// Acknowledge received QoS 1/2 messages only when the application says so
    /// ([`Session::ack`]), so a crash between receipt and processing does not lose one: the
    /// broker redelivers what was never acknowledged. PUBACK / PUBREC still go out in the
    /// order the messages arrived `[MQTT-4.6.0-2]` `[MQTT-4.6.0-3]`.
    pub manual_ack: bool,
}

impl<T: Strings> Default for SessionConfig<T> {
    fn default() -> Self {
        SessionConfig {
            client_id: T::Str::default(),
            keep_alive: 60,
            ping_timeout: None,
            connect_timeout: Duration::from_secs(10),
            max_in_flight: 20,
            max_outgoing: 65_000,
            max_packet_size: 4 * 1024 * 1024,
            protocol: ProtocolVersion::V311,
            v5: ConnectOptions::default(),
            username: None,
            password: None,
            will: None,
            republish_on_clean_session: false,
            manual_ack: false,
        }
    }
}

#[cfg(feature = "alloc")]
impl SessionConfig<crate::storage::Owned> {
    /// The same configuration with its strings held as `T` holds them: unchanged for
    /// [`Owned`](crate::storage::Owned), leaked for [`Static`](crate::storage::Static) — for
    /// a configuration built at run time on a host, for a session on fixed storage (each call
    /// leaks its strings: once per client).
    pub fn into_strings<T: Strings>(self) -> SessionConfig<T> {
        SessionConfig {
            client_id: T::str_from(self.client_id),
            keep_alive: self.keep_alive,
            ping_timeout: self.ping_timeout,
            connect_timeout: self.connect_timeout,
            max_in_flight: self.max_in_flight,
            max_outgoing: self.max_outgoing,
            max_packet_size: self.max_packet_size,
            protocol: self.protocol,
            v5: self.v5.into_strings(),
            username: self.username.map(T::str_from),
            password: self.password.map(T::bytes_from),
            will: self.will.map(|will| Will {
                topic: T::str_from(will.topic),
                payload: T::bytes_from(will.payload),
                qos: will.qos,
                retain: will.retain,
                properties: T::bytes_from(will.properties),
            }),
            republish_on_clean_session: self.republish_on_clean_session,
            manual_ack: self.manual_ack,
        }
    }
}

impl<T: Strings> SessionConfig<T> {
    fn effective_ping_timeout(&self) -> Duration {
        self.ping_timeout
            .unwrap_or_else(|| Duration::from_millis(u64::from(self.keep_alive) * 500))
            .max(Duration::from_secs(1))
    }

    /// How long the link may go without a sign of life before the session declares it dead:
    /// the keepalive plus the ping timeout (1.5 × keepalive by default). `None` when the
    /// keepalive is 0. A driver blocked in a write that makes no progress (the broker stopped
    /// reading) should give up after this long too, since the session's timers cannot fire
    /// while it is blocked.
    pub fn link_timeout(&self) -> Option<Duration> {
        (self.keep_alive != 0).then(|| {
            Duration::from_secs(u64::from(self.keep_alive)) + self.effective_ping_timeout()
        })
    }

    /// How long a driver's write may make no progress (a broker that stopped reading)
    /// before the link counts as lost: the [link timeout](Self::link_timeout) — the
    /// session's timers cannot fire while a write blocks — or, without a keepalive, the
    /// connect timeout; at most the driver's own `response_timeout` when it has one; never
    /// below 100 ms (shorter would only add wake-ups).
    pub fn write_stall(&self, response_timeout: Option<Duration>) -> Duration {
        let mut stall = self.link_timeout().unwrap_or(self.connect_timeout);
        if let Some(limit) = response_timeout {
            stall = stall.min(limit);
        }
        stall.max(Duration::from_millis(100))
    }
}

/// The broker broke a rule of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A packet a server never sends (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT) or a
    /// second CONNACK `[MQTT-3.2.0-1]`.
    UnexpectedPacket(PacketType),
    /// A packet other than CONNACK arrived before CONNACK `[MQTT-3.2.0-1]`.
    PacketBeforeConnAck(PacketType),
    /// CONNACK reported a session present although a clean session was requested
    /// `[MQTT-3.2.2-1]`.
    SessionPresentOnCleanSession,
    /// SUBACK carries a different number of return codes than the SUBSCRIBE had filters
    /// `[MQTT-3.8.4-5]`.
    SubAckCountMismatch,
    /// An MQTT 5 UNSUBACK carries a different number of reason codes than the UNSUBSCRIBE had
    /// filters `[MQTT-3.11.3-2]`.
    UnsubAckCountMismatch,
    /// An MQTT 5 PUBLISH with Topic Alias 0 or above the Topic Alias Maximum the session
    /// announced ([`ConnectOptions::topic_alias_maximum`]; none announced means 0)
    /// `[MQTT-3.3.2-9]`, `[MQTT-3.3.2-10]`. The session sends DISCONNECT 0x94 Topic Alias
    /// invalid.
    TopicAliasInvalid(u16),
    /// An MQTT 5 PUBLISH with an empty topic name and a Topic Alias this connection never set
    /// up (section 3.3.2.3.4). The session sends DISCONNECT 0x82 Protocol Error.
    UnknownTopicAlias(u16),
    /// The broker sent more QoS 1/2 PUBLISH packets awaiting our acknowledgement (QoS 1 until
    /// our PUBACK is sent, QoS 2 until our PUBCOMP is sent, counting those the application
    /// has not yet acknowledged with [`Session::ack`]) than the Receive Maximum the session
    /// announced `[MQTT-3.3.4-9]`. The session sends DISCONNECT 0x93 Receive Maximum exceeded.
    ReceiveMaximumExceeded {
        /// The Receive Maximum announced (65 535 when none was).
        max: u16,
    },
    /// The broker sent AUTH. The session never sends an Authentication Method (enhanced
    /// authentication is not supported), so the broker may not start it `[MQTT-4.12.0-6]`.
    /// The session sends DISCONNECT 0x82 Protocol Error.
    UnexpectedAuth,
}

impl ProtocolError {
    /// The MQTT 5 reason code of the DISCONNECT the session sends for this violation.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            ProtocolError::TopicAliasInvalid(_) => ReasonCode::TopicAliasInvalid,
            ProtocolError::ReceiveMaximumExceeded { .. } => ReasonCode::ReceiveMaximumExceeded,
            _ => ReasonCode::ProtocolError,
        }
    }
}

impl core::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProtocolError::UnexpectedPacket(t) => write!(f, "broker sent unexpected {t:?}"),
            ProtocolError::PacketBeforeConnAck(t) => write!(f, "broker sent {t:?} before CONNACK"),
            ProtocolError::SessionPresentOnCleanSession => {
                f.write_str("broker claimed a session present for a clean session")
            }
            ProtocolError::SubAckCountMismatch => {
                f.write_str("SUBACK return codes do not match the SUBSCRIBE filters")
            }
            ProtocolError::UnsubAckCountMismatch => {
                f.write_str("UNSUBACK reason codes do not match the UNSUBSCRIBE filters")
            }
            ProtocolError::TopicAliasInvalid(alias) => write!(
                f,
                "broker sent topic alias {alias}, outside the topic alias maximum announced \
                 (raise topic_alias_maximum to accept aliases)"
            ),
            ProtocolError::UnknownTopicAlias(alias) => write!(
                f,
                "broker sent topic alias {alias} without a topic before setting it up"
            ),
            ProtocolError::ReceiveMaximumExceeded { max } => write!(
                f,
                "broker sent more than the receive maximum of {max} unacknowledged QoS 1/2 \
                 messages"
            ),
            ProtocolError::UnexpectedAuth => f.write_str(
                "broker sent AUTH, but enhanced authentication is not supported (no \
                 authentication method was sent)",
            ),
        }
    }
}

impl core::error::Error for ProtocolError {}

/// Why a connection ended; the driver must close the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The broker refused the connection with this CONNACK code (3.1.1).
    Refused(ConnectReturnCode),
    /// The broker refused the connection with this MQTT 5 CONNACK reason code (0x80 or above).
    /// [`ConnectReturnCode::from_reason_code`] gives the closest 3.1.1 code.
    Rejected(ReasonCode),
    /// The broker closed the connection with an MQTT 5 DISCONNECT and this reason code
    /// (section 3.14.2.1); [`Session::broker_limits`] keeps a Server Reference it sent.
    ServerDisconnected(ReasonCode),
    /// The broker sent bytes that are not a valid packet.
    Decode(DecodeError),
    /// The broker broke a protocol rule.
    Protocol(ProtocolError),
    /// No CONNACK within the connect timeout.
    ConnectTimeout,
    /// No PINGRESP within the ping timeout: the link is dead or half-open.
    KeepAliveTimeout,
    /// The application sent DISCONNECT.
    Disconnected,
    /// The broker announced a packet larger than [`SessionConfig::max_packet_size`]. This is a
    /// local limit, not a protocol violation (MQTT allows 268 435 455 bytes of remaining length
    /// `[MQTT-2.2.3]`); it was refused from the fixed header, before the body was stored.
    PacketTooLarge {
        /// Total size announced, fixed header included.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The session's [`Fixed`](crate::storage::Fixed) storage had no room for received bytes
    /// (a driver fed more than [`Session::input_room`]) or for the bytes of an answer. Nothing
    /// is lost: what was not acknowledged is resent on the next connection.
    StorageFull,
}

impl core::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CloseReason::Refused(code) => write!(f, "connection refused: {code}"),
            CloseReason::Rejected(code) => write!(f, "connection refused: {code}"),
            CloseReason::ServerDisconnected(code) => {
                write!(f, "broker sent DISCONNECT: {code}")
            }
            CloseReason::Decode(e) => write!(f, "malformed packet from broker: {e}"),
            CloseReason::Protocol(e) => write!(f, "protocol violation: {e}"),
            CloseReason::ConnectTimeout => f.write_str("no CONNACK within the connect timeout"),
            CloseReason::KeepAliveTimeout => f.write_str("no PINGRESP: link is dead"),
            CloseReason::Disconnected => f.write_str("disconnected by the application"),
            CloseReason::PacketTooLarge { size, max } => write!(
                f,
                "incoming packet of {size} bytes exceeds the configured maximum of {max} \
                 (raise max_packet_size)"
            ),
            CloseReason::StorageFull => f.write_str("the session's fixed storage is full"),
        }
    }
}

/// The caller asked for something the session cannot do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The operation needs an established connection.
    NotConnected,
    /// `connect` while a connection is already up or being set up.
    AlreadyConnected,
    /// Invalid PUBLISH topic name.
    InvalidTopicName(TopicError),
    /// Invalid SUBSCRIBE/UNSUBSCRIBE topic filter.
    InvalidTopicFilter(TopicError),
    /// SUBSCRIBE/UNSUBSCRIBE with no filters.
    NoTopicFilters,
    /// An empty client id requires a clean session `[MQTT-3.1.3-7]`.
    EmptyClientIdNeedsCleanSession,
    /// The packet cannot be encoded (string too long, packet too large…).
    Encode(EncodeError),
    /// The session already holds `max_outgoing` messages, or all 65 535 packet ids are in use.
    OutgoingFull,
    /// [`SessionConfig::protocol`] is MQTT 5, but this build of umqtt-core has no MQTT 5 (its
    /// `mqtt5` cargo feature is off).
    Mqtt5NotCompiled,
    /// The broker does not accept retained messages (MQTT 5 CONNACK Retain Available 0)
    /// `[MQTT-3.2.2-14]`.
    RetainNotAvailable,
    /// The broker accepts PUBLISH only up to this QoS (MQTT 5 CONNACK Maximum QoS)
    /// `[MQTT-3.2.2-11]`.
    QoSNotSupported {
        /// The broker's maximum.
        max: QoS,
    },
    /// The packet is larger than the broker's Maximum Packet Size (MQTT 5 CONNACK)
    /// `[MQTT-3.2.2-15]`.
    PacketTooLarge {
        /// The packet's size, fixed header included.
        size: usize,
        /// The broker's maximum.
        max: u32,
    },
    /// A wildcard filter, but the broker has no wildcard subscriptions (MQTT 5 CONNACK
    /// Wildcard Subscription Available 0), section 3.2.2.3.11.
    WildcardSubscriptionsNotAvailable,
    /// A `$share/` filter, but the broker has no shared subscriptions (MQTT 5 CONNACK Shared
    /// Subscription Available 0), section 3.2.2.3.13.
    SharedSubscriptionsNotAvailable,
    /// A Subscription Identifier, but the broker does not support them (MQTT 5 CONNACK
    /// Subscription Identifiers Available 0), section 3.2.2.3.12.
    SubscriptionIdentifiersNotAvailable,
    /// The payload does not fit in one PUBLISH: with the topic (and packet id at QoS 1/2) it
    /// would exceed the 268 435 455 bytes the remaining length can express `[MQTT-2.2.3]`.
    /// Refused before anything is copied.
    PayloadTooLarge {
        /// The payload's size.
        size: usize,
        /// The largest payload this topic and QoS allow
        /// ([`max_payload_len`]).
        max: usize,
    },
    /// The session's [`Fixed`](crate::storage::Fixed) storage has no room: too many
    /// SUBSCRIBE / UNSUBSCRIBE wait for their acknowledgement, the packet is larger than its
    /// buffers, the bytes not yet written leave no room for it (write them, then retry), or
    /// the stored QoS 1/2 packets leave no room for this one (retry once some are
    /// acknowledged).
    StorageFull,
}

impl core::fmt::Display for UsageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UsageError::NotConnected => f.write_str("not connected"),
            UsageError::AlreadyConnected => f.write_str("already connected"),
            UsageError::InvalidTopicName(e) => write!(f, "invalid topic name: {e}"),
            UsageError::InvalidTopicFilter(e) => write!(f, "invalid topic filter: {e}"),
            UsageError::NoTopicFilters => f.write_str("no topic filters given"),
            UsageError::EmptyClientIdNeedsCleanSession => {
                f.write_str("an empty client id requires clean_session = true")
            }
            UsageError::Encode(e) => write!(f, "cannot encode packet: {e}"),
            UsageError::OutgoingFull => f.write_str("too many unacknowledged messages"),
            UsageError::Mqtt5NotCompiled => f.write_str(
                "MQTT 5 is not compiled in (umqtt-core built without its `mqtt5` feature)",
            ),
            UsageError::RetainNotAvailable => f.write_str("the broker has no retained messages"),
            UsageError::QoSNotSupported { max } => {
                write!(
                    f,
                    "the broker accepts PUBLISH only up to QoS {}",
                    *max as u8
                )
            }
            UsageError::PacketTooLarge { size, max } => write!(
                f,
                "packet of {size} bytes exceeds the broker's maximum packet size of {max}"
            ),
            UsageError::WildcardSubscriptionsNotAvailable => {
                f.write_str("the broker has no wildcard subscriptions")
            }
            UsageError::SharedSubscriptionsNotAvailable => {
                f.write_str("the broker has no shared subscriptions")
            }
            UsageError::SubscriptionIdentifiersNotAvailable => {
                f.write_str("the broker has no subscription identifiers")
            }
            UsageError::PayloadTooLarge { size, max } => write!(
                f,
                "payload of {size} bytes exceeds the MQTT maximum of {max} bytes for this \
                 topic and QoS"
            ),
            UsageError::StorageFull => f.write_str(
                "the session's fixed storage has no room (too many requests waiting, or a packet \
                 larger than its buffers)",
            ),
        }
    }
}

impl core::error::Error for UsageError {}

impl From<EncodeError> for UsageError {
    fn from(e: EncodeError) -> Self {
        UsageError::Encode(e)
    }
}

impl From<Full> for UsageError {
    fn from(_: Full) -> Self {
        UsageError::StorageFull
    }
}

/// Something the driver or application should know. Borrowed data points into the session's
/// receive buffer and is valid until the next call on the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// CONNACK accepted the connection.
    Connected {
        /// The broker resumed the stored session.
        session_present: bool,
    },
    /// An application message arrived (already acknowledged as its QoS requires; a QoS 2
    /// message is reported once even if the broker repeats it).
    Message(Publish<'a>),
    /// A QoS 1 (PUBACK) or QoS 2 (PUBCOMP) publish completed.
    Published(PacketId),
    /// The broker refused a QoS 1/2 publish with an MQTT 5 PUBACK or PUBREC reason code of
    /// 0x80 or above (section 4.3.2, 4.3.3): the exchange is over and the message was not
    /// accepted (e.g. Not authorized, Quota exceeded). Its packet id is free again. Also, at
    /// an MQTT 5 CONNACK, for a stored publish (queued, or to be resent) that the broker's new
    /// limits rule out, which is removed instead of sent: 0x9B QoS not supported (above its
    /// Maximum QoS) or 0x9A Retain not supported (Retain Available 0); its id is then freed
    /// as for [`Event::PublishTooLarge`].
    PublishRefused {
        /// The publish's packet id.
        packet_id: PacketId,
        /// Why.
        reason_code: ReasonCode,
    },
    /// PUBREC arrived for a QoS 2 publish: the broker holds the message and only PUBREL /
    /// PUBCOMP remain; it can no longer be cancelled `[MQTT-4.3.3-1]`.
    PublishReceived(PacketId),
    /// A queued or unacknowledged publish was discarded because a clean session was started.
    PublishDiscarded(PacketId),
    /// A stored QoS 1/2 publish (queued, or to be resent) is larger than the Maximum Packet
    /// Size of the broker's new MQTT 5 CONNACK, so it can never be sent on this connection:
    /// it was removed instead of sent (the broker would close the connection, and the next
    /// one would try again, forever). Its packet id is free again, except for a QoS 2
    /// message the broker may hold, whose id stays reserved until the broker's session ends.
    PublishTooLarge {
        /// The publish's packet id.
        packet_id: PacketId,
        /// The PUBLISH packet's size, fixed header included.
        size: usize,
        /// The broker's Maximum Packet Size.
        max: u32,
    },
    /// SUBACK for a SUBSCRIBE.
    Subscribed(SubAck<'a>),
    /// UNSUBACK for an UNSUBSCRIBE. With MQTT 5 it carries one reason code per filter
    /// ([`UnsubAck::codes`]): 0x00 Success, 0x11 No subscription existed (informational: the
    /// filter is not subscribed either way), 0x80 or above a refusal (e.g. Not authorized).
    /// With 3.1.1 it carries none.
    Unsubscribed(UnsubAck<'a>),
    /// PINGRESP arrived.
    PingResponse,
    /// The connection is over; close the socket.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connection {
    Disconnected,
    AwaitingConnAck {
        deadline: Instant,
        clean_session: bool,
    },
    Connected,
}

/// Where an outgoing QoS 1/2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingStage {
    /// Not yet sent on the current connection.
    Queued,
    /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    AwaitingAck,
    /// PUBREL sent, waiting for PUBCOMP (QoS 2). The PUBLISH is never sent again.
    AwaitingPubComp,
}

/// A stored PUBLISH in the session's packet store.
type PacketSlot<S> = <<S as Storage>::Packets as PacketStore<<S as Storage>::Bytes>>::Slot;

struct Outgoing<S: Storage> {
    packet_id: PacketId,
    qos: QoS,
    stage: OutgoingStage,
    /// Whether the PUBLISH was ever written to a connection (a resend then carries DUP).
    sent_before: bool,
    /// The encoded PUBLISH with DUP clear, in `State::packets`.
    packet: PacketSlot<S>,
    /// `rx_generation` when it was last sent: an acknowledgement in the same input as its
    /// sending cannot be for it (the driver had not even written it yet).
    sent_in: u64,
}

#[derive(Debug, Clone, Copy)]
enum Request {
    Subscribe { filters: usize },
    Unsubscribe { filters: usize },
}

/// The client side of an MQTT 3.1.1 or MQTT 5 session. See the [module docs](self) for the call
/// order.
///
/// `S` says where it keeps its state: [`Heap`](crate::storage::Heap) (the default: growable, bounded by the
/// configuration's limits) or [`Fixed`](crate::storage::Fixed) (sized up front, for a device;
/// see [`Session::with_storage`]).
pub struct Session<S: Storage = DefaultStorage> {
    /// Received bytes; `rx[rx_start..]` is not yet decoded.
    rx: S::Bytes,
    rx_start: usize,
    /// Start of the first received packet not yet complete in `rx` (`>= rx_start`): the
    /// keepalive counts only complete packets as signs of life.
    rx_scan: usize,
    /// Capacity asked for by [`Session::reserve_input`]; `rx` shrinks back towards it after a
    /// large packet.
    rx_keep: usize,
    state: State<S>,
}

impl<S: Storage> fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = &self.state;
        f.debug_struct("Session")
            .field("client_id", &state.client_id())
            .field("connection", &state.connection)
            .field("outgoing", &state.outgoing.len())
            .field("in_flight", &state.in_flight)
            .field("requests", &state.requests.len())
            .field("received", &(self.rx.len() - self.rx_start))
            .field("unsent", &(state.tx.len() - state.tx_sent))
            .field("events", &state.events.len())
            .finish_non_exhaustive()
    }
}

/// `rx` and `tx` keep at least this much capacity (or what `reserve_input` asked for) when
/// they shrink after a large packet.
const BUFFER_KEEP: usize = 64 * 1024;
/// An idle `rx` or `tx` larger than this many times what it keeps is shrunk: a burst of large
/// packets does not pin its peak memory, while packets up to a few times `BUFFER_KEEP` never
/// cause a reallocation.
const BUFFER_SHRINK_FACTOR: usize = 4;
/// Most outgoing topic aliases the session sets up on one connection, whatever the broker
/// allows: the lookup is linear.
const MAX_TOPIC_ALIASES: u16 = 64;
/// A QoS 0 message goes with an outgoing topic alias only if it has fewer properties of its
/// own than this (the alias is added to them in a list on the stack); one with more is sent
/// with its full topic.
const MAX_PROPERTIES_WITH_ALIAS: usize = 16;

struct State<S: Storage> {
    config: SessionConfig<S::Strings>,
    connection: Connection,
    /// Unacknowledged QoS 1/2 messages in publish order; the first `in_flight` were sent on the
    /// current connection.
    outgoing: S::Messages<Outgoing<S>>,
    in_flight: usize,
    /// Ids of `outgoing` entries and of pending SUBSCRIBE/UNSUBSCRIBE requests.
    used_ids: IdSet,
    requests: S::Vec<(PacketId, Request)>,
    /// Ids of cancelled messages sent on this connection; freed when it ends.
    quarantined_ids: S::Vec<PacketId>,
    /// Those of `quarantined_ids` whose PUBACK has not come: the broker still counts them
    /// against its Receive Maximum.
    withdrawn_unacked: S::Vec<PacketId>,
    next_packet_id: u16,
    /// QoS 2 messages received (PUBREC sent) and not yet released by PUBREL.
    incoming_qos2: IdSet,
    /// Counts `handle_read` calls: tells input that arrived after a PUBLISH was handed to the
    /// driver from input that came with the packet that released it.
    rx_generation: u64,
    /// With `manual_ack`: received QoS 1/2 messages whose PUBACK (0x40) / PUBREC (0x50) is
    /// not yet written, in arrival order, and whether the application acknowledged them.
    pending_acks: S::Deque<(PacketId, u8, bool)>,
    /// Bytes to send; `tx[..tx_sent]` were handed to the driver.
    tx: S::Bytes,
    tx_sent: usize,
    /// Large stored PUBLISH packets to send from their own buffer (no copy into `tx`): each
    /// goes out once `tx_sent` reaches its offset in `tx`. (Never on fixed storage, which
    /// copies every packet into `tx`.)
    tx_stored: S::HeapOnly<(usize, PacketId)>,
    events: S::Deque<Event<'static>>,
    /// Events that found the (fixed) event list full: the driver did not drain it.
    events_lost: usize,
    last_tx: Instant,
    last_rx: Instant,
    ping_deadline: Option<Instant>,
    /// The stored PUBLISH packets of `outgoing`.
    packets: S::Packets,
    /// What the last MQTT 5 CONNACK allowed (defaults otherwise).
    broker: BrokerLimits<S::Text>,
    /// The last MQTT 5 Assigned Client Identifier: what CONNECT names while the configured
    /// client id is empty, so that the next connection can resume the session.
    assigned_client_id: S::Text,
    /// The keepalive in force: the configured one, or the broker's Server Keep Alive.
    keep_alive: u16,
    /// MQTT 5 outgoing topic aliases set up on this connection.
    topic_aliases: OutgoingAliases<S>,
    /// MQTT 5 incoming topic aliases set up by the broker on this connection, at most the
    /// Topic Alias Maximum announced.
    incoming_aliases: IncomingAliases<S>,
    /// Set by `handle_publish` for the message it returns: its topic is this incoming alias's
    /// (the PUBLISH carried only the alias); `poll_event` fills it in.
    resolve_alias: Option<u16>,
    /// MQTT 5: ids of QoS 1/2 PUBLISH packets received on this connection whose PUBACK
    /// (QoS 1) or PUBCOMP (QoS 2) is not yet written: what the announced Receive Maximum
    /// bounds, section 4.9. (Not in a build without MQTT 5.)
    #[cfg(feature = "mqtt5")]
    incoming_unacked: IdSet,
    /// Ids of QoS 2 messages dropped as too large after they were sent: the broker's session
    /// may hold them, so they stay out of use until it ends (a CONNACK without a session, or
    /// a clean session).
    retired_ids: S::Vec<PacketId>,
}

#[cfg(feature = "alloc")]
impl Session {
    /// A disconnected session with no state, on the heap.
    pub fn new(config: SessionConfig) -> Self {
        Session::with_storage(config)
    }
}

impl<S: Storage> Session<S> {
    /// A disconnected session with no state, kept in storage `S`, e.g.
    /// `Session::<Fixed<8, 512>>::with_storage(config)` for a device: no list or buffer of
    /// the session grows after this (the configuration's strings are still owned). With
    /// [`Fixed`](crate::storage::Fixed)`<N, B, Q>`:
    /// - at most `N - 2` QoS 1/2 messages are held ([`SessionConfig::max_outgoing`] is lowered
    ///   to it; more gives [`UsageError::OutgoingFull`]), their encoded PUBLISH packets in `Q`
    ///   bytes (a packet that does not fit until others are acknowledged gives
    ///   [`UsageError::StorageFull`]), at most `N` SUBSCRIBE / UNSUBSCRIBE
    ///   wait for their acknowledgement and `N` received messages for the application's
    ///   [`Session::ack`] ([`UsageError::StorageFull`], or input left undecoded until there is
    ///   room);
    /// - no packet larger than `B` bytes is sent or received ([`SessionConfig::max_packet_size`]
    ///   is lowered to it; a larger PUBLISH gives [`UsageError::StorageFull`]), and a driver
    ///   feeds at most [`Session::input_room`] bytes per [`Session::handle_read`];
    /// - after writing [`Session::poll_transmit`]'s bytes the driver drains
    ///   [`Session::poll_event`] again while [`Session::has_unprocessed_input`]: decoding waits
    ///   while the transmit buffer lacks room for the answers a packet may need;
    /// - MQTT 5 allocates nothing either: the broker's strings ([`BrokerLimits`]) are kept as
    ///   [`FixedText<B>`](crate::storage::FixedText); each topic alias table holds at most `N`
    ///   aliases whose topics take at most `B` bytes together (an outgoing alias that does not
    ///   fit is not set up, the topic goes in full; at most `N` incoming aliases are announced,
    ///   see [`ConnectOptions::topic_alias_maximum`]), and the broker's Assigned Client
    ///   Identifier is kept in a [`FixedText<B>`](crate::storage::FixedText) too
    ///   ([`Session::client_id`]). This costs about `5 × B` more bytes in the session
    ///   (the two tables and the three strings: `Session<Fixed<8, 256>>` is 5 896 bytes, 4 360
    ///   when built without the `mqtt5` feature).
    pub fn with_storage(config: SessionConfig<S::Strings>) -> Self {
        // Fixed storage: packet-id sets hold their ids inline, and never allocate.
        let ids = || {
            if S::ITEMS == usize::MAX {
                IdSet::new()
            } else {
                IdSet::inline_only()
            }
        };
        Session {
            rx: S::Bytes::default(),
            rx_start: 0,
            rx_scan: 0,
            rx_keep: 0,
            state: State {
                config,
                connection: Connection::Disconnected,
                outgoing: Default::default(),
                in_flight: 0,
                used_ids: ids(),
                requests: Default::default(),
                quarantined_ids: Default::default(),
                withdrawn_unacked: Default::default(),
                next_packet_id: 1,
                incoming_qos2: ids(),
                rx_generation: 0,
                pending_acks: Default::default(),
                tx: S::Bytes::default(),
                tx_sent: 0,
                tx_stored: Default::default(),
                events: Default::default(),
                events_lost: 0,
                last_tx: Instant::default(),
                last_rx: Instant::default(),
                ping_deadline: None,
                packets: Default::default(),
                broker: BrokerLimits::default(),
                assigned_client_id: Default::default(),
                keep_alive: 0,
                topic_aliases: Default::default(),
                incoming_aliases: Default::default(),
                resolve_alias: None,
                #[cfg(feature = "mqtt5")]
                incoming_unacked: ids(),
                retired_ids: Default::default(),
            },
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig<S::Strings> {
        &self.state.config
    }

    /// Mutable configuration; changes apply from the next `connect`.
    pub fn config_mut(&mut self) -> &mut SessionConfig<S::Strings> {
        &mut self.state.config
    }

    /// The client identifier the next CONNECT names: the configured one
    /// ([`SessionConfig::client_id`]), or while that is empty, the one the broker assigned in
    /// its last MQTT 5 CONNACK (empty before any), so that a session can be resumed.
    pub fn client_id(&self) -> &str {
        self.state.client_id()
    }

    /// What the broker's last MQTT 5 CONNACK allowed (the defaults before any, and with 3.1.1).
    pub fn broker_limits(&self) -> &BrokerLimits<S::Text> {
        &self.state.broker
    }

    /// The keepalive in force on this connection, in seconds: the configured one, or the
    /// broker's MQTT 5 Server Keep Alive, which overrides it `[MQTT-3.2.2-21]`.
    pub fn keep_alive(&self) -> u16 {
        self.state.keep_alive
    }

    /// Whether CONNACK accepted the current connection.
    pub fn is_connected(&self) -> bool {
        self.state.connection == Connection::Connected
    }

    /// Whether a connection is up or being set up.
    pub fn is_connecting_or_connected(&self) -> bool {
        self.state.connection != Connection::Disconnected
    }

    /// Number of QoS 1/2 messages not yet completed (in flight and queued).
    pub fn outgoing_len(&self) -> usize {
        self.state.outgoing.len()
    }

    /// Number of QoS 1/2 PUBLISH (or PUBREL) awaiting acknowledgement on this connection.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight
    }

    /// With [`SessionConfig::manual_ack`]: the application processed the received QoS 1/2
    /// message `packet_id`. Its PUBACK / PUBREC goes out once every message received before it
    /// is acknowledged too. Returns false if no such acknowledgement is owed (already
    /// acknowledged, QoS 0, or forgotten: a QoS 1 message whose connection ended is
    /// redelivered by the broker and acknowledged then).
    pub fn ack(&mut self, packet_id: PacketId) -> bool {
        let state = &mut self.state;
        let Some(entry) = state
            .pending_acks
            .iter_mut()
            .find(|(id, _, acked)| *id == packet_id && !*acked)
        else {
            return false;
        };
        entry.2 = true;
        state.flush_acks();
        true
    }

    /// MQTT 5: lowers the Message Expiry Interval that the QoS 1/2 message `packet_id` carries
    /// when it is next (re)sent to `seconds` if it is higher, so that a message resent on a
    /// later connection tells the broker at most what is left of its lifetime, not what was
    /// left at its first send. A QoS 2 message past PUBREC is patched too: a broker that lost
    /// the session gets its PUBLISH again. `false` if the message is unknown or carries no
    /// Message Expiry Interval.
    pub fn shorten_message_expiry(&mut self, packet_id: PacketId, seconds: u32) -> bool {
        self.state
            .outgoing
            .iter_mut()
            .find(|o| o.packet_id == packet_id)
            .is_some_and(|o| {
                let packet = self.state.packets.get_mut(&mut o.packet);
                crate::packet::shorten_message_expiry(packet, seconds)
            })
    }

    /// Whether the QoS 1/2 message `packet_id` can still be withdrawn with
    /// [`Session::cancel_publish`].
    pub fn can_cancel(&self, packet_id: PacketId) -> bool {
        let state = &self.state;
        let index = state.outgoing.iter().position(|o| o.packet_id == packet_id);
        index.is_some_and(|index| state.cancellable(index))
    }

    /// The outgoing messages in order: packet id, QoS and stage.
    pub fn outgoing(&self) -> impl Iterator<Item = (PacketId, QoS, OutgoingStage)> + '_ {
        self.state
            .outgoing
            .iter()
            .map(|o| (o.packet_id, o.qos, o.stage))
    }

    /// Starts a new connection: queues CONNECT. The driver must have opened the transport.
    ///
    /// With `clean_session` the previous session is discarded `[MQTT-3.1.2-6]`: every
    /// unacknowledged message is reported by [`Event::PublishDiscarded`].
    pub fn connect(&mut self, now: Instant, clean_session: bool) -> Result<(), UsageError> {
        let state = &mut self.state;
        if state.connection != Connection::Disconnected {
            return Err(UsageError::AlreadyConnected);
        }
        if state.client_id().is_empty() && !clean_session {
            return Err(UsageError::EmptyClientIdNeedsCleanSession);
        }
        if !state.config.protocol.is_supported() {
            return Err(UsageError::Mqtt5NotCompiled);
        }
        let config = &state.config;
        let properties = if config.protocol.v5() {
            // The properties are encoded into the receive buffer, which a new connection
            // starts empty (below) and nothing reads while disconnected: no list is built,
            // nothing is allocated on fixed storage.
            self.rx.clear();
            self.rx_start = 0;
            self.rx_scan = 0;
            let aliases = state.incoming_alias_maximum();
            let max_packet_size = state.max_packet_size();
            let encoded =
                config
                    .v5
                    .append_properties(clean_session, max_packet_size, aliases, &mut self.rx);
            if let Err(e) = encoded {
                self.rx.clear();
                return Err(e);
            }
            Properties::Encoded(&self.rx)
        } else {
            Properties::EMPTY
        };
        let connect = Connect {
            protocol: config.protocol,
            client_id: client_id(config.client_id.as_ref(), &state.assigned_client_id),
            keep_alive: config.keep_alive,
            clean_session,
            will: config.will.as_ref().map(|w| LastWill {
                topic: w.topic.as_ref(),
                payload: w.payload.as_ref(),
                qos: w.qos,
                retain: w.retain,
                properties: Properties::Encoded(w.properties.as_ref()),
            }),
            username: config.username.as_ref().map(AsRef::as_ref),
            password: config.password.as_ref().map(AsRef::as_ref),
            properties,
        };
        // Validate before touching any state.
        let written = encoded_len(&connect, ProtocolVersion::V311)
            .map_err(UsageError::from)
            .and_then(|_| {
                state.tx.clear();
                state.tx_sent = 0;
                state.tx_stored.clear();
                append_packet(&mut state.tx, &connect, ProtocolVersion::V311)
            });
        self.rx.clear();
        self.rx_start = 0;
        self.rx_scan = 0;
        written?;
        if clean_session && !state.config.republish_on_clean_session {
            state.discard_session();
        }
        state.connection = Connection::AwaitingConnAck {
            deadline: now.saturating_add(state.config.connect_timeout),
            clean_session,
        };
        state.last_rx = now;
        state.last_tx = now;
        state.ping_deadline = None;
        state.keep_alive = state.config.keep_alive;
        // The broker's topic aliases and its receive quota last one connection (sections
        // 3.3.2.3.4 and 4.9).
        state.incoming_aliases.clear();
        #[cfg(feature = "mqtt5")]
        state.incoming_unacked.clear();
        Ok(())
    }

    /// Publishes a message. QoS 0 needs a connection; QoS 1/2 messages are queued while
    /// disconnected or while the in-flight window is full, and sent in order.
    ///
    /// Returns the packet id for QoS 1/2: [`Event::Published`] with this id reports completion.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Option<PacketId>, UsageError> {
        validate_topic_name(topic).map_err(UsageError::InvalidTopicName)?;
        self.publish_inner(topic, payload, qos, retain, Properties::EMPTY)
    }

    /// [`Session::publish`] with MQTT 5 PUBLISH properties (message expiry, user properties,
    /// response topic, correlation data, content type…). With 3.1.1, non-empty properties are
    /// refused with [`EncodeError::RequiresMqtt5`].
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: Properties<'_>,
    ) -> Result<Option<PacketId>, UsageError> {
        validate_topic_name(topic).map_err(UsageError::InvalidTopicName)?;
        self.publish_inner(topic, payload, qos, retain, properties)
    }

    /// [`Session::publish_with`] for a topic name the caller has validated (the robust engine
    /// checks it when the message is accepted): not scanned again.
    pub(crate) fn publish_valid_topic(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: Properties<'_>,
    ) -> Result<Option<PacketId>, UsageError> {
        self.publish_inner(topic, payload, qos, retain, properties)
    }

    #[inline(always)]
    fn publish_inner(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: Properties<'_>,
    ) -> Result<Option<PacketId>, UsageError> {
        check_payload_len(topic, payload, qos)?;
        let state = &mut self.state;
        let version = state.config.protocol;
        if version.v5() {
            state.check_publish_allowed(qos, retain)?;
        }
        if qos == QoS::AtMostOnce {
            if state.connection != Connection::Connected {
                return Err(UsageError::NotConnected);
            }
            if version.v5() && state.config.v5.topic_aliases {
                return state.publish_qos0_v5(topic, payload, retain, properties);
            }
            let publish = Publish {
                dup: false,
                qos,
                retain,
                topic,
                packet_id: None,
                payload,
                properties,
            };
            state.begin_tx();
            let start = state.tx.len();
            append_publish_validated_topic(&mut state.tx, &publish, version)?;
            if let Err(e) = state.check_command(start) {
                state.tx.truncate(start);
                return Err(e);
            }
            return Ok(None);
        }
        if state.outgoing.len() >= state.max_outgoing() {
            return Err(UsageError::OutgoingFull);
        }
        if !state.used_ids.has_room() {
            return Err(UsageError::StorageFull);
        }
        let packet_id = state.allocate_packet_id()?;
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic,
            packet_id: Some(packet_id),
            payload,
            properties,
        };
        let mut buffer = state.packets.buffer();
        if let Err(e) = append_publish_validated_topic(&mut buffer, &publish, version)
            .and_then(|()| state.check_packet_size(buffer.len()))
        {
            state.packets.discard(buffer);
            return Err(e);
        }
        // Fixed storage: no room in the packet arena until stored messages complete.
        let Ok(packet) = state.packets.store(buffer) else {
            return Err(UsageError::StorageFull);
        };
        let entry = Outgoing {
            packet_id,
            qos,
            stage: OutgoingStage::Queued,
            sent_before: false,
            packet,
            sent_in: 0,
        };
        if let Err(entry) = state.outgoing.push(entry) {
            state.packets.remove(entry.packet);
            return Err(UsageError::OutgoingFull);
        }
        // Room was checked above.
        let _ = state.used_ids.insert(packet_id);
        state.fill_window();
        Ok(Some(packet_id))
    }

    /// Puts back a QoS 1/2 message that a previous process had published with `packet_id`
    /// (read from a durable outbox after a crash), before the first `connect`. `sent_before`
    /// says whether it may have reached the broker: if the broker resumes the session it is
    /// then resent with DUP set and the same id, in the order messages were restored.
    pub fn restore_publish(
        &mut self,
        packet_id: PacketId,
        publish: &Publish<'_>,
        sent_before: bool,
    ) -> Result<(), UsageError> {
        let state = &mut self.state;
        if state.connection != Connection::Disconnected {
            return Err(UsageError::AlreadyConnected);
        }
        validate_topic_name(publish.topic).map_err(UsageError::InvalidTopicName)?;
        check_payload_len(publish.topic, publish.payload, publish.qos)?;
        if publish.qos == QoS::AtMostOnce || state.used_ids.contains(packet_id) {
            return Err(UsageError::Encode(EncodeError::PacketIdMismatch));
        }
        if state.outgoing.len() >= state.max_outgoing() {
            return Err(UsageError::OutgoingFull);
        }
        if !state.used_ids.has_room() {
            return Err(UsageError::StorageFull);
        }
        let packet = Publish {
            dup: false,
            packet_id: Some(packet_id),
            ..*publish
        };
        let mut buffer = state.packets.buffer();
        let version = state.config.protocol;
        if let Err(e) = append_publish(&mut buffer, &packet, version, |publish, buf| {
            encode_publish_header_with(publish, buf, version)
        }) {
            state.packets.discard(buffer);
            return Err(e);
        }
        let Ok(buffer) = state.packets.store(buffer) else {
            return Err(UsageError::StorageFull);
        };
        // A restored message is "sent" if it may have been: on a resumed session it goes
        // first, with DUP.
        let entry = Outgoing {
            packet_id,
            qos: publish.qos,
            stage: if sent_before {
                OutgoingStage::AwaitingAck
            } else {
                OutgoingStage::Queued
            },
            sent_before,
            packet: buffer,
            sent_in: 0,
        };
        if let Err(entry) = state.outgoing.push(entry) {
            state.packets.remove(entry.packet);
            return Err(UsageError::OutgoingFull);
        }
        // Room was checked above.
        let _ = state.used_ids.insert(packet_id);
        Ok(())
    }

    /// Withdraws an unacknowledged QoS 1/2 message (its delivery deadline passed, or its policy
    /// dropped it). Returns false — and keeps the message — if it is unknown or if it is a QoS 2
    /// message that was ever sent: the broker may hold its packet id in its QoS 2 table, so
    /// the id cannot be reused for another message (the broker would take that one for a
    /// duplicate and drop it), and after PUBREC only PUBREL may follow `[MQTT-4.3.3-1]`. Such
    /// a message completes with PUBREL / PUBCOMP.
    pub fn cancel_publish(&mut self, packet_id: PacketId) -> bool {
        let state = &mut self.state;
        let Some(index) = state.outgoing.iter().position(|o| o.packet_id == packet_id) else {
            return false;
        };
        if !state.cancellable(index) {
            return false;
        }
        if let Some(entry) = state.outgoing.remove(index) {
            if index < state.in_flight {
                // Sent on this connection: a late PUBACK/PUBREC may still come. Keep the id out
                // of use until the connection ends, so it cannot complete a newer message.
                // (Room was checked above.)
                let _ = state.quarantined_ids.push(entry.packet_id);
                let _ = state.withdrawn_unacked.push(entry.packet_id);
            } else {
                state.used_ids.remove(entry.packet_id);
            }
            state.packets.remove(entry.packet);
        }
        if index < state.in_flight {
            state.in_flight -= 1;
            state.fill_window();
        }
        true
    }

    /// Sends SUBSCRIBE for `filters`; [`Event::Subscribed`] with the returned id reports the
    /// outcome.
    pub fn subscribe(&mut self, filters: &[(&str, QoS)]) -> Result<PacketId, UsageError> {
        if filters.is_empty() {
            return Err(UsageError::NoTopicFilters);
        }
        for (filter, _) in filters {
            validate_topic_filter(filter).map_err(UsageError::InvalidTopicFilter)?;
            self.state.check_filter_allowed(filter)?;
        }
        self.state.request(
            Request::Subscribe {
                filters: filters.len(),
            },
            |packet_id| Subscribe {
                packet_id,
                topics: SubscribeTopics::List(filters),
                properties: Properties::EMPTY,
            },
        )
    }

    /// [`Session::subscribe`] with MQTT 5 subscription options (No Local, Retain As Published,
    /// Retain Handling) and SUBSCRIBE properties (a Subscription Identifier, user properties).
    /// With 3.1.1 anything beyond a QoS is refused with [`EncodeError::RequiresMqtt5`].
    pub fn subscribe_with(
        &mut self,
        filters: &[(&str, SubscriptionOptions)],
        properties: Properties<'_>,
    ) -> Result<PacketId, UsageError> {
        if filters.is_empty() {
            return Err(UsageError::NoTopicFilters);
        }
        for (filter, _) in filters {
            validate_topic_filter(filter).map_err(UsageError::InvalidTopicFilter)?;
            self.state.check_filter_allowed(filter)?;
        }
        if self.state.config.protocol.v5()
            && !self.state.broker.subscription_identifiers_available
            && properties.subscription_identifiers().next().is_some()
        {
            return Err(UsageError::SubscriptionIdentifiersNotAvailable);
        }
        self.state.request(
            Request::Subscribe {
                filters: filters.len(),
            },
            |packet_id| Subscribe {
                packet_id,
                topics: SubscribeTopics::WithOptions(filters),
                properties,
            },
        )
    }

    /// Sends UNSUBSCRIBE for `filters`; [`Event::Unsubscribed`] reports the acknowledgement.
    pub fn unsubscribe(&mut self, filters: &[&str]) -> Result<PacketId, UsageError> {
        self.unsubscribe_with(filters, Properties::EMPTY)
    }

    /// [`Session::unsubscribe`] with MQTT 5 UNSUBSCRIBE properties (user properties). With
    /// 3.1.1, properties are refused with [`EncodeError::RequiresMqtt5`].
    pub fn unsubscribe_with(
        &mut self,
        filters: &[&str],
        properties: Properties<'_>,
    ) -> Result<PacketId, UsageError> {
        if filters.is_empty() {
            return Err(UsageError::NoTopicFilters);
        }
        for filter in filters {
            validate_topic_filter(filter).map_err(UsageError::InvalidTopicFilter)?;
        }
        let request = Request::Unsubscribe {
            filters: filters.len(),
        };
        self.state.request(request, |packet_id| Unsubscribe {
            packet_id,
            topics: UnsubscribeTopics::List(filters),
            properties,
        })
    }

    /// Sends PINGREQ now (unless one is already outstanding); [`Event::PingResponse`] follows.
    pub fn ping(&mut self, now: Instant) -> Result<(), UsageError> {
        if self.state.connection != Connection::Connected {
            return Err(UsageError::NotConnected);
        }
        self.state.send_ping(now);
        Ok(())
    }

    /// Queues DISCONNECT and ends the connection: the broker discards the will. Unacknowledged
    /// messages stay in the session for the next `connect`.
    pub fn disconnect(&mut self) -> Result<(), UsageError> {
        self.disconnect_with(Disconnect::NORMAL)
    }

    /// [`Session::disconnect`] with an MQTT 5 reason code and properties, e.g.
    /// [`ReasonCode::DisconnectWithWillMessage`] (the broker publishes the will) or a new
    /// Session Expiry Interval. With 3.1.1 anything but a normal disconnection is refused with
    /// [`EncodeError::RequiresMqtt5`]; an invalid code or property is refused before anything
    /// is sent.
    pub fn disconnect_with(&mut self, disconnect: Disconnect<'_>) -> Result<(), UsageError> {
        let state = &mut self.state;
        if state.connection != Connection::Connected {
            return Err(UsageError::NotConnected);
        }
        // Validate before touching any state.
        encoded_len(&disconnect, state.config.protocol)?;
        state.begin_tx();
        // Fixed storage keeps room for a DISCONNECT without properties; one that still does not
        // fit ends the connection all the same (without it: the broker publishes the will).
        let written = append_packet(&mut state.tx, &disconnect, state.config.protocol);
        state.connection_ended();
        state.push_event(Event::Closed(CloseReason::Disconnected));
        written
    }

    /// The transport failed or was closed by the peer. The session keeps its state for the next
    /// `connect`; unsent bytes are dropped (what matters is resent after reconnecting).
    pub fn handle_connection_lost(&mut self) {
        self.state.connection_ended();
        self.state.reset_tx();
        self.rx.clear();
        self.rx_start = 0;
        self.rx_scan = 0;
    }

    /// Feeds bytes read from the transport. Drain [`Session::poll_event`] afterwards: decoding
    /// happens there.
    pub fn handle_read(&mut self, now: Instant, data: &[u8]) {
        if self.state.connection == Connection::Disconnected || data.is_empty() {
            return;
        }
        self.state.rx_generation += 1;
        if self.rx_start > 0 {
            self.rx.remove_front(self.rx_start);
            self.rx_scan -= self.rx_start;
            self.rx_start = 0;
        }
        if self.rx.try_extend(data).is_err() {
            // More than `input_room`: the stream cannot be followed past the missing bytes.
            self.rx.clear();
            self.rx_start = 0;
            self.rx_scan = 0;
            self.state.close(CloseReason::StorageFull);
            return;
        }
        // Only a complete packet is a sign of life: a broker that trickles the bytes of one
        // packet forever must not keep a dead link open [MQTT-3.1.2-24]. Packet boundaries are
        // read from fixed headers only; `poll_event` decodes (and reports malformed or
        // oversized packets).
        let mut completed = false;
        while let Ok(Some(size)) = packet_size(&self.rx[self.rx_scan..]) {
            if size > self.rx.len() - self.rx_scan {
                break;
            }
            self.rx_scan += size;
            completed = true;
        }
        if completed {
            self.state.last_rx = now;
            if self.state.ping_deadline.is_some() {
                // Packets are flowing: a PINGRESP queued behind a large message is not late.
                self.state.ping_deadline = Some(now.saturating_add(self.state.ping_timeout()));
            }
        }
    }

    /// Makes room for `capacity` bytes of received input, so that [`Session::handle_read`]
    /// does not allocate while the undecoded tail plus a new read fit in it. A driver that
    /// reads at most `n` bytes at a time and decodes everything before reading again needs
    /// `n` plus the largest packet it expects; without this the buffer grows on demand (to the
    /// same size, at the first read that needs it).
    pub fn reserve_input(&mut self, capacity: usize) {
        self.rx_keep = self.rx_keep.max(capacity);
        let used = self.rx.len();
        self.rx.reserve_exact(capacity.saturating_sub(used));
    }

    /// Whether received bytes are waiting to be decoded by [`Session::poll_event`].
    pub fn has_unprocessed_input(&self) -> bool {
        self.rx_start < self.rx.len()
    }

    /// Most bytes the next [`Session::handle_read`] may feed: unlimited (`usize::MAX`) on the
    /// heap; with [`Fixed`](crate::storage::Fixed) storage, what its receive buffer has left
    /// after the bytes not yet decoded (feeding more closes the connection with
    /// [`CloseReason::StorageFull`]).
    #[must_use]
    pub fn input_room(&self) -> usize {
        S::BYTES.saturating_sub(self.rx.len() - self.rx_start)
    }

    /// Events that [`Fixed`](crate::storage::Fixed) storage had no room for, because the driver
    /// did not drain [`Session::poll_event`] after an input as it must (always 0 on the heap).
    #[must_use]
    pub fn events_lost(&self) -> usize {
        self.state.events_lost
    }

    /// Fires the timers due at `now`: CONNACK timeout, keepalive PINGREQ, PINGRESP timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let state = &mut self.state;
        match state.connection {
            Connection::Disconnected => {}
            Connection::AwaitingConnAck { deadline, .. } => {
                if now >= deadline {
                    state.close(CloseReason::ConnectTimeout);
                }
            }
            Connection::Connected => {
                if let Some(deadline) = state.ping_deadline {
                    if now >= deadline {
                        state.close(CloseReason::KeepAliveTimeout);
                    }
                } else if let Some(due) = state.ping_due() {
                    if now >= due {
                        state.send_ping(now);
                    }
                }
            }
        }
    }

    /// The next instant at which [`Session::handle_timeout`] must be called, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let state = &self.state;
        match state.connection {
            Connection::Disconnected => None,
            Connection::AwaitingConnAck { deadline, .. } => Some(deadline),
            Connection::Connected => state.ping_deadline.or_else(|| state.ping_due()),
        }
    }

    /// The next bytes to write to the transport. Call it until it returns `None` and write
    /// every slice, in order, before the next input to the session. Small packets come
    /// together in one slice; a PUBLISH larger than 64 KiB comes as its own slice, borrowed
    /// from the message's stored copy, so that a large payload is not held twice while it is
    /// sent. `now` is when they are written: the keepalive timer counts from it.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        let state = &mut self.state;
        let mut refilled = false;
        loop {
            let next_stored = state.tx_stored.first().map(|&(at, _)| at);
            if next_stored == Some(state.tx_sent) {
                let (_, packet_id) = state.tx_stored.pop_front()?;
                // A message cancelled after it was queued for sending is skipped: none of its
                // bytes were handed out.
                let Some(index) = state.outgoing.iter().position(|o| o.packet_id == packet_id)
                else {
                    continue;
                };
                state.last_tx = now;
                return Some(state.packets.get(&state.outgoing[index].packet));
            }
            let end = next_stored.unwrap_or(state.tx.len());
            if end == state.tx_sent {
                // Fixed storage: messages the window had no room for in the transmit buffer
                // go now that it has been taken (one slice per pass, at most its size).
                if S::BYTES != usize::MAX && !refilled && state.tx_stored.is_empty() {
                    refilled = true;
                    state.fill_window();
                    continue;
                }
                return None;
            }
            let start = core::mem::replace(&mut state.tx_sent, end);
            state.last_tx = now;
            return Some(&state.tx[start..end]);
        }
    }

    /// The next event already decided (a close by a timer or a command, an event a command
    /// queued), without decoding received input: for a driver that must not take in more
    /// messages now but must still see the connection end.
    #[must_use]
    pub fn poll_queued_event(&mut self) -> Option<Event<'static>> {
        self.state.events.pop_front()
    }

    /// The next event. Received packets are decoded, acknowledged and checked here.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        if let Some(event) = self.state.events.pop_front() {
            return Some(event);
        }
        if self.rx_start == self.rx.len() {
            // Everything received is decoded: a buffer a large packet grew is given back.
            let keep = self.rx_keep.max(BUFFER_KEEP);
            if self.rx.capacity() > keep * BUFFER_SHRINK_FACTOR {
                self.rx.clear();
                self.rx_start = 0;
                self.rx_scan = 0;
                self.rx.shrink_to(keep);
            }
        }
        let Session {
            rx,
            rx_start,
            state,
            ..
        } = self;
        while state.connection != Connection::Disconnected {
            // Nothing received to decode (the common case between packets): no decoder call.
            if *rx_start == rx.len() || !state.room_to_decode() {
                // With fixed storage, also while the answers wait for the driver to write what
                // is queued (or for the application's acknowledgements): the input stays.
                return None;
            }
            let input = &rx[*rx_start..];
            match decode_from_server(input, state.max_packet_size(), state.config.protocol) {
                Ok(Decoded::Incomplete) => return None,
                Err(FromServerError::ClientPacket {
                    packet_type,
                    consumed,
                }) => {
                    // CONNECT, SUBSCRIBE, UNSUBSCRIBE or PINGREQ: only a client sends them.
                    *rx_start += consumed;
                    return state.unexpected_packet(packet_type);
                }
                Err(FromServerError::Malformed(DecodeError::PacketTooLarge { size, max })) => {
                    return state.close_with_disconnect(
                        CloseReason::PacketTooLarge { size, max },
                        ReasonCode::PacketTooLarge,
                    );
                }
                Err(FromServerError::Malformed(DecodeError::InvalidPropertyValue {
                    property: PropertyId::TopicAlias,
                    value: 0,
                })) => {
                    // A well-formed packet with an alias no receiver allows [MQTT-3.3.2-8]:
                    // Topic Alias invalid, like one above the maximum.
                    return state.protocol_error(ProtocolError::TopicAliasInvalid(0));
                }
                Err(FromServerError::Malformed(e)) => {
                    return state.close_with_disconnect(
                        CloseReason::Decode(e),
                        ReasonCode::MalformedPacket,
                    );
                }
                Ok(Decoded::Complete { packet, consumed }) => {
                    *rx_start += consumed;
                    if let Some(mut event) = state.handle_packet(packet) {
                        if let (Event::Message(publish), Some(alias)) =
                            (&mut event, state.resolve_alias.take())
                        {
                            // The PUBLISH carried only the alias: the topic is the one the
                            // table holds (borrowed, no copy per message).
                            let state: &State<S> = state;
                            publish.topic = state.incoming_topic(alias);
                        }
                        return Some(event);
                    }
                }
            }
        }
        None
    }
}
/// Refuses a payload that cannot fit in one PUBLISH, before anything is copied `[MQTT-2.2.3]`.
///
/// # Errors
/// The [`UsageError`] a publish of it would get.
#[inline]
pub fn check_payload_len(topic: &str, payload: &[u8], qos: QoS) -> Result<(), UsageError> {
    let max = max_payload_len(topic, qos);
    if payload.len() > max {
        return Err(UsageError::PayloadTooLarge {
            size: payload.len(),
            max,
        });
    }
    Ok(())
}

/// Appends an encoded CONNECT, SUBSCRIBE, UNSUBSCRIBE or DISCONNECT to `buffer` (a PUBLISH
/// goes through [`append_publish`]): validated once, then written into room added for it; on
/// error `buffer` is unchanged. Each type is encoded by its own writer, so the session carries
/// only the layouts it sends.
fn append_packet(
    buffer: &mut impl Buffer,
    packet: &impl Encode,
    version: ProtocolVersion,
) -> Result<(), UsageError> {
    let start = buffer.len();
    encode_packet_into(packet, version, |len| {
        buffer.try_resize(start + len)?;
        Ok::<_, UsageError>(&mut buffer[start..])
    })?;
    Ok(())
}

/// Appends a PUBLISH whose topic name the caller has validated (so it is not scanned again).
fn append_publish_validated_topic(
    buffer: &mut impl Buffer,
    publish: &Publish<'_>,
    version: ProtocolVersion,
) -> Result<(), UsageError> {
    append_publish(buffer, publish, version, |publish, buf| {
        encode_publish_header_validated_topic(publish, buf, version)
    })
}

/// Appends a PUBLISH; on error `buffer` is unchanged. Only the header is zero-filled and
/// encoded in place; the payload, which may be large, is copied once.
#[inline]
fn append_publish(
    buffer: &mut impl Buffer,
    publish: &Publish<'_>,
    version: ProtocolVersion,
    encode_header: impl Fn(&Publish<'_>, &mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), UsageError> {
    let start = buffer.len();
    // Fixed header (1 + at most 4), topic length (2), packet id (2), and in MQTT 5 the
    // property block.
    let properties = if version.v5() {
        publish_properties_len(&publish.properties)?
    } else {
        0
    };
    let max_header = 9 + publish.topic.len() + properties;
    // The header is encoded (and the size checked) before room for the payload is reserved,
    // so a payload too large for MQTT costs no allocation. A fixed buffer may be too small
    // for the header's worst case but not for the header itself.
    let limit = buffer.max_len();
    let room = if limit == usize::MAX {
        max_header
    } else {
        max_header.min(limit.saturating_sub(start))
    };
    buffer.try_resize(start + room)?;
    match encode_header(publish, &mut buffer[start..]) {
        Ok(header) => {
            buffer.truncate(start + header);
            buffer.reserve_exact(publish.payload.len());
            if buffer.try_extend(publish.payload).is_err() {
                buffer.truncate(start);
                return Err(UsageError::StorageFull);
            }
            Ok(())
        }
        Err(e) => {
            buffer.truncate(start);
            Err(match e {
                EncodeError::BufferTooSmall { .. } if room < max_header => UsageError::StorageFull,
                e => e.into(),
            })
        }
    }
}

const DUP_FLAG: u8 = 0b1000;

/// Bytes a received packet's answers may need in the transmit buffer (an acknowledgement, and
/// an MQTT 5 DISCONNECT after a violation): with fixed storage, decoding waits for this room.
const ANSWER_ROOM: usize = 8;

/// The client id CONNECT names: the configured one, or while that is empty, the assigned one.
fn client_id<'a>(configured: &'a str, assigned: &'a str) -> &'a str {
    if configured.is_empty() {
        assigned
    } else {
        configured
    }
}

impl<S: Storage> State<S> {
    fn client_id(&self) -> &str {
        client_id(self.config.client_id.as_ref(), &self.assigned_client_id)
    }

    /// [`SessionConfig::max_outgoing`], within what the storage holds (room is kept in the
    /// event list for what one step can report about each message, and the connection's end).
    fn max_outgoing(&self) -> usize {
        self.config
            .max_outgoing
            .min(S::ITEMS.saturating_sub(2))
            .min(S::MESSAGES)
    }

    /// Whether outgoing entry `index` may be withdrawn: not a QoS 2 message ever sent (see
    /// [`Session::cancel_publish`]), and, for one sent on this connection, room to keep its id
    /// out of use (fixed storage: otherwise the message stays, and completes).
    fn cancellable(&self, index: usize) -> bool {
        let entry = &self.outgoing[index];
        !(entry.qos == QoS::ExactlyOnce && entry.sent_before)
            && (index >= self.in_flight
                || (self.quarantined_ids.len() < S::ITEMS
                    && self.withdrawn_unacked.len() < S::ITEMS))
    }

    /// [`SessionConfig::max_packet_size`], within the storage's buffers.
    fn max_packet_size(&self) -> usize {
        self.config.max_packet_size.min(S::BYTES)
    }

    /// Room left in the transmit buffer for new bytes (all of it once the driver took
    /// everything).
    fn tx_room(&self) -> usize {
        if self.tx_sent == self.tx.len() && self.tx_stored.is_empty() {
            S::BYTES
        } else {
            S::BYTES.saturating_sub(self.tx.len())
        }
    }

    /// Whether a received packet can be decoded now: always on the heap; with fixed storage,
    /// when its answers fit in the transmit buffer and, with manual acknowledgements, when
    /// the list of those the application owes has room.
    #[inline]
    fn room_to_decode(&self) -> bool {
        if S::BYTES == usize::MAX && S::ITEMS == usize::MAX {
            return true;
        }
        self.tx_room() >= ANSWER_ROOM
            && !(self.config.manual_ack && self.pending_acks.len() >= S::ITEMS)
    }

    /// Queues an event for the driver; with fixed storage, one the driver left no room for is
    /// counted instead ([`Session::events_lost`]).
    fn push_event(&mut self, event: Event<'static>) {
        if self.events.push(event).is_err() {
            self.events_lost += 1;
        }
    }

    /// Appends `bytes` to the transmit buffer. With fixed storage that has no room for them the
    /// connection is closed ([`CloseReason::StorageFull`]: what they acknowledged or sent is
    /// done again on the next one) and false is returned.
    fn write_tx(&mut self, bytes: &[u8]) -> bool {
        self.begin_tx();
        if self.tx.try_extend(bytes).is_ok() {
            return true;
        }
        self.close(CloseReason::StorageFull);
        false
    }

    /// Starts writing new bytes: forgets bytes the driver already took.
    fn begin_tx(&mut self) {
        if self.tx_sent > 0 && self.tx_sent == self.tx.len() && self.tx_stored.is_empty() {
            self.tx.clear();
            self.tx_sent = 0;
            // A large PUBLISH grew the buffer: do not hold that much for small packets.
            if self.tx.capacity() > BUFFER_KEEP * BUFFER_SHRINK_FACTOR {
                self.tx.shrink_to(BUFFER_KEEP);
            }
        }
    }

    /// Drops every byte not yet handed to the driver (the connection is starting or over).
    fn reset_tx(&mut self) {
        self.tx.clear();
        self.tx_sent = 0;
        self.tx_stored.clear();
    }

    fn allocate_packet_id(&mut self) -> Result<PacketId, UsageError> {
        if self.used_ids.len() >= usize::from(u16::MAX) {
            return Err(UsageError::OutgoingFull);
        }
        loop {
            let candidate = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if let Some(id) = PacketId::new(candidate) {
                if !self.used_ids.contains(id) {
                    return Ok(id);
                }
            }
        }
    }

    fn request<P: Encode>(
        &mut self,
        request: Request,
        build: impl FnOnce(PacketId) -> P,
    ) -> Result<PacketId, UsageError> {
        if self.connection != Connection::Connected {
            return Err(UsageError::NotConnected);
        }
        if self.requests.len() >= S::ITEMS || !self.used_ids.has_room() {
            return Err(UsageError::StorageFull);
        }
        let packet_id = self.allocate_packet_id()?;
        self.begin_tx();
        let version = self.config.protocol;
        let start = self.tx.len();
        append_packet(&mut self.tx, &build(packet_id), version)?;
        // MQTT 5: never larger than the broker's Maximum Packet Size [MQTT-3.1.2-24].
        if let Err(e) = self.check_command(start) {
            self.tx.truncate(start);
            return Err(e);
        }
        // Room was checked above.
        let _ = self.requests.push((packet_id, request));
        let _ = self.used_ids.insert(packet_id);
        Ok(packet_id)
    }

    /// The wait for PINGRESP: [`SessionConfig::ping_timeout`], or half the keepalive in force.
    fn ping_timeout(&self) -> Duration {
        self.config
            .ping_timeout
            .unwrap_or_else(|| Duration::from_millis(u64::from(self.keep_alive) * 500))
            .max(Duration::from_secs(1))
    }

    /// An MQTT 5 QoS 0 PUBLISH on the current connection, with an outgoing topic alias when
    /// they are on (QoS 0 only: a QoS 1/2 message is stored encoded and may be resent on
    /// another connection, where an alias means nothing). Only taken when aliases are on.
    fn publish_qos0_v5(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        properties: Properties<'_>,
    ) -> Result<Option<PacketId>, UsageError> {
        let alias = self.topic_alias(topic, &properties);
        // The caller's properties and the alias, in a list on the stack (nothing allocated),
        // filled only when there are properties.
        let single: [Property<'static>; 1];
        let mut own: [Property<'_>; MAX_PROPERTIES_WITH_ALIAS];
        let list: PropertyList<'_>;
        let (sent_topic, properties) = match alias {
            None => (topic, properties),
            Some((number, known)) => {
                if properties.is_empty() {
                    single = [Property::TopicAlias(number)];
                    list = PropertyList(&single);
                } else {
                    own = [Property::TopicAlias(number); MAX_PROPERTIES_WITH_ALIAS];
                    // `topic_alias` gives no alias to more than `MAX - 1` properties: the
                    // last slot used keeps the alias.
                    let mut len = 0;
                    for (slot, property) in own.iter_mut().zip(properties.iter()) {
                        *slot = property;
                        len += 1;
                    }
                    list = PropertyList(&own[..=len]);
                }
                // A known alias stands for the topic [MQTT-3.3.2-12]; a new one is set up
                // by sending both.
                (if known { "" } else { topic }, Properties::List(&list))
            }
        };
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain,
            topic: sent_topic,
            packet_id: None,
            payload,
            properties,
        };
        self.begin_tx();
        let start = self.tx.len();
        append_publish_validated_topic(&mut self.tx, &publish, ProtocolVersion::V5)?;
        if let Err(e) = self.check_command(start) {
            self.tx.truncate(start);
            return Err(e);
        }
        if let Some((_, false)) = alias {
            // `topic_alias` checked there is room.
            let _ = self.topic_aliases.add(topic);
        }
        Ok(None)
    }

    /// The MQTT 5 topic alias to use for a QoS 0 PUBLISH on `topic`, and whether the broker
    /// already knows it; `None` when aliases are off, the broker takes none (Topic Alias
    /// Maximum 0 `[MQTT-3.3.2-9]`), all are taken or the storage has no room for a new one,
    /// the caller set one, or the message has [`MAX_PROPERTIES_WITH_ALIAS`] properties of its
    /// own or more.
    fn topic_alias(&self, topic: &str, properties: &Properties<'_>) -> Option<(u16, bool)> {
        let max = self.broker.topic_alias_maximum.min(MAX_TOPIC_ALIASES);
        if !self.config.protocol.v5()
            || !self.config.v5.topic_aliases
            || max == 0
            || properties.topic_alias().is_some()
            || (!properties.is_empty()
                && properties
                    .iter()
                    .nth(MAX_PROPERTIES_WITH_ALIAS - 1)
                    .is_some())
        {
            return None;
        }
        if let Some(number) = self.topic_aliases.find(topic) {
            return Some((number, true));
        }
        // Aliases 1..=max [MQTT-3.3.2-9]; once all are taken, other topics go in full.
        self.topic_aliases
            .alias_for_new(topic, max)
            .map(|number| (number, false))
    }

    /// MQTT 5: refuses what the broker's CONNACK said it does not accept.
    fn check_publish_allowed(&self, qos: QoS, retain: bool) -> Result<(), UsageError> {
        if retain && !self.broker.retain_available {
            return Err(UsageError::RetainNotAvailable);
        }
        if qos > self.broker.maximum_qos {
            return Err(UsageError::QoSNotSupported {
                max: self.broker.maximum_qos,
            });
        }
        Ok(())
    }

    /// A command's packet, just appended to `tx` from `start`: no larger than the broker's
    /// Maximum Packet Size, and, with fixed storage, leaving [`ANSWER_ROOM`] free for the
    /// answers to received packets and for a DISCONNECT.
    fn check_command(&self, start: usize) -> Result<(), UsageError> {
        self.check_packet_size(self.tx.len() - start)?;
        if S::BYTES != usize::MAX && S::BYTES.saturating_sub(self.tx.len()) < ANSWER_ROOM {
            return Err(UsageError::StorageFull);
        }
        Ok(())
    }

    /// MQTT 5: a packet of `size` bytes must fit the broker's Maximum Packet Size.
    fn check_packet_size(&self, size: usize) -> Result<(), UsageError> {
        match self.broker.maximum_packet_size {
            Some(max) if size > max as usize => Err(UsageError::PacketTooLarge { size, max }),
            _ => Ok(()),
        }
    }

    /// MQTT 5: refuses a wildcard or shared filter the broker said it does not support.
    fn check_filter_allowed(&self, filter: &str) -> Result<(), UsageError> {
        if !self.config.protocol.v5() {
            return Ok(());
        }
        if !self.broker.shared_subscription_available && filter.starts_with("$share/") {
            return Err(UsageError::SharedSubscriptionsNotAvailable);
        }
        if !self.broker.wildcard_subscription_available && filter.contains(['+', '#']) {
            return Err(UsageError::WildcardSubscriptionsNotAvailable);
        }
        Ok(())
    }

    fn ping_due(&self) -> Option<Instant> {
        if self.keep_alive == 0 {
            return None;
        }
        // Ping when either direction has been quiet for the keepalive: quiet sending would let
        // the broker drop us [MQTT-3.1.2-24]; quiet receiving may mean a half-open link.
        let keep_alive = Duration::from_secs(u64::from(self.keep_alive));
        Some(self.last_tx.min(self.last_rx).saturating_add(keep_alive))
    }

    fn send_ping(&mut self, now: Instant) {
        if self.ping_deadline.is_some() {
            return;
        }
        // PINGREQ is two fixed bytes [MQTT-3.12].
        if self.write_tx(&[0xC0, 0x00]) {
            self.ping_deadline = Some(now.saturating_add(self.ping_timeout()));
        }
    }

    /// Sends queued messages while the in-flight window has room.
    fn fill_window(&mut self) {
        if self.connection != Connection::Connected {
            return;
        }
        // MQTT 5: never more unacknowledged QoS 1/2 PUBLISH than the broker's Receive Maximum
        // [MQTT-4.9.0-2]; the rest waits in order. A withdrawn message sent on this
        // connection counts until its PUBACK comes: the broker has not acknowledged it.
        let window = usize::from(self.config.max_in_flight.max(1)).min(
            usize::from(self.broker.receive_maximum.max(1))
                .saturating_sub(self.withdrawn_unacked.len()),
        );
        while self.in_flight < window && self.in_flight < self.outgoing.len() {
            let index = self.in_flight;
            if !self.send_outgoing(index) {
                return;
            }
            self.in_flight += 1;
        }
    }

    /// Writes entry `index` for this connection: PUBLISH (with DUP if sent before) or, after
    /// PUBREC, PUBREL [MQTT-4.4.0-1]. False if fixed storage had no room: a PUBLISH then waits
    /// for the transmit buffer to be taken; for a PUBREL the connection is closed (see
    /// [`State::write_tx`]).
    fn send_outgoing(&mut self, index: usize) -> bool {
        self.begin_tx();
        let entry = &mut self.outgoing[index];
        let packet = self.packets.get_mut(&mut entry.packet);
        match entry.stage {
            OutgoingStage::AwaitingPubComp => {
                let packet_id = entry.packet_id;
                if !self.send_ack(0x62, packet_id) {
                    return false;
                }
            }
            OutgoingStage::Queued | OutgoingStage::AwaitingAck => {
                // DUP is set on every resend of a PUBLISH sent before, and only then
                // [MQTT-3.3.1-1], [MQTT-3.3.1-3].
                let dup = if entry.sent_before { DUP_FLAG } else { 0 };
                let (packet_id, len) = (entry.packet_id, packet.len());
                let stored = len > S::SEND_STORED_ABOVE
                    && self.tx_stored.push((self.tx.len(), packet_id)).is_ok();
                if stored {
                    // Sent from the stored copy: the flag is set there, in place.
                    packet[0] = (packet[0] & !DUP_FLAG) | dup;
                } else {
                    let start = self.tx.len();
                    if self.tx.try_extend(packet).is_err() {
                        // Fixed storage: the transmit buffer has no room for it now. It goes
                        // when the driver took what is there (`poll_transmit` fills the window
                        // again); the buffer holds any single packet.
                        return false;
                    }
                    self.tx[start] = (self.tx[start] & !DUP_FLAG) | dup;
                }
                let entry = &mut self.outgoing[index];
                entry.stage = OutgoingStage::AwaitingAck;
                entry.sent_before = true;
            }
        }
        let generation = self.rx_generation;
        self.outgoing[index].sent_in = generation;
        true
    }

    /// The in-flight entry `packet_id` if an acknowledgement may be for it: not one sent while
    /// decoding the very input that carries the acknowledgement (the driver had not written
    /// it: only a broker acknowledging an id it was never sent does that).
    #[inline]
    fn position_acknowledgeable(&self, packet_id: PacketId) -> Option<usize> {
        self.position_in_flight(packet_id)
            .filter(|&index| self.outgoing[index].sent_in != self.rx_generation)
    }

    fn position_in_flight(&self, packet_id: PacketId) -> Option<usize> {
        self.outgoing
            .iter()
            .take(self.in_flight)
            .position(|o| o.packet_id == packet_id)
    }

    fn complete_outgoing(&mut self, index: usize) -> Option<Event<'static>> {
        self.finish_outgoing(index, ReasonCode::Success)
    }

    /// Ends entry `index`'s exchange: completed, or refused by an MQTT 5 reason code.
    fn finish_outgoing(&mut self, index: usize, reason_code: ReasonCode) -> Option<Event<'static>> {
        let entry = self.outgoing.remove(index)?;
        self.used_ids.remove(entry.packet_id);
        self.in_flight -= 1;
        self.packets.remove(entry.packet);
        self.fill_window();
        Some(if reason_code.is_error() {
            Event::PublishRefused {
                packet_id: entry.packet_id,
                reason_code,
            }
        } else {
            Event::Published(entry.packet_id)
        })
    }

    fn discard_session(&mut self) {
        self.free_retired_ids();
        self.incoming_qos2.clear();
        self.pending_acks.clear();
        self.in_flight = 0;
        while let Some(entry) = self.outgoing.pop_front() {
            self.used_ids.remove(entry.packet_id);
            self.push_event(Event::PublishDiscarded(entry.packet_id));
            self.packets.remove(entry.packet);
        }
    }

    /// Writes the acknowledgements the application released, in arrival order.
    fn flush_acks(&mut self) {
        if self.connection != Connection::Connected {
            return;
        }
        while let Some(&(id, kind, true)) = self.pending_acks.first() {
            let _ = self.pending_acks.pop_front();
            if !self.send_ack(kind, id) {
                return;
            }
        }
    }

    fn connection_ended(&mut self) {
        // A QoS 1 message not acknowledged is redelivered on the next connection (and
        // acknowledged then); a QoS 2 one stays in `incoming_qos2`, so its redelivery is not
        // reported again and the PUBREC it is owed goes out when the application is done.
        self.pending_acks.retain(|(_, kind, _)| *kind == 0x50);
        self.connection = Connection::Disconnected;
        self.in_flight = 0;
        self.ping_deadline = None;
        while let Some((packet_id, _)) = self.requests.pop() {
            self.used_ids.remove(packet_id);
        }
        while let Some(packet_id) = self.quarantined_ids.pop() {
            self.used_ids.remove(packet_id);
        }
        self.withdrawn_unacked.clear();
    }

    fn close(&mut self, reason: CloseReason) {
        self.connection_ended();
        self.reset_tx();
        self.push_event(Event::Closed(reason));
    }

    /// Reacts to one received packet; returns the event to report, if any.
    fn handle_packet<'a>(&mut self, packet: Packet<'a>) -> Option<Event<'a>> {
        if let Connection::AwaitingConnAck { clean_session, .. } = self.connection {
            return match packet {
                Packet::ConnAck(ack) => self.handle_connack(ack, clean_session),
                _ => self.unexpected_packet(packet.packet_type()),
            };
        }
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish),
            Packet::PubAck(Ack {
                packet_id: id,
                reason_code,
                ..
            }) => {
                let withdrawn = self.withdrawn_unacked.iter().position(|&q| q == id);
                if let Some(q) = withdrawn {
                    // The late PUBACK of a withdrawn message: its place in the broker's
                    // Receive Maximum is free again (its id stays out of use until the
                    // connection ends).
                    let _ = self.withdrawn_unacked.swap_remove(q);
                    self.fill_window();
                    return None;
                }
                let index = self.position_acknowledgeable(id)?;
                let entry = &self.outgoing[index];
                if entry.qos != QoS::AtLeastOnce || entry.stage != OutgoingStage::AwaitingAck {
                    return None;
                }
                self.finish_outgoing(index, reason_code)
            }
            Packet::PubRec(Ack {
                packet_id: id,
                reason_code,
                ..
            }) => {
                let index = self.position_acknowledgeable(id)?;
                let entry = &mut self.outgoing[index];
                if entry.qos != QoS::ExactlyOnce {
                    return None;
                }
                if reason_code.is_error() && entry.stage == OutgoingStage::AwaitingAck {
                    // A refusing PUBREC ends the exchange: no PUBREL follows (section 4.3.3).
                    return self.finish_outgoing(index, reason_code);
                }
                // A repeated PUBREC (stage already AwaitingPubComp) gets PUBREL again.
                let first = entry.stage != OutgoingStage::AwaitingPubComp;
                entry.stage = OutgoingStage::AwaitingPubComp;
                if !self.send_outgoing(index) {
                    return self.events.pop_front();
                }
                first.then_some(Event::PublishReceived(id))
            }
            Packet::PubComp(Ack { packet_id: id, .. }) => {
                let index = self.position_acknowledgeable(id)?;
                if self.outgoing[index].stage != OutgoingStage::AwaitingPubComp {
                    return None;
                }
                self.complete_outgoing(index)
            }
            Packet::PubRel(Ack { packet_id: id, .. }) => {
                // PUBCOMP even for an unknown id: the broker may be retrying after we already
                // released it [MQTT-4.3.3-2].
                self.incoming_qos2.remove(id);
                let _ = self.send_ack(0x70, id);
                None
            }
            Packet::SubAck(suback) => {
                let index = self
                    .requests
                    .iter()
                    .position(|(id, _)| *id == suback.packet_id)?;
                let (packet_id, request) = self.requests.swap_remove(index)?;
                self.used_ids.remove(packet_id);
                match request {
                    Request::Subscribe { filters } if filters == suback.return_codes.len() => {
                        Some(Event::Subscribed(suback))
                    }
                    Request::Subscribe { .. } => {
                        self.protocol_error(ProtocolError::SubAckCountMismatch)
                    }
                    Request::Unsubscribe { .. } => None,
                }
            }
            Packet::UnsubAck(unsuback) => {
                let id = unsuback.packet_id;
                let index = self.requests.iter().position(|(packet_id, request)| {
                    *packet_id == id && matches!(request, Request::Unsubscribe { .. })
                })?;
                let (_, request) = self.requests.swap_remove(index)?;
                self.used_ids.remove(id);
                match request {
                    // MQTT 5: one reason code per filter [MQTT-3.11.3-2]; 3.1.1 has none.
                    Request::Unsubscribe { filters }
                        if self.config.protocol.v5() && unsuback.reason_codes.len() != filters =>
                    {
                        self.protocol_error(ProtocolError::UnsubAckCountMismatch)
                    }
                    _ => Some(Event::Unsubscribed(unsuback)),
                }
            }
            Packet::PingResp => {
                self.ping_deadline = None;
                Some(Event::PingResponse)
            }
            Packet::Disconnect(disconnect) if self.config.protocol.v5() => {
                if let Some(reference) = disconnect.properties.server_reference() {
                    self.keep_server_reference(reference);
                }
                self.close(CloseReason::ServerDisconnected(disconnect.reason_code));
                self.events.pop_front()
            }
            // The session never starts enhanced authentication (it sends no Authentication
            // Method), so the broker may not send AUTH [MQTT-4.12.0-6].
            Packet::Auth(_) => self.protocol_error(ProtocolError::UnexpectedAuth),
            // CONNECT, SUBSCRIBE, UNSUBSCRIBE and PINGREQ are reported by the decoder unparsed.
            Packet::ConnAck(_)
            | Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq
            | Packet::Disconnect(_) => self.unexpected_packet(packet.packet_type()),
        }
    }

    /// Ends the connection for a packet the broker may not send now: anything but CONNACK
    /// before CONNACK `[MQTT-3.2.0-1]`, a packet only a client sends, a second CONNACK, a
    /// 3.1.1 DISCONNECT.
    fn unexpected_packet<'a>(&mut self, packet_type: PacketType) -> Option<Event<'a>> {
        let error = if matches!(self.connection, Connection::AwaitingConnAck { .. }) {
            ProtocolError::PacketBeforeConnAck(packet_type)
        } else {
            ProtocolError::UnexpectedPacket(packet_type)
        };
        self.protocol_error(error)
    }

    /// Ends the connection for a broker's protocol violation; with MQTT 5 a DISCONNECT with
    /// the violation's reason code goes out first (section 4.13.2): the driver writes it
    /// before closing the socket.
    fn protocol_error<'a>(&mut self, error: ProtocolError) -> Option<Event<'a>> {
        self.close_with_disconnect(CloseReason::Protocol(error), error.reason_code())
    }

    /// Ends the connection with `reason`; with MQTT 5 a DISCONNECT with `code` goes out first
    /// (the driver writes it before closing the socket). Returns the close event.
    fn close_with_disconnect<'a>(
        &mut self,
        reason: CloseReason,
        code: ReasonCode,
    ) -> Option<Event<'a>> {
        self.close(reason);
        if self.config.protocol.v5() {
            let disconnect = Disconnect::new(code, Properties::EMPTY);
            // A reason code and no properties always encode.
            let _ = append_packet(&mut self.tx, &disconnect, ProtocolVersion::V5);
        }
        self.events.pop_front()
    }

    /// MQTT 5: a DISCONNECT's Server Reference, kept with the CONNACK's limits (out of line:
    /// rare, and kept out of `poll_event`'s hot path).
    #[inline(never)]
    fn keep_server_reference(&mut self, reference: &str) {
        self.broker.server_reference = Some(v5::text(reference));
    }

    /// The topic of incoming alias `alias`, which `handle_publish` checked is set up (out of
    /// line, as above).
    #[inline(never)]
    fn incoming_topic(&self, alias: u16) -> &str {
        self.incoming_aliases.get(alias).unwrap_or("")
    }

    /// Frees the ids of dropped QoS 2 messages: the broker's session no longer holds them.
    fn free_retired_ids(&mut self) {
        while let Some(packet_id) = self.retired_ids.pop() {
            self.used_ids.remove(packet_id);
        }
    }

    /// MQTT 5, at CONNACK: removes the stored messages that the broker's new limits rule out
    /// (it would close the connection, and every reconnection would try again): larger than
    /// its Maximum Packet Size (`[MQTT-3.1.2-24]`), reported by [`Event::PublishTooLarge`];
    /// above its Maximum QoS (`[MQTT-3.2.2-11]`) or retained with Retain Available 0
    /// (`[MQTT-3.2.2-14]`), reported by [`Event::PublishRefused`] with 0x9B QoS not supported
    /// or 0x9A Retain not supported. A QoS 2 message awaiting PUBCOMP only sends PUBREL and
    /// stays, when the broker resumed the session.
    fn drop_unsendable(&mut self, session_present: bool) {
        let mut index = 0;
        while index < self.outgoing.len() {
            let entry = &self.outgoing[index];
            let packet = self.packets.get(&entry.packet);
            let size = packet.len();
            // The stored PUBLISH's fixed header: bit 0 is RETAIN.
            let retain = packet.first().is_some_and(|b| b & 1 == 1);
            let event = match self.broker.maximum_packet_size {
                // It only sends PUBREL, unless the broker lost the session: then it is
                // published again as a new message.
                _ if entry.stage == OutgoingStage::AwaitingPubComp && session_present => None,
                Some(max) if size > max as usize => Some(Event::PublishTooLarge {
                    packet_id: entry.packet_id,
                    size,
                    max,
                }),
                _ if entry.qos > self.broker.maximum_qos => Some(Event::PublishRefused {
                    packet_id: entry.packet_id,
                    reason_code: ReasonCode::QoSNotSupported,
                }),
                _ if retain && !self.broker.retain_available => Some(Event::PublishRefused {
                    packet_id: entry.packet_id,
                    reason_code: ReasonCode::RetainNotSupported,
                }),
                _ => None,
            };
            let Some(event) = event else {
                index += 1;
                continue;
            };
            let Some(entry) = self.outgoing.remove(index) else {
                break;
            };
            if entry.qos == QoS::ExactlyOnce && entry.sent_before && session_present {
                // The broker may hold this id in its QoS 2 table: reusing it for another
                // message would make the broker drop that one as a duplicate. (A full fixed
                // list cannot note it for release: the id then stays out of use for good,
                // which is only a smaller id space.)
                let _ = self.retired_ids.push(entry.packet_id);
            } else {
                self.used_ids.remove(entry.packet_id);
            }
            self.push_event(event);
            self.packets.remove(entry.packet);
        }
    }

    /// Writes a PUBACK, PUBREC, PUBREL or PUBCOMP; false if fixed storage had no room (the
    /// connection is then closed: see [`State::write_tx`]).
    fn send_ack(&mut self, first_byte: u8, id: PacketId) -> bool {
        let bytes = id.get().to_be_bytes();
        if !self.write_tx(&[first_byte, 0x02, bytes[0], bytes[1]]) {
            return false;
        }
        #[cfg(feature = "mqtt5")]
        if first_byte == 0x40 || first_byte == 0x70 {
            // PUBACK / PUBCOMP written: the broker's quota gets this one back (section 4.9).
            self.incoming_unacked.remove(id);
        }
        true
    }

    fn handle_connack<'a>(&mut self, ack: ConnAck<'_>, clean_session: bool) -> Option<Event<'a>> {
        let v5 = self.config.protocol.v5();
        if v5 && ack.reason_code.is_error() {
            self.broker = BrokerLimits::from_properties(&ack.properties);
            self.close(CloseReason::Rejected(ack.reason_code));
            return self.events.pop_front();
        }
        if !v5 && ack.code != ConnectReturnCode::Accepted {
            self.close(CloseReason::Refused(ack.code));
            return self.events.pop_front();
        }
        if ack.session_present && clean_session {
            return self.protocol_error(ProtocolError::SessionPresentOnCleanSession);
        }
        // Topic aliases last one connection (section 3.3.2.3.4).
        self.topic_aliases.clear();
        if v5 {
            self.broker = BrokerLimits::from_properties(&ack.properties);
            if let Some(keep_alive) = self.broker.server_keep_alive {
                self.keep_alive = keep_alive;
            }
            if let Some(id) = &self.broker.assigned_client_identifier {
                // The next connection must name it to resume the session. It came in a
                // CONNACK of at most `B` bytes: a fixed text of `B` bytes holds it.
                self.assigned_client_id.clone_from(id);
            }
        }
        self.connection = Connection::Connected;
        if !ack.session_present {
            // The broker's session is gone, and with it the QoS 2 ids it may have held.
            self.free_retired_ids();
        }
        if v5 {
            self.drop_unsendable(ack.session_present);
        }
        if ack.session_present {
            // Resume: resend what was sent before, same ids, DUP set, in the original order,
            // before anything new [MQTT-4.4.0-1].
            // MQTT 5: resends count against the broker's Receive Maximum too; the rest wait
            // their turn in order (still with DUP) [MQTT-4.9.0-2].
            let resend = self
                .outgoing
                .iter()
                .take_while(|o| o.stage != OutgoingStage::Queued)
                .count()
                .min(usize::from(self.broker.receive_maximum.max(1)));
            self.in_flight = 0;
            while self.in_flight < resend && self.send_outgoing(self.in_flight) {
                self.in_flight += 1;
            }
        } else {
            // The broker has no session: nothing it acknowledged is pending there, and nothing
            // we received is awaiting release. What we still owe is published again as new
            // messages (DUP clear), including QoS 2 messages whose PUBREL the broker can no
            // longer match.
            self.incoming_qos2.clear();
            self.pending_acks.clear();
            for entry in self.outgoing.iter_mut() {
                entry.stage = OutgoingStage::Queued;
                entry.sent_before = false;
            }
        }
        self.fill_window();
        self.flush_acks();
        if self.connection != Connection::Connected {
            // Fixed storage had no room for the resends: closed.
            return self.events.pop_front();
        }
        // After what the CONNACK ended (messages too large for it), in order.
        self.push_event(Event::Connected {
            session_present: ack.session_present,
        });
        self.events.pop_front()
    }

    /// Out of line: inlined into `poll_event`, its PUBLISH was copied ahead of the packet-type
    /// dispatch for every packet (about 20 instructions per PUBACK).
    #[inline(never)]
    fn handle_publish<'a>(&mut self, publish: Publish<'a>) -> Option<Event<'a>> {
        let mut resolve = None;
        if self.config.protocol.v5() {
            if let Some(alias) = publish.properties.topic_alias() {
                match self.set_incoming_alias(alias, publish.topic) {
                    Ok(only_alias) => resolve = only_alias.then_some(alias),
                    Err(Some(error)) => return self.protocol_error(error),
                    Err(None) => {
                        // Fixed storage has no room for the topic: the connection ends (a
                        // QoS 1/2 message is sent again on the next one).
                        self.close(CloseReason::StorageFull);
                        return self.events.pop_front();
                    }
                }
            }
            #[cfg(feature = "mqtt5")]
            if let (QoS::AtLeastOnce | QoS::ExactlyOnce, Some(id)) =
                (publish.qos, publish.packet_id)
            {
                // [MQTT-3.3.4-9]: never more unacknowledged than we announced.
                let max = self.config.v5.receive_maximum.unwrap_or(u16::MAX);
                if !self.incoming_unacked.contains(id) {
                    if self.incoming_unacked.len() >= usize::from(max) {
                        return self.protocol_error(ProtocolError::ReceiveMaximumExceeded { max });
                    }
                    if self.incoming_unacked.insert(id).is_err() {
                        // Fixed storage has no room to count it: the broker sends it again
                        // on the next connection.
                        self.close(CloseReason::StorageFull);
                        return self.events.pop_front();
                    }
                }
            }
        }
        let manual = self.config.manual_ack;
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) if manual => {
                // Room was checked before decoding (`room_to_decode`).
                let _ = self.pending_acks.push((id, 0x40, false));
            }
            (QoS::AtLeastOnce, Some(id)) => {
                // Without room (fixed storage) the connection is closed; the broker then
                // delivers the message again.
                let _ = self.send_ack(0x40, id);
            }
            (QoS::ExactlyOnce, Some(id)) => {
                let Ok(fresh) = self.incoming_qos2.insert(id) else {
                    // Fixed storage has no room to remember it (and deliver it once): the
                    // broker sends it again on the next connection.
                    self.close(CloseReason::StorageFull);
                    return self.events.pop_front();
                };
                if !fresh {
                    // Already received and not yet released: deliver once [MQTT-4.3.3-2].
                    // Its PUBREC is repeated, unless it still waits for the application.
                    if !self.pending_acks.iter().any(|(p, _, _)| *p == id) {
                        let _ = self.send_ack(0x50, id);
                    }
                    return None;
                }
                if manual {
                    let _ = self.pending_acks.push((id, 0x50, false));
                } else {
                    let _ = self.send_ack(0x50, id);
                }
            }
            _ => {}
        }
        self.resolve_alias = resolve;
        Some(Event::Message(publish))
    }

    /// MQTT 5: an incoming PUBLISH's Topic Alias. With a topic, sets up (or replaces) the
    /// alias; without one, the alias must be set up. Returns whether the PUBLISH carried only
    /// the alias (its topic is then the table's); `Err(None)` when fixed storage has no room
    /// for the topic (the topics of all aliases take at most `B` bytes together).
    #[inline(never)]
    fn set_incoming_alias(
        &mut self,
        alias: u16,
        topic: &str,
    ) -> Result<bool, Option<ProtocolError>> {
        if alias == 0 || alias > self.incoming_alias_maximum() {
            return Err(Some(ProtocolError::TopicAliasInvalid(alias)));
        }
        if topic.is_empty() {
            return if self.incoming_aliases.is_set(alias) {
                Ok(true)
            } else {
                Err(Some(ProtocolError::UnknownTopicAlias(alias)))
            };
        }
        self.incoming_aliases.set(alias, topic).map_err(|_| None)?;
        Ok(false)
    }

    /// The Topic Alias Maximum the session announces: what
    /// [`ConnectOptions::announced_topic_alias_maximum`] asks for, at most the `N` aliases a
    /// fixed storage holds.
    fn incoming_alias_maximum(&self) -> u16 {
        self.config
            .v5
            .announced_topic_alias_maximum()
            .min(IncomingAliases::<S>::MAX)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fixed;
#[cfg(test)]
mod tests_heap;
#[cfg(all(test, feature = "mqtt5"))]
mod tests_v5;
