//! Everything the harness learns from the answers: latency histograms (HdrHistogram, microseconds, three
//! significant digits) overall and per centre, certificate type and outcome; a per-second timeline; outcome
//! counts; refusals by reason and errors by status and reason; fail-overs; and an idempotency ledger that
//! catches a request_id issued twice.
//!
//! Warm-up answers are counted apart and never enter a histogram. The ledger sees every answer, warm-up
//! included, because a double issuance is a fault whenever it happens.

use super::mix::Category;
use super::routing::CentreId;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// Longest latency a histogram holds (longer ones are clamped to it and still counted).
pub const MAX_LATENCY: Duration = Duration::from_secs(120);

/// How one kiosk transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new certificate was issued.
    Issued,
    /// A retry was answered with the certificate issued before (`replayed = true`).
    Replayed,
    /// Refused with the CONTRACT reason the fixture case calls for.
    Refused(String),
    /// Anything else: transport or server error, or a refusal the case does not call for.
    Error { code: String, reason: String },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Issued => "issued",
            Outcome::Replayed => "replayed",
            Outcome::Refused(_) => "refused",
            Outcome::Error { .. } => "error",
        }
    }
}

/// One finished transaction.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Outside the warm-up.
    pub measured: bool,
    /// When it finished, from the start of measurement (for the timeline).
    pub finished_at: Duration,
    /// From the intended send instant (open loop) or the actual send (closed loop) to the final answer,
    /// fail-over included.
    pub latency: Duration,
    pub centre: CentreId,
    pub type_name: &'static str,
    pub category: Category,
    pub outcome: Outcome,
    pub failed_over: bool,
    /// Why the answer is not the one the case calls for (names the rule, never personal data).
    pub mismatch: Option<String>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY.as_micros() as u64, 3).expect("static histogram bounds are valid")
}

/// The running totals; also the finished result handed to the report.
#[derive(Debug, Default)]
pub struct Totals {
    pub sent: u64,
    pub sent_warmup: u64,
    pub completed_warmup: u64,
    pub issued: u64,
    pub replayed: u64,
    pub refused: u64,
    pub errors: u64,
    /// Measured transactions that failed over, and all that did (warm-up included).
    pub failovers: u64,
    pub failovers_total: u64,
    pub refusals_by_reason: BTreeMap<String, u64>,
    /// Keyed `CODE/REASON` (REASON is `-` when the status carries no ErrorInfo).
    pub errors_by_status: BTreeMap<String, u64>,
    pub mismatches: BTreeMap<String, u64>,
    /// Keyed (dimension, value): ("all", "all"), ("centre", "east"), ("type", ...), ("outcome", ...).
    pub latency: BTreeMap<(&'static str, String), Histogram<u64>>,
    /// One histogram per second of measurement, by completion time.
    pub timeline: Vec<Histogram<u64>>,
    /// Latencies longer than [`MAX_LATENCY`], clamped.
    pub clamped: u64,
    /// Times the open-loop dispatcher found every in-flight slot taken and had to wait (the harness, not
    /// the server, was the bottleneck at that moment; latency still counts from the intended instant).
    pub harness_waits: u64,
    /// Open loop: how late the dispatcher sent each measured request after its scheduled instant, µs. Its
    /// latency counts from the scheduled instant, so this lag is in every latency figure: it is the
    /// harness's own error, and it should stay far below the latencies it reports.
    pub send_lag: Option<Histogram<u64>>,
    /// Open loop: the niceness the dispatcher thread ran at (see `driver::DISPATCHER_NICE`).
    pub dispatcher_nice: Option<i32>,
    /// Non-replayed issuances per (centre, request_id): more than one is a double issuance by one engine.
    issued_at: HashMap<(CentreId, String), String>,
    pub double_issuances: u64,
    /// request_ids issued (not replayed) by both centres: each engine keeps its own log, so a retry through
    /// the other centre after the first one issued but did not answer in time is charged twice.
    centres_of: HashMap<String, (bool, bool)>,
    pub cross_centre_duplicates: u64,
    /// Of those, the ones whose second issuance answered a kiosk retry (the rest were fresh requests that
    /// failed over after the first centre had issued them without answering).
    pub cross_centre_duplicates_from_retries: u64,
}

impl Totals {
    /// Measured transactions that have an answer.
    pub fn completed(&self) -> u64 {
        self.issued + self.replayed + self.refused + self.errors
    }

