//! An owned application message, as the clients hand it to the application: [`Message`] on
//! the heap, [`FixedMessage`] in place (fixed storage); both read through [`Received`].

#[cfg(feature = "alloc")]
use alloc::string::{String, ToString};
#[cfg(feature = "alloc")]
use alloc::vec::Vec;
use core::fmt;

use crate::packet::{PacketId, Properties, Publish, QoS};
use crate::storage::{Buffer, FixedBytes, Full};

/// A received application message, owned: what the robust engine hands out
/// ([`Storage::Message`](crate::storage::Storage::Message)).
pub trait Received: Sized + Clone + fmt::Debug + PartialEq + Eq {
    /// An owned copy of a received PUBLISH.
    ///
    /// # Errors
    /// [`Full`] when it does not fit a fixed message (never for a PUBLISH the session
    /// received into a buffer of the same size).
    fn try_from_publish(publish: &Publish<'_>) -> Result<Self, Full>;
    /// Topic name it was published on.
    fn topic(&self) -> &str;
    /// Payload bytes.
    fn payload(&self) -> &[u8];
    /// QoS it was delivered with.
    fn qos(&self) -> QoS;
    /// Retained message (sent because of the subscription, not a live publish).
    fn retain(&self) -> bool;
    /// The broker marked it as a possible redelivery.
    fn dup(&self) -> bool;
    /// The packet id the broker sent it with (QoS 1/2).
    fn packet_id(&self) -> Option<PacketId>;
    /// The MQTT 5 PUBLISH properties; empty with 3.1.1.
    fn properties(&self) -> Properties<'_>;
}

/// A received application message, on the heap. `Default` gives an empty message to fill with
/// [`Message::set_from`] (reusing its capacity).
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Topic name it was published on.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// QoS it was delivered with.
    pub qos: QoS,
    /// Retained message (sent because of the subscription, not a live publish).
    pub retain: bool,
    /// The broker marked it as a possible redelivery.
    pub dup: bool,
    /// The packet id the broker sent it with (QoS 1/2), for logs and for telling a broker's
    /// redelivery of one message apart from two messages with the same content.
    pub packet_id: Option<PacketId>,
    /// The MQTT 5 PUBLISH properties as they came on the wire (without the length prefix;
    /// empty with 3.1.1): read them with [`Message::properties`].
    pub properties: Vec<u8>,
}

#[cfg(feature = "alloc")]
impl From<&Publish<'_>> for Message {
    fn from(publish: &Publish<'_>) -> Self {
        Message {
            topic: publish.topic.to_string(),
            payload: publish.payload.to_vec(),
            qos: publish.qos,
            retain: publish.retain,
            dup: publish.dup,
            packet_id: publish.packet_id,
            properties: property_bytes(&publish.properties),
        }
    }
}

/// The wire bytes of PUBLISH properties (decoded ones are copied as they are).
#[cfg(feature = "alloc")]
fn property_bytes(properties: &Properties<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    crate::packet::append_publish_properties(properties, &mut out);
    out
}

#[cfg(feature = "alloc")]
impl Message {
    /// Overwrites this message with `publish`, reusing the topic and payload capacity.
    pub fn set_from(&mut self, publish: &Publish<'_>) {
        self.topic.clear();
        self.topic.push_str(publish.topic);
        self.payload.clear();
        self.payload.extend_from_slice(publish.payload);
        self.qos = publish.qos;
        self.retain = publish.retain;
        self.dup = publish.dup;
        self.packet_id = publish.packet_id;
        self.properties.clear();
        crate::packet::append_publish_properties(&publish.properties, &mut self.properties);
    }

    /// The MQTT 5 properties (user properties, response topic, correlation data, content
    /// type, message expiry…); empty with 3.1.1.
    pub fn properties(&self) -> Properties<'_> {
        Properties::Encoded(&self.properties)
    }

    /// The user properties (name, value) in order.
    pub fn user_properties(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.properties().user_properties()
    }
}

