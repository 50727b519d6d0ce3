//! [`EncodedEvent`]: an event together with its `event` frame, serialized
//! once. Built only by the broadcaster thread, once per event; after that it
//! is immutable and travels behind an `Arc` into every client queue and the
//! channel history, so cloning it, or its frame, never copies the payload.

use std::sync::Arc;
use std::time::Instant;

use tungstenite::protocol::frame::Utf8Bytes;

use crate::protocol::{self, Event, Seq};

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
