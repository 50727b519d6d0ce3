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
//! [`ToSocketAddrs`], which may ask the system resolver. Nothing is bound
//! here. [`parse_args_with_env`] takes the environment as a function, so
//! tests never read or change the real one.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::iter::Peekable;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;

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

/// Longest `--stdin` channel name, as in the protocol's channel-name rule.
const MAX_CHANNEL_LEN: usize = 128;

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
    /// stalls but costs memory per client.
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

/// Why a command line, environment or config file was rejected.
///
/// The binary prints it and exits 2 without binding (PROTOCOL.md section 1).
/// Each variant names the flag, key or variable to fix; none of them echoes a
/// secret.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A flag pumphub does not know, like `--bogus` or `-x`. Check
    /// `pumphub --help` for the spelling.
    UnknownFlag {
        /// The flag as given, without any `=VALUE`.
        flag: String,
        /// The flag that was probably meant (`--max_connections` suggests
        /// `max-connections`).
        suggestion: Option<&'static str>,
    },
    /// A word that is not a flag (pumphub takes no positional arguments),
    /// often a value given to a flag that takes none.
    UnexpectedArgument {
        /// The word as given.
        arg: String,
    },
    /// A flag that needs a value came last, or was followed by another `--`
    /// flag. A value that starts with `--` can be given as `--flag=--value`.
    MissingValue {
        /// The flag, with its dashes.
        flag: String,
    },
    /// A bare flag such as `--allow-client-publish` or `--help` was given as
    /// `--flag=VALUE`.
    UnexpectedValue {
        /// The flag, with its dashes.
        flag: String,
        /// What followed the `=`.
        value: String,
    },
    /// A flag that is not repeatable was given twice; only
    /// `--allowed-origin` may repeat. Remove one.
    RepeatedFlag {
        /// The flag, with its dashes.
        flag: String,
    },
    /// Two flags that exclude each other, such as `--config` and
    /// `--check-config`.
    ConflictingFlags {
        /// The flag given first.
        first: &'static str,
        /// The flag given second.
        second: &'static str,
    },
    /// A value that has the wrong form: not a number, a bad address, origin or
    /// channel name, an empty token.
    InvalidValue {
        /// The setting's name, as a flag without `--` and as a file key.
        setting: &'static str,
        /// The value as given; empty for secrets, which are never echoed.
        value: String,
        /// What is wrong and what is expected.
        reason: String,
        /// Where the value came from; `None` from [`Config::validate`].
        origin: Option<Origin>,
    },
    /// A number outside the range a setting accepts, such as
    /// `--queue-size 0`.
    OutOfRange {
        /// The setting's name, as a flag without `--` and as a file key.
        setting: &'static str,
        /// The value given; durations in milliseconds.
        value: u64,
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted (`u64::MAX` when there is no cap).
        max: u64,
        /// Where the value came from; `None` from [`Config::validate`].
        origin: Option<Origin>,
    },
    /// The config file could not be read (missing, unreadable, not UTF-8).
    /// The cause is in [`std::error::Error::source`].
    ReadFile {
        /// The file, as given.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The config file is not valid TOML.
    Toml {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line of the error, when the parser knows it.
        line: Option<usize>,
        /// 1-based column (in characters) of the error, when known.
        column: Option<usize>,
        /// The parser's description.
        message: String,
    },
    /// A key in the config file that is not a setting (tables such as
    /// `[limits]` are keys too). Keys are the flag names without `--`.
    UnknownKey {
        /// The file, as given.
        path: PathBuf,
        /// The key as written.
        key: String,
        /// The key that was probably meant (`max_connections` suggests
        /// `max-connections`).
        suggestion: Option<&'static str>,
    },
    /// `config` or `check-config` in a config file: they choose the file, so
    /// they only work on the command line.
    KeyNotAllowed {
        /// The file, as given.
        path: PathBuf,
        /// The key as written.
        key: String,
    },
    /// A config-file value of the wrong TOML type, such as
    /// `queue-size = "10"` (a string where an integer belongs).
    WrongType {
        /// The file, as given.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// The type expected, such as "an integer".
        expected: &'static str,
        /// The type found, such as "a string".
        found: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownFlag { flag, suggestion } => {
                write!(f, "unknown flag `{flag}`")?;
                match suggestion {
                    Some(name) => write!(f, " (did you mean `--{name}`?)"),
                    None => write!(f, " (try --help)"),
                }
            }
            ConfigError::UnexpectedArgument { arg } => {
                write!(
                    f,
                    "unexpected argument `{arg}`: pumphub takes only flags (try --help)"
                )
            }
            ConfigError::MissingValue { flag } => write!(f, "flag `{flag}` needs a value"),
            ConfigError::UnexpectedValue { flag, value } => {
                write!(f, "flag `{flag}` takes no value, got `{value}`")
            }
            ConfigError::RepeatedFlag { flag } => {
                write!(f, "flag `{flag}` is given more than once")
            }
            ConfigError::ConflictingFlags { first, second } => {
                write!(f, "flags `{first}` and `{second}` cannot be used together")
            }
            ConfigError::InvalidValue {
                setting,
                value,
                reason,
                origin,
            } => {
                let place = describe(setting, origin.as_ref());
                match value.as_str() {
                    "" => write!(f, "invalid value for {place}: {reason}"),
                    value => write!(f, "invalid value `{value}` for {place}: {reason}"),
                }
            }
            ConfigError::OutOfRange {
                setting,
                value,
                min,
                max,
                origin,
            } => {
                let place = describe(setting, origin.as_ref());
                write!(f, "{place} is out of range: must be ")?;
                if *max == u64::MAX {
                    write!(f, "at least {min}")?;
                } else if *min == 0 {
                    write!(f, "at most {max}")?;
                } else {
                    write!(f, "between {min} and {max}")?;
                }
                write!(f, ", got {value}")
            }
            ConfigError::ReadFile { path, .. } => {
                write!(f, "cannot read config file {}", path.display())
            }
            ConfigError::Toml {
                path,
                line,
                column,
                message,
            } => {
                write!(f, "config file {} is not valid TOML", path.display())?;
                if let (Some(line), Some(column)) = (line, column) {
                    write!(f, " at line {line}, column {column}")?;
                }
                write!(f, ": {message}")
            }
            ConfigError::UnknownKey {
                path,
                key,
                suggestion,
            } => {
                write!(f, "unknown key `{key}` in config file {}", path.display())?;
                match suggestion {
                    Some(name) => write!(f, " (did you mean `{name}`?)"),
                    None => write!(f, " (keys are the flag names without `--`)"),
                }
            }
            ConfigError::KeyNotAllowed { path, key } => write!(
                f,
                "key `{key}` is not allowed in config file {}: it only works as a flag",
                path.display()
            ),
            ConfigError::WrongType {
                path,
                key,
                expected,
                found,
            } => {
                write!(
                    f,
                    "`{key}` in config file {} must be {expected}, found {found}",
                    path.display()
                )?;
                if *expected == "an integer" && *found == "a string" {
                    write!(f, " (write numbers without quotes)")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::ReadFile { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Names a setting the way its source spells it, for error messages.
fn describe(setting: &str, origin: Option<&Origin>) -> String {
    match origin {
        Some(Origin::CommandLine) => format!("--{setting}"),
        Some(Origin::Environment { var }) => format!("environment variable {var}"),
        Some(Origin::File { path }) => {
            format!("`{setting}` in config file {}", path.display())
        }
        None => format!("`{setting}`"),
    }
}

/// Parses the command line (without `argv[0]`), the two secret environment
/// variables and any config file into an [`Invocation`].
///
/// `-h`/`--help` and `-V`/`--version` win wherever they appear, even next to
/// an unknown flag or a bad value, and no file is read; if both are given, the
/// first wins. Otherwise the first problem found is returned.
///
/// A non-UTF-8 secret variable is read lossily, and so is rejected by
/// validation (a secret must be printable ASCII) instead of being ignored.
///
/// # Errors
///
/// Any [`ConfigError`]: a bad flag, an unreadable or invalid file, or a value
/// that fails validation.
///
/// See [`parse_args_with_env`] for an example that does not depend on the
/// real environment.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Invocation, ConfigError> {
    parse_args_with_env(args, |name| {
        std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
    })
}

/// [`parse_args`] with the environment given as a function, for tests and
/// for embedding applications that keep their own environment.
///
/// `env` is asked only for [`ENV_TOKEN`], [`ENV_PUBLISH_KEY`] and [`ENV_LOG`].
///
/// # Errors
///
/// As [`parse_args`].
///
/// # Examples
///
/// ```
/// use pumphub::config::{parse_args_with_env, Invocation};
///
/// let args = ["--queue-size", "8", "--ws=127.0.0.1:0"].map(String::from);
/// let env = |name: &str| (name == "PUMPHUB_TOKEN").then(|| "s3cret".to_owned());
/// let Invocation::Run(config) = parse_args_with_env(args, env)? else {
///     unreachable!("no --help, --version or --check-config was given");
/// };
/// assert_eq!(config.queue_size, 8);
/// assert_eq!(config.token.as_deref(), Some("s3cret"));
/// # Ok::<(), pumphub::config::ConfigError>(())
/// ```
pub fn parse_args_with_env<I, E>(args: I, env: E) -> Result<Invocation, ConfigError>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    // 1. Split the command line into flags; values are not judged yet, so
    //    that --help can win over a bad value.
    let command_line = match split_command_line(args)? {
        Split::Help => return Ok(Invocation::Help),
        Split::Version => return Ok(Invocation::Version),
        Split::Flags(command_line) => command_line,
    };

    // 2. Layer the sources, lowest precedence first, remembering where each
    //    setting was last set.
    let mut config = Config::default();
    let mut origins = HashMap::new();
    if let Some((_, path)) = &command_line.file {
        let origin = Origin::File { path: path.clone() };
        for (setting, raw) in read_config_file(path)? {
            config.set(setting, raw, &origin)?;
            origins.insert(setting, origin.clone());
        }
    }
    for (var, setting) in [
        (ENV_TOKEN, Setting::Token),
        (ENV_PUBLISH_KEY, Setting::PublishKey),
    ] {
        if let Some(value) = env(var) {
            let origin = Origin::Environment { var };
            config.set(setting, Raw::Text(value), &origin)?;
            origins.insert(setting, origin);
        }
    }
    if let Some(level) = env(ENV_LOG).as_deref().and_then(level_from_rust_log) {
        config.log_level = level;
        origins.insert(Setting::LogLevel, Origin::Environment { var: ENV_LOG });
    }
    for (setting, raw) in command_line.settings {
        config.set(setting, raw, &Origin::CommandLine)?;
        origins.insert(setting, Origin::CommandLine);
    }

    // 3. Validate the merged result.
    config.check(&origins)?;

    Ok(match command_line.file {
        Some((FileRole::Check, path)) => Invocation::CheckConfig { path, config },
        _ => Invocation::Run(config),
    })
}

/// One setting: a flag `--name`, a config-file key `name`, one `Config` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Setting {
    Ws,
    Http,
    MaxConnections,
    MaxConnectionsPerIp,
    MaxMessageSize,
    PingIntervalMs,
    PongTimeoutMs,
    QueueSize,
    HistorySize,
    RateLimit,
    Token,
    PublishKey,
    AllowClientPublish,
    AllowedOrigin,
    Stdin,
    LogLevel,
    ShutdownGraceMs,
    MaxSubscriptions,
    HandshakeTimeoutMs,
    AuthTimeoutMs,
    WriteTimeoutMs,
    HttpWorkers,
}

impl Setting {
    /// Every setting, in the order of the `Config` fields.
    const ALL: [Setting; 22] = [
        Setting::Ws,
        Setting::Http,
        Setting::MaxConnections,
        Setting::MaxConnectionsPerIp,
        Setting::MaxMessageSize,
        Setting::PingIntervalMs,
        Setting::PongTimeoutMs,
        Setting::QueueSize,
        Setting::HistorySize,
        Setting::RateLimit,
        Setting::Token,
        Setting::PublishKey,
        Setting::AllowClientPublish,
        Setting::AllowedOrigin,
        Setting::Stdin,
        Setting::LogLevel,
        Setting::ShutdownGraceMs,
        Setting::MaxSubscriptions,
        Setting::HandshakeTimeoutMs,
        Setting::AuthTimeoutMs,
        Setting::WriteTimeoutMs,
        Setting::HttpWorkers,
    ];

    /// The flag without `--`, which is also the config-file key.
    fn name(self) -> &'static str {
        match self {
            Setting::Ws => "ws",
            Setting::Http => "http",
            Setting::MaxConnections => "max-connections",
            Setting::MaxConnectionsPerIp => "max-connections-per-ip",
            Setting::MaxMessageSize => "max-message-size",
            Setting::PingIntervalMs => "ping-interval-ms",
            Setting::PongTimeoutMs => "pong-timeout-ms",
            Setting::QueueSize => "queue-size",
            Setting::HistorySize => "history-size",
            Setting::RateLimit => "rate-limit",
            Setting::Token => "token",
            Setting::PublishKey => "publish-key",
            Setting::AllowClientPublish => "allow-client-publish",
            Setting::AllowedOrigin => "allowed-origin",
            Setting::Stdin => "stdin",
            Setting::LogLevel => "log-level",
            Setting::ShutdownGraceMs => "shutdown-grace-ms",
            Setting::MaxSubscriptions => "max-subscriptions",
            Setting::HandshakeTimeoutMs => "handshake-timeout-ms",
            Setting::AuthTimeoutMs => "auth-timeout-ms",
            Setting::WriteTimeoutMs => "write-timeout-ms",
            Setting::HttpWorkers => "http-workers",
        }
    }

    fn from_name(name: &str) -> Option<Setting> {
        Setting::ALL
            .into_iter()
            .find(|setting| setting.name() == name)
    }

    /// False only for the bare flag `--allow-client-publish`.
    fn takes_value(self) -> bool {
        self != Setting::AllowClientPublish
    }

    /// True only for `--allowed-origin`.
    fn repeatable(self) -> bool {
        self == Setting::AllowedOrigin
    }
}

/// The setting probably meant by a misspelt name: `max_connections` and
/// `Max-Connections` both suggest `max-connections`.
fn suggest(name: &str) -> Option<&'static str> {
    Setting::from_name(&name.replace('_', "-").to_ascii_lowercase()).map(Setting::name)
}

