//! Limits and bad input (docs/protocol.md, "Limits"): one test
//! per row, raw `TcpStream` clients for what a real client library would
//! never send, and a burst of concurrent connects against
//! `--max-connections`. (1009 and the ping timeout are in `heartbeat.rs`,
//! 1002/1007 after queued replies in `violations.rs`.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use serde_json::json;

use crate::auth::refused_status;
use crate::support::*;

/// Write `bytes` on a fresh TCP connection and read until the server
/// closes it. Returns what it answered (maybe nothing) and how long it took.
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> (String, std::time::Duration) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    // The server may close before it has read everything; that is fine.
    let _ = tcp.write_all(bytes);
    let mut answer = Vec::new();
    match tcp.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server kept the connection open: {e}"),
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// The status line's code, if the answer starts with one.
fn status_of(answer: &str) -> Option<u16> {
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// The active-connection gauge reaches zero.
fn wait_for_no_connections(hub: &RunningHub) {
    wait_until("no connection is active", PATIENCE, || {
        hub.handle.stats().unwrap().connections_active == 0
    });
}

#[test]
fn max_connections_answers_503() {
    let hub = TestHub::new().config(|c| c.max_connections = 2).start();
    let _a = hub.client();
    let _b = hub.client();
    assert_eq!(refused_status(Client::connect(hub.ws, "/ws")), 503);
}

#[test]
fn max_connections_per_ip_answers_429() {
    let hub = TestHub::new()
        .config(|c| c.max_connections_per_ip = 2)
        .start();
    let _a = hub.client();
    let _b = hub.client();
    assert_eq!(refused_status(Client::connect(hub.ws, "/ws")), 429);
}

/// Over both limits, the total wins: 503.
#[test]
fn over_both_limits_answers_503() {
    let hub = TestHub::new()
        .config(|c| {
            c.max_connections = 1;
            c.max_connections_per_ip = 1;
        })
        .start();
    let _a = hub.client();
    assert_eq!(refused_status(Client::connect(hub.ws, "/ws")), 503);
}

/// `--allowed-origin`: another Origin gets 403 (cross-site WebSocket
/// hijacking), a listed one (any ASCII case) and none at all get in.
#[test]
fn an_origin_not_allowed_gets_403() {
    let hub = TestHub::new()
        .config(|c| c.allowed_origins = vec!["https://app.example".into()])
        .start();
    let evil = Client::connect_with(hub.ws, "/ws", &[("Origin", "https://evil.example")]);
    assert_eq!(refused_status(evil), 403);
    let near = Client::connect_with(hub.ws, "/ws", &[("Origin", "https://app.example:444")]);
    assert_eq!(refused_status(near), 403);
    let mut good = Client::connect_with(hub.ws, "/ws", &[("Origin", "HTTPS://APP.example")])
        .expect("allowed origin");
    assert_eq!(good.recv_json()["type"], "welcome");
    let _no_origin = hub.client();
}

#[test]
fn a_path_other_than_ws_gets_404() {
    let hub = TestHub::new().start();
    for path in ["/", "/wss", "/ws/x", "/WS"] {
        assert_eq!(refused_status(Client::connect(hub.ws, path)), 404, "{path}");
    }
}

/// A handshake that never completes is dropped at the deadline (10 s by
/// default, `--handshake-timeout-ms`), counted from accept: bytes that
/// trickle in do not extend it.
#[test]
fn an_incomplete_handshake_is_dropped_at_the_deadline() {
    let hub = TestHub::new()
        .config(|c| c.handshake_timeout = ms(400))
        .start();
    // Half a handshake, then silence.
    let (answer, took) = send_raw(hub.ws, b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: web");
    assert_eq!(answer, "", "nothing is answered, TCP is dropped");
    assert!(
        took >= ms(400),
        "dropped after {took:?}, before the deadline"
    );

    // Trickling a byte every 100 ms does not keep it alive.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(hub.ws).unwrap();
    let mut dropped = false;
    for byte in b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if tcp.write_all(&[*byte]).is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(ms(100));
    }
    assert!(dropped, "a trickling handshake outlived its deadline");
    assert!(started.elapsed() < ms(400) + PATIENCE);
    let rejected = hub.handle.render_metrics().unwrap();
    assert!(
        rejected.contains("pumphub_connections_rejected_total{reason=\"handshake_timeout\"} 2"),
        "{rejected}"
    );
    // And the hub still serves.
    let _client = hub.client();
}

/// Garbage instead of HTTP: a head that ends but is not HTTP gets 400; bytes
/// that never end a head are dropped (431 past 16 KiB, else at the deadline).
#[test]
fn garbage_instead_of_http_is_dropped() {
    let hub = TestHub::new()
        .config(|c| c.handshake_timeout = ms(300))
        .start();
    let (answer, _) = send_raw(
        hub.ws,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    );
    assert_eq!(status_of(&answer), Some(400), "{answer}");
    let (answer, _) = send_raw(hub.ws, b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
    assert_eq!(status_of(&answer), Some(400), "{answer}");
    let binary: Vec<u8> = (0..40_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let (answer, _) = send_raw(hub.ws, &binary);
    assert!(
        answer.is_empty() || status_of(&answer) == Some(431),
        "{answer}"
    );
    let (answer, _) = send_raw(hub.ws, b"\x00\x01\x02garbage");
    assert_eq!(answer, "");
    // A plain HTTP request that is not an upgrade: 400.
    let (answer, _) = send_raw(hub.ws, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&answer), Some(400), "{answer}");
    let mut client = hub.client();
    client.sync();
}

/// An unmasked client frame breaks RFC 6455: Close 1002.
#[test]
fn an_unmasked_frame_is_closed_with_1002() {
    let hub = TestHub::new().start();
    let mut raw = RawWs::connect(hub.ws, "/ws");
    let welcome = raw.read_frame().expect("welcome");
    assert_eq!(welcome.opcode, 0x1);
    let text = br#"{"type":"ping"}"#;
    let mut frame = vec![0x81, text.len() as u8];
    frame.extend_from_slice(text);
    raw.tcp.write_all(&frame).unwrap();
    assert_eq!(raw.read_close().map(|(code, _)| code), Some(1002));
}

/// A frame header declaring 2^63 bytes is refused from the header, before
/// anything is buffered: Close 1009 (too big) or 1002 (RFC 6455 forbids the
/// top bit), never an allocation or a wait for the payload.
#[test]
fn a_two_to_the_63_length_header_is_closed() {
    let hub = TestHub::new().start();
    for length in [1u64 << 63, u64::MAX, 1 << 40] {
        let mut raw = RawWs::connect(hub.ws, "/ws");
        assert!(raw.read_frame().is_some(), "welcome");
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&length.to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]); // mask
        header.extend_from_slice(b"{\"type\"");
        raw.tcp.write_all(&header).unwrap();
        let code = raw.read_close().map(|(code, _)| code);
        assert!(
            matches!(code, Some(1009) | Some(1002)),
            "length {length}: {code:?}"
        );
    }
    let mut client = hub.client();
    client.sync();
}

