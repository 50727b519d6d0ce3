//! `HubHandle`: the embedding API. Publish, broadcast an error, subscribe in
//! process, read stats, disconnect a client.
//!
//! # About threads and cloning
//!
//! A `HubHandle` is a cheap clone of a channel sender plus two `Arc`s; clone
//! it into every thread that needs it. Each call sends one command to the
//! broadcaster thread and waits for its answer, which the broadcaster gives
//! without ever waiting on anyone, so a call takes microseconds. Once the hub
//! is shutting down, calls return [`Error::ShuttingDown`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvError, RecvTimeoutError, Sender, TryRecvError};
use serde::Serialize;
use serde_json::Value;

use crate::broadcaster::{
    CloseReason, ConnectionStatus, History, HubCommand, Lifecycle, FRAME_OVERHEAD,
};
use crate::engine::{EngineStatus, Unavailable};
use crate::error::Error;
use crate::metrics::{HubStats, Metrics};
use crate::peer::ConnectionId;
use crate::protocol::{is_valid_channel_name, Event, Published, Seq, EVENT_FRAME_OVERHEAD};

/// A hub's figures at one moment, from [`HubHandle::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The last seq assigned (0 if none).
    pub seq: Seq,
    /// WebSocket connections open now.
    pub connections_active: u64,
    /// WebSocket connections since start.
    pub connections_total: u64,
    /// The most WebSocket connections open at once.
    pub connections_peak: u64,
    /// Channels the hub knows.
    pub channels: usize,
    /// Events published since start.
    pub events_published: u64,
    /// Events queued for clients and in-process subscribers since start.
    pub events_delivered: u64,
    /// Events kept across all histories.
    pub history_events: usize,
    /// Their estimated memory (bounded by `--history-bytes`).
    pub history_bytes: usize,
    /// In-process subscriptions.
    pub local_subscribers: usize,
    /// Time since start.
    pub uptime: Duration,
}

/// A cloneable handle to a running hub. See the module docs.
#[derive(Debug, Clone)]
pub struct HubHandle {
    commands: Sender<HubCommand>,
    metrics: Arc<Metrics>,
    lifecycle: Arc<Lifecycle>,
    /// Capacity of an in-process subscription (`--queue-size`).
    local_queue_size: usize,
    /// The most a batch may hold: half a client's queue.
    batch_limit: BatchLimit,
}

/// The most one array publish may hold: half of a subscriber's queue, in
/// events and in bytes of frames (docs/decisions.md, "An array publish must
/// fit in half a subscriber's queue"). A batch is served in one broadcaster
/// round, before any write pump is woken, so a bigger one would close
/// every subscriber with 4008, those that read included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimit {
    /// `--queue-size` / 2, at least 1.
    pub events: usize,
    /// `--queue-bytes` / 2.
    pub bytes: usize,
}

impl BatchLimit {
    /// Half of a queue of `queue_size` frames and `queue_bytes` bytes.
    pub fn for_queue(queue_size: usize, queue_bytes: usize) -> Self {
        BatchLimit {
            events: (queue_size / 2).max(1),
            bytes: queue_bytes / 2,
        }
    }

    /// What one event costs a subscriber's queue: its frame (the data's
    /// compact JSON, the channel name, [`EVENT_FRAME_OVERHEAD`]) and the
    /// queue's per-frame bookkeeping.
    pub fn event_bytes(channel: &str, data: &Value) -> usize {
        /// Counts what serde_json writes, keeping nothing.
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0 += bytes.len();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        // Writing into `Count` cannot fail, and a Value always serializes.
        let _ = serde_json::to_writer(&mut count, data);
        count.0 + channel.len() + EVENT_FRAME_OVERHEAD + FRAME_OVERHEAD
    }

