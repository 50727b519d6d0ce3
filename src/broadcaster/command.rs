//! `HubCommand`: every request the broadcaster thread serves.
//!
//! The broadcaster owns the hub's state and is the only thread that changes
//! it; everyone else sends it one of these over the hub's command channel (an
//! unbounded crossbeam channel, so senders never wait to enqueue). A command
//! that needs an answer carries a one-shot `Sender`; the broadcaster answers
//! with `try_send`, so it never waits on whoever asked (if the asker gave up,
//! the answer is dropped).
//!
//! Senders: read pumps (connect, batches of client requests, the channels
//! a client follows, disconnect), the HTTP guard and workers and the
//! embedding API (`HubHandle`), `Hub::shutdown`, and in cluster mode the
//! engine's threads (`Engine`, through the sink made by `engine_sink`).

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use serde_json::Value;

use super::history::History;
use super::outbound::{OutboundFrame, OutboundQueue};
use super::registry::{CloseReason, Connection};
use super::stats::ConnectionStatus;
use crate::engine::{EngineInput, Unavailable};
use crate::metrics::HubStats;
use crate::peer::ConnectionId;
use crate::protocol::{Event, Published, RequestId, Seq};

/// One request of a WebSocket client's batch (see [`HubCommand::ClientBatch`]),
/// in the order the client sent it.
#[derive(Debug)]
pub enum ClientRequest {
    /// A `subscribe`: valid names, duplicates removed, the authorizer asked.
    Subscribe {
        /// Echoed in the reply.
        request_id: Option<RequestId>,
        /// Channels to follow.
        channels: Vec<String>,
        /// Replay kept events after this seq.
        since: Option<u64>,
    },
    /// An `unsubscribe`.
    Unsubscribe {
        /// Echoed in the reply.
        request_id: Option<RequestId>,
        /// Channels to leave.
        channels: Vec<String>,
    },
    /// A `publish` the authorizer allowed, to a valid channel name.
    Publish {
        /// Echoed in `published`.
        request_id: Option<RequestId>,
        /// Where the event goes.
        channel: String,
        /// The event's data.
        data: Value,
    },
    /// A request the read pump answered itself (`ping`, `auth`, an error,
    /// `rate_limited`, a Ping frame's Pong) while earlier requests were
    /// still with the broadcaster: its answer, queued (counted) in its
    /// place so the client's replies keep request order.
    Answered(OutboundFrame),
}

/// The broadcaster's answer to `SubscribeLocal`. It makes the channel
/// itself, because only it knows how long the replay is: the replay is
/// already in the channel when this arrives, and live events follow it.
#[derive(Debug)]
pub struct LocalSubscribed {
    /// The subscription's key, for `UnsubscribeLocal`.
    pub key: u64,
    /// The replayed events, then live ones.
    pub events: Receiver<Event>,
    /// How many events were replayed.
    pub replayed: usize,
    /// False if an event after `since` was no longer kept, or `since` is
    /// beyond anything this hub instance has published.
    pub complete: bool,
}

