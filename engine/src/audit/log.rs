//! The live audit log: the Merkle tree the writer extends with every durable batch, and the signed
//! checkpoint it publishes after each one.
//!
//! The writer hashes a batch (`extend`) before its one flush, so the tree nodes go into the same atomic
//! write as the leaves; only after the flush succeeded does it `commit`, which moves the frontier and signs
//! the new checkpoint (~20 µs of Ed25519 per batch, not per leaf). A failed flush poisons the engine, so a
//! checkpoint is never signed over leaves that are not durable.

use super::checkpoint::Checkpoint;
use super::merkle::{leaf_hash, Frontier, Hash, MerkleError, NodeId, NodeReader};
use super::note::NoteSigner;
use crate::secrets::write_private;
use crate::storage::{LogStore, StorageError};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

/// The checkpoint signing key (32-byte Ed25519 seed), owner-only.
pub const SIGNING_KEY_FILE: &str = "checkpoint-signing.key";
/// The C2SP verifier key of the checkpoints, for auditors (public).
pub const VERIFIER_KEY_FILE: &str = "checkpoint.vkey";
/// Prefix of the log's origin line; the rest identifies the data directory's key.
pub const ORIGIN_PREFIX: &str = "bcl.example/log-";

/// Loads the data directory's checkpoint signer, creating the key on first start, and (re)writes the
/// verifier key file next to it. The origin (= key name) is derived from the public key, so it is stable
/// for the life of the data directory and differs between directories.
pub fn load_or_create_signer(data_dir: &Path) -> std::io::Result<NoteSigner> {
    let path = data_dir.join(SIGNING_KEY_FILE);
    let mut seed = [0u8; 32];
    match std::fs::File::open(&path) {
        Ok(mut f) => f.read_exact(&mut seed)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
            write_private(&path, &seed)?;
        }
        Err(e) => return Err(e),
    }
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let name = format!(
        "{ORIGIN_PREFIX}{}",
        &hex::encode(Sha256::digest(public.as_bytes()))[..12]
    );
    let signer = NoteSigner::new(&name, &seed).map_err(|e| std::io::Error::other(e.to_string()))?;
    let vkey_path = data_dir.join(VERIFIER_KEY_FILE);
    let vkey = format!("{}\n", signer.verifier_key());
    if std::fs::read_to_string(&vkey_path).ok().as_deref() != Some(vkey.as_str()) {
        std::fs::write(&vkey_path, vkey)?;
    }
    Ok(signer)
}

/// Reads the verifier key of a data directory without touching the private key.
pub fn read_verifier_key(data_dir: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(data_dir.join(VERIFIER_KEY_FILE))?
        .trim()
        .to_string())
}

/// Tree nodes as stored by a `LogStore`.
pub struct StoreNodes<'a>(pub &'a dyn LogStore);

impl NodeReader for StoreNodes<'_> {
    fn node(&self, id: NodeId) -> Result<Hash, MerkleError> {
        match self.0.read_node(id) {
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err(MerkleError::MissingNode {
                level: id.level,
                index: id.index,
            }),
            Err(e) => Err(MerkleError::Storage(e.to_string())),
        }
    }
}

/// A checkpoint and its signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: String,
}

/// A batch hashed into the tree but not yet durable.
pub struct Extension {
    frontier: Frontier,
    /// Every perfect subtree the batch completes, to be stored with the leaves.
    pub nodes: Vec<(NodeId, Hash)>,
}

pub struct AuditLog {
    signer: NoteSigner,
    frontier: Mutex<Frontier>,
    latest: RwLock<Arc<SignedCheckpoint>>,
    /// Replicated primary: checkpoints of batches durable here but not yet held by the other centre wait
    /// here, so that no checkpoint is ever published over leaves a failover could still discard.
    gated: std::sync::atomic::AtomicBool,
    held: Mutex<std::collections::VecDeque<Arc<SignedCheckpoint>>>,
}

impl AuditLog {
    /// Restores the tree of the durable log from its stored nodes and signs its checkpoint (Ed25519 is
    /// deterministic: the same tree gives the same note as before the restart).
    pub fn open(store: &dyn LogStore, signer: NoteSigner) -> Result<Self, StorageError> {
        let size = store.len();
        let frontier = Frontier::restore(size, &StoreNodes(store)).map_err(|e| match e {
            MerkleError::MissingNode { .. } => StorageError::Corrupt {
                position: size.saturating_sub(1),
                what: "tree hashes missing for the stored leaves",
            },
            other => StorageError::Backend(other.to_string()),
        })?;
        // The newest leaf must still hash to its stored node: a cheap guard against a store whose leaves and
        // tree were separated (e.g. restored from different backups).
        if size > 0 {
            let last = store.read(size - 1, 1)?;
            let stored = store.read_node(NodeId::new(0, size - 1))?;
            if last.first().map(|(_, leaf)| leaf_hash(leaf)) != stored {
                return Err(StorageError::Corrupt {
                    position: size - 1,
                    what: "leaf does not match its tree hash",
                });
            }
        }
        let latest = sign(&signer, &frontier);
        Ok(Self {
            signer,
            frontier: Mutex::new(frontier),
            latest: RwLock::new(Arc::new(latest)),
            gated: Default::default(),
            held: Default::default(),
        })
    }

