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
//!
//! **Bytes are bounded too** (`--queue-bytes`): every frame, counted or not,
//! costs its payload plus [`FRAME_OVERHEAD`], and a counted push fails once
//! the queue already holds the byte limit, so a queue never holds more than
//! the limit plus one frame. Counting frames alone let a client that never
//! reads hold `--queue-size` replies each as big as a whole message (about
//! 64 MB with long request ids). The bytes of frames the write pump has
//! taken stay counted until it comes back for more, by which time it has
//! written them: a write pump blocked on a stalled socket holds its batch,
//! and that batch must not be free. Uncounted pushes (the replay, the
//! shutdown sequence) are never refused, so whoever makes one bounds it
//! first: the broadcaster builds only the part of a replay that fits in
//! [`OutboundQueue::replay_budget`].

use std::cell::Cell;
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

/// What a queued frame costs besides its payload, in bytes: its place in
/// the queue and in the write pump's batch, and the shared pointer or
/// reference count behind it. Charged so that many tiny frames are bounded
/// by the byte limit too.
pub const FRAME_OVERHEAD: usize = 64;

impl OutboundFrame {
    /// The bytes this frame is charged against `--queue-bytes`: its payload
    /// (for an event, its shared frame text, counted in full in every
    /// queue) plus [`FRAME_OVERHEAD`].
    pub fn cost(&self) -> usize {
        FRAME_OVERHEAD
            + match self {
                OutboundFrame::Event(event) => event.frame.len(),
                OutboundFrame::Text(text) => text.len(),
                OutboundFrame::Binary(data) | OutboundFrame::Pong(data) => data.len(),
                OutboundFrame::Close(_) => 0,
            }
    }
}

/// A frame, whether it counts against the frame limit, and its cost in bytes.
#[derive(Debug)]
struct Item {
    frame: OutboundFrame,
    counted: bool,
    cost: usize,
}

/// Returned by a counted push when the client already has `--queue-size`
/// frames waiting, or `--queue-bytes` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// How much one client's queue may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Counted frames waiting (`--queue-size`).
    pub frames: usize,
    /// Bytes of every frame waiting or in the write pump's hands, counted
    /// or not (`--queue-bytes`).
    pub bytes: usize,
}

/// State shared by the pushing and the receiving side.
#[derive(Debug)]
struct Shared {
    items: Mutex<VecDeque<Item>>,
    /// Counted frames pushed and not yet taken by the write pump.
    queued: AtomicUsize,
    /// The most frames ever waiting at once, for metrics.
    high_water: AtomicUsize,
    /// Bytes of every frame queued, or taken and not yet written.
    bytes: AtomicUsize,
    limits: QueueLimits,
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
    /// Bytes of the frames handed out by the last `take_all`: still in the
    /// write pump's hands until it asks for more.
    in_hand: Cell<usize>,
}

/// A new queue bounded by `limits`.
pub fn outbound_queue(limits: QueueLimits) -> (OutboundQueue, OutboundReceiver) {
    let shared = Arc::new(Shared {
        items: Mutex::new(VecDeque::new()),
        queued: AtomicUsize::new(0),
        high_water: AtomicUsize::new(0),
        bytes: AtomicUsize::new(0),
        limits,
        kicked: AtomicU8::new(0),
        deadline: Mutex::new(None),
        writer: OnceLock::new(),
        closed: AtomicBool::new(false),
    });
    (
        OutboundQueue {
            shared: shared.clone(),
        },
        OutboundReceiver {
            shared,
            in_hand: Cell::new(0),
        },
    )
}