    /// `Err(Error::BatchTooLarge)` if `events` would not fit.
    ///
    /// # Errors
    /// [`Error::BatchTooLarge`].
    pub fn check(&self, events: &[(String, Value)]) -> Result<(), Error> {
        let bytes: usize = events
            .iter()
            .map(|(channel, data)| Self::event_bytes(channel, data))
            .sum();
        if events.len() > self.events || bytes > self.bytes {
            return Err(Error::BatchTooLarge {
                events: events.len(),
                bytes,
                max_events: self.events,
                max_bytes: self.bytes,
            });
        }
        Ok(())
    }
}

impl HubHandle {
    pub(crate) fn new(
        commands: Sender<HubCommand>,
        metrics: Arc<Metrics>,
        lifecycle: Arc<Lifecycle>,
        local_queue_size: usize,
        batch_limit: BatchLimit,
    ) -> Self {
        HubHandle {
            commands,
            metrics,
            lifecycle,
            local_queue_size,
            batch_limit,
        }
    }

    /// Publish `data` to `channel`. Returns its seq and how many clients and
    /// in-process subscribers it was queued for.
    ///
    /// `data` is anything `Serialize`: a struct of the application's own, a
    /// [`serde_json::Value`], a map, a string. It is turned into JSON once,
    /// here, on the calling thread, so the broadcaster never runs the
    /// application's `Serialize` code.
    ///
    /// ```
    /// # let config = pumphub::Config { ws_addr: None, http_addr: None, ..Default::default() };
    /// # let hub = pumphub::Hub::start(config)?;
    /// # let handle = hub.handle();
    /// #[derive(serde::Serialize)]
    /// struct Price { symbol: &'static str, cents: u64 }
    ///
    /// handle.publish("prices", Price { symbol: "BTC", cents: 6_400_000 })?;
    /// handle.publish("prices", pumphub::json!({"symbol": "ETH"}))?;
    /// # Ok::<(), pumphub::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidChannel`] for a bad name; [`Error::Serialize`] if
    /// `data` has no JSON form (nothing is published then);
    /// [`Error::ShuttingDown`] once the hub is stopping; in cluster mode
    /// [`Error::Unavailable`] while the shared log (Redis) cannot be reached.
    pub fn publish<T: Serialize>(&self, channel: &str, data: T) -> Result<Published, Error> {
        check_channel(channel)?;
        let data = serde_json::to_value(data).map_err(Error::Serialize)?;
        self.publish_value(channel, data)
    }

    /// [`publish`](Self::publish) for data that is JSON already, without
    /// the copy that serializing a `Value` into a `Value` would make. The
    /// HTTP routes and the stdin feed publish through here.
    pub(crate) fn publish_value(&self, channel: &str, data: Value) -> Result<Published, Error> {
        check_channel(channel)?;
        self.ask(|reply| HubCommand::Publish {
            channel: channel.to_string(),
            data,
            reply,
        })?
        .map_err(unavailable)
    }

    /// Publish several events with consecutive seqs, in order. All names are
    /// checked, and all data serialized, first, and the batch must fit half
    /// a subscriber's queue ([`batch_limit`](Self::batch_limit)): if not,
    /// nothing is published.
    ///
    /// # Errors
    /// As [`publish`](Self::publish), and [`Error::BatchTooLarge`].
    pub fn publish_all<C, T>(
        &self,
        events: impl IntoIterator<Item = (C, T)>,
    ) -> Result<Vec<Published>, Error>
    where
        C: Into<String>,
        T: Serialize,
    {
        let mut values = Vec::new();
        for (channel, data) in events {
            let channel = channel.into();
            check_channel(&channel)?;
            values.push((
                channel,
                serde_json::to_value(data).map_err(Error::Serialize)?,
            ));
        }
        self.publish_values(values)
    }

