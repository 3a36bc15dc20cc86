//! The client's own view of its QoS 1/2 publications in flight on one connection, which the
//! broker needs to enforce its MQTT 5 Receive Maximum exactly.
//!
//! A real broker sees a PUBLISH only when it arrives and cannot tell which of its
//! acknowledgements the client had read when it sent it. The simulator can: the network tells
//! the broker when each PUBLISH was sent and when each byte the broker wrote reached the
//! client. A publication is in flight, for the client, from the moment it sends the PUBLISH to
//! the moment it receives the PUBACK, the PUBCOMP or a PUBREC with a reason code of 0x80 or
//! above (MQTT 5 section 4.9). An acknowledgement that reached the client at the very instant
//! it sent the next PUBLISH is counted as read first (the benefit of the doubt).

use umqtt_core::packet::PacketId;
use umqtt_core::Instant;

#[derive(Debug, Clone, Copy)]
struct Open {
    packet_id: PacketId,
    /// Offset, in the bytes written to the connection, just past the acknowledgement that
    /// ends the flow, once written.
    ack_end: Option<u64>,
    /// When that acknowledgement reached the client.
    done_at: Option<Instant>,
}

/// One connection's publications in flight from the client's point of view.
#[derive(Debug, Clone, Default)]
pub(super) struct IncomingWindow {
    /// Bytes of this connection the client has received.
    received: u64,
    open: Vec<Open>,
}

impl IncomingWindow {
    /// A QoS 1/2 PUBLISH the client sent at `sent_at`: how many publications it had in flight
    /// counting this one (a resend of one still in flight is not counted twice).
    pub(super) fn publish(&mut self, packet_id: PacketId, sent_at: Instant) -> usize {
        self.open
            .retain(|o| o.done_at.is_none_or(|done| done > sent_at));
        if !self.open.iter().any(|o| o.packet_id == packet_id) {
            self.open.push(Open {
                packet_id,
                ack_end: None,
                done_at: None,
            });
        }
        self.open.len()
    }

    /// The broker wrote the acknowledgement ending `packet_id`'s flow; `end` is the number of
    /// bytes written to the connection with it.
    pub(super) fn ack_written(&mut self, packet_id: PacketId, end: u64) {
        if let Some(open) = self
            .open
            .iter_mut()
            .find(|o| o.packet_id == packet_id && o.ack_end.is_none())
        {
            open.ack_end = Some(end);
        }
    }

    /// `bytes` more of what the broker wrote reached the client at `at`.
    pub(super) fn client_received(&mut self, bytes: usize, at: Instant) {
        self.received += bytes as u64;
        for open in &mut self.open {
            if open.done_at.is_none() && open.ack_end.is_some_and(|end| end <= self.received) {
                open.done_at = Some(at);
            }
        }
    }
}
