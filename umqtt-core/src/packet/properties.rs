//! MQTT 5 properties (section 2.2.2 of the MQTT 5 specification): identifiers, values, the
//! per-packet allow lists, and their decoding and encoding.
//!
//! A decoded property block stays as the validated bytes it came in ([`Properties::Encoded`]);
//! accessors scan it when asked, so decoding copies nothing and a 3.1.1 packet pays only for an
//! empty value.

use super::decode::{DecodeError, Reader};
use super::encode::{vbi_len, EncodeError, Writer};
use super::{PacketType, QoS};
use crate::storage::Buffer;

/// Largest value a variable byte integer can carry `[MQTT-1.5.5]`.
pub const MAX_VARIABLE_BYTE_INTEGER: u32 = 268_435_455;

/// Where a property block sits: a packet, or the will properties of a CONNECT.
pub(crate) type Context = u8;
/// The will-properties context (bit 0; packet types use bits 1..=15).
pub(crate) const WILL: Context = 0;

pub(crate) const fn context(packet_type: PacketType) -> Context {
    packet_type as u8
}

/// How a property's value is written `[MQTT-2.2.2.2]`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Byte,
    TwoByte,
    FourByte,
    Varint,
    String,
    Binary,
    StringPair,
}

macro_rules! property_ids {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $kind:ident, [$($ctx:ident),*]; )*) => {
        /// The identifier of an MQTT 5 property (the specification's table 2-4).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum PropertyId {
            $( $(#[$doc])* $name = $value, )*
        }

        impl PropertyId {
            /// The property for an identifier, or `None` for one the specification does not
            /// define.
            pub const fn from_u32(value: u32) -> Option<PropertyId> {
                match value {
                    $( $value => Some(PropertyId::$name), )*
                    _ => None,
                }
            }

            const fn kind(self) -> Kind {
                match self {
                    $( PropertyId::$name => Kind::$kind, )*
                }
            }

            /// Bit per context (bit 0: will properties, bit n: packet type n).
            const fn allowed(self) -> u16 {
                match self {
                    $( PropertyId::$name => 0 $(| ctx_bit!($ctx))*, )*
                }
            }
        }
    };
}

macro_rules! ctx_bit {
    (Will) => {
        1u16
    };
    ($packet:ident) => {
        1u16 << (PacketType::$packet as u16)
    };
}

property_ids! {
    /// 0x01 Payload Format Indicator (PUBLISH, will).
    PayloadFormatIndicator = 0x01, Byte, [Publish, Will];
    /// 0x02 Message Expiry Interval (PUBLISH, will).
    MessageExpiryInterval = 0x02, FourByte, [Publish, Will];
    /// 0x03 Content Type (PUBLISH, will).
    ContentType = 0x03, String, [Publish, Will];
    /// 0x08 Response Topic (PUBLISH, will).
    ResponseTopic = 0x08, String, [Publish, Will];
    /// 0x09 Correlation Data (PUBLISH, will).
    CorrelationData = 0x09, Binary, [Publish, Will];
    /// 0x0B Subscription Identifier (PUBLISH, SUBSCRIBE).
    SubscriptionIdentifier = 0x0B, Varint, [Publish, Subscribe];
    /// 0x11 Session Expiry Interval (CONNECT, CONNACK, DISCONNECT).
    SessionExpiryInterval = 0x11, FourByte, [Connect, ConnAck, Disconnect];
    /// 0x12 Assigned Client Identifier (CONNACK).
    AssignedClientIdentifier = 0x12, String, [ConnAck];
    /// 0x13 Server Keep Alive (CONNACK).
    ServerKeepAlive = 0x13, TwoByte, [ConnAck];
    /// 0x15 Authentication Method (CONNECT, CONNACK, AUTH).
    AuthenticationMethod = 0x15, String, [Connect, ConnAck, Auth];
    /// 0x16 Authentication Data (CONNECT, CONNACK, AUTH).
    AuthenticationData = 0x16, Binary, [Connect, ConnAck, Auth];
    /// 0x17 Request Problem Information (CONNECT).
    RequestProblemInformation = 0x17, Byte, [Connect];
    /// 0x18 Will Delay Interval (will).
    WillDelayInterval = 0x18, FourByte, [Will];
    /// 0x19 Request Response Information (CONNECT).
    RequestResponseInformation = 0x19, Byte, [Connect];
    /// 0x1A Response Information (CONNACK).
    ResponseInformation = 0x1A, String, [ConnAck];
    /// 0x1C Server Reference (CONNACK, DISCONNECT).
    ServerReference = 0x1C, String, [ConnAck, Disconnect];
    /// 0x1F Reason String (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK,
    /// DISCONNECT, AUTH).
    ReasonString = 0x1F, String, [ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth];
    /// 0x21 Receive Maximum (CONNECT, CONNACK).
    ReceiveMaximum = 0x21, TwoByte, [Connect, ConnAck];
    /// 0x22 Topic Alias Maximum (CONNECT, CONNACK).
    TopicAliasMaximum = 0x22, TwoByte, [Connect, ConnAck];
    /// 0x23 Topic Alias (PUBLISH).
    TopicAlias = 0x23, TwoByte, [Publish];
    /// 0x24 Maximum QoS (CONNACK).
    MaximumQoS = 0x24, Byte, [ConnAck];
    /// 0x25 Retain Available (CONNACK).
    RetainAvailable = 0x25, Byte, [ConnAck];
    /// 0x26 User Property (every packet with properties, and the will).
    UserProperty = 0x26, StringPair, [Connect, ConnAck, Publish, Will, PubAck, PubRec, PubRel, PubComp, Subscribe, SubAck, Unsubscribe, UnsubAck, Disconnect, Auth];
    /// 0x27 Maximum Packet Size (CONNECT, CONNACK).
    MaximumPacketSize = 0x27, FourByte, [Connect, ConnAck];
    /// 0x28 Wildcard Subscription Available (CONNACK).
    WildcardSubscriptionAvailable = 0x28, Byte, [ConnAck];
    /// 0x29 Subscription Identifier Available (CONNACK).
    SubscriptionIdentifierAvailable = 0x29, Byte, [ConnAck];
    /// 0x2A Shared Subscription Available (CONNACK).
    SharedSubscriptionAvailable = 0x2A, Byte, [ConnAck];
}

