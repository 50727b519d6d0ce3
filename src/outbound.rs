//! `OutboundQueue`: the one FIFO of frames waiting for a client's write pump,
//! and the slow-consumer rule that bounds it.
//!
//! Two threads push into a client's queue: the broadcaster (events, replies
//! to subscribe/unsubscribe/publish, `welcome`, `shutdown`) and that client's
//! read pump (Pongs, replies it answers itself, error replies). Only the write
//! pump receives. Because the read pump waits for the broadcaster to finish a
//! request before reading the next one, everything lands in the order the
//! client asked for it.
//!
//! The channel underneath is an unbounded crossbeam list, bounded by a
//! counter instead: crossbeam's `bounded(n)` allocates all `n` slots up front
//! (about 50 KiB for 1024 slots), while a list channel allocates small blocks
//! as frames arrive. The counter also lets replayed events bypass the limit,
//! as the contract asks (a client resuming after a 4008 close gets its whole
//! replay).
//!
//! A push never blocks. A counted push that would go over `--queue-size`
//! fails with [`QueueFull`], and the pusher then calls [`OutboundQueue::kick`]:
//! the write pump stops writing what is queued and closes with 4008.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use tungstenite::protocol::frame::Utf8Bytes;
use tungstenite::Bytes;

use crate::connection::CloseReason;
use crate::event::EncodedEvent;

/// One thing for the write pump to do, in order.
#[derive(Debug)]
pub enum OutboundFrame {
    /// A published event; its frame bytes are shared with every other queue.
    Event(Arc<EncodedEvent>),
    /// Any other text frame: a reply, `welcome`, `shutdown`, a broadcast error.
    Text(Utf8Bytes),
    /// A binary frame. The hub never sends one; the echo server (`echo.rs`)
    /// sends back the client's.
    Binary(Bytes),
    /// A protocol Pong answering the client's Ping.
    Pong(Bytes),
    /// Start the closing handshake once everything queued before it is
    /// written (graceful shutdown uses this, after the `shutdown` frame).
    Close(CloseReason),
    /// Wakes the write pump after [`OutboundQueue::kick`]; carries nothing.
    Kick,
}

/// A frame as it travels through the channel, with whether it counts
/// against the limit; see [`OutboundReceiver::open`].
#[derive(Debug)]
pub struct OutboundItem {
    frame: OutboundFrame,
    counted: bool,
}

/// Returned by a counted push when the client already has `--queue-size`
/// frames waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// State shared by the pushing and the receiving side.
#[derive(Debug)]
struct Shared {
    /// Counted frames pushed and not yet taken by the write pump.
    queued: AtomicUsize,
    /// The most frames ever waiting at once, for metrics.
    high_water: AtomicUsize,
    limit: usize,
    /// A `CloseReason` code if the connection was kicked, else 0.
    kicked: AtomicU8,
    /// Set at graceful shutdown: the write pump must be done by then.
    deadline: Mutex<Option<Instant>>,
}

/// The sending side of a client's queue. Cheap to clone; held by the
/// broadcaster and by the client's read pump.
#[derive(Debug, Clone)]
pub struct OutboundQueue {
    tx: Sender<OutboundItem>,
    shared: Arc<Shared>,
}

/// The receiving side, owned by the client's write pump.
#[derive(Debug)]
pub struct OutboundReceiver {
    rx: Receiver<OutboundItem>,
    shared: Arc<Shared>,
}

/// A new queue holding at most `limit` counted frames.
pub fn outbound_queue(limit: usize) -> (OutboundQueue, OutboundReceiver) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        high_water: AtomicUsize::new(0),
        limit,
        kicked: AtomicU8::new(0),
        deadline: Mutex::new(None),
    });
    (
        OutboundQueue {
            tx,
            shared: shared.clone(),
        },
        OutboundReceiver { rx, shared },
    )
}

impl OutboundQueue {
    /// Queue `frame`, counting it against the limit.
    ///
    /// # Errors
    /// [`QueueFull`] if the client already has `--queue-size` frames
    /// waiting; nothing is queued then.
    pub fn push(&self, frame: OutboundFrame) -> Result<(), QueueFull> {
        let before = self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if before >= self.shared.limit {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(QueueFull);
        }
        if before + 1 > self.shared.high_water.load(Ordering::Relaxed) {
            self.shared
                .high_water
                .fetch_max(before + 1, Ordering::Relaxed);
        }
        self.send(OutboundItem {
            frame,
            counted: true,
        });
        Ok(())
    }

    /// Queue `frame` without counting it: replayed events and the shutdown
    /// sequence, which must reach the client whatever its queue holds.
    pub fn push_uncounted(&self, frame: OutboundFrame) {
        self.send(OutboundItem {
            frame,
            counted: false,
        });
    }

    fn send(&self, item: OutboundItem) {
        // The receiver is gone only once the write pump has ended; the frame
        // has nobody to go to then, so dropping it is right.
        let _ = self.tx.send(item);
    }

    /// Close the connection now with `reason`, dropping whatever is queued.
    /// The first kick wins; later ones change nothing.
    pub fn kick(&self, reason: CloseReason) {
        let first = self
            .shared
            .kicked
            .compare_exchange(0, reason.as_u8(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.push_uncounted(OutboundFrame::Kick);
        }
    }

    /// Ask the write pump to finish by `deadline` (graceful shutdown).
    pub fn set_deadline(&self, deadline: Instant) {
        if let Ok(mut slot) = self.shared.deadline.lock() {
            *slot = Some(deadline);
        }
    }

    /// Counted frames waiting now.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// The most counted frames ever waiting at once.
    pub fn high_water(&self) -> usize {
        self.shared.high_water.load(Ordering::Relaxed)
    }
}

impl OutboundReceiver {
    /// The channel to `select!` on.
    pub fn channel(&self) -> &Receiver<OutboundItem> {
        &self.rx
    }

    /// Unwrap an item taken from [`channel`](Self::channel), releasing its
    /// slot in the count.
    pub fn open(&self, item: OutboundItem) -> OutboundFrame {
        if item.counted {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
        }
        item.frame
    }

    /// Why the connection was kicked, if it was.
    pub fn kicked(&self) -> Option<CloseReason> {
        CloseReason::from_u8(self.shared.kicked.load(Ordering::Acquire))
    }

    /// The graceful-shutdown deadline, if one was set.
    pub fn deadline(&self) -> Option<Instant> {
        self.shared.deadline.lock().ok().and_then(|slot| *slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_pushes_stop_at_the_limit_and_uncounted_do_not() {
        let (queue, receiver) = outbound_queue(2);
        assert!(queue.push(OutboundFrame::Text("a".into())).is_ok());
        assert!(queue.push(OutboundFrame::Text("b".into())).is_ok());
        assert_eq!(queue.push(OutboundFrame::Text("c".into())), Err(QueueFull));
        queue.push_uncounted(OutboundFrame::Text("replay".into()));
        assert_eq!(queue.queued(), 2);
        let first = receiver.channel().try_recv().unwrap();
        assert!(matches!(receiver.open(first), OutboundFrame::Text(t) if t == "a"));
        assert_eq!(queue.queued(), 1);
        assert!(queue.push(OutboundFrame::Text("d".into())).is_ok());
        assert_eq!(queue.high_water(), 2);
    }

    #[test]
    fn the_first_kick_wins() {
        let (queue, receiver) = outbound_queue(1);
        queue.kick(CloseReason::SlowConsumer);
        queue.kick(CloseReason::Shutdown);
        assert_eq!(receiver.kicked(), Some(CloseReason::SlowConsumer));
        assert_eq!(receiver.channel().len(), 1);
    }
}
