//! The wire contract as Rust types: what a client may send, what the hub
//! sends back, and how both look as JSON (docs/protocol.md is the contract
//! in prose).
//!
//! The bottom layer of the crate: pure code with no threads, no sockets and
//! no hub state, so the hub and the Rust client (`client/`) share it. The
//! read pump calls [`parse_request`] on every text frame; the broadcaster
//! and the read pump call the `encode_*` functions to build frames.
//!
//! Peer-facing errors are data, not Rust errors: a [`RequestError`] becomes
//! an `error` reply and the connection stays open.

mod channel;
mod error_code;
mod event;
mod reply;
mod request;
#[cfg(test)]
mod tests;

pub use channel::{is_valid_channel_name, MAX_CHANNEL_NAME_LEN};
pub use error_code::ErrorCode;
pub use event::{unix_ms, Event, Published, Seq};
pub use reply::{
    encode_authenticated, encode_broadcast_error, encode_event, encode_pong, encode_published,
    encode_request_error, encode_shutdown, encode_subscribed, encode_subscribed_incomplete,
    encode_unsubscribed, encode_welcome, EVENT_FRAME_OVERHEAD,
};
pub use request::{
    parse_request, request_id, truncate, ClientMessage, Request, RequestError, RequestId,
    MAX_REQUEST_ID_LEN,
};

/// Close code for a slow consumer whose outbound queue overflowed.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;

/// Close code for a connection whose signed token expired before the
/// client sent a fresh one in an `auth` message.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
