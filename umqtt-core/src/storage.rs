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

mod stash;
pub(crate) use stash::EventStash;
pub(crate) use stash::Stashed;

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
pub trait Storage:
    sealed::Sealed + TextStorage + fmt::Debug + Clone + Copy + PartialEq + Eq + 'static
{
    /// A list the session pushes at the back of and removes anywhere from.
    type Vec<T>: List<T>;
    /// A list the session mostly takes from the front of (a queue).
    type Deque<T>: List<T>;
    /// A list of messages: the QoS 1/2 messages the session holds, and the robust engine's
    /// messages (those with the session, those waiting). A [`Fixed`] storage sizes it apart
    /// (`M`), so that a device that holds few messages does not pay for `N` entries.
    type Messages<T>: List<T>;
    /// A byte buffer.
    type Bytes: Buffer;
    /// Where the session keeps the encoded PUBLISH packets it holds until they are
    /// acknowledged: a buffer each on the heap (emptied ones are kept for reuse), one
    /// [`FixedArena`] of `Q` bytes on fixed storage (a packet takes the room it needs).
    type Packets: PacketStore<Self::Bytes>;
    /// A queue only the heap keeps: the robust engine's changes for a durable outbox, its
    /// outcomes kept apart from the events
    /// ([`EngineSettings::track_outcomes`](crate::robust::EngineSettings::track_outcomes)), and
    /// the session's large stored packets handed out from their own buffer
    /// ([`Storage::SEND_STORED_ABOVE`]). Fixed storage keeps none of them: the list holds
    /// nothing and takes no room.
    type HeapOnly<T>: List<T>;
    /// Where the robust engine keeps the bytes of the messages and subscriptions it holds.
    type Arena: Arena;
    /// How the robust engine keeps its events (an implementation detail: on fixed storage,
    /// their payloads in an arena of `Q` bytes).
    #[doc(hidden)]
    type EventStash: stash::EventStash<Self>;
    /// A topic filter as the robust engine hands it out (in its events).
    type Filter: Text;
    /// A received message as the robust engine hands it out.
    type Message: crate::message::Received;
    /// How the session's configuration holds its strings: [`Owned`] on the heap, [`Static`]
    /// on fixed storage (nothing to allocate).
    type Strings: Strings;
    /// Most items a list holds (`usize::MAX`: it grows).
    const ITEMS: usize;
    /// Most items a [`Storage::Messages`] list holds (`usize::MAX`: it grows).
    const MESSAGES: usize;
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
    /// Adds `item` at the front; gives it back when a fixed list is full.
    ///
    /// # Errors
    /// The item, when there is no room.
    fn push_front(&mut self, item: T) -> Result<(), T>;
    /// Removes and returns the first item.
    fn pop_front(&mut self) -> Option<T>;
    /// Swaps items `a` and `b` (both must exist).
    fn swap(&mut self, a: usize, b: usize);
    /// Removes and returns the last item.
    fn pop(&mut self) -> Option<T>;
    /// Removes and returns item `index`, keeping the order of the others.
    fn remove(&mut self, index: usize) -> Option<T>;
    /// Inserts `item` before item `index` (at the back when `index` is the length); gives it
    /// back when a fixed list is full or `index` is past the end.
    ///
    /// # Errors
    /// The item, when there is no room or no such place.
    fn insert(&mut self, index: usize, item: T) -> Result<(), T>;
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
    impl<const N: usize, const B: usize, const Q: usize, const M: usize> Sealed
        for super::Fixed<N, B, Q, M>
    {
    }
    #[cfg(feature = "alloc")]
    impl Sealed for super::Owned {}
    impl Sealed for super::Static {}
}

