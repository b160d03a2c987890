//! The auditor's check of a whole log (`bcl audit verify`), trusting nothing but the verifier key.
//!
//! In order: the checkpoint's signature; the root recomputed from every leaf; consistency with a checkpoint
//! saved earlier (a rewritten or forked history); the projections folded from scratch; every issued
//! certificate re-rendered from the fold of the log prefix it was issued from and compared by SHA-256.
//! Failures carry the position they concern; when the root does not match, the first position that differs
//! is found from the export's authenticated leaf hashes or, against a server, by bisecting with consistency
//! proofs (a prefix either is or is not the one the signed tree commits to, so the search is monotone).

use super::checkpoint::Checkpoint;
use super::merkle::{self, Hash, MemoryTree};
use super::note::NoteVerifier;
use crate::keystore::seal::UnsealError;
use crate::keystore::KeyStore;
use crate::projection::Projection;
use crate::render::Renderer;
use crate::secrets::MasterSecret;
use bcl_proto::{log_leaf::Kind, IssuanceRecord, LogLeaf};
use prost::Message;
use std::time::Instant;

/// Per-leaf failures listed individually before they are summarised.
const MAX_LISTED: usize = 100;
/// First byte of an encoded `LogLeaf` holding an issuance (field 2, length-delimited).
const ISSUANCE_TAG: u8 = 0x12;
/// First byte of an encoded `LogLeaf` holding a `Forgotten` (field 7, length-delimited).
const FORGOTTEN_TAG: u8 = 0x3A;

/// What is being verified.
pub struct Source<'a> {
    /// The signed checkpoint the leaves are checked against.
    pub note: &'a str,
    pub leaves: &'a [Vec<u8>],
    /// Leaf hashes as recorded by the log (from an export): used only to name positions, and only once
    /// they fold to the signed root.
    pub recorded_hashes: Option<&'a [Hash]>,
}

/// Answers whether the first `size` leaves, whose root the auditor computed, are the prefix the signed
/// tree commits to (a server answers with a consistency proof).
pub trait PrefixOracle {
    fn prefix_matches(&mut self, size: u64, root: &Hash) -> Result<bool, String>;
}

/// What re-rendering needs: the fonts and the scramble master secret of the log's server.
pub struct Reproducer<'a> {
    pub renderer: &'a Renderer,
    pub secret: &'a MasterSecret,
}

pub struct Options<'a, 'o> {
    pub previous_note: Option<&'a str>,
    /// The key store (or a snapshot of it) to unseal personal data with; `None` folds sealed events without
    /// their personal fields, and then no certificate printed from them can be reproduced.
    pub keys: Option<std::sync::Arc<KeyStore>>,
    pub reproducer: Option<Reproducer<'a>>,
    pub oracle: Option<&'a mut (dyn PrefixOracle + 'o)>,
    /// `(stage, done, total)`, called now and then.
    pub progress: &'a mut dyn FnMut(&str, u64, u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which check failed: checkpoint, previous, consistency, size, root, leaf, decode, issuance, reproduce.
    pub check: &'static str,
    pub position: Option<u64>,
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub origin: String,
    pub tree_size: u64,
    pub root: Hash,
    pub leaves: u64,
    pub issuances: u64,
    pub reproduced: u64,
    /// Certificates that cannot be reproduced because personal data they were printed from was erased
    /// (crypto-shredding, a `Forgotten` leaf): (issuance position, certificate id). Not a failure.
    pub forgotten_certificates: Vec<(u64, String)>,
    /// `Forgotten` leaves in the log.
    pub forgotten_residents: u64,
    /// Sealed events folded without their personal fields (erased or not supplied keys).
    pub sealed_unreadable: u64,
    pub failures: Vec<Failure>,
    pub hash_seconds: f64,
    pub fold_seconds: f64,
    pub reproduce_seconds: f64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    fn fail(&mut self, check: &'static str, position: Option<u64>, detail: impl Into<String>) {
        self.failures.push(Failure { check, position, detail: detail.into() });
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.ok(),
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root_hash": hex::encode(self.root),
            "leaves": self.leaves,
            "issuances": self.issuances,
            "reproduced": self.reproduced,
            "forgotten_residents": self.forgotten_residents,
            "sealed_unreadable": self.sealed_unreadable,
            "forgotten_certificates": self.forgotten_certificates.iter().map(|(p, id)| serde_json::json!({
                "position": p, "certificate_id": id,
            })).collect::<Vec<_>>(),
            "failures": self.failures.iter().map(|f| serde_json::json!({
                "check": f.check, "position": f.position, "detail": f.detail,
            })).collect::<Vec<_>>(),
            "seconds": { "hash": self.hash_seconds, "fold": self.fold_seconds, "reproduce": self.reproduce_seconds },
        })
    }
}

