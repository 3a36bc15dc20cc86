//! MQTT 5 topic alias tables (section 3.3.2.3.4), kept in the session's storage: on the heap
//! they grow; on [`Fixed`](crate::storage::Fixed)`<N, B>` storage each table holds at most `N`
//! aliases whose topics take at most `B` bytes together, and nothing is allocated. Both tables
//! last one connection. Without the `mqtt5` feature they hold nothing.

#[cfg(not(feature = "mqtt5"))]
use core::marker::PhantomData;

#[cfg(feature = "mqtt5")]
use crate::storage::{Buffer, List};
use crate::storage::{Full, Storage};

/// Aliases this client set up for its QoS 0 messages: alias `n` stands for the `n`-th topic
/// (aliases are given out in order, 1, 2, …), the topics kept back to back in one buffer.
pub(super) struct OutgoingAliases<S: Storage> {
    #[cfg(feature = "mqtt5")]
    topics: S::Bytes,
    /// The length of each topic in `topics` (a topic name is at most 65 535 bytes).
    #[cfg(feature = "mqtt5")]
    lens: S::Vec<u16>,
    #[cfg(not(feature = "mqtt5"))]
    storage: PhantomData<S>,
}

impl<S: Storage> Default for OutgoingAliases<S> {
    fn default() -> Self {
        OutgoingAliases {
            #[cfg(feature = "mqtt5")]
            topics: S::Bytes::default(),
            #[cfg(feature = "mqtt5")]
            lens: S::Vec::default(),
            #[cfg(not(feature = "mqtt5"))]
            storage: PhantomData,
        }
    }
}

impl<S: Storage> OutgoingAliases<S> {
    /// Forgets every alias (a new connection).
    pub(super) fn clear(&mut self) {
        #[cfg(feature = "mqtt5")]
        {
            self.topics.clear();
            self.lens.clear();
        }
    }

    /// The alias set up for `topic`, if any.
    pub(super) fn find(&self, topic: &str) -> Option<u16> {
        #[cfg(feature = "mqtt5")]
        {
            let mut rest: &[u8] = &self.topics;
            for (index, &len) in self.lens.iter().enumerate() {
                let (candidate, after) = rest.split_at_checked(usize::from(len))?;
                if candidate == topic.as_bytes() {
                    // At most `u16::MAX` entries: `alias_for_new` gives no more.
                    return Some(index as u16 + 1);
                }
                rest = after;
            }
            None
        }
        #[cfg(not(feature = "mqtt5"))]
        {
            let _ = topic;
            None
        }
    }

    /// The alias a new `topic` would get with at most `max` aliases, or `None` when they are
    /// all taken or the storage has no room for it (it is then sent in full).
    pub(super) fn alias_for_new(&self, topic: &str, max: u16) -> Option<u16> {
        #[cfg(feature = "mqtt5")]
        {
            let count = self.lens.len();
            let room = self.topics.max_len() - self.topics.len();
            (count < usize::from(max) && count < S::ITEMS && topic.len() <= room)
                .then(|| count as u16 + 1)
        }
        #[cfg(not(feature = "mqtt5"))]
        {
            let _ = (topic, max);
            None
        }
    }

    /// Records `topic` under the alias [`OutgoingAliases::alias_for_new`] gave.
    ///
    /// # Errors
    /// [`Full`] when the storage has no room (which `alias_for_new` ruled out).
    pub(super) fn add(&mut self, topic: &str) -> Result<(), Full> {
        #[cfg(feature = "mqtt5")]
        {
            // A valid topic name is at most 65 535 bytes [MQTT-1.5.4-1].
            let len = u16::try_from(topic.len()).map_err(|_| Full)?;
            self.topics.try_extend(topic.as_bytes())?;
            if self.lens.push(len).is_err() {
                self.topics.truncate(self.topics.len() - topic.len());
                return Err(Full);
            }
            Ok(())
        }
        #[cfg(not(feature = "mqtt5"))]
        {
            let _ = topic;
            Err(Full)
        }
    }
}

/// Aliases the broker set up in the PUBLISH packets it sent: entry `n - 1` is where the
/// topic of alias `n` sits in `topics` (length 0: not set up).
pub(super) struct IncomingAliases<S: Storage> {
    #[cfg(feature = "mqtt5")]
    topics: S::Bytes,
    #[cfg(feature = "mqtt5")]
    spans: S::Vec<(usize, usize)>,
    #[cfg(not(feature = "mqtt5"))]
    storage: PhantomData<S>,
}

impl<S: Storage> Default for IncomingAliases<S> {
    fn default() -> Self {
        IncomingAliases {
            #[cfg(feature = "mqtt5")]
            topics: S::Bytes::default(),
            #[cfg(feature = "mqtt5")]
            spans: S::Vec::default(),
            #[cfg(not(feature = "mqtt5"))]
            storage: PhantomData,
        }
    }
}

impl<S: Storage> IncomingAliases<S> {
    /// Most aliases the storage holds: what the session announces at most.
    pub(super) const MAX: u16 = if S::ITEMS < u16::MAX as usize {
        S::ITEMS as u16
    } else {
        u16::MAX
    };

    /// Forgets every alias (a new connection).
    pub(super) fn clear(&mut self) {
        #[cfg(feature = "mqtt5")]
        {
            self.topics.clear();
            self.spans.clear();
        }
    }