/// How a configuration ([`SessionConfig`](crate::session::SessionConfig),
/// [`Will`](crate::session::Will), [`ConnectOptions`](crate::session::ConnectOptions)) holds
/// its strings: [`Owned`] (`String`, `Vec<u8>`) on the heap, [`Static`] (`&'static str`,
/// `&'static [u8]`) on [`Fixed`] storage, so that a device needs no allocator at all. Sealed.
///
/// The same code fills either: `client_id: "sensor-1".into()`,
/// `password: Some(b"secret".as_slice().into())`.
pub trait Strings: sealed::Sealed + fmt::Debug + Clone + Copy + PartialEq + Eq + 'static {
    /// A UTF-8 string.
    type Str: AsRef<str> + From<&'static str> + Default + Clone + fmt::Debug + PartialEq + Eq;
    /// A byte string.
    type Bytes: AsRef<[u8]> + From<&'static [u8]> + Default + Clone + fmt::Debug + PartialEq + Eq;
    /// A list of string pairs (MQTT 5 user properties).
    type Pairs: AsRef<[(Self::Str, Self::Str)]> + Default + Clone + fmt::Debug + PartialEq + Eq;

    /// `text` as this family holds it: itself ([`Owned`]), or leaked ([`Static`]: for a
    /// configuration built at run time on a host, once per client).
    #[cfg(feature = "alloc")]
    fn str_from(text: alloc::string::String) -> Self::Str;
    /// `bytes` as this family holds them (see [`Strings::str_from`]).
    #[cfg(feature = "alloc")]
    fn bytes_from(bytes: Vec<u8>) -> Self::Bytes;
    /// `pairs` as this family holds them (see [`Strings::str_from`]).
    #[cfg(feature = "alloc")]
    fn pairs_from(pairs: Vec<(alloc::string::String, alloc::string::String)>) -> Self::Pairs;
}

/// Owned strings: `String`, `Vec<u8>`, `Vec<(String, String)>`. The heap's
/// [`Storage::Strings`].
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {}

#[cfg(feature = "alloc")]
impl Strings for Owned {
    type Str = alloc::string::String;
    type Bytes = Vec<u8>;
    type Pairs = Vec<(alloc::string::String, alloc::string::String)>;

    fn str_from(text: alloc::string::String) -> Self::Str {
        text
    }
    fn bytes_from(bytes: Vec<u8>) -> Self::Bytes {
        bytes
    }
    fn pairs_from(pairs: Vec<(alloc::string::String, alloc::string::String)>) -> Self::Pairs {
        pairs
    }
}

/// Borrowed strings that live as long as the program: `&'static str`, `&'static [u8]`,
/// `&'static [(&'static str, &'static str)]`. [`Fixed`] storage's [`Storage::Strings`]: a
/// device's configuration is usually constants; one built at run time (a client id from the
/// MAC address) goes in a `static` buffer first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Static {}

impl Strings for Static {
    type Str = &'static str;
    type Bytes = &'static [u8];
    type Pairs = &'static [(&'static str, &'static str)];

    #[cfg(feature = "alloc")]
    fn str_from(text: alloc::string::String) -> Self::Str {
        alloc::boxed::Box::leak(text.into_boxed_str())
    }
    #[cfg(feature = "alloc")]
    fn bytes_from(bytes: Vec<u8>) -> Self::Bytes {
        alloc::boxed::Box::leak(bytes.into_boxed_slice())
    }
    #[cfg(feature = "alloc")]
    fn pairs_from(pairs: Vec<(alloc::string::String, alloc::string::String)>) -> Self::Pairs {
        let pairs: Vec<_> = pairs
            .into_iter()
            .map(|(k, v)| (Self::str_from(k), Self::str_from(v)))
            .collect();
        alloc::boxed::Box::leak(pairs.into_boxed_slice())
    }
}

/// The storage a session, an engine or an event names when none is given: [`Heap`] with the
/// `alloc` feature.
#[cfg(feature = "alloc")]
pub type DefaultStorage = Heap;
/// The storage a session, an engine or an event names when none is given: without the
/// `alloc` feature there is no [`Heap`], and a device names its own [`Fixed`] sizes (this
/// default only keeps the types' declarations the same).
#[cfg(not(feature = "alloc"))]
pub type DefaultStorage = Fixed<8, 256>;

/// The [`Text`] a type holding the broker's strings names when none is given (see
/// [`BrokerLimits`](crate::session::BrokerLimits)): `String` with the `alloc` feature.
#[cfg(feature = "alloc")]
pub type DefaultText = alloc::string::String;
/// The [`Text`] a type holding the broker's strings names when none is given: without the
/// `alloc` feature a [`FixedText`] of 255 bytes (sessions name their storage's
/// [`TextStorage::Text`]).
#[cfg(not(feature = "alloc"))]
pub type DefaultText = FixedText<255>;

