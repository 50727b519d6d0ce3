//! The write pump: the only thread that writes bytes to a client's socket,
//! one per client (`write-pump-N`, started by `connection::serve`).
//!
//! Owns the write half of one connection: a tungstenite `WebSocket` over
//! the socket it shares with the read pump, used only to `write`, `flush`
//! and `close`. Each time it wakes it looks at three things:
//!
//! - the done channel: the read pump's one [`Done`] message when it stops;
//! - the client's [`OutboundReceiver`]: events and replies from the
//!   broadcaster, Pongs and replies from the read pump, in one FIFO;
//! - its timer: the next heartbeat Ping, or the end of a close handshake.
//!
//! Then it parks until whoever pushed to its queue (or sent `Done`) wakes
//! it, or until the timer is due. It takes every waiting frame at once,
//! writes them all and flushes once, so a busy client costs one `write`
//! syscall per wake-up, not one per frame.
//! It ends by calling `shutdown(Both)` on the socket: that sends FIN and
//! wakes a read pump still blocked in `read()`, which dropping our handle
//! would not do (docs/pumps.md, pitfall 6).
//!
//! The two pumps share one `TcpStream` through an `Arc` ([`SharedSocket`])
//! instead of each holding a `try_clone` of it: the same socket either way
//! (timeouts and `shutdown` act on the socket, not the descriptor), but one
//! file descriptor per connection instead of two, which is what lets 10,000
//! clients fit under a 20,000 open-files limit. It sends nothing back to the
//! hub; `connection::serve` joins it and does the cleanup.

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use crossbeam_channel::{Receiver, TryRecvError};
use tungstenite::error::{Error as WsError, ProtocolError};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use super::done::Done;
use super::socket::SharedSocket;
use crate::broadcaster::{CloseReason, Connection, OutboundFrame, OutboundReceiver};
use crate::config::Config;
use crate::metrics::Metrics;

/// How long we wait for the peer to answer our Close before dropping TCP.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How often, in frames, a long batch checks whether it was kicked.
const CHECK_KICK_EVERY: usize = 64;

/// Where the closing handshake stands, named by who acted.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Open,
    /// We sent Close; the peer has until `deadline` to answer. `why` is
    /// the close line's reason, such as `closed by hub: slow consumer (4008)`.
    ClosedByUs {
        deadline: Instant,
        why: &'static str,
        code: u16,
    },
}

/// Why the write pump stopped writing; a normal end is not an error.
type Stop = String;

/// One connection's writer. See the module docs.
pub struct WritePump {
    socket: WebSocket<SharedSocket>,
    outbound: OutboundReceiver,
    done_rx: Receiver<Done>,
    connection: Arc<Connection>,
    metrics: Arc<Metrics>,
    ping_interval: Option<Duration>,
    write_timeout: Duration,
    phase: Phase,
    next_ping: Option<Instant>,
}

