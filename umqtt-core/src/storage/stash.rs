//! How the robust engine keeps its events in their list ([`Storage::EventStash`]): as they are
//! on the heap; on fixed storage with what they hold (a received message, a topic filter, a
//! server's host name) moved into an arena, so that each of the `N` list slots is a few dozen
//! bytes instead of a whole `B`-byte message. The application gets them back as they were.

#[cfg(feature = "alloc")]
use super::Heap;
use super::{
    Arena, Buffer, Fixed, FixedArena, FixedBytes, FixedSlot, FixedText, Storage, Text, TextStorage,
};
use crate::message::FixedMessage;
use crate::packet::{PacketId, QoS};
use crate::robust::{Event, PayloadMap, Payloads};

/// Keeps the payloads of the events in an engine's list.
pub trait EventStash<S: Storage>: Default {
    /// What an event in the list holds.
    type Payloads: Payloads;
    /// Bytes free for payloads (`usize::MAX` on the heap).
    fn room(&self) -> usize;
    /// The event as the list keeps it; back when its payload finds no room.
    ///
    /// # Errors
    /// The event, unchanged, when its payload does not fit now.
    fn stash<E>(&mut self, event: Event<E, S>) -> Result<Event<E, Self::Payloads>, Event<E, S>>;
    /// The event as it was (its payload's room is free again).
    fn unstash<E>(&mut self, event: Event<E, Self::Payloads>) -> Event<E, S>;
}

/// The heap keeps events as they are.
#[cfg(feature = "alloc")]
#[derive(Debug, Default)]
pub struct HeapEvents;

#[cfg(feature = "alloc")]
impl EventStash<Heap> for HeapEvents {
    type Payloads = Heap;
    #[inline]
    fn room(&self) -> usize {
        usize::MAX
    }
    #[inline]
    fn stash<E>(&mut self, event: Event<E, Heap>) -> Result<Event<E, Heap>, Event<E, Heap>> {
        Ok(event)
    }
    #[inline]
    fn unstash<E>(&mut self, event: Event<E, Heap>) -> Event<E, Heap> {
        event
    }
}

/// A fixed-storage event as its list keeps it: payloads in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stashed;

impl Payloads for Stashed {
    type Text = StashedText;
    type Filter = StashedText;
    type Message = StashedMessage;
}

/// A text in the arena.
#[derive(Debug, PartialEq, Eq)]
pub struct StashedText(FixedSlot);

/// A received message in the arena: its topic, properties and payload back to back, as in a
/// [`FixedMessage`].
#[derive(Debug, PartialEq, Eq)]
pub struct StashedMessage {
    slot: FixedSlot,
    topic_len: u16,
    properties_len: u32,
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: Option<PacketId>,
}

/// Fixed storage's events keep their payloads in a [`FixedArena`] of `Q` bytes (the engine
/// decodes input only while `B` bytes are free: what one packet can report).
impl<const N: usize, const B: usize, const Q: usize, const M: usize> EventStash<Fixed<N, B, Q, M>>
    for FixedArena<N, Q>
{
    type Payloads = Stashed;
    fn room(&self) -> usize {
        Q - self.used
    }
    fn stash<E>(
        &mut self,
        event: Event<E, Fixed<N, B, Q, M>>,
    ) -> Result<Event<E, Stashed>, Event<E, Fixed<N, B, Q, M>>> {
        // The payload goes into the arena first, from where it lies; the event is then
        // rebuilt around its slot (without copying the payload around).
        let payload = match &event {
            Event::Redirected { address, .. } => Some(address.host.as_bytes()),
            Event::Subscribed { filter, .. }
            | Event::SubscriptionRefused { filter }
            | Event::Unsubscribed { filter, .. } => Some(filter.as_bytes()),
            Event::Message(message) => Some(&message.bytes[..]),
            _ => None,
        };
        let slot = match payload {
            Some(bytes) => match self.insert(&[bytes]) {
                Ok(slot) => Some(slot),
                Err(_) => return Err(event),
            },
            None => None,
        };
        Ok(event.map_payloads(&mut ToArena(slot)))
    }
    fn unstash<E>(&mut self, event: Event<E, Stashed>) -> Event<E, Fixed<N, B, Q, M>> {
        event.map_payloads(&mut FromArena(self))
    }
}

/// Puts the slot its payload took into an event (`stash`).
struct ToArena(Option<FixedSlot>);

impl ToArena {
    fn slot(&mut self) -> FixedSlot {
        // (Always there: `stash` took one for an event with a payload. An impossible miss
        // would give an empty payload back, not a panic.)
        self.0.take().unwrap_or(FixedSlot(u16::MAX))
    }
}

impl<const N: usize, const B: usize, const Q: usize, const M: usize>
    PayloadMap<Fixed<N, B, Q, M>, Stashed> for ToArena
{
    fn text(&mut self, _: <Fixed<N, B, Q, M> as TextStorage>::Text) -> StashedText {
        StashedText(self.slot())
    }
    fn filter(&mut self, _: FixedText<B>) -> StashedText {
        StashedText(self.slot())
    }
    fn message(&mut self, message: FixedMessage<B>) -> StashedMessage {
        StashedMessage {
            slot: self.slot(),
            // (A topic is at most 65 535 bytes; properties fit `B`.)
            topic_len: u16::try_from(message.topic_len).unwrap_or(u16::MAX),
            properties_len: u32::try_from(message.properties_len).unwrap_or(u32::MAX),
            qos: message.qos,
            retain: message.retain,
            dup: message.dup,
            packet_id: message.packet_id,
        }
    }
}

