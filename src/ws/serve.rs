//! One client connection from accept to cleanup: its identity, its
//! counters, why it closed, and `serve`, the function that runs its life.
//!
//! `serve` runs on the connection's own thread, spawned by the acceptor:
//!
//! ```text
//!  accept ─► handshake ─► Connect to hub ─► spawn write pump ─► read pump ─┐
//!                                                                        done
//!  cleanup ◄─ Disconnect to hub ◄─ join write pump ◄─ send Done ◄──────────┘
//! ```
//!
//! The thread that ran the handshake becomes the read pump, and it spawns
//! the write pump. The two are joined by the done channel: the read pump
//! sends one [`Done`] saying why it stopped; the write pump answers the peer
//! accordingly and shuts the socket, which in turn wakes a read pump still
//! blocked in `read()` when the write pump ended first. Cleanup
//! (unregistering from the hub, counting the close) happens exactly once, in
//! a drop guard, so even a panic in the read pump cannot leave a ghost client.

use std::net::{SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use crossbeam_channel::Sender;
use log::{error, info};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};
use uuid::Uuid;

use crate::acceptor::GaugeEntry;
use crate::auth;
use crate::command::HubCommand;
use crate::handshake::{self, Admitted};
use crate::metrics::Metrics;
use crate::outbound::{outbound_queue, OutboundQueue};
use crate::read_pump::{ReadPump, ReadSide};
use crate::server::ServerContext;
use crate::write_pump::{SharedSocket, WritePump};

/// Stack size of a write pump thread. It only moves bytes, but with history
/// off it may drop the last reference to an event, and dropping a deeply
/// nested JSON value recurses. Measured with the test
/// `deeply_nested_json_does_not_overflow_the_pump_stacks` (126 levels):
/// 16 KiB suffice in release, 64 KiB in debug; this is twice that.
/// Only the pages a thread touches count towards RSS.
pub const WRITE_PUMP_STACK: usize = 128 * 1024;

/// Stack size of a connection thread (handshake, then read pump). It parses
/// client JSON, which serde_json bounds at 128 levels of nesting. Measured
/// with `deeply_nested_json_does_not_overflow_the_pump_stacks`: 48 KiB
/// suffice in release, but debug builds need more than 192 KiB; this
/// leaves room for both. A reservation costs address space, not memory:
/// an idle read pump touches only a few pages of it.
pub const READ_PUMP_STACK: usize = 512 * 1024;

/// A connection's id: a random UUID v4, shown lower-case as in `welcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub Uuid);

impl ConnectionId {
    /// A fresh random id.
    pub fn new() -> Self {
        ConnectionId(Uuid::new_v4())
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for ConnectionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(ConnectionId)
    }
}

/// What the hub knows about a connection from its handshake.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Its id.
    pub id: ConnectionId,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// The upgrade request's `User-Agent`.
    pub user_agent: Option<String>,
    /// The upgrade request's `Origin`.
    pub origin: Option<String>,
    /// When the handshake completed, Unix ms.
    pub connected_at_ms: u64,
}

/// Per-connection counters, written by its pumps and read for `/status`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    sent: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ConnectionStats {
    /// Count frames written to the socket.
    pub fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }
    /// Count one frame received.
    pub fn add_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
    /// Count an error reply and remember its text.
    pub fn record_error(&self, message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(message.to_owned());
        }
    }
    /// Frames written to the socket.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Frames received.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Error replies sent.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
    /// The last error reply's text.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|last| last.clone())
    }
}

/// A connection's identity and counters, shared by its two pumps and the
/// broadcaster.
#[derive(Debug)]
pub struct Connection {
    /// From the handshake.
    pub info: ConnectionInfo,
    /// Updated by the pumps.
    pub stats: ConnectionStats,
}

/// Why the hub closes a connection itself. Each maps to a close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// The outbound queue overflowed (4008).
    SlowConsumer = 1,
    /// Nothing arrived for ping interval + pong timeout (1001).
    PingTimeout = 2,
    /// No `auth` within the authentication deadline (1008).
    AuthTimeout = 3,
    /// Over the rate limit for 5 seconds in a row (1008).
    RateLimited = 4,
    /// The embedding application asked to disconnect it (1000).
    Disconnected = 5,
    /// The hub is shutting down (1001, after a `shutdown` frame).
    Shutdown = 6,
}

