//! Fair front doors (issue 12, findings 5 and 6): one address cannot hold
//! either port. The HTTP port serves at most `--http-max-connections-per-ip`
//! (32) connections per address and the WebSocket port runs at most
//! `--max-handshakes-per-ip` (256) handshakes per address; connections
//! beyond those are answered 429 as they are accepted (503 when the whole
//! HTTP port is busy), by a thread that holds them a moment so the answer
//! is read, never by the accept loop. Attackers use other loopback
//! addresses (127.0.0.2…), the legitimate client 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::*;

/// The first line of what the server sends on `tcp`, within `PATIENCE`.
fn status_line(tcp: &mut TcpStream) -> String {
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n") {
        match tcp.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&answer).trim_end().to_string()
}

/// `count` connections from `from`, each sending a keep-alive `GET /health`
/// and reading its answer, then staying open and quiet.
fn hold_http(from: &str, http: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut tcp = connect_from(from, http).expect("connect");
            tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut reply = read_http_response(&mut tcp);
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.body.clear();
            tcp
        })
        .collect()
}

/// Finding 5, one address: it holds its 32 keep-alive connections and
/// opens 300 more that never send anything. Before, one client could take
/// all 128 places, and each refused connection lingered up to a second on
/// the accept thread, so `/health` from anyone else waited 30 s for even
/// its 503. Now the 300 get 429 at once and another address is served at
/// once (asserted within 4 s, generous for a loaded machine).
#[test]
fn one_address_cannot_hold_the_http_port() {
    let hub = TestHub::new().start();
    let _held = hold_http("127.0.0.2", hub.http, 32);
    let mut extra: Vec<TcpStream> = (0..300)
        .map(|_| connect_from("127.0.0.2", hub.http).expect("connect"))
        .collect();
    let started = Instant::now();
    let health = http_get(hub.http, "/health");
    let took = started.elapsed();
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(took < Duration::from_secs(4), "/health took {took:?}");
    for tcp in extra.iter_mut().rev().take(5) {
        assert_eq!(status_line(tcp), "HTTP/1.1 429 Too Many Requests");
    }
}

/// Finding 5, the whole port: four addresses hold all 128 places, and 400
/// more connections wait to be refused. Another address gets its 503
/// within 4 s (before: after every refusal ahead of it had lingered).
#[test]
fn a_full_http_port_answers_503_at_once() {
    let hub = TestHub::new().start();
    let _held: Vec<Vec<TcpStream>> = (2..6)
        .map(|n| hold_http(&format!("127.0.0.{n}"), hub.http, 32))
        .collect();
    let _waiting: Vec<TcpStream> = (0..400)
        .map(|i| connect_from(&format!("127.0.0.{}", 6 + i % 4), hub.http).expect("connect"))
        .collect();
    let started = Instant::now();
    let mut tcp = TcpStream::connect(hub.http).unwrap();
    let line = status_line(&mut tcp);
    let took = started.elapsed();
    assert_eq!(line, "HTTP/1.1 503 Service Unavailable");
    assert!(took < Duration::from_secs(4), "the 503 took {took:?}");
}

/// Finding 6: 1,100 silent TCP connections from one address. Before, 1,024
/// of them filled every handshake place and a handshake from anyone else
/// waited in the listen backlog until the first silent one timed out,
/// 9.5 s in the review. Now the address gets 256 places, the rest are
/// answered 429 as they are accepted, and another address's handshake
/// completes at once (asserted within 4 s, generous for a loaded machine).
#[test]
fn silent_connections_from_one_address_do_not_delay_others() {
    const SILENT: usize = 1100;
    let hub = TestHub::new().start();
    let mut silent: Vec<TcpStream> = (0..SILENT)
        .map(|_| connect_from("127.0.0.2", hub.ws).expect("connect"))
        .collect();
    let refused = (SILENT - 256) as f64;
    wait_until("the hub has refused the address's excess", PATIENCE, || {
        let metrics = hub.handle.render_metrics().unwrap();
        metric_value(
            &metrics,
            "pumphub_connections_rejected_total{reason=\"per_ip\"}",
        ) >= refused
    });
    let started = Instant::now();
    let mut client = hub.client();
    client.sync();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "the handshake took {took:?}");
    let last = silent.last_mut().unwrap();
    assert_eq!(status_line(last), "HTTP/1.1 429 Too Many Requests");
}
