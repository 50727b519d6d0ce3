//! Configuration: the [`Config`] every other module reads, and how it is
//! built from the command line, the environment and a TOML file.
//!
//! Owns the list of settings (one per flag), their defaults, their parsing,
//! their validation and the `--help` text. No other module parses a flag or
//! knows a default.
//!
//! # Where a setting comes from
//!
//! Later sources override earlier ones, one setting at a time:
//!
//! 1. the defaults of [`Config::default`],
//! 2. the TOML file named by `--config FILE` (or `--check-config FILE`),
//! 3. the environment: every setting as `PUMPHUB_` and its flag name in
//!    upper case with `_` for `-` (`PUMPHUB_MAX_CONNECTIONS=500`,
//!    `PUMPHUB_ALLOW_CLIENT_PUBLISH=true`, `PUMPHUB_WS=off`, lists
//!    comma-separated), as container deployments set them; the secrets
//!    [`ENV_TOKEN`], [`ENV_TOKEN_SECRET`] and [`ENV_PUBLISH_KEY`] stay off
//!    the command line and out of `ps` that way. The log level may also
//!    come from [`ENV_LOG`] (`RUST_LOG`, the usual variable of Rust
//!    programs; see [`level_from_rust_log`]), below `PUMPHUB_LOG_LEVEL`.
//!    [`ENV_CONFIG`] names the file when no flag does.
//! 4. command-line flags.
//!
//! So: flags > environment > file > defaults. A variable that is set counts,
//! even when empty (`PUMPHUB_TOKEN=` is an empty token, an error). The
//! position of `--config` on
//! the command line does not matter: `--queue-size 5 --config f.toml` still
//! uses 5. A repeated flag (`--allowed-origin`) replaces the file's list; it
//! does not add to it.
//!
//! Validation runs once, on the merged result, so an edge value is caught
//! whichever source it came from, and the error names that source
//! (`--queue-size`, `queue-size` in the file, or `PUMPHUB_TOKEN`).
//!
//! # Purity
//!
//! This module starts no threads and does no I/O except reading the config
//! file and resolving the `--ws` / `--http` host names through
//! [`ToSocketAddrs`](std::net::ToSocketAddrs), which may ask the system
//! resolver. Nothing is bound here. [`parse_args_with_env`] takes the
//! environment as a function, so tests never read or change the real one.

// This file holds `Config`, its defaults and the types the public API
// returns. The rest lives in `config/`, one file per job:
//
//   command_line.rs  parse_args: layer the sources, split the flags
//   file.rs          read the TOML file into settings
//   setting.rs       the list of settings (flag = file key = field)
//   input.rs         give a raw value its type (number, duration, list...)
//   validate.rs      the rules of Config::validate
//   error.rs         ConfigError and its messages
//   help.rs          the --help and --version texts
//   tests.rs         tests through parse_args_with_env

mod command_line;
mod error;
mod file;
mod help;
mod input;
mod machine;
mod setting;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

pub use crate::peer::IpRange;
use input::{Input, Raw};
use setting::Setting;
use validate::Rules;

pub use command_line::{parse_args, parse_args_with_env};
pub use error::ConfigError;
pub use help::{help_text, version_text};
pub(crate) use machine::{os_connection_ceiling, MAX_PENDING_HANDSHAKES};

/// The most WebSocket clients the hub takes by default, on a machine that
/// can hold more; see [`Config::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The environment variable naming a config file, read when neither
/// `--config` nor `--check-config` is given.
pub const ENV_CONFIG: &str = "PUMPHUB_CONFIG";

/// Every environment variable the configuration reads except [`ENV_LOG`]:
/// `PUMPHUB_` and a setting's flag name in upper case with `_` for `-`
/// (`PUMPHUB_MAX_CONNECTIONS`), and [`ENV_CONFIG`]. The binary warns about
/// any other `PUMPHUB_` variable, which is most likely misspelt.
pub fn env_var_names() -> impl Iterator<Item = &'static str> {
    Setting::ALL
        .into_iter()
        .map(Setting::env_var)
        .chain([ENV_CONFIG])
}

