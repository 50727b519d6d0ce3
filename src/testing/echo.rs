//! An echo server built from the hub's own pumps, for conformance testing.
//!
//! Every text and binary message a client sends comes back to it unchanged.
//! Nothing here frames, validates or answers WebSocket traffic itself: each
//! connection runs the hub's `ReadPump` (in its `DataFrames::Echo` mode) and
//! the hub's `WritePump`, joined by the same `OutboundQueue` and done
//! channel as in `ws/serve.rs`. So when the Autobahn testsuite is pointed
//! at this server (`examples/echo.rs`, `docs/conformance.md`), what it grades
//! is the hub's framing, fragmentation, UTF-8 checks, Ping/Pong and close
//! handling, and the order of Pongs among echoes.
//!
//! What differs from the hub, on purpose: no hub state (no broadcaster, no
//! `welcome`), no hub rules (no JSON, no rate limit, binary allowed, no
//! token, no heartbeat Pings), any request path, tungstenite's own
//! `accept` for the upgrade, and messages up to [`MAX_MESSAGE_SIZE`], since
//! Autobahn's 9.* cases send 16 MiB.
//!
//! Threads: one acceptor, and per connection a read pump thread (which ran
//! the handshake) and a write pump thread, as in the hub. Dropping the
//! [`EchoServer`] stops the acceptor and shuts every open connection.
//!
//! Not part of the embedding API: it is hidden from the docs and may change.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::{debug, warn};
use tungstenite::protocol::{Role, WebSocket};

use crate::broadcaster::{outbound_queue, Connection, ConnectionStats, QueueLimits};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::peer::{ConnectionId, ConnectionInfo};
use crate::protocol::unix_ms;
use crate::ws::{read_config, write_side, Done, DoneSender, ReadPump, ReadSide, WritePump};

/// The largest message (and frame) the echo server accepts: tungstenite's
/// default message limit, well above the 16 MiB of Autobahn's 9.* cases.
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Frames that may wait in one client's queue. The hub's `--queue-size`
/// protects the broadcaster; here a client that sends faster than it reads
/// only fills its own queue, which Autobahn's 9.7/9.8 (1000 messages) and
/// the stress tests do on purpose. The queue allocates as frames arrive.
const QUEUE_FRAMES: usize = 1 << 16;
/// And in bytes: Autobahn's 9.1 and 9.2 cases echo single messages of up to
/// 16 MiB, and a few of them may wait at once.
const QUEUE_BYTES: usize = 256 << 20;

/// How long one read of the upgrade request may wait.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running echo server; dropping it stops it.
pub struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// The connections of one server: a socket handle to shut at stop, and the
/// thread to join.
type Connections = Arc<Mutex<Vec<(TcpStream, JoinHandle<()>)>>>;

impl EchoServer {
    /// Start accepting on `listener` (bind port 0 for a free port).
    ///
    /// # Errors
    /// If the listener's address cannot be read or the acceptor thread
    /// cannot start.
    pub fn start(listener: TcpListener) -> io::Result<EchoServer> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor_stop = stop.clone();
        let acceptor = thread::Builder::new()
            .name("echo-acceptor".into())
            .spawn(move || accept_until_stopped(listener, acceptor_stop))?;
        Ok(EchoServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve until the process ends (for `examples/echo.rs`).
    pub fn wait(mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for EchoServer {
    /// Stop accepting, shut every open connection, join every thread.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking `accept` (tiny_http's trick, as `Hub` does).
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_until_stopped(listener: TcpListener, stop: Arc<AtomicBool>) {
    let connections: Connections = Arc::default();
    let mut accepted: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let (tcp, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(_) if stop.load(Ordering::Acquire) => break,
            Err(e) => {
                // Out of file descriptors or similar: back off rather than
                // spin; it clears as connections close.
                warn!("echo: accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if stop.load(Ordering::Acquire) {
            break;
        }
        accepted += 1;
        let number = accepted;
        let Ok(handle_for_stop) = tcp.try_clone() else {
            continue;
        };
        let spawned = thread::Builder::new()
            .name(format!("echo-read-pump-{number}"))
            .spawn(move || serve_connection(tcp, peer, number));
        if let (Ok(thread), Ok(mut list)) = (spawned, connections.lock()) {
            list.retain(|(_, thread)| !thread.is_finished());
            list.push((handle_for_stop, thread));
        }
    }
    let list = match connections.lock() {
        Ok(mut list) => std::mem::take(&mut *list),
        Err(_) => return,
    };
    for (tcp, thread) in list {
        // Wakes both pumps: the read pump's `read()` returns 0, the write
        // pump's writes fail.
        let _ = tcp.shutdown(Shutdown::Both);
        let _ = thread.join();
    }
}

/// One connection: upgrade, then the hub's pumps until it ends. Runs on the
/// connection's thread, which becomes the read pump, as in
/// `connection::serve`.
fn serve_connection(tcp: TcpStream, peer: SocketAddr, number: u64) {
    let _ = tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    // The upgrade runs on the plain socket. tungstenite 0.30 refuses bytes
    // after the request (`JunkAfterRequest`), so `into_inner` loses nothing.
    let tcp = match tungstenite::accept(tcp) {
        Ok(socket) => socket.into_inner(),
        Err(e) => {
            debug!("echo #{number} from {peer}: handshake failed: {e}");
            return;
        }
    };
    let _ = tcp.set_read_timeout(None);
    let _ = tcp.set_nodelay(true);
    let tcp = Arc::new(tcp);
    let config = Config {
        ping_interval: Duration::ZERO, // no heartbeat Pings in Autobahn's traces
        ..Config::default()
    };
    let _ = tcp.set_write_timeout(Some(config.write_timeout));

    let connection = Arc::new(Connection {
        info: ConnectionInfo {
            id: ConnectionId::new(),
            remote_addr: peer,
            via: None,
            user_agent: None,
            origin: None,
            connected_at_ms: unix_ms(),
        },
        stats: ConnectionStats::default(),
    });
    let metrics = Arc::new(Metrics::default());
    let (queue, outbound_rx) = outbound_queue(QueueLimits {
        frames: QUEUE_FRAMES,
        bytes: QUEUE_BYTES,
    });
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Done>(1);

    let write_pump = WritePump::new(
        write_side(&tcp),
        outbound_rx,
        done_rx,
        connection.clone(),
        metrics.clone(),
        &config,
    );
    let Ok(writer) = thread::Builder::new()
        .name(format!("echo-write-pump-{number}"))
        .spawn(move || write_pump.run())
    else {
        let _ = tcp.shutdown(Shutdown::Both);
        return;
    };

    let socket = WebSocket::from_raw_socket(
        ReadSide::new(tcp),
        Role::Server,
        Some(read_config(MAX_MESSAGE_SIZE)),
    );
    // Sending `Done` also wakes the write pump, which parks on its queue.
    let done_sender = DoneSender::new(done_tx, queue.clone());
    let done = ReadPump::echo(socket, connection, queue, metrics).run();
    let reason = done.to_string();
    done_sender.send(done);
    let written = writer
        .join()
        .unwrap_or_else(|_| "write pump panicked".into());
    debug!("echo #{number} from {peer} closed: {reason}; {written}");
}
