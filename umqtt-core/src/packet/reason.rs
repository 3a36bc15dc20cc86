//! MQTT 5 reason codes (section 2.4 of the MQTT 5 specification).
//!
//! One enum for every code; which codes each packet may carry is [`ReasonCode::is_allowed_in`]
//! (the "MQTT Control Packets" column of the specification's table 2-6).

use super::PacketType;

macro_rules! reason_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $text:literal, [$($packet:ident),*]; )*) => {
        /// An MQTT 5 reason code: the outcome an acknowledgement, DISCONNECT or AUTH reports
        /// (section 2.4). Values below 0x80 are successes, 0x80 and above failures.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ReasonCode {
            $( $(#[$doc])* $name = $value, )*
        }

        impl ReasonCode {
            /// The code for a wire byte, or `None` for a value the specification does not
            /// define.
            pub const fn from_u8(value: u8) -> Option<ReasonCode> {
                match value {
                    $( $value => Some(ReasonCode::$name), )*
                    _ => None,
                }
            }

            /// Whether a packet of `packet_type` may carry this code (table 2-6). A code
            /// outside its packet's list makes the packet malformed.
            pub const fn is_allowed_in(self, packet_type: PacketType) -> bool {
                let mask: u16 = match self {
                    $( ReasonCode::$name => 0 $(| (1 << PacketType::$packet as u16))*, )*
                };
                mask & (1 << packet_type as u16) != 0
            }

            /// The specification's name for the code (for 0x00, the success name).
            pub const fn description(self) -> &'static str {
                match self {
                    $( ReasonCode::$name => $text, )*
                }
            }
        }
    };
}

