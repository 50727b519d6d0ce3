//! Events as both ends see them: the [`Seq`] that orders them, the decoded
//! [`Event`] (what an in-process subscriber and the Rust client receive),
//! and [`Published`], the answer to a publish. Plain data; the broadcaster
//! builds events, everyone else reads them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The position of an event in its hub's single sequence. Starts at 1 for
/// each hub instance; 0 means "nothing yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One published event, as an in-process subscriber receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Its place in the hub's sequence.
    pub seq: Seq,
    /// The channel it was published to.
    pub channel: Arc<str>,
    /// When the hub accepted it, in Unix milliseconds.
    pub ts_ms: u64,
    /// The published JSON value.
    pub data: Value,
}

/// The outcome of one publish: the seq the event got and how many
/// subscribers it was queued for. The hub's answer to a publish, and the
/// fields of a `published` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The seq the event was given.
    pub seq: Seq,
    /// How many client queues and in-process subscribers it was queued for.
    pub delivered: usize,
}

/// The current time in Unix milliseconds, as used for `ts` fields.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
