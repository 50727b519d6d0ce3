//! Wire types: what a client may send, what the hub sends back, and how both
//! look as JSON. See `PROTOCOL.md` sections 2-4 for the contract.
//!
//! Pure code with no threads and no I/O. The read pump calls
//! [`parse_request`] on every text frame; the broadcaster and the read pump
//! call the `encode_*` functions to build frames. Encoding happens once per
//! frame: an event is serialized once by the broadcaster and the same bytes
//! are shared by every client queue (see `event.rs`).
//!
//! Peer-facing errors are data, not Rust errors: a [`RequestError`] becomes an
//! `error` reply and the connection stays open.

use serde::Serialize;
use serde_json::{Map, Value};

/// The longest channel name the hub accepts, in bytes.
pub const MAX_CHANNEL_NAME_LEN: usize = 128;

/// Close code for a slow consumer whose outbound queue overflowed.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;

/// True if `name` matches `^[A-Za-z0-9_.:-]{1,128}$`.
///
/// ```
/// assert!(pumphub::protocol::is_valid_channel_name("prices.eu:btc-usd_1"));
/// assert!(!pumphub::protocol::is_valid_channel_name("has space"));
/// assert!(!pumphub::protocol::is_valid_channel_name(""));
/// ```
pub fn is_valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// The `code` of an `error` frame sent in reply to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The text frame was not valid JSON.
    BadJson,
    /// Valid JSON, but not a known request, or a field is missing or ill-typed.
    BadMessage,
    /// The client sent a binary frame; the protocol is text only.
    BinaryUnsupported,
    /// A channel name does not match `^[A-Za-z0-9_.:-]{1,128}$`.
    BadChannel,
    /// Client publishing is off, or the permission check refused the request.
    Forbidden,
    /// The hub requires a token and this connection has not presented one.
    Unauthenticated,
    /// The subscribe would take the connection over `--max-subscriptions`.
    TooManySubscriptions,
    /// The message was dropped by the per-connection rate limit.
    RateLimited,
}

impl ErrorCode {
    /// Every code, for metrics that list one series per code.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::BadJson,
        ErrorCode::BadMessage,
        ErrorCode::BinaryUnsupported,
        ErrorCode::BadChannel,
        ErrorCode::Forbidden,
        ErrorCode::Unauthenticated,
        ErrorCode::TooManySubscriptions,
        ErrorCode::RateLimited,
    ];

    /// The code as it appears on the wire, e.g. `"bad_json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::BinaryUnsupported => "binary_unsupported",
            ErrorCode::BadChannel => "bad_channel",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::RateLimited => "rate_limited",
        }
    }

    /// A position in [`ErrorCode::ALL`], for per-code counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The `id` a client attached to a request: a JSON string or number, echoed
/// back verbatim in the reply.
pub type RequestId = Value;

/// A request a client sent, after parsing and validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Start receiving events of `channels`, replaying history after `since`.
    Subscribe {
        /// Valid channel names, duplicates removed, in the order given.
        channels: Vec<String>,
        /// Replay kept events with a larger seq before going live.
        since: Option<u64>,
    },
    /// Stop receiving events of `channels`.
    Unsubscribe {
        /// Valid channel names, duplicates removed, in the order given.
        channels: Vec<String>,
    },
    /// Publish `data` to `channel` (only with `--allow-client-publish`).
    Publish {
        /// A valid channel name.
        channel: String,
        /// Any JSON value.
        data: Value,
    },
    /// Application-level ping; the hub answers `pong`.
    Ping,
    /// Present the hub's token.
    Auth {
        /// The token to check.
        token: String,
    },
}

/// A parsed client frame: the request and the `id` to echo.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientMessage {
    /// The client's `id`, if it sent one.
    pub id: Option<RequestId>,
    /// What the client asked for.
    pub request: Request,
}

/// Why a client frame was refused. Becomes an `error` reply; the connection
/// stays open.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    /// The request's `id`, when it could be read.
    pub id: Option<RequestId>,
    /// The error code sent to the client.
    pub code: ErrorCode,
    /// Human-readable text sent to the client.
    pub message: String,
}

impl RequestError {
    fn new(id: Option<&RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        RequestError {
            id: id.cloned(),
            code,
            message: message.into(),
        }
    }
}