reason_codes! {
    /// 0x00: Success (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, AUTH), Normal
    /// disconnection (DISCONNECT) or Granted QoS 0 (SUBACK).
    Success = 0x00, "success", [ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth];
    /// 0x01: the subscription is granted at QoS 1.
    GrantedQoS1 = 0x01, "granted QoS 1", [SubAck];
    /// 0x02: the subscription is granted at QoS 2.
    GrantedQoS2 = 0x02, "granted QoS 2", [SubAck];
    /// 0x04: the client disconnects but wants its will published.
    DisconnectWithWillMessage = 0x04, "disconnect with will message", [Disconnect];
    /// 0x10: accepted, but nobody subscribes to the topic.
    NoMatchingSubscribers = 0x10, "no matching subscribers", [PubAck, PubRec];
    /// 0x11: there was no such subscription to remove.
    NoSubscriptionExisted = 0x11, "no subscription existed", [UnsubAck];
    /// 0x18: enhanced authentication continues.
    ContinueAuthentication = 0x18, "continue authentication", [Auth];
    /// 0x19: the client starts a re-authentication.
    ReAuthenticate = 0x19, "re-authenticate", [Auth];
    /// 0x80: unspecified error.
    UnspecifiedError = 0x80, "unspecified error", [ConnAck, PubAck, PubRec, SubAck, UnsubAck, Disconnect];
    /// 0x81: the peer received a malformed packet.
    MalformedPacket = 0x81, "malformed packet", [ConnAck, Disconnect];
    /// 0x82: the peer saw a protocol error.
    ProtocolError = 0x82, "protocol error", [ConnAck, Disconnect];
    /// 0x83: the request is valid but the implementation does not accept it.
    ImplementationSpecificError = 0x83, "implementation specific error", [ConnAck, PubAck, PubRec, SubAck, UnsubAck, Disconnect];
    /// 0x84: the server does not support MQTT 5.
    UnsupportedProtocolVersion = 0x84, "unsupported protocol version", [ConnAck];
    /// 0x85: the client identifier is not allowed.
    ClientIdentifierNotValid = 0x85, "client identifier not valid", [ConnAck];
    /// 0x86: the user name or password is not accepted.
    BadUserNameOrPassword = 0x86, "bad user name or password", [ConnAck];
    /// 0x87: not authorized.
    NotAuthorized = 0x87, "not authorized", [ConnAck, PubAck, PubRec, SubAck, UnsubAck, Disconnect];
    /// 0x88: the server is unavailable.
    ServerUnavailable = 0x88, "server unavailable", [ConnAck];
    /// 0x89: the server is busy.
    ServerBusy = 0x89, "server busy", [ConnAck, Disconnect];
    /// 0x8A: the client is banned.
    Banned = 0x8A, "banned", [ConnAck];
    /// 0x8B: the server is shutting down.
    ServerShuttingDown = 0x8B, "server shutting down", [Disconnect];
    /// 0x8C: the authentication method is not supported. (Table 2-6 lists it for DISCONNECT
    /// too, the table of section 3.14.2.1 does not; it is accepted there.)
    BadAuthenticationMethod = 0x8C, "bad authentication method", [ConnAck, Disconnect];
    /// 0x8D: no packet arrived within 1.5 keepalive periods.
    KeepAliveTimeout = 0x8D, "keep alive timeout", [Disconnect];
    /// 0x8E: another connection took the session over.
    SessionTakenOver = 0x8E, "session taken over", [Disconnect];
    /// 0x8F: the topic filter is not accepted.
    TopicFilterInvalid = 0x8F, "topic filter invalid", [SubAck, UnsubAck, Disconnect];
    /// 0x90: the topic name is not accepted.
    TopicNameInvalid = 0x90, "topic name invalid", [ConnAck, PubAck, PubRec, Disconnect];
    /// 0x91: the packet identifier is already in use.
    PacketIdentifierInUse = 0x91, "packet identifier in use", [PubAck, PubRec, SubAck, UnsubAck];
    /// 0x92: the packet identifier is not known.
    PacketIdentifierNotFound = 0x92, "packet identifier not found", [PubRel, PubComp];
    /// 0x93: more QoS 1/2 publications in flight than Receive Maximum allows.
    ReceiveMaximumExceeded = 0x93, "receive maximum exceeded", [Disconnect];
    /// 0x94: the topic alias is not valid.
    TopicAliasInvalid = 0x94, "topic alias invalid", [Disconnect];
    /// 0x95: the packet exceeds the maximum packet size.
    PacketTooLarge = 0x95, "packet too large", [ConnAck, Disconnect];
    /// 0x96: the message rate is too high.
    MessageRateTooHigh = 0x96, "message rate too high", [Disconnect];
    /// 0x97: an administrative quota is exceeded.
    QuotaExceeded = 0x97, "quota exceeded", [ConnAck, PubAck, PubRec, SubAck, Disconnect];
    /// 0x98: an administrative action closed the connection.
    AdministrativeAction = 0x98, "administrative action", [Disconnect];
    /// 0x99: the payload does not match the payload format indicator.
    PayloadFormatInvalid = 0x99, "payload format invalid", [ConnAck, PubAck, PubRec, Disconnect];
    /// 0x9A: the server does not support retained messages.
    RetainNotSupported = 0x9A, "retain not supported", [ConnAck, Disconnect];
    /// 0x9B: the server does not support the QoS.
    QoSNotSupported = 0x9B, "QoS not supported", [ConnAck, Disconnect];
    /// 0x9C: the client should use another server.
    UseAnotherServer = 0x9C, "use another server", [ConnAck, Disconnect];
    /// 0x9D: the server has moved.
    ServerMoved = 0x9D, "server moved", [ConnAck, Disconnect];
    /// 0x9E: shared subscriptions are not supported.
    SharedSubscriptionsNotSupported = 0x9E, "shared subscriptions not supported", [SubAck, Disconnect];
    /// 0x9F: the connection rate limit is exceeded.
    ConnectionRateExceeded = 0x9F, "connection rate exceeded", [ConnAck, Disconnect];
    /// 0xA0: the maximum connection time is over.
    MaximumConnectTime = 0xA0, "maximum connect time", [Disconnect];
    /// 0xA1: subscription identifiers are not supported.
    SubscriptionIdentifiersNotSupported = 0xA1, "subscription identifiers not supported", [SubAck, Disconnect];
    /// 0xA2: wildcard subscriptions are not supported.
    WildcardSubscriptionsNotSupported = 0xA2, "wildcard subscriptions not supported", [SubAck, Disconnect];
}

impl ReasonCode {
    /// Whether the code reports a failure (0x80 and above) `[MQTT-2.4]`.
    pub const fn is_error(self) -> bool {
        self as u8 >= 0x80
    }

    /// The wire byte.
    pub const fn to_u8(self) -> u8 {
        self as u8
    }
}

impl core::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({:#04x})", self.description(), *self as u8)
    }
}
