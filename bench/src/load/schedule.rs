//! Open-loop arrival schedule: the instant each request is *meant* to leave, decided before the run and
//! independent of how fast the server answers. Latency is measured from this intended instant, not from the
//! moment the request actually left, so a server that stalls cannot hide the queue it built behind the stall
//! (coordinated omission).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrival {
    /// Exactly `1/rate` apart: the steadiest load, best for comparing runs.
    Constant,
    /// Exponential gaps with mean `1/rate`: independent kiosks, bursts included.
    Poisson,
}

/// Why a schedule cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    #[error("rate must be a finite number of requests per second above 0")]
    Rate,
}

/// An endless sequence of intended send offsets from the start of the run, in increasing order.
#[derive(Debug, Clone)]
pub struct Schedule {
    arrival: Arrival,
    rate: f64,
    rng: ChaCha8Rng,
    index: u64,
    /// Seconds since the start of the run of the next Poisson arrival.
    poisson_at: f64,
}

impl Schedule {
    pub fn new(arrival: Arrival, rate: f64, seed: u64) -> Result<Schedule, ScheduleError> {
        if !rate.is_finite() || rate <= 0.0 {
            return Err(ScheduleError::Rate);
        }
        Ok(Schedule { arrival, rate, rng: ChaCha8Rng::seed_from_u64(seed), index: 0, poisson_at: 0.0 })
    }

    /// The offset of the next request from the start of the run.
    pub fn next_offset(&mut self) -> Duration {
        let at = match self.arrival {
            // Computed from the index, not accumulated, so rounding never drifts over a long run.
            Arrival::Constant => self.index as f64 / self.rate,
            Arrival::Poisson => {
                let at = self.poisson_at;
                // Inverse transform of U(0,1]: 1 - random() is never 0, so ln is finite.
                let u: f64 = 1.0 - self.rng.random::<f64>();
                self.poisson_at += -u.ln() / self.rate;
                at
            }
        };
        self.index += 1;
        Duration::from_secs_f64(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_is_evenly_spaced_without_drift() {
        let mut s = Schedule::new(Arrival::Constant, 300.0, 1).unwrap();
        let offsets: Vec<Duration> = (0..30_001).map(|_| s.next_offset()).collect();
        assert_eq!(offsets[0], Duration::ZERO);
        // 30,000 gaps of 1/300 s end at exactly 100 s (to the nanosecond), not 100 s ± accumulated error.
        assert_eq!(offsets[30_000], Duration::from_secs(100));
        for w in offsets.windows(2) {
            let gap = (w[1] - w[0]).as_nanos() as i128;
            assert!((gap - 3_333_333).abs() <= 1, "gap {gap} ns");
        }
    }

    #[test]
    fn poisson_has_the_requested_mean_and_exponential_spread() {
        let rate = 500.0;
        let mut s = Schedule::new(Arrival::Poisson, rate, 7).unwrap();
        let n = 200_000;
        let offsets: Vec<f64> = (0..=n).map(|_| s.next_offset().as_secs_f64()).collect();
        let gaps: Vec<f64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g >= 0.0));
        let mean = gaps.iter().sum::<f64>() / n as f64;
        assert!((mean * rate - 1.0).abs() < 0.01, "mean gap {mean}");
        // For an exponential distribution P(gap > mean) = 1/e ≈ 0.368; constant spacing would give 0 or 1.
        let above = gaps.iter().filter(|g| **g > 1.0 / rate).count() as f64 / n as f64;
        assert!((above - (-1.0f64).exp()).abs() < 0.01, "fraction above mean {above}");
    }

    #[test]
    fn poisson_is_reproducible_from_its_seed() {
        let draw = |seed| {
            let mut s = Schedule::new(Arrival::Poisson, 100.0, seed).unwrap();
            (0..100).map(|_| s.next_offset()).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn refuses_a_rate_that_is_not_positive() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Schedule::new(Arrival::Constant, rate, 1).unwrap_err(), ScheduleError::Rate);
        }
    }
}