/// Parse one text frame into a request.
///
/// The checks run from the outside in, so a client learns the first thing
/// wrong: not JSON (`bad_json`), not an object or a bad `id` or `type`, or a
/// missing or ill-typed field (`bad_message`), then a bad channel name
/// (`bad_channel`). Unknown extra fields are ignored.
///
/// ```
/// use pumphub::protocol::{parse_request, Request, ErrorCode};
/// let msg = parse_request(r#"{"type":"subscribe","id":7,"channels":["a","a","b"]}"#).unwrap();
/// assert_eq!(msg.id, Some(serde_json::json!(7)));
/// assert_eq!(msg.request, Request::Subscribe { channels: vec!["a".into(), "b".into()], since: None });
/// assert_eq!(parse_request("{nope").unwrap_err().code, ErrorCode::BadJson);
/// ```
pub fn parse_request(text: &str) -> Result<ClientMessage, RequestError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| RequestError::new(None, ErrorCode::BadJson, format!("invalid JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(RequestError::new(
            None,
            ErrorCode::BadMessage,
            "a request must be a JSON object",
        ));
    };
    let id = match object.remove("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_))) => Some(id),
        Some(_) => {
            return Err(RequestError::new(
                None,
                ErrorCode::BadMessage,
                "`id` must be a string or a number",
            ))
        }
    };
    let id = id.as_ref();
    let bad = |message: &str| RequestError::new(id, ErrorCode::BadMessage, message);
    let request_type = match object.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(bad("`type` must be a string")),
        None => return Err(bad("missing `type`")),
    };
    let request = match request_type {
        "subscribe" => Request::Subscribe {
            channels: channel_list(&object, id)?,
            since: match object.get("since") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .ok_or_else(|| bad("`since` must be a non-negative integer"))?,
                ),
            },
        },
        "unsubscribe" => Request::Unsubscribe {
            channels: channel_list(&object, id)?,
        },
        "publish" => {
            let channel = match object.get("channel") {
                Some(Value::String(c)) => c.clone(),
                Some(_) => return Err(bad("`channel` must be a string")),
                None => return Err(bad("missing `channel`")),
            };
            let data = object.remove("data").ok_or_else(|| bad("missing `data`"))?;
            check_channel(&channel, id)?;
            Request::Publish { channel, data }
        }
        "ping" => Request::Ping,
        "auth" => match object.get("token") {
            Some(Value::String(token)) => Request::Auth {
                token: token.clone(),
            },
            Some(_) => return Err(bad("`token` must be a string")),
            None => return Err(bad("missing `token`")),
        },
        other => {
            return Err(bad(&format!(
                "unknown request type `{}`",
                truncate(other, 64)
            )))
        }
    };
    Ok(ClientMessage {
        id: id.cloned(),
        request,
    })
}

/// Only the `id` of a request, for a reply to a message the hub will not
/// otherwise handle (one dropped by the rate limit): a string or number
/// `id` of a JSON object, else `None`. Skims the other fields without
/// building them, and never fails.
///
/// ```
/// use pumphub::protocol::request_id;
/// assert_eq!(request_id(r#"{"type":"ping","id":"a"}"#), Some(serde_json::json!("a")));
/// assert_eq!(request_id(r#"{"id":[1]}"#), None);
/// assert_eq!(request_id("{nope"), None);
/// ```
pub fn request_id(text: &str) -> Option<RequestId> {
    #[derive(serde::Deserialize)]
    struct OnlyId {
        id: Option<Value>,
    }
    match serde_json::from_str::<OnlyId>(text).ok()?.id? {
        id @ (Value::String(_) | Value::Number(_)) => Some(id),
        _ => None,
    }
}

/// Read `channels`: a non-empty array of strings, all valid names. Returns
/// them with duplicates removed, first occurrence kept.
fn channel_list(
    object: &Map<String, Value>,
    id: Option<&RequestId>,
) -> Result<Vec<String>, RequestError> {
    let bad = |message: &str| RequestError::new(id, ErrorCode::BadMessage, message);
    let items = match object.get("channels") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad("`channels` must be an array of channel names")),
        None => return Err(bad("missing `channels`")),
    };
    if items.is_empty() {
        return Err(bad("`channels` must not be empty"));
    }
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(name) = item else {
            return Err(bad("every channel name must be a string"));
        };
        if !names.iter().any(|n| n == name) {
            names.push(name.clone());
        }
    }
    // Names are checked only once the request is well-formed, and the whole
    // request is rejected if any one is bad (PROTOCOL.md section 9).
    for name in &names {
        check_channel(name, id)?;
    }
    Ok(names)
}

