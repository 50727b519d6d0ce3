//! The engine: who gives events their seq and keeps their history.
//!
//! The broadcaster fans events out to its clients; *ordering* them is the
//! engine's job, and there are two:
//!
//! - [`Engine::Memory`], the default: the broadcaster itself takes the next
//!   number and keeps each channel's history in memory. Nothing here runs;
//!   the broadcaster's single-node path is exactly what it always was.
//! - [`Engine::Redis`] (cargo feature `redis`): several hubs share one
//!   sequence and one history in Redis. A Lua script takes the number and
//!   appends to a shared log in one step; every node reads that log back
//!   and its broadcaster delivers what the log says, in log order, its own
//!   publishes included. See `engine/redis.rs`.
//!
//! This file is the seam between the two: the vocabulary the engine's
//! threads send the broadcaster ([`EngineInput`], delivered through a
//! [`Sink`] that wraps the broadcaster's command channel, so the engine
//! never names a broadcaster type), what a publish hands to the engine
//! ([`Item`]), and the [`EngineStatus`] that `/health`, `/status` and
//! `/metrics` read. The broadcaster owns the `Engine` value; the engine's
//! own threads own their Redis connections.

// Without the `redis` feature only `Engine::Memory` and the status are
// used; the vocabulary of the shared log stays, unused, to keep one seam.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use serde_json::Value;

use crate::protocol::{Event, Seq};

#[cfg(feature = "redis")]
pub mod redis;

/// Who orders events. Owned by the broadcaster.
pub enum Engine {
    /// One node: the broadcaster assigns seqs and keeps history itself.
    Memory,
    /// Many nodes sharing one sequence and history in Redis.
    #[cfg(feature = "redis")]
    Redis(redis::RedisEngine),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::Memory => f.write_str("Engine::Memory"),
            #[cfg(feature = "redis")]
            Engine::Redis(_) => f.write_str("Engine::Redis"),
        }
    }
}

/// Why the engine cannot take a publish now (Redis unreachable, or the
/// node is rejoining the shared log). Clients see it as `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// What went wrong, for logs and the error message.
    pub reason: String,
}

impl Unavailable {
    /// An `Unavailable` saying `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Unavailable {
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the shared event log is unavailable: {}", self.reason)
    }
}

impl std::error::Error for Unavailable {}

/// One thing to append to the sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An event for one channel: kept in its history, sent to its
    /// subscribers.
    Event {
        /// A valid channel name.
        channel: Arc<str>,
        /// The event's data.
        data: Value,
    },
    /// A broadcast `error`: sent to every client, kept in no history.
    Error {
        /// The error code.
        code: String,
        /// Human-readable text.
        message: String,
        /// Optional extra JSON.
        context: Option<Value>,
    },
}

/// One entry of the shared log, as a node reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its place in the shared sequence.
    pub seq: Seq,
    /// When the publishing node took it, in Unix milliseconds.
    pub ts_ms: u64,
    /// True if this node published it (its answer is still owed).
    pub own: bool,
    /// What it is.
    pub item: Item,
}

/// What a replay from the shared history found.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The epoch the history belongs to; a replay of another epoch than
    /// the node's is worthless to its clients.
    pub epoch: String,
    /// The shared sequence's head when the history was read: the replay
    /// holds every kept event of the channels up to here.
    pub head: Seq,
    /// The kept events after `since`, every channel merged, in seq order.
    pub events: Vec<Event>,
    /// True if nothing after `since` was trimmed from any channel.
    pub complete: bool,
}