impl PropertyId {
    /// Whether the property may appear in `packet_type` (`will`: in CONNECT's will
    /// properties) — table 2-4 `[MQTT-2.2.2.2]`.
    pub const fn is_allowed_in(self, packet_type: PacketType, will: bool) -> bool {
        let bit = if will { 1 } else { 1 << packet_type as u16 };
        self.allowed() & bit != 0
    }

    /// Whether the property may appear more than once in one block: User Property anywhere
    /// ("allowed to appear multiple times", e.g. section 3.1.2.11.8) and Subscription
    /// Identifier in PUBLISH (one per matching subscription, section 3.3.2.3.8); every other
    /// repetition is a protocol error.
    const fn is_repeatable(self, ctx: Context) -> bool {
        matches!(self, PropertyId::UserProperty)
            || (matches!(self, PropertyId::SubscriptionIdentifier)
                && ctx == PacketType::Publish as u8)
    }
}

/// One MQTT 5 property with its value. Strings and binary data borrow from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the property of the same name (see PropertyId)
pub enum Property<'a> {
    /// `true`: the payload is UTF-8 (wire value 1); `false`: unspecified bytes (0).
    PayloadFormatIndicator(bool),
    /// Seconds the message may wait before the broker drops it.
    MessageExpiryInterval(u32),
    ContentType(&'a str),
    ResponseTopic(&'a str),
    CorrelationData(&'a [u8]),
    /// 1..=268 435 455 (sections 3.3.2.3.8, 3.8.2.1.2).
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(&'a str),
    ServerKeepAlive(u16),
    AuthenticationMethod(&'a str),
    AuthenticationData(&'a [u8]),
    RequestProblemInformation(bool),
    WillDelayInterval(u32),
    RequestResponseInformation(bool),
    ResponseInformation(&'a str),
    ServerReference(&'a str),
    ReasonString(&'a str),
    /// Non-zero (sections 3.1.2.11.3, 3.2.2.3.3).
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    /// Non-zero `[MQTT-3.3.2-8]`.
    TopicAlias(u16),
    /// 0 or 1 only (section 3.2.2.3.4).
    MaximumQoS(QoS),
    RetainAvailable(bool),
    /// A name and value; may repeat, order kept `[MQTT-3.3.2-18]`.
    UserProperty(&'a str, &'a str),
    /// Non-zero (sections 3.1.2.11.4, 3.2.2.3.6).
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(bool),
    SubscriptionIdentifierAvailable(bool),
    SharedSubscriptionAvailable(bool),
}

impl Property<'_> {
    /// The property's identifier.
    pub const fn id(&self) -> PropertyId {
        match self {
            Property::PayloadFormatIndicator(_) => PropertyId::PayloadFormatIndicator,
            Property::MessageExpiryInterval(_) => PropertyId::MessageExpiryInterval,
            Property::ContentType(_) => PropertyId::ContentType,
            Property::ResponseTopic(_) => PropertyId::ResponseTopic,
            Property::CorrelationData(_) => PropertyId::CorrelationData,
            Property::SubscriptionIdentifier(_) => PropertyId::SubscriptionIdentifier,
            Property::SessionExpiryInterval(_) => PropertyId::SessionExpiryInterval,
            Property::AssignedClientIdentifier(_) => PropertyId::AssignedClientIdentifier,
            Property::ServerKeepAlive(_) => PropertyId::ServerKeepAlive,
            Property::AuthenticationMethod(_) => PropertyId::AuthenticationMethod,
            Property::AuthenticationData(_) => PropertyId::AuthenticationData,
            Property::RequestProblemInformation(_) => PropertyId::RequestProblemInformation,
            Property::WillDelayInterval(_) => PropertyId::WillDelayInterval,
            Property::RequestResponseInformation(_) => PropertyId::RequestResponseInformation,
            Property::ResponseInformation(_) => PropertyId::ResponseInformation,
            Property::ServerReference(_) => PropertyId::ServerReference,
            Property::ReasonString(_) => PropertyId::ReasonString,
            Property::ReceiveMaximum(_) => PropertyId::ReceiveMaximum,
            Property::TopicAliasMaximum(_) => PropertyId::TopicAliasMaximum,
            Property::TopicAlias(_) => PropertyId::TopicAlias,
            Property::MaximumQoS(_) => PropertyId::MaximumQoS,
            Property::RetainAvailable(_) => PropertyId::RetainAvailable,
            Property::UserProperty(_, _) => PropertyId::UserProperty,
            Property::MaximumPacketSize(_) => PropertyId::MaximumPacketSize,
            Property::WildcardSubscriptionAvailable(_) => PropertyId::WildcardSubscriptionAvailable,
            Property::SubscriptionIdentifierAvailable(_) => {
                PropertyId::SubscriptionIdentifierAvailable
            }
            Property::SharedSubscriptionAvailable(_) => PropertyId::SharedSubscriptionAvailable,
        }
    }

    /// The value if it breaks a rule of its property (zero where zero is forbidden, QoS 2 as
    /// Maximum QoS, a subscription identifier beyond a variable byte integer).
    fn invalid_value(&self) -> Option<u32> {
        match *self {
            Property::ReceiveMaximum(0) | Property::TopicAlias(0) => Some(0),
            Property::MaximumPacketSize(0) => Some(0),
            Property::SubscriptionIdentifier(v) if v == 0 || v > MAX_VARIABLE_BYTE_INTEGER => {
                Some(v)
            }
            Property::MaximumQoS(QoS::ExactlyOnce) => Some(2),
            _ => None,
        }
    }

    /// Bytes after the identifier. Always inlined: `Properties` encoding is hot, and a second
    /// caller (`checked_property_len`) must not make it a call there.
    #[inline(always)]
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(match *self {
            Property::PayloadFormatIndicator(_)
            | Property::RequestProblemInformation(_)
            | Property::RequestResponseInformation(_)
            | Property::MaximumQoS(_)
            | Property::RetainAvailable(_)
            | Property::WildcardSubscriptionAvailable(_)
            | Property::SubscriptionIdentifierAvailable(_)
            | Property::SharedSubscriptionAvailable(_) => 1,
            Property::ServerKeepAlive(_)
            | Property::ReceiveMaximum(_)
            | Property::TopicAliasMaximum(_)
            | Property::TopicAlias(_) => 2,
            Property::MessageExpiryInterval(_)
            | Property::SessionExpiryInterval(_)
            | Property::WillDelayInterval(_)
            | Property::MaximumPacketSize(_) => 4,
            Property::SubscriptionIdentifier(v) => vbi_len(v as usize),
            Property::ContentType(s)
            | Property::ResponseTopic(s)
            | Property::AssignedClientIdentifier(s)
            | Property::AuthenticationMethod(s)
            | Property::ResponseInformation(s)
            | Property::ServerReference(s)
            | Property::ReasonString(s) => super::encode::string_len(s)?,
            Property::CorrelationData(b) | Property::AuthenticationData(b) => {
                super::encode::binary_len(b)?
            }
            Property::UserProperty(k, v) => {
                super::encode::string_len(k)? + super::encode::string_len(v)?
            }
        })
    }

    /// Writes the identifier and value (always inlined, as `value_len`).
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>) {
        w.u8(self.id() as u8);
        match *self {
            Property::PayloadFormatIndicator(b)
            | Property::RequestProblemInformation(b)
            | Property::RequestResponseInformation(b)
            | Property::RetainAvailable(b)
            | Property::WildcardSubscriptionAvailable(b)
            | Property::SubscriptionIdentifierAvailable(b)
            | Property::SharedSubscriptionAvailable(b) => w.u8(u8::from(b)),
            Property::MaximumQoS(q) => w.u8(q as u8),
            Property::ServerKeepAlive(v)
            | Property::ReceiveMaximum(v)
            | Property::TopicAliasMaximum(v)
            | Property::TopicAlias(v) => w.u16(v),
            Property::MessageExpiryInterval(v)
            | Property::SessionExpiryInterval(v)
            | Property::WillDelayInterval(v)
            | Property::MaximumPacketSize(v) => w.raw(&v.to_be_bytes()),
            Property::SubscriptionIdentifier(v) => w.vbi(v as usize),
            Property::ContentType(s)
            | Property::ResponseTopic(s)
            | Property::AssignedClientIdentifier(s)
            | Property::AuthenticationMethod(s)
            | Property::ResponseInformation(s)
            | Property::ServerReference(s)
            | Property::ReasonString(s) => w.string(s),
            Property::CorrelationData(b) | Property::AuthenticationData(b) => w.binary(b),
            Property::UserProperty(k, v) => {
                w.string(k);
                w.string(v);
            }
        }
    }
}

/// A broken property rule, before it is reported as a decode or an encode error.
pub(crate) enum Violation {
    NotAllowed(PropertyId),
    Duplicate(PropertyId),
    InvalidValue(PropertyId, u32),
}

/// Checks one property against its context and those seen before it (a bit per identifier).
fn check(property: &Property<'_>, ctx: Context, seen: &mut u64) -> Result<(), Violation> {
    let id = property.id();
    if id.allowed() & (1 << ctx) == 0 {
        return Err(Violation::NotAllowed(id));
    }
    let bit = 1u64 << (id as u8);
    if *seen & bit != 0 && !id.is_repeatable(ctx) {
        return Err(Violation::Duplicate(id));
    }
    *seen |= bit;
    match property.invalid_value() {
        Some(value) => Err(Violation::InvalidValue(id, value)),
        None => Ok(()),
    }
}

/// Checks `property` as one entry of a property block of `packet_type` — allowed there, not
/// repeated when it may not be (`seen` records the block's entries so far), no forbidden value:
/// what encoding a [`Properties::List`] checks for each entry — and returns its size on the
/// wire. For a caller that writes a block entry by entry ([`write_property`]).
pub(crate) fn checked_property_len(
    property: &Property<'_>,
    packet_type: PacketType,
    seen: &mut u64,
) -> Result<usize, EncodeError> {
    let ctx = context(packet_type);
    check(property, ctx, seen).map_err(|v| EncodeError::from_violation(v, ctx))?;
    Ok(1 + property.value_len()?)
}

/// Writes `property` (identifier and value) at the start of `buf`, which holds at least the
/// [`checked_property_len`] it has.
pub(crate) fn write_property(property: &Property<'_>, buf: &mut [u8]) {
    property.write(&mut Writer::new(buf));
}

/// Properties given by the caller, for [`Properties::List`].
///
/// A `Properties` refers to it through a thin reference, which keeps every packet type (and
/// so the 3.1.1 decoder's result) small: `Properties::List(&PropertyList(&[...]))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertyList<'a>(pub &'a [Property<'a>]);

/// The properties of a packet (or of a CONNECT's will): two machine words.
///
/// Built from a [`PropertyList`] when encoding; when decoding it borrows the validated
/// property bytes. An MQTT 3.1.1 packet always has [`Properties::EMPTY`]. Two values are equal
/// when they hold the same properties in the same order, however each is held.
#[derive(Debug, Clone, Copy)]
pub enum Properties<'a> {
    /// Properties given by the caller.
    List(&'a PropertyList<'a>),
    /// The validated property bytes of a decoded packet (without the length prefix).
    Encoded(&'a [u8]),
}

impl PartialEq for Properties<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Properties::Encoded(a), Properties::Encoded(b)) => a == b,
            _ => self.iter().eq(other.iter()),
        }
    }
}

impl Eq for Properties<'_> {}

impl Default for Properties<'_> {
    fn default() -> Self {
        Properties::EMPTY
    }
}

