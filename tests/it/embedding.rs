//! Embedding on the application's terms, through the public API only: a
//! hub with no listeners of its own fed connections from the test's own
//! `TcpListener`; one port shared by an application's tiny_http routes
//! and the hub; in-process resume with `subscribe_since`; limits and the
//! token applying to handed-over connections; publishing a plain struct;
//! graceful shutdown of handed-over connections.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use pumphub::{Config, Error, Hub, Seq, Upgrader};
use serde::Serialize;
use serde_json::{json, Value};
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::Message;

use crate::support::*;

/// A hub that binds nothing: every client comes through its `Upgrader`.
fn hub_without_listeners(change: impl FnOnce(&mut Config)) -> Hub {
    let mut config = Config {
        ws_addr: None,
        http_addr: None,
        ..Config::default()
    };
    change(&mut config);
    let hub = Hub::start(config).expect("hub starts");
    assert_eq!((hub.ws_addr(), hub.http_addr()), (None, None));
    hub
}

/// The application's own port: an accept loop on a `TcpListener` of the
/// test's that gives each connection to `route` on a thread of its own, as
/// an application's server would. Stopped and joined on drop.
struct AppPort {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl AppPort {
    fn start(route: impl Fn(TcpStream) + Send + Sync + 'static) -> AppPort {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let route = Arc::new(route);
        let accept = {
            let stop = stop.clone();
            thread::spawn(move || {
                for tcp in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let route = route.clone();
                    thread::spawn(move || route(tcp));
                }
            })
        };
        AppPort {
            addr,
            stop,
            accept: Some(accept),
        }
    }

    /// Hand every connection to the hub unread: the hub reads the request.
    fn handing_over(upgrader: Upgrader) -> AppPort {
        AppPort::start(move |tcp| {
            let _ = upgrader.upgrade(tcp);
        })
    }
}

impl Drop for AppPort {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr); // wakes `incoming`
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// The status of a refused upgrade.
fn refused_status(result: Result<Client, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got an upgrade"),
    }
}

/// Connect and read `welcome`.
fn connect(addr: SocketAddr, path: &str) -> Client {
    let mut client = Client::connect(addr, path).expect("upgrade succeeds");
    let welcome = client.recv_json();
    assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
    client.welcome = welcome;
    client
}

#[test]
fn a_hub_without_listeners_serves_connections_the_application_accepted() {
    let hub = hub_without_listeners(|_| {});
    let handle = hub.handle();
    let port = AppPort::handing_over(hub.upgrader());

    // Any path: the application decided this port is the hub's.
    let mut client = connect(port.addr, "/anything?channels=news");
    assert_eq!(client.welcome["epoch"], handle.epoch());
    let (subscribed, _) = client.recv_until("subscribed");
    assert_eq!(subscribed["channels"], json!(["news"]));

    let published = handle.publish("news", json!({"title": "hi"})).unwrap();
    let event = client.recv_event();
    assert_eq!(event["seq"], published.seq.0);
    assert_eq!(event["data"], json!({"title": "hi"}));

    // The operator's figures, without an HTTP port.
    client.sync();
    let stats = handle.stats().unwrap();
    assert_eq!(stats.connections_active, 1);
    assert_eq!(stats.seq, published.seq);
    let connections = handle.connections().unwrap();
    assert_eq!(connections.len(), 1);
    let metrics = handle.render_metrics().unwrap();
    assert!(
        metrics.contains("pumphub_connections_active 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pumphub_events_published_total 1\n"),
        "{metrics}"
    );

    // A second client on the same port, and the first one leaving.
    let mut other = connect(port.addr, "/ws");
    other.subscribe(&["news"], Some(0));
    client.close();
    assert_eq!(client.recv_close(), Some(1000));
    wait_until("the first client is gone", PATIENCE, || {
        handle.stats().unwrap().connections_active == 1
    });
}

/// What the application's tiny_http server answers: its own routes.
fn serve_pages(server: &tiny_http::Server) {
    while let Ok(request) = server.recv() {
        let response = match request.url() {
            "/" => tiny_http::Response::from_string("<h1>the application's page</h1>"),
            "/hello" => tiny_http::Response::from_string("hello from the application"),
            _ => tiny_http::Response::from_string("no such page").with_status_code(404),
        };
        let _ = request.respond(response);
    }
}

