//! The claims of a signed token that pumphub reads, their types, and the
//! channel patterns in `channels` and `publish`.
//!
//! Pure data: no threads, no I/O. Parsed on a connection thread (handshake
//! or read pump) by [`JwtVerifier`](super::jwt::JwtVerifier) once the
//! signature is good; the resulting [`Claims`](super::jwt::Claims) is then asked, on the same
//! thread, whether each subscribe or publish is allowed.
//!
//! Strict on types: a claim pumphub reads must have the type RFC 7519 and
//! docs/security.md give it, and `null` counts as a wrong type, not as
//! absent, so a backend's mistake is refused loudly instead of silently
//! granting or denying. Claims pumphub does not read are ignored, as the
//! RFC requires. A claim given twice is refused (serde reports duplicate
//! fields), so no two parsers can disagree about which one counts.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::protocol::{is_valid_channel_name, truncate, MAX_CHANNEL_NAME_LEN};

/// Which channels a token grants, from its `channels` or `publish` claim.
///
/// Each entry is a channel name (`news`), or a prefix pattern: a name
/// prefix followed by one `*` at the end (`user.42.*` grants every channel
/// whose name starts with `user.42.`, but not `user.42` itself). `*` alone
/// grants every channel. Matching is by plain prefix, so `user.42*` would
/// also grant `user.420`: end a prefix with a separator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelGrants {
    /// Sorted and deduplicated, for a binary search.
    exact: Vec<String>,
    /// Without the trailing `*`; the empty prefix grants everything.
    prefixes: Vec<String>,
}

impl ChannelGrants {
    /// No channel at all: what an absent claim grants.
    pub fn none() -> Self {
        ChannelGrants::default()
    }

    /// Parse the entries of a claim; `Err` names the first bad entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut grants = ChannelGrants::default();
        for entry in entries {
            let entry = entry.as_ref();
            match entry.strip_suffix('*') {
                Some(prefix) if is_valid_prefix(prefix) => grants.prefixes.push(prefix.to_owned()),
                None if is_valid_channel_name(entry) => grants.exact.push(entry.to_owned()),
                _ => {
                    return Err(format!(
                        "`{}` is neither a channel name nor a prefix pattern like `user.42.*`",
                        truncate(entry, 64)
                    ))
                }
            }
        }
        grants.exact.sort_unstable();
        grants.exact.dedup();
        grants.prefixes.sort_unstable();
        grants.prefixes.dedup();
        Ok(grants)
    }

    /// True if `channel` is granted.
    pub fn allows(&self, channel: &str) -> bool {
        self.exact
            .binary_search_by(|granted| granted.as_str().cmp(channel))
            .is_ok()
            || self
                .prefixes
                .iter()
                .any(|prefix| channel.starts_with(prefix.as_str()))
    }

    /// True if no channel is granted.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// A prefix before `*`: empty (everything), or characters a channel name
/// may hold, short enough that a longer name could still match.
fn is_valid_prefix(prefix: &str) -> bool {
    prefix.is_empty() || (prefix.len() < MAX_CHANNEL_NAME_LEN && is_valid_channel_name(prefix))
}

/// A NumericDate (RFC 7519 section 2): seconds since the Unix epoch, an
/// integer or a fraction, never negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NumericDate(pub(crate) Duration);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let number = serde_json::Number::deserialize(deserializer)?;
        if let Some(seconds) = number.as_u64() {
            return Ok(NumericDate(Duration::from_secs(seconds)));
        }
        // Negative integers and fractions end up here; `try_from_secs_f64`
        // refuses negatives and values past `Duration::MAX` instead of
        // panicking like `from_secs_f64`.
        number
            .as_f64()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
            .map(NumericDate)
            .ok_or_else(|| {
                D::Error::custom(format!("{number} is not a time in seconds since 1970"))
            })
    }
}

