//! The key store: one XChaCha20-Poly1305 key per resident, kept apart from the log so that erasing a key
//! (crypto-shredding) makes that resident's sealed events unreadable while the log itself, its Merkle tree
//! and its checkpoints stay untouched.
//!
//! Storage is one file, `<data-dir>/keys/keys.bin` (directory 0700, file 0600), of fixed 128-byte slots:
//! `[0]` 1 = live / 0 = erased, `[1..17]` key id, `[17..49]` key, `[49]` subject length, `[50..128]` subject.
//! A new key is appended and synced before any leaf sealed with it is handed to the writer, so a durable
//! leaf never names a key that a crash lost. Erasing overwrites the slot with zeros in place and syncs: a
//! log-structured store (sled) would keep the old bytes in a segment until some later compaction, which is
//! not what "erased" must mean. The sequence number of a key is its slot index + 1, which gives replication
//! a cheap "everything since N".
//!
//! Subjects are `<municipality>/<resident id>`; one more entry, [`IDEMPOTENCY_SUBJECT`], holds the key of
//! the keyed digests that re-sends are compared on (it is never erased).

pub mod seal;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

pub const SLOT: usize = 128;
const MAX_SUBJECT: usize = SLOT - 50;
/// Subject of the idempotency (keyed digest) key; municipality codes are digits, so no resident collides.
pub const IDEMPOTENCY_SUBJECT: &str = "bcl/idempotency";

pub type KeyId = [u8; 16];
/// A subject's newest key: its id and the 32 key bytes.
pub type SubjectKey = (KeyId, [u8; 32]);

impl From<KeyEntry> for bcl_proto::ReplicatedKey {
    fn from(e: KeyEntry) -> Self {
        bcl_proto::ReplicatedKey { key_id: e.key_id.to_vec(), subject: e.subject, key: e.key.to_vec() }
    }
}

impl TryFrom<bcl_proto::ReplicatedKey> for KeyEntry {
    type Error = KeyStoreError;
    fn try_from(k: bcl_proto::ReplicatedKey) -> Result<Self, KeyStoreError> {
        let malformed =
            || KeyStoreError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed key entry"));
        Ok(KeyEntry {
            key_id: k.key_id.as_slice().try_into().map_err(|_| malformed())?,
            key: k.key.as_slice().try_into().map_err(|_| malformed())?,
            subject: k.subject,
        })
    }
}

/// One key of the store, as replication ships it. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub key_id: KeyId,
    pub subject: String,
    pub key: [u8; 32],
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry").field("key_id", &hex::encode(self.key_id)).field("subject", &self.subject).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("key store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("key store subject is longer than {MAX_SUBJECT} bytes")]
    SubjectTooLong,
    #[error("key store file is damaged at slot {0}")]
    Damaged(u64),
}

/// The subject of a resident's key.
pub fn subject(municipality: &str, resident_id: &str) -> String {
    format!("{municipality}/{resident_id}")
}

#[derive(Default)]
struct Inner {
    /// key id → (slot, entry). Key ids are random, so a fast (seeded) hash is as safe as SipHash here, and
    /// the rebuild looks one up per sealed leaf.
    by_id: HashMap<KeyId, (u64, KeyEntry), foldhash::fast::RandomState>,
    /// subject → key ids, oldest first (a replica may hold several for one subject)
    by_subject: HashMap<String, Vec<KeyId>>,
    /// Number of slots in the file (live or erased).
    slots: u64,
}

/// The key store. Reads take a shared lock (the fold looks a key up per sealed leaf); writes serialise on
/// the file.
pub struct KeyStore {
    inner: RwLock<Inner>,
    /// `None` for a read-only snapshot (an auditor's copy): erasures then only forget in memory.
    file: Option<Mutex<File>>,
    path: Option<PathBuf>,
}

