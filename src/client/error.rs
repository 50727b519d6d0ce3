//! `ClientError`: why the client could not do what it was asked.
//!
//! Errors fall in two groups, and the reconnect loop treats them
//! differently (see [`ClientError::is_permanent`]): a refused token or a
//! refused subscribe will be refused again, so the client gives up at once;
//! a refused TCP connection or a dropped socket may heal, so it retries.
//!
//! Plain data, made on whichever thread hit the problem: returned to the
//! caller directly, or sent by the client thread as the last item or as a
//! `publish` reply.

use std::fmt;
use std::io;

/// An error from [`Client`](super::Client).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not a `ws://host:port/path` URL this client can use
    /// (`wss://` needs TLS, which this crate does not build in).
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A channel name does not match `^[A-Za-z0-9_.:-]{1,128}$`.
    InvalidChannel {
        /// The name given.
        name: String,
    },
    /// The TCP connection could not be made: nothing listens there (yet),
    /// or the host is unreachable. Retried when reconnecting.
    Connect(io::Error),
    /// The hub answered the upgrade with an HTTP error instead of 101:
    /// 401 wrong token, 403 origin, 404 path; 503 (full or shutting down)
    /// and 429 (too many from this IP) are retried, the others are not.
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The hub refused the token sent in an `auth` message.
    Unauthenticated,
    /// The [`token_source`](super::ClientBuilder::token_source) gave no
    /// token; its error is the source.
    TokenSource(Box<dyn std::error::Error + Send + Sync>),
    /// The hub answered a request with an `error` frame, e.g. `forbidden`
    /// for a publish when the hub runs without `--allow-client-publish`.
    Refused {
        /// The error code, e.g. `"forbidden"` or `"bad_channel"`.
        code: String,
        /// The hub's explanation.
        message: String,
    },
    /// The WebSocket failed (bad framing, an I/O error mid-handshake) or the
    /// connection ended while setting up. Retried when reconnecting.
    WebSocket(Box<tungstenite::Error>),
    /// The hub sent something this client cannot follow, or nothing in
    /// time: no `welcome`, no `subscribed`. Retried when reconnecting.
    Protocol(String),
    /// A `publish` got no answer within the publish timeout.
    Timeout,
    /// The connection dropped while a `publish` waited for `published`; the
    /// event may or may not have been published.
    Disconnected,
    /// A `publish` was asked while the client was between connections.
    NotConnected,
    /// The client has stopped: it was closed, or it gave up earlier.
    Closed,
    /// The client thread could not be started (the OS is out of threads).
    Spawn(io::Error),
    /// Reconnecting failed `attempts` times in a row (the configured
    /// maximum); `last` says why the last attempt failed.
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// True for errors that retrying cannot fix (a bad URL or channel,
    /// a refused token or request, a 4xx handshake answer other than 429):
    /// the reconnect loop gives up on these at once.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Rejected { status } => !matches!(status, 429 | 503),
            ClientError::InvalidUrl { .. }
            | ClientError::InvalidChannel { .. }
            | ClientError::Unauthenticated
            | ClientError::Refused { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidUrl { url, reason } => {
                write!(f, "invalid hub URL {url:?}: {reason}")
            }
            ClientError::InvalidChannel { name } => write!(
                f,
                "invalid channel name {name:?}: use 1-128 of A-Z a-z 0-9 _ . : -"
            ),
            ClientError::Connect(_) => write!(f, "cannot connect to the hub"),
            ClientError::Rejected { status } => {
                write!(
                    f,
                    "the hub refused the WebSocket upgrade with HTTP {status}"
                )
            }
            ClientError::Unauthenticated => write!(f, "the hub refused the token"),
            ClientError::TokenSource(_) => write!(f, "the token source gave no token"),
            ClientError::Refused { code, message } => {
                write!(f, "the hub refused the request: {code}: {message}")
            }
            ClientError::WebSocket(_) => write!(f, "WebSocket error"),
            ClientError::Protocol(what) => write!(f, "unexpected answer from the hub: {what}"),
            ClientError::Timeout => write!(f, "no answer from the hub in time"),
            ClientError::Disconnected => {
                write!(f, "the connection dropped before the hub answered")
            }
            ClientError::NotConnected => write!(f, "not connected to the hub (reconnecting)"),
            ClientError::Closed => write!(f, "the client has stopped"),
            ClientError::Spawn(_) => write!(f, "cannot start the client thread"),
            ClientError::GaveUp { attempts, .. } => {
                write!(f, "gave up reconnecting after {attempts} attempts")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(source) | ClientError::Spawn(source) => Some(source),
            ClientError::WebSocket(source) => Some(source.as_ref()),
            ClientError::GaveUp { last, .. } => Some(last.as_ref()),
            ClientError::TokenSource(source) => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl From<tungstenite::Error> for ClientError {
    fn from(error: tungstenite::Error) -> Self {
        ClientError::WebSocket(Box::new(error))
    }
}
