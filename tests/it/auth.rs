//! Authentication and permissions (docs/protocol.md, "Authentication"): one test
//! per way of presenting `--token` and per way of getting it wrong, the
//! authentication deadline, and an application's own `Authorizer` deciding
//! subscribe and publish per channel.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pumphub::Authorizer;
use pumphub::ConnectionInfo;
use serde_json::{json, Value};

use crate::support::*;

const TOKEN: &str = "s3cret";

fn token_hub() -> RunningHub {
    TestHub::new()
        .config(|c| c.token = Some(TOKEN.into()))
        .start()
}

/// A hub that wants `TOKEN` and gives a client `auth_timeout` to send it
/// (the setting behind `--auth-timeout-ms`).
fn token_hub_waiting(auth_timeout: Duration) -> RunningHub {
    TestHub::new()
        .config(|c| {
            c.token = Some(TOKEN.into());
            c.auth_timeout = auth_timeout;
        })
        .start()
}

/// The HTTP status of a handshake the server refused.
pub fn refused_status(result: Result<Client, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected the handshake to be refused"),
    }
}

/// Send `request` and read the reply to it.
fn ask(client: &mut Client, request: Value) -> Value {
    client.send_json(request);
    client.recv_json()
}

/// True if the client is authenticated: a subscribe is answered, not refused.
fn can_subscribe(client: &mut Client) -> bool {
    let reply = ask(
        client,
        json!({"type": "subscribe", "id": "probe", "channels": ["a"]}),
    );
    assert_eq!(reply["id"], "probe", "{reply}");
    match reply["type"].as_str() {
        Some("subscribed") => true,
        Some("error") if reply["code"] == "unauthenticated" => false,
        _ => panic!("unexpected reply {reply}"),
    }
}

#[test]
fn good_token_in_the_url_is_authenticated() {
    let hub = token_hub();
    let mut client = hub.client_at(&format!("/ws?token={TOKEN}"));
    assert!(can_subscribe(&mut client));
}

#[test]
fn wrong_or_empty_token_in_the_url_gets_401() {
    let hub = token_hub();
    for path in ["/ws?token=wrong", "/ws?token=", "/ws?token=s3cre"] {
        assert_eq!(refused_status(Client::connect(hub.ws, path)), 401, "{path}");
    }
}

#[test]
fn good_bearer_header_is_authenticated() {
    let hub = token_hub();
    let bearer = format!("Bearer {TOKEN}");
    let mut client = Client::connect_with(hub.ws, "/ws", &[("Authorization", &bearer)])
        .expect("upgrade succeeds");
    assert_eq!(client.recv_json()["type"], "welcome");
    assert!(can_subscribe(&mut client));
}

#[test]
fn wrong_or_non_bearer_authorization_gets_401() {
    let hub = token_hub();
    let basic = format!("Basic {TOKEN}");
    for value in ["Bearer wrong", "Bearer ", basic.as_str(), TOKEN] {
        let refused = Client::connect_with(hub.ws, "/ws", &[("Authorization", value)]);
        assert_eq!(refused_status(refused), 401, "Authorization: {value}");
    }
}

/// No token in the upgrade: upgraded, and every request but `auth` gets
/// `unauthenticated` (with its id) until a good `auth`; a wrong `auth` gets
/// `unauthenticated` and the connection stays.
#[test]
fn without_a_token_requests_are_refused_until_auth() {
    let hub = token_hub();
    let mut client = hub.client();
    for request in [
        json!({"type": "ping", "id": 1}),
        json!({"type": "subscribe", "id": 2, "channels": ["a"]}),
        json!({"type": "unsubscribe", "id": 3, "channels": ["a"]}),
        json!({"type": "publish", "id": 4, "channel": "a", "data": 1}),
    ] {
        let reply = ask(&mut client, request.clone());
        assert_eq!(reply["type"], "error", "{request} -> {reply}");
        assert_eq!(reply["code"], "unauthenticated", "{reply}");
        assert_eq!(reply["id"], request["id"], "{reply}");
    }
    let wrong = ask(
        &mut client,
        json!({"type": "auth", "id": "w", "token": "nope"}),
    );
    assert_eq!(wrong["code"], "unauthenticated", "{wrong}");
    assert_eq!(wrong["id"], "w");
    let empty = ask(&mut client, json!({"type": "auth", "id": "e", "token": ""}));
    assert_eq!(empty["code"], "unauthenticated", "{empty}");
    assert!(!can_subscribe(&mut client), "a wrong auth left it open");

    let good = ask(
        &mut client,
        json!({"type": "auth", "id": "g", "token": TOKEN}),
    );
    assert_eq!(good, json!({"type": "authenticated", "id": "g"}));
    assert!(can_subscribe(&mut client));
    // Already authenticated: `auth` answers `authenticated` again.
    let again = ask(&mut client, json!({"type": "auth", "token": "whatever"}));
    assert_eq!(again, json!({"type": "authenticated"}));
}