impl KeyStore {
    /// Opens (or creates) the key store in `dir`, with owner-only permissions, and creates the idempotency
    /// key on first use.
    pub fn open(dir: &Path) -> Result<KeyStore, KeyStoreError> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let path = dir.join("keys.bin");
        let created = !path.exists();
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        if created {
            // The file's name must survive a power cut as much as the keys synced into it.
            File::open(dir)?.sync_all()?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        // A torn last slot can only be a key whose leaves were never handed to the writer (keys are synced
        // first): drop it.
        let whole = bytes.len() / SLOT * SLOT;
        if whole != bytes.len() {
            file.set_len(whole as u64)?;
            file.sync_all()?;
        }
        let inner = parse(&bytes[..whole])?;
        let store = KeyStore { inner: RwLock::new(inner), file: Some(Mutex::new(file)), path: Some(path) };
        if store.by_subject(IDEMPOTENCY_SUBJECT).is_empty() {
            store.append(&[new_entry(IDEMPOTENCY_SUBJECT)])?;
            store.sync()?;
        }
        Ok(store)
    }

    /// A read-only store from a snapshot file or a live store's `keys.bin` (the same slot format; see
    /// [`KeyStore::write_snapshot`]).
    pub fn load_snapshot(path: &Path) -> Result<KeyStore, KeyStoreError> {
        let bytes = std::fs::read(path)?;
        // A running server may be appending a slot right now: a partial last slot is not ours to read yet.
        let whole = bytes.len() / SLOT * SLOT;
        Ok(KeyStore { inner: RwLock::new(parse(&bytes[..whole])?), file: None, path: None })
    }

    /// An empty read-only store: every sealed leaf folds as unreadable (an auditor without keys).
    pub fn empty() -> KeyStore {
        KeyStore { inner: RwLock::new(Inner::default()), file: None, path: None }
    }

    /// Where the store lives (`None` for a snapshot).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The key with this id (the fold's lookup).
    pub fn key(&self, key_id: &KeyId) -> Option<[u8; 32]> {
        self.inner.read().expect("key store lock").by_id.get(key_id).map(|(_, e)| e.key)
    }