/// `--rate-limit N`: a bucket of 2N; each dropped message gets
/// `rate_limited` with its id; a client still over the limit after 5 s
/// (drops in five consecutive one-second windows) gets Close 1008.
#[test]
fn over_the_rate_limit_gets_rate_limited_then_close_1008() {
    let hub = TestHub::new().config(|c| c.rate_limit = 2).start();
    let mut client = hub.client();
    // The burst (4) is answered; the fifth at once is dropped.
    for n in 0..4 {
        let reply = {
            client.send_json(json!({"type": "ping", "id": n}));
            client.recv_json()
        };
        assert_eq!(reply["type"], "pong", "message {n}: {reply}");
    }
    client.send_json(json!({"type": "ping", "id": "over"}));
    let dropped = client.recv_json();
    assert_eq!(dropped["type"], "error", "{dropped}");
    assert_eq!(dropped["code"], "rate_limited");
    assert_eq!(dropped["id"], "over", "the reply names the dropped message");

    // Keep sending at 10 per second, 5 times the limit: closed with 1008
    // once every one of five consecutive seconds had drops.
    let started = Instant::now();
    let mut rate_limited = 0;
    let close = loop {
        assert!(started.elapsed() < ms(9000), "never closed");
        client.send_json(json!({"type": "ping", "id": rate_limited}));
        match client.recv() {
            Received::Json(reply) if reply["code"] == "rate_limited" => rate_limited += 1,
            Received::Json(reply) => assert_eq!(reply["type"], "pong", "{reply}"),
            Received::Closed(frame) => break frame,
            Received::Dropped(why) => panic!("dropped without a Close: {why}"),
        }
        std::thread::sleep(ms(100));
    };
    assert_eq!(close.map(|(code, _)| code), Some(1008));
    assert!(rate_limited > 10, "only {rate_limited} drops");
    assert!(started.elapsed() >= ms(3000), "closed too early");
}

