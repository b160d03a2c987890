//! The RFC 6962 / RFC 9162 Merkle tree over the log: hashing, the incremental right frontier, and inclusion
//! and consistency proofs with their verifiers.
//!
//! Why a frontier: appending leaf `n` only completes the perfect subtrees that end at `n`, so keeping the
//! roots of the perfect subtrees of the current tree (one per set bit of the size, at most 64) makes an
//! append cost one leaf hash plus, amortised, one node hash, and the root of the whole tree `O(log n)`.
//! Every perfect subtree completed on the way is reported to the caller, which stores it next to the leaves
//! (`NodeId` = level and index), so any proof is `O(log n)` reads of stored nodes and start-up restores the
//! frontier from `O(log n)` stored nodes instead of rehashing the log.

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// Root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 || leaf)`: the prefix keeps a leaf from ever being mistaken for an interior node.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(leaf);
    h.finalize().into()
}

/// [`leaf_hash`] of every leaf, in order, on all cores (two here): leaf hashing is most of the auditor's
/// hashing work (a leaf is ~280 bytes, an interior node 65), and the leaves are independent.
pub fn leaf_hashes<L: AsRef<[u8]> + Sync>(leaves: &[L]) -> Vec<Hash> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let mut hashes = vec![[0u8; 32]; leaves.len()];
    if threads == 1 || leaves.len() < 4096 {
        hashes.iter_mut().zip(leaves).for_each(|(h, l)| *h = leaf_hash(l.as_ref()));
        return hashes;
    }
    let per = leaves.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for (out, input) in hashes.chunks_mut(per).zip(leaves.chunks(per)) {
            scope.spawn(move || out.iter_mut().zip(input).for_each(|(h, l)| *h = leaf_hash(l.as_ref())));
        }
    });
    hashes
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A perfect subtree of the log: the `2^level` leaves starting at `index << level`. Level 0 nodes are leaf
/// hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// Storage key: level then big-endian index, so the nodes of one level are contiguous and ordered.
    pub fn to_key(self) -> [u8; 9] {
        let mut key = [0u8; 9];
        key[0] = self.level;
        key[1..].copy_from_slice(&self.index.to_be_bytes());
        key
    }

    pub fn from_key(key: &[u8]) -> Option<Self> {
        let (&level, index) = key.split_first()?;
        Some(Self { level, index: u64::from_be_bytes(index.try_into().ok()?) })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexBeyondTree { index: u64, size: u64 },
    #[error("tree size {size} is beyond the current tree size {available}")]
    SizeBeyondTree { size: u64, available: u64 },
    #[error("first size {first} is larger than second size {second}")]
    FirstBeyondSecond { first: u64, second: u64 },
    #[error("tree node at level {level}, index {index} is missing from storage")]
    MissingNode { level: u8, index: u64 },
    #[error("reading tree nodes: {0}")]
    Storage(String),
}

/// Read access to the stored hashes of completed perfect subtrees.
pub trait NodeReader {
    fn node(&self, id: NodeId) -> Result<Hash, MerkleError>;
}

