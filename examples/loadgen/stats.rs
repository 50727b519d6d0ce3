//! What the load generator counts: latencies, deliveries, failures.
//!
//! Everything here is plain data owned by the loadgen's event-loop thread
//! (the `Fleet`); nothing is shared or locked. `RunStats` is the whole-run
//! tally, `DeliveryTracker` is the per-subscriber memory needed to tell a
//! new event from a duplicate or an out-of-order one.

use std::collections::BTreeMap;
use std::time::Instant;

/// Whole-run counters, updated as frames arrive and read once by the report.
#[derive(Default)]
pub struct RunStats {
    /// Publish→receive latency of every new (non-duplicate) event.
    pub latency: LatencyHistogram,
    /// Connect time of every subscriber that was made, in microseconds:
    /// from the TCP `connect()` call to its `subscribed` frame.
    pub connect_times_us: Vec<u32>,
    /// Why connections that never became usable failed ("http 503", …).
    pub connect_failures: BTreeMap<String, u64>,
    /// Why usable connections ended before the run did ("close 4008", …).
    pub disconnects: BTreeMap<String, u64>,
    /// `error` frames received, by `code`.
    pub error_frames: BTreeMap<String, u64>,
    /// Things the hub did that docs/protocol.md says it must not, by description.
    pub protocol_violations: BTreeMap<String, u64>,
    /// Distinct events received, summed over subscribers.
    pub delivered: u64,
    /// Events a subscriber had already received once.
    pub duplicates: u64,
    /// New events whose `seq` was not above the last one that subscriber saw.
    pub out_of_order: u64,
    /// Text frames that were not JSON objects of the expected shape.
    pub unparsed_frames: u64,
    /// When the most recent new event arrived (for deliveries per second).
    pub last_delivery_at: Option<Instant>,
}

impl RunStats {
    /// Adds one to a reason counter; reasons are short, fixed strings.
    pub fn count(map: &mut BTreeMap<String, u64>, reason: &str) {
        *map.entry(reason.to_string()).or_insert(0) += 1;
    }
}

/// Number of sub-buckets per power of two. 64 keeps every reported value
/// within 1/64 (about 1.6 %) of the true one.
const SUB_BUCKETS: u64 = 64;
/// Below this, every microsecond value has its own bucket.
const EXACT_BELOW: u64 = 2 * SUB_BUCKETS;
/// Enough buckets for any `u64` value: the largest shift is 63 - 6 = 57, and
/// `bucket_index` puts shift `s` at 64 * s + 64..=64 * s + 127.
const BUCKET_COUNT: usize = 59 * SUB_BUCKETS as usize;

/// Latencies in microseconds, in log-linear buckets like an HDR histogram.
///
/// A sorted `Vec<u32>` would be exact, but a saturation run records tens of
/// millions of deliveries; this keeps 30 KiB whatever the count, records in
/// O(1), and is exact up to 127 µs and within 1.6 % above that. The maximum
/// is kept exactly.
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: vec![0; BUCKET_COUNT],
            total: 0,
            max_us: 0,
        }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&mut self, micros: u64) {
        self.counts[bucket_index(micros)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(micros);
    }

    /// How many latencies were recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The largest latency recorded, exactly.
    pub fn max(&self) -> u64 {
        self.max_us
    }

    /// The value at quantile `q` (0.5 = median), or `None` if empty. Reports
    /// the top of the bucket (never below the true value), capped at the max.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_top(index).min(self.max_us));
            }
        }
        Some(self.max_us)
    }
}

/// Values below 128 map to themselves. Above, `shift` drops all but the top
/// seven bits, leaving a mantissa in 64..=127; each shift gets 64 buckets.
fn bucket_index(value: u64) -> usize {
    if value < EXACT_BELOW {
        return value as usize;
    }
    let shift = u64::from(63 - value.leading_zeros()) - 6;
    let mantissa = value >> shift;
    (SUB_BUCKETS * shift + mantissa) as usize
}

/// The largest value that `bucket_index` maps to `index`.
fn bucket_top(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT_BELOW {
        return index;
    }
    let shift = index / SUB_BUCKETS - 1;
    let mantissa = index % SUB_BUCKETS + SUB_BUCKETS;
    (mantissa << shift) + ((1 << shift) - 1)
}

/// The value at quantile `q` of an ascending slice, or `None` if empty.
pub fn sorted_quantile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// What one subscriber has received so far.
///
/// Event numbers (`n` in the event data) are dense from 0, so a bit set is
/// enough to spot duplicates: one bit per published event, per subscriber
/// (a million events across 100 subscribers is 12.5 MB).
#[derive(Default)]
pub struct DeliveryTracker {
    seen_words: Vec<u64>,
    highest_seq: u64,
}

/// How an arriving event relates to what the subscriber already had.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// First time, and `seq` above every earlier one: what the hub promises.
    InOrder,
    /// First time, but `seq` not above an earlier event's.
    OutOfOrder,
    /// This event number was already received.
    Duplicate,
}

/// Event numbers above this are not ours (another publisher on the channel);
/// tracking them would let a stray huge `n` allocate without bound.
const LARGEST_TRACKED_NUMBER: u64 = 1 << 32;

impl DeliveryTracker {
    /// Classifies event `number` carrying hub sequence `seq`, and remembers
    /// it. Returns `None` for a number this run cannot have published.
    pub fn record(&mut self, seq: u64, number: u64) -> Option<Arrival> {
        if number >= LARGEST_TRACKED_NUMBER {
            return None;
        }
        let word = (number / 64) as usize;
        let bit = 1u64 << (number % 64);
        if word >= self.seen_words.len() {
            // Grow geometrically so a long run does not reallocate per event.
            let wanted = (word + 1).max(self.seen_words.len() * 2);
            self.seen_words.resize(wanted, 0);
        }
        if self.seen_words[word] & bit != 0 {
            return Some(Arrival::Duplicate);
        }
        self.seen_words[word] |= bit;
        if seq <= self.highest_seq {
            return Some(Arrival::OutOfOrder);
        }
        self.highest_seq = seq;
        Some(Arrival::InOrder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bucket's top maps back to it, and buckets tile the number line.
    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut previous_top = None;
        for index in 0..BUCKET_COUNT {
            let top = bucket_top(index);
            assert_eq!(bucket_index(top), index);
            if let Some(previous) = previous_top {
                assert_eq!(bucket_index(previous + 1), index);
            }
            previous_top = Some(top);
        }
        assert_eq!(previous_top, Some(u64::MAX));
    }

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut histogram = LatencyHistogram::default();
        for value in 1..=100_000 {
            histogram.record(value);
        }
        let p99 = histogram.quantile(0.99).unwrap() as f64;
        assert!((p99 / 99_000.0 - 1.0).abs() < 0.02, "p99 = {p99}");
        assert_eq!(histogram.quantile(1.0), Some(100_000));
        assert_eq!(histogram.quantile(0.0), Some(1));
    }

    #[test]
    fn tracker_tells_duplicates_from_reordering() {
        let mut tracker = DeliveryTracker::default();
        assert_eq!(tracker.record(5, 0), Some(Arrival::InOrder));
        assert_eq!(tracker.record(7, 2), Some(Arrival::InOrder));
        assert_eq!(tracker.record(6, 1), Some(Arrival::OutOfOrder));
        assert_eq!(tracker.record(7, 2), Some(Arrival::Duplicate));
        assert_eq!(tracker.record(8, u64::MAX), None);
    }
}
