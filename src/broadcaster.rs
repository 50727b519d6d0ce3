//! The broadcaster: one thread that owns the hub's state and is the only one
//! to change it.
//!
//! It owns the connected clients, their subscriptions, every channel's
//! history and the sequence counter. Everyone else sends it a
//! [`HubCommand`] and, where needed, waits for the answer; the broadcaster
//! never waits on anyone. That single owner is why no lock guards hub state,
//! why seqs are handed out in one order, and why a replay and the live stream
//! that follows it can neither overlap nor leave a gap: both happen inside
//! one command.
//!
//! A published event goes: `publish` → next seq → serialized once into an
//! [`EncodedEvent`] → the channel's history → a push that never blocks into
//! every subscriber's [`OutboundQueue`] → the client's write pump
//! (`ws/write_pump.rs`) → its socket.
//!
//! This file holds the state, the command loop and connections; the
//! `impl Broadcaster` continues in `broadcaster/subscriptions.rs`
//! (subscribe, unsubscribe, replay) and `broadcaster/publishing.rs`
//! (publish, broadcast errors). The folder also holds what the broadcaster
//! hands out to the layers above: its commands (`command.rs`), the
//! per-client outbound queue (`outbound.rs`), what it keeps per client
//! (`registry.rs`), its snapshots (`stats.rs`), the hub's lifecycle flags
//! (`lifecycle.rs`). It imports only the layers below: `protocol`,
//! `config`, `peer`, `metrics`.

mod channels;
#[cfg(feature = "redis")]
mod cluster;
mod command;
mod encoded_event;
mod history;
mod lifecycle;
mod outbound;
mod publishing;
mod registry;
mod stats;
mod subscriptions;

#[cfg(feature = "redis")]
pub(crate) use cluster::engine_sink;
pub(crate) use command::{ClientRequest, HubCommand, LocalSubscribed};
pub(crate) use encoded_event::EncodedEvent;
pub use history::{History, MAX_HISTORY_PAGE};
pub(crate) use lifecycle::Lifecycle;
pub(crate) use outbound::{
    outbound_queue, OutboundFrame, OutboundQueue, OutboundReceiver, QueueFull, QueueLimits,
    FRAME_OVERHEAD,
};
pub use registry::{CloseReason, Connection, ConnectionStats};
pub use stats::ConnectionStatus;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{debug, warn};

use crate::engine::Engine;
use crate::metrics::{HubStats, Metrics};
use crate::peer::ConnectionId;
use crate::protocol::{self, Event, RequestError, Seq};
use history::ChannelHistory;

/// Broadcaster settings, copied from the config at start.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Events kept per channel (`--history-size`).
    pub history_size: usize,
    /// What all histories together may cost in memory (`--history-bytes`).
    pub history_bytes: usize,
    /// Channels kept at most, beyond those with subscribers (`--max-channels`).
    pub max_channels: usize,
    /// How long a channel nobody follows or publishes to is kept
    /// (`--channel-idle-ms`); `None`: for ever.
    pub channel_idle: Option<Duration>,
    /// Channels one connection may follow (`--max-subscriptions`).
    pub max_subscriptions: usize,
    /// Ping period announced in `welcome`, in ms (0 = off).
    pub heartbeat_ms: u64,
    /// This hub instance's id, sent as `epoch` in `welcome`.
    pub epoch: String,
}

/// A subscriber: a WebSocket client, or an in-process subscription made
/// through the embedding API.
enum Member {
    Client(Client),
    Local(LocalSubscriber),
}

struct Client {
    connection: Arc<Connection>,
    queue: OutboundQueue,
    channels: Vec<Arc<str>>,
    /// The newest seq queued for this client. Replay never goes below it,
    /// so each client sees strictly increasing seqs.
    last_sent: Seq,
    /// Set once the client was kicked; it gets nothing more.
    closing: bool,
    /// Already in `Broadcaster::to_wake` for this round.
    wake_pending: bool,
}

impl Client {
    /// Queue a counted frame and note that this client's write pump must
    /// be woken at the end of the round. Every push from the broadcaster
    /// goes through here or `push_uncounted`, so none can forget the wake.
    fn push(
        &mut self,
        slot: usize,
        frame: OutboundFrame,
        to_wake: &mut Vec<usize>,
    ) -> Result<(), QueueFull> {
        self.queue.push(frame)?;
        self.note_wake(slot, to_wake);
        Ok(())
    }