/// Takes payloads back out of the arena.
struct FromArena<'a, const N: usize, const Q: usize>(&'a mut FixedArena<N, Q>);

impl<const N: usize, const Q: usize> FromArena<'_, N, Q> {
    fn text<T: Text>(&mut self, slot: FixedSlot) -> T {
        let mut text = T::default();
        // (It was a text of this size: it fits again.)
        text.set(core::str::from_utf8(self.0.get(&slot)).unwrap_or_default());
        self.0.remove(slot);
        text
    }
}

impl<const N: usize, const B: usize, const Q: usize, const M: usize>
    PayloadMap<Stashed, Fixed<N, B, Q, M>> for FromArena<'_, N, Q>
{
    fn text(&mut self, text: StashedText) -> <Fixed<N, B, Q, M> as TextStorage>::Text {
        FromArena::text(self, text.0)
    }
    fn filter(&mut self, filter: StashedText) -> FixedText<B> {
        FromArena::text(self, filter.0)
    }
    fn message(&mut self, message: StashedMessage) -> FixedMessage<B> {
        let mut bytes = FixedBytes::<B>::default();
        // (It came from a message of this size: it fits again.)
        let _ = bytes.try_extend(self.0.get(&message.slot));
        self.0.remove(message.slot);
        FixedMessage {
            bytes,
            topic_len: usize::from(message.topic_len),
            properties_len: usize::try_from(message.properties_len).unwrap_or(usize::MAX),
            qos: message.qos,
            retain: message.retain,
            dup: message.dup,
            packet_id: message.packet_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Received;
    use crate::packet::{Properties, Publish, ReasonCode};
    use crate::robust::{MessageId, ServerAddress};

    type S = Fixed<4, 64>;

    fn message(payload: &[u8]) -> FixedMessage<64> {
        let publish = Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: "a/b",
            packet_id: PacketId::new(7),
            payload,
            properties: Properties::Encoded(&[0x01, 0x01]),
        };
        FixedMessage::try_from_publish(&publish).unwrap()
    }

    fn room(arena: &FixedArena<4, 64>) -> usize {
        EventStash::<S>::room(arena)
    }

    fn text(text: &str) -> FixedText<64> {
        FixedText::try_from_str(text).unwrap()
    }

    /// Every event with a payload comes back as it went in, and takes no room once taken.
    #[test]
    fn events_come_back_as_they_were() {
        let mut arena = FixedArena::<4, 64>::default();
        let events: [Event<(), S>; 5] = [
            Event::Message(message(b"payload")),
            Event::Subscribed {
                filter: text("f/#"),
                granted: QoS::AtLeastOnce,
            },
            Event::Unsubscribed {
                filter: text("g/+"),
                reason_code: ReasonCode::Success,
            },
            Event::Redirected {
                address: ServerAddress {
                    host: Default::default(),
                    port: Some(1884),
                },
                reason_code: ReasonCode::UseAnotherServer,
            },
            Event::Delivered { id: MessageId(3) },
        ];
        let mut stored = alloc::vec::Vec::new();
        for event in events.clone() {
            stored.push(arena.stash(event).unwrap());
        }
        assert_eq!(room(&arena), 64 - 7 - 3 - 2 - 3 - 3);
        for (event, stored) in events.into_iter().zip(stored) {
            assert_eq!(EventStash::<S>::unstash(&mut arena, stored), event);
        }
        assert_eq!(room(&arena), 64);
        let stored = arena.stash(Event::<(), S>::Message(message(b"x"))).unwrap();
        let Event::Message(back) = EventStash::<S>::unstash(&mut arena, stored) else {
            panic!("not a message");
        };
        assert_eq!(
            (
                back.topic(),
                back.payload(),
                back.qos(),
                back.retain(),
                back.dup()
            ),
            ("a/b", &b"x"[..], QoS::ExactlyOnce, true, true)
        );
        assert_eq!(back.packet_id(), PacketId::new(7));
        assert_eq!(back.properties(), Properties::Encoded(&[0x01, 0x01]));
    }

    /// An event whose payload finds no room comes back unchanged, and the arena with it.
    #[test]
    fn an_event_without_room_is_given_back() {
        let mut arena = FixedArena::<4, 64>::default();
        let big = arena
            .stash(Event::<(), S>::Message(message(&[1; 50])))
            .unwrap();
        let event = Event::<(), S>::Message(message(&[2; 20]));
        assert_eq!(arena.stash(event.clone()), Err(event));
        // A payload-less event needs no room.
        assert!(arena
            .stash(Event::<(), S>::GaveUp {
                kind: crate::robust::FailureKind::Timeout
            })
            .is_ok());
        let _ = EventStash::<S>::unstash(&mut arena, big);
        assert_eq!(room(&arena), 64);
    }
}
