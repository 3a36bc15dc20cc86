//! Kept subscriptions: what the application wants, what the broker's session has, and the
//! SUBSCRIBE / UNSUBSCRIBE requests in flight between them. Filters (and their MQTT 5
//! properties) are kept in the engine's arena; a request is the entries marked with its
//! packet id, in the order it named them.

use super::ledger::Slot;
use super::{Engine, Event, ReconnectPolicy};
use crate::packet::SubscriptionOptions;
use crate::packet::{PacketId, Properties, QoS, ReasonCode, SubscribeReturnCode};
use crate::session::{Session, UsageError};
use crate::storage::{Arena, List, Storage, Text};

/// Most filters one SUBSCRIBE or UNSUBSCRIBE names (more go in the next one).
const BATCH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SubState {
    /// Not (yet) known to the broker's session: send SUBSCRIBE when connected.
    Wanted,
    /// SUBSCRIBE sent with this packet id on the current connection.
    Requested(PacketId),
    /// Granted within the current session.
    Active,
    /// Replaced or unsubscribed while its SUBSCRIBE (this packet id) was in flight: kept, and
    /// not reported as kept, until the SUBACK gives its code.
    Forgotten(PacketId),
}

/// A filter with its MQTT 5 properties (wire bytes, empty for none), back to back in the
/// arena.
pub(super) struct Entry<S: Storage> {
    data: Slot<S>,
    filter_len: usize,
}

impl<S: Storage> Entry<S> {
    fn new(arena: &mut S::Arena, filter: &str, properties: &[u8]) -> Result<Self, UsageError> {
        let data = arena
            .insert(&[filter.as_bytes(), properties])
            .map_err(|_| UsageError::StorageFull)?;
        Ok(Entry {
            data,
            filter_len: filter.len(),
        })
    }

    /// The filter and its properties.
    pub(super) fn parts<'a>(&'a self, arena: &'a S::Arena) -> (&'a str, &'a [u8]) {
        let bytes = arena.get(&self.data);
        let (filter, properties) = bytes.split_at(self.filter_len.min(bytes.len()));
        // Stored from a `&str`.
        (core::str::from_utf8(filter).unwrap_or_default(), properties)
    }
}

pub(super) struct Subscription<S: Storage> {
    pub(super) entry: Entry<S>,
    pub(super) qos: QoS,
    pub(super) state: SubState,
}

impl<S: Storage> Subscription<S> {
    /// Kept for the application (not a forgotten one awaiting its SUBACK).
    pub(super) fn kept(&self) -> bool {
        !matches!(self.state, SubState::Forgotten(_))
    }
}

/// A filter to unsubscribe from, and the UNSUBSCRIBE that named it (`None`: not yet sent).
pub(super) struct Unsubscription<S: Storage> {
    entry: Entry<S>,
    pub(super) sent: Option<PacketId>,
}

impl<P: ReconnectPolicy, E: Clone, S: Storage> Engine<P, E, S> {
    /// Keeps a subscription to `filter` (replacing one to the same filter).
    pub(super) fn keep_subscription(
        &mut self,
        filter: &str,
        qos: QoS,
        properties: &[u8],
    ) -> Result<(), UsageError> {
        // Checked before anything changes (fixed storage): the entry of a subscription to the
        // same filter that goes at once (not one whose SUBSCRIBE is in flight: it stays until
        // its SUBACK) makes room for the new one.
        let needed = filter.len() + properties.len();
        let replaced = self.subscriptions.iter().find(|s| {
            s.kept()
                && !matches!(s.state, SubState::Requested(_))
                && s.entry.parts(&self.arena).0 == filter
        });
        let room = match replaced {
            Some(old) => self.arena.fits_replacing(needed, &old.entry.data),
            None => self.subscriptions.len() < S::ITEMS && self.arena.fits(needed),
        };
        if !room {
            return Err(UsageError::StorageFull);
        }
        self.forget_subscription(filter);
        let entry = Entry::new(&mut self.arena, filter, properties)?;
        let subscription = Subscription {
            entry,
            qos,
            state: SubState::Wanted,
        };
        if let Err(subscription) = self.subscriptions.push(subscription) {
            self.arena.remove(subscription.entry.data);
            return Err(UsageError::StorageFull);
        }
        self.drop_unsent_unsubscription(filter);
        Ok(())
    }

