//! The request side of a client connection: the `http-conn-N` thread.
//!
//! [`serve`] reads each request under the guard's deadlines and size
//! bounds, has `check_head` decide on its head, reads its body, and hands
//! it to the connection's [`Pipeline`]; at the end it sends a last answer
//! of ours if there is one, and closes. It is separate from the pipeline
//! because it only reads from the client: once a pipeline exists, its
//! responder thread writes everything the client gets, in order.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::{debug, warn};

use super::check::{check_head, error_answer, Forward};
use super::pipeline::{Ended, Pipeline};
use super::{linger, Rules, BODY_DEADLINE, STOP_CHECK, WRITE_TIMEOUT};
use crate::request_head::{find_head_end, read_some, MAX_HEAD};

pub(super) fn serve(
    client: TcpStream,
    peer: SocketAddr,
    number: u64,
    rules: &Rules,
    stop: &AtomicBool,
) {
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
        let relaying = match pipeline {
            Some(ref mut relaying) => relaying,
            None => match Pipeline::start(&client, &rules.upstream, number) {
                Ok(started) => pipeline.insert(started),
                Err(e) => {
                    warn!("http from {peer}: cannot reach tiny_http: {e}");
                    break Some(error_answer(503, "unavailable", "try again"));
                }
            },
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
    client: &TcpStream,
    buffer: &mut Vec<u8>,
    deadline: Instant,
    stop: &AtomicBool,
    look: impl Fn(&[u8]) -> Progress,
) -> io::Result<Option<usize>> {
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
        read_some(client, buffer, left.min(STOP_CHECK))?;
    }
}
