//! The ledger: every message the engine owns, from `publish` to its one outcome — waiting in
//! the queue, handed to the session, withdrawn, expired or settled.

use super::{
    Delivery, DropReason, Engine, Event, Link, MessageId, Outcome, PendingSummary, ReconnectPolicy,
    StoreOp, Unsupported,
};
use crate::packet::{
    with_message_expiry, Packet, PacketId, Properties, Property, PropertyList, Publish, QoS,
};
use crate::session::{Session, UsageError};
use crate::storage::{Arena, List, Storage};
use crate::time::Instant;

/// An entry of the engine's arena (see [`Storage::Arena`]).
pub(super) type Slot<S> = <<S as Storage>::Arena as Arena>::Slot;

/// One message the engine owns until it is settled.
pub(super) struct Pending<S: Storage> {
    pub(super) id: MessageId,
    /// Kept in the driver's durable outbox: report [`StoreOp`]s.
    pub(super) durable: bool,
    /// Its topic, MQTT 5 properties (wire bytes, empty for none) and payload, back to back in
    /// the engine's arena, until the session holds the encoded PUBLISH (QoS 1/2) — one copy.
    /// A QoS 0 message keeps it until written, in case the link fails first.
    pub(super) data: Option<Slot<S>>,
    pub(super) topic_len: u16,
    pub(super) properties_len: u32,
    /// Payload length (kept after the payload moved into the session; a payload fits a
    /// PUBLISH, so less than 256 MiB).
    pub(super) size: u32,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    pub(super) contract: Contract,
    /// Its deadline, with a [`Contract::Within`] (read through [`Pending::deadline`]: a bare
    /// `Instant`, 8 bytes less in every entry than an `Option`).
    pub(super) deadline_at: Instant,
    /// Set once handed to the session (QoS 1/2).
    pub(super) packet_id: Option<PacketId>,
}

/// What a message's [`Delivery`] contract says (its deadline is kept apart): a byte instead of
/// the contract's duration, in every entry of the engine's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Contract {
    NoRetry,
    Within,
    Guaranteed,
}

impl From<Delivery> for Contract {
    fn from(delivery: Delivery) -> Self {
        match delivery {
            Delivery::NoRetry => Contract::NoRetry,
            Delivery::Within(_) => Contract::Within,
            Delivery::Guaranteed => Contract::Guaranteed,
        }
    }
}

/// A message's topic, properties (wire bytes) and payload.
pub(super) type Parts<'a> = (&'a str, &'a [u8], &'a [u8]);

impl<S: Storage> Pending<S> {
    /// When it expires: only a [`Contract::Within`] message does.
    pub(super) fn deadline(&self) -> Option<Instant> {
        (self.contract == Contract::Within).then_some(self.deadline_at)
    }

    /// Its payload's length.
    pub(super) fn payload_len(&self) -> usize {
        usize::try_from(self.size).unwrap_or(usize::MAX)
    }

    /// Its topic, properties and payload, from `arena` (empty once handed to the session).
    pub(super) fn parts<'a>(&'a self, arena: &'a S::Arena) -> Parts<'a> {
        let Some(slot) = &self.data else {
            return ("", &[], &[]);
        };
        let bytes = arena.get(slot);
        let (topic, rest) = bytes.split_at(usize::from(self.topic_len).min(bytes.len()));
        let properties_len = usize::try_from(self.properties_len).unwrap_or(usize::MAX);
        let (properties, payload) = rest.split_at(properties_len.min(rest.len()));
        // The topic was a `&str` when stored.
        (
            core::str::from_utf8(topic).unwrap_or_default(),
            properties,
            payload,
        )
    }
}

impl<S: Storage> Pending<S> {
    /// Its fate is the broker's: a QoS 2 PUBLISH that was sent may be held there, so it must
    /// complete (no deadline, no drop).
    pub(super) fn pinned(&self, session: &Session<S>) -> bool {
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
    fn matches<S: Storage>(self, pending: &Pending<S>) -> bool {
        match self {
            Which::NoRetry => pending.contract == Contract::NoRetry,
            Which::NotGuaranteed => pending.contract != Contract::Guaranteed,
            Which::DueBy(now) => pending.deadline().is_some_and(|d| d <= now),
        }
    }
}

impl<P: ReconnectPolicy, E: Clone, S: Storage> Engine<P, E, S> {
    pub(super) fn position(&self, packet_id: PacketId) -> Option<usize> {
        self.in_session
            .iter()
            .position(|p| p.packet_id == Some(packet_id))
    }

    /// Messages waiting (not handed to the session).
    pub(super) fn waiting(&self) -> usize {
        self.queue.len() - self.qos0_handed
    }