fn check_channel(name: &str, id: Option<&RequestId>) -> Result<(), RequestError> {
    if is_valid_channel_name(name) {
        Ok(())
    } else {
        Err(RequestError::new(
            id,
            ErrorCode::BadChannel,
            format!(
                "invalid channel name `{}`: use 1-128 of A-Z a-z 0-9 _ . : -",
                truncate(name, 64)
            ),
        ))
    }
}

/// Cut `text` to at most `max` bytes on a char boundary, for echoing peer
/// input in messages without echoing megabytes.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

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

/// `subscribed`, sent after any replayed events.
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
    })
}

/// `unsubscribed`.
pub fn encode_unsubscribed(id: Option<&RequestId>, channels: &[String]) -> String {
    encode(&ServerMessage::Unsubscribed { id, channels })
}

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
    use serde_json::json;

    fn code_of(text: &str) -> ErrorCode {
        parse_request(text).unwrap_err().code
    }

    #[test]
    fn channel_names_follow_the_contract_pattern() {
        assert!(is_valid_channel_name("a"));
        assert!(is_valid_channel_name(&"x".repeat(128)));
        assert!(!is_valid_channel_name(&"x".repeat(129)));
        assert!(!is_valid_channel_name("a/b"));
        assert!(!is_valid_channel_name("é"));
    }

    #[test]
    fn parses_each_request_type() {
        let sub = parse_request(r#"{"type":"subscribe","channels":["a"],"since":5}"#).unwrap();
        assert_eq!(
            sub.request,
            Request::Subscribe {
                channels: vec!["a".into()],
                since: Some(5)
            }
        );
        let unsub = parse_request(r#"{"type":"unsubscribe","channels":["a"],"id":"x"}"#).unwrap();
        assert_eq!(unsub.id, Some(json!("x")));
        let publish = parse_request(r#"{"type":"publish","channel":"c","data":null}"#).unwrap();
        assert_eq!(
            publish.request,
            Request::Publish {
                channel: "c".into(),
                data: Value::Null
            }
        );
        assert_eq!(
            parse_request(r#"{"type":"ping"}"#).unwrap().request,
            Request::Ping
        );
        assert_eq!(
            parse_request(r#"{"type":"auth","token":"t"}"#)
                .unwrap()
                .request,
            Request::Auth { token: "t".into() }
        );
    }

    #[test]
    fn rejects_malformed_requests_with_the_right_code() {
        assert_eq!(code_of("not json"), ErrorCode::BadJson);
        assert_eq!(code_of("[1,2]"), ErrorCode::BadMessage);
        assert_eq!(code_of(r#"{"channels":["a"]}"#), ErrorCode::BadMessage);
        assert_eq!(code_of(r#"{"type":"dance"}"#), ErrorCode::BadMessage);
        assert_eq!(code_of(r#"{"type":7}"#), ErrorCode::BadMessage);
        assert_eq!(
            code_of(r#"{"type":"subscribe","channels":[]}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe","channels":[1]}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe","channels":"a"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe","channels":["a"],"since":-1}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe","channels":["ok","bad name"]}"#),
            ErrorCode::BadChannel
        );
        assert_eq!(
            code_of(r#"{"type":"publish","channel":"c"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code_of(r#"{"type":"publish","channel":"c d","data":1}"#),
            ErrorCode::BadChannel
        );
        assert_eq!(
            code_of(r#"{"type":"ping","id":[1]}"#),
            ErrorCode::BadMessage
        );
    }

    #[test]
    fn errors_carry_the_request_id_when_it_is_valid() {
        let err = parse_request(r#"{"type":"nope","id":"abc"}"#).unwrap_err();
        assert_eq!(err.id, Some(json!("abc")));
        let err = parse_request(r#"{"type":"nope","id":{"x":1}}"#).unwrap_err();
        assert_eq!(err.id, None);
    }

    #[test]
    fn replies_without_id_have_no_id_field() {
        let text = encode_pong(None, 1);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value, json!({"type":"pong","ts":1}));
        let text = encode_subscribed(Some(&json!(3)), &["a".to_string()], 0, true);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"type":"subscribed","id":3,"channels":["a"],"replayed":0,"complete":true})
        );
    }

    #[test]
    fn error_codes_serialize_as_their_wire_names() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
            assert_eq!(ErrorCode::ALL[code.index()], code);
        }
    }
}
