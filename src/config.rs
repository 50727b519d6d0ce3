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
//! 3. the environment, which is read for two secrets,
//!    [`ENV_TOKEN`] and [`ENV_PUBLISH_KEY`], so they can stay off the command
//!    line and out of `ps`, and for the log level, [`ENV_LOG`] (`RUST_LOG`,
//!    the usual variable of Rust programs; see [`level_from_rust_log`]),
//! 4. command-line flags.
//!
//! So: flags > environment > file > defaults. The position of `--config` on
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
mod setting;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

use input::{Input, Raw};
use setting::Setting;
use validate::Rules;

pub use command_line::{parse_args, parse_args_with_env};
pub use error::ConfigError;
pub use help::{help_text, version_text};

/// The environment variable read for [`Config::token`].
pub const ENV_TOKEN: &str = "PUMPHUB_TOKEN";

/// The environment variable read for [`Config::publish_key`].
pub const ENV_PUBLISH_KEY: &str = "PUMPHUB_PUBLISH_KEY";

/// The environment variable read for [`Config::log_level`]. An explicit
/// `--log-level` flag wins over it; it wins over `log-level` in the file.
pub const ENV_LOG: &str = "RUST_LOG";

/// The level `RUST_LOG` asks for, if it is a single level such as `debug`
/// (any case, surrounding spaces ignored).
///
/// pumphub logs through simple_logger, which has one level for the whole
/// process, so env_logger-style directives such as `pumphub=debug` or
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

