//! The acceptor: the thread that accepts WebSocket TCP connections and
//! hands each to a thread of its own. It does nothing else, so a slow or
//! silent client can never hold up the next `accept`.
//!
//! Each accepted socket gets a connection thread (`serve::serve`),
//! which runs the handshake and then becomes that client's read pump. The
//! acceptor keeps the threads' join handles, so that at shutdown it can join
//! every one of them: when `Hub::shutdown` returns, no connection thread is
//! left. Finished handles are pruned as new connections arrive.
//!
//! It stops when `stop` is set; `Hub::shutdown` sets it and then connects to
//! the listener once, which wakes the blocking `accept`. Until then it keeps
//! accepting even while the hub shuts down, so that late clients get a
//! proper 503 from the handshake instead of a reset.
//!
//! Two [`ThreadGauge`]s count connection threads: all of them from spawn to
//! exit, so the shutdown can wait (with a deadline) for the clients to
//! finish closing; and those still in their handshake, so the acceptor can
//! wait for one to end before accepting past `MAX_PENDING_HANDSHAKES`.
//! Both live in [`ConnectionThreads`], which connections handed over by the
//! application (`handover.rs`) are started and counted by too, so they
//! share the one bound and the one shutdown wait.
//!
//! That wait is fair only if no one address can fill those places: 1,100
//! silent connections from one address used to make everyone's handshake
//! wait in the listen backlog for 10 s. So an address also gets at most
//! `--max-handshakes-per-ip` of them ([`HandshakesPerIp`], also kept in
//! `ConnectionThreads`, so handed-over connections count too); a connection
//! over its address's share is answered 429 at once and handed to the
//! [`Refuser`] (thread `ws-refuse`), which closes it a moment later, so
//! refusing never holds up the next accept, nor the application's thread
//! that handed a connection over.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, error, warn};

use super::admission::{HandshakePlace, HandshakesPerIp, MAX_PENDING_HANDSHAKES};
use super::handshake::{refusal_answer, Entry};
use super::serve::{self, Arrival};
use super::socket::READ_PUMP_STACK;
use super::ServerContext;
use crate::metrics::RejectReason;
use crate::refusal::Refuser;

/// How often an acceptor waiting for a free handshake slot looks at `stop`.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// A count of threads doing something (running at all, or still in their
/// handshake) that another thread can wait on: to fall to zero at
/// shutdown, or below a bound before accepting more.
#[derive(Debug, Default)]
pub(crate) struct ThreadGauge {
    count: Mutex<usize>,
    changed: Condvar,
}

/// One thread counted by a [`ThreadGauge`]; leaves it when dropped, even if
/// the thread panics.
pub(crate) struct GaugeEntry(Arc<ThreadGauge>);

/// A connection thread's places while it is in its handshake: among all
/// handshakes and among its address's. Dropping it frees both.
pub(crate) struct InHandshake {
    _all: GaugeEntry,
    _address: HandshakePlace,
}

