//! Pipelining (docs/protocol.md, "Pipelining"): a client may send many
//! requests without waiting for their replies. The hub reads ahead and
//! hands consecutive requests to the broadcaster together; what users see
//! must not change: replies in request order (including the ones the read
//! pump answers itself), one seq order for everyone, a publisher's events
//! in the order it sent them, the rate limit per dropped request, and the
//! slow-consumer rule for a publisher that never reads. The same for HTTP:
//! pipelined `POST /publish` on one keep-alive connection.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;

use serde_json::{json, Value};
use tungstenite::Message;

use crate::support::*;

/// A hub whose clients may publish, without the per-connection rate limit
/// unless a test sets one.
fn publishing_hub(change: impl FnOnce(&mut pumphub::Config)) -> RunningHub {
    TestHub::new()
        .config(|c| {
            c.allow_client_publish = true;
            c.rate_limit = 0;
            change(c);
        })
        .start()
}

/// Queue `frames` in the client's write buffer and send them all at once,
/// without reading anything in between.
fn pipeline(client: &mut Client, frames: impl IntoIterator<Item = Value>) {
    for frame in frames {
        client
            .socket
            .write(Message::text(frame.to_string()))
            .expect("buffer a frame");
    }
    client.socket.flush().expect("send the frames");
}

fn publish(channel: &str, i: u64) -> Value {
    json!({"type": "publish", "id": format!("p{i}"), "channel": channel, "data": {"i": i}})
}

