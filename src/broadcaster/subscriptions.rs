//! Subscriptions: joining and leaving channels, and replay with `since`.
//!
//! Part of the broadcaster (see `broadcaster.rs`): these are more `impl Broadcaster`
//! methods, run only on the broadcaster thread. Replay happens inside the
//! same command that adds the subscription, so no live event can slip in
//! between: the client gets the kept events after `since`, then `subscribed`,
//! then live events, with neither a gap nor a duplicate.

use std::collections::BinaryHeap;
use std::sync::Arc;

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
            self.metrics.count_error_reply(error.code);
            client.connection.stats.record_error(&error.message);
            self.reply_to(slot, protocol::encode_request_error(&error));
            return;
        }
        for name in names {
            self.join_channel(slot, name);
        }
        let (replayed, complete) = match since {
            Some(since) => self.replay(slot, names, Seq(since)),
            None => (0, true),
        };
        let reply = protocol::encode_subscribed(request_id, names, replayed, complete);
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

    /// Queue the kept events of `names` after `since` (and after what this
    /// client was already sent), in seq order. Returns how many were queued
    /// and whether the replay is complete.
    ///
    /// Only the newest events that fit the client's
    /// [`replay_budget`](super::OutboundQueue::replay_budget) are built: the
    /// histories are merged from the newest end and the merge stops at the
    /// first event that does not fit, so the work and the memory are bounded
    /// by the budget, not by how much history there is. What is left out
    /// makes the replay incomplete, which the client handles as any gap.
    pub(super) fn replay(&mut self, slot: usize, names: &[String], since: Seq) -> (usize, bool) {
        let Some(Member::Client(client)) = &mut self.members[slot] else {
            return (0, true);
        };
        // Never go below what this connection already has: order stays
        // strictly increasing, and anything skipped makes the replay incomplete.
        let floor = since.max(client.last_sent);
        let mut complete = true;
        // Per channel, its kept events after `floor`, newest first.
        let mut sources = Vec::with_capacity(names.len());
        for name in names {
            let Some(channel) = self.channels.get(name.as_str()) else {
                complete &= self.forgotten <= since;
                continue;
            };
            complete &= channel.history.is_complete_after(since);
            if channel
                .history
                .events_after(since)
                .next()
                .is_some_and(|e| e.seq() <= floor)
            {
                complete = false;
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
                // client is told so.
                complete = false;
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
        (picked.len(), complete)
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
