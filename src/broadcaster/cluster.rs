//! Cluster mode: the broadcaster's side of the shared log (`--redis`).
//!
//! Part of the broadcaster (see `broadcaster.rs`): more `impl Broadcaster`
//! methods, run only on the broadcaster thread, reached through the one
//! seam in `Broadcaster::apply`. With the Redis engine the broadcaster no
//! longer takes seqs itself:
//!
//! - A publish (HTTP, a client's `publish`, the embedding API, a broadcast
//!   error) is handed to the engine with a ticket ([`RedisEngine::submit`],
//!   which never blocks). The broadcaster remembers who is owed an answer.
//! - What the shared log says arrives as [`EngineInput::Entries`], in log
//!   order, from every node, this one included; each entry is fanned out
//!   exactly like a memory-engine publish (`fan_out`). So all clients on all
//!   nodes see one order, and the answer to a publish (`published`, with
//!   what *this node* queued) goes out once its own entry has been
//!   delivered, after the publisher's own copy of the event.
//! - A subscribe with `since` older than what this node has seen (it
//!   started, or resynced, later: `Shared::floor`) asks the engine for the
//!   history in Redis, and splices the answer in front of the live stream:
//!   the client's read pump waits for `subscribed` meanwhile, as always.
//! - A client's batch (pipelined requests, `HubCommand::ClientBatch`) is
//!   served in order up to such a request: a run of publishes goes to the
//!   engine as one job on the client's lane, a replay to Redis, and the
//!   rest of the batch waits with it (`Rest`), so replies keep request
//!   order; the read pump's `done` goes when the whole batch is through.
//! - A hole in the log or a new epoch cannot be filled: every client gets
//!   `shutdown` with reason `resync` and Close 1012, and resumes with
//!   `since` (from Redis, with an honest `complete`).
//!
//! Everything here is in-memory work; the engine's threads do the I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crossbeam_channel::Sender;
use log::warn;

use super::history::ChannelHistory;
use super::outbound::OutboundQueue;
use super::registry::{CloseReason, Connection};
use super::{
    Broadcaster, ClientRequest, EncodedEvent, HubCommand, Member, OutboundFrame, FRAME_OVERHEAD,
};
use crate::engine::{Engine, EngineInput, Entry, Item, Replay, Sink, Unavailable};
use crate::peer::ConnectionId;
use crate::protocol::{self, ErrorCode, Published, RequestError, RequestId, Seq};

/// Own entries delivered before their `Assigned` came (the reader can be
/// faster than the publisher's answer) are remembered this many at most;
/// an entry whose publish's outcome was unknown is never claimed.
const EARLY_KEPT: usize = 4096;

/// How long a client told to resync is asked to wait before reconnecting.
const RESYNC_RECONNECT_MS: u64 = 250;

/// The sink the engine's threads call: wraps the broadcaster's command
/// channel, so the engine never names a broadcaster type.
pub(crate) fn engine_sink(commands: Sender<HubCommand>) -> Sink {
    Arc::new(move |input| commands.send(HubCommand::Engine(input)).is_ok())
}

/// Who waits for a publish handed to the engine.
enum Owed {
    /// HTTP or the embedding API: one event.
    Api(Sender<Result<Published, Unavailable>>),
    /// A run of consecutive `publish`es from one WebSocket client's batch,
    /// one item each, and what of the batch follows them.
    Client {
        id: ConnectionId,
        request_ids: Vec<Option<RequestId>>,
        rest: Rest,
    },
    /// An HTTP array.
    Batch(Sender<Result<Vec<Published>, Unavailable>>),
    /// `HubHandle::broadcast_error`.
    Error(Sender<Result<Seq, Unavailable>>),
}

/// A publish in flight: its items' results fill in as they are delivered.
struct Pending {
    owed: Owed,
    results: Vec<Option<Published>>,
}

/// A subscribe waiting for history from Redis.
struct WaitingReplay {
    id: ConnectionId,
    request_id: Option<RequestId>,
    channels: Vec<String>,
    since: Seq,
    rest: Rest,
}

/// What of a client's batch waits behind a request the shared log answers
/// later (a publish, a replay from Redis): served once that is answered,
/// so the client's replies keep request order; then `done` lets its read
/// pump send the next batch. (For a connect, no requests: only `done`.)
struct Rest {
    requests: VecDeque<ClientRequest>,
    done: Sender<()>,
}

