//! The client thread: the only owner of the socket. It delivers events to
//! the application exactly once and in order, serves the application's
//! commands between reads, and reconnects and resumes when the connection
//! is lost.
//!
//! `start` runs on the application's thread: it makes the first
//! connection there, so that its errors are returned, then moves the
//! `Worker` and its `Session` to the `pumphub-client` thread. From then on
//! no other thread touches them; the application reaches them only through
//! the items and commands channels.
//!
//! The one invariant: `cursor` is the newest seq the application has been
//! given (or the point it asked to start from). Every resume asks for
//! `since = cursor`, and every frame with a seq at or below it is a
//! duplicate and is dropped. A new epoch resets it to 0, after telling the
//! application with a gap.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use serde_json::{json, Value};

use super::error::ClientError;
use super::options::{Backoff, ClientBuilder};
use super::session::{Frame, Read, Session};
use super::{Client, ClientEvent, Disconnect, GapReason};
use crate::protocol::{Published, Seq};

/// What the application receives: an item, or the error that ended the
/// client (always the last item).
pub(crate) type Item = Result<ClientEvent, ClientError>;

/// The reply channel of one `publish`, held by the waiting application
/// thread.
pub(crate) type PublishReply = Sender<Result<Published, ClientError>>;

/// What the application asks of the client thread.
pub(crate) enum Command {
    /// Send a `publish`; with a reply channel, match its `published`.
    Publish {
        channel: String,
        data: Value,
        reply: Option<PublishReply>,
    },
    /// Close the connection and end the thread.
    Close,
}

/// The application closed or dropped the client; the thread ends.
struct Stopped;

/// Why serving a connection ended.
enum End {
    Lost(Disconnect),
    Stop,
}

struct Worker {
    options: ClientBuilder,
    /// To the application (`Client::recv`). Bounded: a full channel blocks
    /// this thread, which stops reading, which makes the hub see a slow
    /// consumer. A send fails once the application dropped the client.
    items: Sender<Item>,
    /// From the application: publishes and the close request. Disconnected
    /// means the `Client` is gone.
    commands: Receiver<Command>,
    backoff: Backoff,
    /// The epoch of the hub instance we last subscribed to (or the one a
    /// `resume` point belongs to).
    epoch: Option<String>,
    /// True once a connection was made: every later one is a resume.
    connected_before: bool,
    /// The newest seq delivered (see the module docs).
    cursor: u64,
    next_id: u64,
    /// Publishes waiting for `published`, by request id. They belong to one
    /// connection: when it ends they fail with `Disconnected`.
    pending: HashMap<String, PublishReply>,
}

/// Make the first connection on the caller's thread (so its errors are
/// returned), then hand it to a new client thread.
pub(crate) fn start(options: ClientBuilder) -> Result<Client, ClientError> {
    let (items_tx, items_rx) = crossbeam_channel::bounded(options.buffer);
    let (commands_tx, commands_rx) = crossbeam_channel::unbounded();
    let publish_timeout = options.publish_timeout;
    let backoff = Backoff::new(options.initial_backoff, options.max_backoff);
    let (epoch, cursor) = (options.since_epoch.clone(), options.since.unwrap_or(0));
    let mut worker = Worker {
        options,
        items: items_tx,
        commands: commands_rx,
        backoff,
        epoch,
        cursor,
        connected_before: false,
        next_id: 1,
        pending: HashMap::new(),
    };
    // Items are collected, not sent, here: a replay longer than the buffer
    // would block this thread with nobody yet reading.
    let (session, first) = worker.establish()?;
    let thread = std::thread::Builder::new()
        .name("pumphub-client".into())
        .spawn(move || worker.run(session, first))
        .map_err(ClientError::Spawn)?;
    Ok(Client {
        items: items_rx,
        commands: commands_tx,
        thread: Some(thread),
        publish_timeout,
    })
}

