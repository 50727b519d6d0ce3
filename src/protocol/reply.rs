//! What the hub sends: one `encode_*` function per frame type, each
//! returning the frame's JSON text. Encoding happens once per frame: an
//! event is serialized once by the broadcaster and the same bytes are shared
//! by every client queue (see `broadcaster/encoded_event.rs`). Called by the
//! broadcaster, the read pump and the connection threads.

use serde::Serialize;
use serde_json::Value;

use super::request::{RequestError, RequestId};

/// Every frame the hub sends, as serde serializes it. Fields that are `None`
/// are left out, so a reply to a request without `id` has no `id` field.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage<'a> {
    Welcome {
        connection_id: &'a str,
        epoch: &'a str,
        server: &'a str,
        seq: u64,
        heartbeat_ms: u64,
    },
    Subscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        channels: &'a [String],
        replayed: usize,
        complete: bool,
        /// With `complete: false`: the seq from which the replay is whole.
        #[serde(skip_serializing_if = "Option::is_none")]
        oldest: Option<u64>,
    },
    Unsubscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        channels: &'a [String],
    },
    Event {
        seq: u64,
        channel: &'a str,
        ts: u64,
        data: &'a Value,
    },
    Published {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        seq: u64,
        delivered: usize,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        ts: u64,
    },
    Authenticated {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
    },
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ts: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        context: Option<&'a Value>,
    },
    Shutdown {
        reason: &'a str,
        reconnect_ms: u64,
    },
}

fn encode(message: &ServerMessage<'_>) -> String {
    // Serializing these types cannot fail: every map key is a string and
    // every value is already valid JSON.
    serde_json::to_string(message).expect("server messages always serialize")
}

/// `welcome`, the first frame on every connection.
pub fn encode_welcome(connection_id: &str, epoch: &str, seq: u64, heartbeat_ms: u64) -> String {
    encode(&ServerMessage::Welcome {
        connection_id,
        epoch,
        server: concat!("pumphub/", env!("CARGO_PKG_VERSION")),
        seq,
        heartbeat_ms,
    })
}

/// `subscribed`, sent after any replayed events. The hub itself sends
/// `complete: false` only through [`encode_subscribed_incomplete`].
pub fn encode_subscribed(
    id: Option<&RequestId>,
    channels: &[String],
    replayed: usize,
    complete: bool,
) -> String {
    encode(&ServerMessage::Subscribed {
        id,
        channels,
        replayed,
        complete,
        oldest: None,
    })
}

/// `subscribed` with `complete: false` and `oldest`: events after the
/// client's `since` and before `oldest` are lost to it; from `oldest` on,
/// the replay is whole (it is the oldest seq the hub still keeps for those
/// channels).
pub fn encode_subscribed_incomplete(
    id: Option<&RequestId>,
    channels: &[String],
    replayed: usize,
    oldest: u64,
) -> String {
    encode(&ServerMessage::Subscribed {
        id,
        channels,
        replayed,
        complete: false,
        oldest: Some(oldest),
    })
}

/// `unsubscribed`.
pub fn encode_unsubscribed(id: Option<&RequestId>, channels: &[String]) -> String {
    encode(&ServerMessage::Unsubscribed { id, channels })
}

/// The most bytes an `event` frame has besides its channel name and its
/// data's JSON: `{"type":"event","seq":…,"channel":"","ts":…,"data":}` with
/// both numbers at their longest is 90. Lets a publisher bound the size of
/// the frames it causes before the hub builds them.
pub const EVENT_FRAME_OVERHEAD: usize = 96;

/// `event`: one published event.
pub fn encode_event(seq: u64, channel: &str, ts: u64, data: &Value) -> String {
    encode(&ServerMessage::Event {
        seq,
        channel,
        ts,
        data,
    })
}

/// `published`: the reply to a client's `publish`.
pub fn encode_published(id: Option<&RequestId>, seq: u64, delivered: usize) -> String {
    encode(&ServerMessage::Published { id, seq, delivered })
}

/// `pong`: the reply to a JSON `ping` request.
pub fn encode_pong(id: Option<&RequestId>, ts: u64) -> String {
    encode(&ServerMessage::Pong { id, ts })
}

/// `authenticated`.
pub fn encode_authenticated(id: Option<&RequestId>) -> String {
    encode(&ServerMessage::Authenticated { id })
}

/// `error` in reply to a request: carries the request's `id`, no `seq`.
pub fn encode_request_error(error: &RequestError) -> String {
    encode(&ServerMessage::Error {
        code: error.code.as_str(),
        message: &error.message,
        id: error.id.as_ref(),
        seq: None,
        ts: None,
        context: None,
    })
}

/// `error` broadcast to every client: carries a `seq` from the event
/// sequence and a `ts`.
pub fn encode_broadcast_error(
    code: &str,
    message: &str,
    context: Option<&Value>,
    seq: u64,
    ts: u64,
) -> String {
    encode(&ServerMessage::Error {
        code,
        message,
        id: None,
        seq: Some(seq),
        ts: Some(ts),
        context,
    })
}

/// `shutdown`, sent before Close 1001 when the hub stops.
pub fn encode_shutdown(reason: &str, reconnect_ms: u64) -> String {
    encode(&ServerMessage::Shutdown {
        reason,
        reconnect_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_frame_is_within_its_overhead() {
        let data = serde_json::json!({"a": [1, "two"]});
        let frame = encode_event(u64::MAX, "c", u64::MAX, &data);
        let data_len = serde_json::to_string(&data).unwrap().len();
        assert!(
            frame.len() <= EVENT_FRAME_OVERHEAD + 1 + data_len,
            "{frame}"
        );
    }
}