#[cfg(test)] // for the test in auth/jwt that checks the two agree
pub(crate) use validate::{MAX_TOKEN_SECRETS, MIN_TOKEN_SECRET_LEN};

/// What `--ws` and `--http` (and `ws`, `http` in the file, `PUMPHUB_WS`,
/// `PUMPHUB_HTTP`) take to bind no listener at all.
pub const LISTENER_OFF: &str = "off";

/// The environment variable read for [`Config::token`].
pub const ENV_TOKEN: &str = "PUMPHUB_TOKEN";

/// The environment variable read for [`Config::token_secrets`]: one secret,
/// or several separated by commas.
pub const ENV_TOKEN_SECRET: &str = "PUMPHUB_TOKEN_SECRET";

/// The environment variable read for [`Config::publish_key`].
pub const ENV_PUBLISH_KEY: &str = "PUMPHUB_PUBLISH_KEY";

/// The environment variable read for [`Config::log_level`]. An explicit
/// `--log-level` flag wins over it; it wins over `log-level` in the file.
pub const ENV_LOG: &str = "RUST_LOG";

/// The level `RUST_LOG` asks for, if it is a single level such as `debug`
/// (any case, surrounding spaces ignored).
///
/// The binary's logger has one level for the whole process (and
/// `PUMPHUB_LOG_LEVEL` wins over `RUST_LOG`), so env_logger-style directives such as `pumphub=debug` or
/// `info,tiny_http=warn` cannot be honoured: they give `None`, the variable
/// is ignored, and the binary logs a warning saying so. It is not a config
/// error, because `RUST_LOG` is often set for other programs too.
pub fn level_from_rust_log(value: &str) -> Option<LevelFilter> {
    value.trim().parse().ok()
}

/// The longest duration any `*-ms` setting accepts: one day.
///
/// Longer values are almost certainly typos, and the threads add these
/// durations to `Instant::now()`, which panics on overflow. A cap keeps that
/// impossible.
pub const MAX_MILLIS: u64 = 24 * 60 * 60 * 1000;

/// The smallest `--queue-bytes`: a budget that leaves room for a few
/// frames, so that half of it (a replay's share, an array publish's
/// limit) is not zero.
pub const MIN_QUEUE_BYTES: u64 = 64 * 1024;

