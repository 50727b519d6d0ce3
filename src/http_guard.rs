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
//!   connection is dropped), and at most [`MAX_HEAD`] bytes with at most
//!   [`MAX_HEADERS`] headers (else 431);
//! - it parses as HTTP/1.x (else 400), has no `Transfer-Encoding` (411:
//!   the hub's bodies are small JSON, a length is always known) and at most
//!   one `Content-Length` value, no larger than the publish body limit
//!   (`--max-message-size` × 16, else 413);
//! - its whole body arrives within [`BODY_DEADLINE`] of the same start.
//!
//! The guard then relays the request to tiny_http and its answer back.
//! Keep-alive and pipelining work as before (the load generator pipelines
//! `POST /publish`); see [`Pipeline`].
//!
//! Threads: one `http-guard` acceptor; per client connection, at most
//! [`MAX_HTTP_CONNECTIONS`] at once (beyond that a connection gets 503 at
//! once), an `http-conn-N` thread that reads and checks requests and sends
//! them to tiny_http, and from its first good request an `http-resp-N`
//! thread that copies the answers back. They talk to nothing but their
//! sockets and each other (a bounded channel of what to write next, and
//! one back saying what was written). [`HttpGuard::stop`] stops accepting
//! and joins them all; a thread waiting for a slow client notices the stop
//! within [`STOP_CHECK`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::error::Error;

/// The largest request head the guard reads; bigger gets 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed at most; more gets 431.
pub const MAX_HEADERS: usize = 64;
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
    /// The largest body forwarded (`--max-message-size` × 16).
    max_body: usize,
    /// From accept to a complete head (`--handshake-timeout-ms`).
    head_deadline: Duration,
}