    /// The keys of many key ids (`None` for an id that is not one), in order, appended to `out`, under one
    /// read lock: the rebuild looks up a whole chunk of leaves at once, so it neither takes the lock per
    /// leaf (two decoding threads would bounce its cache line) nor waits for one lookup's cache misses
    /// before starting the next (the lookups run back to back and overlap).
    pub fn keys_of<'a>(&self, ids: impl IntoIterator<Item = Option<&'a KeyId>>, out: &mut Vec<Option<[u8; 32]>>) {
        let inner = self.inner.read().expect("key store lock");
        out.extend(ids.into_iter().map(|id| id.and_then(|id| inner.by_id.get(id)).map(|(_, e)| e.key)));
    }

    /// The key of the log's keyed digests (see `seal::keyed_digest`).
    pub fn idempotency_key(&self) -> Option<[u8; 32]> {
        self.by_subject(IDEMPOTENCY_SUBJECT).first().map(|e| e.key)
    }

    /// Every key of a subject, oldest first (replication: "get raw key by subject").
    pub fn by_subject(&self, subject: &str) -> Vec<KeyEntry> {
        let inner = self.inner.read().expect("key store lock");
        inner
            .by_subject
            .get(subject)
            .map_or_else(Vec::new, |ids| ids.iter().map(|id| inner.by_id[id].1.clone()).collect())
    }

    /// The newest key of each subject, creating (and appending, unsynced) those missing. Returns the keys in
    /// the order of `subjects` and whether any was created: the caller must [`KeyStore::sync`] before a leaf
    /// sealed with a new key is handed to the writer.
    pub fn keys_for(&self, subjects: &[&str]) -> Result<(Vec<SubjectKey>, bool), KeyStoreError> {
        {
            let inner = self.inner.read().expect("key store lock");
            let found: Option<Vec<_>> = subjects
                .iter()
                .map(|s| inner.by_subject.get(*s).and_then(|ids| ids.last()).map(|id| (*id, inner.by_id[id].1.key)))
                .collect();
            if let Some(found) = found {
                return Ok((found, false));
            }
        }
        // Slow path under the file lock, so two appends racing for one new subject create one key.
        let file = self.file.as_ref().ok_or_else(read_only)?;
        let _guard = file.lock().expect("key store file lock");
        let mut out = Vec::with_capacity(subjects.len());
        let mut created: Vec<KeyEntry> = Vec::new();
        for s in subjects {
            let existing = {
                let inner = self.inner.read().expect("key store lock");
                inner.by_subject.get(*s).and_then(|ids| ids.last()).map(|id| (*id, inner.by_id[id].1.key))
            };
            let pair = match existing.or_else(|| created.iter().find(|e| e.subject == *s).map(|e| (e.key_id, e.key))) {
                Some(p) => p,
                None => {
                    if s.len() > MAX_SUBJECT {
                        return Err(KeyStoreError::SubjectTooLong);
                    }
                    let e = new_entry(s);
                    let pair = (e.key_id, e.key);
                    created.push(e);
                    pair
                }
            };
            out.push(pair);
        }
        let any = !created.is_empty();
        if any {
            self.append_locked(&_guard, &created)?;
        }
        Ok((out, any))
    }

    /// Makes appended keys durable.
    pub fn sync(&self) -> Result<(), KeyStoreError> {
        if let Some(file) = &self.file {
            file.lock().expect("key store file lock").sync_data()?;
        }
        Ok(())
    }

    /// Stores a key received from another site (replication: "put raw key"), durably. Idempotent: a key id
    /// already present is left as it is. Returns its sequence number.
    pub fn put(&self, entry: KeyEntry) -> Result<u64, KeyStoreError> {
        if let Some((slot, _)) = self.inner.read().expect("key store lock").by_id.get(&entry.key_id) {
            return Ok(slot + 1);
        }
        if entry.subject.len() > MAX_SUBJECT {
            return Err(KeyStoreError::SubjectTooLong);
        }
        let seq = self.append(&[entry])?;
        self.sync()?;
        Ok(seq)
    }

    /// Stores several replicated keys with one sync; idempotent by key id. A replicated idempotency key
    /// replaces this store's own: both centres must compute the same keyed digests, or a re-send after a
    /// fail-over would look like a conflict (a follower never seals, so its own key was never used).
    pub fn put_many(&self, entries: &[KeyEntry]) -> Result<(), KeyStoreError> {
        let new: Vec<KeyEntry> = {
            let inner = self.inner.read().expect("key store lock");
            entries.iter().filter(|e| !inner.by_id.contains_key(&e.key_id)).cloned().collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        if new.iter().any(|e| e.subject.len() > MAX_SUBJECT) {
            return Err(KeyStoreError::SubjectTooLong);
        }
        if new.iter().any(|e| e.subject == IDEMPOTENCY_SUBJECT) {
            self.erase(IDEMPOTENCY_SUBJECT)?;
        }
        // Written, not synced: a sync per replicated page kept a follower from acknowledging within the
        // primary's window. A process crash loses nothing (the page cache has the bytes); after a power loss
        // the events sealed with a lost key fold as unreadable here until the key is shipped again.
        self.append(&new).map(|_| ())
    }

    /// The entry of a key id.
    pub fn entry(&self, key_id: &KeyId) -> Option<KeyEntry> {
        self.inner.read().expect("key store lock").by_id.get(key_id).map(|(_, e)| e.clone())
    }

    /// The entries the sealed leaves among `leaves` were sealed with, plus the idempotency key (what a
    /// follower needs to fold these leaves and, after a fail-over, to admit re-sends).
    pub fn entries_for_leaves(&self, leaves: &[Vec<u8>]) -> Vec<KeyEntry> {
        let mut out: Vec<KeyEntry> = self.by_subject(IDEMPOTENCY_SUBJECT);
        let mut seen: std::collections::HashSet<KeyId> = out.iter().map(|e| e.key_id).collect();
        for leaf in leaves {
            if let Some(id) = seal::sealed_key_id(leaf) {
                if seen.insert(id) {
                    out.extend(self.entry(&id));
                }
            }
        }
        out
    }

    /// Live keys with a sequence number above `seq`, in sequence order (replication: "list since").
    pub fn list_since(&self, seq: u64) -> Vec<(u64, KeyEntry)> {
        let inner = self.inner.read().expect("key store lock");
        let mut out: Vec<(u64, KeyEntry)> =
            inner.by_id.values().filter(|(slot, _)| slot + 1 > seq).map(|(slot, e)| (slot + 1, e.clone())).collect();
        out.sort_by_key(|(s, _)| *s);
        out
    }

    /// Erases every key of `subject` (crypto-shredding): the slots are overwritten with zeros and synced.
    /// Returns how many keys were erased. The idempotency key cannot be erased.
    pub fn delete_subject(&self, subject: &str) -> Result<usize, KeyStoreError> {
        if subject == IDEMPOTENCY_SUBJECT {
            return Ok(0);
        }
        self.erase(subject)
    }

    fn erase(&self, subject: &str) -> Result<usize, KeyStoreError> {
        let guard = self.file.as_ref().map(|f| f.lock().expect("key store file lock"));
        let removed: Vec<(u64, KeyEntry)> = {
            let mut inner = self.inner.write().expect("key store lock");
            let ids = inner.by_subject.remove(subject).unwrap_or_default();
            ids.iter().filter_map(|id| inner.by_id.remove(id)).collect()
        };
        if let Some(file) = &guard {
            for (slot, _) in &removed {
                file.write_all_at(&[0u8; SLOT], slot * SLOT as u64)?;
            }
            if !removed.is_empty() {
                file.sync_data()?;
            }
        }
        Ok(removed.len())
    }

    /// Writes the live keys (erased ones are gone for good) in the slot format to `path`, mode 0600: what an
    /// auditor needs besides the log to re-render certificates. Returns how many keys were written.
    pub fn write_snapshot(&self, path: &Path) -> Result<usize, KeyStoreError> {
        let entries = self.list_since(0);
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        for (_, e) in &entries {
            file.write_all(&encode_slot(e))?;
        }
        file.sync_all()?;
        Ok(entries.len())
    }

    fn append(&self, entries: &[KeyEntry]) -> Result<u64, KeyStoreError> {
        let file = self.file.as_ref().ok_or_else(read_only)?;
        let guard = file.lock().expect("key store file lock");
        self.append_locked(&guard, entries)
    }

    /// Appends under the file lock; returns the sequence number of the last entry.
    fn append_locked(&self, file: &File, entries: &[KeyEntry]) -> Result<u64, KeyStoreError> {
        let mut inner = self.inner.write().expect("key store lock");
        let mut buf = Vec::with_capacity(entries.len() * SLOT);
        for e in entries {
            buf.extend_from_slice(&encode_slot(e));
        }
        file.write_all_at(&buf, inner.slots * SLOT as u64)?;
        for e in entries {
            let slot = inner.slots;
            inner.slots += 1;
            insert(&mut inner, slot, e.clone());
        }
        Ok(inner.slots)
    }
}

