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
    MaxHandshakesPerIp,
    HttpMaxConnectionsPerIp,
    MaxMessageSize,
    PingIntervalMs,
    PongTimeoutMs,
    QueueSize,
    QueueBytes,
    HistorySize,
    HistoryBytes,
    MaxChannels,
    ChannelIdleMs,
    RateLimit,
    Token,
    TokenSecret,
    TokenAllowNoExp,
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
    Redis,
    RedisPrefix,
}

impl Setting {
    /// Every setting, in the order of the `Config` fields.
    pub(super) const ALL: [Setting; 32] = [
        Setting::Ws,
        Setting::Http,
        Setting::MaxConnections,
        Setting::MaxConnectionsPerIp,
        Setting::MaxHandshakesPerIp,
        Setting::HttpMaxConnectionsPerIp,
        Setting::MaxMessageSize,
        Setting::PingIntervalMs,
        Setting::PongTimeoutMs,
        Setting::QueueSize,
        Setting::QueueBytes,
        Setting::HistorySize,
        Setting::HistoryBytes,
        Setting::MaxChannels,
        Setting::ChannelIdleMs,
        Setting::RateLimit,
        Setting::Token,
        Setting::TokenSecret,
        Setting::TokenAllowNoExp,
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
        Setting::Redis,
        Setting::RedisPrefix,
    ];

    /// The flag without `--`, which is also the config-file key.
    pub(super) fn name(self) -> &'static str {
        match self {
            Setting::Ws => "ws",
            Setting::Http => "http",
            Setting::MaxConnections => "max-connections",
            Setting::MaxConnectionsPerIp => "max-connections-per-ip",
            Setting::MaxHandshakesPerIp => "max-handshakes-per-ip",
            Setting::HttpMaxConnectionsPerIp => "http-max-connections-per-ip",
            Setting::MaxMessageSize => "max-message-size",
            Setting::PingIntervalMs => "ping-interval-ms",
            Setting::PongTimeoutMs => "pong-timeout-ms",
            Setting::QueueSize => "queue-size",
            Setting::QueueBytes => "queue-bytes",
            Setting::HistorySize => "history-size",
            Setting::HistoryBytes => "history-bytes",
            Setting::MaxChannels => "max-channels",
            Setting::ChannelIdleMs => "channel-idle-ms",
            Setting::RateLimit => "rate-limit",
            Setting::Token => "token",
            Setting::TokenSecret => "token-secret",
            Setting::TokenAllowNoExp => "token-allow-no-exp",
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
            Setting::Redis => "redis",
            Setting::RedisPrefix => "redis-prefix",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Setting> {
        Setting::ALL
            .into_iter()
            .find(|setting| setting.name() == name)
    }

    /// False only for the bare flags `--allow-client-publish` and
    /// `--token-allow-no-exp`.
    pub(super) fn takes_value(self) -> bool {
        !matches!(self, Setting::AllowClientPublish | Setting::TokenAllowNoExp)
    }

    /// True for `--allowed-origin` and `--token-secret`.
    pub(super) fn repeatable(self) -> bool {
        matches!(self, Setting::AllowedOrigin | Setting::TokenSecret)
    }
}

/// The setting probably meant by a misspelt name: `max_connections` and
/// `Max-Connections` both suggest `max-connections`.
pub(super) fn suggest(name: &str) -> Option<&'static str> {
    Setting::from_name(&name.replace('_', "-").to_ascii_lowercase()).map(Setting::name)
}
