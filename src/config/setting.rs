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
    TrustedProxy,
    Stdin,
    LogLevel,
    LogFormat,
    LogTimestamps,
    ShutdownGraceMs,
    MaxSubscriptions,
    HandshakeTimeoutMs,
    AuthTimeoutMs,
    WriteTimeoutMs,
    HttpWorkers,
    MaxInflight,
    Redis,
    RedisPrefix,
}

impl Setting {
    /// Every setting, in the order of the `Config` fields.
    pub(super) const ALL: [Setting; 36] = [
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
        Setting::TrustedProxy,
        Setting::Stdin,
        Setting::LogLevel,
        Setting::LogFormat,
        Setting::LogTimestamps,
        Setting::ShutdownGraceMs,
        Setting::MaxSubscriptions,
        Setting::HandshakeTimeoutMs,
        Setting::AuthTimeoutMs,
        Setting::WriteTimeoutMs,
        Setting::HttpWorkers,
        Setting::MaxInflight,
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
            Setting::TrustedProxy => "trusted-proxy",
            Setting::Stdin => "stdin",
            Setting::LogLevel => "log-level",
            Setting::LogFormat => "log-format",
            Setting::LogTimestamps => "log-timestamps",
            Setting::ShutdownGraceMs => "shutdown-grace-ms",
            Setting::MaxSubscriptions => "max-subscriptions",
            Setting::HandshakeTimeoutMs => "handshake-timeout-ms",
            Setting::AuthTimeoutMs => "auth-timeout-ms",
            Setting::WriteTimeoutMs => "write-timeout-ms",
            Setting::HttpWorkers => "http-workers",
            Setting::MaxInflight => "max-inflight",
            Setting::Redis => "redis",
            Setting::RedisPrefix => "redis-prefix",
        }
    }

    /// The environment variable that sets it: `PUMPHUB_` and the name in
    /// upper case with `_` for `-` (`PUMPHUB_MAX_CONNECTIONS`). Spelled out
    /// so that each can be found by searching for it.
    pub(super) fn env_var(self) -> &'static str {
        match self {
            Setting::Ws => "PUMPHUB_WS",
            Setting::Http => "PUMPHUB_HTTP",
            Setting::MaxConnections => "PUMPHUB_MAX_CONNECTIONS",
            Setting::MaxConnectionsPerIp => "PUMPHUB_MAX_CONNECTIONS_PER_IP",
            Setting::MaxHandshakesPerIp => "PUMPHUB_MAX_HANDSHAKES_PER_IP",
            Setting::HttpMaxConnectionsPerIp => "PUMPHUB_HTTP_MAX_CONNECTIONS_PER_IP",
            Setting::MaxMessageSize => "PUMPHUB_MAX_MESSAGE_SIZE",
            Setting::PingIntervalMs => "PUMPHUB_PING_INTERVAL_MS",
            Setting::PongTimeoutMs => "PUMPHUB_PONG_TIMEOUT_MS",
            Setting::QueueSize => "PUMPHUB_QUEUE_SIZE",
            Setting::QueueBytes => "PUMPHUB_QUEUE_BYTES",
            Setting::HistorySize => "PUMPHUB_HISTORY_SIZE",
            Setting::HistoryBytes => "PUMPHUB_HISTORY_BYTES",
            Setting::MaxChannels => "PUMPHUB_MAX_CHANNELS",
            Setting::ChannelIdleMs => "PUMPHUB_CHANNEL_IDLE_MS",
            Setting::RateLimit => "PUMPHUB_RATE_LIMIT",
            Setting::Token => "PUMPHUB_TOKEN",
            Setting::TokenSecret => "PUMPHUB_TOKEN_SECRET",
            Setting::TokenAllowNoExp => "PUMPHUB_TOKEN_ALLOW_NO_EXP",
            Setting::PublishKey => "PUMPHUB_PUBLISH_KEY",
            Setting::AllowClientPublish => "PUMPHUB_ALLOW_CLIENT_PUBLISH",
            Setting::AllowedOrigin => "PUMPHUB_ALLOWED_ORIGIN",
            Setting::TrustedProxy => "PUMPHUB_TRUSTED_PROXY",
            Setting::Stdin => "PUMPHUB_STDIN",
            Setting::LogLevel => "PUMPHUB_LOG_LEVEL",
            Setting::LogFormat => "PUMPHUB_LOG_FORMAT",
            Setting::LogTimestamps => "PUMPHUB_LOG_TIMESTAMPS",
            Setting::ShutdownGraceMs => "PUMPHUB_SHUTDOWN_GRACE_MS",
            Setting::MaxSubscriptions => "PUMPHUB_MAX_SUBSCRIPTIONS",
            Setting::HandshakeTimeoutMs => "PUMPHUB_HANDSHAKE_TIMEOUT_MS",
            Setting::AuthTimeoutMs => "PUMPHUB_AUTH_TIMEOUT_MS",
            Setting::WriteTimeoutMs => "PUMPHUB_WRITE_TIMEOUT_MS",
            Setting::HttpWorkers => "PUMPHUB_HTTP_WORKERS",
            Setting::MaxInflight => "PUMPHUB_MAX_INFLIGHT",
            Setting::Redis => "PUMPHUB_REDIS",
            Setting::RedisPrefix => "PUMPHUB_REDIS_PREFIX",
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

    /// True for the lists: `--allowed-origin`, `--trusted-proxy` and
    /// `--token-secret`.
    pub(super) fn repeatable(self) -> bool {
        matches!(
            self,
            Setting::AllowedOrigin | Setting::TrustedProxy | Setting::TokenSecret
        )
    }
}

/// The setting probably meant by a misspelt name: `max_connections` and
/// `Max-Connections` both suggest `max-connections`.
pub(super) fn suggest(name: &str) -> Option<&'static str> {
    Setting::from_name(&name.replace('_', "-").to_ascii_lowercase()).map(Setting::name)
}

#[cfg(test)]
mod tests {
    use super::Setting;

    #[test]
    fn every_env_var_is_pumphub_and_the_flag_name() {
        for setting in Setting::ALL {
            let expected = format!(
                "PUMPHUB_{}",
                setting.name().to_ascii_uppercase().replace('-', "_")
            );
            assert_eq!(setting.env_var(), expected);
        }
    }
}
