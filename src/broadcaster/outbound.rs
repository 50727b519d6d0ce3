//! `OutboundQueue`: the one FIFO of frames waiting for a client's write pump,
//! the slow-consumer rule that bounds it, and how the write pump is woken.
//!
//! Two threads push into a client's queue: the broadcaster (events, replies
//! to subscribe/unsubscribe/publish, `welcome`, `shutdown`) and that client's
//! read pump (Pongs, replies it answers itself, error replies). Only the write
//! pump takes from it. Because the read pump waits for the broadcaster to
//! finish a request before reading the next one, everything lands in the
//! order the client asked for it.
//!
//! **Pushing and waking are separate steps.** Waking a parked thread costs a
//! system call and, when it sleeps on the other CPU, an inter-processor
//! interrupt: about 11 µs on the 2-vCPU machines this was measured on, more
//! than everything else a delivery costs. So a push only appends; the pusher
//! calls [`OutboundQueue::wake`] when it is done. The broadcaster pushes the
//! events of every command it has waiting, then wakes each write pump it
//! touched once: under load one wake-up carries many events. (A crossbeam
//! channel wakes its receiver on every send, which is why this queue is a
//! `Mutex<VecDeque>` plus `thread::park` instead.)
//!
//! A push never blocks on the client. A counted push that would go over
//! `--queue-size` fails with [`QueueFull`], and the pusher then calls
//! [`OutboundQueue::kick`]: the write pump stops writing what is queued and
//! closes with 4008. Replayed events are pushed uncounted, as the contract
//! asks (a client resuming after a 4008 close gets its whole replay).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, Thread};
use std::time::Instant;

use tungstenite::protocol::frame::Utf8Bytes;
use tungstenite::Bytes;

use super::encoded_event::EncodedEvent;
use super::registry::CloseReason;

/// One thing for the write pump to do, in order.
#[derive(Debug)]
pub enum OutboundFrame {
    /// A published event; its frame bytes are shared with every other queue.
    Event(Arc<EncodedEvent>),
    /// Any other text frame: a reply, `welcome`, `shutdown`, a broadcast error.
    Text(Utf8Bytes),
    /// A binary frame. The hub never sends one; the echo server (`testing/echo.rs`)
    /// sends back the client's.
    Binary(Bytes),
    /// A protocol Pong answering the client's Ping.
    Pong(Bytes),
    /// Start the closing handshake once everything queued before it is
    /// written (graceful shutdown uses this, after the `shutdown` frame).
    Close(CloseReason),
}

/// A frame and whether it counts against the limit.
#[derive(Debug)]
struct Item {
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
    items: Mutex<VecDeque<Item>>,
    /// Counted frames pushed and not yet taken by the write pump.
    queued: AtomicUsize,
    /// The most frames ever waiting at once, for metrics.
    high_water: AtomicUsize,
    limit: usize,
    /// A `CloseReason` code if the connection was kicked, else 0.
    kicked: AtomicU8,
    /// Set at graceful shutdown: the write pump must be done by then.
    deadline: Mutex<Option<Instant>>,
    /// The write pump's thread, to unpark; set when it starts.
    writer: OnceLock<Thread>,
    /// Set when the write pump is gone: pushes are dropped from then on.
    closed: AtomicBool,
}

impl Shared {
    fn items(&self) -> MutexGuard<'_, VecDeque<Item>> {
        // Nothing panics while holding this lock (push_back and swap), so a
        // poisoned lock still holds a consistent queue.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side of a client's queue. Cheap to clone; held by the
/// broadcaster and by the client's read pump.
#[derive(Debug, Clone)]
pub struct OutboundQueue {
    shared: Arc<Shared>,
}

/// The receiving side, owned by the client's write pump.
#[derive(Debug)]
pub struct OutboundReceiver {
    shared: Arc<Shared>,
}

/// A new queue holding at most `limit` counted frames.
pub fn outbound_queue(limit: usize) -> (OutboundQueue, OutboundReceiver) {
    let shared = Arc::new(Shared {
        items: Mutex::new(VecDeque::new()),
        queued: AtomicUsize::new(0),
        high_water: AtomicUsize::new(0),
        limit,
        kicked: AtomicU8::new(0),
        deadline: Mutex::new(None),
        writer: OnceLock::new(),
        closed: AtomicBool::new(false),
    });
    (
        OutboundQueue {
            shared: shared.clone(),
        },
        OutboundReceiver { shared },
    )
}

impl OutboundQueue {
    /// Append `frame`, counting it against the limit. Does not wake the
    /// write pump: call [`wake`](Self::wake) after the last push.
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
        self.append(Item {
            frame,
            counted: true,
        });
        Ok(())
    }

