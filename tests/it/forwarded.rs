//! `--trusted-proxy`: behind a reverse proxy, the client's address comes
//! from `X-Forwarded-For` / `Forwarded`, but only when the TCP peer is a
//! trusted proxy. What goes by that address: `/status`, the per-address
//! limit, the authorizer's `ConnectionInfo` (and the log lines, tested in
//! cli.rs against the binary).

use serde_json::Value;

use crate::support::*;

/// The `/status` entry of the one connected client.
fn only_connection(hub: &RunningHub) -> Value {
    let status = http_get(hub.http, "/status").json();
    let connections = status["connections"].as_array().expect("a list").clone();
    assert_eq!(connections.len(), 1, "{status}");
    connections[0].clone()
}

#[test]
fn a_trusted_proxy_names_the_client_in_status_and_for_the_per_ip_limit() {
    let hub = TestHub::new()
        .config(|c| {
            c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
            c.max_connections_per_ip = 1;
        })
        .start();
    let forwarded = |xff: &str| Client::connect_with(hub.ws, "/ws", &[("X-Forwarded-For", xff)]);

    // The client a made-up entry claims to be is never believed: read
    // from the right, the proxy's own entry names 203.0.113.9.
    let mut first = forwarded("6.6.6.6, 203.0.113.9").expect("admitted");
    first.recv_json(); // welcome
    let entry = only_connection(&hub);
    assert_eq!(entry["remote_addr"], "203.0.113.9", "{entry}");
    let via = entry["via"].as_str().expect("the proxy is named");
    assert!(via.starts_with("127.0.0.1:"), "{entry}");

    // Each forwarded client has its own per-address count, though all
    // come from 127.0.0.1.
    let mut second = forwarded("198.51.100.7").expect("another client, another address");
    second.recv_json();
    match forwarded("203.0.113.9") {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!(
            "expected 429 for a second 203.0.113.9, got {:?}",
            other.map(|_| ())
        ),
    }
    // RFC 7239 `Forwarded` works too when there is no X-Forwarded-For.
    let mut third = Client::connect_with(
        hub.ws,
        "/ws",
        &[("Forwarded", "for=\"[2001:db8::5]:4711\";proto=https")],
    )
    .expect("admitted");
    third.recv_json();
    let status = http_get(hub.http, "/status").json();
    let addresses: Vec<&str> = status["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["remote_addr"].as_str().unwrap())
        .collect();
    assert!(addresses.contains(&"[2001:db8::5]:4711"), "{status}");
}

#[test]
fn headers_from_an_untrusted_peer_are_ignored() {
    // The proxy is trusted on 10.0.0.0/8, but the test connects from
    // 127.0.0.1: its header is a client's claim.
    let hub = TestHub::new()
        .config(|c| {
            c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
            c.max_connections_per_ip = 1;
        })
        .start();
    let mut first = Client::connect_with(hub.ws, "/ws", &[("X-Forwarded-For", "203.0.113.9")])
        .expect("admitted");
    first.recv_json();
    let entry = only_connection(&hub);
    let address = entry["remote_addr"].as_str().unwrap();
    assert!(address.starts_with("127.0.0.1:"), "{entry}");
    assert!(entry.get("via").is_none(), "{entry}");
    // A different made-up address does not get a second place.
    match Client::connect_with(hub.ws, "/ws", &[("X-Forwarded-For", "198.51.100.7")]) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn without_trusted_proxies_nothing_is_believed() {
    let hub = TestHub::new().start();
    let mut client = Client::connect_with(
        hub.ws,
        "/ws",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("Forwarded", "for=203.0.113.9"),
        ],
    )
    .expect("admitted");
    client.recv_json();
    let entry = only_connection(&hub);
    assert!(
        entry["remote_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{entry}"
    );
}
