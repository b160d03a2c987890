//! No personal data in the logs, at the most verbose level: the whole demo (real server over mutual TLS,
//! append, settings, every fixture case issued or refused, a retry) runs with `RUST_LOG=trace`, and none of
//! the fixture's names, addresses, birth dates or personal numbers may appear in what it prints.

use bcl_proto::change_event::Body;
use std::collections::BTreeSet;
use std::process::Command;

const HOUSEHOLDS: usize = 20;
const SEED: u64 = 42;

/// Every personal value of the municipality the demo generates (same spec as `bcl demo`).
fn personal_values() -> BTreeSet<String> {
    let spec = bcl_fixtures::Spec { households: HOUSEHOLDS, seed: SEED, today: (2026, 4, 1), ..Default::default() };
    let mut values = BTreeSet::new();
    let mut add = |v: &str| {
        if !v.is_empty() {
            values.insert(v.to_string());
        }
    };
    for event in bcl_fixtures::generate(&spec).events {
        match event.body {
            Some(Body::ResidentRegistered(r)) => {
                for name in [
                    format!("{}　{}", r.family_name, r.given_name),
                    format!("{} {}", r.family_name, r.given_name),
                    format!("{}{}", r.family_name, r.given_name),
                    format!("{}　{}", r.family_name_kana, r.given_name_kana),
                    format!("{}{}", r.family_name_kana, r.given_name_kana),
                ] {
                    add(&name);
                }
                for v in [&r.address, &r.previous_address, &r.registered_domicile, &r.domicile_head, &r.personal_number]
                {
                    add(v);
                }
                add(&r.birth_date);
            }
            Some(Body::ResidentChanged(c)) => {
                for v in [&c.address, &c.registered_domicile, &c.domicile_head].into_iter().flatten() {
                    add(v);
                }
                if let (Some(f), Some(g)) = (&c.family_name, &c.given_name) {
                    add(&format!("{f}　{g}"));
                }
            }
            Some(Body::MoveOutFiled(m)) => add(&m.destination),
            _ => {}
        }
    }
    values
}

fn run_demo(out: &std::path::Path, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_bcl"))
        .args(extra)
        .args(["demo", "--households", &HOUSEHOLDS.to_string(), "--seed", &SEED.to_string(), "--out"])
        .arg(out)
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .output()
        .expect("run bcl demo");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "demo failed: {}", &stderr[stderr.len().saturating_sub(4000)..]);
    format!("{stdout}\n{stderr}")
}

fn assert_no_personal_values(output: &str) {
    let values = personal_values();
    assert!(values.len() > 100, "the fixture has personal data to look for ({})", values.len());
    let leaked: Vec<&String> = values.iter().filter(|v| output.contains(v.as_str())).collect();
    assert!(leaked.is_empty(), "personal values in the logs: {leaked:?}");
}

#[test]
fn the_demo_at_trace_level_prints_no_personal_data() {
    let out = tempfile::tempdir().unwrap();
    let output = run_demo(out.path(), &[]);
    // The run did what it should: certificates were issued over mutual TLS, and trace lines were written
    // inside request spans (so the check below looked at the most verbose output there is).
    assert!(output.contains("mutual TLS"), "the demo runs over mutual TLS");
    assert!(output.contains("certificate PDFs"), "the demo issued certificates");
    // Both centres issued, through the routing library, from one replicated history.
    assert!(output.contains("issued at east") && output.contains("issued at west"), "both centres issued");
    assert!(output.contains("East and West hold the same history"), "the centres' tree heads were compared");
    assert!(output.contains("TRACE"), "trace-level logging was on");
    assert!(output.contains("request_id="), "request spans are on the log lines");
    assert_no_personal_values(&output);
}

#[test]
fn json_logs_carry_the_request_id_and_no_personal_data() {
    let out = tempfile::tempdir().unwrap();
    let output = run_demo(out.path(), &["--log-format", "json"]);
    let mut request_lines = 0;
    for line in output.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if let Some(span) = value.get("span").filter(|s| s["name"] == "rpc") {
            assert!(span["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{line}");
            assert!(
                span["method"].as_str().is_some_and(|m| m.starts_with("/bcl.v1.") || m.starts_with("/grpc.")),
                "{line}"
            );
            request_lines += 1;
        }
    }
    assert!(request_lines > 10, "lines inside request spans: {request_lines}");
    assert_no_personal_values(&output);
}