    /// [`publish_all`](Self::publish_all) for data that is JSON already.
    pub(crate) fn publish_values(
        &self,
        events: Vec<(String, Value)>,
    ) -> Result<Vec<Published>, Error> {
        for (channel, _) in &events {
            check_channel(channel)?;
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.check_batch(&events)?;
        self.ask(|reply| HubCommand::PublishBatch { events, reply })?
            .map_err(unavailable)
    }

    /// Publish events that are JSON already and were checked (valid
    /// channels, each caller's array within [`BatchLimit`]) with one
    /// command: the guard's pipelined `POST /publish`es, grouped by it so
    /// that a group fits the limit too (a single large event may not, as
    /// with [`publish`](Self::publish)).
    pub(crate) fn publish_checked(
        &self,
        events: Vec<(String, Value)>,
    ) -> Result<Vec<Published>, Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.ask(|reply| HubCommand::PublishBatch { events, reply })?
            .map_err(unavailable)
    }

    /// The most one batch may hold (see [`BatchLimit`]).
    pub fn batch_limit(&self) -> BatchLimit {
        self.batch_limit
    }

    /// `Ok` if `events` fit one batch; else [`Error::BatchTooLarge`], and
    /// the refusal is counted in `pumphub_batches_refused_total`. For a
    /// publish path that batches by itself; [`publish_all`](Self::publish_all)
    /// calls it.
    ///
    /// # Errors
    /// [`Error::BatchTooLarge`].
    pub fn check_batch(&self, events: &[(String, Value)]) -> Result<(), Error> {
        let checked = self.batch_limit.check(events);
        if checked.is_err() {
            self.metrics.batches_refused.inc();
        }
        checked
    }

    /// Send an `error` frame to every connected WebSocket client, whatever
    /// it follows, with the next seq of the event sequence. It is not kept in
    /// history and not sent to in-process subscribers.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`] once the hub is stopping;
    /// [`Error::Unavailable`] as for [`publish`](Self::publish).
    pub fn broadcast_error(
        &self,
        code: &str,
        message: &str,
        context: Option<Value>,
    ) -> Result<Seq, Error> {
        self.ask(|reply| HubCommand::BroadcastError {
            code: code.to_string(),
            message: message.to_string(),
            context,
            reply,
        })?
        .map_err(unavailable)
    }

    /// Follow `channels` from inside the process. Events arrive on the
    /// returned [`Subscription`] in seq order. It holds at most
    /// `--queue-size` events: a subscriber that falls that far behind is
    /// dropped, and its channel disconnects once drained (the same rule as
    /// for slow WebSocket clients).
    ///
    /// # Errors
    /// [`Error::InvalidChannel`]; [`Error::ShuttingDown`].
    pub fn subscribe(&self, channels: &[&str]) -> Result<Subscription, Error> {
        self.subscribe_local(channels, None)
    }

    /// As [`subscribe`](Self::subscribe), resuming after `since`: the kept
    /// events of `channels` with a seq above `since` arrive first, in seq
    /// order, then live events, with neither a gap nor a duplicate between
    /// them (the guarantee a WebSocket client's `since` has).
    /// [`Subscription::complete`] says whether anything after `since` was
    /// no longer kept (`--history-size`), and [`Subscription::replayed`]
    /// how many events were replayed. The replay does not count against
    /// `--queue-size`.
    ///
    /// `since` is the seq of the last event the subscriber handled, which
    /// it keeps together with [`epoch`](Self::epoch): a seq means something
    /// only within the hub instance that gave it. If the epoch differs,
    /// resume from `Seq(0)` and treat it as a gap. A `since` beyond
    /// [`Stats::seq`] cannot be from this instance, and is not `complete`.
    ///
    /// ```
    /// # let config = pumphub::Config { ws_addr: None, http_addr: None, ..Default::default() };
    /// # let hub = pumphub::Hub::start(config)?;
    /// use pumphub::Seq;
    /// let handle = hub.handle();
    /// let first = handle.subscribe(&["orders"])?;
    /// handle.publish("orders", 1)?;
    /// let last_seen = first.recv().unwrap().seq;
    /// drop(first); // the component stops...
    ///
    /// handle.publish("orders", 2)?; // ...and misses this
    ///
    /// let resumed = handle.subscribe_since(&["orders"], last_seen)?;
    /// assert!(resumed.complete());
    /// assert_eq!(resumed.recv().unwrap().data, 2);
    /// # Ok::<(), pumphub::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidChannel`]; [`Error::ShuttingDown`].
    pub fn subscribe_since(&self, channels: &[&str], since: Seq) -> Result<Subscription, Error> {
        self.subscribe_local(channels, Some(since))
    }