/// Read `count` events and return their seqs, checking `data.i` counts up
/// from 0 (the order the publisher sent them).
fn read_events(subscriber: &mut Client, count: u64) -> Vec<u64> {
    (0..count)
        .map(|i| {
            let event = subscriber.recv_event();
            assert_eq!(event["data"]["i"], i, "events out of send order: {event}");
            event["seq"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn a_thousand_pipelined_publishes_get_their_replies_and_events_in_order() {
    let hub = publishing_hub(|_| {});
    let mut subscribers: Vec<Client> = (0..3).map(|_| hub.subscriber(&["p"])).collect();
    let mut publisher = hub.client();
    pipeline(&mut publisher, (0..1000).map(|i| publish("p", i)));
    let mut seqs = Vec::new();
    for i in 0..1000u64 {
        let reply = publisher.recv_json();
        assert_eq!(reply["type"], "published", "reply {i}: {reply}");
        assert_eq!(reply["id"], format!("p{i}"), "replies out of order");
        assert_eq!(reply["delivered"], 3);
        seqs.push(reply["seq"].as_u64().unwrap());
    }
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "seqs not increasing: {seqs:?}"
    );
    for subscriber in &mut subscribers {
        assert_eq!(read_events(subscriber, 1000), seqs);
    }
}

/// Whoever answers a request, its reply comes in its place: `pong` (the
/// read pump's) between the `published` (the broadcaster's) of the
/// publishes around it, as do an error reply and `subscribed`.
#[test]
fn replies_the_read_pump_gives_itself_keep_their_place_in_the_pipeline() {
    let hub = publishing_hub(|_| {});
    let mut client = hub.client();
    let mut frames: Vec<Value> = (0..50).map(|i| publish("a", i)).collect();
    frames.push(json!({"type": "ping", "id": "ping-1"}));
    frames.extend((50..100).map(|i| publish("a", i)));
    frames.push(json!({"type": "nonsense", "id": "bad-1"}));
    frames.push(json!({"type": "subscribe", "id": "sub-1", "channels": ["a"]}));
    frames.extend((100..150).map(|i| publish("a", i)));
    frames.push(json!({"type": "ping", "id": "ping-2"}));
    pipeline(&mut client, frames.clone());

    let mut events = Vec::new();
    for (n, request) in frames.iter().enumerate() {
        // Once subscribed, the client's own events come along too; the
        // contract lets `published` and the event come in either order.
        let reply = loop {
            let frame = client.recv_json();
            if frame["type"] == "event" {
                events.push(frame["data"]["i"].as_u64().unwrap());
            } else {
                break frame;
            }
        };
        assert_eq!(
            reply["id"], request["id"],
            "reply {n} answers another request"
        );
        let expected = match request["type"].as_str().unwrap() {
            "publish" => "published",
            "ping" => "pong",
            "subscribe" => "subscribed",
            _ => "error",
        };
        assert_eq!(reply["type"], expected, "reply {n}: {reply}");
    }
    while events.len() < 50 {
        events.push(client.recv_event()["data"]["i"].as_u64().unwrap());
    }
    assert_eq!(events, (100..150).collect::<Vec<u64>>());
}

/// A pipelining publisher over `--rate-limit` gets `rate_limited` for
/// exactly the requests that were dropped: every request gets one reply,
/// in order, and subscribers get exactly the events that were `published`.
#[test]
fn pipelining_over_the_rate_limit_gets_rate_limited_for_exactly_the_dropped() {
    // 10/s with a burst of 20: 200 requests at once cannot all pass unless
    // reading them took 18 s.
    let hub = publishing_hub(|c| c.rate_limit = 10);
    let mut subscriber = hub.subscriber(&["r"]);
    let mut publisher = hub.client();
    pipeline(&mut publisher, (0..200).map(|i| publish("r", i)));
    let mut passed = Vec::new();
    let mut dropped = 0;
    for i in 0..200u64 {
        let reply = publisher.recv_json();
        assert_eq!(
            reply["id"],
            format!("p{i}"),
            "replies out of order: {reply}"
        );
        match reply["type"].as_str() {
            Some("published") => passed.push((i, reply["seq"].as_u64().unwrap())),
            Some("error") => {
                assert_eq!(reply["code"], "rate_limited", "{reply}");
                dropped += 1;
            }
            _ => panic!("unexpected reply {reply}"),
        }
    }
    assert!(passed.len() >= 20, "the burst must pass: {passed:?}");
    assert!(dropped > 0, "nothing was dropped");
    assert_eq!(passed.len() + dropped, 200);
    // The subscriber gets the events that passed, and nothing else: the
    // next event after them is one published after the pipeline.
    for (i, seq) in &passed {
        let event = subscriber.recv_event();
        assert_eq!(
            (
                event["data"]["i"].as_u64().unwrap(),
                event["seq"].as_u64().unwrap()
            ),
            (*i, *seq)
        );
    }
    hub.handle.publish("r", json!("end")).unwrap();
    assert_eq!(subscriber.recv_event()["data"], "end");
}

/// A publisher that pipelines and never reads its replies is a slow
/// consumer: its queue fills and it is closed with 4008. Meanwhile other
/// clients publish and receive as usual.
#[test]
fn a_pipelining_publisher_that_never_reads_is_closed_with_4008_without_stalling_others() {
    let hub = publishing_hub(|c| {
        c.queue_size = 64;
        // Long enough that the write pump, blocked on the full socket,
        // is still there when the test reads and finds the Close.
        c.write_timeout = ms(60_000);
    });
    let mut others_sub = hub.subscriber(&["calm"]);
    let mut others_pub = hub.client();

    // The slow client follows the channel it floods, so each publish
    // queues an 8 KiB event for it besides its reply, and it has a small
    // receive buffer: what it does not read backs up into its queue after
    // a few MiB at most, whatever the kernel's buffer tuning.
    let tcp = {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&hub.ws.into()).unwrap();
        TcpStream::from(socket)
    };
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let url = format!("ws://{}/ws?channels=flood", hub.ws);
    let (mut slow, _) = tungstenite::client(url, tcp).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut tcp = slow.get_ref().try_clone().unwrap();
        let stop = stop.clone();
        thread::spawn(move || {
            // Masked client frames by hand: the WebSocket stays with this
            // thread's owner, which reads it once this thread has stopped
            // (its Close reply must not land inside one of these frames).
            // At most ~40 MiB.
            let padding = "x".repeat(8 * 1024);
            for i in 0..5_000u64 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let text = json!({"type": "publish", "id": format!("slow-{i}"),
                    "channel": "flood", "data": {"i": i, "pad": padding}})
                .to_string();
                if tcp
                    .write_all(&client_frame(true, 1, text.as_bytes()))
                    .is_err()
                {
                    return; // the hub closed the connection
                }
            }
        })
    };
    wait_until(
        "the slow publisher is closed as a slow consumer",
        PATIENCE,
        || slow_consumer_disconnects(&hub) >= 1,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    // Others are not held up by it: round trips and deliveries as usual.
    for i in 0..50u64 {
        others_pub.send_json(publish("calm", i));
        assert_eq!(others_pub.recv_json()["type"], "published");
    }
    assert_eq!(read_events(&mut others_sub, 50).len(), 50);
    // The slow client reads at last: replies, then Close 4008.
    let code = loop {
        match slow.read() {
            Ok(Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(e) => panic!("dropped without a close frame: {e}"),
        }
    };
    assert_eq!(code, Some(4008));
}

/// `pumphub_slow_consumer_disconnects_total` from `/metrics`.
fn slow_consumer_disconnects(hub: &RunningHub) -> u64 {
    let text = http_get(hub.http, "/metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix("pumphub_slow_consumer_disconnects_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// Pipelined requests on one keep-alive connection: publishes (single and
/// arrays, one refused), a `GET /health` among them, and `Connection:
/// close` on the last; every answer in request order, seqs consecutive,
/// the subscriber gets the events in that order.
#[test]
fn pipelined_http_requests_on_one_keep_alive_connection_are_answered_in_order() {
    let hub = TestHub::new().start();
    let mut subscriber = hub.subscriber(&["h"]);
    let post = |body: &str, last: bool| {
        let close = if last { "Connection: close\r\n" } else { "" };
        format!(
            "POST /publish HTTP/1.1\r\nHost: x\r\n{close}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut requests = String::new();
    let mut expected = Vec::new(); // per answer: status, events it published
    let mut i = 0;
    for n in 0..60 {
        if n == 20 {
            requests.push_str("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
            expected.push((200, 0));
        } else if n == 30 {
            requests.push_str(&post(r#"{"channel":"h"}"#, false));
            expected.push((400, 0));
        } else if n % 7 == 0 {
            let items: Vec<Value> = (i..i + 3)
                .map(|i| json!({"channel": "h", "data": {"i": i}}))
                .collect();
            requests.push_str(&post(&Value::Array(items).to_string(), false));
            expected.push((200, 3));
            i += 3;
        } else {
            let body = json!({"channel": "h", "data": {"i": i}}).to_string();
            requests.push_str(&post(&body, false));
            expected.push((200, 1));
            i += 1;
        }
    }
    let body = json!({"channel": "h", "data": {"i": i}}).to_string();
    requests.push_str(&post(&body, true));
    expected.push((200, 1));
    let total = i + 1;

    let answers = pipelined(hub.http, &requests);
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    let wanted: Vec<u16> = expected.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, wanted);
    let mut seqs = Vec::new();
    for ((_, body), (_, events)) in answers.iter().zip(&expected) {
        match (events, body) {
            (0, _) => {}
            (1, body) => seqs.push(body["seq"].as_u64().unwrap()),
            (_, Value::Array(items)) => {
                assert_eq!(items.len(), *events as usize);
                seqs.extend(items.iter().map(|item| item["seq"].as_u64().unwrap()));
            }
            _ => panic!("unexpected answer {body}"),
        }
    }
    let first = seqs[0];
    assert_eq!(seqs, (first..first + total).collect::<Vec<u64>>());
    assert_eq!(read_events(&mut subscriber, total), seqs);
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), seqs.len());
}

/// Pipelined HTTP publishes read together are still held to the batch
/// limit one request at a time: an array over half a queue is refused
/// 413 `batch_too_large` and publishes nothing, while the requests around
/// it (more events together than one batch may hold) are published, in
/// order, without a gap.
#[test]
fn pipelined_http_publishes_keep_the_batch_limit_per_request() {
    // Half of a 16-frame queue: 8 events per array at most.
    let hub = TestHub::new().queue_size(16).start();
    let post = |body: &str, last: bool| {
        let close = if last { "Connection: close\r\n" } else { "" };
        format!(
            "POST /publish HTTP/1.1\r\nHost: x\r\n{close}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let array = |from: u64, count: u64| {
        let items: Vec<Value> = (from..from + count)
            .map(|i| json!({"channel": "b", "data": i}))
            .collect();
        Value::Array(items).to_string()
    };
    let mut requests = String::new();
    let mut wanted = Vec::new();
    for i in 0..10 {
        requests.push_str(&post(
            &json!({"channel": "b", "data": i}).to_string(),
            false,
        ));
        wanted.push(200);
    }
    requests.push_str(&post(&array(100, 9), false));
    wanted.push(413);
    requests.push_str(&post(&array(10, 8), false));
    wanted.push(200);
    requests.push_str(&post(
        &json!({"channel": "b", "data": 18}).to_string(),
        true,
    ));
    wanted.push(200);

    let answers = pipelined(hub.http, &requests);
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, wanted);
    assert_eq!(answers[10].1["error"]["code"], "batch_too_large");
    let mut seqs = Vec::new();
    for (status, body) in &answers {
        match (status, body) {
            (200, Value::Array(items)) => {
                seqs.extend(items.iter().map(|item| item["seq"].as_u64().unwrap()))
            }
            (200, body) => seqs.push(body["seq"].as_u64().unwrap()),
            _ => {}
        }
    }
    let first = seqs[0];
    assert_eq!(seqs, (first..first + 19).collect::<Vec<_>>());
}

/// Send `requests` (pipelined, the last one closing) on one connection and
/// read every answer: statuses and JSON bodies, in order.
fn pipelined(addr: SocketAddr, requests: &str) -> Vec<(u16, Value)> {
    let mut tcp = connect(addr);
    tcp.write_all(requests.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    tcp.read_to_end(&mut bytes).unwrap();
    split_responses(&bytes)
        .into_iter()
        .map(|(status, body)| (status, serde_json::from_str(&body).unwrap_or(Value::Null)))
        .collect()
}
