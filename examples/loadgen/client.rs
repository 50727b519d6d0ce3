//! One WebSocket client of the hub, advanced without ever blocking.
//!
//! A `ClientConn` is a small state machine: not started → TCP connecting →
//! WebSocket handshake → open → closed. The fleet's readiness loop calls
//! `on_ready` whenever mio says its socket can make progress; each call
//! goes as far as it can and returns when the socket would block. Only the
//! fleet's thread touches a `ClientConn`.
//!
//! Because mio's readiness is edge-triggered, every step reads until the
//! socket says `WouldBlock`: a step that stopped early would never be woken
//! again for the bytes it left behind.

use std::io;
use std::time::Instant;

use mio::net::TcpStream;
use serde::Deserialize;
use tungstenite::client::client_with_config;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error as WsError, Message, WebSocket};

use crate::publisher::{unix_micros, EventFactory, WsPublishState};
use crate::stats::{Arrival, DeliveryTracker, RunStats};

/// What a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Subscribed to the bench channel through `?channels=` in its URL;
    /// usable once `subscribed` arrives.
    Subscriber,
    /// Subscribed to nothing; sends `publish` requests; usable at `welcome`.
    Publisher,
}

/// Where the connection is in its life.
enum ConnState {
    NotStarted,
    /// `connect()` was called; the socket turns writable when the TCP
    /// handshake is done (or has failed).
    TcpConnecting(TcpStream),
    /// The HTTP upgrade is under way; tungstenite resumes it on each event.
    WsHandshaking(MidHandshake<ClientHandshake<ClientStream>>),
    Open(WebSocket<ClientStream>),
    /// Gone, and already counted in `RunStats`. Dropping the socket closed it.
    Closed,
}

/// One client connection and what it has seen.
pub struct ClientConn {
    state: ConnState,
    session: Session,
}

/// Everything about a connection except its socket, so the socket and this
/// can be borrowed separately.
struct Session {
    role: Role,
    connect_started: Option<Instant>,
    ready_at: Option<Instant>,
    saw_first_frame: bool,
    tracker: DeliveryTracker,
    /// Distinct events of ours received: what `--max-lag` compares.
    received: u64,
    publishing: Option<WsPublishState>,
    /// Set once we sent our Close: the end that follows is ours, not a drop.
    closing: bool,
}

/// What the fleet passes to every step: where to connect and how.
pub struct ConnContext<'a> {
    pub url: &'a str,
    pub config: WebSocketConfig,
}

/// The frames this tool reads. Fields it does not need are skipped by serde
/// without being allocated, which matters at a million frames a second.
#[derive(Deserialize)]
struct IncomingFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    seq: Option<u64>,
    data: Option<EventData>,
    delivered: Option<u64>,
    #[serde(borrow)]
    code: Option<std::borrow::Cow<'a, str>>,
    id: Option<serde::de::IgnoredAny>,
}

/// The part of an event's `data` that publishers here write.
#[derive(Deserialize)]
struct EventData {
    n: Option<u64>,
    t: Option<u64>,
}

impl ClientConn {
    pub fn new(role: Role) -> Self {
        ClientConn {
            state: ConnState::NotStarted,
            session: Session {
                role,
                connect_started: None,
                ready_at: None,
                saw_first_frame: false,
                tracker: DeliveryTracker::default(),
                received: 0,
                publishing: None,
                closing: false,
            },
        }
    }

    pub fn role(&self) -> Role {
        self.session.role
    }

    /// Ready to use: subscribed (subscriber) or welcomed (publisher), and not closed.
    pub fn is_ready(&self) -> bool {
        self.session.ready_at.is_some() && matches!(self.state, ConnState::Open(_))
    }

    /// Started, not yet ready, not yet failed.
    pub fn is_pending(&self) -> bool {
        self.session.ready_at.is_none()
            && !matches!(self.state, ConnState::NotStarted | ConnState::Closed)
    }

    /// Distinct events of ours this client has received.
    pub fn received(&self) -> u64 {
        self.session.received
    }