impl OutboundQueue {
    /// Append `frame`, counting it against the limit. Does not wake the
    /// write pump: call [`wake`](Self::wake) after the last push.
    ///
    /// # Errors
    /// [`QueueFull`] if the client already has `--queue-size` frames
    /// waiting, or already holds `--queue-bytes`; nothing is queued then.
    pub fn push(&self, frame: OutboundFrame) -> Result<(), QueueFull> {
        let limits = self.shared.limits;
        let before = self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if before >= limits.frames {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(QueueFull);
        }
        let cost = frame.cost();
        // Refused only once the limit is reached, not when this frame would
        // cross it: one event bigger than the whole budget still reaches a
        // client that keeps its queue empty.
        if self.shared.bytes.fetch_add(cost, Ordering::AcqRel) >= limits.bytes {
            self.shared.bytes.fetch_sub(cost, Ordering::AcqRel);
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
            cost,
        });
        Ok(())
    }

    /// Append `frame` without counting it against `--queue-size` and
    /// without refusing it: the shutdown sequence, which must reach the
    /// client whatever its queue holds. Its bytes are charged.
    pub fn push_uncounted(&self, frame: OutboundFrame) {
        self.push_uncounted_all(std::iter::once(frame));
    }

    /// As [`push_uncounted`](Self::push_uncounted) for many frames under
    /// one lock: a replay. The caller keeps the total within
    /// [`replay_budget`](Self::replay_budget).
    pub fn push_uncounted_all(&self, frames: impl IntoIterator<Item = OutboundFrame>) {
        if self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        let mut charged = 0;
        let mut items = self.shared.items();
        for frame in frames {
            let cost = frame.cost();
            charged += cost;
            items.push_back(Item {
                frame,
                counted: false,
                cost,
            });
        }
        self.shared.bytes.fetch_add(charged, Ordering::AcqRel);
    }

    fn append(&self, item: Item) {
        // Once the write pump is gone nobody will take the frame; keeping
        // it would only hold memory until the client is unregistered.
        if self.shared.closed.load(Ordering::Acquire) {
            self.shared.bytes.fetch_sub(item.cost, Ordering::AcqRel);
            if item.counted {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            }
            return;
        }
        self.shared.items().push_back(item);
    }

    /// The bytes a replay may add now: half of `--queue-bytes`, less what
    /// the queue already holds. The other half stays free for the live
    /// events that arrive while the replay drains; a replay that filled the
    /// whole budget would get its client closed by the first of them.
    pub fn replay_budget(&self) -> usize {
        (self.shared.limits.bytes / 2).saturating_sub(self.queued_bytes())
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

    /// Bytes charged now: every frame waiting, and those the write pump
    /// took and has not finished writing.
    pub fn queued_bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Relaxed)
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
    /// places in the frame count. One lock per batch, however many frames.
    ///
    /// Their bytes stay charged until the next call: the write pump calls
    /// this again only once it has written the previous batch, so that is
    /// when those bytes are really free.
    pub fn take_all(&self, batch: &mut VecDeque<OutboundFrame>) {
        let mut taken = VecDeque::new();
        std::mem::swap(&mut *self.shared.items(), &mut taken);
        let counted = taken.iter().filter(|item| item.counted).count();
        if counted > 0 {
            self.shared.queued.fetch_sub(counted, Ordering::AcqRel);
        }
        let taken_bytes: usize = taken.iter().map(|item| item.cost).sum();
        let written = self.in_hand.replace(taken_bytes);
        if written > 0 {
            self.shared.bytes.fetch_sub(written, Ordering::AcqRel);
        }
        batch.extend(taken.into_iter().map(|item| item.frame));
    }

    /// Drop every waiting frame (a kicked connection writes none of them),
    /// and release every byte charged, those in hand included: the write
    /// pump drops its batch with them.
    pub fn discard_all(&self) {
        let mut batch = VecDeque::new();
        self.take_all(&mut batch);
        self.release_in_hand();
    }

    /// The write pump has dropped or finished the frames it took: their
    /// bytes are free now rather than at the next `take_all`.
    pub fn release_in_hand(&self) {
        let in_hand = self.in_hand.replace(0);
        if in_hand > 0 {
            self.shared.bytes.fetch_sub(in_hand, Ordering::AcqRel);
        }
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

    fn frames(n: usize) -> QueueLimits {
        QueueLimits {
            frames: n,
            bytes: usize::MAX / 2,
        }
    }

    #[test]
    fn counted_pushes_stop_at_the_limit_and_uncounted_do_not() {
        let (queue, receiver) = outbound_queue(frames(2));
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
        let (queue, receiver) = outbound_queue(frames(1));
        assert!(queue.kick(CloseReason::SlowConsumer));
        assert!(!queue.kick(CloseReason::Shutdown));
        assert_eq!(receiver.kicked(), Some(CloseReason::SlowConsumer));
    }

    #[test]
    fn a_wake_before_the_wait_is_not_lost() {
        let (queue, receiver) = outbound_queue(frames(4));
        receiver.attach_current_thread();
        queue.push(OutboundFrame::Text("x".into())).unwrap();
        queue.wake();
        // The token from `wake` makes this return at once instead of
        // sleeping for an hour.
        receiver.wait(Some(Instant::now() + std::time::Duration::from_secs(3600)));
    }

    #[test]
    fn pushes_after_the_receiver_is_gone_are_dropped() {
        let (queue, receiver) = outbound_queue(frames(2));
        drop(receiver);
        queue.push(OutboundFrame::Text("late".into())).unwrap();
        queue.push_uncounted(OutboundFrame::Text("late too".into()));
        assert_eq!(queue.queued(), 0);
        assert_eq!(queue.queued_bytes(), 0);
    }

    fn text(len: usize) -> OutboundFrame {
        OutboundFrame::Text("x".repeat(len).into())
    }

    #[test]
    fn bytes_are_bounded_for_every_kind_of_frame() {
        let limits = QueueLimits {
            frames: 1000,
            bytes: 1000,
        };
        let (queue, receiver) = outbound_queue(limits);
        // Refused only once the limit is reached: 436 + 436 < 1000, the
        // third goes over, the fourth is refused.
        for _ in 0..3 {
            queue.push(text(372)).unwrap();
        }
        assert_eq!(queue.queued_bytes(), 3 * 436);
        assert_eq!(queue.push(text(1)), Err(QueueFull));
        assert_eq!(
            queue.push(OutboundFrame::Pong(vec![0; 4].into())),
            Err(QueueFull)
        );
        assert_eq!(queue.queued(), 3);
        // One frame bigger than the whole budget fits an empty queue.
        let (big, _big_rx) = outbound_queue(limits);
        big.push(text(5000)).unwrap();
        assert_eq!(big.push(text(1)), Err(QueueFull));
        // Uncounted frames are charged too.
        drop(_big_rx);
        let (queue2, receiver2) = outbound_queue(limits);
        queue2.push_uncounted_all((0..3).map(|_| text(300)));
        assert_eq!(queue2.queued_bytes(), 3 * 364);
        assert_eq!(queue2.push(text(1)), Err(QueueFull));
        drop(receiver2);
        drop(receiver);
    }

    #[test]
    fn taken_bytes_stay_charged_until_the_write_pump_comes_back() {
        let limits = QueueLimits {
            frames: 1000,
            bytes: 1000,
        };
        let (queue, receiver) = outbound_queue(limits);
        queue.push(text(600)).unwrap();
        queue.push(text(600)).unwrap();
        let mut batch = VecDeque::new();
        receiver.take_all(&mut batch);
        assert_eq!(batch.len(), 2);
        assert_eq!(queue.queued(), 0);
        // Still in the write pump's hands: not free yet.
        assert_eq!(queue.queued_bytes(), 1328);
        assert_eq!(queue.push(text(1)), Err(QueueFull));
        batch.clear();
        receiver.take_all(&mut batch);
        assert_eq!(queue.queued_bytes(), 0);
        queue.push(text(1)).unwrap();
        // A kick drops everything, in hand included.
        receiver.take_all(&mut batch);
        assert_eq!(queue.queued_bytes(), 65);
        receiver.discard_all();
        assert_eq!(queue.queued_bytes(), 0);
    }

    #[test]
    fn a_replay_gets_half_the_budget_less_what_is_queued() {
        let limits = QueueLimits {
            frames: 10,
            bytes: 1000,
        };
        let (queue, _receiver) = outbound_queue(limits);
        assert_eq!(queue.replay_budget(), 500);
        queue.push(text(136)).unwrap();
        assert_eq!(queue.replay_budget(), 300);
        queue.push(text(436)).unwrap();
        assert_eq!(queue.replay_budget(), 0);
    }
}
