//! The Redis engine's pieces, driven directly (no broadcaster, no sockets
//! to clients) against a real redis-server: the publish script and its
//! pipelining, the dense shared log and its reader, exact trimming and
//! `complete`, the epoch (kept, new when the keys vanish, new when the
//! sequence went backwards), holes, and losing Redis.
//!
//! Each "node" here is a `RedisEngine` whose sink forwards to a channel the
//! test reads, and the test plays the broadcaster: it returns a credit for
//! every batch of entries it takes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use pumphub::testing::engine::{
    EngineInput, EngineState, EngineStatus, Entry, Item, RedisEngine, RedisSettings, Replay, Sink,
};
use pumphub::Seq;
use serde_json::json;

use crate::redis_support::{unique_prefix, RedisServer};
use crate::support::{wait_until, PATIENCE};

/// One engine and what it says.
struct Node {
    engine: RedisEngine,
    inputs: Receiver<EngineInput>,
    status: Arc<EngineStatus>,
    /// While set, the sink holds entries back (as a stalled broadcaster).
    hold: Arc<AtomicBool>,
    release: Sender<()>,
    next_ticket: u64,
}

impl Node {
    fn start(redis: &RedisServer, prefix: &str, history: usize) -> Node {
        let (tx, inputs) = crossbeam_channel::unbounded();
        let hold = Arc::new(AtomicBool::new(false));
        let (release, released) = crossbeam_channel::unbounded::<()>();
        let held = hold.clone();
        let sink: Sink = Arc::new(move |input| {
            if held.load(Ordering::Acquire) && matches!(input, EngineInput::Entries { .. }) {
                let _ = released.recv();
            }
            tx.send(input).is_ok()
        });
        let status = Arc::new(EngineStatus::with_state(EngineState::Connecting));
        let settings = RedisSettings::new(&redis.url(), prefix, history);
        let engine = RedisEngine::start(&settings, sink, status.clone()).expect("engine starts");
        Node {
            engine,
            inputs,
            status,
            hold,
            release,
            next_ticket: 1,
        }
    }

    fn next(&self) -> EngineInput {
        self.inputs
            .recv_timeout(PATIENCE)
            .expect("the engine says something in time")
    }

    /// Wait for `Joined`; returns (epoch, position).
    fn joined(&self) -> (String, Seq) {
        loop {
            if let EngineInput::Joined { epoch, position } = self.next() {
                return (epoch, position);
            }
        }
    }

    fn publish(&mut self, items: Vec<Item>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.engine.submit(0, ticket, items).expect("submit");
        ticket
    }

    /// Read until the log delivered `count` entries; answers and other
    /// inputs seen on the way are returned too.
    fn entries(&self, count: usize) -> (Vec<Entry>, Vec<EngineInput>) {
        let mut entries = Vec::new();
        let mut others = Vec::new();
        while entries.len() < count {
            match self.next() {
                EngineInput::Entries {
                    entries: batch,
                    credit,
                } => {
                    entries.extend(batch);
                    let _ = credit.try_send(());
                }
                other => others.push(other),
            }
        }
        (entries, others)
    }
}

fn event(channel: &str, n: u64) -> Item {
    Item::Event {
        channel: channel.into(),
        data: json!({"n": n}),
    }
}

fn seqs(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq.0).collect()
}

