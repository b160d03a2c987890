//! `kiosk-load --smoke` end to end: two real `bcl serve` processes, two fixture municipalities, 200
//! measured requests at 100/s, the east engine killed two thirds of the way through. Checks that the run
//! happened and that its books balance: every request sent has exactly one outcome, refusals carry only
//! the reasons the fixture cases call for, no engine issued a request_id twice, and the histograms, the
//! timeline and the CSV agree with the counts.
//!
//! The engine under load is the release `bcl` (a debug engine renders too slowly for 100/s): `BCL_BIN`
//! when set, else `cargo build --release -p bcl-engine --bin bcl` (a no-op when it is up to date).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

fn release_bcl() -> PathBuf {
    if let Some(p) = std::env::var_os("BCL_BIN") {
        return PathBuf::from(p);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "bcl-engine", "--bin", "bcl"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build for the release bcl");
    assert!(status.success(), "building the release bcl failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release").join("bcl")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn smoke_run_counts_every_request_once_and_never_double_issues() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_kiosk-load"))
        .args(["--smoke", "--quiet", "--bcl"])
        .arg(release_bcl())
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run kiosk-load");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "kiosk-load --smoke failed ({:?}):\n{stdout}\n{}", run.status, String::from_utf8_lossy(&run.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let c = &report["counts"];

    // It ran: the planned 200 measured requests, every one answered, warm-up apart.
    assert_eq!(u(&c["sent"]), 200);
    assert_eq!(u(&c["completed"]), 200);
    assert!(u(&c["warmup_sent"]) > 0);
    assert_eq!(u(&c["warmup_sent"]), u(&c["warmup_completed"]));
    let (issued, replayed, refused, errors) = (u(&c["issued"]), u(&c["replayed"]), u(&c["refused"]), u(&c["errors"]));
    assert_eq!(issued + replayed + refused + errors, 200);
    assert!(issued > 100, "most of the mix issues: {issued}");
    assert!(refused > 0, "the mix includes refusals");

    // Refusals only with reasons the fixture cases call for, and each counted once.
    let municipality = bcl_fixtures::generate(&bcl_fixtures::Spec { households: 10, ..Default::default() });
    let expected: BTreeSet<&str> = municipality
        .cases
        .iter()
        .filter_map(|case| match case.expect {
            bcl_fixtures::Expect::Refuse(r) => Some(r),
            bcl_fixtures::Expect::Issue { .. } => None,
        })
        .collect();
    let by_reason: BTreeMap<String, Value> = serde_json::from_value(report["refusals_by_reason"].clone()).unwrap();
    for reason in by_reason.keys() {
        assert!(expected.contains(reason.as_str()), "refusal {reason} is not one the fixtures call for");
    }
    assert_eq!(by_reason.values().map(u).sum::<u64>(), refused);
    assert_eq!(report["mismatches"].as_object().unwrap().len(), 0, "{}", report["mismatches"]);
    let by_status: BTreeMap<String, Value> = serde_json::from_value(report["errors_by_status"].clone()).unwrap();
    assert_eq!(by_status.values().map(u).sum::<u64>(), errors);

    // The drill: east was killed, its vendors failed over, and no engine issued a request_id twice.
    assert!(u(&c["failovers"]) > 0, "killing east makes its vendors fail over");
    assert_eq!(u(&c["double_issuances"]), 0);

    // Histograms and timeline hold exactly the measured answers.
    let latency = report["latency"].as_array().unwrap();
    let count = |dim: &str| latency.iter().filter(|r| r["dimension"] == dim).map(|r| u(&r["count"])).sum::<u64>();
    for dim in ["all", "centre", "type", "outcome"] {
        assert_eq!(count(dim), 200, "{dim}");
    }
    let outcome = |key: &str| latency.iter().find(|r| r["dimension"] == "outcome" && r["key"] == key).map_or(0, |r| u(&r["count"]));
    assert_eq!((outcome("issued"), outcome("replayed"), outcome("refused"), outcome("error")), (issued, replayed, refused, errors));
    let all = latency.iter().find(|r| r["dimension"] == "all").unwrap();
    let ladder: Vec<u64> = ["p50", "p90", "p99", "p99.9", "p99.99", "max"].iter().map(|k| u(&all[*k])).collect();
    assert!(ladder.windows(2).all(|w| w[0] <= w[1]) && ladder[0] > 0, "percentiles ascend: {ladder:?}");
    assert_eq!(report["timeline"].as_array().unwrap().iter().map(|s| u(&s["count"])).sum::<u64>(), 200);
    let achieved = report["throughput"]["achieved_per_s"].as_f64().unwrap();
    assert!(achieved > 0.0 && report["throughput"]["offered_per_s"] == 100.0);

    // The harness's own send lag: one entry per measured send, the dispatcher's niceness with it, and each
    // request's lag is inside its latency (which counts from the scheduled instant), so no lag percentile
    // can exceed the latencies' maximum.
    let lag = &report["send_lag"];
    assert_eq!(u(&lag["count"]), 200, "{lag}");
    assert!(u(&lag["p50"]) <= u(&lag["max"]) && u(&lag["max"]) <= u(&all["max"]), "lag {lag} vs latency {all}");
    assert!(report["dispatcher_nice"].as_i64().is_some(), "{}", report["dispatcher_nice"]);
    assert!(stdout.contains("the harness's own send lag"), "{stdout}");

    // The CSV says the same.
    let csv = std::fs::read_to_string(out.path().join("latency.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("all,all,200,")), "{csv}");
    let outcomes = std::fs::read_to_string(out.path().join("outcomes.csv")).unwrap();
    assert!(outcomes.contains(&format!("outcome,refused,{refused}\n")));
    assert!(stdout.contains("sent 200 = issued"));
}

#[test]
fn closed_loop_sends_exactly_the_requested_count_and_balances() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_kiosk-load"))
        .args(["--spawn", "--centres", "1", "--municipalities", "1", "--households", "10", "--mode", "closed", "--kiosks", "4"])
        .args(["--think-ms", "5", "--requests", "60", "--warmup", "0.3", "--quiet", "--bcl"])
        .arg(release_bcl())
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run kiosk-load");
    assert!(run.status.success(), "{}\n{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let c = &report["counts"];
    // Four kiosks race for the last tickets: still exactly 60 measured requests, each answered once.
    assert_eq!(u(&c["sent"]), 60);
    assert_eq!(u(&c["issued"]) + u(&c["replayed"]) + u(&c["refused"]) + u(&c["errors"]), 60);
    assert_eq!(u(&c["errors"]), 0, "{}", report["errors_by_status"]);
    assert_eq!(u(&c["failovers"]), 0, "one centre: nowhere to fail over to");
    assert_eq!(u(&c["double_issuances"]), 0);
    assert!(report["throughput"]["offered_per_s"].is_null(), "a closed loop offers no rate of its own");
    assert!(report["send_lag"].is_null(), "a closed loop sends as soon as it may: there is no schedule to lag");
    let centres: Vec<&str> = report["latency"].as_array().unwrap().iter().filter(|r| r["dimension"] == "centre").map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(centres, ["east"]);
}