macro_rules! getters {
    ($( $(#[$doc:meta])* $fn:ident -> $ty:ty = $variant:ident; )*) => {
        $(
            $(#[$doc])*
            pub fn $fn(&self) -> Option<$ty> {
                self.iter().find_map(|p| match p {
                    Property::$variant(v) => Some(v),
                    _ => None,
                })
            }
        )*
    };
}

impl<'a> Properties<'a> {
    /// No properties.
    pub const EMPTY: Properties<'static> = Properties::List(&PropertyList(&[]));

    /// Whether there are no properties.
    #[inline]
    pub fn is_empty(&self) -> bool {
        match self {
            Properties::List(list) => list.0.is_empty(),
            Properties::Encoded(bytes) => bytes.is_empty(),
        }
    }

    /// The properties in order.
    pub fn iter(&self) -> PropertyIter<'a> {
        match *self {
            Properties::List(&PropertyList(list)) => PropertyIter {
                list: list.iter(),
                bytes: &[],
            },
            Properties::Encoded(bytes) => PropertyIter {
                list: [].iter(),
                bytes,
            },
        }
    }

    /// The user properties (name, value) in order.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.iter().filter_map(|p| match p {
            Property::UserProperty(k, v) => Some((k, v)),
            _ => None,
        })
    }

    /// The subscription identifiers (a PUBLISH carries one per matching subscription).
    pub fn subscription_identifiers(&self) -> impl Iterator<Item = u32> + 'a {
        self.iter().filter_map(|p| match p {
            Property::SubscriptionIdentifier(v) => Some(v),
            _ => None,
        })
    }

    getters! {
        /// Payload Format Indicator: `true` when the payload is UTF-8.
        payload_format_indicator -> bool = PayloadFormatIndicator;
        /// Message Expiry Interval in seconds.
        message_expiry_interval -> u32 = MessageExpiryInterval;
        /// Content Type.
        content_type -> &'a str = ContentType;
        /// Response Topic.
        response_topic -> &'a str = ResponseTopic;
        /// Correlation Data.
        correlation_data -> &'a [u8] = CorrelationData;
        /// Session Expiry Interval in seconds.
        session_expiry_interval -> u32 = SessionExpiryInterval;
        /// Assigned Client Identifier.
        assigned_client_identifier -> &'a str = AssignedClientIdentifier;
        /// Server Keep Alive in seconds.
        server_keep_alive -> u16 = ServerKeepAlive;
        /// Authentication Method.
        authentication_method -> &'a str = AuthenticationMethod;
        /// Reason String.
        reason_string -> &'a str = ReasonString;
        /// Server Reference.
        server_reference -> &'a str = ServerReference;
        /// Receive Maximum.
        receive_maximum -> u16 = ReceiveMaximum;
        /// Topic Alias Maximum.
        topic_alias_maximum -> u16 = TopicAliasMaximum;
        /// Topic Alias.
        topic_alias -> u16 = TopicAlias;
        /// Maximum QoS.
        maximum_qos -> QoS = MaximumQoS;
        /// Retain Available.
        retain_available -> bool = RetainAvailable;
        /// Maximum Packet Size in bytes.
        maximum_packet_size -> u32 = MaximumPacketSize;
        /// Wildcard Subscription Available.
        wildcard_subscription_available -> bool = WildcardSubscriptionAvailable;
        /// Subscription Identifier Available.
        subscription_identifier_available -> bool = SubscriptionIdentifierAvailable;
        /// Shared Subscription Available.
        shared_subscription_available -> bool = SharedSubscriptionAvailable;
    }

    /// Checks the properties for `packet_type` (`will`: a CONNECT's will properties) — each
    /// allowed there (table 2-4), none repeated that may not be, no forbidden value — and
    /// returns their wire bytes without the length prefix: what [`Properties::Encoded`] and
    /// `Will::properties` hold. The one check a caller makes before keeping properties for
    /// later (a will, a command line's `-D`).
    #[cfg(feature = "alloc")]
    pub fn encode_for(
        &self,
        packet_type: PacketType,
        will: bool,
    ) -> Result<alloc::vec::Vec<u8>, EncodeError> {
        let mut buf = alloc::vec::Vec::new();
        self.encode_for_into(packet_type, will, &mut buf)?;
        Ok(buf)
    }

    /// [`Properties::encode_for`] into `out` (emptied first), so that a fixed buffer needs no
    /// allocator. `Ok(false)`, with `out` empty, when they do not fit a fixed `out`.
    pub(crate) fn encode_for_into(
        &self,
        packet_type: PacketType,
        will: bool,
        out: &mut impl Buffer,
    ) -> Result<bool, EncodeError> {
        let ctx = if will { WILL } else { context(packet_type) };
        let block = self.encoded_len(ctx)?;
        out.clear();
        if out.try_resize(block).is_err() {
            return Ok(false);
        }
        self.write(&mut Writer::new(&mut out[..]), block);
        // Drop the length prefix (a variable byte integer: its last byte has bit 7 clear).
        let prefix = out.iter().position(|b| b & 0x80 == 0).map_or(1, |i| i + 1);
        out.remove_front(prefix);
        Ok(true)
    }

    /// Validates the properties for `ctx` and returns the size of the block on the wire
    /// (the property-length field included).
    #[inline]
    pub(crate) fn encoded_len(&self, ctx: Context) -> Result<usize, EncodeError> {
        if self.is_empty() {
            // Just the property length 0: the common case costs no validation (nor a call).
            return Ok(1);
        }
        self.encoded_len_nonempty(ctx)
    }

    #[inline(never)]
    fn encoded_len_nonempty(&self, ctx: Context) -> Result<usize, EncodeError> {
        let body = match *self {
            Properties::List(&PropertyList(list)) => {
                let mut seen = 0u64;
                let mut len = 0usize;
                for property in list {
                    check(property, ctx, &mut seen)
                        .map_err(|v| EncodeError::from_violation(v, ctx))?;
                    len += 1 + property.value_len()?;
                }
                len
            }
            Properties::Encoded(bytes) => {
                let mut reader = Reader::new(bytes, packet_type_of(ctx));
                validate_block(&mut reader, ctx).map_err(EncodeError::MalformedProperties)?;
                bytes.len()
            }
        };
        if body > MAX_VARIABLE_BYTE_INTEGER as usize {
            return Err(EncodeError::PacketTooLarge);
        }
        Ok(vbi_len(body) + body)
    }

    /// Writes the block (length prefix included); [`Properties::encoded_len`] validated it.
    #[inline]
    pub(crate) fn write(&self, w: &mut Writer<'_>, block_len: usize) {
        if block_len == 1 {
            w.u8(0);
        } else {
            self.write_nonempty(w, block_len);
        }
    }

    #[inline(never)]
    fn write_nonempty(&self, w: &mut Writer<'_>, block_len: usize) {
        match *self {
            Properties::List(&PropertyList(list)) => {
                w.vbi(block_len - vbi_len_of_block(block_len));
                list.iter().for_each(|p| p.write(w));
            }
            Properties::Encoded(bytes) => {
                w.vbi(bytes.len());
                w.raw(bytes);
            }
        }
    }
}