/// Read until the end of a request head (at most 16 KiB, 5 s); every byte
/// read, the head and whatever came after it. `None` if the peer left.
fn read_head(tcp: &mut TcpStream) -> Option<Vec<u8>> {
    tcp.set_read_timeout(Some(ms(5000))).ok()?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 2048];
    while !bytes.windows(4).any(|w| w == b"\r\n\r\n") && bytes.len() <= 16 * 1024 {
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    Some(bytes)
}

/// The request target's path, if the head parses.
fn path_of(head: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    request.parse(head).ok()?;
    let target = request.path?;
    Some(target.split('?').next().unwrap_or("").to_string())
}

/// Pass a connection to `pages` (tiny_http, which takes connections only
/// from its own listener), starting with the bytes already read.
fn relay(client: TcpStream, already_read: Vec<u8>, pages: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(pages) else {
        return;
    };
    if server.write_all(&already_read).is_err() {
        return;
    }
    let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut &client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

#[test]
fn one_port_serves_the_applications_tiny_http_routes_and_the_hub() {
    let hub = hub_without_listeners(|_| {});
    let pages = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let pages_addr = pages.server_addr().to_ip().unwrap();
    let worker = {
        let pages = pages.clone();
        thread::spawn(move || serve_pages(&pages))
    };
    // The application's front: `/live` is the hub's, the rest tiny_http's.
    let upgrader = hub.upgrader();
    let port = AppPort::start(move |mut tcp| {
        let Some(head) = read_head(&mut tcp) else {
            return;
        };
        if path_of(&head).as_deref() == Some("/live") {
            let _ = upgrader.upgrade_read(tcp, head);
        } else {
            relay(tcp, head, pages_addr);
        }
    });

    let page = http_get(port.addr, "/hello");
    assert_eq!(page.status, 200);
    assert_eq!(page.text(), "hello from the application");
    assert!(page
        .header("Server")
        .is_some_and(|s| s.contains("tiny-http")));
    assert_eq!(http_get(port.addr, "/").status, 200);

    let mut client = connect(port.addr, "/live?channels=ticks");
    client.recv_until("subscribed");
    hub.handle().publish("ticks", 1).unwrap();
    assert_eq!(client.recv_event()["data"], 1);

    // The hub checks the head the application read: no upgrade, no 101.
    let not_an_upgrade = http_get(port.addr, "/live");
    assert_eq!(not_an_upgrade.status, 400, "{}", not_an_upgrade.text());
    // And tiny_http still answers its own 404s.
    assert_eq!(http_get(port.addr, "/ws").status, 404);

    drop(client);
    drop(port);
    pages.unblock();
    worker.join().unwrap();
}

/// A connected pair on loopback: (the application's side, the peer's side).
fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(PATIENCE)).unwrap();
    (ours, peer)
}