/// A value as its source gave it, before its type is checked.
enum Raw {
    /// `--name VALUE`, `--name=VALUE`, or an environment variable.
    Text(String),
    /// Every `--allowed-origin VALUE`, in command-line order.
    Texts(Vec<String>),
    /// A bare `--allow-client-publish`.
    Switch,
    /// A config-file value, already typed by TOML.
    Toml(toml::Value),
}

/// Which of the two file flags named the config file.
enum FileRole {
    /// `--config FILE`: load it, then run.
    Load,
    /// `--check-config FILE`: load it, validate, then exit.
    Check,
}

/// The command line split into flags, each setting at most once.
struct CommandLine {
    file: Option<(FileRole, PathBuf)>,
    settings: Vec<(Setting, Raw)>,
}

impl CommandLine {
    /// Records one setting flag, refusing repeats except `--allowed-origin`.
    fn add(&mut self, setting: Setting, value: Option<String>) -> Result<(), ConfigError> {
        let existing = self.settings.iter_mut().find(|(s, _)| *s == setting);
        match (existing, value) {
            (Some((_, Raw::Texts(values))), Some(value)) => values.push(value),
            (Some(_), _) => {
                return Err(ConfigError::RepeatedFlag {
                    flag: format!("--{}", setting.name()),
                })
            }
            (None, Some(value)) if setting.repeatable() => {
                self.settings.push((setting, Raw::Texts(vec![value])));
            }
            (None, Some(value)) => self.settings.push((setting, Raw::Text(value))),
            (None, None) => self.settings.push((setting, Raw::Switch)),
        }
        Ok(())
    }