/// The body length of a block whose total (prefix included) is `block_len`.
fn vbi_len_of_block(block_len: usize) -> usize {
    // The prefix is 1..=4 bytes; pick the one consistent with the total.
    (1..=4)
        .find(|&n| block_len >= n && vbi_len(block_len - n) == n)
        .unwrap_or(1)
}

pub(crate) fn packet_type_of(ctx: Context) -> PacketType {
    PacketType::from_nibble(ctx).unwrap_or(PacketType::Connect)
}

/// Iterator over [`Properties`]; stops at the first malformed entry of encoded bytes, which
/// decoding has ruled out.
#[derive(Debug, Clone)]
pub struct PropertyIter<'a> {
    list: core::slice::Iter<'a, Property<'a>>,
    bytes: &'a [u8],
}

impl<'a> Iterator for PropertyIter<'a> {
    type Item = Property<'a>;

    fn next(&mut self) -> Option<Property<'a>> {
        if let Some(p) = self.list.next() {
            return Some(*p);
        }
        if self.bytes.is_empty() {
            return None;
        }
        let mut reader = Reader::new(self.bytes, PacketType::Publish);
        let property = read_property(&mut reader).ok()?;
        self.bytes = reader.rest();
        Some(property)
    }
}

/// Reads one property (identifier and value).
/// Lowers, in place, the Message Expiry Interval of an encoded MQTT 5 PUBLISH to `seconds`
/// if it is higher (the value is a fixed four bytes, so nothing moves). `false`, with `packet`
/// untouched, when it is not a well-formed MQTT 5 PUBLISH carrying that property.
pub(crate) fn shorten_message_expiry(packet: &mut [u8], seconds: u32) -> bool {
    let Some(offset) = message_expiry_offset(packet) else {
        return false;
    };
    lower_expiry_value(&mut packet[offset..offset + 4], seconds);
    true
}

