//! loadgen: a load generator for pumphub that checks every delivery.
//!
//! It opens `--clients` WebSocket subscribers to one channel, publishes
//! numbered, timestamped events to that channel (over `POST /publish` or
//! WebSocket `publish`), and checks on every subscriber that each event
//! arrives once, in `seq` order, with its publish→receive latency. With
//! `--hub-pid` it also reads the hub's memory and CPU from /proc. It is an
//! example, not part of the library: the hub's own tests do not need it.
//!
//! # Running it
//!
//! Start a hub, then point loadgen at it (`scripts/bench.sh` does all of
//! this for the standard scenarios and collects the results):
//!
//! ```text
//! cargo build --release --bin pumphub --example loadgen
//! ulimit -n 20000
//! target/release/pumphub --ws 127.0.0.1:9001 --http 127.0.0.1:9002 \
//!     --max-connections 20000 --max-connections-per-ip 20000 --rate-limit 0 &
//! target/release/examples/loadgen --hub-pid $! --clients 1000 --rate 100 \
//!     --duration-s 10 --payload 128 --label fanout-1000
//! target/release/examples/loadgen --hub-pid $(pgrep -n pumphub) --clients 10000 \
//!     --connect-only --settle-ms 2000 --label idle-10000
//! ```
//!
//! `--help` lists every flag. WebSocket publishing (`--publish-via ws`)
//! needs the hub started with `--allow-client-publish`.
//!
//! # How a run goes
//!
//! 1. Connect: subscribers connect with `?channels=NAME` in the URL, so the
//!    upgrade is also the subscription. A connection is *made* when its
//!    `subscribed` frame arrives (a WebSocket publisher's, at `welcome`).
//!    At most `--connect-concurrency` are being set up at any moment.
//! 2. Settle for `--settle-ms`, then read the hub's RSS ("idle").
//! 3. Publish (unless `--connect-only`) for `--duration-s`: at `--rate`
//!    events/s in total, or flat out with at most `--window` requests in
//!    flight per publisher. Each event's `data` is
//!    `{"n":<counter from 0>,"t":<unix µs at send>,"p":"xx…"}`, padded to
//!    `--payload` bytes.
//! 4. Drain: wait until every expected delivery has arrived, at most
//!    `--drain-ms`.
//! 5. Read the hub's memory and CPU once more, close every connection with
//!    a Close frame (waiting at most 3 s for the hub's replies), and print
//!    the table and the JSON line.
//!
//! Every phase has a deadline, so a run always ends, whatever the hub does.
//!
//! # Output
//!
//! Standard output gets a table, then one JSON line (also appended to
//! `--json-out FILE` if given); progress goes to standard error. The exit
//! status is 0 after a run, whatever it measured, 2 for bad flags and 1 if
//! the run could not happen; with `--strict` it is 3 if any connection
//! failed or dropped or any event was lost, duplicated or out of order,
//! which makes a short run a correctness smoke test. The JSON keys, in order:
//!
//! | key | meaning |
//! |---|---|
//! | `label`, `mode`, `clients`, `publish_via`, `publishers`, `rate`, `duration_s`, `payload_bytes`, `window`, `batch`, `max_lag` | the run's settings (`max_lag` null = open loop); `mode` is `connect-only` or `publish` |
//! | `connections_made` | subscribers whose `subscribed` arrived |
//! | `connections_open` | of those, still open after settling: the count the idle RSS and `expected` use |
//! | `connections_failed`, `connect_failures` | subscribers and publishers never made, and why (`http 503`, `io: ConnectionRefused`, …) |
//! | `connect_wall_s` | time to make (or fail) all connections |
//! | `connect_ms_p50/p99/max` | per subscriber: from the TCP `connect()` call to `subscribed` |
//! | `listen_overflows` | connections the kernel dropped on a full accept queue while connecting (machine-wide TcpExt ListenOverflows); each costs a 1 s SYN retry |
//! | `published` | events the hub acknowledged (HTTP 200 or a `published` reply) |
//! | `publish_errors`, `publish_first_error` | events refused or never answered, and the first reason |
//! | `unsent` | events a `--rate` schedule wanted but the publisher could not send in time |
//! | `publish_wall_s`, `published_per_s` | from the first send to the last reply, and `published` over it |
//! | `requests`, `requests_per_s` | requests answered with success (a `POST /publish` of an array of `--batch` events is one) and their rate over the same time |
//! | `expected` | `published` × subscribers open when publishing starts (all share one channel) |
//! | `delivered` | distinct events received, over all subscribers |
//! | `lost` | `expected` − `delivered` (never negative) |
//! | `out_of_order` | new events whose `seq` was not above the subscriber's previous one |
//! | `duplicates` | events a subscriber received more than once (by `n`) |
//! | `deliveries_per_s` | `delivered` over the time from the first send to the last delivery |
//! | `hub_reported_delivered` | the sum of `delivered` in the hub's replies: clients it queued for |
//! | `latency_us_p50/p90/p99/p999/max` | publish→receive, µs: subscriber's clock at receipt − `t`; within 1.6 % (log buckets), max exact |
//! | `disconnects` | made connections that closed during the run, by reason (`close 4008` = slow consumer) |
//! | `error_frames` | `error` frames received, by `code` |
//! | `protocol_violations`, `unparsed_frames` | things docs/protocol.md rules out (first frame not `welcome`, event before `subscribed`), frames that were not JSON |
//! | `hub_rss_before_kib` | hub VmRSS before connecting |
//! | `hub_rss_idle_kib` | after connecting and settling |
//! | `hub_rss_kib`, `hub_rss_peak_kib` | VmRSS and VmHWM at the end |
//! | `rss_per_idle_conn_bytes/_kib` | (idle − before) ÷ `connections_open` |
//! | `hub_threads_idle`, `hub_fds_idle`, `hub_maps_idle` | hub threads, open file descriptors and memory maps when idle |
//! | `hub_threads_per_conn`, `hub_fds_per_conn`, `hub_maps_per_conn` | their growth ÷ `connections_open`: what caps the connection count (`ulimit -n`, vm.max_map_count) |
//! | `hub_cpu_s` | hub utime + stime during this run; `hub_cpu_connect_s` up to idle, `hub_cpu_publish_s` after |
//! | `hub_cpu_us_per_delivery`, `hub_cpu_us_per_request` | `hub_cpu_publish_s` over `delivered` and over `requests`, in µs: what one delivery, or one request, cost the hub |
//! | `loadgen_cpu_s`, `loadgen_rss_peak_kib` | this tool's own CPU and peak memory, to show it was not the bottleneck |
//!
//! # Design
//!
//! All WebSocket clients run on the main thread in one mio readiness loop
//! (fleet.rs, client.rs): tungstenite over non-blocking sockets, with a
//! small read buffer per client so 10,000 fit in memory. HTTP publishers
//! block on request/response, so each gets its own thread
//! (publisher.rs). Results are counted in stats.rs and printed by
//! report.rs. No async runtime anywhere.

