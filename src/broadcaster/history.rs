//! Per-channel history: the last `--history-size` events of one channel,
//! kept for replay with `since`.
//!
//! Owned by the broadcaster thread; nothing else touches it, so it needs no
//! locks. Pure logic, unit-tested below.
//!
//! Besides the events it keeps, a history remembers the newest seq it has
//! evicted. That one number answers the question a resuming client asks:
//! "is everything after my `since` still here?" (`complete` in `subscribed`).

use std::collections::VecDeque;
use std::sync::Arc;

use super::encoded_event::EncodedEvent;
use crate::protocol::Seq;

/// The kept events of one channel, oldest first.
#[derive(Debug)]
pub struct ChannelHistory {
    events: VecDeque<Arc<EncodedEvent>>,
    capacity: usize,
    /// The newest seq no longer kept (0 if nothing was ever evicted). With
    /// capacity 0 every event is evicted as soon as it is published.
    newest_evicted: Seq,
}

impl ChannelHistory {
    /// An empty history keeping at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        ChannelHistory {
            events: VecDeque::new(),
            capacity,
            newest_evicted: Seq(0),
        }
    }

    /// Keep `event`, evicting the oldest if full.
    pub fn push(&mut self, event: Arc<EncodedEvent>) {
        if self.capacity == 0 {
            self.newest_evicted = event.seq();
            return;
        }
        if self.events.len() == self.capacity {
            if let Some(oldest) = self.events.pop_front() {
                self.newest_evicted = oldest.seq();
            }
        }
        self.events.push_back(event);
    }

    /// The kept events with seq greater than `after`, oldest first.
    pub fn events_after(&self, after: Seq) -> impl Iterator<Item = &Arc<EncodedEvent>> {
        // Events are in seq order, so binary search for the first one to send.
        let start = self.events.partition_point(|e| e.seq() <= after);
        self.events.range(start..)
    }

    /// True if no event with seq greater than `since` has been evicted, so
    /// a replay after `since` misses nothing of this channel.
    pub fn is_complete_after(&self, since: Seq) -> bool {
        self.newest_evicted <= since
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
        let mut history = ChannelHistory::new(3);
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
    }

    #[test]
    fn capacity_zero_keeps_nothing_and_is_never_complete_after_an_event() {
        let mut history = ChannelHistory::new(0);
        assert!(history.is_complete_after(Seq(0)));
        history.push(event(5));
        assert!(history.is_empty());
        assert!(!history.is_complete_after(Seq(4)));
        assert!(history.is_complete_after(Seq(5)));
    }
}
