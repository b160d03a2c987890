//! Durable storage of the totally ordered log.
//!
//! The log is the only thing bcl stores durably: every projection, index and status is a pure fold of it
//! and is rebuilt on start. That keeps the storage contract tiny (append a batch durably, read a range), so a
//! backend is one small file: sled today, another key-value store or plain segment files tomorrow.

mod memory;
mod sled_store;

pub use memory::MemoryStore;
pub use sled_store::SledStore;

/// Errors from a storage backend. They never carry leaf contents (which hold personal data).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage backend I/O error: {0}")]
    Backend(String),
    #[error("the log is corrupt at position {position}: {what}")]
    Corrupt { position: u64, what: &'static str },
}

/// An append-only, durable sequence of opaque leaves, indexed from 0.
pub trait LogStore: Send + Sync + 'static {
    /// Number of leaves durably stored (the next position).
    fn len(&self) -> u64;

    /// `true` when no leaf was ever appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `leaves` at positions `len()..len()+leaves.len()` atomically and makes them durable before
    /// returning (one flush for the whole batch: this is where group commit pays off). Returns the first
    /// position. Only the single writer calls this.
    fn append_durable(&self, leaves: &[Vec<u8>]) -> Result<u64, StorageError>;

    /// Reads up to `limit` leaves starting at `from`, in order.
    fn read(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StorageError>;
}