/// No `auth` within the deadline (10 s by default; shortened here through
/// the `auth_timeout` setting behind `--auth-timeout-ms`): Close 1008.
#[test]
fn no_auth_before_the_deadline_is_closed_with_1008() {
    // Long enough for the test thread's requests to be answered in time
    // on a loaded machine; the deadline is what is tested, not its length.
    let hub = token_hub_waiting(ms(600));
    let started = Instant::now();
    let mut idle = hub.client();
    // A wrong `auth` does not extend or end the wait.
    let wrong = ask(&mut idle, json!({"type": "auth", "token": "nope"}));
    assert_eq!(wrong["code"], "unauthenticated");
    match idle.recv() {
        Received::Closed(Some((code, reason))) => {
            assert_eq!(code, 1008);
            assert_eq!(reason, "authentication timeout");
        }
        other => panic!("expected Close 1008, got {other:?}"),
    }
    assert!(started.elapsed() >= ms(600), "closed before the deadline");

    // One that authenticated in time outlives the deadline.
    let mut prompt = hub.client();
    let good = ask(&mut prompt, json!({"type": "auth", "token": TOKEN}));
    assert_eq!(good["type"], "authenticated");
    let mut closing = hub.client();
    assert_eq!(closing.recv_close(), Some(1008));
    assert!(
        can_subscribe(&mut prompt),
        "authenticated client was closed"
    );
}

/// A client that trickles one frame a byte at a time does not outlive the
/// deadline: it is absolute, not reset by every byte that arrives.
#[test]
fn trickling_a_frame_does_not_extend_the_auth_deadline() {
    let hub = token_hub_waiting(ms(500));
    let mut raw = RawWs::connect(hub.ws, "/ws");
    let frame = client_frame(true, 0x1, &[b' '; 100]);
    let total = frame.len();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writer = raw.tcp.try_clone().expect("clone the socket");
    let trickled = sent.clone();
    // One byte every 100 ms: the whole frame would take over 10 s. The
    // thread ends at the frame's end or when the hub has closed the socket.
    let trickler = std::thread::spawn(move || {
        for byte in frame {
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            trickled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(ms(100)); // pacing the attack, not a wait
        }
    });
    let close = raw.read_close();
    let when = sent.load(std::sync::atomic::Ordering::SeqCst);
    raw.tcp.shutdown(std::net::Shutdown::Both).ok();
    trickler.join().expect("the trickler ends");
    assert_eq!(close, Some((1008, "authentication timeout".to_string())));
    assert!(
        when < total,
        "closed only after the whole frame arrived ({when} of {total} bytes)"
    );
}

/// Clients that authenticated in the upgrade have no deadline either.
#[test]
fn a_token_in_the_upgrade_has_no_auth_deadline() {
    // Long enough for `late` to read its `welcome` on a loaded machine: a
    // kick drops what the write pump has not written yet, and at 100 ms the
    // Close 1008 once came without the `welcome` before it.
    let hub = token_hub_waiting(ms(500));
    let mut client = hub.client_at(&format!("/ws?token={TOKEN}"));
    let mut late = hub.client();
    assert_eq!(late.recv_close(), Some(1008)); // well past the deadline
    assert!(can_subscribe(&mut client));
}

