//! The CLI's byte stream: the transport, plus the `-d` packet log.
//!
//! The simple client is generic over its stream, so the CLI sees every byte without any hook
//! in the client: it decodes copies of what passes with the core's decoder and prints one
//! mosquitto-style line per packet (`Client ID sending PUBLISH (d0, q1, r0, m1, 't', ... (5
//! bytes))`) on stderr.
//!
//! (`-V mqttv31` is `ClientConfig::protocol`: the client itself writes the 3.1 CONNECT.)

use std::io::{self, Read, Write};
use std::time::Duration;

use umqtt::transport::{Stream, Transport};
use umqtt_core::packet::{
    decode_with, Decoded, Packet, ProtocolVersion, Publish, MAX_REMAINING_LENGTH,
};

/// Largest packet the `-d` log decodes: the protocol's own maximum (the client enforces its
/// smaller limit itself).
const MAX_LOGGED_PACKET: usize = MAX_REMAINING_LENGTH + 5;

/// A [`Transport`] (TCP, TLS, WebSocket, Unix socket) that can log packets and watch incoming
/// messages.
pub struct CliStream {
    inner: Transport,
    log: Option<PacketLog>,
    inbound: Option<InboundWatch>,
    version: ProtocolVersion,
}

impl CliStream {
    /// Wraps `inner`; `debug_client_id` turns the packet log on, naming the client as
    /// mosquitto does.
    pub fn new(inner: Transport, debug_client_id: Option<String>) -> Self {
        CliStream {
            inner,
            log: debug_client_id.map(PacketLog::new),
            inbound: None,
            version: ProtocolVersion::V311,
        }
    }

    /// Also watches incoming messages (see [`CliStream::open_qos2_handshakes`] and
    /// [`CliStream::next_packet_id`]): for a subscriber.
    pub fn watch_inbound(mut self) -> Self {
        let mut watch = InboundWatch::default();
        watch.received.version = self.version;
        watch.sent.version = self.version;
        self.inbound = Some(watch);
        self
    }

    /// Reads the traffic as packets of `version` (MQTT 5 packets carry properties and reason
    /// codes); call before [`CliStream::watch_inbound`].
    pub fn protocol(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        if let Some(log) = &mut self.log {
            log.sent.version = version;
            log.received.version = version;
        }
        self
    }

    /// Incoming QoS 2 messages received but not yet completed by our PUBCOMP. A subscriber
    /// must not DISCONNECT before this is 0: the broker would keep the message as
    /// undelivered (and send it again to a persistent session). 0 unless watched.
    pub fn open_qos2_handshakes(&self) -> usize {
        self.inbound.as_ref().map_or(0, |watch| watch.open.len())
    }

    /// The packet id of the oldest message the client has received and not yet asked about
    /// (0 for QoS 0): the client queues messages in the order their PUBLISH arrived, and
    /// drops a QoS 2 PUBLISH whose handshake is still open as a duplicate [MQTT-4.3.3-2], as
    /// this watch does. `None` unless watched.
    pub fn next_packet_id(&mut self) -> Option<u16> {
        self.inbound
            .as_mut()
            .and_then(|watch| watch.ids.pop_front())
    }
}

impl Read for CliStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(log) = &mut self.log {
            log.received.extend(&buf[..n]);
            log.flush_received();
        }
        if let Some(watch) = &mut self.inbound {
            watch.received(&buf[..n]);
        }
        Ok(n)
    }
}

impl Write for CliStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(log) = &mut self.log {
            log.sent.extend(&buf[..n]);
        }
        if let Some(watch) = &mut self.inbound {
            watch.sent(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        if let Some(log) = &mut self.log {
            log.flush_sent();
        }
        Ok(())
    }
}

impl Stream for CliStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        if let Some(log) = &mut self.log {
            log.flush_sent();
        }
        self.inner.shutdown()
    }
}

/// Bytes seen in each direction, decoded into log lines as packets complete.
struct PacketLog {
    client_id: String,
    sent: PacketBuffer,
    received: PacketBuffer,
}

