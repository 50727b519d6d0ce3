//! Channel lifetime: when the broadcaster makes a channel, and when it
//! forgets one, and the byte budget of all histories together.
//!
//! Part of the broadcaster (see `broadcaster.rs`): more `impl Broadcaster`
//! methods, run only on the broadcaster thread. A channel is made by its
//! first publish or subscriber. While someone follows it, it stays. Once
//! nobody does, it is *unfollowed*: kept for its history, in
//! `Broadcaster::unfollowed`, ordered by when it was last used (its last
//! publish, or its last subscriber leaving). From there it is forgotten
//! when it has been unused for `--channel-idle-ms`, or, oldest first, when
//! a new channel needs room under `--max-channels`.
//!
//! Forgetting a channel drops its history, but not the truth about it: the
//! newest seq it ever had goes into `Broadcaster::forgotten`, and a channel
//! made later (of any name) starts with that as its newest evicted seq. So a
//! resume with an older `since` answers `complete: false`: the hub no longer
//! knows whether events of that name were lost. It may report a gap that was
//! not one; it never hides one.
//!
//! Every kept event is also listed, in seq order, in
//! `Broadcaster::history_order`, so that when all histories together cost
//! more than `--history-bytes`, the hub's oldest events are evicted first,
//! each from its own channel, which records it like any eviction.

use std::sync::Arc;
use std::time::Instant;

use log::debug;

use super::history::ChannelHistory;
use super::{Broadcaster, Channel, EncodedEvent};

/// Why a channel was forgotten, for the metric's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forgotten {
    /// Unused for `--channel-idle-ms`.
    Idle,
    /// Made room for a new channel under `--max-channels`.
    Limit,
}

impl Broadcaster {
    /// The channel `name` as a publish needs it: found, or made if there is
    /// room under `--max-channels` (forgetting the unfollowed channel unused
    /// the longest, if need be). `None` if every channel has subscribers and
    /// the limit is reached: then the event has nobody to go to and nowhere
    /// to be kept.
    pub(super) fn channel_for_publish(&mut self, name: &str) -> Option<Arc<str>> {
        if let Some((key, _)) = self.channels.get_key_value(name) {
            return Some(key.clone());
        }
        if !self.make_room() {
            return None;
        }
        Some(self.make_channel(name))
    }

    /// The channel `name` for a new subscriber: found or made. Made even at
    /// the limit when nothing can be forgotten: channels with subscribers
    /// are bounded by the connections and `--max-subscriptions`.
    pub(super) fn channel_for_subscriber(&mut self, name: &str) -> Arc<str> {
        if let Some((key, _)) = self.channels.get_key_value(name) {
            return key.clone();
        }
        self.make_room();
        self.make_channel(name)
    }

    fn make_channel(&mut self, name: &str) -> Arc<str> {
        let key: Arc<str> = name.into();
        self.channels.insert(
            key.clone(),
            Channel {
                subscribers: Vec::new(),
                history: ChannelHistory::new(self.settings.history_size, self.forgotten),
                unfollowed_at: None,
            },
        );
        key
    }

    /// At `--max-channels`, forget the unfollowed channel unused the
    /// longest. True if there is room for one more channel: below the
    /// limit, or one was forgotten. One at most: followed channels may keep
    /// the count over the limit, and each new channel then replaces one
    /// unfollowed channel rather than wiping them all.
    fn make_room(&mut self) -> bool {
        if self.channels.len() < self.settings.max_channels {
            return true;
        }
        let Some((_, oldest)) = self.unfollowed.first_key_value() else {
            return false;
        };
        let oldest = oldest.clone();
        self.forget_channel(&oldest, Forgotten::Limit);
        true
    }

    /// `name` has a subscriber again: it is no longer a candidate for
    /// forgetting.
    pub(super) fn mark_followed(&mut self, name: &str) {
        if let Some(channel) = self.channels.get_mut(name) {
            if let Some(at) = channel.unfollowed_at.take() {
                self.unfollowed.remove(&at);
            }
        }
    }

