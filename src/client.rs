//! `pumphub::client`: a synchronous client for a pumphub hub that
//! reconnects, resumes, and hands the application every event exactly once
//! and in order.
//!
//! ```no_run
//! use pumphub::client::{Client, ClientEvent};
//!
//! let client = Client::builder("ws://127.0.0.1:9001/ws")
//!     .channels(&["prices"])
//!     .connect()?;
//! for item in &client {
//!     match item? {
//!         ClientEvent::Event(event) => println!("{} {}", event.seq, event.data),
//!         ClientEvent::Gap { after_seq, reason } => eprintln!("missed events after {after_seq}: {reason}"),
//!         _ => {} // Connected, Disconnected, HubError
//!     }
//! }
//! # Ok::<(), pumphub::client::ClientError>(())
//! ```
//!
//! # Threads and channels
//!
//! [`ClientBuilder::connect`] makes the first connection on the calling
//! thread, so a wrong URL, a refused token or an absent hub is an error
//! right there. It then starts one thread, `pumphub-client`, the only owner
//! of the socket:
//!
//! ```text
//!  application thread(s)                              pumphub-client thread
//!  ─────────────────────                              ─────────────────────
//!  recv / iter / receiver()  ◄── items (bounded) ───  reads frames; drops seqs it
//!                                                     already delivered; on a drop:
//!  publish / publish_nowait  ─── commands ──────────► backoff, reconnect,
//!  close / drop                  (unbounded)          subscribe with since = last seq
//!  publish waits on          ◄── one-shot reply ────  matched by request id
//! ```
//!
//! - **items** carries `Result<ClientEvent, ClientError>`. An `Err` is the
//!   last item: the client gave up or was refused for good. The channel is
//!   bounded ([`ClientBuilder::buffer`]): an application that stops reading
//!   stops the client thread from reading the socket, so the hub closes it
//!   as a slow consumer (4008) and the client later resumes from history.
//! - **commands** carries publishes and the close request. The client thread
//!   reads the socket with a 20 ms timeout and serves commands in between;
//!   the hub's Pings are answered by tungstenite, and each timeout flushes
//!   so no Pong waits.
//! - each [`Client::publish`] creates a one-shot reply channel and waits on
//!   it, with a timeout, for `published` or an `error`.
//!
//! # Reconnect and resume
//!
//! A connection ends when the socket drops, the hub closes it (4008 for a
//! slow consumer, 1000 from `HubHandle::disconnect`), the hub sends
//! `shutdown`, or the hub is silent for two heartbeats and 5 s. The
//! application gets [`ClientEvent::Disconnected`]; the client waits
//! (exponential backoff with jitter; after a `shutdown`, at least the hub's
//! `reconnect_ms`, up to the backoff's maximum), connects again, and
//! subscribes with `since` = the last seq it delivered. The hub replays
//! what it kept; anything at or below that seq is dropped as a duplicate.
//!
//! What cannot be resumed is reported, never hidden:
//! [`GapReason::HistoryTooShort`] when the hub's `subscribed` says
//! `complete: false` (events were evicted from its history while we were
//! away), [`GapReason::NewEpoch`] when `welcome` carries a new epoch (the hub
//! restarted and numbers from 1 again; the client then takes everything
//! the new instance kept and carries on with its stream).
//!
//! The same holds across runs of the application: save the `epoch` of the
//! last `Connected` and the seq of the last event handled, and start the
//! next run with [`ClientBuilder::resume`].
//!
//! # Common mistakes
//!
//! - Publishing and reading items on the same thread without reading: when
//!   the item buffer is full the client thread waits for the application,
//!   and [`Client::publish`] times out.
//! - Publishing to a hub started without `--allow-client-publish`: the hub
//!   refuses with `forbidden` ([`ClientError::Refused`]).

mod error;
mod options;
mod session;
mod worker;

use std::fmt;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use serde_json::Value;

pub use self::error::ClientError;
pub use self::options::{ClientBuilder, TokenVia};
use self::worker::{Command, Item};
use crate::protocol::{is_valid_channel_name, Event, Published, Seq};

/// What the application receives from a [`Client`], in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A connection is up and subscribed. Comes before any gap and any
    /// replayed event of that connection.
    Connected {
        /// The hub's id for this connection (as in `GET /status`).
        connection_id: String,
        /// The hub instance's epoch.
        epoch: String,
        /// False for the first connection, true for reconnects.
        resumed: bool,
    },
    /// An event, delivered once, in seq order.
    Event(Event),
    /// Events may be missing here: after `after_seq`, before the next
    /// event delivered.
    Gap {
        /// The last seq delivered before the gap (of the old epoch, for
        /// [`GapReason::NewEpoch`]).
        after_seq: Seq,
        /// Why the client could not recover them.
        reason: GapReason,
    },
    /// An error frame the hub broadcast to every client (from its
    /// embedding application); it takes a seq like an event.
    HubError {
        /// Its place in the hub's sequence.
        seq: Seq,
        /// The error code.
        code: String,
        /// The hub's text.
        message: String,
        /// Extra JSON the hub attached, if any.
        context: Option<Value>,
    },
    /// The connection ended; the client is reconnecting.
    Disconnected(Disconnect),
}

/// Why events may be missing at a [`ClientEvent::Gap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GapReason {
    /// The hub's history no longer held every event after our last one
    /// (`subscribed` with `complete: false`). Raise `--history-size`, or
    /// reconnect faster.
    HistoryTooShort,
    /// The hub restarted: a new instance whose seqs start again at 1. What
    /// the old one published after our last event is lost to us.
    NewEpoch {
        /// The epoch we were following.
        previous: String,
        /// The new instance's epoch.
        current: String,
    },
}