impl PacketLog {
    fn new(client_id: String) -> Self {
        PacketLog {
            client_id,
            sent: PacketBuffer::default(),
            received: PacketBuffer::default(),
        }
    }

    fn flush_sent(&mut self) {
        let client_id = &self.client_id;
        self.sent
            .drain_packets(|packet| print_lines(&describe_sent(client_id, packet)));
    }

    fn flush_received(&mut self) {
        let client_id = &self.client_id;
        let v5 = self.received.version.is_v5();
        self.received
            .drain_packets(|packet| print_lines(&describe_received(client_id, packet, v5)));
    }
}

/// Incoming messages: packet ids of QoS 2 PUBLISHes not yet answered with PUBCOMP
/// [MQTT-4.3.3-2], and the packet id of each message the client will deliver, in order.
#[derive(Default)]
struct InboundWatch {
    received: PacketBuffer,
    sent: PacketBuffer,
    open: std::collections::BTreeSet<u16>,
    ids: std::collections::VecDeque<u16>,
}

/// Most packet ids remembered for messages nobody asked about.
const MAX_REMEMBERED_IDS: usize = 65_536;

impl InboundWatch {
    fn received(&mut self, bytes: &[u8]) {
        self.received.extend(bytes);
        let (open, ids) = (&mut self.open, &mut self.ids);
        self.received.drain_packets(|packet| {
            if let Ok(Packet::Publish(publish)) = packet {
                let id = publish.packet_id.map_or(0, |id| id.get());
                // A QoS 2 resend of an open handshake is not delivered again.
                if publish.qos as u8 == 2 && !open.insert(id) {
                    return;
                }
                if ids.len() == MAX_REMEMBERED_IDS {
                    ids.pop_front();
                }
                ids.push_back(id);
            }
        });
    }

    fn sent(&mut self, bytes: &[u8]) {
        self.sent.extend(bytes);
        let open = &mut self.open;
        self.sent.drain_packets(|packet| {
            if let Ok(Packet::PubComp(umqtt_core::packet::Ack { packet_id: id, .. })) = packet {
                open.remove(&id.get());
            }
        });
    }
}

#[derive(Default)]
struct PacketBuffer {
    bytes: Vec<u8>,
    version: ProtocolVersion,
}

