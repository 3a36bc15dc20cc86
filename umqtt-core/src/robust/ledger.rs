//! The ledger: every message the engine owns, from `publish` to its one outcome — waiting in
//! the queue, handed to the session, withdrawn, expired or settled.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use super::{
    Delivery, DropReason, Engine, Event, Link, MessageId, Outcome, PendingSummary, ReconnectPolicy,
    StoreOp, Unsupported,
};
use crate::packet::{Packet, PacketId, Properties, Property, PropertyList, Publish, QoS};
use crate::session::{Session, UsageError};
use crate::storage::Storage;
use crate::time::Instant;

/// One message the engine owns until it is settled.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) id: MessageId,
    /// Kept in the driver's durable outbox: report [`StoreOp`]s.
    pub(super) durable: bool,
    /// Topic and payload, until the session holds the encoded PUBLISH (QoS 1/2) — one copy.
    pub(super) topic: String,
    pub(super) payload: Vec<u8>,
    /// Payload length (kept after the payload moved into the session).
    pub(super) size: usize,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    pub(super) delivery: Delivery,
    pub(super) deadline: Option<Instant>,
    /// Set once handed to the session (QoS 1/2).
    pub(super) packet_id: Option<PacketId>,
    /// The caller's MQTT 5 PUBLISH properties as wire bytes (empty for none), until the
    /// session holds the encoded PUBLISH.
    pub(super) properties: Box<[u8]>,
}

impl Pending {
    /// Its fate is the broker's: a QoS 2 PUBLISH that was sent may be held there, so it must
    /// complete (no deadline, no drop).
    pub(super) fn pinned<S: Storage>(&self, session: &Session<S>) -> bool {
        self.packet_id.is_some_and(|id| !session.can_cancel(id))
    }
}

/// Which messages [`Engine::withdraw`] and [`Engine::drop_waiting`] settle. A value rather
/// than a closure: each of those (large) functions is then compiled once, not once per
/// caller's predicate.
#[derive(Debug, Clone, Copy)]
pub(super) enum Which {
    /// Messages published with [`Delivery::NoRetry`].
    NoRetry,
    /// Messages without [`Delivery::Guaranteed`].
    NotGuaranteed,
    /// Messages whose deadline is at or before this instant.
    DueBy(Instant),
}

impl Which {
    fn matches(self, pending: &Pending) -> bool {
        match self {
            Which::NoRetry => pending.delivery == Delivery::NoRetry,
            Which::NotGuaranteed => pending.delivery != Delivery::Guaranteed,
            Which::DueBy(now) => pending.deadline.is_some_and(|d| d <= now),
        }
    }
}

/// Largest buffer pair kept for reuse, in bytes of capacity (see [`Engine::recycle`]).
const SPARE_MAX_BYTES: usize = 4096;
/// Most bytes of capacity kept in spare buffers: enough for a burst of a few thousand small
/// messages, little beside the queue bound.
const SPARE_TOTAL_BYTES: usize = 256 * 1024;

impl<P: ReconnectPolicy, E: Clone, S: Storage> Engine<P, E, S> {
    pub(super) fn position(&self, packet_id: PacketId) -> Option<usize> {
        self.in_session
            .iter()
            .position(|p| p.packet_id == Some(packet_id))
    }

    /// QoS 0 messages handed to the session but not known to be written wait again, in order.
    pub(super) fn requeue_unwritten(&mut self) {
        self.qos0_transmitted = 0;
        while let Some(pending) = self.qos0.pop_back() {
            self.queue.push_front(pending);
        }
    }

    pub(super) fn summary(&self, now: Instant) -> PendingSummary {
        let mut guaranteed = 0;
        self.for_each_pending(|p| {
            if p.delivery == Delivery::Guaranteed || p.pinned(&self.session) {
                guaranteed += 1;
            }
        });
        PendingSummary {
            messages: self.pending(),
            guaranteed,
            earliest_deadline: self
                .earliest_open_deadline()
                .map(|d| d.saturating_duration_since(now)),
        }
    }

    /// Calls `f` with every message not settled: handed to the session, QoS 0 in its send
    /// buffer, waiting. (One loop over the three queues, not a chain of their iterators: the
    /// chain's code is repeated for every half of every ring buffer.)
    fn for_each_pending(&self, mut f: impl FnMut(&Pending)) {
        for queue in [&self.in_session, &self.qos0, &self.queue] {
            for pending in queue {
                f(pending);
            }
        }
    }