    fn set_file(&mut self, role: FileRole, path: PathBuf) -> Result<(), ConfigError> {
        let flag = |role: &FileRole| match role {
            FileRole::Load => "--config",
            FileRole::Check => "--check-config",
        };
        match &self.file {
            None => {
                self.file = Some((role, path));
                Ok(())
            }
            Some((earlier, _)) if flag(earlier) == flag(&role) => Err(ConfigError::RepeatedFlag {
                flag: flag(&role).to_owned(),
            }),
            Some((earlier, _)) => Err(ConfigError::ConflictingFlags {
                first: flag(earlier),
                second: flag(&role),
            }),
        }
    }
}

/// What [`split_command_line`] found.
enum Split {
    /// `--help`: nothing else matters.
    Help,
    /// `--version`: nothing else matters.
    Version,
    /// Settings to layer over the file and environment.
    Flags(CommandLine),
}

/// One command-line word (with its value, if it takes one).
enum Word {
    Help,
    Version,
    File(FileRole, PathBuf),
    Setting(Setting, Option<String>),
}

/// Splits the command line into flags without judging their values.
///
/// Keeps going after an error, so that a `--help` later on still wins; then
/// returns the first error.
fn split_command_line<I: IntoIterator<Item = String>>(args: I) -> Result<Split, ConfigError> {
    let mut args = args.into_iter().peekable();
    let mut exit = None;
    let mut first_error = None;
    let mut command_line = CommandLine {
        file: None,
        settings: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let recorded = match read_word(arg, &mut args) {
            Ok(Word::Help) => {
                exit.get_or_insert(Split::Help);
                Ok(())
            }
            Ok(Word::Version) => {
                exit.get_or_insert(Split::Version);
                Ok(())
            }
            Ok(Word::File(role, path)) => command_line.set_file(role, path),
            Ok(Word::Setting(setting, value)) => command_line.add(setting, value),
            Err(error) => Err(error),
        };
        if let Err(error) = recorded {
            first_error.get_or_insert(error);
        }
    }
    match (exit, first_error) {
        (Some(help_or_version), _) => Ok(help_or_version),
        (None, Some(error)) => Err(error),
        (None, None) => Ok(Split::Flags(command_line)),
    }
}

/// Reads one word, taking the next one as its value when the flag needs one
/// and was not written `--flag=VALUE`.
fn read_word<I>(arg: String, rest: &mut Peekable<I>) -> Result<Word, ConfigError>
where
    I: Iterator<Item = String>,
{
    match arg.as_str() {
        "-h" => return Ok(Word::Help),
        "-V" => return Ok(Word::Version),
        _ => {}
    }
    let Some(body) = arg.strip_prefix("--") else {
        return Err(if arg.starts_with('-') && arg.len() > 1 {
            ConfigError::UnknownFlag {
                flag: arg,
                suggestion: None,
            }
        } else {
            ConfigError::UnexpectedArgument { arg }
        });
    };
    let (name, inline_value) = match body.split_once('=') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (body, None),
    };
    let flag = format!("--{name}");

    // Bare flags first: they must not have `=VALUE`.
    let bare = match name {
        "help" => Some(Word::Help),
        "version" => Some(Word::Version),
        _ => Setting::from_name(name)
            .filter(|setting| !setting.takes_value())
            .map(|setting| Word::Setting(setting, None)),
    };
    if let Some(word) = bare {
        return match inline_value {
            Some(value) => Err(ConfigError::UnexpectedValue { flag, value }),
            None => Ok(word),
        };
    }

    // Every other flag takes a value: the text after `=`, or else the next
    // word, unless that word is itself a flag: `--token --help` is a missing
    // token, not the token "--help".
    let value = || match inline_value {
        Some(value) => Ok(value),
        None => rest
            .next_if(|next| !next.starts_with("--"))
            .ok_or_else(|| ConfigError::MissingValue { flag: flag.clone() }),
    };
    match name {
        "config" => Ok(Word::File(FileRole::Load, value()?.into())),
        "check-config" => Ok(Word::File(FileRole::Check, value()?.into())),
        _ => match Setting::from_name(name) {
            Some(setting) => Ok(Word::Setting(setting, Some(value()?))),
            None => Err(ConfigError::UnknownFlag {
                suggestion: suggest(name),
                flag,
            }),
        },
    }
}

/// Reads and parses the TOML config file into settings, refusing unknown keys.
fn read_config_file(path: &Path) -> Result<Vec<(Setting, Raw)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        let (line, column) = match error.span() {
            Some(span) => line_and_column(&text, span.start),
            None => (None, None),
        };
        ConfigError::Toml {
            path: path.to_owned(),
            line,
            column,
            message: error.message().to_owned(),
        }
    })?;
    table
        .into_iter()
        .map(|(key, value)| match Setting::from_name(&key) {
            Some(setting) => Ok((setting, Raw::Toml(value))),
            None if key == "config" || key == "check-config" => Err(ConfigError::KeyNotAllowed {
                path: path.to_owned(),
                key,
            }),
            None => Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                suggestion: suggest(&key),
                key,
            }),
        })
        .collect()
}

/// 1-based line and column (in characters) of a byte offset into `text`.
fn line_and_column(text: &str, offset: usize) -> (Option<usize>, Option<usize>) {
    let Some(before) = text.get(..offset) else {
        return (None, None);
    };
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (Some(line), Some(column))
}

/// One raw value for one setting, with where it came from.
///
/// Its readers check type and syntax only ("is this a whole number?");
/// ranges are checked later, on the merged config, by [`Rules`].
struct Input<'a> {
    setting: Setting,
    raw: Raw,
    origin: &'a Origin,
}

