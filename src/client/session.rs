//! One WebSocket connection to the hub: connect, upgrade, read `welcome`,
//! authenticate, and then frames in and out. It reads each frame's seq but
//! knows nothing about reconnecting or which seqs were delivered;
//! `worker.rs` does that.
//!
//! A `Session` is used by one thread at a time: the first is opened on the
//! application's thread inside `connect`, then every session lives on the
//! client thread. Its socket has a short read
//! timeout so that the thread can serve the application's commands between
//! reads; every timeout also flushes, so the Pongs tungstenite queues for
//! the hub's Pings never wait (tests/it/client.rs checks an idle client
//! outlives many heartbeats).

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{HandshakeError, Message, WebSocket};

use super::error::ClientError;
use super::options::{ClientBuilder, TokenVia};
use super::{ClientEvent, Disconnect};
use crate::protocol::{Event, Seq};

/// How long one read waits before the thread looks at its commands again.
/// Bounds the latency of `publish` and `close`, at the cost of 50 wakeups
/// a second on an idle connection.
const POLL: Duration = Duration::from_millis(20);

/// What `welcome` told us.
#[derive(Debug)]
pub(crate) struct Welcome {
    pub connection_id: String,
    pub epoch: String,
    pub seq: u64,
    pub heartbeat_ms: u64,
}

/// A frame from the hub, reduced to what the client acts on.
#[derive(Debug)]
pub(crate) enum Frame {
    /// An `event`, or an `error` with a `seq` (broadcast to everyone by the
    /// hub's owner): both take a place in the sequence and go to the
    /// application as they are, built here once for every caller.
    Sequenced {
        seq: u64,
        item: ClientEvent,
    },
    /// An `error` replying to one of our requests.
    RequestError {
        id: Option<String>,
        code: String,
        message: String,
    },
    Published {
        id: Option<String>,
        seq: u64,
        delivered: usize,
    },
    Subscribed {
        complete: bool,
    },
    Authenticated,
    Shutdown {
        reason: String,
        reconnect_ms: u64,
    },
    Welcome(Welcome),
    /// `pong`, `unsubscribed`, or a type this client does not know.
    Other,
    /// Not the JSON the contract promises; logged and skipped.
    Malformed(String),
}

/// The outcome of one read.
pub(crate) enum Read {
    Frame(Frame),
    /// Nothing arrived within [`POLL`].
    Idle,
    /// The connection is over.
    Ended(Disconnect),
}

pub(crate) struct Session {
    socket: WebSocket<TcpStream>,
    /// Frames that arrived while `open` waited for `authenticated` and
    /// that the worker must still see; `read` hands them out first.
    held: VecDeque<Frame>,
    last_heard: Instant,
    /// Silence after which the hub counts as gone: two heartbeats and
    /// five seconds, so one lost Ping is not enough. `None` when the hub
    /// sends no heartbeat.
    silence_limit: Option<Duration>,
}

impl Session {
    /// Connect and upgrade, read `welcome`, and send the token if it goes
    /// in an `auth` message; all before `deadline`. Returns the session
    /// and what `welcome` said, for the worker to keep.
    pub(crate) fn open(
        options: &ClientBuilder,
        deadline: Instant,
    ) -> Result<(Session, Welcome), ClientError> {
        let token = options.token_for_attempt()?;
        let request = options.request_with(token.as_deref())?;
        let host = request.uri().host().unwrap_or("").trim_matches(['[', ']']);
        let port = request.uri().port_u16().unwrap_or(80);
        let tcp = connect_tcp(host, port, options.connect_timeout)?;
        tcp.set_nodelay(true).map_err(ClientError::Connect)?;
        tcp.set_read_timeout(Some(options.connect_timeout))
            .map_err(ClientError::Connect)?;
        // Without it, a hub that stops reading would block our writes, and
        // with them the application's `close`, for ever.
        tcp.set_write_timeout(Some(options.connect_timeout))
            .map_err(ClientError::Connect)?;
        let (socket, _response) = tungstenite::client(request, tcp).map_err(|e| match e {
            HandshakeError::Failure(tungstenite::Error::Http(response)) => ClientError::Rejected {
                status: response.status().as_u16(),
            },
            HandshakeError::Failure(e) => e.into(),
            HandshakeError::Interrupted(_) => {
                ClientError::Protocol("the upgrade did not finish in time".into())
            }
        })?;
        socket
            .get_ref()
            .set_read_timeout(Some(POLL))
            .map_err(ClientError::Connect)?;
        let mut session = Session {
            socket,
            held: VecDeque::new(),
            last_heard: Instant::now(),
            silence_limit: None,
        };
        let welcome = match session.next_frame(deadline, "welcome")? {
            Frame::Welcome(welcome) => welcome,
            other => {
                return Err(ClientError::Protocol(format!(
                    "the first frame was not `welcome`: {other:?}"
                )))
            }
        };
        session.silence_limit = (welcome.heartbeat_ms > 0)
            .then(|| Duration::from_millis(welcome.heartbeat_ms) * 2 + Duration::from_secs(5));
        if let (Some(token), TokenVia::AuthMessage) = (&token, options.token_via) {
            session.send(&json!({"type": "auth", "id": "auth", "token": token}))?;
            let mut held = VecDeque::new();
            loop {
                match session.next_frame(deadline, "authenticated")? {
                    Frame::Authenticated => break,
                    Frame::RequestError { .. } => return Err(ClientError::Unauthenticated),
                    // A broadcast error may come first. It takes a seq
                    // like an event: the worker must still see it.
                    frame @ Frame::Sequenced { .. } => held.push_back(frame),
                    _ => {}
                }
            }
            session.held = held;
        }
        Ok((session, welcome))
    }

