//! The guard in front of tiny_http: it owns the public HTTP listener,
//! reads each request head itself under a size bound and a deadline, and
//! forwards only requests it can vouch for to tiny_http, which listens on
//! a Unix socket in a directory only this user can enter (see
//! [`InternalSocket`]), so no other local user can reach tiny_http either.
//!
//! Why: tiny_http 0.12 drains a request body its handler did not read with
//! one allocation sized by the client's `Content-Length` (upstream PR #290
//! was closed unmerged). A request declaring a terabyte, answered early
//! (as any 413 or 401 is), makes that allocation fail and aborts the whole
//! process. tiny_http also has no bound on header size or on how long a
//! client may take to send its head. So nothing from the network reaches
//! tiny_http unless:
//!
//! - the head is complete within `--handshake-timeout-ms` (10 s) of
//!   accept (for a later request on the connection, of the previous
//!   request), the same deadline as a WebSocket handshake (else the
//!   connection is dropped), and at most [`MAX_HEAD`](crate::request_head::MAX_HEAD) bytes
//!   with at most [`MAX_HEADERS`](crate::request_head::MAX_HEADERS) headers (else
//!   431, as for a WebSocket handshake: see [`request_head`](crate::request_head));
//! - it parses as HTTP/1.x (else 400), has no `Transfer-Encoding` (411:
//!   the hub's bodies are small JSON, a length is always known) and at most
//!   one `Content-Length` value, no larger than the publish body limit
//!   (`--max-message-size` × 16, else 413);
//! - its whole body arrives within [`BODY_DEADLINE`] of the same start.
//!
//! The guard then answers `POST /publish` itself (`http/publish.rs`: it is
//! the hot path, and tiny_http's threads would add three hand-offs to every
//! request), and relays every other request to tiny_http and its answer
//! back. Keep-alive and pipelining work for both, answers in request order;
//! see [`Pipeline`](pipeline::Pipeline).
//!
//! Threads: one `http-guard` acceptor; per client connection, at most
//! [`MAX_HTTP_CONNECTIONS`] at once, and at most
//! `--http-max-connections-per-ip` from one address (beyond those the
//! acceptor answers 503, or 429 for an address over its share, and hands
//! the socket to its [`Refuser`](crate::refusal::Refuser), thread
//! `http-refuse`, so refusing never holds up the next accept), an
//! `http-conn-N` thread that reads and checks requests and sends
//! them to tiny_http, and from its first good request an `http-resp-N`
//! thread that copies the answers back. They talk to their sockets, to
//! each other (a bounded channel of what to write next, and one back
//! saying what was written), and, for `POST /publish` only, to the
//! broadcaster through a `HubHandle`. [`HttpGuard::stop`] stops accepting
//! and joins them all; a thread waiting for a slow client notices the stop
//! within [`STOP_CHECK`].
//!
//! Layout: this file holds the acceptor and what every thread shares;
//! [`check`] decides on a request head, [`client`] is the request side
//! of a client connection (`http-conn-N`), and [`pipeline`] relays
//! requests to tiny_http and its answers back (`http-resp-N`). What it
//! shares with the WebSocket handshake (the head bounds, where a head ends,
//! the timed read, reason phrases) is in [`request_head`](crate::request_head).

mod check;
mod client;
mod pipeline;

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::error::Error;
use crate::http::publish::PublishRoute;
use crate::refusal::Refuser;
use check::error_answer;
use client::serve;

/// From accept (or the previous request) to the end of a request's body.
/// (The head's deadline is `--handshake-timeout-ms`; bytes that trickle in
/// extend neither.)
pub const BODY_DEADLINE: Duration = Duration::from_secs(30);
/// HTTP connections served at once; more get 503 without being read.
pub const MAX_HTTP_CONNECTIONS: usize = 128;
/// How long tiny_http may take to answer a forwarded request.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one answer (or one write of ours) to a client may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a thread waiting for a client looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(250);
/// Stack of a connection thread: two small buffers and httparse's headers.
const CONNECTION_STACK: usize = 128 * 1024;

/// The running guard: its acceptor thread and the flag that stops it.
pub(crate) struct HttpGuard {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    acceptor: JoinHandle<()>,
}

