//! Cluster mode with real processes: several `pumphub` binaries sharing
//! one real redis-server (`--redis`), each test with its own server and
//! key prefix. Every wait is on an event: a log line of a node, a frame, an
//! HTTP answer.
//!
//! Scenarios (the list): cross-node delivery with publishers on
//! every node at once; a client resuming on another node; a node killed
//! with SIGKILL; Redis stopped and started again; Redis restarted without
//! its data; a log trimmed on purpose; a bad URL and Redis unreachable at
//! start.

use std::net::SocketAddr;
use std::thread;

use serde_json::{json, Value};

use crate::redis_support::{run_to_exit, unique_prefix, NodeProcess, RedisServer};
use crate::support::*;

/// A WebSocket client on `node`, its `welcome` read.
fn client(node: &NodeProcess) -> (Client, Value) {
    let mut client = Client::connect(node.ws, "/ws").expect("connect");
    let welcome = client.recv_json();
    assert_eq!(welcome["type"], "welcome");
    (client, welcome)
}

fn subscriber(node: &NodeProcess, channel: &str) -> Client {
    let (mut client, _) = client(node);
    let (subscribed, _) = client.subscribe(&[channel], None);
    assert_eq!(subscribed["type"], "subscribed");
    client
}

fn publish(addr: SocketAddr, channel: &str, data: Value) -> HttpReply {
    let body = json!({"channel": channel, "data": data}).to_string();
    http(addr, "POST", "/publish", &[], body.as_bytes())
}

fn published_seq(addr: SocketAddr, channel: &str, data: Value) -> u64 {
    let reply = publish(addr, channel, data);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["seq"].as_u64().unwrap()
}

/// The next `count` events, whatever else comes between.
fn events(client: &mut Client, count: usize) -> Vec<Value> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let frame = client.recv_json();
        if frame["type"] == "event" {
            events.push(frame);
        }
    }
    events
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

/// Wait for `shutdown` with reason `resync`, then Close 1012.
fn expect_resync(client: &mut Client) -> Vec<Value> {
    let (shutdown, before) = client.recv_until("shutdown");
    assert_eq!(shutdown["reason"], "resync", "{shutdown}");
    assert_eq!(client.recv_close(), Some(1012));
    before
}

