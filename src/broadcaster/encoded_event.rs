//! [`EncodedEvent`]: an event together with its `event` frame, serialized
//! once. Built only by the broadcaster thread, once per event; after that it
//! is immutable and travels behind an `Arc` into every client queue and the
//! channel history, so cloning it, or its frame, never copies the payload.

use std::mem::size_of;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

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
    /// An estimate of the memory it holds: the frame, the decoded data and
    /// its own allocation. What `--history-bytes` counts.
    pub memory: usize,
}

impl EncodedEvent {
    /// Serialize `event` into its frame.
    pub fn new(event: Event) -> Arc<EncodedEvent> {
        let frame = protocol::encode_event(event.seq.0, &event.channel, event.ts_ms, &event.data);
        let memory = size_of::<EncodedEvent>() + 2 * size_of::<usize>() // the Arc
            + frame.len()
            + value_heap_bytes(&event.data);
        Arc::new(EncodedEvent {
            event,
            frame: Utf8Bytes::from(frame),
            accepted_at: Instant::now(),
            memory,
        })
    }

    /// Its sequence number.
    pub fn seq(&self) -> Seq {
        self.event.seq
    }
}

/// Roughly what a JSON value holds on the heap: string bytes, array slots,
/// and per object entry its key, its value slot and a share of the map's
/// node. An estimate (allocators round up), good to about 20% for typical
/// event data. Walks the value with its own stack, not by recursion: data
/// from the embedding API has no nesting limit.
fn value_heap_bytes(value: &Value) -> usize {
    /// A `BTreeMap` entry's share of its node, beyond the key and value.
    const MAP_ENTRY_OVERHEAD: usize = 16;
    let mut total = 0;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) => total += text.capacity(),
            Value::Array(items) => {
                total += items.capacity() * size_of::<Value>();
                stack.extend(items.iter());
            }
            Value::Object(map) => {
                for (key, item) in map {
                    total += key.capacity()
                        + size_of::<String>()
                        + size_of::<Value>()
                        + MAP_ENTRY_OVERHEAD;
                    stack.push(item);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn memory_grows_with_the_data() {
        let small = EncodedEvent::new(Event {
            seq: Seq(1),
            channel: "c".into(),
            ts_ms: 0,
            data: json!(1),
        });
        let text = EncodedEvent::new(Event {
            seq: Seq(2),
            channel: "c".into(),
            ts_ms: 0,
            data: json!("x".repeat(10_000)),
        });
        assert!(small.memory < 400, "{}", small.memory);
        // The text twice: in the frame and in the decoded value.
        assert!(
            text.memory > 20_000 && text.memory < 21_000,
            "{}",
            text.memory
        );
        let deep = (0..1000).fold(json!(0), |inner, _| json!([inner]));
        assert!(value_heap_bytes(&deep) >= 1000 * size_of::<Value>());
    }
}