/// What every connection thread needs to know.
struct Rules {
    /// tiny_http's internal socket.
    upstream: PathBuf,
    /// `POST /publish`, answered by the connection threads themselves.
    publish: PublishRoute,
    /// The largest body forwarded (`--max-message-size` × 16).
    max_body: usize,
    /// From accept to a complete head (`--handshake-timeout-ms`).
    head_deadline: Duration,
    /// Connections one address may hold (`--http-max-connections-per-ip`).
    max_per_ip: usize,
}

impl HttpGuard {
    /// Serve `public`: answer `POST /publish` through `publish`, forward
    /// the other good requests to `upstream`.
    pub fn start(
        public: TcpListener,
        upstream: &Path,
        publish: PublishRoute,
        max_body: usize,
        head_deadline: Duration,
        max_per_ip: usize,
    ) -> Result<HttpGuard, Error> {
        let upstream = upstream.to_path_buf();
        let addr = public.local_addr().map_err(Error::Spawn)?;
        let stop = Arc::new(AtomicBool::new(false));
        let rules = Arc::new(Rules {
            upstream,
            publish,
            max_body,
            head_deadline,
            max_per_ip,
        });
        let refuser = Refuser::start("http-refuse").map_err(Error::Spawn)?;
        let acceptor = {
            let stop = stop.clone();
            thread::Builder::new()
                .name("http-guard".into())
                .spawn(move || accept_loop(public, rules, stop, refuser))
                .map_err(Error::Spawn)?
        };
        Ok(HttpGuard {
            stop,
            addr,
            acceptor,
        })
    }

    /// Stop accepting, and wait for every connection thread: each ends
    /// once its answer is written or within [`STOP_CHECK`] if it waits for
    /// its client. Call it while tiny_http still answers.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking `accept` by connecting to ourselves.
        let mut target = self.addr;
        if target.ip().is_unspecified() {
            target.set_ip(match target {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
        if self.acceptor.join().is_err() {
            log::error!("the HTTP guard's acceptor panicked");
        }
    }
}

/// The directory holding tiny_http's Unix socket: created with mode 0700,
/// so only this user (and root) can connect to tiny_http directly; removed
/// with everything in it on drop. A loopback TCP port would be open to
/// every local user, who could then send tiny_http the request the guard
/// exists to stop.
#[derive(Debug)]
pub(crate) struct InternalSocket {
    dir: PathBuf,
}

impl InternalSocket {
    /// A fresh private directory under the system's temporary directory.
    pub fn create() -> io::Result<InternalSocket> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!(
            "{SOCKET_DIR_PREFIX}{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(InternalSocket { dir })
    }

    /// Where tiny_http listens.
    pub fn path(&self) -> PathBuf {
        self.dir.join("http.sock")
    }
}

/// The prefix of every private socket directory's name.
const SOCKET_DIR_PREFIX: &str = "pumphub-";

/// Remove the private socket directories that hubs of this user left in
/// `temp` when they could not clean up (killed with SIGKILL, or crashed):
/// a `pumphub-<32 hex digits>` directory owned by this user whose socket
/// refuses connections, or that has no socket and is over a minute old (a
/// hub starting up has one without its socket for a moment). A live hub's
/// socket accepts, so its directory stays. Returns how many were removed.
pub(crate) fn remove_stale_socket_dirs(temp: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixStream;
    let Ok(entries) = std::fs::read_dir(temp) else {
        return 0;
    };
    // This user's uid, without libc.
    let Some(uid) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2)?.parse::<u32>().ok()
        })
    else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SOCKET_DIR_PREFIX))
        else {
            continue;
        };
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if !metadata.is_dir() || metadata.uid() != uid {
            continue;
        }
        let socket = entry.path().join("http.sock");
        let stale = if socket.exists() {
            matches!(
                UnixStream::connect(&socket),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
            )
        } else {
            metadata
                .modified()
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(60))
        };
        if stale && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Drop for InternalSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Live connection threads, in all and per remote address.