/// The [`Strings`] a configuration type names when none is given: [`Owned`] with the `alloc`
/// feature, [`Static`] without.
#[cfg(feature = "alloc")]
pub type DefaultStrings = Owned;
/// The [`Strings`] a configuration type names when none is given: [`Owned`] with the `alloc`
/// feature, [`Static`] without.
#[cfg(not(feature = "alloc"))]
pub type DefaultStrings = Static;

#[cfg(feature = "alloc")]
impl Storage for Heap {
    type Vec<T> = Vec<T>;
    type Deque<T> = VecDeque<T>;
    type Messages<T> = VecDeque<T>;
    type Bytes = Vec<u8>;
    type Packets = HeapPackets;
    type EventStash = stash::HeapEvents;
    type HeapOnly<T> = VecDeque<T>;
    type Arena = HeapArena;
    type Filter = alloc::string::String;
    type Message = crate::message::Message;
    type Strings = Owned;
    const ITEMS: usize = usize::MAX;
    const MESSAGES: usize = usize::MAX;
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
    fn push_front(&mut self, item: T) -> Result<(), T> {
        Vec::insert(self, 0, item);
        Ok(())
    }
    #[inline]
    fn pop_front(&mut self) -> Option<T> {
        List::remove(self, 0)
    }
    #[inline]
    fn swap(&mut self, a: usize, b: usize) {
        self.as_mut_slice().swap(a, b);
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
    fn insert(&mut self, index: usize, item: T) -> Result<(), T> {
        if index > Vec::len(self) {
            return Err(item);
        }
        Vec::insert(self, index, item);
        Ok(())
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
    fn push_front(&mut self, item: T) -> Result<(), T> {
        VecDeque::push_front(self, item);
        Ok(())
    }
    #[inline]
    fn pop_front(&mut self) -> Option<T> {
        VecDeque::pop_front(self)
    }
    #[inline]
    fn swap(&mut self, a: usize, b: usize) {
        VecDeque::swap(self, a, b);
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
    fn insert(&mut self, index: usize, item: T) -> Result<(), T> {
        if index > VecDeque::len(self) {
            return Err(item);
        }
        VecDeque::insert(self, index, item);
        Ok(())
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
/// items and every byte buffer (received bytes, bytes to send) at most `B` bytes.
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
/// message closes the connection (it is sent again on the next one).
///
/// `M` (by default `N`, at least 1) sizes the message lists: the session holds at most
/// `min(N - 2, M)` QoS 1/2 messages, and the robust engine at most `M` messages in all (with
/// the session and waiting). A device that publishes one message at a time needs `M = 1` and
/// saves a few dozen bytes per entry over `N`.
///
/// `Q` (by default `B`, and never less, and below 4 GiB: checked at compile time) sizes the
/// arenas ([`FixedArena`]`<N, Q>`), where entries take the bytes they need:
/// - the session's: the encoded PUBLISH of each QoS 1/2 message it holds, until
///   acknowledged. A message that does not fit now gets
///   [`UsageError::StorageFull`](crate::session::UsageError::StorageFull) (the robust engine
///   keeps it queued until acknowledgements make room); any one packet fits an empty arena.
/// - the robust engine's ([`Engine::with_storage`](crate::robust::Engine::with_storage)): the
///   topic, properties and payload of each message until the session has taken it, and each
///   subscription's filter. The engine lowers its limits to what `N` entries hold (see
///   there).
/// - the robust engine's events': what its waiting events hold (a received message's topic,
///   properties and payload, a topic filter, a server's host name), so that an event slot is
///   a few dozen bytes; the application gets a whole
///   [`FixedMessage`](crate::message::FixedMessage)`<B>` back. The engine decodes input only
///   while `B` bytes are free there (one packet's worth), so `Q` also bounds how many
///   received messages wait together.
///
/// The session holds about `2 × B + Q` bytes plus a few dozen per list entry (with the
/// `mqtt5` feature about `5 × B` more, for the topic alias tables and the broker's strings);
/// see [`Session::with_storage`](crate::session::Session::with_storage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed<const N: usize, const B: usize, const Q: usize = B, const M: usize = N> {}

impl<const N: usize, const B: usize, const Q: usize, const M: usize> Storage for Fixed<N, B, Q, M> {
    type Vec<T> = FixedList<T, N>;
    type Deque<T> = FixedList<T, N>;
    type Messages<T> = FixedList<T, M>;
    type Bytes = FixedBytes<B>;
    type Packets = FixedArena<N, Q>;
    type EventStash = FixedArena<N, Q>;
    type HeapOnly<T> = FixedList<T, 0>;
    type Arena = FixedArena<N, Q>;
    type Filter = FixedText<B>;
    type Message = crate::message::FixedMessage<B>;
    type Strings = Static;
    const ITEMS: usize = N;
    const MESSAGES: usize = {
        assert!(M >= 1, "Fixed<N, B, Q, M>: M must be at least 1");
        M
    };
    const BYTES: usize = {
        // Every message the session can send fits the engine's arena (checked at compile
        // time, where `Fixed` is used).
        assert!(Q >= B, "Fixed<N, B, Q>: Q must be at least B");
        B
    };
    // Every stored PUBLISH is copied into the transmit buffer, so that one pass of
    // `poll_transmit` hands out one slice of at most `B` bytes: a driver can write from a
    // buffer of `B` bytes of its own.
    const SEND_STORED_ABOVE: usize = usize::MAX;
}

/// `bytes.copy_within(src..end, dst)` for `dst <= src <= end`, as copies that do not overlap
/// (each at most `src - dst` bytes): `copy_within` is a `memmove`, and on a device the only
/// ones were these, which linked 1.5 KB of `memmove` beside the `memcpy` that is there anyway.
pub(crate) fn copy_down(bytes: &mut [u8], src: usize, end: usize, dst: usize) {
    let gap = src.saturating_sub(dst);
    if gap == 0 {
        return;
    }
    let (mut from, mut to) = (src, dst);
    while from < end {
        let n = gap.min(end - from);
        let (head, tail) = bytes.split_at_mut(from);
        head[to..to + n].copy_from_slice(&tail[..n]);
        from += n;
        to += n;
    }
}

/// `items.swap(a, b)` through two disjoint borrows: `slice::swap` allows `a == b`, so it
/// copies with a `memmove`, which a device then links (see [`copy_down`]).
fn swap_slots<T>(items: &mut [T], a: usize, b: usize) {
    let (low, high) = (a.min(b), a.max(b));
    if low == high {
        return;
    }
    let (head, tail) = items.split_at_mut(high);
    core::mem::swap(&mut head[low], &mut tail[0]);
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
    fn push_front(&mut self, item: T) -> Result<(), T> {
        List::insert(self, 0, item)
    }
    fn pop_front(&mut self) -> Option<T> {
        List::remove(self, 0)
    }
    fn swap(&mut self, a: usize, b: usize) {
        let len = self.len;
        swap_slots(&mut self.items[..len], a, b);
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
        // Each later item one place down (swaps, not a rotation: less code on a device).
        for at in index + 1..self.len {
            swap_slots(&mut self.items, at - 1, at);
        }
        self.len -= 1;
        item
    }
    fn swap_remove(&mut self, index: usize) -> Option<T> {
        if index >= self.len {
            return None;
        }
        swap_slots(&mut self.items, index, self.len - 1);
        List::pop(self)
    }
    fn insert(&mut self, index: usize, item: T) -> Result<(), T> {
        if self.len >= N || index > self.len {
            return Err(item);
        }
        // Each item from `index` on one place up, into the empty slot at `len`.
        for at in (index..self.len).rev() {
            swap_slots(&mut self.items, at, at + 1);
        }
        self.items[index] = Some(item);
        self.len += 1;
        Ok(())
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
                swap_slots(&mut self.items, kept, index);
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
        copy_down(&mut self.bytes, n, self.len, 0);
        self.len -= n;
    }
    fn reserve_exact(&mut self, _additional: usize) {}
    fn shrink_to(&mut self, _capacity: usize) {}
}

/// Where the robust engine keeps the bytes of the messages it holds (each message's topic,
/// properties and payload, back to back as one entry) until the session has taken them.
pub trait Arena: Default {
    /// One entry: the buffer itself on the heap, a slot number in a [`FixedArena`]. Given back
    /// once, to [`Arena::remove`].
    type Slot;
    /// Stores `parts`, one after another, as one entry.
    ///
    /// # Errors
    /// [`Full`] when a fixed arena has no room for them (see [`Arena::fits`]).
    fn insert(&mut self, parts: &[&[u8]]) -> Result<Self::Slot, Full>;
    /// The bytes of an entry.
    fn get<'a>(&'a self, slot: &'a Self::Slot) -> &'a [u8];
    /// Frees an entry.
    fn remove(&mut self, slot: Self::Slot);
    /// Whether an entry of `len` bytes fits now.
    fn fits(&self, len: usize) -> bool;
    /// Whether an entry of `len` bytes fits once `slot` is removed.
    fn fits_replacing(&self, len: usize, slot: &Self::Slot) -> bool;
    /// Most bytes one entry can ever hold (`usize::MAX`: it grows).
    fn max_len(&self) -> usize;
}

/// Where a session keeps the encoded PUBLISH packets it holds ([`Storage::Packets`]): each
/// packet is encoded into a buffer `B` from [`PacketStore::buffer`], then kept with
/// [`PacketStore::store`] until the session removes it.
pub trait PacketStore<B: Buffer>: Default {
    /// One stored packet: the buffer itself on the heap, a slot number in a [`FixedArena`].
    /// Given back once, to [`PacketStore::remove`].
    type Slot;
    /// An empty buffer to encode a packet into (on the heap, a spare one with its capacity).
    fn buffer(&mut self) -> B;
    /// Keeps `packet`, a buffer from [`PacketStore::buffer`].
    ///
    /// # Errors
    /// The buffer back when a fixed store has no room for it now (room comes back as
    /// packets are removed; an empty store holds any packet of its buffer's size).
    fn store(&mut self, packet: B) -> Result<Self::Slot, B>;
    /// Gives back a buffer from [`PacketStore::buffer`] that was not stored.
    fn discard(&mut self, buffer: B);
    /// A stored packet's bytes.
    fn get<'a>(&'a self, slot: &'a Self::Slot) -> &'a [u8];
    /// A stored packet's bytes, to change in place (its length stays).
    fn get_mut<'a>(&'a mut self, slot: &'a mut Self::Slot) -> &'a mut [u8];
    /// Frees a stored packet.
    fn remove(&mut self, slot: Self::Slot);
}

/// Most bytes of capacity [`HeapPackets`] keeps in spare buffers.
#[cfg(feature = "alloc")]
pub(crate) const SPARE_PACKETS_CAPACITY: usize = 1024 * 1024;

/// The [`Heap`] packet store: each packet is a `Vec<u8>` of its own; emptied ones are kept
/// for the next packets (up to 1 MiB of capacity in total, so a burst of large or many
/// messages does not pin its peak memory), so steady-state publishing allocates nothing.
#[cfg(feature = "alloc")]
#[derive(Debug, Default)]
pub struct HeapPackets {
    spare: Vec<Vec<u8>>,
    /// Capacity held in `spare`.
    spare_capacity: usize,
}

#[cfg(all(test, feature = "alloc"))]
impl HeapPackets {
    /// How many spare buffers it keeps, their capacity summed, and the capacity it counted.
    pub(crate) fn spare(&self) -> (usize, usize, usize) {
        let summed = self.spare.iter().map(Vec::capacity).sum();
        (self.spare.len(), summed, self.spare_capacity)
    }
}

#[cfg(feature = "alloc")]
impl PacketStore<Vec<u8>> for HeapPackets {
    type Slot = Vec<u8>;
    #[inline]
    fn buffer(&mut self) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut buffer) => {
                self.spare_capacity -= buffer.capacity();
                buffer.clear();
                buffer
            }
            None => Vec::new(),
        }
    }
    #[inline]
    fn store(&mut self, packet: Vec<u8>) -> Result<Vec<u8>, Vec<u8>> {
        Ok(packet)
    }
    #[inline]
    fn discard(&mut self, buffer: Vec<u8>) {
        self.remove(buffer);
    }
    #[inline]
    fn get<'a>(&'a self, slot: &'a Vec<u8>) -> &'a [u8] {
        slot
    }
    #[inline]
    fn get_mut<'a>(&'a mut self, slot: &'a mut Vec<u8>) -> &'a mut [u8] {
        slot
    }
    #[inline]
    fn remove(&mut self, slot: Vec<u8>) {
        let capacity = slot.capacity();
        if capacity > 0 && self.spare_capacity + capacity <= SPARE_PACKETS_CAPACITY {
            self.spare_capacity += capacity;
            self.spare.push(slot);
        }
    }
}

/// Largest buffer [`HeapArena`] keeps for reuse, in bytes of capacity.
#[cfg(feature = "alloc")]
const SPARE_MAX_BYTES: usize = 4096;
/// Most bytes of capacity [`HeapArena`] keeps in spare buffers: enough for a burst of a few
/// thousand small messages, little beside the engine's queue bound.
#[cfg(feature = "alloc")]
const SPARE_TOTAL_BYTES: usize = 256 * 1024;

/// The [`Heap`] arena: each entry is a `Vec<u8>` of its own; emptied ones are kept for reuse
/// (up to 256 KiB of capacity, none above 4 KiB), so steady-state publishing allocates
/// nothing.
#[cfg(feature = "alloc")]
#[derive(Debug, Default)]
pub struct HeapArena {
    spare: Vec<Vec<u8>>,
    /// Capacity held in `spare`.
    spare_bytes: usize,
}

#[cfg(feature = "alloc")]
impl Arena for HeapArena {
    type Slot = Vec<u8>;
    fn insert(&mut self, parts: &[&[u8]]) -> Result<Vec<u8>, Full> {
        let mut entry = match self.spare.pop() {
            Some(spare) => {
                self.spare_bytes -= spare.capacity();
                spare
            }
            None => Vec::new(),
        };
        entry.reserve(parts.iter().map(|part| part.len()).sum());
        for part in parts {
            entry.extend_from_slice(part);
        }
        Ok(entry)
    }
    #[inline]
    fn get<'a>(&'a self, slot: &'a Vec<u8>) -> &'a [u8] {
        slot
    }
    fn remove(&mut self, mut slot: Vec<u8>) {
        let size = slot.capacity();
        if size > 0 && size <= SPARE_MAX_BYTES && self.spare_bytes + size <= SPARE_TOTAL_BYTES {
            slot.clear();
            self.spare_bytes += size;
            self.spare.push(slot);
        }
    }
    #[inline]
    fn fits(&self, _len: usize) -> bool {
        true
    }
    #[inline]
    fn fits_replacing(&self, _len: usize, _slot: &Vec<u8>) -> bool {
        true
    }
    fn max_len(&self) -> usize {
        usize::MAX
    }
}

/// A [`Fixed`] storage's arena: `Q` bytes holding up to `N` entries back to back. Removing an
/// entry moves the ones after it down, so the free bytes are always in one piece (entries are
/// small and few on a device; no entry is ever refused for fragmentation).
pub struct FixedArena<const N: usize, const Q: usize> {
    bytes: [u8; Q],
    /// Bytes in use, from the start.
    used: usize,
    /// Start and length of each entry; a start of [`FREE`]: a free slot. (`u32`s with a
    /// marker instead of `Option<(usize, usize)>`: 8 bytes a slot instead of 12 on a 32-bit
    /// device.)
    slots: [(u32, u32); N],
}

/// The start of a free [`FixedArena`] slot.
const FREE: u32 = u32::MAX;

/// An entry of a [`FixedArena`] (its slot number).
#[derive(Debug, PartialEq, Eq)]
pub struct FixedSlot(u16);

impl<const N: usize, const Q: usize> fmt::Debug for FixedArena<N, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FixedArena({} of {Q} bytes)", self.used)
    }
}