impl CloseReason {
    /// The WebSocket close code.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::SlowConsumer => crate::protocol::CLOSE_SLOW_CONSUMER,
            CloseReason::PingTimeout | CloseReason::Shutdown => 1001,
            CloseReason::AuthTimeout | CloseReason::RateLimited => 1008,
            CloseReason::Disconnected => 1000,
        }
    }

    /// The close frame's reason text.
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::AuthTimeout => "authentication timeout",
            CloseReason::RateLimited => "rate limit exceeded",
            CloseReason::Disconnected => "disconnected by the hub",
            CloseReason::Shutdown => "server shutting down",
        }
    }

    /// The close frame to send.
    pub fn frame(self) -> CloseFrame {
        CloseFrame {
            code: CloseCode::from(self.code()),
            reason: self.text().into(),
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_u8(value: u8) -> Option<CloseReason> {
        Some(match value {
            1 => CloseReason::SlowConsumer,
            2 => CloseReason::PingTimeout,
            3 => CloseReason::AuthTimeout,
            4 => CloseReason::RateLimited,
            5 => CloseReason::Disconnected,
            6 => CloseReason::Shutdown,
            _ => return None,
        })
    }
}

/// Why the read pump stopped; sent once over the done channel.
#[derive(Debug)]
pub enum Done {
    /// The peer sent a Close frame (`None` if it had no payload). The write
    /// pump answers with the same frame, unless it started the close itself.
    PeerClosed(Option<CloseFrame>),
    /// The peer broke the protocol; the write pump sends this close code
    /// (1002 protocol error, 1007 invalid UTF-8, 1009 too big) and drops TCP.
    Violation(CloseCode, &'static str),
    /// The socket failed or reached EOF without a close handshake.
    Failed(String),
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::PeerClosed(Some(frame)) => {
                write!(
                    f,
                    "closed by peer ({} {})",
                    u16::from(frame.code),
                    frame.reason
                )
            }
            Done::PeerClosed(None) => write!(f, "closed by peer"),
            Done::Violation(code, why) => write!(f, "{why} (closed with {})", u16::from(*code)),
            Done::Failed(why) => write!(f, "{why}"),
        }
    }
}

/// tungstenite settings for the read side: a small read buffer (it is
/// zero-filled on first use, so its size is resident memory per client),
/// and both frame and message size capped by `--max-message-size`, so an
/// oversized frame is refused from its header, before its payload is buffered.
pub(crate) fn read_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// tungstenite settings for the write side: it never reads, so its read
/// buffer is tiny; writes are buffered up to 32 KiB before going out, and
/// every batch ends with a flush.
fn write_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(64)
        .write_buffer_size(32 * 1024)
}

/// The write pump's tungstenite socket: the connection's one descriptor,
/// shared with the read pump, with [`write_config`].
pub(crate) fn write_side(tcp: &Arc<TcpStream>) -> WebSocket<SharedSocket> {
    WebSocket::from_raw_socket(
        SharedSocket(tcp.clone()),
        Role::Server,
        Some(write_config()),
    )
}

/// The read pump's end of the done channel. Sending (or dropping it, if
/// the read pump panics) also wakes the write pump, which parks on its
/// queue and would not otherwise notice the done channel.
pub(crate) struct DoneSender {
    done_tx: Option<Sender<Done>>,
    writer: OutboundQueue,
}

impl DoneSender {
    /// `done_tx` and the write pump's queue, to wake it. (Also used by
    /// `echo.rs`, which wires the same pumps.)
    pub(crate) fn new(done_tx: Sender<Done>, writer: OutboundQueue) -> Self {
        DoneSender {
            done_tx: Some(done_tx),
            writer,
        }
    }

    pub(crate) fn send(mut self, done: Done) {
        if let Some(done_tx) = self.done_tx.take() {
            // The write pump may already be gone (it ended first); then
            // nobody needs to hear why the read side stopped.
            let _ = done_tx.send(done);
        }
    }
}

