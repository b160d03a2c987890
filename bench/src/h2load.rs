//! Cross-check of the kiosk-load client's throughput against `h2load` (nghttp2), on the same server.
//!
//! h2load sends one fixed body, so both clients send the *same* gRPC-framed IssueRequest again and again:
//! - "replay": a request_id issued once before the run, so every request is an idempotent retry answered
//!   from the certificate cache (eligibility is not re-run, nothing is rendered or written; the whole
//!   ~170 kB PDF travels back every time);
//! - "refusal": an unknown card, refused by the rules; every refusal is a transaction the engine records
//!   durably (one group-committed log append each).
//!
//! Each round runs h2load and then the kiosk-load client stack (`load::routing::Centres`: tonic, the same
//! connections and deadlines kiosk-load uses, closed loop with the same number of requests in flight),
//! against one spawned `bcl serve --no-shed --rate-limit=0` (so neither client sees shed or rate-limited
//! answers, which h2load would count as successes: a gRPC error is an HTTP 200; both clients are one
//! caller, and thousands of requests/s are over the default per-caller limit of 1,000/s). Rounds
//! alternate, so the machine's noise hits both alike.
//!
//!   bcl-bench h2load [--requests 4000] [--connections 2] [--streams 4] [--rounds 3]

use bcl_bench::load::routing::{CentreId, Centres};
use bcl_bench::load::spawn::{self, Spawned};
use bcl_fixtures::Expect;
use bcl_proto::{CertificateType, IssueRequest};
use prost::Message;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The 5-byte gRPC message prefix (not compressed, big-endian length) and the message.
pub fn grpc_frame(req: &IssueRequest) -> Vec<u8> {
    let body = req.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0);
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}

/// req/s and mean latency (ms) from h2load's summary, and how many requests it saw succeed (2xx).
fn parse_h2load(out: &str) -> Option<(f64, f64, u64)> {
    let rps =
        out.lines().find(|l| l.starts_with("finished in"))?.split(", ").nth(1)?.strip_suffix(" req/s")?.parse().ok()?;
    let ok = out.lines().find(|l| l.starts_with("requests:"))?.split(", ").find(|p| p.ends_with(" succeeded"))?;
    let ok = ok.trim_end_matches(" succeeded").parse().ok()?;
    let mean = out.lines().find(|l| l.starts_with("time for request:"))?.split_whitespace().nth(5)?.to_string();
    let mean = match mean.strip_suffix("ms") {
        Some(ms) => ms.parse().ok()?,
        None => mean.strip_suffix("us")?.parse::<f64>().ok()? / 1000.0,
    };
    Some((rps, mean, ok))
}

fn h2load(
    url: &str,
    body: &Path,
    requests: u64,
    connections: usize,
    streams: usize,
) -> Result<(f64, f64, u64), String> {
    let out = Command::new("h2load")
        .args(["-n", &requests.to_string(), "-c", &connections.to_string(), "-m", &streams.to_string()])
        .arg("-d")
        .arg(body)
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg(format!("{url}/bcl.v1.Issuance/Issue"))
        .output()
        .map_err(|e| format!("h2load not runnable (bench/setup.sh installs nghttp2-client): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_h2load(&text).ok_or_else(|| format!("unreadable h2load output:\n{text}"))
}

/// The kiosk-load client stack, closed loop: `in_flight` tasks share `requests` sends. Returns req/s,
/// mean latency in ms, and how many answers were what `ok` accepts.
async fn tonic_loop(
    centres: Arc<Centres>,
    req: IssueRequest,
    requests: u64,
    in_flight: usize,
    ok: fn(&Result<bcl_proto::IssueResponse, tonic::Status>) -> bool,
) -> (f64, f64, u64) {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let (centres, req, next) = (centres.clone(), req.clone(), next.clone());
            tokio::spawn(async move {
                let (mut good, mut total) = (0u64, Duration::ZERO);
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                    let t = Instant::now();
                    let d = centres.issue(CentreId::East, &req).await;
                    total += t.elapsed();
                    good += ok(&d.result) as u64;
                }
                (good, total)
            })
        })
        .collect();
    let (mut good, mut total) = (0, Duration::ZERO);
    for t in tasks {
        let (g, d) = t.await.expect("client task");
        good += g;
        total += d;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (requests as f64 / elapsed, total.as_secs_f64() * 1e3 / requests as f64, good)
}

