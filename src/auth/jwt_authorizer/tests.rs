//! The authorizer's bookkeeping: who holds which claims, refreshes, and
//! that a connection it does not know may do nothing.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::auth::jwt::tests::{mint_raw, HS256, SECRET};

fn connection() -> ConnectionInfo {
    ConnectionInfo {
        id: ConnectionId::new(),
        remote_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
        via: None,
        user_agent: None,
        origin: None,
        connected_at_ms: 0,
    }
}

fn authorizer() -> JwtAuthorizer {
    JwtAuthorizer::new(JwtVerifier::new(&[SECRET]).unwrap())
}

/// A token good for an hour from the real clock, with these claims added.
fn token(claims: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    mint_raw(HS256, format!(r#"{{"exp":{exp},{claims}}}"#), SECRET)
}

#[test]
fn each_connection_gets_what_its_token_grants() {
    let auth = authorizer();
    let (alice, bob, stranger) = (connection(), connection(), connection());
    let identity = auth
        .verify_token(
            &alice,
            &token(r#""sub":"alice","channels":["news","user.alice.*"],"publish":["chat.*"]"#),
        )
        .unwrap();
    assert_eq!(identity.subject.as_deref(), Some("alice"));
    assert!(identity.valid_until.is_some());
    auth.verify_token(&bob, &token(r#""sub":"bob","channels":["user.bob.*"]"#))
        .unwrap();

    assert!(auth.may_subscribe(&alice, "news"));
    assert!(auth.may_subscribe(&alice, "user.alice.inbox"));
    assert!(!auth.may_subscribe(&alice, "user.bob.inbox"));
    assert!(auth.may_publish(&alice, "chat.room"));
    assert!(!auth.may_publish(&alice, "news"));
    assert!(auth.may_subscribe(&bob, "user.bob.inbox"));
    assert!(!auth.may_subscribe(&bob, "news"));
    assert!(!auth.may_publish(&bob, "chat.room"));
    // Never authenticated: nothing.
    assert!(!auth.may_subscribe(&stranger, "news"));
    assert!(!auth.may_publish(&stranger, "chat.room"));
    assert_eq!(
        auth.claims(alice.id).unwrap().subject.as_deref(),
        Some("alice")
    );

    auth.disconnected(&alice);
    assert!(!auth.may_subscribe(&alice, "news"));
    assert!(auth.claims(alice.id).is_none());
    assert!(auth.may_subscribe(&bob, "user.bob.inbox"));
}

#[test]
fn a_fresh_token_replaces_the_grants_but_not_the_subject() {
    let auth = authorizer();
    let alice = connection();
    auth.verify_token(&alice, &token(r#""sub":"alice","channels":["news"]"#))
        .unwrap();
    // Narrower and wider both replace.
    auth.verify_token(&alice, &token(r#""sub":"alice","channels":["sport"]"#))
        .unwrap();
    assert!(!auth.may_subscribe(&alice, "news"));
    assert!(auth.may_subscribe(&alice, "sport"));
    // Somebody else's token, however good, is refused and changes nothing.
    let refusal = auth
        .verify_token(&alice, &token(r#""sub":"mallory","channels":["*"]"#))
        .unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::SubjectChanged);
    assert!(!auth.may_subscribe(&alice, "news"));
    // So does a bad one.
    let refusal = auth.verify_token(&alice, "not.a.token").unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::Malformed);
    assert!(auth.may_subscribe(&alice, "sport"));
    // No `sub` is a subject too: a token without one cannot take over.
    let anonymous = connection();
    auth.verify_token(&anonymous, &token(r#""channels":["a"]"#))
        .unwrap();
    let refusal = auth
        .verify_token(&anonymous, &token(r#""sub":"alice","channels":["*"]"#))
        .unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::SubjectChanged);
}

#[test]
fn expired_claims_grant_nothing_even_before_the_hub_closes() {
    let auth = authorizer();
    let alice = connection();
    auth.verify_token(&alice, &token(r#""sub":"alice","channels":["*"]"#))
        .unwrap();
    assert!(auth.may_subscribe(&alice, "news"));
    auth.sessions().get_mut(&alice.id).unwrap().valid_until =
        Some(SystemTime::now() - Duration::from_secs(1));
    assert!(!auth.may_subscribe(&alice, "news"));
}

#[test]
fn every_token_is_checked_and_explained() {
    let auth = authorizer();
    assert!(auth.requires_token());
    assert!(auth.check_token(&token(r#""sub":"a""#)));
    assert!(!auth.check_token("s3cret"));
    let refusal = auth.verify_token(&connection(), "s3cret").unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::Malformed);
    assert!(!auth.authenticate(&connection(), ""));
}
