//! Events as the hub keeps them: the decoded [`Event`] handed to in-process
//! subscribers, and the [`EncodedEvent`] whose frame bytes are shared by
//! every client queue and by the channel history.
//!
//! Built only by the broadcaster thread (`hub.rs`), once per event. After
//! that an `EncodedEvent` is immutable and travels behind an `Arc`; cloning
//! it, or its frame, never copies the payload.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tungstenite::protocol::frame::Utf8Bytes;

use crate::protocol;

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

/// An event together with its `event` frame, serialized once.
#[derive(Debug)]
pub struct EncodedEvent {
    /// The event itself.
    pub event: Event,
    /// The text of its `event` frame. `Utf8Bytes` is reference counted, so
    /// every client queue shares these bytes.
    pub frame: Utf8Bytes,
    /// When the broadcaster accepted it, for the fan-out latency metric.
    pub accepted_at: Instant,
}

impl EncodedEvent {
    /// Serialize `event` into its frame.
    pub fn new(event: Event) -> Arc<EncodedEvent> {
        let frame = protocol::encode_event(event.seq.0, &event.channel, event.ts_ms, &event.data);
        Arc::new(EncodedEvent {
            event,
            frame: Utf8Bytes::from(frame),
            accepted_at: Instant::now(),
        })
    }

    /// Its sequence number.
    pub fn seq(&self) -> Seq {
        self.event.seq
    }
}

/// The current time in Unix milliseconds, as used for `ts` fields.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