impl Drop for DoneSender {
    fn drop(&mut self) {
        // Disconnect first, then wake: the write pump must find either the
        // message or the disconnected channel when it looks.
        drop(self.done_tx.take());
        self.writer.wake();
    }
}

/// Run `body`, and if it panics, log that with `whose` work it was, the
/// thread, the panic's message and `then` (what happens next), and return
/// `None`. A bug in one client's thread (or in an application's
/// `Authorizer`, which those threads call) must cost only that client.
/// `AssertUnwindSafe` is sound for its two callers: what `body` borrows is
/// dropped or finished with right after, and what it shares (queues,
/// counters) stays consistent under a panic.
fn catching_panic<T>(
    whose: std::fmt::Arguments<'_>,
    then: &str,
    body: impl FnOnce() -> T,
) -> Option<T> {
    let payload = match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => return Some(value),
        Err(payload) => payload,
    };
    // `panic!` payloads are a `&str` or a `String`.
    let message = (payload.downcast_ref::<&str>().copied())
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a non-string panic payload)");
    error!(
        "{whose}: thread {:?} panicked: {message}; {then}",
        thread::current().name().unwrap_or("?"),
    );
    None
}

/// Sends `Disconnect` and counts the close when dropped: exactly once per
/// registered connection, even if the read pump panics.
struct Registration {
    id: crate::connection::ConnectionId,
    commands: Sender<HubCommand>,
    metrics: Arc<Metrics>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = self.commands.send(HubCommand::Disconnect { id: self.id });
        self.metrics.connections_closed.inc();
    }
}

// Stack pages a thread touches stay resident for its whole life, and this
// thread goes on to be the read pump, parked in `read()` for hours. So the
// two steps with big temporaries (the handshake's parsed request, whose
// reads go straight to the heap: see `http_head::read_some`; the write
// pump's state on its way into its thread) run in frames of their own
// that are gone before the read pump starts: kept out of line, they cannot
// be inlined into `serve`'s frame, which stays below the read pump for as
// long as it runs. Measured (release, smaps):
// a client that has sent one request held 4 resident read-pump stack
// pages before, 3 now; a client that never sends holds 3 either way.

/// `handshake::accept` in a frame of its own (see above).
#[inline(never)]
fn run_handshake(
    tcp: &TcpStream,
    peer: SocketAddr,
    accepted_at: Instant,
    context: &ServerContext,
) -> Result<Admitted, handshake::Refusal> {
    handshake::accept(tcp, peer, accepted_at, context)
}

/// Build the write pump and start its thread, in a frame of its own (see
/// above).
#[inline(never)]
fn spawn_write_pump(
    tcp: &Arc<TcpStream>,
    outbound_rx: crate::outbound::OutboundReceiver,
    done_rx: crossbeam_channel::Receiver<Done>,
    connection: &Arc<Connection>,
    context: &ServerContext,
    number: u64,
) -> std::io::Result<thread::JoinHandle<String>> {
    let write_pump = WritePump::new(
        write_side(tcp),
        outbound_rx,
        done_rx,
        connection.clone(),
        context.metrics.clone(),
        &context.config,
    );
    thread::Builder::new()
        .name(format!("write-pump-{number}"))
        .stack_size(WRITE_PUMP_STACK)
        .spawn(move || write_pump.run())
}

