//! The upgrade request checks (method, path, upgrade headers, query syntax)
//! on any request head: they pass or name one of the statuses the contract
//! gives for a malformed request; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(status) = pumphub::testing::fuzzing::check_request_head(data) {
        assert!(matches!(status, 400 | 404 | 431), "status {status}");
    }
});
