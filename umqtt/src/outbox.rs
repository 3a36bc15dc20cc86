//! Where guaranteed messages wait for their acknowledgement so that they survive the process
//! dying (`kill -9`, power cut, watchdog reset), not only a broken link.
//!
//! The robust client keeps its outbox in memory; give it an [`OutboxStore`] (for example
//! [`DurableOutbox`], backed by the redb embedded database: pure Rust, ACID, crash-safe) and
//! every [`Delivery::Guaranteed`](crate::robust::Delivery::Guaranteed) message is written
//! durably before `publish` returns. On restart with the same client id the stored messages
//! are loaded and sent again — with their packet ids and DUP if the broker kept the session.
//!
//! Costs: an insert is one durable commit (one fsync); `publish_batch` puts many messages in
//! one commit (group commit). Packet-id assignments and removals after acknowledgement are
//! written lazily, in non-durable commits folded into the next durable one: losing them in a
//! crash only means a message is sent again (a duplicate), never that one is lost.
//!
//! Across a *client* crash QoS 2 degrades to at-least-once for the messages that were in the
//! middle of their handshake: the PUBREC/PUBCOMP steps are not made durable one by one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use umqtt_core::packet::{PacketId, QoS};
use umqtt_core::robust::{Engine, MessageId, ReconnectPolicy, StoreOp};
use umqtt_core::session::UsageError;

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The robust client's message id (monotonic; survives restarts).
    pub id: u64,
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// The packet id it was given when handed to the session (it may then have been sent).
    pub packet_id: Option<PacketId>,
}

/// Why the outbox store failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or created (missing directory, permissions,
    /// not a redb file, corrupted beyond repair).
    Open {
        /// The file.
        path: PathBuf,
        /// redb's error.
        source: redb::DatabaseError,
    },
    /// A read or write transaction failed.
    Database(redb::Error),
    /// The database file is damaged in a way redb could not report as an error.
    Damaged,
    /// A stored record does not decode: the file was damaged or written by something else.
    CorruptRecord {
        /// Key of the record.
        id: u64,
        /// What was wrong.
        what: &'static str,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Open { path, source } => {
                write!(f, "cannot open outbox {}: {source}", path.display())
            }
            StoreError::Database(e) => write!(f, "outbox database error: {e}"),
            StoreError::Damaged => f.write_str("outbox file is damaged"),
            StoreError::CorruptRecord { id, what } => {
                write!(f, "outbox record {id} is corrupt: {what}")
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Open { source, .. } => Some(source),
            StoreError::Database(e) => Some(e),
            StoreError::CorruptRecord { .. } | StoreError::Damaged => None,
        }
    }
}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        StoreError::Database(e.into())
    }
}

/// Persistence behind the robust client's outbox.
pub trait OutboxStore: Send {
    /// Every stored message, in id order.
    fn load(&mut self) -> Result<Vec<StoredMessage>, StoreError>;

    /// Stores `messages` durably (they survive a crash once this returns), together with any
    /// lazy updates not yet written.
    fn insert(&mut self, messages: &[StoredMessage]) -> Result<(), StoreError>;

    /// Records that message `id` was handed to the session as `packet_id` (written lazily).
    fn set_packet_id(&mut self, id: u64, packet_id: PacketId);

    /// Forgets message `id`: delivered, expired or dropped (written lazily).
    fn remove(&mut self, id: u64);

    /// Writes the lazy updates; `durable` makes them survive a crash (one fsync).
    fn commit(&mut self, durable: bool) -> Result<(), StoreError>;

    /// Lazy updates not yet written.
    fn lazy_updates(&self) -> usize;
}

// ----- what every driver does between its engine and its store -----------------------------

/// Puts messages a previous process left in the store back into `engine`, before its first
/// connection (those with a packet id go to the session first, with that id).
///
/// # Errors
/// The first message the engine refuses (an invalid topic: a store written by something
/// else); the messages before it are restored.
pub fn restore<P: ReconnectPolicy, E: Clone>(
    engine: &mut Engine<P, E>,
    messages: &[StoredMessage],
) -> Result<(), UsageError> {
    for message in messages {
        engine.restore(
            MessageId(message.id),
            &message.topic,
            &message.payload,
            message.qos,
            message.retain,
            message.packet_id,
        )?;
    }
    Ok(())
}

/// Records the engine's hand-overs (packet ids) and settlements in `store`, lazily; returns
/// whether there are lazy updates to [`commit`]. Cheap: call it at every driver pass.
pub fn record_store_ops<P: ReconnectPolicy, E: Clone>(
    engine: &mut Engine<P, E>,
    store: &mut dyn OutboxStore,
) -> bool {
    while let Some(op) = engine.poll_store() {
        match op {
            StoreOp::Assigned { id, packet_id } => store.set_packet_id(id.0, packet_id),
            StoreOp::Settled { id } => store.remove(id.0),
        }
    }
    store.lazy_updates() > 0
}