/// Run one connection: handshake, pumps, cleanup. Runs on the connection's
/// own thread; returns when both pumps have ended.
pub(crate) fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    accepted_at: Instant,
    number: u64,
    context: Arc<ServerContext>,
    in_handshake: GaugeEntry,
) {
    // The handshake runs the application's authorizer too: a panic there
    // drops this TCP connection and nothing else. `run_handshake` keeps its
    // frame off the read pump's stack (see above).
    let admitted = catching_panic(format_args!("handshake from {peer}"), "dropping it", || {
        run_handshake(&tcp, peer, accepted_at, &context)
    });
    drop(in_handshake); // a handshake slot is free: the acceptor may go on
    let Some(admitted) = admitted else {
        return;
    };
    let Admitted {
        slot: _slot, // held until this function returns: our place under the limits
        info,
        session: _session, // held until this function returns, after cleanup starts
        initial,
        authenticated,
        leftover,
    } = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => {
            handshake::log_refusal(&context.metrics, peer, &refusal);
            return;
        }
    };
    let config = &context.config;
    let id = info.id;
    let user_agent = info.user_agent.clone();
    let connection = Arc::new(Connection {
        info,
        stats: ConnectionStats::default(),
    });
    // One socket, one descriptor, shared by both pumps (see `SharedSocket`).
    let tcp = Arc::new(tcp);
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_write_timeout(Some(config.write_timeout));

    // `?channels=` is a subscribe like any other, so the authorizer decides
    // it too. A refusal subscribes to nothing and is answered `forbidden`
    // right after `welcome` (the upgrade is done, so no HTTP status).
    let refused_channel = initial.as_ref().and_then(|(channels, _)| {
        auth::refused_channel(&*context.authorizer, &connection.info, channels).map(String::from)
    });
    let initial = if refused_channel.is_some() {
        None
    } else {
        initial
    };

    let (queue, outbound_rx) = outbound_queue(config.queue_size);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Done>(1);
    let (connected_tx, connected_rx) = crossbeam_channel::bounded::<()>(1);
    if context
        .commands
        .send(HubCommand::Connect {
            connection: connection.clone(),
            queue: queue.clone(),
            initial,
            done: connected_tx,
        })
        .is_err()
    {
        return; // the broadcaster has stopped: the hub is going away
    }
    // `welcome` must be the first frame. The read pump queues some replies
    // itself (`pong`, errors), so it starts only once the broadcaster has
    // queued `welcome`. The broadcaster never blocks, so this wait is short;
    // a disconnect means it stopped, and the write pump will see that too.
    let _ = connected_rx.recv();
    context.metrics.count_connection_opened();
    let _registration = Registration {
        id,
        commands: context.commands.clone(),
        metrics: context.metrics.clone(),
    };
    info!(
        "connection {id} opened from {peer} (#{number}, user agent {:?})",
        user_agent.as_deref().unwrap_or("-")
    );

    let writer = spawn_write_pump(&tcp, outbound_rx, done_rx, &connection, &context, number);
    let writer = match writer {
        Ok(handle) => handle,
        Err(e) => {
            error!("connection {id}: cannot start its write pump: {e}");
            let _ = tcp.shutdown(std::net::Shutdown::Both);
            return;
        }
    };

    let socket = WebSocket::from_partially_read(
        ReadSide::new(tcp),
        leftover,
        Role::Server,
        Some(read_config(config.max_message_size)),
    );
    let done_sender = DoneSender {
        done_tx: Some(done_tx),
        writer: queue.clone(),
    };
    let mut read_pump = ReadPump::new(
        socket,
        connection.clone(),
        queue,
        context.clone(),
        authenticated,
    );
    if let Some(channel) = refused_channel {
        read_pump.refuse_url_channel(&channel);
    }
    // A panic in the read pump closes with 1011 like any other ending, so
    // the write pump is joined and the cleanup below runs as usual.
    let done = catching_panic(
        format_args!("connection {id} from {peer}"),
        "closing it with 1011",
        || read_pump.run(),
    )
    .unwrap_or(Done::Violation(CloseCode::Error, "internal error"));
    let read_side = done.to_string();
    done_sender.send(done);
    // The write pump's account is the one to log: it says who closed
    // (`closed by peer …` / `closed by hub: slow consumer (4008)`), or why
    // writing failed first, in which case the read side only saw the echo.
    let reason = match writer.join() {
        Ok(outcome) => outcome,
        Err(_) => {
            error!("connection {id}: write pump panicked");
            format!("write pump panicked; read side: {read_side}")
        }
    };
    // One line per close, at info: the per-connection record an operator
    // greps for by id or address. Nothing is logged per event.
    info!(
        "connection {id} closed from {peer}: {reason}; after {:.1}s, {} frames in, {} out",
        accepted_at.elapsed().as_secs_f64(),
        connection.stats.received(),
        connection.stats.sent(),
    );
}