/// What the engine's threads tell the broadcaster, in the order it must
/// act on it. `Joined`, `Entries` and `Hole` come from the one log reader,
/// so they arrive in log order.
#[derive(Debug)]
pub enum EngineInput {
    /// The node (re)joined the shared log. If `epoch` is not the one the
    /// broadcaster knows, its clients must resync; it then continues from
    /// `position` (the shared sequence's head when it joined).
    Joined {
        /// The hub's epoch, the same on every node.
        epoch: String,
        /// Where reading starts: the seq of the newest entry already in the
        /// log, which the node will not deliver.
        position: Seq,
    },
    /// The next entries of the log, in order, with no gap after the last
    /// one delivered. `credit` gets one `()` once they are applied: the
    /// reader holds a few credits, so it can be at most that many batches
    /// ahead of the broadcaster.
    Entries {
        /// Consecutive entries.
        entries: Vec<Entry>,
        /// Signalled (with `try_send`) once applied.
        credit: Sender<()>,
    },
    /// The log lost entries this node had not read yet (trimmed, or gone).
    /// Its clients must resync; delivery continues after `position`.
    Hole {
        /// The seq just before the next entry that will be delivered.
        position: Seq,
    },
    /// A publish was appended: its items got seqs `first ..= first+count-1`.
    /// Its entries reach the broadcaster through the log, before or after
    /// this.
    Assigned {
        /// The broadcaster's ticket for the publish.
        ticket: u64,
        /// The first item's seq.
        first: Seq,
        /// How many items it had.
        count: usize,
    },
    /// A publish was not appended (or its outcome is unknown).
    Refused {
        /// The broadcaster's ticket for the publish.
        ticket: u64,
        /// Why.
        reason: Unavailable,
    },
    /// The answer to a replay request.
    Replayed {
        /// The broadcaster's ticket for the request.
        ticket: u64,
        /// The history found, or why none could be read.
        result: Result<Replay, Unavailable>,
    },
}

/// How the engine's threads reach the broadcaster. Returns false once the
/// broadcaster is gone, which ends the thread that called it.
pub type Sink = Arc<dyn Fn(EngineInput) -> bool + Send + Sync>;

/// The engine's connection state, as `/health` and `/status` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Memory engine: always serving.
    Local,
    /// Not yet (re)joined the shared log; publishes are refused.
    Connecting,
    /// Joined and reading the shared log; publishes are taken.
    Up,
    /// Lost Redis; retrying. Publishes are refused, clients stay.
    Down,
}

impl EngineState {
    /// The name used on `/health`, `/status` and `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineState::Local => "local",
            EngineState::Connecting => "connecting",
            EngineState::Up => "up",
            EngineState::Down => "down",
        }
    }

    fn from_u8(v: u8) -> EngineState {
        match v {
            1 => EngineState::Connecting,
            2 => EngineState::Up,
            3 => EngineState::Down,
            _ => EngineState::Local,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            EngineState::Local => 0,
            EngineState::Connecting => 1,
            EngineState::Up => 2,
            EngineState::Down => 3,
        }
    }
}

/// The engine's figures, shared between its threads (which write them) and
/// the HTTP side and metrics (which read them). Atomics and two small
/// mutexes, never held across I/O.
#[derive(Debug)]
pub struct EngineStatus {
    state: AtomicU8,
    reconnects: AtomicU64,
    /// The newest seq the node has seen in Redis (the shared head).
    head: AtomicU64,
    /// The newest seq the broadcaster delivered.
    delivered: AtomicU64,
    resyncs: AtomicU64,
    epoch: Mutex<String>,
    last_error: Mutex<String>,
}

impl EngineStatus {
    /// The status of the memory engine: always `local`.
    pub fn local() -> Arc<EngineStatus> {
        Arc::new(EngineStatus::with_state(EngineState::Local))
    }

    /// A status starting in `state`.
    pub fn with_state(state: EngineState) -> EngineStatus {
        EngineStatus {
            state: AtomicU8::new(state.to_u8()),
            reconnects: AtomicU64::new(0),
            head: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            epoch: Mutex::new(String::new()),
            last_error: Mutex::new(String::new()),
        }
    }

