//! Where a [`Session`](crate::session::Session) keeps its state: growable on the heap
//! ([`Heap`], the default, for the std clients) or sized up front by const generics
//! ([`Fixed`], for a device: no allocation once the session is built).
//!
//! The session's rules are written once, against the [`List`] and [`Buffer`] traits; a storage
//! only says what holds the lists (messages in flight, pending requests and acknowledgements,
//! events) and the byte buffers (received bytes, bytes to send, each stored PUBLISH). With
//! [`Fixed`], a list that is full or a buffer too small for a packet gives the caller a typed
//! error (or, for input, leaves it unread until there is room); nothing is dropped silently
//! and nothing grows.

#[cfg(feature = "alloc")]
use alloc::collections::VecDeque;
#[cfg(feature = "alloc")]
use alloc::vec::Vec;
use core::fmt;
use core::ops::{Deref, DerefMut, Index, IndexMut};

/// A buffer or list has no room for what was added: [`Fixed`] storage is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the session's fixed storage is full")
    }
}

impl core::error::Error for Full {}

/// What holds a session's lists and byte buffers: [`Heap`] or [`Fixed`]. Sealed: the
/// session's guarantees (e.g. that a transmit slice fits a driver's buffer of
/// [`Storage::BYTES`]) rest on these two.
pub trait Storage: sealed::Sealed + TextStorage + 'static {
    /// A list the session pushes at the back of and removes anywhere from.
    type Vec<T>: List<T>;
    /// A list the session mostly takes from the front of (a queue).
    type Deque<T>: List<T>;
    /// A byte buffer.
    type Bytes: Buffer;
    /// Emptied byte buffers kept for the next messages (a heap buffer keeps its capacity; a
    /// fixed one has it anyway, so fixed storage keeps none).
    type Pool<T>: List<T>;
    /// Most items a list holds (`usize::MAX`: it grows).
    const ITEMS: usize;
    /// Most bytes a buffer holds (`usize::MAX`: it grows).
    const BYTES: usize;
    /// A stored PUBLISH larger than this is handed to the driver from its own buffer instead
    /// of being copied with other packets into the transmit buffer.
    const SEND_STORED_ABOVE: usize;
}

/// A list of `T` (a `Vec`, a `VecDeque` or a fixed-capacity array).
pub trait List<T>: Default + Index<usize, Output = T> + IndexMut<usize> {
    /// Number of items.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Adds `item` at the back; gives it back when a fixed list is full.
    ///
    /// # Errors
    /// The item, when there is no room.
    fn push(&mut self, item: T) -> Result<(), T>;
    /// Removes and returns the first item.
    fn pop_front(&mut self) -> Option<T>;
    /// Removes and returns the last item.
    fn pop(&mut self) -> Option<T>;
    /// Removes and returns item `index`, keeping the order of the others.
    fn remove(&mut self, index: usize) -> Option<T>;
    /// Removes item `index`, moving the last item into its place.
    fn swap_remove(&mut self, index: usize) -> Option<T>;
    /// Removes every item.
    fn clear(&mut self);
    /// Keeps the items for which `keep` is true, in order.
    fn retain(&mut self, keep: impl FnMut(&T) -> bool);
    /// The items in order.
    fn iter<'a>(&'a self) -> impl Iterator<Item = &'a T>
    where
        T: 'a;
    /// The items in order, mutably.
    fn iter_mut<'a>(&'a mut self) -> impl Iterator<Item = &'a mut T>
    where
        T: 'a;
    /// The first item.
    fn first(&self) -> Option<&T>;
}

/// A byte buffer (a `Vec<u8>` or a fixed-capacity array).
pub trait Buffer: Default + Deref<Target = [u8]> + DerefMut {
    /// How many bytes fit without growing (a heap buffer grows past it).
    fn capacity(&self) -> usize;
    /// Most bytes it can ever hold (`usize::MAX`: it grows).
    fn max_len(&self) -> usize;
    /// Empties the buffer.
    fn clear(&mut self);
    /// Shortens the buffer to `len` bytes (no effect if it is shorter).
    fn truncate(&mut self, len: usize);
    /// Appends `bytes`.
    ///
    /// # Errors
    /// [`Full`], with the buffer unchanged, when a fixed buffer has no room for them.
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), Full>;
    /// Grows the buffer to `len` bytes, the new ones zero.
    ///
    /// # Errors
    /// [`Full`], with the buffer unchanged, when `len` exceeds a fixed buffer's capacity.
    fn try_resize(&mut self, len: usize) -> Result<(), Full>;
    /// Removes the first `n` bytes.
    fn remove_front(&mut self, n: usize);
    /// Makes room for exactly `additional` more bytes ahead of time (a heap buffer only).
    fn reserve_exact(&mut self, additional: usize);
    /// Gives memory back down to `capacity` bytes (a heap buffer only).
    fn shrink_to(&mut self, capacity: usize);
}

