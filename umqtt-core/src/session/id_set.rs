//! A set of packet ids: a 65 536-bit bitmap cut into 64 pages of 1 024 bits (128 bytes), a
//! page allocated only while it holds an id. Packet ids are given out in sequence, so the
//! ids in use sit on one or two pages: a session with a window of 100 holds a few hundred
//! bytes instead of 8 KiB, and O(1) insert/lookup stay. Emptied pages are kept as spares
//! (at most [`SPARES`]) for the next page needed, so ids moving through the id space cost no
//! allocation.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::packet::PacketId;

const PAGE_BITS: usize = 1024;
const PAGE_WORDS: usize = PAGE_BITS / 64;
const PAGES: usize = 65_536 / PAGE_BITS;
/// Emptied pages kept for reuse.
const SPARES: usize = 2;

type Page = Box<[u64; PAGE_WORDS]>;

#[derive(Debug, Clone)]
pub(crate) struct IdSet {
    /// `PAGES` entries once anything was inserted (empty before: nothing allocated).
    pages: Vec<Option<Page>>,
    /// Ids on each page.
    counts: [u16; PAGES],
    spare: Vec<Page>,
    len: usize,
}

impl IdSet {
    pub(crate) fn new() -> Self {
        IdSet {
            pages: Vec::new(),
            counts: [0; PAGES],
            spare: Vec::new(),
            len: 0,
        }
    }

    fn slot(id: PacketId) -> (usize, usize, u64) {
        let v = usize::from(id.get());
        (v / PAGE_BITS, (v % PAGE_BITS) / 64, 1u64 << (v % 64))
    }

    pub(crate) fn contains(&self, id: PacketId) -> bool {
        let (page, word, bit) = Self::slot(id);
        match self.pages.get(page) {
            Some(Some(words)) => words[word] & bit != 0,
            _ => false,
        }
    }

    /// Inserts `id`; returns false if it was already present.
    pub(crate) fn insert(&mut self, id: PacketId) -> bool {
        let (page, word, bit) = Self::slot(id);
        if self.pages.is_empty() {
            self.pages.resize_with(PAGES, || None);
        }
        let spare = &mut self.spare;
        let words = self.pages[page]
            .get_or_insert_with(|| spare.pop().unwrap_or_else(|| Box::new([0; PAGE_WORDS])));
        let fresh = words[word] & bit == 0;
        words[word] |= bit;
        if fresh {
            self.counts[page] += 1;
            self.len += 1;
        }
        fresh
    }

    /// Removes `id`; returns false if it was absent.
    pub(crate) fn remove(&mut self, id: PacketId) -> bool {
        let (page, word, bit) = Self::slot(id);
        let Some(Some(words)) = self.pages.get_mut(page) else {
            return false;
        };
        let present = words[word] & bit != 0;
        if !present {
            return false;
        }
        words[word] &= !bit;
        self.counts[page] -= 1;
        self.len -= 1;
        if self.counts[page] == 0 {
            self.release(page);
        }
        true
    }

    /// An emptied page goes to the spares (its words are all zero) or is freed.
    fn release(&mut self, page: usize) {
        if let Some(words) = self.pages[page].take() {
            if self.spare.len() < SPARES {
                self.spare.push(words);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        for page in 0..self.pages.len() {
            if self.counts[page] > 0 {
                if let Some(words) = self.pages[page].as_mut() {
                    words.iter_mut().for_each(|w| *w = 0);
                }
                self.counts[page] = 0;
                self.release(page);
            }
        }
        self.len = 0;
    }

    /// Bytes allocated (pages in use and spare, and the page table).
    #[cfg(test)]
    fn allocated_bytes(&self) -> usize {
        let pages = self.pages.iter().filter(|p| p.is_some()).count() + self.spare.len();
        pages * PAGE_WORDS * 8 + self.pages.capacity() * core::mem::size_of::<Option<Page>>()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn id(v: u16) -> PacketId {
        PacketId::new(v).unwrap()
    }

    proptest! {
        /// The same answers as a plain set, whatever the sequence of operations.
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((0u8..3, 1u16..=u16::MAX), 0..400)) {
            let mut set = IdSet::new();
            let mut model = BTreeSet::new();
            for (op, v) in ops {
                match op {
                    0 => prop_assert_eq!(set.insert(id(v)), model.insert(v)),
                    1 => prop_assert_eq!(set.remove(id(v)), model.remove(&v)),
                    _ => {
                        set.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(set.len(), model.len());
                prop_assert_eq!(set.contains(id(v)), model.contains(&v));
            }
            for v in model {
                prop_assert!(set.contains(id(v)));
            }
        }
    }

    #[test]
    fn a_sliding_window_of_ids_stays_small_and_stops_allocating() {
        let mut set = IdSet::new();
        assert_eq!(set.allocated_bytes(), 0);
        // A window of 100 ids moving through the whole id space twice.
        let mut most = 0;
        for n in 0..2 * 65_535u32 + 100 {
            let v = (n % 65_535) as u16 + 1;
            set.insert(id(v));
            if n >= 100 {
                let old = ((n - 100) % 65_535) as u16 + 1;
                assert!(set.remove(id(old)));
            }
            most = most.max(set.allocated_bytes());
        }
        assert_eq!(set.len(), 100);
        assert!(most <= 1024 + 4 * 128, "{most} bytes");
    }
}