// The modules live in examples/loadgen/; an example's crate root looks for
// `mod x;` next to itself, hence the explicit paths.
#[path = "loadgen/client.rs"]
mod client;
#[path = "loadgen/fleet.rs"]
mod fleet;
#[path = "loadgen/options.rs"]
mod options;
#[path = "loadgen/publisher.rs"]
mod publisher;
#[path = "loadgen/report.rs"]
mod report;
#[path = "loadgen/stats.rs"]
mod stats;
#[path = "loadgen/summary.rs"]
mod summary;

use std::fs::OpenOptions;
use std::io::Write as _;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fleet::Fleet;
use options::{Options, Parsed, PublishVia, Target, USAGE};
use publisher::{EventFactory, HttpPublisher, LagGate, PublishTally, Schedule};
use report::{ProcessSample, Report};
use stats::sorted_quantile;

/// How long the loop waits for socket events before checking on publishers.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How long the final closing handshakes may take before loadgen just exits.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// File descriptors beyond one per client: the poll, stdio, HTTP publishers.
const SPARE_FILES: u64 = 64;

fn main() {
    let options = match options::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return;
        }
        Ok(Parsed::Summary(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => {
                print!("{}", summary::summary(&text));
                return;
            }
            Err(error) => {
                eprintln!("loadgen: cannot read {path}: {error}");
                std::process::exit(1);
            }
        },
        Err(message) => {
            eprintln!("loadgen: {message}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let report = match run(&options) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("loadgen: {message}");
            std::process::exit(1);
        }
    };
    let json = report.to_json_line();
    print!("{}", report.table());
    println!("{json}");
    if let Some(path) = &options.json_out {
        let appended = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{json}"));
        if let Err(error) = appended {
            eprintln!("loadgen: cannot append to {path}: {error}");
            std::process::exit(1);
        }
    }
    let problems = report.problems();
    if options.strict && !problems.is_empty() {
        eprintln!("loadgen: --strict: {}", problems.join(", "));
        std::process::exit(3);
    }
}

