//! Command-line options: hand-written `--flag value` parsing, no extra crates.
//!
//! `parse` turns the arguments into `Options` (or the help text, or a
//! message naming the bad flag); `Target::resolve` then checks that every
//! address is on the loopback interface, the only place this tool may send
//! traffic.

use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

/// Printed for `--help` and after a bad flag.
pub const USAGE: &str = "\
loadgen: drive a pumphub with many WebSocket subscribers and measure it

USAGE:
    cargo run --release --example loadgen -- [FLAGS]

TARGET:
    --ws URL[,URL…]           WebSocket endpoint [ws://127.0.0.1:9001/ws]; several
                              (the nodes of a cluster): subscribers and
                              publishers are spread over them in turn
    --http ADDR[,ADDR…]       HTTP listener, for POST /publish [127.0.0.1:9002];
                              as many as --ws, in the same order
    --hub-pid PID             read the hub's RSS and CPU from /proc/PID (optional)

CONNECTIONS:
    --clients N               subscriber connections, 0 = none (publishing
                              only: then published/s is the figure) [100]
    --channel NAME            channel they subscribe to (via ?channels=) [bench]
    --connect-concurrency N   connections being set up at once, 0 = all [256]
    --connect-timeout-s S     give up on connections not made by then [30]
    --read-buffer BYTES       tungstenite read buffer per client [4096]
    --settle-ms MS            wait after all are connected, before measuring [500]
    --connect-only            connect, settle, measure memory; publish nothing

PUBLISHING:
    --publish-via http|ws     POST /publish, or WebSocket `publish` (the hub
                              needs --allow-client-publish) [http]
    --publishers N            publisher connections, each its own share [1]
    --rate N                  events per second in total, 0 = flat out [100]
    --duration-s S            how long to publish [10]
    --payload BYTES           size of each event's `data` JSON [128]
    --window N                requests in flight per publisher [64]
    --batch N                 events per POST /publish (an array), http only [1]
    --http-close              one TCP connection per POST /publish
                              (Connection: close), not keep-alive; needs
                              --window 1
    --drain-ms MS             after publishing, wait up to this for deliveries [5000]
    --max-lag N               closed loop: pause publishing while the slowest
                              subscriber is more than N events behind; with
                              --rate 0 this measures the highest rate the hub
                              sustains with nothing lost (keep N below the
                              hub's --queue-size) [off]

OUTPUT:
    --label NAME              copied into the JSON line [derived from the flags]
    --json-out FILE           also append the JSON line to FILE
    --summary FILE            print the figures of every run in FILE (JSON
                              lines) against issue 5's targets; run nothing
    --strict                  exit 3 if anything was lost, duplicated, out of
                              order, refused or against the protocol (for CI)
    -h, --help                this text
";

/// How events reach the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishVia {
    /// `POST /publish` over keep-alive HTTP/1.1 connections, one thread each.
    Http,
    /// `{"type":"publish",…}` frames over WebSocket connections in the loop.
    WebSocket,
}

impl PublishVia {
    pub fn name(self) -> &'static str {
        match self {
            PublishVia::Http => "http",
            PublishVia::WebSocket => "ws",
        }
    }
}

/// Everything the flags can set. Defaults are in `Default` and in `USAGE`.
#[derive(Clone, Debug)]
pub struct Options {
    pub ws_url: String,
    pub http_addr: String,
    pub hub_pid: Option<u32>,
    pub clients: usize,
    pub channel: String,
    pub connect_concurrency: usize,
    pub connect_timeout: Duration,
    pub read_buffer_bytes: usize,
    pub settle: Duration,
    pub connect_only: bool,
    pub publish_via: PublishVia,
    pub publishers: usize,
    /// Events per second over all publishers; 0 means as fast as `window` allows.
    pub rate: u64,
    pub duration: Duration,
    pub payload_bytes: usize,
    pub window: usize,
    pub batch: usize,
    /// `--http-close`: a new connection for every request.
    pub http_close: bool,
    pub drain: Duration,
    /// `--max-lag`: the closed loop's bound, in events; `None` = open loop.
    pub max_lag: Option<u64>,
    pub label: Option<String>,
    pub json_out: Option<String>,
    pub strict: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ws_url: "ws://127.0.0.1:9001/ws".to_string(),
            http_addr: "127.0.0.1:9002".to_string(),
            hub_pid: None,
            clients: 100,
            channel: "bench".to_string(),
            connect_concurrency: 256,
            connect_timeout: Duration::from_secs(30),
            read_buffer_bytes: 4096,
            settle: Duration::from_millis(500),
            connect_only: false,
            publish_via: PublishVia::Http,
            publishers: 1,
            rate: 100,
            duration: Duration::from_secs(10),
            payload_bytes: 128,
            window: 64,
            batch: 1,
            http_close: false,
            drain: Duration::from_millis(5000),
            max_lag: None,
            label: None,
            json_out: None,
            strict: false,
        }
    }
}

/// What the command line asked for.
pub enum Parsed {
    /// Boxed: `Options` is large and `Help` is empty.
    Run(Box<Options>),
    Help,
    /// `--summary FILE`: summarize the JSON lines in FILE, run nothing.
    Summary(String),
}