/// How often lazy updates are made durable (one fsync), at most.
pub const DURABLE_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Writes the lazy updates: durably if `force_durable` or if the last durable write
/// (`last_durable_commit`, updated here) is [`DURABLE_COMMIT_INTERVAL`] old at `now` (the
/// driver's engine time), else cheaply.
///
/// # Errors
/// The store's.
pub fn commit(
    store: &mut dyn OutboxStore,
    now: umqtt_core::Instant,
    last_durable_commit: &mut umqtt_core::Instant,
    force_durable: bool,
) -> Result<(), StoreError> {
    let durable = force_durable
        || now.saturating_duration_since(*last_durable_commit) >= DURABLE_COMMIT_INTERVAL;
    store.commit(durable)?;
    if durable {
        *last_durable_commit = now;
    }
    Ok(())
}

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox_v1");

enum LazyUpdate {
    PacketId(u64, PacketId),
    Remove(u64),
}

/// An [`OutboxStore`] in a redb database file.
pub struct DurableOutbox {
    database: Database,
    lazy: Vec<LazyUpdate>,
}

impl fmt::Debug for DurableOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableOutbox")
            .field("lazy_updates", &self.lazy.len())
            .finish()
    }
}

impl DurableOutbox {
    /// Opens the outbox at `path`, creating it if needed. A file that is damaged or not an
    /// outbox gives [`StoreError`] — never a panic.
    pub fn open(path: impl AsRef<Path>) -> Result<DurableOutbox, StoreError> {
        let path = path.as_ref();
        guard_corruption(|| {
            let database = Database::create(path).map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
            let txn = database.begin_write()?;
            txn.open_table(MESSAGES)?;
            txn.commit()?;
            Ok(DurableOutbox {
                database,
                lazy: Vec::new(),
            })
        })
    }

