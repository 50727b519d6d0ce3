//! The read pump: reads a client's frames, turns them into requests, and
//! never writes to the socket.
//!
//! Runs on the connection's own thread once the handshake is done. It owns
//! the read half of the connection: a tungstenite `WebSocket` over
//! [`ReadSide`], a stream whose writes are discarded. tungstenite's `read()`
//! wants to write auto-pongs and close replies itself; if it could, two
//! threads would write one socket and interleave frames (see
//! docs/pumps.md, pitfall 1). Instead this pump forwards
//! what must be written to the client's [`OutboundQueue`]: Pongs, and the
//! replies it answers itself (`pong`, `authenticated`, error replies).
//!
//! **Pipelining.** A client may send many requests without waiting for
//! their replies. The pump reads ahead: requests that touch hub state
//! (`subscribe`, `unsubscribe`, `publish`) are collected and handed to the
//! broadcaster together, as one [`HubCommand::ClientBatch`], so a stream of
//! publishes costs the broadcaster one round (and each subscriber's write
//! pump one wake-up) per batch rather than per event. One batch is with the
//! broadcaster at a time; the requests read meanwhile wait for its answer
//! and then go as the next batch. A request the pump answers itself while
//! earlier ones are still outstanding (`ping`, an error, `rate_limited`, a
//! Ping frame's Pong) goes into the batch as its finished answer
//! ([`ClientRequest::Answered`]), so whoever queues a reply, replies reach
//! the client in request order. At most `--max-inflight` requests (and
//! [`MAX_INFLIGHT_BYTES`] of them) are read and not yet answered; beyond
//! that the pump stops reading, and TCP slows the client down. It waits
//! on the client (a blocking read) only when nothing is outstanding; with
//! requests outstanding it takes only what has already arrived
//! ([`ReadSide::set_dont_wait`]), then waits for the broadcaster, which
//! never waits on anyone.
//!
//! It ends when the peer closes, the connection breaks the protocol, or the
//! socket fails, and returns a [`Done`] saying which; `connection::serve`
//! passes it to the write pump. Silence (ping interval + pong timeout), a
//! missing `auth` and an expired token (4001, unless a fresh one came in an
//! `auth` message first) are detected here, through the socket's read
//! timeout and after each frame, and answered by kicking the connection:
//! the write pump sends the Close.
//!
//! The same pump also runs the echo server (`testing/echo.rs`) that the Autobahn
//! testsuite is pointed at: in [`DataFrames::Echo`] mode each text and
//! binary frame goes back through the queue as it came, and everything else
//! (framing, UTF-8, Ping, Close, error mapping) is the code the hub runs.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, SendError, Sender};
use log::{debug, info, warn};
use tungstenite::error::{Error as WsError, ProtocolError};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

use super::done::Done;
use super::rate_limit::{RateLimiter, Verdict};
use super::socket::ReadSide;
use super::ServerContext;
use crate::auth::{self, Authorizer, Identity, Refusal as TokenRefusal, RefusalReason};
use crate::broadcaster::{
    ClientRequest, CloseReason, Connection, HubCommand, OutboundFrame, OutboundQueue,
};
use crate::error::is_quiet;
use crate::metrics::Metrics;
use crate::protocol::{self, unix_ms, ClientMessage, ErrorCode, Request, RequestError, RequestId};

/// The most bytes of requests a pipelining client may have read and not yet
/// answered (at least one request always fits). With `--max-inflight` it
/// bounds what a connection holds in requests: a client sending large
/// messages gets fewer in flight, one sending small ones up to the count.
pub const MAX_INFLIGHT_BYTES: usize = 256 * 1024;

/// Requests read and not yet answered: the batch the broadcaster is
/// serving, and those read since, which go as the next batch.
#[derive(Debug, Default)]
struct Outstanding {
    in_flight: Option<InFlight>,
    next: Vec<ClientRequest>,
    next_bytes: usize,
}