    pub fn overall(&self) -> Option<&Histogram<u64>> {
        self.latency.get(&("all", "all".to_string()))
    }
}

/// A short view for the live progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    pub refused: u64,
    pub failovers: u64,
    pub p99: Duration,
}

/// Thread-safe recorder shared by every in-flight transaction.
#[derive(Debug, Default)]
pub struct Recorder {
    totals: Mutex<Totals>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        // A panic elsewhere while holding the lock leaves counts that are still meaningful.
        self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn sent(&self, measured: bool) {
        let mut t = self.lock();
        if measured {
            t.sent += 1;
        } else {
            t.sent_warmup += 1;
        }
    }

    /// An open-loop request left `lag` after its scheduled instant.
    pub fn send_lag(&self, lag: Duration) {
        let micros = (lag.as_micros().min(MAX_LATENCY.as_micros()) as u64).max(1);
        let mut t = self.lock();
        t.send_lag.get_or_insert_with(histogram).record(micros).expect("value is within the bounds");
    }

    pub fn dispatcher_nice(&self, nice: i32) {
        self.lock().dispatcher_nice = Some(nice);
    }

    pub fn harness_waited(&self) {
        self.lock().harness_waits += 1;
    }

    /// Enters a non-replayed or replayed issuance into the idempotency ledger; `retry`: it answered a kiosk
    /// retry of an earlier issued request.
    pub fn issuance(&self, centre: CentreId, request_id: &str, certificate_id: &str, replayed: bool, retry: bool) {
        let mut t = self.lock();
        if replayed {
            return;
        }
        if t.issued_at.insert((centre, request_id.to_string()), certificate_id.to_string()).is_some() {
            t.double_issuances += 1;
        }
        let entry = t.centres_of.entry(request_id.to_string()).or_insert((false, false));
        let before = *entry;
        match centre {
            CentreId::East => entry.0 = true,
            CentreId::West => entry.1 = true,
        }
        if *entry == (true, true) && before != (true, true) {
            t.cross_centre_duplicates += 1;
            if retry {
                t.cross_centre_duplicates_from_retries += 1;
            }
        }
    }

    pub fn complete(&self, c: Completion) {
        let mut t = self.lock();
        if c.failed_over {
            t.failovers_total += 1;
        }
        if !c.measured {
            t.completed_warmup += 1;
            return;
        }
        if c.failed_over {
            t.failovers += 1;
        }
        match &c.outcome {
            Outcome::Issued => t.issued += 1,
            Outcome::Replayed => t.replayed += 1,
            Outcome::Refused(reason) => {
                t.refused += 1;
                *t.refusals_by_reason.entry(reason.clone()).or_default() += 1;
            }
            Outcome::Error { code, reason } => {
                t.errors += 1;
                *t.errors_by_status.entry(format!("{code}/{reason}")).or_default() += 1;
            }
        }
        if let Some(m) = c.mismatch {
            *t.mismatches.entry(m).or_default() += 1;
        }
        let micros = c.latency.as_micros().min(MAX_LATENCY.as_micros()) as u64;
        if c.latency > MAX_LATENCY {
            t.clamped += 1;
        }
        let micros = micros.max(1);
        for key in [
            ("all", "all".to_string()),
            ("centre", c.centre.name().to_string()),
            ("type", c.type_name.to_string()),
            ("outcome", c.outcome.label().to_string()),
        ] {
            t.latency.entry(key).or_insert_with(histogram).record(micros).expect("value is within the bounds");
        }
        let second = c.finished_at.as_secs() as usize;
        while t.timeline.len() <= second {
            t.timeline.push(histogram());
        }
        t.timeline[second].record(micros).expect("value is within the bounds");
    }