    fn apply_lazy(&mut self, table: &mut redb::Table<'_, u64, &[u8]>) -> Result<(), StoreError> {
        for update in self.lazy.drain(..) {
            match update {
                LazyUpdate::Remove(id) => {
                    table.remove(id)?;
                }
                LazyUpdate::PacketId(id, packet_id) => {
                    let record = table.get(id)?.map(|v| v.value().to_vec());
                    if let Some(mut record) = record {
                        if record.len() >= HEADER {
                            record[3..5].copy_from_slice(&packet_id.get().to_be_bytes());
                            table.insert(id, record.as_slice())?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs a redb operation on a file that may be damaged. redb reports truncation as an error,
/// but some bit-level damage trips assertions inside it (measured with redb 4.6: a flipped
/// page panics with a slice index out of range); that becomes [`StoreError::Damaged`] here so
/// a bad file never takes the process down. The panic still passes through the process's
/// panic hook (which prints it by default) before it is caught.
fn guard_corruption<T>(f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(Err(StoreError::Damaged))
}

/// Record layout: version, qos, retain, packet id (u16, 0 = none), topic length (u16), topic,
/// payload.
const VERSION: u8 = 1;
const HEADER: usize = 7;

fn encode_record(message: &StoredMessage) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER + message.topic.len() + message.payload.len());
    record.push(VERSION);
    record.push(message.qos as u8);
    record.push(u8::from(message.retain));
    record.extend_from_slice(&message.packet_id.map_or(0, PacketId::get).to_be_bytes());
    // Topic names are at most 65 535 bytes (checked before anything is stored).
    record.extend_from_slice(&(message.topic.len() as u16).to_be_bytes());
    record.extend_from_slice(message.topic.as_bytes());
    record.extend_from_slice(&message.payload);
    record
}

fn decode_record(id: u64, record: &[u8]) -> Result<StoredMessage, StoreError> {
    let corrupt = |what| StoreError::CorruptRecord { id, what };
    if record.len() < HEADER {
        return Err(corrupt("shorter than its header"));
    }
    if record[0] != VERSION {
        return Err(corrupt("unknown record version"));
    }
    let qos = QoS::from_u8(record[1]).ok_or(corrupt("invalid QoS"))?;
    let retain = match record[2] {
        0 => false,
        1 => true,
        _ => return Err(corrupt("invalid retain flag")),
    };
    let packet_id = PacketId::new(u16::from_be_bytes([record[3], record[4]]));
    let topic_len = usize::from(u16::from_be_bytes([record[5], record[6]]));
    let topic = record
        .get(HEADER..HEADER + topic_len)
        .ok_or(corrupt("topic runs past the end"))?;
    let topic = std::str::from_utf8(topic).map_err(|_| corrupt("topic is not UTF-8"))?;
    umqtt_core::topic::validate_topic_name(topic).map_err(|_| corrupt("invalid topic name"))?;
    Ok(StoredMessage {
        id,
        topic: topic.to_string(),
        payload: record[HEADER + topic_len..].to_vec(),
        qos,
        retain,
        packet_id,
    })
}

impl OutboxStore for DurableOutbox {
    fn load(&mut self) -> Result<Vec<StoredMessage>, StoreError> {
        let database = &self.database;
        guard_corruption(|| {
            let txn = database.begin_read()?;
            let table = txn.open_table(MESSAGES)?;
            let mut messages = Vec::new();
            for entry in table.iter()? {
                let (key, value) = entry?;
                messages.push(decode_record(key.value(), value.value())?);
            }
            Ok(messages)
        })
    }

    fn insert(&mut self, messages: &[StoredMessage]) -> Result<(), StoreError> {
        let mut txn = self.database.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(MESSAGES)?;
            self.apply_lazy(&mut table)?;
            for message in messages {
                table.insert(message.id, encode_record(message).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn set_packet_id(&mut self, id: u64, packet_id: PacketId) {
        self.lazy.push(LazyUpdate::PacketId(id, packet_id));
    }

    fn remove(&mut self, id: u64) {
        self.lazy.push(LazyUpdate::Remove(id));
    }

    fn commit(&mut self, durable: bool) -> Result<(), StoreError> {
        if self.lazy.is_empty() && !durable {
            return Ok(());
        }
        let mut txn = self.database.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        {
            let mut table = txn.open_table(MESSAGES)?;
            self.apply_lazy(&mut table)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn lazy_updates(&self) -> usize {
        self.lazy.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, payload: &[u8]) -> StoredMessage {
        StoredMessage {
            id,
            topic: "a/b".into(),
            payload: payload.to_vec(),
            qos: QoS::AtLeastOnce,
            retain: id % 2 == 0,
            packet_id: None,
        }
    }

    #[test]
    fn insert_update_remove_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        {
            let mut store = DurableOutbox::open(&path).unwrap();
            store
                .insert(&[message(1, b"one"), message(2, b"two"), message(3, b"")])
                .unwrap();
            store.set_packet_id(2, PacketId::new(77).unwrap());
            store.remove(1);
            store.commit(true).unwrap();
        }
        let mut store = DurableOutbox::open(&path).unwrap();
        let loaded = store.load().unwrap();
        let mut two = message(2, b"two");
        two.packet_id = PacketId::new(77);
        assert_eq!(loaded, vec![two, message(3, b"")]);
    }

    #[test]
    fn garbage_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.redb");
        std::fs::write(&path, vec![0xAB; 10_000]).unwrap();
        assert!(matches!(
            DurableOutbox::open(&path),
            Err(StoreError::Open { .. })
        ));
        let missing = dir.path().join("no/such/dir/outbox.redb");
        assert!(matches!(
            DurableOutbox::open(&missing),
            Err(StoreError::Open { .. })
        ));
    }

    #[test]
    fn truncated_file_is_an_error_or_recovered_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        {
            let mut store = DurableOutbox::open(&path).unwrap();
            let messages: Vec<_> = (1..200).map(|i| message(i, &[7; 100])).collect();
            store.insert(&messages).unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        for cut in [full.len() / 2, full.len() / 3, 100, 1] {
            std::fs::write(&path, &full[..cut]).unwrap();
            match DurableOutbox::open(&path).and_then(|mut s| s.load()) {
                Ok(messages) => assert!(messages.len() <= 199),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn damaged_pages_are_an_error_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        {
            let mut store = DurableOutbox::open(&path).unwrap();
            let messages: Vec<_> = (1..200).map(|i| message(i, &[7; 100])).collect();
            store.insert(&messages).unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        for (start, step) in [(4096, 7), (0, 13), (512, 101), (8192, 3)] {
            let mut damaged = full.clone();
            damaged
                .iter_mut()
                .skip(start)
                .step_by(step)
                .for_each(|b| *b ^= 0x5A);
            std::fs::write(&path, &damaged).unwrap();
            match DurableOutbox::open(&path).and_then(|mut s| s.load()) {
                Ok(messages) => assert!(messages.len() <= 199),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn corrupt_records_are_reported() {
        assert!(matches!(
            decode_record(5, &[1, 1]),
            Err(StoreError::CorruptRecord { id: 5, .. })
        ));
        assert!(matches!(
            decode_record(5, &[9, 1, 0, 0, 0, 0, 0]),
            Err(StoreError::CorruptRecord { .. })
        ));
        assert!(matches!(
            decode_record(5, &[1, 3, 0, 0, 0, 0, 0]),
            Err(StoreError::CorruptRecord { .. })
        ));
        assert!(matches!(
            decode_record(5, &[1, 1, 0, 0, 0, 0, 9, b'a']),
            Err(StoreError::CorruptRecord { .. })
        ));
        assert!(matches!(
            decode_record(5, &[1, 1, 0, 0, 0, 0, 1, b'#']),
            Err(StoreError::CorruptRecord { .. })
        ));
        let ok = decode_record(5, &encode_record(&message(5, b"p"))).unwrap();
        assert_eq!(ok, message(5, b"p"));
    }
}
