//! The `code` of an `error` frame: one variant per way a request can be
//! refused. Pure data; the read pump and the broadcaster pick a code, the
//! metrics count replies per code.

use serde::Serialize;

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
    /// Cluster mode: the shared event log (Redis) cannot be reached, so the
    /// publish was not taken. Nothing was published; try again later.
    Unavailable,
}

impl ErrorCode {
    /// Every code, for metrics that list one series per code.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::BadJson,
        ErrorCode::BadMessage,
        ErrorCode::BinaryUnsupported,
        ErrorCode::BadChannel,
        ErrorCode::Forbidden,
        ErrorCode::Unauthenticated,
        ErrorCode::TooManySubscriptions,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
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
            ErrorCode::Unavailable => "unavailable",
        }
    }

    /// A position in [`ErrorCode::ALL`], for per-code counters.
    pub fn index(self) -> usize {
        self as usize
    }
}
