//! Validation: the rules every value must meet, run once on the merged
//! config by [`Config::validate`](crate::config::Config::validate).
//!
//! Part of the configuration (see `config.rs`). Ranges, address and origin
//! forms, the `--stdin` channel name and the secrets' characters are all
//! checked here, whichever source a value came from; the error names that
//! source.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::time::Duration;

use super::setting::Setting;
use super::{ConfigError, Origin, MAX_MILLIS};

/// Longest `--stdin` channel name, as in the protocol's channel-name rule.
const MAX_CHANNEL_LEN: usize = 128;

/// Shortest `--token-secret`, in bytes; the same rule as
/// `auth::jwt::MIN_SECRET_LEN` (config sits below auth, so it cannot
/// import it; a test in auth checks they agree).
pub(crate) const MIN_TOKEN_SECRET_LEN: usize = 32;

/// Most `--token-secret`s at once; the same as `auth::jwt::MAX_SECRETS`.
pub(crate) const MAX_TOKEN_SECRETS: usize = 8;

/// The checks [`Config::check`](crate::config::Config::check) runs on the
/// merged config.
pub(super) struct Rules<'a> {
    pub(super) origins: &'a HashMap<Setting, Origin>,
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

    pub(super) fn at_least(
        &self,
        setting: Setting,
        value: usize,
        min: u64,
    ) -> Result<(), ConfigError> {
        let value = u64::try_from(value).unwrap_or(u64::MAX);
        self.in_range(setting, value, min, u64::MAX)
    }

    pub(super) fn millis(
        &self,
        setting: Setting,
        value: Duration,
        min: u64,
    ) -> Result<(), ConfigError> {
        let millis = u64::try_from(value.as_millis()).unwrap_or(u64::MAX);
        self.in_range(setting, millis, min, MAX_MILLIS)
    }

    /// `host:port` that the system can resolve; nothing is bound.
    pub(super) fn address(&self, setting: Setting, address: &str) -> Result<(), ConfigError> {
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
    pub(super) fn secret(&self, setting: Setting, secret: Option<&str>) -> Result<(), ConfigError> {
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

    /// Signed-token secrets: HS256 wants a key of at least 256 bits
    /// (RFC 7518 section 3.2), so at least [`MIN_TOKEN_SECRET_LEN`] bytes,
    /// and printable ASCII so they survive every source. Never echoed.
    pub(super) fn token_secrets(&self, secrets: &[String]) -> Result<(), ConfigError> {
        let setting = Setting::TokenSecret;
        if secrets.len() > MAX_TOKEN_SECRETS {
            return Err(self.invalid(
                setting,
                "",
                &format!(
                    "{} secrets given; at most {MAX_TOKEN_SECRETS} (two cover a rotation)",
                    secrets.len()
                ),
            ));
        }
        for (i, secret) in secrets.iter().enumerate() {
            let which = if secrets.len() == 1 {
                "the secret".to_owned()
            } else {
                format!("secret #{} of {}", i + 1, secrets.len())
            };
            let problem = if secret.is_empty() {
                "is empty (a stray comma?)"
            } else if !secret.bytes().all(|byte| byte.is_ascii_graphic()) {
                "must be printable ASCII without spaces"
            } else if secret.len() < MIN_TOKEN_SECRET_LEN {
                "is shorter than 32 bytes; HS256 needs 256 bits (`openssl rand -hex 32` makes one)"
            } else {
                continue;
            };
            return Err(self.invalid(setting, "", &format!("{which} {problem}")));
        }
        Ok(())
    }

    pub(super) fn origin(&self, origin: &str) -> Result<(), ConfigError> {
        check_origin_form(origin)
            .map_err(|reason| self.invalid(Setting::AllowedOrigin, origin, reason))
    }

    /// A URL the Redis client accepts. The value is not echoed: it may hold
    /// a password.
    pub(super) fn redis_url(&self, url: &str) -> Result<(), ConfigError> {
        #[cfg(feature = "redis")]
        {
            use redis::IntoConnectionInfo;
            if url.starts_with("rediss:") {
                return Err(self.invalid(
                    Setting::Redis,
                    "",
                    "TLS (rediss://) is not supported; reach Redis over a private network or a TLS tunnel",
                ));
            }
            url.into_connection_info().map(|_| ()).map_err(|e| {
                let reason = format!(
                    "not a Redis URL ({}); expected redis://[user:password@]host[:port][/db]",
                    e.detail().unwrap_or(e.category())
                );
                self.invalid(Setting::Redis, "", &reason)
            })
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = url;
            Err(self.invalid(
                Setting::Redis,
                "",
                "this build has no Redis support (cargo feature `redis`)",
            ))
        }
    }

    /// The prefix becomes a hash tag `{prefix}`: no braces, nothing odd.
    pub(super) fn redis_prefix(&self, prefix: &str) -> Result<(), ConfigError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
        if (1..=64).contains(&prefix.len()) && prefix.chars().all(allowed) {
            return Ok(());
        }
        Err(self.invalid(
            Setting::RedisPrefix,
            prefix,
            "a prefix is 1 to 64 of A-Z a-z 0-9 _ . : -",
        ))
    }

    pub(super) fn channel(&self, channel: &str) -> Result<(), ConfigError> {
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