    /// Keeps `filter` to unsubscribe from (and forgets its subscription).
    pub(super) fn keep_unsubscription(
        &mut self,
        filter: &str,
        properties: &[u8],
    ) -> Result<(), UsageError> {
        let entry = Entry::new(&mut self.arena, filter, properties)?;
        self.drop_unsent_unsubscription(filter);
        if let Err(unsubscription) = self
            .unsubscriptions
            .push(Unsubscription { entry, sent: None })
        {
            self.arena.remove(unsubscription.entry.data);
            return Err(UsageError::StorageFull);
        }
        self.forget_subscription(filter);
        Ok(())
    }

    /// The subscription to `filter` is no longer kept: one whose SUBSCRIBE is in flight waits
    /// for its SUBACK (which still reports it), others go at once.
    fn forget_subscription(&mut self, filter: &str) {
        let mut index = 0;
        while index < self.subscriptions.len() {
            let subscription = &self.subscriptions[index];
            if !subscription.kept() || subscription.entry.parts(&self.arena).0 != filter {
                index += 1;
                continue;
            }
            if let SubState::Requested(packet_id) = subscription.state {
                self.subscriptions[index].state = SubState::Forgotten(packet_id);
                index += 1;
            } else if let Some(gone) = List::remove(&mut self.subscriptions, index) {
                self.arena.remove(gone.entry.data);
            }
        }
    }

    fn drop_unsent_unsubscription(&mut self, filter: &str) {
        let mut index = 0;
        while index < self.unsubscriptions.len() {
            let unsubscription = &self.unsubscriptions[index];
            if unsubscription.sent.is_none() && unsubscription.entry.parts(&self.arena).0 == filter
            {
                if let Some(gone) = List::remove(&mut self.unsubscriptions, index) {
                    self.arena.remove(gone.entry.data);
                }
            } else {
                index += 1;
            }
        }
    }

    /// Subscriptions kept for the application.
    pub(super) fn kept_subscriptions(&self) -> usize {
        self.subscriptions.iter().filter(|s| s.kept()).count()
    }

    /// Filters waiting to be unsubscribed from.
    pub(super) fn unsent_unsubscriptions(&self) -> usize {
        self.unsubscriptions
            .iter()
            .filter(|u| u.sent.is_none())
            .count()
    }

    /// A new connection: requests of the last one are void. Without a session, the broker
    /// knows none of our subscriptions and has none to remove.
    pub(super) fn reset_subscriptions(&mut self, session_present: bool) {
        let mut index = 0;
        while index < self.subscriptions.len() {
            let subscription = &mut self.subscriptions[index];
            match subscription.state {
                SubState::Forgotten(_) => {
                    if let Some(gone) = List::remove(&mut self.subscriptions, index) {
                        self.arena.remove(gone.entry.data);
                    }
                    continue;
                }
                SubState::Requested(_) => subscription.state = SubState::Wanted,
                SubState::Active if !session_present => subscription.state = SubState::Wanted,
                _ => {}
            }
            index += 1;
        }
        let mut index = 0;
        while index < self.unsubscriptions.len() {
            if session_present && self.unsubscriptions[index].sent.is_none() {
                index += 1;
            } else if let Some(gone) = List::remove(&mut self.unsubscriptions, index) {
                self.arena.remove(gone.entry.data);
            }
        }
    }

    /// Sends SUBSCRIBE for wanted subscriptions (those with the same properties together, up
    /// to [`BATCH`] filters each) and UNSUBSCRIBE for dropped ones, if connected.
    pub(super) fn send_subscriptions(&mut self) {
        if !self.is_connected() {
            return;
        }
        loop {
            let wanted = self
                .subscriptions
                .iter()
                .position(|s| s.state == SubState::Wanted);
            let Some(first) = wanted else {
                break;
            };
            let mut filters = [("", SubscriptionOptions::new(QoS::AtMostOnce)); BATCH];
            let mut chosen = [0usize; BATCH];
            let (_, properties) = self.subscriptions[first].entry.parts(&self.arena);
            let mut count = 0;
            let batch = self.batch();
            for (index, subscription) in self.subscriptions.iter().enumerate() {
                let (filter, own) = subscription.entry.parts(&self.arena);
                if count < batch && subscription.state == SubState::Wanted && own == properties {
                    filters[count] = (filter, SubscriptionOptions::new(subscription.qos));
                    chosen[count] = index;
                    count += 1;
                }
            }
            // (A QoS alone is all the options a 3.1.1 SUBSCRIBE carries; only MQTT 5
            // subscriptions have properties.)
            let sent = send_batch(&mut self.session, count, |session, n| {
                session.subscribe_with(&filters[..n], Properties::Encoded(properties))
            });
            let Some((packet_id, sent)) = sent else {
                return; // no packet id or room now: retried at the next connection
            };
            for &index in &chosen[..sent] {
                self.subscriptions[index].state = SubState::Requested(packet_id);
            }
        }
        loop {
            let unsent = self.unsubscriptions.iter().position(|u| u.sent.is_none());
            let Some(first) = unsent else {
                break;
            };
            let mut filters = [""; BATCH];
            let mut chosen = [0usize; BATCH];
            let (_, properties) = self.unsubscriptions[first].entry.parts(&self.arena);
            let mut count = 0;
            let batch = self.batch();
            for (index, unsubscription) in self.unsubscriptions.iter().enumerate() {
                let (filter, own) = unsubscription.entry.parts(&self.arena);
                if count < batch && unsubscription.sent.is_none() && own == properties {
                    filters[count] = filter;
                    chosen[count] = index;
                    count += 1;
                }
            }
            let sent = send_batch(&mut self.session, count, |session, n| {
                session.unsubscribe_with(&filters[..n], Properties::Encoded(properties))
            });
            let Some((packet_id, sent)) = sent else {
                return; // no packet id or room now: retried at the next connection
            };
            for &index in &chosen[..sent] {
                self.unsubscriptions[index].sent = Some(packet_id);
            }
        }
    }