/// Everything the hub and its listeners can be told at start-up.
///
/// The binary builds one with [`parse_args`]. An embedding application starts
/// from [`Config::default()`], sets fields, and calls [`Config::validate`].
/// Every field below is also a flag (`--name`) and a config-file key (`name`).
///
/// `Debug` prints `token`, `token_secrets` and `publish_key` as
/// `"<redacted>"`, so logging a config never leaks a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Address of the WebSocket listener, `host:port`; port 0 picks a free
    /// one. `None` binds no WebSocket listener: clients then arrive only as
    /// connections the application hands over (`Hub::upgrader`).
    ///
    /// Defaults to `127.0.0.1:9001` (`--ws`; `--ws off` for none). Use
    /// `0.0.0.0:9001` to accept clients from other machines.
    pub ws_addr: Option<String>,
    /// Address of the HTTP listener (`/health`, `/metrics`, `/status`,
    /// `/publish`, `/history`, `/`). `None` binds no HTTP listener; the
    /// same figures stay available through `HubHandle` (`stats`,
    /// `connections`, `render_metrics`).
    ///
    /// Defaults to `127.0.0.1:9002` (`--http`; `--http off` for none). Keep
    /// it on loopback unless `publish_key` is set: `/publish` can otherwise
    /// be used by anyone.
    pub http_addr: Option<String>,
    /// Most WebSocket clients connected at once; more get HTTP 503.
    ///
    /// Defaults to [`DEFAULT_MAX_CONNECTIONS`] (10000), or to what this
    /// machine can hold if that is less (`--max-connections`); at least 1.
    /// Each client costs two threads, four memory maps per thread and a
    /// file descriptor, so the kernel's `vm.max_map_count` and the
    /// open-files limit set a ceiling (7423 with the stock 65530 maps).
    /// [`Hub::start`](crate::Hub::start) warns about a value over that
    /// ceiling and refuses clients (503) beyond it.
    pub max_connections: usize,
    /// Most WebSocket clients from one remote IP; more get HTTP 429.
    ///
    /// Defaults to 1000 (`--max-connections-per-ip`); at least 1. Lower it
    /// when clients are untrusted; raise it behind a proxy, where every client
    /// shares the proxy's IP.
    pub max_connections_per_ip: usize,
    /// Most TCP connections from one remote IP that may be in their
    /// WebSocket handshake at once; more are answered 429 as they are
    /// accepted. Without it, one address opening silent connections could
    /// fill every handshake place the hub has (1024) and make everyone
    /// else's handshake wait in the listen backlog.
    ///
    /// Defaults to 256 (`--max-handshakes-per-ip`); at least 1. Raise it
    /// behind a proxy, where every client shares the proxy's IP.
    pub max_handshakes_per_ip: usize,
    /// Most HTTP connections from one remote IP at once; more are answered
    /// 429 as they are accepted. The HTTP port serves 128 connections at
    /// once in all; this keeps one address from holding them all.
    ///
    /// Defaults to 32 (`--http-max-connections-per-ip`); at least 1.
    pub http_max_connections_per_ip: usize,
    /// Largest client message in bytes; longer ones get Close 1009. `POST
    /// /publish` accepts bodies up to 16 times this.
    ///
    /// Defaults to 65536 (`--max-message-size`); at least 1.
    pub max_message_size: usize,
    /// How often the server sends a WebSocket Ping; zero turns the heartbeat
    /// off.
    ///
    /// Defaults to 30 s (`--ping-interval-ms 30000`). A client silent for
    /// `ping_interval + pong_timeout` is closed, so this bounds how long a
    /// dead peer holds a slot.
    pub ping_interval: Duration,
    /// Extra time a client has, after a Ping, to send any frame.
    ///
    /// Defaults to 10 s (`--pong-timeout-ms 10000`). Raise it for clients on
    /// slow or mobile links.
    pub pong_timeout: Duration,
    /// Capacity of each client's outbound queue, in messages. A full queue
    /// means a slow consumer: Close 4008.
    ///
    /// Defaults to 1024 (`--queue-size`); at least 1. Bigger tolerates longer
    /// stalls. The queue allocates only for what is waiting, so an idle
    /// client costs nothing for it; a stalled one holds up to this many
    /// frames (events are shared with every other queue, so mostly pointers).
    pub queue_size: usize,
    /// Capacity of each client's outbound queue, in bytes: every frame
    /// waiting or being written counts its payload plus 64 bytes, replies
    /// and replayed events included. A queue that already holds this much
    /// refuses the next frame: Close 4008.
    ///
    /// Defaults to 4 MiB (`--queue-bytes 4194304`); at least 64 KiB. It is
    /// the most memory a client that stops reading can pin (plus one frame);
    /// events are shared with history and other queues, so the real cost
    /// is mostly the client's own replies. A replay may fill half of it,
    /// and an array publish may hold at most half of it.
    pub queue_bytes: usize,
    /// Events kept per channel for replay with `since`; zero turns replay off.
    ///
    /// Defaults to 1024 (`--history-size`). It is how far behind a client may
    /// fall and still resume without a gap.
    pub history_size: usize,
    /// What all channel histories together may cost in memory, in bytes
    /// (an estimate: each event's frame, its decoded data and bookkeeping).
    /// Beyond it the hub's oldest kept events are evicted first, whatever
    /// their channel, and a resume that needed them gets `complete: false`.
    ///
    /// Defaults to 256 MiB (`--history-bytes 268435456`); at least 1 MiB.
    pub history_bytes: usize,
    /// Most channels the hub keeps, counting every channel it knows; only
    /// channels somebody follows may go beyond it (they are bounded by the
    /// connections and `max_subscriptions`). A new channel at the limit
    /// makes the hub forget the unfollowed channel unused the longest.
    ///
    /// Defaults to 10000 (`--max-channels`); at least 1.
    pub max_channels: usize,
    /// How long a channel that nobody follows and nobody publishes to is
    /// kept, with its history; zero keeps it for ever (until
    /// `max_channels` needs its place). The newest seq of a forgotten
    /// channel is remembered, so resumes stay honest.
    ///
    /// Defaults to one hour (`--channel-idle-ms 3600000`).
    pub channel_idle: Duration,
    /// Data messages per second one connection may send (burst 2N); zero
    /// turns the limit off.
    ///
    /// Defaults to 100 (`--rate-limit`).
    pub rate_limit: u32,
    /// If set, WebSocket clients must present this token (URL, header, or an
    /// `auth` request).
    ///
    /// Defaults to none (`--token`, or the [`ENV_TOKEN`] variable, which
    /// keeps it out of `ps`). Must be non-empty printable ASCII without
    /// spaces, since it travels in an `Authorization` header.
    pub token: Option<String>,
    /// Secrets for signed tokens (JWT, HS256). When non-empty, clients may
    /// present a token signed with any one of them wherever they could
    /// present `token`; its claims decide who they are (`sub`), until when
    /// (`exp`), and which channels they may subscribe and publish to
    /// (`channels`, `publish`). See docs/security.md.
    ///
    /// Defaults to none (`--token-secret`, repeatable, or a comma-separated
    /// list, also in the [`ENV_TOKEN_SECRET`] variable; a string or an array
    /// in the file). Several secrets let one be rotated without downtime.
    /// Each must be at least 32 bytes of printable ASCII without spaces or
    /// commas; at most 8.
    pub token_secrets: Vec<String>,
    /// Whether signed tokens without an `exp` claim are accepted (they then
    /// never expire).
    ///
    /// Defaults to false (`--token-allow-no-exp`, a bare flag).
    pub token_allow_no_exp: bool,
    /// If set, `POST /publish`, `GET /history` and `GET /status` need
    /// `Authorization: Bearer <key>`.
    ///
    /// Defaults to none (`--publish-key`, or [`ENV_PUBLISH_KEY`]). Same
    /// character rules as `token`.
    pub publish_key: Option<String>,
    /// Whether WebSocket clients may send `publish`; if not, they get
    /// `forbidden`.
    ///
    /// Defaults to false (`--allow-client-publish`, a bare flag; `true` or
    /// `false` in the file).
    pub allow_client_publish: bool,
    /// Browser origins allowed to connect, as `scheme://host[:port]`. When
    /// non-empty, any other `Origin` header gets HTTP 403; a request without
    /// `Origin` is always allowed.
    ///
    /// Defaults to empty, meaning any origin (`--allowed-origin`, repeatable;
    /// an array of strings in the file). The parser stores them
    /// ASCII-lowercased; compare with `eq_ignore_ascii_case`.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` (or `Forwarded`) header is
    /// believed: a connection from one of these addresses is taken to be
    /// from the client the header names, in the logs, in `/status` and for
    /// `max_connections_per_ip`. Headers from any other peer are ignored,
    /// so a client cannot choose its own address.
    ///
    /// Defaults to empty (`--trusted-proxy ADDR[,ADDR...]`, repeatable;
    /// addresses or CIDR blocks such as `127.0.0.1` or `10.0.0.0/8`; an
    /// array of strings in the file).
    pub trusted_proxies: Vec<IpRange>,
    /// If set, each stdin line is published to this channel (as JSON if it
    /// parses, else as a string).
    ///
    /// Defaults to none (`--stdin CHANNEL`). The name must match
    /// `^[A-Za-z0-9_.:-]{1,128}$`.
    pub stdin_channel: Option<String>,
    /// The most verbose log level printed. The `listening` line is printed at
    /// every level.
    ///
    /// Defaults to `info` (`--log-level off|error|warn|info|debug|trace`).
    pub log_level: LevelFilter,
    /// How the binary writes log lines: `text` (`LEVEL [module] message`)
    /// or `json` (one object per line).
    ///
    /// Defaults to text (`--log-format text|json`). The library never
    /// installs a logger; this is read by the `pumphub` binary.
    pub log_format: LogFormat,
    /// Whether the binary starts each log line with a UTC timestamp.
    ///
    /// Defaults to [`LogTimestamps::Auto`] (`--log-timestamps auto|on|off`):
    /// on, except under systemd, whose journal stamps each line itself.
    pub log_timestamps: LogTimestamps,
    /// How long a graceful shutdown may spend flushing queued events before
    /// connections are dropped.
    ///
    /// Defaults to 5 s (`--shutdown-grace-ms 5000`); zero means do not wait.
    pub shutdown_grace: Duration,
    /// Most channels one connection may subscribe to; over it:
    /// `too_many_subscriptions`.
    ///
    /// Defaults to 100 (`--max-subscriptions`); at least 1.
    pub max_subscriptions: usize,
    /// How long a new TCP connection has, counted from accept, to finish the
    /// WebSocket handshake before it is dropped.
    ///
    /// Defaults to 10 s (`--handshake-timeout-ms 10000`), the value the
    /// protocol promises; at least 1 ms, because a zero socket timeout is
    /// rejected by the OS API.
    pub handshake_timeout: Duration,
    /// How long a client has to authenticate with `auth` when `token` is set
    /// and the handshake carried no token.
    ///
    /// Defaults to 10 s (`--auth-timeout-ms 10000`); at least 1 ms.
    pub auth_timeout: Duration,
    /// How long one socket write may block before the client is dropped.
    ///
    /// Defaults to 5 s (`--write-timeout-ms 5000`); at least 1 ms, because a
    /// zero socket timeout is rejected by the OS API. This bounds how long a
    /// client that stopped reading can pin its write pump.
    pub write_timeout: Duration,
    /// Threads serving the HTTP listener.
    ///
    /// Defaults to 4 (`--http-workers`); at least 1. Raise it if many slow
    /// HTTP callers make `/health` wait.
    pub http_workers: usize,
    /// Requests one WebSocket client may have sent and not yet had
    /// answered (pipelining): the hub reads that far ahead and hands
    /// consecutive requests to the broadcaster together; beyond it, it
    /// stops reading from that client until replies are queued.
    ///
    /// Defaults to 128 (`--max-inflight`); at least 1. Never more than half
    /// of `queue_size` is used, so one batch's replies fit in the client's
    /// queue. Each request in flight holds its message (at most 256 KiB of
    /// them per connection), so lower it to save memory per connection;
    /// raise it (with `queue_size`) for fast publishers on slow links.
    pub max_inflight: usize,
    /// Cluster mode: a Redis URL (`redis://[user:password@]host[:port][/db]`).
    /// Every hub with the same Redis and `redis_prefix` shares one sequence,
    /// one history and one epoch (docs/cluster.md).
    ///
    /// Defaults to none (`--redis URL`): one process, history in memory.
    /// Needs the cargo feature `redis` (on by default). The URL may hold a
    /// password; it is never logged.
    pub redis: Option<String>,
    /// The key prefix of this hub in Redis: hubs with another prefix on the
    /// same Redis are independent.
    ///
    /// Defaults to `pumphub` (`--redis-prefix NAME`); 1 to 64 of
    /// `A-Z a-z 0-9 _ . : -`.
    pub redis_prefix: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ws_addr: Some("127.0.0.1:9001".to_owned()),
            http_addr: Some("127.0.0.1:9002".to_owned()),
            max_connections: machine::default_max_connections(),
            max_connections_per_ip: 1000,
            max_handshakes_per_ip: 256,
            http_max_connections_per_ip: 32,
            max_message_size: 65_536,
            ping_interval: Duration::from_millis(30_000),
            pong_timeout: Duration::from_millis(10_000),
            queue_size: 1024,
            queue_bytes: 4 << 20,
            history_size: 1024,
            history_bytes: 256 << 20,
            max_channels: 10_000,
            channel_idle: Duration::from_millis(3_600_000),
            rate_limit: 100,
            token: None,
            token_secrets: Vec::new(),
            token_allow_no_exp: false,
            publish_key: None,
            allow_client_publish: false,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            stdin_channel: None,
            log_level: LevelFilter::Info,
            log_format: LogFormat::Text,
            log_timestamps: LogTimestamps::Auto,
            shutdown_grace: Duration::from_millis(5000),
            max_subscriptions: 100,
            handshake_timeout: Duration::from_millis(10_000),
            auth_timeout: Duration::from_millis(10_000),
            write_timeout: Duration::from_millis(5000),
            http_workers: 4,
            max_inflight: 128,
            redis: None,
            redis_prefix: "pumphub".to_owned(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-written only to hide the secrets; keep the field list in
        // step with the struct.
        let redact = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("ws_addr", &self.ws_addr)
            .field("http_addr", &self.http_addr)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_handshakes_per_ip", &self.max_handshakes_per_ip)
            .field(
                "http_max_connections_per_ip",
                &self.http_max_connections_per_ip,
            )
            .field("max_message_size", &self.max_message_size)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("queue_size", &self.queue_size)
            .field("queue_bytes", &self.queue_bytes)
            .field("history_size", &self.history_size)
            .field("history_bytes", &self.history_bytes)
            .field("max_channels", &self.max_channels)
            .field("channel_idle", &self.channel_idle)
            .field("rate_limit", &self.rate_limit)
            .field("token", &redact(&self.token))
            .field(
                "token_secrets",
                &format_args!("[{} <redacted>]", self.token_secrets.len()),
            )
            .field("token_allow_no_exp", &self.token_allow_no_exp)
            .field("publish_key", &redact(&self.publish_key))
            .field("allow_client_publish", &self.allow_client_publish)
            .field("allowed_origins", &self.allowed_origins)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("stdin_channel", &self.stdin_channel)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("log_timestamps", &self.log_timestamps)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("auth_timeout", &self.auth_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("http_workers", &self.http_workers)
            .field("max_inflight", &self.max_inflight)
            .field("redis", &redact(&self.redis))
            .field("redis_prefix", &self.redis_prefix)
            .finish()
    }
}

