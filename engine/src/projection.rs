//! The engine's in-memory projection: the pure fold of the whole log (from `bcl-projections`) plus the few
//! facts the writer needs to decide whether an issuance prepared against an earlier snapshot is still valid.
//!
//! Sealed change events are unsealed here, with the key store, before the pure fold sees them; a leaf
//! whose key is gone folds as a forgotten resident's event. The live projection (rebuild on start and the
//! writer) also *erases* a resident's keys when it folds their `Forgotten` leaf, so any engine folding the
//! same log (a restarted one, a replica) forgets too; folds made for reproduction or audit only read keys.

use crate::keystore::seal::{clear_part, unseal_into, unseal_ref_with_key, SealedRef, UnsealError, UnsealScratch};
use crate::keystore::{KeyId, KeyStore};
use bcl_projections::{validate_event, State, ValidationError};
use bcl_proto::{log_leaf::Kind, ChangeEvent, LogLeaf};
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Projection {
    pub state: State,
    /// Number of leaves folded so far = the position the next leaf will get.
    pub leaf_count: u64,
    /// Per municipality, the position of the last leaf that could change what a certificate shows or
    /// whether it may be issued (change events, admin actions, link anomalies; not issuances).
    last_change: HashMap<String, u64>,
    /// The newest `Leadership` leaf and its position (replicated deployments only): who sequences the log.
    pub leadership: Option<(u64, bcl_proto::Leadership)>,
    /// Position of the first Leadership leaf of the current epoch (where the current primary took over).
    pub epoch_start: Option<u64>,
    keys: Arc<KeyStore>,
    /// Erase keys on `Forgotten` leaves (the engine's own projection only).
    erase_on_forget: bool,
    /// Sealed leaves whose personal part could not be read, ascending: (position, why).
    unreadable: Vec<(u64, UnsealError)>,
    /// An erasure that failed (the key store could not be written): the caller must not go on as if the
    /// resident were forgotten.
    pub erase_failure: Option<String>,
}

impl Default for Projection {
    /// A fold without keys: sealed events stay sealed (an auditor without a key-store snapshot).
    fn default() -> Self {
        Projection::with_keys(Arc::new(KeyStore::empty()), false)
    }
}

impl Projection {
    pub fn with_keys(keys: Arc<KeyStore>, erase_on_forget: bool) -> Projection {
        Projection {
            state: State::default(),
            leaf_count: 0,
            last_change: HashMap::new(),
            keys,
            erase_on_forget,
            unreadable: Vec::new(),
            erase_failure: None,
            leadership: None,
            epoch_start: None,
        }
    }

    pub fn apply(&mut self, leaf: &LogLeaf) {
        let position = self.leaf_count;
        let municipality = match &leaf.kind {
            Some(Kind::SealedChangeEvent(sealed)) => match clear_part(sealed) {
                Ok((mut ev, digest)) => {
                    let readable = match unseal_into(&self.keys, sealed, &mut ev) {
                        Ok(()) => true,
                        Err(e) => {
                            // A failed merge may have left part of the personal fields in `ev`.
                            if let Ok((clear, _)) = clear_part(sealed) {
                                ev = clear;
                            }
                            self.unreadable.push((position, e));
                            false
                        }
                    };
                    self.state.apply_owned_change(position, &mut ev, digest, readable, None);
                    Some(ev.municipality_code)
                }
                Err(e) => {
                    self.unreadable.push((position, e));
                    self.state.apply(position, leaf);
                    None
                }
            },
            _ => {
                self.state.apply(position, leaf);
                match &leaf.kind {
                    Some(Kind::ChangeEvent(e)) => Some(e.municipality_code.clone()),
                    Some(Kind::Admin(a)) => Some(a.municipality_code.clone()),
                    Some(Kind::LinkAnomaly(a)) => Some(a.municipality_code.clone()),
                    Some(Kind::Forgotten(f)) => {
                        if self.erase_on_forget {
                            let subject = crate::keystore::subject(&f.municipality_code, &f.resident_id);
                            if let Err(e) = self.keys.delete_subject(&subject) {
                                self.erase_failure = Some(e.to_string());
                            }
                        }
                        Some(f.municipality_code.clone())
                    }
                    Some(Kind::Leadership(l)) => {
                        if self.leadership.as_ref().is_none_or(|(_, old)| old.epoch != l.epoch) {
                            self.epoch_start = Some(position);
                        }
                        self.leadership = Some((position, l.clone()));
                        None
                    }
                    // Issuances and refusals change neither eligibility nor printed data.
                    Some(Kind::Issuance(_)) | Some(Kind::Refusal(_)) | Some(Kind::SealedChangeEvent(_)) | None => None,
                }
            }
        };
        if let Some(code) = municipality {
            self.touch(&code, position);
        }
        self.leaf_count += 1;
    }

