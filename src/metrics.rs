//! Counters and gauges for `GET /metrics`, and their Prometheus text
//! rendering (format 0.0.4).
//!
//! One [`Metrics`] per hub, shared behind an `Arc` by every thread that
//! counts something: the acceptor (rejections), connection threads
//! (messages, error replies, refused tokens, connection gauges), write pumps (fan-out
//! latency) and the broadcaster (events). Every figure is a relaxed atomic:
//! counting takes no lock. The fan-out latency histogram is sampled once per
//! write batch, not per event, so busy write pumps do not fight over its
//! cache lines.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::auth::RefusalReason;
use crate::protocol::ErrorCode;
use crate::protocol::Seq;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a connection was refused before or at the handshake. The label of
/// `pumphub_connections_rejected_total{reason="…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `--max-connections` reached (HTTP 503).
    MaxConnections,
    /// `--max-connections-per-ip` reached (HTTP 429).
    PerIp,
    /// `Origin` not allowed (HTTP 403).
    Origin,
    /// Wrong or empty token (HTTP 401).
    Unauthorized,
    /// Path other than `/ws` (HTTP 404).
    NotFound,
    /// Not HTTP, not GET, not an upgrade, or a bad query (HTTP 400).
    BadRequest,
    /// The request did not arrive within the handshake deadline.
    HandshakeTimeout,
    /// The hub is shutting down (HTTP 503).
    ShuttingDown,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [RejectReason; 8] = [
        RejectReason::MaxConnections,
        RejectReason::PerIp,
        RejectReason::Origin,
        RejectReason::Unauthorized,
        RejectReason::NotFound,
        RejectReason::BadRequest,
        RejectReason::HandshakeTimeout,
        RejectReason::ShuttingDown,
    ];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::MaxConnections => "max_connections",
            RejectReason::PerIp => "per_ip",
            RejectReason::Origin => "origin",
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::NotFound => "not_found",
            RejectReason::BadRequest => "bad_request",
            RejectReason::HandshakeTimeout => "handshake_timeout",
            RejectReason::ShuttingDown => "shutting_down",
        }
    }
}

/// The shortest time between two log warnings for one [`RejectReason`].
///
/// A refused handshake costs the peer one TCP connection, so an attacker can
/// cause thousands per second; one warning line each would bury the log.
/// The counter `pumphub_connections_rejected_total` sees every refusal; the
/// log gets the first one, then at most one line per reason per interval,
/// carrying how many it stands for. Every refusal is also logged at `debug`.
pub const REJECTION_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// When a reason was last warned about, and its count at that moment.
#[derive(Debug, Default)]
struct WarningThrottle {
    /// Unix seconds of the last warning; 0 = never.
    warned_at_s: AtomicU64,
    /// The reason's rejection count when it was last warned about.
    count_then: AtomicU64,
}

impl WarningThrottle {
    /// `Some(n)` if a warning is due for a reason whose counter now stands
    /// at `total`, with the count since the previous warning; see
    /// [`Metrics::rejection_warning_due`].
    ///
    /// Lock-free: when threads race, one wins the compare-and-swap and the
    /// others stay quiet.
    fn due(&self, total: u64) -> Option<u64> {
        let now_s = crate::protocol::unix_ms() / 1000;
        let last_s = self.warned_at_s.load(Ordering::Relaxed);
        if last_s != 0 && now_s < last_s + REJECTION_WARNING_INTERVAL.as_secs() {
            return None;
        }
        self.warned_at_s
            .compare_exchange(last_s, now_s, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        let before = self.count_then.swap(total, Ordering::Relaxed);
        Some(total.saturating_sub(before).max(1))
    }
}

/// Upper bounds of the fan-out latency buckets, in microseconds.
const LATENCY_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

/// A Prometheus histogram with fixed buckets, in microseconds.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    /// Record one observation.
    pub fn observe(&self, latency: Duration) {
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        let index = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every counter of one hub.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections that completed the handshake.
    pub connections_total: Counter,
    /// Connections whose threads have ended.
    pub connections_closed: Counter,
    /// The most connections open at once.
    pub connections_peak: AtomicU64,
    /// Events published (any source).
    pub events_published: Counter,
    /// Events queued for a client or in-process subscriber.
    pub events_delivered: Counter,
    /// Broadcast `error` frames.
    pub broadcast_errors: Counter,
    /// Data frames received from clients.
    pub client_messages: Counter,
    /// Frames written to client sockets.
    pub frames_sent: Counter,
    /// Clients closed with 4008 (and in-process subscribers dropped).
    pub slow_consumer_disconnects: Counter,
    /// Replays cut short by the queue's byte budget (`complete: false`).
    pub replays_cut: Counter,
    /// Channels forgotten after `--channel-idle-ms` unused.
    pub channels_forgotten_idle: Counter,
    /// Channels forgotten to make room under `--max-channels`.
    pub channels_forgotten_limit: Counter,
    /// Events evicted early because histories outgrew `--history-bytes`.
    pub history_trimmed: Counter,
    /// Array publishes refused because they would not fit a queue.
    pub batches_refused: Counter,
    rejected: [Counter; RejectReason::ALL.len()],
    rejection_warnings: [WarningThrottle; RejectReason::ALL.len()],
    error_replies: [Counter; ErrorCode::ALL.len()],
    token_refusals: [Counter; RefusalReason::ALL.len()],
    token_refusal_warnings: [WarningThrottle; RefusalReason::ALL.len()],
    /// Connections closed with 4001 because their token expired.
    pub tokens_expired: Counter,
    /// Event accepted by the broadcaster → its frame written to a socket.
    pub fanout_latency: LatencyHistogram,
}

impl Metrics {
    /// Count a refused connection.
    pub fn count_rejection(&self, reason: RejectReason) {
        self.rejected[reason as usize].inc();
    }

