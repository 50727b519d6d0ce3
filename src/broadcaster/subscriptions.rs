//! Subscriptions: joining and leaving channels, and replay with `since`.
//!
//! Part of the broadcaster (see `broadcaster.rs`): these are more `impl Broadcaster`
//! methods, run only on the broadcaster thread. Replay happens inside the
//! same command that adds the subscription, so no live event can slip in
//! between: the client gets the kept events after `since`, then `subscribed`,
//! then live events, with neither a gap nor a duplicate.

use std::collections::BinaryHeap;
use std::sync::Arc;

use super::history::{History, MAX_HISTORY_PAGE};
use super::{
    Broadcaster, EncodedEvent, LocalSubscribed, LocalSubscriber, Member, OutboundFrame,
    FRAME_OVERHEAD,
};
use crate::protocol::{self, ErrorCode, Event, RequestError, RequestId, Seq};

impl Broadcaster {
    pub(super) fn subscribe_client(
        &mut self,
        slot: usize,
        request_id: Option<&RequestId>,
        names: &[String],
        since: Option<u64>,
    ) {
        let Some(Member::Client(client)) = &self.members[slot] else {
            return;
        };
        let new_count = names
            .iter()
            .filter(|n| !client.channels.iter().any(|c| **c == ***n))
            .count();
        if client.channels.len() + new_count > self.settings.max_subscriptions {
            let error = RequestError {
                id: request_id.cloned(),
                code: ErrorCode::TooManySubscriptions,
                message: format!(
                    "a connection may follow at most {} channels",
                    self.settings.max_subscriptions
                ),
            };
            self.reply_error(slot, &error);
            return;
        }
        for name in names {
            self.join_channel(slot, name);
        }
        let (replayed, whole_from) = match since {
            Some(since) => self.replay(slot, names, Seq(since)),
            None => (0, None),
        };
        let reply = match whole_from {
            None => protocol::encode_subscribed(request_id, names, replayed, true),
            Some(oldest) => {
                protocol::encode_subscribed_incomplete(request_id, names, replayed, oldest.0)
            }
        };
        self.reply_to(slot, reply);
    }

    /// Add `slot` to channel `name` unless it is there already.
    pub(super) fn join_channel(&mut self, slot: usize, name: &str) {
        let key = self.channel_for_subscriber(name);
        self.mark_followed(&key);
        let (Some(member), Some(channel)) = (&mut self.members[slot], self.channels.get_mut(&key))
        else {
            return;
        };
        let channels = match member {
            Member::Client(c) => &mut c.channels,
            Member::Local(l) => &mut l.channels,
        };
        if !channels.contains(&key) {
            channels.push(key);
            channel.subscribers.push(slot);
        }
    }

    /// Replay to client `slot` the kept events of `names` after `since` (and
    /// after what the client was already sent), in seq order. Returns how
    /// many were queued, and `None` if the replay is complete, else the seq
    /// from which it is whole (`oldest` in `subscribed`).
    ///
    /// Only the newest events that fit the client's
    /// [`replay_budget`](super::OutboundQueue::replay_budget) are built: the
    /// histories are merged from the newest end and the merge stops at the
    /// first event that does not fit, so the work and the memory are bounded
    /// by the budget, not by how much history there is. What is left out
    /// makes the replay incomplete, which the client handles as any gap.
    pub(super) fn replay(
        &mut self,
        slot: usize,
        names: &[String],
        since: Seq,
    ) -> (usize, Option<Seq>) {
        let Some(Member::Client(client)) = &mut self.members[slot] else {
            return (0, None);
        };
        // Never go below what this connection already has: order stays
        // strictly increasing, and anything skipped makes the replay incomplete.
        let floor = since.max(client.last_sent);
        let mut whole_from: Option<Seq> = None;
        let mut incomplete_from = |seq: Seq| {
            whole_from = Some(whole_from.map_or(seq, |s| s.max(seq)));
        };
        // Per channel, its kept events after `floor`, newest first.
        let mut sources = Vec::with_capacity(names.len());
        for name in names {
            let Some(channel) = self.channels.get(name.as_str()) else {
                if self.forgotten > since {
                    incomplete_from(Seq(self.forgotten.0 + 1));
                }
                continue;
            };
            if !channel.history.is_complete_after(since) {
                incomplete_from(channel.history.first_kept());
            }
            if channel
                .history
                .events_after(since)
                .next()
                .is_some_and(|e| e.seq() <= floor)
            {
                incomplete_from(Seq(floor.0 + 1));
            }
            sources.push(channel.history.events_after(floor).rev());
        }
        // A merge from the newest end: the heap holds each source's next
        // (newest unpicked) event by seq.
        let mut heads: Vec<Option<&Arc<EncodedEvent>>> =
            sources.iter_mut().map(|source| source.next()).collect();
        let mut heap: BinaryHeap<(Seq, usize)> = heads
            .iter()
            .enumerate()
            .filter_map(|(i, head)| head.map(|event| (event.seq(), i)))
            .collect();
        let mut budget = client.queue.replay_budget();
        let mut picked: Vec<&Arc<EncodedEvent>> = Vec::new();
        while let Some((_, i)) = heap.pop() {
            let Some(event) = heads[i].take() else {
                continue;
            };
            let cost = FRAME_OVERHEAD + event.frame.len();
            if cost > budget {
                // Older kept events do not fit: they are left out, and the
                // client is told from where its replay is whole.
                incomplete_from(Seq(event.seq().0 + 1));
                self.metrics.replays_cut.inc();
                break;
            }
            budget -= cost;
            picked.push(event);
            if let Some(next) = sources[i].next() {
                heads[i] = Some(next);
                heap.push((next.seq(), i));
            }
        }
        picked.reverse();
        if let Some(last) = picked.last() {
            client.last_sent = last.seq();
        }
        // Replayed events do not count against --queue-size (the contract:
        // a client resuming after a 4008 gets its replay); their bytes do,
        // and they were bounded above.
        let frames = picked
            .iter()
            .map(|event| OutboundFrame::Event((*event).clone()));
        client.push_replay(slot, frames, &mut self.to_wake);
        (picked.len(), whole_from)
    }

