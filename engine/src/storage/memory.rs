//! An in-memory backend for tests of the layers above storage and for benchmarks that isolate CPU cost.

use super::{LogStore, StorageError};
use crate::audit::merkle::{Hash, NodeId};
use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Default)]
pub struct MemoryStore {
    leaves: RwLock<Vec<Vec<u8>>>,
    nodes: RwLock<HashMap<NodeId, Hash>>,
}

impl LogStore for MemoryStore {
    fn len(&self) -> u64 {
        self.leaves.read().expect("memory store lock").len() as u64
    }

    fn append_durable(&self, leaves: &[Vec<u8>], nodes: &[(NodeId, Hash)]) -> Result<u64, StorageError> {
        let mut all = self.leaves.write().expect("memory store lock");
        // Nodes first, under the leaves' lock: a reader that sees the new length also sees its nodes.
        self.nodes.write().expect("memory store lock").extend(nodes.iter().copied());
        let first = all.len() as u64;
        all.extend(leaves.iter().cloned());
        Ok(first)
    }

    fn read_node(&self, id: NodeId) -> Result<Option<Hash>, StorageError> {
        Ok(self.nodes.read().expect("memory store lock").get(&id).copied())
    }

    fn read(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let all = self.leaves.read().expect("memory store lock");
        Ok(all.iter().enumerate().skip(from as usize).take(limit).map(|(i, l)| (i as u64, l.clone())).collect())
    }

    fn truncate(&self, len: u64) -> Result<(), StorageError> {
        let mut all = self.leaves.write().expect("memory store lock");
        all.truncate(len as usize);
        self.nodes.write().expect("memory store lock").retain(|id, _| super::node_end(*id) <= len);
        Ok(())
    }
}