    /// The first message waiting.
    fn first_waiting(&self) -> Option<&Pending<S>> {
        (self.qos0_handed < self.queue.len()).then(|| &self.queue[self.qos0_handed])
    }

    /// Takes the first message waiting out of the queue.
    pub(super) fn take_first_waiting(&mut self) -> Option<Pending<S>> {
        List::remove(&mut self.queue, self.qos0_handed)
    }

    /// QoS 0 messages handed to the session but not known to be written wait again, in order.
    pub(super) fn requeue_unwritten(&mut self) {
        // They are at the front of the queue already, in order.
        self.qos0_transmitted = 0;
        self.qos0_handed = 0;
    }

    pub(super) fn summary(&self, now: Instant) -> PendingSummary {
        let mut guaranteed = 0;
        self.for_each_pending(|p| {
            if p.contract == Contract::Guaranteed || p.pinned(&self.session) {
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
    fn for_each_pending(&self, mut f: impl FnMut(&Pending<S>)) {
        for queue in [&self.in_session, &self.queue] {
            for pending in queue.iter() {
                f(pending);
            }
        }
    }

    /// The earliest deadline among messages that are not pinned (pinned ones keep their
    /// deadline field but are not waited on).
    fn earliest_open_deadline(&self) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        self.for_each_pending(|p| {
            if let Some(deadline) = p.deadline().filter(|_| !p.pinned(&self.session)) {
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
            match withdrawn
                .then(|| List::remove(&mut self.in_session, index))
                .flatten()
            {
                Some(pending) => self.settle(pending, outcome),
                None => index += 1,
            }
        }
    }

    /// Settles the waiting (not yet handed over) messages matching `predicate`.
    pub(super) fn drop_waiting(&mut self, which: Which, outcome: Outcome) {
        let handed = self.qos0_handed;
        if !self.queue.iter().skip(handed).any(|p| which.matches(p)) {
            return;
        }
        let mut queue = core::mem::take(&mut self.queue);
        let mut index = 0;
        while let Some(pending) = queue.pop_front() {
            // The QoS 0 messages handed to the session go out with its send buffer.
            let waiting = index >= handed;
            index += 1;
            if waiting && which.matches(&pending) {
                self.settle(pending, outcome);
            } else if let Err(pending) = self.queue.push(pending) {
                // (Never: the queue held these a moment ago.)
                self.settle(pending, Outcome::Dropped(DropReason::QueueOverflow));
            }
        }
    }

    /// Whether the session can take a message of `qos` now: connected, and for QoS 1/2 room
    /// in the in-flight window (the engine keeps the rest, so deadlines apply to them).
    /// Whether waiting messages go to the session now (see [`Engine::fill_session`]).
    fn refill_due(&self) -> bool {
        let Some(front) = self.first_waiting() else {
            return false;
        };
        if front.qos == QoS::AtMostOnce || !self.is_connected() {
            return true;
        }
        let window = usize::from(self.session.config().max_in_flight.max(1));
        let free = window.saturating_sub(self.session.outgoing_len());
        free >= (window / 4).max(1).min(self.waiting())
    }

    pub(super) fn session_has_room(&self, qos: QoS) -> bool {
        self.is_connected()
            && (qos == QoS::AtMostOnce
                || self.session.outgoing_len()
                    < usize::from(self.session.config().max_in_flight.max(1)))
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
        mut pending: Pending<S>,
        borrowed: Option<Parts<'_>>,
        now: Instant,
    ) -> Result<(), Pending<S>> {
        let (qos, retain) = (pending.qos, pending.retain);
        let v5 = self.session.config().protocol.v5();
        let expiry = pending
            .deadline()
            .filter(|_| v5)
            .map(|deadline| expiry_seconds(deadline, now));
        let (topic, own_properties, payload) = match borrowed {
            Some(parts) => parts,
            None => pending.parts(&self.arena),
        };
        // The caller's properties, if any, with the shorter of its own Message Expiry
        // Interval and what is left of the delivery deadline (only MQTT 5 messages carry
        // properties of their own). A block too large for a fixed buffer goes as given: the
        // PUBLISH is then too large for the session's buffers too, and ends as such below.
        let mut own = None;
        let expiry_only;
        let expiry_list;
        let properties = match (v5 && !own_properties.is_empty(), expiry) {
            (false, None) => Properties::EMPTY,
            (false, Some(seconds)) => {
                expiry_only = [Property::MessageExpiryInterval(seconds)];
                expiry_list = PropertyList(&expiry_only);
                Properties::List(&expiry_list)
            }
            (true, Some(seconds)) => {
                let merged: &mut S::Bytes = own.insert(S::Bytes::default());
                if with_message_expiry(own_properties, seconds, merged) {
                    Properties::Encoded(&merged[..])
                } else {
                    Properties::Encoded(own_properties)
                }
            }
            (true, None) => Properties::Encoded(own_properties),
        };
        let result = self
            .session
            .publish_valid_topic(topic, payload, qos, retain, properties);
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
                let size = self.publish_size(topic, payload, qos, retain, properties);
                if size <= S::BYTES {
                    // Room comes back as the driver writes what is queued.
                    return Err(pending);
                }
                self.settle(pending, Outcome::Dropped(too_large::<S>(size)));
                return Ok(());
            }
            // No packet id or room in the session now: it waits at the head of the queue.
            Err(_) => return Err(pending),
        };
        match packet_id {
            None => {
                // After the QoS 0 messages handed before it, ahead of those waiting (at the
                // back when none wait, as when it was published straight to the session).
                let placed = if self.qos0_handed == self.queue.len() {
                    self.queue.push(pending)
                } else {
                    self.queue.insert(self.qos0_handed, pending)
                };
                match placed {
                    Ok(()) => self.qos0_handed += 1,
                    // (Never: the engine holds at most `max_queued` messages in all.)
                    Err(pending) => {
                        self.settle(pending, Outcome::Dropped(DropReason::QueueOverflow));
                    }
                }
            }
            Some(packet_id) => {
                pending.packet_id = Some(packet_id);
                pending.properties_len = 0;
                if let Some(slot) = pending.data.take() {
                    self.arena.remove(slot);
                }
                if pending.durable {
                    self.push_store_op(StoreOp::Assigned {
                        id: pending.id,
                        packet_id,
                    });
                }
                if let Err(pending) = self.in_session.push(pending) {
                    // (Never: the session holds no more than its storage's lists do.)
                    self.settle(pending, Outcome::Dropped(DropReason::QueueOverflow));
                }
            }
        }
        Ok(())
    }

    /// The size of the PUBLISH packet for a message (its packet id aside).
    pub(super) fn publish_size(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: Properties<'_>,
    ) -> usize {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain,
            topic,
            packet_id: PacketId::new(1).filter(|_| qos != QoS::AtMostOnce),
            payload,
            properties,
        })
        .encoded_len_with(self.session.config().protocol)
        .unwrap_or(usize::MAX)
    }

    /// MQTT 5: before a new connection resends what the session holds, each message with a
    /// deadline gets the Message Expiry Interval left of it now, not the one it carried at its
    /// first send (the broker would otherwise keep it past its deadline).
    pub(super) fn refresh_expiries(&mut self, now: Instant) {
        if !self.session.config().protocol.v5() {
            return;
        }
        for pending in self.in_session.iter() {
            if let (Some(deadline), Some(packet_id)) = (pending.deadline(), pending.packet_id) {
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
        if !self.session.config().protocol.v5() {
            return;
        }
        let awaiting_connack = matches!(self.link, Link::Attempt { opened: true, .. });
        if awaiting_connack || self.session.in_flight() < self.session.outgoing_len() {
            self.refresh_expiries(now);
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
        while let Some(front) = self.first_waiting() {
            if !self.session_has_room(front.qos) {
                break;
            }
            let Some(pending) = self.take_first_waiting() else {
                break;
            };
            if let Err(pending) = self.hand_over(pending, None, now) {
                if let Err(pending) = self.queue.insert(self.qos0_handed, pending) {
                    // (Never: it was just taken from there.)
                    self.settle(pending, Outcome::Dropped(DropReason::QueueOverflow));
                }
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
    pub(super) fn settle(&mut self, mut pending: Pending<S>, outcome: Outcome) {
        self.queued_bytes -= pending.payload_len();
        if let Some(slot) = pending.data.take() {
            self.arena.remove(slot);
        }
        if pending.durable {
            self.push_store_op(StoreOp::Settled { id: pending.id });
        }
        self.conclude(pending.id, outcome);
    }

    /// Records a change for the durable outbox (never on fixed storage: it keeps no durable
    /// messages, see [`Engine::publish_durable`]).
    pub(super) fn push_store_op(&mut self, op: StoreOp) {
        if self.store_ops.push(op).is_err() {
            self.stats.events_overflowed += 1;
        }
    }

    /// A message's one outcome: counted, reported as an event, and kept for
    /// [`Engine::poll_outcome`] when [`EngineSettings::track_outcomes`] is set.
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
        if self.settings.track_outcomes && self.outcomes.push((id, outcome)).is_err() {
            // Fixed storage: a driver that drains after every input never gets here (one step
            // settles at most the `max_queued` messages the engine holds).
            self.stats.events_overflowed += 1;
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

/// Why a message of `size` bytes is dropped on storage `S` that cannot hold it.
pub(super) fn too_large<S: Storage>(size: usize) -> DropReason {
    let max = u32::try_from(S::BYTES).unwrap_or(u32::MAX);
    DropReason::TooLarge { size, max }
}
