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
//! **Writing for a parked write pump.** Even one wake-up per delivery is
//! most of what a delivery costs at 100 events/s, when every event finds
//! every write pump asleep: a futex wake, two context switches, then one
//! `send`. perf on the 2-vCPU machine put half of the hub's CPU in the
//! scheduler. So the broadcaster's end-of-round wake
//! ([`OutboundQueue::wake_or_write`]) first tries to do the write pump's
//! job itself: if the pump is parked with nothing half-written, the waker
//! takes the socket's write side for a moment (a three-state flag, below),
//! takes the waiting event and text frames, and sends them with one
//! non-blocking `send`. Only what the socket would not take at once, and
//! everything else (Pongs, Close, a kicked or closing connection) goes
//! the usual way: the write pump is woken and writes it, blocking with its
//! timeout. Order is kept because exactly one thread holds the write side
//! at a time, and it takes frames from the one FIFO in order; a frame the
//! waker could not finish is handed over as raw bytes that the pump writes
//! before anything else.
//!
//! A push never blocks on the client. A counted push that would go over
//! `--queue-size` fails with [`QueueFull`], and the pusher then calls
//! [`OutboundQueue::kick`]: the write pump stops writing what is queued and
//! closes with 4008. Replayed events are pushed uncounted, as the contract
//! asks (a client resuming after a 4008 close gets its whole replay).

use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, Thread};
use std::time::Instant;

use tungstenite::protocol::frame::Utf8Bytes;
use tungstenite::Bytes;

use crate::connection::{CloseReason, Connection};
use crate::event::EncodedEvent;
use crate::metrics::Metrics;

/// Who holds the socket's write side. Only the holder writes to it.
/// The write pump is running (or finishing); wakers only unpark it.
const PUMP_RUNNING: u8 = 0;
/// The write pump is parked, with nothing half-written, its connection
/// open and not closing: a waker may take the write side.
const PUMP_PARKED: u8 = 1;
/// A waker is writing for the parked pump; the pump waits for it to finish
/// before it writes anything (a few microseconds: the send never blocks).
const WAKER_WRITING: u8 = 2;

/// The most frame bytes a waker sends for one client at a time. Beyond
/// it the pump takes over, so a big replay is not copied out of the
/// shared event frames into one buffer, and what a waker may leave in
/// `unsent` for a full socket stays bounded.
#[cfg(target_os = "linux")]
const DIRECT_WRITE_BUDGET: usize = 64 * 1024;

/// `send(2)` flags: do not block, and no SIGPIPE for a closed peer (std
/// sends with `MSG_NOSIGNAL` too). Linux values.
#[cfg(target_os = "linux")]
const SEND_FLAGS: i32 = 0x40 /* MSG_DONTWAIT */ | 0x4000 /* MSG_NOSIGNAL */;

