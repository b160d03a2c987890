//! The audit figures: leaf hashing + root recomputation (what `bcl audit verify` does first), the writer's
//! per-batch tree extension, durable append with tree nodes, inclusion proofs from stored nodes, and the
//! projection fold of the auditor's rebuild. Budgets: ≥ 1,000,000 events/s hashing + root, ≥ 300,000
//! events/s fold, inclusion proof ≤ 1 ms.

use bcl_engine::audit::log::{AuditLog, StoreNodes};
use bcl_engine::audit::merkle::{self, MemoryTree};
use bcl_engine::audit::note::{NoteSigner, NoteVerifier};
use bcl_engine::audit::verify;
use bcl_engine::keystore::KeyStore;
use bcl_engine::storage::{FileStore, LogStore, SledStore};
use bcl_proto::{log_leaf::Kind, LogLeaf};
use prost::Message;
use std::time::Instant;

pub fn run(args: &[String]) {
    let households: usize = crate::arg(args, "--households", 20_000);
    let spec = bcl_fixtures::Spec { households, ..Default::default() };
    let events = bcl_fixtures::generate(&spec).events;
    // The leaves as the engine stores them: personal fields sealed under per-resident keys.
    let key_dir = tempfile::tempdir().unwrap();
    let keys = std::sync::Arc::new(KeyStore::open(key_dir.path()).unwrap());
    let leaves: Vec<Vec<u8>> =
        bcl_engine::keystore::seal::prepare_events(&keys, &events).unwrap().into_iter().map(|p| p.leaf).collect();
    // The same events unsealed (the log format before personal data was sealed), for the fold alone.
    let plain: Vec<Vec<u8>> =
        events.into_iter().map(|e| LogLeaf { kind: Some(Kind::ChangeEvent(e)) }.encode_to_vec()).collect();
    let n = leaves.len();
    let bytes: usize = leaves.iter().map(Vec::len).sum();
    let sealed = leaves.iter().filter(|l| l.first() == Some(&0x32)).count();
    println!(
        "\n### Audit (`cargo run --release -p bcl-bench -- audit --households {households}`): {n} change-event leaves ({sealed} sealed), {:.0} bytes on average\n",
        bytes as f64 / n as f64
    );
    println!("| what | leaves | seconds | leaves/s |\n|---|---:|---:|---:|");
    let row =
        |what: &str, count: usize, secs: f64| println!("| {what} | {count} | {secs:.3} | {:.0} |", count as f64 / secs);

    // Hashing + root with every node kept (the auditor's tree: proofs and bisection need the nodes).
    let t = Instant::now();
    let mut tree = MemoryTree::new();
    merkle::leaf_hashes(&leaves).into_iter().for_each(|h| tree.push_leaf_hash(h));
    let root = tree.root();
    row("leaf hashing (on all cores) + root, all nodes kept (auditor)", n, t.elapsed().as_secs_f64());

    // The writer's extension, in ingest-sized batches.
    let signer = NoteSigner::new("bcl.example/log-bench", &[1u8; 32]).unwrap();
    let vkey = signer.verifier_key();
    let store = bcl_engine::storage::MemoryStore::default();
    let log = AuditLog::open(&store, signer).unwrap();
    let t = Instant::now();
    for chunk in leaves.chunks(1000) {
        let ext = log.extend(chunk);
        store.append_durable(chunk, &ext.nodes).unwrap();
        log.commit(ext);
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(log.checkpoint().checkpoint.root, root);
    row("writer: hash batch of 1000 + store nodes in memory + sign checkpoint", n, secs);

    // Durable: leaves and nodes in one write + fdatasync per batch of 1000, with each backend.
    let durable = |store: &dyn LogStore| {
        let slog = AuditLog::open(store, NoteSigner::new("bcl.example/log-bench", &[1u8; 32]).unwrap()).unwrap();
        let t = Instant::now();
        for chunk in leaves.chunks(1000) {
            let ext = slog.extend(chunk);
            store.append_durable(chunk, &ext.nodes).unwrap();
            slog.commit(ext);
        }
        t.elapsed().as_secs_f64()
    };
    let sled_dir = tempfile::tempdir().unwrap();
    let sled = SledStore::open(&sled_dir.path().join("log")).unwrap();
    row("sled: durable append of leaves + tree nodes, batches of 1000", n, durable(&sled));
    drop(sled);
    let dir = tempfile::tempdir().unwrap();
    let file = FileStore::open(&dir.path().join("log")).unwrap();
    row("log file (default): durable append of leaves + tree nodes, batches of 1000", n, durable(&file));

    // The auditor's whole check without re-rendering: signature, hashing, root, fold.
    let note = log.checkpoint().note.clone();
    let verifier = NoteVerifier::parse(&vkey).unwrap();
    let mut quiet = |_: &str, _: u64, _: u64| {};
    let report = verify::verify(
        &verifier,
        verify::Source { note: &note, leaves: &leaves, recorded_hashes: None },
        verify::Options {
            previous_note: None,
            keys: Some(keys.clone()),
            reproducer: None,
            oracle: None,
            progress: &mut quiet,
        },
    );
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(report.sealed_unreadable, 0);
    row("verify: leaf hashing + root recomputation", n, report.hash_seconds);
    row("verify: projections folded from scratch, unsealing with the key store", n, report.fold_seconds);
    let t = Instant::now();
    let mut projection = bcl_engine::projection::Projection::default();
    for l in &plain {
        projection.apply(&LogLeaf::decode(l.as_slice()).unwrap());
    }
    row("fold of the same events unsealed (decode + fold only)", n, t.elapsed().as_secs_f64());

    println!("{}", proofs(&file, &tree));
}

/// Inclusion and consistency proofs from the stored nodes (what GetInclusionProof does), verified.
fn proofs(store: &dyn LogStore, tree: &MemoryTree) -> String {
    let root = tree.root();
    let n = tree.size() as usize;
    let size = n as u64;
    let nodes = StoreNodes(store);
    let indices: Vec<u64> = (0..1000u64).map(|i| (i * 7_919_993) % size).collect();
    let t = Instant::now();
    let proofs: Vec<_> = indices.iter().map(|&i| merkle::inclusion_proof(&nodes, i, size).unwrap()).collect();
    let prove_us = t.elapsed().as_secs_f64() * 1e6 / indices.len() as f64;
    let t = Instant::now();
    for (&i, p) in indices.iter().zip(&proofs) {
        merkle::verify_inclusion(&tree.leaf(i).unwrap(), i, size, p, &root).unwrap();
    }
    let verify_us = t.elapsed().as_secs_f64() * 1e6 / indices.len() as f64;
    let t = Instant::now();
    for i in 0..1000u64 {
        merkle::consistency_proof(&nodes, size / 2 + i, size).unwrap();
    }
    let consistency_us = t.elapsed().as_secs_f64() * 1e6 / 1000.0;
    format!(
        "\n| proof (tree of {n}, from nodes stored in the log file, 1000 spread indices) | µs per proof |\n|---|---:|\n\
         | inclusion proof, generate ({} hashes) | {prove_us:.1} |\n| inclusion proof, verify | {verify_us:.1} |\n\
         | consistency proof, generate | {consistency_us:.1} |",
        proofs[0].len()
    )
}
