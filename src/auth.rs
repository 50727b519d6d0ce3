//! Who may connect, subscribe and publish: the [`Authorizer`] trait, and
//! [`ConfigAuthorizer`], the implementation the binary uses (`--token`,
//! `--allow-client-publish`).
//!
//! An embedding application can pass its own implementation to
//! `Hub::start_with_authorizer`. It is called from connection threads (the
//! handshake and each read pump), concurrently, so it must be `Send + Sync`
//! and should answer quickly: a slow answer delays only that client. A
//! panic in it closes only that client (Close 1011) and is logged.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pumphub::ConnectionInfo;
//! use pumphub::{Authorizer, Config, Hub};
//!
//! /// Readers may follow anything but `admin.*`; only `chat.*` takes
//! /// publishes from clients; any of the keys in the list may connect.
//! struct Rooms {
//!     keys: Vec<String>,
//! }
//!
//! impl Authorizer for Rooms {
//!     fn requires_token(&self) -> bool {
//!         true
//!     }
//!     fn check_token(&self, token: &str) -> bool {
//!         self.keys
//!             .iter()
//!             .any(|k| pumphub::auth::constant_time_eq(k.as_bytes(), token.as_bytes()))
//!     }
//!     fn may_subscribe(&self, _: &ConnectionInfo, channel: &str) -> bool {
//!         !channel.starts_with("admin.")
//!     }
//!     fn may_publish(&self, _: &ConnectionInfo, channel: &str) -> bool {
//!         channel.starts_with("chat.")
//!     }
//! }
//!
//! let rooms = Rooms { keys: vec!["k1".into(), "k2".into()] };
//! let hub = Hub::start_with_authorizer(Config::default(), Arc::new(rooms))?;
//! # hub.shutdown();
//! # Ok::<(), pumphub::Error>(())
//! ```

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::config::Config;
use crate::peer::{ConnectionId, ConnectionInfo};

pub mod claims;
pub mod jwt;
mod jwt_authorizer;
pub mod refusal;

pub use claims::ChannelGrants;
pub use jwt::{Claims, JwtVerifier, SecretError};
pub use jwt_authorizer::JwtAuthorizer;
pub use refusal::{Refusal, RefusalReason};

/// What an accepted token says about its holder, as far as the hub needs
/// to know: who it is (shown in `/status` and the logs) and until when the
/// token holds (the hub closes the connection then, with 4001, unless the
/// client sends a fresh token in an `auth` message first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Who the holder is, such as a signed token's `sub`.
    pub subject: Option<String>,
    /// When the token stops being good; `None` for never.
    pub valid_until: Option<SystemTime>,
}

/// Decides authentication and per-channel permissions.
pub trait Authorizer: Send + Sync + 'static {
    /// True if clients must present a token (`?token=`, an
    /// `Authorization: Bearer` header, or an `auth` message).
    fn requires_token(&self) -> bool;

    /// True if `token` is acceptable.
    fn check_token(&self, token: &str) -> bool;

    /// True if `connection` may proceed with `token` (from `?token=`, the
    /// `Authorization: Bearer` header, or an `auth` message; never empty).
    /// Defaults to [`check_token`](Self::check_token).
    ///
    /// Override it to remember who the connection is, keyed by
    /// `connection.id`, so that [`may_subscribe`](Self::may_subscribe) and
    /// [`may_publish`](Self::may_publish) can decide per user; forget it in
    /// [`disconnected`](Self::disconnected). It may be called more than once
    /// per connection (a token in the URL and in the header, repeated
    /// `auth` messages).
    fn authenticate(&self, connection: &ConnectionInfo, token: &str) -> bool {
        let _ = connection;
        self.check_token(token)
    }

    /// What the hub calls for each token it is given: like
    /// [`authenticate`](Self::authenticate) (the default calls it), but an
    /// accepted token can say who its holder is and until when it holds
    /// ([`Identity`]), and a refused one why ([`Refusal`]; the hub logs
    /// it and counts it in `pumphub_token_refusals_total`).
    ///
    /// Called again for a fresh token on a connection that is already
    /// authenticated (a refresh, with an `auth` message); the connection
    /// then takes the new identity, or keeps the old one if this refuses.
    fn verify_token(&self, connection: &ConnectionInfo, token: &str) -> Result<Identity, Refusal> {
        if self.authenticate(connection, token) {
            Ok(Identity::default())
        } else {
            Err(Refusal::new(
                RefusalReason::Invalid,
                "the authorizer refused the token",
            ))
        }
    }

    /// `connection` has ended. Called exactly once for every connection
    /// that passed the handshake's origin and query checks (so for every
    /// one `authenticate` may have seen, refused with 401 or not), after it
    /// was closed. Not called if a panic ends the connection's thread while
    /// it runs the authorizer. Defaults to nothing.
    fn disconnected(&self, connection: &ConnectionInfo) {
        let _ = connection;
    }

    /// True if the connection may follow `channel`. Defaults to yes.
    fn may_subscribe(&self, connection: &ConnectionInfo, channel: &str) -> bool {
        let _ = (connection, channel);
        true
    }

    /// True if the connection may `publish` to `channel`. Defaults to no:
    /// client publishing is opt-in.
    fn may_publish(&self, connection: &ConnectionInfo, channel: &str) -> bool {
        let _ = (connection, channel);
        false
    }
}

