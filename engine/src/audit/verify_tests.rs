//! The verifier against honest and tampered logs, without a server: leaves are real encoded change events
//! from the fixture generator, checkpoints are signed with a test key.

use super::*;
use crate::audit::merkle::{consistency_proof, leaf_hash};
use crate::audit::note::NoteSigner;
use bcl_proto::LogLeaf;

const NAME: &str = "bcl.example/log-test";

fn signer() -> NoteSigner {
    NoteSigner::new(NAME, &[5u8; 32]).unwrap()
}

fn log(n: usize) -> Vec<Vec<u8>> {
    let m = bcl_fixtures::generate(&bcl_fixtures::Spec {
        households: 20,
        ..Default::default()
    });
    assert!(m.events.len() >= n, "fixture too small");
    m.events[..n]
        .iter()
        .map(|e| {
            LogLeaf {
                kind: Some(Kind::ChangeEvent(e.clone())),
            }
            .encode_to_vec()
        })
        .collect()
}

fn tree_of(leaves: &[Vec<u8>]) -> MemoryTree {
    let mut t = MemoryTree::new();
    leaves.iter().for_each(|l| t.push(l));
    t
}

fn note_for(leaves: &[Vec<u8>]) -> String {
    let t = tree_of(leaves);
    signer()
        .sign(
            &Checkpoint {
                origin: NAME.into(),
                size: t.size(),
                root: t.root(),
            }
            .body(),
        )
        .unwrap()
}

fn run(
    note: &str,
    leaves: &[Vec<u8>],
    recorded: Option<&[Hash]>,
    previous: Option<&str>,
    oracle: Option<&mut dyn PrefixOracle>,
) -> Report {
    let verifier = NoteVerifier::parse(&signer().verifier_key()).unwrap();
    let mut progress = |_: &str, _: u64, _: u64| {};
    verify(
        &verifier,
        Source {
            note,
            leaves,
            recorded_hashes: recorded,
        },
        Options {
            previous_note: previous,
            keys: None,
            reproducer: None,
            oracle,
            progress: &mut progress,
        },
    )
}

/// The honest log's tree answering consistency questions, as a server would.
struct Honest(MemoryTree);

impl PrefixOracle for Honest {
    fn prefix_matches(&mut self, size: u64, root: &Hash) -> Result<bool, String> {
        let proof = consistency_proof(&self.0, size, self.0.size()).map_err(|e| e.to_string())?;
        Ok(prefix_matches_with_proof(
            size,
            root,
            self.0.size(),
            &self.0.root(),
            &proof,
        ))
    }
}

fn positions(r: &Report, check: &str) -> Vec<u64> {
    r.failures
        .iter()
        .filter(|f| f.check == check)
        .filter_map(|f| f.position)
        .collect()
}

#[test]
fn an_honest_log_verifies() {
    let leaves = log(200);
    let r = run(&note_for(&leaves), &leaves, None, None, None);
    assert!(r.ok(), "{:?}", r.failures);
    assert_eq!((r.tree_size, r.leaves), (200, 200));
    let recorded: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    assert!(run(
        &note_for(&leaves),
        &leaves,
        Some(&recorded),
        Some(&note_for(&leaves[..77])),
        None
    )
    .ok());
}

#[test]
fn a_flipped_byte_is_named_by_position_from_recorded_hashes_and_by_bisection() {
    let leaves = log(200);
    let note = note_for(&leaves);
    let recorded: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let mut tampered = leaves.clone();
    let last = tampered[123].len() - 1;
    tampered[123][last] ^= 0x01;
    let r = run(&note, &tampered, Some(&recorded), None, None);
    assert!(!r.ok());
    assert_eq!(positions(&r, "leaf"), vec![123]);
    let mut oracle = Honest(tree_of(&leaves));
    let r = run(&note, &tampered, None, None, Some(&mut oracle));
    assert_eq!(positions(&r, "leaf"), vec![123]);
}

#[test]
fn dropped_and_reordered_leaves_are_named_by_their_first_position() {
    let leaves = log(200);
    let note = note_for(&leaves);
    let recorded: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let mut dropped = leaves.clone();
    dropped.remove(50);
    let r = run(&note, &dropped, Some(&recorded), None, None);
    assert_eq!(positions(&r, "size"), vec![199]);
    assert_eq!(positions(&r, "leaf").first(), Some(&50));
    let mut swapped = leaves.clone();
    swapped.swap(10, 11);
    let r = run(&note, &swapped, Some(&recorded), None, None);
    assert_eq!(positions(&r, "leaf"), vec![10, 11]);
    let mut oracle = Honest(tree_of(&leaves));
    let r = run(&note, &swapped, None, None, Some(&mut oracle));
    assert_eq!(positions(&r, "leaf"), vec![10]);
}

#[test]
fn forged_checkpoints_and_rewritten_history_fail() {
    let leaves = log(120);
    // Signed by another key under the same name.
    let forger = NoteSigner::new(NAME, &[6u8; 32]).unwrap();
    let t = tree_of(&leaves);
    let forged = forger
        .sign(
            &Checkpoint {
                origin: NAME.into(),
                size: t.size(),
                root: t.root(),
            }
            .body(),
        )
        .unwrap();
    let r = run(&forged, &leaves, None, None, None);
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.failures[0].check, "checkpoint");

    // A history rewritten before the checkpoint the auditor saved earlier: everything else is consistent
    // with the new checkpoint, only the saved one shows the fork.
    let saved = note_for(&leaves[..60]);
    let mut rewritten = leaves.clone();
    rewritten.swap(3, 4);
    let r = run(&note_for(&rewritten), &rewritten, None, Some(&saved), None);
    assert_eq!(
        r.failures.iter().map(|f| f.check).collect::<Vec<_>>(),
        vec!["consistency"]
    );
    // A log that shrank below the saved checkpoint.
    let r = run(
        &note_for(&leaves[..50]),
        &leaves[..50],
        None,
        Some(&saved),
        None,
    );
    assert_eq!(
        r.failures.iter().map(|f| f.check).collect::<Vec<_>>(),
        vec!["consistency"]
    );
}

#[test]
fn undecodable_leaves_are_named() {
    let mut leaves = log(30);
    leaves[7] = vec![0xff, 0xff, 0xff];
    let r = run(&note_for(&leaves), &leaves, None, None, None);
    assert_eq!(positions(&r, "decode"), vec![7]);
}