/// Growable storage on the heap: lists and buffers grow as needed (the session's own limits,
/// such as [`SessionConfig::max_outgoing`](crate::session::SessionConfig::max_outgoing), bound
/// them).
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heap {}

mod sealed {
    /// Only this module's storages implement [`Storage`](super::Storage).
    pub trait Sealed {}
    #[cfg(feature = "alloc")]
    impl Sealed for super::Heap {}
    impl<const N: usize, const B: usize> Sealed for super::Fixed<N, B> {}
}

#[cfg(feature = "alloc")]
impl Storage for Heap {
    type Vec<T> = Vec<T>;
    type Deque<T> = VecDeque<T>;
    type Bytes = Vec<u8>;
    type Pool<T> = Vec<T>;
    const ITEMS: usize = usize::MAX;
    const BYTES: usize = usize::MAX;
    const SEND_STORED_ABOVE: usize = 64 * 1024;
}

#[cfg(feature = "alloc")]
impl<T> List<T> for Vec<T> {
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }
    #[inline]
    fn push(&mut self, item: T) -> Result<(), T> {
        Vec::push(self, item);
        Ok(())
    }
    #[inline]
    fn first(&self) -> Option<&T> {
        self.as_slice().first()
    }
    #[inline]
    fn pop_front(&mut self) -> Option<T> {
        List::remove(self, 0)
    }
    #[inline]
    fn pop(&mut self) -> Option<T> {
        Vec::pop(self)
    }
    #[inline]
    fn remove(&mut self, index: usize) -> Option<T> {
        (index < Vec::len(self)).then(|| Vec::remove(self, index))
    }
    #[inline]
    fn swap_remove(&mut self, index: usize) -> Option<T> {
        (index < Vec::len(self)).then(|| Vec::swap_remove(self, index))
    }
    #[inline]
    fn clear(&mut self) {
        Vec::clear(self);
    }
    #[inline]
    fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        Vec::retain(self, |item| keep(item));
    }
    #[inline]
    fn iter<'a>(&'a self) -> impl Iterator<Item = &'a T>
    where
        T: 'a,
    {
        self.as_slice().iter()
    }
    #[inline]
    fn iter_mut<'a>(&'a mut self) -> impl Iterator<Item = &'a mut T>
    where
        T: 'a,
    {
        self.as_mut_slice().iter_mut()
    }
}

#[cfg(feature = "alloc")]
impl<T> List<T> for VecDeque<T> {
    #[inline]
    fn len(&self) -> usize {
        VecDeque::len(self)
    }
    #[inline]
    fn push(&mut self, item: T) -> Result<(), T> {
        self.push_back(item);
        Ok(())
    }
    #[inline]
    fn first(&self) -> Option<&T> {
        self.front()
    }
    #[inline]
    fn pop_front(&mut self) -> Option<T> {
        VecDeque::pop_front(self)
    }
    #[inline]
    fn pop(&mut self) -> Option<T> {
        self.pop_back()
    }
    #[inline]
    fn remove(&mut self, index: usize) -> Option<T> {
        VecDeque::remove(self, index)
    }
    #[inline]
    fn swap_remove(&mut self, index: usize) -> Option<T> {
        self.swap_remove_back(index)
    }
    #[inline]
    fn clear(&mut self) {
        VecDeque::clear(self);
    }
    #[inline]
    fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        VecDeque::retain(self, |item| keep(item));
    }
    #[inline]
    fn iter<'a>(&'a self) -> impl Iterator<Item = &'a T>
    where
        T: 'a,
    {
        VecDeque::iter(self)
    }
    #[inline]
    fn iter_mut<'a>(&'a mut self) -> impl Iterator<Item = &'a mut T>
    where
        T: 'a,
    {
        VecDeque::iter_mut(self)
    }
}

