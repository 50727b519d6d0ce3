//! `pumphub::client` against real hubs (and one scripted fake hub): resume
//! after a cut with no loss and no duplicate, gaps reported (history too
//! short, new epoch), `shutdown` followed by a resume, giving up, publishing,
//! a broadcast error that arrives while authenticating.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use pumphub::client::{Client, ClientError, ClientEvent, Disconnect, GapReason};
use pumphub::{ConnectionId, Seq};
use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use crate::support::*;

fn url(hub: &RunningHub) -> String {
    format!("ws://{}/ws", hub.ws)
}

/// The next item, or panic after `PATIENCE`.
fn next(client: &Client) -> ClientEvent {
    match client.recv_timeout(PATIENCE) {
        Ok(Some(item)) => item,
        Ok(None) => panic!("no item from the client within {PATIENCE:?}"),
        Err(e) => panic!("the client stopped: {e}"),
    }
}

/// Skip to the next `Connected`; returns its connection id.
fn connected(client: &Client) -> String {
    loop {
        if let ClientEvent::Connected { connection_id, .. } = next(client) {
            return connection_id;
        }
    }
}

fn kick(hub: &RunningHub, connection_id: &str) {
    let id: ConnectionId = connection_id.parse().expect("a uuid");
    assert!(hub.handle.disconnect(id).unwrap(), "connection {id} exists");
}

