//! What a client may send: [`parse_request`] turns one text frame into a
//! [`ClientMessage`] or a [`RequestError`] (which becomes an `error` reply;
//! the connection stays open). Pure code; the read pump calls it on every
//! text frame.

use serde_json::{Map, Value};

use super::channel::is_valid_channel_name;
use super::error_code::ErrorCode;

/// A request's `id`: a JSON string or number, chosen by the client and sent
/// back verbatim in the reply.
pub type RequestId = Value;

/// The longest string `id` the hub echoes, in bytes. Every reply echoes the
/// `id` (`unauthenticated` and `rate_limited` included), so without a bound
/// a client that never reads could make each of its queued replies as big
/// as a whole message. A longer `id` is refused with `bad_message` (without
/// `id`); a number `id` is at most a few dozen characters anyway.
pub const MAX_REQUEST_ID_LEN: usize = 128;

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
        Some(Value::String(id)) if id.len() > MAX_REQUEST_ID_LEN => {
            return Err(RequestError::new(
                None,
                ErrorCode::BadMessage,
                format!("`id` must be at most {MAX_REQUEST_ID_LEN} bytes"),
            ))
        }
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
/// `id` of a JSON object, else `None`; also `None` for a string longer than
/// [`MAX_REQUEST_ID_LEN`], which is never echoed. Skims the other fields
/// without building them, and never fails.
///
/// ```
/// use pumphub::protocol::request_id;
/// assert_eq!(request_id(r#"{"type":"ping","id":"a"}"#), Some(serde_json::json!("a")));
/// assert_eq!(request_id(r#"{"id":[1]}"#), None);
/// assert_eq!(request_id("{nope"), None);
/// ```
pub fn request_id(text: &str) -> Option<RequestId> {
    match serde_json::from_str::<LastId>(text).ok()?.0? {
        Value::String(id) if id.len() > MAX_REQUEST_ID_LEN => None,
        id @ (Value::String(_) | Value::Number(_)) => Some(id),
        _ => None,
    }
}

/// The last `id` of a JSON object, every other value skipped unbuilt. The
/// last, because that is the one `parse_request` keeps when a client sends
/// `id` twice (serde_json's map keeps the last value of a key); a derived
/// struct would refuse the duplicate instead, and the rate limit's reply
/// would then lose an `id` every other reply echoes (found by the
/// `request_id` fuzz target).
struct LastId(Option<Value>);

impl<'de> serde::Deserialize<'de> for LastId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = LastId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<LastId, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "id" {
                        id = Some(map.next_value::<Value>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(LastId(id))
            }
        }
        deserializer.deserialize_map(Fields)
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
    // request is rejected if any one is bad (docs/protocol.md, "Requests").
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

/// Cut `text` to at most `max` bytes on a char boundary, for quoting peer
/// input in messages and logs without quoting megabytes.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
