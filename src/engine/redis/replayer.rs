//! The replayer thread (`redis-replay`): reads channels' history from
//! Redis for a subscribe with `since` that the node's own memory cannot
//! cover (the node started, or resynced, after `since`).
//!
//! One thread with its own connection, so a long `XRANGE` delays neither
//! the log reader nor the publishers. It runs the `REPLAY` script, which
//! reads the channels' streams, their trim marks and the sequence's head in
//! one atomic look, and answers [`EngineInput::Replayed`]; the broadcaster
//! splices the result in front of the live stream (see
//! `broadcaster/cluster.rs`).

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use redis::Client;

use super::connection::{Link, LinkError, Script};
use super::keys::Keys;
use super::reply::{self, reply_error};
use crate::engine::{EngineInput, Replay, Sink, Unavailable};
use crate::protocol::{Event, Seq};

/// How long the replayer waits for Redis to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// A replay request from the broadcaster.
#[derive(Debug)]
pub(crate) struct ReplayRequest {
    /// Echoed in the answer.
    pub ticket: u64,
    /// Channels to read.
    pub channels: Vec<String>,
    /// Events after this seq.
    pub since: Seq,
}

/// What the replayer needs.
pub(crate) struct Replayer {
    pub client: Client,
    pub keys: Keys,
    pub history_size: usize,
    pub sink: Sink,
    pub requests: Receiver<ReplayRequest>,
}

impl Replayer {
    /// Serve requests until the engine drops the request queue.
    pub(crate) fn run(self) {
        let mut link: Option<Link> = None;
        while let Ok(request) = self.requests.recv() {
            let result = self.replay(&mut link, &request).map_err(|e| {
                link = None;
                Unavailable::new(e.to_string())
            });
            let answer = EngineInput::Replayed {
                ticket: request.ticket,
                result,
            };
            if !(self.sink)(answer) {
                return;
            }
        }
    }

    fn replay(
        &self,
        link: &mut Option<Link>,
        request: &ReplayRequest,
    ) -> Result<Replay, LinkError> {
        if link.is_none() {
            *link = Some(Link::open(&self.client, ANSWER_TIMEOUT)?);
        }
        let Some(open) = link.as_mut() else {
            return Err(reply_error("no connection"));
        };
        read(open, &self.keys, self.history_size, request)
    }
}

/// Run `REPLAY` for `request` on `link`.
pub(crate) fn read(
    link: &mut Link,
    keys: &Keys,
    history_size: usize,
    request: &ReplayRequest,
) -> Result<Replay, LinkError> {
    let mut key_names = vec![keys.meta(), keys.trimmed()];
    key_names.extend(request.channels.iter().map(|c| keys.channel(c)));
    let build = |link: &Link| {
        let mut cmd = link.evalsha(Script::Replay, &key_names);
        cmd.arg(request.since.0.saturating_add(1))
            .arg(super::script::stream_capacity(history_size))
            .arg(&request.channels);
        cmd
    };
    let cmd = build(link);
    let value = link.run(&cmd, build)?;
    let parts =
        reply::items(&value).ok_or_else(|| reply_error("REPLAY did not answer an array"))?;
    let (Some(epoch), Some(head)) = (
        parts.first().and_then(reply::text),
        parts.get(1).and_then(reply::number),
    ) else {
        return Err(reply_error("REPLAY answered an unexpected shape"));
    };
    let mut complete = true;
    let mut events: Vec<Event> = Vec::new();
    for (channel, part) in request.channels.iter().zip(parts.iter().skip(2)) {
        let pair = reply::items(part)
            .filter(|p| p.len() == 2)
            .ok_or_else(|| reply_error("a REPLAY channel is not [trimmed, entries]"))?;
        let trimmed = reply::number(&pair[0]).unwrap_or(0);
        complete &= trimmed <= request.since.0;
        let name: Arc<str> = Arc::from(channel.as_str());
        for raw in reply::stream_entries(&pair[1])? {
            // An entry that does not decode cannot be replayed: say so.
            match reply::channel_event(&raw, &name) {
                Some(event) => events.push(event),
                None => complete = false,
            }
        }
    }
    events.sort_unstable_by_key(|e| e.seq);
    Ok(Replay {
        epoch: epoch.to_string(),
        head: Seq(head),
        events,
        complete,
    })
}
