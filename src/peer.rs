//! Who is on the other end of a WebSocket connection: its [`ConnectionId`]
//! and the [`ConnectionInfo`] its handshake learned. Plain data, built once
//! by the connection's thread and then shared read-only: the broadcaster
//! keeps it for `/status`, an [`Authorizer`](crate::Authorizer) is shown it.

use std::net::SocketAddr;

use uuid::Uuid;

/// A connection's id: a random UUID v4, shown lower-case as in `welcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub Uuid);

impl ConnectionId {
    /// A fresh random id.
    pub fn new() -> Self {
        ConnectionId(Uuid::new_v4())
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for ConnectionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(ConnectionId)
    }
}

/// What the hub knows about a connection from its handshake.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Its id.
    pub id: ConnectionId,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// The upgrade request's `User-Agent`.
    pub user_agent: Option<String>,
    /// The upgrade request's `Origin`.
    pub origin: Option<String>,
    /// When the handshake completed, Unix ms.
    pub connected_at_ms: u64,
}