#[cfg(feature = "alloc")]
impl Buffer for Vec<u8> {
    #[inline]
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    #[inline]
    fn max_len(&self) -> usize {
        usize::MAX
    }
    #[inline]
    fn clear(&mut self) {
        Vec::clear(self);
    }
    #[inline]
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), Full> {
        self.extend_from_slice(bytes);
        Ok(())
    }
    #[inline]
    fn try_resize(&mut self, len: usize) -> Result<(), Full> {
        self.resize(len, 0);
        Ok(())
    }
    #[inline]
    fn remove_front(&mut self, n: usize) {
        self.drain(..n.min(self.len()));
    }
    #[inline]
    fn reserve_exact(&mut self, additional: usize) {
        Vec::reserve_exact(self, additional);
    }
    #[inline]
    fn shrink_to(&mut self, capacity: usize) {
        Vec::shrink_to(self, capacity);
    }
}

/// Storage sized up front, for a device without an allocator: every list holds at most `N`
/// items and every byte buffer (received bytes, bytes to send, each stored PUBLISH) at most
/// `B` bytes.
///
/// `B` bounds the largest packet the session sends or receives, and a read: a driver feeds at
/// most [`Session::input_room`](crate::session::Session::input_room) bytes at a time. `N`
/// bounds the QoS 1/2 messages held (`N - 2` of them, so that the event list always has room
/// for what one step can report about each, and for the connection's end), the SUBSCRIBE and
/// UNSUBSCRIBE requests waiting for their acknowledgement, and the received messages whose
/// acknowledgement the application still owes ([`SessionConfig::manual_ack`](
/// crate::session::SessionConfig::manual_ack)). Packet ids are tracked inline too: at most 16
/// in use at once (messages in the session, requests waiting, ids withdrawn on this
/// connection), and 16 incoming QoS 2 messages not yet released; past that a command gets
/// [`UsageError::StorageFull`](crate::session::UsageError::StorageFull) and a broker's extra
/// message closes the connection (it is sent again on the next one). The session holds about
/// `(N + 2) × B` bytes; see [`Session::with_storage`](crate::session::Session::with_storage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed<const N: usize, const B: usize> {}

impl<const N: usize, const B: usize> Storage for Fixed<N, B> {
    type Vec<T> = FixedList<T, N>;
    type Deque<T> = FixedList<T, N>;
    type Bytes = FixedBytes<B>;
    type Pool<T> = FixedList<T, 0>;
    const ITEMS: usize = N;
    const BYTES: usize = B;
    // Every stored PUBLISH is copied into the transmit buffer, so that one pass of
    // `poll_transmit` hands out one slice of at most `B` bytes: a driver can write from a
    // buffer of `B` bytes of its own.
    const SEND_STORED_ABOVE: usize = usize::MAX;
}

/// A list of at most `N` items, in place.
pub struct FixedList<T, const N: usize> {
    items: [Option<T>; N],
    len: usize,
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for FixedList<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(List::iter(self)).finish()
    }
}

impl<T, const N: usize> Default for FixedList<T, N> {
    fn default() -> Self {
        FixedList {
            items: [const { None }; N],
            len: 0,
        }
    }
}

impl<T, const N: usize> Index<usize> for FixedList<T, N> {
    type Output = T;
    fn index(&self, index: usize) -> &T {
        match self.items[..self.len].get(index) {
            Some(Some(item)) => item,
            _ => panic!("index {index} out of range for a list of {}", self.len),
        }
    }
}

impl<T, const N: usize> IndexMut<usize> for FixedList<T, N> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        let len = self.len;
        match self.items[..len].get_mut(index) {
            Some(Some(item)) => item,
            _ => panic!("index {index} out of range for a list of {len}"),
        }
    }
}

impl<T, const N: usize> List<T> for FixedList<T, N> {
    fn len(&self) -> usize {
        self.len
    }
    fn push(&mut self, item: T) -> Result<(), T> {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(item);
                self.len += 1;
                Ok(())
            }
            None => Err(item),
        }
    }
    fn first(&self) -> Option<&T> {
        self.items[..self.len].first().and_then(Option::as_ref)
    }
    fn pop_front(&mut self) -> Option<T> {
        List::remove(self, 0)
    }
    fn pop(&mut self) -> Option<T> {
        let last = self.len.checked_sub(1)?;
        self.len = last;
        self.items[last].take()
    }
    fn remove(&mut self, index: usize) -> Option<T> {
        if index >= self.len {
            return None;
        }
        let item = self.items[index].take();
        self.items[index..self.len].rotate_left(1);
        self.len -= 1;
        item
    }
    fn swap_remove(&mut self, index: usize) -> Option<T> {
        if index >= self.len {
            return None;
        }
        self.items.swap(index, self.len - 1);
        List::pop(self)
    }
    fn clear(&mut self) {
        self.items[..self.len]
            .iter_mut()
            .for_each(|slot| *slot = None);
        self.len = 0;
    }
    fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut kept = 0;
        for index in 0..self.len {
            let keep_it = self.items[index].as_ref().is_some_and(&mut keep);
            if keep_it {
                self.items.swap(kept, index);
                kept += 1;
            } else {
                self.items[index] = None;
            }
        }
        self.len = kept;
    }
    fn iter<'a>(&'a self) -> impl Iterator<Item = &'a T>
    where
        T: 'a,
    {
        self.items[..self.len].iter().flatten()
    }
    fn iter_mut<'a>(&'a mut self) -> impl Iterator<Item = &'a mut T>
    where
        T: 'a,
    {
        self.items[..self.len].iter_mut().flatten()
    }
}

