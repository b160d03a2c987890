//! Memory of a real `bcl serve` process holding 1 and 10 municipalities of ~100,000 residents each:
//! resident set (VmRSS) and its peak (VmHWM) from /proc after ingest, and again after a burst of
//! issuance (which fills the engine's certificate cache, bounded at 256 MiB of PDFs).
//!
//!   bcl-bench rss [--counts 1,10] [--residents 100000] [--issue 2000]
//!
//! The fixture generator makes ~2.43 residents per household; the number of residents actually
//! registered is counted from the events and printed.

use bcl_bench::load::routing::{CentreId, Centres};
use bcl_bench::load::spawn::{self, Spawned};
use bcl_fixtures::Expect;
use bcl_proto::{change_event::Body, Centre, IssueRequest};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Residents per household in the fixtures (24,330 per 10,000 households with the default seed).
const RESIDENTS_PER_HOUSEHOLD: f64 = 2.433;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l[field.len()..].trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

pub fn run(args: &[String]) {
    let counts: String = crate::arg(args, "--counts", "1,10".to_string());
    let residents: usize = crate::arg(args, "--residents", 100_000);
    let issue: u64 = crate::arg(args, "--issue", 2000);
    let households = (residents as f64 / RESIDENTS_PER_HOUSEHOLD).round() as usize;
    let bcl = spawn::find_bcl(None).expect("the bcl binary (cargo build --release -p bcl-engine --bin bcl)");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("\n### Engine memory (`bcl-bench rss --counts {counts} --residents {residents} --issue {issue}`)\n");
    println!("| municipalities | residents | change events | ingest s | after ingest: VmRSS MiB | VmHWM MiB | after {issue} issuances: VmRSS MiB | VmHWM MiB | issued/s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in counts.split(',').filter_map(|c| c.trim().parse::<usize>().ok()) {
        let engine = Spawned::start(&bcl).expect("start bcl serve");
        let pid = engine.pid();
        let (mut people, mut events, mut requests) = (0usize, 0usize, Vec::new());
        let started = Instant::now();
        // One municipality at a time, so the harness never holds all of them.
        for spec in spawn::specs(n, households) {
            let m = bcl_fixtures::generate(&spec);
            people += m.events.iter().filter(|e| matches!(e.body, Some(Body::ResidentRegistered(_)))).count();
            events += m.events.len();
            for case in m.cases.iter().filter(|c| matches!(c.expect, Expect::Issue { .. })) {
                requests.push(IssueRequest {
                    centre: Centre::East as i32,
                    kiosk_id: "VENDOR-A-00001".into(),
                    municipality_code: spec.municipality_code.clone(),
                    card_serial: case.card_serial.clone(),
                    r#type: case.certificate_type as i32,
                    subject_resident_ids: case.subject_resident_ids.clone(),
                    fiscal_year: case.fiscal_year,
                    include_relationship: true,
                    copies: 1,
                    ..Default::default()
                });
            }
            rt.block_on(spawn::load(&engine.url, &[(spec, m)])).expect("load fixtures");
        }
        let ingest_s = started.elapsed().as_secs_f64();
        let (rss_ingest, hwm_ingest) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));

        // Four kiosks in a closed loop through the kiosk-load client, fresh request_ids.
        let _runtime = rt.enter();
        let centres =
            Arc::new(Centres::new(&[(CentreId::East, engine.url.clone())], 2, Duration::from_secs(30)).unwrap());
        let requests = Arc::new(requests);
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let issued: u64 = rt.block_on(async {
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let (centres, requests, next) = (centres.clone(), requests.clone(), next.clone());
                    tokio::spawn(async move {
                        let mut issued = 0;
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= issue {
                                return issued;
                            }
                            let mut req = requests[i as usize % requests.len()].clone();
                            req.request_id = format!("rss-{i}");
                            if centres.issue(CentreId::East, &req).await.result.is_ok() {
                                issued += 1;
                            }
                        }
                    })
                })
                .collect();
            let mut sum = 0;
            for t in tasks {
                sum += t.await.unwrap();
            }
            sum
        });
        let rate = issued as f64 / started.elapsed().as_secs_f64();
        let (rss_issue, hwm_issue) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
        println!(
            "| {n} | {people} | {events} | {ingest_s:.1} | {} | {} | {} | {} | {rate:.0} ({issued} issued) |",
            mib(rss_ingest),
            mib(hwm_ingest),
            mib(rss_issue),
            mib(hwm_issue)
        );
    }
}
