//! Where the time of one Issue goes: each step of the issuance pipeline timed in process with the
//! engine's own functions, and the whole Issue timed both in process (`Engine::issue`) and over gRPC on
//! loopback, on the same engine, with the same fixture cases, interleaved in one loop.
//!
//! Measured directly: eligibility (rules + ready-to-render record, `bcl_projections::check_request` and
//! `build_certificate` on the engine's folded log), the front (layout + vector PDF), the back's three
//! parts (raster of the front at 100 dpi, scramble, PDF with the back image deflated), the whole render
//! (`certificate::render`), `Engine::issue` and the gRPC Issue. Derived (p50 − p50, so approximate): the
//! durable append (writer decision + log file write + fdatasync) = Issue in process − eligibility − whole render,
//! and the gRPC overhead (HTTP/2, protobuf, the admission controller's hop to a blocking thread) = Issue
//! over gRPC − Issue in process.
//!
//!   bcl-bench breakdown [--runs 300] [--households 1000]

use crate::stats::Summary;
use bcl_engine::clock::Clock;
use bcl_engine::engine::{Engine, EngineConfig};
use bcl_engine::projection::Projection;
use bcl_engine::render::{BackPage, PdfMeta, BACK_IMAGE_DPI};
use bcl_fixtures::Expect;
use bcl_proto::{
    admin_client::AdminClient, ingest_client::IngestClient, issuance_client::IssuanceClient, AppendRequest,
    CertificateType, LogLeaf,
};
use prost::Message;
use std::time::{Duration, Instant};

fn timed<T>(samples: &mut Vec<Duration>, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let v = f();
    samples.push(t.elapsed());
    v
}

