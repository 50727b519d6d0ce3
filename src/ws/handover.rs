//! Connections the application accepted itself and hands to the hub: the
//! [`Upgrader`]. This is how the hub is mounted on the application's own
//! port, beside its own routes, instead of binding a listener of its own.
//!
//! The application's thread (its accept loop, or an HTTP worker that read
//! a request and saw an upgrade to its WebSocket path) calls
//! [`Upgrader::upgrade`] or [`Upgrader::upgrade_read`]. That starts the
//! connection's thread exactly as the acceptor does (`ConnectionThreads`):
//! the same handshake with every check, the same bounds on handshakes in
//! progress (in all, and per address), the same gauges the graceful
//! shutdown waits on. The one
//! difference is the path (see `handshake::Entry`). The calling thread
//! only waits if `MAX_PENDING_HANDSHAKES` handshakes are in progress.
//!
//! The hub keeps the join handle of each thread it starts here, and
//! `Hub::shutdown` joins them after the acceptor's ([`Upgrader::close`]);
//! from then on the door is shut and a hand-over is refused, so no thread
//! outlives the hub.
//!
//! Why a `TcpStream` and not any `Read + Write`: the read pump and the write
//! pump use the one socket from two threads at once, the read pump needs a
//! read timeout for the heartbeat, and the write pump shuts the socket down
//! to wake the read pump (`socket.rs`). A boxed stream such as the one
//! tiny_http's `Request::upgrade` returns offers none of that: it is one
//! `&mut` object for both directions, with no timeout and no shutdown, and
//! the socket inside it cannot be reached (docs/embedding.md).

use std::fmt;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use log::debug;

use super::acceptor::{join_all, prune, ConnectionThreads};
use super::handshake::Entry;
use crate::error::Error;

/// Hands the hub WebSocket connections the application accepted itself,
/// so the hub can live on the application's port. Get one from
/// `Hub::upgrader`; clone it into every thread that accepts connections.
///
/// A handed-over connection is served like one from the hub's own
/// listener: the same handshake checks (upgrade headers and key, shutting
/// down, `--max-connections`, `--max-connections-per-ip`,
/// `--max-handshakes-per-ip` (429 at once), `Origin`,
/// `?channels=` and `?since=`, the token through the `Authorizer`), the
/// same `101` or refusal written by the hub, the same pumps, limits,
/// metrics and graceful shutdown. Only the path is not checked: the
/// application routed the request, so it decides where the hub is mounted.
///
/// The stream must be the `TcpStream` itself, not a wrapper: see
/// docs/embedding.md for why, and for serving the application's pages
/// and the hub on one port.
#[derive(Clone)]
pub struct Upgrader {
    door: Arc<Door>,
}

/// The join handles of the threads started here; `None` once the hub has
/// shut the door.
struct Door {
    threads: Arc<ConnectionThreads>,
    started: Mutex<Option<Vec<JoinHandle<()>>>>,
}

impl Door {
    fn lock(&self) -> MutexGuard<'_, Option<Vec<JoinHandle<()>>>> {
        // A poisoned lock means a panic while pushing a handle; the list is
        // still a list.
        self.started.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Upgrader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrader")
            .field("open", &self.door.lock().is_some())
            .finish()
    }
}

impl Upgrader {
    pub(crate) fn new(threads: Arc<ConnectionThreads>) -> Upgrader {
        Upgrader {
            door: Arc::new(Door {
                threads,
                started: Mutex::new(Some(Vec::new())),
            }),
        }
    }

    /// Serve a connection whose request nobody has read yet: the hub reads
    /// the upgrade request itself, within `--handshake-timeout-ms` from
    /// now, and answers it (`101`, or the refusal's status).
    ///
    /// Returns once the connection has a thread of its own; its fate from
    /// then on (refused, served, closed) is the hub's to count and log.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`] once the hub has shut down (the connection
    /// is closed; while it is shutting down, the hub still answers 503
    /// itself); [`Error::Spawn`] if its thread cannot be started.
    pub fn upgrade(&self, tcp: TcpStream) -> Result<(), Error> {
        self.upgrade_read(tcp, Vec::new())
    }

    /// Serve a connection whose request the application has already read
    /// (some or all of it) to route it: `already_read` is every byte read
    /// from `tcp` so far, the request head and anything after it. The hub
    /// checks that head as if it had read it itself, reads on if it is not
    /// complete, and writes the `101` or the refusal itself, so the
    /// application must not have answered anything.
    ///
    /// # Errors
    /// As [`upgrade`](Self::upgrade).
    pub fn upgrade_read(&self, tcp: TcpStream, already_read: Vec<u8>) -> Result<(), Error> {
        let peer = match tcp.peer_addr() {
            Ok(peer) => peer,
            Err(e) => {
                // The peer is gone (reset before we got here): nothing to serve.
                debug!("a handed-over connection has no peer address: {e}");
                return Ok(());
            }
        };
        // The pumps expect blocking reads bounded by timeouts; an
        // application's accept loop may have made its sockets non-blocking.
        if let Err(e) = tcp.set_nonblocking(false) {
            debug!("a handed-over connection from {peer} cannot block: {e}");
            return Ok(());
        }
        let threads = &self.door.threads;
        if !threads.wait_for_handshake_room(|| self.door.lock().is_none()) {
            return Err(Error::ShuttingDown);
        }
        let mut started = self.door.lock();
        let Some(handles) = started.as_mut() else {
            return Err(Error::ShuttingDown);
        };
        // `None`: refused for its address (429), like the acceptor's.
        if let Some(handle) = threads
            .spawn(tcp, peer, already_read, Entry::HandedOver)
            .map_err(Error::Spawn)?
        {
            handles.push(handle);
            prune(handles);
        }
        Ok(())
    }

    /// Shut the door and join every connection thread started through it.
    /// Called by `Hub::shutdown` once the clients have had their grace.
    pub(crate) fn close(&self) {
        let started = self.door.lock().take();
        if let Some(handles) = started {
            debug!("joining {} handed-over connection threads", handles.len());
            join_all(handles);
        }
    }
}