/// One request to the broadcaster.
#[derive(Debug)]
pub enum HubCommand {
    /// A connection finished its handshake. The broadcaster queues `welcome`
    /// and, if the URL named channels, subscribes it.
    Connect {
        /// Who connected, and its counters.
        connection: Arc<Connection>,
        /// Where its frames go.
        queue: OutboundQueue,
        /// `?channels=…&since=…` from the URL.
        initial: Option<(Vec<String>, Option<u64>)>,
        /// Dropped or signalled once `welcome` (and the URL's `subscribed`)
        /// is queued; the read pump starts only then, so no reply it
        /// queues itself can go out before `welcome`.
        done: Sender<()>,
    },
    /// A connection's threads have ended: forget it. Sent exactly once per
    /// `Connect`, by the connection's own thread as it exits.
    Disconnect {
        /// The connection that ended.
        id: ConnectionId,
    },
    /// Consecutive requests from one WebSocket client, read ahead by its
    /// read pump (pipelining). Served in order within one command, so the
    /// client's replies keep request order and its events keep send order;
    /// the write pumps they reach are woken once at the end of the round.
    ClientBatch {
        /// Who sent them.
        id: ConnectionId,
        /// In the order they arrived.
        requests: Vec<ClientRequest>,
        /// Dropped or signalled once every reply of the batch is queued;
        /// the read pump sends its next batch only then.
        done: Sender<()>,
    },
    /// Which channels a client follows now: its read pump asks after a
    /// fresh token, to end the subscriptions the new token does not
    /// grant (with an `unsubscribe` in a batch).
    Channels {
        /// Whose.
        id: ConnectionId,
        /// Gets the names; empty if the client is gone.
        reply: Sender<Vec<String>>,
    },
    /// Publish one event (HTTP or the embedding API).
    Publish {
        /// A valid channel name.
        channel: String,
        /// The event's data.
        data: Value,
        /// Gets the seq and delivered count, or why the shared log could
        /// not take it (cluster mode only).
        reply: Sender<Result<Published, Unavailable>>,
    },
    /// Publish several events with consecutive seqs: an HTTP array, or
    /// several HTTP requests read together (answers split by the asker).
    PublishBatch {
        /// `(channel, data)` pairs, already validated.
        events: Vec<(String, Value)>,
        /// One answer per event, in order.
        reply: Sender<Result<Vec<Published>, Unavailable>>,
    },
    /// Send an `error` frame with a seq to every connected client.
    BroadcastError {
        /// The error code.
        code: String,
        /// Human-readable text.
        message: String,
        /// Optional extra JSON.
        context: Option<Value>,
        /// Gets the seq.
        reply: Sender<Result<Seq, Unavailable>>,
    },
    /// Start an in-process subscription, replaying first if `since` is set.
    SubscribeLocal {
        /// Channels to follow, duplicates removed.
        channels: Vec<String>,
        /// Replay kept events after this seq, then go live.
        since: Option<Seq>,
        /// Live events the subscription may hold before its reader counts
        /// as slow and is dropped (`--queue-size`); the replay comes on top.
        capacity: usize,
        /// Gets the subscription.
        reply: Sender<LocalSubscribed>,
    },
    /// End an in-process subscription.
    UnsubscribeLocal {
        /// The key `SubscribeLocal` answered.
        key: u64,
    },
    /// Close one connection (the embedding API's `disconnect`).
    Kick {
        /// Which connection.
        id: ConnectionId,
        /// The close code and reason to send.
        reason: CloseReason,
        /// Gets whether the connection existed.
        reply: Sender<bool>,
    },
    /// Read the hub's counters.
    Stats {
        /// Gets the numbers.
        reply: Sender<HubStats>,
    },
    /// Read kept events of one channel (`HubHandle::history`).
    History {
        /// A valid channel name.
        channel: String,
        /// Events after this seq.
        since: Seq,
        /// At most this many (and at most `MAX_HISTORY_PAGE`).
        limit: usize,
        /// Gets the page.
        reply: Sender<History>,
    },
    /// Describe every connection, for `GET /status`.
    Status {
        /// Gets one entry per connection.
        reply: Sender<Vec<ConnectionStatus>>,
    },
    /// Graceful shutdown, step 1: queue `shutdown` and Close 1001 for every
    /// client, behind what is already queued, to be written by `deadline`.
    BeginShutdown {
        /// When write pumps must give up.
        deadline: Instant,
        /// Sent in the `shutdown` frame.
        reconnect_ms: u64,
    },
    /// Graceful shutdown, last step: end the broadcaster thread.
    Stop,
    /// News from the engine's threads (cluster mode): log entries, seqs
    /// assigned, refusals, replays, holes, a new epoch. Never answered.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Engine(EngineInput),
}

impl HubCommand {
    /// The connection this command is a request of, if it is one: such
    /// commands are served in the order their connection sent them, even
    /// when one of them is deferred (`Broadcaster::admit`). Commands about
    /// a connection from elsewhere (`Kick`) are not its requests. No
    /// wildcard: a new variant must decide.
    pub fn connection(&self) -> Option<ConnectionId> {
        match self {
            HubCommand::Connect { connection, .. } => Some(connection.info.id),
            HubCommand::Disconnect { id }
            | HubCommand::ClientBatch { id, .. }
            | HubCommand::Channels { id, .. } => Some(*id),
            HubCommand::Publish { .. }
            | HubCommand::PublishBatch { .. }
            | HubCommand::History { .. }
            | HubCommand::BroadcastError { .. }
            | HubCommand::SubscribeLocal { .. }
            | HubCommand::UnsubscribeLocal { .. }
            | HubCommand::Kick { .. }
            | HubCommand::Stats { .. }
            | HubCommand::Status { .. }
            | HubCommand::BeginShutdown { .. }
            | HubCommand::Stop
            | HubCommand::Engine(_) => None,
        }
    }

    /// True for a command that replays history: a client batch with a
    /// `subscribe` with `since`, a connection whose URL asked for one, or an in-process
    /// subscription with `since`. The broadcaster serves these after the
    /// other commands of a round. (In cluster mode a replay that needs
    /// Redis is only asked for then; its answer, `Engine`, is not deferred.)
    pub fn is_replay(&self) -> bool {
        if let HubCommand::ClientBatch { requests, .. } = self {
            return requests
                .iter()
                .any(|request| matches!(request, ClientRequest::Subscribe { since: Some(_), .. }));
        }
        matches!(
            self,
            HubCommand::Connect {
                initial: Some((_, Some(_))),
                ..
            } | HubCommand::SubscribeLocal { since: Some(_), .. }
        )
    }
}

impl HubCommand {
    /// How much of a round this command uses: one per request or event it
    /// carries, so a round bounds work, not commands (see `MAX_ROUND`).
    pub(super) fn weight(&self) -> usize {
        match self {
            HubCommand::ClientBatch { requests, .. } => requests.len().max(1),
            HubCommand::PublishBatch { events, .. } => events.len().max(1),
            _ => 1,
        }
    }
}