impl Config {
    /// Checks every rule a value must meet: ranges, address and origin forms,
    /// the `--stdin` channel name, and the secrets' characters.
    ///
    /// [`parse_args`] already calls this; an embedding application that builds
    /// a `Config` in code should call it before starting the hub.
    ///
    /// # Errors
    ///
    /// The first rule broken, as [`ConfigError::OutOfRange`] or
    /// [`ConfigError::InvalidValue`] with `origin: None`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(&HashMap::new())
    }

    /// Sets one setting from one source's raw value, checking only its type
    /// and syntax; ranges are left to [`Config::check`].
    fn set(&mut self, setting: Setting, raw: Raw, origin: &Origin) -> Result<(), ConfigError> {
        let input = Input {
            setting,
            raw,
            origin,
        };
        match setting {
            Setting::Ws => self.ws_addr = input.listener()?,
            Setting::Http => self.http_addr = input.listener()?,
            Setting::MaxConnections => self.max_connections = input.count()?,
            Setting::MaxConnectionsPerIp => self.max_connections_per_ip = input.count()?,
            Setting::MaxHandshakesPerIp => self.max_handshakes_per_ip = input.count()?,
            Setting::HttpMaxConnectionsPerIp => self.http_max_connections_per_ip = input.count()?,
            Setting::MaxMessageSize => self.max_message_size = input.count()?,
            Setting::PingIntervalMs => self.ping_interval = input.millis()?,
            Setting::PongTimeoutMs => self.pong_timeout = input.millis()?,
            Setting::QueueSize => self.queue_size = input.count()?,
            Setting::QueueBytes => self.queue_bytes = input.count()?,
            Setting::HistorySize => self.history_size = input.count()?,
            Setting::HistoryBytes => self.history_bytes = input.count()?,
            Setting::MaxChannels => self.max_channels = input.count()?,
            Setting::ChannelIdleMs => self.channel_idle = input.millis()?,
            Setting::RateLimit => self.rate_limit = input.count()?,
            Setting::Token => self.token = Some(input.text()?),
            Setting::TokenSecret => self.token_secrets = input.comma_list()?,
            Setting::TokenAllowNoExp => self.token_allow_no_exp = input.switch()?,
            Setting::PublishKey => self.publish_key = Some(input.text()?),
            Setting::AllowClientPublish => self.allow_client_publish = input.switch()?,
            Setting::AllowedOrigin => {
                let origins = input.list()?;
                self.allowed_origins = origins.iter().map(|o| o.to_ascii_lowercase()).collect();
            }
            Setting::TrustedProxy => self.trusted_proxies = input.ip_ranges()?,
            Setting::Stdin => self.stdin_channel = Some(input.text()?),
            Setting::LogLevel => self.log_level = input.log_level()?,
            Setting::LogFormat => {
                self.log_format =
                    input.one_of(&[("text", LogFormat::Text), ("json", LogFormat::Json)])?
            }
            Setting::LogTimestamps => self.log_timestamps = input.log_timestamps()?,
            Setting::ShutdownGraceMs => self.shutdown_grace = input.millis()?,
            Setting::MaxSubscriptions => self.max_subscriptions = input.count()?,
            Setting::HandshakeTimeoutMs => self.handshake_timeout = input.millis()?,
            Setting::AuthTimeoutMs => self.auth_timeout = input.millis()?,
            Setting::WriteTimeoutMs => self.write_timeout = input.millis()?,
            Setting::HttpWorkers => self.http_workers = input.count()?,
            Setting::MaxInflight => self.max_inflight = input.count()?,
            Setting::Redis => self.redis = Some(input.text()?),
            Setting::RedisPrefix => self.redis_prefix = input.text()?,
        }
        Ok(())
    }

    /// The rules of [`Config::validate`]; `origins` says where each setting
    /// came from so that an error can point at the flag, variable or file.
    fn check(&self, origins: &HashMap<Setting, Origin>) -> Result<(), ConfigError> {
        let rules = Rules { origins };
        if let Some(address) = &self.ws_addr {
            rules.address(Setting::Ws, address)?;
        }
        if let Some(address) = &self.http_addr {
            rules.address(Setting::Http, address)?;
        }
        rules.at_least(Setting::MaxConnections, self.max_connections, 1)?;
        rules.at_least(Setting::MaxConnectionsPerIp, self.max_connections_per_ip, 1)?;
        rules.at_least(Setting::MaxHandshakesPerIp, self.max_handshakes_per_ip, 1)?;
        rules.at_least(
            Setting::HttpMaxConnectionsPerIp,
            self.http_max_connections_per_ip,
            1,
        )?;
        rules.at_least(Setting::MaxMessageSize, self.max_message_size, 1)?;
        rules.millis(Setting::PingIntervalMs, self.ping_interval, 0)?;
        rules.millis(Setting::PongTimeoutMs, self.pong_timeout, 0)?;
        rules.at_least(Setting::QueueSize, self.queue_size, 1)?;
        rules.at_least(Setting::QueueBytes, self.queue_bytes, MIN_QUEUE_BYTES)?;
        // history_size: any value, 0 turns replay off.
        rules.at_least(Setting::HistoryBytes, self.history_bytes, 1 << 20)?;
        rules.at_least(Setting::MaxChannels, self.max_channels, 1)?;
        rules.millis(Setting::ChannelIdleMs, self.channel_idle, 0)?;
        // rate_limit: any value, 0 turns the limit off.
        rules.secret(Setting::Token, self.token.as_deref())?;
        rules.token_secrets(&self.token_secrets)?;
        rules.secret(Setting::PublishKey, self.publish_key.as_deref())?;
        for origin in &self.allowed_origins {
            rules.origin(origin)?;
        }
        if let Some(channel) = &self.stdin_channel {
            rules.channel(channel)?;
        }
        rules.millis(Setting::ShutdownGraceMs, self.shutdown_grace, 0)?;
        rules.at_least(Setting::MaxSubscriptions, self.max_subscriptions, 1)?;
        rules.millis(Setting::HandshakeTimeoutMs, self.handshake_timeout, 1)?;
        rules.millis(Setting::AuthTimeoutMs, self.auth_timeout, 1)?;
        rules.millis(Setting::WriteTimeoutMs, self.write_timeout, 1)?;
        rules.at_least(Setting::HttpWorkers, self.http_workers, 1)?;
        rules.at_least(Setting::MaxInflight, self.max_inflight, 1)?;
        if let Some(url) = &self.redis {
            rules.redis_url(url)?;
        }
        rules.redis_prefix(&self.redis_prefix)?;
        Ok(())
    }
}

