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
    let cpu = cpu_seconds();
    let t = Instant::now();
    let projection = fold_once(&keys, &leaves, serial);
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu).map(|(after, before)| after - before);
    assert_eq!(projection.leaf_count, leaves.len() as u64);
    assert!(projection.unreadable().is_empty());
    println!(
        "fold of {} {} leaves, {}: {secs:.3} s, {:.0} leaves/s",
        leaves.len(),
        if plain { "plain" } else { "sealed" },
        if serial { "serial" } else { "pipelined" },
        leaves.len() as f64 / secs
    );
    // On a shared machine the wall time says more about the other jobs than about the fold; the CPU time
    // of all of the fold's threads does not, and divided by the cores it bounds the rate on an idle machine.
    if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "  CPU time of all threads: {cpu:.2} s = {:.1} µs per leaf; on {cores} idle cores at best {:.0} leaves/s",
            cpu * 1e6 / leaves.len() as f64,
            leaves.len() as f64 * cores as f64 / cpu
        );
    }
}

/// User + system CPU time of this process so far (all threads), from `/proc/self/stat` (Linux only).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces): utime is the 12th.
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    // /proc reports in USER_HZ, 100 on Linux.
    Some((utime + stime) as f64 / 100.0)
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