/// The batch with the broadcaster.
#[derive(Debug)]
struct InFlight {
    /// Signalled (or dropped, if the broadcaster stopped) once every reply
    /// of the batch is queued.
    answered: Receiver<()>,
    requests: usize,
    bytes: usize,
}

impl Outstanding {
    fn is_empty(&self) -> bool {
        self.in_flight.is_none() && self.next.is_empty()
    }

    /// True once no more requests may be read before some are answered.
    fn is_full(&self, max_requests: usize) -> bool {
        let (requests, bytes) = match &self.in_flight {
            Some(batch) => (batch.requests, batch.bytes),
            None => (0, 0),
        };
        requests + self.next.len() >= max_requests || bytes + self.next_bytes >= MAX_INFLIGHT_BYTES
    }

    fn push(&mut self, request: ClientRequest, bytes: usize) {
        self.next.push(request);
        self.next_bytes += bytes;
    }
}

/// Where authentication stands, and its deadline.
#[derive(Debug, Clone, Copy)]
enum AuthState {
    /// Authenticated; the token holds until this instant (`None`: for
    /// good), after which the connection is closed with 4001.
    Authenticated { until: Option<Instant> },
    /// Must authenticate before this instant.
    Pending(Instant),
}

impl AuthState {
    fn authenticated(identity: &Identity) -> AuthState {
        // The clock the token's `exp` is read against is the wall clock;
        // the deadline is kept on the monotonic one, so that a clock step
        // after this moment neither ends nor prolongs the connection.
        let until = identity.valid_until.and_then(|until| {
            let left = until
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            Instant::now().checked_add(left)
        });
        AuthState::Authenticated { until }
    }

    /// The next moment something must happen: the end of the wait for
    /// `auth`, or the token's expiry.
    fn deadline(self) -> Option<Instant> {
        match self {
            AuthState::Authenticated { until } => until,
            AuthState::Pending(deadline) => Some(deadline),
        }
    }
}

/// What the read pump does with a client's text and binary frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataFrames {
    /// The hub: each frame is a request, rate limited, then answered here or
    /// forwarded to the broadcaster.
    Requests,
    /// The echo server: each frame is queued back to the client as it came,
    /// in the same FIFO as the Pongs, with no hub rules (no rate limit, no
    /// JSON, binary allowed). Autobahn checks the Pong/echo order.
    Echo,
}

/// One connection's reader. See the module docs.
pub struct ReadPump {
    socket: WebSocket<ReadSide>,
    data_frames: DataFrames,
    connection: Arc<Connection>,
    queue: OutboundQueue,
    commands: Sender<HubCommand>,
    authorizer: Arc<dyn Authorizer>,
    metrics: Arc<Metrics>,
    auth: AuthState,
    rate_limiter: Option<RateLimiter>,
    /// Close after this much silence (`None`: heartbeat off).
    silence_limit: Option<Duration>,
    last_heard: Instant,
    /// The read timeout currently set on the socket.
    read_timeout: Option<Duration>,
    /// Set once we asked the write pump to close; from then on we only
    /// wait for the peer's Close reply or for the write pump's shutdown.
    kicked: bool,
    /// Pipelined requests not yet answered.
    outstanding: Outstanding,
    /// The most requests read and not yet answered.
    max_inflight: usize,
}

impl ReadPump {
    /// A read pump for a connection that completed its handshake.
    /// `identity` is `Some` if the upgrade request carried a good token
    /// (or none is needed), `None` if the client must still send `auth`.
    pub(crate) fn new(
        socket: WebSocket<ReadSide>,
        connection: Arc<Connection>,
        queue: OutboundQueue,
        context: Arc<ServerContext>,
        identity: Option<Identity>,
    ) -> Self {
        let config = &context.config;
        let now = Instant::now();
        ReadPump {
            socket,
            data_frames: DataFrames::Requests,
            connection,
            queue,
            commands: context.commands.clone(),
            authorizer: context.authorizer.clone(),
            metrics: context.metrics.clone(),
            auth: match identity {
                Some(identity) => AuthState::authenticated(&identity),
                None => AuthState::Pending(now + config.auth_timeout),
            },
            rate_limiter: (config.rate_limit > 0).then(|| RateLimiter::new(config.rate_limit, now)),
            silence_limit: (!config.ping_interval.is_zero())
                .then(|| config.ping_interval + config.pong_timeout),
            last_heard: now,
            read_timeout: None,
            kicked: false,
            outstanding: Outstanding::default(),
            max_inflight: inflight_limit(config.max_inflight, config.queue_size),
        }
    }

