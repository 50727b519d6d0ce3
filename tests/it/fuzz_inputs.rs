//! Generated hostile input, on stable Rust: the fuzz targets of `fuzz/`
//! (which need nightly and cargo-fuzz) as a bounded, deterministic test.
//!
//! A tiny xorshift generator mutates valid requests (truncations, type
//! swaps, nesting up to and past serde_json's limit of 128, huge numbers,
//! unicode, byte flips) and feeds them to `protocol::parse_request` on a
//! thread with the read pump's stack size. Every input must parse into a
//! request that keeps the contract's invariants, or be refused with one of
//! the three codes the parser gives, and `bad_json` exactly when the text is
//! not JSON. Smaller runs feed mutated upgrade requests and client byte
//! streams to the hidden `pumphub::fuzzing` entry points. Seeds are fixed,
//! so a failure reproduces; the failing input is in the panic message.

use pumphub::protocol::{
    encode_event, encode_request_error, is_valid_channel_name, parse_request, ErrorCode, Request,
};
use pumphub::testing::fuzzing::{
    check_request_head, check_request_id, check_upgrade_query, read_client_stream, StreamEnd,
    UpgradeQuery,
};
use pumphub::testing::READ_PUMP_STACK;
use serde_json::{json, Value};

use crate::support::masked_frame;

/// Requests run through `parse_request`.
const REQUEST_CASES: usize = 20_000;
/// Upgrade request heads and client byte streams (each).
const BYTE_CASES: usize = 3_000;

/// xorshift64*: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Valid requests of every type, the starting points for mutation.
fn valid_requests() -> Vec<Value> {
    vec![
        json!({"type": "subscribe", "channels": ["prices", "news.eu:1-x_y"]}),
        json!({"type": "subscribe", "id": 7, "channels": ["a"], "since": 42}),
        json!({"type": "unsubscribe", "id": "u1", "channels": ["a", "a", "b"]}),
        json!({"type": "publish", "channel": "chat", "data": {"text": "hi", "n": [1, 2.5, null]}}),
        json!({"type": "publish", "id": 1.5, "channel": "x", "data": null}),
        json!({"type": "ping", "id": -3}),
        json!({"type": "auth", "token": "s3cret", "extra": true}),
    ]
}

/// A JSON value of a random type, some of them hostile.
fn any_value(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(rng.chance(2)),
        2 => json!(rng.next() as i64),
        3 => json!(Some(f64::from_bits(rng.next()))
            .filter(|f| f.is_finite())
            .unwrap_or(f64::MAX)),
        4 => json!(random_string(rng)),
        5 => json!([]),
        6 => json!({}),
        7 => json!(["a", 1, null]),
        8 => json!(u64::MAX),
        9 => json!(""),
        10 => json!("x".repeat(200)),
        _ => nested(rng.below(140)),
    }
}

/// `depth` levels of alternating arrays and objects around a number.
fn nested(depth: usize) -> Value {
    let mut value = json!(1);
    for level in 0..depth {
        value = if level % 2 == 0 {
            json!([value])
        } else {
            json!({ "k": value })
        };
    }
    value
}

/// A short string of ASCII, channel-name characters, and any Unicode
/// scalar (including the ones JSON must escape).
fn random_string(rng: &mut Rng) -> String {
    let len = rng.below(12);
    (0..len)
        .map(|_| match rng.below(4) {
            0 => *rng.pick(&['a', 'Z', '0', '_', '.', ':', '-']),
            1 => *rng.pick(&[' ', '"', '\\', '/', '\n', '\u{0}', '\u{7f}']),
            2 => *rng.pick(&['é', 'κ', '✓', '🦀', '\u{fffd}', '\u{feff}', '\u{10ffff}']),
            _ => char::from_u32(rng.next() as u32 % 0x11_0000).unwrap_or('?'),
        })
        .collect()
}

