//! The projection rebuild alone, for profiling: `bcl-bench fold --households N [--plain] [--serial]`.
//! Prepares the leaves as the engine stores them (sealed with a temporary key store, or `--plain` change
//! events), then times one fold from scratch, pipelined (decode + unseal on a second thread, as the engine's
//! rebuild and `bcl audit verify` do) or `--serial`. Under callgrind, collect only `fold_once`:
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*fold_once*' target/release/bcl-bench fold --households 2000`

use bcl_engine::keystore::KeyStore;
use bcl_engine::projection::{fold_pipelined, Projection};
use bcl_proto::{log_leaf::Kind, LogLeaf};
use prost::Message;
use std::sync::Arc;
use std::time::Instant;

pub fn run(args: &[String]) {
    let households: usize = crate::arg(args, "--households", 20_000);
    let plain = args.iter().any(|a| a == "--plain");
    let serial = args.iter().any(|a| a == "--serial");
    let events = bcl_fixtures::generate(&bcl_fixtures::Spec { households, ..Default::default() }).events;
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeyStore::open(dir.path()).unwrap());
    let leaves: Vec<Vec<u8>> = if plain {
        events.into_iter().map(|e| LogLeaf { kind: Some(Kind::ChangeEvent(e)) }.encode_to_vec()).collect()
    } else {
        bcl_engine::keystore::seal::prepare_events(&keys, &events).unwrap().into_iter().map(|p| p.leaf).collect()
    };
    let t = Instant::now();
    let projection = fold_once(&keys, &leaves, serial);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(projection.leaf_count, leaves.len() as u64);
    assert!(projection.unreadable().is_empty());
    println!(
        "fold of {} {} leaves, {}: {secs:.3} s, {:.0} leaves/s",
        leaves.len(),
        if plain { "plain" } else { "sealed" },
        if serial { "serial" } else { "pipelined" },
        leaves.len() as f64 / secs
    );
}

#[inline(never)]
fn fold_once(keys: &Arc<KeyStore>, leaves: &[Vec<u8>], serial: bool) -> Projection {
    let mut projection = Projection::with_keys(keys.clone(), false);
    if serial {
        for l in leaves {
            projection.apply(&LogLeaf::decode(l.as_slice()).unwrap());
        }
    } else {
        let chunks = leaves.chunks(8192).map(|c| Ok::<_, ()>(c.iter().collect::<Vec<_>>()));
        fold_pipelined(&mut projection, chunks, |_, _, _| {}).unwrap();
    }
    projection
}
