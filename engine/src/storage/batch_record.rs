//! The record of one durable batch, the same bytes in every backend: the tree nodes the batch completed,
//! then its leaves.
//!
//! Layout (little-endian): `u8 version (1) | u32 node_count | node_count × (u8 level, u64 index,
//! [u8; 32] hash) | u32 leaf_count | leaf_count × (u32 len, bytes)`.
//!
//! A tree node (level L, index i) covers leaves [i·2^L, (i+1)·2^L) and is completed by the batch holding
//! its last leaf, so finding it needs no separate index.

use super::StorageError;
use crate::audit::merkle::{Hash, NodeId};

pub(super) const VERSION: u8 = 1;
/// Size of one tree node entry of the node section.
pub(super) const NODE_ENTRY: usize = 1 + 8 + 32;

/// A decoded batch record.
pub(super) struct Batch {
    pub first: u64,
    pub nodes: Vec<(NodeId, Hash)>,
    pub leaves: Vec<Vec<u8>>,
}

impl Batch {
    pub fn encode(nodes: &[(NodeId, Hash)], leaves: &[Vec<u8>]) -> Vec<u8> {
        let size = 9 + nodes.len() * NODE_ENTRY + leaves.iter().map(|l| 4 + l.len()).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.push(VERSION);
        out.extend_from_slice(&(nodes.len() as u32).to_le_bytes());
        for (id, hash) in nodes {
            out.push(id.level);
            out.extend_from_slice(&id.index.to_le_bytes());
            out.extend_from_slice(hash);
        }
        out.extend_from_slice(&(leaves.len() as u32).to_le_bytes());
        for leaf in leaves {
            out.extend_from_slice(&(leaf.len() as u32).to_le_bytes());
            out.extend_from_slice(leaf);
        }
        out
    }

    pub fn decode(first: u64, bytes: &[u8]) -> Result<Batch, StorageError> {
        let corrupt = |what| StorageError::Corrupt { position: first, what };
        let mut r = Reader { bytes, at: 0 };
        if r.take(1).ok_or(corrupt("empty batch record"))?[0] != VERSION {
            return Err(corrupt("unknown batch record version"));
        }
        let node_count = r.u32().ok_or(corrupt("truncated batch record"))? as usize;
        let mut nodes = Vec::with_capacity(node_count.min(1 << 16));
        for _ in 0..node_count {
            let e = r.take(NODE_ENTRY).ok_or(corrupt("truncated tree node"))?;
            let index = u64::from_le_bytes(e[1..9].try_into().expect("8 bytes"));
            nodes.push((NodeId::new(e[0], index), e[9..].try_into().expect("32 bytes")));
        }
        let leaf_count = r.u32().ok_or(corrupt("truncated batch record"))? as usize;
        let mut leaves = Vec::with_capacity(leaf_count.min(1 << 16));
        for _ in 0..leaf_count {
            let len = r.u32().ok_or(corrupt("truncated leaf"))? as usize;
            leaves.push(r.take(len).ok_or(corrupt("truncated leaf"))?.to_vec());
        }
        if r.at != bytes.len() {
            return Err(corrupt("trailing bytes after the batch record"));
        }
        Ok(Batch { first, nodes, leaves })
    }

    pub fn end(&self) -> u64 {
        self.first + self.leaves.len() as u64
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
}

/// Finds one tree node in a batch record by scanning its fixed-size node entries.
pub(super) fn node_in_record(first: u64, bytes: &[u8], id: NodeId) -> Result<Option<Hash>, StorageError> {
    let corrupt = |what| StorageError::Corrupt { position: first, what };
    let mut r = Reader { bytes, at: 0 };
    if r.take(1).ok_or(corrupt("empty batch record"))?[0] != VERSION {
        return Err(corrupt("unknown batch record version"));
    }
    let node_count = r.u32().ok_or(corrupt("truncated batch record"))? as usize;
    for _ in 0..node_count {
        let e = r.take(NODE_ENTRY).ok_or(corrupt("truncated tree node"))?;
        if e[0] == id.level && e[1..9] == id.index.to_le_bytes() {
            return Ok(Some(e[9..].try_into().expect("32 bytes")));
        }
    }
    Ok(None)
}

/// The number of leaves of a batch record, read from its header alone (the node section has a fixed entry
/// size): what opening a store needs to check that batches are contiguous, without decoding the leaves.
pub(super) fn leaf_count(first: u64, bytes: &[u8]) -> Result<u64, StorageError> {
    let corrupt = StorageError::Corrupt { position: first, what: "truncated batch record" };
    if bytes.first() != Some(&VERSION) {
        return Err(StorageError::Corrupt { position: first, what: "unknown batch record version" });
    }
    let node_count = bytes.get(1..5).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let at = node_count.map(|n| 5 + n as usize * NODE_ENTRY);
    at.and_then(|at| bytes.get(at..at + 4))
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as u64)
        .ok_or(corrupt)
}

