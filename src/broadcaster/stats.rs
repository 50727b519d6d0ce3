//! [`ConnectionStatus`]: one client as `GET /status` shows it, a snapshot
//! the broadcaster hands out (its figures for `/metrics`, `HubStats`, live
//! with the counters in `metrics.rs`).
//!
//! Built on the broadcaster thread in answer to a command, then sent to the
//! asker; plain data with no shared state.

use serde::Serialize;

use super::registry::Connection;

/// One connection as `GET /status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionStatus {
    /// The connection id (as in `welcome`).
    pub id: String,
    /// The client's `ip:port`; behind a trusted proxy, the address it
    /// forwarded for (just `ip` if it gave no port).
    pub remote_addr: String,
    /// The trusted proxy's `ip:port`, for a forwarded client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The `User-Agent` of the upgrade request.
    pub user_agent: Option<String>,
    /// Who its token names (a signed token's `sub`); `null` without one.
    pub sub: Option<String>,
    /// When the handshake completed, Unix ms.
    pub connected_at: u64,
    /// Channels followed.
    pub channels: Vec<String>,
    /// Frames written to the socket.
    pub sent: u64,
    /// Frames received from the client.
    pub received: u64,
    /// Frames waiting in its queue.
    pub queued: usize,
    /// Error replies sent to it.
    pub errors: u64,
    /// The text of the last error reply.
    pub last_error: Option<String>,
}

impl ConnectionStatus {
    pub(crate) fn new(connection: &Connection, channels: Vec<String>, queued: usize) -> Self {
        let stats = &connection.stats;
        ConnectionStatus {
            id: connection.info.id.to_string(),
            remote_addr: match connection.info.via {
                Some(_) if connection.info.remote_addr.port() == 0 => {
                    connection.info.remote_addr.ip().to_string()
                }
                _ => connection.info.remote_addr.to_string(),
            },
            via: connection.info.via.map(|proxy| proxy.to_string()),
            user_agent: connection.info.user_agent.clone(),
            sub: stats.subject(),
            connected_at: connection.info.connected_at_ms,
            channels,
            sent: stats.sent(),
            received: stats.received(),
            queued,
            errors: stats.errors(),
            last_error: stats.last_error(),
        }
    }
}
