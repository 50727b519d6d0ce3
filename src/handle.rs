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
use serde_json::Value;

use crate::broadcaster::{CloseReason, ConnectionStatus, HubCommand, Lifecycle};
use crate::error::Error;
use crate::metrics::{HubStats, Metrics};
use crate::peer::ConnectionId;
use crate::protocol::{is_valid_channel_name, Event, Published, Seq};

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
}

impl HubHandle {
    pub(crate) fn new(
        commands: Sender<HubCommand>,
        metrics: Arc<Metrics>,
        lifecycle: Arc<Lifecycle>,
        local_queue_size: usize,
    ) -> Self {
        HubHandle {
            commands,
            metrics,
            lifecycle,
            local_queue_size,
        }
    }

    /// Publish `data` to `channel`. Returns its seq and how many clients and
    /// in-process subscribers it was queued for.
    ///
    /// # Errors
    /// [`Error::InvalidChannel`] for a bad name; [`Error::ShuttingDown`] once
    /// the hub is stopping.
    pub fn publish(&self, channel: &str, data: Value) -> Result<Published, Error> {
        check_channel(channel)?;
        self.ask(|reply| HubCommand::Publish {
            channel: channel.to_string(),
            data,
            reply,
        })
    }

    /// Publish several events with consecutive seqs, in order. All names are
    /// checked first: if one is bad, nothing is published.
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub fn publish_all(&self, events: Vec<(String, Value)>) -> Result<Vec<Published>, Error> {
        for (channel, _) in &events {
            check_channel(channel)?;
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.ask(|reply| HubCommand::PublishBatch { events, reply })
    }

    /// Send an `error` frame to every connected WebSocket client, whatever
    /// it follows, with the next seq of the event sequence. It is not kept in
    /// history and not sent to in-process subscribers.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`] once the hub is stopping.
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
        })
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
        for channel in channels {
            check_channel(channel)?;
        }
        let capacity = self.local_queue_size;
        let (events_tx, events_rx) = crossbeam_channel::bounded(capacity);
        let key = self.ask(|reply| HubCommand::SubscribeLocal {
            channels: channels.iter().map(|c| c.to_string()).collect(),
            events: events_tx,
            reply,
        })?;
        Ok(Subscription {
            events: events_rx,
            key,
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
            local_subscribers: hub.local_subscribers,
            uptime: self.uptime(),
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

    /// This hub instance's epoch, as sent in `welcome`.
    pub fn epoch(&self) -> &str {
        &self.lifecycle.epoch
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
        Ok(self.metrics.render(&hub, self.uptime()))
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
    commands: Sender<HubCommand>,
}

impl Subscription {
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