    /// Connect time in microseconds, once ready.
    pub fn connect_time_us(&self) -> Option<u32> {
        let started = self.session.connect_started?;
        let ready = self.session.ready_at?;
        Some(
            ready
                .duration_since(started)
                .as_micros()
                .min(u32::MAX as u128) as u32,
        )
    }

    /// Calls `connect()` and hands the socket to `register` (which adds it
    /// to the poll). A failure here is counted and the connection is closed.
    pub fn start(
        &mut self,
        addr: std::net::SocketAddr,
        stats: &mut RunStats,
        register: impl FnOnce(&mut TcpStream) -> io::Result<()>,
    ) {
        self.session.connect_started = Some(Instant::now());
        let connected = TcpStream::connect(addr).and_then(|mut stream| {
            register(&mut stream)?;
            Ok(stream)
        });
        self.state = match connected {
            Ok(stream) => ConnState::TcpConnecting(stream),
            Err(error) => self
                .session
                .fail(stats, &format!("connect: {}", error.kind())),
        };
    }

    /// Gives up on a connection that was not made in time.
    pub fn abandon(&mut self, stats: &mut RunStats) {
        if self.is_pending() || matches!(self.state, ConnState::NotStarted) {
            self.state = self
                .session
                .fail(stats, "not made before --connect-timeout-s");
        }
    }

    /// Makes as much progress as the socket allows. Called on every mio event
    /// for this connection.
    pub fn on_ready(&mut self, context: &ConnContext, stats: &mut RunStats) {
        let state = std::mem::replace(&mut self.state, ConnState::Closed);
        self.state = match state {
            ConnState::TcpConnecting(stream) => {
                self.session.finish_tcp_connect(stream, context, stats)
            }
            ConnState::WsHandshaking(handshake) => {
                self.session.resume_handshake(handshake.handshake(), stats)
            }
            other => other,
        };
        // A handshake that just finished may have read the first frames
        // along with the HTTP response, so read now, not at the next event.
        if let ConnState::Open(socket) = &mut self.state {
            if let Err(reason) = self.session.read_available(socket, stats) {
                self.state = self.session.fail(stats, &reason);
            }
        }
    }

    /// Starts the closing handshake (Close 1000), so the hub sees a client
    /// leave normally rather than a reset. Returns false if already closed.
    pub fn start_close(&mut self, stats: &mut RunStats) -> bool {
        let ConnState::Open(socket) = &mut self.state else {
            self.state = ConnState::Closed;
            return false;
        };
        self.session.closing = true;
        let sent = match socket.close(None) {
            Ok(()) => flush(socket),
            Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(error) => Err(describe_error(&error)),
        };
        if let Err(reason) = sent {
            self.state = self.session.fail(stats, &reason);
            return false;
        }
        true
    }

    /// True once the connection has ended, however it ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, ConnState::Closed | ConnState::NotStarted)
    }

    /// Makes this connection a publisher for the coming phase.
    pub fn start_publishing(&mut self, state: WsPublishState) {
        self.session.publishing = Some(state);
    }

    /// Sends the `publish` requests that are due and fit in the window.
    pub fn send_due_publishes(
        &mut self,
        events: &EventFactory,
        now: Instant,
        stats: &mut RunStats,
    ) {
        let (ConnState::Open(socket), Some(publishing)) =
            (&mut self.state, &mut self.session.publishing)
        else {
            return;
        };
        if now >= publishing.hard_stop {
            return;
        }
        let mut failure = None;
        while publishing.may_send(now) {
            let written = socket.write(Message::text(events.ws_publish_frame()));
            // On WouldBlock tungstenite keeps the frame in its buffer and
            // sends it on a later flush, so it counts as sent either way.
            let stop = match written {
                Ok(()) => false,
                Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => true,
                Err(error) => {
                    failure = Some(describe_error(&error));
                    break;
                }
            };
            publishing.take_one();
            if stop {
                break;
            }
        }
        if failure.is_none() {
            failure = flush(socket).err();
        }
        if let Some(reason) = failure {
            self.state = self.session.fail(stats, &reason);
        }
    }

    /// True if this publisher has finished its schedule (or cannot go on).
    pub fn publishing_done(&self, now: Instant) -> bool {
        match (&self.state, &self.session.publishing) {
            (ConnState::Open(_), Some(publishing)) => publishing.done(now),
            _ => true,
        }
    }

    /// When this publisher next has an event due, if it is paced.
    pub fn next_publish_due(&self) -> Option<Instant> {
        let publishing = self.session.publishing.as_ref()?;
        if publishing.in_flight >= publishing.window {
            return None;
        }
        publishing.pacer.due_at(1)
    }

    /// Ends the publishing phase and returns its tally.
    pub fn finish_publishing(&mut self) -> Option<crate::publisher::PublishTally> {
        self.session.publishing.take().map(WsPublishState::finish)
    }
}

