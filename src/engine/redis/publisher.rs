//! Publisher threads (`redis-publisher-N`, a few per node): run the
//! `PUBLISH` script for the broadcaster's publishes.
//!
//! Each owns its own connection and its own job queue (a lane: the
//! broadcaster puts one client's publishes always on the same lane). It
//! takes a publish off its queue, then every other one already waiting (up
//! to `PIPELINE`), groups them into as few script calls as their size
//! allows (`groups`: whole publishes, bounded in items and bytes), and
//! sends those calls in one round trip. So throughput is not one round
//! trip, nor one script call, per event. Redis runs the calls in order and
//! each call's items in order, so publishes of one lane keep their order
//! and the items of one publish take consecutive seqs.
//!
//! It answers each publish with [`EngineInput::Assigned`] or
//! [`EngineInput::Refused`]; the event itself reaches the broadcaster
//! through the log reader. While the reader says Redis is not reachable,
//! publishes are refused at once (no connect attempt per publish). A link
//! that fails in the middle of a round trip leaves the outcome of its
//! publishes unknown: they are refused, and may still appear in the log.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use log::debug;
use redis::{Client, Value};

use super::connection::{Link, LinkError, Script};
use super::keys::Keys;
use super::reply;
use super::script::{KIND_ERROR, KIND_EVENT};
use crate::engine::{EngineInput, EngineStatus, Item, Sink, Unavailable};

/// Most publishes taken off the queue for one round trip.
const PIPELINE: usize = 256;

/// Most items, and bytes of data, appended by one script call: bounds how
/// long Redis runs one script (nothing else runs meanwhile) and the size
/// of one command.
const GROUP_ITEMS: usize = 256;
const GROUP_BYTES: usize = 256 * 1024;

/// How long a publisher waits for Redis to answer a pipeline.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// One publish for the engine: items to append together.
#[derive(Debug)]
pub(crate) struct Job {
    /// The broadcaster's ticket, echoed in the answer.
    pub ticket: u64,
    /// In order; they take consecutive seqs.
    pub items: Vec<Item>,
    /// When the node took it, Unix ms (the events' `ts`).
    pub ts_ms: u64,
}

/// What a publisher thread needs.
pub(crate) struct Publisher {
    pub client: Client,
    pub keys: Keys,
    pub node: String,
    pub history_size: usize,
    pub log_size: usize,
    pub status: Arc<EngineStatus>,
    pub sink: Sink,
    pub jobs: Receiver<Job>,
}