    /// Append `frame` without counting it: replayed events and the shutdown
    /// sequence, which must reach the client whatever its queue holds.
    pub fn push_uncounted(&self, frame: OutboundFrame) {
        self.append(Item {
            frame,
            counted: false,
        });
    }

    fn append(&self, item: Item) {
        // Once the write pump is gone nobody will take the frame; keeping
        // it would only hold memory until the client is unregistered.
        if self.shared.closed.load(Ordering::Acquire) {
            if item.counted {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            }
            return;
        }
        self.shared.items().push_back(item);
    }

    /// Wake the write pump if it is parked. Cheap when it is not: std's
    /// `unpark` is a system call only for a thread that is really asleep.
    pub fn wake(&self) {
        if let Some(writer) = self.shared.writer.get() {
            writer.unpark();
        }
    }

    /// Close the connection now with `reason`, dropping whatever is queued,
    /// and wake the write pump. The first kick wins; later ones change
    /// nothing. Returns true for the kick that won, so that the broadcaster
    /// and the read pump, which may both find the queue full, count and log
    /// a slow consumer only once.
    pub fn kick(&self, reason: CloseReason) -> bool {
        let first = self
            .shared
            .kicked
            .compare_exchange(0, reason.as_u8(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.wake();
        first
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
    /// Record the calling thread as the one to wake. The write pump calls
    /// this first thing; frames pushed before it are found by its first
    /// [`take_all`](Self::take_all).
    pub fn attach_current_thread(&self) {
        let _ = self.shared.writer.set(thread::current());
    }

    /// Move every waiting frame into `batch`, in order, releasing their
    /// places in the count. One lock per batch, however many frames.
    pub fn take_all(&self, batch: &mut VecDeque<OutboundFrame>) {
        let mut taken = VecDeque::new();
        std::mem::swap(&mut *self.shared.items(), &mut taken);
        let counted = taken.iter().filter(|item| item.counted).count();
        if counted > 0 {
            self.shared.queued.fetch_sub(counted, Ordering::AcqRel);
        }
        batch.extend(taken.into_iter().map(|item| item.frame));
    }

    /// Drop every waiting frame (a kicked connection writes none of them).
    pub fn discard_all(&self) {
        let mut batch = VecDeque::new();
        self.take_all(&mut batch);
    }

    /// Park until woken, or until `until` if given. Returns at once if a
    /// wake-up came since the last park (std's park token), so a push made
    /// between `take_all` and this call is never slept through.
    pub fn wait(&self, until: Option<Instant>) {
        match until {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    thread::park_timeout(left);
                }
            }
            None => thread::park(),
        }
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

impl Drop for OutboundReceiver {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.discard_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(batch: &VecDeque<OutboundFrame>) -> Vec<String> {
        batch
            .iter()
            .map(|f| match f {
                OutboundFrame::Text(t) => t.to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn counted_pushes_stop_at_the_limit_and_uncounted_do_not() {
        let (queue, receiver) = outbound_queue(2);
        assert!(queue.push(OutboundFrame::Text("a".into())).is_ok());
        assert!(queue.push(OutboundFrame::Text("b".into())).is_ok());
        assert_eq!(queue.push(OutboundFrame::Text("c".into())), Err(QueueFull));
        queue.push_uncounted(OutboundFrame::Text("replay".into()));
        assert_eq!(queue.queued(), 2);
        let mut batch = VecDeque::new();
        receiver.take_all(&mut batch);
        assert_eq!(texts(&batch), ["a", "b", "replay"]);
        assert_eq!(queue.queued(), 0);
        assert!(queue.push(OutboundFrame::Text("d".into())).is_ok());
        assert_eq!(queue.high_water(), 2);
    }

    #[test]
    fn the_first_kick_wins() {
        let (queue, receiver) = outbound_queue(1);
        assert!(queue.kick(CloseReason::SlowConsumer));
        assert!(!queue.kick(CloseReason::Shutdown));
        assert_eq!(receiver.kicked(), Some(CloseReason::SlowConsumer));
    }

    #[test]
    fn a_wake_before_the_wait_is_not_lost() {
        let (queue, receiver) = outbound_queue(4);
        receiver.attach_current_thread();
        queue.push(OutboundFrame::Text("x".into())).unwrap();
        queue.wake();
        // The token from `wake` makes this return at once instead of
        // sleeping for an hour.
        receiver.wait(Some(Instant::now() + std::time::Duration::from_secs(3600)));
    }

    #[test]
    fn pushes_after_the_receiver_is_gone_are_dropped() {
        let (queue, receiver) = outbound_queue(2);
        drop(receiver);
        queue.push(OutboundFrame::Text("late".into())).unwrap();
        assert_eq!(queue.queued(), 0);
    }
}