    fn subscribe_local(
        &self,
        channels: &[&str],
        since: Option<Seq>,
    ) -> Result<Subscription, Error> {
        let mut names: Vec<String> = Vec::with_capacity(channels.len());
        for channel in channels {
            check_channel(channel)?;
            // A name given twice would replay its events twice.
            if !names.iter().any(|n| n == channel) {
                names.push(channel.to_string());
            }
        }
        let subscribed = self.ask(|reply| HubCommand::SubscribeLocal {
            channels: names,
            since,
            capacity: self.local_queue_size,
            reply,
        })?;
        Ok(Subscription {
            events: subscribed.events,
            key: subscribed.key,
            replayed: subscribed.replayed,
            complete: subscribed.complete,
            commands: self.commands.clone(),
        })
    }

    /// The hub's figures now.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`] once the broadcaster has stopped.
    pub fn stats(&self) -> Result<Stats, Error> {
        let hub = self.hub_stats()?;
        Ok(Stats {
            seq: hub.seq,
            connections_active: self.metrics.connections_active(),
            connections_total: self.metrics.connections_total.get(),
            connections_peak: self.metrics.connections_peak(),
            channels: hub.channels,
            events_published: self.metrics.events_published.get(),
            events_delivered: self.metrics.events_delivered.get(),
            history_events: hub.history_events,
            history_bytes: hub.history_bytes,
            local_subscribers: hub.local_subscribers,
            uptime: self.uptime(),
        })
    }

    /// Up to `limit` kept events of `channel` with a seq after `since`,
    /// oldest first (at most [`MAX_HISTORY_PAGE`](crate::MAX_HISTORY_PAGE)
    /// per call), and whether
    /// they are all there: [`History::complete`] is false if events after
    /// `since` were already evicted (then [`History::oldest`] says from
    /// where the history is whole), and [`History::more`] is true if the
    /// page stopped at the limit. This is what `GET /history` serves.
    ///
    /// ```
    /// # use pumphub::{Config, Hub, Seq};
    /// # let mut config = Config::default();
    /// # config.ws_addr = Some("127.0.0.1:0".into());
    /// # config.http_addr = Some("127.0.0.1:0".into());
    /// # let hub = Hub::start(config)?;
    /// let handle = hub.handle();
    /// for n in 1..=3 {
    ///     handle.publish("news", serde_json::json!(n))?;
    /// }
    /// let page = handle.history("news", Seq(1), 100)?;
    /// let seqs: Vec<u64> = page.events().map(|e| e.seq.0).collect();
    /// assert_eq!(seqs, [2, 3]);
    /// assert!(page.complete && !page.more);
    /// # Ok::<(), pumphub::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidChannel`]; [`Error::ShuttingDown`] once the
    /// broadcaster has stopped (it still answers while draining).
    pub fn history(&self, channel: &str, since: Seq, limit: usize) -> Result<History, Error> {
        check_channel(channel)?;
        self.ask_even_when_stopping(|reply| HubCommand::History {
            channel: channel.to_string(),
            since,
            limit,
            reply,
        })
    }

    /// One entry per WebSocket connection, as `GET /status` shows them.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`] once the broadcaster has stopped.
    pub fn connections(&self) -> Result<Vec<ConnectionStatus>, Error> {
        self.ask_even_when_stopping(|reply| HubCommand::Status { reply })
    }

    /// Close one client's connection (code 1000). Returns false if no such
    /// connection exists. The client may reconnect and resume.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`].
    pub fn disconnect(&self, id: ConnectionId) -> Result<bool, Error> {
        self.ask(|reply| HubCommand::Kick {
            id,
            reason: CloseReason::Disconnected,
            reply,
        })
    }