    /// A read pump for the echo server: no broadcaster, no token, no rate
    /// limit, no heartbeat. Only [`DataFrames::Echo`] differs from the hub.
    #[cfg(feature = "testing")]
    pub(crate) fn echo(
        socket: WebSocket<ReadSide>,
        connection: Arc<Connection>,
        queue: OutboundQueue,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Echo mode never reaches the code that uses these two: a sender
        // with no receiver, and an authorizer that asks for nothing.
        let (commands, _) = crossbeam_channel::bounded(0);
        ReadPump {
            socket,
            data_frames: DataFrames::Echo,
            connection,
            queue,
            commands,
            authorizer: Arc::new(crate::auth::ConfigAuthorizer::new(None, false)),
            metrics,
            auth: AuthState::Authenticated { until: None },
            rate_limiter: None,
            silence_limit: None,
            last_heard: Instant::now(),
            read_timeout: None,
            kicked: false,
            outstanding: Outstanding::default(),
            max_inflight: 1,
        }
    }

    /// Read until the connection ends; say why. Every request read before
    /// the end is answered (its reply queued) before this returns, so the
    /// write pump sends those replies before its Close.
    pub fn run(mut self) -> Done {
        let done = self.read_until_done();
        while !self.outstanding.is_empty() {
            self.wait_for_hub();
        }
        done
    }

