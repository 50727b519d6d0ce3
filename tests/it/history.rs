//! `GET /history?channel=NAME&since=SEQ&limit=N` on the HTTP port: kept
//! events after `since`, whether they are all there (`complete`, `oldest`),
//! whether more follow (`more`), bounded in count and bytes, behind the
//! publish key. And `HubHandle::history`, which it serves.

use serde_json::{json, Value};

use crate::support::*;

fn seqs(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {page}"))
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

fn get(hub: &RunningHub, query: &str) -> HttpReply {
    http_get(hub.http, &format!("/history?{query}"))
}

#[test]
fn history_returns_kept_events_after_since_with_complete_and_more() {
    let hub = TestHub::new().history(4).start();
    for i in 1..=3 {
        hub.handle.publish("news", json!({"n": i})).unwrap();
        hub.handle.publish("other", json!(i)).unwrap(); // interleaved seqs
    }
    // news has 1, 3, 5; nothing evicted yet.
    let all = get(&hub, "channel=news");
    assert_eq!(all.status, 200);
    let page = all.json();
    assert_eq!(seqs(&page), [1, 3, 5]);
    assert_eq!(page["events"][0]["data"], json!({"n": 1}));
    assert_eq!(page["events"][0]["type"], "event");
    assert_eq!(page["events"][0]["channel"], "news");
    assert_eq!(page["complete"], true);
    assert!(page.get("oldest").is_none(), "{page}");
    assert_eq!(page["more"], false);
    assert_eq!(page["seq"], 6);
    assert_eq!(page["since"], 0);

    // since and limit: paging.
    let first = get(&hub, "channel=news&since=1&limit=1").json();
    assert_eq!(seqs(&first), [3]);
    assert_eq!(first["more"], true);
    let next = get(&hub, "channel=news&since=3&limit=1").json();
    assert_eq!(seqs(&next), [5]);
    assert_eq!(next["more"], false);

    // Evict 1 and 3 from news (history 4): complete is false after 0,
    // with the oldest seq kept; after 3 it is whole again.
    for i in 4..=6 {
        hub.handle.publish("news", json!({"n": i})).unwrap();
    }
    let evicted = get(&hub, "channel=news&since=0").json();
    assert_eq!(seqs(&evicted), [5, 7, 8, 9]);
    assert_eq!(evicted["complete"], false);
    assert_eq!(evicted["oldest"], 5);
    let whole = get(&hub, "channel=news&since=3").json();
    assert_eq!(whole["complete"], true);

    // A channel nobody used: empty and complete. A URL-encoded name works.
    let unknown = get(&hub, "channel=never%3Aused").json();
    assert_eq!(unknown["channel"], "never:used");
    assert_eq!(seqs(&unknown), Vec::<u64>::new());
    assert_eq!(unknown["complete"], true);

    // The embedding API answers the same.
    let page = hub.handle.history("news", pumphub::Seq(7), 10).unwrap();
    let got: Vec<u64> = page.events().map(|e| e.seq.0).collect();
    assert_eq!(got, [8, 9]);
    assert!(page.complete && !page.more);
}

#[test]
fn history_rejects_bad_queries_and_other_methods() {
    let hub = TestHub::new().start();
    for (query, code) in [
        ("", "bad_message"),
        ("since=1", "bad_message"),
        ("channel=bad%20name", "bad_channel"),
        ("channel=a&since=-1", "bad_message"),
        ("channel=a&since=x", "bad_message"),
        ("channel=a&limit=0", "bad_message"),
        ("channel=a&limit=1001", "bad_message"),
        ("channel=a%zz", "bad_message"),
    ] {
        let reply = get(&hub, query);
        assert_eq!(reply.status, 400, "{query}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], code, "{query}");
    }
    let post = http(hub.http, "POST", "/history?channel=a", &[], b"");
    assert_eq!(post.status, 405);
}

#[test]
fn history_needs_the_publish_key_when_one_is_set() {
    let hub = TestHub::new()
        .config(|c| c.publish_key = Some("pk".into()))
        .start();
    hub.handle.publish("a", json!(1)).unwrap();
    let without = get(&hub, "channel=a");
    assert_eq!(without.status, 401);
    let with = http(
        hub.http,
        "GET",
        "/history?channel=a",
        &[("Authorization", "Bearer pk")],
        b"",
    );
    assert_eq!(with.status, 200);
    assert_eq!(seqs(&with.json()), [1]);
}

#[test]
fn a_history_answer_is_bounded_in_bytes_and_pages_on() {
    // max-message-size 1024: the publish body limit, and the byte budget
    // of a history answer, is 16 KiB. Ten events of 5 KB do not fit at once.
    let hub = TestHub::new()
        .history(100)
        .config(|c| c.max_message_size = 1024)
        .start();
    let pad = "x".repeat(5000);
    for i in 0..10 {
        hub.handle
            .publish("big", json!({"i": i, "pad": pad}))
            .unwrap();
    }
    let mut since = 0;
    let mut pages = 0;
    let mut got: Vec<u64> = Vec::new();
    loop {
        let reply = get(&hub, &format!("channel=big&since={since}&limit=1000"));
        assert_eq!(reply.status, 200);
        assert!(
            reply.body.len() <= 16 * 1024 + 6000,
            "{} bytes",
            reply.body.len()
        );
        let page = reply.json();
        let seqs = seqs(&page);
        assert!(!seqs.is_empty(), "a page always advances");
        got.extend(&seqs);
        since = *seqs.last().unwrap();
        pages += 1;
        if page["more"] == false {
            break;
        }
        assert!(pages < 20, "never ends");
    }
    assert_eq!(got, (1..=10).collect::<Vec<u64>>());
    assert!(pages >= 4, "only {pages} pages for 50 KB");

    // One event larger than the budget still comes, alone.
    let huge = "y".repeat(15_000);
    let seq = hub.handle.publish("big", json!(huge)).unwrap().seq.0;
    hub.handle.publish("big", json!(huge)).unwrap();
    let page = get(&hub, &format!("channel=big&since={}", seq - 1)).json();
    assert_eq!(seqs(&page), [seq]);
    assert_eq!(page["more"], true);
}