pub fn verify(verifier: &NoteVerifier, source: Source<'_>, options: Options<'_, '_>) -> Report {
    let Options { previous_note, keys, reproducer, oracle, progress } = options;
    let mut report = Report::default();
    let checkpoint = match Checkpoint::open(verifier, source.note) {
        Ok(c) => c,
        Err(e) => {
            // Nothing else can be judged without a trusted root.
            report.fail("checkpoint", None, e.to_string());
            return report;
        }
    };
    report.origin = checkpoint.origin.clone();
    report.tree_size = checkpoint.size;
    report.root = checkpoint.root;
    let n = checkpoint.size;
    let leaves = &source.leaves[..source.leaves.len().min(n as usize)];
    report.leaves = leaves.len() as u64;
    if (source.leaves.len() as u64) < n {
        report.fail(
            "size",
            Some(source.leaves.len() as u64),
            format!("the checkpoint commits to {n} leaves but only {} were supplied", source.leaves.len()),
        );
    }

    // 1. Leaf hashes and the root.
    let started = Instant::now();
    let mut tree = MemoryTree::new();
    for (i, hash) in merkle::leaf_hashes(leaves).into_iter().enumerate() {
        tree.push_leaf_hash(hash);
        if i.is_multiple_of(65_536) {
            progress("hash", i as u64, n);
        }
    }
    progress("hash", leaves.len() as u64, n);
    report.hash_seconds = started.elapsed().as_secs_f64();
    if tree.size() == n && tree.root() != checkpoint.root {
        report.fail("root", None, "the root recomputed from the leaves differs from the signed root");
    }
    if tree.size() != n || tree.root() != checkpoint.root {
        locate_differences(&mut report, &tree, &checkpoint, source.recorded_hashes, oracle);
    }

    // 2. Consistency with what this auditor saw before.
    if let Some(previous) = previous_note {
        match Checkpoint::open(verifier, previous) {
            Err(e) => report.fail("previous", None, format!("the saved checkpoint does not verify: {e}")),
            Ok(p) if p.size > n => report.fail(
                "consistency",
                Some(n),
                format!("the log shrank: the saved checkpoint has {} leaves, the current one {n}", p.size),
            ),
            Ok(p) if p.size <= tree.size() => {
                let earlier = merkle::root(&tree, p.size).expect("every node of a memory tree is present");
                if earlier != p.root {
                    report.fail(
                        "consistency",
                        None,
                        format!("the first {} leaves are not the ones the saved checkpoint committed to: history rewritten or forked", p.size),
                    );
                }
            }
            Ok(_) => report.fail("consistency", None, "too few leaves to check the saved checkpoint"),
        }
    }

    // 3. Fold from scratch, re-rendering each certificate from the state it was issued from.
    let mut issuances: Vec<(u64, IssuanceRecord)> = Vec::new();
    for (position, bytes) in leaves.iter().enumerate() {
        if bytes.first() == Some(&ISSUANCE_TAG) {
            if let Ok(LogLeaf { kind: Some(Kind::Issuance(record)) }) = LogLeaf::decode(bytes.as_slice()) {
                issuances.push((position as u64, record));
            }
        }
    }
    report.issuances = issuances.len() as u64;
    let mut pending: Vec<&(u64, IssuanceRecord)> = Vec::new();
    for item in &issuances {
        let (position, record) = item;
        if record.as_of_position > *position {
            report.fail(
                "issuance",
                Some(*position),
                format!("certificate {} claims a snapshot after itself", record.certificate_id),
            );
        } else if let Some(s) = record.source_positions.iter().find(|&&s| s >= record.as_of_position) {
            report.fail(
                "issuance",
                Some(*position),
                format!("certificate {} cites position {s}, outside its snapshot", record.certificate_id),
            );
        } else {
            pending.push(item);
        }
    }
    pending.sort_by_key(|(_, r)| r.as_of_position);
    let mut next = pending.into_iter().peekable();
    let started = Instant::now();
    let mut reproduce_time = std::time::Duration::ZERO;
    let mut projection = match &keys {
        Some(k) => Projection::with_keys(k.clone(), false),
        None => Projection::default(),
    };
    // Decoding and unsealing run a chunk ahead of the fold, on the other core.
    let total = leaves.len() as u64;
    let chunks = leaves.chunks(8192).map(|c| Ok::<_, std::convert::Infallible>(c.iter().collect::<Vec<_>>()));
    let folded = crate::projection::fold_pipelined(&mut projection, chunks, |projection, position, decoded| {
        while let Some((at, record)) = next.next_if(|(_, r)| r.as_of_position == position) {
            if let Some(r) = &reproducer {
                let t = Instant::now();
                let result = crate::issuance::check_sources_readable(projection, record).and_then(|()| {
                    crate::issuance::reproduce_from_state(r.renderer, r.secret, &projection.state, record)
                });
                match result {
                    Ok(_) => report.reproduced += 1,
                    Err(crate::error::EngineError::Refused(refusal))
                        if refusal.reason == bcl_projections::RefusalReason::PersonalDataErased =>
                    {
                        report.forgotten_certificates.push((*at, record.certificate_id.clone()))
                    }
                    Err(e) => {
                        report.fail("reproduce", Some(*at), format!("certificate {}: {e}", record.certificate_id))
                    }
                }
                reproduce_time += t.elapsed();
            }
        }
        if decoded.is_undecodable() {
            // Folded as an empty leaf, which keeps positions aligned with the log for the leaves after it.
            report.fail("decode", Some(position), "the leaf is not a bcl.v1.LogLeaf");
        }
        if position.is_multiple_of(65_536) {
            progress("fold", position, total);
        }
    });
    match folded {
        Ok(()) => {}
        Err(never) => match never {},
    }
    progress("fold", leaves.len() as u64, leaves.len() as u64);
    check_sealed(&mut report, &projection, leaves, keys.is_some());
    report.reproduce_seconds = reproduce_time.as_secs_f64();
    report.fold_seconds = started.elapsed().as_secs_f64() - report.reproduce_seconds;
    report
}

