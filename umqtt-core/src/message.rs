//! An owned application message, as the clients hand it to the application.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::packet::{PacketId, Properties, Publish, QoS};

/// A received application message. `Default` gives an empty message to fill with
/// [`Message::set_from`] (reusing its capacity).
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
fn property_bytes(properties: &Properties<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    crate::packet::append_publish_properties(properties, &mut out);
    out
}

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