pub fn run(args: &[String]) {
    let requests: u64 = crate::arg(args, "--requests", 4000);
    let connections: usize = crate::arg(args, "--connections", 2);
    let streams: usize = crate::arg(args, "--streams", 4);
    let rounds: usize = crate::arg(args, "--rounds", 3);
    let bcl = spawn::find_bcl(None).expect("the bcl binary (cargo build --release -p bcl-engine --bin bcl)");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let engine = Spawned::start_with(&bcl, &["--no-shed".to_string(), "--rate-limit=0".to_string()]).expect("start bcl serve");
    let specs = spawn::specs(1, 200);
    let municipality = bcl_fixtures::generate(&specs[0]);
    let code = specs[0].municipality_code.clone();
    rt.block_on(spawn::load(&engine.url, &[(specs[0].clone(), municipality.clone())])).expect("load fixtures");

    let case = municipality
        .cases
        .iter()
        .find(|c| c.certificate_type == CertificateType::ResidentRecord && matches!(c.expect, Expect::Issue { .. }))
        .expect("an issuable fixture case");
    let base = case.resident_record_request("h2load-replay-1", &code, "VENDOR-A-00000");
    let refusal =
        IssueRequest { request_id: "h2load-refusal-1".into(), card_serial: "UNKNOWN-CARD-0000".into(), ..base.clone() };
    // Lazy connections need the runtime's context.
    let _runtime = rt.enter();
    let centres = Arc::new(
        Centres::new(&[(CentreId::East, engine.url.clone())], connections, Duration::from_secs(10)).expect("client"),
    );
    // Issue the replayed request once, so every later send is a retry of an issued certificate.
    let first = rt.block_on(centres.issue(CentreId::East, &base)).result.expect("first issuance");
    assert!(!first.replayed && !first.pdf.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let in_flight = connections * streams;
    println!(
        "\n### h2load vs the kiosk-load client on one `bcl serve --no-shed --rate-limit=0` (`bcl-bench h2load --requests {requests} --connections {connections} --streams {streams} --rounds {rounds}`)\n"
    );
    println!("{in_flight} requests in flight ({connections} HTTP/2 connections × {streams} streams), closed loop, {requests} requests per run; engine CPU from /proc.\n");
    println!("| request | round | client | req/s | mean ms | answers as expected | engine CPU µs/request |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    type AnsweredAsExpected = fn(&Result<bcl_proto::IssueResponse, tonic::Status>) -> bool;
    let cases: [(&str, &IssueRequest, AnsweredAsExpected); 2] = [
        ("replay of one issued request_id", &base, |r| matches!(r, Ok(a) if a.replayed)),
        (
            "refusal (unknown card), recorded durably",
            &refusal,
            |r| matches!(r, Err(s) if bcl_bench::load::verdict::reason_of(s).as_deref() == Some("UNKNOWN_CARD")),
        ),
    ];
    // Each recorded refusal is one more log leaf: the growth of the log shows that every h2load request
    // was decoded and refused by the engine, which h2load itself cannot tell (it sees HTTP 200s).
    let log_len = || {
        rt.block_on(async {
            let mut audit = bcl_proto::audit_client::AuditClient::connect(engine.url.clone()).await.ok()?;
            Some(audit.get_checkpoint(bcl_proto::GetCheckpointRequest::default()).await.ok()?.into_inner().tree_size)
        })
    };
    for (name, req, ok) in cases {
        let body = dir.path().join("body.bin");
        std::fs::write(&body, grpc_frame(req)).unwrap();
        for round in 1..=rounds {
            let (cpu, leaves) = (engine.cpu_seconds(), log_len());
            let h = h2load(&engine.url, &body, requests, connections, streams);
            let cpu_h = engine.cpu_seconds().zip(cpu).map(|(a, b)| (a - b) * 1e6 / requests as f64);
            let recorded = log_len().zip(leaves).map(|(a, b)| a - b);
            let cpu = engine.cpu_seconds();
            let t = rt.block_on(tonic_loop(centres.clone(), (*req).clone(), requests, in_flight, ok));
            let cpu_t = engine.cpu_seconds().zip(cpu).map(|(a, b)| (a - b) * 1e6 / requests as f64);
            let f = |c: Option<f64>| c.map_or("?".into(), |c| format!("{c:.0}"));
            match h {
                Ok((rps, mean, succeeded)) => println!(
                    "| {name} | {round} | h2load | {rps:.0} | {mean:.2} | {succeeded} HTTP 2xx, {} new log leaves | {} |",
                    recorded.map_or("?".into(), |r| r.to_string()),
                    f(cpu_h)
                ),
                Err(e) => println!("| {name} | {round} | h2load | — | — | {} | — |", e.lines().next().unwrap_or("")),
            }
            println!(
                "| {name} | {round} | kiosk-load client (tonic) | {:.0} | {:.2} | {} of {requests} | {} |",
                t.0,
                t.1,
                t.2,
                f(cpu_t)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_prefix_and_message() {
        let req = IssueRequest { request_id: "x".into(), ..Default::default() };
        let f = grpc_frame(&req);
        assert_eq!(f[0], 0, "not compressed");
        assert_eq!(u32::from_be_bytes(f[1..5].try_into().unwrap()) as usize, f.len() - 5);
        assert_eq!(IssueRequest::decode(&f[5..]).unwrap(), req);
    }

    #[test]
    fn reads_h2load_summary() {
        let out = "finished in 2.01s, 1990.05 req/s, 330.12MB/s\nrequests: 4000 total, 4000 started, 4000 done, 3999 succeeded, 1 failed, 0 errored, 0 timeout\ntime for request:     1.02ms     20.30ms      3.98ms      1.20ms    90.00%\n";
        assert_eq!(parse_h2load(out), Some((1990.05, 3.98, 3999)));
        let us = out.replace("3.98ms", "812.50us");
        assert_eq!(parse_h2load(&us).map(|p| p.1), Some(0.8125));
    }
}
