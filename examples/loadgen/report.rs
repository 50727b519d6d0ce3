//! Reading a process from /proc, and printing what a run measured.
//!
//! `ProcessSample` is one look at /proc/PID/status (VmRSS, VmHWM, Threads),
//! /proc/PID/stat (utime + stime), /proc/PID/fd and /proc/PID/maps. `Report` is everything
//! a run measured, in the order of the JSON line; `print_table` shows the
//! same numbers for people.

use std::collections::BTreeMap;
use std::fs;
use std::io;

use serde::Serialize;

/// Clock ticks per second in /proc/PID/stat. Linux fixes this "USER_HZ" at
/// 100 for user space on every architecture it supports, whatever the
/// kernel's internal tick rate, so it need not be asked via sysconf.
const TICKS_PER_SECOND: f64 = 100.0;

/// One look at a process.
#[derive(Clone, Copy, Debug)]
pub struct ProcessSample {
    /// VmRSS: resident memory now.
    pub rss_kib: u64,
    /// VmHWM: the most resident memory the process ever had.
    pub peak_rss_kib: u64,
    /// utime + stime, in clock ticks since the process started.
    pub cpu_ticks: u64,
    pub threads: u64,
    /// Open file descriptors (sockets, mostly); `None` if not readable.
    pub open_fds: Option<u64>,
    /// Memory mappings. Each thread costs several (stack, guard pages,
    /// signal stack), and Linux caps them per process at vm.max_map_count,
    /// so with a thread per connection this bounds the connection count.
    pub memory_maps: Option<u64>,
}

