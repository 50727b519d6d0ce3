//! Per-channel history: the last `--history-size` events of one channel,
//! kept for replay with `since`.
//!
//! Owned by the broadcaster thread; nothing else touches it, so it needs no
//! locks. Pure logic, unit-tested below.
//!
//! Besides the events it keeps, a history remembers the newest seq it has
//! evicted. That one number answers the question a resuming client asks:
//! "is everything after my `since` still here?" (`complete` in `subscribed`).
//! Events leave a history in two ways, both recorded there: pushed out by
//! newer ones (`--history-size`), or taken from its oldest end when all
//! histories together hold more than `--history-bytes` (the broadcaster
//! decides, see `Broadcaster::trim_history`). A history also adds up the
//! memory its events cost ([`EncodedEvent::memory`]).

use std::collections::VecDeque;
use std::sync::Arc;

use super::encoded_event::EncodedEvent;
use crate::protocol::{Event, Seq};

/// The most events one [`History`] page holds, whatever is asked.
pub const MAX_HISTORY_PAGE: usize = 1000;

/// Kept events of one channel after a seq, from
/// [`HubHandle::history`](crate::HubHandle::history) and `GET /history`.
///
/// Built by the broadcaster thread from its history (the events are shared
/// with it, not copied), then read by the asker.
#[derive(Debug, Clone)]
pub struct History {
    pub(super) events: Vec<Arc<EncodedEvent>>,
    /// True if no event of the channel after the asked `since` has been
    /// evicted: with `more` false, the page holds every event after it.
    pub complete: bool,
    /// With `complete` false, the seq from which the channel's history is
    /// whole (its oldest kept event): events after `since` and before it
    /// are gone.
    pub oldest: Option<Seq>,
    /// True if kept events follow the last one on this page (it reached
    /// the asked limit): ask again with `since` = the last seq.
    pub more: bool,
    /// The newest seq the hub has handed out, on any channel.
    pub seq: Seq,
}

impl History {
    /// The events, oldest first.
    pub fn events(&self) -> impl ExactSizeIterator<Item = &Event> {
        self.events.iter().map(|e| &e.event)
    }

    /// Each event's `event` frame, as serialized once by the broadcaster.
    pub(crate) fn frames(&self) -> impl Iterator<Item = &str> {
        self.events.iter().map(|e| e.frame.as_str())
    }

    /// Keep only the first `n` events (the rest did not fit an answer);
    /// `more` becomes true if any were dropped.
    pub(crate) fn truncate(&mut self, n: usize) {
        if n < self.events.len() {
            self.events.truncate(n);
            self.more = true;
        }
    }
}

/// The kept events of one channel, oldest first.
#[derive(Debug)]
pub struct ChannelHistory {
    events: VecDeque<Arc<EncodedEvent>>,
    capacity: usize,
    /// The newest seq no longer kept (0 if nothing was ever evicted). With
    /// capacity 0 every event is evicted as soon as it is published.
    newest_evicted: Seq,
    /// What the kept events cost in memory, summed.
    bytes: usize,
}

impl ChannelHistory {
    /// An empty history keeping at most `capacity` events, for a channel
    /// that may have existed before and been forgotten: `forgotten` is the
    /// newest seq the hub no longer remembers per channel, so a replay
    /// after an older `since` is incomplete (it may have missed events of
    /// the forgotten channel of the same name).
    pub fn new(capacity: usize, forgotten: Seq) -> Self {
        ChannelHistory {
            events: VecDeque::new(),
            capacity,
            newest_evicted: forgotten,
            bytes: 0,
        }
    }

    /// Keep `event`, evicting the oldest if full. Returns the memory of
    /// the event evicted to make room, if one was. With capacity 0 the event
    /// is not kept at all (only its seq is remembered).
    pub fn push(&mut self, event: Arc<EncodedEvent>) -> Option<usize> {
        if self.capacity == 0 {
            self.newest_evicted = event.seq();
            return None;
        }
        let mut freed = None;
        if self.events.len() == self.capacity {
            if let Some(oldest) = self.events.pop_front() {
                self.newest_evicted = oldest.seq();
                self.bytes -= oldest.memory;
                freed = Some(oldest.memory);
            }
        }
        self.bytes += event.memory;
        self.events.push_back(event);
        freed
    }

    /// True if events are kept at all (`--history-size` above 0).
    pub fn keeps_events(&self) -> bool {
        self.capacity > 0
    }

    /// Evict the oldest kept event if its seq is `seq`; returns the memory
    /// freed (0 if the oldest is another event or there is none).
    pub fn evict_oldest_if(&mut self, seq: Seq) -> usize {
        if self
            .events
            .front()
            .is_some_and(|oldest| oldest.seq() == seq)
        {
            if let Some(oldest) = self.events.pop_front() {
                self.newest_evicted = oldest.seq();
                self.bytes -= oldest.memory;
                return oldest.memory;
            }
        }
        0
    }

