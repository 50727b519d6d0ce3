//! Signed tokens (`--token-secret`, docs/security.md): a real hub, real
//! sockets, tokens minted here by a small fixture written from RFC 7515
//! (base64url of the header and claims as written, HMAC-SHA256 over them),
//! and in the last tests by PyJWT and by the snippets of docs/security.md.
//!
//! Expiry tests mint a token that is already past its `exp` but inside
//! the hub's 5 s clock-skew allowance, so it has a second or two left, and
//! wait for the close frame, not for a clock.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use pumphub::auth::jwt::DEFAULT_LEEWAY;
use pumphub::client::{ClientError, ClientEvent, Disconnect};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::auth::refused_status;
use crate::support::*;

pub const SECRET: &str = "signed-tokens-test-secret-0123456789abcdef";
const OLD_SECRET: &str = "signed-tokens-test-secret-previous-0123456";
const OTHER_SECRET: &str = "signed-tokens-test-secret-of-somebody-else";
const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// A JWS in compact form with exactly this header and claims text.
fn sign(header: &str, claims: &str, secret: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// A token with `claims`, plus an `exp` an hour ahead unless given.
pub fn token_signed_with(secret: &str, mut claims: Value) -> String {
    if claims.get("exp").is_none() {
        claims["exp"] = json!(now() + 3600);
    }
    sign(HS256, &claims.to_string(), secret)
}

fn token(claims: Value) -> String {
    token_signed_with(SECRET, claims)
}

/// A token the hub honours for two or three more seconds: its `exp` is
/// already past, but inside the clock-skew allowance.
fn expiring_token(mut claims: Value) -> String {
    claims["exp"] = json!(now() + 3 - DEFAULT_LEEWAY.as_secs());
    token(claims)
}

fn signed_hub() -> RunningHub {
    TestHub::new()
        .config(|c| c.token_secrets = vec![SECRET.into()])
        .start()
}

/// Connect with `token` in the URL and read `welcome`.
fn connect(hub: &RunningHub, token: &str) -> Client {
    hub.client_at(&format!("/ws?token={token}"))
}

/// Send `request` and read the next frame.
fn ask(client: &mut Client, request: Value) -> Value {
    client.send_json(request);
    client.recv_json()
}

/// Subscribe to `channels` with an id; the reply (`subscribed` or error).
fn try_subscribe(client: &mut Client, channels: &[&str]) -> Value {
    ask(
        client,
        json!({"type": "subscribe", "id": "s", "channels": channels}),
    )
}

fn assert_forbidden(reply: &Value) {
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "forbidden", "{reply}");
}

fn assert_subscribed(reply: &Value) {
    assert_eq!(reply["type"], "subscribed", "{reply}");
}

/// Every `pumphub_token_refusals_total{reason=…}` in `/metrics`.
fn refusal_counts(hub: &RunningHub) -> HashMap<String, u64> {
    let text = http_get(hub.http, "/metrics").text();
    text.lines()
        .filter_map(|line| line.strip_prefix("pumphub_token_refusals_total{reason=\""))
        .map(|rest| {
            let (reason, count) = rest.split_once("\"} ").unwrap();
            (reason.to_string(), count.parse().unwrap())
        })
        .collect()
}

fn metric(hub: &RunningHub, name: &str) -> u64 {
    let text = http_get(hub.http, "/metrics").text();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .parse()
        .unwrap()
}