impl Input<'_> {
    fn text(self) -> Result<String, ConfigError> {
        match self.raw {
            Raw::Text(text) | Raw::Toml(toml::Value::String(text)) => Ok(text),
            _ => Err(self.mismatch("a string")),
        }
    }

    fn switch(self) -> Result<bool, ConfigError> {
        match self.raw {
            Raw::Switch => Ok(true),
            Raw::Toml(toml::Value::Boolean(on)) => Ok(on),
            _ => Err(self.mismatch("true or false")),
        }
    }

    fn list(self) -> Result<Vec<String>, ConfigError> {
        match self.raw {
            Raw::Texts(values) => Ok(values),
            Raw::Toml(toml::Value::Array(ref items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => Ok(text.clone()),
                    other => Err(self.wrong_type("an array of strings", in_array(other))),
                })
                .collect(),
            _ => Err(self.mismatch("an array of strings")),
        }
    }

    fn whole_number(&self) -> Result<u64, ConfigError> {
        match &self.raw {
            Raw::Text(text) => {
                parse_whole_number(text).map_err(|reason| self.invalid(text, reason))
            }
            Raw::Toml(toml::Value::Integer(number)) => u64::try_from(*number)
                .map_err(|_| self.invalid(&number.to_string(), "must not be negative")),
            _ => Err(self.mismatch("an integer")),
        }
    }

    /// A whole number that fits `T` (`usize` or `u32`).
    fn count<T: TryFrom<u64>>(&self) -> Result<T, ConfigError> {
        let number = self.whole_number()?;
        T::try_from(number).map_err(|_| self.invalid(&number.to_string(), "is too large"))
    }

    fn millis(&self) -> Result<Duration, ConfigError> {
        self.whole_number().map(Duration::from_millis)
    }

    fn log_level(self) -> Result<LevelFilter, ConfigError> {
        let origin = self.origin;
        let setting = self.setting;
        let text = self.text()?;
        match text.to_ascii_lowercase().as_str() {
            "off" => Ok(LevelFilter::Off),
            "error" => Ok(LevelFilter::Error),
            "warn" => Ok(LevelFilter::Warn),
            "info" => Ok(LevelFilter::Info),
            "debug" => Ok(LevelFilter::Debug),
            "trace" => Ok(LevelFilter::Trace),
            _ => Err(ConfigError::InvalidValue {
                setting: setting.name(),
                reason: "expected one of off, error, warn, info, debug, trace".to_owned(),
                value: text,
                origin: Some(origin.clone()),
            }),
        }
    }

    fn invalid(&self, value: &str, reason: &str) -> ConfigError {
        ConfigError::InvalidValue {
            setting: self.setting.name(),
            value: value.to_owned(),
            reason: reason.to_owned(),
            origin: Some(self.origin.clone()),
        }
    }

    /// The value has the wrong shape. From the file that is a TOML type
    /// error; from the command line it cannot happen (the splitter knows each
    /// flag's shape), but it gets a plain message rather than a panic.
    fn mismatch(&self, expected: &'static str) -> ConfigError {
        match &self.raw {
            Raw::Toml(value) => self.wrong_type(expected, type_name(value)),
            _ => self.invalid("", &format!("expected {expected}")),
        }
    }

    fn wrong_type(&self, expected: &'static str, found: &'static str) -> ConfigError {
        match self.origin {
            Origin::File { path } => ConfigError::WrongType {
                path: path.clone(),
                key: self.setting.name(),
                expected,
                found,
            },
            _ => self.invalid("", &format!("expected {expected}, found {found}")),
        }
    }
}

/// Parses a non-negative decimal integer, saying what is wrong if it is not.
fn parse_whole_number(text: &str) -> Result<u64, &'static str> {
    if text.starts_with('-') {
        return Err("must not be negative");
    }
    text.parse::<u64>().map_err(|error| match error.kind() {
        std::num::IntErrorKind::PosOverflow => "is too large",
        _ => "expected a whole number",
    })
}

/// A TOML value's type with its article, for messages.
fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Like [`type_name`], for an item found inside an array.
fn in_array(item: &toml::Value) -> &'static str {
    match item {
        toml::Value::String(_) => "an array containing a string",
        toml::Value::Integer(_) => "an array containing an integer",
        toml::Value::Float(_) => "an array containing a float",
        toml::Value::Boolean(_) => "an array containing a boolean",
        toml::Value::Datetime(_) => "an array containing a datetime",
        toml::Value::Array(_) => "an array containing an array",
        toml::Value::Table(_) => "an array containing a table",
    }
}

/// The checks [`Config::check`] runs on the merged config.
struct Rules<'a> {
    origins: &'a HashMap<Setting, Origin>,
}

impl Rules<'_> {
    fn invalid(&self, setting: Setting, value: &str, reason: &str) -> ConfigError {
        ConfigError::InvalidValue {
            setting: setting.name(),
            value: value.to_owned(),
            reason: reason.to_owned(),
            origin: self.origins.get(&setting).cloned(),
        }
    }

    fn in_range(
        &self,
        setting: Setting,
        value: u64,
        min: u64,
        max: u64,
    ) -> Result<(), ConfigError> {
        if (min..=max).contains(&value) {
            return Ok(());
        }
        Err(ConfigError::OutOfRange {
            setting: setting.name(),
            value,
            min,
            max,
            origin: self.origins.get(&setting).cloned(),
        })
    }

    fn at_least(&self, setting: Setting, value: usize, min: u64) -> Result<(), ConfigError> {
        let value = u64::try_from(value).unwrap_or(u64::MAX);
        self.in_range(setting, value, min, u64::MAX)
    }

    fn millis(&self, setting: Setting, value: Duration, min: u64) -> Result<(), ConfigError> {
        let millis = u64::try_from(value.as_millis()).unwrap_or(u64::MAX);
        self.in_range(setting, millis, min, MAX_MILLIS)
    }

    /// `host:port` that the system can resolve; nothing is bound.
    fn address(&self, setting: Setting, address: &str) -> Result<(), ConfigError> {
        let has_port = address
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        if !has_port {
            return Err(self.invalid(
                setting,
                address,
                "expected HOST:PORT such as 127.0.0.1:9001 (port 0 picks a free port)",
            ));
        }
        match address
            .to_socket_addrs()
            .map(|mut resolved| resolved.next())
        {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(self.invalid(setting, address, "resolves to no address")),
            Err(error) => Err(self.invalid(setting, address, &format!("cannot resolve: {error}"))),
        }
    }

    /// Tokens travel in URLs and `Authorization` headers: printable ASCII,
    /// no spaces. The value is never echoed.
    fn secret(&self, setting: Setting, secret: Option<&str>) -> Result<(), ConfigError> {
        match secret {
            None => Ok(()),
            Some("") => Err(self.invalid(setting, "", "must not be empty")),
            Some(secret) if secret.bytes().all(|byte| byte.is_ascii_graphic()) => Ok(()),
            Some(_) => Err(self.invalid(
                setting,
                "",
                "must be printable ASCII without spaces, as it is sent in an Authorization header",
            )),
        }
    }

    fn origin(&self, origin: &str) -> Result<(), ConfigError> {
        check_origin_form(origin)
            .map_err(|reason| self.invalid(Setting::AllowedOrigin, origin, reason))
    }

    fn channel(&self, channel: &str) -> Result<(), ConfigError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
        if (1..=MAX_CHANNEL_LEN).contains(&channel.len()) && channel.chars().all(allowed) {
            return Ok(());
        }
        Err(self.invalid(
            Setting::Stdin,
            channel,
            "a channel name is 1 to 128 of A-Z a-z 0-9 _ . : -",
        ))
    }
}

