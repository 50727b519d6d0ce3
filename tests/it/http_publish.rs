//! `POST /publish` answered by the guard itself, before tiny_http
//! (`src/http/publish.rs`): the answers keep their shape and headers,
//! keep-alive works, concurrent publishers are all served in one seq
//! order, and every bound of the guard holds for this path too (the
//! refusals themselves are in `http_exposure.rs`, which runs them against
//! `POST /publish` among others).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::thread;
use std::time::Instant;

use serde_json::json;

use crate::support::*;

fn post(body: &str, extra: &str) -> String {
    format!(
        "POST /publish HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn answers_keep_their_shape_and_headers() {
    let hub = TestHub::new()
        .config(|c| c.publish_key = Some("k3y".into()))
        .start();
    let body = json!({"channel": "a", "data": 1}).to_string();
    let mut tcp = connect(hub.http);
    tcp.write_all(post(&body, "Authorization: Bearer k3y\r\n").as_bytes())
        .unwrap();
    let ok = read_http_response(&mut tcp);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("content-type"), Some("application/json"));
    assert!(ok.header("date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(ok.header("connection"), None, "keep-alive is the default");
    assert_eq!(ok.json(), json!({"seq": 1, "delivered": 0}));
    // The same connection again, now without the key.
    tcp.write_all(post(&body, "").as_bytes()).unwrap();
    let refused = read_http_response(&mut tcp);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    assert_eq!(refused.json()["error"]["code"], "unauthorized");
    // A query string does not change the route; `Connection: close` is
    // honoured and said.
    let mut tcp = connect(hub.http);
    let request = post(&body, "Authorization: Bearer k3y\r\nConnection: close\r\n").replacen(
        "/publish",
        "/publish?x=1",
        1,
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    tcp.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes).to_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    let body_at = text.find("\r\n\r\n").unwrap() + 4;
    let answer: serde_json::Value = serde_json::from_str(&text[body_at..]).unwrap();
    assert_eq!(answer, json!({"seq": 2, "delivered": 0}));
    // Other methods on /publish still reach tiny_http's 405.
    assert_eq!(http_get(hub.http, "/publish").status, 405);
}

/// The guard's deadline holds for a publish like for anything else: a
/// head that never completes is dropped without an answer, and a
/// keep-alive connection idle after a publish is closed.
#[test]
fn publish_connections_keep_the_head_deadline() {
    let hub = TestHub::new()
        .config(|c| c.handshake_timeout = ms(300))
        .start();
    let started = Instant::now();
    let mut trickling = connect(hub.http);
    trickling
        .write_all(b"POST /publish HTTP/1.1\r\nContent-Length: 2\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = trickling.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(started.elapsed() >= ms(300), "dropped before the deadline");

    let mut idle = connect(hub.http);
    let body = json!({"channel": "a", "data": 1}).to_string();
    idle.write_all(post(&body, "").as_bytes()).unwrap();
    let started = Instant::now();
    let mut bytes = Vec::new();
    idle.read_to_end(&mut bytes).unwrap();
    assert!(String::from_utf8_lossy(&bytes).starts_with("HTTP/1.1 200 OK"));
    assert!(
        started.elapsed() >= ms(250),
        "closed after {:?}",
        started.elapsed()
    );
}

/// A refusal behind pipelined publishes comes after their answers, and
/// ends the connection; what came before it is published.
#[test]
fn a_refused_request_behind_publishes_is_answered_in_its_place() {
    let hub = TestHub::new().config(|c| c.max_message_size = 64).start();
    let body = json!({"channel": "a", "data": 1}).to_string();
    let mut requests = post(&body, "").repeat(3);
    requests.push_str("POST /publish HTTP/1.1\r\nContent-Length: 5000\r\n\r\n");
    requests.push_str(&post(&body, ""));
    let mut tcp = connect(hub.http);
    tcp.write_all(requests.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    let _ = tcp.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &text[at + 9..at + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "200", "413"], "{text}");
    assert_eq!(hub.handle.stats().unwrap().seq.0, 3);
}

/// Eight keep-alive connections publishing at once: every request is
/// answered 200, every seq is distinct, and a subscriber gets them all in
/// seq order.
#[test]
fn concurrent_keep_alive_publishers_share_one_seq_order() {
    let hub = TestHub::new().start();
    let mut subscriber = hub.subscriber(&["c"]);
    let addr = hub.http;
    let publishers: Vec<_> = (0..8)
        .map(|p| {
            thread::spawn(move || {
                let mut tcp = connect(addr);
                (0..50)
                    .map(|i| {
                        let body = json!({"channel": "c", "data": {"p": p, "i": i}}).to_string();
                        tcp.write_all(post(&body, "").as_bytes()).unwrap();
                        let reply = read_http_response(&mut tcp);
                        assert_eq!(reply.status, 200, "{}", reply.text());
                        reply.json()["seq"].as_u64().unwrap()
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for publisher in publishers {
        let seqs = publisher.join().unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        all.extend(seqs);
    }
    assert_eq!(all.len(), 400);
    let received: Vec<u64> = (0..400)
        .map(|_| subscriber.recv_event()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(received, all.into_iter().collect::<Vec<u64>>());
}

/// HTTP/1.0 clients that ask for keep-alive (`ab -k` does) keep their
/// connection, on publishes and on what tiny_http answers alike, and are
/// told so; without asking, the connection closes after the answer.
#[test]
fn http_1_0_keep_alive_is_honoured_and_said() {
    let hub = TestHub::new().start();
    let body = json!({"channel": "a", "data": 1}).to_string();
    let publish_1_0 = |extra: &str| {
        format!(
            "POST /publish HTTP/1.0\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut tcp = connect(hub.http);
    for request in [
        publish_1_0("Connection: Keep-Alive\r\n"),
        "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_string(),
        publish_1_0("Connection: keep-alive\r\n"),
    ] {
        tcp.write_all(request.as_bytes()).unwrap();
        let reply = read_http_response(&mut tcp);
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("connection"), Some("keep-alive"));
    }
    tcp.write_all(publish_1_0("").as_bytes()).unwrap();
    let mut bytes = Vec::new();
    tcp.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    assert_eq!(hub.handle.stats().unwrap().seq.0, 3);
}

/// Pipelined publishes are published together only up to half a queue of
/// events per command, so a subscriber that reads is never pushed past its
/// `--queue-size` by one command: with a queue of 8, six pipelined arrays
/// of 3 events (18 in all) reach it whole, in order, without a 4008.
#[test]
fn publishes_read_together_never_overrun_a_reading_subscriber() {
    let hub = TestHub::new().queue_size(8).start();
    let mut subscriber = hub.subscriber(&["g"]);
    let mut requests = String::new();
    for r in 0..6 {
        let items: Vec<serde_json::Value> = (0..3)
            .map(|i| json!({"channel": "g", "data": r * 3 + i}))
            .collect();
        let body = serde_json::Value::Array(items).to_string();
        let close = if r == 5 { "Connection: close\r\n" } else { "" };
        requests.push_str(&post(&body, close));
    }
    let mut tcp = connect(hub.http);
    tcp.write_all(requests.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    tcp.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 6, "{text}");
    for i in 0..18 {
        let event = subscriber.recv_event();
        assert_eq!(event["data"], i, "{event}");
    }
    subscriber.sync();
}
