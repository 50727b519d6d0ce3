//! The Redis engine: many pumphub nodes sharing one sequence, one history
//! and one epoch in Redis.
//!
//! ```text
//!  broadcaster ── Job ──► redis-publisher-N ── EVALSHA PUBLISH (grouped) ──► Redis
//!      ▲  ▲  ▲                  │ Assigned / Refused                             │
//!      │  │  └──────────────────┘                                               │ {prefix}:log
//!      │  └──── Joined, Entries, Hole ◄── redis-reader ◄── XREAD BLOCK ─────────┘
//!      └─────── Replayed ◄── redis-replay ◄── EVALSHA REPLAY ◄── {prefix}:ch:<name>
//! ```
//!
//! What lives in Redis (keys in `keys.rs`, scripts in `script.rs`): the
//! epoch and the newest seq taken, a dense log of every entry (`<seq>-0`),
//! one stream per channel holding its last `history_size` events, and per
//! channel the newest trimmed seq. A publish is one `PUBLISH` script call:
//! take the next seqs, append to the log and to the channels' streams,
//! trim exactly. Nothing else assigns seqs.
//!
//! The threads, each with its own connection and all ended when the
//! [`RedisEngine`] is dropped (the broadcaster owns it):
//! `redis-reader` (`reader.rs`), `redis-publisher-N` (`publisher.rs`),
//! `redis-replay` (`replayer.rs`). They talk to the broadcaster only
//! through the [`Sink`] (which wraps its command channel); the broadcaster
//! talks to them through bounded queues it never waits on.

mod connection;
mod keys;
mod publisher;
mod reader;
mod replayer;
mod reply;
mod script;

use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Sender, TrySendError};
use redis::Client;

use self::keys::Keys;
use self::publisher::{Job, Publisher};
use self::reader::Reader;
use self::replayer::{ReplayRequest, Replayer};
use super::{EngineState, EngineStatus, Item, Sink, Unavailable};
use crate::protocol::{unix_ms, Seq};

/// Entries the shared log keeps (approximately: Redis trims in whole
/// nodes). A node that stops reading for longer than this many publishes
/// finds a hole and resyncs its clients.
pub const LOG_SIZE: usize = 100_000;

/// Publisher threads per node. Two keep one round trip in flight while the
/// next one fills; more would only add connections.
pub const PUBLISHERS: usize = 2;

/// Publishes waiting for one publisher thread; beyond this, refused.
const JOB_QUEUE: usize = 16 * 1024;

/// Replays waiting for the replayer; beyond this, answered from memory.
const REPLAY_QUEUE: usize = 1024;

/// What the Redis engine needs to start.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host[:port][/db]` (or `rediss://`, `unix://`).
    pub url: String,
    /// Hubs with the same Redis and prefix are one hub.
    pub prefix: String,
    /// Events kept per channel (`--history-size`).
    pub history_size: usize,
    /// Entries kept in the shared log.
    pub log_size: usize,
    /// Publisher threads.
    pub publishers: usize,
}

impl RedisSettings {
    /// Settings for `url` and `prefix` with the defaults.
    pub fn new(url: &str, prefix: &str, history_size: usize) -> RedisSettings {
        RedisSettings {
            url: url.to_string(),
            prefix: prefix.to_string(),
            history_size,
            log_size: LOG_SIZE,
            publishers: PUBLISHERS,
        }
    }
}

/// Why the engine could not start.
#[derive(Debug)]
pub enum StartError {
    /// The URL is not a Redis URL.
    Url(redis::RedisError),
    /// A thread could not be started.
    Spawn(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Url(e) => write!(f, "not a Redis URL: {e}"),
            StartError::Spawn(_) => write!(f, "cannot start a Redis engine thread"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Url(e) => Some(e),
            StartError::Spawn(e) => Some(e),
        }
    }
}

/// The running engine, owned by the broadcaster. Dropping it stops and
/// joins its threads (within about one `XREAD` block, 200 ms, or a
/// connect timeout, 1 s).
pub struct RedisEngine {
    /// One queue per publisher thread: a lane.
    jobs: Vec<Sender<Job>>,
    replays: Option<Sender<ReplayRequest>>,
    stop: Option<Sender<()>>,
    status: Arc<EngineStatus>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("state", &self.status.state())
            .finish_non_exhaustive()
    }
}

