//! One Issue end to end on an idle server over gRPC (loopback), including the durable append of the
//! issuance leaf. Budget: p50 ≤ 5 ms.

use crate::stats::{Summary, HEADER};
use bcl_engine::clock::Clock;
use bcl_engine::engine::{Engine, EngineConfig};
use bcl_fixtures::Expect;
use bcl_proto::{
    admin_client::AdminClient, ingest_client::IngestClient, issuance_client::IssuanceClient, AppendRequest,
    CertificateType,
};
use std::time::Instant;

pub fn run(args: &[String]) {
    let runs: usize = crate::arg(args, "--runs", 500);
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
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(bcl_engine::server::serve(engine, listener, std::future::pending()));
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
        let cards: Vec<_> = m.cases.iter().filter(|c| c.certificate_type == CertificateType::ResidentRecord && matches!(c.expect, Expect::Issue { persons } if persons <= 4)).collect();
        let mut client = IssuanceClient::connect(url).await.unwrap().max_decoding_message_size(64 << 20);
        let mut samples = Vec::with_capacity(runs);
        for i in 0..runs + 20 {
            let case = cards[i % cards.len()];
            let req = case.resident_record_request(&format!("bench-{i}"), "131016", "KIOSK-BENCH");
            let t = Instant::now();
            client.issue(req).await.unwrap();
            if i >= 20 {
                samples.push(t.elapsed());
            }
        }
        let s = Summary { name: format!("Issue 住民票の写し over gRPC, sequential, durable log ({households} households)"), samples };
        println!("\n### Issue end to end (`cargo run --release -p bcl-bench -- issue --runs {runs}`)\n\n{HEADER}\n{}", s.row());
    });
}