/// How the binary writes log lines ([`Config::log_format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// `LEVEL [module] message`, after the timestamp if there is one.
    Text,
    /// `{"ts":…,"level":…,"target":…,"message":…}`, one object per line
    /// (`ts` only with timestamps on).
    Json,
}

/// Whether log lines carry a timestamp ([`Config::log_timestamps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogTimestamps {
    /// On, unless the process runs under systemd (`JOURNAL_STREAM` or
    /// `INVOCATION_ID` is set): the journal adds its own.
    Auto,
    /// Always: `2026-12-07T22:48:39.123Z`, UTC.
    On,
    /// Never.
    Off,
}

impl LogTimestamps {
    /// Whether to print timestamps, with `env` as the environment (for
    /// `Auto`).
    pub fn resolve(self, env: impl Fn(&str) -> Option<String>) -> bool {
        match self {
            LogTimestamps::On => true,
            LogTimestamps::Off => false,
            LogTimestamps::Auto => {
                env("JOURNAL_STREAM").is_none() && env("INVOCATION_ID").is_none()
            }
        }
    }
}

/// What the command line asks the binary to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Start the hub with this configuration.
    Run(Config),
    /// `--check-config FILE`: the file and the other flags are valid; print a
    /// confirmation and exit 0 without binding anything.
    CheckConfig {
        /// The file that was checked.
        path: PathBuf,
        /// The configuration it (plus flags and environment) produces.
        config: Config,
    },
    /// `-h` / `--help`: print [`help_text`] and exit 0.
    Help,
    /// `-V` / `--version`: print [`version_text`] and exit 0.
    Version,
}

/// Where a setting's value came from, carried by errors so they can say
/// which flag, variable or file to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A command-line flag, `--name VALUE` or `--name=VALUE`.
    CommandLine,
    /// An environment variable such as [`ENV_TOKEN`].
    Environment {
        /// The variable's name.
        var: &'static str,
    },
    /// A key in the TOML config file.
    File {
        /// The file, as given to `--config` or `--check-config`.
        path: PathBuf,
    },
}
