//! Unit tests of parsing and encoding together: what a client sends and
//! what the hub answers.

use super::*;
use serde_json::{json, Value};

fn code_of(text: &str) -> ErrorCode {
    parse_request(text).unwrap_err().code
}

#[test]
fn channel_names_follow_the_contract_pattern() {
    assert!(is_valid_channel_name("a"));
    assert!(is_valid_channel_name(&"x".repeat(128)));
    assert!(!is_valid_channel_name(&"x".repeat(129)));
    assert!(!is_valid_channel_name("a/b"));
    assert!(!is_valid_channel_name("é"));
}

#[test]
fn parses_each_request_type() {
    let sub = parse_request(r#"{"type":"subscribe","channels":["a"],"since":5}"#).unwrap();
    assert_eq!(
        sub.request,
        Request::Subscribe {
            channels: vec!["a".into()],
            since: Some(5)
        }
    );
    let unsub = parse_request(r#"{"type":"unsubscribe","channels":["a"],"id":"x"}"#).unwrap();
    assert_eq!(unsub.id, Some(json!("x")));
    let publish = parse_request(r#"{"type":"publish","channel":"c","data":null}"#).unwrap();
    assert_eq!(
        publish.request,
        Request::Publish {
            channel: "c".into(),
            data: Value::Null
        }
    );
    assert_eq!(
        parse_request(r#"{"type":"ping"}"#).unwrap().request,
        Request::Ping
    );
    assert_eq!(
        parse_request(r#"{"type":"auth","token":"t"}"#)
            .unwrap()
            .request,
        Request::Auth { token: "t".into() }
    );
}

#[test]
fn rejects_malformed_requests_with_the_right_code() {
    assert_eq!(code_of("not json"), ErrorCode::BadJson);
    assert_eq!(code_of("[1,2]"), ErrorCode::BadMessage);
    assert_eq!(code_of(r#"{"channels":["a"]}"#), ErrorCode::BadMessage);
    assert_eq!(code_of(r#"{"type":"dance"}"#), ErrorCode::BadMessage);
    assert_eq!(code_of(r#"{"type":7}"#), ErrorCode::BadMessage);
    assert_eq!(
        code_of(r#"{"type":"subscribe","channels":[]}"#),
        ErrorCode::BadMessage
    );
    assert_eq!(
        code_of(r#"{"type":"subscribe","channels":[1]}"#),
        ErrorCode::BadMessage
    );
    assert_eq!(
        code_of(r#"{"type":"subscribe","channels":"a"}"#),
        ErrorCode::BadMessage
    );
    assert_eq!(
        code_of(r#"{"type":"subscribe","channels":["a"],"since":-1}"#),
        ErrorCode::BadMessage
    );
    assert_eq!(
        code_of(r#"{"type":"subscribe","channels":["ok","bad name"]}"#),
        ErrorCode::BadChannel
    );
    assert_eq!(
        code_of(r#"{"type":"publish","channel":"c"}"#),
        ErrorCode::BadMessage
    );
    assert_eq!(
        code_of(r#"{"type":"publish","channel":"c d","data":1}"#),
        ErrorCode::BadChannel
    );
    assert_eq!(
        code_of(r#"{"type":"ping","id":[1]}"#),
        ErrorCode::BadMessage
    );
}

#[test]
fn errors_carry_the_request_id_when_it_is_valid() {
    let err = parse_request(r#"{"type":"nope","id":"abc"}"#).unwrap_err();
    assert_eq!(err.id, Some(json!("abc")));
    let err = parse_request(r#"{"type":"nope","id":{"x":1}}"#).unwrap_err();
    assert_eq!(err.id, None);
}

#[test]
fn replies_without_id_have_no_id_field() {
    let text = encode_pong(None, 1);
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value, json!({"type":"pong","ts":1}));
    let text = encode_subscribed(Some(&json!(3)), &["a".to_string()], 0, true);
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        json!({"type":"subscribed","id":3,"channels":["a"],"replayed":0,"complete":true})
    );
    let text = encode_subscribed_incomplete(None, &["a".to_string()], 2, 7);
    assert_eq!(
        text,
        r#"{"type":"subscribed","channels":["a"],"replayed":2,"complete":false,"oldest":7}"#
    );
}

#[test]
fn error_codes_serialize_as_their_wire_names() {
    for code in ErrorCode::ALL {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        assert_eq!(ErrorCode::ALL[code.index()], code);
    }
}

#[test]
fn an_id_longer_than_the_limit_is_refused_and_never_echoed() {
    let at_limit = "i".repeat(MAX_REQUEST_ID_LEN);
    let over = "i".repeat(MAX_REQUEST_ID_LEN + 1);
    let ping = |id: &str| json!({"type": "ping", "id": id}).to_string();
    assert_eq!(
        parse_request(&ping(&at_limit)).unwrap().id,
        Some(json!(at_limit))
    );
    let error = parse_request(&ping(&over)).unwrap_err();
    assert_eq!(error.code, ErrorCode::BadMessage);
    assert_eq!(error.id, None);
    // The reply to it stays small whatever the client sent.
    let huge = ping(&"i".repeat(60_000));
    let reply = encode_request_error(&parse_request(&huge).unwrap_err());
    assert!(reply.len() < 200, "{reply}");
    // The rate limit's skim echoes only what parse_request would.
    assert_eq!(request_id(&ping(&at_limit)), Some(json!(at_limit)));
    assert_eq!(request_id(&ping(&over)), None);
    assert_eq!(request_id(&huge), None);
    // Numbers are short by nature and always echoed.
    assert_eq!(request_id(r#"{"id":-1.5e300}"#), Some(json!(-1.5e300)));
    // A key twice: the last one, as parse_request keeps it (fuzz finding).
    let twice = format!(r#"{{"type":"ping","id":"{over}","id":"short"}}"#);
    assert_eq!(parse_request(&twice).unwrap().id, Some(json!("short")));
    assert_eq!(request_id(&twice), Some(json!("short")));
    let twice = format!(r#"{{"type":"ping","id":"short","id":"{over}"}}"#);
    assert_eq!(parse_request(&twice).unwrap_err().id, None);
    assert_eq!(request_id(&twice), None);
}
