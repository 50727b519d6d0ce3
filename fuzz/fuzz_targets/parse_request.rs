//! Client message parsing: any UTF-8 text a client can send in a text frame.
//! Every input either parses into a request that keeps the contract's
//! invariants, or becomes an `error` reply with one of the codes the parser
//! may give; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pumphub::protocol::{
    encode_request_error, is_valid_channel_name, parse_request, ErrorCode, Request,
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // tungstenite refuses non-UTF-8 text frames before parsing
    };
    match parse_request(text) {
        Ok(message) => {
            if let Some(id) = &message.id {
                assert!(id.is_string() || id.is_number());
            }
            match &message.request {
                Request::Subscribe { channels, .. } | Request::Unsubscribe { channels } => {
                    assert!(!channels.is_empty());
                    assert!(channels.iter().all(|c| is_valid_channel_name(c)));
                    for (i, c) in channels.iter().enumerate() {
                        assert!(!channels[..i].contains(c), "duplicate channel");
                    }
                }
                Request::Publish { channel, .. } => assert!(is_valid_channel_name(channel)),
                Request::Ping | Request::Auth { .. } => {}
            }
        }
        Err(error) => {
            assert!(matches!(
                error.code,
                ErrorCode::BadJson | ErrorCode::BadMessage | ErrorCode::BadChannel
            ));
            let reply: Value = serde_json::from_str(&encode_request_error(&error))
                .expect("error replies are JSON");
            assert_eq!(reply["type"], "error");
            assert_eq!(reply["code"], error.code.as_str());
        }
    }
});