const UPGRADE_HEAD: &str = "GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Read the answer's head from `peer`; returns it and what followed.
fn read_answer(peer: &mut TcpStream) -> (String, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = bytes.split_off(end + 4);
            return (String::from_utf8_lossy(&bytes).into_owned(), rest);
        }
        let n = peer.read(&mut chunk).expect("an answer");
        assert!(n > 0, "closed without an answer");
        bytes.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn handed_over_bytes_may_hold_the_first_frames_and_are_bounded() {
    let hub = hub_without_listeners(|_| {});
    let upgrader = hub.upgrader();

    // The application read the head and, in the same read, a first frame
    // the client sent early: the hub gives it to the read pump.
    let (ours, mut peer) = socket_pair();
    let mut already_read = UPGRADE_HEAD.as_bytes().to_vec();
    already_read.extend(client_frame(true, 0x1, br#"{"type":"ping","id":"early"}"#));
    upgrader.upgrade_read(ours, already_read).unwrap();
    let (answer, rest) = read_answer(&mut peer);
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    // The accept key is derived from the key in the handed-over head.
    assert!(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    let mut socket = WebSocket::from_partially_read(peer, rest, Role::Client, None);
    let mut next = || match socket.read().expect("a frame") {
        Message::Text(text) => serde_json::from_str::<Value>(&text).unwrap(),
        other => panic!("expected text, got {other:?}"),
    };
    assert_eq!(next()["type"], "welcome");
    let pong = next();
    assert_eq!(
        (&pong["type"], &pong["id"]),
        (&json!("pong"), &json!("early"))
    );

    // Half a head: the hub reads the rest itself.
    let (ours, mut peer) = socket_pair();
    let (first, second) = UPGRADE_HEAD.split_at(20);
    upgrader
        .upgrade_read(ours, first.as_bytes().to_vec())
        .unwrap();
    peer.write_all(second.as_bytes()).unwrap();
    assert!(read_answer(&mut peer).0.starts_with("HTTP/1.1 101 "));

    // A head over the hub's bound is refused as if the hub had read it.
    let (ours, mut peer) = socket_pair();
    let long = format!(
        "GET /live HTTP/1.1\r\nX-Long: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    upgrader.upgrade_read(ours, long.into_bytes()).unwrap();
    assert!(read_answer(&mut peer).0.starts_with("HTTP/1.1 431 "));
}

/// `--max-handshakes-per-ip` counts handed-over connections too: with two
/// silent ones from 127.0.0.1 in their handshake, a third from there is
/// answered 429 at once (and counted as `per_ip`); once one of the two has
/// finished its handshake (its `welcome` arrived, which the hub sends only
/// after giving the place back), the next is served.
#[test]
fn handed_over_connections_count_against_the_handshakes_per_address() {
    let hub = hub_without_listeners(|c| c.max_handshakes_per_ip = 2);
    let upgrader = hub.upgrader();
    let mut silent: Vec<TcpStream> = (0..2)
        .map(|_| {
            let (ours, peer) = socket_pair();
            upgrader.upgrade(ours).unwrap();
            peer
        })
        .collect();

    let (ours, mut peer) = socket_pair();
    upgrader
        .upgrade_read(ours, UPGRADE_HEAD.as_bytes().to_vec())
        .unwrap();
    let (answer, _) = read_answer(&mut peer);
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    let metrics = hub.handle().render_metrics().unwrap();
    let line = "pumphub_connections_rejected_total{reason=\"per_ip\"} 1\n";
    assert!(metrics.contains(line), "{line} in {metrics}");

    // One of the two finishes its handshake and gets its `welcome`.
    let mut first = silent.remove(0);
    first.write_all(UPGRADE_HEAD.as_bytes()).unwrap();
    let (answer, rest) = read_answer(&mut first);
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    let mut socket = WebSocket::from_partially_read(first, rest, Role::Client, None);
    match socket.read().expect("welcome") {
        Message::Text(text) => assert!(text.contains(r#""type":"welcome""#), "{text}"),
        other => panic!("expected welcome, got {other:?}"),
    }
    let (ours, mut peer) = socket_pair();
    upgrader
        .upgrade_read(ours, UPGRADE_HEAD.as_bytes().to_vec())
        .unwrap();
    let (answer, _) = read_answer(&mut peer);
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
}

/// Events of `subscription` until one with seq `last` (inclusive).
fn receive_through(subscription: &pumphub::Subscription, last: Seq) -> Vec<pumphub::Event> {
    let mut events = Vec::new();
    while events.last().is_none_or(|e: &pumphub::Event| e.seq < last) {
        events.push(subscription.recv_timeout(PATIENCE).expect("an event"));
    }
    events
}

#[test]
fn in_process_resume_replays_what_was_missed_then_goes_live() {
    let hub = hub_without_listeners(|_| {});
    let handle = hub.handle();
    let first = handle.subscribe(&["a", "b"]).unwrap();
    assert!(first.complete() && first.replayed() == 0);
    handle.publish("a", "a1").unwrap();
    let b1 = handle.publish("b", "b1").unwrap();
    let seen = receive_through(&first, b1.seq);
    assert_eq!(seen.len(), 2);
    let last_seen = seen[1].seq;
    drop(first); // the component stops

    // While it is away: its channels and another.
    let a2 = handle.publish("a", "a2").unwrap();
    handle.publish("c", "c1").unwrap();
    let b2 = handle.publish("b", "b2").unwrap();
    assert_eq!(handle.stats().unwrap().seq, b2.seq);

    // Resuming while a publisher keeps going: the replay, then the live
    // events, each seq of a and b once, in order, none missing.
    let (halfway_tx, halfway) = crossbeam_channel::bounded(1);
    let publisher = {
        let handle = handle.clone();
        thread::spawn(move || {
            let mut ours = Vec::new();
            for n in 0..300 {
                if n == 100 {
                    let _ = halfway_tx.send(());
                }
                let channel = ["a", "b", "c"][n % 3];
                let published = handle.publish(channel, n).unwrap();
                if channel != "c" {
                    ours.push(published.seq);
                }
            }
            ours
        })
    };
    halfway.recv().unwrap();
    // A name given twice is followed (and replayed) once.
    let resumed = handle.subscribe_since(&["a", "b", "a"], last_seen).unwrap();
    assert!(resumed.complete());
    let live_seqs = publisher.join().unwrap();
    let expected: Vec<Seq> = [a2.seq, b2.seq]
        .into_iter()
        .chain(live_seqs.iter().copied())
        .collect();
    let got: Vec<Seq> = receive_through(&resumed, *live_seqs.last().unwrap())
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, expected);
    assert!(
        resumed.replayed() >= 2 + 66,
        "a2, b2 and the first hundred's a and b were replayed: {}",
        resumed.replayed()
    );
    assert!(resumed.try_recv().is_err(), "nothing after the last");
    drop(resumed);

    // From a seq this hub never reached (another epoch's): not complete.
    let future = handle.subscribe_since(&["a"], Seq(1_000_000)).unwrap();
    assert!(!future.complete());
    assert_eq!(future.replayed(), 0);
}

#[test]
fn in_process_resume_says_when_history_no_longer_covers_since() {
    let hub = hub_without_listeners(|c| c.history_size = 2);
    let handle = hub.handle();
    for n in 1..=5 {
        handle.publish("a", n).unwrap();
    }
    let resumed = handle.subscribe_since(&["a"], Seq(1)).unwrap();
    assert!(!resumed.complete(), "seqs 2 and 3 were evicted");
    assert_eq!(resumed.replayed(), 2);
    let data: Vec<Value> = (0..2).map(|_| resumed.recv().unwrap().data).collect();
    assert_eq!(data, [json!(4), json!(5)]);
    let covered = handle.subscribe_since(&["a"], Seq(3)).unwrap();
    assert!(covered.complete());
    assert_eq!(covered.replayed(), 2);
}

#[test]
fn the_token_and_limits_apply_to_handed_over_connections() {
    let hub = hub_without_listeners(|c| {
        c.token = Some("s3cret".into());
        c.max_connections_per_ip = 1;
        c.max_message_size = 64;
        c.allowed_origins = vec!["https://app.example".into()];
    });
    let handle = hub.handle();
    let port = AppPort::handing_over(hub.upgrader());

    // Channels in the URL without the token: refused at the upgrade.
    assert_eq!(
        refused_status(Client::connect(port.addr, "/live?channels=x")),
        401
    );
    assert_eq!(
        refused_status(Client::connect(port.addr, "/live?token=wrong")),
        401
    );
    let foreign = [("Origin", "https://evil.example")];
    assert_eq!(
        refused_status(Client::connect_with(
            port.addr,
            "/live?token=s3cret",
            &foreign
        )),
        403
    );
    let mut admitted = connect(port.addr, "/live?token=s3cret");
    assert_eq!(
        refused_status(Client::connect(port.addr, "/live?token=s3cret")),
        429
    );
    let metrics = handle.render_metrics().unwrap();
    for (reason, count) in [("unauthorized", 2), ("origin", 1), ("per_ip", 1)] {
        let line = format!("pumphub_connections_rejected_total{{reason=\"{reason}\"}} {count}\n");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }

    // --max-message-size holds on the read pump of a handed-over client.
    admitted.send_text(&format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(100)));
    assert_eq!(admitted.recv_close(), Some(1009));
}

#[test]
fn the_authorizer_sees_handed_over_connections_without_a_url_token() {
    // A token required and none in the URL: the client authenticates with
    // an `auth` request, as on the hub's own listener.
    let hub = hub_without_listeners(|c| c.token = Some("s3cret".into()));
    let port = AppPort::handing_over(hub.upgrader());
    let mut client = connect(port.addr, "/live");
    client.send_json(json!({"type": "subscribe", "id": "s", "channels": ["x"]}));
    let refused = client.recv_json();
    assert_eq!(refused["code"], "unauthenticated", "{refused}");
    client.send_json(json!({"type": "auth", "id": "a", "token": "s3cret"}));
    assert_eq!(client.recv_json()["type"], "authenticated");
    client.subscribe(&["x"], None);
}

#[derive(Serialize)]
struct Trade {
    symbol: String,
    cents: u64,
    tags: Vec<&'static str>,
}

#[test]
fn a_plain_struct_is_published_as_json() {
    let hub = hub_without_listeners(|_| {});
    let handle = hub.handle();
    let port = AppPort::handing_over(hub.upgrader());
    let mut client = connect(port.addr, "/live?channels=trades");
    client.recv_until("subscribed");
    let local = handle.subscribe(&["trades"]).unwrap();

    let trade = Trade {
        symbol: "BTC".into(),
        cents: 6_400_000,
        tags: vec!["spot"],
    };
    let published = handle.publish("trades", &trade).unwrap();
    assert_eq!(published.delivered, 2);
    let expected = json!({"symbol": "BTC", "cents": 6_400_000, "tags": ["spot"]});
    assert_eq!(client.recv_event()["data"], expected);
    assert_eq!(local.recv().unwrap().data, expected);

    // Several at once, and the re-exported json! for ad-hoc data.
    let all = handle
        .publish_all([("trades", pumphub::json!(1)), ("trades", pumphub::json!(2))])
        .unwrap();
    assert_eq!(all[1].seq.0, all[0].seq.0 + 1);

    // No JSON form: refused with serde_json's error as the cause.
    let mut by_pair = std::collections::HashMap::new();
    by_pair.insert((1, 2), "a map with non-string keys");
    let error = handle.publish("trades", by_pair).unwrap_err();
    assert!(matches!(error, Error::Serialize(_)), "{error:?}");
    let cause = std::error::Error::source(&error)
        .expect("a source")
        .to_string();
    assert!(error.to_string().contains(&cause), "{error}");
    assert_eq!(handle.stats().unwrap().seq, all[1].seq, "nothing published");
}

#[test]
fn a_bind_error_names_its_cause() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = held.local_addr().unwrap().to_string();
    let error = match Hub::start(Config {
        ws_addr: None,
        http_addr: Some(address.clone()),
        ..Config::default()
    }) {
        Err(error) => error,
        Ok(_) => panic!("bound a port that is in use"),
    };
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("cannot bind the http listener to {address}: ")),
        "{text}"
    );
    let cause = std::error::Error::source(&error).expect("the OS error");
    assert!(text.ends_with(&cause.to_string()), "{text}");
}

#[test]
fn graceful_shutdown_ends_handed_over_connections() {
    let hub = hub_without_listeners(|_| {});
    let handle = hub.handle();
    let upgrader = hub.upgrader();
    let port = AppPort::handing_over(upgrader.clone());
    let mut clients: Vec<Client> = (0..2)
        .map(|_| {
            let mut client = connect(port.addr, "/live?channels=news");
            client.recv_until("subscribed");
            client
        })
        .collect();
    let published = handle.publish("news", "last words").unwrap();
    assert_eq!(published.delivered, 2);

    let shutdown = thread::spawn(move || hub.shutdown());
    for client in &mut clients {
        assert_eq!(client.recv_event()["data"], "last words");
        let (frame, _) = client.recv_until("shutdown");
        assert!(frame["reconnect_ms"].is_u64(), "{frame}");
        assert_eq!(client.recv_close(), Some(1001));
    }
    shutdown.join().unwrap();

    // The hub is gone: a late hand-over is refused, not leaked.
    let (ours, _peer) = socket_pair();
    assert!(matches!(upgrader.upgrade(ours), Err(Error::ShuttingDown)));
    assert!(matches!(handle.stats(), Err(Error::ShuttingDown)));
}