impl Worker {
    fn run(mut self, mut session: Session, first: Vec<ClientEvent>) {
        if self.emit_all(first).is_err() {
            return;
        }
        loop {
            let why = match self.serve(&mut session) {
                End::Stop => return session.close(),
                End::Lost(why) => why,
            };
            let hint = match &why {
                Disconnect::Shutdown { reconnect_ms, .. } => {
                    // Answer the Close 1001 that follows, politely.
                    session.close();
                    Some(Duration::from_millis(*reconnect_ms))
                }
                _ => None,
            };
            for (_, reply) in self.pending.drain() {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
            log::debug!("pumphub client: disconnected ({why}); reconnecting");
            if self.emit(Ok(ClientEvent::Disconnected(why))).is_err() {
                return;
            }
            let Some((next, items)) = self.reconnect(hint) else {
                return;
            };
            session = next;
            if self.emit_all(items).is_err() {
                return;
            }
        }
    }

    /// Connect, authenticate, subscribe with `since`; collect what the
    /// application must see first: `Connected`, any gap, the replay.
    fn establish(&mut self) -> Result<(Session, Vec<ClientEvent>), ClientError> {
        let deadline = Instant::now() + self.options.connect_timeout;
        let (mut session, welcome) = Session::open(&self.options, deadline)?;
        let mut out = vec![ClientEvent::Connected {
            connection_id: welcome.connection_id,
            epoch: welcome.epoch.clone(),
            resumed: self.connected_before,
        }];
        // Where this connection resumes from.
        let since = match &self.epoch {
            None => self.options.since.unwrap_or(welcome.seq),
            Some(epoch) if *epoch == welcome.epoch => self.cursor,
            Some(epoch) => {
                // A new hub instance: its seqs start again at 1, so our
                // cursor means nothing there. Everything it still holds is
                // new to us.
                out.push(ClientEvent::Gap {
                    after_seq: Seq(self.cursor),
                    reason: GapReason::NewEpoch {
                        previous: epoch.clone(),
                        current: welcome.epoch.clone(),
                    },
                });
                0
            }
        };
        // Committed to `self` only once subscribed, so a failed attempt
        // leaves the resume point as it was.
        let mut cursor = since;
        if !self.options.channels.is_empty() {
            session.send(&json!({
                "type": "subscribe",
                "id": "subscribe",
                "channels": self.options.channels,
                "since": since,
            }))?;
            let mut replay = Vec::new();
            loop {
                match session.next_frame(deadline, "subscribed")? {
                    Frame::Subscribed { complete } => {
                        if !complete {
                            out.push(ClientEvent::Gap {
                                after_seq: Seq(since),
                                reason: GapReason::HistoryTooShort,
                            });
                        }
                        break;
                    }
                    Frame::Sequenced { seq, item } => replay.push((seq, item)),
                    Frame::RequestError { code, message, .. } => {
                        return Err(ClientError::Refused { code, message })
                    }
                    Frame::Shutdown { .. } => {
                        return Err(ClientError::Protocol("the hub is shutting down".into()))
                    }
                    Frame::Malformed(why) => log::warn!("pumphub client: skipped a frame: {why}"),
                    _ => {}
                }
            }
            // The gap, if any, goes before the replay: the missing events
            // are older than every replayed one.
            for (seq, item) in replay {
                if seq > cursor {
                    cursor = seq;
                    out.push(item);
                }
            }
        }
        self.epoch = Some(welcome.epoch);
        self.connected_before = true;
        self.cursor = cursor;
        Ok((session, out))
    }

    /// Wait out the backoff and try again, until connected, told to stop,
    /// or out of attempts. `hint` is the hub's `reconnect_ms`.
    fn reconnect(&mut self, hint: Option<Duration>) -> Option<(Session, Vec<ClientEvent>)> {
        let mut attempt = 0u32;
        loop {
            let mut delay = self.backoff.delay(attempt);
            if let (0, Some(hint)) = (attempt, hint) {
                delay = delay.max(hint.min(self.options.max_backoff));
            }
            self.wait(delay).ok()?;
            attempt += 1;
            match self.establish() {
                Ok(connected) => return Some(connected),
                Err(error) if error.is_permanent() => {
                    let _ = self.emit(Err(error));
                    return None;
                }
                Err(error) => {
                    log::debug!("pumphub client: reconnect attempt {attempt} failed: {error}");
                    if self.options.max_attempts.is_some_and(|max| attempt >= max) {
                        let _ = self.emit(Err(ClientError::GaveUp {
                            attempts: attempt,
                            last: Box::new(error),
                        }));
                        return None;
                    }
                }
            }
        }
    }

    /// Sleep for `delay` while answering commands: publishes fail at once
    /// (there is no connection to send them on), a close ends the wait.
    fn wait(&mut self, delay: Duration) -> Result<(), Stopped> {
        let deadline = Instant::now() + delay;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.commands.recv_timeout(left) {
                Ok(Command::Publish { reply, .. }) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(ClientError::NotConnected));
                    }
                }
                Ok(Command::Close) | Err(RecvTimeoutError::Disconnected) => return Err(Stopped),
                Err(RecvTimeoutError::Timeout) => return Ok(()),
            }
        }
    }

    /// Serve one connection until it ends or the application stops us.
    fn serve(&mut self, session: &mut Session) -> End {
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Publish {
                        channel,
                        data,
                        reply,
                    }) => {
                        let mut request =
                            json!({"type": "publish", "channel": channel, "data": data});
                        if let Some(reply) = reply {
                            let id = format!("p{}", self.next_id);
                            self.next_id += 1;
                            request["id"] = json!(id);
                            self.pending.insert(id, reply);
                        }
                        if let Err(e) = session.send(&request) {
                            return End::Lost(Disconnect::Dropped {
                                error: e.to_string(),
                            });
                        }
                    }
                    Ok(Command::Close) | Err(TryRecvError::Disconnected) => return End::Stop,
                    Err(TryRecvError::Empty) => break,
                }
            }
            let frame = match session.read() {
                Read::Idle => continue,
                Read::Ended(why) => return End::Lost(why),
                Read::Frame(frame) => frame,
            };
            let delivered = match frame {
                Frame::Sequenced { seq, item } => self.deliver(seq, item),
                Frame::Published {
                    id: Some(id),
                    seq,
                    delivered,
                } => {
                    if let Some(reply) = self.pending.remove(&id) {
                        let _ = reply.send(Ok(Published {
                            seq: Seq(seq),
                            delivered,
                        }));
                    }
                    Ok(())
                }
                Frame::RequestError { id, code, message } => {
                    match id.and_then(|id| self.pending.remove(&id)) {
                        Some(reply) => {
                            let _ = reply.send(Err(ClientError::Refused { code, message }));
                        }
                        // A fire-and-forget publish was refused: say so
                        // somewhere, since nobody waits for the answer.
                        None => log::warn!(
                            "pumphub client: the hub refused a request: {code}: {message}"
                        ),
                    }
                    Ok(())
                }
                Frame::Shutdown {
                    reason,
                    reconnect_ms,
                } => {
                    return End::Lost(Disconnect::Shutdown {
                        reason,
                        reconnect_ms,
                    })
                }
                Frame::Malformed(why) => {
                    log::warn!("pumphub client: skipped a frame: {why}");
                    Ok(())
                }
                _ => Ok(()),
            };
            if delivered.is_err() {
                return End::Stop;
            }
        }
    }

    /// Hand `item` (with `seq`) to the application unless it has it already.
    fn deliver(&mut self, seq: u64, item: ClientEvent) -> Result<(), Stopped> {
        if seq <= self.cursor {
            return Ok(()); // a duplicate from a resume overlapping live delivery
        }
        self.cursor = seq;
        self.emit(Ok(item))
    }

    fn emit(&self, item: Item) -> Result<(), Stopped> {
        self.items.send(item).map_err(|_| Stopped)
    }

    fn emit_all(&self, items: Vec<ClientEvent>) -> Result<(), Stopped> {
        items.into_iter().try_for_each(|item| self.emit(Ok(item)))
    }
}
