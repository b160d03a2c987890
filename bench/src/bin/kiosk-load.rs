//! `kiosk-load`: drives bcl engines over gRPC like thousands of convenience-store kiosks, checks every
//! answer against the fixture case it came from, and reports latency percentiles (from the intended send
//! instant in open loop), throughput and errors. See `bcl_bench::load` for the parts.
//!
//!   kiosk-load --smoke --out out/smoke                          # a few seconds, fail-over drill included
//!   kiosk-load --spawn --rate 300 --duration 20 --out out/r300  # two spawned centres, Poisson arrivals
//!   kiosk-load --target east=http://h1:50051,west=http://h2:50051 --mode closed --kiosks 64 --think-ms 100
//!
//! Exit status: 0 when every answer was what its case calls for, 3 when an answer mismatched or a
//! request_id was issued twice by one engine, 2 on a usage or start-up error.

use bcl_bench::load::config::{Args, Engines, Mode, Plan};
use bcl_bench::load::driver::{drive, Run};
use bcl_bench::load::mix::Mix;
use bcl_bench::load::report::{progress_line, EngineInfo, Report};
use bcl_bench::load::routing::{CentreId, Centres};
use bcl_bench::load::spawn::{self, Spawned};
use clap::Parser;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("kiosk-load: {message}");
    std::process::exit(2);
}

fn main() {
    let plan = Args::parse().plan().unwrap_or_else(|e| fail(e));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| fail(e));
    let code = rt.block_on(run(plan));
    std::process::exit(code);
}

async fn run(plan: Plan) -> i32 {
    let args = &plan.args;
    let started = Instant::now();
    let municipalities: Vec<_> = spawn::specs(args.municipalities, args.households)
        .into_iter()
        .map(|spec| {
            let m = bcl_fixtures::generate(&spec);
            (spec, m)
        })
        .collect();
    let spawned: Arc<Mutex<Vec<(CentreId, Spawned)>>> = Arc::new(Mutex::new(Vec::new()));
    let targets: Vec<(CentreId, String)> = match &plan.engines {
        Engines::Targets(t) => t.clone(),
        Engines::Spawn { centres } => {
            let bcl = spawn::find_bcl(args.bcl.as_deref()).unwrap_or_else(|e| fail(e));
            let mut list = spawned.lock().expect("not shared yet");
            for centre in [CentreId::East, CentreId::West].into_iter().take(*centres) {
                list.push((centre, Spawned::start_with(&bcl, &args.serve_arg).unwrap_or_else(|e| fail(e))));
            }
            list.iter().map(|(c, s)| (*c, s.url.clone())).collect()
        }
    };
    if !args.no_setup {
        for (centre, url) in &targets {
            spawn::load(url, &municipalities).await.unwrap_or_else(|e| fail(format!("{}: {e}", centre.name())));
        }
    }
    let setup = started.elapsed();
    if !args.quiet {
        let events: usize = municipalities.iter().map(|(_, m)| m.events.len()).sum();
        eprintln!("kiosk-load: {} engine(s) loaded with {} municipalities ({events} events each) in {:.1}s", targets.len(), municipalities.len(), setup.as_secs_f64());
    }

    let cases: Vec<(String, Vec<bcl_fixtures::Case>)> = municipalities.iter().map(|(s, m)| (s.municipality_code.clone(), m.cases.clone())).collect();
    let mix = Mix::from_cases(&cases).unwrap_or_else(|e| fail(e));
    let mix_json = json!(mix
        .pool_sizes()
        .iter()
        .map(|(c, w, n)| json!({"share": format!("{c:?}"), "per_mille": w, "cases": n}))
        .collect::<Vec<_>>());
    let centres = Centres::new(&targets, args.connections, plan.deadline).unwrap_or_else(|e| fail(e));
    let cpu_before = |list: &[(CentreId, Spawned)]| list.iter().map(|(c, s)| (*c, s.cpu_seconds())).collect::<Vec<_>>();
    let engines_cpu_before = cpu_before(&spawned.lock().unwrap_or_else(|e| e.into_inner()));
    let harness_cpu_before = spawn::cpu_seconds(std::process::id());
    let run = Run::new(centres, mix, args.seed, plan.warmup);
    let run_started = run.measure_start - plan.warmup;

    let progress = (!args.quiet).then(|| {
        let run = run.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                eprint!("{}", progress_line(run_started.elapsed(), &run.recorder.progress(), run.in_flight()));
            }
        })
    });
    let drill = plan.kill_east_after.map(|after| {
        let spawned = spawned.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((run_started + after).into()).await;
            let mut list = spawned.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, east)) = list.iter_mut().find(|(c, _)| *c == CentreId::East) {
                east.kill();
            }
        })
    });

    let timing = drive(&plan, run.clone()).await;
    if let Some(p) = progress {
        p.abort();
        // Wait for the abort, so the progress task's handle on the run is gone.
        let _ = p.await;
        eprintln!("{}", progress_line(run_started.elapsed(), &run.recorder.progress(), run.in_flight()));
    }
    if let Some(d) = drill {
        d.abort();
    }
    let engines = {
        let list = spawned.lock().unwrap_or_else(|e| e.into_inner());
        targets
            .iter()
            .map(|(c, url)| {
                let s = list.iter().find(|(sc, _)| sc == c).map(|(_, s)| s);
                let before = engines_cpu_before.iter().find(|(bc, _)| bc == c).and_then(|(_, b)| *b);
                let cpu_s = s.and_then(Spawned::cpu_seconds).zip(before).map(|(now, b)| now - b);
                EngineInfo {
                    centre: c.name(),
                    url: url.clone(),
                    spawned: s.is_some(),
                    rss_kib: s.and_then(Spawned::rss_kib),
                    peak_rss_kib: s.and_then(Spawned::peak_rss_kib),
                    cpu_s,
                }
            })
            .collect()
    };
    let run = Arc::try_unwrap(run).unwrap_or_else(|_| fail("a task still holds the run after it finished"));
    let report = Report {
        totals: run.recorder.finish(),
        config: json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "mode": format!("{:?}", args.mode).to_lowercase(),
            "arrival": format!("{:?}", args.arrival).to_lowercase(),
            "rate": args.rate,
            "kiosks": args.kiosks,
            "think_ms": args.think_ms,
            "length": format!("{:?}", plan.length),
            "warmup_s": plan.warmup.as_secs_f64(),
            "deadline_ms": plan.deadline.as_millis() as u64,
            "connections_per_centre": args.connections,
            "municipalities": args.municipalities,
            "households_per_municipality": args.households,
            "centres": targets.iter().map(|(c, _)| c.name()).collect::<Vec<_>>(),
            "kill_east_after_s": plan.kill_east_after.map(|d| d.as_secs_f64()),
            "setup_s": setup.as_secs_f64(),
            "seed": args.seed,
            "serve_args": args.serve_arg,
        }),
        offered_per_s: (args.mode == Mode::Open).then_some(args.rate),
        send_window: timing.send_window,
        completion_window: timing.completion_window,
        capped: timing.capped,
        mix: mix_json,
        engines,
        harness_cpu_s: spawn::cpu_seconds(std::process::id()).zip(harness_cpu_before).map(|(now, b)| now - b),
    };
    if let Some(dir) = &args.out {
        report.write(dir).unwrap_or_else(|e| fail(format!("writing the report to {}: {e}", dir.display())));
    }
    println!("{}", report.markdown());
    let t = &report.totals;
    if t.double_issuances > 0 || !t.mismatches.is_empty() {
        3
    } else {
        0
    }
}