/// Lowers the four-byte Message Expiry Interval `value` to `seconds` if it is higher.
fn lower_expiry_value(value: &mut [u8], seconds: u32) {
    let current = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
    value.copy_from_slice(&current.min(seconds).to_be_bytes());
}

/// Where the four value bytes of the Message Expiry Interval sit in an encoded MQTT 5 PUBLISH.
fn message_expiry_offset(packet: &[u8]) -> Option<usize> {
    let Ok(super::Decoded::Complete {
        packet: super::Packet::Publish(publish),
        ..
    }) = super::decode_with(packet, usize::MAX, super::ProtocolVersion::V5)
    else {
        return None;
    };
    let Properties::Encoded(block) = publish.properties else {
        return None;
    };
    // `block` borrows from `packet`: its position there is the distance between the two.
    let start = (block.as_ptr() as usize).checked_sub(packet.as_ptr() as usize)?;
    Some(start + expiry_offset_in_block(block)?)
}

/// Where the four value bytes of the Message Expiry Interval sit in an encoded PUBLISH
/// property block (without its length prefix).
fn expiry_offset_in_block(block: &[u8]) -> Option<usize> {
    let mut r = Reader::new(block, PacketType::Publish);
    while !r.is_empty() {
        let at = block.len() - r.remaining();
        if let Property::MessageExpiryInterval(_) = read_property(&mut r).ok()? {
            // The identifier 0x02 is a one-byte variable byte integer.
            return Some(at + 1);
        }
    }
    None
}