    /// Whether `alias` (1 or more) is set up.
    pub(super) fn is_set(&self, alias: u16) -> bool {
        #[cfg(feature = "mqtt5")]
        {
            let index = usize::from(alias).wrapping_sub(1);
            index < self.spans.len() && self.spans[index].1 > 0
        }
        #[cfg(not(feature = "mqtt5"))]
        {
            let _ = alias;
            false
        }
    }

    /// The topic of `alias` (1 or more), if set up.
    pub(super) fn get(&self, alias: u16) -> Option<&str> {
        #[cfg(feature = "mqtt5")]
        {
            let index = usize::from(alias).checked_sub(1)?;
            if index >= self.spans.len() {
                return None;
            }
            let (start, len) = self.spans[index];
            // Only whole topics (`&str`) are stored.
            (len > 0)
                .then(|| core::str::from_utf8(&self.topics[start..start + len]).ok())
                .flatten()
        }
        #[cfg(not(feature = "mqtt5"))]
        {
            let _ = alias;
            None
        }
    }

    /// Sets up (or replaces) `alias` (1 or more, at most [`IncomingAliases::MAX`]) for
    /// `topic` (not empty).
    ///
    /// # Errors
    /// [`Full`] when the topics together would exceed a fixed buffer: the alias is then not
    /// set up.
    pub(super) fn set(&mut self, alias: u16, topic: &str) -> Result<(), Full> {
        #[cfg(feature = "mqtt5")]
        {
            let index = usize::from(alias).checked_sub(1).ok_or(Full)?;
            while self.spans.len() <= index {
                self.spans.push((0, 0)).map_err(|_| Full)?;
            }
            let (start, len) = self.spans[index];
            if len == topic.len() && len > 0 {
                // The same length (usually the same topic again): overwritten in place.
                self.topics[start..start + len].copy_from_slice(topic.as_bytes());
                return Ok(());
            }
            if len > 0 {
                // Replaced: its bytes go, the topics after it move down.
                let total = self.topics.len();
                crate::storage::copy_down(&mut self.topics, start + len, total, start);
                self.topics.truncate(total - len);
                for span in self.spans.iter_mut() {
                    if span.1 > 0 && span.0 > start {
                        span.0 -= len;
                    }
                }
                self.spans[index] = (0, 0);
            }
            let at = self.topics.len();
            self.topics.try_extend(topic.as_bytes())?;
            self.spans[index] = (at, topic.len());
            Ok(())
        }
        #[cfg(not(feature = "mqtt5"))]
        {
            let _ = (alias, topic);
            Err(Full)
        }
    }
}

#[cfg(all(test, feature = "mqtt5"))]
mod tests {
    extern crate std;

    use std::collections::BTreeMap;
    use std::string::String;

    use proptest::prelude::*;

    use super::*;
    use crate::storage::{Fixed, Heap};

    /// Sets aliases 1..=4 to topics of 1..=12 bytes; the table must agree with a map, and
    /// refuse (fixed storage) exactly when the topics would exceed its bytes.
    fn check_incoming<S: Storage>(ops: &[(u16, usize, u8)], max_bytes: usize) {
        let mut table = IncomingAliases::<S>::default();
        let mut model: BTreeMap<u16, String> = BTreeMap::new();
        for &(alias, len, c) in ops {
            let topic: String = core::iter::repeat_n(char::from(b'a' + c % 26), len).collect();
            let others: usize = model
                .iter()
                .filter(|(a, _)| **a != alias)
                .map(|(_, t)| t.len())
                .sum();
            match table.set(alias, &topic) {
                Ok(()) => {
                    assert!(others + len <= max_bytes);
                    model.insert(alias, topic);
                }
                Err(Full) => {
                    assert!(others + len > max_bytes);
                    // The alias is gone (its connection is closed); the others stay.
                    model.remove(&alias);
                }
            }
            for a in 1..=4 {
                assert_eq!(table.get(a), model.get(&a).map(String::as_str));
                assert_eq!(table.is_set(a), model.contains_key(&a));
            }
        }
    }

    proptest! {
        #[test]
        fn incoming_aliases_behave_like_a_map(
            ops in proptest::collection::vec((1u16..=4, 1usize..=12, any::<u8>()), 0..60)
        ) {
            check_incoming::<Heap>(&ops, usize::MAX);
            check_incoming::<Fixed<4, 24>>(&ops, 24);
        }
    }

    #[test]
    fn outgoing_aliases_are_given_in_order_within_count_and_bytes() {
        let mut table = OutgoingAliases::<Fixed<3, 8>>::default();
        assert_eq!(table.alias_for_new("abc", 10), Some(1));
        table.add("abc").unwrap();
        assert_eq!(table.alias_for_new("de", 10), Some(2));
        table.add("de").unwrap();
        // 5 of 8 bytes used: 4 more do not fit, 3 do.
        assert_eq!(table.alias_for_new("fghi", 10), None);
        assert_eq!(table.alias_for_new("fgh", 1), None);
        assert_eq!(table.alias_for_new("fgh", 10), Some(3));
        table.add("fgh").unwrap();
        assert_eq!(
            ["abc", "de", "fgh", "x"].map(|t| table.find(t)),
            [Some(1), Some(2), Some(3), None]
        );
        // Three aliases (N): no fourth, whatever its size.
        assert_eq!(table.alias_for_new("", 10), None);
        table.clear();
        assert_eq!(table.find("abc"), None);
        assert_eq!(table.alias_for_new("abcdefgh", 10), Some(1));
    }
}
