//! The answer side: a client connection's path to tiny_http and back.
//!
//! The `http-conn-N` thread holds the [`Pipeline`] and writes checked
//! requests into the internal connection; its responder, the
//! `http-resp-N` thread ([`respond`]), reads tiny_http's answers, finds
//! where each ends ([`response_framing`]), rewrites its head for the client
//! ([`client_response_head`]) and copies it out. It is separate because it
//! is the part that spans two threads: the channels between them and the
//! budget of answers in flight live here.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use log::debug;

use super::check::{contains_token, parse_length, Forward};
use super::{linger, CONNECTION_STACK, UPSTREAM_TIMEOUT, WRITE_TIMEOUT};
use crate::request_head::{find_head_end, MAX_HEADERS};

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
pub(super) struct Pipeline {
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
        http_1_0: bool,
        weight: usize,
    },
    /// Bytes of our own, then carry on (`100 Continue`).
    Interim(Vec<u8>),
    /// Bytes of our own, then close (a refusal).
    Last(Vec<u8>),
}

impl Pipeline {
    /// Connect to tiny_http and start the responder for `client`.
    pub(super) fn start(client: &TcpStream, path: &Path, number: u64) -> io::Result<Pipeline> {
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
    pub(super) fn forward(&mut self, forward: &Forward, body: &[u8]) -> bool {
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
            http_1_0: forward.http_1_0,
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

    /// Queue bytes of our own between answers: a `100 Continue`, the
    /// answers to `POST /publish`. False if the responder has ended.
    pub(super) fn interim(&self, bytes: Vec<u8>) -> bool {
        match &self.outgoing {
            Some(outgoing) => outgoing.send(Outgoing::Interim(bytes)).is_ok(),
            None => false,
        }
    }

    /// No more requests: let the responder write what is queued, then
    /// `last` if given, close, and end; wait for it.
    pub(super) fn finish(self, last: Option<Vec<u8>>) -> Ended {
        if let (Some(outgoing), Some(bytes)) = (&self.outgoing, last) {
            let _ = outgoing.send(Outgoing::Last(bytes));
        }
        self.retire()
    }

    /// Let the responder write what is queued and end, closing the
    /// internal connection; wait for it. Says whether it also closed the
    /// client connection.
    pub(super) fn retire(mut self) -> Ended {
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
                http_1_0,
                weight,
            } => match answers.copy_one(&client, is_head, keep_alive, http_1_0) {
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
pub(super) enum Ended {
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
        http_1_0: bool,
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
        let mut answer = client_response_head(&self.buffer[..head_end], keep_alive, http_1_0);
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
pub(super) struct Framing {
    /// Its body's length, if known from its head.
    length: Option<usize>,
    /// tiny_http said it will close the internal connection.
    upstream_closes: bool,
}

/// Read the framing of a response head from tiny_http.
pub(super) fn response_framing(head: &[u8], answers_head: bool) -> Framing {
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
/// unless the connection stays open (then `Connection: keep-alive` for an
/// HTTP/1.0 client, which would close otherwise).
pub(super) fn client_response_head(head: &[u8], keep_alive: bool, http_1_0: bool) -> Vec<u8> {
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
    out.extend_from_slice(connection_header(keep_alive, http_1_0));
    out.extend_from_slice(b"\r\n");
    out
}

/// The `Connection` header an answer needs, if any (see
/// [`client_response_head`]).
pub(crate) fn connection_header(keep_alive: bool, http_1_0: bool) -> &'static [u8] {
    match (keep_alive, http_1_0) {
        (false, _) => b"Connection: close\r\n",
        (true, true) => b"Connection: keep-alive\r\n",
        (true, false) => b"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_and_rewritten_for_the_client() {
        let head = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n";
        let framing = response_framing(head, false);
        assert_eq!(framing.length, Some(5));
        assert!(!framing.upstream_closes);
        assert_eq!(response_framing(head, true).length, Some(0));
        assert_eq!(
            client_response_head(head, true, false),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        );
        assert_eq!(
            client_response_head(head, false, false),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            client_response_head(head, true, true),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
        );
        let closing = b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n";
        assert!(response_framing(closing, false).upstream_closes);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(response_framing(chunked, false).length, None);
    }
}
