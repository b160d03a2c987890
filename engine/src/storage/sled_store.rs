//! The sled backend: tree `leaves` with key = position as big-endian u64 (so sled's order is log order),
//! value = leaf; tree `nodes` with key = `NodeId::to_key` (level, big-endian index), value = 32-byte hash.
//! Both are written in one sled transaction per batch and made durable by one flush.

use super::{LogStore, StorageError};
use crate::audit::merkle::{Hash, NodeId};
use sled::Transactional;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct SledStore {
    db: sled::Db,
    leaves: sled::Tree,
    nodes: sled::Tree,
    len: AtomicU64,
}

fn backend(e: sled::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the log under `dir`. Verifies that positions are contiguous from 0, so a damaged
    /// store is refused at start instead of silently serving a log with a hole in it.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(dir)
            // Durability comes from the explicit flush after every batch, not from a timer.
            .flush_every_ms(None)
            .open()
            .map_err(backend)?;
        let leaves = db.open_tree("leaves").map_err(backend)?;
        let nodes = db.open_tree("nodes").map_err(backend)?;
        let len = match leaves.last().map_err(backend)? {
            None => 0,
            Some((key, _)) => decode_key(&key)? + 1,
        };
        if len > 0 && leaves.len() as u64 != len {
            return Err(StorageError::Corrupt { position: len - 1, what: "positions are not contiguous" });
        }
        Ok(Self { db, leaves, nodes, len: AtomicU64::new(len) })
    }
}

fn decode_key(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StorageError::Corrupt { position: 0, what: "malformed key" })?;
    Ok(u64::from_be_bytes(bytes))
}

impl LogStore for SledStore {
    fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    fn append_durable(&self, leaves: &[Vec<u8>], nodes: &[(NodeId, Hash)]) -> Result<u64, StorageError> {
        let first = self.len();
        let mut leaf_batch = sled::Batch::default();
        for (i, leaf) in leaves.iter().enumerate() {
            leaf_batch.insert(&(first + i as u64).to_be_bytes(), leaf.as_slice());
        }
        let mut node_batch = sled::Batch::default();
        for (id, hash) in nodes {
            node_batch.insert(&id.to_key(), hash);
        }
        // One transaction over both trees: after a crash either the whole batch (leaves and the tree nodes
        // they complete) is there or none of it.
        (&self.leaves, &self.nodes)
            .transaction(|(l, n)| {
                l.apply_batch(&leaf_batch)?;
                n.apply_batch(&node_batch)?;
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| StorageError::Backend(format!("{e:?}")))?;
        self.db.flush().map_err(backend)?;
        self.len.store(first + leaves.len() as u64, Ordering::Release);
        Ok(first)
    }

    fn read_node(&self, id: NodeId) -> Result<Option<Hash>, StorageError> {
        match self.nodes.get(id.to_key()).map_err(backend)? {
            None => Ok(None),
            Some(v) => {
                let hash: Hash = v.as_ref().try_into().map_err(|_| StorageError::Corrupt {
                    position: id.index << id.level,
                    what: "tree node is not 32 bytes",
                })?;
                Ok(Some(hash))
            }
        }
    }

    fn read(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in self.leaves.range(from.to_be_bytes()..).take(limit) {
            let (key, value) = item.map_err(backend)?;
            out.push((decode_key(&key)?, value.to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_contiguous_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let node = (NodeId::new(1, 0), [7u8; 32]);
            assert_eq!(store.append_durable(&[b"a".to_vec(), b"b".to_vec()], &[node]).unwrap(), 0);
            assert_eq!(store.append_durable(&[b"c".to_vec()], &[]).unwrap(), 2);
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.len(), 3);
        assert_eq!(store.read_node(NodeId::new(1, 0)).unwrap(), Some([7u8; 32]));
        assert_eq!(store.read_node(NodeId::new(0, 0)).unwrap(), None);
        let all = store.read(0, 10).unwrap();
        assert_eq!(all, vec![(0, b"a".to_vec()), (1, b"b".to_vec()), (2, b"c".to_vec())]);
        assert_eq!(store.read(1, 1).unwrap(), vec![(1, b"b".to_vec())]);
        assert!(store.read(3, 10).unwrap().is_empty());
    }
}
