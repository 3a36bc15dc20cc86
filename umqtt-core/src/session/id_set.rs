//! A set of packet ids, sized by how many it holds rather than by the id space.
//!
//! Up to [`SMALL`] ids live inline (a small device's window, or its broker's QoS 2 messages,
//! never allocates); a set made with [`IdSet::inline_only`] (fixed storage) holds no more.
//! Beyond that a growable set becomes a 65 536-bit bitmap cut into 64 pages of
//! 1 024 bits (128 bytes), a page allocated only while it holds an id. Packet ids are given
//! out in sequence, so the ids in use sit on one or two pages: a session with a window of 100
//! holds a few hundred bytes instead of 8 KiB, and O(1) insert/lookup stay. Emptied pages are
//! kept as spares (at most [`SPARES`]) for the next page needed, so ids moving through the id
//! space cost no allocation.

#[cfg(feature = "alloc")]
use alloc::boxed::Box;
#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use crate::packet::PacketId;

/// Ids kept inline, in a plain list, before the set switches to pages.
pub(crate) const SMALL: usize = 16;
#[cfg(feature = "alloc")]
const PAGE_BITS: usize = 1024;
#[cfg(feature = "alloc")]
const PAGE_WORDS: usize = PAGE_BITS / 64;
#[cfg(feature = "alloc")]
const PAGES: usize = 65_536 / PAGE_BITS;
/// Emptied pages kept for reuse.
#[cfg(feature = "alloc")]
const SPARES: usize = 2;

#[cfg(feature = "alloc")]
type Page = Box<[u64; PAGE_WORDS]>;
/// The paged part, allocated once needed.
#[cfg(feature = "alloc")]
type PagedBox = Box<Paged>;
/// Without an allocator a set never switches to pages (only inline-only sets exist).
#[cfg(not(feature = "alloc"))]
type PagedBox = Paged;

#[derive(Debug, Clone)]
pub(crate) struct IdSet {
    /// While `paged` is `None`: the ids, in `small[..len]`, in no order.
    small: [u16; SMALL],
    len: usize,
    /// Once more than [`SMALL`] ids were held at once (kept until the set is dropped: a
    /// window that needed it once will again).
    paged: Option<PagedBox>,
    /// Whether it may switch to pages (allocate).
    may_grow: bool,
}

/// The set is full: an [`IdSet::inline_only`] set already holds [`SMALL`] ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdSetFull;

#[cfg(feature = "alloc")]
#[derive(Debug, Clone)]
struct Paged {
    /// `PAGES` entries.
    pages: Vec<Option<Page>>,
    /// Ids on each page.
    counts: [u16; PAGES],
    spare: Vec<Page>,
}

#[cfg(feature = "alloc")]
fn slot(id: PacketId) -> (usize, usize, u64) {
    let v = usize::from(id.get());
    (v / PAGE_BITS, (v % PAGE_BITS) / 64, 1u64 << (v % 64))
}

impl IdSet {
    pub(crate) fn new() -> Self {
        IdSet {
            small: [0; SMALL],
            len: 0,
            paged: None,
            // Without an allocator no set grows.
            may_grow: cfg!(feature = "alloc"),
        }
    }

    /// A set that never allocates: at most [`SMALL`] ids.
    pub(crate) fn inline_only() -> Self {
        IdSet {
            may_grow: false,
            ..IdSet::new()
        }
    }

    pub(crate) fn contains(&self, id: PacketId) -> bool {
        match &self.paged {
            None => self.small[..self.len].contains(&id.get()),
            Some(paged) => paged.contains(id),
        }
    }