/// A buffer of at most `B` bytes, in place.
#[derive(Clone)]
pub struct FixedBytes<const B: usize> {
    bytes: [u8; B],
    len: usize,
}

impl<const B: usize> fmt::Debug for FixedBytes<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FixedBytes({} of {B})", self.len)
    }
}

impl<const B: usize> Default for FixedBytes<B> {
    fn default() -> Self {
        FixedBytes {
            bytes: [0; B],
            len: 0,
        }
    }
}

impl<const B: usize> Deref for FixedBytes<B> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl<const B: usize> DerefMut for FixedBytes<B> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
}

impl<const B: usize> Buffer for FixedBytes<B> {
    fn capacity(&self) -> usize {
        B
    }
    fn max_len(&self) -> usize {
        B
    }
    fn clear(&mut self) {
        self.len = 0;
    }
    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), Full> {
        let end = self.len.checked_add(bytes.len()).ok_or(Full)?;
        self.bytes
            .get_mut(self.len..end)
            .ok_or(Full)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
    fn try_resize(&mut self, len: usize) -> Result<(), Full> {
        if len > B {
            return Err(Full);
        }
        if len > self.len {
            self.bytes[self.len..len].fill(0);
        }
        self.len = len;
        Ok(())
    }
    fn remove_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.bytes.copy_within(n..self.len, 0);
        self.len -= n;
    }
    fn reserve_exact(&mut self, _additional: usize) {}
    fn shrink_to(&mut self, _capacity: usize) {}
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::collections::VecDeque as Model;
    use std::vec::Vec as StdVec;

    use proptest::prelude::*;

    use super::*;

    /// Applies `ops` to a list and to a model with the same capacity; they must agree.
    fn check_list<L: List<u16>>(mut list: L, capacity: usize, ops: &[(u8, u16)]) {
        let mut model: Model<u16> = Model::new();
        for &(op, v) in ops {
            let index = usize::from(v) % (model.len() + 1);
            match op % 8 {
                0 | 1 => {
                    let fits = model.len() < capacity;
                    assert_eq!(list.push(v).is_ok(), fits);
                    if fits {
                        model.push_back(v);
                    }
                }
                2 => assert_eq!(list.pop_front(), model.pop_front()),
                3 => assert_eq!(list.pop(), model.pop_back()),
                4 => assert_eq!(list.remove(index), model.remove(index)),
                5 => assert_eq!(list.swap_remove(index), model.swap_remove_back(index)),
                6 => {
                    list.retain(|x| x % 3 != v % 3);
                    model.retain(|x| x % 3 != v % 3);
                }
                _ => {
                    if v % 16 == 0 {
                        list.clear();
                        model.clear();
                    } else if let Some(x) = model.get_mut(index) {
                        *x = x.wrapping_add(1);
                        list[index] = list[index].wrapping_add(1);
                    }
                }
            }
            assert_eq!(list.len(), model.len());
            assert_eq!(
                list.iter().copied().collect::<StdVec<_>>(),
                model.iter().copied().collect::<StdVec<_>>()
            );
            assert_eq!(list.first(), model.front());
        }
        for x in list.iter_mut() {
            *x = 0;
        }
        assert!(list.iter().all(|&x| x == 0));
    }

    proptest! {
        #[test]
        fn lists_behave_like_a_deque(ops in proptest::collection::vec((0u8..8, 0u16..100), 0..300)) {
            check_list(FixedList::<u16, 5>::default(), 5, &ops);
            check_list(FixedList::<u16, 0>::default(), 0, &ops);
            check_list(StdVec::new(), usize::MAX, &ops);
            check_list(Model::new(), usize::MAX, &ops);
        }

        #[test]
        fn fixed_bytes_behave_like_a_vec(
            ops in proptest::collection::vec((0u8..4, proptest::collection::vec(any::<u8>(), 0..12)), 0..100)
        ) {
            let mut bytes = FixedBytes::<16>::default();
            let mut model: StdVec<u8> = StdVec::new();
            for (op, data) in ops {
                match op {
                    0 => {
                        let fits = model.len() + data.len() <= 16;
                        prop_assert_eq!(bytes.try_extend(&data).is_ok(), fits);
                        if fits {
                            model.extend_from_slice(&data);
                        }
                    }
                    1 => {
                        let len = data.len() * 2;
                        prop_assert_eq!(bytes.try_resize(len).is_ok(), len <= 16);
                        if len <= 16 {
                            model.resize(len, 0);
                        }
                    }
                    2 => {
                        bytes.remove_front(data.len());
                        model.drain(..data.len().min(model.len()));
                    }
                    _ => {
                        bytes.truncate(data.len());
                        model.truncate(data.len());
                    }
                }
                prop_assert_eq!(&*bytes, model.as_slice());
            }
        }
    }

    #[test]
    fn a_full_list_gives_the_item_back() {
        let mut list = FixedList::<&str, 2>::default();
        assert_eq!(list.push("a"), Ok(()));
        assert_eq!(list.push("b"), Ok(()));
        assert_eq!(list.push("c"), Err("c"));
    }
}

