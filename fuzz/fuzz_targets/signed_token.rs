//! Signed tokens: any text a client can present as a token, in the URL,
//! a header or an `auth` message. Every input is refused with a reason and
//! a detail, or accepted with claims whose grants are well-formed; nothing
//! panics. Seeds are real tokens, signed with the secret below.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use pumphub::auth::{JwtVerifier, RefusalReason};

const SECRET: &str = "fuzz-target-secret-0123456789abcdef012345";

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return; // tokens arrive as text: a URL, a header, a JSON string
    };
    let verifier = JwtVerifier::new(&[SECRET]).expect("a usable secret");
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    match verifier.verify(token, now) {
        Ok(claims) => {
            // Only a token signed with SECRET gets here; what it grants
            // must still make sense.
            assert!(!claims.channels.allows(""));
            assert!(!claims.publish.allows(""));
        }
        Err(refusal) => {
            assert!(RefusalReason::ALL.contains(&refusal.reason));
            assert!(!refusal.detail.is_empty());
        }
    }
});
