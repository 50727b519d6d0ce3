//! The `--help` and `--version` texts.
//!
//! Part of the configuration (see `config.rs`). The help lists every flag
//! with its default, taken from [`Config::default`], so it cannot drift;
//! it is long but holds no logic, so it does not crowd the parser.

use std::time::Duration;

use super::{Config, DEFAULT_MAX_CONNECTIONS, LISTENER_OFF};

/// The `--version` text: `pumphub` and the crate version.
pub fn version_text() -> String {
    format!("pumphub {}", env!("CARGO_PKG_VERSION"))
}

/// The `--help` text: usage, precedence, and every flag grouped by purpose
/// with its default (taken from [`Config::default`], so it cannot drift).
pub fn help_text() -> String {
    let defaults = Config::default();
    let ms = |duration: Duration| duration.as_millis().to_string();
    let listener =
        |address: &Option<String>| address.clone().unwrap_or_else(|| LISTENER_OFF.to_owned());
    // One row per flag: (flag, what it does, default). Kept unformatted so
    // each row stays on one line and reads like the help it produces.
    #[rustfmt::skip]
    let groups = [
        ("Listeners", vec![
            ("--ws ADDR|off", "WebSocket listener (GET /ws)", listener(&defaults.ws_addr)),
            ("--http ADDR|off", "HTTP: /health /metrics /status /publish /history /", listener(&defaults.http_addr)),
        ]),
        ("Limits", vec![
            ("--max-connections N", "WebSocket clients; more get 503", max_connections_default(&defaults)),
            ("--max-connections-per-ip N", "clients per remote IP; more get 429", defaults.max_connections_per_ip.to_string()),
            ("--max-handshakes-per-ip N", "handshakes in progress per remote IP; more get 429", defaults.max_handshakes_per_ip.to_string()),
            ("--http-max-connections-per-ip N", "HTTP connections per remote IP; more get 429", defaults.http_max_connections_per_ip.to_string()),
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
            ("--queue-bytes BYTES", "the same queue in bytes (at least 65536)", defaults.queue_bytes.to_string()),
            ("--history-size N", "events kept per channel for replay (0 = off)", defaults.history_size.to_string()),
            ("--history-bytes BYTES", "memory of all histories; oldest events go first", defaults.history_bytes.to_string()),
            ("--max-channels N", "channels kept; the longest unused goes first", defaults.max_channels.to_string()),
            ("--channel-idle-ms N", "forget a channel unused this long (0 = never)", ms(defaults.channel_idle)),
            ("--redis URL", "cluster: share seq, history, epoch with hubs on this Redis", "off".to_owned()),
            ("--redis-prefix NAME", "cluster: key prefix in Redis, one hub per prefix", defaults.redis_prefix.clone()),
            ("--write-timeout-ms N", "longest one socket write may block", ms(defaults.write_timeout)),
        ]),
        ("Security", vec![
            ("--token TOKEN", "clients must present it; env PUMPHUB_TOKEN", "none".to_owned()),
            ("--token-secret SECRET", "JWT HS256 key; repeat or a,b; env PUMPHUB_TOKEN_SECRET", "none".to_owned()),
            ("--token-allow-no-exp", "accept signed tokens without exp", "off".to_owned()),
            ("--publish-key KEY", "Bearer key: /publish /history /status; env PUMPHUB_PUBLISH_KEY", "none".to_owned()),
            ("--allow-client-publish", "let WebSocket clients send publish", "off".to_owned()),
            ("--allowed-origin ORIGIN", "repeatable, scheme://host[:port]; others get 403", "any".to_owned()),
            ("--trusted-proxy ADDR", "believe X-Forwarded-For from these; IPs or CIDRs, a,b", "none".to_owned()),
            ("--auth-timeout-ms N", "time to send auth when a token is required", ms(defaults.auth_timeout)),
        ]),
        ("Input", vec![
            ("--stdin CHANNEL", "publish each stdin line to CHANNEL", "off".to_owned()),
        ]),
        ("Operations", vec![
            ("--log-level LEVEL", "off, error, warn, info, debug or trace", "info".to_owned()),
            ("--log-format FORMAT", "text or json (one object per line)", "text".to_owned()),
            ("--log-timestamps WHEN", "auto (on unless under systemd), on or off", "auto".to_owned()),
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
         Settings come from flags, then the environment, then the --config file\n\
         (or PUMPHUB_CONFIG), then defaults. Variables are PUMPHUB_ and the flag\n\
         name (PUMPHUB_MAX_CONNECTIONS=10, PUMPHUB_TOKEN, PUMPHUB_TOKEN_SECRET,\n\
         PUMPHUB_PUBLISH_KEY, PUMPHUB_WS=off). File keys are flag names without\n\
         `--` (max-connections = 10, allowed-origin = [\"https://a.example\"]).\n\
         Durations are in milliseconds. Exit status: 0 ok, 1 runtime failure\n\
         (e.g. a port in use), 2 bad flags or config.\n\n\
         Memory: an idle client costs about 29 KiB (the touched pages of two thread\n\
         stacks, whose sizes are fixed at build time; a 1 KiB read buffer; its queue\n\
         allocates only for frames that wait). --max-connections, --queue-size,\n\
         --max-message-size and --history-size bound it: see docs/operations.md.\n",
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

/// `7423 = what fits here, max 10000` when the machine holds less than
/// [`DEFAULT_MAX_CONNECTIONS`], else `10000`: the help says the default was
/// derived, and from what.
fn max_connections_default(defaults: &Config) -> String {
    if defaults.max_connections < DEFAULT_MAX_CONNECTIONS {
        format!(
            "{} = what fits here, max {DEFAULT_MAX_CONNECTIONS}",
            defaults.max_connections
        )
    } else {
        defaults.max_connections.to_string()
    }
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
            "PUMPHUB_TOKEN_SECRET",
            "--config FILE",
            "docs/operations.md",
        ] {
            assert!(help.contains(needle), "{needle}");
        }
        let defaults = Config::default();
        let max_connections = if defaults.max_connections < DEFAULT_MAX_CONNECTIONS {
            format!("[{} = what fits here, max 10000]", defaults.max_connections)
        } else {
            "[10000]".to_owned()
        };
        assert!(help.contains(&max_connections), "{max_connections}");
        // One screen on a tall terminal: grouped and explained beats cut short.
        assert!(help.lines().count() <= 80, "{} lines", help.lines().count());
        assert!(
            help.lines().all(|line| line.len() <= 100),
            "a line is too wide"
        );
    }
}