/// Copies a checked PUBLISH property block (without its length prefix) into `out` with a
/// Message Expiry Interval of at most `seconds`: its own one lowered in place, or one added
/// at the end. `false`, with `out` empty, when a fixed `out` has no room.
pub(crate) fn with_message_expiry(block: &[u8], seconds: u32, out: &mut impl Buffer) -> bool {
    out.clear();
    if out.try_extend(block).is_err() {
        return false;
    }
    if let Some(offset) = expiry_offset_in_block(block) {
        lower_expiry_value(&mut out[offset..offset + 4], seconds);
        return true;
    }
    let [a, b, c, d] = seconds.to_be_bytes();
    let added = [PropertyId::MessageExpiryInterval as u8, a, b, c, d];
    if out.try_extend(&added).is_err() {
        out.clear();
        return false;
    }
    true
}

fn read_property<'a>(r: &mut Reader<'a>) -> Result<Property<'a>, DecodeError> {
    let raw_id = r.vbi()?;
    let id = PropertyId::from_u32(raw_id).ok_or(DecodeError::InvalidPropertyId(raw_id))?;
    let boolean = |r: &mut Reader<'a>| -> Result<bool, DecodeError> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::InvalidPropertyValue {
                property: id,
                value: u32::from(v),
            }),
        }
    };
    Ok(match id.kind() {
        Kind::Byte => match id {
            PropertyId::MaximumQoS => match r.u8()? {
                0 => Property::MaximumQoS(QoS::AtMostOnce),
                1 => Property::MaximumQoS(QoS::AtLeastOnce),
                v => {
                    return Err(DecodeError::InvalidPropertyValue {
                        property: id,
                        value: u32::from(v),
                    })
                }
            },
            PropertyId::PayloadFormatIndicator => Property::PayloadFormatIndicator(boolean(r)?),
            PropertyId::RequestProblemInformation => {
                Property::RequestProblemInformation(boolean(r)?)
            }
            PropertyId::RequestResponseInformation => {
                Property::RequestResponseInformation(boolean(r)?)
            }
            PropertyId::RetainAvailable => Property::RetainAvailable(boolean(r)?),
            PropertyId::WildcardSubscriptionAvailable => {
                Property::WildcardSubscriptionAvailable(boolean(r)?)
            }
            PropertyId::SubscriptionIdentifierAvailable => {
                Property::SubscriptionIdentifierAvailable(boolean(r)?)
            }
            _ => Property::SharedSubscriptionAvailable(boolean(r)?),
        },
        Kind::TwoByte => {
            let v = r.u16()?;
            match id {
                PropertyId::ServerKeepAlive => Property::ServerKeepAlive(v),
                PropertyId::ReceiveMaximum => Property::ReceiveMaximum(v),
                PropertyId::TopicAliasMaximum => Property::TopicAliasMaximum(v),
                _ => Property::TopicAlias(v),
            }
        }
        Kind::FourByte => {
            let v = r.u32()?;
            match id {
                PropertyId::MessageExpiryInterval => Property::MessageExpiryInterval(v),
                PropertyId::SessionExpiryInterval => Property::SessionExpiryInterval(v),
                PropertyId::WillDelayInterval => Property::WillDelayInterval(v),
                _ => Property::MaximumPacketSize(v),
            }
        }
        Kind::Varint => Property::SubscriptionIdentifier(r.vbi()?),
        Kind::String => {
            let s = r.string()?;
            match id {
                PropertyId::ContentType => Property::ContentType(s),
                PropertyId::ResponseTopic => Property::ResponseTopic(s),
                PropertyId::AssignedClientIdentifier => Property::AssignedClientIdentifier(s),
                PropertyId::AuthenticationMethod => Property::AuthenticationMethod(s),
                PropertyId::ResponseInformation => Property::ResponseInformation(s),
                PropertyId::ServerReference => Property::ServerReference(s),
                _ => Property::ReasonString(s),
            }
        }
        Kind::Binary => {
            let b = r.binary()?;
            match id {
                PropertyId::CorrelationData => Property::CorrelationData(b),
                _ => Property::AuthenticationData(b),
            }
        }
        Kind::StringPair => Property::UserProperty(r.string()?, r.string()?),
    })
}