    /// Refused connections for `reason` so far.
    pub fn rejections(&self, reason: RejectReason) -> u64 {
        self.rejected[reason as usize].get()
    }

    /// Whether a rejection just counted for `reason` should be logged as a
    /// warning, at most once per [`REJECTION_WARNING_INTERVAL`]: `Some(n)`
    /// with the rejections for `reason` since the previous warning
    /// (this one included), or `None` to log it at `debug` only.
    ///
    /// Lock-free: when threads race, one wins the compare-and-swap and the
    /// others stay quiet.
    pub fn rejection_warning_due(&self, reason: RejectReason) -> Option<u64> {
        self.rejection_warnings[reason as usize].due(self.rejections(reason))
    }

    /// Count a refused token (at the handshake or in an `auth` message).
    pub fn count_token_refusal(&self, reason: RefusalReason) {
        self.token_refusals[reason.index()].inc();
    }

    /// Refused tokens for `reason` so far.
    pub fn token_refusals(&self, reason: RefusalReason) -> u64 {
        self.token_refusals[reason.index()].get()
    }

    /// As [`rejection_warning_due`](Self::rejection_warning_due), for a
    /// token refusal just counted: a client can send a bad token in an
    /// `auth` message many times a second, on many connections.
    pub fn token_refusal_warning_due(&self, reason: RefusalReason) -> Option<u64> {
        self.token_refusal_warnings[reason.index()].due(self.token_refusals(reason))
    }

    /// Count an error reply sent to a client.
    pub fn count_error_reply(&self, code: ErrorCode) {
        self.error_replies[code.index()].inc();
    }

