//! Timing summaries: every figure is a distribution over many runs in the same process, not one timing.

use std::time::{Duration, Instant};

pub struct Summary {
    pub name: String,
    pub samples: Vec<Duration>,
}

impl Summary {
    pub fn percentile(&self, p: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        let idx = ((s.len() as f64 - 1.0) * p).round() as usize;
        s[idx]
    }

    pub fn row(&self) -> String {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            self.name,
            self.samples.len(),
            us(self.percentile(0.5)),
            us(self.percentile(0.9)),
            us(self.percentile(0.99)),
            us(*self.samples.iter().min().unwrap()),
        )
    }
}

pub const HEADER: &str = "| what | runs | p50 µs | p90 µs | p99 µs | min µs |\n|---|---:|---:|---:|---:|---:|";

/// Runs `f` `warmup` times unmeasured, then `runs` times measured.
pub fn measure<T>(name: &str, warmup: usize, runs: usize, mut f: impl FnMut() -> T) -> Summary {
    for _ in 0..warmup {
        std::hint::black_box(f());
    }
    let samples = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    Summary { name: name.to_string(), samples }
}