    /// Folds a leaf prepared by [`decode_leaf`] (possibly on another thread): the same as [`Projection::apply`]
    /// on the leaf it was decoded from.
    pub fn apply_decoded(&mut self, mut decoded: DecodedLeaf) {
        self.apply_decoded_mut(&mut decoded);
    }

    /// [`Projection::apply_decoded`] that moves what the state keeps out of `decoded` instead of copying it
    /// and leaves the rest to the caller (the rebuild drops it on another thread).
    pub fn apply_decoded_mut(&mut self, decoded: &mut DecodedLeaf) {
        let position = self.leaf_count;
        match decoded {
            DecodedLeaf::Plain { ev, digest, checked } => {
                self.state.apply_owned_change(position, ev, *digest, true, Some(*checked));
            }
            DecodedLeaf::Sealed { ev, digest, unreadable, checked } => {
                let readable = unreadable.is_none();
                if let Some(e) = unreadable.take() {
                    self.unreadable.push((position, e));
                }
                self.state.apply_owned_change(position, ev, *digest, readable, *checked);
            }
            DecodedLeaf::Other(leaf) => return self.apply(leaf),
            DecodedLeaf::Undecodable => return self.apply(&LogLeaf { kind: None }),
        }
        let (DecodedLeaf::Plain { ev, .. } | DecodedLeaf::Sealed { ev, .. }) = decoded else { return };
        self.touch(&ev.municipality_code, position);
        self.leaf_count += 1;
    }

    /// Folds a change event as a leaf, with its digest already computed (the ingest hot path: the writer
    /// holds the plaintext, sealed or not, so nothing is unsealed here).
    pub fn apply_change_event(&mut self, ev: &bcl_proto::ChangeEvent, digest: [u8; 32]) {
        let position = self.leaf_count;
        self.state.apply_change_event(position, ev, digest);
        self.touch(&ev.municipality_code, position);
        self.leaf_count += 1;
    }

    fn touch(&mut self, code: &str, position: u64) {
        match self.last_change.get_mut(code) {
            Some(p) => *p = position,
            None => {
                self.last_change.insert(code.to_string(), position);
            }
        }
    }

    /// The position of the last leaf that changed `municipality` (see `changed_since`).
    pub fn last_change(&self, municipality: &str) -> Option<u64> {
        self.last_change.get(municipality).copied()
    }

    /// Whether anything about `municipality` changed at or after `position`.
    pub fn changed_since(&self, municipality: &str, position: u64) -> bool {
        self.last_change.get(municipality).is_some_and(|&p| p >= position)
    }

    /// Sealed leaves folded without their personal part, ascending by position.
    pub fn unreadable(&self) -> &[(u64, UnsealError)] {
        &self.unreadable
    }

    /// The first sealed leaf that was altered (its key is there, its ciphertext does not authenticate, or it
    /// does not parse): damage, as opposed to a forgotten resident.
    pub fn first_damaged(&self) -> Option<&(u64, UnsealError)> {
        self.unreadable.iter().find(|(_, e)| *e != UnsealError::KeyMissing)
    }

    /// Whether the leaf at `position` is a sealed event that was folded without its personal part.
    pub fn is_unreadable(&self, position: u64) -> bool {
        self.unreadable.binary_search_by_key(&position, |(p, _)| *p).is_ok()
    }

    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }
}