/// With no token configured, `auth` with anything answers `authenticated`.
#[test]
fn auth_without_a_configured_token_is_authenticated() {
    let hub = TestHub::new().start();
    let mut client = hub.client();
    let reply = ask(&mut client, json!({"type": "auth", "id": 9, "token": "x"}));
    assert_eq!(reply, json!({"type": "authenticated", "id": 9}));
    // And a token in the URL is simply ignored.
    let mut other = hub.client_at("/ws?token=anything");
    assert!(can_subscribe(&mut other));
}

/// With `--token`, `?channels=` is honoured only with a token in the upgrade.
#[test]
fn url_channels_need_the_token_in_the_upgrade() {
    let hub = token_hub();
    assert_eq!(
        refused_status(Client::connect(hub.ws, "/ws?channels=a")),
        401
    );
    let mut client = hub.client_at(&format!("/ws?channels=a&token={TOKEN}"));
    assert_eq!(client.recv_json()["type"], "subscribed");
}

/// An application's authorizer: its own token, subscribe to anything but
/// `secret.*`, publish only to `chat.*`.
struct AppAuthorizer;

impl Authorizer for AppAuthorizer {
    fn requires_token(&self) -> bool {
        true
    }
    fn check_token(&self, token: &str) -> bool {
        token == "app-token"
    }
    fn may_subscribe(&self, _connection: &ConnectionInfo, channel: &str) -> bool {
        !channel.starts_with("secret.")
    }
    fn may_publish(&self, _connection: &ConnectionInfo, channel: &str) -> bool {
        channel.starts_with("chat.")
    }
}