impl Session {
    /// Counts `reason` as a connect failure or a disconnect, and returns the
    /// state to move to.
    fn fail(&mut self, stats: &mut RunStats, reason: &str) -> ConnState {
        if self.closing {
            // We asked for this end; however it went, it is not a drop.
        } else if self.ready_at.is_some() {
            RunStats::count(&mut stats.disconnects, reason);
        } else {
            RunStats::count(&mut stats.connect_failures, reason);
        }
        ConnState::Closed
    }

    /// The socket turned writable: find out whether TCP connected, and if so
    /// send the upgrade request.
    fn finish_tcp_connect(
        &mut self,
        stream: TcpStream,
        context: &ConnContext,
        stats: &mut RunStats,
    ) -> ConnState {
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(error)) | Err(error) => {
                return self.fail(stats, &format!("connect: {}", error.kind()))
            }
        }
        match stream.peer_addr() {
            Ok(_) => {}
            // Woken before the handshake finished; wait for the next event.
            Err(error) if error.kind() == io::ErrorKind::NotConnected => {
                return ConnState::TcpConnecting(stream)
            }
            Err(error) => return self.fail(stats, &format!("connect: {}", error.kind())),
        }
        // Frames are small and latency is measured: no Nagle delay.
        let _ = stream.set_nodelay(true);
        self.resume_handshake(
            client_with_config(context.url, ClientStream::new(stream), Some(context.config)),
            stats,
        )
    }

    /// Moves on from one step of tungstenite's handshake.
    fn resume_handshake<R>(
        &mut self,
        step: Result<(WebSocket<ClientStream>, R), HandshakeError<ClientHandshake<ClientStream>>>,
        stats: &mut RunStats,
    ) -> ConnState {
        match step {
            Ok((socket, _response)) => ConnState::Open(socket),
            Err(HandshakeError::Interrupted(handshake)) => ConnState::WsHandshaking(handshake),
            Err(HandshakeError::Failure(error)) => self.fail(stats, &describe_error(&error)),
        }
    }

    /// Reads every frame the socket has, then flushes anything tungstenite
    /// queued (its automatic Pong replies). `Err` carries why it closed.
    fn read_available(
        &mut self,
        socket: &mut WebSocket<ClientStream>,
        stats: &mut RunStats,
    ) -> Result<(), String> {
        let mut close_code = None;
        loop {
            match socket.read() {
                Ok(Message::Text(text)) => self.on_text(text.as_str(), stats),
                // tungstenite queues the reply; the next read sends it and
                // then reports ConnectionClosed.
                Ok(Message::Close(frame)) => {
                    close_code = Some(frame.map_or(1005, |frame| u16::from(frame.code)))
                }
                // Pings are answered by tungstenite; nothing else is expected.
                Ok(_) => {}
                Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(WsError::ConnectionClosed) => {
                    return Err(
                        close_code.map_or("closed".to_string(), |code| format!("close {code}"))
                    )
                }
                Err(error) => {
                    return Err(match close_code {
                        Some(code) => format!("close {code}"),
                        None => describe_error(&error),
                    })
                }
            }
        }
        flush(socket)
    }

    /// Handles one JSON text frame from the hub.
    fn on_text(&mut self, text: &str, stats: &mut RunStats) {
        let Ok(frame) = serde_json::from_str::<IncomingFrame>(text) else {
            stats.unparsed_frames += 1;
            return;
        };
        let first_frame = !self.saw_first_frame;
        self.saw_first_frame = true;
        if first_frame && frame.kind != "welcome" {
            RunStats::count(&mut stats.protocol_violations, "first frame is not welcome");
        }
        match frame.kind.as_ref() {
            "welcome" if self.role == Role::Publisher => self.mark_ready(),
            "subscribed" if self.role == Role::Subscriber => self.mark_ready(),
            "event" => self.on_event(&frame, stats),
            "published" => {
                if let Some(publishing) = &mut self.publishing {
                    publishing.on_published(frame.delivered.unwrap_or(0));
                }
            }
            "error" => {
                let code = frame.code.as_deref().unwrap_or("?");
                RunStats::count(&mut stats.error_frames, code);
                // Only an error that answers a request (it has our `id`)
                // frees a window slot; broadcast errors carry a `seq`.
                if let (Some(publishing), Some(_)) = (&mut self.publishing, &frame.id) {
                    publishing.on_error(code);
                }
            }
            _ => {}
        }
    }

    fn mark_ready(&mut self) {
        if self.ready_at.is_none() {
            self.ready_at = Some(Instant::now());
        }
    }

    /// Checks an event against what this subscriber already had and records
    /// its latency if it is new.
    fn on_event(&mut self, frame: &IncomingFrame, stats: &mut RunStats) {
        if self.role == Role::Subscriber && self.ready_at.is_none() {
            RunStats::count(&mut stats.protocol_violations, "event before subscribed");
        }
        let (
            Some(seq),
            Some(EventData {
                n: Some(number),
                t: Some(sent_at_us),
            }),
        ) = (frame.seq, &frame.data)
        else {
            // Not one of ours (another publisher on the channel): ignore.
            return;
        };
        match self.tracker.record(seq, *number) {
            None => {}
            Some(Arrival::Duplicate) => stats.duplicates += 1,
            Some(arrival) => {
                if arrival == Arrival::OutOfOrder {
                    stats.out_of_order += 1;
                }
                stats.delivered += 1;
                self.received += 1;
                stats
                    .latency
                    .record(unix_micros().saturating_sub(*sent_at_us));
                stats.last_delivery_at = Some(Instant::now());
            }
        }
    }
}