/// Sealed events that could not be read. Damage (a key is there, the ciphertext does not authenticate, or the
/// leaf is malformed) is a failure at its position. A missing key is expected for a resident with a
/// `Forgotten` leaf; with keys supplied, a missing key for anyone else is a failure (the key store lost it).
/// Without keys nothing can be told apart, so missing keys are only counted.
fn check_sealed(report: &mut Report, projection: &Projection, leaves: &[Vec<u8>], keys_supplied: bool) {
    let forgotten: std::collections::HashSet<(String, String)> = leaves
        .iter()
        .filter(|b| b.first() == Some(&FORGOTTEN_TAG))
        .filter_map(|b| match LogLeaf::decode(b.as_slice()).ok()?.kind {
            Some(Kind::Forgotten(f)) => Some((f.municipality_code, f.resident_id)),
            _ => None,
        })
        .collect();
    report.forgotten_residents = forgotten.len() as u64;
    report.sealed_unreadable = projection.unreadable().len() as u64;
    let mut listed = 0;
    for (position, error) in projection.unreadable() {
        let problem = match error {
            UnsealError::KeyMissing if !keys_supplied => None,
            UnsealError::KeyMissing => {
                let subject = LogLeaf::decode(leaves[*position as usize].as_slice()).ok().and_then(|l| match l.kind {
                    Some(Kind::SealedChangeEvent(s)) => crate::keystore::seal::clear_part(&s).ok().map(|(ev, _)| ev),
                    _ => None,
                });
                let is_forgotten = subject.as_ref().is_some_and(|ev| {
                    bcl_projections::personal::sealed_subject(ev)
                        .is_some_and(|r| forgotten.contains(&(ev.municipality_code.clone(), r.to_owned())))
                });
                (!is_forgotten).then(|| {
                    "the key store has no key for this sealed event and its resident was never forgotten".to_owned()
                })
            }
            e => Some(e.to_string()),
        };
        if let Some(detail) = problem {
            listed += 1;
            if listed <= MAX_LISTED {
                report.fail("sealed", Some(*position), detail);
            }
        }
    }
    if listed > MAX_LISTED {
        report.fail("sealed", None, format!("{} more sealed events cannot be read", listed - MAX_LISTED));
    }
}

