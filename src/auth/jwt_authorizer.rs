//! [`JwtAuthorizer`]: an [`Authorizer`] that admits signed tokens and
//! then lets each connection do what its token's claims say.
//!
//! It owns one [`JwtVerifier`] and a table from connection id to the claims
//! of that connection's latest good token. Connection threads (the
//! handshake and the read pumps) call it concurrently: they write the
//! table when a token is accepted and when a connection ends, and read it
//! for each `subscribe` and `publish`. One short lock around the table; no
//! thread waits on anything else inside it. It sends nothing to anyone.
//!
//! The table holds at most one entry per open connection (it is cleared in
//! `disconnected`, which the hub calls exactly once per connection), and
//! each entry is bounded by the token's size cap.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::{Authorizer, Claims, Identity, JwtVerifier, Refusal, RefusalReason};
use crate::peer::{ConnectionId, ConnectionInfo};

/// Admits signed tokens (see [`JwtVerifier`]) and decides subscriptions
/// and publishes from their `channels` and `publish` claims. A connection
/// it has not accepted a token from may do nothing.
///
/// A connection may present a fresh token at any time (an `auth` message
/// while authenticated): if it is good and has the same `sub`, its claims
/// replace the old ones; otherwise the old ones stay.
///
/// ```no_run
/// use std::sync::Arc;
/// use pumphub::auth::{JwtAuthorizer, JwtVerifier};
/// use pumphub::{Config, Hub};
///
/// let verifier = JwtVerifier::new(&["a secret of at least thirty-two bytes!"])?;
/// let authorizer = Arc::new(JwtAuthorizer::new(verifier));
/// let hub = Hub::start_with_authorizer(Config::default(), authorizer)?;
/// # hub.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct JwtAuthorizer {
    verifier: JwtVerifier,
    sessions: Mutex<HashMap<ConnectionId, Claims>>,
}

impl JwtAuthorizer {
    /// An authorizer that checks tokens with `verifier`.
    pub fn new(verifier: JwtVerifier) -> Self {
        JwtAuthorizer {
            verifier,
            sessions: Mutex::default(),
        }
    }

    /// The claims of the token `connection` last authenticated with, if
    /// any: for an application that wraps this authorizer and wants the
    /// `sub` or the grants.
    pub fn claims(&self, connection: ConnectionId) -> Option<Claims> {
        self.sessions().get(&connection).cloned()
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<ConnectionId, Claims>> {
        // Nothing panics while holding the lock; if something did, the
        // map itself is still whole.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ask `decide` about `connection`'s current claims; no claims, or
    /// claims past their time, decide no.
    fn with_claims(
        &self,
        connection: &ConnectionInfo,
        decide: impl FnOnce(&Claims) -> bool,
    ) -> bool {
        let sessions = self.sessions();
        let Some(claims) = sessions.get(&connection.id) else {
            return false;
        };
        // The hub closes a connection when its token expires; this covers
        // the moment between the two, and embedders without that close.
        let expired = claims
            .valid_until
            .is_some_and(|until| SystemTime::now() >= until);
        !expired && decide(claims)
    }
}

impl Authorizer for JwtAuthorizer {
    fn requires_token(&self) -> bool {
        true
    }

    fn check_token(&self, token: &str) -> bool {
        self.verifier.verify(token, SystemTime::now()).is_ok()
    }

    fn authenticate(&self, connection: &ConnectionInfo, token: &str) -> bool {
        self.verify_token(connection, token).is_ok()
    }

    fn verify_token(&self, connection: &ConnectionInfo, token: &str) -> Result<Identity, Refusal> {
        let claims = self.verifier.verify(token, SystemTime::now())?;
        let identity = Identity {
            subject: claims.subject.clone(),
            valid_until: claims.valid_until,
        };
        let mut sessions = self.sessions();
        if let Some(current) = sessions.get(&connection.id) {
            // One connection is one user: a fresh token may change what
            // it grants and until when, not whom it names.
            if current.subject != claims.subject {
                return Err(Refusal::new(
                    RefusalReason::SubjectChanged,
                    "a fresh token must have the same `sub` as the connection's first one",
                ));
            }
        }
        sessions.insert(connection.id, claims);
        Ok(identity)
    }

    fn disconnected(&self, connection: &ConnectionInfo) {
        self.sessions().remove(&connection.id);
    }

    fn may_subscribe(&self, connection: &ConnectionInfo, channel: &str) -> bool {
        self.with_claims(connection, |claims| claims.channels.allows(channel))
    }

    fn may_publish(&self, connection: &ConnectionInfo, channel: &str) -> bool {
        self.with_claims(connection, |claims| claims.publish.allows(channel))
    }
}

#[cfg(test)]
mod tests;
