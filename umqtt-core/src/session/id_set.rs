//! A set of packet ids as a 65 536-bit bitmap: O(1) insert/lookup, one 8 KiB allocation.

use alloc::vec;
use alloc::vec::Vec;

use crate::packet::PacketId;

#[derive(Debug, Clone)]
pub(crate) struct IdSet {
    words: Vec<u64>,
    len: usize,
}

impl IdSet {
    pub(crate) fn new() -> Self {
        IdSet {
            words: vec![0; 1024],
            len: 0,
        }
    }

    fn slot(id: PacketId) -> (usize, u64) {
        let v = usize::from(id.get());
        (v / 64, 1u64 << (v % 64))
    }

    pub(crate) fn contains(&self, id: PacketId) -> bool {
        let (word, bit) = Self::slot(id);
        self.words[word] & bit != 0
    }

    /// Inserts `id`; returns false if it was already present.
    pub(crate) fn insert(&mut self, id: PacketId) -> bool {
        let (word, bit) = Self::slot(id);
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += usize::from(fresh);
        fresh
    }

    /// Removes `id`; returns false if it was absent.
    pub(crate) fn remove(&mut self, id: PacketId) -> bool {
        let (word, bit) = Self::slot(id);
        let present = self.words[word] & bit != 0;
        self.words[word] &= !bit;
        self.len -= usize::from(present);
        present
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
        self.len = 0;
    }
}