impl Rest {
    fn only(done: Sender<()>) -> Rest {
        Rest {
            requests: VecDeque::new(),
            done,
        }
    }
}

/// What cluster mode keeps on the broadcaster thread.
#[derive(Default)]
pub(super) struct Shared {
    /// This node may never have seen events at or before this seq: it
    /// joined the log (or resynced) here. Replays from before come from
    /// Redis.
    floor: Seq,
    /// True once the engine joined the hub's sequence.
    joined: bool,
    next_ticket: u64,
    pending: HashMap<u64, Pending>,
    /// Seqs assigned to a pending publish, not delivered yet: item index.
    assigned: HashMap<Seq, (u64, usize)>,
    /// Own entries delivered before their `Assigned`: how many got them.
    early: HashMap<Seq, usize>,
    early_order: VecDeque<Seq>,
    replays: HashMap<u64, WaitingReplay>,
    /// Subscribes whose `since` this node has not delivered yet (the client
    /// came from a node further ahead): served once it has.
    ahead: Vec<WaitingReplay>,
}

impl Shared {
    fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }
}

/// A lane for a connection's publishes: the same connection always uses
/// the same publisher thread, so its publishes keep their order.
fn lane_of(id: &ConnectionId) -> u64 {
    let bytes = id.0.as_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

impl Broadcaster {
    /// Serve what cluster mode changes; hand back anything else.
    pub(super) fn apply_shared(&mut self, command: HubCommand) -> Option<HubCommand> {
        match command {
            HubCommand::Publish {
                channel,
                data,
                reply,
            } => {
                let item = Item::Event {
                    channel: channel.into(),
                    data,
                };
                self.submit(self.shared.next_ticket, vec![item], Owed::Api(reply));
            }
            HubCommand::ClientBatch { id, requests, done } => {
                let rest = Rest {
                    requests: requests.into(),
                    done,
                };
                self.serve_batch_shared(id, rest);
            }
            HubCommand::PublishBatch { events, reply } => {
                let items = events
                    .into_iter()
                    .map(|(channel, data)| Item::Event {
                        channel: channel.into(),
                        data,
                    })
                    .collect();
                self.submit(self.shared.next_ticket, items, Owed::Batch(reply));
            }
            HubCommand::BroadcastError {
                code,
                message,
                context,
                reply,
            } => {
                let item = Item::Error {
                    code,
                    message,
                    context,
                };
                self.submit(self.shared.next_ticket, vec![item], Owed::Error(reply));
            }
            HubCommand::Connect {
                connection,
                queue,
                initial: Some((channels, Some(since))),
                done,
            } if self.shutdown.is_none()
                && (Seq(since) < self.shared.floor || self.is_ahead(since)) =>
            {
                self.connect_and_replay(connection, queue, channels, Seq(since), done);
            }
            HubCommand::Engine(input) => self.apply_engine(input),
            other => return Some(other),
        }
        None
    }

    /// Serve a client's batch (or what is left of it) in order, up to a
    /// request the shared log answers later: a run of publishes, handed to
    /// the engine as one job on the client's lane so they keep their
    /// order, or a replay that needs Redis (or this node to catch up).
    /// The rest waits with it; `done` goes once the batch is through.
    fn serve_batch_shared(&mut self, id: ConnectionId, mut rest: Rest) {
        while let Some(request) = rest.requests.pop_front() {
            match request {
                ClientRequest::Publish {
                    request_id,
                    channel,
                    data,
                } => {
                    let mut request_ids = vec![request_id];
                    let mut items = vec![Item::Event {
                        channel: channel.into(),
                        data,
                    }];
                    while let Some(ClientRequest::Publish { .. }) = rest.requests.front() {
                        if let Some(ClientRequest::Publish {
                            request_id,
                            channel,
                            data,
                        }) = rest.requests.pop_front()
                        {
                            request_ids.push(request_id);
                            items.push(Item::Event {
                                channel: channel.into(),
                                data,
                            });
                        }
                    }
                    let owed = Owed::Client {
                        id,
                        request_ids,
                        rest,
                    };
                    self.submit(lane_of(&id), items, owed);
                    return;
                }
                ClientRequest::Subscribe {
                    request_id,
                    channels,
                    since: Some(since),
                } if self.needs_shared_history(&id, &channels, since) => {
                    let waiting = WaitingReplay {
                        id,
                        request_id,
                        channels,
                        since: Seq(since),
                        rest,
                    };
                    self.replay_shared(waiting);
                    return;
                }
                ClientRequest::Subscribe {
                    request_id,
                    channels,
                    since: Some(since),
                } if self.is_ahead(since) => {
                    self.shared.ahead.push(WaitingReplay {
                        id,
                        request_id,
                        channels,
                        since: Seq(since),
                        rest,
                    });
                    return;
                }
                other => {
                    let slot = self.clients_by_id.get(&id).copied();
                    self.serve_client_request(slot, other);
                }
            }
        }
        let _ = rest.done.try_send(());
    }

    /// This node's floor (see [`Shared::floor`]), for `GET /history`.
    pub(super) fn shared_floor(&self) -> Seq {
        self.shared.floor
    }

    fn redis(&self) -> Option<&crate::engine::redis::RedisEngine> {
        match &self.engine {
            Engine::Redis(engine) => Some(engine),
            Engine::Memory => None,
        }
    }

    // ----- publishing -----------------------------------------------------

    fn submit(&mut self, lane: u64, items: Vec<Item>, owed: Owed) {
        let ticket = self.shared.ticket();
        let count = items.len();
        let submitted = match self.redis() {
            Some(engine) => engine.submit(lane, ticket, items),
            None => Err(Unavailable::new("no shared log")),
        };
        match submitted {
            Ok(()) => {
                let pending = Pending {
                    owed,
                    results: vec![None; count],
                };
                self.shared.pending.insert(ticket, pending);
            }
            Err(reason) => self.refuse(owed, reason),
        }
    }

    /// Tell whoever waits that the publish was not taken.
    fn refuse(&mut self, owed: Owed, reason: Unavailable) {
        match owed {
            Owed::Api(reply) => {
                let _ = reply.try_send(Err(reason));
            }
            Owed::Batch(reply) => {
                let _ = reply.try_send(Err(reason));
            }
            Owed::Error(reply) => {
                let _ = reply.try_send(Err(reason));
            }
            Owed::Client {
                id,
                request_ids,
                rest,
            } => {
                if let Some(&slot) = self.clients_by_id.get(&id) {
                    for request_id in request_ids {
                        let error = RequestError {
                            id: request_id,
                            code: ErrorCode::Unavailable,
                            message: reason.to_string(),
                        };
                        self.reply_error(slot, &error);
                    }
                }
                self.serve_batch_shared(id, rest);
            }
        }
    }

    /// Record the result of item `index` of publish `ticket`; answer once
    /// every item has one.
    fn settle(&mut self, ticket: u64, index: usize, published: Published) {
        let Some(pending) = self.shared.pending.get_mut(&ticket) else {
            return;
        };
        if let Some(slot) = pending.results.get_mut(index) {
            *slot = Some(published);
        }
        if pending.results.iter().any(Option::is_none) {
            return;
        }
        let Some(pending) = self.shared.pending.remove(&ticket) else {
            return;
        };
        let results: Vec<Published> = pending.results.into_iter().flatten().collect();
        match pending.owed {
            Owed::Api(reply) => {
                if let Some(first) = results.first() {
                    let _ = reply.try_send(Ok(*first));
                }
            }
            Owed::Batch(reply) => {
                let _ = reply.try_send(Ok(results));
            }
            Owed::Error(reply) => {
                if let Some(first) = results.first() {
                    let _ = reply.try_send(Ok(first.seq));
                }
            }
            Owed::Client {
                id,
                request_ids,
                rest,
            } => {
                if let Some(&slot) = self.clients_by_id.get(&id) {
                    for (request_id, published) in request_ids.iter().zip(&results) {
                        let reply = protocol::encode_published(
                            request_id.as_ref(),
                            published.seq.0,
                            published.delivered,
                        );
                        self.reply_to(slot, reply);
                    }
                }
                self.serve_batch_shared(id, rest);
            }
        }
    }

    /// Answer every publish still waiting for an entry that will not come
    /// (a hole swallowed it, or the epoch changed).
    fn settle_lost(&mut self) {
        let assigned: Vec<(Seq, (u64, usize))> = self.shared.assigned.drain().collect();
        for (seq, (ticket, index)) in assigned {
            // It was appended, so it has its seq; this node queued it for
            // nobody.
            self.settle(ticket, index, Published { seq, delivered: 0 });
        }
        self.shared.early.clear();
        self.shared.early_order.clear();
        // Publishes with no seq yet stay: the engine still answers them.
    }

    // ----- the engine's news ------------------------------------------------

    fn apply_engine(&mut self, input: EngineInput) {
        match input {
            EngineInput::Entries { entries, credit } => {
                for entry in entries {
                    self.deliver(entry);
                }
                if let Some(engine) = self.redis() {
                    engine.status().note_delivered(self.seq);
                }
                let _ = credit.try_send(());
                self.serve_caught_up(false);
            }
            EngineInput::Assigned {
                ticket,
                first,
                count,
            } => {
                for index in 0..count {
                    let seq = Seq(first.0 + index as u64);
                    match self.shared.early.remove(&seq) {
                        Some(delivered) => self.settle(ticket, index, Published { seq, delivered }),
                        None => {
                            if seq <= self.seq {
                                // Delivered before a hole or resync forgot it.
                                self.settle(ticket, index, Published { seq, delivered: 0 });
                            } else {
                                self.shared.assigned.insert(seq, (ticket, index));
                            }
                        }
                    }
                }
            }
            EngineInput::Refused { ticket, reason } => {
                if let Some(pending) = self.shared.pending.remove(&ticket) {
                    self.refuse(pending.owed, reason);
                }
            }
            EngineInput::Joined { epoch, position } => self.joined(epoch, position),
            EngineInput::Hole { position } => {
                warn!("shared log: a hole after seq {}; clients resync", self.seq);
                self.resync(position, false);
            }
            EngineInput::Replayed { ticket, result } => {
                if let Some(waiting) = self.shared.replays.remove(&ticket) {
                    self.splice(waiting, result.ok());
                }
            }
        }
    }

    /// Fan one log entry out, and settle the publish it answers if it is
    /// this node's.
    fn deliver(&mut self, entry: Entry) {
        let seq = entry.seq;
        let own = entry.own;
        let ts_ms = entry.ts_ms;
        let delivered = match entry.item {
            Item::Event { channel, data } => {
                // Share the map's key, as `publish` does.
                let channel = match self.channels.get_key_value(&*channel) {
                    Some((key, _)) => key.clone(),
                    None => channel,
                };
                self.fan_out(crate::protocol::Event {
                    seq,
                    channel,
                    ts_ms,
                    data,
                })
            }
            Item::Error {
                code,
                message,
                context,
            } => {
                self.fan_out_error(seq, ts_ms, &code, &message, context.as_ref());
                0
            }
        };
        self.seq = seq;
        if !own {
            return;
        }
        self.metrics.events_published.inc();
        match self.shared.assigned.remove(&seq) {
            Some((ticket, index)) => self.settle(ticket, index, Published { seq, delivered }),
            None => {
                self.shared.early.insert(seq, delivered);
                self.shared.early_order.push_back(seq);
                if self.shared.early_order.len() > EARLY_KEPT {
                    if let Some(oldest) = self.shared.early_order.pop_front() {
                        self.shared.early.remove(&oldest);
                    }
                }
            }
        }
    }

    fn joined(&mut self, epoch: String, position: Seq) {
        let first = !self.shared.joined;
        self.shared.joined = true;
        if epoch != self.settings.epoch {
            if !first {
                warn!(
                    "shared log: the hub's epoch changed from {} to {epoch}; clients resync",
                    self.settings.epoch
                );
            }
            self.settings.epoch = epoch;
            // Clients welcomed before the first join had this process's own
            // epoch: they resync too, but a node's start is not counted, and
            // in-process subscribers, who have no epoch and missed nothing
            // (nothing was delivered yet), keep their subscriptions.
            self.resync(position, first);
        } else {
            self.seq = position;
            self.shared.floor = position;
        }
    }

    /// Events this node cannot deliver are lost to it: send every client
    /// away to resume with `since`, end in-process subscriptions, forget
    /// what memory holds, and continue after `position`.
    fn resync(&mut self, position: Seq, first_join: bool) {
        let count = !first_join || !self.clients_by_id.is_empty();
        if let Some(engine) = self.redis().filter(|_| count) {
            engine.status().count_resync();
        }
        let slots: Vec<usize> = self.clients_by_id.values().copied().collect();
        let frame = protocol::encode_shutdown("resync", RESYNC_RECONNECT_MS);
        for slot in slots {
            if let Some(Member::Client(client)) = &mut self.members[slot] {
                if client.closing {
                    continue;
                }
                client.closing = true;
                let to_wake = &mut self.to_wake;
                client.push_uncounted(slot, OutboundFrame::Text(frame.clone().into()), to_wake);
                client.push_uncounted(slot, OutboundFrame::Close(CloseReason::Resync), to_wake);
            }
        }
        // An in-process subscriber cannot resume: its subscription ends
        // (its receiver disconnects), as at shutdown.
        if !first_join {
            let locals: Vec<usize> = self.locals_by_key.drain().map(|(_, slot)| slot).collect();
            for slot in locals {
                self.remove_member(slot);
            }
        }
        // Histories no longer describe a contiguous past. What memory knew
        // before is answered from Redis now (`floor`), so the channel
        // lifetime's bookkeeping (`channels.rs`) starts over too: only
        // followed channels stay, none unfollowed, nothing kept or forgotten.
        let history_size = self.settings.history_size;
        self.channels
            .retain(|_, channel| !channel.subscribers.is_empty());
        for channel in self.channels.values_mut() {
            channel.history = ChannelHistory::new(history_size, Seq(0));
            channel.unfollowed_at = None;
        }
        self.unfollowed.clear();
        self.history_order.clear();
        self.history_bytes = 0;
        self.history_events = 0;
        self.forgotten = Seq(0);
        self.settle_lost();
        self.serve_caught_up(true);
        self.seq = position;
        self.shared.floor = position;
        if let Some(engine) = self.redis() {
            engine.status().note_delivered(position);
        }
    }

    // ----- replay from the shared history -----------------------------------

    /// True if this subscribe must read history from Redis: `since` is
    /// before what this node has seen, and the subscribe is otherwise
    /// acceptable (a refusal takes the ordinary road).
    fn needs_shared_history(&self, id: &ConnectionId, names: &[String], since: u64) -> bool {
        if Seq(since) >= self.shared.floor {
            return false;
        }
        let Some(&slot) = self.clients_by_id.get(id) else {
            return false;
        };
        let Some(Member::Client(client)) = &self.members[slot] else {
            return false;
        };
        let new_count = names
            .iter()
            .filter(|n| !client.channels.iter().any(|c| **c == ***n))
            .count();
        client.channels.len() + new_count <= self.settings.max_subscriptions
    }

    /// True if `since` is past what this node delivered but within what
    /// Redis holds: this node lags behind the one the client came from, and
    /// serving the subscribe now would send it events it already has.
    fn is_ahead(&self, since: u64) -> bool {
        let head = self.redis().map_or(Seq(0), |engine| engine.status().head());
        Seq(since) > self.seq && Seq(since) <= head
    }

    /// Serve the subscribes that waited for this node to catch up (all of
    /// them after a resync: their clients are leaving anyway).
    fn serve_caught_up(&mut self, all: bool) {
        if self.shared.ahead.is_empty() {
            return;
        }
        let now = self.seq;
        let (ready, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.shared.ahead)
            .into_iter()
            .partition(|w| all || w.since <= now);
        self.shared.ahead = still;
        for waiting in ready {
            if let Some(&slot) = self.clients_by_id.get(&waiting.id) {
                let since = Some(waiting.since.0);
                self.subscribe_client(slot, waiting.request_id.as_ref(), &waiting.channels, since);
            }
            self.serve_batch_shared(waiting.id, waiting.rest);
        }
    }

    fn connect_and_replay(
        &mut self,
        connection: Arc<Connection>,
        queue: OutboundQueue,
        channels: Vec<String>,
        since: Seq,
        done: Sender<()>,
    ) {
        let id = connection.info.id;
        self.connect(connection, queue, None);
        if self.is_ahead(since.0) {
            self.shared.ahead.push(WaitingReplay {
                id,
                request_id: None,
                channels,
                since,
                rest: Rest::only(done),
            });
            return;
        }
        if !self.needs_shared_history(&id, &channels, since.0) {
            // Over the subscription limit: the ordinary road refuses it.
            if let Some(&slot) = self.clients_by_id.get(&id) {
                self.subscribe_client(slot, None, &channels, Some(since.0));
            }
            let _ = done.try_send(());
            return;
        }
        let waiting = WaitingReplay {
            id,
            request_id: None,
            channels,
            since,
            rest: Rest::only(done),
        };
        self.replay_shared(waiting);
    }

    fn replay_shared(&mut self, waiting: WaitingReplay) {
        let ticket = self.shared.ticket();
        let asked = match self.redis() {
            Some(engine) => engine.replay(ticket, waiting.channels.clone(), waiting.since),
            None => Err(Unavailable::new("no shared log")),
        };
        match asked {
            Ok(()) => {
                self.shared.replays.insert(ticket, waiting);
            }
            // Redis is out of reach: replay what memory has, incomplete.
            Err(_) => self.splice(waiting, None),
        }
    }

    /// Subscribe a client whose replay came from Redis (or, without one,
    /// from memory only, marked incomplete): the history up to the head
    /// Redis had, then what this node delivered since, then live events.
    fn splice(&mut self, waiting: WaitingReplay, replay: Option<Replay>) {
        let WaitingReplay {
            id,
            request_id,
            channels,
            since,
            rest,
        } = waiting;
        let Some(&slot) = self.clients_by_id.get(&id) else {
            // Gone meanwhile; what it sent after is still published.
            return self.serve_batch_shared(id, rest);
        };
        if let Some(Member::Client(client)) = &self.members[slot] {
            if client.closing {
                // Sent away (a resync) while Redis answered: nothing more.
                let _ = rest.done.try_send(());
                return;
            }
        }
        for name in &channels {
            self.join_channel(slot, name);
        }
        let now = self.seq;
        let mut events: Vec<Arc<EncodedEvent>> = Vec::new();
        // Memory holds what this node delivered after `local_from`.
        let (mut complete, local_from) = match replay {
            Some(replay) if replay.epoch == self.settings.epoch => {
                let head = replay.head;
                events.extend(
                    replay
                        .events
                        .into_iter()
                        .filter(|e| e.seq <= now)
                        .map(EncodedEvent::new),
                );
                // Redis answered up to `head`; memory must cover the rest.
                (
                    replay.complete && head >= self.shared.floor.min(now),
                    head.max(since),
                )
            }
            _ => (false, since.max(self.shared.floor)),
        };
        // If it is not complete, `oldest` (docs/protocol.md) must be a seq
        // from which the replay is surely whole: Redis does not say where
        // each channel was trimmed, so count only on what memory holds, and
        // memory only from this node's floor on.
        let memory_from = local_from.max(self.shared.floor);
        let mut whole_from = Seq(memory_from.0 + 1);
        for name in &channels {
            if let Some(channel) = self.channels.get(name.as_str()) {
                if !channel.history.is_complete_after(local_from) {
                    complete = false;
                }
                if !channel.history.is_complete_after(memory_from) {
                    whole_from = whole_from.max(channel.history.first_kept());
                }
                events.extend(channel.history.events_after(local_from).cloned());
            }
        }
        events.sort_unstable_by_key(|e| e.seq());
        events.dedup_by_key(|e| e.seq());
        let Some(Member::Client(client)) = &mut self.members[slot] else {
            return self.serve_batch_shared(id, rest);
        };
        // As in `replay`: never below what this client already has.
        let floor = since.max(client.last_sent);
        if events.first().is_some_and(|e| e.seq() <= floor) {
            complete = false;
            whole_from = whole_from.max(Seq(floor.0 + 1));
        }
        events.retain(|e| e.seq() > floor);
        // As in `replay`: only the newest events that fit the client's
        // replay budget go out; what is left out makes it incomplete.
        let mut budget = client.queue.replay_budget();
        let mut keep_from = events.len();
        while keep_from > 0 {
            let cost = FRAME_OVERHEAD + events[keep_from - 1].frame.len();
            if cost > budget {
                complete = false;
                self.metrics.replays_cut.inc();
                break;
            }
            budget -= cost;
            keep_from -= 1;
        }
        let events = events.split_off(keep_from);
        let replayed = events.len();
        if let Some(last) = events.last() {
            client.last_sent = last.seq();
        }
        let frames = events.into_iter().map(OutboundFrame::Event);
        client.push_replay(slot, frames, &mut self.to_wake);
        let reply = if complete {
            protocol::encode_subscribed(request_id.as_ref(), &channels, replayed, true)
        } else {
            protocol::encode_subscribed_incomplete(
                request_id.as_ref(),
                &channels,
                replayed,
                whole_from.0,
            )
        };
        self.reply_to(slot, reply);
        self.serve_batch_shared(id, rest);
    }
}