impl fmt::Display for GapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GapReason::HistoryTooShort => write!(f, "the hub's history was too short"),
            GapReason::NewEpoch { previous, current } => {
                write!(f, "the hub restarted (epoch {previous} -> {current})")
            }
        }
    }
}

/// Why a connection ended, by who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disconnect {
    /// The hub sent `shutdown`: it is stopping or restarting.
    Shutdown {
        /// The hub's reason.
        reason: String,
        /// How long the hub suggests waiting before reconnecting.
        reconnect_ms: u64,
    },
    /// The hub closed the connection: 4008 slow consumer, 4001 token
    /// expired, 1000 disconnected by the hub's owner, 1001 going away, 1008
    /// policy.
    ClosedByHub {
        /// The close code (1005 if the Close frame had none).
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The connection ended without a Close frame (reset, EOF, I/O error).
    Dropped {
        /// What the socket reported.
        error: String,
    },
    /// Nothing arrived for two heartbeat intervals and 5 s.
    Silent,
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::Shutdown { reason, .. } => write!(f, "the hub shut down: {reason}"),
            Disconnect::ClosedByHub { code, reason } => {
                write!(f, "the hub closed the connection ({code} {reason})")
            }
            Disconnect::Dropped { error } => write!(f, "the connection dropped: {error}"),
            Disconnect::Silent => write!(f, "the hub fell silent"),
        }
    }
}

/// A connected client. See the module docs.
///
/// Dropping it (or [`close`](Self::close)) closes the connection and joins
/// the client thread. That takes a moment (at most about half a second),
/// or up to the connect timeout if a reconnect attempt is under way.
#[derive(Debug)]
pub struct Client {
    items: Receiver<Item>,
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    publish_timeout: Duration,
}

impl Client {
    /// Configure a client for `url` (`ws://host:port/ws`).
    pub fn builder(url: &str) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// Connect to `url` and follow `channels` with every default.
    ///
    /// # Errors
    /// As [`ClientBuilder::connect`].
    pub fn connect(url: &str, channels: &[&str]) -> Result<Client, ClientError> {
        Self::builder(url).channels(channels).connect()
    }

    /// Wait for the next item. `Err` is final: the client gave up
    /// ([`ClientError::GaveUp`]) or was refused for good; after that,
    /// [`ClientError::Closed`].
    pub fn recv(&self) -> Result<ClientEvent, ClientError> {
        self.items.recv().unwrap_or(Err(ClientError::Closed))
    }

    /// As [`recv`](Self::recv), waiting at most `timeout`; `Ok(None)` if
    /// nothing came.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<ClientEvent>, ClientError> {
        match self.items.recv_timeout(timeout) {
            Ok(item) => item.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(ClientError::Closed),
        }
    }

    /// The next item if one is waiting.
    pub fn try_recv(&self) -> Result<Option<ClientEvent>, ClientError> {
        match self.items.try_recv() {
            Ok(item) => item.map(Some),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(ClientError::Closed),
        }
    }

    /// Iterate over items until the client stops; the final error, if
    /// any, is the last item.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            client: self,
            done: false,
        }
    }

    /// The items channel, for `crossbeam_channel::select!` with other
    /// channels. Disconnects once the client thread has ended.
    pub fn receiver(&self) -> &Receiver<Result<ClientEvent, ClientError>> {
        &self.items
    }

    /// Publish `data` to `channel` and wait for the hub's `published`.
    /// Needs a hub started with `--allow-client-publish`.
    ///
    /// # Errors
    /// [`ClientError::InvalidChannel`]; [`ClientError::Refused`] (e.g.
    /// `forbidden`); [`ClientError::NotConnected`] while reconnecting;
    /// [`ClientError::Disconnected`] if the connection dropped before the
    /// answer (the event may have been published); [`ClientError::Timeout`];
    /// [`ClientError::Closed`].
    pub fn publish(&self, channel: &str, data: Value) -> Result<Published, ClientError> {
        check_channel(channel)?;
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.commands
            .send(Command::Publish {
                channel: channel.to_string(),
                data,
                reply: Some(reply_tx),
            })
            .map_err(|_| ClientError::Closed)?;
        match reply_rx.recv_timeout(self.publish_timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(ClientError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(ClientError::Closed),
        }
    }

    /// Send a `publish` without waiting for the answer. Dropped silently
    /// while reconnecting; a refusal is only logged.
    ///
    /// # Errors
    /// [`ClientError::InvalidChannel`]; [`ClientError::Closed`].
    pub fn publish_nowait(&self, channel: &str, data: Value) -> Result<(), ClientError> {
        check_channel(channel)?;
        self.commands
            .send(Command::Publish {
                channel: channel.to_string(),
                data,
                reply: None,
            })
            .map_err(|_| ClientError::Closed)
    }

    /// Close the connection (a clean WebSocket close) and wait for the
    /// client thread to end. The same as dropping the client.
    pub fn close(self) {}
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Close);
        // Dropping our end of the items channel wakes the client thread if
        // it is blocked handing us an item we will never read.
        self.items = crossbeam_channel::never();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn check_channel(name: &str) -> Result<(), ClientError> {
    if is_valid_channel_name(name) {
        Ok(())
    } else {
        Err(ClientError::InvalidChannel {
            name: name.to_string(),
        })
    }
}

/// Iterator over a client's items, from [`Client::iter`]. Ends after an
/// error item or when the client thread has ended.
#[derive(Debug)]
pub struct Iter<'a> {
    client: &'a Client,
    done: bool,
}

impl Iterator for Iter<'_> {
    type Item = Result<ClientEvent, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.client.items.recv().ok()?;
        self.done = item.is_err();
        Some(item)
    }
}

impl<'a> IntoIterator for &'a Client {
    type Item = Result<ClientEvent, ClientError>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}