/// The first of `channels` that `connection` may not subscribe to, if any.
/// One rule for a `subscribe` request and for `?channels=` on the URL.
pub(crate) fn refused_channel<'a>(
    authorizer: &dyn Authorizer,
    connection: &ConnectionInfo,
    channels: &'a [String],
) -> Option<&'a str> {
    channels
        .iter()
        .map(String::as_str)
        .find(|channel| !authorizer.may_subscribe(connection, channel))
}

/// The binary's authorizer: a shared token, signed tokens, or both, and
/// client publishing on or off.
///
/// - No `--token` and no `--token-secret`: anyone may connect and
///   subscribe to anything.
/// - `--token`: a client that presents it may subscribe to anything.
/// - `--token-secret`: a client that presents a signed token may do what
///   its claims say (see [`JwtAuthorizer`]).
/// - Both: either works. A token with two dots in it is taken for a
///   signed token unless it is the shared one.
///
/// `--allow-client-publish` switches client publishing on at all; a
/// signed token's `publish` claim then narrows it for its holder.
#[derive(Debug, Default)]
pub struct ConfigAuthorizer {
    token: Option<String>,
    allow_client_publish: bool,
    signed: Option<JwtAuthorizer>,
    /// With both kinds of token: the connections whose last good token
    /// was the shared one. Everyone else is asked of `signed`, which knows
    /// nothing of a connection that showed it no good token, so a mistake
    /// here refuses rather than grants.
    shared_holders: Mutex<HashSet<ConnectionId>>,
}

impl ConfigAuthorizer {
    /// From `--token` and `--allow-client-publish`, without signed tokens.
    pub fn new(token: Option<String>, allow_client_publish: bool) -> Self {
        ConfigAuthorizer {
            token,
            allow_client_publish,
            signed: None,
            shared_holders: Mutex::default(),
        }
    }

    /// From `--token`, `--token-secret`, `--token-allow-no-exp` and
    /// `--allow-client-publish`.
    ///
    /// # Errors
    /// The secrets cannot be used (too short, too many); `Config::validate`
    /// reports the same with the setting's name.
    pub fn from_config(config: &Config) -> Result<Self, SecretError> {
        let mut authorizer =
            ConfigAuthorizer::new(config.token.clone(), config.allow_client_publish);
        if !config.token_secrets.is_empty() {
            let verifier =
                JwtVerifier::new(&config.token_secrets)?.allow_no_exp(config.token_allow_no_exp);
            authorizer.signed = Some(JwtAuthorizer::new(verifier));
        }
        Ok(authorizer)
    }

    fn is_shared_token(&self, token: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|expected| constant_time_eq(expected.as_bytes(), token.as_bytes()))
    }

    fn shared_holders(&self) -> MutexGuard<'_, HashSet<ConnectionId>> {
        // Nothing panics while holding it; if something did, the set is
        // still a set.
        self.shared_holders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `connection`'s rights come from a signed token: then the
    /// signed authorizer answers, and refuses for a connection it does not
    /// know.
    fn signed_for(&self, connection: &ConnectionInfo) -> Option<&JwtAuthorizer> {
        let signed = self.signed.as_ref()?;
        (!self.shared_holders().contains(&connection.id)).then_some(signed)
    }
}

