//! A hostile mix (issue 6): hundreds of connect/abort cycles, garbage,
//! half handshakes, disconnects mid-frame and abusive HTTP requests, all
//! at once, while events are published. Afterwards a normal client has
//! every event in order and the active count is back to 0.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;

use serde_json::json;

use crate::support::*;

/// One abusive act, chosen by `n`; never waits for more than a moment.
fn abuse(ws: SocketAddr, http: SocketAddr, n: usize) {
    let Ok(mut tcp) = TcpStream::connect(ws) else {
        return;
    };
    let _ = tcp.set_read_timeout(Some(ms(200)));
    let upgrade = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let _ = match n % 8 {
        // connect and abort
        0 => Ok(()),
        // garbage instead of HTTP
        1 => tcp.write_all(&[0x16, 0x03, 0x01, 0xff, 0x00, 0x13, 0x37]),
        // half a handshake
        2 => tcp.write_all(&upgrade.as_bytes()[..upgrade.len() / 2]),
        // upgrade, then half of a frame declaring 100 bytes
        3 => tcp.write_all(upgrade.as_bytes()).and_then(|()| {
            let frame = client_frame(true, 0x1, &[b' '; 100]);
            tcp.write_all(&frame[..20])
        }),
        // upgrade, subscribe, vanish without a Close
        4 => tcp.write_all(upgrade.as_bytes()).and_then(|()| {
            let subscribe = json!({"type": "subscribe", "channels": ["feed"]}).to_string();
            tcp.write_all(&client_frame(true, 0x1, subscribe.as_bytes()))
        }),
        // upgrade, then an unmasked frame and a 2^63 length
        5 => tcp.write_all(upgrade.as_bytes()).and_then(|()| {
            tcp.write_all(&[0x81, 0x02, b'{', b'}'])?;
            tcp.write_all(&[0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4])
        }),
        // the HTTP port: a terabyte body, then half a request
        6 => TcpStream::connect(http).and_then(|mut h| {
            h.write_all(b"POST /publish HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n{")
        }),
        _ => TcpStream::connect(http).and_then(|mut h| h.write_all(b"GET /heal")),
    };
    // Abort: sometimes after reading a little, so the hub has answered.
    if n % 3 == 0 {
        let _ = std::io::Read::read(&mut tcp, &mut [0u8; 64]);
    }
}

#[test]
fn a_hostile_mix_leaves_events_and_counts_intact() {
    const THREADS: usize = 4;
    const ACTS: usize = 100; // per thread: 400 in all
    const EVENTS: u64 = 300;
    let hub = TestHub::new()
        .config(|c| c.handshake_timeout = ms(500))
        .start();
    let mut subscriber = hub.subscriber(&["feed"]);
    let (ws, http) = (hub.ws, hub.http);
    let attackers: Vec<_> = (0..THREADS)
        .map(|t| thread::spawn(move || (0..ACTS).for_each(|i| abuse(ws, http, t * ACTS + i))))
        .collect();
    for n in 0..EVENTS {
        hub.handle.publish("feed", json!(n)).unwrap();
    }
    for attacker in attackers {
        attacker.join().unwrap();
    }
    let events: Vec<_> = (0..EVENTS).map(|_| subscriber.recv_event()).collect();
    let expected: Vec<u64> = (1..=EVENTS).collect();
    assert_in_order_without_gaps(&events, &expected);
    // Still served normally, by both listeners.
    assert_eq!(hub.http_publish("feed", json!("after"))["seq"], EVENTS + 1);
    assert_eq!(subscriber.recv_event()["data"], "after");
    let mut late = hub.client_at("/ws?token=ok");
    late.sync();

    subscriber.close();
    late.close();
    wait_until("no connection is active", PATIENCE, || {
        hub.handle.stats().unwrap().connections_active == 0
    });
    let health = http_get(hub.http, "/health").json();
    assert_eq!(health["connections"]["active"], 0, "{health}");
}

/// An `Authorizer` with bugs: it panics on one token and one channel.
struct PanickingAuthorizer;

impl pumphub::Authorizer for PanickingAuthorizer {
    fn requires_token(&self) -> bool {
        true
    }
    fn check_token(&self, token: &str) -> bool {
        assert_ne!(token, "boom", "a bug in the application's token check");
        token == "ok"
    }
    fn may_subscribe(&self, _: &pumphub::ConnectionInfo, channel: &str) -> bool {
        assert_ne!(channel, "boom", "a bug in the application's authorizer");
        true
    }
}

/// A panic on one client's thread costs only that client: dropped in the
/// handshake, Close 1011 after it; others keep receiving every event, the count returns to what it
/// was, new clients are served, and the hub shuts down cleanly.
#[test]
fn a_panic_in_one_clients_thread_costs_only_that_client() {
    let mut hub = TestHub::new().start_with_authorizer(std::sync::Arc::new(PanickingAuthorizer));
    let mut bystander = hub.client_at("/ws?token=ok");
    bystander.subscribe(&["feed"], None);
    // In the handshake: that TCP connection is dropped, nothing else.
    match Client::connect(hub.ws, "/ws?token=boom") {
        Err(tungstenite::Error::Http(response)) => panic!("answered {}", response.status()),
        Err(_) => {}
        Ok(_) => panic!("upgraded"),
    }
    // On the read pump: Close 1011.
    for round in 0..3 {
        let mut victim = hub.client_at("/ws?token=ok");
        victim.send_json(json!({"type": "subscribe", "channels": ["boom"]}));
        assert_eq!(victim.recv_close(), Some(1011), "round {round}");
        hub.handle.publish("feed", json!(round)).unwrap();
        assert_eq!(bystander.recv_event()["data"], round);
    }
    wait_until("only the bystander is active", PATIENCE, || {
        hub.handle.stats().unwrap().connections_active == 1
    });
    let mut late = hub.client_at("/ws?token=ok");
    late.sync();
    hub.shutdown();
    assert_eq!(bystander.recv_until("shutdown").0["type"], "shutdown");
}