/// The claims as they arrive, before the time checks. Every field is
/// optional, but `null` is refused: see the module doc.
#[derive(Debug, Deserialize)]
pub(crate) struct RawClaims {
    #[serde(default, deserialize_with = "present")]
    pub(crate) sub: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) exp: Option<NumericDate>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) nbf: Option<NumericDate>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) iat: Option<NumericDate>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) channels: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) publish: Option<Vec<String>>,
}

/// A field that is there must hold a `T`; `null` is not "absent".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_prefix_patterns() {
        let grants = ChannelGrants::parse(&["news", "user.42.*", "news", "room:*"]).unwrap();
        assert!(grants.allows("news"));
        assert!(!grants.allows("news2"));
        assert!(!grants.allows("new"));
        assert!(grants.allows("user.42.inbox"));
        assert!(grants.allows("user.42.a.b"));
        assert!(!grants.allows("user.42"));
        assert!(!grants.allows("user.420"));
        assert!(!grants.allows("user.43.inbox"));
        assert!(grants.allows("room:1"));
        assert!(!grants.is_empty());
    }

    #[test]
    fn a_lone_star_grants_everything_and_nothing_grants_nothing() {
        let all = ChannelGrants::parse(&["*"]).unwrap();
        assert!(all.allows("anything"));
        assert!(all.allows("a"));
        let none = ChannelGrants::parse::<&str>(&[]).unwrap();
        assert!(none.is_empty());
        assert!(!none.allows("news"));
        assert_eq!(ChannelGrants::none(), none);
    }

    #[test]
    fn entries_that_cannot_be_channels_are_refused() {
        let long = "x".repeat(MAX_CHANNEL_NAME_LEN + 1);
        let long_prefix = format!("{}*", "x".repeat(MAX_CHANNEL_NAME_LEN));
        for bad in [
            "",
            "has space",
            "a*b",
            "**",
            "*.x",
            "é",
            long.as_str(),
            long_prefix.as_str(),
        ] {
            let error = ChannelGrants::parse(&[bad]).unwrap_err();
            assert!(error.contains("neither a channel name"), "{bad:?}: {error}");
        }
        // The longest name is a name; the longest useful prefix is one shorter.
        let longest = "x".repeat(MAX_CHANNEL_NAME_LEN);
        assert!(ChannelGrants::parse(&[longest.as_str()]).is_ok());
        let prefix = format!("{}*", "x".repeat(MAX_CHANNEL_NAME_LEN - 1));
        assert!(ChannelGrants::parse(&[prefix.as_str()])
            .unwrap()
            .allows(&longest));
    }

    #[test]
    fn numeric_dates_take_integers_and_fractions_but_not_negatives() {
        let date = |json: &str| serde_json::from_str::<NumericDate>(json);
        assert_eq!(
            date("1700000000").unwrap().0,
            Duration::from_secs(1_700_000_000)
        );
        assert_eq!(date("1.5").unwrap().0, Duration::from_millis(1500));
        assert_eq!(date("0").unwrap().0, Duration::ZERO);
        for bad in [
            "-1",
            "-0.5",
            "1e300",
            "\"1700000000\"",
            "null",
            "true",
            "[1]",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn null_is_a_wrong_type_not_an_absent_claim() {
        let claims = |json: &str| serde_json::from_str::<RawClaims>(json);
        assert!(claims("{}").is_ok());
        assert!(claims(r#"{"sub":null}"#).is_err());
        assert!(claims(r#"{"exp":null}"#).is_err());
        assert!(claims(r#"{"channels":null}"#).is_err());
        assert!(claims(r#"{"channels":["a",1]}"#).is_err());
        assert!(claims(r#"{"channels":"a"}"#).is_err());
        assert!(claims(r#"{"sub":42}"#).is_err());
        assert!(claims(r#"{"sub":"a","sub":"b"}"#).is_err());
        let parsed = claims(r#"{"sub":"u","aud":["x"],"extra":{"deep":[1,2]}}"#).unwrap();
        assert_eq!(parsed.sub.as_deref(), Some("u"));
    }
}
