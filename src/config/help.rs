//! The `--help` and `--version` texts.
//!
//! Part of the configuration (see `config.rs`). The help lists every flag
//! with its default, taken from [`Config::default`], so it cannot drift;
//! it is long but holds no logic, so it does not crowd the parser.

use std::time::Duration;

use super::Config;

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
            ("--max-inflight N", "requests a client may pipeline (at most queue-size/2)", defaults.max_inflight.to_string()),
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
    use crate::config::setting::Setting;

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
}
