//! Publishing: what an event looks like, when it is sent, and the HTTP path.
//!
//! `EventFactory` builds event data (`{"n":…,"t":…,"p":"…"}`) and is shared
//! by every publisher, so `n` is unique across the run. `Pacer` says how
//! many events are due: on a fixed schedule for `--rate N`, or "always"
//! until the duration ends for flat out; the `--window` caps what is in
//! flight either way.
//!
//! Two kinds of publisher use them. `HttpPublisher` runs on its own thread
//! with a blocking keep-alive `TcpStream`, pipelining up to `window`
//! `POST /publish` requests (or, with `--http-close`, one connection per
//! request, as `ab` without `-k` does). `WsPublishState` is the bookkeeping for a
//! WebSocket publisher, which lives in the fleet's readiness loop like any
//! other client (see client.rs). Both report a `PublishTally`.
//!
//! With `--max-lag N` both also ask a `LagGate` before sending: publishing
//! pauses while the slowest subscriber is more than N events behind. That
//! closes the loop for flat-out runs: instead of overrunning the hub's
//! per-client queues (which ends in 4008 kicks and says nothing about
//! throughput), the publisher settles at the rate the hub can deliver with
//! nothing lost, which is what the saturation scenario measures.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock microseconds since the Unix epoch: the sender writes it into
/// `t` and the receiver subtracts it from its own clock. Both run on this
/// machine, so they share the clock; `Instant` cannot cross processes.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// Builds the `data` of each event, numbering events across all publishers.
pub struct EventFactory {
    channel: String,
    payload_bytes: usize,
    next_number: AtomicU64,
}

impl EventFactory {
    pub fn new(channel: &str, payload_bytes: usize) -> Self {
        EventFactory {
            channel: channel.to_string(),
            payload_bytes,
            next_number: AtomicU64::new(0),
        }
    }