    fn read_until_done(&mut self) -> Done {
        loop {
            // Also here, not only when a read times out: a client that
            // keeps talking would otherwise never reach its deadlines.
            self.check_deadlines();
            self.hand_on_next();
            if self.outstanding.is_full(self.max_inflight) {
                self.wait_for_hub();
                continue;
            }
            // Wait for the client only with nothing outstanding: a request
            // read and not handed on could otherwise wait for a client
            // that waits for its reply.
            let may_wait = self.outstanding.is_empty();
            // Always, so the absolute auth deadline holds in reads that
            // do not wait too.
            self.update_read_timeout();
            self.socket.get_mut().set_dont_wait(!may_wait);
            let message = match self.socket.read() {
                Ok(message) => message,
                // All the client has sent so far is read.
                Err(WsError::Io(e)) if !may_wait && e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_for_hub();
                    continue;
                }
                // A quiet moment (a read timeout, or a signal).
                Err(WsError::Io(e)) if is_quiet(&e) => {
                    self.check_deadlines();
                    continue;
                }
                Err(error) => return done_for(error),
            };
            self.last_heard = Instant::now();
            self.connection.stats.add_received();
            let echo = self.data_frames == DataFrames::Echo;
            match message {
                Message::Text(text) if echo => self.answer(OutboundFrame::Text(text)),
                Message::Binary(data) if echo => self.answer(OutboundFrame::Binary(data)),
                Message::Text(text) => {
                    if self.admit_data_frame(|| protocol::request_id(&text)) {
                        self.handle_text(&text);
                    }
                }
                Message::Binary(_) => {
                    if self.admit_data_frame(|| None) {
                        self.reply_error(RequestError {
                            id: None,
                            code: ErrorCode::BinaryUnsupported,
                            message: "binary frames are not supported; send JSON text".into(),
                        });
                    }
                }
                // tungstenite would answer this itself; its answer went into
                // ReadSide and was dropped, so the write pump sends ours.
                Message::Ping(payload) => self.answer(OutboundFrame::Pong(payload)),
                Message::Pong(_) | Message::Frame(_) => {}
                Message::Close(frame) => return Done::PeerClosed(frame),
            }
        }
    }

    /// Set the socket's read timeout to the nearest deadline: silence, or
    /// authentication. A `setsockopt` only when the value changes.
    fn update_read_timeout(&mut self) {
        let wanted = if self.kicked {
            // The write pump bounds the close handshake and shuts the socket,
            // which ends our read.
            None
        } else {
            let auth_left = self.auth.deadline().map(|deadline| {
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1))
            });
            match (self.silence_limit, auth_left) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        if wanted != self.read_timeout {
            let _ = self.socket.get_ref().tcp().set_read_timeout(wanted);
            self.read_timeout = wanted;
        }
        // The authentication deadlines are absolute: a peer trickling bytes
        // must not push them back (the silence limit counts whole messages
        // and stays a socket timeout).
        let absolute = if self.kicked {
            None
        } else {
            self.auth.deadline()
        };
        self.socket.get_mut().set_deadline(absolute);
    }

    /// A read timed out: is a deadline really past?
    fn check_deadlines(&mut self) {
        if self.kicked {
            return;
        }
        let now = Instant::now();
        match self.auth {
            AuthState::Pending(deadline) if now >= deadline => {
                self.kick(CloseReason::AuthTimeout);
                return;
            }
            AuthState::Authenticated { until: Some(until) } if now >= until => {
                if self.kick(CloseReason::TokenExpired) {
                    self.metrics.tokens_expired.inc();
                    let info = &self.connection.info;
                    info!(
                        "connection {} from {}: token expired, closing with 4001",
                        info.id, info.remote_addr
                    );
                }
                return;
            }
            _ => {}
        }
        if let Some(limit) = self.silence_limit {
            if now.saturating_duration_since(self.last_heard) >= limit {
                self.kick(CloseReason::PingTimeout);
            }
        }
    }

    /// Ask the write pump to close with `reason`. True if ours is the kick
    /// that closes the connection (the broadcaster may have kicked first).
    fn kick(&mut self, reason: CloseReason) -> bool {
        self.kicked = true;
        self.queue.kick(reason)
    }

    /// Count a data frame and apply the rate limit. False if it is dropped;
    /// then the `rate_limited` reply carries the `id` that `id` finds in the
    /// dropped message, looked up only then, so that frames within the
    /// limit are parsed once.
    fn admit_data_frame(&mut self, id: impl FnOnce() -> Option<RequestId>) -> bool {
        self.metrics.client_messages.inc();
        let Some(limiter) = &mut self.rate_limiter else {
            return true;
        };
        match limiter.check(Instant::now()) {
            Verdict::Allow => true,
            verdict => {
                self.reply_error(RequestError {
                    id: id(),
                    code: ErrorCode::RateLimited,
                    message: "rate limit exceeded; message dropped".into(),
                });
                if verdict == Verdict::Close && !self.kicked {
                    self.kick(CloseReason::RateLimited);
                }
                false
            }
        }
    }

    fn handle_text(&mut self, text: &str) {
        let ClientMessage { id, request } = match protocol::parse_request(text) {
            Ok(message) => message,
            Err(error) => return self.reply_error(error),
        };
        if let (AuthState::Pending(_), false) = (self.auth, matches!(request, Request::Auth { .. }))
        {
            return self.reply_error(RequestError {
                id,
                code: ErrorCode::Unauthenticated,
                message: "authenticate first: send {\"type\":\"auth\",\"token\":…}".into(),
            });
        }
        match request {
            Request::Auth { token } => self.authenticate(id, &token),
            Request::Ping => self.reply(protocol::encode_pong(id.as_ref(), unix_ms())),
            Request::Subscribe { channels, since } => {
                let info = &self.connection.info;
                if let Some(refused) = auth::refused_channel(&*self.authorizer, info, &channels) {
                    return self.reply_error(forbidden_subscription(id, refused));
                }
                let request = ClientRequest::Subscribe {
                    request_id: id,
                    channels,
                    since,
                };
                self.outstanding.push(request, text.len());
            }
            Request::Unsubscribe { channels } => {
                let request = ClientRequest::Unsubscribe {
                    request_id: id,
                    channels,
                };
                self.outstanding.push(request, text.len());
            }
            Request::Publish { channel, data } => {
                if !self.authorizer.may_publish(&self.connection.info, &channel) {
                    return self.reply_error(RequestError {
                        id,
                        code: ErrorCode::Forbidden,
                        message: format!("not allowed to publish to `{channel}`"),
                    });
                }
                let request = ClientRequest::Publish {
                    request_id: id,
                    channel,
                    data,
                };
                self.outstanding.push(request, text.len());
            }
        }
    }

    /// An `auth` request: the first token of a connection that brought
    /// none in the upgrade, or a fresh one (a refresh) that replaces the
    /// current one, with its expiry and grants. A refused refresh leaves
    /// the connection as it was; it is answered `unauthenticated` if the
    /// current token expires (so the client knows it will be closed), and
    /// `authenticated` if it does not (the contract's answer to `auth` on
    /// an authenticated connection, from before tokens could expire).
    fn authenticate(&mut self, id: Option<RequestId>, token: &str) {
        if !self.authorizer.requires_token() {
            self.auth = AuthState::Authenticated { until: None };
            return self.reply(protocol::encode_authenticated(id.as_ref()));
        }
        let refreshing = matches!(self.auth, AuthState::Authenticated { .. });
        let verdict = if token.is_empty() {
            Err(TokenRefusal::new(RefusalReason::Invalid, "empty token"))
        } else {
            self.authorizer.verify_token(&self.connection.info, token)
        };
        let identity = match verdict {
            Ok(identity) => identity,
            Err(refusal) => {
                if let AuthState::Authenticated { until: None } = self.auth {
                    self.metrics.count_token_refusal(refusal.reason);
                    let info = &self.connection.info;
                    debug!(
                        "connection {} from {}: auth refused while authenticated, \
                         which stays: {refusal}",
                        info.id, info.remote_addr
                    );
                    return self.reply(protocol::encode_authenticated(id.as_ref()));
                }
                return self.refuse_token(id, &refusal);
            }
        };
        self.auth = AuthState::authenticated(&identity);
        let info = &self.connection.info;
        if self.connection.stats.subject() != identity.subject {
            info!(
                "connection {} from {}: authenticated, sub {:?}",
                info.id,
                info.remote_addr,
                identity.subject.as_deref().unwrap_or("-")
            );
        } else {
            debug!(
                "connection {} from {}: token accepted",
                info.id, info.remote_addr
            );
        }
        self.connection.stats.set_subject(identity.subject);
        if refreshing {
            self.end_subscriptions_no_longer_granted();
        }
        self.reply(protocol::encode_authenticated(id.as_ref()));
    }

    /// Answer a refused `auth`, count it and log why: at debug each time,
    /// as a warning at most once per reason per interval.
    fn refuse_token(&mut self, id: Option<RequestId>, refusal: &TokenRefusal) {
        self.metrics.count_token_refusal(refusal.reason);
        let info = &self.connection.info;
        debug!(
            "connection {} from {}: auth refused: {refusal}",
            info.id, info.remote_addr
        );
        if let Some(count) = self.metrics.token_refusal_warning_due(refusal.reason) {
            let more = match count {
                1 => String::new(),
                n => format!(
                    " (one of {n} refused as {} since the last such warning)",
                    refusal.reason
                ),
            };
            warn!(
                "connection {} from {}: auth refused: {refusal}{more}",
                info.id, info.remote_addr
            );
        }
        // A plain wrong token keeps the message it always had; a signed
        // token's refusal says why, so a client can tell that it needs a
        // fresh one (`expired`) from a bug (`bad_signature`).
        let message = match refusal.reason {
            RefusalReason::Invalid => "invalid token".to_string(),
            reason => format!("invalid token: {reason}"),
        };
        self.reply_error(RequestError {
            id,
            code: ErrorCode::Unauthenticated,
            message,
        });
    }

    /// After a fresh token: end the subscriptions it does not grant, so a
    /// narrower token narrows what the connection receives, not only what
    /// it may ask for next. The broadcaster answers with an `unsubscribed`
    /// without `id`, which reaches the client before `authenticated`.
    /// Requests read before the `auth` are answered first, so the channels
    /// asked about include what they subscribed.
    fn end_subscriptions_no_longer_granted(&mut self) {
        while !self.outstanding.is_empty() {
            self.wait_for_hub();
        }
        let id = self.connection.info.id;
        let (reply, channels) = crossbeam_channel::bounded(1);
        if self
            .commands
            .send(HubCommand::Channels { id, reply })
            .is_err()
        {
            return; // the broadcaster has stopped: the hub is going away
        }
        let Ok(channels) = channels.recv() else {
            return;
        };
        let info = &self.connection.info;
        let refused: Vec<String> = channels
            .into_iter()
            .filter(|channel| !self.authorizer.may_subscribe(info, channel))
            .collect();
        if refused.is_empty() {
            return;
        }
        debug!(
            "connection {} from {}: the fresh token does not grant {refused:?}; unsubscribing",
            info.id, info.remote_addr
        );
        // Ahead of `authenticated`, which the caller queues next: with
        // this outstanding, that goes into the same batch behind it.
        let request = ClientRequest::Unsubscribe {
            request_id: None,
            channels: refused,
        };
        self.outstanding.push(request, 0);
    }

    /// Hand the requests read since the last batch to the broadcaster, if
    /// it is not serving one of ours already.
    fn hand_on_next(&mut self) {
        if self.outstanding.in_flight.is_some() || self.outstanding.next.is_empty() {
            return;
        }
        let requests = std::mem::take(&mut self.outstanding.next);
        let bytes = std::mem::take(&mut self.outstanding.next_bytes);
        let count = requests.len();
        let (done, answered) = crossbeam_channel::bounded(1);
        let batch = HubCommand::ClientBatch {
            id: self.connection.info.id,
            requests,
            done,
        };
        match self.commands.send(batch) {
            Ok(()) => {
                self.outstanding.in_flight = Some(InFlight {
                    answered,
                    requests: count,
                    bytes,
                })
            }
            // The broadcaster has stopped (the hub is shutting down): what
            // needs it goes unanswered, what we answered ourselves still goes.
            Err(SendError(HubCommand::ClientBatch { requests, .. })) => {
                for request in requests {
                    if let ClientRequest::Answered(frame) = request {
                        self.queue_or_kick(frame);
                    }
                }
            }
            Err(_) => {}
        }
    }

    /// Wait until the broadcaster has queued every reply of the batch it is
    /// serving (microseconds: it never waits on anyone; at once if it has
    /// stopped), then hand it what was read meanwhile.
    fn wait_for_hub(&mut self) {
        if let Some(batch) = self.outstanding.in_flight.take() {
            let _ = batch.answered.recv();
        }
        self.hand_on_next();
    }

    fn reply(&mut self, text: String) {
        self.answer(OutboundFrame::Text(text.into()));
    }

    /// Queue an answer the read pump made itself, after the replies to the
    /// requests before it: straight into the queue when none is
    /// outstanding, else into the next batch for the broadcaster to queue
    /// in its place.
    fn answer(&mut self, frame: OutboundFrame) {
        if self.kicked {
            return;
        }
        if self.outstanding.is_empty() {
            self.queue_or_kick(frame);
        } else {
            let bytes = frame_len(&frame);
            self.outstanding.push(ClientRequest::Answered(frame), bytes);
        }
    }

    /// Answer a `?channels=` the authorizer refused, as it would answer the
    /// same `subscribe` (which has no `id`).
    pub(crate) fn refuse_url_channel(&mut self, channel: &str) {
        self.reply_error(forbidden_subscription(None, channel));
    }

    fn reply_error(&mut self, error: RequestError) {
        self.metrics.count_error_reply(error.code);
        self.connection.stats.record_error(&error.message);
        self.reply(protocol::encode_request_error(&error));
    }

    /// A client that sends faster than it reads fills its own queue with
    /// replies and Pongs; it is a slow consumer like any other.
    fn queue_or_kick(&mut self, frame: OutboundFrame) {
        if self.kicked {
            return;
        }
        if self.queue.push(frame).is_err() {
            if self.kick(CloseReason::SlowConsumer) {
                let info = &self.connection.info;
                warn!(
                    "connection {} from {}: outbound queue full of replies, closing with 4008",
                    info.id,
                    info.describe_peer()
                );
                self.metrics.slow_consumer_disconnects.inc();
            }
            return;
        }
        self.queue.wake();
    }
}