    /// The hub's epoch, as sent in `welcome`: this process's own, or in
    /// cluster mode the one all nodes share (once the node joined it).
    pub fn epoch(&self) -> String {
        match self.lifecycle.engine.epoch() {
            shared if !shared.is_empty() => shared,
            _ => self.lifecycle.epoch.clone(),
        }
    }

    /// The engine's status: `local` for one node; in cluster mode the
    /// state of Redis, reconnections and lag, for `/health`, `/status` and
    /// `/metrics`.
    pub(crate) fn engine_status(&self) -> &EngineStatus {
        &self.lifecycle.engine
    }

    /// True once graceful shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.lifecycle.shutting_down.load(Ordering::Acquire)
    }

    /// Time since the hub started.
    pub fn uptime(&self) -> Duration {
        self.lifecycle.started_at.elapsed()
    }

    /// Every metric in Prometheus text format, as `GET /metrics` serves it.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`] once the broadcaster has stopped.
    pub fn render_metrics(&self) -> Result<String, Error> {
        let hub = self.hub_stats()?;
        let mut text = self.metrics.render(&hub, self.uptime());
        self.lifecycle.engine.render_metrics(&mut text);
        Ok(text)
    }

    pub(crate) fn hub_stats(&self) -> Result<HubStats, Error> {
        self.ask_even_when_stopping(|reply| HubCommand::Stats { reply })
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Send a command carrying a one-shot reply channel and wait for the
    /// answer. Refused once shutdown has begun.
    fn ask<T>(&self, command: impl FnOnce(Sender<T>) -> HubCommand) -> Result<T, Error> {
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        self.ask_even_when_stopping(command)
    }

    /// As `ask`, for read-only questions that still make sense while the
    /// hub drains (stats, status).
    fn ask_even_when_stopping<T>(
        &self,
        command: impl FnOnce(Sender<T>) -> HubCommand,
    ) -> Result<T, Error> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.commands
            .send(command(reply_tx))
            .map_err(|_| Error::ShuttingDown)?;
        // The broadcaster answers every command it takes; the channel only
        // disconnects if it stopped before taking this one.
        reply_rx.recv().map_err(|_| Error::ShuttingDown)
    }
}

fn unavailable(refused: Unavailable) -> Error {
    Error::Unavailable {
        reason: refused.reason,
    }
}

fn check_channel(name: &str) -> Result<(), Error> {
    if is_valid_channel_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidChannel {
            name: name.to_string(),
        })
    }
}

/// An in-process subscription from [`HubHandle::subscribe`]. Dropping it
/// unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    events: Receiver<Event>,
    key: u64,
    replayed: usize,
    complete: bool,
    commands: Sender<HubCommand>,
}

impl Subscription {
    /// How many kept events [`HubHandle::subscribe_since`] replayed ahead
    /// of the live ones; 0 for [`HubHandle::subscribe`].
    pub fn replayed(&self) -> usize {
        self.replayed
    }

    /// False if [`HubHandle::subscribe_since`] could not replay everything
    /// after its `since`: events were no longer kept, or `since` was not a
    /// seq of this hub instance. True for [`HubHandle::subscribe`].
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// Wait for the next event. `Err` once the subscription has ended (the
    /// hub shut down, or this subscriber fell behind by `--queue-size`).
    pub fn recv(&self) -> Result<Event, RecvError> {
        self.events.recv()
    }

    /// Wait at most `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        self.events.recv_timeout(timeout)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Result<Event, TryRecvError> {
        self.events.try_recv()
    }

    /// The underlying channel, for `select!` with other channels.
    pub fn receiver(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Iterate over events until the subscription ends.
    pub fn iter(&self) -> crossbeam_channel::Iter<'_, Event> {
        self.events.iter()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self
            .commands
            .send(HubCommand::UnsubscribeLocal { key: self.key });
    }
}