impl WritePump {
    pub(crate) fn new(
        socket: WebSocket<SharedSocket>,
        outbound: OutboundReceiver,
        done_rx: Receiver<Done>,
        connection: Arc<Connection>,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Self {
        let ping_interval = (!config.ping_interval.is_zero()).then_some(config.ping_interval);
        WritePump {
            socket,
            outbound,
            done_rx,
            connection,
            metrics,
            ping_interval,
            write_timeout: config.write_timeout,
            phase: Phase::Open,
            next_ping: ping_interval.map(|i| Instant::now() + i),
        }
    }

    /// Write until the connection ends, then shut the socket (on drop).
    /// Returns how it ended, for the close log line: who closed and why.
    /// When the write pump ends first (a write failed, the hub closed), its
    /// reason is the real one and what the read pump reports is an echo.
    pub fn run(mut self) -> String {
        match self.pump() {
            Ok(how) => how,
            Err(stop) => stop,
        }
    }

    fn pump(&mut self) -> Result<String, Stop> {
        self.outbound.attach_current_thread();
        let mut batch = VecDeque::new();
        loop {
            // Done first: once the read pump has stopped, what is queued is
            // handled by `finish`, in order, before the close.
            match self.done_rx.try_recv() {
                Ok(done) => return self.finish(done),
                // The read pump's end was dropped without a word. A panic
                // in the read pump does not land here: `catching_panic` in
                // ws/serve.rs turns it into Done::Violation(1011). This is
                // the defensive case of that thread ending some other way.
                Err(TryRecvError::Disconnected) => {
                    return self.finish(Done::Failed("read pump ended".into()))
                }
                Err(TryRecvError::Empty) => {}
            }
            if let Some(reason) = self.outbound.kicked() {
                self.close_now(reason)?;
            }
            self.outbound.take_all(&mut batch);
            if !batch.is_empty() {
                self.write_batch(&mut batch)?;
                continue;
            }
            self.on_timer()?;
            self.outbound.wait(self.next_wake());
        }
    }

    /// The next instant the timer must fire, if any.
    fn next_wake(&self) -> Option<Instant> {
        let shutdown = self.outbound.deadline();
        let own = match self.phase {
            Phase::Open => self.next_ping,
            Phase::ClosedByUs { deadline, .. } => Some(deadline),
        };
        match (own, shutdown) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timer(&mut self) -> Result<(), Stop> {
        let now = Instant::now();
        if self.outbound.deadline().is_some_and(|d| now >= d) {
            return Err(match self.closed_by_us() {
                Some(closed) => format!("{closed}; shutdown grace period over"),
                None => "shutdown grace period over".into(),
            });
        }
        match self.phase {
            Phase::ClosedByUs { deadline, .. } if now >= deadline => Err(format!(
                "{}; the peer did not answer our close in time",
                self.closed_by_us().unwrap_or_default()
            )),
            Phase::Open if self.next_ping.is_some_and(|at| now >= at) => {
                self.next_ping = self.ping_interval.map(|i| now + i);
                self.write(Message::Ping(Default::default()))?;
                self.flush()
            }
            _ => Ok(()),
        }
    }

    /// Write every frame in `batch`, then flush once.
    fn write_batch(&mut self, batch: &mut VecDeque<OutboundFrame>) -> Result<(), Stop> {
        let mut oldest_event: Option<Instant> = None;
        let mut written = 0u64;
        while let Some(frame) = batch.pop_front() {
            if let OutboundFrame::Event(event) = &frame {
                oldest_event.get_or_insert(event.accepted_at);
            }
            written += self.write_frame(frame)?;
            // A kick skips the rest: a slow consumer will not read it.
            if written as usize % CHECK_KICK_EVERY == 0 && self.outbound.kicked().is_some() {
                batch.clear();
                break;
            }
        }
        // Counted before the flush, so a client never reads a frame that
        // `/status` and `/metrics` do not count yet.
        self.connection.stats.add_sent(written);
        self.metrics.frames_sent.add(written);
        self.flush()?;
        // After the flush: the latency ends when the bytes reach the socket.
        if let Some(accepted_at) = oldest_event {
            self.metrics.fanout_latency.observe(accepted_at.elapsed());
        }
        Ok(())
    }

    /// Write one frame into tungstenite's buffer. Returns how many frames
    /// that was (1), for the counters.
    fn write_frame(&mut self, frame: OutboundFrame) -> Result<u64, Stop> {
        let message = match frame {
            OutboundFrame::Event(event) => Message::Text(event.frame.clone()),
            OutboundFrame::Text(text) => Message::Text(text),
            OutboundFrame::Binary(data) => Message::Binary(data),
            // As a raw frame: tungstenite keeps a queued `Message::Pong` in a
            // single slot, so two Pings answered in one batch would lose one.
            OutboundFrame::Pong(payload) => Message::Frame(Frame::pong(payload)),
            OutboundFrame::Close(reason) => {
                self.start_close(reason)?;
                return Ok(1);
            }
        };
        self.write(message)?;
        Ok(1)
    }

    /// The connection was kicked: skip what is queued and close at once.
    fn close_now(&mut self, reason: CloseReason) -> Result<(), Stop> {
        if let Phase::Open = self.phase {
            // Drop what is waiting: a slow consumer will not read it, and
            // the client resumes from history with `since`.
            self.outbound.discard_all();
            self.start_close(reason)?;
        }
        Ok(())
    }

    /// Send our Close and give the peer `CLOSE_WAIT` to answer. Frames
    /// queued after it are refused by tungstenite (`SendAfterClosing`).
    fn start_close(&mut self, reason: CloseReason) -> Result<(), Stop> {
        if let Phase::Open = self.phase {
            let deadline = Instant::now() + CLOSE_WAIT;
            self.phase = Phase::ClosedByUs {
                deadline,
                why: reason.text(),
                code: reason.code(),
            };
            // A peer that is not reading must not hold us past the wait.
            let _ = self.socket.get_ref().set_write_timeout(Some(CLOSE_WAIT));
            match self.socket.close(Some(reason.frame())) {
                Ok(()) | Err(WsError::ConnectionClosed) => {}
                Err(e) => return Err(format!("close failed: {e}")),
            }
        }
        Ok(())
    }

    /// The read pump stopped. Write what is already queued (a pong or reply
    /// queued before the peer's Close or its protocol violation must go
    /// before our answer), then answer as the reason requires.
    fn finish(&mut self, done: Done) -> Result<String, Stop> {
        // If we closed first, the peer's Close is only its answer to ours.
        let outcome = self.closed_by_us().unwrap_or_else(|| done.to_string());
        match done {
            Done::PeerClosed(frame) => {
                self.drain()?;
                // Echo the peer's close; a no-op if we closed first.
                match self.socket.close(frame) {
                    Ok(()) | Err(WsError::ConnectionClosed) => {}
                    Err(e) => return Err(format!("close reply failed: {e}")),
                }
            }
            Done::Violation(code, reason) => {
                // Drained as for a Close: the replies to the frames before
                // the violation are often still queued when `Done` arrives,
                // and were lost without this (Autobahn 4.1.3-4.1.5, 4.2.4:
                // NON-STRICT on the echo server).
                self.drain()?;
                if let Phase::Open = self.phase {
                    let _ = self.socket.close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    }));
                }
                self.linger();
            }
            Done::Failed(_) => {}
        }
        Ok(outcome)
    }

    /// Write every frame already queued, unless we are closing already.
    fn drain(&mut self) -> Result<(), Stop> {
        if let Phase::Open = self.phase {
            let mut batch = VecDeque::new();
            self.outbound.take_all(&mut batch);
            while let Some(frame) = batch.pop_front() {
                self.write_frame(frame)?;
            }
        }
        Ok(())
    }

    /// After a protocol violation the read pump has stopped reading. Closing
    /// a socket with unread input sends RST, which can destroy our Close
    /// frame before the peer reads it; so shut our side, then read and drop
    /// whatever the peer still sends for up to `CLOSE_WAIT`.
    fn linger(&mut self) {
        let tcp: &TcpStream = self.socket.get_ref();
        let _ = tcp.shutdown(Shutdown::Write);
        let deadline = Instant::now() + CLOSE_WAIT;
        let mut sink = [0u8; 4096];
        let mut reader = tcp;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || reader.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match reader.read(&mut sink) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
    }

    /// `closed by hub: <reason> (<code>)` once we have sent our Close.
    fn closed_by_us(&self) -> Option<String> {
        match self.phase {
            Phase::ClosedByUs { why, code, .. } => Some(format!("closed by hub: {why} ({code})")),
            Phase::Open => None,
        }
    }

    fn write(&mut self, message: Message) -> Result<(), Stop> {
        self.set_write_deadline();
        match self.socket.write(message) {
            Ok(()) => Ok(()),
            // After our Close, late frames are dropped, not fatal: a late
            // Pong must not cut our own close handshake short.
            Err(WsError::Protocol(ProtocolError::SendAfterClosing)) => Ok(()),
            // A signal arrived during the send. The frame is already in
            // tungstenite's buffer, and the next flush sends it.
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(write_failure(e)),
        }
    }

    fn flush(&mut self) -> Result<(), Stop> {
        loop {
            match self.socket.flush() {
                Ok(()) => return Ok(()),
                // A signal (the hub's SIGTERM handler runs on any thread)
                // interrupts a send on a socket with a send timeout even
                // with SA_RESTART; what is unsent is still buffered, so
                // flushing again loses and repeats nothing.
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(write_failure(e)),
            }
        }
    }

    /// During graceful shutdown a write may block only until the deadline.
    fn set_write_deadline(&mut self) {
        if let Some(deadline) = self.outbound.deadline() {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let _ = self
                .socket
                .get_ref()
                .set_write_timeout(Some(left.min(self.write_timeout)));
        }
    }
}

impl Drop for WritePump {
    /// `shutdown(Both)`, not just a close of our clone: it sends FIN and
    /// wakes the read pump blocked in `read()` on the other clone. In
    /// `Drop`, so it happens even if this thread panics.
    fn drop(&mut self) {
        let _ = self.socket.get_ref().shutdown(Shutdown::Both);
    }
}

fn write_failure(error: WsError) -> Stop {
    match error {
        WsError::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            "write timed out: client not reading".into()
        }
        WsError::ConnectionClosed => "closed".into(),
        e => format!("write failed: {e}"),
    }
}