impl HttpGuard {
    /// Serve `public`, forwarding good requests to `upstream`.
    pub fn start(
        public: TcpListener,
        upstream: &Path,
        max_body: usize,
        head_deadline: Duration,
    ) -> Result<HttpGuard, Error> {
        let upstream = upstream.to_path_buf();
        let addr = public.local_addr().map_err(Error::Spawn)?;
        let stop = Arc::new(AtomicBool::new(false));
        let rules = Arc::new(Rules {
            upstream,
            max_body,
            head_deadline,
        });
        let acceptor = {
            let stop = stop.clone();
            thread::Builder::new()
                .name("http-guard".into())
                .spawn(move || accept_loop(public, rules, stop))
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
        let dir = std::env::temp_dir().join(format!("pumphub-{}", uuid::Uuid::new_v4().simple()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(InternalSocket { dir })
    }

    /// Where tiny_http listens.
    pub fn path(&self) -> PathBuf {
        self.dir.join("http.sock")
    }
}

impl Drop for InternalSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Counts live connection threads; the guard decrements on drop, even if
/// the thread panics.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(listener: TcpListener, rules: Arc<Rules>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
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
        if active.load(Ordering::Acquire) >= MAX_HTTP_CONNECTIONS {
            debug!("http from {peer}: {MAX_HTTP_CONNECTIONS} connections busy, 503");
            // A fresh socket's send buffer takes this without blocking.
            let _ = client.set_write_timeout(Some(Duration::from_millis(100)));
            answer(&client, 503, "busy", "too many HTTP connections; retry");
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let guard = Active(active.clone());
        accepted += 1;
        let (rules, stop) = (rules.clone(), stop.clone());
        let spawned = thread::Builder::new()
            .name(format!("http-conn-{accepted}"))
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                serve(client, peer, accepted, &rules, &stop);
                drop(guard);
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => warn!("cannot start a thread for HTTP client {peer}: {e}"),
        }
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

/// Why the guard will not forward a request: the status and the JSON
/// error code and message to answer with.
type Refusal = (u16, &'static str, String);

/// A request the guard accepted: the head to send tiny_http, and its
/// body's length.
#[derive(Debug, PartialEq)]
pub(crate) struct Forward {
    head: Vec<u8>,
    body_length: usize,
    expects_continue: bool,
    /// HTTP/1.1 without `Connection: close`, and not `HEAD`.
    keep_alive: bool,
    /// A `HEAD` request: its answer has a length but no body.
    is_head: bool,
    /// A `POST`: its answer is short, so it may be pipelined.
    is_post: bool,
}

fn serve(client: TcpStream, peer: SocketAddr, number: u64, rules: &Rules, stop: &AtomicBool) {
    let _ = client.set_write_timeout(Some(WRITE_TIMEOUT));
    // Answers go out whole, in one write each where they fit; Nagle's
    // algorithm would hold the tail of one back for the peer's ACK.
    let _ = client.set_nodelay(true);
    // Bytes read but not used yet: a pipelining client's next requests.
    let mut buffer = Vec::with_capacity(2048);
    // Deadlines count from accept, then from the end of each request, so an
    // idle keep-alive connection ends like a slow first request.
    let mut since = Instant::now();
    // Started by the first good request: see `Pipeline`.
    let mut pipeline: Option<Pipeline> = None;
    let last_answer = loop {
        // Before waiting on a quiet client, give tiny_http its connection
        // thread back. tiny_http serves each internal connection on a pool
        // thread for as long as it stays open, and its pool can leave a new
        // connection queued behind running ones (two connects racing for one
        // idle thread): held open while idle, ours could starve it for a
        // whole keep-alive deadline. A pipelining client is never idle this
        // long, so it keeps its connection.
        if pipeline.is_some() && find_head_end(&buffer).is_none() {
            match read_some(&client, &mut buffer, UPSTREAM_IDLE) {
                Ok(true) => {}
                Ok(false) => {
                    if let Some(idle) = pipeline.take() {
                        if idle.retire() == Ended::Closed {
                            return; // the responder closed the connection
                        }
                    }
                }
                Err(_) => break None, // the client left
            }
        }
        let request = next_request(&client, peer, rules, stop, &mut buffer, since, &pipeline);
        let (forward, body) = match request {
            Ok(request) => request,
            Err(last_answer) => break last_answer,
        };
        if pipeline.is_none() {
            match Pipeline::start(&client, &rules.upstream, number) {
                Ok(started) => pipeline = Some(started),
                Err(e) => {
                    warn!("http from {peer}: cannot reach tiny_http: {e}");
                    break Some(error_answer(503, "unavailable", "try again"));
                }
            }
        }
        let Some(relaying) = pipeline.as_mut() else {
            break None;
        };
        if !relaying.forward(&forward, &body) || !forward.keep_alive {
            break None;
        }
        since = Instant::now();
    };
    let last_answer = match pipeline {
        Some(pipeline) => match pipeline.finish(last_answer) {
            Ended::Closed => return, // the responder closed the connection
            Ended::Retired => None,
        },
        None => last_answer,
    };
    if let Some(bytes) = last_answer {
        let _ = (&client).write_all(&bytes);
    }
    let _ = client.shutdown(Shutdown::Write);
    linger(&client);
}

/// How long a client may be quiet before its internal connection is
/// closed (see `serve`).
const UPSTREAM_IDLE: Duration = Duration::from_millis(50);

/// One read into `buffer`, waiting at most `wait`: `Ok(false)` if nothing
/// came, an error if the client closed or failed.
fn read_some(mut client: &TcpStream, buffer: &mut Vec<u8>, wait: Duration) -> io::Result<bool> {
    client.set_read_timeout(Some(wait))?;
    let mut chunk = [0u8; 4096];
    match client.read(&mut chunk) {
        Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Read and check the next request from `buffer` and the socket. `Err`
/// ends the connection, after the given answer of our own if there is one
/// (a refusal); `Err(None)` when the client left, went quiet past the
/// deadline, or the hub is stopping.
fn next_request(
    client: &TcpStream,
    peer: SocketAddr,
    rules: &Rules,
    stop: &AtomicBool,
    buffer: &mut Vec<u8>,
    since: Instant,
    pipeline: &Option<Pipeline>,
) -> Result<(Forward, Vec<u8>), Option<Vec<u8>>> {
    let look_for_head = |bytes: &[u8]| {
        if let Some(end) = find_head_end(bytes) {
            Progress::Done(end)
        } else if bytes.len() > MAX_HEAD {
            Progress::TooLarge
        } else {
            Progress::More
        }
    };
    let head_end = match read_until(
        client,
        buffer,
        since + rules.head_deadline,
        stop,
        look_for_head,
    ) {
        Ok(Some(end)) => end,
        Ok(None) => {
            let message = format!("request head over {MAX_HEAD} bytes");
            return Err(Some(error_answer(431, "header_too_large", &message)));
        }
        Err(e) => {
            // Also how an idle keep-alive connection ends: quietly.
            if !buffer.is_empty() {
                debug!("http from {peer}: dropped before a full request head: {e}");
            }
            return Err(None);
        }
    };
    let forward = match check_head(&buffer[..head_end], rules.max_body) {
        Ok(forward) => forward,
        Err((status, code, message)) => {
            debug!("http from {peer}: {status} {code}");
            return Err(Some(error_answer(status, code, &message)));
        }
    };
    buffer.drain(..head_end);
    let wanted = forward.body_length;
    if forward.expects_continue && wanted > buffer.len() {
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        match pipeline {
            // After the answers before it, in order.
            Some(pipeline) => pipeline.interim(interim),
            None => {
                let _ = (&*client).write_all(&interim);
            }
        }
    }
    let look_for_body = |bytes: &[u8]| {
        if bytes.len() >= wanted {
            Progress::Done(wanted)
        } else {
            Progress::More
        }
    };
    if let Err(e) = read_until(client, buffer, since + BODY_DEADLINE, stop, look_for_body) {
        debug!("http from {peer}: dropped before the whole body: {e}");
        return Err(None);
    }
    let body: Vec<u8> = buffer.drain(..wanted).collect();
    Ok((forward, body))
}

/// Answers a pipeline's responder may have in flight; beyond this the
/// request side waits, so a client that sends without reading is held
/// back rather than buffered.
const PIPELINE_DEPTH: usize = 64;
/// The weight of answers in flight on one internal connection (see
/// [`Pipeline::forward`]): well under a Unix socket's default send buffer
/// (208 KiB on Linux), so tiny_http can always write them all.
const PIPELINE_BUDGET: usize = 64 * 1024;

/// A client connection's path to tiny_http: requests go down `upstream`
/// from the connection's thread, and an `http-resp-N` thread copies the
/// answers back in order, so a pipelining client has many requests in
/// tiny_http's workers at once, as it had without the guard.
///
/// We speak HTTP/1.0 with `Connection: keep-alive` to tiny_http: it never
/// uses chunked encoding for a 1.0 request, so every answer carries a
/// `Content-Length` and the responder knows where it ends.
///
/// Only the responder writes to the client once it exists (answers must
/// keep request order), so the request side hands it its own bytes too
/// (`100 Continue`, a refusal).
struct Pipeline {
    /// The internal connection; requests are written here.
    upstream: UnixStream,
    /// To the responder, one item per thing to write, in order. Dropping it
    /// tells the responder to finish what is queued and end.
    outgoing: Option<crossbeam_channel::Sender<Outgoing>>,
    /// From the responder: the weight of each answer it has written.
    written: crossbeam_channel::Receiver<usize>,
    /// The weight of the answers forwarded and not yet written.
    in_flight: usize,
    responder: Option<JoinHandle<Ended>>,
}

/// What the responder writes next.
enum Outgoing {
    /// tiny_http's answer to the next forwarded request, and its weight
    /// (see [`Pipeline::forward`]) to hand back once it is written.
    Answer {
        is_head: bool,
        keep_alive: bool,
        weight: usize,
    },
    /// Bytes of our own, then carry on (`100 Continue`).
    Interim(Vec<u8>),
    /// Bytes of our own, then close (a refusal).
    Last(Vec<u8>),
}

impl Pipeline {
    /// Connect to tiny_http and start the responder for `client`.
    fn start(client: &TcpStream, path: &Path, number: u64) -> io::Result<Pipeline> {
        let upstream = UnixStream::connect(path)?;
        upstream.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
        upstream.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
        let answers = Answers {
            upstream: upstream.try_clone()?,
            buffer: Vec::new(),
        };
        let client = client.try_clone()?;
        let (outgoing, incoming) = crossbeam_channel::bounded(PIPELINE_DEPTH);
        // Unbounded, but it never holds more than PIPELINE_DEPTH items: one
        // per answer, and answers are bounded by `outgoing`.
        let (written_tx, written) = crossbeam_channel::unbounded();
        let responder = thread::Builder::new()
            .name(format!("http-resp-{number}"))
            .stack_size(CONNECTION_STACK)
            .spawn(move || respond(client, answers, incoming, written_tx))?;
        Ok(Pipeline {
            upstream,
            outgoing: Some(outgoing),
            written,
            in_flight: 0,
            responder: Some(responder),
        })
    }

    /// Send one checked request to tiny_http. False if the connection is
    /// over (the responder ended, or tiny_http is gone).
    ///
    /// How much to pipeline: tiny_http's worker writes an answer straight
    /// into our internal connection, and tiny_http answers a connection's
    /// requests in order, so while the client does not read, its unread
    /// answers fill the socket buffer, and then every worker that took one
    /// of its requests waits (until the write deadline ends the client). So
    /// the answers in flight must fit in the socket buffer: a `POST` (whose
    /// answer is about as long as its body at most) weighs its size, at
    /// least 1 KiB, and anything else (`GET /status` can be long) weighs the
    /// whole [`PIPELINE_BUDGET`], so it goes alone. The weights of the
    /// answers in flight stay within the budget: ~60 small publishes at
    /// once, as the load generator sends them.
    fn forward(&mut self, forward: &Forward, body: &[u8]) -> bool {
        let weight = if forward.is_post {
            (forward.head.len() + body.len()).clamp(1024, PIPELINE_BUDGET)
        } else {
            PIPELINE_BUDGET
        };
        while self.in_flight > 0 && self.in_flight + weight > PIPELINE_BUDGET {
            match self.written.recv() {
                Ok(done) => self.in_flight = self.in_flight.saturating_sub(done),
                Err(_) => return false, // the responder has ended
            }
        }
        let Some(outgoing) = &self.outgoing else {
            return false;
        };
        let expect = Outgoing::Answer {
            is_head: forward.is_head,
            keep_alive: forward.keep_alive,
            weight,
        };
        if outgoing.send(expect).is_err() {
            return false;
        }
        self.in_flight += weight;
        let mut request = Vec::with_capacity(forward.head.len() + body.len());
        request.extend_from_slice(&forward.head);
        request.extend_from_slice(body);
        self.upstream.write_all(&request).is_ok()
    }

    /// Queue bytes of our own between answers.
    fn interim(&self, bytes: Vec<u8>) {
        if let Some(outgoing) = &self.outgoing {
            let _ = outgoing.send(Outgoing::Interim(bytes));
        }
    }

    /// No more requests: let the responder write what is queued, then
    /// `last` if given, close, and end; wait for it.
    fn finish(self, last: Option<Vec<u8>>) -> Ended {
        if let (Some(outgoing), Some(bytes)) = (&self.outgoing, last) {
            let _ = outgoing.send(Outgoing::Last(bytes));
        }
        self.retire()
    }

    /// Let the responder write what is queued and end, closing the
    /// internal connection; wait for it. Says whether it also closed the
    /// client connection.
    fn retire(mut self) -> Ended {
        drop(self.outgoing.take());
        match self.responder.take().map(JoinHandle::join) {
            Some(Ok(ended)) => ended,
            Some(Err(_)) => {
                log::error!("an HTTP responder thread panicked");
                Ended::Closed
            }
            None => Ended::Closed,
        }
    }
}

/// The responder's side of the internal connection.
struct Answers {
    upstream: UnixStream,
    /// Bytes read from tiny_http but not yet written: with pipelining, the
    /// start of the next answer can come with the end of this one.
    buffer: Vec<u8>,
}

/// The responder thread: write what `incoming` says, in order; then close
/// our side, let the client read, and wake the request side if it still
/// waits for the client.
fn respond(
    client: TcpStream,
    mut answers: Answers,
    incoming: crossbeam_channel::Receiver<Outgoing>,
    written: crossbeam_channel::Sender<usize>,
) -> Ended {
    let mut ended = Ended::Retired;
    for item in incoming.iter() {
        let carry_on = match item {
            Outgoing::Answer {
                is_head,
                keep_alive,
                weight,
            } => match answers.copy_one(&client, is_head, keep_alive) {
                Ok(carry_on) => {
                    let _ = written.send(weight);
                    carry_on
                }
                Err(e) => {
                    debug!("http: relaying an answer failed: {e}");
                    false
                }
            },
            Outgoing::Interim(bytes) => (&client).write_all(&bytes).is_ok(),
            Outgoing::Last(bytes) => {
                let _ = (&client).write_all(&bytes);
                false
            }
        };
        if !carry_on {
            ended = Ended::Closed;
            break;
        }
    }
    // Shut the internal connection for both sides: tiny_http stops at once
    // (a worker never waits to write an answer nobody will read), and the
    // request side's next write fails.
    let _ = answers.upstream.shutdown(Shutdown::Both);
    if ended == Ended::Closed {
        let _ = client.shutdown(Shutdown::Write);
        linger(&client);
        // Wake the request side if it still waits for the client.
        let _ = client.shutdown(Shutdown::Read);
    }
    ended
}

/// How a responder ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// It wrote everything it was given; the client connection is open.
    Retired,
    /// It closed the client connection (after a last answer, or a failure).
    Closed,
}

/// Write all of `bytes` to the client by `deadline`. The socket's write
/// timeout bounds one `write` call; this bounds the whole answer, so a
/// client that reads a trickle cannot hold a responder (and the tiny_http
/// worker behind it) for long.
fn write_by(mut client: &TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        client.set_write_timeout(Some(left))?;
        match client.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The largest response head accepted from tiny_http (ours are small).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

impl Answers {
    /// Copy tiny_http's next answer to the client. True if the connection
    /// stays open for the next one: the client asked for keep-alive, and
    /// the answer's end is known without tiny_http closing.
    fn copy_one(
        &mut self,
        client: &TcpStream,
        is_head: bool,
        keep_alive: bool,
    ) -> io::Result<bool> {
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(end) = find_head_end(&self.buffer) {
                break end;
            }
            if self.buffer.len() > MAX_RESPONSE_HEAD {
                return Err(io::Error::other("tiny_http's response head is too large"));
            }
            let n = self.upstream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        };
        // The answer is ready; from here the client alone sets the pace.
        let deadline = Instant::now() + WRITE_TIMEOUT;
        let framing = response_framing(&self.buffer[..head_end], is_head);
        let keep_alive = keep_alive && framing.length.is_some() && !framing.upstream_closes;
        let mut answer = client_response_head(&self.buffer[..head_end], keep_alive);
        // No length: the body ends when tiny_http closes, and so do we.
        let length = framing.length.unwrap_or(usize::MAX);
        let here = (self.buffer.len() - head_end).min(length);
        answer.extend_from_slice(&self.buffer[head_end..head_end + here]);
        self.buffer.drain(..head_end + here);
        write_by(client, &answer, deadline)?;
        let mut rest = length - here;
        while rest > 0 {
            let n = self.upstream.read(&mut chunk[..rest.min(8192)])?;
            if n == 0 {
                if framing.length.is_none() {
                    break;
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            write_by(client, &chunk[..n], deadline)?;
            rest -= n;
        }
        Ok(keep_alive)
    }
}

/// How a response from tiny_http ends.
#[derive(Debug, PartialEq)]
struct Framing {
    /// Its body's length, if known from its head.
    length: Option<usize>,
    /// tiny_http said it will close the internal connection.
    upstream_closes: bool,
}

/// Read the framing of a response head from tiny_http.
fn response_framing(head: &[u8], answers_head: bool) -> Framing {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let unknown = Framing {
        length: None,
        upstream_closes: true,
    };
    if response.parse(head).is_err() {
        return unknown;
    }
    let mut length = None;
    let mut upstream_closes = false;
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return unknown;
        } else if name.eq_ignore_ascii_case("content-length") {
            match parse_length(header.value) {
                Some(n) => length = Some(n),
                None => return unknown,
            }
        } else if name.eq_ignore_ascii_case("connection") {
            upstream_closes |= contains_token(header.value, b"close");
        }
    }
    // Answers without a body, whatever their length says.
    if answers_head || matches!(response.code, Some(204 | 304)) {
        length = Some(0);
    }
    Framing {
        length,
        upstream_closes,
    }
}

/// The response head for the client: HTTP/1.1 (we talk 1.0 to tiny_http),
/// without tiny_http's `Connection` header, and with `Connection: close`
/// unless the connection stays open.
fn client_response_head(head: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + 24);
    let mut lines = head.split_inclusive(|&b| b == b'\n');
    if let Some(status) = lines.next() {
        match status.strip_prefix(b"HTTP/1.0") {
            Some(rest) => {
                out.extend_from_slice(b"HTTP/1.1");
                out.extend_from_slice(rest);
            }
            None => out.extend_from_slice(status),
        }
    }
    for line in lines {
        if line == b"\r\n" {
            break;
        }
        let name = line.split(|&b| b == b':').next().unwrap_or(&[]);
        if name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive") {
            continue;
        }
        out.extend_from_slice(line);
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// True if a comma-separated header value has `token` (any ASCII case).
fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// What a look at the bytes read so far says.
enum Progress {
    /// Enough: the thing ends at this index.
    Done(usize),
    /// Keep reading.
    More,
    /// Give up: over the size bound.
    TooLarge,
}

/// Read into `buffer` until `look` is satisfied; `Ok(None)` if it says
/// too large. Errors with `TimedOut` at `deadline` or once `stop` is set,
/// `UnexpectedEof` if the client closes first.
fn read_until(
    mut client: &TcpStream,
    buffer: &mut Vec<u8>,
    deadline: Instant,
    stop: &AtomicBool,
    look: impl Fn(&[u8]) -> Progress,
) -> io::Result<Option<usize>> {
    let mut chunk = [0u8; 4096];
    loop {
        match look(buffer) {
            Progress::Done(end) => return Ok(Some(end)),
            Progress::TooLarge => return Ok(None),
            Progress::More => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.load(Ordering::Acquire) {
            return Err(io::ErrorKind::TimedOut.into());
        }
        client.set_read_timeout(Some(left.min(STOP_CHECK)))?;
        match client.read(&mut chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The index just past the first `\r\n\r\n`.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Headers the guard drops because it sets them itself (one request per
/// connection, the body already read, its length checked).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "expect",
    "content-length",
    "te",
];

/// Decide on a complete request head: the head to forward, or the refusal.
/// Pure, so the fuzz-style tests below can hammer it.
pub(crate) fn check_head(head: &[u8], max_body: usize) -> Result<Forward, Refusal> {
    let bad = |message: &str| (400, "bad_request", message.to_string());
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err((
                431,
                "header_too_large",
                format!("more than {MAX_HEADERS} headers"),
            ))
        }
        Err(e) => return Err(bad(&format!("not an HTTP request: {e}"))),
    }
    let (Some(method), Some(path), Some(version)) = (request.method, request.path, request.version)
    else {
        return Err(bad("incomplete request line"));
    };
    let mut body_length: Option<usize> = None;
    let mut expects_continue = false;
    let mut keep_alive = version == 1 && method != "HEAD";
    let mut kept = Vec::with_capacity(head.len() + 64);
    // HTTP/1.0 towards tiny_http, whatever the client spoke: see `Pipeline`.
    kept.extend_from_slice(format!("{method} {path} HTTP/1.0\r\n").as_bytes());
    for header in request.headers.iter() {
        // httparse allows obs-text (bytes over 0x7F) in values; tiny_http
        // hangs up on them without an answer. Say why instead.
        if !header.value.is_ascii() {
            return Err(bad("header values must be ASCII"));
        }
        let name = header.name.to_ascii_lowercase();
        match name.as_str() {
            "transfer-encoding" => {
                return Err((
                    411,
                    "length_required",
                    "send the body with Content-Length, not Transfer-Encoding".into(),
                ))
            }
            "content-length" => {
                let length = parse_length(header.value)
                    .ok_or_else(|| bad("Content-Length is not a number"))?;
                if body_length.is_some_and(|seen| seen != length) {
                    return Err(bad("conflicting Content-Length headers"));
                }
                if length > max_body {
                    return Err((413, "too_large", format!("body over {max_body} bytes")));
                }
                body_length = Some(length);
            }
            "expect" => {
                expects_continue = header.value.eq_ignore_ascii_case(b"100-continue");
            }
            "connection" => {
                keep_alive &= !contains_token(header.value, b"close");
            }
            _ => {}
        }
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        kept.extend_from_slice(header.name.as_bytes());
        kept.extend_from_slice(b": ");
        kept.extend_from_slice(header.value);
        kept.extend_from_slice(b"\r\n");
    }
    if let Some(length) = body_length {
        kept.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
    }
    kept.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
    Ok(Forward {
        head: kept,
        body_length: body_length.unwrap_or(0),
        expects_continue,
        keep_alive,
        is_head: method == "HEAD",
        is_post: method == "POST",
    })
}

/// A `Content-Length` value: ASCII digits only (no sign, no spaces inside,
/// which `str::parse` would partly allow), within `usize`.
fn parse_length(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Answer with the HTTP endpoints' error shape and close.
fn answer(mut client: &TcpStream, status: u16, code: &str, message: &str) {
    let _ = client.write_all(&error_answer(status, code, message));
    let _ = client.shutdown(Shutdown::Write);
    linger(client);
}

/// A complete response in the HTTP endpoints' error shape, closing.
fn error_answer(status: u16, code: &str, message: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(forward: &Forward) -> String {
        String::from_utf8_lossy(&forward.head).into_owned()
    }

    #[test]
    fn forwards_a_good_request_with_connection_close() {
        let forward = check_head(
            b"POST /publish HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\
              Content-Length: 12\r\nExpect: 100-continue\r\nAuthorization: Bearer k\r\n\r\n",
            100,
        )
        .unwrap();
        assert_eq!(forward.body_length, 12);
        assert!(forward.expects_continue);
        assert!(forward.keep_alive);
        assert_eq!(
            head_of(&forward),
            "POST /publish HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer k\r\n\
             Content-Length: 12\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn keep_alive_unless_asked_otherwise() {
        let keeps = |head: &str| check_head(head.as_bytes(), 10).unwrap().keep_alive;
        assert!(keeps("GET / HTTP/1.1\r\n\r\n"));
        assert!(!keeps(
            "GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n"
        ));
        assert!(!keeps("GET / HTTP/1.0\r\n\r\n"));
        assert!(!keeps("HEAD / HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn responses_are_framed_and_rewritten_for_the_client() {
        let head = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n";
        let framing = response_framing(head, false);
        assert_eq!(framing.length, Some(5));
        assert!(!framing.upstream_closes);
        assert_eq!(response_framing(head, true).length, Some(0));
        assert_eq!(
            client_response_head(head, true),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        );
        assert_eq!(
            client_response_head(head, false),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
        );
        let closing = b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n";
        assert!(response_framing(closing, false).upstream_closes);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(response_framing(chunked, false).length, None);
    }

    /// Generated hostile heads (mutations of good ones, bounded, seeded):
    /// `check_head` never panics and answers only with its known statuses;
    /// what it forwards is a well-formed HTTP/1.0 head with a length no
    /// larger than the limit.
    #[test]
    fn generated_heads_get_a_known_answer() {
        let good: [&[u8]; 3] = [
            b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n",
            b"GET /status HTTP/1.1\r\nAuthorization: Bearer k\r\nConnection: close\r\n\r\n",
            b"HEAD / HTTP/1.0\r\nExpect: 100-continue\r\nTE: chunked\r\n\r\n",
        ];
        let alphabet =
            b" :\r\n\t0123456789-+,;/HTTPGETPOSTContent-LengthTransfer-Encoding\x00\x7f\xff";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut head = good[next() as usize % good.len()].to_vec();
            for _ in 0..1 + next() % 6 {
                let at = next() as usize % (head.len() + 1);
                let byte = alphabet[next() as usize % alphabet.len()];
                match next() % 3 {
                    0 => head.insert(at, byte),
                    1 if at < head.len() => head[at] = byte,
                    _ if at < head.len() => {
                        head.remove(at);
                    }
                    _ => {}
                }
            }
            match check_head(&head, 100) {
                Ok(forward) => {
                    assert!(forward.body_length <= 100);
                    assert!(forward.head.ends_with(b"Connection: keep-alive\r\n\r\n"));
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 2];
                    let parsed = httparse::Request::new(&mut headers).parse(&forward.head);
                    assert!(
                        matches!(parsed, Ok(httparse::Status::Complete(_))),
                        "forwarded a bad head: {:?}",
                        String::from_utf8_lossy(&forward.head)
                    );
                }
                Err((status, _, _)) => assert!(matches!(status, 400 | 411 | 413 | 431)),
            }
            // The answer side never panics on what tiny_http might send.
            let _ = response_framing(&head, false);
            let _ = client_response_head(&head, true);
        }
    }

    #[test]
    fn refuses_what_tiny_http_must_not_see() {
        let status = |head: &str| {
            check_head(head.as_bytes(), 1000)
                .map(|_| 200)
                .unwrap_or_else(|e| e.0)
        };
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 200);
        assert_eq!(
            status("POST /publish HTTP/1.1\r\nContent-Length: 1000\r\n\r\n"),
            200
        );
        assert_eq!(
            status("POST /publish HTTP/1.1\r\nContent-Length: 1001\r\n\r\n"),
            413
        );
        assert_eq!(
            status("POST /publish HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n"),
            413
        );
        assert_eq!(
            status("POST /publish HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            400
        );
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"), 400);
        assert_eq!(
            status("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(status("\x16\x03\x01garbage\r\n\r\n"), 400);
        let obs_text = b"GET / HTTP/1.1\r\nX-A: \xff\r\n\r\n";
        assert_eq!(check_head(obs_text, 10).unwrap_err().0, 400);
        let many: String = (0..65).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
    }
}