#[test]
fn a_custom_authorizer_decides_tokens_and_channels() {
    let hub = TestHub::new().start_with_authorizer(Arc::new(AppAuthorizer));
    assert_eq!(
        refused_status(Client::connect(hub.ws, &format!("/ws?token={TOKEN}"))),
        401
    );
    let mut client = hub.client_at("/ws?token=app-token");

    // A refused channel refuses the whole request, and nothing is subscribed.
    let refused = ask(
        &mut client,
        json!({"type": "subscribe", "id": 1, "channels": ["chat.x", "secret.keys"]}),
    );
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(refused["id"], 1);
    let (subscribed, _) = client.subscribe(&["chat.room"], None);
    assert_eq!(subscribed["channels"], json!(["chat.room"]));

    let forbidden = ask(
        &mut client,
        json!({"type": "publish", "id": 2, "channel": "news", "data": 1}),
    );
    assert_eq!(forbidden["code"], "forbidden", "{forbidden}");
    assert_eq!(forbidden["id"], 2);

    client.send_json(json!({"type": "publish", "id": 3, "channel": "chat.room", "data": "hi"}));
    let mut published = None;
    let mut event = None;
    while published.is_none() || event.is_none() {
        let frame = client.recv_json();
        match frame["type"].as_str() {
            Some("published") => published = Some(frame),
            Some("event") => event = Some(frame),
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(published.unwrap()["id"], 3);
    assert_eq!(event.unwrap()["data"], "hi");

    // Events of a refused channel never reach the client: publish one from
    // the application, then one on its channel, and only the second arrives.
    hub.handle.publish("secret.keys", json!("no")).unwrap();
    hub.handle.publish("chat.room", json!("yes")).unwrap();
    assert_eq!(client.recv_event()["data"], "yes");
}

/// `--allow-client-publish` off (the default): `publish` is `forbidden`;
/// on: it is published.
#[test]
fn client_publish_follows_allow_client_publish() {
    let closed = TestHub::new().start();
    let mut client = closed.client();
    let reply = ask(
        &mut client,
        json!({"type": "publish", "id": "p", "channel": "a", "data": 1}),
    );
    assert_eq!(reply["code"], "forbidden", "{reply}");
    assert_eq!(reply["id"], "p");

    let open = TestHub::new()
        .config(|c| c.allow_client_publish = true)
        .start();
    let mut publisher = open.client();
    let mut reader = open.subscriber(&["a"]);
    let reply = ask(
        &mut publisher,
        json!({"type": "publish", "id": "p", "channel": "a", "data": 1}),
    );
    assert_eq!(reply["type"], "published", "{reply}");
    assert_eq!(reader.recv_event()["data"], 1);
}

/// `?channels=` on the URL is a subscribe like any other: a channel the
/// authorizer refuses subscribes to nothing and is answered `forbidden`
/// after `welcome`; allowed ones are subscribed.
#[test]
fn url_channels_are_checked_by_the_authorizer() {
    let hub = TestHub::new().start_with_authorizer(Arc::new(AppAuthorizer));
    let mut refused = hub.client_at("/ws?token=app-token&channels=chat.a,secret.keys");
    let reply = refused.recv_json();
    assert_eq!(reply["code"], "forbidden", "{reply}");
    assert!(reply.get("id").is_none(), "{reply}");
    let mut allowed = hub.client_at("/ws?token=app-token&channels=chat.a");
    assert_eq!(allowed.recv_json()["type"], "subscribed");
    hub.handle.publish("secret.keys", json!("no")).unwrap();
    hub.handle.publish("chat.a", json!("yes")).unwrap();
    assert_eq!(allowed.recv_event()["data"], "yes");
    // The refused client got neither event: its next frame is our pong.
    refused.sync();
}

/// Per-user permissions: the authorizer learns who a connection is in
/// `authenticate`, decides by it in `may_subscribe` / `may_publish`, and
/// forgets it in `disconnected`, called once per connection.
#[derive(Default)]
struct PerUser {
    users: std::sync::Mutex<std::collections::HashMap<pumphub::ConnectionId, String>>,
    ended: std::sync::atomic::AtomicUsize,
}

impl Authorizer for PerUser {
    fn requires_token(&self) -> bool {
        true
    }
    fn check_token(&self, token: &str) -> bool {
        matches!(token, "alice" | "bob")
    }
    fn authenticate(&self, connection: &ConnectionInfo, token: &str) -> bool {
        let known = self.check_token(token);
        if known {
            let mut users = self.users.lock().unwrap();
            users.insert(connection.id, token.to_string());
        }
        known
    }
    fn may_subscribe(&self, connection: &ConnectionInfo, channel: &str) -> bool {
        let users = self.users.lock().unwrap();
        users
            .get(&connection.id)
            .is_some_and(|user| channel.starts_with(&format!("{user}.")))
    }
    fn may_publish(&self, connection: &ConnectionInfo, channel: &str) -> bool {
        self.may_subscribe(connection, channel)
    }
    fn disconnected(&self, connection: &ConnectionInfo) {
        self.users.lock().unwrap().remove(&connection.id);
        self.ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn an_authorizer_can_decide_per_user() {
    let authorizer = Arc::new(PerUser::default());
    let hub = TestHub::new().start_with_authorizer(authorizer.clone());
    let mut alice = hub.client_at("/ws?token=alice");
    let mut bob = hub.client();
    let reply = ask(&mut bob, json!({"type": "auth", "token": "bob"}));
    assert_eq!(reply["type"], "authenticated");

    let (ok, _) = alice.subscribe(&["alice.inbox"], None);
    assert_eq!(ok["type"], "subscribed");
    let refused = ask(
        &mut alice,
        json!({"type": "subscribe", "channels": ["bob.inbox"]}),
    );
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let (ok, _) = bob.subscribe(&["bob.inbox"], None);
    assert_eq!(ok["type"], "subscribed");
    let published = ask(
        &mut bob,
        json!({"type": "publish", "channel": "alice.inbox", "data": 1}),
    );
    assert_eq!(published["code"], "forbidden", "{published}");

    // A refused handshake is reported too: every connection that got as
    // far as the token check ends exactly once.
    assert_eq!(
        refused_status(Client::connect(hub.ws, "/ws?token=mallory")),
        401
    );
    alice.close();
    bob.close();
    wait_until("all three connections ended", PATIENCE, || {
        authorizer.ended.load(std::sync::atomic::Ordering::SeqCst) == 3
    });
    assert!(authorizer.users.lock().unwrap().is_empty());
}