/// Runs the phases in order and gathers the report.
fn run(options: &Options) -> Result<Report, String> {
    let nodes = Target::resolve_all(options)?;
    let ws_publishers = match options.publish_via {
        PublishVia::WebSocket if !options.connect_only => options.publishers,
        _ => 0,
    };
    check_open_files_limit(options.clients + ws_publishers)?;
    let hub = HubProbe::new(options.hub_pid)?;
    let loadgen_start =
        ProcessSample::read("self").map_err(|error| format!("/proc/self: {error}"))?;
    let hub_before = hub.sample();

    let mut report = Report {
        label: options
            .label
            .clone()
            .unwrap_or_else(|| default_label(options)),
        mode: if options.connect_only {
            "connect-only"
        } else {
            "publish"
        },
        clients: options.clients,
        publish_via: options.publish_via.name(),
        publishers: options.publishers,
        rate: options.rate,
        duration_s: options.duration.as_secs_f64(),
        payload_bytes: options.payload_bytes,
        window: options.window,
        batch: options.batch,
        max_lag: options.max_lag,
        hub_pid: options.hub_pid,
        ..Report::default()
    };

    // 1. Connect, 2. settle, then look at the hub at rest.
    let mut fleet = Fleet::new(
        nodes.clone(),
        options.clients,
        ws_publishers,
        options.read_buffer_bytes,
    )
    .map_err(|error| format!("cannot create the poll: {error}"))?;
    eprintln!(
        "loadgen: connecting {} subscribers to {}",
        options.clients,
        nodes
            .iter()
            .map(|n| n.subscriber_url.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let overflows_before = report::listen_overflows();
    let connect_started = Instant::now();
    fleet
        .connect_all(options.connect_concurrency, options.connect_timeout)
        .map_err(|error| format!("poll failed: {error}"))?;
    report.connect_wall_s = rounded(connect_started.elapsed().as_secs_f64(), 3);
    fleet
        .run_for(options.settle)
        .map_err(|error| format!("poll failed: {error}"))?;
    let hub_idle = hub.sample();
    report.listen_overflows = overflows_before
        .zip(report::listen_overflows())
        .map(|(before, after)| after.saturating_sub(before));
    report.connections_open = fleet.ready_subscribers();

    // 3. Publish and 4. drain.
    if !options.connect_only {
        publish_and_drain(&mut fleet, options, &nodes, &mut report)?;
    }

    let hub_end = hub.sample();
    // 5. Leave politely, so the hub's logs show normal closes, not resets.
    fleet
        .close_all(CLOSE_TIMEOUT)
        .map_err(|error| format!("poll failed: {error}"))?;
    fill_connection_fields(&mut report, &mut fleet.stats);
    fill_delivery_fields(&mut report, &fleet.stats);
    fill_process_fields(&mut report, [hub_before, hub_idle, hub_end]);
    if let Ok(loadgen_end) = ProcessSample::read("self") {
        report.loadgen_cpu_s = loadgen_end.cpu_seconds_since(&loadgen_start);
        report.loadgen_rss_peak_kib = loadgen_end.peak_rss_kib;
    }
    Ok(report)
}

/// Publishes for the configured duration, then waits for deliveries.
fn publish_and_drain(
    fleet: &mut Fleet,
    options: &Options,
    nodes: &[Target],
    report: &mut Report,
) -> Result<(), String> {
    let subscribers = fleet.ready_subscribers() as u64;
    let events = Arc::new(EventFactory::new(&options.channel, options.payload_bytes));
    let poll_failed = |error: std::io::Error| format!("poll failed: {error}");
    eprintln!(
        "loadgen: publishing via {} for {:.1} s to {subscribers} subscribers",
        options.publish_via.name(),
        options.duration.as_secs_f64()
    );
    let gate = options.max_lag.map(|lag| Arc::new(LagGate::new(lag)));
    fleet.set_lag_gate(gate.clone());
    let started = Instant::now();
    let tally = match options.publish_via {
        PublishVia::Http => {
            let threads = spawn_http_publishers(options, nodes, &events, &gate)?;
            // The subscribers are read here while the threads publish.
            while !threads.iter().all(JoinHandle::is_finished) {
                fleet.poll_once(POLL_INTERVAL).map_err(poll_failed)?;
            }
            let mut total = PublishTally::default();
            for thread in threads {
                total.add(thread.join().map_err(|_| "an HTTP publisher panicked")?);
            }
            total
        }
        PublishVia::WebSocket => {
            if fleet.ready_publishers() == 0 {
                return Err("no WebSocket publisher connection was made".into());
            }
            fleet.start_ws_publishing(events, options.rate, options.duration, options.window, gate);
            while !fleet.ws_publishing_done() {
                fleet.poll_once(POLL_INTERVAL).map_err(poll_failed)?;
            }
            fleet.finish_ws_publishing()
        }
    };
    let publish_wall = started.elapsed();
    report.expected = tally.published * subscribers;
    eprintln!(
        "loadgen: published {}; waiting for {} deliveries",
        tally.published, report.expected
    );
    fleet
        .drain(report.expected, options.drain)
        .map_err(poll_failed)?;

    report.published = tally.published;
    report.publish_errors = tally.errors;
    report.publish_first_error = tally.first_error;
    report.unsent = tally.unsent;
    report.hub_reported_delivered = tally.hub_delivered;
    report.publish_wall_s = rounded(publish_wall.as_secs_f64(), 3);
    report.published_per_s = per_second(tally.published, publish_wall);
    report.requests = tally.requests;
    report.requests_per_s = per_second(tally.requests, publish_wall);
    let delivering = fleet.stats.last_delivery_at.map_or(Duration::ZERO, |last| {
        last.saturating_duration_since(started)
    });
    report.deliveries_per_s = per_second(fleet.stats.delivered, delivering);
    Ok(())
}

/// Starts `--publishers` HTTP publisher threads, each with its share of the rate.
fn spawn_http_publishers(
    options: &Options,
    nodes: &[Target],
    events: &Arc<EventFactory>,
    gate: &Option<Arc<LagGate>>,
) -> Result<Vec<JoinHandle<PublishTally>>, String> {
    (0..options.publishers)
        .map(|index| {
            let publisher = HttpPublisher {
                // Publishers take the nodes in turn, like subscribers.
                addr: nodes[index % nodes.len()].http_addr,
                schedule: Schedule::share(
                    options.rate,
                    options.duration,
                    options.publishers,
                    index,
                ),
                window: options.window,
                batch: options.batch,
                close_each: options.http_close,
                events: Arc::clone(events),
                gate: gate.clone(),
            };
            publisher
                .spawn(index)
                .map_err(|error| format!("cannot start a publisher thread: {error}"))
        })
        .collect()
}

fn fill_connection_fields(report: &mut Report, stats: &mut stats::RunStats) {
    report.connections_made = stats.connect_times_us.len();
    report.connections_failed = stats.connect_failures.values().sum();
    report.connect_failures = stats.connect_failures.clone();
    stats.connect_times_us.sort_unstable();
    let millis = |q: f64| {
        sorted_quantile(&stats.connect_times_us, q)
            .map(|micros| rounded(f64::from(micros) / 1000.0, 2))
    };
    report.connect_ms_p50 = millis(0.5);
    report.connect_ms_p99 = millis(0.99);
    report.connect_ms_max = millis(1.0);
}

fn fill_delivery_fields(report: &mut Report, stats: &stats::RunStats) {
    report.delivered = stats.delivered;
    report.lost = report.expected.saturating_sub(stats.delivered);
    report.out_of_order = stats.out_of_order;
    report.duplicates = stats.duplicates;
    report.latency_us_p50 = stats.latency.quantile(0.5);
    report.latency_us_p90 = stats.latency.quantile(0.9);
    report.latency_us_p99 = stats.latency.quantile(0.99);
    report.latency_us_p999 = stats.latency.quantile(0.999);
    report.latency_us_max = (stats.latency.total() > 0).then(|| stats.latency.max());
    report.disconnects = stats.disconnects.clone();
    report.error_frames = stats.error_frames.clone();
    report.protocol_violations = stats.protocol_violations.clone();
    report.unparsed_frames = stats.unparsed_frames;
}

/// Fills the hub's memory and CPU from samples taken before connecting,
/// when idle, and at the end.
fn fill_process_fields(report: &mut Report, [before, idle, end]: [Option<ProcessSample>; 3]) {
    report.hub_rss_before_kib = before.map(|sample| sample.rss_kib);
    report.hub_rss_idle_kib = idle.map(|sample| sample.rss_kib);
    report.hub_threads_idle = idle.map(|sample| sample.threads);
    report.hub_fds_idle = idle.and_then(|sample| sample.open_fds);
    report.hub_maps_idle = idle.and_then(|sample| sample.memory_maps);
    report.hub_rss_kib = end.map(|sample| sample.rss_kib);
    report.hub_rss_peak_kib = end.map(|sample| sample.peak_rss_kib);
    if let (Some(before), Some(idle)) = (before, idle) {
        fill_per_connection_fields(report, &before, &idle);
        report.hub_cpu_connect_s = Some(idle.cpu_seconds_since(&before));
    }
    if let (Some(before), Some(end)) = (before, end) {
        report.hub_cpu_s = Some(end.cpu_seconds_since(&before));
    }
    if let (Some(idle), Some(end)) = (idle, end) {
        let publishing = end.cpu_seconds_since(&idle);
        report.hub_cpu_publish_s = Some(publishing);
        let micros_per =
            |count: u64| (count > 0).then(|| rounded(publishing * 1e6 / count as f64, 2));
        report.hub_cpu_us_per_delivery = micros_per(report.delivered);
        report.hub_cpu_us_per_request = micros_per(report.requests);
    }
}

/// What each idle connection cost the hub: the growth from `before` to
/// `idle`, divided by the connections open. Nothing if none are open.
fn fill_per_connection_fields(report: &mut Report, before: &ProcessSample, idle: &ProcessSample) {
    let open = report.connections_open as u64;
    let grown_bytes = idle.rss_kib.saturating_sub(before.rss_kib) * 1024;
    let Some(bytes_per_connection) = grown_bytes.checked_div(open) else {
        return;
    };
    report.rss_per_idle_conn_bytes = Some(bytes_per_connection);
    report.rss_per_idle_conn_kib = Some(rounded(bytes_per_connection as f64 / 1024.0, 1));
    let per_connection =
        |before: u64, idle: u64| rounded(idle.saturating_sub(before) as f64 / open as f64, 2);
    report.hub_threads_per_conn = Some(per_connection(before.threads, idle.threads));
    report.hub_fds_per_conn = before
        .open_fds
        .zip(idle.open_fds)
        .map(|(before, idle)| per_connection(before, idle));
    report.hub_maps_per_conn = before
        .memory_maps
        .zip(idle.memory_maps)
        .map(|(before, idle)| per_connection(before, idle));
}

/// The hub process, if `--hub-pid` was given.
struct HubProbe {
    pid: Option<u32>,
}

impl HubProbe {
    fn new(pid: Option<u32>) -> Result<HubProbe, String> {
        if let Some(pid) = pid {
            ProcessSample::read(&pid.to_string())
                .map_err(|error| format!("--hub-pid {pid}: cannot read /proc/{pid}: {error}"))?;
        }
        Ok(HubProbe { pid })
    }

    /// A sample, or `None` without a PID or if the hub has exited.
    fn sample(&self) -> Option<ProcessSample> {
        let pid = self.pid?;
        match ProcessSample::read(&pid.to_string()) {
            Ok(sample) => Some(sample),
            Err(error) => {
                eprintln!("loadgen: cannot read hub process {pid}: {error} (did it exit?)");
                None
            }
        }
    }
}

/// Fails early, with the fix, rather than with EMFILE halfway through.
fn check_open_files_limit(connections: usize) -> Result<(), String> {
    let needed = connections as u64 + SPARE_FILES;
    match report::open_files_limit() {
        Some(limit) if limit < needed => Err(format!(
            "{connections} connections need about {needed} open files but the limit is {limit}; \
             raise it first (ulimit -n {needed}, at most ulimit -Hn)"
        )),
        _ => Ok(()),
    }
}

fn default_label(options: &Options) -> String {
    if options.connect_only {
        format!("connect-{}", options.clients)
    } else {
        format!(
            "{}-{}c-{}r",
            options.publish_via.name(),
            options.clients,
            options.rate
        )
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        rounded(count as f64 / elapsed.as_secs_f64(), 1)
    }
}

/// Keeps the JSON line readable: no one needs nanosecond digits.
fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}
