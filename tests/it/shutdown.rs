//! Graceful shutdown (docs/protocol.md, "Graceful shutdown"): every client gets queued
//! events, then `shutdown`, then Close 1001; and when `Hub::shutdown`
//! returns, every thread the hub started has ended.

use std::net::TcpStream;

use serde_json::json;

use crate::support::*;

#[test]
fn clients_get_queued_events_then_shutdown_then_1001() {
    let mut hub = TestHub::new().start();
    let mut clients: Vec<Client> = (0..3).map(|_| hub.subscriber(&["a"])).collect();
    let published: Vec<u64> = (0..5)
        .map(|i| hub.handle.publish("a", json!(i)).unwrap().seq.0)
        .collect();
    hub.shutdown();
    for client in &mut clients {
        let (shutdown, events) = client.recv_until("shutdown");
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, published, "queued events are flushed first");
        assert!(shutdown["reason"].is_string());
        assert!(shutdown["reconnect_ms"].is_u64());
        assert_eq!(client.recv_close(), Some(1001));
    }
}

#[test]
fn after_shutdown_the_embedding_api_refuses_work() {
    let mut hub = TestHub::new().start();
    let handle = hub.handle.clone();
    hub.shutdown();
    assert!(handle.is_shutting_down());
    assert!(matches!(
        handle.publish("a", json!(1)),
        Err(pumphub::Error::ShuttingDown)
    ));
}

/// Every thread the hub started is gone when `shutdown` returns: the
/// hub's own named threads at once, and the total back to where it was
/// once tiny_http's pool has wound down (it idles up to 5 s). Counted from
/// /proc, in a process of its own.
#[test]
fn shutdown_ends_every_thread_the_hub_started() {
    isolated(
        "shutdown::shutdown_ends_every_thread_the_hub_started",
        || {
            let baseline = thread_count();
            let mut hub = TestHub::new().start();
            let mut clients: Vec<Client> = (0..5).map(|_| hub.subscriber(&["a"])).collect();
            let _silent = TcpStream::connect(hub.ws).unwrap(); // mid-handshake
            assert_eq!(http_get(hub.http, "/health").status, 200);
            hub.handle.publish("a", json!("last")).unwrap();
            assert!(hub_thread_names().len() >= 5 * 2 + 2);
            hub.shutdown();
            assert_eq!(hub_thread_names(), Vec::<String>::new());
            for client in &mut clients {
                assert_eq!(client.recv_until("shutdown").1.len(), 1);
                assert_eq!(client.recv_close(), Some(1001));
            }
            wait_until(
                "the thread count is back to its baseline",
                ms(15_000),
                || thread_count() <= baseline,
            );
        },
    );
}

/// While shutting down, new handshakes get 503 and `/health` says so;
/// the HTTP listener stays up until the end.
#[test]
fn during_shutdown_new_clients_get_503_and_health_says_shutting_down() {
    let mut hub = TestHub::new()
        .queue_size(4)
        .config(|c| c.shutdown_grace = ms(3000))
        .start();
    // A client that never reads keeps the shutdown busy until the grace
    // period ends, which leaves time to look.
    let stalled = hub.subscriber(&["big"]);
    let padding = "z".repeat(64 * 1024);
    for i in 0..40 {
        hub.handle
            .publish("big", json!({"i": i, "pad": padding}))
            .ok();
    }
    let (ws, http_addr) = (hub.ws, hub.http);
    let stopper = std::thread::spawn(move || hub.shutdown());
    wait_until("/health reports shutting_down", PATIENCE, || {
        http_get(http_addr, "/health").status == 503
    });
    let health = http_get(http_addr, "/health").json();
    assert_eq!(health["status"], "shutting_down");
    match Client::connect(ws, "/ws") {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        Err(other) => panic!("expected HTTP 503, got {other}"),
        Ok(_) => panic!("a new client was accepted during shutdown"),
    }
    let publish = http(
        http_addr,
        "POST",
        "/publish",
        &[],
        br#"{"channel":"a","data":1}"#,
    );
    assert_eq!(publish.status, 503);
    drop(stalled);
    stopper.join().unwrap();
}