/// Parses the arguments after the program name.
pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut options = Options::default();
    while let Some(flag) = args.next() {
        let args = &mut args;
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--summary" => return Ok(Parsed::Summary(value(&flag, args)?)),
            "--connect-only" => options.connect_only = true,
            "--strict" => options.strict = true,
            "--http-close" => options.http_close = true,
            "--ws" => options.ws_url = value(&flag, args)?,
            "--http" => options.http_addr = value(&flag, args)?,
            "--hub-pid" => options.hub_pid = Some(value(&flag, args)?),
            "--clients" => options.clients = value(&flag, args)?,
            "--channel" => options.channel = value(&flag, args)?,
            "--connect-concurrency" => options.connect_concurrency = value(&flag, args)?,
            "--connect-timeout-s" => options.connect_timeout = seconds(&flag, args)?,
            "--read-buffer" => options.read_buffer_bytes = value(&flag, args)?,
            "--settle-ms" => options.settle = Duration::from_millis(value(&flag, args)?),
            "--publish-via" => {
                options.publish_via = match value::<String>(&flag, args)?.as_str() {
                    "http" => PublishVia::Http,
                    "ws" => PublishVia::WebSocket,
                    other => return Err(format!("--publish-via takes http or ws, not {other:?}")),
                }
            }
            "--publishers" => options.publishers = value(&flag, args)?,
            "--rate" => options.rate = value(&flag, args)?,
            "--duration-s" => options.duration = seconds(&flag, args)?,
            "--payload" => options.payload_bytes = value(&flag, args)?,
            "--window" => options.window = value(&flag, args)?,
            "--batch" => options.batch = value(&flag, args)?,
            "--drain-ms" => options.drain = Duration::from_millis(value(&flag, args)?),
            "--max-lag" => options.max_lag = Some(value(&flag, args)?),
            "--label" => options.label = Some(value(&flag, args)?),
            "--json-out" => options.json_out = Some(value(&flag, args)?),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    validate(&options)?;
    Ok(Parsed::Run(Box::new(options)))
}

/// Rejects combinations that would make a run meaningless or unbounded.
fn validate(options: &Options) -> Result<(), String> {
    if options.clients == 0 && options.connect_only {
        return Err("--clients 0 with --connect-only measures nothing".into());
    }
    if options.clients == 0 && options.max_lag.is_some() {
        return Err("--max-lag needs subscribers to wait for (--clients 1 or more)".into());
    }
    if options.http_close && (options.publish_via != PublishVia::Http || options.window != 1) {
        return Err("--http-close needs --publish-via http and --window 1".into());
    }
    if options.publishers == 0 || options.window == 0 || options.batch == 0 {
        return Err("--publishers, --window and --batch must be at least 1".into());
    }
    if options.batch > 1 && options.publish_via == PublishVia::WebSocket {
        return Err("--batch applies to --publish-via http only".into());
    }
    if options.max_lag == Some(0) {
        return Err("--max-lag must be at least 1".into());
    }
    if options.payload_bytes > 1 << 20 {
        return Err("--payload is capped at 1 MiB".into());
    }
    if options.duration > Duration::from_secs(600) {
        return Err("--duration-s is capped at 600 so every run ends".into());
    }
    if options.read_buffer_bytes < 256 {
        return Err("--read-buffer must be at least 256".into());
    }
    Ok(())
}

/// Reads and parses the value after `flag`.
fn value<T: FromStr>(flag: &str, args: &mut impl Iterator<Item = String>) -> Result<T, String> {
    let text = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
    text.parse()
        .map_err(|_| format!("{flag}: cannot use {text:?}"))
}

/// Reads a whole or fractional number of seconds.
fn seconds(flag: &str, args: &mut impl Iterator<Item = String>) -> Result<Duration, String> {
    let seconds: f64 = value(flag, args)?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{flag}: cannot use {seconds}"))
}

/// The resolved, loopback-only addresses of one hub (one node of a
/// cluster).
#[derive(Clone)]
pub struct Target {
    /// Where the WebSocket listener is, taken from `--ws`.
    pub ws_addr: SocketAddr,
    /// `--ws` plus `?channels=…`: one round trip subscribes a client.
    pub subscriber_url: String,
    /// `--ws` as given: publishers subscribe to nothing.
    pub publisher_url: String,
    pub http_addr: SocketAddr,
}

impl Target {
    /// Every node `--ws` and `--http` name (one for a single hub).
    pub fn resolve_all(options: &Options) -> Result<Vec<Target>, String> {
        let ws: Vec<&str> = options.ws_url.split(',').collect();
        let http: Vec<&str> = options.http_addr.split(',').collect();
        if ws.len() != http.len() {
            return Err(format!(
                "--ws names {} endpoints and --http {}: give one HTTP address per node",
                ws.len(),
                http.len()
            ));
        }
        ws.iter()
            .zip(&http)
            .map(|(ws, http)| Target::resolve(ws, http, &options.channel))
            .collect()
    }

    fn resolve(ws_url: &str, http_addr: &str, channel: &str) -> Result<Target, String> {
        let rest = ws_url
            .strip_prefix("ws://")
            .ok_or("--ws must start with ws://")?;
        let host_port = rest.split(['/', '?']).next().unwrap_or(rest);
        let ws_addr = loopback_addr("--ws", host_port)?;
        let separator = if ws_url.contains('?') { '&' } else { '?' };
        Ok(Target {
            ws_addr,
            subscriber_url: format!("{ws_url}{separator}channels={channel}"),
            publisher_url: ws_url.to_string(),
            http_addr: loopback_addr("--http", http_addr)?,
        })
    }
}

/// Resolves `host:port` and insists on a loopback address: load tests here
/// may only ever target this machine.
fn loopback_addr(flag: &str, host_port: &str) -> Result<SocketAddr, String> {
    let addr = host_port
        .to_socket_addrs()
        .map_err(|error| format!("{flag}: cannot resolve {host_port:?}: {error}"))?
        .next()
        .ok_or_else(|| format!("{flag}: {host_port:?} has no address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{flag}: {addr} is not a loopback address; loadgen only targets this machine"
        ));
    }
    Ok(addr)
}