    /// Up to `limit` kept events of `channel` after `since`, for
    /// `HubHandle::history`. Only `Arc`s are cloned: the answer shares the
    /// events with the history.
    pub(super) fn history_page(&self, channel: &str, since: Seq, limit: usize) -> History {
        // In cluster mode this node's memory starts at its floor: what came
        // before is in Redis only, so a `since` below it is not complete.
        let floor = self.memory_floor();
        let before_floor = (since < floor).then(|| Seq(floor.0 + 1));
        let Some(channel) = self.channels.get(channel) else {
            return History {
                events: Vec::new(),
                complete: before_floor.is_none(),
                oldest: before_floor,
                more: false,
                seq: self.seq,
            };
        };
        let history = &channel.history;
        let mut after = history.events_after(since);
        let events: Vec<Arc<EncodedEvent>> = after
            .by_ref()
            .take(limit.min(MAX_HISTORY_PAGE))
            .cloned()
            .collect();
        let evicted = (!history.is_complete_after(since)).then(|| history.first_kept());
        let oldest = evicted.max(before_floor);
        History {
            events,
            complete: oldest.is_none(),
            oldest,
            more: after.next().is_some(),
            seq: self.seq,
        }
    }

    /// The seq at or before which this node may never have seen events:
    /// zero with the memory engine, the join (or resync) point with the
    /// shared log.
    fn memory_floor(&self) -> Seq {
        #[cfg(feature = "redis")]
        if matches!(self.engine, crate::engine::Engine::Redis(_)) {
            return self.shared_floor();
        }
        Seq(0)
    }

    pub(super) fn unsubscribe(&mut self, slot: usize, names: &[String]) {
        for name in names {
            let Some(member) = &mut self.members[slot] else {
                return;
            };
            let channels = match member {
                Member::Client(c) => &mut c.channels,
                Member::Local(l) => &mut l.channels,
            };
            if let Some(pos) = channels.iter().position(|c| **c == **name) {
                channels.swap_remove(pos);
                self.leave_channel(slot, name);
            }
        }
    }

    /// Add an in-process subscriber. With `since`, the kept events after it
    /// go into its channel first, inside this one command, so the live
    /// events that follow can neither overlap the replay nor leave a gap:
    /// the same guarantee a client's `subscribe` has.
    pub(super) fn subscribe_local(
        &mut self,
        names: &[String],
        since: Option<Seq>,
        capacity: usize,
    ) -> LocalSubscribed {
        let mut replay: Vec<Event> = Vec::new();
        let mut complete = true;
        if let Some(since) = since {
            // A seq this instance never reached came from another instance
            // (another epoch): replaying "after" it would silently skip
            // everything, so say it is not complete.
            complete = since <= self.seq;
            for name in names {
                let Some(channel) = self.channels.get(name.as_str()) else {
                    // Never made, or forgotten: as for clients (`replay`).
                    complete &= self.forgotten <= since;
                    continue;
                };
                complete &= channel.history.is_complete_after(since);
                replay.extend(channel.history.events_after(since).map(|e| e.event.clone()));
            }
            replay.sort_unstable_by_key(|e| e.seq);
        }
        // Replayed events do not count against the live capacity, as for
        // clients: a subscriber resuming after being dropped as slow gets its
        // whole replay. History bounds how long it can be.
        let (events_tx, events_rx) = crossbeam_channel::bounded(capacity + replay.len());
        let replayed = replay.len();
        for event in replay {
            // Cannot fail: the channel is new and has room for all of them.
            let _ = events_tx.try_send(event);
        }
        let key = self.next_local_key;
        self.next_local_key += 1;
        let slot = self.insert_member(Member::Local(LocalSubscriber {
            key,
            events: events_tx,
            channels: Vec::new(),
        }));
        self.locals_by_key.insert(key, slot);
        for name in names {
            self.join_channel(slot, name);
        }
        LocalSubscribed {
            key,
            events: events_rx,
            replayed,
            complete,
        }
    }
}
