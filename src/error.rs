//! `pumphub::Error`: what the embedding API returns when an operation
//! cannot be done.
//!
//! Peer-facing problems (a client's bad JSON, a refused subscribe) are not
//! here: they are `error` frames sent to that client (see
//! [`ErrorCode`](crate::protocol::ErrorCode)), and the connection goes on.

use std::fmt;
use std::io;

/// An error from the embedding API.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A listener could not be bound: the address is in use, not local,
    /// or needs privileges. Pick another address (`:0` picks a free port).
    Bind {
        /// Which listener: `"websocket"` or `"http"`.
        listener: &'static str,
        /// The address asked for.
        address: String,
        /// What the OS said.
        source: io::Error,
    },
    /// A channel name does not match `^[A-Za-z0-9_.:-]{1,128}$`.
    InvalidChannel {
        /// The name given.
        name: String,
    },
    /// The hub is shutting down or has stopped; it accepts no more work.
    ShuttingDown,
    /// An array publish would not fit half a subscriber's queue
    /// (`--queue-size` / 2 events, `--queue-bytes` / 2 bytes of frames);
    /// nothing was published. Split it.
    BatchTooLarge {
        /// Events in the batch.
        events: usize,
        /// Bytes its frames would take in a queue.
        bytes: usize,
        /// The most events a batch may hold.
        max_events: usize,
        /// The most bytes a batch may take.
        max_bytes: usize,
    },
    /// Cluster mode: the shared event log (Redis) cannot be reached, so
    /// nothing was published. Retry later; `/health` says when the node
    /// can publish again.
    Unavailable {
        /// What went wrong.
        reason: String,
    },
    /// A setting cannot be used as given: an embedding application that
    /// did not call `Config::validate` (which checks everything, with
    /// better words) gave [`Hub::start`](crate::Hub::start) token secrets
    /// or a Redis URL it cannot use.
    InvalidConfig {
        /// The setting, as its flag is named (`token-secret`, `redis`).
        setting: &'static str,
        /// What is wrong; never the value of a secret.
        reason: String,
    },
    /// A thread could not be started (the OS is out of threads or memory).
    Spawn(io::Error),
    /// The data given to publish cannot be represented as JSON: a map with
    /// keys that are not strings, a `Serialize` impl that fails, and the like.
    /// Nothing was published.
    Serialize(serde_json::Error),
}

// `Display` names the cause as well as `source()` returning it: most
// applications print an error with `{}` alone, and "cannot bind … to
// 127.0.0.1:9001" without "Address already in use" sends them guessing. A
// reporter that walks `source()` (anyhow's `{:#}`) shows the cause twice;
// that is the smaller harm (docs/decisions.md, 2026-12-07).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind {
                listener,
                address,
                source,
            } => write!(
                f,
                "cannot bind the {listener} listener to {address}: {source}"
            ),
            Error::InvalidChannel { name } => write!(
                f,
                "invalid channel name {name:?}: use 1-128 of A-Z a-z 0-9 _ . : -"
            ),
            Error::ShuttingDown => write!(f, "the hub is shutting down"),
            Error::BatchTooLarge {
                events,
                bytes,
                max_events,
                max_bytes,
            } => write!(
                f,
                "a batch of {events} events ({bytes} bytes as frames) does not fit half a \
                 subscriber's queue: at most {max_events} events and {max_bytes} bytes; split it"
            ),
            Error::Unavailable { reason } => {
                write!(f, "the shared event log is unavailable: {reason}")
            }
            Error::InvalidConfig { setting, reason } => write!(f, "invalid --{setting}: {reason}"),
            Error::Spawn(source) => write!(f, "cannot start a hub thread: {source}"),
            Error::Serialize(source) => {
                write!(f, "cannot publish data that is not JSON: {source}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Spawn(source) => Some(source),
            Error::Serialize(source) => Some(source),
            Error::InvalidChannel { .. }
            | Error::ShuttingDown
            | Error::BatchTooLarge { .. }
            | Error::Unavailable { .. }
            | Error::InvalidConfig { .. } => None,
        }
    }
}

/// True for a read error that only means "nothing arrived yet": the
/// socket's read timeout passed (Linux reports it as `WouldBlock`), or a
/// signal interrupted the read (on a socket with a timeout that fails with
/// EINTR even under `SA_RESTART`, see signal(7)). Every reader of a peer's
/// socket (the read pump, the handshake, the HTTP guard) then
/// checks its deadlines and reads again.
pub(crate) fn is_quiet(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