    /// As `push`, without counting against the queue limit.
    fn push_uncounted(&mut self, slot: usize, frame: OutboundFrame, to_wake: &mut Vec<usize>) {
        self.queue.push_uncounted(frame);
        self.note_wake(slot, to_wake);
    }

    /// Queue replayed events, uncounted, under one lock. The caller kept
    /// them within the queue's replay budget.
    fn push_replay(
        &mut self,
        slot: usize,
        frames: impl ExactSizeIterator<Item = OutboundFrame>,
        to_wake: &mut Vec<usize>,
    ) {
        if frames.len() > 0 {
            self.queue.push_uncounted_all(frames);
            self.note_wake(slot, to_wake);
        }
    }

    fn note_wake(&mut self, slot: usize, to_wake: &mut Vec<usize>) {
        if !self.wake_pending {
            self.wake_pending = true;
            to_wake.push(slot);
        }
    }
}

struct LocalSubscriber {
    key: u64,
    events: Sender<Event>,
    channels: Vec<Arc<str>>,
}

impl Member {
    fn channels(&self) -> &[Arc<str>] {
        match self {
            Member::Client(c) => &c.channels,
            Member::Local(l) => &l.channels,
        }
    }
}

struct Channel {
    /// Slots in `Broadcaster::members`.
    subscribers: Vec<usize>,
    history: ChannelHistory,
    /// While nobody follows it: its key in `Broadcaster::unfollowed`.
    unfollowed_at: Option<(Instant, u64)>,
}

/// The broadcaster thread's state. Built by `Hub::start`, then moved into
/// its thread, which runs [`Broadcaster::run`] until `HubCommand::Stop`.
pub struct Broadcaster {
    settings: HubSettings,
    metrics: Arc<Metrics>,
    commands_rx: Receiver<HubCommand>,
    seq: Seq,
    /// A slab: `Channel::subscribers` holds indexes into it, so fan-out does
    /// no hashing per delivery.
    members: Vec<Option<Member>>,
    free_slots: Vec<usize>,
    clients_by_id: HashMap<ConnectionId, usize>,
    locals_by_key: HashMap<u64, usize>,
    next_local_key: u64,
    channels: HashMap<Arc<str>, Channel>,
    /// Channels nobody follows, by when they were last used: the first is
    /// the next to forget (see `broadcaster/channels.rs`).
    unfollowed: BTreeMap<(Instant, u64), Arc<str>>,
    /// Makes the keys of `unfollowed` unique.
    unfollowed_count: u64,
    /// The newest seq of any channel forgotten so far.
    forgotten: Seq,
    /// Every kept event (and some already evicted), oldest first: which
    /// to evict next when histories outgrow `--history-bytes`.
    history_order: VecDeque<(Seq, Arc<str>)>,
    /// What the kept events cost in memory, all channels together.
    history_bytes: usize,
    /// How many events are kept, all channels together.
    history_events: usize,
    /// Commands served after the others of a round: replays, and whatever
    /// the same connection sent after one (see `admit`).
    deferred: VecDeque<HubCommand>,
    /// How many commands of each connection wait in `deferred`.
    deferred_per_connection: HashMap<ConnectionId, usize>,
    /// Set by `BeginShutdown`: late connections get the shutdown sequence at once.
    shutdown: Option<(Instant, u64)>,
    /// The largest queue depth of clients already gone, for metrics.
    departed_high_water: usize,
    /// Clients pushed to during this round; each is woken once at its end.
    to_wake: Vec<usize>,
    /// Who orders events: this thread (`Memory`) or the shared log.
    engine: Engine,
    /// What cluster mode keeps besides (`cluster.rs`).
    #[cfg(feature = "redis")]
    shared: cluster::Shared,
}

/// Requests served in one round before the write pumps are woken (a batch
/// counts as many as it carries, and is never split). Bounds how long the
/// first event of a busy round waits for its wake-up.
const MAX_ROUND: usize = 32;

/// A round with more wake-ups than this shares them with the wake helpers.
/// Below it, handing work over (itself a wake-up) is not worth it.
const SHARE_WAKES_ABOVE: usize = 64;

