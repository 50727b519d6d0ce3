//! The slow-consumer rule (docs/protocol.md, "Limits"): a client whose queue
//! fills is closed with 4008, nobody else is slowed or loses anything, and
//! the closed client resumes from history with `since`.

use std::thread;

use serde_json::json;

use crate::support::*;

/// Publish big events until the broadcaster reports one delivery fewer:
/// the client that does not read has been dropped from the fan-out.
/// Returns the seqs published.
fn publish_until_one_is_dropped(hub: &RunningHub, expected_delivered: usize) -> Vec<u64> {
    let padding = "x".repeat(16 * 1024);
    let mut seqs = Vec::new();
    for i in 0..100_000 {
        let published = hub
            .handle
            .publish("firehose", json!({"i": i, "pad": padding}))
            .unwrap();
        seqs.push(published.seq.0);
        if published.delivered < expected_delivered {
            return seqs;
        }
    }
    panic!("no client was ever closed as a slow consumer");
}

/// Readers and the publisher go in lock step: each event is read by all
/// three readers before the next is published, so they are never behind
/// however loaded the machine is (with `--queue-size 8` and a free-running
/// flood, a reader descheduled for a few ms under parallel tests was itself
/// closed with 4008 now and then). Only the client that never reads falls
/// behind, and it is closed while the others lose nothing.
#[test]
fn a_client_that_never_reads_is_closed_with_4008_and_others_get_everything() {
    let hub = TestHub::new().queue_size(8).start();
    let mut slow = hub.subscriber(&["firehose"]);
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<u64>();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut reader = hub.subscriber(&["firehose"]);
            let seen_tx = seen_tx.clone();
            thread::spawn(move || {
                let mut seqs = Vec::new();
                // Stop at the marker published once the flood is over.
                loop {
                    let event = reader.recv_event();
                    let seq = event["seq"].as_u64().unwrap();
                    if event["data"] == "end" {
                        return seqs;
                    }
                    seqs.push(seq);
                    let _ = seen_tx.send(seq);
                }
            })
        })
        .collect();

    let padding = "x".repeat(16 * 1024);
    let mut published = Vec::new();
    for i in 0..100_000 {
        let event = hub
            .handle
            .publish("firehose", json!({"i": i, "pad": padding}))
            .unwrap();
        published.push(event.seq.0);
        for _ in 0..3 {
            let seq = seen_rx
                .recv_timeout(PATIENCE)
                .expect("every reader reads it");
            assert_eq!(seq, event.seq.0);
        }
        if event.delivered < 4 {
            break;
        }
    }
    assert!(
        published.len() < 100_000,
        "no client was ever closed as a slow consumer"
    );
    hub.handle.publish("firehose", json!("end")).unwrap();
    for reader in readers {
        let seqs = reader.join().unwrap();
        assert_eq!(seqs, published, "a reading client lost or reordered events");
    }
    // The slow client gets what was already on its way, then Close 4008.
    assert_eq!(slow.recv_close(), Some(4008));
}

/// After a 4008 close that missed far more than `--queue-size` events, a
/// resume with `since` gets all of them: replay does not count against
/// the queue.
#[test]
fn resume_after_4008_gets_more_than_queue_size_events() {
    let hub = TestHub::new().queue_size(4).history(10_000).start();
    let mut slow = hub.subscriber(&["firehose"]);
    let published = publish_until_one_is_dropped(&hub, 1);
    // Read what did arrive, up to the close.
    let mut last_seen = 0;
    loop {
        match slow.recv() {
            Received::Json(frame) if frame["type"] == "event" => {
                last_seen = frame["seq"].as_u64().unwrap()
            }
            Received::Json(_) => {}
            Received::Closed(frame) => {
                assert_eq!(frame.map(|f| f.0), Some(4008));
                break;
            }
            Received::Dropped(why) => panic!("dropped without a close frame: {why}"),
        }
    }
    let more: Vec<u64> = (0..20)
        .map(|i| hub.handle.publish("firehose", json!(i)).unwrap().seq.0)
        .collect();
    let missed: Vec<u64> = published
        .iter()
        .chain(&more)
        .copied()
        .filter(|&seq| seq > last_seen)
        .collect();
    assert!(
        missed.len() > 4,
        "the test must miss more than queue-size events"
    );
    let mut resumed = hub.client_at(&format!("/ws?channels=firehose&since={last_seen}"));
    let (subscribed, replayed) = resumed.recv_until("subscribed");
    let replayed: Vec<u64> = replayed
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(replayed, missed);
    assert_eq!(subscribed["complete"], true);
}

/// A client that stops reading at the TCP level while several MiB are
/// published: it is closed, both its threads end, and the hub keeps
/// answering. Runs in its own process to see its threads.
#[test]
fn a_stalled_tcp_client_is_dropped_and_its_threads_end() {
    isolated(
        "slow_consumer::a_stalled_tcp_client_is_dropped_and_its_threads_end",
        || {
            let hub = TestHub::new()
                .queue_size(16)
                .config(|c| c.write_timeout = ms(300))
                .start();
            let _stalled = hub.subscriber(&["big"]); // never read again
            let padding = "y".repeat(64 * 1024);
            let mut dropped = false;
            for i in 0..200 {
                // ~12 MiB at most
                let published = hub
                    .handle
                    .publish("big", json!({"i": i, "pad": padding}))
                    .unwrap();
                if published.delivered == 0 {
                    dropped = true;
                    break;
                }
            }
            assert!(dropped, "the stalled client was never dropped");
            assert_eq!(http_get(hub.http, "/health").status, 200);
            // Its pumps end: the write pump gives up after the write timeout and
            // shuts the socket, which ends the read pump.
            wait_until("the stalled client's pumps have ended", PATIENCE, || {
                !hub_thread_names().iter().any(|n| n.contains("pump"))
            });
            assert_eq!(hub.handle.stats().unwrap().connections_active, 0);
            assert_eq!(http_get(hub.http, "/health").status, 200);
        },
    );
}