impl<const N: usize, const Q: usize> Default for FixedArena<N, Q> {
    fn default() -> Self {
        const { assert!(Q < FREE as usize, "FixedArena<N, Q>: Q must be below 4 GiB") };
        FixedArena {
            bytes: [0; Q],
            used: 0,
            slots: [(FREE, 0); N],
        }
    }
}

impl<const N: usize, const Q: usize> FixedArena<N, Q> {
    /// Start and length of entry `slot`, if it holds one.
    fn entry(&self, slot: &FixedSlot) -> Option<(usize, usize)> {
        let &(start, len) = self.slots.get(usize::from(slot.0))?;
        // (Both below `Q`, which is below `FREE`: see `default`.)
        (start != FREE).then_some((start as usize, len as usize))
    }

    /// The bytes of an entry, to change in place.
    fn get_mut(&mut self, slot: &FixedSlot) -> &mut [u8] {
        match self.entry(slot) {
            Some((start, len)) => &mut self.bytes[start..start + len],
            None => &mut [],
        }
    }

    fn has_free_slot(&self) -> bool {
        self.slots.iter().any(|&(start, _)| start == FREE)
    }
}

impl<const N: usize, const Q: usize> Arena for FixedArena<N, Q> {
    type Slot = FixedSlot;
    fn insert(&mut self, parts: &[&[u8]]) -> Result<FixedSlot, Full> {
        let len = parts
            .iter()
            .try_fold(0usize, |sum, part| sum.checked_add(part.len()))
            .ok_or(Full)?;
        if !self.fits(len) {
            return Err(Full);
        }
        let index = self
            .slots
            .iter()
            .position(|&(start, _)| start == FREE)
            .ok_or(Full)?;
        let slot = FixedSlot(u16::try_from(index).map_err(|_| Full)?);
        let start = self.used;
        for part in parts {
            self.bytes[self.used..self.used + part.len()].copy_from_slice(part);
            self.used += part.len();
        }
        // (Both at most `Q`, below `FREE`: see `default`.)
        self.slots[index] = (start as u32, len as u32);
        Ok(slot)
    }
    fn get<'a>(&'a self, slot: &'a FixedSlot) -> &'a [u8] {
        match self.entry(slot) {
            Some((start, len)) => &self.bytes[start..start + len],
            None => &[],
        }
    }
    fn remove(&mut self, slot: FixedSlot) {
        let Some((start, len)) = self.entry(&slot) else {
            return;
        };
        self.slots[usize::from(slot.0)].0 = FREE;
        copy_down(&mut self.bytes, start + len, self.used, start);
        self.used -= len;
        for (other, _) in &mut self.slots {
            if *other != FREE && *other as usize > start {
                *other -= len as u32;
            }
        }
    }
    fn fits(&self, len: usize) -> bool {
        len <= Q - self.used && self.has_free_slot()
    }
    fn fits_replacing(&self, len: usize, slot: &FixedSlot) -> bool {
        match self.entry(slot) {
            Some((_, old)) => len <= Q - self.used + old,
            None => self.fits(len),
        }
    }
    fn max_len(&self) -> usize {
        Q
    }
}