    /// True if the event with `seq` is kept.
    pub fn keeps(&self, seq: Seq) -> bool {
        self.events
            .binary_search_by_key(&seq, |event| event.seq())
            .is_ok()
    }

    /// The newest seq this channel has had, kept or evicted (its
    /// `forgotten` if it had none).
    pub fn newest_seq(&self) -> Seq {
        self.events
            .back()
            .map_or(self.newest_evicted, |event| event.seq())
    }

    /// The memory the kept events cost, summed.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The kept events with seq greater than `after`, oldest first.
    pub fn events_after(&self, after: Seq) -> impl DoubleEndedIterator<Item = &Arc<EncodedEvent>> {
        // Events are in seq order, so binary search for the first one to send.
        let start = self.events.partition_point(|e| e.seq() <= after);
        self.events.range(start..)
    }

    /// True if no event with seq greater than `since` has been evicted, so
    /// a replay after `since` misses nothing of this channel.
    pub fn is_complete_after(&self, since: Seq) -> bool {
        self.newest_evicted <= since
    }

    /// The seq from which this channel's history is whole: its oldest kept
    /// event, or, if it keeps none, the seq after the newest evicted one.
    /// Events of this channel before it are gone.
    pub fn first_kept(&self) -> Seq {
        match self.events.front() {
            Some(oldest) => oldest.seq(),
            None => Seq(self.newest_evicted.0 + 1),
        }
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True if no event is kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Event;

    fn event(seq: u64) -> Arc<EncodedEvent> {
        EncodedEvent::new(Event {
            seq: Seq(seq),
            channel: "c".into(),
            ts_ms: 0,
            data: serde_json::Value::Null,
        })
    }

    fn seqs(history: &ChannelHistory, after: u64) -> Vec<u64> {
        history
            .events_after(Seq(after))
            .map(|e| e.seq().0)
            .collect()
    }

    #[test]
    fn keeps_the_newest_events_and_knows_what_it_evicted() {
        let mut history = ChannelHistory::new(3, Seq(0));
        for seq in [2, 4, 6, 8] {
            history.push(event(seq));
        }
        assert_eq!(seqs(&history, 0), vec![4, 6, 8]);
        assert_eq!(seqs(&history, 4), vec![6, 8]);
        assert_eq!(seqs(&history, 5), vec![6, 8]);
        assert_eq!(seqs(&history, 8), Vec::<u64>::new());
        assert!(!history.is_complete_after(Seq(0)));
        assert!(!history.is_complete_after(Seq(1)));
        assert!(history.is_complete_after(Seq(2)));
        assert!(history.is_complete_after(Seq(3)));
        assert_eq!(history.first_kept(), Seq(4));
    }

    #[test]
    fn capacity_zero_keeps_nothing_and_is_never_complete_after_an_event() {
        let mut history = ChannelHistory::new(0, Seq(0));
        assert!(history.is_complete_after(Seq(0)));
        assert_eq!(history.push(event(5)), None);
        assert!(history.is_empty());
        assert!(!history.is_complete_after(Seq(4)));
        assert!(history.is_complete_after(Seq(5)));
        assert_eq!(history.first_kept(), Seq(6));
        assert_eq!(history.newest_seq(), Seq(5));
    }

    #[test]
    fn counts_memory_and_evicts_from_the_oldest_end_on_request() {
        let mut history = ChannelHistory::new(2, Seq(0));
        let each = event(1).memory;
        assert_eq!(history.push(event(1)), None);
        assert_eq!(history.push(event(3)), None);
        assert_eq!(history.push(event(4)), Some(each)); // 1 pushed out
        assert_eq!(history.bytes(), 2 * each);
        assert_eq!(history.evict_oldest_if(Seq(4)), 0); // not the oldest
        assert!(history.keeps(Seq(3)) && !history.keeps(Seq(1)));
        assert_eq!(history.evict_oldest_if(Seq(3)), each);
        assert!(!history.is_complete_after(Seq(2)));
        assert!(history.is_complete_after(Seq(3)));
        assert_eq!(history.newest_seq(), Seq(4));
    }

    #[test]
    fn a_channel_made_after_a_forgotten_one_is_incomplete_before_it() {
        let history = ChannelHistory::new(8, Seq(40));
        assert!(!history.is_complete_after(Seq(39)));
        assert!(history.is_complete_after(Seq(40)));
        assert_eq!(history.newest_seq(), Seq(40));
    }
}