/// `--rate-limit 0` turns the limit off: 500 messages at once, far over
/// any bucket, are all answered.
#[test]
fn rate_limit_zero_turns_it_off() {
    let hub = TestHub::new().config(|c| c.rate_limit = 0).start();
    let mut client = hub.client();
    for n in 0..500 {
        client.send_json(json!({"type": "ping", "id": n}));
    }
    for n in 0..500 {
        let reply = client.recv_json();
        assert_eq!(reply, json!({"type": "pong", "id": n, "ts": reply["ts"]}));
    }
}

/// `--max-subscriptions`: a subscribe that would go over it is refused
/// whole with `too_many_subscriptions`; re-subscribing is free; after an
/// unsubscribe there is room again.
#[test]
fn max_subscriptions_answers_too_many_subscriptions() {
    let hub = TestHub::new().config(|c| c.max_subscriptions = 3).start();
    let mut client = hub.client();
    client.subscribe(&["a", "b"], None);
    client.send_json(json!({"type": "subscribe", "id": 5, "channels": ["c", "d"]}));
    let refused = client.recv_json();
    assert_eq!(refused["code"], "too_many_subscriptions", "{refused}");
    assert_eq!(refused["id"], 5);
    let (ok, _) = client.subscribe(&["a", "b", "c"], None);
    assert_eq!(ok["channels"], json!(["a", "b", "c"]));
    client.send_json(json!({"type": "unsubscribe", "channels": ["a"]}));
    assert_eq!(client.recv_json()["type"], "unsubscribed");
    let (ok, _) = client.subscribe(&["d"], None);
    assert_eq!(ok["type"], "subscribed");
    // Nothing refused was subscribed: "d" is, "e" would be the fourth.
    hub.handle.publish("d", json!(1)).unwrap();
    assert_eq!(client.recv_event()["channel"], "d");
}

/// 50 connects at once against `--max-connections 10`: exactly 10 get in,
/// the rest 503; after they leave, 10 fit again.
#[test]
fn a_burst_of_connects_never_gets_more_than_max_connections_in() {
    const LIMIT: usize = 10;
    const BURST: usize = 50;
    let hub = TestHub::new().config(|c| c.max_connections = LIMIT).start();
    let start = Arc::new(Barrier::new(BURST));
    let counted = Arc::new(Barrier::new(BURST + 1));
    let ws = hub.ws;
    let threads: Vec<_> = (0..BURST)
        .map(|_| {
            let (start, counted) = (start.clone(), counted.clone());
            std::thread::spawn(move || {
                start.wait();
                let result = Client::connect(ws, "/ws");
                let outcome = match result {
                    Ok(mut client) => {
                        assert_eq!(client.recv_json()["type"], "welcome");
                        Ok(client)
                    }
                    Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
                    Err(other) => panic!("neither upgraded nor refused: {other}"),
                };
                // Hold the connection until every thread has its answer.
                counted.wait();
                outcome
            })
        })
        .collect();
    counted.wait();
    let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let admitted = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused: Vec<u16> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .copied()
        .collect();
    assert_eq!(admitted, LIMIT, "refusals: {refused:?}");
    assert!(refused.iter().all(|&s| s == 503), "{refused:?}");
    assert_eq!(hub.handle.stats().unwrap().connections_active, LIMIT as u64);

    for mut client in outcomes.into_iter().flatten() {
        client.close();
    }
    wait_for_no_connections(&hub);
    // Slots are given back when each connection thread ends, just after
    // the gauge drops: retry until all fit, bounded.
    wait_until("the slots are free again", PATIENCE, || {
        let clients: Vec<_> = (0..LIMIT).map(|_| Client::connect(ws, "/ws")).collect();
        clients.iter().all(|c| c.is_ok())
    });
}

