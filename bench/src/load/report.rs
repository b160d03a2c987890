//! The results of a run: `report.json` (everything), CSV files for spreadsheets and plotting
//! (`latency.csv`, `timeline.csv`, `outcomes.csv`), `report.html` (see [`super::html`]), a Markdown summary for BENCHMARKS.md, and the live
//! progress line.

use super::recorder::{Progress, Totals};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Percentiles reported for every histogram.
pub const QUANTILES: [(&str, f64); 5] = [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999)];

/// One engine as seen at the end of the run.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub centre: &'static str,
    pub url: String,
    pub spawned: bool,
    pub rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    /// CPU seconds the engine used during the load (warm-up included, set-up excluded).
    pub cpu_s: Option<f64>,
}

/// Everything a report is made of.
pub struct Report {
    pub totals: Totals,
    /// The run as configured (mode, rate, caps, command line).
    pub config: Value,
    /// Offered rate (open loop: the configured rate; closed loop: none).
    pub offered_per_s: Option<f64>,
    pub send_window: Duration,
    pub completion_window: Duration,
    pub capped: bool,
    pub mix: Value,
    pub engines: Vec<EngineInfo>,
    /// CPU seconds the harness itself used during the load: on a shared box it competes with the engine.
    pub harness_cpu_s: Option<f64>,
}

fn row(h: &Histogram<u64>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("count".into(), json!(h.len()));
    for (name, q) in QUANTILES {
        m.insert(name.into(), json!(h.value_at_quantile(q)));
    }
    m.insert("max".into(), json!(h.max()));
    m.insert("mean".into(), json!((h.mean() * 10.0).round() / 10.0));
    Value::Object(m)
}

fn per_s(n: u64, window: Duration) -> f64 {
    if window.is_zero() {
        0.0
    } else {
        ((n as f64 / window.as_secs_f64()) * 10.0).round() / 10.0
    }
}

impl Report {
    /// Measured answers per second over the completion window.
    pub fn achieved_per_s(&self) -> f64 {
        per_s(self.totals.completed(), self.completion_window)
    }

