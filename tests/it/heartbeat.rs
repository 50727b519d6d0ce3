//! Liveness and size limits owned by the core: server Pings, the silence
//! timeout, the message-size limit, and a handshake that never comes.

use std::io::Write;
use std::net::TcpStream;

use serde_json::json;
use tungstenite::Message;

use crate::support::*;

/// A client that never answers (a raw socket that sends nothing after its
/// handshake, not even Pongs) is closed with 1001 `ping timeout` after ping
/// interval + pong timeout, and its TCP connection is dropped soon after.
///
/// The intervals leave room for a starved thread: at 150 ms, a write pump
/// that did not run for 300 ms on a loaded machine went straight to the
/// close (rightly: the client was silent that long) without its Ping.
#[test]
fn a_silent_client_is_closed_after_ping_interval_plus_pong_timeout() {
    let hub = TestHub::new()
        .config(|c| {
            c.ping_interval = ms(400);
            c.pong_timeout = ms(400);
        })
        .start();
    let mut silent = RawWs::connect(hub.ws, "/ws");
    let started = std::time::Instant::now();
    let mut pings = 0;
    let close = loop {
        let frame = silent.read_frame().expect("a close frame before EOF");
        match frame.opcode {
            0x9 => pings += 1,
            0x8 => break frame.close_code(),
            _ => {}
        }
    };
    assert_eq!(close, Some((1001, "ping timeout".to_string())));
    assert!(pings >= 1, "the hub pinged before giving up");
    assert!(
        started.elapsed() >= ms(800),
        "closed before the silence limit"
    );
    // We never answer the Close: the hub drops TCP by itself (within 2 s).
    assert_eq!(silent.read_frame(), None);
}

/// A client that answers Pings stays connected well past the silence
/// limit, and it saw the server's Pings.
///
/// The test's own thread answers the Pings, so the silence limit must be
/// longer than that thread may wait for a CPU on a loaded machine: with
/// 100 ms + 100 ms it was closed under load, its Pong never sent.
#[test]
fn a_client_that_answers_pings_stays_connected() {
    let hub = TestHub::new()
        .config(|c| {
            c.ping_interval = ms(200);
            c.pong_timeout = ms(800);
        })
        .start();
    let mut client = hub.client();
    client.set_timeout(ms(50));
    let mut pings = 0;
    while pings < 10 {
        // ~2 s: twice the silence limit
        match client.socket.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(_)) => {} // read timeout: keep waiting
            Err(e) => panic!("connection ended: {e}"),
        }
    }
    client.set_timeout(PATIENCE);
    client.send_json(json!({"type":"ping"}));
    assert_eq!(client.recv_json()["type"], "pong");
}

#[test]
fn a_message_over_max_message_size_is_closed_with_1009() {
    let hub = TestHub::new().config(|c| c.max_message_size = 1024).start();
    let mut client = hub.client();
    client.send_text(&format!(
        r#"{{"type":"ping","pad":"{}"}}"#,
        "x".repeat(2000)
    ));
    assert_eq!(client.recv_close(), Some(1009));
    // Exactly at the limit is fine.
    let mut ok = hub.client();
    let frame = |pad: usize| format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(pad));
    let text = frame(1024 - frame(0).len());
    assert_eq!(text.len(), 1024);
    ok.send_text(&text);
    assert_eq!(ok.recv_json()["type"], "pong");
}

/// A TCP connection that never sends its handshake does not delay anyone
/// else's `welcome`: the handshake runs on that connection's own thread.
#[test]
fn a_silent_tcp_connection_does_not_delay_another_welcome() {
    let hub = TestHub::new().start();
    let mut silent = TcpStream::connect(hub.ws).unwrap();
    let mut half = TcpStream::connect(hub.ws).unwrap();
    half.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Both are still open and mid-handshake while this client is served.
    let client = hub.client();
    assert_eq!(client.welcome["type"], "welcome");
    silent.write_all(b"").unwrap();
}