    /// Appends `{"n":N,"t":MICROS,"p":"xxx…"}` to `out`, padded so the object
    /// is `payload_bytes` long (or as short as it can be, if that is less).
    /// Returns the event number.
    fn write_data(&self, out: &mut String, sent_at_us: u64) -> u64 {
        let number = self.next_number.fetch_add(1, Ordering::Relaxed);
        let start = out.len();
        write!(out, r#"{{"n":{number},"t":{sent_at_us},"p":""#).expect("writing to a String");
        // 2 more bytes close the string and the object.
        let padding = self.payload_bytes.saturating_sub(out.len() - start + 2);
        out.extend(std::iter::repeat_n('x', padding));
        out.push_str("\"}");
        number
    }

    /// A WebSocket `publish` request; its `id` is the event number.
    pub fn ws_publish_frame(&self) -> String {
        let mut frame = String::with_capacity(self.payload_bytes + 64);
        frame.push_str(r#"{"type":"publish","channel":""#);
        frame.push_str(&self.channel);
        frame.push_str(r#"","data":"#);
        let number = self.write_data(&mut frame, unix_micros());
        write!(frame, r#","id":{number}}}"#).expect("writing to a String");
        frame
    }

    /// A `POST /publish` body: one object, or an array of `count` of them.
    pub fn http_publish_body(&self, count: usize, body: &mut String) {
        body.clear();
        let sent_at_us = unix_micros();
        if count > 1 {
            body.push('[');
        }
        for index in 0..count {
            if index > 0 {
                body.push(',');
            }
            body.push_str(r#"{"channel":""#);
            body.push_str(&self.channel);
            body.push_str(r#"","data":"#);
            self.write_data(body, sent_at_us);
            body.push('}');
        }
        if count > 1 {
            body.push(']');
        }
    }
}

/// The closed loop of `--max-lag N`, shared by every publisher and the fleet.
///
/// Publishers add what they send to `sent`; after every poll round the
/// fleet stores the smallest number of events any open subscriber has
/// received in `slowest`. A publisher may send `count` more events only if
/// that keeps `sent - slowest` at most `max_lag`. Relaxed atomics suffice:
/// a stale `slowest` only makes a publisher wait one poll round longer.
pub struct LagGate {
    max_lag: u64,
    sent: AtomicU64,
    slowest: AtomicU64,
}

impl LagGate {
    pub fn new(max_lag: u64) -> Self {
        LagGate {
            max_lag,
            sent: AtomicU64::new(0),
            slowest: AtomicU64::new(0),
        }
    }

    /// True if `count` more events keep the slowest subscriber within
    /// `max_lag`. A single batch bigger than the lag is let through when
    /// nothing is outstanding, so a run can never stall for good.
    pub fn allows(&self, count: u64) -> bool {
        let sent = self.sent.load(Ordering::Relaxed);
        let slowest = self.slowest.load(Ordering::Relaxed);
        let behind = sent.saturating_sub(slowest);
        behind == 0 || behind + count <= self.max_lag
    }

    /// Records `count` events sent.
    pub fn sent(&self, count: u64) {
        self.sent.fetch_add(count, Ordering::Relaxed);
    }

    /// Records how many events the slowest open subscriber has received.
    pub fn set_slowest(&self, received: u64) {
        self.slowest.store(received, Ordering::Relaxed);
    }
}

/// How long a gated publisher with nothing in flight sleeps before it looks
/// at the gate again: about one poll round of the fleet.
const GATE_RECHECK: Duration = Duration::from_micros(200);

/// When a publisher sends: its share of `--rate`, or flat out.
#[derive(Clone, Copy, Debug)]
pub enum Schedule {
    /// `total` events, the k-th due at `k / events_per_s` seconds.
    Paced { events_per_s: f64, total: u64 },
    /// As many as the window allows, until `duration` has passed.
    FlatOut { duration: Duration },
}

impl Schedule {
    /// Publisher `index`'s share of `rate` events/s (0 = flat out) over
    /// `duration`, split between `publishers` so the totals add up exactly.
    pub fn share(rate: u64, duration: Duration, publishers: usize, index: usize) -> Schedule {
        if rate == 0 {
            return Schedule::FlatOut { duration };
        }
        let all = (rate as f64 * duration.as_secs_f64()).round() as u64;
        let publishers = publishers as u64;
        let extra = u64::from((index as u64) < all % publishers);
        Schedule::Paced {
            events_per_s: rate as f64 / publishers as f64,
            total: all / publishers + extra,
        }
    }
}

/// Counts events against a `Schedule` from the moment it is created.
pub struct Pacer {
    schedule: Schedule,
    started: Instant,
    sent: u64,
}

impl Pacer {
    pub fn new(schedule: Schedule) -> Self {
        Pacer {
            schedule,
            started: Instant::now(),
            sent: 0,
        }
    }

    /// How many events may go out now, before the window is considered.
    pub fn due(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started);
        match self.schedule {
            Schedule::Paced {
                events_per_s,
                total,
            } => {
                // The first event is due at once, hence the + 1.
                let by_now = (elapsed.as_secs_f64() * events_per_s) as u64 + 1;
                by_now.min(total) - self.sent
            }
            Schedule::FlatOut { duration } if elapsed < duration => u64::MAX,
            Schedule::FlatOut { .. } => 0,
        }
    }

    /// Marks `count` events as sent.
    pub fn take(&mut self, count: u64) {
        self.sent += count;
    }

    /// True once no more events will ever be due.
    pub fn finished(&self, now: Instant) -> bool {
        match self.schedule {
            Schedule::Paced { total, .. } => self.sent >= total,
            Schedule::FlatOut { duration } => {
                now.saturating_duration_since(self.started) >= duration
            }
        }
    }

    /// Events still to send; unbounded for flat out.
    pub fn remaining(&self) -> u64 {
        match self.schedule {
            Schedule::Paced { total, .. } => total.saturating_sub(self.sent),
            Schedule::FlatOut { .. } => u64::MAX,
        }
    }

    /// Events the schedule wanted that were never sent (a hub too slow for
    /// the rate); 0 for flat out, which has no target.
    pub fn unsent(&self) -> u64 {
        match self.schedule {
            Schedule::Paced { total, .. } => total.saturating_sub(self.sent),
            Schedule::FlatOut { .. } => 0,
        }
    }

    /// When `count` more events will be due (or all the rest, if fewer
    /// remain); `None` if flat out or finished. Waiting for a whole batch
    /// needs this: the next single event is usually due already.
    pub fn due_at(&self, count: u64) -> Option<Instant> {
        match self.schedule {
            Schedule::Paced {
                events_per_s,
                total,
            } if self.sent < total => {
                // Event k (from 0) is due k / events_per_s after the start.
                let last_needed = self.sent + count.clamp(1, total - self.sent) - 1;
                Some(self.started + Duration::from_secs_f64(last_needed as f64 / events_per_s))
            }
            _ => None,
        }
    }

    /// The latest moment a publisher keeps going: its duration plus a grace
    /// period in which a slow hub may still answer. Every publisher stops by
    /// then, so a run is bounded whatever the hub does.
    pub fn hard_stop(&self, grace: Duration) -> Instant {
        let duration = match self.schedule {
            Schedule::Paced {
                events_per_s,
                total,
            } => Duration::from_secs_f64(total as f64 / events_per_s),
            Schedule::FlatOut { duration } => duration,
        };
        self.started + duration + grace
    }
}

/// How long a publisher may go on past its schedule waiting for replies.
pub const PUBLISH_GRACE: Duration = Duration::from_secs(10);

/// What one publisher achieved.
#[derive(Debug, Default)]
pub struct PublishTally {
    /// Events the hub acknowledged (HTTP 200, or a `published` reply).
    pub published: u64,
    /// Requests answered with success: `published` over the batch size.
    pub requests: u64,
    /// Sum of the hub's `delivered` answers: clients it queued them for.
    pub hub_delivered: u64,
    /// Events the hub refused or never answered.
    pub errors: u64,
    /// Events the schedule wanted but the publisher could not send in time.
    pub unsent: u64,
    /// The first refusal or failure, to show the reader what went wrong.
    pub first_error: Option<String>,
}

impl PublishTally {
    pub fn add(&mut self, other: PublishTally) {
        self.published += other.published;
        self.requests += other.requests;
        self.hub_delivered += other.hub_delivered;
        self.errors += other.errors;
        self.unsent += other.unsent;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn note_error(&mut self, events: u64, error: impl FnOnce() -> String) {
        self.errors += events;
        if self.first_error.is_none() {
            self.first_error = Some(error());
        }
    }
}

/// A `POST /publish` client on its own thread, over one keep-alive connection.
pub struct HttpPublisher {
    pub addr: SocketAddr,
    pub schedule: Schedule,
    pub window: usize,
    pub batch: usize,
    /// `--http-close`: a new connection for every request.
    pub close_each: bool,
    pub events: Arc<EventFactory>,
    /// `--max-lag`: publishing pauses while subscribers are this far behind.
    pub gate: Option<Arc<LagGate>>,
}

impl HttpPublisher {
    /// Starts the thread; joining it yields the tally.
    pub fn spawn(self, index: usize) -> io::Result<JoinHandle<PublishTally>> {
        thread::Builder::new()
            .name(format!("http-publisher-{index}"))
            .spawn(move || self.run())
    }

    fn run(self) -> PublishTally {
        let mut tally = PublishTally::default();
        if self.close_each {
            let mut pacer = Pacer::new(self.schedule);
            let hard_stop = pacer.hard_stop(PUBLISH_GRACE);
            self.publish_one_per_connection(&mut pacer, hard_stop, &mut tally);
            tally.unsent = pacer.unsent();
            return tally;
        }
        let mut stream = match TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)) {
            Ok(stream) => stream,
            Err(error) => {
                tally.note_error(0, || format!("connect to {}: {error}", self.addr));
                return tally;
            }
        };
        // Requests are small and latency is what we measure: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let mut pacer = Pacer::new(self.schedule);
        let hard_stop = pacer.hard_stop(PUBLISH_GRACE);
        if let Err(error) = self.publish_until_done(&mut stream, &mut pacer, hard_stop, &mut tally)
        {
            tally.note_error(0, || format!("http publisher: {error}"));
        }
        tally.unsent = pacer.unsent();
        tally
    }

    /// The pipelining loop: send what is due while fewer than `window`
    /// requests are unanswered, then wait for a reply, but never past the
    /// next due time. Responses come back in request order (HTTP/1.1), so a
    /// queue of event counts is enough to match them.
    fn publish_until_done(
        &self,
        stream: &mut TcpStream,
        pacer: &mut Pacer,
        hard_stop: Instant,
        tally: &mut PublishTally,
    ) -> io::Result<()> {
        let mut in_flight: VecDeque<u64> = VecDeque::new();
        let mut responses = ResponseReader::default();
        let mut body = String::new();
        let mut request = Vec::new();
        loop {
            let now = Instant::now();
            if now >= hard_stop {
                let never_answered: u64 = in_flight.iter().sum();
                tally.note_error(never_answered, || "no response before the deadline".into());
                return Ok(());
            }
            let mut gated = false;
            while in_flight.len() < self.window {
                let count = self.events_to_send(pacer, now);
                if count == 0 {
                    break;
                }
                if self.gate.as_ref().is_some_and(|gate| !gate.allows(count)) {
                    gated = true;
                    break;
                }
                self.events.http_publish_body(count as usize, &mut body);
                write_publish_request(&mut request, self.addr, &body);
                stream.write_all(&request)?;
                pacer.take(count);
                if let Some(gate) = &self.gate {
                    gate.sent(count);
                }
                in_flight.push_back(count);
            }
            if in_flight.is_empty() {
                if pacer.finished(now) {
                    return Ok(());
                }
                if gated {
                    thread::sleep(GATE_RECHECK);
                    continue;
                }
                let wake_at = pacer
                    .due_at(self.batch as u64)
                    .unwrap_or(now)
                    .min(hard_stop);
                thread::sleep(wake_at.saturating_duration_since(now));
                continue;
            }
            // Wait for a reply, but wake up when the next event is due.
            let window_full = in_flight.len() >= self.window;
            let wake_at = match pacer.due_at(self.batch as u64) {
                Some(due) if !window_full => due.min(hard_stop),
                // Gated: look at the gate again soon, replies or not.
                _ if gated => now + GATE_RECHECK,
                _ => hard_stop,
            };
            let wait = wake_at
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), Duration::from_secs(1));
            stream.set_read_timeout(Some(wait))?;
            if let Some(reply) = responses.next_response(stream)? {
                let count = in_flight.pop_front().expect("a response implies a request");
                account_reply(&reply, count, tally);
            }
        }
    }

    /// `--http-close`: each request on a connection of its own, closed
    /// after the answer, one at a time. Connection failures count as
    /// errors for that request's events and publishing goes on.
    fn publish_one_per_connection(
        &self,
        pacer: &mut Pacer,
        hard_stop: Instant,
        tally: &mut PublishTally,
    ) {
        let mut body = String::new();
        let mut request = Vec::new();
        loop {
            let now = Instant::now();
            if now >= hard_stop || pacer.finished(now) {
                return;
            }
            let count = self.events_to_send(pacer, now);
            if count == 0 {
                let wake_at = pacer
                    .due_at(self.batch as u64)
                    .unwrap_or(now)
                    .min(hard_stop);
                thread::sleep(wake_at.saturating_duration_since(now));
                continue;
            }
            if self.gate.as_ref().is_some_and(|gate| !gate.allows(count)) {
                thread::sleep(GATE_RECHECK);
                continue;
            }
            self.events.http_publish_body(count as usize, &mut body);
            write_publish_request(&mut request, self.addr, &body);
            // `Connection: close` goes in before the blank line.
            let at = request
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(request.len(), |at| at + 2);
            request.splice(at..at, b"Connection: close\r\n".iter().copied());
            pacer.take(count);
            if let Some(gate) = &self.gate {
                gate.sent(count);
            }
            let answered = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).and_then(
                |mut stream| {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(
                        hard_stop
                            .saturating_duration_since(Instant::now())
                            .max(Duration::from_millis(1)),
                    ))?;
                    stream.write_all(&request)?;
                    ResponseReader::default().next_response(&mut stream)
                },
            );
            match answered {
                Ok(Some(reply)) => account_reply(&reply, count, tally),
                Ok(None) => tally.note_error(count, || "no response before the deadline".into()),
                Err(error) => tally.note_error(count, || format!("http publisher: {error}")),
            }
        }
    }

