//! A client's byte stream after the upgrade, through tungstenite with the
//! read pump's settings (64 KiB, the hub's default `--max-message-size`),
//! text messages through `parse_request`, and the end mapped to the close
//! code the write pump would send. Nothing panics, and a violation is only
//! ever answered with 1002, 1007 or 1009.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pumphub::testing::fuzzing::{read_client_stream, StreamEnd};

fuzz_target!(|data: &[u8]| {
    let summary = read_client_stream(data, 64 * 1024);
    assert!(summary.requests <= summary.texts);
    if let StreamEnd::Violation(code) = summary.end {
        assert!(matches!(code, 1002 | 1007 | 1009), "close code {code}");
    }
});