    /// Count a completed handshake, updating the peak.
    pub fn count_connection_opened(&self) {
        self.connections_total.inc();
        let active = self.connections_active();
        self.connections_peak.fetch_max(active, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn connections_active(&self) -> u64 {
        self.connections_total
            .get()
            .saturating_sub(self.connections_closed.get())
    }

    /// The most connections open at once.
    pub fn connections_peak(&self) -> u64 {
        self.connections_peak.load(Ordering::Relaxed)
    }

    /// Render every metric in Prometheus text format 0.0.4. `hub` carries the
    /// figures only the broadcaster knows.
    pub fn render(&self, hub: &HubStats, uptime: Duration) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "pumphub_connections_active",
            "gauge",
            "WebSocket connections open now.",
            self.connections_active(),
        );
        metric(
            "pumphub_connections_total",
            "counter",
            "WebSocket connections that completed the handshake.",
            self.connections_total.get(),
        );
        metric(
            "pumphub_connections_peak",
            "gauge",
            "The most WebSocket connections open at once.",
            self.connections_peak(),
        );
        metric(
            "pumphub_events_published_total",
            "counter",
            "Events published from any source.",
            self.events_published.get(),
        );
        metric(
            "pumphub_events_delivered_total",
            "counter",
            "Events queued for a client or an in-process subscriber.",
            self.events_delivered.get(),
        );
        metric(
            "pumphub_broadcast_errors_total",
            "counter",
            "Error frames broadcast to every client.",
            self.broadcast_errors.get(),
        );
        metric(
            "pumphub_client_messages_total",
            "counter",
            "Data frames received from WebSocket clients.",
            self.client_messages.get(),
        );
        metric(
            "pumphub_frames_sent_total",
            "counter",
            "Frames written to WebSocket client sockets.",
            self.frames_sent.get(),
        );
        metric(
            "pumphub_slow_consumer_disconnects_total",
            "counter",
            "Clients closed with 4008 because their outbound queue was full.",
            self.slow_consumer_disconnects.get(),
        );
        metric(
            "pumphub_token_expired_closes_total",
            "counter",
            "Clients closed with 4001 because their signed token expired.",
            self.tokens_expired.get(),
        );
        metric(
            "pumphub_seq",
            "gauge",
            "The last sequence number assigned.",
            hub.seq.0,
        );
        metric(
            "pumphub_channels",
            "gauge",
            "Channels the hub knows (followed or with history).",
            hub.channels as u64,
        );
        metric(
            "pumphub_history_events",
            "gauge",
            "Events kept across all channel histories.",
            hub.history_events as u64,
        );
        metric(
            "pumphub_history_bytes",
            "gauge",
            "Estimated memory of the events kept across all channel histories (bounded by --history-bytes).",
            hub.history_bytes as u64,
        );
        metric(
            "pumphub_history_trimmed_total",
            "counter",
            "Events evicted before their channel's --history-size because all histories outgrew --history-bytes.",
            self.history_trimmed.get(),
        );
        metric(
            "pumphub_forgotten_seq",
            "gauge",
            "The newest seq of any channel the hub has forgotten (0 if none); resumes from before it are incomplete.",
            hub.forgotten_seq.0,
        );
        metric(
            "pumphub_replays_cut_total",
            "counter",
            "Replays cut to the newest events that fit the client's queue (answered complete: false).",
            self.replays_cut.get(),
        );
        metric(
            "pumphub_replays_waiting",
            "gauge",
            "Commands waiting behind a replay in the broadcaster (replays are served one per round).",
            hub.deferred as u64,
        );
        metric(
            "pumphub_batches_refused_total",
            "counter",
            "Array publishes refused (413) because they would not fit half a subscriber's queue.",
            self.batches_refused.get(),
        );
        metric(
            "pumphub_local_subscribers",
            "gauge",
            "In-process subscriptions of an embedding application.",
            hub.local_subscribers as u64,
        );
        metric(
            "pumphub_queue_depth_high_water",
            "gauge",
            "The most frames any client ever had waiting in its outbound queue.",
            hub.queue_high_water as u64,
        );
        metric(
            "pumphub_uptime_seconds",
            "gauge",
            "Seconds since the hub started.",
            uptime.as_secs(),
        );

        counter_family(
            &mut out,
            "pumphub_channels_forgotten_total",
            "Channels forgotten with their history, by why.",
            "reason",
            [
                ("idle", self.channels_forgotten_idle.get()),
                ("limit", self.channels_forgotten_limit.get()),
            ],
        );
        counter_family(
            &mut out,
            "pumphub_connections_rejected_total",
            "Connections refused at the handshake, by reason.",
            "reason",
            RejectReason::ALL.map(|reason| (reason.label(), self.rejections(reason))),
        );
        counter_family(
            &mut out,
            "pumphub_token_refusals_total",
            "Tokens refused, at the handshake (401) or in an auth message, by reason.",
            "reason",
            RefusalReason::ALL.map(|reason| (reason.label(), self.token_refusals(reason))),
        );
        counter_family(
            &mut out,
            "pumphub_error_replies_total",
            "Error replies sent to clients, by code.",
            "code",
            ErrorCode::ALL.map(|code| (code.as_str(), self.error_replies[code.index()].get())),
        );

        let histogram = &self.fanout_latency;
        let _ = writeln!(
            out,
            "# HELP pumphub_fanout_latency_seconds Event accepted by the hub to its frame written to a client socket (sampled once per write batch).\n\
             # TYPE pumphub_fanout_latency_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += histogram.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "pumphub_fanout_latency_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        cumulative += histogram.buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "pumphub_fanout_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n\
             pumphub_fanout_latency_seconds_sum {}\n\
             pumphub_fanout_latency_seconds_count {cumulative}",
            histogram.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        out
    }
}

/// Numbers only the broadcaster knows, which it reports in answer to a
/// stats command: read through `HubHandle::stats` and rendered in `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubStats {
    /// The last seq assigned (0 if none).
    pub seq: Seq,
    /// WebSocket clients registered with the broadcaster.
    pub connections: usize,
    /// In-process subscriptions.
    pub local_subscribers: usize,
    /// Channels the hub knows (followed, or with history).
    pub channels: usize,
    /// Events kept across all channel histories.
    pub history_events: usize,
    /// Their estimated memory.
    pub history_bytes: usize,
    /// The newest seq of any forgotten channel.
    pub forgotten_seq: Seq,
    /// Commands waiting behind replays.
    pub deferred: usize,
    /// The most frames any client ever had waiting in its queue.
    pub queue_high_water: usize,
}

/// One counter with a label, in Prometheus text: its `# HELP` and
/// `# TYPE` lines, then one sample per label value.
fn counter_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, count) in samples {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_stats() -> HubStats {
        HubStats {
            seq: Seq(7),
            connections: 1,
            local_subscribers: 0,
            channels: 2,
            history_events: 3,
            history_bytes: 300,
            forgotten_seq: Seq(2),
            deferred: 0,
            queue_high_water: 4,
        }
    }

    #[test]
    fn renders_counters_labels_and_histogram() {
        let metrics = Metrics::default();
        metrics.events_published.add(5);
        metrics.count_rejection(RejectReason::PerIp);
        metrics.count_error_reply(ErrorCode::BadJson);
        metrics.count_token_refusal(RefusalReason::Expired);
        metrics.count_token_refusal(RefusalReason::Expired);
        metrics.tokens_expired.inc();
        metrics.fanout_latency.observe(Duration::from_micros(80));
        metrics.fanout_latency.observe(Duration::from_secs(5));
        let text = metrics.render(&hub_stats(), Duration::from_secs(3));
        assert!(text.contains("\npumphub_events_published_total 5\n"));
        assert!(text.contains("pumphub_connections_rejected_total{reason=\"per_ip\"} 1\n"));
        assert!(text.contains("pumphub_error_replies_total{code=\"bad_json\"} 1\n"));
        assert!(text.contains("pumphub_token_refusals_total{reason=\"expired\"} 2\n"));
        assert!(text.contains("pumphub_token_refusals_total{reason=\"bad_signature\"} 0\n"));
        assert!(text.contains("\npumphub_token_expired_closes_total 1\n"));
        assert!(text.contains("pumphub_fanout_latency_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("pumphub_fanout_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("pumphub_fanout_latency_seconds_count 2\n"));
        assert!(text.contains("\npumphub_seq 7\n"));
        assert!(text.contains("\npumphub_history_bytes 300\n"));
        assert!(text.contains("pumphub_channels_forgotten_total{reason=\"idle\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("pumphub_"), "{line}");
        }
    }

    #[test]
    fn rejection_warnings_are_throttled_per_reason() {
        let metrics = Metrics::default();
        metrics.count_rejection(RejectReason::NotFound);
        assert_eq!(
            metrics.rejection_warning_due(RejectReason::NotFound),
            Some(1)
        );
        for _ in 0..5 {
            metrics.count_rejection(RejectReason::NotFound);
            assert_eq!(metrics.rejection_warning_due(RejectReason::NotFound), None);
        }
        // Another reason has its own allowance.
        metrics.count_rejection(RejectReason::Origin);
        assert_eq!(metrics.rejection_warning_due(RejectReason::Origin), Some(1));
        // Once the interval has passed, the next warning carries the count
        // of what was kept quiet (simulated by backdating the last warning).
        metrics.rejection_warnings[RejectReason::NotFound as usize]
            .warned_at_s
            .store(1, Ordering::Relaxed);
        metrics.count_rejection(RejectReason::NotFound);
        assert_eq!(
            metrics.rejection_warning_due(RejectReason::NotFound),
            Some(6)
        );
    }

    #[test]
    fn active_is_opened_minus_closed_and_peak_follows() {
        let metrics = Metrics::default();
        metrics.count_connection_opened();
        metrics.count_connection_opened();
        metrics.connections_closed.inc();
        assert_eq!(metrics.connections_active(), 1);
        assert_eq!(metrics.connections_peak(), 2);
    }
}