#[test]
fn publishers_on_every_node_and_every_client_sees_one_order() {
    let Some(redis) = RedisServer::start("publishers_on_every_node") else {
        return;
    };
    let prefix = unique_prefix("order");
    let a = NodeProcess::joined(&redis, &prefix, &[]);
    let b = NodeProcess::joined(&redis, &prefix, &[]);
    let mut subscribers = [
        subscriber(&a, "c"),
        subscriber(&a, "c"),
        subscriber(&b, "c"),
        subscriber(&b, "c"),
    ];
    const EACH: u64 = 60;
    let mut publishers = Vec::new();
    for (name, node) in [("a", &a), ("b", &b)] {
        let http_addr = node.http;
        publishers.push(thread::spawn(move || {
            for n in 0..EACH {
                let reply = publish(
                    http_addr,
                    "c",
                    json!({"from": format!("http-{name}"), "n": n}),
                );
                assert_eq!(reply.status, 200, "{}", reply.text());
                // Two subscribers on each node: "delivered" is this node's.
                assert_eq!(reply.json()["delivered"], 2);
            }
        }));
        let (mut ws, _) = client(node);
        publishers.push(thread::spawn(move || {
            for n in 0..EACH {
                ws.send_json(json!({"type": "publish", "channel": "c", "id": n,
                    "data": {"from": format!("ws-{name}"), "n": n}}));
                let reply = ws.recv_json();
                assert_eq!(reply["type"], "published", "{reply}");
                assert_eq!(reply["id"], n);
                assert_eq!(reply["delivered"], 2);
            }
        }));
    }
    let total = (4 * EACH) as usize;
    let seen: Vec<Vec<Value>> = subscribers.iter_mut().map(|s| events(s, total)).collect();
    for publisher in publishers {
        publisher.join().expect("a publisher failed");
    }
    // One sequence, no gap, no duplicate, the same order everywhere.
    assert_eq!(seqs(&seen[0]), (1..=total as u64).collect::<Vec<_>>());
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
    // Each publisher's events in its own order.
    for source in ["http-a", "http-b", "ws-a", "ws-b"] {
        let ns: Vec<u64> = seen[0]
            .iter()
            .filter(|e| e["data"]["from"] == source)
            .map(|e| e["data"]["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, (0..EACH).collect::<Vec<_>>(), "{source}");
    }
    assert!(a.stop() && b.stop(), "both nodes exit 0 on SIGTERM");
}

#[test]
fn a_client_cut_off_on_one_node_resumes_on_another_without_loss_or_duplicate() {
    let Some(redis) = RedisServer::start("a_client_resumes_on_another_node") else {
        return;
    };
    let prefix = unique_prefix("resume");
    let a = NodeProcess::joined(&redis, &prefix, &[]);
    let mut on_a = subscriber(&a, "c");
    for n in 1..=10 {
        published_seq(a.http, "c", json!(n));
    }
    let got = events(&mut on_a, 6);
    let last = seqs(&got)[5];
    drop(on_a); // cut off, four events unread
    for n in 11..=15 {
        published_seq(a.http, "c", json!(n));
    }
    // B starts after all of that: its memory has none of it, so the
    // replay comes from the shared history in Redis.
    let b = NodeProcess::joined(&redis, &prefix, &[]);
    let (mut on_b, welcome) = client(&b);
    assert_eq!(welcome["seq"], 15, "B joined at the shared head");
    let (subscribed, replayed) = on_b.subscribe(&["c"], Some(last));
    assert_eq!(subscribed["complete"], true);
    assert_eq!(seqs(&replayed), (last + 1..=15).collect::<Vec<_>>());
    // And live after the replay, published on the other node.
    published_seq(a.http, "c", json!(16));
    assert_eq!(seqs(&events(&mut on_b, 1)), vec![16]);

    // The same resume through the URL (`?channels=&since=`).
    let mut by_url = Client::connect(b.ws, &format!("/ws?channels=c&since={}", 12)).unwrap();
    by_url.recv_json(); // welcome
    let (subscribed, replayed) = by_url.recv_until("subscribed");
    assert_eq!(subscribed["complete"], true);
    assert_eq!(seqs(&replayed), vec![13, 14, 15, 16]);
}

#[test]
fn a_node_killed_with_sigkill_leaves_the_others_serving() {
    let Some(redis) = RedisServer::start("a_node_killed_with_sigkill") else {
        return;
    };
    let prefix = unique_prefix("kill");
    let a = NodeProcess::joined(&redis, &prefix, &[]);
    let b = NodeProcess::joined(&redis, &prefix, &[]);
    let mut on_a = subscriber(&a, "c");
    let mut on_b = subscriber(&b, "c");
    for n in 1..=3 {
        published_seq(a.http, "c", json!(n));
    }
    assert_eq!(seqs(&events(&mut on_a, 3)), vec![1, 2, 3]);
    assert_eq!(seqs(&events(&mut on_b, 3)), vec![1, 2, 3]);
    a.kill();
    assert_eq!(
        on_a.recv_close(),
        None,
        "A's clients lose their TCP connection"
    );
    assert_eq!(published_seq(b.http, "c", json!(4)), 4);
    assert_eq!(seqs(&events(&mut on_b, 1)), vec![4]);
    // A's client moves to B and misses nothing.
    let (mut moved, _) = client(&b);
    let (subscribed, replayed) = moved.subscribe(&["c"], Some(3));
    assert_eq!(subscribed["complete"], true);
    assert_eq!(seqs(&replayed), vec![4]);
}

fn health(node: &NodeProcess) -> HttpReply {
    http_get(node.http, "/health")
}

#[test]
fn redis_stopped_and_started_again_keeps_clients_and_skips_nothing() {
    let Some(mut redis) = RedisServer::start_persistent("redis_stopped_and_started") else {
        return;
    };
    let prefix = unique_prefix("outage");
    let mut a = NodeProcess::joined(&redis, &prefix, &[]);
    let mut sub = subscriber(&a, "c");
    let (mut ws_publisher, welcome) = client(&a);
    let epoch = welcome["epoch"].clone();
    assert_eq!(published_seq(a.http, "c", json!(1)), 1);
    assert_eq!(seqs(&events(&mut sub, 1)), vec![1]);
    assert_eq!(health(&a).status, 200);

    redis.stop();
    a.wait_for_line("the engine noticing", |l| l.contains("Redis unavailable"));
    let down = health(&a);
    assert_eq!(down.status, 503, "a load balancer moves new clients away");
    assert_eq!(down.json()["status"], "unavailable");
    assert_eq!(down.json()["engine"]["state"], "down");
    let refused = publish(a.http, "c", json!(2));
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["error"]["code"], "unavailable");
    ws_publisher.send_json(json!({"type": "publish", "channel": "c", "data": 2, "id": "x"}));
    let error = ws_publisher.recv_json();
    assert_eq!(
        (&error["type"], &error["code"], &error["id"]),
        (&json!("error"), &json!("unavailable"), &json!("x"))
    );
    // Clients stay connected meanwhile.
    sub.sync();

    redis.start_again();
    a.wait_for_line("the reconnection", |l| l.contains("reconnected to Redis"));
    assert_eq!(health(&a).status, 200);
    assert_eq!(
        published_seq(a.http, "c", json!(2)),
        2,
        "the sequence goes on"
    );
    let after = events(&mut sub, 1);
    assert_eq!(seqs(&after), vec![2], "nothing skipped, nothing repeated");
    assert_eq!(after[0]["data"], 2);
    let status = http_get(a.http, "/status").json();
    assert_eq!(status["engine"]["reconnects"], 1);
    assert_eq!(
        status["engine"]["epoch"], epoch,
        "the data survived: same epoch"
    );
    let metrics = http_get(a.http, "/metrics").text();
    assert!(
        metrics.contains("pumphub_engine_reconnects_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("pumphub_engine_up 1"), "{metrics}");
}

#[test]
fn redis_restarted_without_its_data_means_a_new_epoch_and_clients_are_told() {
    let Some(mut redis) = RedisServer::start("redis_restarted_without_data") else {
        return;
    };
    let prefix = unique_prefix("amnesia");
    let mut a = NodeProcess::joined(&redis, &prefix, &[]);
    let (mut sub, welcome) = client(&a);
    sub.subscribe(&["c"], None);
    assert_eq!(published_seq(a.http, "c", json!(1)), 1);
    assert_eq!(seqs(&events(&mut sub, 1)), vec![1]);

    redis.stop();
    redis.start_again();
    a.wait_for_line("the new epoch", |l| l.contains("joined epoch"));
    expect_resync(&mut sub);
    let (mut again, new_welcome) = client(&a);
    assert_ne!(new_welcome["epoch"], welcome["epoch"], "a new epoch");
    again.subscribe(&["c"], None);
    let seq = published_seq(a.http, "c", json!(2));
    assert!(seq > 1, "seqs do not restart below what clients saw: {seq}");
    assert_eq!(seqs(&events(&mut again, 1)), vec![seq]);
    assert_eq!(http_get(a.http, "/status").json()["engine"]["resyncs"], 1);
}

#[test]
fn a_log_trimmed_past_a_node_sends_its_clients_to_resync_and_they_resume() {
    let Some(redis) = RedisServer::start("a_log_trimmed_past_a_node") else {
        return;
    };
    let prefix = unique_prefix("trimmed");
    let a = NodeProcess::joined(&redis, &prefix, &[]);
    let mut b = NodeProcess::joined(&redis, &prefix, &[]);
    let mut sub = subscriber(&b, "c");
    published_seq(a.http, "c", json!(1));
    assert_eq!(seqs(&events(&mut sub, 1)), vec![1]);

    // B stops reading (frozen) while the log moves on and is trimmed.
    b.signal("STOP");
    for n in 2..=6 {
        published_seq(a.http, "c", json!(n));
    }
    let log = format!("{{{prefix}}}:log");
    assert!(redis
        .command(&["XTRIM", &log, "MAXLEN", "0"])
        .starts_with(':'));
    published_seq(a.http, "c", json!(7));
    b.signal("CONT");

    let before = expect_resync(&mut sub);
    b.wait_for_line("the hole", |l| {
        l.contains("trimmed before this node read them")
    });
    // Whatever B delivered before the hole is in order; then it resumes.
    let delivered = seqs(
        &before
            .iter()
            .filter(|f| f["type"] == "event")
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert!(
        delivered.windows(2).all(|w| w[1] == w[0] + 1),
        "{delivered:?}"
    );
    let last = delivered.last().copied().unwrap_or(1);
    let (mut resumed, _) = client(&b);
    let (subscribed, replayed) = resumed.subscribe(&["c"], Some(last));
    assert_eq!(
        subscribed["complete"], true,
        "the channel's history still has it all"
    );
    assert_eq!(seqs(&replayed), (last + 1..=7).collect::<Vec<_>>());
}

#[test]
fn a_bad_redis_url_is_a_config_error_and_an_unreachable_redis_is_waited_for() {
    let (code, stderr) = run_to_exit(&["--redis", "http://not-redis", "--ws", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--redis"), "names the flag: {stderr}");
    let (code, stderr) = run_to_exit(&["--redis-prefix", "{a}"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--redis-prefix"), "{stderr}");

    let port = RedisServer::unused_port();
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix("late");
    let mut node = NodeProcess::start(&["--redis", &url, "--redis-prefix", &prefix]);
    node.wait_for_line("the first failure", |l| l.contains("Redis unavailable"));
    let down = health(&node);
    assert_eq!(down.status, 503);
    assert_eq!(down.json()["engine"]["state"], "connecting");
    let refused = publish(node.http, "c", json!(1));
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "unavailable");

    let Some(_redis) = RedisServer::start_on("an_unreachable_redis_is_waited_for", port) else {
        return;
    };
    node.wait_for_line("the join", |l| l.contains("joined epoch"));
    assert_eq!(health(&node).status, 200);
    assert_eq!(published_seq(node.http, "c", json!(1)), 1);
}

#[test]
fn the_embedding_api_says_unavailable_and_publishes_once_redis_is_there() {
    let port = RedisServer::unused_port();
    let hub = TestHub::new()
        .config(|c| {
            c.redis = Some(format!("redis://127.0.0.1:{port}"));
            c.redis_prefix = unique_prefix("embedded");
        })
        .start();
    let handle = hub.handle.clone();
    match handle.publish("c", json!(1)) {
        Err(pumphub::Error::Unavailable { reason }) => assert!(!reason.is_empty()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let Some(_redis) = RedisServer::start_on("the_embedding_api_says_unavailable", port) else {
        return;
    };
    let subscription = handle.subscribe(&["c"]).unwrap();
    // The node joins within its reconnection backoff (at most 1 s).
    wait_until("the node joins the shared log", PATIENCE, || {
        handle.publish("c", json!(2)).is_ok()
    });
    let event = subscription
        .recv_timeout(PATIENCE)
        .expect("the event, through the log");
    assert_eq!(event.data, json!(2));
    assert_eq!(handle.epoch().len(), 36, "the shared epoch, a UUID");
}

/// A client that pipelines on one node of a cluster: its batch is served in
/// order around the publishes the shared log answers later. Its replies
/// (`subscribed`, `published`, a `pong` between two runs of publishes,
/// `unsubscribed`) keep request order, it gets its own events from the
/// subscribe on and none after the unsubscribe, and a subscriber on the
/// other node sees its publishes in the order they were sent.
#[test]
fn a_pipelining_client_keeps_request_order_in_cluster_mode() {
    let Some(redis) = RedisServer::start("pipelining_in_cluster_mode") else {
        return;
    };
    let prefix = unique_prefix("pipe");
    let a = NodeProcess::joined(&redis, &prefix, &[]);
    let b = NodeProcess::joined(&redis, &prefix, &[]);
    let mut elsewhere = subscriber(&b, "p");
    let (mut ws, _) = client(&a);
    const RUN: u64 = 25;
    let mut expected: Vec<String> = Vec::new();
    ws.send_json(json!({"type": "subscribe", "id": "s", "channels": ["p"]}));
    expected.push("subscribed s".into());
    for n in 0..2 * RUN {
        if n == RUN {
            ws.send_json(json!({"type": "ping", "id": "mid"}));
            expected.push("pong mid".into());
        }
        ws.send_json(json!({"type": "publish", "id": n, "channel": "p", "data": n}));
        expected.push(format!("published {n}"));
    }
    ws.send_json(json!({"type": "unsubscribe", "id": "u", "channels": ["p"]}));
    expected.push("unsubscribed u".into());
    ws.send_json(json!({"type": "publish", "id": "last", "channel": "p", "data": "after"}));
    expected.push("published last".into());
    let mut replies: Vec<String> = Vec::new();
    let mut own_events: Vec<Value> = Vec::new();
    while replies.len() < expected.len() {
        let frame = ws.recv_json();
        match frame["type"].as_str() {
            Some("event") => own_events.push(frame),
            Some(kind) => {
                let id = match &frame["id"] {
                    Value::String(id) => id.clone(),
                    other => other.to_string(),
                };
                replies.push(format!("{kind} {id}"));
            }
            None => panic!("a frame without type: {frame}"),
        }
    }
    assert_eq!(replies, expected);
    // Every own event before the unsubscribe, none after it.
    let data: Vec<Value> = own_events.iter().map(|e| e["data"].clone()).collect();
    assert_eq!(data, (0..2 * RUN).map(Value::from).collect::<Vec<_>>());
    // The other node: the same events in send order, then "after".
    let seen = events(&mut elsewhere, (2 * RUN + 1) as usize);
    let mut want: Vec<Value> = (0..2 * RUN).map(Value::from).collect();
    want.push(json!("after"));
    let seen_data: Vec<Value> = seen.iter().map(|e| e["data"].clone()).collect();
    assert_eq!(seen_data, want);
    assert!(seqs(&seen).windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}