/// Names the positions where the supplied leaves differ from what the signed checkpoint commits to.
fn locate_differences(
    report: &mut Report,
    tree: &MemoryTree,
    checkpoint: &Checkpoint,
    recorded: Option<&[Hash]>,
    oracle: Option<&mut (dyn PrefixOracle + '_)>,
) {
    if let Some(recorded) = recorded {
        let mut hints = MemoryTree::new();
        recorded.iter().for_each(|h| hints.push_leaf_hash(*h));
        if hints.size() != checkpoint.size || hints.root() != checkpoint.root {
            report.fail("root", None, "the export's recorded leaf hashes do not match the signed checkpoint either");
            return;
        }
        let mut listed = 0;
        let mut differing = 0u64;
        for (position, want) in recorded.iter().enumerate() {
            if tree.leaf(position as u64).as_ref() != Some(want) {
                differing += 1;
                if listed < MAX_LISTED {
                    listed += 1;
                    let what = if (position as u64) < tree.size() {
                        "the leaf differs from the one the log recorded"
                    } else {
                        "the leaf is missing"
                    };
                    report.fail("leaf", Some(position as u64), what);
                }
            }
        }
        if differing > listed as u64 {
            report.fail("leaf", None, format!("{} more differing leaves not listed", differing - listed as u64));
        }
        return;
    }
    let Some(oracle) = oracle else { return };
    // The longest prefix the signed tree agrees with: prefix 0 always does; the whole tree does not.
    let (mut good, mut bad) = (0u64, tree.size().min(checkpoint.size));
    if tree.size() < checkpoint.size {
        match oracle.prefix_matches(bad, &tree.root()) {
            Ok(true) => {
                return; // what we have is a correct prefix; the size failure already says what is missing
            }
            Ok(false) => {}
            Err(e) => return report.fail("root", None, format!("cannot locate the difference: {e}")),
        }
    }
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        let root = merkle::root(tree, mid).expect("every node of a memory tree is present");
        match oracle.prefix_matches(mid, &root) {
            Ok(true) => good = mid,
            Ok(false) => bad = mid,
            Err(e) => return report.fail("root", None, format!("cannot locate the difference: {e}")),
        }
    }
    report.fail("leaf", Some(good), "first leaf that differs from the history the signed checkpoint commits to");
}

/// A prefix check against a tree whose root at `size` is known and whose consistency proofs can be asked for.
pub fn prefix_matches_with_proof(
    first: u64,
    first_root: &Hash,
    checkpoint_size: u64,
    checkpoint_root: &Hash,
    proof: &[Hash],
) -> bool {
    merkle::verify_consistency(first, checkpoint_size, first_root, checkpoint_root, proof).is_ok()
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