/// Fixed storage keeps the session's stored packets back to back in one arena: a packet is
/// encoded into a `B`-byte buffer on the stack, then copied in.
impl<const N: usize, const Q: usize, const B: usize> PacketStore<FixedBytes<B>>
    for FixedArena<N, Q>
{
    type Slot = FixedSlot;
    #[inline]
    fn buffer(&mut self) -> FixedBytes<B> {
        FixedBytes::default()
    }
    fn store(&mut self, packet: FixedBytes<B>) -> Result<FixedSlot, FixedBytes<B>> {
        self.insert(&[&packet[..]]).map_err(|_| packet)
    }
    #[inline]
    fn discard(&mut self, _buffer: FixedBytes<B>) {}
    fn get<'a>(&'a self, slot: &'a FixedSlot) -> &'a [u8] {
        Arena::get(self, slot)
    }
    fn get_mut<'a>(&'a mut self, slot: &'a mut FixedSlot) -> &'a mut [u8] {
        FixedArena::get_mut(self, slot)
    }
    fn remove(&mut self, slot: FixedSlot) {
        Arena::remove(self, slot);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::collections::VecDeque as Model;
    use std::vec::Vec as StdVec;

    use proptest::prelude::*;

    use super::*;

    /// `copy_down` moves bytes as `copy_within` does, for every range and gap of a small
    /// buffer (gaps smaller than the run included: the copies then go in several steps).
    #[test]
    fn copy_down_is_copy_within_downwards() {
        let original: StdVec<u8> = (0..24).collect();
        for dst in 0..original.len() {
            for src in dst..original.len() {
                for end in src..=original.len() {
                    let mut expected = original.clone();
                    expected.copy_within(src..end, dst);
                    let mut bytes = original.clone();
                    super::copy_down(&mut bytes, src, end, dst);
                    assert_eq!(bytes, expected, "{src}..{end} to {dst}");
                }
            }
        }
    }

    /// Applies `ops` to a list and to a model with the same capacity; they must agree.
    fn check_list<L: List<u16>>(mut list: L, capacity: usize, ops: &[(u8, u16)]) {
        let mut model: Model<u16> = Model::new();
        for &(op, v) in ops {
            let index = usize::from(v) % (model.len() + 1);
            match op % 11 {
                10 => {
                    let fits = model.len() < capacity;
                    assert_eq!(list.insert(index, v).is_ok(), fits);
                    if fits {
                        model.insert(index, v);
                    }
                }
                8 => {
                    let fits = model.len() < capacity;
                    assert_eq!(list.push_front(v).is_ok(), fits);
                    if fits {
                        model.push_front(v);
                    }
                }
                9 => {
                    if !model.is_empty() {
                        let other = usize::from(v / 7) % model.len();
                        let index = index.min(model.len() - 1);
                        list.swap(index, other);
                        model.swap(index, other);
                    }
                }
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
        fn lists_behave_like_a_deque(ops in proptest::collection::vec((0u8..11, 0u16..100), 0..300)) {
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

    /// Applies `ops` to an arena and to a model (entries as separate vectors): inserting
    /// (from up to three parts), reading every entry, removing one.
    fn check_arena<A: Arena>(
        mut arena: A,
        capacity: usize,
        slots: usize,
        ops: &[(bool, StdVec<u8>)],
    ) {
        let mut entries: StdVec<(A::Slot, StdVec<u8>)> = StdVec::new();
        for (insert, data) in ops {
            if *insert {
                let (a, rest) = data.split_at(data.len() / 3);
                let (b, c) = rest.split_at(rest.len() / 2);
                let used: usize = entries.iter().map(|(_, bytes)| bytes.len()).sum();
                let fits = used + data.len() <= capacity && entries.len() < slots;
                assert_eq!(arena.fits(data.len()), fits);
                match arena.insert(&[a, b, c]) {
                    Ok(slot) => {
                        assert!(fits);
                        entries.push((slot, data.clone()));
                    }
                    Err(Full) => assert!(!fits),
                }
            } else if !entries.is_empty() {
                let index = data.len() % entries.len();
                let used: usize = entries.iter().map(|(_, bytes)| bytes.len()).sum();
                let freed = used - entries[index].1.len();
                assert_eq!(
                    arena.fits_replacing(data.len(), &entries[index].0),
                    freed + data.len() <= capacity
                );
                let (slot, _) = entries.remove(index);
                arena.remove(slot);
            }
            for (slot, bytes) in &entries {
                assert_eq!(arena.get(slot), &bytes[..]);
            }
        }
    }

    proptest! {
        #[test]
        fn arenas_keep_every_entry_intact(
            ops in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..20)), 0..200)
        ) {
            check_arena(FixedArena::<4, 48>::default(), 48, 4, &ops);
            check_arena(FixedArena::<8, 16>::default(), 16, 8, &ops);
            check_arena(HeapArena::default(), usize::MAX, usize::MAX, &ops);
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
/// on the heap, a [`FixedText`] of at most `B` bytes on [`Fixed`] storage (none without MQTT
/// 5). A supertrait of [`Storage`], implemented by the same two storages. (The robust
/// engine's topic filters are [`Storage::Filter`].)
pub trait TextStorage {
    /// The text type.
    type Text: Text;
}

/// Owned UTF-8 text: a `String`, or a [`FixedText`].
pub trait Text: Default + Clone + fmt::Debug + PartialEq + Eq + Deref<Target = str> {
    /// Replaces the text with `text`, cut at a char boundary to what fits (a `String` takes
    /// all of it). Returns whether all of it was kept.
    fn set(&mut self, text: &str) -> bool;

    /// An owned copy of all of `text`.
    ///
    /// # Errors
    /// [`Full`] when it is longer than a fixed text holds.
    fn try_from_str(text: &str) -> Result<Self, Full> {
        let mut owned = Self::default();
        if owned.set(text) {
            Ok(owned)
        } else {
            Err(Full)
        }
    }
}

#[cfg(feature = "alloc")]
impl TextStorage for Heap {
    type Text = alloc::string::String;
}

impl<const N: usize, const B: usize, const Q: usize, const M: usize> TextStorage
    for Fixed<N, B, Q, M>
{
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
