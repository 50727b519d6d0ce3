//! Snapshots the broadcaster hands out: [`HubStats`] for the embedding API
//! and `/metrics`, [`ConnectionStatus`] for `GET /status`.
//!
//! Built on the broadcaster thread in answer to a command, then sent to the
//! asker; plain data with no shared state.

use serde::Serialize;

use crate::connection::Connection;
use crate::event::Seq;

/// Numbers the broadcaster owns, read through `HubHandle::stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubStats {
    /// The last seq assigned (0 if none).
    pub seq: Seq,
    /// WebSocket clients registered with the broadcaster.
    pub connections: usize,
    /// In-process subscriptions.
    pub local_subscribers: usize,
    /// Channels the hub knows (followed, or with history).
    pub channels: usize,
    /// Events kept across all channel histories.
    pub history_events: usize,
    /// The most frames any client ever had waiting in its queue.
    pub queue_high_water: usize,
}

/// One connection as `GET /status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionStatus {
    /// The connection id (as in `welcome`).
    pub id: String,
    /// The peer's `ip:port`.
    pub remote_addr: String,
    /// The `User-Agent` of the upgrade request.
    pub user_agent: Option<String>,
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
            remote_addr: connection.info.remote_addr.to_string(),
            user_agent: connection.info.user_agent.clone(),
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
