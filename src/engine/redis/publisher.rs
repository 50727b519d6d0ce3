//! Publisher threads (`redis-publisher-N`, a few per node): run the
//! `PUBLISH` script for the broadcaster's publishes.
//!
//! Each owns its own connection. It takes a publish off the shared job
//! queue, then every other one already waiting (up to `PIPELINE`), and
//! sends them all in one round trip as a pipeline of `EVALSHA`s, so
//! throughput is not one round trip per event. Redis runs a pipeline's
//! scripts in order, and a publish's items are one script call, so the
//! items of one publish keep their order and take consecutive seqs; a
//! publisher that waits for its answer before publishing again (a client's
//! read pump, an HTTP request, `HubHandle::publish`) keeps its order too.
//!
//! It answers each publish with [`EngineInput::Assigned`] or
//! [`EngineInput::Refused`]; the event itself reaches the broadcaster
//! through the log reader. While the reader says Redis is not reachable,
//! publishes are refused at once (no connect attempt per publish). A link
//! that fails in the middle of a pipeline leaves the outcome of its
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

/// Most publishes sent in one round trip.
const PIPELINE: usize = 128;

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
        let mut pipe = redis::pipe();
        for job in batch.iter() {
            pipe.add_command(self.command(open, &epoch, job));
        }
        let replies = match open.pipeline(&pipe, batch.len()) {
            Ok(replies) if replies.len() == batch.len() => replies,
            Ok(_) => {
                *link = None;
                return self.refuse_all(batch, "Redis answered a pipeline with the wrong count");
            }
            Err(e) => {
                *link = None;
                return self.refuse_all(batch, &format!("lost Redis while publishing: {e}"));
            }
        };
        let mut reloaded = false;
        let mut broken = false;
        for (job, value) in batch.drain(..).zip(replies) {
            let answer = match value {
                Value::ServerError(e) if e.code() == "NOSCRIPT" => {
                    // The script cache was flushed: this script did not
                    // run. Load again and run this one publish alone.
                    if !reloaded {
                        reloaded = true;
                        if let Err(e) = open.reload() {
                            broken = true;
                            if !self.refuse(job.ticket, &e.to_string()) {
                                return false;
                            }
                            continue;
                        }
                    }
                    if broken {
                        if !self.refuse(job.ticket, "lost Redis while reloading scripts") {
                            return false;
                        }
                        continue;
                    }
                    let cmd = self.command(open, &epoch, &job);
                    match open.run(&cmd, |l| self.command(l, &epoch, &job)) {
                        Ok(value) => self.answer(&job, &value),
                        Err(e) => Err(e.to_string()),
                    }
                }
                other => self.answer(&job, &other),
            };
            let delivered = match answer {
                Ok(input) => (self.sink)(input),
                Err(reason) => self.refuse(job.ticket, &reason),
            };
            if !delivered {
                return false;
            }
        }
        if broken {
            *link = None;
        }
        true
    }

    fn answer(&self, job: &Job, value: &Value) -> Result<EngineInput, String> {
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
            other => match reply::number(other) {
                Some(first) => Ok(EngineInput::Assigned {
                    ticket: job.ticket,
                    first: crate::protocol::Seq(first),
                    count: job.items.len(),
                }),
                None => Err(LinkError::Reply("PUBLISH did not answer a seq".into()).to_string()),
            },
        }
    }

    /// The `EVALSHA PUBLISH` for one job.
    fn command(&self, link: &Link, epoch: &str, job: &Job) -> redis::Cmd {
        let mut keys = vec![self.keys.meta(), self.keys.log(), self.keys.trimmed()];
        for item in &job.items {
            if let Item::Event { channel, .. } = item {
                keys.push(self.keys.channel(channel));
            }
        }
        let mut cmd = link.evalsha(Script::Publish, &keys);
        cmd.arg(epoch)
            .arg(&self.node)
            .arg(self.history_size)
            .arg(self.log_size);
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