/// The roots of the perfect subtrees that make up a tree of `size` leaves, largest (leftmost) first: exactly
/// one per set bit of `size`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtrees a tree of `size` leaves decomposes into, left to right.
    pub fn ids(size: u64) -> impl Iterator<Item = NodeId> {
        (0..64u8).rev().filter(move |&b| (size >> b) & 1 == 1).map(move |b| NodeId::new(b, (size >> b) - 1))
    }

    /// Rebuilds the frontier of a stored tree from its `O(log n)` stored nodes.
    pub fn restore(size: u64, reader: &dyn NodeReader) -> Result<Self, MerkleError> {
        let nodes = Self::ids(size).map(|id| reader.node(id)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { size, nodes })
    }

    /// Appends one leaf hash and reports every perfect subtree it completes (the leaf itself included) to
    /// `completed`, in bottom-up order.
    pub fn append(&mut self, leaf: Hash, completed: &mut Vec<(NodeId, Hash)>) {
        let mut hash = leaf;
        let mut id = NodeId::new(0, self.size);
        completed.push((id, hash));
        // Each set low bit of the old size is a perfect subtree of the same height waiting for a sibling.
        while (self.size >> id.level) & 1 == 1 {
            let left = self.nodes.pop().expect("one frontier node per set bit of the size");
            hash = node_hash(&left, &hash);
            id = NodeId::new(id.level + 1, id.index >> 1);
            completed.push((id, hash));
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// Root of the whole tree: the frontier folded from the right (RFC 9162 MTH).
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        match iter.next() {
            None => empty_root(),
            Some(last) => iter.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// Largest power of two strictly below `n` (`n >= 2`): the split point of RFC 9162 §2.1.1.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Root of leaves `[start, start + len)`, where `start` is a multiple of a power of two `>= len` (always true
/// of the ranges the RFC recursion visits): the perfect subtrees of `len`'s set bits folded from the right.
fn range_root(reader: &dyn NodeReader, start: u64, len: u64) -> Result<Hash, MerkleError> {
    let mut parts = Vec::with_capacity(len.count_ones() as usize);
    let mut offset = start;
    for b in (0..64u8).rev().filter(|&b| (len >> b) & 1 == 1) {
        parts.push(reader.node(NodeId::new(b, offset >> b))?);
        offset += 1 << b;
    }
    let mut iter = parts.iter().rev();
    Ok(match iter.next() {
        None => empty_root(),
        Some(last) => iter.fold(*last, |acc, left| node_hash(left, &acc)),
    })
}

/// Root of the first `size` leaves.
pub fn root(reader: &dyn NodeReader, size: u64) -> Result<Hash, MerkleError> {
    range_root(reader, 0, size)
}

/// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 9162 §2.1.3.1), deepest first.
pub fn inclusion_proof(reader: &dyn NodeReader, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexBeyondTree { index, size });
    }
    let mut proof = Vec::with_capacity(64);
    // Walk down from the root, remembering each sibling; the proof lists them bottom-up.
    let (mut m, mut start, mut n) = (index, 0u64, size);
    while n > 1 {
        let k = split(n);
        if m < k {
            proof.push(range_root(reader, start + k, n - k)?);
            n = k;
        } else {
            proof.push(range_root(reader, start, k)?);
            m -= k;
            start += k;
            n -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The proof that the tree of `first` leaves is a prefix of the tree of `second` leaves (RFC 9162
/// §2.1.4.1). Empty when `first` is 0 or equal to `second`.
pub fn consistency_proof(reader: &dyn NodeReader, first: u64, second: u64) -> Result<Vec<Hash>, MerkleError> {
    if first > second {
        return Err(MerkleError::FirstBeyondSecond { first, second });
    }
    if first == 0 || first == second {
        return Ok(Vec::new());
    }
    let mut proof = Vec::with_capacity(64);
    // SUBPROOF(m, D[start:start+n], whole), walked from the top; the proof lists the nodes bottom-up.
    let (mut m, mut start, mut n, mut whole) = (first, 0u64, second, true);
    while m != n {
        let k = split(n);
        if m <= k {
            proof.push(range_root(reader, start + k, n - k)?);
            n = k;
        } else {
            proof.push(range_root(reader, start, k)?);
            m -= k;
            start += k;
            n -= k;
            whole = false;
        }
    }
    if !whole {
        proof.push(range_root(reader, start, n)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexBeyondTree { index: u64, size: u64 },
    #[error("first size {first} is larger than second size {second}")]
    FirstBeyondSecond { first: u64, second: u64 },
    #[error("the proof has the wrong number of hashes for these sizes")]
    WrongLength,
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2); compare it with a trusted root.
pub fn root_from_inclusion_proof(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondTree { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                // The right edge of an unbalanced tree: skip levels where this node has no right sibling.
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// Verifies that `leaf` is at `index` of the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if root_from_inclusion_proof(leaf, index, size, proof)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies that the tree of `first` leaves with root `first_root` is a prefix of the tree of `second`
/// leaves with root `second_root` (RFC 9162 §2.1.4.2; sizes 0 and `first == second` handled as in the
/// usual implementations: no proof, and for equal sizes equal roots).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::FirstBeyondSecond { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first_root == second_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if first == 0 {
        // Every tree extends the empty tree; a proof would be meaningless.
        return if proof.is_empty() { Ok(()) } else { Err(ProofError::WrongLength) };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        // The first tree is a perfect subtree of the second: its root starts the walk.
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr == *first_root && sr == *second_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Every node of a tree held in memory (`levels[l][i]` = `NodeId(l, i)`): what an auditor builds from the
/// leaves it downloaded, so it can answer any root or proof locally and compare it with the server's.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
    scratch: Vec<(NodeId, Hash)>,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        self.scratch.clear();
        self.frontier.append(leaf, &mut self.scratch);
        for (id, hash) in self.scratch.drain(..) {
            let level = id.level as usize;
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            debug_assert_eq!(self.levels[level].len() as u64, id.index);
            self.levels[level].push(hash);
        }
    }

    pub fn push(&mut self, leaf: &[u8]) {
        self.push_leaf_hash(leaf_hash(leaf));
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The hash of leaf `index` (level 0).
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first().and_then(|l| l.get(index as usize)).copied()
    }
}

impl NodeReader for MemoryTree {
    fn node(&self, id: NodeId) -> Result<Hash, MerkleError> {
        self.levels
            .get(id.level as usize)
            .and_then(|l| l.get(id.index as usize))
            .copied()
            .ok_or(MerkleError::MissingNode { level: id.level, index: id.index })
    }
}

#[cfg(test)]
#[path = "merkle_tests.rs"]
mod tests;