    /// Inserts `id`; returns false if it was already present.
    ///
    /// # Errors
    /// [`IdSetFull`] when an inline-only set has no room for a new id.
    pub(crate) fn insert(&mut self, id: PacketId) -> Result<bool, IdSetFull> {
        let fresh = match &mut self.paged {
            Some(paged) => paged.insert(id),
            None if self.small[..self.len].contains(&id.get()) => false,
            None if self.len < SMALL => {
                self.small[self.len] = id.get();
                true
            }
            None if !self.may_grow => return Err(IdSetFull),
            #[cfg(not(feature = "alloc"))]
            None => return Err(IdSetFull),
            #[cfg(feature = "alloc")]
            None => {
                let mut paged = Box::new(Paged {
                    pages: Vec::new(),
                    counts: [0; PAGES],
                    spare: Vec::new(),
                });
                paged.pages.resize_with(PAGES, || None);
                for &v in &self.small {
                    if let Some(old) = PacketId::new(v) {
                        paged.insert(old);
                    }
                }
                let fresh = paged.insert(id);
                self.paged = Some(paged);
                fresh
            }
        };
        if fresh {
            self.len += 1;
        }
        Ok(fresh)
    }

    /// Whether a new id can be inserted.
    pub(crate) fn has_room(&self) -> bool {
        self.may_grow || self.len < SMALL
    }

    /// Removes `id`; returns false if it was absent.
    pub(crate) fn remove(&mut self, id: PacketId) -> bool {
        let present = match &mut self.paged {
            Some(paged) => paged.remove(id),
            None => match self.small[..self.len].iter().position(|&v| v == id.get()) {
                Some(index) => {
                    self.small[index] = self.small[self.len - 1];
                    true
                }
                None => false,
            },
        };
        if present {
            self.len -= 1;
        }
        present
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        if let Some(paged) = &mut self.paged {
            paged.clear();
        }
        self.len = 0;
    }

    /// Bytes allocated (pages in use and spare, the page table, the paged part itself).
    #[cfg(test)]
    fn allocated_bytes(&self) -> usize {
        self.paged.as_ref().map_or(0, |paged| {
            let pages = paged.pages.iter().filter(|p| p.is_some()).count() + paged.spare.len();
            pages * PAGE_WORDS * 8
                + paged.pages.capacity() * core::mem::size_of::<Option<Page>>()
                + core::mem::size_of::<Paged>()
        })
    }
}

/// Without an allocator: never built.
#[cfg(not(feature = "alloc"))]
#[derive(Debug, Clone)]
enum Paged {}

#[cfg(not(feature = "alloc"))]
impl Paged {
    fn contains(&self, _: PacketId) -> bool {
        match *self {}
    }

    fn insert(&mut self, _: PacketId) -> bool {
        match *self {}
    }

    fn remove(&mut self, _: PacketId) -> bool {
        match *self {}
    }

    fn clear(&mut self) {
        match *self {}
    }
}

#[cfg(feature = "alloc")]
impl Paged {
    fn contains(&self, id: PacketId) -> bool {
        let (page, word, bit) = slot(id);
        match self.pages.get(page) {
            Some(Some(words)) => words[word] & bit != 0,
            _ => false,
        }
    }

    fn insert(&mut self, id: PacketId) -> bool {
        let (page, word, bit) = slot(id);
        let spare = &mut self.spare;
        let words = self.pages[page]
            .get_or_insert_with(|| spare.pop().unwrap_or_else(|| Box::new([0; PAGE_WORDS])));
        let fresh = words[word] & bit == 0;
        words[word] |= bit;
        if fresh {
            self.counts[page] += 1;
        }
        fresh
    }

    fn remove(&mut self, id: PacketId) -> bool {
        let (page, word, bit) = slot(id);
        let Some(Some(words)) = self.pages.get_mut(page) else {
            return false;
        };
        if words[word] & bit == 0 {
            return false;
        }
        words[word] &= !bit;
        self.counts[page] -= 1;
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

    fn clear(&mut self) {
        for page in 0..PAGES {
            if self.counts[page] > 0 {
                if let Some(words) = self.pages[page].as_mut() {
                    words.iter_mut().for_each(|w| *w = 0);
                }
                self.counts[page] = 0;
                self.release(page);
            }
        }
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
            check_against_model(ops)?;
        }

        /// The same with few distinct ids, so that the set hovers around the inline limit
        /// and moves to pages with ids in it.
        #[test]
        fn behaves_like_a_set_around_the_inline_limit(
            ops in proptest::collection::vec((0u8..7, 1u16..24), 0..400)
        ) {
            // Mostly inserts, some removals, a rare clear.
            let ops = ops
                .into_iter()
                .map(|(op, v)| (match op { 0..=3 => 0, 4 | 5 => 1, _ => 2 }, v))
                .collect();
            check_against_model(ops)?;
        }
    }