#[cfg(feature = "alloc")]
impl Received for Message {
    fn try_from_publish(publish: &Publish<'_>) -> Result<Self, Full> {
        Ok(Message::from(publish))
    }
    fn topic(&self) -> &str {
        &self.topic
    }
    fn payload(&self) -> &[u8] {
        &self.payload
    }
    fn qos(&self) -> QoS {
        self.qos
    }
    fn retain(&self) -> bool {
        self.retain
    }
    fn dup(&self) -> bool {
        self.dup
    }
    fn packet_id(&self) -> Option<PacketId> {
        self.packet_id
    }
    fn properties(&self) -> Properties<'_> {
        Message::properties(self)
    }
}

/// A received application message in place: its topic, MQTT 5 properties and payload, back to
/// back in `B` bytes (a PUBLISH the session received into its `B`-byte buffer always fits).
/// Read it through [`Received`] (or the same methods here).
#[derive(Clone)]
pub struct FixedMessage<const B: usize> {
    pub(crate) bytes: FixedBytes<B>,
    pub(crate) topic_len: usize,
    pub(crate) properties_len: usize,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) dup: bool,
    pub(crate) packet_id: Option<PacketId>,
}

impl<const B: usize> FixedMessage<B> {
    /// Topic name it was published on.
    pub fn topic(&self) -> &str {
        // Copied from a `&str`.
        core::str::from_utf8(&self.bytes[..self.topic_len]).unwrap_or_default()
    }
    /// Payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.topic_len + self.properties_len..]
    }
    /// The MQTT 5 PUBLISH properties; empty with 3.1.1.
    pub fn properties(&self) -> Properties<'_> {
        Properties::Encoded(&self.bytes[self.topic_len..self.topic_len + self.properties_len])
    }
}

impl<const B: usize> fmt::Debug for FixedMessage<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedMessage")
            .field("topic", &self.topic())
            .field("payload", &self.payload())
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("dup", &self.dup)
            .field("packet_id", &self.packet_id)
            .finish_non_exhaustive()
    }
}

impl<const B: usize> PartialEq for FixedMessage<B> {
    fn eq(&self, other: &Self) -> bool {
        *self.bytes == *other.bytes
            && (self.topic_len, self.properties_len) == (other.topic_len, other.properties_len)
            && (self.qos, self.retain, self.dup, self.packet_id)
                == (other.qos, other.retain, other.dup, other.packet_id)
    }
}

impl<const B: usize> Eq for FixedMessage<B> {}

impl<const B: usize> Received for FixedMessage<B> {
    fn try_from_publish(publish: &Publish<'_>) -> Result<Self, Full> {
        let properties: &[u8] = match publish.properties {
            Properties::Encoded(bytes) => bytes,
            // The decoder gives encoded properties; a list is only what a caller builds.
            Properties::List(_) if publish.properties.is_empty() => &[],
            Properties::List(_) => return Err(Full),
        };
        let mut bytes = FixedBytes::default();
        bytes.try_extend(publish.topic.as_bytes())?;
        bytes.try_extend(properties)?;
        bytes.try_extend(publish.payload)?;
        Ok(FixedMessage {
            bytes,
            topic_len: publish.topic.len(),
            properties_len: properties.len(),
            qos: publish.qos,
            retain: publish.retain,
            dup: publish.dup,
            packet_id: publish.packet_id,
        })
    }
    fn topic(&self) -> &str {
        FixedMessage::topic(self)
    }
    fn payload(&self) -> &[u8] {
        FixedMessage::payload(self)
    }
    fn qos(&self) -> QoS {
        self.qos
    }
    fn retain(&self) -> bool {
        self.retain
    }
    fn dup(&self) -> bool {
        self.dup
    }
    fn packet_id(&self) -> Option<PacketId> {
        self.packet_id
    }
    fn properties(&self) -> Properties<'_> {
        FixedMessage::properties(self)
    }
}
