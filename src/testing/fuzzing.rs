//! Entry points for the fuzz targets (`fuzz/`) and the stable-Rust input
//! tests (`tests/it/fuzz_inputs.rs`): the code that reads bytes a peer
//! controls, callable without sockets or threads.
//!
//! - [`check_request_head`]: the upgrade request checks of `ws/handshake.rs`.
//! - [`check_upgrade_query`]: the `/ws` query alone (`?channels=&since=&token=`).
//! - [`check_request_id`]: the `id` a reply echoes, both ways the hub reads
//!   it (parsing the request, or skimming a dropped one for `rate_limited`).
//! - [`read_client_stream`]: a client's byte stream through tungstenite with
//!   the read pump's own settings, each text message through
//!   [`parse_request`](crate::protocol::parse_request), and the read error
//!   mapped to a close reason as the read pump does.
//!
//! Client message parsing needs no wrapper: it is
//! [`protocol::parse_request`](crate::protocol::parse_request).
//!
//! Not part of the embedding API: hidden from the docs, may change.

use std::io::{self, Read, Write};

use tungstenite::protocol::{Role, WebSocket};
use tungstenite::Message;

use crate::protocol;
use crate::ws::{done_for, read_config, Done};

/// The upgrade checks the hub runs on a request head (method, path,
/// upgrade headers, `?channels=&since=&token=` syntax): `Ok(())` if they
/// pass, else the HTTP status it would answer. Never panics.
pub fn check_request_head(head: &[u8]) -> Result<(), u16> {
    crate::ws::check_request_head(head)
}

/// What a `/ws` query asks for, as the handshake reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeQuery {
    /// `?channels=`: valid names, duplicates removed.
    pub channels: Option<Vec<String>>,
    /// `?since=`, only beside `channels`.
    pub since: Option<u64>,
    /// Whether a `?token=` came.
    pub token: bool,
}

/// The `/ws` query check alone: what the query asks for, or `None` for a
/// query answered 400. Never panics.
pub fn check_upgrade_query(query: &str) -> Option<UpgradeQuery> {
    let (initial, token) = crate::ws::check_query(query).ok()?;
    let (channels, since) = match initial {
        Some((channels, since)) => (Some(channels), since),
        None => (None, None),
    };
    Some(UpgradeQuery {
        channels,
        since,
        token,
    })
}

/// The `id` the hub would echo in a reply to `text`, checked both ways it
/// reads one: through `parse_request` (every reply but `rate_limited`) and
/// through the skim for a dropped frame (`rate_limited`). Panics if they
/// disagree on a request that parses, or if either would echo an `id`
/// longer than [`MAX_REQUEST_ID_LEN`](crate::protocol::MAX_REQUEST_ID_LEN)
/// or one that is neither a string nor a number. Returns it.
pub fn check_request_id(text: &str) -> Option<protocol::RequestId> {
    let short = |id: &protocol::RequestId| match id {
        serde_json::Value::String(s) => s.len() <= protocol::MAX_REQUEST_ID_LEN,
        serde_json::Value::Number(_) => true,
        _ => false,
    };
    let skimmed = protocol::request_id(text);
    assert!(
        skimmed.as_ref().is_none_or(short),
        "skim echoes {skimmed:?}"
    );
    let parsed = match protocol::parse_request(text) {
        Ok(message) => {
            // A request that parses has its id read the same both ways.
            assert_eq!(message.id, skimmed, "parse and skim disagree");
            message.id
        }
        Err(error) => error.id,
    };
    assert!(parsed.as_ref().is_none_or(short), "reply echoes {parsed:?}");
    parsed
}

/// What [`read_client_stream`] saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// Text messages.
    pub texts: usize,
    /// Text messages that parsed as requests.
    pub requests: usize,
    /// Binary, Ping and Pong messages.
    pub others: usize,
    /// How the stream ended, as the read pump's `Done` would say.
    pub end: StreamEnd,
}

/// How a client's stream ended, by the close code the write pump answers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The client sent Close; the write pump echoes this code (`None`:
    /// a Close without a code).
    PeerClosed(Option<u16>),
    /// The client broke the protocol; the write pump closes with this code.
    Violation(u16),
    /// The bytes ran out without a Close, or the stream failed otherwise:
    /// no close frame.
    #[default]
    Ended,
}

/// Read `bytes` as a client's stream after the upgrade, as the read pump
/// does: the same tungstenite settings (`max_message_size` caps frames and
/// messages), text messages through `parse_request`, the end mapped to a
/// `Done`. Bounded: every message consumes input, and the end of the bytes
/// ends the stream. Never panics.
pub fn read_client_stream(bytes: &[u8], max_message_size: usize) -> StreamSummary {
    let mut socket = WebSocket::from_raw_socket(
        ClientBytes(bytes),
        Role::Server,
        Some(read_config(max_message_size)),
    );
    let mut summary = StreamSummary::default();
    // A frame header is at least 2 bytes, so this bound is never reached.
    for _ in 0..=bytes.len() {
        let message = match socket.read() {
            Ok(message) => message,
            Err(error) => {
                if let Done::Violation(code, _) = done_for(error) {
                    summary.end = StreamEnd::Violation(code.into());
                }
                break;
            }
        };
        match message {
            Message::Text(text) => {
                summary.texts += 1;
                if protocol::parse_request(&text).is_ok() {
                    summary.requests += 1;
                }
            }
            Message::Close(frame) => {
                summary.end = StreamEnd::PeerClosed(frame.map(|f| f.code.into()));
                break;
            }
            _ => summary.others += 1,
        }
    }
    summary
}

/// A client's bytes as a stream: reads them, discards writes (the read
/// pump's `ReadSide` does the same with a socket).
struct ClientBytes<'a>(&'a [u8]);

impl Read for ClientBytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ClientBytes<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
