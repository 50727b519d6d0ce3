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
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::Sender;
use log::{error, info};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocket};

use super::acceptor::InHandshake;
use super::done::{Done, DoneSender};
use super::handshake::{self, Admitted, Entry};
use super::read_pump::ReadPump;
use super::socket::{read_config, write_side, ReadSide, WRITE_PUMP_STACK};
use super::write_pump::WritePump;
use super::ServerContext;
use crate::auth::{self, Identity};
use crate::broadcaster::{outbound_queue, Connection, HubCommand, QueueLimits};
use crate::metrics::Metrics;

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
    id: crate::peer::ConnectionId,
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
// reads go straight to the heap: see `request_head::read_some`; the write
// pump's state on its way into its thread) run in frames of their own
// that are gone before the read pump starts: kept out of line, they cannot
// be inlined into `serve`'s frame, which stays below the read pump for as
// long as it runs. Measured (release, smaps):
// a client that has sent one request held 4 resident read-pump stack
// pages before, 3 now; a client that never sends holds 3 either way.

/// `handshake::accept` in a frame of its own (see above).
#[inline(never)]
fn run_handshake(
    arrival: &mut Arrival,
    context: &ServerContext,
) -> Result<Admitted, handshake::Refusal> {
    let already_read = std::mem::take(&mut arrival.already_read);
    handshake::accept(
        &arrival.tcp,
        arrival.peer,
        arrival.accepted_at,
        already_read,
        arrival.entry,
        context,
    )
}

/// Build the write pump and start its thread, in a frame of its own (see
/// above).
#[inline(never)]
fn spawn_write_pump(
    tcp: &Arc<TcpStream>,
    outbound_rx: crate::broadcaster::OutboundReceiver,
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

/// What the read pump is made of (see `run_read_pump`).
type ReadPumpParts<'a> = (
    ReadSide,
    Vec<u8>,
    &'a Arc<Connection>,
    crate::broadcaster::OutboundQueue,
    &'a Arc<ServerContext>,
    Option<Identity>,
);

/// Build the read pump and run it, in a frame of its own: the pump and its
/// tungstenite socket are large, and as locals of `serve` they made its
/// frame larger for the whole connection, including while it waits for
/// the broadcaster's `Connect` ack, which put one connection in five or
/// six onto a fourth stack page (RSS per idle connection 28.7 -> 29.3 KiB).
#[inline(never)]
fn run_read_pump(parts: ReadPumpParts<'_>, refused_channel: Option<String>) -> Done {
    let (socket, leftover, connection, queue, context, identity) = parts;
    let socket = WebSocket::from_partially_read(
        socket,
        leftover,
        Role::Server,
        Some(read_config(context.config.max_message_size)),
    );
    let mut read_pump = ReadPump::new(socket, connection.clone(), queue, context.clone(), identity);
    if let Some(channel) = refused_channel {
        read_pump.refuse_url_channel(&channel);
    }
    read_pump.run()
}

/// A TCP connection on its way in, from the acceptor or handed over by
/// the application.
pub(crate) struct Arrival {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    /// When the hub got it: the handshake deadline counts from here.
    pub accepted_at: Instant,
    /// Names its threads and log lines (`#N`).
    pub number: u64,
    /// Bytes of the request the application already read from `tcp`.
    pub already_read: Vec<u8>,
    /// Who accepted it, which decides the path rule.
    pub entry: Entry,
}

/// Run one connection: handshake, pumps, cleanup. Runs on the connection's
/// own thread; returns when both pumps have ended.
pub(crate) fn serve(mut arrival: Arrival, context: Arc<ServerContext>, in_handshake: InHandshake) {
    let (peer, accepted_at, number) = (arrival.peer, arrival.accepted_at, arrival.number);
    // The handshake runs the application's authorizer too: a panic there
    // drops this TCP connection and nothing else. `run_handshake` keeps its
    // frame off the read pump's stack (see above).
    let admitted = catching_panic(format_args!("handshake from {peer}"), "dropping it", || {
        run_handshake(&mut arrival, &context)
    });
    let tcp = arrival.tcp;
    drop(in_handshake); // a handshake slot is free: the acceptor may go on
    let Some(admitted) = admitted else {
        return;
    };
    let Admitted {
        slot: _slot, // held until this function returns: our place under the limits
        info,
        session: _session, // held until this function returns, after cleanup starts
        initial,
        identity,
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
        stats: crate::broadcaster::ConnectionStats::default(),
    });
    let subject = identity
        .as_ref()
        .and_then(|identity| identity.subject.clone());
    connection.stats.set_subject(subject.clone());
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

    let (queue, outbound_rx) = outbound_queue(QueueLimits {
        frames: config.queue_size,
        bytes: config.queue_bytes,
    });
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
    // From here on the client is named as the handshake saw it: behind a
    // trusted proxy, the address the proxy forwarded for.
    let peer = connection.info.describe_peer();
    // `{:?}` quotes and escapes what a token said, so a `sub` cannot
    // forge log lines.
    let sub = match &subject {
        Some(subject) => format!(", sub {subject:?}"),
        None => String::new(),
    };
    info!(
        "connection {id} opened from {peer} (#{number}, user agent {:?}{sub})",
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

    let done_sender = DoneSender::new(done_tx, queue.clone());
    // A panic in the read pump closes with 1011 like any other ending, so
    // the write pump is joined and the cleanup below runs as usual.
    let done = catching_panic(
        format_args!("connection {id} from {peer}"),
        "closing it with 1011",
        || {
            let socket = ReadSide::new(tcp);
            let pump = (socket, leftover, &connection, queue, &context, identity);
            run_read_pump(pump, refused_channel)
        },
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