#[test]
fn cut_mid_stream_every_seq_arrives_once_in_order() {
    const TOTAL: u64 = 3000;
    // History covers the whole run: whatever is cut must be recoverable.
    // The queue holds every event too, so the only cuts are the two kicks:
    // with the default 1024, a test thread starved on a busy machine fell
    // that far behind the unthrottled publisher and was closed with 4008
    // (seen once in 20 loaded runs), which is back-pressure working, not
    // what this test is about.
    let hub = TestHub::new()
        .history(4096)
        .queue_size(TOTAL as usize + 16)
        .start();
    let client = Client::builder(&url(&hub))
        .channels(&["a"])
        .backoff(ms(10), ms(100))
        .connect()
        .unwrap();
    let mut id = connected(&client);

    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = {
        let handle = hub.handle.clone();
        let publishing = publishing.clone();
        thread::spawn(move || {
            for i in 1..=TOTAL {
                handle.publish("a", json!(i)).unwrap();
            }
            publishing.store(false, Ordering::Release);
        })
    };

    let (mut seqs, mut cuts, mut cut_while_publishing) = (Vec::new(), 0, 0);
    while seqs.last() != Some(&TOTAL) {
        match next(&client) {
            ClientEvent::Event(event) => {
                assert_eq!(event.data, json!(event.seq.0), "payload matches its seq");
                seqs.push(event.seq.0);
                if matches!(seqs.len(), 300 | 1500) {
                    cut_while_publishing += usize::from(publishing.load(Ordering::Acquire));
                    kick(&hub, &id);
                    cuts += 1;
                }
            }
            ClientEvent::Connected {
                connection_id,
                resumed,
                ..
            } => {
                assert!(resumed);
                id = connection_id;
            }
            ClientEvent::Disconnected(why) => {
                assert!(
                    matches!(why, Disconnect::ClosedByHub { code: 1000, .. }),
                    "{why:?}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    publisher.join().unwrap();
    assert_eq!(cuts, 2);
    assert_eq!(
        seqs,
        (1..=TOTAL).collect::<Vec<_>>(),
        "each seq once, in order"
    );
    // Not asserted (scheduling decides it), but shown when run with --nocapture.
    println!("cuts while the publisher was still running: {cut_while_publishing}");
}

#[test]
fn a_gap_beyond_history_is_reported() {
    let hub = TestHub::new().history(5).start();
    // A long backoff keeps the client away while the burst is published:
    // the burst takes microseconds, the client waits at least 1 s.
    let client = Client::builder(&url(&hub))
        .channels(&["a"])
        .backoff(Duration::from_secs(2), Duration::from_secs(2))
        .connect()
        .unwrap();
    let id = connected(&client);
    for i in 1..=2 {
        hub.handle.publish("a", json!(i)).unwrap();
    }
    for seq in 1..=2 {
        assert!(matches!(next(&client), ClientEvent::Event(e) if e.seq == Seq(seq)));
    }
    kick(&hub, &id);
    assert!(matches!(next(&client), ClientEvent::Disconnected(_)));
    for i in 3..=20 {
        hub.handle.publish("a", json!(i)).unwrap();
    }
    assert!(matches!(
        next(&client),
        ClientEvent::Connected { resumed: true, .. }
    ));
    assert_eq!(
        next(&client),
        ClientEvent::Gap {
            after_seq: Seq(2),
            reason: GapReason::HistoryTooShort
        }
    );
    for seq in 16..=20 {
        assert!(matches!(next(&client), ClientEvent::Event(e) if e.seq == Seq(seq)));
    }
    // And it carries on live.
    hub.handle.publish("a", json!(21)).unwrap();
    assert!(matches!(next(&client), ClientEvent::Event(e) if e.seq == Seq(21)));
}

/// Start a hub on `ws` (the port of one that just stopped). Binding can
/// fail while the old listener's port is still being released; retry a
/// bounded number of times.
fn start_on(ws: std::net::SocketAddr) -> RunningHub {
    for _ in 0..50 {
        let started = std::panic::catch_unwind(|| {
            TestHub::new()
                .config(|c| c.ws_addr = Some(ws.to_string()))
                .start()
        });
        if let Ok(hub) = started {
            return hub;
        }
        thread::sleep(ms(20)); // retry pacing only; nothing is awaited here
    }
    panic!("cannot bind {ws} again");
}

#[test]
fn a_restarted_hub_is_a_new_epoch_gap_and_the_new_stream_follows() {
    let mut first = TestHub::new().start();
    let client = Client::builder(&url(&first))
        .channels(&["a"])
        .backoff(ms(10), ms(200))
        .connect()
        .unwrap();
    connected(&client);
    for i in 1..=3 {
        first
            .handle
            .publish("a", json!(format!("old-{i}")))
            .unwrap();
    }
    for seq in 1..=3 {
        assert!(matches!(next(&client), ClientEvent::Event(e) if e.seq == Seq(seq)));
    }
    let old_epoch = first.handle.epoch().to_string();
    let ws = first.ws;
    first.shutdown();
    assert!(matches!(
        next(&client),
        ClientEvent::Disconnected(Disconnect::Shutdown { .. })
    ));

    let second = start_on(ws);
    // Published before or after the client is back: either way the client
    // gets them (replayed from the new hub's history, or live).
    for i in 1..=2 {
        second
            .handle
            .publish("a", json!(format!("new-{i}")))
            .unwrap();
    }
    let ClientEvent::Connected { epoch, resumed, .. } = next(&client) else {
        panic!("expected Connected")
    };
    assert!(resumed);
    assert_eq!(epoch, second.handle.epoch());
    assert_eq!(
        next(&client),
        ClientEvent::Gap {
            after_seq: Seq(3),
            reason: GapReason::NewEpoch {
                previous: old_epoch,
                current: epoch
            }
        }
    );
    second.handle.publish("a", json!("new-3")).unwrap();
    for seq in 1..=3 {
        match next(&client) {
            ClientEvent::Event(e) => {
                assert_eq!(e.seq, Seq(seq));
                assert_eq!(e.data, json!(format!("new-{seq}")));
            }
            other => panic!("expected event {seq} of the new hub, got {other:?}"),
        }
    }
}

/// A scripted hub speaking the wire protocol, to send what a real hub
/// only sends at shutdown and to replay duplicates on purpose.
#[test]
fn a_shutdown_frame_makes_the_client_resume_and_drop_duplicates() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sinces_tx, sinces_rx) = crossbeam_channel::unbounded();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let fake = thread::spawn(move || {
        let event =
            |seq: u64| Message::text(pumphub::protocol::encode_event(seq, "a", 0, &json!(seq)));
        for (connection, welcome_seq) in [(1, 0), (2, 3)] {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut ws = tungstenite::accept(tcp).unwrap();
            let welcome =
                pumphub::protocol::encode_welcome(&format!("c{connection}"), "E", welcome_seq, 0);
            ws.send(Message::text(welcome)).unwrap();
            let subscribe: Value = loop {
                if let Message::Text(text) = ws.read().unwrap() {
                    break serde_json::from_str(&text).unwrap();
                }
            };
            sinces_tx.send(subscribe["since"].clone()).unwrap();
            let channels = ["a".to_string()];
            if connection == 1 {
                let subscribed = pumphub::protocol::encode_subscribed(
                    Some(&json!("subscribe")),
                    &channels,
                    0,
                    true,
                );
                ws.send(Message::text(subscribed)).unwrap();
                for seq in 1..=3 {
                    ws.send(event(seq)).unwrap();
                }
                let shutdown = pumphub::protocol::encode_shutdown("restarting", 0);
                ws.send(Message::text(shutdown)).unwrap();
                let _ = ws.close(Some(CloseFrame {
                    code: CloseCode::Away,
                    reason: "".into(),
                }));
                while ws.read().is_ok() {} // until the client's Close answer
            } else {
                // A replay that overlaps what the client has, then live
                // events with a duplicate among them.
                for seq in [2, 3, 4] {
                    ws.send(event(seq)).unwrap();
                }
                let subscribed = pumphub::protocol::encode_subscribed(
                    Some(&json!("subscribe")),
                    &channels,
                    3,
                    true,
                );
                ws.send(Message::text(subscribed)).unwrap();
                for seq in [4, 5] {
                    ws.send(event(seq)).unwrap();
                }
                let _ = done_rx.recv_timeout(PATIENCE);
            }
        }
    });

    let client = Client::builder(&format!("ws://{addr}/ws"))
        .channels(&["a"])
        .backoff(ms(10), ms(100))
        .connect()
        .unwrap();
    let mut items = Vec::new();
    while items.len() < 8 {
        items.push(next(&client));
    }
    let seqs: Vec<u64> = items
        .iter()
        .filter_map(|item| match item {
            ClientEvent::Event(e) => Some(e.seq.0),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "{items:?}");
    assert!(matches!(
        items[0],
        ClientEvent::Connected { resumed: false, .. }
    ));
    assert_eq!(
        items[4],
        ClientEvent::Disconnected(Disconnect::Shutdown {
            reason: "restarting".into(),
            reconnect_ms: 0
        })
    );
    assert!(matches!(
        items[5],
        ClientEvent::Connected { resumed: true, .. }
    ));
    // First subscribe starts at welcome's seq; the resume at the last seq delivered.
    assert_eq!(sinces_rx.recv().unwrap(), json!(0));
    assert_eq!(sinces_rx.recv().unwrap(), json!(3));
    drop(done_tx);
    drop(client);
    fake.join().unwrap();
}

#[test]
fn max_attempts_gives_up_with_an_error_the_application_sees() {
    let mut hub = TestHub::new().start();
    let client = Client::builder(&url(&hub))
        .channels(&["a"])
        .backoff(ms(5), ms(20))
        .max_attempts(3)
        .connect()
        .unwrap();
    connected(&client);
    hub.shutdown();
    assert!(matches!(next(&client), ClientEvent::Disconnected(_)));
    match client.recv_timeout(PATIENCE) {
        Err(ClientError::GaveUp { attempts, last }) => {
            assert_eq!(attempts, 3);
            assert!(matches!(*last, ClientError::Connect(_)), "{last:?}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert!(matches!(client.recv(), Err(ClientError::Closed)));
}

#[test]
fn publishes_and_is_refused_where_the_hub_says_so() {
    let hub = TestHub::new()
        .config(|c| c.allow_client_publish = true)
        .start();
    let client = Client::connect(&url(&hub), &["a"]).unwrap();
    connected(&client);
    let published = client.publish("a", json!({"x": 1})).unwrap();
    assert_eq!(published.seq, Seq(1));
    assert_eq!(published.delivered, 1, "to ourselves");
    assert!(matches!(next(&client), ClientEvent::Event(e) if e.data == json!({"x": 1})));
    client.publish_nowait("a", json!(2)).unwrap();
    assert!(matches!(next(&client), ClientEvent::Event(e) if e.seq == Seq(2)));
    assert!(matches!(
        client.publish("bad name", json!(1)),
        Err(ClientError::InvalidChannel { .. })
    ));

    let closed = TestHub::new().start();
    let client = Client::connect(&url(&closed), &[]).unwrap();
    match client.publish("a", json!(1)) {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, "forbidden"),
        other => panic!("expected forbidden, got {other:?}"),
    }
}

#[test]
fn authenticates_by_message_or_url_and_reports_a_wrong_token() {
    let hub = TestHub::new()
        .config(|c| c.token = Some("s3cret".into()))
        .start();
    for via in [
        pumphub::client::TokenVia::AuthMessage,
        pumphub::client::TokenVia::Query,
        pumphub::client::TokenVia::Header,
    ] {
        let client = Client::builder(&url(&hub))
            .channels(&["a"])
            .token("s3cret")
            .token_via(via)
            .connect()
            .unwrap_or_else(|e| panic!("{via:?}: {e}"));
        connected(&client);
    }
    let wrong = Client::builder(&url(&hub)).token("nope").connect();
    assert!(
        matches!(wrong, Err(ClientError::Unauthenticated)),
        "{wrong:?}"
    );
    let wrong = Client::builder(&url(&hub))
        .token("nope")
        .token_via(pumphub::client::TokenVia::Query)
        .connect();
    assert!(
        matches!(wrong, Err(ClientError::Rejected { status: 401 })),
        "{wrong:?}"
    );
}

#[test]
fn resume_from_a_saved_point_checks_the_epoch() {
    let hub = TestHub::new().start();
    for i in 1..=3 {
        hub.handle.publish("a", json!(i)).unwrap();
    }
    let epoch = hub.handle.epoch().to_string();
    let client = Client::builder(&url(&hub))
        .channels(&["a"])
        .resume(&epoch, 1)
        .connect()
        .unwrap();
    assert!(matches!(
        next(&client),
        ClientEvent::Connected { resumed: false, .. }
    ));
    for seq in 2..=3 {
        assert!(matches!(next(&client), ClientEvent::Event(e) if e.seq == Seq(seq)));
    }

    // A point saved under another hub instance: its seq means nothing here.
    let client = Client::builder(&url(&hub))
        .channels(&["a"])
        .resume("an-older-epoch", 2)
        .connect()
        .unwrap();
    assert!(matches!(next(&client), ClientEvent::Connected { .. }));
    assert_eq!(
        next(&client),
        ClientEvent::Gap {
            after_seq: Seq(2),
            reason: GapReason::NewEpoch {
                previous: "an-older-epoch".into(),
                current: epoch
            }
        }
    );
    for seq in 1..=3 {
        assert!(matches!(next(&client), ClientEvent::Event(e) if e.seq == Seq(seq)));
    }
}

#[test]
fn an_idle_client_answers_heartbeat_pings_and_stays_connected() {
    // A client that left its Pongs unsent would be closed after 1.1 s.
    // (At 130 ms, and at 450 ms, a client thread that waited that long for
    // a CPU on a loaded machine was closed with its Pong unsent.)
    let hub = TestHub::new()
        .config(|c| {
            c.ping_interval = ms(100);
            c.pong_timeout = ms(1000);
        })
        .start();
    let client = Client::connect(&url(&hub), &["a"]).unwrap();
    connected(&client);
    // Every frame from the client counts in `received`: welcome-time
    // requests, then one Pong per Ping. 24 Pongs on one connection span
    // more than twice the timeout.
    wait_until("24 pongs on one connection", PATIENCE, || {
        let connections = hub.handle.connections().unwrap();
        connections.len() == 1 && connections[0].received >= 25
    });
    hub.handle.publish("a", json!(1)).unwrap();
    match next(&client) {
        ClientEvent::Event(e) => assert_eq!(e.seq, Seq(1)),
        other => panic!("expected the event, no disconnect first: got {other:?}"),
    }
}

/// A broadcast error can reach a connection between `welcome` and
/// `authenticated`; it takes a seq like an event, so the client must hand
/// it on rather than skip it while waiting for the auth answer.
#[test]
fn a_broadcast_error_before_authenticated_still_reaches_the_application() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let fake = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut ws = tungstenite::accept(tcp).unwrap();
        let welcome = pumphub::protocol::encode_welcome("c1", "E", 0, 0);
        ws.send(Message::text(welcome)).unwrap();
        let read = |ws: &mut tungstenite::WebSocket<std::net::TcpStream>| -> Value {
            loop {
                if let Message::Text(text) = ws.read().unwrap() {
                    return serde_json::from_str(&text).unwrap();
                }
            }
        };
        assert_eq!(read(&mut ws)["type"], "auth");
        let notice = pumphub::protocol::encode_broadcast_error("notice", "early", None, 1, 0);
        ws.send(Message::text(notice)).unwrap();
        let authenticated = pumphub::protocol::encode_authenticated(Some(&json!("auth")));
        ws.send(Message::text(authenticated)).unwrap();
        assert_eq!(read(&mut ws)["type"], "subscribe");
        let subscribed =
            pumphub::protocol::encode_subscribed(Some(&json!("subscribe")), &["a".into()], 0, true);
        ws.send(Message::text(subscribed)).unwrap();
        let _ = done_rx.recv_timeout(PATIENCE);
    });

    let client = Client::builder(&format!("ws://{addr}/ws"))
        .channels(&["a"])
        .token("t")
        .connect()
        .unwrap();
    assert!(matches!(
        next(&client),
        ClientEvent::Connected { resumed: false, .. }
    ));
    match next(&client) {
        ClientEvent::HubError {
            seq, code, message, ..
        } => {
            assert_eq!(
                (seq, code.as_str(), message.as_str()),
                (Seq(1), "notice", "early")
            );
        }
        other => panic!("expected the early broadcast error, got {other:?}"),
    }
    drop(done_tx);
    drop(client);
    fake.join().unwrap();
}