impl Authorizer for ConfigAuthorizer {
    fn requires_token(&self) -> bool {
        self.token.is_some() || self.signed.is_some()
    }

    fn check_token(&self, token: &str) -> bool {
        if !self.requires_token() || self.is_shared_token(token) {
            return true;
        }
        self.signed
            .as_ref()
            .is_some_and(|signed| signed.check_token(token))
    }

    fn authenticate(&self, connection: &ConnectionInfo, token: &str) -> bool {
        self.verify_token(connection, token).is_ok()
    }

    fn verify_token(&self, connection: &ConnectionInfo, token: &str) -> Result<Identity, Refusal> {
        if !self.requires_token() {
            return Ok(Identity::default());
        }
        if self.is_shared_token(token) {
            // The shared token grants everything, so whatever a signed
            // token granted this connection before no longer limits it.
            if let Some(signed) = &self.signed {
                self.shared_holders().insert(connection.id);
                signed.disconnected(connection);
            }
            return Ok(Identity::default());
        }
        match &self.signed {
            Some(signed) if self.token.is_none() || token.matches('.').count() == 2 => {
                let identity = signed.verify_token(connection, token)?;
                // The latest good token counts, even if narrower.
                self.shared_holders().remove(&connection.id);
                Ok(identity)
            }
            _ => Err(Refusal::new(RefusalReason::Invalid, "not the shared token")),
        }
    }

    fn disconnected(&self, connection: &ConnectionInfo) {
        if let Some(signed) = &self.signed {
            self.shared_holders().remove(&connection.id);
            signed.disconnected(connection);
        }
    }

    fn may_subscribe(&self, connection: &ConnectionInfo, channel: &str) -> bool {
        match self.signed_for(connection) {
            Some(signed) => signed.may_subscribe(connection, channel),
            None => true,
        }
    }

    fn may_publish(&self, connection: &ConnectionInfo, channel: &str) -> bool {
        self.allow_client_publish
            && match self.signed_for(connection) {
                Some(signed) => signed.may_publish(connection, channel),
                None => true,
            }
    }
}

/// Calls [`Authorizer::disconnected`] when dropped: one per connection
/// that got a [`ConnectionInfo`], held by its thread from the token check
/// to the end of the connection.
pub(crate) struct AuthSession {
    authorizer: Arc<dyn Authorizer>,
    connection: ConnectionInfo,
}

impl std::fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSession")
            .field("connection", &self.connection.id)
            .finish_non_exhaustive()
    }
}

impl AuthSession {
    pub(crate) fn new(authorizer: Arc<dyn Authorizer>, connection: ConnectionInfo) -> Self {
        AuthSession {
            authorizer,
            connection,
        }
    }
}

impl Drop for AuthSession {
    fn drop(&mut self) {
        // A second panic while unwinding would abort the process; an
        // application's hook is not worth that risk.
        if !std::thread::panicking() {
            self.authorizer.disconnected(&self.connection);
        }
    }
}