/// The client's socket as tungstenite sees it: a mio `TcpStream` that
/// skips the read that would only say `WouldBlock`.
///
/// Reading "until it would block" costs a second `recv` per wake-up, and in
/// a fan-out run each wake-up usually brings one event, so that empty read
/// would be half of this tool's system calls. A TCP read that returns
/// fewer bytes than asked has emptied the socket's receive queue, so the
/// next read can answer `WouldBlock` without asking the kernel. Nothing is
/// missed: with edge-triggered epoll, every arrival after that read raises
/// a new readiness event for this socket.
pub struct ClientStream {
    stream: TcpStream,
    /// The last read was short: the receive queue was empty after it.
    drained: bool,
}

impl ClientStream {
    fn new(stream: TcpStream) -> Self {
        ClientStream {
            stream,
            drained: false,
        }
    }
}

impl io::Read for ClientStream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if std::mem::take(&mut self.drained) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let read = self.stream.read(buffer)?;
        // 0 is end of stream, which the next read must report again.
        self.drained = read > 0 && read < buffer.len();
        Ok(read)
    }
}

impl io::Write for ClientStream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.stream.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Writes out whatever tungstenite has buffered; a full socket is fine (the
/// rest goes on a later event), anything else means the connection is gone.
fn flush(socket: &mut WebSocket<ClientStream>) -> Result<(), String> {
    match socket.flush() {
        Ok(()) => Ok(()),
        Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(error) => Err(describe_error(&error)),
    }
}

/// A short, countable reason: "http 503", "io: ConnectionReset", …
fn describe_error(error: &WsError) -> String {
    match error {
        WsError::Http(response) => format!("http {}", response.status().as_u16()),
        WsError::Io(error) => format!("io: {}", error.kind()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".to_string(),
        WsError::Protocol(error) => format!("protocol: {error}"),
        other => other.to_string(),
    }
}