    pub fn to_json(&self) -> Value {
        let t = &self.totals;
        let latency: Vec<Value> = t
            .latency
            .iter()
            .map(|((dim, key), h)| {
                let mut v = row(h);
                v["dimension"] = json!(dim);
                v["key"] = json!(key);
                v
            })
            .collect();
        let timeline: Vec<Value> = t
            .timeline
            .iter()
            .enumerate()
            .map(|(s, h)| json!({"second": s, "count": h.len(), "p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99), "max": h.max()}))
            .collect();
        json!({
            "config": self.config,
            "mix": self.mix,
            "counts": {
                "sent": t.sent,
                "completed": t.completed(),
                "issued": t.issued,
                "replayed": t.replayed,
                "refused": t.refused,
                "errors": t.errors,
                "warmup_sent": t.sent_warmup,
                "warmup_completed": t.completed_warmup,
                "failovers": t.failovers,
                "failovers_including_warmup": t.failovers_total,
                "double_issuances": t.double_issuances,
                "cross_centre_duplicates": t.cross_centre_duplicates,
                "cross_centre_duplicates_from_retries": t.cross_centre_duplicates_from_retries,
                "harness_waits": t.harness_waits,
                "latencies_clamped": t.clamped,
            },
            "mismatches": t.mismatches,
            "refusals_by_reason": t.refusals_by_reason,
            "errors_by_status": t.errors_by_status,
            "throughput": {
                "offered_per_s": self.offered_per_s,
                "sent_per_s": per_s(t.sent, self.send_window),
                "achieved_per_s": self.achieved_per_s(),
                "send_window_s": self.send_window.as_secs_f64(),
                "completion_window_s": self.completion_window.as_secs_f64(),
                "capped": self.capped,
            },
            "harness_cpu_s": self.harness_cpu_s,
            "send_lag": t.send_lag.as_ref().map(row),
            "dispatcher_nice": t.dispatcher_nice,
            "latency_unit": "microseconds",
            "latency": latency,
            "timeline": timeline,
            "engines": self.engines.iter().map(|e| json!({
                "centre": e.centre, "url": e.url, "spawned": e.spawned, "rss_kib": e.rss_kib, "peak_rss_kib": e.peak_rss_kib, "cpu_s": e.cpu_s,
            })).collect::<Vec<_>>(),
        })
    }

    fn latency_csv(&self) -> String {
        let mut out = String::from("dimension,key,count,p50_us,p90_us,p99_us,p99.9_us,p99.99_us,max_us,mean_us\n");
        for ((dim, key), h) in &self.totals.latency {
            let qs: Vec<String> = QUANTILES.iter().map(|(_, q)| h.value_at_quantile(*q).to_string()).collect();
            let _ = writeln!(out, "{dim},{key},{},{},{},{:.1}", h.len(), qs.join(","), h.max(), h.mean());
        }
        out
    }

    fn timeline_csv(&self) -> String {
        let mut out = String::from("second,answers,p50_us,p99_us,max_us\n");
        for (s, h) in self.totals.timeline.iter().enumerate() {
            let _ = writeln!(out, "{s},{},{},{},{}", h.len(), h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max());
        }
        out
    }

    fn outcomes_csv(&self) -> String {
        let t = &self.totals;
        let mut out = String::from("kind,key,count\n");
        for (k, v) in [("issued", t.issued), ("replayed", t.replayed), ("refused", t.refused), ("error", t.errors), ("failover", t.failovers)] {
            let _ = writeln!(out, "outcome,{k},{v}");
        }
        for (k, v) in &t.refusals_by_reason {
            let _ = writeln!(out, "refusal,{k},{v}");
        }
        for (k, v) in &t.errors_by_status {
            let _ = writeln!(out, "error,{k},{v}");
        }
        for (k, v) in &t.mismatches {
            // Mismatch texts name reasons and rules only; quote them for the commas they contain.
            let _ = writeln!(out, "mismatch,\"{}\",{v}", k.replace('"', "'"));
        }
        out
    }

    /// Writes report.json, latency.csv, timeline.csv, outcomes.csv and report.html into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&self.to_json()).expect("JSON values serialise"))?;
        std::fs::write(dir.join("latency.csv"), self.latency_csv())?;
        std::fs::write(dir.join("timeline.csv"), self.timeline_csv())?;
        std::fs::write(dir.join("outcomes.csv"), self.outcomes_csv())?;
        std::fs::write(dir.join("report.html"), super::html::render(self))?;
        Ok(())
    }

    /// A Markdown summary: throughput, counts, and a latency table in milliseconds.
    pub fn markdown(&self) -> String {
        let t = &self.totals;
        let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
        let mut out = String::new();
        let offered = self.offered_per_s.map_or("closed loop".to_string(), |r| format!("{r:.0}/s"));
        let _ = writeln!(
            out,
            "offered {offered}, sent {:.1}/s, achieved {:.1}/s; sent {} = issued {} + replayed {} + refused {} + errors {}; fail-overs {}; double issuances {}; cross-centre duplicates {}; mismatches {}{}",
            per_s(t.sent, self.send_window),
            self.achieved_per_s(),
            t.sent,
            t.issued,
            t.replayed,
            t.refused,
            t.errors,
            t.failovers,
            t.double_issuances,
            t.cross_centre_duplicates,
            t.mismatches.values().sum::<u64>(),
            if self.capped { " (stopped at a hard cap)" } else { "" },
        );
        let cpu: Vec<String> = self
            .engines
            .iter()
            .filter_map(|e| e.cpu_s.map(|c| format!("{} {c:.1} s", e.centre)))
            .chain(self.harness_cpu_s.map(|c| format!("harness {c:.1} s")))
            .collect();
        if !cpu.is_empty() {
            let _ = writeln!(out, "CPU during the load: {}", cpu.join(", "));
        }
        if let Some(lag) = &t.send_lag {
            let nice = t.dispatcher_nice.map_or(String::new(), |n| format!(", dispatcher at niceness {n}"));
            let _ = writeln!(
                out,
                "the harness's own send lag (inside every latency below): p50 {} ms, p99 {} ms, max {} ms{nice}",
                ms(lag.value_at_quantile(0.5)),
                ms(lag.value_at_quantile(0.99)),
                ms(lag.max()),
            );
        }
        let _ = writeln!(out, "\n| latency (ms) | n | p50 | p90 | p99 | p99.9 | p99.99 | max |\n|---|---:|---:|---:|---:|---:|---:|---:|");
        for ((dim, key), h) in &t.latency {
            let qs: Vec<String> = QUANTILES.iter().map(|(_, q)| ms(h.value_at_quantile(*q))).collect();
            let _ = writeln!(out, "| {dim}: {key} | {} | {} | {} |", h.len(), qs.join(" | "), ms(h.max()));
        }
        if !t.errors_by_status.is_empty() {
            let _ = writeln!(out, "\nerrors: {:?}", t.errors_by_status);
        }
        if !t.mismatches.is_empty() {
            let _ = writeln!(out, "\nmismatches: {:?}", t.mismatches);
        }
        out
    }
}

/// The live one-line progress (stderr, rewritten in place).
pub fn progress_line(elapsed: Duration, p: &Progress, in_flight: u64) -> String {
    format!(
        "\r{:6.1}s sent {:>7} done {:>7} in-flight {:>5} refused {:>6} errors {:>5} fail-overs {:>5} p99 {:>8.2} ms ",
        elapsed.as_secs_f64(),
        p.sent,
        p.completed,
        in_flight,
        p.refused,
        p.errors,
        p.failovers,
        p.p99.as_secs_f64() * 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::super::mix::Category;
    use super::super::recorder::{Completion, Outcome, Recorder};
    use super::super::routing::CentreId;
    use super::*;

    fn report() -> Report {
        let r = Recorder::new();
        for i in 1..=100u64 {
            r.sent(true);
            r.complete(Completion {
                measured: true,
                finished_at: Duration::from_millis(i * 10),
                latency: Duration::from_millis(i),
                centre: if i % 2 == 0 { CentreId::East } else { CentreId::West },
                type_name: "resident_record",
                category: Category::ResidentRecord,
                outcome: if i % 10 == 0 { Outcome::Refused("UNDER_AGE".into()) } else { Outcome::Issued },
                failed_over: false,
                mismatch: None,
            });
        }
        Report {
            totals: r.finish(),
            config: json!({}),
            offered_per_s: Some(100.0),
            send_window: Duration::from_secs(1),
            completion_window: Duration::from_secs(2),
            capped: false,
            mix: json!([]),
            engines: vec![],
            harness_cpu_s: None,
        }
    }

    #[test]
    fn json_carries_counts_percentiles_and_throughput() {
        let v = report().to_json();
        assert_eq!(v["counts"]["sent"], 100);
        assert_eq!(v["counts"]["issued"], 90);
        assert_eq!(v["refusals_by_reason"]["UNDER_AGE"], 10);
        assert_eq!(v["throughput"]["achieved_per_s"], 50.0);
        let all = v["latency"].as_array().unwrap().iter().find(|r| r["dimension"] == "all").unwrap();
        assert_eq!(all["count"], 100);
        // 1..=100 ms: the median is 50 ms and the maximum 100 ms, within HdrHistogram's 3 digits.
        let p50 = all["p50"].as_u64().unwrap();
        assert!((49_950..=50_050).contains(&p50), "{p50}");
        assert!((99_900..=100_100).contains(&all["max"].as_u64().unwrap()));
        assert_eq!(v["timeline"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn write_puts_every_file_in_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        report().write(dir.path()).unwrap();
        let json: Value = serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
        assert_eq!(json["counts"]["sent"], 100);
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        // Two charts: three timeline series (p50, p99, max) and three distributions (all, east, west).
        assert_eq!(html.matches("<svg").count(), 2);
        assert_eq!(html.matches("<polyline").count(), 6);
        assert!(html.contains("east (n=50)"));
        for f in ["latency.csv", "timeline.csv", "outcomes.csv"] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
    }

    #[test]
    fn csv_rows_match_the_histograms() {
        let r = report();
        let csv = r.latency_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + r.totals.latency.len());
        assert!(lines.iter().any(|l| l.starts_with("centre,east,50,")));
        assert!(r.outcomes_csv().contains("refusal,UNDER_AGE,10\n"));
        assert_eq!(r.timeline_csv().lines().count(), 3);
    }
}