    /// Most filters per SUBSCRIBE / UNSUBSCRIBE: [`BATCH`], and no more events than the
    /// event list keeps (its acknowledgement reports each).
    fn batch(&self) -> usize {
        BATCH.min(self.settings.max_events.max(1))
    }

    /// A SUBACK: one code per filter the SUBSCRIBE named, in order.
    pub(super) fn subscribed(
        &mut self,
        packet_id: PacketId,
        mut codes: impl Iterator<Item = SubscribeReturnCode>,
    ) {
        let mut index = 0;
        while index < self.subscriptions.len() {
            let subscription = &self.subscriptions[index];
            let forgotten = match subscription.state {
                SubState::Requested(id) if id == packet_id => false,
                SubState::Forgotten(id) if id == packet_id => true,
                _ => {
                    index += 1;
                    continue;
                }
            };
            let Some(code) = codes.next() else {
                return;
            };
            let filter = S::Filter::try_from_str(subscription.entry.parts(&self.arena).0);
            let keep = matches!(code, SubscribeReturnCode::Success(_)) && !forgotten;
            if keep {
                self.subscriptions[index].state = SubState::Active;
                index += 1;
            } else if let Some(gone) = List::remove(&mut self.subscriptions, index) {
                self.arena.remove(gone.entry.data);
            }
            // (A filter fits a text of the storage: it was sent in a packet of that size.)
            let Ok(filter) = filter else {
                continue;
            };
            self.push_event(match code {
                SubscribeReturnCode::Success(granted) => Event::Subscribed { filter, granted },
                SubscribeReturnCode::Failure => Event::SubscriptionRefused { filter },
            });
        }
    }

    /// An UNSUBACK: one code per filter the UNSUBSCRIBE named, in order (none with 3.1.1:
    /// success).
    pub(super) fn unsubscribed(
        &mut self,
        packet_id: PacketId,
        mut codes: impl Iterator<Item = ReasonCode>,
    ) {
        let mut index = 0;
        while index < self.unsubscriptions.len() {
            if self.unsubscriptions[index].sent != Some(packet_id) {
                index += 1;
                continue;
            }
            let reason_code = codes.next().unwrap_or(ReasonCode::Success);
            let filter =
                S::Filter::try_from_str(self.unsubscriptions[index].entry.parts(&self.arena).0);
            if let Some(gone) = List::remove(&mut self.unsubscriptions, index) {
                self.arena.remove(gone.entry.data);
            }
            if let Ok(filter) = filter {
                self.push_event(Event::Unsubscribed {
                    filter,
                    reason_code,
                });
            }
        }
    }
}

/// Sends the first `count` filters of a request with `send`; on fixed storage, a request too
/// large for the session's buffers is halved until it fits. Returns the packet id and how
/// many filters went.
fn send_batch<S: Storage>(
    session: &mut Session<S>,
    mut count: usize,
    mut send: impl FnMut(&mut Session<S>, usize) -> Result<PacketId, UsageError>,
) -> Option<(PacketId, usize)> {
    loop {
        match send(session, count) {
            Ok(packet_id) => return Some((packet_id, count)),
            Err(UsageError::StorageFull) if count > 1 => count /= 2,
            Err(_) => return None,
        }
    }
}