/// What a waker needs to write for a parked write pump, and to count what
/// it wrote as the pump would. Registered by the pump when it starts.
#[derive(Debug)]
pub struct DirectWrite {
    /// The connection's socket (the same one the pump writes through).
    pub tcp: Arc<TcpStream>,
    /// For the per-connection `sent` counter.
    pub connection: Arc<Connection>,
    /// For `frames_sent` and the fan-out latency histogram.
    pub metrics: Arc<Metrics>,
}

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
    /// `PUMP_RUNNING`, `PUMP_PARKED` or `WAKER_WRITING`.
    writer_state: AtomicU8,
    /// Set by the pump at start (not for the echo server's tests of the
    /// plain path): what lets a waker write. Unset, wakers only unpark.
    direct: OnceLock<DirectWrite>,
    /// Bytes of a frame a waker could only partly send: the pump writes
    /// them before anything else.
    unsent: Mutex<Vec<u8>>,
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
        writer_state: AtomicU8::new(PUMP_RUNNING),
        direct: OnceLock::new(),
        unsent: Mutex::new(Vec::new()),
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

    /// Deliver what is queued: write it here and now if the write pump is
    /// parked and the socket takes it without blocking, else wake the pump.
    /// For the broadcaster's end-of-round wake-ups, which carry only
    /// frames to write; a wake that means something else (the read pump is
    /// done, a kick) must use [`wake`](Self::wake), which always wakes.
    pub fn wake_or_write(&self) {
        if !self.try_write_for_parked_pump() {
            self.wake();
        }
    }

    /// True if everything queued was written here (or nothing was queued)
    /// and the pump may stay asleep.
    fn try_write_for_parked_pump(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            let shared = &*self.shared;
            let Some(direct) = shared.direct.get() else {
                return false;
            };
            if shared
                .writer_state
                .compare_exchange(
                    PUMP_PARKED,
                    WAKER_WRITING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                return false;
            }
            let written = self.write_queued(direct);
            shared.writer_state.store(PUMP_PARKED, Ordering::Release);
            written
        }
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// With the write side held: take the events and text frames at the
    /// head of the queue (up to `DIRECT_WRITE_BUDGET` bytes), frame them,
    /// and send them without blocking. Returns false if the pump must run:
    /// frames left queued (a Pong, a Close, or past the budget), a kick or
    /// shutdown under way, or bytes the socket did not take (in `unsent`).
    #[cfg(target_os = "linux")]
    fn write_queued(&self, direct: &DirectWrite) -> bool {
        let shared = &*self.shared;
        if shared.kicked.load(Ordering::Acquire) != 0
            || shared.closed.load(Ordering::Acquire)
            || shared.deadline.lock().map_or(true, |d| d.is_some())
        {
            return false;
        }
        // Frame the longest run of events and text at the head of the queue
        // that fits the budget; what follows (a Pong, a Close, or just more
        // than the budget) stays queued, in order, for the pump.
        let mut bytes = Vec::new();
        let mut oldest_event: Option<Instant> = None;
        let (frames, counted, more_queued) = {
            let mut items = shared.items();
            let mut frames = 0;
            let mut counted = 0;
            for item in items.iter() {
                let payload = match &item.frame {
                    OutboundFrame::Event(event) => event.frame.as_bytes(),
                    OutboundFrame::Text(text) => text.as_bytes(),
                    _ => break,
                };
                if frames > 0 && bytes.len() + payload.len() > DIRECT_WRITE_BUDGET {
                    break;
                }
                if let OutboundFrame::Event(event) = &item.frame {
                    oldest_event.get_or_insert(event.accepted_at);
                }
                push_text_frame(&mut bytes, payload);
                frames += 1;
                counted += usize::from(item.counted);
            }
            items.drain(..frames);
            (frames, counted, !items.is_empty())
        };
        if frames == 0 {
            // Nothing queued (true), or a frame only the pump writes (false).
            return !more_queued;
        }
        if counted > 0 {
            shared.queued.fetch_sub(counted, Ordering::AcqRel);
        }
        let frames = frames as u64;
        // Counted before the send, as the pump does, so a client never
        // reads a frame `/status` does not count yet.
        direct.connection.stats.add_sent(frames);
        direct.metrics.frames_sent.add(frames);
        let sent = send_without_blocking(&direct.tcp, &bytes);
        if let Some(accepted_at) = oldest_event {
            direct.metrics.fanout_latency.observe(accepted_at.elapsed());
        }
        if sent == bytes.len() {
            // All sent; the pump runs only if more is queued.
            return !more_queued;
        }
        // The socket is full (or failed): the pump writes the rest, blocking
        // with its timeout, or meets the error itself and closes.
        if let Ok(mut unsent) = shared.unsent.lock() {
            unsent.extend_from_slice(&bytes[sent..]);
        }
        false
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

    /// Let wakers write for this pump while it is parked (see the module
    /// docs). The write pump calls this once, at start.
    pub fn allow_direct_writes(&self, direct: DirectWrite) {
        let _ = self.shared.direct.set(direct);
    }

    /// The pump is about to park with its socket idle: nothing buffered,
    /// the connection open and not closing. Wakers may write until
    /// [`resume`](Self::resume).
    pub fn park_idle(&self) {
        self.shared
            .writer_state
            .store(PUMP_PARKED, Ordering::Release);
    }

    /// Take the write side back after a wait. If a waker is writing right
    /// now, wait for it: its send does not block, so this is short.
    pub fn resume(&self) {
        loop {
            match self.shared.writer_state.compare_exchange(
                PUMP_PARKED,
                PUMP_RUNNING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(WAKER_WRITING) => thread::yield_now(),
                Err(_) => return, // already running
            }
        }
    }

    /// Bytes a waker could not send, to be written before anything else.
    pub fn take_unsent(&self) -> Vec<u8> {
        self.shared
            .unsent
            .lock()
            .map(|mut unsent| std::mem::take(&mut *unsent))
            .unwrap_or_default()
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

/// Bytes of a server text frame carrying `payload`: FIN + text opcode, the
/// length, no mask (servers do not mask), the payload. The same bytes
/// tungstenite writes for `Message::Text`.
#[cfg(target_os = "linux")]
fn push_text_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Send as much of `bytes` as the socket takes without blocking; returns
/// how much that was. An error other than "would block" returns what was
/// sent so far: the pump meets the same error on the rest and closes.
#[cfg(target_os = "linux")]
fn send_without_blocking(tcp: &TcpStream, bytes: &[u8]) -> usize {
    let socket = socket2::SockRef::from(tcp);
    let mut sent = 0;
    while sent < bytes.len() {
        match socket.send_with_flags(&bytes[sent..], SEND_FLAGS) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    sent
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

    /// The frames a waker writes are byte for byte what tungstenite writes.
    #[cfg(target_os = "linux")]
    #[test]
    fn direct_frames_match_tungstenite() {
        use tungstenite::protocol::frame::coding::{Data, OpCode};
        use tungstenite::protocol::frame::Frame;
        for len in [0, 5, 125, 126, 200, 65535, 65536, 70000] {
            let payload = "x".repeat(len);
            let mut ours = Vec::new();
            push_text_frame(&mut ours, payload.as_bytes());
            let mut theirs = Vec::new();
            Frame::message(payload.clone(), OpCode::Data(Data::Text), true)
                .format(&mut theirs)
                .unwrap();
            assert_eq!(ours, theirs, "payload of {len} bytes");
        }
    }

    /// A parked pump's events are written by the waker, in order; a Pong
    /// in the queue leaves everything to the pump.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_waker_writes_for_a_parked_pump_but_only_plain_frames() {
        use crate::connection::{ConnectionId, ConnectionInfo, ConnectionStats};
        use std::io::Read;
        use std::net::TcpListener;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let connection = Arc::new(Connection {
            info: ConnectionInfo {
                id: ConnectionId::new(),
                remote_addr: peer,
                user_agent: None,
                origin: None,
                connected_at_ms: 0,
            },
            stats: ConnectionStats::default(),
        });
        let (queue, receiver) = outbound_queue(8);
        receiver.allow_direct_writes(DirectWrite {
            tcp: Arc::new(server),
            connection: connection.clone(),
            metrics: Arc::new(Metrics::default()),
        });

        // Running pump: the waker only wakes; the frame stays queued.
        queue.push(OutboundFrame::Text("a".into())).unwrap();
        queue.wake_or_write();
        assert_eq!(queue.queued(), 1);

        // Parked pump: the waker writes both frames, in order.
        receiver.park_idle();
        queue.push(OutboundFrame::Text("bc".into())).unwrap();
        queue.wake_or_write();
        assert_eq!(queue.queued(), 0);
        assert_eq!(connection.stats.sent(), 2);
        let mut bytes = [0u8; 7];
        client.read_exact(&mut bytes).unwrap();
        assert_eq!(bytes, [0x81, 1, b'a', 0x81, 2, b'b', b'c']);

        // A Pong must go through the pump: nothing is taken or written.
        queue.push(OutboundFrame::Pong(Bytes::new())).unwrap();
        queue.push(OutboundFrame::Text("d".into())).unwrap();
        queue.wake_or_write();
        assert_eq!(queue.queued(), 2);
        receiver.resume();
        assert!(receiver.take_unsent().is_empty());
        receiver.discard_all();

        // Past the budget, the rest stays queued for the pump.
        receiver.park_idle();
        let big = "y".repeat(40 * 1024);
        queue.push(OutboundFrame::Text(big.clone().into())).unwrap();
        queue.push(OutboundFrame::Text(big.into())).unwrap();
        queue.wake_or_write();
        assert_eq!(queue.queued(), 1);
        let mut first = vec![0u8; 4 + 40 * 1024];
        client.read_exact(&mut first).unwrap();
        assert_eq!(&first[..4], &[0x81, 126, 0xa0, 0x00]);
        assert!(receiver.take_unsent().is_empty());
    }

    #[test]
    fn pushes_after_the_receiver_is_gone_are_dropped() {
        let (queue, receiver) = outbound_queue(2);
        drop(receiver);
        queue.push(OutboundFrame::Text("late".into())).unwrap();
        assert_eq!(queue.queued(), 0);
    }
}