impl ProcessSample {
    /// Reads `/proc/<process>/…`; `process` is a PID or `self`.
    pub fn read(process: &str) -> io::Result<ProcessSample> {
        let status = fs::read_to_string(format!("/proc/{process}/status"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let stat = fs::read_to_string(format!("/proc/{process}/stat"))?;
        // The command name (field 2) is in parentheses and may contain
        // spaces, so count fields from the last ')'. What follows starts at
        // field 3 (state); utime and stime are fields 14 and 15.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |index: usize| {
            fields
                .get(index)
                .and_then(|text| text.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let open_fds = fs::read_dir(format!("/proc/{process}/fd"))
            .ok()
            .map(|entries| entries.count() as u64);
        let memory_maps = fs::read_to_string(format!("/proc/{process}/maps"))
            .ok()
            .map(|maps| maps.lines().count() as u64);
        Ok(ProcessSample {
            memory_maps,
            rss_kib: field("VmRSS:"),
            peak_rss_kib: field("VmHWM:"),
            cpu_ticks: ticks(11) + ticks(12),
            threads: field("Threads:"),
            open_fds,
        })
    }

    /// CPU seconds this process used between `earlier` and `self`.
    pub fn cpu_seconds_since(&self, earlier: &ProcessSample) -> f64 {
        self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / TICKS_PER_SECOND
    }
}

/// The kernel's count of connections dropped because a listener's accept
/// queue was full (TcpExt ListenOverflows in /proc/net/netstat). It is
/// machine-wide, but on this loopback-only machine the hub is the listener
/// being hammered. Each such drop costs the client a SYN retransmission,
/// 1 s later: this is what explains a connect-time tail of about 1 s.
pub fn listen_overflows() -> Option<u64> {
    let netstat = fs::read_to_string("/proc/net/netstat").ok()?;
    let mut tcp_ext = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let names = tcp_ext.next()?.split_whitespace();
    let values = tcp_ext.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
}

/// Soft limit on open files for this process, from /proc/self/limits.
pub fn open_files_limit() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Everything one run measured. Field order is the JSON line's order; see
/// the header of loadgen.rs for what each one means.
#[derive(Serialize, Default)]
pub struct Report {
    pub label: String,
    pub mode: &'static str,
    pub clients: usize,
    pub publish_via: &'static str,
    pub publishers: usize,
    pub rate: u64,
    pub duration_s: f64,
    pub payload_bytes: usize,
    pub window: usize,
    pub batch: usize,
    pub max_lag: Option<u64>,

    pub connections_made: usize,
    pub connections_open: usize,
    pub connections_failed: u64,
    pub connect_failures: BTreeMap<String, u64>,
    pub connect_wall_s: f64,
    pub connect_ms_p50: Option<f64>,
    pub connect_ms_p99: Option<f64>,
    pub connect_ms_max: Option<f64>,
    pub listen_overflows: Option<u64>,

    pub published: u64,
    pub publish_errors: u64,
    pub publish_first_error: Option<String>,
    pub unsent: u64,
    pub publish_wall_s: f64,
    pub published_per_s: f64,
    pub requests: u64,
    pub requests_per_s: f64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub out_of_order: u64,
    pub duplicates: u64,
    pub deliveries_per_s: f64,
    pub hub_reported_delivered: u64,
    pub latency_us_p50: Option<u64>,
    pub latency_us_p90: Option<u64>,
    pub latency_us_p99: Option<u64>,
    pub latency_us_p999: Option<u64>,
    pub latency_us_max: Option<u64>,
    pub disconnects: BTreeMap<String, u64>,
    pub error_frames: BTreeMap<String, u64>,
    pub protocol_violations: BTreeMap<String, u64>,
    pub unparsed_frames: u64,

    pub hub_pid: Option<u32>,
    pub hub_rss_before_kib: Option<u64>,
    pub hub_rss_idle_kib: Option<u64>,
    pub hub_rss_kib: Option<u64>,
    pub hub_rss_peak_kib: Option<u64>,
    pub rss_per_idle_conn_bytes: Option<u64>,
    pub rss_per_idle_conn_kib: Option<f64>,
    pub hub_threads_idle: Option<u64>,
    pub hub_fds_idle: Option<u64>,
    pub hub_maps_idle: Option<u64>,
    pub hub_threads_per_conn: Option<f64>,
    pub hub_fds_per_conn: Option<f64>,
    pub hub_maps_per_conn: Option<f64>,
    pub hub_cpu_s: Option<f64>,
    pub hub_cpu_connect_s: Option<f64>,
    pub hub_cpu_publish_s: Option<f64>,
    pub hub_cpu_us_per_delivery: Option<f64>,
    pub hub_cpu_us_per_request: Option<f64>,
    pub loadgen_cpu_s: f64,
    pub loadgen_rss_peak_kib: u64,
}

impl Report {
    /// What went wrong, for `--strict`: empty if every connection was made
    /// and every event arrived once, in order, as the protocol says.
    pub fn problems(&self) -> Vec<String> {
        let counts = [
            ("connections failed", self.connections_failed),
            ("connections dropped", self.disconnects.values().sum()),
            ("publish errors", self.publish_errors),
            ("unsent events", self.unsent),
            ("lost", self.lost),
            ("out of order", self.out_of_order),
            ("duplicates", self.duplicates),
            (
                "protocol violations",
                self.protocol_violations.values().sum(),
            ),
            ("unparsed frames", self.unparsed_frames),
        ];
        counts
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|(what, count)| format!("{what}: {count}"))
            .collect()
    }

    /// The single JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a Report always serializes")
    }

    /// The human-readable table, one measured thing per row.
    pub fn table(&self) -> String {
        let mut rows: Vec<(&str, String)> = Vec::new();
        rows.push((
            "connections made",
            format!(
                "{} of {} in {:.2} s, {} open after settling ({} failed{})",
                self.connections_made,
                self.clients,
                self.connect_wall_s,
                self.connections_open,
                self.connections_failed,
                reasons(&self.connect_failures, ": ")
            ),
        ));
        rows.push((
            "connect time, ms",
            format!(
                "p50 {}  p99 {}  max {}   (TCP connect() to subscribed)",
                optional(self.connect_ms_p50, 1),
                optional(self.connect_ms_p99, 1),
                optional(self.connect_ms_max, 1)
            ),
        ));
        rows.push((
            "listen overflows",
            format!(
                "{}   (SYNs dropped on a full accept queue, retried after 1 s)",
                whole(self.listen_overflows)
            ),
        ));
        if self.mode == "publish" {
            self.publish_rows(&mut rows);
        }
        rows.push(("disconnects", reasons(&self.disconnects, "")));
        rows.push(("error frames", reasons(&self.error_frames, "")));
        self.hub_rows(&mut rows);
        rows.push((
            "loadgen cpu, s",
            format!(
                "{:.2}   (peak RSS {} KiB)",
                self.loadgen_cpu_s, self.loadgen_rss_peak_kib
            ),
        ));
        if !self.protocol_violations.is_empty() || self.unparsed_frames > 0 {
            rows.push((
                "PROTOCOL VIOLATIONS",
                format!(
                    "{}; unparsed frames {}",
                    reasons(&self.protocol_violations, ""),
                    self.unparsed_frames
                ),
            ));
        }

        let mut table = format!(
            "── loadgen: {} {}\n",
            self.label,
            "─".repeat(50usize.saturating_sub(self.label.len()))
        );
        for (name, value) in rows {
            table.push_str(&format!("{name:<22} {value}\n"));
        }
        table
    }

    fn publish_rows(&self, rows: &mut Vec<(&str, String)>) {
        rows.push((
            "published",
            format!(
                "{} events via {} at {:.0}/s over {:.2} s (errors {}, unsent {})",
                self.published,
                self.publish_via,
                self.published_per_s,
                self.publish_wall_s,
                self.publish_errors,
                self.unsent
            ),
        ));
        rows.push((
            "requests",
            format!(
                "{} answered at {:.0}/s ({} event(s) each)",
                self.requests, self.requests_per_s, self.batch
            ),
        ));
        if let Some(lag) = self.max_lag {
            rows.push((
                "closed loop",
                format!("publisher paused while the slowest subscriber was > {lag} events behind"),
            ));
        }
        if let Some(error) = &self.publish_first_error {
            rows.push(("first publish error", error.clone()));
        }
        rows.push((
            "deliveries",
            format!(
                "expected {}  delivered {}  lost {}  (hub said {})",
                self.expected, self.delivered, self.lost, self.hub_reported_delivered
            ),
        ));
        rows.push((
            "out of order / dup",
            format!("{} / {}", self.out_of_order, self.duplicates),
        ));
        rows.push(("deliveries/s", format!("{:.0}", self.deliveries_per_s)));
        rows.push((
            "latency, µs",
            format!(
                "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                whole(self.latency_us_p50),
                whole(self.latency_us_p90),
                whole(self.latency_us_p99),
                whole(self.latency_us_p999),
                whole(self.latency_us_max)
            ),
        ));
    }

    fn hub_rows(&self, rows: &mut Vec<(&str, String)>) {
        if self.hub_pid.is_none() {
            rows.push((
                "hub",
                "no --hub-pid given: memory and CPU not measured".into(),
            ));
            return;
        }
        rows.push((
            "hub RSS, KiB",
            format!(
                "before {}  idle {}  now {}  peak {}",
                whole(self.hub_rss_before_kib),
                whole(self.hub_rss_idle_kib),
                whole(self.hub_rss_kib),
                whole(self.hub_rss_peak_kib)
            ),
        ));
        rows.push((
            "RSS per idle conn",
            format!(
                "{} B ({} KiB)",
                whole(self.rss_per_idle_conn_bytes),
                optional(self.rss_per_idle_conn_kib, 1)
            ),
        ));
        rows.push((
            "hub when idle",
            format!(
                "{} threads, {} fds, {} memory maps",
                whole(self.hub_threads_idle),
                whole(self.hub_fds_idle),
                whole(self.hub_maps_idle)
            ),
        ));
        rows.push((
            "hub per idle conn",
            format!(
                "{} threads, {} fds, {} memory maps",
                optional(self.hub_threads_per_conn, 2),
                optional(self.hub_fds_per_conn, 2),
                optional(self.hub_maps_per_conn, 2)
            ),
        ));
        rows.push((
            "hub cpu, s",
            format!(
                "{} in all: connect {}, publish {}",
                optional(self.hub_cpu_s, 2),
                optional(self.hub_cpu_connect_s, 2),
                optional(self.hub_cpu_publish_s, 2)
            ),
        ));
        rows.push((
            "hub cpu, µs",
            format!(
                "{} per delivery, {} per request   (publish phase)",
                optional(self.hub_cpu_us_per_delivery, 2),
                optional(self.hub_cpu_us_per_request, 2)
            ),
        ));
    }
}

/// `value` with `decimals`, or "-" when it was not measured.
fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".to_string(), |value| format!("{value:.decimals$}"))
}

/// A whole number, or "-" when it was not measured.
fn whole(value: Option<u64>) -> String {
    value.map_or("-".to_string(), |value| value.to_string())
}

/// "none", or "reason ×n, …" prefixed by `prefix`.
fn reasons(map: &BTreeMap<String, u64>, prefix: &str) -> String {
    if map.is_empty() {
        return if prefix.is_empty() {
            "none".into()
        } else {
            String::new()
        };
    }
    let listed: Vec<String> = map
        .iter()
        .map(|(reason, count)| format!("{reason} ×{count}"))
        .collect();
    format!("{prefix}{}", listed.join(", "))
}