impl PacketBuffer {
    fn extend(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Calls `each` for every complete packet and keeps the incomplete rest. Bytes that do not
    /// decode are dropped (the client reports that error itself).
    fn drain_packets(&mut self, mut each: impl FnMut(Result<&Packet<'_>, String>)) {
        let mut start = 0;
        loop {
            match decode_with(&self.bytes[start..], MAX_LOGGED_PACKET, self.version) {
                Ok(Decoded::Complete { packet, consumed }) => {
                    each(Ok(&packet));
                    start += consumed;
                }
                Ok(Decoded::Incomplete) => break,
                Err(error) => {
                    each(Err(error.to_string()));
                    start = self.bytes.len();
                    break;
                }
            }
        }
        self.bytes.drain(..start);
    }
}

fn print_lines(lines: &[String]) {
    let mut stderr = io::stderr().lock();
    for line in lines {
        // Losing a debug line is better than failing the command (or panicking in eprintln).
        let _ = writeln!(stderr, "{line}");
    }
}

fn describe_publish(publish: &Publish<'_>) -> String {
    format!(
        "(d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
        u8::from(publish.dup),
        publish.qos as u8,
        u8::from(publish.retain),
        publish.packet_id.map_or(0, |id| id.get()),
        publish.topic,
        publish.payload.len()
    )
}

/// The log lines for a packet this client sent, in libmosquitto's wording.
fn describe_sent(client_id: &str, packet: Result<&Packet<'_>, String>) -> Vec<String> {
    let prefix = format!("Client {client_id} sending");
    let packet = match packet {
        Ok(packet) => packet,
        Err(error) => return vec![format!("{prefix} undecodable bytes ({error})")],
    };
    let line = match packet {
        Packet::Connect(_) => "CONNECT".to_owned(),
        Packet::Publish(publish) => format!("PUBLISH {}", describe_publish(publish)),
        // The reason code is always 0 in 3.1.1.
        Packet::PubAck(ack) => format!("PUBACK (m{}, rc{})", ack.packet_id, ack.reason_code as u8),
        Packet::PubRec(ack) => format!("PUBREC (m{}, rc{})", ack.packet_id, ack.reason_code as u8),
        Packet::PubRel(umqtt_core::packet::Ack { packet_id: id, .. }) => format!("PUBREL (m{id})"),
        Packet::PubComp(umqtt_core::packet::Ack { packet_id: id, .. }) => {
            format!("PUBCOMP (m{id})")
        }
        Packet::Subscribe(subscribe) => {
            return subscribe
                .topics
                .iter()
                .map(|(filter, qos)| {
                    format!(
                        "{prefix} SUBSCRIBE (Mid: {}, Topic: {filter}, QoS: {}, Options: 0x00)",
                        subscribe.packet_id, qos as u8
                    )
                })
                .collect();
        }
        Packet::Unsubscribe(unsubscribe) => {
            return unsubscribe
                .topics
                .iter()
                .map(|filter| {
                    format!(
                        "{prefix} UNSUBSCRIBE (Mid: {}, Topic: {filter})",
                        unsubscribe.packet_id
                    )
                })
                .collect();
        }
        Packet::PingReq => "PINGREQ".to_owned(),
        Packet::Disconnect(_) => "DISCONNECT".to_owned(),
        other => format!("{:?}", other.packet_type()).to_uppercase(),
    };
    vec![format!("{prefix} {line}")]
}

/// The log lines for a packet this client received, in libmosquitto's wording.
fn describe_received(
    client_id: &str,
    packet: Result<&Packet<'_>, String>,
    v5: bool,
) -> Vec<String> {
    let prefix = format!("Client {client_id} received");
    let packet = match packet {
        Ok(packet) => packet,
        Err(error) => return vec![format!("{prefix} a malformed packet ({error})")],
    };
    let line = match packet {
        Packet::ConnAck(connack) if v5 => format!("CONNACK ({})", connack.reason_code as u8),
        Packet::ConnAck(connack) => format!("CONNACK ({})", connack.code as u8),
        Packet::Publish(publish) => format!("PUBLISH {}", describe_publish(publish)),
        Packet::PubAck(ack) => format!(
            "PUBACK (Mid: {}, RC:{})",
            ack.packet_id, ack.reason_code as u8
        ),
        Packet::PubRec(umqtt_core::packet::Ack { packet_id: id, .. }) => {
            format!("PUBREC (Mid: {id})")
        }
        Packet::PubRel(umqtt_core::packet::Ack { packet_id: id, .. }) => {
            format!("PUBREL (Mid: {id})")
        }
        Packet::PubComp(ack) => format!(
            "PUBCOMP (Mid: {}, RC:{})",
            ack.packet_id, ack.reason_code as u8
        ),
        Packet::SubAck(suback) => {
            // The wire codes: 0, 1, 2, 128 in 3.1.1; any SUBACK reason code in MQTT 5.
            let codes: Vec<String> = suback.return_codes.iter().map(u8::to_string).collect();
            return vec![
                format!("{prefix} SUBACK"),
                format!(
                    "Subscribed (mid: {}): {}",
                    suback.packet_id,
                    codes.join(", ")
                ),
            ];
        }
        Packet::UnsubAck(_) => "UNSUBACK".to_owned(),
        Packet::PingResp => "PINGRESP".to_owned(),
        Packet::Disconnect(disconnect) if v5 => {
            format!("DISCONNECT ({})", disconnect.reason_code as u8)
        }
        other => format!("{:?}", other.packet_type()).to_uppercase(),
    };
    vec![format!("{prefix} {line}")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use umqtt_core::packet::{PacketId, QoS, SubAck, SubscribeTopics};

    fn id(value: u16) -> PacketId {
        PacketId::new(value).unwrap()
    }

    #[test]
    fn publish_lines_match_libmosquitto() {
        let publish = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t",
            packet_id: Some(id(1)),
            payload: b"hello",
            properties: Default::default(),
        });
        assert_eq!(
            describe_sent("c1", Ok(&publish)),
            ["Client c1 sending PUBLISH (d0, q1, r0, m1, 't', ... (5 bytes))"]
        );
        assert_eq!(
            describe_received(
                "c1",
                Ok(&Packet::PubAck(umqtt_core::packet::Ack::new(id(1)))),
                false
            ),
            ["Client c1 received PUBACK (Mid: 1, RC:0)"]
        );
        // MQTT 5: the reason code is the broker's.
        let refused = Packet::PubAck(umqtt_core::packet::Ack::with_reason(
            id(2),
            umqtt_core::packet::ReasonCode::NotAuthorized,
            Default::default(),
        ));
        assert_eq!(
            describe_received("c1", Ok(&refused), true),
            ["Client c1 received PUBACK (Mid: 2, RC:135)"]
        );
    }

    #[test]
    fn subscribe_logs_one_line_per_filter_and_the_granted_qos() {
        let filters = [("a", QoS::AtMostOnce), ("b/#", QoS::ExactlyOnce)];
        let subscribe = Packet::Subscribe(umqtt_core::packet::Subscribe {
            packet_id: id(3),
            topics: SubscribeTopics::List(&filters),
            properties: Default::default(),
        });
        assert_eq!(
            describe_sent("c", Ok(&subscribe)),
            [
                "Client c sending SUBSCRIBE (Mid: 3, Topic: a, QoS: 0, Options: 0x00)",
                "Client c sending SUBSCRIBE (Mid: 3, Topic: b/#, QoS: 2, Options: 0x00)"
            ]
        );
        let suback = Packet::SubAck(SubAck {
            packet_id: id(3),
            return_codes: &[0, 0x80],
            properties: Default::default(),
        });
        assert_eq!(
            describe_received("c", Ok(&suback), false),
            ["Client c received SUBACK", "Subscribed (mid: 3): 0, 128"]
        );
        let suback = Packet::SubAck(SubAck {
            packet_id: id(4),
            return_codes: &[1, 0x87],
            properties: Default::default(),
        });
        assert_eq!(
            describe_received("c", Ok(&suback), true),
            ["Client c received SUBACK", "Subscribed (mid: 4): 1, 135"]
        );
    }

    #[test]
    fn qos2_handshakes_close_with_our_pubcomp() {
        let mut watch = InboundWatch::default();
        // PUBLISH QoS 2, topic "t", id 7, payload "x"; split across reads.
        let publish = [0x34, 0x06, 0x00, 0x01, b't', 0x00, 0x07, b'x'];
        watch.received(&publish[..3]);
        assert!(watch.open.is_empty());
        watch.received(&publish[3..]);
        assert_eq!(watch.open.len(), 1);
        // A resend while open is not a new message.
        watch.received(&[0x3C, 0x06, 0x00, 0x01, b't', 0x00, 0x07, b'x']);
        assert_eq!(watch.ids, [7]);
        // Our PUBREC does not close it; PUBCOMP does.
        watch.sent(&[0x50, 0x02, 0x00, 0x07]);
        assert_eq!(watch.open.len(), 1);
        watch.sent(&[0x70, 0x02, 0x00, 0x07]);
        assert!(watch.open.is_empty());
    }

    #[test]
    fn packet_buffer_waits_for_whole_packets() {
        let mut buffer = PacketBuffer::default();
        let mut seen = Vec::new();
        // PINGRESP, then the first byte of a PUBACK.
        buffer.extend(&[0xD0, 0x00, 0x40]);
        buffer.drain_packets(|p| seen.push(p.map(|p| p.packet_type())));
        assert_eq!(seen.len(), 1);
        buffer.extend(&[0x02, 0x00]);
        buffer.drain_packets(|p| seen.push(p.map(|p| p.packet_type())));
        assert_eq!(seen.len(), 1, "still incomplete");
        buffer.extend(&[0x07]);
        buffer.drain_packets(|p| seen.push(p.map(|p| p.packet_type())));
        assert_eq!(seen.len(), 2);
        assert!(buffer.bytes.is_empty());
    }
}