    /// `name` has no subscriber and was used at `now` (its last subscriber
    /// left, or an event was published to it): it is forgotten last among
    /// the unfollowed.
    pub(super) fn mark_unfollowed(&mut self, name: &Arc<str>, now: Instant) {
        if let Some(channel) = self.channels.get_mut(name) {
            if let Some(at) = channel.unfollowed_at.take() {
                self.unfollowed.remove(&at);
            }
            self.unfollowed_count += 1;
            let at = (now, self.unfollowed_count);
            channel.unfollowed_at = Some(at);
            self.unfollowed.insert(at, name.clone());
        }
    }

    /// Drop an unfollowed channel and its history, remembering its newest
    /// seq in `forgotten`.
    pub(super) fn forget_channel(&mut self, name: &str, why: Forgotten) {
        let Some(channel) = self.channels.remove(name) else {
            return;
        };
        debug_assert!(channel.subscribers.is_empty());
        if let Some(at) = channel.unfollowed_at {
            self.unfollowed.remove(&at);
        }
        self.forgotten = self.forgotten.max(channel.history.newest_seq());
        self.history_bytes -= channel.history.bytes();
        self.history_events -= channel.history.len();
        match why {
            Forgotten::Idle => self.metrics.channels_forgotten_idle.inc(),
            Forgotten::Limit => self.metrics.channels_forgotten_limit.inc(),
        }
        debug!(
            "channel {name} forgotten ({why:?}); forgotten seq now {}",
            self.forgotten
        );
    }

    /// Forget every channel unused for `--channel-idle-ms` by `now`.
    pub(super) fn forget_idle_channels(&mut self, now: Instant) {
        let Some(idle) = self.settings.channel_idle else {
            return;
        };
        while let Some((&(at, _), name)) = self.unfollowed.first_key_value() {
            if now.saturating_duration_since(at) < idle {
                break;
            }
            let name = name.clone();
            self.forget_channel(&name, Forgotten::Idle);
        }
    }

    /// Keep `event` in the history of channel `key`, then evict the hub's
    /// oldest events while all histories cost more than `--history-bytes`.
    pub(super) fn keep_in_history(&mut self, key: &Arc<str>, event: &Arc<EncodedEvent>) {
        let Some(channel) = self.channels.get_mut(key) else {
            return;
        };
        if !channel.history.keeps_events() {
            channel.history.push(event.clone());
            return;
        }
        if let Some(freed) = channel.history.push(event.clone()) {
            self.history_bytes -= freed;
            self.history_events -= 1;
        }
        self.history_bytes += event.memory;
        self.history_events += 1;
        self.history_order.push_back((event.seq(), key.clone()));
        self.trim_history();
    }

    /// Evict the oldest kept events, hub-wide, until all histories fit in
    /// `--history-bytes`; then drop the order's entries for events already
    /// gone, if they have piled up.
    fn trim_history(&mut self) {
        while self.history_bytes > self.settings.history_bytes {
            let Some((seq, name)) = self.history_order.pop_front() else {
                break;
            };
            if let Some(channel) = self.channels.get_mut(&name) {
                let freed = channel.history.evict_oldest_if(seq);
                if freed > 0 {
                    self.history_bytes -= freed;
                    self.history_events -= 1;
                    self.metrics.history_trimmed.inc();
                }
            }
        }
        // Events evicted by their own channel (`--history-size`) or with a
        // forgotten channel leave their entry behind, ahead of which a
        // quiet channel's old event may stand for long. Rebuilding once
        // the stale entries outnumber the live ones keeps the list within
        // twice the kept events, at a cost that amortizes to O(1) each.
        if self.history_order.len() > 2 * self.history_events + 1024 {
            let channels = &self.channels;
            self.history_order.retain(|(seq, name)| {
                channels
                    .get(name)
                    .is_some_and(|channel| channel.history.keeps(*seq))
            });
        }
    }
}