    /// Send one request.
    pub(crate) fn send(&mut self, request: &Value) -> Result<(), ClientError> {
        self.socket
            .send(Message::text(request.to_string()))
            .map_err(ClientError::from)
    }

    /// Read the next frame (any held back by `open` first), or time out
    /// after [`POLL`].
    pub(crate) fn read(&mut self) -> Read {
        if let Some(frame) = self.held.pop_front() {
            return Read::Frame(frame);
        }
        match self.socket.read() {
            Ok(message) => {
                self.last_heard = Instant::now();
                match message {
                    Message::Text(text) => Read::Frame(parse_frame(&text)),
                    Message::Close(frame) => {
                        // tungstenite queued our answering Close; send it.
                        let _ = self.socket.flush();
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        Read::Ended(Disconnect::ClosedByHub { code, reason })
                    }
                    _ => Read::Idle, // Ping, Pong, binary: nothing for us
                }
            }
            Err(e) if is_timeout(&e) => {
                // tungstenite answers a Ping by queueing a Pong, and sends it
                // at the start of the next read. Flushing on every timeout
                // as well keeps that from depending on tungstenite's loop,
                // and shows a dead socket within one poll.
                if let Err(e) = self.socket.flush() {
                    if !is_timeout(&e) {
                        return Read::Ended(Disconnect::Dropped {
                            error: e.to_string(),
                        });
                    }
                }
                match self.silence_limit {
                    Some(limit) if self.last_heard.elapsed() > limit => {
                        Read::Ended(Disconnect::Silent)
                    }
                    _ => Read::Idle,
                }
            }
            Err(e) => Read::Ended(Disconnect::Dropped {
                error: e.to_string(),
            }),
        }
    }

    /// The next frame before `deadline`, for the setup steps.
    pub(crate) fn next_frame(
        &mut self,
        deadline: Instant,
        what: &str,
    ) -> Result<Frame, ClientError> {
        loop {
            match self.read() {
                Read::Frame(frame) => return Ok(frame),
                Read::Idle if Instant::now() < deadline => continue,
                Read::Idle => return Err(ClientError::Protocol(format!("no `{what}` in time"))),
                Read::Ended(why) => {
                    return Err(ClientError::Protocol(format!(
                        "the connection ended while waiting for `{what}`: {why}"
                    )))
                }
            }
        }
    }

    /// Close from our side and wait briefly for the hub's answering Close,
    /// so the hub logs a clean close rather than a reset.
    pub(crate) fn close(mut self) {
        if self.socket.close(None).is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            match self.socket.read() {
                Ok(_) => continue,
                Err(e) if is_timeout(&e) => {
                    let _ = self.socket.flush();
                }
                Err(_) => return, // ConnectionClosed: done
            }
        }
    }
}

/// True for a read that only means "nothing arrived yet": the read timeout
/// passed (`WouldBlock` on Linux, `TimedOut` elsewhere) or a signal
/// interrupted it. The hub has the same rule (`error::is_quiet`); the client
/// keeps its own because it is a peer of the hub that shares only the wire
/// types, as a client in another crate would.
fn is_timeout(e: &tungstenite::Error) -> bool {
    use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), WouldBlock | TimedOut | Interrupted))
}