/// Everything the hub and its listeners can be told at start-up.
///
/// The binary builds one with [`parse_args`]. An embedding application starts
/// from [`Config::default()`], sets fields, and calls [`Config::validate`].
/// Every field below is also a flag (`--name`) and a config-file key (`name`).
///
/// `Debug` prints `token` and `publish_key` as `"<redacted>"`, so logging a
/// config never leaks a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Address of the WebSocket listener, `host:port`; port 0 picks a free one.
    ///
    /// Defaults to `127.0.0.1:9001` (`--ws`). Use `0.0.0.0:9001` to accept
    /// clients from other machines.
    pub ws_addr: String,
    /// Address of the HTTP listener (`/health`, `/metrics`, `/status`,
    /// `/publish`, `/`).
    ///
    /// Defaults to `127.0.0.1:9002` (`--http`). Keep it on loopback unless
    /// `publish_key` is set: `/publish` can otherwise be used by anyone.
    pub http_addr: String,
    /// Most WebSocket clients connected at once; more get HTTP 503.
    ///
    /// Defaults to 10000 (`--max-connections`); at least 1. Each client costs
    /// two threads, so this is also a thread budget.
    pub max_connections: usize,
    /// Most WebSocket clients from one remote IP; more get HTTP 429.
    ///
    /// Defaults to 1000 (`--max-connections-per-ip`); at least 1. Lower it
    /// when clients are untrusted; raise it behind a proxy, where every client
    /// shares the proxy's IP.
    pub max_connections_per_ip: usize,
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
    /// Events kept per channel for replay with `since`; zero turns replay off.
    ///
    /// Defaults to 1024 (`--history-size`). It is how far behind a client may
    /// fall and still resume without a gap.
    pub history_size: usize,
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
    /// If set, `POST /publish` and `GET /status` need `Authorization: Bearer
    /// <key>`.
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ws_addr: "127.0.0.1:9001".to_owned(),
            http_addr: "127.0.0.1:9002".to_owned(),
            max_connections: 10_000,
            max_connections_per_ip: 1000,
            max_message_size: 65_536,
            ping_interval: Duration::from_millis(30_000),
            pong_timeout: Duration::from_millis(10_000),
            queue_size: 1024,
            history_size: 1024,
            rate_limit: 100,
            token: None,
            publish_key: None,
            allow_client_publish: false,
            allowed_origins: Vec::new(),
            stdin_channel: None,
            log_level: LevelFilter::Info,
            shutdown_grace: Duration::from_millis(5000),
            max_subscriptions: 100,
            handshake_timeout: Duration::from_millis(10_000),
            auth_timeout: Duration::from_millis(10_000),
            write_timeout: Duration::from_millis(5000),
            http_workers: 4,
            max_inflight: 128,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-written only to hide the two secrets; keep the field list in
        // step with the struct.
        let redact = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("ws_addr", &self.ws_addr)
            .field("http_addr", &self.http_addr)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_message_size", &self.max_message_size)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("queue_size", &self.queue_size)
            .field("history_size", &self.history_size)
            .field("rate_limit", &self.rate_limit)
            .field("token", &redact(&self.token))
            .field("publish_key", &redact(&self.publish_key))
            .field("allow_client_publish", &self.allow_client_publish)
            .field("allowed_origins", &self.allowed_origins)
            .field("stdin_channel", &self.stdin_channel)
            .field("log_level", &self.log_level)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("auth_timeout", &self.auth_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("http_workers", &self.http_workers)
            .field("max_inflight", &self.max_inflight)
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
            Setting::Ws => self.ws_addr = input.text()?,
            Setting::Http => self.http_addr = input.text()?,
            Setting::MaxConnections => self.max_connections = input.count()?,
            Setting::MaxConnectionsPerIp => self.max_connections_per_ip = input.count()?,
            Setting::MaxMessageSize => self.max_message_size = input.count()?,
            Setting::PingIntervalMs => self.ping_interval = input.millis()?,
            Setting::PongTimeoutMs => self.pong_timeout = input.millis()?,
            Setting::QueueSize => self.queue_size = input.count()?,
            Setting::HistorySize => self.history_size = input.count()?,
            Setting::RateLimit => self.rate_limit = input.count()?,
            Setting::Token => self.token = Some(input.text()?),
            Setting::PublishKey => self.publish_key = Some(input.text()?),
            Setting::AllowClientPublish => self.allow_client_publish = input.switch()?,
            Setting::AllowedOrigin => {
                let origins = input.list()?;
                self.allowed_origins = origins.iter().map(|o| o.to_ascii_lowercase()).collect();
            }
            Setting::Stdin => self.stdin_channel = Some(input.text()?),
            Setting::LogLevel => self.log_level = input.log_level()?,
            Setting::ShutdownGraceMs => self.shutdown_grace = input.millis()?,
            Setting::MaxSubscriptions => self.max_subscriptions = input.count()?,
            Setting::HandshakeTimeoutMs => self.handshake_timeout = input.millis()?,
            Setting::AuthTimeoutMs => self.auth_timeout = input.millis()?,
            Setting::WriteTimeoutMs => self.write_timeout = input.millis()?,
            Setting::HttpWorkers => self.http_workers = input.count()?,
            Setting::MaxInflight => self.max_inflight = input.count()?,
        }
        Ok(())
    }

    /// The rules of [`Config::validate`]; `origins` says where each setting
    /// came from so that an error can point at the flag, variable or file.
    fn check(&self, origins: &HashMap<Setting, Origin>) -> Result<(), ConfigError> {
        let rules = Rules { origins };
        rules.address(Setting::Ws, &self.ws_addr)?;
        rules.address(Setting::Http, &self.http_addr)?;
        rules.at_least(Setting::MaxConnections, self.max_connections, 1)?;
        rules.at_least(Setting::MaxConnectionsPerIp, self.max_connections_per_ip, 1)?;
        rules.at_least(Setting::MaxMessageSize, self.max_message_size, 1)?;
        rules.millis(Setting::PingIntervalMs, self.ping_interval, 0)?;
        rules.millis(Setting::PongTimeoutMs, self.pong_timeout, 0)?;
        rules.at_least(Setting::QueueSize, self.queue_size, 1)?;
        // history_size: any value, 0 turns replay off.
        // rate_limit: any value, 0 turns the limit off.
        rules.secret(Setting::Token, self.token.as_deref())?;
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
        Ok(())
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