#[derive(Default)]
struct Places {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection gets no place.
enum NoPlace {
    /// All [`MAX_HTTP_CONNECTIONS`] are taken: 503.
    Busy,
    /// Its address holds its whole share: 429.
    AddressBusy,
}

/// The places of live connection threads, shared by the acceptor (which
/// takes them) and the threads (whose [`Place`] gives them back).
#[derive(Default)]
struct Occupancy(Mutex<Places>);

impl Occupancy {
    fn lock(&self) -> MutexGuard<'_, Places> {
        // Two counters updated together; a panic cannot leave them half done.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a place for a connection from `ip`: the total is checked first,
    /// so a client over both limits gets 503, as on the WebSocket port.
    fn take(self: &Arc<Self>, ip: IpAddr, max_per_ip: usize) -> Result<Place, NoPlace> {
        let mut places = self.lock();
        if places.total >= MAX_HTTP_CONNECTIONS {
            return Err(NoPlace::Busy);
        }
        let mine = places.per_ip.entry(ip).or_insert(0);
        if *mine >= max_per_ip {
            return Err(NoPlace::AddressBusy);
        }
        *mine += 1;
        places.total += 1;
        Ok(Place {
            occupancy: self.clone(),
            ip,
        })
    }
}

/// One connection thread's place; given back on drop, even if the thread
/// panics.
struct Place {
    occupancy: Arc<Occupancy>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut places = self.occupancy.lock();
        places.total = places.total.saturating_sub(1);
        if let Some(mine) = places.per_ip.get_mut(&self.ip) {
            *mine -= 1;
            if *mine == 0 {
                places.per_ip.remove(&self.ip);
            }
        }
    }
}

fn accept_loop(listener: TcpListener, rules: Arc<Rules>, stop: Arc<AtomicBool>, refuser: Refuser) {
    let occupancy = Arc::new(Occupancy::default());
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut accepted: u64 = 0;
    loop {
        let accepted_result = listener.accept();
        if stop.load(Ordering::Acquire) {
            break;
        }
        let (client, peer) = match accepted_result {
            Ok(pair) => pair,
            Err(e) => {
                warn!("HTTP accept failed: {e}");
                // Out of file descriptors clears as connections close;
                // do not spin meanwhile.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        // Refusals go to the refuser, which holds the socket open a moment
        // so the answer is read; the next accept does not wait for that.
        let place = match occupancy.take(peer.ip(), rules.max_per_ip) {
            Ok(place) => place,
            Err(NoPlace::Busy) => {
                debug!("http from {peer}: {MAX_HTTP_CONNECTIONS} connections busy, 503");
                let answer = error_answer(503, "busy", "too many HTTP connections; retry");
                refuser.refuse(client, &answer);
                continue;
            }
            Err(NoPlace::AddressBusy) => {
                debug!(
                    "http from {peer}: its address holds {} connections, 429",
                    rules.max_per_ip
                );
                let message = format!(
                    "too many HTTP connections from your address (at most {}); retry",
                    rules.max_per_ip
                );
                refuser.refuse(client, &error_answer(429, "too_many_connections", &message));
                continue;
            }
        };
        accepted += 1;
        let (rules, stop) = (rules.clone(), stop.clone());
        let spawned = thread::Builder::new()
            .name(format!("http-conn-{accepted}"))
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                serve(client, peer, accepted, &rules, &stop);
                drop(place);
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => warn!("cannot start a thread for HTTP client {peer}: {e}"),
        }
        // Amortized pruning, as in the WebSocket acceptor: only at powers
        // of two, so each accept costs O(1) on average.
        if threads.len() >= 64 && threads.len().is_power_of_two() {
            threads.retain(|t| !t.is_finished());
        }
    }
    for thread in threads {
        if thread.join().is_err() {
            log::error!("an HTTP guard thread panicked");
        }
    }
}

/// Leave the client a moment to read the answer before the socket closes:
/// closing with unread input sends RST, which can discard the answer (a
/// client still sending its refused body would never see the 413).
/// Bounded in time (about 1 s) and in bytes.
fn linger(mut client: &TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let started = Instant::now();
    let mut drained = 0usize;
    while started.elapsed() < Duration::from_secs(1) && drained < 1 << 20 {
        match client.read(&mut sink) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
}
