//! The per-connection rate limit (`--rate-limit N`): a token bucket of 2N
//! refilled at N per second, and the rule that closes a client that stays
//! over it.
//!
//! Owned by one read pump; no sharing, no locks. Time comes in as an
//! argument, so the logic is tested below without sleeping.

use std::time::{Duration, Instant};

/// How many consecutive one-second windows with drops close the connection.
const WINDOWS_BEFORE_CLOSE: u64 = 5;

/// What to do with one data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: handle it.
    Allow,
    /// Over the limit: drop it and reply `rate_limited`.
    Drop,
    /// Over the limit in each of the last 5 seconds: close with 1008.
    Close,
}

/// A token bucket with a streak counter.
#[derive(Debug)]
pub struct RateLimiter {
    rate_per_second: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
    /// Windows are whole seconds counted from `started`.
    started: Instant,
    last_drop_window: Option<u64>,
    /// Consecutive windows, ending at `last_drop_window`, that had a drop.
    drop_streak: u64,
}

impl RateLimiter {
    /// `rate` messages per second with a burst of `2 * rate`, starting full.
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate_per_second = f64::from(rate);
        RateLimiter {
            rate_per_second,
            burst: 2.0 * rate_per_second,
            tokens: 2.0 * rate_per_second,
            refilled_at: now,
            started: now,
            last_drop_window: None,
            drop_streak: 0,
        }
    }

    /// Account for one data frame arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate_per_second).min(self.burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        let window = now.saturating_duration_since(self.started).as_secs();
        match self.last_drop_window {
            Some(last) if last == window => {}
            Some(last) if last + 1 == window => self.drop_streak += 1,
            _ => self.drop_streak = 1,
        }
        self.last_drop_window = Some(window);
        if self.drop_streak >= WINDOWS_BEFORE_CLOSE {
            Verdict::Close
        } else {
            Verdict::Drop
        }
    }
}

/// One second, for readers of the tests.
#[allow(dead_code)]
const SECOND: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_drops() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(10, t0);
        for _ in 0..20 {
            assert_eq!(limiter.check(t0), Verdict::Allow);
        }
        assert_eq!(limiter.check(t0), Verdict::Drop);
        // 100 ms later one token is back.
        let later = t0 + Duration::from_millis(100);
        assert_eq!(limiter.check(later), Verdict::Allow);
        assert_eq!(limiter.check(later), Verdict::Drop);
    }

    #[test]
    fn closes_after_five_consecutive_seconds_with_drops() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(1, t0);
        let mut verdicts = Vec::new();
        for second in 0..5u64 {
            let now = t0 + SECOND * second as u32 + Duration::from_millis(500);
            // Drain the bucket, then one more is dropped.
            while limiter.check(now) == Verdict::Allow {}
            verdicts.push(limiter.check(now));
        }
        assert_eq!(verdicts.last(), Some(&Verdict::Close));
        assert!(verdicts[..4].iter().all(|v| *v == Verdict::Drop));
    }

    #[test]
    fn a_quiet_second_resets_the_streak() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(1, t0);
        for second in [0u32, 1, 2, 3, 5, 6, 7, 8] {
            let now = t0 + SECOND * second;
            while limiter.check(now) == Verdict::Allow {}
            assert_eq!(limiter.check(now), Verdict::Drop, "second {second}");
        }
    }
}