impl Broadcaster {
    /// A broadcaster that will serve `commands_rx`, with events ordered
    /// by `engine`.
    pub fn new(
        settings: HubSettings,
        metrics: Arc<Metrics>,
        commands_rx: Receiver<HubCommand>,
        engine: Engine,
    ) -> Self {
        Broadcaster {
            settings,
            metrics,
            commands_rx,
            seq: Seq(0),
            members: Vec::new(),
            free_slots: Vec::new(),
            clients_by_id: HashMap::new(),
            locals_by_key: HashMap::new(),
            next_local_key: 1,
            channels: HashMap::new(),
            unfollowed: BTreeMap::new(),
            unfollowed_count: 0,
            forgotten: Seq(0),
            history_order: VecDeque::new(),
            history_bytes: 0,
            history_events: 0,
            deferred: VecDeque::new(),
            deferred_per_connection: HashMap::new(),
            shutdown: None,
            departed_high_water: 0,
            to_wake: Vec::new(),
            engine,
            #[cfg(feature = "redis")]
            shared: cluster::Shared::default(),
        }
    }

    /// Serve commands until `Stop`, or until every sender is gone.
    ///
    /// Commands are served in rounds: the first one waited for, then more
    /// that are already waiting, up to `MAX_ROUND` requests in all. Pushes during a round do
    /// not wake anyone; at its end each write pump that got frames is woken
    /// once (see `outbound.rs` for why wake-ups are worth saving). At a low
    /// rate a round is one command, so nothing waits; under load one wake-up
    /// carries many events.
    pub fn run(mut self) {
        // Wake helpers: waking a parked thread is a system call that costs
        // ~11 us when the thread sleeps on another CPU, and a fan-out to
        // 1,000 clients needs 1,000 of them. One helper per extra CPU takes
        // a share, so wake-ups happen on every CPU at once. They live in a
        // scope: when the broadcaster stops, its senders drop, the helpers'
        // loops end, and the scope joins them.
        let helpers = thread::available_parallelism().map_or(1, |n| n.get()) - 1;
        thread::scope(|scope| {
            let mut helper_txs = Vec::new();
            for n in 0..helpers.min(3) {
                let (tx, rx) = crossbeam_channel::unbounded::<Vec<OutboundQueue>>();
                let spawned = thread::Builder::new()
                    .name(format!("wake-helper-{n}"))
                    .stack_size(64 * 1024)
                    .spawn_scoped(scope, move || {
                        for share in rx {
                            share.iter().for_each(OutboundQueue::wake);
                        }
                    });
                // Without a helper the broadcaster simply wakes everyone.
                if spawned.is_ok() {
                    helper_txs.push(tx);
                }
            }
            self.serve(&helper_txs);
        });
        debug!("broadcaster stopped at seq {}", self.seq);
    }