/// A handshake refused after the slot was taken (wrong token, origin, bad
/// query) gives the slot back at once: twenty refusals on a hub with room
/// for one do not keep the next good client out.
#[test]
fn refused_handshakes_release_their_slot() {
    let hub = TestHub::new()
        .config(|c| {
            c.max_connections = 1;
            c.token = Some("t".into());
            c.allowed_origins = vec!["https://app.example".into()];
        })
        .start();
    for _ in 0..10 {
        assert_eq!(
            refused_status(Client::connect(hub.ws, "/ws?token=wrong")),
            401
        );
        let evil = Client::connect_with(hub.ws, "/ws", &[("Origin", "https://evil.example")]);
        assert_eq!(refused_status(evil), 403);
        assert_eq!(refused_status(Client::connect(hub.ws, "/ws?since=x")), 400);
    }
    // Half handshakes and resets hold nothing either.
    for _ in 0..10 {
        let mut tcp = TcpStream::connect(hub.ws).unwrap();
        let _ = tcp.write_all(b"GET /ws HTTP/1.1\r\n");
    }
    let mut client = hub.client_at("/ws?token=t");
    client.sync();
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// An upgrade request with `first` as its request line, `key`, the given
/// line ending, and nothing else unusual.
fn upgrade_request(first: &str, key: &str, newline: &str) -> String {
    [
        first,
        "Host: x",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        &format!("Sec-WebSocket-Key: {key}"),
        "",
        "",
    ]
    .join(newline)
}

/// Issue 12, finding 7, on the WebSocket port: an upgrade with bare `\n`
/// line endings is upgraded (it used to wait for the deadline, unanswered);
/// a key that is not 16 bytes of base64 gets 400; an unknown query
/// parameter is ignored whatever it holds, a bad escape included (it got
/// 400); `HEAD` is answered as `GET` would be, without a body.
#[test]
fn the_handshake_takes_bare_newlines_and_checks_the_key() {
    let hub = TestHub::new().start();
    // An upgrade stays open: read only the answer's head.
    let upgrade = |request: String| {
        let mut tcp = TcpStream::connect(hub.ws).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        tcp.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") && tcp.read(&mut byte).unwrap() == 1 {
            answer.push(byte[0]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = upgrade(upgrade_request("GET /ws HTTP/1.1", KEY, "\n"));
    assert_eq!(status_of(&answer), Some(101), "{answer}");
    for key in [
        "123456789012345678901234",
        "dGhlIHNhbXBsZSBub25jZXg=",
        "short==",
    ] {
        let (answer, _) = send_raw(
            hub.ws,
            upgrade_request("GET /ws HTTP/1.1", key, "\r\n").as_bytes(),
        );
        assert_eq!(status_of(&answer), Some(400), "key {key}: {answer}");
    }
    let odd = upgrade_request("GET /ws?channels=a&x=%zz&y=% HTTP/1.1", KEY, "\r\n");
    assert_eq!(status_of(&upgrade(odd)), Some(101));
    let bad_known = upgrade_request("GET /ws?channels=a&since=%zz HTTP/1.1", KEY, "\r\n");
    assert_eq!(
        status_of(&send_raw(hub.ws, bad_known.as_bytes()).0),
        Some(400)
    );
    for (path, status) in [("/ws", 400), ("/other", 404)] {
        let head = upgrade_request(&format!("HEAD {path} HTTP/1.1"), KEY, "\r\n");
        let (answer, _) = send_raw(hub.ws, head.as_bytes());
        assert_eq!(status_of(&answer), Some(status), "{answer}");
        assert!(
            answer.ends_with("\r\n\r\n"),
            "HEAD {path} got a body: {answer:?}"
        );
        assert!(answer.contains("Content-Length: "), "{answer}");
    }
    wait_for_no_connections(&hub);
}
