//! Per-caller token buckets: each identity may make `rate` requests per second with bursts of `burst`, so one
//! misbehaving client (a kiosk vendor's runaway retry loop) exhausts its own bucket and nobody else's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub struct RateLimiter {
    /// Tokens per second; 0 disables the limit.
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    pub fn disabled() -> RateLimiter {
        RateLimiter::new(0.0, 1.0)
    }

    /// Takes one token from `key`'s bucket; false when it is empty. The map holds one entry per certificate
    /// identity that ever called, which the CA bounds.
    pub fn try_acquire(&self, key: &str) -> bool {
        self.try_acquire_at(key, Instant::now())
    }

    fn try_acquire_at(&self, key: &str, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: self.burst, last: now });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_caller_exhausts_only_its_own_bucket() {
        let limiter = RateLimiter::new(10.0, 3.0);
        let t0 = Instant::now();
        let granted = (0..10).filter(|_| limiter.try_acquire_at("vendor-a", t0)).count();
        assert_eq!(granted, 3, "the burst");
        assert!(limiter.try_acquire_at("vendor-b", t0), "another caller is unaffected");
        assert!(!limiter.try_acquire_at("vendor-a", t0 + Duration::from_millis(50)), "half a token");
        assert!(limiter.try_acquire_at("vendor-a", t0 + Duration::from_millis(100)), "refilled at 10/s");
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| limiter.try_acquire_at("vendor-a", later)).count(), 3, "never above the burst");
    }

    #[test]
    fn zero_rate_disables() {
        let limiter = RateLimiter::disabled();
        assert!((0..10_000).all(|_| limiter.try_acquire("x")));
    }
}