/// Checks that `origin` has the form a browser sends in its `Origin` header:
/// `scheme://host[:port]`, with no path (not even a trailing `/`), query,
/// fragment or user info. Case is not checked; origins match ASCII
/// case-insensitively.
fn check_origin_form(origin: &str) -> Result<(), &'static str> {
    const FORM: &str = "expected scheme://host[:port], such as https://app.example";
    let (scheme, authority) = origin.split_once("://").ok_or(FORM)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(FORM);
    }
    if authority.contains(['/', '?', '#']) {
        return Err("must not have a path, query or fragment; browsers send no trailing slash");
    }
    if authority.contains('@') {
        return Err("must not contain user info");
    }
    // An IPv6 host is bracketed: http://[::1]:8080.
    let (host, port, host_char): (&str, Option<&str>, fn(char) -> bool) =
        if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or(FORM)?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(FORM)?),
            };
            (host, port, |c| {
                c.is_ascii_hexdigit() || matches!(c, ':' | '.')
            })
        } else {
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            (host, port, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
            })
        };
    if host.is_empty() || !host.chars().all(host_char) {
        return Err("has an invalid host; use ASCII (punycode for international names)");
    }
    if let Some(port) = port {
        let digits = !port.is_empty() && port.chars().all(|c| c.is_ascii_digit());
        if !digits || port.parse::<u16>().is_err() {
            return Err("has an invalid port");
        }
    }
    Ok(())
}

/// The `--version` text: `pumphub` and the crate version.
pub fn version_text() -> String {
    format!("pumphub {}", env!("CARGO_PKG_VERSION"))
}