impl ThreadGauge {
    fn enter(self: &Arc<Self>) -> GaugeEntry {
        *self.lock() += 1;
        GaugeEntry(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until fewer than `limit` are counted, at most `timeout`. True if
    /// they are.
    fn wait_below(&self, limit: usize, timeout: Duration) -> bool {
        let count = self.lock();
        let (count, _) = self
            .changed
            .wait_timeout_while(count, timeout, |count| *count >= limit)
            .unwrap_or_else(|e| e.into_inner());
        *count < limit
    }

    /// Wait until none is counted, or `deadline` passes. Returns how many
    /// are still counted.
    pub(crate) fn wait_for_none(&self, deadline: Instant) -> usize {
        let left = deadline.saturating_duration_since(Instant::now());
        let count = self.lock();
        let (count, _) = self
            .changed
            .wait_timeout_while(count, left, |count| *count > 0)
            .unwrap_or_else(|e| e.into_inner());
        *count
    }
}

impl Drop for GaugeEntry {
    fn drop(&mut self) {
        *self.0.lock() -= 1;
        self.0.changed.notify_all();
    }
}

/// What every connection thread is started with and counted by, whoever
/// accepted its socket: the acceptor, or the application (`Upgrader`).
pub(crate) struct ConnectionThreads {
    context: Arc<ServerContext>,
    /// Every connection thread, from spawn to exit.
    live: Arc<ThreadGauge>,
    /// Connection threads still in their handshake.
    pending: Arc<ThreadGauge>,
    /// The same, per remote address (`--max-handshakes-per-ip`).
    per_address: Arc<HandshakesPerIp>,
    /// Closes connections refused for their address a moment after their
    /// 429. `None` if its thread could not be started: they close at once.
    refuser: Option<Refuser>,
    /// Connections started so far; names the threads (`read-pump-N`).
    started: AtomicU64,
}

impl ConnectionThreads {
    pub(crate) fn new(context: Arc<ServerContext>) -> Arc<Self> {
        let per_address = HandshakesPerIp::new(context.config.max_handshakes_per_ip);
        Arc::new(ConnectionThreads {
            context,
            live: Arc::default(),
            pending: Arc::default(),
            per_address,
            refuser: Refuser::start("ws-refuse").ok(),
            started: AtomicU64::new(0),
        })
    }

    /// Wait until every connection thread has ended, or `deadline` passes.
    /// Returns how many are left.
    pub(crate) fn wait_for_none(&self, deadline: Instant) -> usize {
        self.live.wait_for_none(deadline)
    }

    /// Wait until fewer than `MAX_PENDING_HANDSHAKES` connections are in
    /// their handshake, looking at `give_up` every `STOP_CHECK`. True once
    /// there is room, false if `give_up` said so first.
    ///
    /// Bounds threads sitting in handshakes: without this, a flood of
    /// silent TCP connections would start a thread each for 10 s. At the
    /// bound the acceptor stops accepting until a handshake ends, and new
    /// connections wait in the kernel's listen backlog (4096). It used to
    /// accept and drop them instead, which in a connect storm of 5,000
    /// clients refused 3,976 that would have been served within a second;
    /// waiting costs them milliseconds, and a flood of silent sockets still
    /// gets no more than this many threads.
    pub(super) fn wait_for_handshake_room(&self, give_up: impl Fn() -> bool) -> bool {
        while !self.pending.wait_below(MAX_PENDING_HANDSHAKES, STOP_CHECK) {
            if give_up() {
                return false;
            }
        }
        true
    }

    /// Start the thread that runs one connection's handshake and then
    /// becomes its read pump. `already_read` is what the application read
    /// from `tcp` before handing it over (nothing for the acceptor's).
    /// `Ok(None)` if its address already has `--max-handshakes-per-ip`
    /// handshakes in progress: then it is answered 429 and handed to the
    /// refuser, and gets no thread.
    pub(super) fn spawn(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        already_read: Vec<u8>,
        entry: Entry,
    ) -> io::Result<Option<JoinHandle<()>>> {
        let accepted_at = Instant::now();
        let Some(address_place) = self.per_address.try_enter(peer.ip()) else {
            self.refuse_per_ip(tcp, peer);
            return Ok(None);
        };
        let in_handshake = InHandshake {
            _all: self.pending.enter(),
            _address: address_place,
        };
        let alive = self.live.enter();
        let number = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        let context = self.context.clone();
        let arrival = Arrival {
            tcp,
            peer,
            accepted_at,
            number,
            already_read,
            entry,
        };
        // If the spawn fails, the closure and the two gauge entries in it
        // are dropped here, so the counts stay right.
        thread::Builder::new()
            .name(format!("read-pump-{number}"))
            .stack_size(READ_PUMP_STACK)
            .spawn(move || {
                serve::serve(arrival, context, in_handshake);
                drop(alive);
            })
            .map(Some)
    }

    /// Count, log (now and then) and answer a connection over its
    /// address's share of handshakes.
    fn refuse_per_ip(&self, tcp: TcpStream, peer: SocketAddr) {
        let context = &self.context;
        context.metrics.count_rejection(RejectReason::PerIp);
        if let Some(count) = context.metrics.rejection_warning_due(RejectReason::PerIp) {
            warn!(
                "{peer}: its address has {} handshakes in progress; answered 429 \
                 ({count} refused for per_ip since the last such warning)",
                context.config.max_handshakes_per_ip
            );
        }
        if let Some(refuser) = &self.refuser {
            refuser.refuse(tcp, &refusal_answer(429, RejectReason::PerIp));
        }
    }
}

/// Accept until `stop` is set, then join every connection thread it started.
pub(crate) fn run(listener: TcpListener, threads: Arc<ConnectionThreads>, stop: Arc<AtomicBool>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    loop {
        if !threads.wait_for_handshake_room(|| stop.load(Ordering::Acquire)) {
            break;
        }
        let (tcp, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) => {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                // Out of file descriptors or similar: back off a little
                // rather than spin; the condition usually clears as
                // connections close.
                warn!("accept failed: {e}");
                if is_resource_exhaustion(&e) {
                    thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
        };
        if stop.load(Ordering::Acquire) {
            break;
        }
        match threads.spawn(tcp, peer, Vec::new(), Entry::Listener) {
            Ok(Some(handle)) => connections.push(handle),
            Ok(None) => {}
            Err(e) => error!("cannot start a thread for {peer}: {e}"),
        }
        prune(&mut connections);
    }
    debug!(
        "acceptor stopping; joining {} connection threads",
        connections.len()
    );
    join_all(connections);
}

/// Drop the handles of threads that have ended. Amortized: only when the
/// list has doubled since the last prune, so each connection costs O(1)
/// on average.
pub(super) fn prune(connections: &mut Vec<JoinHandle<()>>) {
    if connections.len() >= 64 && connections.len().is_power_of_two() {
        connections.retain(|handle| !handle.is_finished());
    }
}

/// Join connection threads, logging any that panicked.
pub(super) fn join_all(connections: Vec<JoinHandle<()>>) {
    for handle in connections {
        if handle.join().is_err() {
            error!("a connection thread panicked");
        }
    }
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    // EMFILE (24) and ENFILE (23): too many open files.
    matches!(error.raw_os_error(), Some(23) | Some(24))
}