    /// Hashes `leaves` onto the current tree without publishing anything yet.
    pub fn extend(&self, leaves: &[Vec<u8>]) -> Extension {
        let mut frontier = self.frontier.lock().expect("audit frontier lock").clone();
        // About two nodes per leaf: the leaf hash plus, amortised, one interior node.
        let mut nodes = Vec::with_capacity(leaves.len() * 2 + 64);
        for leaf in leaves {
            frontier.append(leaf_hash(leaf), &mut nodes);
        }
        Extension { frontier, nodes }
    }

    /// Publishes a durable extension: moves the tree forward and signs its checkpoint.
    pub fn commit(&self, extension: Extension) {
        let signed = Arc::new(sign(&self.signer, &extension.frontier));
        *self.frontier.lock().expect("audit frontier lock") = extension.frontier;
        if self.gated.load(std::sync::atomic::Ordering::Acquire) {
            self.held.lock().expect("audit held lock").push_back(signed);
        } else {
            *self.latest.write().expect("audit checkpoint lock") = signed;
        }
    }

    /// Holds checkpoints back until `publish_up_to` (a replicated primary) or publishes them at once.
    pub fn set_gated(&self, gated: bool) {
        self.gated.store(gated, std::sync::atomic::Ordering::Release);
        if !gated {
            self.publish_up_to(u64::MAX);
        }
    }

    /// Publishes the newest held checkpoint whose size is at most `size` (the committed size).
    pub fn publish_up_to(&self, size: u64) {
        let mut held = self.held.lock().expect("audit held lock");
        let mut newest = None;
        while held.front().is_some_and(|c| c.checkpoint.size <= size) {
            newest = held.pop_front();
        }
        drop(held);
        if let Some(c) = newest {
            let mut latest = self.latest.write().expect("audit checkpoint lock");
            if c.checkpoint.size >= latest.checkpoint.size {
                *latest = c;
            }
        }
    }

    /// The newest checkpoint signed, published or not (what the primary shows its follower).
    pub fn newest_signed(&self) -> Arc<SignedCheckpoint> {
        self.held.lock().expect("audit held lock").back().cloned().unwrap_or_else(|| self.checkpoint())
    }

    /// The root of the tree at the current size (held or published).
    pub fn size(&self) -> u64 {
        self.frontier.lock().expect("audit frontier lock").size()
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> Arc<SignedCheckpoint> {
        self.latest.read().expect("audit checkpoint lock").clone()
    }

    pub fn verifier_key(&self) -> String {
        self.signer.verifier_key()
    }
}

fn sign(signer: &NoteSigner, frontier: &Frontier) -> SignedCheckpoint {
    let checkpoint = Checkpoint {
        origin: signer.name().to_string(),
        size: frontier.size(),
        root: frontier.root(),
    };
    let note = signer
        .sign(&checkpoint.body())
        .expect("a checkpoint body is non-empty and ends with a newline");
    SignedCheckpoint { checkpoint, note }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::merkle::{self, MemoryTree};
    use crate::audit::note::NoteVerifier;
    use crate::storage::{FileStore, MemoryStore};

    fn leaves(from: usize, n: usize) -> Vec<Vec<u8>> {
        (from..from + n)
            .map(|i| format!("leaf {i}").into_bytes())
            .collect()
    }

    #[test]
    fn extends_commits_and_restores_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let signer = load_or_create_signer(dir.path()).unwrap();
        let vkey = read_verifier_key(dir.path()).unwrap();
        assert_eq!(vkey, signer.verifier_key());
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut reference = MemoryTree::new();
        let note_before;
        {
            let store = FileStore::open(&dir.path().join("log")).unwrap();
            let log = AuditLog::open(&store, signer).unwrap();
            for (from, n) in [(0, 5), (5, 1), (6, 100)] {
                let batch = leaves(from, n);
                let ext = log.extend(&batch);
                store.append_durable(&batch, &ext.nodes).unwrap();
                log.commit(ext);
                batch.iter().for_each(|l| reference.push(l));
                assert_eq!(log.checkpoint().checkpoint.root, reference.root());
                assert_eq!(log.checkpoint().checkpoint.size, reference.size());
            }
            note_before = log.checkpoint().note.clone();
            // Proofs from stored nodes equal proofs from the independent in-memory tree.
            assert_eq!(
                merkle::inclusion_proof(&StoreNodes(&store), 17, 106).unwrap(),
                merkle::inclusion_proof(&reference, 17, 106).unwrap()
            );
        }
        // Same key, same tree, same note after a restart.
        let signer = load_or_create_signer(dir.path()).unwrap();
        let store = FileStore::open(&dir.path().join("log")).unwrap();
        let log = AuditLog::open(&store, signer).unwrap();
        assert_eq!(log.checkpoint().note, note_before);
        let verifier = NoteVerifier::parse(&vkey).unwrap();
        let opened = Checkpoint::open(&verifier, &note_before).unwrap();
        assert_eq!(opened.size, 106);
        assert_eq!(opened.root, reference.root());
    }

    #[test]
    fn refuses_a_store_without_tree_hashes() {
        let store = MemoryStore::default();
        store.append_durable(&leaves(0, 3), &[]).unwrap();
        let signer = NoteSigner::new("bcl.example/log-test", &[1; 32]).unwrap();
        assert!(matches!(
            AuditLog::open(&store, signer),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
