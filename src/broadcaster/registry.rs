//! What the broadcaster keeps for each connected client besides its queue:
//! [`Connection`] (identity and counters, shared with the client's two
//! pumps, which count into it) and [`CloseReason`], why the hub closes a
//! client itself. The broadcaster records a close reason on the client's
//! queue; the write pump reads it and sends the matching close frame.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;

use crate::peer::ConnectionInfo;

/// Per-connection counters, written by its pumps and read for `/status`,
/// and who the connection's token says it is.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    sent: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// The `sub` of its token, set by its thread on every good token (it
    /// may arrive after the handshake, in an `auth` message).
    subject: Mutex<Option<String>>,
}

impl ConnectionStats {
    /// Count frames written to the socket.
    pub fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }
    /// Count one frame received.
    pub fn add_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
    /// Count an error reply and remember its text.
    pub fn record_error(&self, message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(message.to_owned());
        }
    }
    /// Frames written to the socket.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Frames received.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Error replies sent.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
    /// The last error reply's text.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|last| last.clone())
    }
    /// Record who the connection's token names.
    pub fn set_subject(&self, subject: Option<String>) {
        if let Ok(mut current) = self.subject.lock() {
            *current = subject;
        }
    }
    /// Who the connection's token names (`sub`), if it said.
    pub fn subject(&self) -> Option<String> {
        self.subject.lock().ok().and_then(|subject| subject.clone())
    }
}

/// A connection's identity and counters, shared by its two pumps and the
/// broadcaster.
#[derive(Debug)]
pub struct Connection {
    /// From the handshake.
    pub info: ConnectionInfo,
    /// Updated by the pumps.
    pub stats: ConnectionStats,
}

/// Why the hub closes a connection itself. Each maps to a close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// The outbound queue overflowed (4008).
    SlowConsumer = 1,
    /// Nothing arrived for ping interval + pong timeout (1001).
    PingTimeout = 2,
    /// No `auth` within the authentication deadline (1008).
    AuthTimeout = 3,
    /// Over the rate limit for 5 seconds in a row (1008).
    RateLimited = 4,
    /// The embedding application asked to disconnect it (1000).
    Disconnected = 5,
    /// The hub is shutting down (1001, after a `shutdown` frame).
    Shutdown = 6,
    /// The connection's signed token expired, and no fresh one came in an
    /// `auth` message before (4001).
    TokenExpired = 7,
    /// Cluster mode: the node lost events it cannot fill in (a hole in
    /// the shared log, a new epoch); the client reconnects and resumes
    /// with `since` (1012, after a `shutdown` frame with reason `resync`).
    Resync = 8,
}

impl CloseReason {
    /// The WebSocket close code.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::SlowConsumer => crate::protocol::CLOSE_SLOW_CONSUMER,
            CloseReason::PingTimeout | CloseReason::Shutdown => 1001,
            CloseReason::AuthTimeout | CloseReason::RateLimited => 1008,
            CloseReason::Disconnected => 1000,
            CloseReason::TokenExpired => crate::protocol::CLOSE_TOKEN_EXPIRED,
            CloseReason::Resync => 1012,
        }
    }

    /// The close frame's reason text.
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::AuthTimeout => "authentication timeout",
            CloseReason::RateLimited => "rate limit exceeded",
            CloseReason::Disconnected => "disconnected by the hub",
            CloseReason::Shutdown => "server shutting down",
            CloseReason::TokenExpired => "token expired",
            CloseReason::Resync => "resync",
        }
    }

    /// The close frame to send.
    pub fn frame(self) -> CloseFrame {
        CloseFrame {
            code: CloseCode::from(self.code()),
            reason: self.text().into(),
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_u8(value: u8) -> Option<CloseReason> {
        Some(match value {
            1 => CloseReason::SlowConsumer,
            2 => CloseReason::PingTimeout,
            3 => CloseReason::AuthTimeout,
            4 => CloseReason::RateLimited,
            5 => CloseReason::Disconnected,
            6 => CloseReason::Shutdown,
            7 => CloseReason::TokenExpired,
            8 => CloseReason::Resync,
            _ => return None,
        })
    }
}