    /// Events for the next request: a full batch when that many are due (or
    /// flat out), or the remainder once the schedule has nothing more to add.
    fn events_to_send(&self, pacer: &Pacer, now: Instant) -> u64 {
        let due = pacer.due(now);
        let batch = self.batch as u64;
        if due >= batch {
            batch
        } else if due == pacer.remaining() {
            due
        } else {
            0
        }
    }
}

/// Formats one keep-alive request into `request` (reused between calls).
fn write_publish_request(request: &mut Vec<u8>, addr: SocketAddr, body: &str) {
    request.clear();
    write!(
        request,
        "POST /publish HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("writing to a Vec");
}

/// Counts one response to a request that carried `count` events.
fn account_reply(reply: &HttpReply, count: u64, tally: &mut PublishTally) {
    if reply.status != 200 {
        let body = String::from_utf8_lossy(&reply.body);
        let status = reply.status;
        tally.note_error(count, || format!("POST /publish answered {status}: {body}"));
        return;
    }
    tally.published += count;
    tally.requests += 1;
    // {"seq":…,"delivered":n} for one event, an array of those for a batch.
    let delivered = |value: &serde_json::Value| value["delivered"].as_u64().unwrap_or(0);
    match serde_json::from_slice::<serde_json::Value>(&reply.body) {
        Ok(serde_json::Value::Array(items)) => {
            tally.hub_delivered += items.iter().map(delivered).sum::<u64>()
        }
        Ok(single) => tally.hub_delivered += delivered(&single),
        Err(_) => {}
    }
}

/// One parsed HTTP response.
struct HttpReply {
    status: u16,
    body: Vec<u8>,
}

/// Reads responses off a pipelined connection, keeping partial data between
/// calls so a read timeout in the middle of a response loses nothing.
#[derive(Default)]
struct ResponseReader {
    buffer: Vec<u8>,
}

impl ResponseReader {
    /// The next complete response, or `None` if the read timed out first.
    fn next_response(&mut self, stream: &mut TcpStream) -> io::Result<Option<HttpReply>> {
        loop {
            if let Some(reply) = self.parse_buffered()? {
                return Ok(Some(reply));
            }
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "hub closed the HTTP connection",
                    ))
                }
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// Takes one whole response off the front of the buffer, if there is one.
    fn parse_buffered(&mut self) -> io::Result<Option<HttpReply>> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let header_length = match response.parse(&self.buffer) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(error) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad HTTP response: {error}"),
                ))
            }
        };
        let status = response.code.unwrap_or(0);
        let content_length = response
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case("content-length"))
            .and_then(|header| {
                std::str::from_utf8(header.value)
                    .ok()?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response without Content-Length",
                )
            })?;
        let end = header_length + content_length;
        if self.buffer.len() < end {
            return Ok(None);
        }
        let body = self.buffer[header_length..end].to_vec();
        self.buffer.drain(..end);
        Ok(Some(HttpReply { status, body }))
    }
}

