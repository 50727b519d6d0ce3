//! Protocol violations on a hub connection (docs/protocol.md, "Closing and close codes"): the hub
//! answers with Close 1002 or 1007 (1009 is in `heartbeat.rs`), and the
//! replies it had already queued for the requests before the violation go
//! out first, after `welcome`.
//!
//! The same write pump serves the echo server that Autobahn grades; see
//! `echo.rs` (in this folder) for the echo side of these checks.

use serde_json::json;
use tungstenite::protocol::frame::coding::{Data as OpData, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

use crate::support::*;

/// A reply queued just before a bad frame is not lost: the write pump
/// drains its queue before the Close, as it does for a peer's Close.
/// Before the fix it closed at once on a violation, losing a reply that
/// was still queued when `Done` arrived, e.g. when the request and the bad
/// frame arrive in one TCP segment before the new write pump first looks.
/// 20 rounds make a regression show up almost surely.
#[test]
fn reply_before_a_protocol_violation_goes_out_before_close_1002() {
    let hub = TestHub::new().start();
    for round in 0..20 {
        let mut client = Client::connect(hub.ws, "/ws").expect("upgrade succeeds");
        let ping = json!({"type": "ping", "id": round}).to_string();
        client.socket.write(Message::text(ping)).unwrap();
        let reserved = Frame::message("x", OpCode::Data(OpData::Reserved(3)), true);
        client.socket.send(Message::Frame(reserved)).unwrap();
        assert_eq!(client.recv_json()["type"], "welcome", "round {round}");
        let pong = client.recv_json();
        assert_eq!(pong["type"], "pong", "round {round}: {pong}");
        assert_eq!(pong["id"], round);
        assert_eq!(client.recv_close(), Some(1002), "round {round}");
    }
}

/// Invalid UTF-8 in a text frame: Close 1007.
#[test]
fn invalid_utf8_is_closed_with_1007() {
    let hub = TestHub::new().start();
    let mut client = hub.client();
    let invalid = Frame::message(vec![b'"', 0xff, b'"'], OpCode::Data(OpData::Text), true);
    client.socket.send(Message::Frame(invalid)).unwrap();
    assert_eq!(client.recv_close(), Some(1007));
}