/// Connect to the first address of `host` that answers.
fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, ClientError> {
    let mut last = std::io::Error::new(ErrorKind::NotFound, "the host has no address");
    for addr in (host, port)
        .to_socket_addrs()
        .map_err(ClientError::Connect)?
    {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e,
        }
    }
    Err(ClientError::Connect(last))
}

/// Parse one text frame. Never panics: every field is checked.
pub(crate) fn parse_frame(text: &str) -> Frame {
    let mut value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => return Frame::Malformed(format!("not JSON: {e}")),
    };
    let str_field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    let u64_field = |name: &str| value.get(name).and_then(Value::as_u64);
    // Our ids are strings; a number or a missing id is not one of ours.
    let id = str_field("id");
    let missing = |what: &str| Frame::Malformed(format!("`{what}` missing or ill-typed in {text}"));
    match value.get("type").and_then(Value::as_str).unwrap_or("") {
        "event" => {
            // Straight into the `Arc`, not through a `String` first.
            let channel = value.get("channel").and_then(Value::as_str).map(Arc::from);
            let (seq, ts_ms) = (u64_field("seq"), u64_field("ts").unwrap_or(0));
            let (Some(seq), Some(channel), Some(data)) = (seq, channel, take(&mut value, "data"))
            else {
                return missing("seq, channel or data");
            };
            Frame::Sequenced {
                seq,
                item: ClientEvent::Event(Event {
                    seq: Seq(seq),
                    channel,
                    ts_ms,
                    data,
                }),
            }
        }
        "error" => {
            let code = str_field("code").unwrap_or_default();
            let message = str_field("message").unwrap_or_default();
            match u64_field("seq") {
                Some(seq) => Frame::Sequenced {
                    seq,
                    item: ClientEvent::HubError {
                        seq: Seq(seq),
                        code,
                        message,
                        context: take(&mut value, "context"),
                    },
                },
                None => Frame::RequestError { id, code, message },
            }
        }
        "published" => match u64_field("seq") {
            Some(seq) => Frame::Published {
                id,
                seq,
                delivered: u64_field("delivered").unwrap_or(0) as usize,
            },
            None => missing("seq"),
        },
        "subscribed" => Frame::Subscribed {
            // Absent would break the contract; assume the worse.
            complete: value
                .get("complete")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        "authenticated" => Frame::Authenticated,
        "shutdown" => Frame::Shutdown {
            reason: str_field("reason").unwrap_or_default(),
            reconnect_ms: u64_field("reconnect_ms").unwrap_or(0),
        },
        "welcome" => match (str_field("connection_id"), str_field("epoch")) {
            (Some(connection_id), Some(epoch)) => Frame::Welcome(Welcome {
                connection_id,
                epoch,
                seq: u64_field("seq").unwrap_or(0),
                heartbeat_ms: u64_field("heartbeat_ms").unwrap_or(0),
            }),
            _ => missing("connection_id or epoch"),
        },
        _ => Frame::Other,
    }
}

/// Move field `name` out of a parsed frame. The payload is moved, not
/// copied: it can be large, and this runs for every event.
fn take(frame: &mut Value, name: &str) -> Option<Value> {
    frame.as_object_mut()?.remove(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_without_trusting_the_hub() {
        let event = parse_frame(r#"{"type":"event","seq":3,"channel":"a","ts":9,"data":[1]}"#);
        assert!(matches!(
            event,
            Frame::Sequenced { seq: 3, item: ClientEvent::Event(e) } if e.seq == Seq(3) && &*e.channel == "a" && e.data == json!([1])
        ));
        assert!(matches!(
            parse_frame(r#"{"type":"event","seq":"3","channel":"a","data":1}"#),
            Frame::Malformed(_)
        ));
        assert!(matches!(parse_frame("[1"), Frame::Malformed(_)));
        assert!(matches!(
            parse_frame(r#"{"type":"error","code":"x","message":"m","seq":4,"ts":1}"#),
            Frame::Sequenced {
                seq: 4,
                item: ClientEvent::HubError { seq: Seq(4), .. }
            }
        ));
        assert!(matches!(
            parse_frame(r#"{"type":"error","code":"forbidden","message":"m","id":"p1"}"#),
            Frame::RequestError { id: Some(_), .. }
        ));
        assert!(matches!(
            parse_frame(r#"{"type":"subscribed","channels":["a"],"replayed":0}"#),
            Frame::Subscribed { complete: false }
        ));
        assert!(matches!(
            parse_frame(r#"{"type":"pong","ts":1}"#),
            Frame::Other
        ));
    }
}
