//! The `id` every reply echoes, on any text a client can send: never longer
//! than `MAX_REQUEST_ID_LEN`, always a string or a number, and the same
//! whether the hub parses the request or only skims it (as it does for a
//! frame the rate limit drops). Checked inside `check_request_id`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // tungstenite refuses non-UTF-8 text frames before parsing
    };
    let _ = pumphub::testing::fuzzing::check_request_id(text);
    // The same text as the `id` of a ping: kept only if short.
    let ping = serde_json::json!({"type": "ping", "id": text}).to_string();
    let echoed = pumphub::testing::fuzzing::check_request_id(&ping);
    let short = text.len() <= pumphub::protocol::MAX_REQUEST_ID_LEN;
    assert_eq!(echoed.is_some(), short);
});