    fn serve(&mut self, helpers: &[Sender<Vec<OutboundQueue>>]) {
        let sweep_every = self
            .settings
            .channel_idle
            .map(|idle| (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
        let mut next_sweep = sweep_every.map(|every| Instant::now() + every);
        let mut stopping = false;
        while !stopping {
            // With deferred work, take only what is already waiting; else
            // wait, until the next idle sweep if there is one.
            let first = if !self.deferred.is_empty() {
                self.commands_rx.try_recv().ok()
            } else if let Some(at) = next_sweep {
                let left = at.saturating_duration_since(Instant::now());
                match self.commands_rx.recv_timeout(left) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match self.commands_rx.recv() {
                    Ok(command) => Some(command),
                    Err(_) => break,
                }
            };
            let mut next = first;
            let mut served = 0;
            while let Some(command) = next.take() {
                if let HubCommand::Stop = command {
                    stopping = true;
                    break;
                }
                served += command.weight();
                self.admit(command);
                if served < MAX_ROUND {
                    next = self.commands_rx.try_recv().ok();
                }
            }
            self.serve_deferred();
            // Everything sent before `Stop` is served, deferred or not.
            while stopping && !self.deferred.is_empty() {
                self.serve_deferred();
            }
            if let (Some(at), Some(every)) = (next_sweep, sweep_every) {
                let now = Instant::now();
                if now >= at {
                    self.forget_idle_channels(now);
                    next_sweep = Some(now + every);
                }
            }
            self.wake_writers(helpers);
        }
    }

    /// Apply `command` now, or defer it to the end of the round. A replay
    /// (a `subscribe` with `since`, or a connect with `?since=`) is
    /// deferred, and so is every later command of a connection that has
    /// one waiting, so that each connection's commands keep their order.
    /// Replays are bounded (see `replay`), but hundreds arriving at once
    /// would still hold up everyone's events behind them; deferred, they
    /// are served one per round, after the round's other commands.
    fn admit(&mut self, command: HubCommand) {
        let owner = command.connection();
        let behind_deferred =
            owner.is_some_and(|id| self.deferred_per_connection.contains_key(&id));
        if behind_deferred || command.is_replay() {
            if let Some(id) = owner {
                *self.deferred_per_connection.entry(id).or_insert(0) += 1;
            }
            self.deferred.push_back(command);
        } else {
            self.apply(command);
        }
    }

    /// Serve deferred commands in order, up to and including one replay.
    fn serve_deferred(&mut self) {
        while let Some(command) = self.deferred.pop_front() {
            if let Some(id) = command.connection() {
                if let Some(waiting) = self.deferred_per_connection.get_mut(&id) {
                    *waiting -= 1;
                    if *waiting == 0 {
                        self.deferred_per_connection.remove(&id);
                    }
                }
            }
            let replay = command.is_replay();
            self.apply(command);
            if replay {
                break;
            }
        }
    }

    /// Wake every write pump that got frames this round, once each, sharing
    /// a big round with the wake helpers.
    fn wake_writers(&mut self, helpers: &[Sender<Vec<OutboundQueue>>]) {
        let total = self.to_wake.len();
        let share = if total > SHARE_WAKES_ABOVE {
            total / (helpers.len() + 1)
        } else {
            0
        };
        let mut slots = self.to_wake.drain(..);
        for helper in helpers.iter().filter(|_| share > 0) {
            let mut queues = Vec::with_capacity(share);
            for slot in slots.by_ref().take(share) {
                if let Some(Member::Client(client)) = &mut self.members[slot] {
                    client.wake_pending = false;
                    queues.push(client.queue.clone());
                }
            }
            if let Err(unsent) = helper.send(queues) {
                unsent.0.iter().for_each(OutboundQueue::wake);
            }
        }
        for slot in slots {
            if let Some(Member::Client(client)) = &mut self.members[slot] {
                client.wake_pending = false;
                client.queue.wake();
            }
        }
    }

    fn apply(&mut self, command: HubCommand) {
        // The seam: with the shared log, publishing, a replay that this
        // node's memory cannot cover, and the engine's news take the road in
        // `cluster.rs`; everything else (and everything with the memory
        // engine) is served right here.
        let command = match &self.engine {
            Engine::Memory => command,
            #[cfg(feature = "redis")]
            Engine::Redis(_) => match self.apply_shared(command) {
                Some(command) => command,
                None => return,
            },
        };
        match command {
            HubCommand::Connect {
                connection,
                queue,
                initial,
                done,
            } => {
                self.connect(connection, queue, initial);
                let _ = done.try_send(());
            }
            HubCommand::Disconnect { id } => self.disconnect(id),
            HubCommand::ClientBatch { id, requests, done } => {
                let slot = self.clients_by_id.get(&id).copied();
                for request in requests {
                    self.serve_client_request(slot, request);
                }
                let _ = done.try_send(());
            }
            HubCommand::Channels { id, reply } => {
                let channels = match self.clients_by_id.get(&id) {
                    Some(&slot) => self.members[slot]
                        .as_ref()
                        .map(|member| member.channels().iter().map(|c| c.to_string()).collect())
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                let _ = reply.try_send(channels);
            }
            HubCommand::Publish {
                channel,
                data,
                reply,
            } => {
                let published = self.publish(&channel, data);
                let _ = reply.try_send(Ok(published));
            }
            HubCommand::PublishBatch { events, reply } => {
                let results = events
                    .into_iter()
                    .map(|(channel, data)| self.publish(&channel, data))
                    .collect();
                let _ = reply.try_send(Ok(results));
            }
            HubCommand::BroadcastError {
                code,
                message,
                context,
                reply,
            } => {
                let seq = self.broadcast_error(&code, &message, context.as_ref());
                let _ = reply.try_send(Ok(seq));
            }
            HubCommand::SubscribeLocal {
                channels,
                since,
                capacity,
                reply,
            } => {
                let subscribed = self.subscribe_local(&channels, since, capacity);
                let key = subscribed.key;
                // If the asker gave up, its subscription must not linger.
                if reply.try_send(subscribed).is_err() {
                    if let Some(slot) = self.locals_by_key.remove(&key) {
                        self.remove_member(slot);
                    }
                }
            }
            HubCommand::UnsubscribeLocal { key } => {
                if let Some(slot) = self.locals_by_key.remove(&key) {
                    self.remove_member(slot);
                }
            }
            HubCommand::Kick { id, reason, reply } => {
                let found = match self.clients_by_id.get(&id) {
                    Some(&slot) => {
                        self.kick(slot, reason);
                        true
                    }
                    None => false,
                };
                let _ = reply.try_send(found);
            }
            HubCommand::Stats { reply } => {
                let _ = reply.try_send(self.stats());
            }
            HubCommand::History {
                channel,
                since,
                limit,
                reply,
            } => {
                let _ = reply.try_send(self.history_page(&channel, since, limit));
            }
            HubCommand::Status { reply } => {
                let _ = reply.try_send(self.status());
            }
            HubCommand::BeginShutdown {
                deadline,
                reconnect_ms,
            } => self.begin_shutdown(deadline, reconnect_ms),
            // Engine news exists only with the shared log, served above.
            HubCommand::Stop | HubCommand::Engine(_) => {}
        }
    }

    /// One request of a client's batch. `slot` is the client (gone only if
    /// it disconnected meanwhile: its events are still published, as they
    /// were sent, but nobody is answered).
    fn serve_client_request(&mut self, slot: Option<usize>, request: ClientRequest) {
        match request {
            ClientRequest::Subscribe {
                request_id,
                channels,
                since,
            } => {
                if let Some(slot) = slot {
                    self.subscribe_client(slot, request_id.as_ref(), &channels, since);
                }
            }
            ClientRequest::Unsubscribe {
                request_id,
                channels,
            } => {
                if let Some(slot) = slot {
                    self.unsubscribe(slot, &channels);
                    let reply = protocol::encode_unsubscribed(request_id.as_ref(), &channels);
                    self.reply_to(slot, reply);
                }
            }
            ClientRequest::Publish {
                request_id,
                channel,
                data,
            } => {
                let published = self.publish(&channel, data);
                if let Some(slot) = slot {
                    let reply = protocol::encode_published(
                        request_id.as_ref(),
                        published.seq.0,
                        published.delivered,
                    );
                    self.reply_to(slot, reply);
                }
            }
            ClientRequest::Answered(frame) => {
                if let Some(slot) = slot {
                    self.queue_for(slot, frame);
                }
            }
        }
    }

    // ----- connections -----------------------------------------------------

    fn connect(
        &mut self,
        connection: Arc<Connection>,
        queue: OutboundQueue,
        initial: Option<(Vec<String>, Option<u64>)>,
    ) {
        let id = connection.info.id;
        let welcome = protocol::encode_welcome(
            &id.to_string(),
            &self.settings.epoch,
            self.seq.0,
            self.settings.heartbeat_ms,
        );
        let slot = self.insert_member(Member::Client(Client {
            connection,
            queue,
            channels: Vec::new(),
            last_sent: Seq(0),
            closing: false,
            wake_pending: false,
        }));
        self.clients_by_id.insert(id, slot);
        if let Some(Member::Client(client)) = &mut self.members[slot] {
            // The queue is new and empty, so this push cannot fail.
            let _ = client.push(slot, OutboundFrame::Text(welcome.into()), &mut self.to_wake);
        }
        if let Some((deadline, reconnect_ms)) = self.shutdown {
            self.send_shutdown(slot, deadline, reconnect_ms);
            return;
        }
        if let Some((channels, since)) = initial {
            self.subscribe_client(slot, None, &channels, since);
        }
    }

    fn disconnect(&mut self, id: ConnectionId) {
        if let Some(slot) = self.clients_by_id.remove(&id) {
            if let Some(Member::Client(client)) = &self.members[slot] {
                self.departed_high_water = self.departed_high_water.max(client.queue.high_water());
            }
            self.remove_member(slot);
        }
    }

    fn insert_member(&mut self, member: Member) -> usize {
        match self.free_slots.pop() {
            Some(slot) => {
                self.members[slot] = Some(member);
                slot
            }
            None => {
                self.members.push(Some(member));
                self.members.len() - 1
            }
        }
    }

    /// Take a member out of every channel it follows and free its slot.
    fn remove_member(&mut self, slot: usize) {
        let Some(member) = self.members[slot].take() else {
            return;
        };
        for name in member.channels() {
            self.leave_channel(slot, name);
        }
        self.free_slots.push(slot);
    }

    fn leave_channel(&mut self, slot: usize, name: &str) {
        let Some((key, _)) = self.channels.get_key_value(name) else {
            return;
        };
        let key = key.clone();
        let Some(channel) = self.channels.get_mut(&key) else {
            return;
        };
        if let Some(pos) = channel.subscribers.iter().position(|&s| s == slot) {
            channel.subscribers.swap_remove(pos);
        }
        if !channel.subscribers.is_empty() {
            return;
        }
        // A channel nobody follows that holds nothing the hub does not
        // already remember carries no information; forget it at once, so
        // subscribe churn cannot grow the map. Any other waits, unfollowed,
        // until it is idle or its place is needed.
        if channel.history.is_empty() && channel.history.is_complete_after(self.forgotten) {
            if let Some(at) = channel.unfollowed_at {
                self.unfollowed.remove(&at);
            }
            self.channels.remove(&key);
        } else {
            self.mark_unfollowed(&key, Instant::now());
        }
    }

    /// Close a client with `reason`. Returns true if this kick is the one
    /// that closes it (not already closing, and its read pump did not kick
    /// it first).
    fn kick(&mut self, slot: usize, reason: CloseReason) -> bool {
        if let Some(Member::Client(client)) = &mut self.members[slot] {
            if !client.closing {
                client.closing = true;
                return client.queue.kick(reason);
            }
        }
        false
    }

    /// Queue a reply for a client. A reply counts against the queue like an
    /// event: a client that asks and never reads is a slow consumer too.
    fn reply_to(&mut self, slot: usize, text: String) {
        self.queue_for(slot, OutboundFrame::Text(text.into()));
    }

    /// Answer a client's request with an `error` frame, counted in the
    /// metrics and remembered as the connection's last error (`/status`).
    fn reply_error(&mut self, slot: usize, error: &RequestError) {
        self.metrics.count_error_reply(error.code);
        if let Some(Member::Client(client)) = &self.members[slot] {
            client.connection.stats.record_error(&error.message);
        }
        self.reply_to(slot, protocol::encode_request_error(error));
    }

    /// Queue a counted frame for a client, closing it with 4008 if its queue
    /// is full.
    fn queue_for(&mut self, slot: usize, frame: OutboundFrame) {
        let Some(Member::Client(client)) = &mut self.members[slot] else {
            return;
        };
        if client.closing {
            return;
        }
        if client.push(slot, frame, &mut self.to_wake).is_err() {
            self.close_slow_consumer(slot);
        }
    }

    fn close_slow_consumer(&mut self, slot: usize) {
        // Counted and logged only by the kick that wins: the client's read
        // pump may have found the queue full first (and said so itself).
        if self.kick(slot, CloseReason::SlowConsumer) {
            if let Some(Member::Client(client)) = &self.members[slot] {
                warn!(
                    "connection {} from {}: outbound queue full, closing with 4008",
                    client.connection.info.id,
                    client.connection.info.describe_peer()
                );
            }
            self.metrics.slow_consumer_disconnects.inc();
        }
    }

    // ----- shutdown and reporting -----------------------------------------

    fn begin_shutdown(&mut self, deadline: Instant, reconnect_ms: u64) {
        self.shutdown = Some((deadline, reconnect_ms));
        let slots: Vec<usize> = self.clients_by_id.values().copied().collect();
        for slot in slots {
            self.send_shutdown(slot, deadline, reconnect_ms);
        }
        // In-process subscribers end when their sender is dropped.
        let locals: Vec<usize> = self.locals_by_key.drain().map(|(_, slot)| slot).collect();
        for slot in locals {
            self.remove_member(slot);
        }
    }

    fn send_shutdown(&mut self, slot: usize, deadline: Instant, reconnect_ms: u64) {
        if let Some(Member::Client(client)) = &mut self.members[slot] {
            client.queue.set_deadline(deadline);
            let frame = protocol::encode_shutdown("server shutting down", reconnect_ms);
            // Behind what is already queued, so queued events are flushed first.
            let to_wake = &mut self.to_wake;
            client.push_uncounted(slot, OutboundFrame::Text(frame.into()), to_wake);
            client.push_uncounted(slot, OutboundFrame::Close(CloseReason::Shutdown), to_wake);
        }
    }

    fn stats(&self) -> HubStats {
        let mut queue_high_water = self.departed_high_water;
        for member in self.members.iter().flatten() {
            if let Member::Client(client) = member {
                queue_high_water = queue_high_water.max(client.queue.high_water());
            }
        }
        HubStats {
            seq: self.seq,
            connections: self.clients_by_id.len(),
            local_subscribers: self.locals_by_key.len(),
            channels: self.channels.len(),
            history_events: self.history_events,
            history_bytes: self.history_bytes,
            forgotten_seq: self.forgotten,
            deferred: self.deferred.len(),
            queue_high_water,
        }
    }

    fn status(&self) -> Vec<ConnectionStatus> {
        self.clients_by_id
            .values()
            .filter_map(|&slot| match &self.members[slot] {
                Some(Member::Client(client)) => Some(ConnectionStatus::new(
                    &client.connection,
                    client.channels.iter().map(|c| c.to_string()).collect(),
                    client.queue.queued(),
                )),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::peer::ConnectionInfo;
    use crate::protocol::unix_ms;

    fn settings() -> HubSettings {
        HubSettings {
            history_size: 16,
            history_bytes: 1 << 20,
            max_channels: 100,
            channel_idle: None,
            max_subscriptions: 10,
            heartbeat_ms: 0,
            epoch: "e".into(),
        }
    }

    /// The `type` (and `seq`, for events) of every frame queued so far.
    fn frames(receiver: &OutboundReceiver) -> Vec<String> {
        let mut batch = VecDeque::new();
        receiver.take_all(&mut batch);
        batch
            .iter()
            .map(|frame| match frame {
                OutboundFrame::Event(event) => format!("event {}", event.seq()),
                OutboundFrame::Text(text) => {
                    let value: serde_json::Value = serde_json::from_str(text).unwrap();
                    value["type"].as_str().unwrap().to_string()
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// A replay is served after the round's other commands, and the same
    /// connection's later commands wait behind it: its `published` still
    /// comes after its `subscribed`. (A read pump that pipelines requests
    /// relies on this.)
    #[test]
    fn a_connections_commands_keep_their_order_behind_a_deferred_replay() {
        let (commands, commands_rx) = crossbeam_channel::unbounded();
        let mut broadcaster = Broadcaster::new(
            settings(),
            Arc::new(Metrics::default()),
            commands_rx,
            Engine::Memory,
        );
        let connection = Arc::new(Connection {
            info: ConnectionInfo {
                id: ConnectionId::new(),
                remote_addr: "127.0.0.1:1".parse().unwrap(),
                via: None,
                user_agent: None,
                origin: None,
                connected_at_ms: unix_ms(),
            },
            stats: ConnectionStats::default(),
        });
        let id = connection.info.id;
        let (queue, receiver) = outbound_queue(QueueLimits {
            frames: 100,
            bytes: 1 << 20,
        });
        let (done, done_rx) = crossbeam_channel::unbounded();
        // Two events of history, then, in one round: a replay, the same
        // client's publish, and another publisher's event.
        broadcaster.publish("news", serde_json::json!(1));
        broadcaster.publish("news", serde_json::json!(2));
        let (api_reply, api_rx) = crossbeam_channel::bounded(1);
        for command in [
            HubCommand::Connect {
                connection,
                queue,
                initial: None,
                done: done.clone(),
            },
            HubCommand::ClientBatch {
                id,
                requests: vec![ClientRequest::Subscribe {
                    request_id: None,
                    channels: vec!["news".into()],
                    since: Some(0),
                }],
                done: done.clone(),
            },
            HubCommand::ClientBatch {
                id,
                requests: vec![ClientRequest::Publish {
                    request_id: None,
                    channel: "news".into(),
                    data: serde_json::json!("mine"),
                }],
                done: done.clone(),
            },
            HubCommand::Publish {
                channel: "other".into(),
                data: serde_json::json!("theirs"),
                reply: api_reply,
            },
            HubCommand::Stop,
        ] {
            commands.send(command).unwrap();
        }
        broadcaster.run();
        assert_eq!(done_rx.try_iter().count(), 3);
        // The other publisher was not held up by the replay: seq 3.
        assert_eq!(api_rx.try_recv().unwrap().unwrap().seq, Seq(3));
        assert_eq!(
            frames(&receiver),
            [
                "welcome",
                "event 1",
                "event 2",
                "subscribed",
                "event 4",
                "published"
            ]
        );
    }
}
