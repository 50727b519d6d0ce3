//! The frames of docs/protocol.md ("Frames", "Requests", "Server to client") over a real socket: `welcome`,
//! replies with their `id`, and error replies that leave the connection open.

use serde_json::{json, Value};
use tungstenite::Message;

use crate::support::*;

/// The first frame carries the fields the contract lists, with this hub's
/// epoch, so a client can tell a restarted hub.
#[test]
fn welcome_is_the_first_frame() {
    let hub = TestHub::new().start();
    let client = hub.client();
    let welcome = &client.welcome;
    let id = welcome["connection_id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id, id.to_lowercase());
    assert_eq!(welcome["epoch"], hub.handle.epoch());
    assert!(welcome["server"].as_str().unwrap().starts_with("pumphub/"));
    assert_eq!(welcome["seq"], 0);
    assert_eq!(welcome["heartbeat_ms"], 30000);
    hub.handle.publish("x", json!(1)).unwrap();
    let late = hub.client();
    assert_eq!(late.welcome["seq"], 1);
}

#[test]
fn subscribe_and_unsubscribe_echo_the_id() {
    let hub = TestHub::new().start();
    let mut client = hub.client();
    client.send_json(json!({"type":"subscribe","id":"s1","channels":["a","b","a"]}));
    let reply = client.recv_json();
    assert_eq!(
        reply,
        json!({"type":"subscribed","id":"s1","channels":["a","b"],"replayed":0,"complete":true})
    );
    client.send_json(json!({"type":"unsubscribe","id":2,"channels":["a","zzz"]}));
    assert_eq!(
        client.recv_json(),
        json!({"type":"unsubscribed","id":2,"channels":["a","zzz"]})
    );
    // No `id` in the request: no `id` in the reply.
    client.send_json(json!({"type":"ping"}));
    let pong = client.recv_json();
    assert_eq!(pong["type"], "pong");
    assert!(pong.get("id").is_none());
    assert!(pong["ts"].as_u64().unwrap() > 1_600_000_000_000);
}

/// After `unsubscribed`, nothing more of that channel arrives; the other
/// channel keeps flowing.
#[test]
fn unsubscribe_stops_delivery_of_that_channel_only() {
    let hub = TestHub::new().start();
    let mut client = hub.subscriber(&["a", "b"]);
    client.send_json(json!({"type":"unsubscribe","channels":["a"]}));
    client.recv_until("unsubscribed");
    hub.handle.publish("a", json!("no")).unwrap();
    let b = hub.handle.publish("b", json!("yes")).unwrap();
    let event = client.recv_event();
    assert_eq!(event["seq"], b.seq.0);
    assert_eq!(event["channel"], "b");
}

#[test]
fn subscribing_twice_does_not_double_delivery() {
    let hub = TestHub::new().start();
    let mut client = hub.subscriber(&["a"]);
    client.subscribe(&["a"], None);
    let first = hub.handle.publish("a", json!(1)).unwrap();
    let second = hub.handle.publish("a", json!(2)).unwrap();
    assert_eq!(client.recv_event()["seq"], first.seq.0);
    assert_eq!(client.recv_event()["seq"], second.seq.0);
}

fn error_for(client: &mut Client, text: &str) -> Value {
    client.send_text(text);
    let reply = client.recv_json();
    assert_eq!(reply["type"], "error", "for {text}: {reply}");
    reply
}

/// Bad input gets an `error` reply with the right code, and the
/// connection stays usable (a `ping` after each still gets its `pong`).
#[test]
fn bad_requests_get_error_replies_and_the_connection_stays() {
    let hub = TestHub::new().start();
    let mut client = hub.client();
    let cases = [
        ("{not json", "bad_json"),
        ("[1,2,3]", "bad_message"),
        (r#"{"type":"dance","id":"d"}"#, "bad_message"),
        (r#"{"type":"subscribe","channels":[]}"#, "bad_message"),
        (r#"{"type":"subscribe","channels":[5]}"#, "bad_message"),
        (
            r#"{"type":"subscribe","channels":["ok","not ok"]}"#,
            "bad_channel",
        ),
        (r#"{"type":"ping","id":{"x":1}}"#, "bad_message"),
        (r#"{"type":"publish","channel":"a","data":1}"#, "forbidden"),
    ];
    for (text, code) in cases {
        let reply = error_for(&mut client, text);
        assert_eq!(reply["code"], code, "for {text}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(reply.get("seq").is_none());
    }
    assert_eq!(
        error_for(&mut client, r#"{"type":"dance","id":"d"}"#)["id"],
        "d"
    );
    client.socket.send(Message::binary(vec![1, 2, 3])).unwrap();
    let reply = client.recv_json();
    assert_eq!(reply["code"], "binary_unsupported");
    client.send_json(json!({"type":"ping","id":1e3}));
    let pong = client.recv_json();
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["id"], 1000.0);
}

/// With `--allow-client-publish`, a client's publish reaches subscribers
/// (itself included) and is answered with `published`.
#[test]
fn client_publish_when_allowed() {
    let hub = TestHub::new()
        .config(|c| c.allow_client_publish = true)
        .start();
    let mut watcher = hub.subscriber(&["chat"]);
    let mut publisher = hub.subscriber(&["chat"]);
    publisher.send_json(json!({"type":"publish","id":"p","channel":"chat","data":{"hi":1}}));
    let mut frames = [publisher.recv_json(), publisher.recv_json()];
    frames.sort_by_key(|f| f["type"].as_str().unwrap().to_string());
    assert_eq!(frames[0]["type"], "event");
    assert_eq!(frames[1]["type"], "published");
    assert_eq!(frames[1]["id"], "p");
    assert_eq!(frames[1]["delivered"], 2);
    let event = watcher.recv_event();
    assert_eq!(event["data"], json!({"hi":1}));
    assert_eq!(event["seq"], frames[1]["seq"]);
}

/// `welcome` is the first frame even when the client sends a request
/// without waiting for it: the read pump, which answers `ping` itself,
/// starts only once the broadcaster has queued `welcome`. Before that fix
/// the `pong` came first in most rounds.
#[test]
fn welcome_comes_before_replies_to_requests_sent_at_once() {
    let hub = TestHub::new().start();
    for round in 0..20 {
        let mut client = Client::connect(hub.ws, "/ws").expect("upgrade succeeds");
        client.send_json(json!({"type": "ping", "id": round}));
        assert_eq!(client.recv_json()["type"], "welcome", "round {round}");
        assert_eq!(client.recv_json()["id"], round);
    }
}

/// Deeply nested JSON stays within the pumps' small stacks: serde_json
/// stops at 128 levels (`bad_json`), and a publish nested just below that
/// is parsed, fanned out, serialized and dropped without overflowing any
/// thread's stack (an overflow would abort this whole test process). With
/// history off, the write pump drops the last reference to the event, so
/// its stack is exercised too. Minimum stacks found this way (2026-11-22):
/// read pump 48 KiB in release but over 128 KiB in debug; see
/// `READ_PUMP_STACK` for the sizes chosen.
#[test]
fn deeply_nested_json_does_not_overflow_the_pump_stacks() {
    let hub = TestHub::new()
        .config(|c| {
            c.allow_client_publish = true;
            c.max_message_size = 1 << 20;
            c.history_size = 0;
        })
        .start();
    let mut client = hub.subscriber(&["deep"]);
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let too_deep = format!(
        r#"{{"type":"publish","channel":"deep","data":{}}}"#,
        nested(100_000)
    );
    client.send_text(&too_deep);
    assert_eq!(client.recv_json()["code"], "bad_json");
    let deep_enough = format!(
        r#"{{"type":"publish","channel":"deep","data":{}}}"#,
        nested(126)
    );
    client.send_text(&deep_enough);
    let (published, before) = client.recv_until("published");
    assert_eq!(published["delivered"], 1);
    let event = match before.first() {
        Some(event) => event.clone(),
        None => client.recv_event(),
    };
    assert_eq!(event["type"], "event");
    let mut depth = 0;
    let mut value = &event["data"];
    while let Some(inner) = value.get(0) {
        depth += 1;
        value = inner;
    }
    assert_eq!(depth, 126);
}
