//! The list of settings: each one is a flag `--name`, a config-file key
//! `name` and one [`Config`](crate::config::Config) field.
//!
//! Part of the configuration (see `config.rs`). The command line, the file
//! and validation all speak of settings, so the list lives in a file of its
//! own rather than in any one of them.

/// One setting: a flag `--name`, a config-file key `name`, one `Config` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Setting {
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
    MaxInflight,
}

impl Setting {
    /// Every setting, in the order of the `Config` fields.
    pub(super) const ALL: [Setting; 23] = [
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
        Setting::MaxInflight,
    ];

    /// The flag without `--`, which is also the config-file key.
    pub(super) fn name(self) -> &'static str {
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
            Setting::MaxInflight => "max-inflight",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Setting> {
        Setting::ALL
            .into_iter()
            .find(|setting| setting.name() == name)
    }

    /// False only for the bare flag `--allow-client-publish`.
    pub(super) fn takes_value(self) -> bool {
        self != Setting::AllowClientPublish
    }

    /// True only for `--allowed-origin`.
    pub(super) fn repeatable(self) -> bool {
        self == Setting::AllowedOrigin
    }
}

/// The setting probably meant by a misspelt name: `max_connections` and
/// `Max-Connections` both suggest `max-connections`.
pub(super) fn suggest(name: &str) -> Option<&'static str> {
    Setting::from_name(&name.replace('_', "-").to_ascii_lowercase()).map(Setting::name)
}