/// Compare secrets without returning early at the first differing byte, so
/// response timing does not reveal how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` header; never empty.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_authorizer_checks_the_token() {
        let open = ConfigAuthorizer::new(None, false);
        assert!(!open.requires_token());
        assert!(open.check_token("anything"));
        let closed = ConfigAuthorizer::new(Some("s3cret".into()), true);
        assert!(closed.requires_token());
        assert!(closed.check_token("s3cret"));
        assert!(!closed.check_token("s3cre"));
        assert!(!closed.check_token(""));
    }

    fn connection() -> ConnectionInfo {
        ConnectionInfo {
            id: ConnectionId::new(),
            remote_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
            via: None,
            user_agent: None,
            origin: None,
            connected_at_ms: 0,
        }
    }

    /// A signed token good for an hour, with these claims added.
    fn signed(claims: &str) -> String {
        let exp = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        jwt::tests::mint_raw(
            jwt::tests::HS256,
            format!(r#"{{"exp":{exp},{claims}}}"#),
            jwt::tests::SECRET,
        )
    }

    fn from_config(token: Option<&str>, secret: bool, publish: bool) -> ConfigAuthorizer {
        let config = Config {
            token: token.map(String::from),
            token_secrets: if secret {
                vec![jwt::tests::SECRET.into()]
            } else {
                Vec::new()
            },
            allow_client_publish: publish,
            ..Config::default()
        };
        ConfigAuthorizer::from_config(&config).unwrap()
    }

    #[test]
    fn signed_tokens_alone_grant_what_they_say_and_nothing_else() {
        let auth = from_config(None, true, true);
        assert!(auth.requires_token());
        let (holder, stranger) = (connection(), connection());
        let identity = auth
            .verify_token(
                &holder,
                &signed(r#""sub":"u1","channels":["news"],"publish":["chat.*"]"#),
            )
            .unwrap();
        assert_eq!(identity.subject.as_deref(), Some("u1"));
        assert!(auth.may_subscribe(&holder, "news"));
        assert!(!auth.may_subscribe(&holder, "other"));
        assert!(auth.may_publish(&holder, "chat.1"));
        assert!(!auth.may_publish(&holder, "news"));
        // Fail closed: a connection that showed no good token gets nothing.
        assert!(!auth.may_subscribe(&stranger, "news"));
        let refusal = auth.verify_token(&stranger, "s3cret").unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::Malformed);
        auth.disconnected(&holder);
        assert!(!auth.may_subscribe(&holder, "news"));
    }

    #[test]
    fn publish_claims_narrow_the_switch_but_never_open_it() {
        let auth = from_config(None, true, false);
        let holder = connection();
        auth.verify_token(&holder, &signed(r#""publish":["*"]"#))
            .unwrap();
        assert!(!auth.may_publish(&holder, "news"));
    }

    #[test]
    fn with_both_kinds_the_latest_good_token_decides() {
        let auth = from_config(Some("s3cret"), true, true);
        let conn = connection();
        // A wrong shared token is `invalid`; a broken signed one says why.
        let refusal = auth.verify_token(&conn, "s3cre").unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::Invalid);
        let refusal = auth.verify_token(&conn, "a.b.c").unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::Malformed);
        assert!(
            !auth.may_subscribe(&conn, "news"),
            "nothing before a good token"
        );

        auth.verify_token(&conn, &signed(r#""sub":"u1","channels":["news"]"#))
            .unwrap();
        assert!(!auth.may_subscribe(&conn, "other"));
        // The shared token grants everything...
        assert_eq!(
            auth.verify_token(&conn, "s3cret").unwrap(),
            Identity::default()
        );
        assert!(auth.may_subscribe(&conn, "other"));
        assert!(auth.may_publish(&conn, "other"));
        // ...until a signed token narrows it again.
        auth.verify_token(&conn, &signed(r#""sub":"u1","channels":["news"]"#))
            .unwrap();
        assert!(!auth.may_subscribe(&conn, "other"));
        auth.disconnected(&conn);
        assert!(auth.shared_holders().is_empty());
    }

    #[test]
    fn without_any_token_everything_but_publishing_is_open() {
        let auth = from_config(None, false, false);
        let conn = connection();
        assert!(!auth.requires_token());
        assert_eq!(auth.verify_token(&conn, "x").unwrap(), Identity::default());
        assert!(auth.may_subscribe(&conn, "news"));
        assert!(!auth.may_publish(&conn, "news"));
    }

    #[test]
    fn unusable_secrets_set_in_code_are_an_error() {
        let config = Config {
            token_secrets: vec!["short".into()],
            ..Config::default()
        };
        assert_eq!(
            ConfigAuthorizer::from_config(&config).unwrap_err(),
            SecretError::TooShort(0)
        );
    }

    /// An authorizer that only says yes or no still gives the hub a reason.
    #[test]
    fn the_default_verify_token_wraps_authenticate() {
        let auth = ConfigAuthorizer::new(Some("s3cret".into()), false);
        struct YesNo(ConfigAuthorizer);
        impl Authorizer for YesNo {
            fn requires_token(&self) -> bool {
                true
            }
            fn check_token(&self, token: &str) -> bool {
                self.0.check_token(token)
            }
        }
        let yes_no = YesNo(auth);
        assert_eq!(
            yes_no.verify_token(&connection(), "s3cret"),
            Ok(Identity::default())
        );
        let refusal = yes_no.verify_token(&connection(), "nope").unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::Invalid);
    }
}