/// A leaf decoded, hashed and unsealed: everything of folding that needs no projection state, so a rebuild
/// can do it on a second core while the fold runs ([`fold_pipelined`]).
pub enum DecodedLeaf {
    /// A plain change event, its digest (SHA-256 of its encoding, as the writer computed it) and
    /// `validate_event` of it (run here rather than in the sequential fold).
    Plain { ev: ChangeEvent, digest: [u8; 32], checked: Result<(), ValidationError> },
    /// A sealed change event: whole if it could be unsealed, otherwise its readable part and why not;
    /// `checked` as for `Plain`, for a whole event only (the fold does not validate an unreadable one).
    Sealed {
        ev: ChangeEvent,
        digest: [u8; 32],
        unreadable: Option<UnsealError>,
        checked: Option<Result<(), ValidationError>>,
    },
    /// Any other kind of leaf.
    Other(LogLeaf),
    /// Not a `LogLeaf` (folded as an empty leaf to keep positions aligned).
    Undecodable,
}

impl DecodedLeaf {
    pub fn is_undecodable(&self) -> bool {
        matches!(self, DecodedLeaf::Undecodable)
    }
}

/// First byte of an encoded `LogLeaf` holding a change event (field 1, length-delimited).
const CHANGE_EVENT_TAG: u8 = 0x0A;

/// First byte of an encoded `LogLeaf` holding a sealed change event (field 6, length-delimited).
const SEALED_TAG: u8 = 0x32;

pub fn decode_leaf(keys: &KeyStore, bytes: &[u8]) -> DecodedLeaf {
    decode_leaf_with(keys, bytes, &mut UnsealScratch::default())
}

/// A sealed leaf's event, whole, with its validation; or its readable part and why the rest is not there.
fn sealed_leaf(ev: ChangeEvent, digest: [u8; 32], unreadable: Option<UnsealError>) -> DecodedLeaf {
    let checked = unreadable.is_none().then(|| validate_event(&ev));
    DecodedLeaf::Sealed { ev, digest, unreadable, checked }
}

/// [`decode_leaf`] reusing a decoding thread's buffers.
pub fn decode_leaf_with(keys: &KeyStore, bytes: &[u8], scratch: &mut UnsealScratch) -> DecodedLeaf {
    if let Some(sealed) = sealed_in_place(bytes) {
        let key = <&KeyId>::try_from(sealed.key_id).ok().and_then(|id| keys.key(id));
        if let Some(decoded) = decode_sealed_in_place(&sealed, key.as_ref(), scratch) {
            return decoded;
        }
    }
    decode_with_prost(keys, bytes)
}

/// A decoding thread's reused buffers: the unsealing scratch and the keys of the leaves being decoded.
#[derive(Default)]
pub struct DecodeScratch {
    unseal: UnsealScratch,
    keys: Vec<Option<[u8; 32]>>,
}

/// Leaves whose keys are looked up together: enough for the lookups' cache misses to overlap and the lock
/// to be taken rarely, few enough for the borrowed fields to stay on the stack (about 22 KB).
const KEY_BATCH: usize = 256;

/// [`decode_leaf_with`] on a chunk of leaves, appended to `out`: the same leaves, decoded the same way, but
/// the keys of each batch of sealed leaves are looked up first, all at once ([`KeyStore::keys_of`]: one
/// lock, and the lookups' cache misses overlap instead of stalling each leaf in turn).
pub fn decode_chunk_into<L: AsRef<[u8]>>(
    keys: &KeyStore,
    leaves: &[L],
    scratch: &mut DecodeScratch,
    out: &mut Vec<DecodedLeaf>,
) {
    out.reserve(leaves.len());
    let DecodeScratch { unseal, keys: found } = scratch;
    for batch in leaves.chunks(KEY_BATCH) {
        let mut sealed = [None; KEY_BATCH];
        for (s, bytes) in sealed.iter_mut().zip(batch) {
            *s = sealed_in_place(bytes.as_ref());
        }
        let sealed = &sealed[..batch.len()];
        found.clear();
        keys.keys_of(sealed.iter().map(|s| s.as_ref().and_then(|s| <&KeyId>::try_from(s.key_id).ok())), found);
        for ((bytes, sealed), key) in batch.iter().zip(sealed).zip(found.iter()) {
            let decoded = sealed.and_then(|sealed| decode_sealed_in_place(&sealed, key.as_ref(), unseal));
            out.push(decoded.unwrap_or_else(|| decode_with_prost(keys, bytes.as_ref())));
        }
    }
}

/// The fields of a canonical sealed leaf, borrowed in place (most of the log); `None` for anything else,
/// which prost decodes.
fn sealed_in_place(bytes: &[u8]) -> Option<SealedRef<'_>> {
    if bytes.first() != Some(&SEALED_TAG) {
        return None;
    }
    canonical_event_bytes(bytes).and_then(SealedRef::parse)
}

