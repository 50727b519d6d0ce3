//! The request side of a client connection: the `http-conn-N` thread.
//!
//! [`serve`] reads each request under the guard's deadlines and size
//! bounds, has `check_head` decide on its head, and reads its body. A
//! `POST /publish` it answers itself, through [`PublishRoute`], together
//! with the publishes the client pipelined behind it that are already read
//! (one command to the broadcaster for all of them). Anything else goes to
//! the connection's [`Pipeline`] for tiny_http. At the end it sends a last
//! answer of ours if there is one, and closes. While a pipeline exists,
//! its responder thread writes everything the client gets, in order, our
//! publish answers included; without one, this thread writes them.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::{debug, warn};

use super::check::{check_head, error_answer, Forward};
use super::pipeline::{connection_header, Ended, Pipeline};
use super::{linger, Rules, BODY_DEADLINE, STOP_CHECK, WRITE_TIMEOUT};
use crate::http::publish::{Answer, PublishRoute};
use crate::request_head::{find_head_end, read_some, MAX_HEAD};

/// The most pipelined `POST /publish` answered together (see
/// [`buffered_publish`]).
const MAX_PUBLISH_GROUP: usize = 64;

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
                        // Its last answer may have left a shorter write
                        // timeout on the socket; ours write with the full one.
                        let _ = client.set_write_timeout(Some(WRITE_TIMEOUT));
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
        if forward.publish.is_some() {
            let keep_alive = forward.keep_alive;
            if keep_alive {
                read_ahead(&client, &mut buffer);
            }
            let mut group = vec![(forward, body)];
            while group.len() < MAX_PUBLISH_GROUP && group.last().is_some_and(|(f, _)| f.keep_alive)
            {
                match buffered_publish(&mut buffer, rules.max_body) {
                    Some(next) => group.push(next),
                    None => break,
                }
            }
            let keep_alive = group.last().map_or(keep_alive, |(f, _)| f.keep_alive);
            if !answer_publishes(&client, &rules.publish, group, &pipeline) || !keep_alive {
                break None;
            }
            since = Instant::now();
            continue;
        }
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

/// Take in what the client has already sent, without waiting for more,
/// up to [`READ_AHEAD`] bytes in `buffer`: a client that pipelines
/// publishes then gets them published together (`buffered_publish`),
/// rather than one per read of a request-sized chunk. Whatever this reads
/// is checked like anything else, by `buffered_publish` or `next_request`.
fn read_ahead(client: &TcpStream, buffer: &mut Vec<u8>) {
    use rustix::net::{recv, RecvFlags};
    while buffer.len() < READ_AHEAD {
        let start = buffer.len();
        buffer.resize(READ_AHEAD, 0);
        let read = recv(client, &mut buffer[start..], RecvFlags::DONTWAIT);
        let got = read.as_ref().map_or(0, |(n, _)| *n);
        buffer.truncate(start + got);
        // Nothing more has arrived, the client closed (the next read sees
        // it again), or an error (likewise).
        if got == 0 {
            break;
        }
    }
}

/// The most bytes [`read_ahead`] keeps read and not yet used.
const READ_AHEAD: usize = 64 * 1024;

/// The next request if it is a `POST /publish` whose head and body are
/// already read: a client pipelining publishes gets them published
/// together. Anything else, or anything not whole yet, stays in `buffer`
/// for `next_request`, which reads, checks and refuses as usual.
fn buffered_publish(buffer: &mut Vec<u8>, max_body: usize) -> Option<(Forward, Vec<u8>)> {
    let head_end = find_head_end(buffer)?;
    let forward = check_head(&buffer[..head_end], max_body).ok()?;
    if forward.publish.is_none() || buffer.len() < head_end + forward.body_length {
        return None;
    }
    buffer.drain(..head_end);
    let body = buffer.drain(..forward.body_length).collect();
    Some((forward, body))
}

/// Answer a group of `POST /publish` requests, in order: check each,
/// publish the events of those that pass with one command, and write all
/// the answers at once (through the responder if a pipeline holds earlier
/// answers, so they stay in order). False if the client is gone.
fn answer_publishes(
    client: &TcpStream,
    route: &PublishRoute,
    group: Vec<(Forward, Vec<u8>)>,
    pipeline: &Option<Pipeline>,
) -> bool {
    let mut answers: Vec<Option<Answer>> = Vec::with_capacity(group.len());
    let mut passed = Vec::new();
    let mut connection = Vec::with_capacity(group.len());
    for (forward, body) in &group {
        let authorization = forward.publish.as_deref().unwrap_or_default();
        match route.check(authorization, body) {
            Ok(events) => {
                passed.push(events);
                answers.push(None);
            }
            Err(refusal) => answers.push(Some(refusal)),
        }
        connection.push(connection_header(forward.keep_alive, forward.http_1_0));
    }
    let mut published = route.publish(passed).into_iter();
    let mut bytes = Vec::with_capacity(256 * group.len());
    for (answer, connection) in answers.into_iter().zip(connection) {
        if let Some(answer) = answer.or_else(|| published.next()) {
            answer.write_to(&mut bytes, connection);
        }
    }
    match pipeline {
        Some(pipeline) => pipeline.interim(bytes),
        None => (&*client).write_all(&bytes).is_ok(),
    }
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
            Some(pipeline) => {
                pipeline.interim(interim);
            }
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
