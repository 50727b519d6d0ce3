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

use std::sync::Arc;

use crate::peer::ConnectionInfo;

pub mod claims;
pub mod jwt;
pub mod refusal;

pub use claims::ChannelGrants;
pub use jwt::{Claims, JwtVerifier, SecretError};
pub use refusal::{Refusal, RefusalReason};

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

/// The binary's authorizer: one shared token, and client publishing on or
/// off for every channel.
#[derive(Debug, Clone, Default)]
pub struct ConfigAuthorizer {
    token: Option<String>,
    allow_client_publish: bool,
}

impl ConfigAuthorizer {
    /// From `--token` and `--allow-client-publish`.
    pub fn new(token: Option<String>, allow_client_publish: bool) -> Self {
        ConfigAuthorizer {
            token,
            allow_client_publish,
        }
    }
}

impl Authorizer for ConfigAuthorizer {
    fn requires_token(&self) -> bool {
        self.token.is_some()
    }

    fn check_token(&self, token: &str) -> bool {
        match &self.token {
            Some(expected) => constant_time_eq(expected.as_bytes(), token.as_bytes()),
            None => true,
        }
    }

    fn may_publish(&self, _connection: &ConnectionInfo, _channel: &str) -> bool {
        self.allow_client_publish
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
}