fn read_only() -> KeyStoreError {
    KeyStoreError::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "the key store snapshot is read-only"))
}

fn new_entry(subject: &str) -> KeyEntry {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut rng = chacha20poly1305::aead::OsRng;
    let mut entry = KeyEntry { key_id: [0; 16], subject: subject.to_owned(), key: [0; 32] };
    rng.fill_bytes(&mut entry.key_id);
    rng.fill_bytes(&mut entry.key);
    entry
}

fn encode_slot(e: &KeyEntry) -> [u8; SLOT] {
    let mut slot = [0u8; SLOT];
    slot[0] = 1;
    slot[1..17].copy_from_slice(&e.key_id);
    slot[17..49].copy_from_slice(&e.key);
    slot[49] = e.subject.len() as u8;
    slot[50..50 + e.subject.len()].copy_from_slice(e.subject.as_bytes());
    slot
}

fn insert(inner: &mut Inner, slot: u64, e: KeyEntry) {
    inner.by_subject.entry(e.subject.clone()).or_default().push(e.key_id);
    inner.by_id.insert(e.key_id, (slot, e));
}

fn parse(bytes: &[u8]) -> Result<Inner, KeyStoreError> {
    let mut inner = Inner::default();
    for (i, slot) in bytes.chunks_exact(SLOT).enumerate() {
        inner.slots = i as u64 + 1;
        match slot[0] {
            0 => continue,
            1 => {}
            _ => return Err(KeyStoreError::Damaged(i as u64)),
        }
        let len = slot[49] as usize;
        let subject =
            slot.get(50..50 + len).and_then(|s| std::str::from_utf8(s).ok()).ok_or(KeyStoreError::Damaged(i as u64))?;
        let entry = KeyEntry {
            key_id: slot[1..17].try_into().expect("16 bytes"),
            subject: subject.to_owned(),
            key: slot[17..49].try_into().expect("32 bytes"),
        };
        insert(&mut inner, i as u64, entry);
    }
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_reopen_erasure_is_in_place_and_replication_api_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let store = KeyStore::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(path.join("keys.bin")).unwrap().permissions().mode() & 0o777, 0o600);
        let (keys, created) = store.keys_for(&["131016/A", "131016/B", "131016/A"]).unwrap();
        assert!(created);
        assert_eq!(keys[0], keys[2], "one key per subject, even within one call");
        assert_ne!(keys[0], keys[1]);
        store.sync().unwrap();
        let (again, created) = store.keys_for(&["131016/B"]).unwrap();
        assert!(!created);
        assert_eq!(again[0], keys[1]);
        let idem = store.idempotency_key().unwrap();
        let since = store.list_since(1);
        assert_eq!(
            since.iter().map(|(s, e)| (*s, e.subject.as_str())).collect::<Vec<_>>(),
            vec![(2, "131016/A"), (3, "131016/B")]
        );

        assert_eq!(store.delete_subject("131016/A").unwrap(), 1);
        assert_eq!(store.key(&keys[0].0), None);
        let raw = std::fs::read(path.join("keys.bin")).unwrap();
        assert!(!raw.windows(32).any(|w| w == keys[0].1), "the erased key's bytes are gone from the file");
        assert!(raw.windows(32).any(|w| w == keys[1].1));
        drop(store);

        let store = KeyStore::open(&path).unwrap();
        assert_eq!(store.idempotency_key(), Some(idem));
        assert_eq!(store.key(&keys[1].0), Some(keys[1].1));
        assert_eq!(store.key(&keys[0].0), None);
        // A new key for a forgotten subject gets a new id and a new sequence number.
        let (fresh, _) = store.keys_for(&["131016/A"]).unwrap();
        assert_ne!(fresh[0].0, keys[0].0);

        // Replication: what one store lists, another puts; putting twice changes nothing.
        let other = KeyStore::open(&dir.path().join("other")).unwrap();
        for (_, e) in store.list_since(1) {
            let seq = other.put(e.clone()).unwrap();
            assert_eq!(other.put(e.clone()).unwrap(), seq);
            assert_eq!(other.by_subject(&e.subject), vec![e]);
        }
        let snapshot = dir.path().join("snap");
        assert_eq!(store.write_snapshot(&snapshot).unwrap(), 3);
        let snap = KeyStore::load_snapshot(&snapshot).unwrap();
        assert_eq!(snap.key(&keys[1].0), Some(keys[1].1));
        assert_eq!(snap.key(&keys[0].0), None);
    }
}