    /// The earliest deadline among messages that are not pinned (pinned ones keep their
    /// deadline field but are not waited on).
    fn earliest_open_deadline(&self) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        self.for_each_pending(|p| {
            if let Some(deadline) = p.deadline.filter(|_| !p.pinned(&self.session)) {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
        });
        earliest
    }

    /// Settles every message matching `predicate` with `outcome`: those still waiting, and
    /// QoS 1/2 messages handed to the session if it lets go of them (not a QoS 2 message that
    /// was sent). QoS 0 messages in the session's send buffer go out with it (a lost link
    /// puts them back in the queue first).
    pub(super) fn withdraw(&mut self, which: Which, outcome: Outcome) {
        self.drop_waiting(which, outcome);
        let mut index = 0;
        while index < self.in_session.len() {
            let pending = &self.in_session[index];
            let withdrawn = which.matches(pending)
                && pending
                    .packet_id
                    .is_some_and(|packet_id| self.session.cancel_publish(packet_id));
            match withdrawn.then(|| self.in_session.remove(index)).flatten() {
                Some(pending) => self.settle(pending, outcome),
                None => index += 1,
            }
        }
    }

    /// Settles the waiting (not yet handed over) messages matching `predicate`.
    pub(super) fn drop_waiting(&mut self, which: Which, outcome: Outcome) {
        if !self.queue.iter().any(|p| which.matches(p)) {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for pending in core::mem::take(&mut self.queue) {
            if which.matches(&pending) {
                self.settle(pending, outcome);
            } else {
                kept.push_back(pending);
            }
        }
        self.queue = kept;
    }

    /// Whether the session can take a message of `qos` now: connected, and for QoS 1/2 room
    /// in the in-flight window (the engine keeps the rest, so deadlines apply to them).
    /// Whether waiting messages go to the session now (see [`Engine::fill_session`]).
    fn refill_due(&self) -> bool {
        let Some(front) = self.queue.front() else {
            return false;
        };
        if front.qos == QoS::AtMostOnce || !self.is_connected() {
            return true;
        }
        let window = usize::from(self.config.session.max_in_flight.max(1));
        let free = window.saturating_sub(self.session.outgoing_len());
        free >= (window / 4).max(1).min(self.queue.len())
    }

    pub(super) fn session_has_room(&self, qos: QoS) -> bool {
        self.is_connected()
            && (qos == QoS::AtMostOnce
                || self.session.outgoing_len()
                    < usize::from(self.config.session.max_in_flight.max(1)))
    }

    /// Hands a message to the session (its topic and payload are already checked): from
    /// `borrowed` when given, else from the message's own copy. A QoS 1/2 message keeps no
    /// copy here afterwards (the session holds the encoded PUBLISH); a QoS 0 message keeps its
    /// copy until written, in case the link fails first. Returns the message back if the
    /// session cannot take it (no packet id free).
    ///
    /// With MQTT 5 a [`Delivery::Within`](super::Delivery::Within) message carries what is
    /// left of its lifetime as its Message Expiry Interval (whole seconds, rounded down, at
    /// least 1), so the broker does not deliver it later than the application allowed either.
    pub(super) fn hand_over(
        &mut self,
        mut pending: Pending,
        borrowed: Option<(&str, &[u8])>,
        now: Instant,
    ) -> Result<(), Pending> {
        let (qos, retain) = (pending.qos, pending.retain);
        let expiry = pending
            .deadline
            .filter(|_| self.config.session.protocol.v5())
            .map(|deadline| Property::MessageExpiryInterval(expiry_seconds(deadline, now)));
        // The caller's properties, if any, with the shorter of its own Message Expiry
        // Interval and what is left of the delivery deadline.
        let mut own: Vec<Property<'_>> = Vec::new();
        // (Only MQTT 5 messages carry properties of their own.)
        if self.config.session.protocol.v5() && !pending.properties.is_empty() {
            own.extend(Properties::Encoded(&pending.properties).iter());
            if let Some(Property::MessageExpiryInterval(left)) = expiry {
                match own
                    .iter_mut()
                    .find(|p| matches!(p, Property::MessageExpiryInterval(_)))
                {
                    Some(Property::MessageExpiryInterval(given)) => *given = (*given).min(left),
                    _ => own.push(Property::MessageExpiryInterval(left)),
                }
            }
        }
        let expiry = expiry.as_slice();
        let list = PropertyList(if own.is_empty() { expiry } else { &own });
        let properties = if list.0.is_empty() {
            Properties::EMPTY
        } else {
            Properties::List(&list)
        };
        let result = match borrowed {
            Some((topic, payload)) => self
                .session
                .publish_valid_topic(topic, payload, qos, retain, properties),
            None => self.session.publish_valid_topic(
                &pending.topic,
                &pending.payload,
                qos,
                retain,
                properties,
            ),
        };
        let packet_id = match result {
            Ok(packet_id) => packet_id,
            Err(UsageError::PacketTooLarge { size, max }) => {
                // Larger than this broker's Maximum Packet Size: waiting cannot help, and
                // holding it would stop every message behind it.
                self.settle(
                    pending,
                    Outcome::Dropped(DropReason::TooLarge { size, max }),
                );
                return Ok(());
            }
            // What this broker's CONNACK rules out: the same at every attempt on this
            // connection, so it ends here instead of blocking the queue behind it.
            Err(UsageError::QoSNotSupported { max }) => {
                let reason = DropReason::NotSupported(Unsupported::QoS { max });
                self.settle(pending, Outcome::Dropped(reason));
                return Ok(());
            }
            Err(UsageError::RetainNotAvailable) => {
                let reason = DropReason::NotSupported(Unsupported::Retain);
                self.settle(pending, Outcome::Dropped(reason));
                return Ok(());
            }
            // Larger than the session's fixed buffers: it can never be sent.
            Err(UsageError::StorageFull) if S::BYTES != usize::MAX => {
                let publish = Packet::Publish(Publish {
                    dup: false,
                    qos,
                    retain,
                    topic: borrowed.map_or(pending.topic.as_str(), |(topic, _)| topic),
                    packet_id: PacketId::new(1).filter(|_| qos != QoS::AtMostOnce),
                    payload: borrowed.map_or(&pending.payload[..], |(_, payload)| payload),
                    properties,
                });
                let size = publish
                    .encoded_len_with(self.config.session.protocol)
                    .unwrap_or(usize::MAX);
                if size <= S::BYTES {
                    // Room comes back as the driver writes what is queued.
                    return Err(pending);
                }
                let max = u32::try_from(S::BYTES).unwrap_or(u32::MAX);
                self.settle(
                    pending,
                    Outcome::Dropped(DropReason::TooLarge { size, max }),
                );
                return Ok(());
            }
            // No packet id or room in the session now: it waits at the head of the queue.
            Err(_) => return Err(pending),
        };
        match packet_id {
            None => self.qos0.push_back(pending),
            Some(packet_id) => {
                pending.packet_id = Some(packet_id);
                pending.properties = Default::default();
                self.recycle(&mut pending);
                if pending.durable {
                    self.store_ops.push_back(StoreOp::Assigned {
                        id: pending.id,
                        packet_id,
                    });
                }
                self.in_session.push_back(pending);
            }
        }
        Ok(())
    }

    /// MQTT 5: before a new connection resends what the session holds, each message with a
    /// deadline gets the Message Expiry Interval left of it now, not the one it carried at its
    /// first send (the broker would otherwise keep it past its deadline).
    pub(super) fn refresh_expiries(&mut self, now: Instant) {
        if !self.config.session.protocol.v5() {
            return;
        }
        for pending in &self.in_session {
            if let (Some(deadline), Some(packet_id)) = (pending.deadline, pending.packet_id) {
                self.session
                    .shorten_message_expiry(packet_id, expiry_seconds(deadline, now));
            }
        }
    }

    /// MQTT 5: [`Engine::refresh_expiries`] before the session may send stored messages it
    /// holds back — the resends a CONNACK releases, those waiting for the broker's Receive
    /// Maximum, which an acknowledgement or a withdrawal releases — so that each goes out
    /// with what is left of its deadline when it is written, not when it was handed over.
    /// Nothing to do (and no cost) while the session sends everything at once.
    pub(super) fn refresh_waiting_expiries(&mut self, now: Instant) {
        // First the compile-time/config test: a 3.1.1 session pays nothing more on the pump.
        if !self.config.session.protocol.v5() {
            return;
        }
        let awaiting_connack = matches!(self.link, Link::Attempt { opened: true, .. });
        if awaiting_connack || self.session.in_flight() < self.session.outgoing_len() {
            self.refresh_expiries(now);
        }
    }

    /// Gives `pending` its own copy of `topic` and `payload`, in reused buffers when there are.
    pub(super) fn copy_into(&mut self, pending: &mut Pending, topic: &str, payload: &[u8]) {
        let (mut own_topic, mut own_payload) = match self.spare.pop() {
            Some((topic, payload)) => {
                self.spare_bytes -= topic.capacity() + payload.capacity();
                (topic, payload)
            }
            None => Default::default(),
        };
        own_topic.push_str(topic);
        own_payload.extend_from_slice(payload);
        pending.topic = own_topic;
        pending.payload = own_payload;
    }

    /// Takes `pending`'s copy (it no longer needs it) for reuse: up to
    /// [`SPARE_TOTAL_BYTES`], none holding more than [`SPARE_MAX_BYTES`].
    pub(super) fn recycle(&mut self, pending: &mut Pending) {
        let mut topic = core::mem::take(&mut pending.topic);
        let mut payload = core::mem::take(&mut pending.payload);
        let size = topic.capacity() + payload.capacity();
        if size > 0 && size <= SPARE_MAX_BYTES && self.spare_bytes + size <= SPARE_TOTAL_BYTES {
            topic.clear();
            payload.clear();
            self.spare_bytes += size;
            self.spare.push((topic, payload));
        }
    }

    /// Moves waiting messages into the session while it has room, in order.
    ///
    /// Once the window was full, it is refilled in batches of at least a quarter of it (or
    /// of what waits, if less): a producer that stays ahead of the acknowledgements then
    /// writes many PUBLISH packets per write instead of one or two per acknowledgement read
    /// — fewer system calls, segments and wake-ups on both ends, while the broker still has
    /// three quarters of a window of work.
    pub(super) fn fill_session(&mut self, now: Instant) {
        if !self.refill_due() {
            return;
        }
        while let Some(front) = self.queue.front() {
            if !self.session_has_room(front.qos) {
                break;
            }
            let Some(pending) = self.queue.pop_front() else {
                break;
            };
            if let Err(pending) = self.hand_over(pending, None, now) {
                self.queue.push_front(pending);
                break;
            }
        }
    }

    pub(super) fn expire(&mut self, now: Instant) {
        if self.earliest_deadline.is_none_or(|at| at > now) {
            return;
        }
        // Withdrawing frees room in the session's window for messages it holds back.
        self.refresh_waiting_expiries(now);
        self.withdraw(Which::DueBy(now), Outcome::Expired);
        self.earliest_deadline = self.earliest_open_deadline();
    }

    /// Ends a message's life: exactly one event says how, and the outbox forgets it.
    pub(super) fn settle(&mut self, mut pending: Pending, outcome: Outcome) {
        self.recycle(&mut pending);
        self.queued_bytes -= pending.size;
        if pending.durable {
            self.store_ops
                .push_back(StoreOp::Settled { id: pending.id });
        }
        self.conclude(pending.id, outcome);
    }

    /// A message's one outcome: counted, reported as an event, and kept for
    /// [`Engine::poll_outcome`] when [`EngineConfig::track_outcomes`] is set.
    pub(super) fn conclude(&mut self, id: MessageId, outcome: Outcome) {
        let event = match outcome {
            Outcome::Delivered => {
                self.stats.delivered += 1;
                Event::Delivered { id }
            }
            Outcome::Expired => {
                self.stats.expired += 1;
                Event::Expired { id }
            }
            Outcome::Dropped(reason) => {
                self.stats.dropped += 1;
                self.stats.dropped_by.add(reason);
                Event::Dropped { id, reason }
            }
        };
        if self.config.track_outcomes {
            self.outcomes.push_back((id, outcome));
        }
        self.push_event(event);
    }
}

/// The Message Expiry Interval of a message with `deadline` sent at `now`: what is left, in
/// whole seconds rounded down so that the broker does not keep it past the deadline (the
/// broker counts from its own receipt, so the one-way latency still adds), at least 1.
fn expiry_seconds(deadline: Instant, now: Instant) -> u32 {
    let left = deadline.saturating_duration_since(now).as_secs();
    u32::try_from(left.max(1)).unwrap_or(u32::MAX)
}