/// The leaf whose batch completed tree node `id` (its last leaf); `None` for a node beyond any log.
pub(super) fn last_leaf_of(id: NodeId) -> Option<u64> {
    id.index.checked_add(1)?.checked_mul(1u64.checked_shl(id.level as u32)?)?.checked_sub(1)
}

/// Up to `limit` leaves from `from` on, in order, gathered batch by batch from `batch_at` (the batch holding
/// a position, `None` beyond the log): the `LogStore::read` of every batch-record backend.
pub(super) fn read_leaves(
    from: u64,
    limit: usize,
    mut batch_at: impl FnMut(u64) -> Result<Option<std::sync::Arc<Batch>>, StorageError>,
) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
    let mut out = Vec::with_capacity(limit.min(4096));
    let mut position = from;
    while out.len() < limit {
        let Some(batch) = batch_at(position)? else { break };
        let skip = (position - batch.first) as usize;
        for leaf in batch.leaves[skip..].iter().take(limit - out.len()) {
            out.push((position, leaf.clone()));
            position += 1;
        }
    }
    Ok(out)
}

/// Where the writer puts tree node `id` in the node section of the batch starting at leaf `first`, if it
/// is there: appending leaf p completes the leaf node and then one node per trailing zero bit of p + 1,
/// bottom up (`merkle::Frontier::append`), so the entries before leaf p's take `(p − first) + Σ tz(q)` for
/// q in (first, p], and Σ tz(q) for q in 1..=m is m − popcount(m). A guess only: callers check the entry
/// found there and fall back to a scan (a truncated batch keeps only some of its nodes).
pub(super) fn node_entry_guess(first: u64, id: NodeId) -> Option<u64> {
    let last_leaf = last_leaf_of(id)?;
    let below = |m: u64| m - m.count_ones() as u64;
    let before = last_leaf.checked_sub(first)? + below(last_leaf) - below(first);
    Some(before + id.level as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_record_is_refused() {
        assert!(Batch::decode(0, &[VERSION, 0, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, b'x']).is_err());
        assert!(Batch::decode(0, &[2]).is_err());
        let ok = Batch::encode(&[], &[b"xy".to_vec()]);
        assert_eq!(Batch::decode(0, &ok).unwrap().leaves, vec![b"xy".to_vec()]);
    }

    #[test]
    fn the_leaf_count_comes_from_the_header() {
        let record = Batch::encode(&[(NodeId::new(1, 0), [9; 32])], &[b"a".to_vec(), b"bc".to_vec()]);
        assert_eq!(leaf_count(4, &record).unwrap(), 2);
        assert!(leaf_count(4, &record[..10]).is_err(), "cut inside the node section");
        assert!(leaf_count(4, &[]).is_err());
    }

    #[test]
    fn the_guessed_entry_of_every_node_is_where_the_frontier_put_it() {
        use crate::audit::merkle::Frontier;
        let mut frontier = Frontier::new();
        let mut first = 0u64;
        // Batches of every size from 1 to 40 leaves, so that batch starts fall on every kind of boundary.
        for size in (1..=40u64).cycle().take(120) {
            let mut nodes = Vec::new();
            for p in first..first + size {
                frontier.append([p as u8; 32], &mut nodes);
            }
            for (k, (id, _)) in nodes.iter().enumerate() {
                assert_eq!(node_entry_guess(first, *id), Some(k as u64), "batch at {first}, node {id:?}");
            }
            first += size;
        }
    }
}