    fn check_against_model(ops: std::vec::Vec<(u8, u16)>) -> Result<(), TestCaseError> {
        {
            let mut set = IdSet::new();
            let mut model = BTreeSet::new();
            for (op, v) in ops {
                match op {
                    0 => prop_assert_eq!(set.insert(id(v)), Ok(model.insert(v))),
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
        Ok(())
    }

    #[test]
    fn a_sliding_window_of_ids_stays_small_and_stops_allocating() {
        let mut set = IdSet::new();
        assert_eq!(set.allocated_bytes(), 0);
        // A window of 100 ids moving through the whole id space twice.
        let mut most = 0;
        for n in 0..2 * 65_535u32 + 100 {
            let v = (n % 65_535) as u16 + 1;
            set.insert(id(v)).unwrap();
            if n >= 100 {
                let old = ((n - 100) % 65_535) as u16 + 1;
                assert!(set.remove(id(old)));
            }
            most = most.max(set.allocated_bytes());
        }
        assert_eq!(set.len(), 100);
        assert!(most <= 1024 + 4 * 128 + 256, "{most} bytes");
    }

    #[test]
    fn a_small_window_never_allocates() {
        // A device's window of 4 moving through the whole id space, with the broker's
        // QoS 2 ids arriving out of order.
        let mut set = IdSet::new();
        for n in 0..65_535u32 + 8 {
            let v = (n % 65_535) as u16 + 1;
            assert_eq!(set.insert(id(v)), Ok(true));
            if n >= 4 {
                let old = ((n - 4) % 65_535) as u16 + 1;
                assert!(set.remove(id(old)));
                assert!(!set.contains(id(old)));
            }
            assert!(set.contains(id(v)));
            assert_eq!(set.allocated_bytes(), 0);
        }
        for v in [65_535, 3, 40_000, 17, 1, 2, 9, 8] {
            set.clear();
            set.insert(id(v)).unwrap();
        }
        assert_eq!(set.len(), 1);
        assert_eq!(set.allocated_bytes(), 0);
    }

    #[test]
    fn an_inline_only_set_refuses_past_its_ids_and_never_allocates() {
        let mut set = IdSet::inline_only();
        for v in 1..=SMALL as u16 {
            assert_eq!(set.insert(id(v)), Ok(true));
        }
        assert!(!set.has_room());
        assert_eq!(set.insert(id(1)), Ok(false));
        assert_eq!(set.insert(id(100)), Err(IdSetFull));
        assert!(!set.contains(id(100)));
        assert!(set.remove(id(3)));
        assert!(set.has_room());
        assert_eq!(set.insert(id(100)), Ok(true));
        assert_eq!(set.len(), SMALL);
        assert_eq!(set.allocated_bytes(), 0);
    }

    #[test]
    fn more_than_the_inline_ids_move_to_pages_and_keep_every_id() {
        let mut set = IdSet::new();
        let ids = [
            9u16, 65_535, 1, 1_025, 2_048, 30_000, 7, 8, 500, 2, 3, 4, 5, 6, 10, 11, 12,
        ];
        for &v in &ids {
            assert_eq!(set.insert(id(v)), Ok(true));
        }
        assert!(set.allocated_bytes() > 0);
        assert_eq!(set.len(), ids.len());
        for &v in &ids {
            assert!(set.contains(id(v)));
            assert_eq!(set.insert(id(v)), Ok(false));
        }
        assert!(!set.contains(id(13)));
        for &v in &ids {
            assert!(set.remove(id(v)));
        }
        assert_eq!(set.len(), 0);
    }
}
