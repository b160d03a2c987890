//! Durable ingest throughput over gRPC: batches of change events appended by concurrent municipality
//! links, each acknowledged only after its batch is flushed. Budget: ≥ 100k events/s.

use bcl_engine::clock::Clock;
use bcl_engine::engine::{Engine, EngineConfig};
use bcl_proto::{ingest_client::IngestClient, AppendRequest};
use std::time::Instant;

/// Valid municipality codes (check digit included) for concurrent links.
const CODES: [&str; 4] = ["131016", "011002", "271004", "401005"];

pub fn run(args: &[String]) {
    let households: usize = crate::arg(args, "--households", 10_000);
    let batch: usize = crate::arg(args, "--batch", 1000);
    let links: usize = crate::arg(args, "--links", 4).clamp(1, CODES.len());
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig {
        data_dir: dir.path().to_path_buf(),
        clock: Clock::fixed("2026-04-01T10:00:00+09:00").unwrap(),
        fonts: None,
        render: Default::default(),
    })
    .unwrap();
    let loads: Vec<_> = CODES[..links]
        .iter()
        .enumerate()
        .map(|(i, code)| {
            // A seed per municipality: event ids are global idempotency keys and must not repeat.
            let spec = bcl_fixtures::Spec { municipality_code: code.to_string(), households, seed: 1000 + i as u64, ..Default::default() };
            bcl_fixtures::generate(&spec).events
        })
        .collect();
    let total: usize = loads.iter().map(Vec::len).sum();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if args.iter().any(|a| a == "--in-process") {
        // The engine alone: validation, admission, fold and the durable append, without gRPC encoding and
        // decoding (which, on this 2-core machine, would share the cores with the writer).
        rt.block_on(async move {
            let started = Instant::now();
            let tasks: Vec<_> = loads
                .into_iter()
                .map(|events| {
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        for chunk in events.chunks(batch) {
                            engine.append(chunk.to_vec()).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "\n### Durable ingest, in process (`cargo run --release -p bcl-bench -- ingest --in-process --households {households} --batch {batch} --links {links}`)\n\n\
                 | events | links | batch | seconds | events/s |\n|---:|---:|---:|---:|---:|\n| {total} | {links} | {batch} | {secs:.2} | {:.0} |",
                total as f64 / secs
            );
        });
        return;
    }
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(bcl_engine::server::serve(engine, listener, std::future::pending()));
        let started = Instant::now();
        let tasks: Vec<_> = loads
            .into_iter()
            .map(|events| {
                let url = url.clone();
                tokio::spawn(async move {
                    let mut c = IngestClient::connect(url).await.unwrap().max_encoding_message_size(64 << 20);
                    for chunk in events.chunks(batch) {
                        c.append(AppendRequest { events: chunk.to_vec() }).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "\n### Durable ingest (`cargo run --release -p bcl-bench -- ingest --households {households} --batch {batch} --links {links}`)\n\n\
             | events | links | batch | seconds | events/s |\n|---:|---:|---:|---:|---:|\n| {total} | {links} | {batch} | {secs:.2} | {:.0} |",
            total as f64 / secs
        );
    });
}
