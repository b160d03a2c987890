//! Durable storage of the totally ordered log.
//!
//! The log is the only thing bcl stores durably: every projection, index and status is a pure fold of it
//! and is rebuilt on start. That keeps the storage contract tiny (append a batch durably, read a range), so a
//! backend is one small file: sled today, another key-value store or plain segment files tomorrow.
//!
//! Next to the leaves a backend keeps the hashes of the Merkle tree's completed perfect subtrees
//! (`audit::merkle::NodeId`), written in the same atomic batch: proofs then cost `O(log n)` reads and a
//! restart restores the tree from `O(log n)` nodes instead of rehashing the whole log.

mod memory;
mod sled_store;

pub use memory::MemoryStore;
pub use sled_store::SledStore;

use crate::audit::merkle::{Hash, NodeId};

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

    /// Appends `leaves` at positions `len()..len()+leaves.len()`, together with the tree `nodes` they
    /// complete, atomically, and makes them durable before returning (one flush for the whole batch: this
    /// is where group commit pays off). Returns the first position. Only the single writer calls this.
    fn append_durable(&self, leaves: &[Vec<u8>], nodes: &[(NodeId, Hash)]) -> Result<u64, StorageError>;

    /// The stored hash of a completed perfect subtree, if any.
    fn read_node(&self, id: NodeId) -> Result<Option<Hash>, StorageError>;

    /// Reads up to `limit` leaves starting at `from`, in order.
    fn read(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StorageError>;

    /// Durably discards every leaf at or after `len` (and the tree nodes that cover them). The one user is a
    /// centre rejoining after a failover, which discards a tail it wrote but that was never acknowledged to
    /// anyone (`replication::rejoin` checks that before calling, and keeps a copy). Never called while the
    /// writer runs.
    fn truncate(&self, len: u64) -> Result<(), StorageError>;
}

/// The end (exclusive leaf index) of the leaves a tree node covers.
pub(crate) fn node_end(id: NodeId) -> u64 {
    (id.index + 1) << id.level
}