/// The `--help` text: usage, precedence, and every flag grouped by purpose
/// with its default (taken from [`Config::default`], so it cannot drift).
pub fn help_text() -> String {
    let defaults = Config::default();
    let ms = |duration: Duration| duration.as_millis().to_string();
    // One row per flag: (flag, what it does, default). Kept unformatted so
    // each row stays on one line and reads like the help it produces.
    #[rustfmt::skip]
    let groups = [
        ("Listeners", vec![
            ("--ws ADDR", "WebSocket listener (GET /ws)", defaults.ws_addr.clone()),
            ("--http ADDR", "HTTP listener (/health /metrics /status /publish /)", defaults.http_addr.clone()),
        ]),
        ("Limits", vec![
            ("--max-connections N", "WebSocket clients in total; more get 503", defaults.max_connections.to_string()),
            ("--max-connections-per-ip N", "clients per remote IP; more get 429", defaults.max_connections_per_ip.to_string()),
            ("--max-message-size BYTES", "largest client message; longer gets Close 1009", defaults.max_message_size.to_string()),
            ("--rate-limit N", "client messages per second, burst 2N (0 = off)", defaults.rate_limit.to_string()),
            ("--max-subscriptions N", "channels per connection", defaults.max_subscriptions.to_string()),
            ("--handshake-timeout-ms N", "time from accept to a finished handshake", ms(defaults.handshake_timeout)),
        ]),
        ("Heartbeat", vec![
            ("--ping-interval-ms N", "server Ping period (0 = heartbeat off)", ms(defaults.ping_interval)),
            ("--pong-timeout-ms N", "extra wait for any frame after a Ping", ms(defaults.pong_timeout)),
        ]),
        ("Delivery & history", vec![
            ("--queue-size N", "per-client outbound queue; full = Close 4008", defaults.queue_size.to_string()),
            ("--history-size N", "events kept per channel for replay (0 = off)", defaults.history_size.to_string()),
            ("--write-timeout-ms N", "longest one socket write may block", ms(defaults.write_timeout)),
        ]),
        ("Security", vec![
            ("--token TOKEN", "clients must present it; env PUMPHUB_TOKEN", "none".to_owned()),
            ("--publish-key KEY", "Bearer key for /publish and /status; env PUMPHUB_PUBLISH_KEY", "none".to_owned()),
            ("--allow-client-publish", "let WebSocket clients send publish", "off".to_owned()),
            ("--allowed-origin ORIGIN", "repeatable, scheme://host[:port]; others get 403", "any".to_owned()),
            ("--auth-timeout-ms N", "time to send auth when --token is set", ms(defaults.auth_timeout)),
        ]),
        ("Input", vec![
            ("--stdin CHANNEL", "publish each stdin line to CHANNEL", "off".to_owned()),
        ]),
        ("Operations", vec![
            ("--log-level LEVEL", "off, error, warn, info, debug or trace", "info".to_owned()),
            ("--shutdown-grace-ms N", "how long shutdown may flush queued events", ms(defaults.shutdown_grace)),
            ("--http-workers N", "threads serving HTTP", defaults.http_workers.to_string()),
            ("--config FILE", "read settings from a TOML file first", "none".to_owned()),
            ("--check-config FILE", "validate FILE and the other flags, then exit", String::new()),
        ]),
        ("Other", vec![
            ("-h, --help", "print this help", String::new()),
            ("-V, --version", "print the version", String::new()),
        ]),
    ];

    let mut text = format!(
        "{}: a synchronous WebSocket event hub\n\n\
         Usage:\n  pumphub [OPTIONS]\n  pumphub --check-config FILE [OPTIONS]\n\n\
         Settings come from flags, then PUMPHUB_TOKEN / PUMPHUB_PUBLISH_KEY, then\n\
         the --config file, then defaults. File keys are flag names without `--`\n\
         (max-connections = 10, allowed-origin = [\"https://a.example\"]).\n\
         Durations are in milliseconds. Exit status: 0 ok, 1 runtime failure\n\
         (e.g. a port in use), 2 bad flags or config.\n",
        version_text()
    );
    for (group, flags) in groups {
        text.push_str(&format!("\n{group}:\n"));
        for (flag, summary, default) in flags {
            let line = if default.is_empty() {
                format!("  {flag:<27} {summary}")
            } else {
                format!("  {flag:<27} {summary} [{default}]")
            };
            text.push_str(line.trim_end());
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A TOML file under the temp dir with a name unique to this process and
    /// test, removed on drop, so tests can run in parallel.
    struct TempToml(PathBuf);

    impl TempToml {
        fn new(contents: &str) -> TempToml {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("pumphub-config-test-{}-{n}.toml", std::process::id());
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, contents).expect("write temp config");
            TempToml(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().expect("temp dir path is UTF-8")
        }
    }

    impl Drop for TempToml {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    fn parse(args: &[&str]) -> Result<Invocation, ConfigError> {
        parse_args_with_env(strings(args), |_| None)
    }

    fn parse_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Invocation, ConfigError> {
        parse_args_with_env(strings(args), |name| {
            env.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| value.to_string())
        })
    }

    /// Parses arguments that must give `Invocation::Run`.
    fn run(args: &[&str]) -> Config {
        match parse(args) {
            Ok(Invocation::Run(config)) => config,
            other => panic!("expected Run for {args:?}, got {other:?}"),
        }
    }

    /// Parses arguments that must fail, returning the error.
    fn error(args: &[&str]) -> ConfigError {
        match parse(args) {
            Err(error) => error,
            Ok(other) => panic!("expected an error for {args:?}, got {other:?}"),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::default();
        assert_eq!(config.ws_addr, "127.0.0.1:9001");
        assert_eq!(config.http_addr, "127.0.0.1:9002");
        assert_eq!(config.max_connections, 10_000);
        assert_eq!(config.max_connections_per_ip, 1000);
        assert_eq!(config.max_message_size, 65_536);
        assert_eq!(config.ping_interval, ms(30_000));
        assert_eq!(config.pong_timeout, ms(10_000));
        assert_eq!(config.queue_size, 1024);
        assert_eq!(config.history_size, 1024);
        assert_eq!(config.rate_limit, 100);
        assert_eq!(config.token, None);
        assert_eq!(config.publish_key, None);
        assert!(!config.allow_client_publish);
        assert!(config.allowed_origins.is_empty());
        assert_eq!(config.stdin_channel, None);
        assert_eq!(config.log_level, LevelFilter::Info);
        assert_eq!(config.shutdown_grace, ms(5000));
        assert_eq!(config.max_subscriptions, 100);
        assert_eq!(config.handshake_timeout, ms(10_000));
        assert_eq!(config.auth_timeout, ms(10_000));
        assert_eq!(config.write_timeout, ms(5000));
        assert_eq!(config.http_workers, 4);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        assert_eq!(run(&[]), Config::default());
    }

    #[test]
    fn every_flag_is_parsed() {
        #[rustfmt::skip]
        let config = run(&[
            "--ws", "127.0.0.1:0",
            "--http", "127.0.0.1:1",
            "--max-connections", "7",
            "--max-connections-per-ip", "3",
            "--max-message-size", "512",
            "--ping-interval-ms", "0",
            "--pong-timeout-ms", "250",
            "--queue-size", "2",
            "--history-size", "0",
            "--rate-limit", "0",
            "--token", "s3cret",
            "--publish-key", "k3y",
            "--allow-client-publish",
            "--allowed-origin", "https://a.example",
            "--stdin", "feed",
            "--log-level", "debug",
            "--shutdown-grace-ms", "100",
            "--max-subscriptions", "5",
            "--handshake-timeout-ms", "300",
            "--auth-timeout-ms", "400",
            "--write-timeout-ms", "500",
            "--http-workers", "2",
        ]);
        let expected = Config {
            ws_addr: "127.0.0.1:0".into(),
            http_addr: "127.0.0.1:1".into(),
            max_connections: 7,
            max_connections_per_ip: 3,
            max_message_size: 512,
            ping_interval: ms(0),
            pong_timeout: ms(250),
            queue_size: 2,
            history_size: 0,
            rate_limit: 0,
            token: Some("s3cret".into()),
            publish_key: Some("k3y".into()),
            allow_client_publish: true,
            allowed_origins: vec!["https://a.example".into()],
            stdin_channel: Some("feed".into()),
            log_level: LevelFilter::Debug,
            shutdown_grace: ms(100),
            max_subscriptions: 5,
            handshake_timeout: ms(300),
            auth_timeout: ms(400),
            write_timeout: ms(500),
            http_workers: 2,
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn every_setting_works_with_the_equals_form() {
        let config = run(&[
            "--queue-size=9",
            "--ws=localhost:0",
            "--token=a=b",
            "--stdin=x.y",
        ]);
        assert_eq!(config.queue_size, 9);
        assert_eq!(config.ws_addr, "localhost:0");
        assert_eq!(
            config.token.as_deref(),
            Some("a=b"),
            "only the first `=` splits"
        );
        assert_eq!(config.stdin_channel.as_deref(), Some("x.y"));
        // A value starting with `--` is possible with `=`.
        assert_eq!(run(&["--token=--odd"]).token.as_deref(), Some("--odd"));
    }

    #[test]
    fn log_levels_include_off_and_ignore_case() {
        assert_eq!(run(&["--log-level", "off"]).log_level, LevelFilter::Off);
        assert_eq!(run(&["--log-level", "TRACE"]).log_level, LevelFilter::Trace);
        assert!(matches!(
            error(&["--log-level", "loud"]),
            ConfigError::InvalidValue {
                setting: "log-level",
                ..
            }
        ));
    }

    #[test]
    fn allowed_origin_repeats_and_is_lowercased() {
        #[rustfmt::skip]
        let config = run(&[
            "--allowed-origin", "https://A.example",
            "--allowed-origin=http://localhost:8080",
            "--allowed-origin", "http://[::1]:3000",
        ]);
        assert_eq!(
            config.allowed_origins,
            [
                "https://a.example",
                "http://localhost:8080",
                "http://[::1]:3000"
            ]
        );
    }

    #[test]
    fn bad_origins_are_rejected() {
        for bad in [
            "a.example",
            "https://a.example/",
            "https://a.example/path",
            "https://",
            "https://a.example:99999",
            "https://a.example:",
            "https://user@a.example",
            "https://a b.example",
            "1http://a.example",
            "null",
        ] {
            match error(&["--allowed-origin", bad]) {
                ConfigError::InvalidValue {
                    setting: "allowed-origin",
                    value,
                    origin: Some(Origin::CommandLine),
                    ..
                } => assert_eq!(value, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn file_values_apply() {
        let file = TempToml::new(
            "max-connections = 10\n\
             allowed-origin = [\"https://A.example\", \"https://b.example:8443\"]\n\
             allow-client-publish = true\n\
             ws = \"127.0.0.1:0\"\n\
             log-level = \"debug\"\n\
             stdin = \"feed\"\n\
             ping-interval-ms = 0\n",
        );
        let config = run(&["--config", file.path()]);
        assert_eq!(config.max_connections, 10);
        assert_eq!(
            config.allowed_origins,
            ["https://a.example", "https://b.example:8443"]
        );
        assert!(config.allow_client_publish);
        assert_eq!(config.ws_addr, "127.0.0.1:0");
        assert_eq!(config.log_level, LevelFilter::Debug);
        assert_eq!(config.stdin_channel.as_deref(), Some("feed"));
        assert_eq!(config.ping_interval, Duration::ZERO);
    }

    #[test]
    fn flags_override_the_file_whatever_their_order() {
        let file = TempToml::new(
            "queue-size = 3\nhistory-size = 7\nallowed-origin = [\"https://f.example\"]\n",
        );
        let before = run(&[
            "--queue-size",
            "5",
            "--allowed-origin",
            "https://c.example",
            "--config",
            file.path(),
        ]);
        let after = run(&[
            "--config",
            file.path(),
            "--queue-size",
            "5",
            "--allowed-origin",
            "https://c.example",
        ]);
        for config in [before, after] {
            assert_eq!(config.queue_size, 5);
            assert_eq!(config.history_size, 7, "untouched file value stays");
            assert_eq!(
                config.allowed_origins,
                ["https://c.example"],
                "flags replace the list"
            );
        }
    }

    #[test]
    fn a_flag_can_rescue_a_bad_file_value() {
        // Validation runs on the merged result, so the overridden 0 never counts.
        let file = TempToml::new("queue-size = 0\n");
        assert_eq!(
            run(&["--config", file.path(), "--queue-size", "4"]).queue_size,
            4
        );
    }

    #[test]
    fn environment_sits_between_file_and_flags() {
        let file = TempToml::new("token = \"from-file\"\npublish-key = \"file-key\"\n");
        let env = [(ENV_TOKEN, "from-env"), (ENV_PUBLISH_KEY, "env-key")];

        let Ok(Invocation::Run(config)) = parse_with_env(&["--config", file.path()], &env) else {
            panic!("expected Run");
        };
        assert_eq!(config.token.as_deref(), Some("from-env"));
        assert_eq!(config.publish_key.as_deref(), Some("env-key"));

        let args = ["--config", file.path(), "--token", "from-flag"];
        let Ok(Invocation::Run(config)) = parse_with_env(&args, &env) else {
            panic!("expected Run");
        };
        assert_eq!(config.token.as_deref(), Some("from-flag"));
        assert_eq!(config.publish_key.as_deref(), Some("env-key"));
    }

    #[test]
    fn rust_log_sets_the_level_unless_the_flag_does() {
        let file = TempToml::new("log-level = \"error\"\n");
        let level = |args: &[&str], env: &[(&str, &str)]| match parse_with_env(args, env) {
            Ok(Invocation::Run(config)) => config.log_level,
            other => panic!("{other:?}"),
        };
        let env = [(ENV_LOG, "Debug")];
        assert_eq!(level(&[], &env), LevelFilter::Debug);
        assert_eq!(level(&["--config", file.path()], &env), LevelFilter::Debug);
        assert_eq!(level(&["--log-level", "warn"], &env), LevelFilter::Warn);
        // Directives simple_logger cannot follow are ignored, not an error.
        let directive = [(ENV_LOG, "pumphub=debug")];
        assert_eq!(level(&[], &directive), LevelFilter::Info);
        assert_eq!(
            level(&["--config", file.path()], &directive),
            LevelFilter::Error
        );
        assert_eq!(level_from_rust_log(" trace "), Some(LevelFilter::Trace));
        assert_eq!(level_from_rust_log("info,pumphub=debug"), None);
    }

    #[test]
    fn empty_secrets_are_rejected_and_name_their_source() {
        match parse_with_env(&[], &[(ENV_TOKEN, "")]) {
            Err(ConfigError::InvalidValue {
                setting: "token",
                origin: Some(Origin::Environment { var: ENV_TOKEN }),
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let message = error(&["--publish-key="]).to_string();
        assert_eq!(
            message,
            "invalid value for --publish-key: must not be empty"
        );
        let message = error(&["--token", "has space"]).to_string();
        assert!(
            !message.contains("has space"),
            "secrets are never echoed: {message}"
        );
    }

    #[test]
    fn unknown_flags_and_stray_words_are_rejected() {
        assert!(matches!(
            error(&["--bogus"]),
            ConfigError::UnknownFlag { flag, suggestion: None } if flag == "--bogus"
        ));
        assert!(matches!(
            error(&["--max_connections", "5"]),
            ConfigError::UnknownFlag {
                suggestion: Some("max-connections"),
                ..
            }
        ));
        assert!(matches!(error(&["-x"]), ConfigError::UnknownFlag { .. }));
        assert!(matches!(
            error(&["serve"]),
            ConfigError::UnexpectedArgument { arg } if arg == "serve"
        ));
        // A bare flag does not swallow the next word.
        assert!(matches!(
            error(&["--allow-client-publish", "true"]),
            ConfigError::UnexpectedArgument { .. }
        ));
        assert!(matches!(
            error(&["--allow-client-publish=yes"]),
            ConfigError::UnexpectedValue { .. }
        ));
    }

    #[test]
    fn missing_values_are_reported() {
        assert!(matches!(
            error(&["--queue-size"]),
            ConfigError::MissingValue { flag } if flag == "--queue-size"
        ));
        // The next flag is not taken as the value.
        assert!(matches!(
            error(&["--stdin", "--queue-size", "4"]),
            ConfigError::MissingValue { flag } if flag == "--stdin"
        ));
    }

    #[test]
    fn repeated_and_conflicting_flags_are_rejected() {
        assert!(matches!(
            error(&["--queue-size", "1", "--queue-size", "2"]),
            ConfigError::RepeatedFlag { flag } if flag == "--queue-size"
        ));
        assert!(matches!(
            error(&["--config", "a.toml", "--check-config", "b.toml"]),
            ConfigError::ConflictingFlags {
                first: "--config",
                second: "--check-config"
            }
        ));
    }

    #[test]
    fn bad_numbers_are_rejected_with_the_flag_named() {
        let cases = [
            (&["--queue-size", "abc"][..], "expected a whole number"),
            (&["--queue-size", ""][..], "expected a whole number"),
            (&["--max-connections", "-5"][..], "must not be negative"),
            (&["--history-size", "1.5"][..], "expected a whole number"),
            (
                &["--ping-interval-ms", "99999999999999999999"][..],
                "is too large",
            ),
            (&["--rate-limit", "4294967296"][..], "is too large"),
        ];
        for (args, expected) in cases {
            match error(args) {
                ConfigError::InvalidValue {
                    setting,
                    reason,
                    origin,
                    ..
                } => {
                    assert_eq!(format!("--{setting}"), args[0]);
                    assert_eq!(reason, expected, "{args:?}");
                    assert_eq!(origin, Some(Origin::CommandLine));
                }
                other => panic!("{args:?}: {other:?}"),
            }
        }
        assert_eq!(
            error(&["--queue-size", "abc"]).to_string(),
            "invalid value `abc` for --queue-size: expected a whole number"
        );
    }

    #[test]
    fn edge_values_are_checked_on_the_merged_config() {
        for flag in [
            "--queue-size",
            "--max-message-size",
            "--max-connections",
            "--max-connections-per-ip",
            "--max-subscriptions",
            "--http-workers",
            "--write-timeout-ms",
            "--handshake-timeout-ms",
            "--auth-timeout-ms",
        ] {
            match error(&[flag, "0"]) {
                ConfigError::OutOfRange {
                    setting,
                    value: 0,
                    min: 1,
                    ..
                } => {
                    assert_eq!(format!("--{setting}"), flag)
                }
                other => panic!("{flag}: {other:?}"),
            }
        }
        assert_eq!(
            error(&["--queue-size", "0"]).to_string(),
            "--queue-size is out of range: must be at least 1, got 0"
        );
        // From the file, the error names the key and the file.
        let file = TempToml::new("max-message-size = 0\n");
        match error(&["--config", file.path()]) {
            ConfigError::OutOfRange {
                setting: "max-message-size",
                origin: Some(Origin::File { path }),
                ..
            } => assert_eq!(path, file.0),
            other => panic!("{other:?}"),
        }
        // Zero is meaningful for these.
        let config = run(&[
            "--history-size",
            "0",
            "--rate-limit",
            "0",
            "--ping-interval-ms",
            "0",
        ]);
        assert_eq!((config.history_size, config.rate_limit), (0, 0));
        assert!(matches!(
            error(&["--shutdown-grace-ms", "86400001"]),
            ConfigError::OutOfRange {
                max: MAX_MILLIS,
                ..
            }
        ));
    }

    #[test]
    fn addresses_must_be_host_and_port() {
        for bad in ["9001", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ""] {
            assert!(
                matches!(
                    error(&["--ws", bad]),
                    ConfigError::InvalidValue { setting: "ws", .. }
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            error(&["--http", "nope"]),
            ConfigError::InvalidValue {
                setting: "http",
                ..
            }
        ));
        assert_eq!(run(&["--http", "[::1]:0"]).http_addr, "[::1]:0");
    }

    #[test]
    fn stdin_channel_must_be_a_valid_name() {
        let long = "a".repeat(129);
        for bad in ["", "has space", "é", "a/b", long.as_str()] {
            assert!(
                matches!(
                    error(&["--stdin", bad]),
                    ConfigError::InvalidValue {
                        setting: "stdin",
                        ..
                    }
                ),
                "{bad:?}"
            );
        }
        let ok = "A-z_0.9:x".to_owned() + &"a".repeat(119);
        assert_eq!(run(&["--stdin", &ok]).stdin_channel, Some(ok));
    }

    #[test]
    fn unknown_and_flag_only_keys_are_rejected_in_the_file() {
        let file = TempToml::new("max_connections = 10\n");
        match error(&["--config", file.path()]) {
            ConfigError::UnknownKey {
                key, suggestion, ..
            } => {
                assert_eq!(key, "max_connections");
                assert_eq!(suggestion, Some("max-connections"));
            }
            other => panic!("{other:?}"),
        }
        let file = TempToml::new("[limits]\nqueue-size = 1\n");
        assert!(matches!(
            error(&["--config", file.path()]),
            ConfigError::UnknownKey { key, .. } if key == "limits"
        ));
        for key in ["config", "check-config"] {
            let file = TempToml::new(&format!("{key} = \"other.toml\"\n"));
            assert!(matches!(
                error(&["--config", file.path()]),
                ConfigError::KeyNotAllowed { .. }
            ));
        }
    }

    #[test]
    fn wrong_toml_types_are_rejected() {
        let cases = [
            ("queue-size = \"10\"", "an integer", "a string"),
            ("queue-size = 1.5", "an integer", "a float"),
            (
                "allow-client-publish = \"yes\"",
                "true or false",
                "a string",
            ),
            ("ws = 9001", "a string", "an integer"),
            (
                "allowed-origin = \"https://a.example\"",
                "an array of strings",
                "a string",
            ),
            (
                "allowed-origin = [1]",
                "an array of strings",
                "an array containing an integer",
            ),
        ];
        for (line, expected_type, found_type) in cases {
            let file = TempToml::new(line);
            match error(&["--config", file.path()]) {
                ConfigError::WrongType {
                    expected, found, ..
                } => {
                    assert_eq!((expected, found), (expected_type, found_type), "{line}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
        let file = TempToml::new("queue-size = \"10\"");
        let message = error(&["--config", file.path()]).to_string();
        assert!(
            message.ends_with("must be an integer, found a string (write numbers without quotes)")
        );
    }

    #[test]
    fn negative_toml_integers_are_rejected() {
        let file = TempToml::new("history-size = -1\n");
        assert!(matches!(
            error(&["--config", file.path()]),
            ConfigError::InvalidValue { setting: "history-size", reason, .. } if reason == "must not be negative"
        ));
    }

    #[test]
    fn toml_syntax_errors_give_a_position() {
        let file = TempToml::new("queue-size = 1\nws = \n");
        match error(&["--config", file.path()]) {
            ConfigError::Toml { line, .. } => assert_eq!(line, Some(2)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_file_keeps_the_io_error_as_source() {
        let path =
            std::env::temp_dir().join(format!("pumphub-missing-{}.toml", std::process::id()));
        let path = path.to_str().expect("UTF-8 temp path");
        let error = error(&["--config", path]);
        assert!(matches!(error, ConfigError::ReadFile { .. }));
        let source = std::error::Error::source(&error).expect("io error as source");
        assert!(source.downcast_ref::<io::Error>().is_some());
        assert!(
            !error.to_string().contains(&source.to_string()),
            "cause is not repeated"
        );
    }

    #[test]
    fn check_config_validates_the_file_and_the_flags() {
        let file = TempToml::new("queue-size = 3\n");
        match parse(&["--check-config", file.path(), "--history-size", "2"]) {
            Ok(Invocation::CheckConfig { path, config }) => {
                assert_eq!(path, file.0);
                assert_eq!((config.queue_size, config.history_size), (3, 2));
            }
            other => panic!("{other:?}"),
        }
        let bad = TempToml::new("queue-size = 0\n");
        assert!(matches!(
            error(&["--check-config", bad.path()]),
            ConfigError::OutOfRange { .. }
        ));
    }

    #[test]
    fn help_and_version_win_over_bad_flags() {
        assert_eq!(parse(&["-h"]).ok(), Some(Invocation::Help));
        assert_eq!(parse(&["--version"]).ok(), Some(Invocation::Version));
        assert_eq!(
            parse(&["--bogus", "--queue-size", "x", "-V"]).ok(),
            Some(Invocation::Version)
        );
        assert_eq!(
            parse(&["--config", "/nonexistent.toml", "--help"]).ok(),
            Some(Invocation::Help)
        );
        // A flag expecting a value does not swallow --help.
        assert_eq!(parse(&["--token", "--help"]).ok(), Some(Invocation::Help));
        assert_eq!(
            parse(&["--help", "-V"]).ok(),
            Some(Invocation::Help),
            "first one wins"
        );
    }

    #[test]
    fn help_lists_every_flag_and_stays_short() {
        let help = help_text();
        for setting in Setting::ALL {
            // Every flag is followed by its value name or by padding.
            let flag = format!("--{} ", setting.name());
            assert!(help.contains(&flag), "{flag}");
        }
        for needle in [
            "pumphub [OPTIONS]",
            "pumphub --check-config FILE",
            "PUMPHUB_TOKEN",
            "PUMPHUB_PUBLISH_KEY",
            "--config FILE",
            "[10000]",
        ] {
            assert!(help.contains(needle), "{needle}");
        }
        assert!(help.lines().count() <= 60, "{} lines", help.lines().count());
        assert!(
            help.lines().all(|line| line.len() <= 100),
            "a line is too wide"
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = Config {
            token: Some("s3cret".into()),
            publish_key: Some("k3y".into()),
            ..Config::default()
        };
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("k3y"),
            "{debug}"
        );
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn validate_catches_bad_values_set_in_code() {
        let config = Config {
            queue_size: 0,
            ..Config::default()
        };
        match config.validate() {
            Err(error @ ConfigError::OutOfRange { origin: None, .. }) => {
                assert_eq!(
                    error.to_string(),
                    "`queue-size` is out of range: must be at least 1, got 0"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_messages_are_lowercase_without_a_trailing_period() {
        let file = TempToml::new("bogus = 1\n");
        let errors = [
            error(&["--bogus"]),
            error(&["stray"]),
            error(&["--queue-size"]),
            error(&["--queue-size", "0"]),
            error(&["--config", file.path()]),
        ];
        for error in errors {
            let message = error.to_string();
            let first = message.chars().next().expect("non-empty message");
            assert!(
                !first.is_uppercase() && !message.ends_with('.'),
                "{message}"
            );
        }
    }
}