impl Publisher {
    /// Serve jobs until the engine drops the job queue.
    pub(crate) fn run(self) {
        let mut link: Option<(Link, u64)> = None;
        let mut batch: Vec<Job> = Vec::with_capacity(PIPELINE);
        while let Ok(first) = self.jobs.recv() {
            batch.push(first);
            while batch.len() < PIPELINE {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if !self.publish(&mut link, &mut batch) {
                return;
            }
        }
    }

    /// Publish `batch` (emptying it). False once the broadcaster is gone.
    fn publish(&self, link: &mut Option<(Link, u64)>, batch: &mut Vec<Job>) -> bool {
        let epoch = self.status.epoch();
        if !self.status.is_serving() || epoch.is_empty() {
            let reason = match self.status.last_error() {
                e if e.is_empty() => "not connected to Redis yet".to_string(),
                e => e,
            };
            return self.refuse_all(batch, &reason);
        }
        // A link opened before the reader's last reconnection went to a
        // Redis that is gone (restarted): writing to it would fail only
        // after the publish was sent, with its outcome unknown.
        let generation = self.status.reconnects();
        if link
            .as_ref()
            .is_some_and(|(_, opened_at)| *opened_at != generation)
        {
            *link = None;
        }
        if link.is_none() {
            match Link::open(&self.client, ANSWER_TIMEOUT) {
                Ok(opened) => *link = Some((opened, generation)),
                Err(e) => return self.refuse_all(batch, &e.to_string()),
            }
        }
        let Some((open, _)) = link.as_mut() else {
            return self.refuse_all(batch, "no connection");
        };
        // One script call appends a whole group of publishes: the script's
        // fixed cost (about 20 us in Redis) is paid once per group, not per
        // publish. Groups are bounded in items and bytes; a pipeline of
        // them is one round trip.
        let groups = groups(batch);
        let mut pipe = redis::pipe();
        for group in &groups {
            pipe.add_command(self.command(open, &epoch, &batch[group.clone()]));
        }
        let replies = match open.pipeline(&pipe, groups.len()) {
            Ok(replies) if replies.len() == groups.len() => replies,
            Ok(_) => {
                *link = None;
                return self.refuse_all(batch, "Redis answered a pipeline with the wrong count");
            }
            Err(e) => {
                *link = None;
                return self.refuse_all(batch, &format!("lost Redis while publishing: {e}"));
            }
        };
        let mut broken = false;
        for (group, value) in groups.into_iter().zip(replies) {
            let jobs = &batch[group];
            let first = match value {
                // The script cache was flushed under us: this call did not
                // run. Load the scripts again and run it alone.
                Value::ServerError(e) if e.code() == "NOSCRIPT" && !broken => {
                    let cmd = self.command(open, &epoch, jobs);
                    match open.run(&cmd, |l| self.command(l, &epoch, jobs)) {
                        Ok(value) => self.first_seq(&value),
                        Err(e) => {
                            broken = true;
                            Err(format!("reloading the scripts failed: {e}"))
                        }
                    }
                }
                other => self.first_seq(&other),
            };
            let delivered = match first {
                Ok(first) => {
                    let mut next = first;
                    jobs.iter().all(|job| {
                        let input = EngineInput::Assigned {
                            ticket: job.ticket,
                            first: crate::protocol::Seq(next),
                            count: job.items.len(),
                        };
                        next += job.items.len() as u64;
                        (self.sink)(input)
                    })
                }
                Err(reason) => jobs.iter().all(|job| self.refuse(job.ticket, &reason)),
            };
            if !delivered {
                return false;
            }
        }
        batch.clear();
        if broken {
            *link = None;
        }
        true
    }

    /// The first seq a `PUBLISH` call took, or why it took none.
    fn first_seq(&self, value: &Value) -> Result<u64, String> {
        match value {
            Value::ServerError(e) => {
                debug!("publish refused by Redis: {e:?}");
                Err(match e.code() {
                    "EPOCH" => "the hub's epoch changed; rejoining".to_string(),
                    _ => format!(
                        "Redis refused the publish: {}",
                        e.details().unwrap_or(e.code())
                    ),
                })
            }
            other => reply::number(other)
                .ok_or_else(|| LinkError::Reply("PUBLISH did not answer a seq".into()).to_string()),
        }
    }

    /// The `EVALSHA PUBLISH` appending `jobs`' items, in order.
    fn command(&self, link: &Link, epoch: &str, jobs: &[Job]) -> redis::Cmd {
        let mut keys = vec![self.keys.meta(), self.keys.log(), self.keys.trimmed()];
        for item in jobs.iter().flat_map(|job| &job.items) {
            if let Item::Event { channel, .. } = item {
                keys.push(self.keys.channel(channel));
            }
        }
        let mut cmd = link.evalsha(Script::Publish, &keys);
        cmd.arg(epoch)
            .arg(&self.node)
            .arg(self.history_size)
            .arg(self.log_size);
        for job in jobs {
            for item in &job.items {
                match item {
                    Item::Event { channel, data } => {
                        cmd.arg(KIND_EVENT).arg(&**channel).arg(data.to_string());
                    }
                    Item::Error {
                        code,
                        message,
                        context,
                    } => {
                        cmd.arg(KIND_ERROR).arg("").arg(reply::error_data(
                            code,
                            message,
                            context.as_ref(),
                        ));
                    }
                }
                cmd.arg(job.ts_ms);
            }
        }
        cmd
    }

    fn refuse(&self, ticket: u64, reason: &str) -> bool {
        (self.sink)(EngineInput::Refused {
            ticket,
            reason: Unavailable::new(reason),
        })
    }

    fn refuse_all(&self, batch: &mut Vec<Job>, reason: &str) -> bool {
        batch.drain(..).all(|job| self.refuse(job.ticket, reason))
    }
}

/// Split `batch` into runs of whole jobs, each within `GROUP_ITEMS` items
/// and `GROUP_BYTES` of data (a job bigger than that is a group alone).
fn groups(batch: &[Job]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut items, mut bytes) = (0, 0, 0);
    for (index, job) in batch.iter().enumerate() {
        let job_bytes: usize = job.items.iter().map(item_bytes).sum();
        if index > start
            && (items + job.items.len() > GROUP_ITEMS || bytes + job_bytes > GROUP_BYTES)
        {
            groups.push(start..index);
            (start, items, bytes) = (index, 0, 0);
        }
        items += job.items.len();
        bytes += job_bytes;
    }
    if start < batch.len() {
        groups.push(start..batch.len());
    }
    groups
}

/// Roughly how many bytes an item adds to the command.
fn item_bytes(item: &Item) -> usize {
    match item {
        Item::Event { channel, data } => channel.len() + json_size(data),
        Item::Error { message, .. } => 64 + message.len(),
    }
}

/// A cheap upper-ish estimate of a JSON value's text size, without
/// serializing it twice.
fn json_size(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(s) => s.len() + 2,
        serde_json::Value::Array(items) => 2 + items.iter().map(json_size).sum::<usize>(),
        serde_json::Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| k.len() + 4 + json_size(v))
                .sum::<usize>()
        }
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(items: usize, bytes: usize) -> Job {
        Job {
            ticket: 0,
            items: (0..items)
                .map(|_| Item::Event {
                    channel: "c".into(),
                    data: serde_json::Value::String("x".repeat(bytes)),
                })
                .collect(),
            ts_ms: 0,
        }
    }

    #[test]
    fn groups_hold_whole_jobs_within_their_bounds() {
        let batch = vec![
            job(1, 10),
            job(GROUP_ITEMS - 1, 10),
            job(2, 10),
            job(1, GROUP_BYTES),
            job(1, 1),
        ];
        assert_eq!(groups(&batch), vec![0..2, 2..3, 3..4, 4..5]);
        assert_eq!(groups(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(groups(&[job(1, 1), job(1, 1)]), vec![0..2]);
    }
}
