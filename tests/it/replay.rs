//! Replay with `since` (docs/protocol.md, "Sequence numbers"): kept events first, in seq
//! order, then `subscribed` with `replayed` and `complete`, then live events,
//! with neither a gap nor a duplicate between the two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use serde_json::json;

use crate::support::*;

fn seqs(events: &[serde_json::Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[test]
fn since_replays_kept_events_then_goes_live() {
    let hub = TestHub::new().history(8).start();
    for i in 1..=5 {
        hub.handle.publish("a", json!(i)).unwrap();
    }
    let mut client = hub.client();
    let (subscribed, replayed) = client.subscribe(&["a"], Some(2));
    assert_eq!(seqs(&replayed), vec![3, 4, 5]);
    assert_eq!(replayed[0]["data"], 3);
    assert_eq!(subscribed["replayed"], 3);
    assert_eq!(subscribed["complete"], true);
    hub.handle.publish("a", json!(6)).unwrap();
    assert_eq!(client.recv_event()["seq"], 6);
}

#[test]
fn evicted_history_makes_the_replay_incomplete() {
    let hub = TestHub::new().history(3).start();
    for i in 1..=6 {
        hub.handle.publish("a", json!(i)).unwrap();
    }
    let mut client = hub.client();
    let (subscribed, replayed) = client.subscribe(&["a"], Some(1));
    assert_eq!(seqs(&replayed), vec![4, 5, 6]);
    assert_eq!(subscribed["complete"], false, "2 and 3 were evicted");
    assert_eq!(subscribed["oldest"], 4, "the oldest seq still kept");
    // Resuming after the evicted part is complete again.
    let mut other = hub.client();
    let (subscribed, replayed) = other.subscribe(&["a"], Some(3));
    assert_eq!(seqs(&replayed), vec![4, 5, 6]);
    assert_eq!(subscribed["complete"], true);
    assert!(subscribed.get("oldest").is_none(), "{subscribed}");
}

#[test]
fn without_history_a_replay_is_incomplete_once_events_exist() {
    let hub = TestHub::new().history(0).start();
    let mut client = hub.client();
    let (subscribed, _) = client.subscribe(&["a"], Some(0));
    assert_eq!(subscribed["complete"], true, "nothing was ever published");
    hub.handle.publish("a", json!(1)).unwrap();
    let mut late = hub.client();
    let (subscribed, replayed) = late.subscribe(&["a"], Some(0));
    assert!(replayed.is_empty());
    assert_eq!(subscribed["complete"], false);
    assert_eq!(
        subscribed["oldest"], 2,
        "nothing kept: whole from the next seq"
    );
}

#[test]
fn replay_merges_channels_in_seq_order() {
    let hub = TestHub::new().start();
    for i in 0..6 {
        let channel = if i % 2 == 0 { "a" } else { "b" };
        hub.handle.publish(channel, json!(i)).unwrap();
        hub.handle.publish("other", json!(i)).unwrap();
    }
    let mut client = hub.client();
    let (subscribed, replayed) = client.subscribe(&["b", "a"], Some(0));
    assert_eq!(seqs(&replayed), vec![1, 3, 5, 7, 9, 11]);
    assert_eq!(subscribed["replayed"], 6);
}

#[test]
fn url_channels_and_since_act_as_a_first_subscribe() {
    let hub = TestHub::new().start();
    for i in 1..=4 {
        hub.handle.publish("a", json!(i)).unwrap();
    }
    let mut client = hub.client_at("/ws?channels=a,b&since=2");
    let (subscribed, replayed) = client.recv_until("subscribed");
    assert_eq!(seqs(&replayed), vec![3, 4]);
    assert_eq!(
        subscribed,
        json!({"type":"subscribed","channels":["a","b"],"replayed":2,"complete":true})
    );
}

/// A client that disconnects and comes back with `since` = the last seq it
/// saw gets exactly what it missed.
#[test]
fn a_client_that_reconnects_with_since_misses_nothing() {
    let hub = TestHub::new().start();
    let mut client = hub.subscriber(&["feed"]);
    for i in 0..3 {
        hub.handle.publish("feed", json!(i)).unwrap();
    }
    let last_seen = (0..3).map(|_| client.recv_event()).last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    client.close();
    drop(client);
    let missed: Vec<u64> = (0..4)
        .map(|i| hub.handle.publish("feed", json!(i)).unwrap().seq.0)
        .collect();
    let mut back = hub.client_at(&format!("/ws?channels=feed&since={last_seen}"));
    let (subscribed, replayed) = back.recv_until("subscribed");
    assert_eq!(seqs(&replayed), missed);
    assert_eq!(subscribed["complete"], true);
}

/// Subscribing with `since` while a publisher runs flat out: the replay and
/// the live stream join with no gap and no duplicate. The broadcaster does
/// both inside one command, so this holds whatever the timing.
#[test]
fn replay_then_live_has_no_gap_under_concurrent_publishing() {
    const MAX_EVENTS: u64 = 20_000;
    // The queue holds every event the publisher can make, so a test client
    // slowed by a loaded machine is never closed as a slow consumer: this
    // test is about the join of replay and live, not about back-pressure.
    let hub = TestHub::new()
        .history(100_000)
        .queue_size(MAX_EVENTS as usize + 1)
        .start();
    let running = Arc::new(AtomicBool::new(true));
    let publisher = {
        let handle = hub.handle.clone();
        let running = running.clone();
        thread::spawn(move || {
            let mut last = 0;
            while running.load(Ordering::Relaxed) && last < MAX_EVENTS {
                last = handle.publish("hot", json!(last)).unwrap().seq.0;
            }
            last
        })
    };
    // Let some history build up, observed through an in-process subscriber.
    let watcher = hub.handle.subscribe(&["hot"]).unwrap();
    while watcher.recv().unwrap().seq.0 < 200 {}
    let mut client = hub.client();
    let (subscribed, replayed) = client.subscribe(&["hot"], Some(0));
    assert_eq!(subscribed["complete"], true);
    running.store(false, Ordering::Relaxed);
    let last = publisher.join().unwrap();
    let mut got = seqs(&replayed);
    while got.last().copied().unwrap_or(0) < last {
        got.push(client.recv_event()["seq"].as_u64().unwrap());
    }
    let expected: Vec<u64> = (1..=last).collect();
    assert_eq!(got, expected);
}

/// Replay never goes below what the connection already has: a second
/// subscribe with an old `since` skips events already sent (and says the
/// replay is incomplete) instead of breaking the order.
#[test]
fn replay_never_goes_back_in_seq() {
    let hub = TestHub::new().start();
    let mut client = hub.subscriber(&["a"]);
    hub.handle.publish("b", json!("b1")).unwrap(); // seq 1, not followed yet
    hub.handle.publish("a", json!("a2")).unwrap(); // seq 2, delivered live
    assert_eq!(client.recv_event()["seq"], 2);
    hub.handle.publish("b", json!("b3")).unwrap(); // seq 3
    let (subscribed, replayed) = client.subscribe(&["b"], Some(0));
    assert_eq!(seqs(&replayed), vec![3], "seq 1 would go back in order");
    assert_eq!(subscribed["complete"], false);
    assert_eq!(
        subscribed["oldest"], 3,
        "whole from the seq after the last one sent"
    );
}
