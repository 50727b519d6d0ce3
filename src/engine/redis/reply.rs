//! Reading Redis replies into the engine's types: stream entry IDs, the log
//! entries `XREAD` returns, a channel's entries from the replay script.
//!
//! Redis is trusted infrastructure, but its keys can be written by anyone
//! who reaches it, so nothing here panics on a surprising reply: a shape
//! that does not fit is a [`LinkError::Reply`], and an entry whose fields
//! do not decode is skipped by the caller with a warning. Pure functions,
//! unit-tested below; used by the reader and replay threads.

use std::sync::Arc;

use redis::Value;
use serde_json::Value as Json;

use super::connection::LinkError;
use super::script::{KIND_ERROR, KIND_EVENT};
use crate::engine::{Entry, Item};
use crate::protocol::{Event, Seq};

pub(crate) fn reply_error(what: impl Into<String>) -> LinkError {
    LinkError::Reply(what.into())
}

/// The bytes of a string reply.
pub(crate) fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

/// A string reply as text.
pub(crate) fn text(value: &Value) -> Option<&str> {
    bytes(value).and_then(|b| std::str::from_utf8(b).ok())
}

/// An integer reply, or a string holding one.
pub(crate) fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other).and_then(|t| t.parse().ok()),
    }
}

/// The items of an array reply (RESP2 and RESP3 alike).
pub(crate) fn items(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// The seq in a stream entry ID `"<seq>-0"`.
pub(crate) fn entry_seq(id: &[u8]) -> Option<Seq> {
    let id = std::str::from_utf8(id).ok()?;
    let (ms, _) = id.split_once('-')?;
    ms.parse().ok().map(Seq)
}

/// One stream entry: its seq and its field/value pairs.
pub(crate) struct RawEntry<'a> {
    pub seq: Seq,
    fields: &'a [Value],
}

impl<'a> RawEntry<'a> {
    /// The value of `name`, if present.
    pub(crate) fn field(&self, name: &str) -> Option<&'a [u8]> {
        self.fields
            .chunks_exact(2)
            .find(|pair| bytes(&pair[0]) == Some(name.as_bytes()))
            .and_then(|pair| bytes(&pair[1]))
    }

    fn text(&self, name: &str) -> Option<&'a str> {
        self.field(name).and_then(|b| std::str::from_utf8(b).ok())
    }
}

/// The entries of a stream reply (`XRANGE`, or one stream of `XREAD`).
pub(crate) fn stream_entries(value: &Value) -> Result<Vec<RawEntry<'_>>, LinkError> {
    let entries = items(value).ok_or_else(|| reply_error("stream entries are not an array"))?;
    entries
        .iter()
        .map(|entry| {
            let pair = items(entry)
                .filter(|p| p.len() == 2)
                .ok_or_else(|| reply_error("a stream entry is not [id, fields]"))?;
            let seq = bytes(&pair[0])
                .and_then(entry_seq)
                .ok_or_else(|| reply_error("a stream entry ID is not <seq>-0"))?;
            let fields =
                items(&pair[1]).ok_or_else(|| reply_error("stream fields are not an array"))?;
            Ok(RawEntry { seq, fields })
        })
        .collect()
}

/// The log's entries in an `XREAD` reply (nil when the block timed out).
pub(crate) fn xread_entries(value: &Value) -> Result<Vec<RawEntry<'_>>, LinkError> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => match streams.first() {
            None => Ok(Vec::new()),
            Some(stream) => {
                let pair = items(stream)
                    .filter(|p| p.len() == 2)
                    .ok_or_else(|| reply_error("an XREAD stream is not [name, entries]"))?;
                stream_entries(&pair[1])
            }
        },
        Value::Map(streams) => match streams.first() {
            None => Ok(Vec::new()),
            Some((_, entries)) => stream_entries(entries),
        },
        _ => Err(reply_error("XREAD answered neither nil nor streams")),
    }
}

/// Decode a log entry. `None` if its fields do not make an entry (written
/// by something else than a pumphub node); the caller skips it.
pub(crate) fn log_entry(raw: &RawEntry<'_>, node: &str) -> Option<Entry> {
    let kind = raw.text("k")?;
    let ts_ms = raw.text("t").and_then(|t| t.parse().ok()).unwrap_or(0);
    let own = raw.text("n") == Some(node);
    let data: Json = serde_json::from_slice(raw.field("d")?).ok()?;
    let item = match kind {
        KIND_EVENT => Item::Event {
            channel: Arc::from(raw.text("c")?),
            data,
        },
        KIND_ERROR => {
            let Json::Object(mut fields) = data else {
                return None;
            };
            let code = fields
                .remove("code")
                .and_then(|c| c.as_str().map(String::from))?;
            let message = fields
                .remove("message")
                .and_then(|m| m.as_str().map(String::from))?;
            let context = fields.remove("context").filter(|c| !c.is_null());
            Item::Error {
                code,
                message,
                context,
            }
        }
        _ => return None,
    };
    Some(Entry {
        seq: raw.seq,
        ts_ms,
        own,
        item,
    })
}

/// The JSON text a broadcast error is stored as (`d` of a `e` entry).
pub(crate) fn error_data(code: &str, message: &str, context: Option<&Json>) -> String {
    serde_json::json!({"code": code, "message": message, "context": context}).to_string()
}

/// Decode one channel's history entry into an event of `channel`.
pub(crate) fn channel_event(raw: &RawEntry<'_>, channel: &Arc<str>) -> Option<Event> {
    let data = serde_json::from_slice(raw.field("d")?).ok()?;
    let ts_ms = raw.text("t").and_then(|t| t.parse().ok()).unwrap_or(0);
    Some(Event {
        seq: raw.seq,
        channel: channel.clone(),
        ts_ms,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn entry_ids_are_seqs() {
        assert_eq!(entry_seq(b"42-0"), Some(Seq(42)));
        assert_eq!(entry_seq(b"42"), None);
        assert_eq!(entry_seq(b"x-0"), None);
    }

    #[test]
    fn xread_replies_decode_into_log_entries() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("{p}:log"),
            Value::Array(vec![
                entry(
                    "7-0",
                    &["k", "p", "c", "news", "d", "{\"a\":1}", "t", "5", "n", "me"],
                ),
                entry(
                    "8-0",
                    &[
                        "k",
                        "e",
                        "c",
                        "",
                        "d",
                        "{\"code\":\"x\",\"message\":\"m\",\"context\":null}",
                        "t",
                        "6",
                        "n",
                        "other",
                    ],
                ),
                entry(
                    "9-0",
                    &["k", "p", "c", "news", "d", "not json", "t", "6", "n", "me"],
                ),
            ]),
        ])]);
        let raw = xread_entries(&reply).unwrap();
        let decoded: Vec<Option<Entry>> = raw.iter().map(|r| log_entry(r, "me")).collect();
        let first = decoded[0].as_ref().unwrap();
        assert_eq!(first.seq, Seq(7));
        assert!(first.own);
        assert_eq!(
            first.item,
            Item::Event {
                channel: "news".into(),
                data: serde_json::json!({"a": 1})
            }
        );
        let second = decoded[1].as_ref().unwrap();
        assert!(!second.own);
        assert_eq!(
            second.item,
            Item::Error {
                code: "x".into(),
                message: "m".into(),
                context: None
            }
        );
        assert!(decoded[2].is_none(), "undecodable data is skipped");
        assert!(xread_entries(&Value::Nil).unwrap().is_empty());
        assert!(xread_entries(&Value::Int(3)).is_err());
    }
}