/// Validates every property of a block body (length prefix already read) for `ctx`.
fn validate_block(r: &mut Reader<'_>, ctx: Context) -> Result<(), DecodeError> {
    let mut seen = 0u64;
    while !r.is_empty() {
        let property = read_property(r)?;
        check(&property, ctx, &mut seen).map_err(|v| DecodeError::from_violation(v, ctx))?;
    }
    Ok(())
}

/// Reads a property block (length prefix and properties) from the front of `r` and validates it
/// for `ctx` `[MQTT-2.2.2]`.
pub(crate) fn read_properties<'a>(
    r: &mut Reader<'a>,
    ctx: Context,
) -> Result<Properties<'a>, DecodeError> {
    let len = r.vbi()? as usize;
    if len > r.remaining() {
        return Err(DecodeError::PropertyLengthExceeded {
            packet_type: packet_type_of(ctx),
        });
    }
    if len == 0 {
        return Ok(Properties::EMPTY);
    }
    let bytes = r.take(len)?;
    let mut block = Reader::new(bytes, packet_type_of(ctx));
    validate_block(&mut block, ctx)?;
    Ok(Properties::Encoded(bytes))
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::storage::FixedBytes;

    fn block(properties: &[Property<'_>]) -> Vec<u8> {
        Properties::List(&PropertyList(properties))
            .encode_for(PacketType::Publish, false)
            .unwrap()
    }

    fn decoded(bytes: &[u8]) -> Vec<Property<'_>> {
        Properties::Encoded(bytes).iter().collect()
    }

    #[test]
    fn a_message_expiry_is_lowered_in_place_or_added_at_the_end() {
        let user = Property::UserProperty("k", "v");
        let given = block(&[Property::MessageExpiryInterval(60), user]);
        let mut out = Vec::new();
        // Lowered in place: same bytes but the value.
        assert!(with_message_expiry(&given, 7, &mut out));
        assert_eq!(decoded(&out), [Property::MessageExpiryInterval(7), user]);
        // Never raised.
        assert!(with_message_expiry(&given, 600, &mut out));
        assert_eq!(out, given);
        // Added after the message's own properties when it has none.
        let plain = block(&[user]);
        assert!(with_message_expiry(&plain, 9, &mut out));
        assert_eq!(out, block(&[user, Property::MessageExpiryInterval(9)]));
    }

    #[test]
    fn a_fixed_buffer_without_room_is_left_empty() {
        let user = Property::UserProperty("key", "value");
        let plain = block(&[user]);
        // Room for the block but not for the added expiry.
        let mut out = FixedBytes::<13>::default();
        assert_eq!(plain.len(), 13);
        assert!(!with_message_expiry(&plain, 9, &mut out));
        assert!(out.is_empty());
        // Room for both.
        let mut out = FixedBytes::<18>::default();
        assert!(with_message_expiry(&plain, 9, &mut out));
        assert_eq!(
            &out[..],
            &block(&[user, Property::MessageExpiryInterval(9)])[..]
        );
        // encode_for_into: the same bytes as encode_for, or `false` without room.
        let list = [user, Property::ContentType("text/plain")];
        let properties = Properties::List(&PropertyList(&list));
        let mut small = FixedBytes::<8>::default();
        assert_eq!(
            properties.encode_for_into(PacketType::Publish, false, &mut small),
            Ok(false)
        );
        assert!(small.is_empty());
        let mut fits = FixedBytes::<64>::default();
        assert_eq!(
            properties.encode_for_into(PacketType::Publish, false, &mut fits),
            Ok(true)
        );
        assert_eq!(
            &fits[..],
            &properties.encode_for(PacketType::Publish, false).unwrap()[..]
        );
    }
}