/// Raw text that is hard to build from a `Value`: numbers out of every
/// range, bad escapes, nesting past the limit, unclosed containers.
fn raw_hostile(rng: &mut Rng) -> String {
    let depth = *rng.pick(&[127, 128, 129, 130, 500, 5_000]);
    match rng.below(8) {
        0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!(
            r#"{{"type":"publish","channel":"c","data":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        ),
        2 => format!(
            r#"{{"type":"ping","id":{}}}"#,
            "9".repeat(rng.below(400) + 1)
        ),
        3 => format!(
            r#"{{"type":"subscribe","channels":["a"],"since":{}}}"#,
            rng.pick(&[
                "1e400",
                "-1",
                "18446744073709551616",
                "1.0",
                "0",
                "-0",
                "1e-400"
            ])
        ),
        4 => format!(
            r#"{{"type":"auth","token":"{}"}}"#,
            rng.pick(&[r"\ud800", r"\udc00x", r"\u00", r"\x41", r"\ud83e\udd80"])
        ),
        5 => "{\"type\":".repeat(depth),
        6 => r#"{"type":"ping","id":1,"id":{},"type":"auth"}"#.to_string(),
        _ => format!(
            r#"{{"type":"ping"}}{}"#,
            rng.pick(&["", " ", "x", "{}", "\u{0}"])
        ),
    }
}

/// One generated input: a valid request, mutated zero or more times.
fn generate(rng: &mut Rng, valid: &[Value]) -> String {
    if rng.chance(6) {
        return raw_hostile(rng);
    }
    let mut request = rng.pick(valid).clone();
    for _ in 0..rng.below(3) {
        let object = request.as_object_mut().expect("templates are objects");
        let field = *rng.pick(&[
            "type", "id", "channels", "channel", "data", "since", "token",
        ]);
        match rng.below(4) {
            0 => {
                object.remove(field);
            }
            1 => {
                object.insert(field.into(), any_value(rng));
            }
            2 => {
                let names: Vec<Value> = (0..rng.below(4)).map(|_| any_value(rng)).collect();
                object.insert(field.into(), Value::Array(names));
            }
            _ => {
                let name = random_string(rng);
                object.insert(field.into(), json!([name]));
            }
        }
    }
    if rng.chance(8) {
        request = json!([request]); // valid JSON, not an object
    }
    let mut text = request.to_string();
    if rng.chance(5) {
        let mut cut = rng.below(text.len() + 1);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    if rng.chance(7) && !text.is_empty() {
        let mut bytes = text.into_bytes();
        let at = rng.below(bytes.len());
        bytes[at] = rng.next() as u8;
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

/// What the contract and the parser's docs promise for one input.
fn check_request(text: &str) {
    // The id any reply would echo: short, and read alike both ways.
    check_request_id(text);
    let is_json = serde_json::from_str::<Value>(text).is_ok();
    match parse_request(text) {
        Ok(message) => {
            assert!(is_json, "parsed non-JSON: {text:?}");
            if let Some(id) = &message.id {
                assert!(id.is_string() || id.is_number(), "bad id kept: {text:?}");
            }
            match &message.request {
                Request::Subscribe { channels, .. } | Request::Unsubscribe { channels } => {
                    assert!(!channels.is_empty(), "empty channels: {text:?}");
                    for (i, name) in channels.iter().enumerate() {
                        assert!(is_valid_channel_name(name), "bad name: {text:?}");
                        assert!(!channels[..i].contains(name), "duplicate: {text:?}");
                    }
                }
                Request::Publish { channel, data } => {
                    assert!(is_valid_channel_name(channel), "bad name: {text:?}");
                    // The broadcaster encodes it next; that must not fail either.
                    let event: Value = serde_json::from_str(&encode_event(1, channel, 0, data))
                        .expect("events are JSON");
                    assert_eq!(&event["data"], data);
                }
                Request::Ping | Request::Auth { .. } => {}
            }
        }
        Err(error) => {
            assert!(
                matches!(
                    error.code,
                    ErrorCode::BadJson | ErrorCode::BadMessage | ErrorCode::BadChannel
                ),
                "unexpected code {:?}: {text:?}",
                error.code
            );
            assert_eq!(
                error.code == ErrorCode::BadJson,
                !is_json,
                "bad_json exactly for non-JSON: {text:?}"
            );
            assert!(!error.message.is_empty());
            let reply: Value = serde_json::from_str(&encode_request_error(&error))
                .unwrap_or_else(|e| panic!("error reply not JSON ({e}): {text:?}"));
            assert_eq!(reply["type"], "error");
            assert_eq!(reply["code"], error.code.as_str());
            assert_eq!(reply.get("id"), error.id.as_ref());
        }
    }
}

/// 20k generated requests, on a thread with the read pump's stack, so
/// nesting at serde_json's limit must also fit in what the hub gives it.
#[test]
fn generated_requests_parse_or_get_a_known_error_code() {
    let runner = std::thread::Builder::new()
        .name("fuzz-inputs".into())
        .stack_size(READ_PUMP_STACK)
        .spawn(|| {
            let valid = valid_requests();
            for text in valid.iter().map(Value::to_string) {
                assert!(parse_request(&text).is_ok(), "template refused: {text}");
            }
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut parsed = 0;
            for _ in 0..REQUEST_CASES {
                let text = generate(&mut rng, &valid);
                check_request(&text);
                parsed += usize::from(parse_request(&text).is_ok());
            }
            parsed
        })
        .expect("spawn");
    let parsed = runner.join().expect("no panic, no stack overflow");
    // The generator must reach both sides, or it checks little.
    assert!(
        parsed > REQUEST_CASES / 20 && parsed < REQUEST_CASES * 19 / 20,
        "{parsed} of {REQUEST_CASES} parsed"
    );
}

/// Mutated upgrade requests: accepted, or refused with 400/404/431.
#[test]
fn generated_upgrade_requests_get_a_known_status() {
    let good = b"GET /ws?channels=a,b&since=5&token=t%2Bx HTTP/1.1\r\nHost: x\r\n\
        Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_eq!(check_request_head(good), Ok(()));
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..BYTE_CASES {
        let mut head = good.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(head.len());
            match rng.below(3) {
                0 => head[at] = rng.next() as u8,
                1 => {
                    head.remove(at);
                }
                _ => head.insert(at, *rng.pick(b"\r\n:%?&=, \0\xff")),
            }
        }
        if let Err(status) = check_request_head(&head) {
            assert!(
                matches!(status, 400 | 404 | 431),
                "status {status} for {:?}",
                String::from_utf8_lossy(&head)
            );
        }
    }
}

/// Mutated client streams through tungstenite with the read pump's
/// settings: they end by Close, by a violation answered with 1002, 1007
/// or 1009, or by running out; never by a panic.
#[test]
fn generated_client_streams_end_with_a_known_close_code() {
    let mut rng = Rng(0x0bad_cafe_f00d_d00d);
    let mut violations = 0;
    for _ in 0..BYTE_CASES {
        let mask = (rng.next() as u32).to_be_bytes();
        let mut stream = Vec::new();
        for _ in 0..=rng.below(4) {
            let frame = match rng.below(7) {
                0 => masked_frame(0x1, true, br#"{"type":"ping","id":1}"#, mask),
                1 => masked_frame(0x1, false, b"{\"type\":", mask),
                2 => masked_frame(0x0, true, b"\"ping\"}", mask),
                3 => masked_frame(0x9, true, b"are you there", mask),
                4 => masked_frame(0x2, true, &[0xce, 0xba, 0xff], mask),
                5 => masked_frame(0x8, true, &[0x03, 0xe8, b'o', b'k'], mask),
                _ => masked_frame(0x1, true, &vec![b'x'; rng.below(2_000)], mask),
            };
            stream.extend(frame);
        }
        for _ in 0..rng.below(3) {
            let at = rng.below(stream.len());
            stream[at] = rng.next() as u8;
        }
        let summary = read_client_stream(&stream, 1024);
        assert!(summary.requests <= summary.texts);
        if let StreamEnd::Violation(code) = summary.end {
            violations += 1;
            assert!(
                matches!(code, 1002 | 1007 | 1009),
                "close code {code} for {stream:02x?}"
            );
        }
    }
    assert!(violations > 0, "the generator never broke the protocol");
}

/// Numbers in `data` reach subscribers as the publisher wrote them: the
/// float below came back one ulp off before serde_json's `float_roundtrip`
/// was turned on (found by the test above).
#[test]
fn published_floats_survive_parsing_exactly() {
    let text = r#"{"type":"publish","channel":"c","data":[5.0793309672456794e+197,0.1,1e-300]}"#;
    let Ok(message) = parse_request(text) else {
        panic!("a valid publish")
    };
    let Request::Publish { data, .. } = message.request else {
        panic!("a publish")
    };
    let expected: [f64; 3] = [5.0793309672456794e+197, 0.1, 1e-300];
    for (got, want) in data.as_array().unwrap().iter().zip(expected) {
        assert_eq!(got.as_f64().unwrap().to_bits(), want.to_bits(), "{got}");
    }
}

/// Issue 12: the `id` every reply echoes. Ids of every length around the
/// limit, in every request type and in broken JSON: one longer than
/// `MAX_REQUEST_ID_LEN` is never echoed, by any reply (`check_request_id`
/// asserts that, and that parsing and the rate limit's skim agree).
#[test]
fn generated_ids_are_echoed_only_when_short() {
    use pumphub::protocol::MAX_REQUEST_ID_LEN;
    let mut rng = Rng(0x51de_c0de_0000_0001);
    let valid = valid_requests();
    for _ in 0..1000 {
        let len = match rng.below(3) {
            0 => MAX_REQUEST_ID_LEN + rng.below(3) - 1,
            1 => rng.below(MAX_REQUEST_ID_LEN),
            _ => rng.below(400),
        };
        let id: String = (0..len)
            .map(|_| *rng.pick(&['i', 'é', '"', '\\', '🦀']))
            .collect();
        let mut request = rng.pick(&valid).clone();
        request["id"] = json!(id);
        let whole = request.to_string();
        let mut text = whole.clone();
        if rng.chance(4) {
            let mut cut = rng.below(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        let echoed = check_request_id(&text);
        if let Some(Value::String(echoed)) = &echoed {
            assert!(echoed.len() <= MAX_REQUEST_ID_LEN);
        }
        if text == whole {
            // Whole: echoed exactly when short.
            assert_eq!(echoed.is_some(), id.len() <= MAX_REQUEST_ID_LEN, "{len}");
        }
    }
}

/// Issue 12: generated `/ws` queries, valid and mutated. Accepted ones name
/// valid, distinct channels; an unknown parameter never changes the
/// verdict, whatever it holds (`x=%zz` used to get 400).
#[test]
fn generated_queries_ignore_unknown_parameters() {
    let mut rng = Rng(0x7175_6572_7900_0001);
    let parts = [
        "channels=a,b",
        "channels=a%2Cb",
        "channels=bad%20name",
        "channels=",
        "since=5",
        "since=-1",
        "since=%35",
        "token=t%2Bx",
        "token=%zz",
        "x=%zz",
        "x=%",
        "y",
        "&",
        "%",
        "channels=a+b",
    ];
    let mut accepted = 0;
    for _ in 0..BYTE_CASES {
        let mut query: String = (0..=rng.below(4))
            .map(|_| *rng.pick(&parts))
            .collect::<Vec<_>>()
            .join("&");
        if rng.chance(3) && !query.is_empty() {
            let at = rng.below(query.len());
            if query.is_char_boundary(at) {
                query.insert(at, *rng.pick(&['%', '&', '=', ',', 'z']));
            }
        }
        let verdict = check_upgrade_query(&query);
        if let Some(UpgradeQuery {
            channels: Some(channels),
            ..
        }) = &verdict
        {
            accepted += 1;
            for (i, name) in channels.iter().enumerate() {
                assert!(is_valid_channel_name(name), "{query:?}");
                assert!(!channels[..i].contains(name), "{query:?}");
            }
        }
        for junk in ["zz=%zz", "q=%", "unknown=%e9%", "w"] {
            let extended = format!("{query}&{junk}");
            assert_eq!(check_upgrade_query(&extended), verdict, "{extended:?}");
        }
    }
    assert!(accepted > 0, "the generator never made a good query");
}

/// Signed tokens (issue 14), generated: headers and claims from valid
/// ones by the JSON mutator above (so nesting reaches serde_json's limit
/// inside a claim), signed with the hub's secret, another one or none, then
/// sometimes cut or flipped, and checked by `JwtVerifier::verify` on a
/// thread with the read pump's stack, where the hub checks them. No input
/// panics; every refusal has a reason and a detail; a token is accepted
/// only if it went out unmutated, signed with the secret, with an `HS256`
/// header.
#[test]
fn generated_signed_tokens_are_accepted_only_when_signed() {
    use data_encoding::BASE64URL_NOPAD;
    use hmac::{Hmac, KeyInit, Mac};
    use pumphub::auth::{JwtVerifier, RefusalReason};
    use sha2::Sha256;
    use std::time::{Duration, UNIX_EPOCH};

    const SECRET: &str = "fuzz-inputs-secret-0123456789abcdef0123456";
    const CASES: usize = 5_000;
    let runner = std::thread::Builder::new()
        .name("fuzz-tokens".into())
        .stack_size(READ_PUMP_STACK)
        .spawn(|| {
            let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            let verifier = JwtVerifier::new(&[SECRET]).unwrap();
            let headers = [
                json!({"alg": "HS256", "typ": "JWT"}),
                json!({"alg": "HS256"}),
                json!({"alg": "none"}),
            ];
            let claims = [
                json!({"sub": "u", "exp": 1_700_000_600u64, "channels": ["news", "user.u.*"]}),
                json!({"exp": 1_700_000_600u64, "publish": ["*"], "nbf": 1_699_999_000u64}),
            ];
            let mut rng = Rng(0x5eed_0f70_4e45_1234);
            let (mut accepted, mut reasons) = (0, std::collections::HashSet::new());
            for _ in 0..CASES {
                let header = if rng.chance(4) {
                    generate(&mut rng, &headers)
                } else {
                    rng.pick(&headers).to_string()
                };
                let payload = if rng.chance(3) {
                    generate(&mut rng, &claims)
                } else {
                    rng.pick(&claims).to_string()
                };
                let input = format!(
                    "{}.{}",
                    BASE64URL_NOPAD.encode(header.as_bytes()),
                    BASE64URL_NOPAD.encode(payload.as_bytes())
                );
                let signed_by_us = !rng.chance(4);
                let key = if signed_by_us {
                    SECRET
                } else {
                    "somebody-elses-secret-0123456789abcdef"
                };
                let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
                mac.update(input.as_bytes());
                let mut token = format!(
                    "{input}.{}",
                    BASE64URL_NOPAD.encode(&mac.finalize().into_bytes())
                );
                let mutated = rng.chance(3);
                if mutated {
                    let at = rng.below(token.len());
                    match rng.below(3) {
                        0 => token.truncate(at),
                        1 => token.insert(at, *rng.pick(&['.', '=', 'A', '+', ' ', 'é'])),
                        _ => {
                            token.remove(at);
                        }
                    }
                }
                match verifier.verify(&token, now) {
                    Ok(_) => {
                        accepted += 1;
                        assert!(signed_by_us && !mutated, "accepted {token}");
                        // (Not parsed again here: a header nested to
                        // serde_json's limit inside an unknown field is
                        // fine for the verifier but too deep for `Value`.)
                        assert!(header.contains(r#""HS256""#), "{token}");
                    }
                    Err(refusal) => {
                        assert!(!refusal.detail.is_empty(), "{token}");
                        assert!(RefusalReason::ALL.contains(&refusal.reason));
                        reasons.insert(refusal.reason);
                    }
                }
            }
            (accepted, reasons.len())
        })
        .expect("spawn");
    let (accepted, reasons) = runner.join().expect("no panic, no stack overflow");
    assert!(accepted > CASES / 10, "only {accepted} of {CASES} accepted");
    assert!(reasons >= 5, "only {reasons} refusal reasons reached");
}