/// `sub` of each connection in `/status`, by connection id.
fn subs_in_status(hub: &RunningHub) -> HashMap<String, Value> {
    let status = http_get(hub.http, "/status").json();
    status["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["sub"].clone()))
        .collect()
}

/// Read until the hub closes; its close code and reason.
fn close_frame(client: &mut Client) -> (u16, String) {
    loop {
        match client.recv() {
            Received::Json(_) => continue,
            Received::Closed(Some(frame)) => return frame,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[test]
fn a_token_subscribes_to_its_channels_and_only_those() {
    let hub = signed_hub();
    let mut client = connect(
        &hub,
        &token(json!({"sub": "42", "channels": ["news", "user.42.*"]})),
    );
    assert_subscribed(&try_subscribe(&mut client, &["news"]));
    assert_subscribed(&try_subscribe(&mut client, &["user.42.inbox"]));
    assert_forbidden(&try_subscribe(&mut client, &["sport"]));
    // One refused channel refuses the whole request.
    assert_forbidden(&try_subscribe(&mut client, &["news", "sport"]));
    // And what it follows arrives.
    hub.http_publish("sport", json!("not for 42"));
    hub.http_publish("user.42.inbox", json!("for 42"));
    let event = client.recv_event();
    assert_eq!(event["channel"], "user.42.inbox");
    assert_eq!(event["data"], "for 42");
    // `?channels=` is checked the same way: `forbidden` after `welcome`.
    let url = format!(
        "/ws?token={}&channels=news,sport",
        token(json!({"channels": ["news"]}))
    );
    let mut url_client = hub.client_at(&url);
    assert_forbidden(&url_client.recv_json());
    let url = format!(
        "/ws?token={}&channels=news",
        token(json!({"channels": ["news"]}))
    );
    let mut url_client = hub.client_at(&url);
    assert_subscribed(&url_client.recv_json());
}

#[test]
fn prefix_patterns_grant_what_starts_with_them() {
    let hub = signed_hub();
    let mut client = connect(
        &hub,
        &token(json!({"sub": "42", "channels": ["user.42.*", "room:*"]})),
    );
    // A pattern grants every name that starts with its prefix, including
    // the prefix itself when that is a valid name (`room:`).
    for granted in [
        "user.42.inbox",
        "user.42.a.b",
        "user.42.-",
        "room:1",
        "room:",
    ] {
        assert_subscribed(&try_subscribe(&mut client, &[granted]));
    }
    for refused in [
        "user.42",
        "user.420",
        "user.43.inbox",
        "user",
        "room",
        "news",
    ] {
        assert_forbidden(&try_subscribe(&mut client, &[refused]));
    }
    // `*` alone grants everything.
    let mut all = connect(&hub, &token(json!({"channels": ["*"]})));
    assert_subscribed(&try_subscribe(&mut all, &["anything", "user.42.inbox"]));
}

#[test]
fn a_token_is_accepted_in_the_url_the_header_and_auth() {
    let hub = signed_hub();
    let granted = |sub: &str| token(json!({"sub": sub, "channels": ["news"]}));
    let mut in_url = connect(&hub, &granted("url"));
    let bearer = format!("Bearer {}", granted("header"));
    let mut in_header =
        Client::connect_with(hub.ws, "/ws", &[("Authorization", bearer.as_str())]).unwrap();
    assert_eq!(in_header.recv_json()["type"], "welcome");
    let mut by_auth = hub.client();
    // Before `auth`, nothing; then the token's channels.
    assert_eq!(
        try_subscribe(&mut by_auth, &["news"])["code"],
        "unauthenticated"
    );
    let reply = ask(
        &mut by_auth,
        json!({"type": "auth", "id": "a", "token": granted("auth")}),
    );
    assert_eq!(reply, json!({"type": "authenticated", "id": "a"}));
    for client in [&mut in_url, &mut in_header, &mut by_auth] {
        assert_subscribed(&try_subscribe(client, &["news"]));
        assert_forbidden(&try_subscribe(client, &["sport"]));
    }
    // URL channels need the token in the upgrade.
    assert_eq!(
        refused_status(Client::connect(hub.ws, "/ws?channels=news")),
        401
    );
}

#[test]
fn status_shows_each_connections_sub() {
    let hub = signed_hub();
    let alice = connect(&hub, &token(json!({"sub": "alice"})));
    let bearer = format!("Bearer {}", token(json!({"sub": "bob"})));
    let mut bob =
        Client::connect_with(hub.ws, "/ws", &[("Authorization", bearer.as_str())]).unwrap();
    bob.welcome = bob.recv_json();
    let mut carol = hub.client();
    let reply = ask(
        &mut carol,
        json!({"type": "auth", "token": token(json!({"sub": "carol \"the admin\""}))}),
    );
    assert_eq!(reply["type"], "authenticated");
    let nobody = connect(&hub, &token(json!({"channels": ["news"]})));
    let waiting = hub.client();

    let subs = subs_in_status(&hub);
    assert_eq!(subs.len(), 5, "{subs:?}");
    assert_eq!(subs[&alice.connection_id()], "alice");
    assert_eq!(subs[&bob.connection_id()], "bob");
    assert_eq!(subs[&carol.connection_id()], "carol \"the admin\"");
    assert_eq!(subs[&nobody.connection_id()], Value::Null);
    assert_eq!(subs[&waiting.connection_id()], Value::Null);
}

/// Every way a token can be bad, at the handshake (401) and in `auth`
/// (`unauthenticated` with the reason), counted by reason in `/metrics`.
#[test]
fn every_bad_token_is_refused_with_its_reason() {
    let hub = signed_hub();
    let good = token(json!({"sub": "u", "channels": ["news"]}));
    let (good_input, good_signature) = good.rsplit_once('.').unwrap();
    let widened = token(json!({"sub": "u", "channels": ["*"]}));
    let widened_claims = widened.split('.').nth(1).unwrap();
    let good_header = good_input.split('.').next().unwrap();
    let exp = now() + 3600;
    let huge = "x".repeat(9 * 1024);
    let cases: Vec<(&str, String)> = vec![
        ("expired", token(json!({"sub": "u", "exp": now() - 3600}))),
        (
            "not_yet_valid",
            token(json!({"sub": "u", "nbf": now() + 3600})),
        ),
        (
            "not_yet_valid",
            token(json!({"sub": "u", "iat": now() + 3600})),
        ),
        (
            "bad_signature",
            token_signed_with(OTHER_SECRET, json!({"sub": "u"})),
        ),
        (
            "bad_signature",
            format!("{good_header}.{widened_claims}.{good_signature}"),
        ),
        ("bad_signature", format!("{good_input}.")),
        (
            "bad_alg",
            sign(
                r#"{"alg":"HS512"}"#,
                &json!({"exp": exp}).to_string(),
                SECRET,
            ),
        ),
        (
            "bad_alg",
            sign(
                r#"{"alg":"RS256"}"#,
                &json!({"exp": exp}).to_string(),
                SECRET,
            ),
        ),
        (
            "bad_header",
            sign(
                r#"{"alg":"HS256","crit":["exp"]}"#,
                &json!({"exp": exp}).to_string(),
                SECRET,
            ),
        ),
        ("malformed", "not-a-token".into()),
        ("malformed", format!("{good}.extra")),
        ("malformed", format!("{good_header}.e30=.{good_signature}")),
        ("malformed", sign(HS256, "{\"sub\":", SECRET)),
        ("malformed", sign(HS256, "[1,2]", SECRET)),
        ("bad_claims", token(json!({"sub": 42}))),
        ("bad_claims", token(json!({"sub": "u", "channels": "news"}))),
        (
            "bad_claims",
            token(json!({"sub": "u", "channels": ["a b"]})),
        ),
        ("bad_claims", token(json!({"sub": "u", "exp": "tomorrow"}))),
        ("bad_claims", sign(HS256, r#"{"sub":"u"}"#, SECRET)),
        ("too_large", token(json!({"sub": "u", "pad": huge}))),
    ];
    for (reason, bad) in &cases {
        assert_eq!(
            refused_status(Client::connect(hub.ws, &format!("/ws?token={bad}"))),
            401,
            "{reason}: {bad}"
        );
        let mut client = hub.client();
        let reply = ask(&mut client, json!({"type": "auth", "id": 1, "token": bad}));
        assert_eq!(reply["code"], "unauthenticated", "{reason}: {reply}");
        assert_eq!(
            reply["message"],
            format!("invalid token: {reason}"),
            "{bad}"
        );
        assert_eq!(
            try_subscribe(&mut client, &["news"])["code"],
            "unauthenticated"
        );
    }
    let counts = refusal_counts(&hub);
    for (reason, _) in &cases {
        let expected = 2 * cases.iter().filter(|(r, _)| r == reason).count() as u64;
        assert_eq!(counts[*reason], expected, "{reason}: {counts:?}");
    }
    assert_eq!(counts["subject_changed"], 0);
    // The good one still works, and was not counted.
    let mut client = connect(&hub, &good);
    assert_subscribed(&try_subscribe(&mut client, &["news"]));
    let total: u64 = refusal_counts(&hub).values().sum();
    assert_eq!(total, 2 * cases.len() as u64);
}

/// `alg: none` with no signature (how it is really sent), with a
/// signature, and spelled differently: all refused as `bad_alg`.
#[test]
fn the_none_algorithm_is_refused() {
    let hub = signed_hub();
    let claims = json!({"sub": "u", "exp": now() + 3600, "channels": ["*"]}).to_string();
    let unsigned = |header: &str| format!("{}.{}.", b64(header.as_bytes()), b64(claims.as_bytes()));
    let tokens = [
        unsigned(r#"{"alg":"none","typ":"JWT"}"#),
        unsigned(r#"{"alg":"none"}"#),
        unsigned(r#"{"alg":"None"}"#),
        unsigned(r#"{"alg":"NONE"}"#),
        sign(r#"{"alg":"none"}"#, &claims, SECRET),
    ];
    for bad in &tokens {
        assert_eq!(
            refused_status(Client::connect(hub.ws, &format!("/ws?token={bad}"))),
            401
        );
        let bearer = format!("Bearer {bad}");
        let refused = Client::connect_with(hub.ws, "/ws", &[("Authorization", bearer.as_str())]);
        assert_eq!(refused_status(refused), 401);
        let mut client = hub.client();
        let reply = ask(&mut client, json!({"type": "auth", "token": bad}));
        assert_eq!(reply["message"], "invalid token: bad_alg", "{reply}");
    }
    assert_eq!(refusal_counts(&hub)["bad_alg"], 3 * tokens.len() as u64);
}

#[test]
fn a_token_for_publishing_only() {
    let hub = TestHub::new()
        .config(|c| {
            c.token_secrets = vec![SECRET.into()];
            c.allow_client_publish = true;
        })
        .start();
    let mut watcher = connect(&hub, &token(json!({"channels": ["chat.*"]})));
    watcher.subscribe(&["chat.room1"], None);

    let publisher_token = token(json!({"sub": "bot", "publish": ["chat.*"]}));
    let mut publisher = connect(&hub, &publisher_token);
    let reply = ask(
        &mut publisher,
        json!({"type": "publish", "id": "p", "channel": "chat.room1", "data": "hi"}),
    );
    assert_eq!(reply["type"], "published", "{reply}");
    assert_eq!(reply["delivered"], 1);
    assert_eq!(watcher.recv_event()["data"], "hi");
    let reply = ask(
        &mut publisher,
        json!({"type": "publish", "id": "p", "channel": "news", "data": "no"}),
    );
    assert_forbidden(&reply);
    // It may not read what it may write.
    assert_forbidden(&try_subscribe(&mut publisher, &["chat.room1"]));

    // Without --allow-client-publish the claim opens nothing.
    let closed = signed_hub();
    let mut publisher = connect(&closed, &publisher_token);
    let reply = ask(
        &mut publisher,
        json!({"type": "publish", "channel": "chat.room1", "data": "hi"}),
    );
    assert_forbidden(&reply);
}

/// A token that expires while connected: Close 4001 `token expired`,
/// counted in `/metrics`; until then it works.
#[test]
fn a_connection_is_closed_when_its_token_expires() {
    let hub = signed_hub();
    let stale = expiring_token(json!({"sub": "u", "channels": ["news"]}));
    let mut client = connect(&hub, &stale);
    assert_subscribed(&try_subscribe(&mut client, &["news"]));
    let started = Instant::now();
    assert_eq!(
        close_frame(&mut client),
        (4001, "token expired".to_string())
    );
    assert!(started.elapsed() < ms(4000), "{:?}", started.elapsed());
    wait_until("the close is counted", PATIENCE, || {
        metric(&hub, "pumphub_token_expired_closes_total") == 1
    });
    // The same token cannot come back: the close came at its allowance's end.
    let mut again = hub.client();
    let reply = ask(&mut again, json!({"type": "auth", "token": stale}));
    assert_eq!(reply["message"], "invalid token: expired", "{reply}");
    assert_eq!(
        refused_status(Client::connect(hub.ws, &format!("/ws?token={stale}"))),
        401
    );
}

/// A client that waits in silence and one that keeps talking are both
/// closed at expiry.
#[test]
fn expiry_closes_a_chatty_connection_too() {
    // No rate limit: this client sends as fast as the replies come.
    let hub = TestHub::new()
        .config(|c| {
            c.token_secrets = vec![SECRET.into()];
            c.rate_limit = 0;
        })
        .start();
    let mut client = connect(&hub, &expiring_token(json!({"sub": "u"})));
    let started = Instant::now();
    let code = loop {
        client.send_json(json!({"type": "ping"}));
        match client.recv() {
            Received::Json(reply) => assert_eq!(reply["type"], "pong"),
            Received::Closed(frame) => break frame.map(|(code, _)| code),
            Received::Dropped(e) => panic!("dropped: {e}"),
        }
        assert!(started.elapsed() < ms(6000), "still open");
    };
    assert_eq!(code, Some(4001));
}

/// A fresh token in `auth` before expiry keeps the connection, with the
/// fresh token's grants: subscriptions it does not grant end at once.
/// A second connection with the old token marks the moment of expiry.
#[test]
fn a_fresh_token_in_auth_keeps_the_connection() {
    let hub = signed_hub();
    let claims = json!({"sub": "u", "channels": ["news", "sport"]});
    let mut refreshed = connect(&hub, &expiring_token(claims.clone()));
    let mut witness = connect(&hub, &expiring_token(claims));
    refreshed.subscribe(&["news", "sport"], None);

    // A refused refresh changes nothing: another user, a bad token.
    let other_user = token(json!({"sub": "mallory", "channels": ["*"]}));
    let reply = ask(
        &mut refreshed,
        json!({"type": "auth", "id": 1, "token": other_user}),
    );
    assert_eq!(
        reply["message"], "invalid token: subject_changed",
        "{reply}"
    );
    let forged = token_signed_with(OTHER_SECRET, json!({"sub": "u", "channels": ["*"]}));
    let reply = ask(
        &mut refreshed,
        json!({"type": "auth", "id": 2, "token": forged}),
    );
    assert_eq!(reply["message"], "invalid token: bad_signature", "{reply}");

    let fresh = token(json!({"sub": "u", "channels": ["news", "weather"]}));
    let reply = ask(
        &mut refreshed,
        json!({"type": "auth", "id": 3, "token": fresh}),
    );
    assert_eq!(
        reply,
        json!({"type": "unsubscribed", "channels": ["sport"]}),
        "the fresh token does not grant sport"
    );
    assert_eq!(
        refreshed.recv_json(),
        json!({"type": "authenticated", "id": 3})
    );
    assert_subscribed(&try_subscribe(&mut refreshed, &["weather"]));
    assert_forbidden(&try_subscribe(&mut refreshed, &["sport"]));

    // The old token's moment passes...
    assert_eq!(close_frame(&mut witness).0, 4001);
    // ...and the refreshed connection is still there, receiving.
    refreshed.sync();
    hub.http_publish("sport", json!(1));
    hub.http_publish("news", json!(2));
    assert_eq!(refreshed.recv_event()["data"], 2);
    wait_until("the witness's close is counted", PATIENCE, || {
        metric(&hub, "pumphub_token_expired_closes_total") == 1
    });
    let counts = refusal_counts(&hub);
    assert_eq!(counts["subject_changed"], 1);
    assert_eq!(counts["bad_signature"], 1);
}

/// A refresh pipelined behind subscribes: the hub answers the subscribes
/// first, so the channels the fresh token does not grant include the one
/// just subscribed, and its `unsubscribed` comes before `authenticated`;
/// a subscribe pipelined after the `auth` is judged by the fresh token.
#[test]
fn a_refresh_pipelined_behind_subscribes_keeps_request_order() {
    let hub = signed_hub();
    let claims = json!({"sub": "u", "channels": ["news", "sport"]});
    let mut client = connect(&hub, &token(claims));
    let fresh = token(json!({"sub": "u", "channels": ["news", "weather"]}));
    for request in [
        json!({"type": "subscribe", "id": 1, "channels": ["news"]}),
        json!({"type": "subscribe", "id": 2, "channels": ["sport"]}),
        json!({"type": "auth", "id": 3, "token": fresh}),
        json!({"type": "subscribe", "id": 4, "channels": ["weather"]}),
        json!({"type": "subscribe", "id": 5, "channels": ["sport"]}),
    ] {
        client.send_json(request);
    }
    let replies: Vec<Value> = (0..6).map(|_| client.recv_json()).collect();
    let kinds: Vec<(Value, Value)> = replies
        .iter()
        .map(|r| (r["type"].clone(), r["id"].clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (json!("subscribed"), json!(1)),
            (json!("subscribed"), json!(2)),
            (json!("unsubscribed"), Value::Null),
            (json!("authenticated"), json!(3)),
            (json!("subscribed"), json!(4)),
            (json!("error"), json!(5)),
        ],
        "{replies:?}"
    );
    assert_eq!(replies[2]["channels"], json!(["sport"]));
    assert_forbidden(&replies[5]);
}

/// Two secrets: tokens signed with either are accepted; with only the new
/// one, the old tokens are refused.
#[test]
fn two_secrets_let_one_be_rotated() {
    let both = TestHub::new()
        .config(|c| c.token_secrets = vec![SECRET.into(), OLD_SECRET.into()])
        .start();
    let claims = json!({"sub": "u", "channels": ["news"]});
    for secret in [SECRET, OLD_SECRET] {
        let mut client = connect(&both, &token_signed_with(secret, claims.clone()));
        assert_subscribed(&try_subscribe(&mut client, &["news"]));
    }
    let stranger = token_signed_with(OTHER_SECRET, claims.clone());
    assert_eq!(
        refused_status(Client::connect(both.ws, &format!("/ws?token={stranger}"))),
        401
    );
    assert_eq!(refusal_counts(&both)["bad_signature"], 1);

    let rotated = signed_hub();
    let old = token_signed_with(OLD_SECRET, claims);
    assert_eq!(
        refused_status(Client::connect(rotated.ws, &format!("/ws?token={old}"))),
        401
    );
}

/// `--token` and `--token-secret` together: the shared token grants
/// everything, a signed token what it says.
#[test]
fn a_shared_token_and_signed_tokens_together() {
    let hub = TestHub::new()
        .config(|c| {
            c.token = Some("shared-s3cret".into());
            c.token_secrets = vec![SECRET.into()];
        })
        .start();
    let mut backend = connect(&hub, "shared-s3cret");
    assert_subscribed(&try_subscribe(&mut backend, &["anything"]));
    let mut user = connect(&hub, &token(json!({"sub": "u", "channels": ["news"]})));
    assert_forbidden(&try_subscribe(&mut user, &["anything"]));
    assert_eq!(
        refused_status(Client::connect(hub.ws, "/ws?token=shared-s3cre")),
        401
    );
    assert_eq!(refusal_counts(&hub)["invalid"], 1);
    let subs = subs_in_status(&hub);
    assert_eq!(subs[&backend.connection_id()], Value::Null);
    assert_eq!(subs[&user.connection_id()], "u");
}

/// The Rust client asks its token source for a fresh token on every
/// connection: when the first expires (4001), it reconnects with the next
/// and resumes where it was.
#[test]
fn the_rust_client_takes_a_fresh_token_for_each_reconnect() {
    let hub = signed_hub();
    let minted = Arc::new(AtomicUsize::new(0));
    let counter = minted.clone();
    let client = pumphub::client::Client::builder(&format!("ws://{}/ws", hub.ws))
        .channels(&["news"])
        .backoff(ms(10), ms(100))
        .token_source(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(expiring_token(json!({"sub": "rust", "channels": ["news"]})))
        })
        .connect()
        .unwrap();
    let next = || {
        client
            .recv_timeout(PATIENCE)
            .unwrap()
            .expect("an item in time")
    };
    assert!(matches!(
        next(),
        ClientEvent::Connected { resumed: false, .. }
    ));
    hub.handle.publish("news", json!(1)).unwrap();
    assert!(matches!(next(), ClientEvent::Event(e) if e.data == json!(1)));
    match next() {
        ClientEvent::Disconnected(Disconnect::ClosedByHub { code, .. }) => assert_eq!(code, 4001),
        other => panic!("expected the 4001 close, got {other:?}"),
    }
    // Published while it was away: replayed after the reconnect.
    hub.handle.publish("news", json!(2)).unwrap();
    assert!(matches!(
        next(),
        ClientEvent::Connected { resumed: true, .. }
    ));
    assert!(matches!(next(), ClientEvent::Event(e) if e.data == json!(2)));
    assert_eq!(minted.load(Ordering::SeqCst), 2);
    let subs = subs_in_status(&hub);
    assert_eq!(subs.values().collect::<Vec<_>>(), [&json!("rust")]);
    client.close();

    // A source that has no token: the first attempt says so.
    let failed = pumphub::client::Client::builder(&format!("ws://{}/ws", hub.ws))
        .token_source(|| Err("the backend is down".into()))
        .connect();
    match failed {
        Err(ClientError::TokenSource(e)) => assert_eq!(e.to_string(), "the backend is down"),
        other => panic!("{other:?}"),
    }
}

/// Run `program args` with the hub's secret in the environment; its
/// trimmed stdout, or `None` after a loud SKIP if it cannot run here (a
/// failure under `CI=true`).
fn run_minter(what: &str, program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .env("PUMPHUB_TOKEN_SECRET", format!("{SECRET},{OLD_SECRET}"))
        .output();
    let problem = match output {
        Ok(o) if o.status.success() => {
            return Some(String::from_utf8(o.stdout).unwrap().trim().to_string())
        }
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => format!("cannot run {program}: {e}"),
    };
    let missing = problem.contains("No module named 'jwt'")
        || problem.contains("cannot run")
        || problem.contains("openssl: not found")
        || problem.contains("openssl: command not found");
    assert!(missing, "{what} failed: {problem}");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {what} cannot run (needs python3 with PyJWT: pip install pyjwt; and openssl): {problem}"
    );
    eprintln!("SKIP {what}: {problem}");
    None
}

/// The fenced block of docs/security.md that contains `marker`.
fn documented_snippet(marker: &str) -> String {
    let doc = include_str!("../../docs/security.md");
    let mut blocks = doc.split("```").skip(1).step_by(2);
    let block = blocks
        .find(|block| block.contains(marker))
        .unwrap_or_else(|| panic!("no snippet with {marker} in docs/security.md"));
    // Drop the info string (`python`, `sh`).
    block.split_once('\n').unwrap().1.to_string()
}

/// The Python (PyJWT) and shell (openssl) snippets of docs/security.md,
/// run as they are written, mint tokens this hub accepts with the claims
/// they promise.
#[test]
fn the_documented_snippets_mint_tokens_the_hub_accepts() {
    let hub = signed_hub();
    let python = documented_snippet("# mint_token.py");
    let shell = documented_snippet("# mint-token.sh");
    let minted = [
        run_minter(
            "the Python snippet",
            "python3",
            &["-c", &python, "42", "news,user.42.*"],
        ),
        run_minter(
            "the shell snippet",
            "sh",
            &[
                "-c",
                &shell,
                "mint-token.sh",
                "42",
                r#"["news","user.42.*"]"#,
            ],
        ),
    ];
    for token in minted.into_iter().flatten() {
        let mut client = connect(&hub, &token);
        assert_subscribed(&try_subscribe(&mut client, &["news", "user.42.inbox"]));
        assert_forbidden(&try_subscribe(&mut client, &["user.43.inbox"]));
        let subs = subs_in_status(&hub);
        assert_eq!(subs[&client.connection_id()], "42");
        client.close();
        assert_eq!(client.recv_close(), Some(1000));
    }
}

/// A token PyJWT mints with an `exp` inside the allowance: the hub closes
/// at the moment this implementation and PyJWT agree on.
#[test]
fn a_token_minted_by_pyjwt_expires_on_time() {
    let hub = signed_hub();
    let script = format!(
        "import jwt, os, time\n\
         print(jwt.encode({{'sub': 'py', 'exp': int(time.time()) + 2 - {}, 'channels': ['news']}},\n\
                          os.environ['PUMPHUB_TOKEN_SECRET'].split(',')[0], algorithm='HS256'))",
        DEFAULT_LEEWAY.as_secs()
    );
    let Some(minted) = run_minter("PyJWT", "python3", &["-c", &script]) else {
        return;
    };
    let mut client = connect(&hub, &minted);
    assert_subscribed(&try_subscribe(&mut client, &["news"]));
    assert_eq!(close_frame(&mut client).0, 4001);
}