pub fn run(args: &[String]) {
    let runs: usize = crate::arg(args, "--runs", 300);
    let households: usize = crate::arg(args, "--households", 1000);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig {
        data_dir: dir.path().to_path_buf(),
        clock: Clock::fixed("2026-04-01T10:00:00+09:00").unwrap(),
        fonts: None,
        render: Default::default(),
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (url, m) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(bcl_engine::server::serve(engine.clone(), listener, std::future::pending()));
        let m = bcl_fixtures::generate(&bcl_fixtures::Spec { households, ..Default::default() });
        let mut ingest = IngestClient::connect(url.clone()).await.unwrap();
        for chunk in m.events.chunks(1000) {
            ingest.append(AppendRequest { events: chunk.to_vec() }).await.unwrap();
        }
        AdminClient::connect(url.clone())
            .await
            .unwrap()
            .update_settings(bcl_fixtures::municipality_settings("131016"))
            .await
            .unwrap();
        (url, m)
    });
    // The same fold the engine holds, rebuilt from its log with the engine's keys (personal fields are
    // sealed at rest: without the keys every resident reads as erased), for the eligibility step.
    let mut projection = Projection::with_keys(engine.key_store().clone(), false);
    while projection.leaf_count < engine.log_len() {
        for (_, bytes) in engine.read_log(projection.leaf_count, 8192).unwrap() {
            projection.apply(&LogLeaf::decode(bytes.as_slice()).unwrap());
        }
    }
    let renderer = bcl_engine::render::Renderer::load_default().expect("fonts");
    let secret = bcl_engine::secrets::MasterSecret::from_bytes([7; 32]);
    let now = engine.clock().now();
    let cards: Vec<_> = m
        .cases
        .iter()
        .filter(|c| {
            c.certificate_type == CertificateType::ResidentRecord
                && matches!(c.expect, Expect::Issue { persons } if persons <= 4)
        })
        .collect();
    let request = |i: usize, id: String| {
        let case = cards[i % cards.len()];
        case.resident_record_request(&id, "131016", "KIOSK-BENCH")
    };

    let names = [
        "eligibility (rules + ready-to-render record)",
        "render front (layout + vector PDF)",
        "render back: raster of the front (100 dpi)",
        "render back: scramble",
        "render back: PDF with the back image (deflate) − front-only PDF",
        "render, whole certificate (`certificate::render`)",
        "Issue in process (`Engine::issue`: all of the above + durable append)",
        "Issue over gRPC (loopback, one client, sequential)",
    ];
    let mut s: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); names.len()];
    let mut client = rt.block_on(IssuanceClient::connect(url)).unwrap().max_decoding_message_size(64 << 20);
    let warmup = 20;
    for i in 0..runs + warmup {
        let req = request(i, format!("bd-step-{i}"));
        let cid = bcl_engine::issuance::certificate_id(&req);
        let mut t = vec![Vec::new(); names.len()];
        let doc = timed(&mut t[0], || {
            let plan = bcl_projections::check_request(&projection.state, &req, now).expect("eligible");
            bcl_projections::build_certificate(&projection.state, &plan, &cid, now.date).expect("record").0
        });
        let list = timed(&mut t[1], || {
            let list = renderer.layout(&doc).unwrap();
            std::hint::black_box(renderer.write_pdf(&list, &[], &PdfMeta::default()).unwrap());
            list
        });
        let raster = timed(&mut t[2], || renderer.rasterize(&list.pages[0], BACK_IMAGE_DPI));
        let key = bcl_engine::certificate::scramble_key(&secret, &cid);
        let back = timed(&mut t[3], || {
            bcl_engine::scramble::scramble(raster.width, raster.height, &raster.pixels, &key).unwrap()
        });
        let back = BackPage {
            width: back.width,
            height: back.height,
            palette: back.palette,
            bits_per_index: back.bits_per_index,
            packed_indices: back.packed_indices,
        };
        let backs = vec![back; list.pages.len()];
        // What the back adds to writing the PDF: the same document written without and with its backs.
        let (started, front_only) = (Instant::now(), renderer.write_pdf(&list, &[], &PdfMeta::default()).unwrap());
        let front_time = started.elapsed();
        let (started, whole) = (Instant::now(), renderer.write_pdf(&list, &backs, &PdfMeta::default()).unwrap());
        t[4].push(started.elapsed().saturating_sub(front_time));
        assert!(whole.len() > front_only.len(), "the back image is in the PDF");
        timed(&mut t[5], || bcl_engine::certificate::render(&renderer, &secret, &doc, now).unwrap());
        // In process and over gRPC, in alternating order, each with a fresh request_id (a real issuance).
        let in_process = |t: &mut Vec<Vec<Duration>>| {
            let req = request(i, format!("bd-engine-{i}"));
            let r = timed(&mut t[6], || rt.block_on(engine.issue(req))).expect("issued");
            assert!(!r.replayed);
        };
        let mut grpc = |t: &mut Vec<Vec<Duration>>| {
            let req = request(i, format!("bd-grpc-{i}"));
            let r = timed(&mut t[7], || rt.block_on(client.issue(req))).expect("issued").into_inner();
            assert!(!r.replayed);
        };
        if i % 2 == 0 {
            in_process(&mut t);
            grpc(&mut t);
        } else {
            grpc(&mut t);
            in_process(&mut t);
        }
        if i >= warmup {
            for (k, v) in t.into_iter().enumerate() {
                s[k].extend(v);
            }
        }
    }
    let sum: Vec<Summary> = names.iter().zip(s).map(|(n, samples)| Summary { name: n.to_string(), samples }).collect();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p50 = |k: usize| us(sum[k].percentile(0.5));
    println!(
        "\n### One Issue, step by step (`bcl-bench breakdown --runs {runs} --households {households}`: 住民票の写し of fixture households of 1–4 persons)\n"
    );
    println!("| step | runs | p50 µs | p90 µs | min µs | share of gRPC p50 |");
    println!("|---|---:|---:|---:|---:|---:|");
    let total = p50(7);
    for s in &sum {
        let p = us(s.percentile(0.5));
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} % |",
            s.name,
            s.samples.len(),
            p,
            us(s.percentile(0.9)),
            us(*s.samples.iter().min().unwrap()),
            100.0 * p / total
        );
    }
    let append = p50(6) - p50(0) - p50(5);
    let grpc = p50(7) - p50(6);
    println!("| *derived:* durable append (writer + log write + fdatasync) = Issue in process − eligibility − whole render | | {append:.0} | | | {:.0} % |", 100.0 * append / total);
    println!("| *derived:* gRPC overhead (HTTP/2, protobuf, admission hop) = Issue over gRPC − Issue in process | | {grpc:.0} | | | {:.0} % |", 100.0 * grpc / total);
}