#[test]
fn two_nodes_share_one_dense_sequence_in_one_order() {
    let Some(redis) = RedisServer::start("two_nodes_share_one_dense_sequence") else {
        return;
    };
    let prefix = unique_prefix("dense");
    let mut a = Node::start(&redis, &prefix, 100);
    let mut b = Node::start(&redis, &prefix, 100);
    let (epoch_a, _) = a.joined();
    let (epoch_b, _) = b.joined();
    assert_eq!(epoch_a, epoch_b, "one hub, one epoch");

    // Publish from both at once, one item or three per publish, so the
    // publishers pipeline and the script takes consecutive seqs per job.
    const JOBS: u64 = 200;
    for n in 0..JOBS {
        a.publish(vec![event("x", n)]);
        b.publish(vec![
            event("y", n),
            event("y", n + 1000),
            event("y", n + 2000),
        ]);
    }
    let total = (JOBS * 4) as usize;
    let (from_a, answers_a) = a.entries(total);
    let (from_b, _) = b.entries(total);
    assert_eq!(seqs(&from_a), (1..=total as u64).collect::<Vec<_>>());
    assert_eq!(from_a, {
        // Same entries in the same order on both, `own` aside.
        let mut mirrored = from_b.clone();
        for e in &mut mirrored {
            e.own = !e.own;
        }
        mirrored
    });
    assert_eq!(from_a.iter().filter(|e| e.own).count(), JOBS as usize);
    // Each three-item publish took three consecutive seqs, in item order.
    for window in from_a
        .iter()
        .filter(|e| !e.own)
        .collect::<Vec<_>>()
        .chunks(3)
    {
        assert_eq!(window[1].seq.0, window[0].seq.0 + 1);
        assert_eq!(window[2].seq.0, window[0].seq.0 + 2);
    }
    // Node A's publishes (one lane) kept their submission order.
    let a_order: Vec<_> = from_a
        .iter()
        .filter(|e| e.own)
        .map(|e| match &e.item {
            Item::Event { data, .. } => data["n"].as_u64().unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(a_order, (0..JOBS).collect::<Vec<_>>());
    // Every publish of A is answered (some answers may still be on the way).
    let mut assigned = answers_a
        .iter()
        .filter(|i| matches!(i, EngineInput::Assigned { .. }))
        .count();
    let deadline = Instant::now() + PATIENCE;
    while assigned < JOBS as usize && Instant::now() < deadline {
        if let EngineInput::Assigned { count, .. } = a.next() {
            assert_eq!(count, 1);
            assigned += 1;
        }
    }
    assert_eq!(assigned, JOBS as usize);
}

fn replay(node: &Node, channels: &[&str], since: u64) -> Replay {
    node.engine
        .replay(
            99,
            channels.iter().map(|c| c.to_string()).collect(),
            Seq(since),
        )
        .expect("replay request");
    loop {
        if let EngineInput::Replayed { ticket, result } = node.next() {
            assert_eq!(ticket, 99);
            return result.expect("replay");
        }
    }
}

#[test]
fn history_is_trimmed_exactly_and_complete_says_so() {
    let Some(redis) = RedisServer::start("history_is_trimmed_exactly") else {
        return;
    };
    let mut node = Node::start(&redis, &unique_prefix("trim"), 3);
    node.joined();
    // a: seqs 1..=5, b: 6, 7 (one publish of two), kept per channel: 3.
    for n in 1..=5 {
        node.publish(vec![event("a", n)]);
    }
    node.publish(vec![event("b", 6), event("b", 7)]);
    node.entries(7);

    let all = replay(&node, &["a", "b"], 0);
    assert_eq!(
        all.events.iter().map(|e| e.seq.0).collect::<Vec<_>>(),
        vec![3, 4, 5, 6, 7]
    );
    assert!(!all.complete, "seqs 1 and 2 of a were trimmed");
    assert_eq!(all.head, Seq(7));
    let from_2 = replay(&node, &["a", "b"], 2);
    assert!(from_2.complete, "nothing after 2 was trimmed");
    assert_eq!(from_2.events.len(), 5);
    let from_1 = replay(&node, &["a"], 1);
    assert!(!from_1.complete, "seq 2 was trimmed");
    let from_6 = replay(&node, &["b", "a"], 6);
    assert_eq!(from_6.events.len(), 1);
    assert_eq!(from_6.events[0].channel.as_ref(), "b");
    assert!(replay(&node, &["never"], 0).complete);
}

#[test]
fn history_size_zero_keeps_nothing_and_is_never_complete() {
    let Some(redis) = RedisServer::start("history_size_zero") else {
        return;
    };
    let mut node = Node::start(&redis, &unique_prefix("zero"), 0);
    node.joined();
    node.publish(vec![event("a", 1)]);
    node.entries(1);
    let result = replay(&node, &["a"], 0);
    assert!(result.events.is_empty());
    assert!(!result.complete);
    assert!(replay(&node, &["a"], 1).complete);
}

#[test]
fn the_epoch_survives_rejoins_and_changes_only_when_the_state_is_lost() {
    let Some(redis) = RedisServer::start("the_epoch_survives_rejoins") else {
        return;
    };
    let prefix = unique_prefix("epoch");
    let mut a = Node::start(&redis, &prefix, 10);
    let (first, at) = a.joined();
    assert_eq!(at, Seq(0));
    for n in 0..3 {
        a.publish(vec![event("c", n)]);
    }
    a.entries(3);
    drop(a);
    // A node started later (or restarted) joins the same epoch at the head.
    let b = Node::start(&redis, &prefix, 10);
    assert_eq!(b.joined(), (first.clone(), Seq(3)));

    // Redis loses the hub's keys: a new epoch, and the sequence does not
    // go back below what the node already saw.
    assert_eq!(redis.command(&["FLUSHALL"]), "+OK");
    let (second, at) = b.joined();
    assert_ne!(second, first);
    assert_eq!(at, Seq(3));
    assert!(b.status.is_serving());

    // The sequence behind the node (writes lost in a failover) is seen on
    // reconnect: a new epoch again.
    let meta = format!("{{{prefix}}}:meta");
    assert_eq!(redis.command(&["HSET", &meta, "seq", "1"]), ":0");
    redis.command(&["CLIENT", "KILL", "TYPE", "normal"]);
    let (third, at) = b.joined();
    assert_ne!(third, second);
    assert_eq!(at, Seq(3));
    // A prefix is a separate hub with an epoch of its own.
    let other = Node::start(&redis, &unique_prefix("other"), 10);
    assert_ne!(other.joined().0, third);
}

#[test]
fn entries_trimmed_before_a_node_read_them_are_a_hole() {
    let Some(redis) = RedisServer::start("entries_trimmed_are_a_hole") else {
        return;
    };
    let prefix = unique_prefix("hole");
    let mut a = Node::start(&redis, &prefix, 10);
    let b = Node::start(&redis, &prefix, 10);
    a.joined();
    b.joined();
    a.publish(vec![event("c", 1)]);
    assert_eq!(seqs(&b.entries(1).0), vec![1]);

    // B stalls (its broadcaster does not take entries) while the log moves
    // on and is trimmed past where B stopped.
    b.hold.store(true, Ordering::Release);
    a.publish(vec![event("c", 2)]);
    a.entries(2);
    for n in 3..=6 {
        a.publish(vec![event("c", n)]);
    }
    a.entries(4);
    let log = format!("{{{prefix}}}:log");
    // Seq 2 is already read by B's reader (held in its sink); 3..=6 go.
    assert_eq!(redis.command(&["XTRIM", &log, "MAXLEN", "0"]), ":6");
    a.publish(vec![event("c", 7)]);
    b.hold.store(false, Ordering::Release);
    b.release.send(()).unwrap();

    let (entries, others) = b.entries(2);
    assert_eq!(seqs(&entries), vec![2, 7]);
    assert!(
        others
            .iter()
            .any(|i| matches!(i, EngineInput::Hole { position } if *position == Seq(6))),
        "a hole before 7, not a silent skip: {others:?}"
    );
}

#[test]
fn publishes_fail_fast_while_redis_is_down_and_reading_resumes_after() {
    let Some(mut redis) = RedisServer::start_persistent("publishes_fail_fast") else {
        return;
    };
    let prefix = unique_prefix("down");
    let mut node = Node::start(&redis, &prefix, 10);
    let (epoch, _) = node.joined();
    node.publish(vec![event("c", 1)]);
    node.entries(1);

    redis.stop();
    wait_until("the engine notices Redis is gone", PATIENCE, || {
        node.status.state() == EngineState::Down
    });
    let started = Instant::now();
    let refused = node.engine.submit(0, 50, vec![event("c", 2)]);
    assert!(refused.is_err(), "refused at once while down");
    assert!(started.elapsed() < crate::support::ms(50));
    assert!(!node.status.last_error().is_empty());

    redis.start_again();
    wait_until("the engine reconnects", PATIENCE, || {
        node.status.state() == EngineState::Up
    });
    assert_eq!(node.status.reconnects(), 1);
    assert_eq!(node.status.epoch(), epoch, "same data, same epoch");
    node.publish(vec![event("c", 3)]);
    let (entries, others) = node.entries(1);
    assert_eq!(seqs(&entries), vec![2], "nothing skipped, nothing repeated");
    assert!(!others
        .iter()
        .any(|i| matches!(i, EngineInput::Joined { .. } | EngineInput::Hole { .. })));
}

#[test]
fn a_longer_history_is_trimmed_in_steps_and_complete_stays_exact() {
    let Some(redis) = RedisServer::start("a_longer_history_is_trimmed_in_steps") else {
        return;
    };
    // History 32: the stream may reach 32 + 2 before it is trimmed to 32.
    let mut node = Node::start(&redis, &unique_prefix("steps"), 32);
    node.joined();
    let items: Vec<Item> = (1..=33).map(|n| event("a", n)).collect();
    node.publish(items);
    node.entries(33);
    let kept = replay(&node, &["a"], 0);
    assert_eq!(
        kept.events.len(),
        33,
        "within the slack nothing is trimmed yet"
    );
    assert!(kept.complete, "and nothing trimmed means complete");
    node.publish(vec![event("a", 34)]);
    node.entries(1);
    let trimmed = replay(&node, &["a"], 0);
    assert_eq!(
        trimmed.events.iter().map(|e| e.seq.0).collect::<Vec<_>>(),
        (3..=34).collect::<Vec<_>>(),
        "back to 32, the oldest two gone"
    );
    assert!(!trimmed.complete);
    assert!(
        replay(&node, &["a"], 2).complete,
        "nothing after 2 was trimmed"
    );
    assert!(!replay(&node, &["a"], 1).complete);
}