/// Bookkeeping for a WebSocket publisher driven by the fleet's loop.
pub struct WsPublishState {
    pub pacer: Pacer,
    pub window: usize,
    /// `publish` requests sent and not yet answered.
    pub in_flight: usize,
    pub hard_stop: Instant,
    pub tally: PublishTally,
    /// `--max-lag`: publishing pauses while subscribers are this far behind.
    pub gate: Option<Arc<LagGate>>,
}

impl WsPublishState {
    pub fn new(schedule: Schedule, window: usize, gate: Option<Arc<LagGate>>) -> Self {
        let pacer = Pacer::new(schedule);
        WsPublishState {
            hard_stop: pacer.hard_stop(PUBLISH_GRACE),
            pacer,
            window,
            in_flight: 0,
            tally: PublishTally::default(),
            gate,
        }
    }

    /// True if the next event may go: the pacer has one due, the window
    /// has room, and the lag gate (if any) lets it through.
    pub fn may_send(&self, now: Instant) -> bool {
        self.in_flight < self.window
            && self.pacer.due(now) > 0
            && self.gate.as_ref().is_none_or(|gate| gate.allows(1))
    }

    /// Marks one event as sent.
    pub fn take_one(&mut self) {
        self.pacer.take(1);
        self.in_flight += 1;
        if let Some(gate) = &self.gate {
            gate.sent(1);
        }
    }

    /// True when this publisher has nothing more to send or wait for.
    pub fn done(&self, now: Instant) -> bool {
        (self.pacer.finished(now) && self.in_flight == 0) || now >= self.hard_stop
    }

    /// Counts a `published` reply.
    pub fn on_published(&mut self, delivered: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.tally.published += 1;
        self.tally.requests += 1;
        self.tally.hub_delivered += delivered;
    }

    /// Counts an `error` reply to one of our requests.
    pub fn on_error(&mut self, code: &str) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let hint = if code == "forbidden" {
            " (start the hub with --allow-client-publish)"
        } else {
            ""
        };
        self.tally
            .note_error(1, || format!("publish answered error {code}{hint}"));
    }

    /// Closes the books: whatever is still unanswered counts as an error.
    pub fn finish(mut self) -> PublishTally {
        let unanswered = self.in_flight as u64;
        if unanswered > 0 {
            self.tally.note_error(unanswered, || {
                "no published reply before the deadline".into()
            });
        }
        self.tally.unsent = self.pacer.unsent();
        self.tally
    }
}
