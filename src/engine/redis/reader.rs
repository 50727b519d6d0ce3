//! The log reader: one thread per node (`redis-reader`) that joins the
//! hub's sequence and reads the shared log, in order, into the broadcaster.
//!
//! It owns its own Redis connection, because `XREAD BLOCK` holds a
//! connection for as long as it waits. It is the only thread that decides
//! the engine's state (`connecting`, `up`, `down`) and the epoch the node
//! publishes under, and the only one that sends the broadcaster
//! [`EngineInput::Joined`], [`EngineInput::Entries`] and
//! [`EngineInput::Hole`], so those arrive in log order.
//!
//! The log is dense: every seq is an entry. So the reader knows the next
//! seq it must see; anything else means entries it never read were trimmed
//! (or lost), and it says so with `Hole` rather than skip them silently.
//! After losing Redis it reconnects (see `Backoff`), runs the `HELLO`
//! script, and, in the same epoch, continues right after the last entry it
//! read. It stays at most `CREDITS` batches ahead of the broadcaster.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{info, warn};
use redis::{Client, Value};
use uuid::Uuid;

use super::connection::{Backoff, Link, LinkError, Script};
use super::keys::Keys;
use super::reply::{self, reply_error};
use crate::engine::{EngineInput, EngineState, EngineStatus, Entry, Sink};
use crate::protocol::Seq;

/// How long one `XREAD` blocks. Bounds how late the reader notices a stop
/// or an epoch that changed without the connection dropping.
const BLOCK: Duration = Duration::from_millis(200);

/// Most entries one `XREAD` returns, and so one `Entries` batch holds.
const BATCH: usize = 512;

/// Batches the reader may have handed over that the broadcaster has not
/// applied yet: bounds the node's memory when the broadcaster falls behind.
const CREDITS: usize = 4;

/// What the reader needs.
pub(crate) struct Reader {
    pub client: Client,
    pub keys: Keys,
    pub node: String,
    pub status: Arc<EngineStatus>,
    pub sink: Sink,
    /// Disconnects when the engine stops; waits are `recv_timeout`s on it.
    pub stop: Receiver<()>,
}

/// Where the reader stands in the hub's sequence.
struct Position {
    /// The epoch joined, if any yet.
    epoch: Option<String>,
    /// The newest seq read from the log (or the head when joining).
    last: Seq,
}

enum Ended {
    /// The engine stops or the broadcaster is gone.
    Stop,
    /// The link failed: reconnect.
    Lost(LinkError),
    /// The stored epoch is not ours any more: say hello again.
    Rejoin,
}

impl Reader {
    pub(crate) fn run(self) {
        let (credit_tx, credit_rx) = crossbeam_channel::bounded(CREDITS);
        for _ in 0..CREDITS {
            let _ = credit_tx.try_send(());
        }
        let mut position = Position {
            epoch: None,
            last: Seq(0),
        };
        let mut backoff = Backoff::new();
        let mut was_up = false;
        loop {
            let mut link = match Link::open(&self.client, BLOCK + Duration::from_secs(2)) {
                Ok(link) => link,
                Err(e) => {
                    self.lost(&e, was_up);
                    if self.sleep(backoff.next_wait()) {
                        return;
                    }
                    continue;
                }
            };
            let joined = match self.join(&mut link, &mut position) {
                Ok(joined) => joined,
                Err(e) => {
                    self.lost(&e, was_up);
                    if self.sleep(backoff.next_wait()) {
                        return;
                    }
                    continue;
                }
            };
            backoff.reset();
            let reconnected = was_up;
            if reconnected {
                // Before `Up`: publishers compare it to drop stale links.
                self.status.count_reconnect();
            }
            was_up = true;
            self.status.set_last_error("");
            // Up before the broadcaster hears of a new epoch, so a client
            // told to resync can publish as soon as it is back.
            self.status.set_state(EngineState::Up);
            if reconnected {
                info!(
                    "shared log: reconnected to Redis, continuing after seq {}",
                    position.last
                );
            }
            if let Some(joined) = joined {
                if let EngineInput::Joined { epoch, position } = &joined {
                    // Tests and operators wait for this line: from here on
                    // the node publishes.
                    info!("shared log: joined epoch {epoch} at seq {position}");
                }
                if !(self.sink)(joined) {
                    return;
                }
            }
            match self.read(&mut link, &mut position, &credit_tx, &credit_rx) {
                Ended::Stop => return,
                Ended::Lost(e) => self.lost(&e, true),
                Ended::Rejoin => {
                    info!("shared log: the hub's epoch changed in Redis; rejoining");
                    self.status.set_state(EngineState::Connecting);
                }
            }
        }
    }

    /// Note a failure: publishes are refused from now on.
    fn lost(&self, error: &LinkError, was_up: bool) {
        let text = error.to_string();
        if self.status.last_error() != text {
            warn!("shared log: Redis unavailable: {text}; retrying");
        }
        self.status.set_last_error(&text);
        self.status.set_state(if was_up {
            EngineState::Down
        } else {
            EngineState::Connecting
        });
    }

    /// Wait `wait`, or less if the engine stops. True if it stops.
    fn sleep(&self, wait: Duration) -> bool {
        !matches!(self.stop.recv_timeout(wait), Err(RecvTimeoutError::Timeout))
    }

