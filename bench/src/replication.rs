//! East/West replication under load (docs/replication.md): the cost of SYNC replication on Issue and
//! Append latency (a single engine beside a replicated pair, same load, same run), and the replication lag
//! (an append acknowledged at East → the leaves delivered by West's log) at rising loads.
//!
//!   cargo run --release -p bcl-bench -- replication [--seconds 8] [--steps 150:5000,300:10000,450:15000]
//!
//! Each step offers `certs/s` Issue requests (open loop, half through each centre) and `events/s` change
//! events (batches of 50 every 10 ms to a second municipality, through East) at the same time.

use bcl_bench::load::spawn::{find_bcl, load, specs, Spawned};
use bcl_proto::{
    audit_client::AuditClient, ingest_client::IngestClient, issuance_client::IssuanceClient, AppendRequest,
    CertificateType, Centre, ChangeEvent, IssueRequest, ReadLogRequest,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const EVENTS_PER_BATCH: usize = 50;

fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string()).unwrap().connect_lazy()
}

fn pct(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

struct StepResult {
    issue_ms: HashMap<&'static str, Vec<f64>>,
    append_ms: Vec<f64>,
    lag_ms: Vec<f64>,
    /// Failed calls by gRPC code and reason (e.g. `Unavailable OVERLOADED`), so overload can be told from
    /// replication trouble.
    errors: std::collections::BTreeMap<String, usize>,
}

fn error_kind(status: &tonic::Status) -> String {
    match bcl_bench::load::verdict::reason_of(status) {
        Some(reason) => format!("{:?} {reason}", status.code()),
        None => format!("{:?}", status.code()),
    }
}

fn errors_cell(errors: &std::collections::BTreeMap<String, usize>) -> String {
    if errors.is_empty() {
        return "0".into();
    }
    errors.iter().map(|(kind, n)| format!("{n} {kind}")).collect::<Vec<_>>().join(", ")
}

/// Runs one load step against `east` (and `west`, when replicated) for `seconds`.
#[allow(clippy::too_many_arguments)] // each is one knob of the step, named at the call site
async fn step(
    east: &str,
    west: Option<&str>,
    requests: &[IssueRequest],
    events: &[ChangeEvent],
    certs_per_s: u32,
    events_per_s: u32,
    seconds: u64,
    tag: &str,
) -> StepResult {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let result = Arc::new(Mutex::new(StepResult {
        issue_ms: HashMap::new(),
        append_ms: Vec::new(),
        lag_ms: Vec::new(),
        errors: Default::default(),
    }));
    // West's log, followed: when each position arrives there.
    let arrivals: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    if let Some(west) = west {
        let mut audit = AuditClient::new(channel(west)).max_decoding_message_size(256 << 20);
        let from = audit.get_checkpoint(bcl_proto::GetCheckpointRequest {}).await.unwrap().into_inner().tree_size;
        let mut stream =
            audit.read_log(ReadLogRequest { from_position: from, limit: 0, follow: true }).await.unwrap().into_inner();
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Ok(Some(entry)) = stream.message().await {
                arrivals.lock().unwrap().insert(entry.position, Instant::now());
            }
        });
    }
    let mut tasks = Vec::new();
    // Issuance: open loop at a fixed rate, alternating centres.
    {
        let interval = Duration::from_secs_f64(1.0 / certs_per_s as f64);
        let (east, west) = (east.to_string(), west.map(str::to_string));
        let (requests, result, tag) = (requests.to_vec(), result.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            let mut inflight = Vec::new();
            for (i, req) in requests.into_iter().cycle().enumerate() {
                tick.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                let (url, centre) = match (&west, i % 2) {
                    (Some(w), 1) => (w.clone(), "west"),
                    _ => (east.clone(), "east"),
                };
                let mut req = req;
                req.request_id = format!("{tag}-{i}");
                let result = result.clone();
                inflight.push(tokio::spawn(async move {
                    let mut client = IssuanceClient::new(channel(&url)).max_decoding_message_size(64 << 20);
                    let t = Instant::now();
                    let answer = client.issue(req).await;
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let mut r = result.lock().unwrap();
                    match answer {
                        Ok(_) => r.issue_ms.entry(centre).or_default().push(ms),
                        Err(status) => *r.errors.entry(format!("Issue: {}", error_kind(&status))).or_default() += 1,
                    }
                }));
            }
            for t in inflight {
                let _ = t.await;
            }
        }));
    }
    // Ingest: batches through East, each ack compared with its arrival at West.
    {
        let interval = Duration::from_secs_f64(EVENTS_PER_BATCH as f64 / events_per_s as f64);
        let (east, events, result, arrivals) = (east.to_string(), events.to_vec(), result.clone(), arrivals.clone());
        let replicated = west.is_some();
        tasks.push(tokio::spawn(async move {
            let mut ingest = IngestClient::new(channel(&east)).max_encoding_message_size(64 << 20);
            let mut tick = tokio::time::interval(interval);
            let mut acks = Vec::new();
            for chunk in events.chunks(EVENTS_PER_BATCH) {
                tick.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                match ingest.append(AppendRequest { events: chunk.to_vec() }).await {
                    Ok(r) => {
                        let acked = Instant::now();
                        result.lock().unwrap().append_ms.push((acked - t).as_secs_f64() * 1e3);
                        acks.push((r.into_inner().last_position, acked));
                    }
                    Err(status) => {
                        *result.lock().unwrap().errors.entry(format!("Append: {}", error_kind(&status))).or_default() += 1
                    }
                }
            }
            if replicated {
                // Give the last leaves time to arrive (bounded), then pair acks with arrivals.
                let until = Instant::now() + Duration::from_secs(2);
                while Instant::now() < until {
                    if acks.iter().all(|(p, _)| arrivals.lock().unwrap().contains_key(p)) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let arrivals = arrivals.lock().unwrap();
                let mut r = result.lock().unwrap();
                for (p, acked) in acks {
                    // Negative = West held it before East answered (SYNC mode): counted as zero lag.
                    let lag = arrivals.get(&p).map(|a| a.saturating_duration_since(acked).as_secs_f64() * 1e3);
                    r.lag_ms.push(lag.unwrap_or(f64::INFINITY));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(result).ok().unwrap().into_inner().unwrap()
}

pub fn run(args: &[String]) {
    let seconds: u64 = crate::arg(args, "--seconds", 8);
    let steps: String = crate::arg(args, "--steps", "150:5000,300:10000,450:15000".to_string());
    let steps: Vec<(u32, u32)> = steps
        .split(',')
        .map(|s| {
            let (c, e) = s.split_once(':').expect("certs:events");
            (c.parse().unwrap(), e.parse().unwrap())
        })
        .collect();
    let bcl = find_bcl(None).expect("the bcl binary (cargo build --release -p bcl-engine)");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let specs = specs(2, 100);
        let municipalities: Vec<_> = specs.iter().map(|s| (s.clone(), bcl_fixtures::generate(s))).collect();
        // Issue load on municipality 0 (loaded up front); ingest load streams municipality 1's events, and
        // a second copy with fresh ids once those run out.
        let issue_cases: Vec<IssueRequest> = municipalities[0]
            .1
            .cases
            .iter()
            .filter(|c| c.certificate_type == CertificateType::ResidentRecord && matches!(c.expect, bcl_fixtures::Expect::Issue { .. }))
            .map(|c| IssueRequest {
                request_id: String::new(),
                centre: Centre::East as i32,
                kiosk_id: "KIOSK-00001".into(),
                municipality_code: specs[0].municipality_code.clone(),
                card_serial: c.card_serial.clone(),
                r#type: CertificateType::ResidentRecord as i32,
                subject_resident_ids: c.subject_resident_ids.clone(),
                copies: 1,
                ..Default::default()
            })
            .collect();
        let stream_events = municipalities[1].1.events.clone();

        println!("## Replication (East + West on one 2-core machine)\n");
        println!("`cargo run --release -p bcl-bench -- replication --seconds {seconds}`; each step runs {seconds} s.\n");
        println!("| step (certs/s + events/s) | setup | Issue p50 / p99 ms (East) | Issue p50 / p99 ms (West) | Append p50 / p99 ms | lag p50 / p99 / max ms | errors (by status) |");
        println!("|---|---|---|---|---|---|---|");
        for (i, &(certs, events)) in steps.iter().enumerate() {
            for replicated in [false, true] {
                // The same spawning as kiosk-load: a replicated pair, or one engine.
                let (_servers, east, west) = if replicated {
                    let (east, west) = Spawned::start_pair(&bcl, &[]).expect("start East and West");
                    let (eu, wu) = (east.url.clone(), west.url.clone());
                    (vec![east, west], eu, Some(wu))
                } else {
                    let s = Spawned::start(&bcl).expect("start bcl serve");
                    let u = s.url.clone();
                    (vec![s], u, None)
                };
                load(&east, &municipalities[..1]).await.expect("load municipality");
                let tag = format!("s{i}-{replicated}");
                let mut r = step(&east, west.as_deref(), &issue_cases, &stream_events, certs, events, seconds, &tag).await;
                let mut e = r.issue_ms.remove("east").unwrap_or_default();
                let mut w = r.issue_ms.remove("west").unwrap_or_default();
                let west_cell = if replicated { format!("{:.1} / {:.1}", pct(&mut w, 0.5), pct(&mut w, 0.99)) } else { "—".into() };
                let lag = if replicated {
                    format!("{:.1} / {:.1} / {:.1}", pct(&mut r.lag_ms, 0.5), pct(&mut r.lag_ms, 0.99), pct(&mut r.lag_ms, 1.0))
                } else {
                    "—".into()
                };
                println!(
                    "| {certs} + {events} | {} | {:.1} / {:.1} | {west_cell} | {:.1} / {:.1} | {lag} | {} |",
                    if replicated { "East+West (SYNC)" } else { "one engine" },
                    pct(&mut e, 0.5),
                    pct(&mut e, 0.99),
                    pct(&mut r.append_ms, 0.5),
                    pct(&mut r.append_ms, 0.99),
                    errors_cell(&r.errors)
                );
            }
        }
    });
}