/// Map a tungstenite read error to why the connection ends. Protocol
/// violations get the close code RFC 6455 and the contract name; the rest
/// are a broken or finished socket.
pub(crate) fn done_for(error: WsError) -> Done {
    match error {
        WsError::Capacity(_) => Done::Violation(CloseCode::Size, "message too big"),
        WsError::Utf8(_) => Done::Violation(CloseCode::Invalid, "invalid UTF-8"),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            Done::Failed("connection reset without a close handshake".into())
        }
        WsError::Protocol(e) => Done::Violation(CloseCode::Protocol, protocol_text(&e)),
        WsError::AttackAttempt => Done::Violation(CloseCode::Protocol, "attack attempt"),
        WsError::ConnectionClosed | WsError::AlreadyClosed => Done::Failed("closed".into()),
        WsError::Io(e) => Done::Failed(format!("socket error: {e}")),
        other => Done::Failed(format!("read error: {other}")),
    }
}

fn protocol_text(error: &ProtocolError) -> &'static str {
    match error {
        ProtocolError::UnmaskedFrameFromClient => "unmasked frame",
        ProtocolError::NonZeroReservedBits => "reserved bits set",
        ProtocolError::FragmentedControlFrame => "fragmented control frame",
        ProtocolError::ControlFrameTooBig => "control frame too big",
        ProtocolError::UnknownControlFrameType(_) | ProtocolError::UnknownDataFrameType(_) => {
            "unknown opcode"
        }
        ProtocolError::UnexpectedContinueFrame | ProtocolError::ExpectedFragment(_) => {
            "bad fragmentation"
        }
        ProtocolError::InvalidCloseSequence => "invalid close frame",
        _ => "protocol error",
    }
}

/// How many requests one connection may have read and not yet answered:
/// `--max-inflight`, but never more than half of `--queue-size`, so that a
/// batch's replies (and, for a publisher following its own channel, its
/// events) always fit in the queue of a client that reads them.
fn inflight_limit(max_inflight: usize, queue_size: usize) -> usize {
    max_inflight.min(queue_size / 2).max(1)
}

/// The size of a frame, for [`MAX_INFLIGHT_BYTES`].
fn frame_len(frame: &OutboundFrame) -> usize {
    match frame {
        OutboundFrame::Text(text) => text.len(),
        OutboundFrame::Binary(data) | OutboundFrame::Pong(data) => data.len(),
        OutboundFrame::Event(event) => event.frame.len(),
        OutboundFrame::Close(_) => 0,
    }
}

/// The `forbidden` reply to a subscription the authorizer refused.
fn forbidden_subscription(id: Option<RequestId>, channel: &str) -> RequestError {
    RequestError {
        id,
        code: ErrorCode::Forbidden,
        message: format!("not allowed to subscribe to `{channel}`"),
    }
}
