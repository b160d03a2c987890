//! Durable storage of the totally ordered log.
//!
//! The log is the only thing bcl stores durably: every projection, index and status is a pure fold of it
//! and is rebuilt on start. That keeps the storage contract tiny (append a batch durably, read a range), so a
//! backend is one small file: an append-only log file (`FileStore`, the default), sled (`SledStore`, which
//! data directories created before the log file keep using), or anything else tomorrow.
//!
//! Next to the leaves a backend keeps the hashes of the Merkle tree's completed perfect subtrees
//! (`audit::merkle::NodeId`), written in the same atomic batch: proofs then cost `O(log n)` reads and a
//! restart restores the tree from `O(log n)` nodes instead of rehashing the whole log.

mod batch_record;
mod file_store;
mod memory;
mod sled_store;

pub use file_store::FileStore;
pub use memory::MemoryStore;
pub use sled_store::SledStore;

use crate::audit::merkle::{Hash, NodeId};
use std::path::Path;
use std::sync::Arc;

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

/// Whether the log under `dir` was written by sled: data directories created before the log file backend
/// (sled keeps its log in a file named `db`).
fn is_sled(dir: &Path) -> bool {
    dir.join("db").is_file() && !dir.join(file_store::FILE_NAME).exists()
}

/// Opens (or creates) the log under `dir` with the backend that wrote it: sled for a data directory that
/// already holds a sled log, the log file for every other one.
pub fn open(dir: &Path) -> Result<Arc<dyn LogStore>, StorageError> {
    Ok(if is_sled(dir) { Arc::new(SledStore::open(dir)?) } else { Arc::new(FileStore::open(dir)?) })
}

/// Overwrites the stored bytes of one leaf of the log under `dir`, whichever backend holds it. What an
/// attacker with disk access could do: for tamper-detection tests and forensic tooling, never the engine.
pub fn rewrite_leaf_unchecked(dir: &Path, position: u64, leaf: Vec<u8>) -> Result<(), StorageError> {
    if is_sled(dir) {
        SledStore::open(dir)?.rewrite_leaf_unchecked(position, leaf)
    } else {
        FileStore::open(dir)?.rewrite_leaf_unchecked(position, leaf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_keeps_the_backend_that_wrote_it() {
        let sled_dir = tempfile::tempdir().unwrap();
        SledStore::open(sled_dir.path()).unwrap().append_durable(&[b"old".to_vec()], &[]).unwrap();
        let store = open(sled_dir.path()).unwrap();
        assert_eq!(store.read(0, 1).unwrap(), vec![(0, b"old".to_vec())], "a sled log is read by sled");
        store.append_durable(&[b"next".to_vec()], &[]).unwrap();
        drop(store);
        assert!(!sled_dir.path().join(file_store::FILE_NAME).exists(), "no second log beside it");
        assert_eq!(open(sled_dir.path()).unwrap().len(), 2);

        let new_dir = tempfile::tempdir().unwrap();
        open(new_dir.path()).unwrap().append_durable(&[b"new".to_vec()], &[]).unwrap();
        assert!(new_dir.path().join(file_store::FILE_NAME).is_file(), "a new directory gets the log file");
        rewrite_leaf_unchecked(new_dir.path(), 0, b"NEW".to_vec()).unwrap();
        assert_eq!(open(new_dir.path()).unwrap().read(0, 1).unwrap(), vec![(0, b"NEW".to_vec())]);
    }
}