/// A sealed leaf read in place with its key (`key` is the store's key for its key id); `None` if its
/// readable part does not decode, for prost to decide what the leaf is.
fn decode_sealed_in_place(
    sealed: &SealedRef<'_>,
    key: Option<&[u8; 32]>,
    scratch: &mut UnsealScratch,
) -> Option<DecodedLeaf> {
    let (mut ev, digest) = sealed.clear_part().ok()?;
    let unreadable = unseal_ref_with_key(key, sealed, &mut ev, scratch).err();
    if unreadable.is_some() {
        // A failed merge may have left part of the personal fields in `ev`.
        if let Ok((clear, _)) = sealed.clear_part() {
            ev = clear;
        }
    }
    Some(sealed_leaf(ev, digest, unreadable))
}

/// Any leaf, decoded with prost (everything but a canonical sealed leaf with a decodable readable part).
fn decode_with_prost(keys: &KeyStore, bytes: &[u8]) -> DecodedLeaf {
    let Ok(leaf) = LogLeaf::decode(bytes) else { return DecodedLeaf::Undecodable };
    match leaf.kind {
        Some(Kind::ChangeEvent(ev)) => {
            // The writer's digest is SHA-256 of the event's encoding, which is the leaf minus its tag and length
            // when the leaf is canonical; otherwise fall back to re-encoding, as the pure fold does.
            let digest = match canonical_event_bytes(bytes) {
                Some(event) if bytes[0] == CHANGE_EVENT_TAG && event.len() == ev.encoded_len() => {
                    Sha256::digest(event).into()
                }
                _ => bcl_projections::event_digest(&ev),
            };
            let checked = validate_event(&ev);
            DecodedLeaf::Plain { ev, digest, checked }
        }
        Some(Kind::SealedChangeEvent(sealed)) => match clear_part(&sealed) {
            Ok((mut ev, digest)) => {
                let unreadable = unseal_into(keys, &sealed, &mut ev).err();
                if unreadable.is_some() {
                    // A failed merge may have left part of the personal fields in `ev`.
                    if let Ok((clear, _)) = clear_part(&sealed) {
                        ev = clear;
                    }
                }
                sealed_leaf(ev, digest, unreadable)
            }
            Err(_) => DecodedLeaf::Other(LogLeaf { kind: Some(Kind::SealedChangeEvent(sealed)) }),
        },
        kind => DecodedLeaf::Other(LogLeaf { kind }),
    }
}

/// The bytes after a leaf's one-byte tag and its varint length, if the length covers the rest exactly.
fn canonical_event_bytes(bytes: &[u8]) -> Option<&[u8]> {
    let mut rest = bytes.get(1..)?;
    let len = prost::encoding::decode_varint(&mut rest).ok()?;
    (len as usize == rest.len()).then_some(rest)
}