    /// Run `HELLO`: adopt the stored epoch, or start one. A new epoch (to
    /// this node) gives the `Joined` to send: the broadcaster resyncs its
    /// clients and starts from the head.
    fn join(
        &self,
        link: &mut Link,
        position: &mut Position,
    ) -> Result<Option<EngineInput>, LinkError> {
        let keys = [self.keys.meta()];
        let candidate = Uuid::new_v4().hyphenated().to_string();
        let known = position.epoch.clone().unwrap_or_default();
        let build = |link: &Link| {
            let mut cmd = link.evalsha(Script::Hello, &keys);
            cmd.arg(&candidate).arg(&known).arg(position.last.0);
            cmd
        };
        let cmd = build(link);
        let value = link.run(&cmd, build)?;
        let fields =
            reply::items(&value).ok_or_else(|| reply_error("HELLO did not answer an array"))?;
        let (Some(epoch), Some(head), Some(how)) = (
            fields.first().and_then(reply::text),
            fields.get(1).and_then(reply::number),
            fields.get(2).and_then(reply::text),
        ) else {
            return Err(reply_error("HELLO answered an unexpected shape"));
        };
        match how {
            "new" if position.epoch.is_some() => warn!(
                "shared log: the hub's state was gone from Redis; started epoch {epoch} at seq {head}"
            ),
            "new" => info!("shared log: started the hub's epoch {epoch} at seq {head}"),
            "rotated" => warn!(
                "shared log: Redis is behind seq {} this node read (lost writes after a failover?); \
                 started epoch {epoch} at seq {head}",
                position.last
            ),
            _ => {}
        }
        if position.epoch.as_deref() != Some(epoch) {
            position.epoch = Some(epoch.to_string());
            position.last = Seq(head);
            self.status.set_epoch(epoch);
            self.status.reset_head(Seq(head));
            return Ok(Some(EngineInput::Joined {
                epoch: epoch.to_string(),
                position: Seq(head),
            }));
        }
        self.status.note_head(Seq(head));
        Ok(None)
    }

    fn read(
        &self,
        link: &mut Link,
        position: &mut Position,
        credit_tx: &Sender<()>,
        credit_rx: &Receiver<()>,
    ) -> Ended {
        let meta = self.keys.meta();
        let log = self.keys.log();
        loop {
            if !matches!(
                self.stop.try_recv(),
                Err(crossbeam_channel::TryRecvError::Empty)
            ) {
                return Ended::Stop;
            }
            // The epoch check rides in the same round trip as the read, so
            // a hub whose keys vanished (FLUSHALL, a restart without data)
            // is noticed within one BLOCK even if no connection dropped.
            let mut pipe = redis::pipe();
            pipe.cmd("HMGET").arg(&meta).arg("epoch").arg("seq");
            pipe.cmd("XREAD")
                .arg("COUNT")
                .arg(BATCH)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&log)
                .arg(format!("{}-0", position.last.0));
            let replies = match link.pipeline(&pipe, 2) {
                Ok(replies) => replies,
                Err(e) => return Ended::Lost(e),
            };
            let [meta_reply, read_reply] = replies.as_slice() else {
                return Ended::Lost(reply_error("a pipeline of two answered otherwise"));
            };
            let stored = reply::items(meta_reply).unwrap_or(&[]);
            if stored.first().and_then(reply::text) != position.epoch.as_deref() {
                return Ended::Rejoin;
            }
            if let Some(head) = stored.get(1).and_then(reply::number) {
                self.status.note_head(Seq(head));
            }
            if let Value::ServerError(e) = read_reply {
                return Ended::Lost(LinkError::Reply(format!("XREAD: {e:?}")));
            }
            let raw = match reply::xread_entries(read_reply) {
                Ok(raw) => raw,
                Err(e) => return Ended::Lost(e),
            };
            if raw.is_empty() {
                continue;
            }
            let mut batch: Vec<Entry> = Vec::with_capacity(raw.len());
            for entry in &raw {
                if entry.seq.0 != position.last.0 + 1 {
                    // Entries this node never read are gone from the log.
                    if !batch.is_empty()
                        && !self.hand_over(std::mem::take(&mut batch), credit_tx, credit_rx)
                    {
                        return Ended::Stop;
                    }
                    warn!(
                        "shared log: entries {}..{} were trimmed before this node read them; \
                         clients resync",
                        position.last.0 + 1,
                        entry.seq.0 - 1
                    );
                    let hole = EngineInput::Hole {
                        position: Seq(entry.seq.0.saturating_sub(1)),
                    };
                    if !(self.sink)(hole) {
                        return Ended::Stop;
                    }
                }
                position.last = entry.seq;
                match reply::log_entry(entry, &self.node) {
                    Some(decoded) => batch.push(decoded),
                    None => warn!(
                        "shared log: entry {} is not a pumphub entry; skipped",
                        entry.seq
                    ),
                }
            }
            self.status.note_head(position.last);
            if !batch.is_empty() && !self.hand_over(batch, credit_tx, credit_rx) {
                return Ended::Stop;
            }
        }
    }

    /// Take a credit (waiting while the broadcaster is `CREDITS` batches
    /// behind), then hand `entries` over. False if the engine stops.
    fn hand_over(
        &self,
        entries: Vec<Entry>,
        credit_tx: &Sender<()>,
        credit_rx: &Receiver<()>,
    ) -> bool {
        loop {
            match credit_rx.recv_timeout(BLOCK) {
                Ok(()) => break,
                Err(_) => {
                    if !matches!(
                        self.stop.try_recv(),
                        Err(crossbeam_channel::TryRecvError::Empty)
                    ) {
                        return false;
                    }
                }
            }
        }
        (self.sink)(EngineInput::Entries {
            entries,
            credit: credit_tx.clone(),
        })
    }
}
