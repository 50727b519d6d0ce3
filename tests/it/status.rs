//! `GET /status` and `GET /health` (docs/protocol.md, "HTTP endpoints"): the
//! status summary and per-connection entries, the publish key guarding
//! status, and the health fields. (Health during shutdown: shutdown.rs.)
//!
//! Counters are read after a `pong`: the write pump counts a batch before
//! it writes it, and handles the client's requests in order, so by the time
//! the `pong` arrives everything before it is counted.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::support::*;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The `/status` entry of `client`, found by its `welcome.connection_id`.
fn entry_of<'a>(status: &'a Value, client: &Client) -> &'a Value {
    let id = client.connection_id();
    status["connections"]
        .as_array()
        .expect("connections is an array")
        .iter()
        .find(|entry| entry["id"] == id.as_str())
        .unwrap_or_else(|| panic!("no entry for {id} in {status}"))
}

fn local_addr(client: &Client) -> String {
    match client.socket.get_ref() {
        tungstenite::stream::MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap().to_string(),
        _ => unreachable!("tests use plain TCP"),
    }
}

/// Every summary field and every per-connection field, for a client that
/// subscribed, received events and got an error reply, and for one that did
/// nothing but connect.
#[test]
fn status_lists_each_connection_with_its_counters() {
    let started = now_ms();
    let hub = TestHub::new().start();
    let agent = [("User-Agent", "status-test/1.0")];
    let mut busy = Client::connect_with(hub.ws, "/ws", &agent).unwrap();
    busy.welcome = busy.recv_json();
    let idle = hub.client();

    busy.subscribe(&["a", "b"], None);
    hub.http_publish("a", json!(1));
    hub.http_publish("b", json!(2));
    busy.recv_event();
    busy.recv_event();
    busy.send_json(json!({"type": "subscribe", "channels": ["bad name"], "id": 7}));
    let error = busy.recv_json();
    assert_eq!(error["code"], "bad_channel");
    busy.sync();

    let reply = http_get(hub.http, "/status");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    let status = reply.json();

    let summary = &status["summary"];
    for (field, expected) in [
        ("active", 2),
        ("total", 2),
        ("peak", 2),
        ("channels", 2),
        ("seq", 2),
        ("events_published", 2),
        ("events_delivered", 2),
    ] {
        assert_eq!(summary[field], expected, "summary.{field} in {summary}");
    }
    assert!(
        summary["uptime_s"].is_u64(),
        "uptime_s is an integer: {summary}"
    );
    assert_eq!(status["connections"].as_array().unwrap().len(), 2);

    let entry = entry_of(&status, &busy);
    assert_eq!(entry["remote_addr"], local_addr(&busy));
    assert_eq!(entry["user_agent"], "status-test/1.0");
    let connected_at = entry["connected_at"].as_u64().unwrap();
    assert!((started..=now_ms()).contains(&connected_at), "{entry}");
    let mut channels: Vec<&str> = entry["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    channels.sort_unstable();
    assert_eq!(channels, ["a", "b"]);
    // welcome, subscribed, 2 events, error, pong.
    assert_eq!(entry["sent"], 6, "{entry}");
    // subscribe, bad subscribe, ping.
    assert_eq!(entry["received"], 3, "{entry}");
    assert_eq!(entry["queued"], 0, "{entry}");
    assert_eq!(entry["errors"], 1, "{entry}");
    assert_eq!(entry["last_error"], error["message"], "{entry}");

    let entry = entry_of(&status, &idle);
    assert_eq!(entry["remote_addr"], local_addr(&idle));
    assert_eq!(entry["user_agent"], Value::Null);
    assert_eq!(entry["channels"], json!([]));
    assert_eq!(entry["sent"], 1, "only welcome: {entry}");
    assert_eq!(entry["received"], 0);
    assert_eq!(entry["errors"], 0);
    assert_eq!(entry["last_error"], Value::Null);
    assert_eq!(
        entry["id"].as_str().unwrap(),
        entry["id"].as_str().unwrap().to_lowercase()
    );
}

/// `/status` shows addresses, so with `--publish-key` it needs the key:
/// 401 (with `WWW-Authenticate`) without it or with a wrong one, 200 with it.
#[test]
fn status_needs_the_publish_key_when_one_is_set() {
    let hub = TestHub::new()
        .config(|c| c.publish_key = Some("k3y".into()))
        .start();
    let _client = hub.client();
    let status = |headers: &[(&str, &str)]| http(hub.http, "GET", "/status", headers, b"");

    let missing = status(&[]);
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("WWW-Authenticate"), Some("Bearer"));
    assert_eq!(missing.json()["error"]["code"], "unauthorized");
    assert_eq!(status(&[("Authorization", "Bearer nope")]).status, 401);
    assert_eq!(status(&[("Authorization", "Basic k3y")]).status, 401);

    let allowed = status(&[("Authorization", "Bearer k3y")]);
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.json()["summary"]["active"], 1);
    // Health and metrics stay open: probes and scrapers carry no key.
    assert_eq!(http_get(hub.http, "/health").status, 200);
    assert_eq!(http_get(hub.http, "/metrics").status, 200);
}

/// `/health` answers 200 with its five fields; an unknown path is 404 with
/// the JSON error shape.
#[test]
fn health_reports_its_fields_and_unknown_paths_are_404() {
    let hub = TestHub::new().start();
    let _client = hub.client();
    hub.http_publish("x", json!(null));
    let before = now_ms();
    let reply = http_get(hub.http, "/health");
    assert_eq!(reply.status, 200);
    let health = reply.json();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["connections"]["active"], 1);
    assert_eq!(health["seq"], 1);
    assert!(
        health["uptime_s"].is_u64(),
        "uptime_s is an integer: {health}"
    );
    let timestamp = health["timestamp"].as_u64().unwrap();
    assert!((before..=now_ms()).contains(&timestamp));

    let missing = http_get(hub.http, "/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "not_found");
}