/// Owned text a session keeps from the broker (MQTT 5 Assigned Client Identifier, Server
/// Reference, Reason String, in [`BrokerLimits`](crate::session::BrokerLimits)): a `String`
/// on the heap, a [`FixedText`] of at most `B` bytes on [`Fixed`] storage. A supertrait of
/// [`Storage`], implemented by the same two storages.
pub trait TextStorage {
    /// The text type.
    type Text: Text;
}

/// Owned UTF-8 text: a `String`, or a [`FixedText`].
pub trait Text: Default + Clone + fmt::Debug + PartialEq + Eq + Deref<Target = str> {
    /// Replaces the text with `text`, cut at a char boundary to what fits (a `String` takes
    /// all of it). Returns whether all of it was kept.
    fn set(&mut self, text: &str) -> bool;
}

#[cfg(feature = "alloc")]
impl TextStorage for Heap {
    type Text = alloc::string::String;
}

impl<const N: usize, const B: usize> TextStorage for Fixed<N, B> {
    /// Without MQTT 5 the broker sends no strings to keep: no room is reserved for them.
    #[cfg(feature = "mqtt5")]
    type Text = FixedText<B>;
    #[cfg(not(feature = "mqtt5"))]
    type Text = FixedText<0>;
}

#[cfg(feature = "alloc")]
impl Text for alloc::string::String {
    #[inline]
    fn set(&mut self, text: &str) -> bool {
        self.clear();
        self.push_str(text);
        true
    }
}

/// UTF-8 text of at most `B` bytes, in place.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FixedText<const B: usize> {
    bytes: FixedBytes<B>,
}

impl<const B: usize> PartialEq for FixedBytes<B> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<const B: usize> Eq for FixedBytes<B> {}

impl<const B: usize> Text for FixedText<B> {
    fn set(&mut self, text: &str) -> bool {
        let mut end = text.len().min(B);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.bytes.clear();
        // `end <= B`: it fits.
        let _ = self.bytes.try_extend(&text.as_bytes()[..end]);
        end == text.len()
    }
}

impl<const B: usize> Deref for FixedText<B> {
    type Target = str;
    fn deref(&self) -> &str {
        // Only whole UTF-8 text is ever stored (`set` cuts at a char boundary).
        core::str::from_utf8(&self.bytes).unwrap_or_default()
    }
}

impl<const B: usize> fmt::Debug for FixedText<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<const B: usize> fmt::Display for FixedText<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl<const B: usize> PartialEq<str> for FixedText<B> {
    fn eq(&self, other: &str) -> bool {
        **self == *other
    }
}

impl<const B: usize> PartialEq<&str> for FixedText<B> {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn fixed_text_is_cut_at_a_char_boundary() {
        let mut text = FixedText::<4>::default();
        assert!(text.set("abcd"));
        assert_eq!(text, "abcd");
        // "é" is two bytes: bytes 3..5 do not fit, and a half char is never kept.
        assert!(!text.set("abcé"));
        assert_eq!(text, "abc");
        assert!(!text.set("ééé"));
        assert_eq!(text, "éé");
        assert!(text.set(""));
        assert_eq!(&*text, "");
    }
}