    /// The state now.
    pub fn state(&self) -> EngineState {
        EngineState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// True if publishes can be taken now.
    pub fn is_serving(&self) -> bool {
        matches!(self.state(), EngineState::Local | EngineState::Up)
    }

    /// Move to `state`.
    pub fn set_state(&self, state: EngineState) {
        self.state.store(state.to_u8(), Ordering::Release);
    }

    /// Count one reconnection to Redis after a loss.
    pub fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Reconnections since start.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Count one resync (a hole or a new epoch sent clients away).
    pub fn count_resync(&self) {
        self.resyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// Resyncs since start.
    pub fn resyncs(&self) -> u64 {
        self.resyncs.load(Ordering::Relaxed)
    }

    /// Note the newest seq seen in Redis.
    pub fn note_head(&self, seq: Seq) {
        self.head.fetch_max(seq.0, Ordering::Relaxed);
    }

    /// Forget the head (a new epoch may start lower).
    pub fn reset_head(&self, seq: Seq) {
        self.head.store(seq.0, Ordering::Relaxed);
        self.delivered.store(seq.0, Ordering::Relaxed);
    }

    /// Note the newest seq the broadcaster delivered.
    pub fn note_delivered(&self, seq: Seq) {
        self.delivered.store(seq.0, Ordering::Relaxed);
        self.head.fetch_max(seq.0, Ordering::Relaxed);
    }

    /// The newest seq this node has seen in Redis.
    pub fn head(&self) -> Seq {
        Seq(self.head.load(Ordering::Relaxed))
    }

    /// How many events the shared log holds that this node has not
    /// delivered yet.
    pub fn lag(&self) -> u64 {
        let head = self.head.load(Ordering::Relaxed);
        head.saturating_sub(self.delivered.load(Ordering::Relaxed))
    }

    /// The shared epoch, once joined ("" before).
    pub fn epoch(&self) -> String {
        lock(&self.epoch).clone()
    }

    /// Note the shared epoch.
    pub fn set_epoch(&self, epoch: &str) {
        *lock(&self.epoch) = epoch.to_string();
    }

    /// The engine as `/health` and `/status` show it.
    pub fn describe(&self) -> serde_json::Value {
        let mode = match self.state() {
            EngineState::Local => "memory",
            _ => "redis",
        };
        let mut value = serde_json::json!({
            "mode": mode,
            "state": self.state().as_str(),
        });
        if mode == "redis" {
            value["epoch"] = self.epoch().into();
            value["reconnects"] = self.reconnects().into();
            value["resyncs"] = self.resyncs().into();
            value["lag"] = self.lag().into();
            value["last_error"] = match self.last_error() {
                e if e.is_empty() => serde_json::Value::Null,
                e => e.into(),
            };
        }
        value
    }

    /// The engine's lines for `GET /metrics` (Prometheus text format).
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "pumphub_engine_up",
            "gauge",
            "1 if this node can publish now (always, without --redis; with it, Redis is reachable and joined).",
            u64::from(self.is_serving()),
        );
        metric(
            "pumphub_engine_reconnects_total",
            "counter",
            "Reconnections to Redis after losing it (cluster mode).",
            self.reconnects(),
        );
        metric(
            "pumphub_engine_resyncs_total",
            "counter",
            "Times this node sent its clients away to resync (a hole in the shared log, a new epoch).",
            self.resyncs(),
        );
        metric(
            "pumphub_engine_lag_events",
            "gauge",
            "Events in the shared log this node has not delivered yet (cluster mode).",
            self.lag(),
        );
    }

    /// The last connection problem, "" if none since the last join.
    pub fn last_error(&self) -> String {
        lock(&self.last_error).clone()
    }

    /// Note a connection problem (or clear it with "").
    pub fn set_last_error(&self, error: &str) {
        *lock(&self.last_error) = error.to_string();
    }
}

/// The strings under these locks are always whole, so a poisoned lock (a
/// panic elsewhere while holding it) still holds a usable value.
fn lock(m: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