impl RedisEngine {
    /// Start the engine's threads. It connects in the background: until
    /// the reader has joined the hub's sequence, `status` says
    /// `connecting` and publishes are refused. `sink` receives everything
    /// the threads have to say.
    ///
    /// # Errors
    /// [`StartError::Url`] for a bad URL, [`StartError::Spawn`].
    pub fn start(
        settings: &RedisSettings,
        sink: Sink,
        status: Arc<EngineStatus>,
    ) -> Result<RedisEngine, StartError> {
        let client = Client::open(settings.url.as_str()).map_err(StartError::Url)?;
        let keys = Keys::new(&settings.prefix);
        let node = uuid::Uuid::new_v4().simple().to_string();
        status.set_state(EngineState::Connecting);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (replays_tx, replays_rx) = crossbeam_channel::bounded(REPLAY_QUEUE);
        let mut engine = RedisEngine {
            jobs: Vec::new(),
            replays: Some(replays_tx),
            stop: Some(stop_tx),
            status: status.clone(),
            threads: Vec::new(),
        };
        let reader = Reader {
            client: client.clone(),
            keys: keys.clone(),
            node: node.clone(),
            status: status.clone(),
            sink: sink.clone(),
            stop: stop_rx,
        };
        engine.spawn("redis-reader".into(), move || reader.run())?;
        for n in 0..settings.publishers.max(1) {
            let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(JOB_QUEUE);
            engine.jobs.push(jobs_tx);
            let publisher = Publisher {
                client: client.clone(),
                keys: keys.clone(),
                node: node.clone(),
                history_size: settings.history_size,
                log_size: settings.log_size.max(1),
                status: status.clone(),
                sink: sink.clone(),
                jobs: jobs_rx,
            };
            engine.spawn(format!("redis-publisher-{n}"), move || publisher.run())?;
        }
        let replayer = Replayer {
            client,
            keys,
            history_size: settings.history_size,
            sink,
            requests: replays_rx,
        };
        engine.spawn("redis-replay".into(), move || replayer.run())?;
        Ok(engine)
    }

    fn spawn(
        &mut self,
        name: String,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<(), StartError> {
        let handle = thread::Builder::new()
            .name(name)
            .stack_size(256 * 1024)
            .spawn(body)
            .map_err(StartError::Spawn)?;
        self.threads.push(handle);
        Ok(())
    }

    /// The engine's shared status.
    pub fn status(&self) -> &Arc<EngineStatus> {
        &self.status
    }

    /// Hand a publish to the publishers; never blocks. The answer comes
    /// through the sink as `Assigned` or `Refused` with `ticket`.
    ///
    /// Publishes with the same `lane` go through the same publisher thread,
    /// so they are appended in the order they were submitted even when the
    /// submitter does not wait for each answer (a client's connection id
    /// makes a good lane).
    ///
    /// # Errors
    /// [`Unavailable`] at once while Redis is unreachable, or when the
    /// publishers are `JOB_QUEUE` publishes behind.
    pub fn submit(&self, lane: u64, ticket: u64, items: Vec<Item>) -> Result<(), Unavailable> {
        if !self.status.is_serving() {
            return Err(self.unavailable());
        }
        if self.jobs.is_empty() {
            return Err(Unavailable::new("the engine is stopping"));
        }
        let jobs = &self.jobs[(lane % self.jobs.len() as u64) as usize];
        let job = Job {
            ticket,
            items,
            ts_ms: unix_ms(),
        };
        jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Unavailable::new("too many publishes waiting for Redis"),
            TrySendError::Disconnected(_) => Unavailable::new("the engine is stopping"),
        })
    }

    /// Ask for the kept history of `channels` after `since`; never blocks.
    /// The answer comes through the sink as `Replayed` with `ticket`.
    ///
    /// # Errors
    /// [`Unavailable`] while Redis is unreachable or the replayer is
    /// `REPLAY_QUEUE` requests behind.
    pub fn replay(
        &self,
        ticket: u64,
        channels: Vec<String>,
        since: Seq,
    ) -> Result<(), Unavailable> {
        if !self.status.is_serving() {
            return Err(self.unavailable());
        }
        let Some(replays) = &self.replays else {
            return Err(Unavailable::new("the engine is stopping"));
        };
        let request = ReplayRequest {
            ticket,
            channels,
            since,
        };
        replays
            .try_send(request)
            .map_err(|_| Unavailable::new("too many replays waiting for Redis"))
    }

    fn unavailable(&self) -> Unavailable {
        match self.status.last_error() {
            e if e.is_empty() => {
                Unavailable::new(format!("Redis is {}", self.status.state().as_str()))
            }
            e => Unavailable::new(e),
        }
    }
}

impl Drop for RedisEngine {
    fn drop(&mut self) {
        // Closing the queues ends the publishers and the replayer once they
        // finish what they hold; closing `stop` wakes the reader.
        self.jobs.clear();
        self.replays = None;
        self.stop = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