/// Folds a sequence of leaves into `projection`. Decoding, unsealing and validating (most of the cost of a
/// sealed leaf: protobuf decoding, XChaCha20-Poly1305, merging the personal part, the field rules) run on
/// worker threads, chunks handed out round robin and collected in the same order, while this thread folds;
/// the fold itself stays sequential and moves the strings it keeps out of the decoded events, and what is
/// left of a folded chunk is freed by the worker that decoded it.
/// `chunks` yields the leaves in log order from `projection.leaf_count`; `before` is called with each
/// position before its leaf is folded and with the decoded leaf (the auditor re-renders certificates there
/// and notes undecodable leaves).
pub fn fold_pipelined<C, L, E>(
    projection: &mut Projection,
    chunks: C,
    mut before: impl FnMut(&Projection, u64, &DecodedLeaf),
) -> Result<(), E>
where
    C: Iterator<Item = Result<Vec<L>, E>> + Send,
    L: AsRef<[u8]> + Send,
    E: Send,
{
    // Two decoders and the fold keep two cores busy; more only helps on bigger machines.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4);
    let keys = projection.keys.clone();
    std::thread::scope(|scope| {
        let mut inputs = Vec::with_capacity(workers);
        let mut outputs = Vec::with_capacity(workers);
        let mut spent = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (in_tx, in_rx) = std::sync::mpsc::sync_channel::<Result<Vec<L>, E>>(2);
            let (out_tx, out_rx) = std::sync::mpsc::sync_channel::<Result<Vec<DecodedLeaf>, E>>(2);
            // What the fold left of this worker's chunks comes back to be freed here, where it was allocated:
            // freeing on the allocating thread refills its own allocator caches (the next chunk reuses the
            // memory, warm) instead of contending for its arena from another thread, and the emptied vector
            // (a few MB for 8,192 events) holds the next chunk without new pages to fault in. Unbounded, so
            // the fold never blocks on it; a worker empties it before each chunk, so at most a few wait.
            let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Vec<DecodedLeaf>>();
            let keys = keys.clone();
            scope.spawn(move || {
                let mut scratch = DecodeScratch::default();
                let mut free: Vec<Vec<DecodedLeaf>> = Vec::new();
                for chunk in in_rx {
                    for mut done in spent_rx.try_iter() {
                        done.clear();
                        if free.len() < 2 {
                            free.push(done);
                        }
                    }
                    let decoded = chunk.map(|leaves| {
                        let mut out = free.pop().unwrap_or_default();
                        decode_chunk_into(&keys, &leaves, &mut scratch, &mut out);
                        out
                    });
                    if out_tx.send(decoded).is_err() {
                        break;
                    }
                }
                // The fold ends when every output channel is closed; then it closes `spent`.
                drop(out_tx);
                spent_rx.into_iter().for_each(drop);
            });
            inputs.push(in_tx);
            outputs.push(out_rx);
            spent.push(spent_tx);
        }
        // Reading the chunks (sled for a rebuild) happens on its own thread too; an error ends the stream.
        scope.spawn(move || {
            for (i, chunk) in chunks.enumerate() {
                let stop = chunk.is_err();
                if inputs[i % workers].send(chunk).is_err() || stop {
                    return;
                }
            }
        });
        // Freeing what the fold left of each chunk (ids, sequence data, the strings it did not keep) would be a
        // tenth of the sequential thread's work: the chunk goes back to the worker that decoded it.
        for i in 0.. {
            // A closed channel means the stream ended (or stopped at an error, which was delivered first).
            let Ok(chunk) = outputs[i % workers].recv() else { break };
            let mut chunk = chunk?;
            for decoded in &mut chunk {
                before(projection, projection.leaf_count, decoded);
                projection.apply_decoded_mut(decoded);
            }
            // If the worker is gone (it stopped at an error), the chunk is dropped here.
            let _ = spent[i % workers].send(chunk);
        }
        drop(spent);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::seal::prepare_events;
    use bcl_proto::change_event::Body;
    use prost::Message;

    /// The pipelined rebuild validates on its decoding threads and moves strings out of the decoded events;
    /// the serial fold of the same leaves validates in the fold and copies. Both must reach the same state,
    /// including for events that wait in a backlog (out of order) and events that break a field rule.
    #[test]
    fn pipelined_rebuild_equals_the_serial_fold_with_gaps_and_invalid_events() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(KeyStore::open(dir.path()).unwrap());
        let mut events = bcl_fixtures::generate(&bcl_fixtures::Spec { households: 30, ..Default::default() }).events;
        assert!(events.len() > 60);
        // Two later events arrive before the ones they follow: both wait in the backlog, then drain.
        events.swap(20, 21);
        events.swap(40, 43);
        // A change that breaks a field rule (a control character in a name) is held, and so is the rest.
        let changed = events
            .iter()
            .position(|e| matches!(&e.body, Some(Body::ResidentChanged(c)) if c.given_name.is_some()))
            .or_else(|| events.iter().position(|e| matches!(e.body, Some(Body::ResidentRegistered(_)))))
            .unwrap();
        match events[changed].body.as_mut().unwrap() {
            Body::ResidentChanged(c) => c.given_name = Some("花\u{7}子".into()),
            Body::ResidentRegistered(r) => r.given_name = "花\u{7}子".into(),
            _ => unreachable!(),
        }
        assert!(bcl_projections::validate_event(&events[changed]).is_err());
        let leaves: Vec<Vec<u8>> = prepare_events(&keys, &events).unwrap().into_iter().map(|p| p.leaf).collect();

        let mut serial = Projection::with_keys(keys.clone(), false);
        for l in &leaves {
            serial.apply(&LogLeaf::decode(l.as_slice()).unwrap());
        }
        let mut pipelined = Projection::with_keys(keys.clone(), false);
        let chunks = leaves.chunks(7).map(|c| Ok::<_, ()>(c.iter().collect::<Vec<_>>()));
        fold_pipelined(&mut pipelined, chunks, |_, _, _| {}).unwrap();
        assert_eq!(pipelined.leaf_count, leaves.len() as u64);
        assert_eq!(pipelined.state, serial.state);
        assert_eq!(pipelined.last_change, serial.last_change);
        let status = pipelined.state.status("131016").unwrap();
        assert!(status.backlog > 0, "the invalid event holds the rest back");
        assert!(status.reason.contains("cannot be applied"), "{}", status.reason);
    }

    fn same_decoding(a: &DecodedLeaf, b: &DecodedLeaf) -> bool {
        match (a, b) {
            (DecodedLeaf::Plain { ev, digest, checked }, DecodedLeaf::Plain { ev: e, digest: d, checked: c }) => {
                (ev, digest, checked) == (e, d, c)
            }
            (
                DecodedLeaf::Sealed { ev, digest, unreadable, checked },
                DecodedLeaf::Sealed { ev: e, digest: d, unreadable: u, checked: c },
            ) => (ev, digest, unreadable, checked) == (e, d, u, c),
            (DecodedLeaf::Other(a), DecodedLeaf::Other(b)) => a == b,
            (DecodedLeaf::Undecodable, DecodedLeaf::Undecodable) => true,
            _ => false,
        }
    }

    /// The rebuild decodes a chunk at a time with the chunk's keys looked up first; it must decode every
    /// leaf exactly as one leaf at a time does, for good leaves and for every kind of bad one (forgotten
    /// key, damaged ciphertext, malformed key id or nonce, undecodable readable part, non-canonical or
    /// truncated leaves, garbage), and in any order.
    #[test]
    fn chunk_decoding_equals_leaf_decoding_on_valid_and_hostile_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyStore::open(dir.path()).unwrap();
        let events = bcl_fixtures::generate(&bcl_fixtures::Spec { households: 40, ..Default::default() }).events;
        let mut leaves: Vec<Vec<u8>> = prepare_events(&keys, &events).unwrap().into_iter().map(|p| p.leaf).collect();
        let first_sealed = leaves.iter().position(|l| l[0] == SEALED_TAG).unwrap();
        let sealed = match LogLeaf::decode(leaves[first_sealed].as_slice()).unwrap().kind {
            Some(Kind::SealedChangeEvent(s)) => s,
            _ => unreachable!(),
        };
        let resealed = |f: &dyn Fn(&mut bcl_proto::SealedChangeEvent)| {
            let mut s = sealed.clone();
            f(&mut s);
            LogLeaf { kind: Some(Kind::SealedChangeEvent(s)) }.encode_to_vec()
        };
        let mut hostile = vec![
            resealed(&|s| s.sealed[3] ^= 1),
            resealed(&|s| s.nonce[0] ^= 1),
            resealed(&|s| *s.event.last_mut().unwrap() ^= 1),
            resealed(&|s| s.key_id.truncate(15)),
            resealed(&|s| s.key_id[0] ^= 1),
            resealed(&|s| s.nonce.truncate(12)),
            resealed(&|s| s.digest.truncate(31)),
            resealed(&|s| s.event = vec![0xFF]),
            resealed(&|s| s.sealed.truncate(4)),
            leaves[first_sealed][..leaves[first_sealed].len() - 1].to_vec(),
            vec![],
            vec![0xFF, 0x01, 0x02],
            vec![SEALED_TAG, 0x00],
        ];
        // Non-canonical: an unknown field after the sealed event (prost skips it) and a varint field inside.
        let mut trailing = leaves[first_sealed].clone();
        trailing.extend_from_slice(&[0x78, 0x01]);
        hostile.push(trailing);
        let mut inner = resealed(&|_| {});
        inner.extend_from_slice(&[0x30, 0x01]);
        inner[1] += 2;
        hostile.push(inner);
        leaves.extend(hostile);
        // A forgotten resident: their key is gone, their leaves fold without personal data.
        // (The last resident registered: the damaged leaves above are the first one's.)
        let (code, resident) = events
            .iter()
            .rev()
            .find_map(|e| match &e.body {
                Some(bcl_proto::change_event::Body::ResidentRegistered(r)) => {
                    Some((e.municipality_code.clone(), r.resident_id.clone()))
                }
                _ => None,
            })
            .unwrap();
        keys.delete_subject(&crate::keystore::subject(&code, &resident)).unwrap();
        leaves.swap(1, 7);

        let one_by_one: Vec<DecodedLeaf> = leaves.iter().map(|l| decode_leaf(&keys, l)).collect();
        assert!(one_by_one.iter().any(|d| matches!(d, DecodedLeaf::Sealed { unreadable: None, .. })));
        for why in [UnsealError::KeyMissing, UnsealError::Authentication] {
            assert!(one_by_one
                .iter()
                .any(|d| matches!(d, DecodedLeaf::Sealed { unreadable: Some(e), .. } if *e == why)));
        }
        assert!(one_by_one
            .iter()
            .any(|d| matches!(d, DecodedLeaf::Sealed { unreadable: Some(UnsealError::Malformed(_)), .. })));
        assert!(one_by_one.iter().any(DecodedLeaf::is_undecodable));
        assert!(leaves.len() > KEY_BATCH, "several key batches in one chunk");
        for size in [1, 5, leaves.len()] {
            let mut scratch = DecodeScratch::default();
            let mut chunked = Vec::new();
            leaves.chunks(size).for_each(|c| decode_chunk_into(&keys, c, &mut scratch, &mut chunked));
            assert_eq!(chunked.len(), leaves.len());
            for (i, (a, b)) in one_by_one.iter().zip(&chunked).enumerate() {
                assert!(same_decoding(a, b), "leaf {i} decodes differently in chunks of {size}");
            }
        }
    }

    /// The engine folds what it appends from the plaintext (writer) and everything else from the stored
    /// leaves (rebuild): both must reach the same state, before and after a resident is forgotten, or a
    /// restart would change what certificates say.
    #[test]
    fn live_fold_and_rebuild_agree_before_and_after_forgetting() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(KeyStore::open(dir.path()).unwrap());
        let events = bcl_fixtures::generate(&bcl_fixtures::Spec { households: 8, ..Default::default() }).events;
        let prepared = prepare_events(&keys, &events).unwrap();
        let mut live = Projection::with_keys(keys.clone(), true);
        let mut leaves: Vec<Vec<u8>> = Vec::new();
        for (ev, p) in events.iter().zip(&prepared) {
            live.apply_change_event(ev, p.digest);
            leaves.push(p.leaf.clone());
        }
        let rebuild = |leaves: &[Vec<u8>]| {
            let mut p = Projection::with_keys(keys.clone(), false);
            for l in leaves {
                p.apply(&LogLeaf::decode(l.as_slice()).unwrap());
            }
            p
        };
        let before = rebuild(&leaves);
        assert!(before.unreadable().is_empty());
        assert_eq!(before.state, live.state);

        let (code, resident) = events
            .iter()
            .find_map(|e| match &e.body {
                Some(Body::ResidentRegistered(r)) => Some((e.municipality_code.clone(), r.resident_id.clone())),
                _ => None,
            })
            .unwrap();
        let forgotten = LogLeaf {
            kind: Some(Kind::Forgotten(bcl_proto::Forgotten {
                municipality_code: code.clone(),
                resident_id: resident.clone(),
                at: "2026-04-01T10:00:00+09:00".into(),
                actor: "test".into(),
            })),
        };
        live.apply(&forgotten);
        leaves.push(forgotten.encode_to_vec());
        assert!(keys.by_subject(&crate::keystore::subject(&code, &resident)).is_empty(), "the fold erased the key");

        let after = rebuild(&leaves);
        assert!(!after.unreadable().is_empty());
        assert!(after.unreadable().iter().all(|(_, e)| *e == UnsealError::KeyMissing));
        assert_eq!(after.state, live.state, "a restart after forgetting rebuilds the same state");
        let m = after.state.municipality(&code).unwrap();
        assert!(m.is_forgotten(&resident));
        let r = m.resident(&resident).unwrap();
        assert!(r.family_name.is_empty() && r.address.is_empty() && r.personal_number.is_empty());
        // Everyone else is intact and the municipality keeps being served.
        assert!(m.residents().filter(|r| r.id != resident).all(|r| !r.family_name.is_empty()));
        assert!(m.link().is_active());
    }
}