    pub fn progress(&self) -> Progress {
        let t = self.lock();
        Progress {
            sent: t.sent,
            completed: t.completed(),
            errors: t.errors,
            refused: t.refused,
            failovers: t.failovers,
            p99: Duration::from_micros(t.overall().map_or(0, |h| h.value_at_quantile(0.99))),
        }
    }

    pub fn finish(self) -> Totals {
        self.totals.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(outcome: Outcome, ms: u64, measured: bool) -> Completion {
        Completion {
            measured,
            finished_at: Duration::from_millis(1500),
            latency: Duration::from_millis(ms),
            centre: CentreId::West,
            type_name: "seal_registration",
            category: Category::Seal,
            outcome,
            failed_over: true,
            mismatch: None,
        }
    }

    #[test]
    fn warmup_is_counted_apart_and_never_timed() {
        let r = Recorder::new();
        r.sent(false);
        r.complete(done(Outcome::Issued, 900, false));
        r.sent(true);
        r.complete(done(Outcome::Issued, 3, true));
        let t = r.finish();
        assert_eq!((t.sent, t.sent_warmup, t.completed_warmup, t.issued), (1, 1, 1, 1));
        assert_eq!((t.failovers, t.failovers_total), (1, 2));
        let all = t.overall().unwrap();
        assert_eq!(all.len(), 1);
        assert!(all.max() < 4_000, "the 900 ms warm-up answer is not in the histogram");
        assert_eq!(t.timeline.len(), 2);
        assert_eq!(t.timeline[1].len(), 1);
    }

    #[test]
    fn outcomes_land_in_their_dimension_and_reason() {
        let r = Recorder::new();
        r.complete(done(Outcome::Refused("UNDER_AGE".into()), 2, true));
        r.complete(done(Outcome::Error { code: "Unavailable".into(), reason: "-".into() }, 5, true));
        r.complete(done(Outcome::Replayed, 1, true));
        let t = r.finish();
        assert_eq!(t.completed(), 3);
        assert_eq!(t.refusals_by_reason["UNDER_AGE"], 1);
        assert_eq!(t.errors_by_status["Unavailable/-"], 1);
        assert_eq!(t.latency[&("centre", "west".into())].len(), 3);
        assert_eq!(t.latency[&("outcome", "error".into())].len(), 1);
        assert!(!t.latency.contains_key(&("centre", "east".into())));
    }

    #[test]
    fn the_ledger_tells_a_replay_from_a_double_issuance() {
        let r = Recorder::new();
        r.issuance(CentreId::East, "req-1", "C1", false, false);
        r.issuance(CentreId::East, "req-1", "C1", true, true);
        r.issuance(CentreId::East, "req-2", "C2", false, false);
        assert_eq!(r.lock().double_issuances, 0);
        r.issuance(CentreId::East, "req-2", "C2", false, false);
        assert_eq!(r.lock().double_issuances, 1);
        r.issuance(CentreId::West, "req-1", "C1", false, true);
        r.issuance(CentreId::West, "req-1", "C1", true, true);
        r.issuance(CentreId::East, "req-3", "C3", false, false);
        r.issuance(CentreId::West, "req-3", "C3", false, false);
        let t = r.finish();
        assert_eq!((t.double_issuances, t.cross_centre_duplicates, t.cross_centre_duplicates_from_retries), (1, 2, 1));
    }

    #[test]
    fn latencies_beyond_the_histogram_are_clamped_not_lost() {
        let r = Recorder::new();
        r.complete(done(Outcome::Issued, 200_000, true));
        let t = r.finish();
        assert_eq!(t.clamped, 1);
        assert_eq!(t.overall().unwrap().len(), 1);
    }
}
