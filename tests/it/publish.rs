//! Publishing over HTTP and through the library, and the ordering promise
//! of docs/protocol.md ("Sequence numbers") under concurrent publishers.

use std::thread;

use serde_json::json;

use crate::support::*;

#[test]
fn http_and_library_publishes_arrive_as_sequenced_events() {
    let hub = TestHub::new().start();
    let mut client = hub.subscriber(&["news"]);
    let reply = hub.http_publish("news", json!({"title":"one"}));
    assert_eq!(reply, json!({"seq":1,"delivered":1}));
    let published = hub.handle.publish("news", json!("two")).unwrap();
    assert_eq!(published.seq.0, 2);
    let first = client.recv_event();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["channel"], "news");
    assert_eq!(first["data"], json!({"title":"one"}));
    assert!(first["ts"].as_u64().unwrap() > 1_600_000_000_000);
    let second = client.recv_event();
    assert_eq!(second["seq"], 2);
    assert_eq!(second["data"], "two");
}

#[test]
fn http_publish_array_is_published_in_order() {
    let hub = TestHub::new().start();
    let mut client = hub.subscriber(&["a", "b"]);
    let body = json!([
        {"channel":"a","data":1},
        {"channel":"b","data":2},
        {"channel":"nobody","data":3}
    ]);
    let reply = http(
        hub.http,
        "POST",
        "/publish",
        &[],
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!([{"seq":1,"delivered":1},{"seq":2,"delivered":1},{"seq":3,"delivered":0}])
    );
    assert_eq!(client.recv_event()["seq"], 1);
    assert_eq!(client.recv_event()["seq"], 2);
    let empty = http(hub.http, "POST", "/publish", &[], b"[]");
    assert_eq!((empty.status, empty.json()), (200, json!([])));
}

#[test]
fn http_publish_rejects_bad_bodies_and_publishes_nothing() {
    let hub = TestHub::new().start();
    let cases: [(&[u8], &str); 5] = [
        (b"{oops", "bad_json"),
        (br#"{"channel":"a"}"#, "bad_message"),
        (br#"{"channel":"bad name","data":1}"#, "bad_channel"),
        (
            br#"[{"channel":"a","data":1},{"channel":"","data":2}]"#,
            "bad_channel",
        ),
        (br#"42"#, "bad_message"),
    ];
    for (body, code) in cases {
        let reply = http(hub.http, "POST", "/publish", &[], body);
        assert_eq!(reply.status, 400, "{}", reply.text());
        assert_eq!(reply.json()["error"]["code"], code);
        assert!(reply.json()["error"]["message"].is_string());
    }
    assert_eq!(
        hub.handle.stats().unwrap().seq.0,
        0,
        "nothing was published"
    );
    let big = vec![b' '; 65536 * 16 + 1];
    assert_eq!(http(hub.http, "POST", "/publish", &[], &big).status, 413);
}

#[test]
fn publish_key_protects_publish() {
    let hub = TestHub::new()
        .config(|c| c.publish_key = Some("k3y".into()))
        .start();
    let body = br#"{"channel":"a","data":1}"#;
    assert_eq!(http(hub.http, "POST", "/publish", &[], body).status, 401);
    let wrong = [("Authorization", "Bearer nope")];
    assert_eq!(http(hub.http, "POST", "/publish", &wrong, body).status, 401);
    let right = [("Authorization", "Bearer k3y")];
    assert_eq!(http(hub.http, "POST", "/publish", &right, body).status, 200);
}

/// 4 publishers race on 2 channels while 20 clients follow one or both.
/// Each client must see exactly the events of its channels, in strictly
/// increasing seq, with no gap and no duplicate.
#[test]
fn ordering_holds_under_concurrent_publishers() {
    const PER_PUBLISHER: usize = 250;
    let hub = TestHub::new().start();
    let channel_sets: Vec<Vec<&str>> = (0..20)
        .map(|i| match i % 3 {
            0 => vec!["left"],
            1 => vec!["right"],
            _ => vec!["left", "right"],
        })
        .collect();
    let mut clients: Vec<Client> = channel_sets.iter().map(|c| hub.subscriber(c)).collect();

    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let handle = hub.handle.clone();
            thread::spawn(move || {
                let channel = if p % 2 == 0 { "left" } else { "right" };
                (0..PER_PUBLISHER)
                    .map(|i| {
                        (
                            channel,
                            handle.publish(channel, json!({"p":p,"i":i})).unwrap().seq.0,
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut published: Vec<(&str, u64)> = publishers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    published.sort_by_key(|(_, seq)| *seq);

    for (client, channels) in clients.iter_mut().zip(&channel_sets) {
        let expected: Vec<u64> = published
            .iter()
            .filter(|(c, _)| channels.contains(c))
            .map(|(_, seq)| *seq)
            .collect();
        let events: Vec<_> = (0..expected.len()).map(|_| client.recv_event()).collect();
        assert_in_order_without_gaps(&events, &expected);
    }
}

/// Two hubs in one process share nothing: each has its own sequence and
/// its own clients.
#[test]
fn two_hubs_in_one_process_are_independent() {
    let one = TestHub::new().start();
    let two = TestHub::new().start();
    let mut on_one = one.subscriber(&["same"]);
    let mut on_two = two.subscriber(&["same"]);
    one.handle.publish("same", json!("first")).unwrap();
    one.handle.publish("same", json!("second")).unwrap();
    two.handle.publish("same", json!("other")).unwrap();
    let other = on_two.recv_event();
    assert_eq!(
        (other["seq"].as_u64(), other["data"].as_str()),
        (Some(1), Some("other"))
    );
    assert_eq!(on_one.recv_event()["seq"], 1);
    assert_eq!(on_one.recv_event()["seq"], 2);
    assert_ne!(on_one.welcome["epoch"], on_two.welcome["epoch"]);
    // Had "first" or "second" leaked to hub two, it would arrive before this.
    two.handle.publish("same", json!("marker")).unwrap();
    assert_eq!(on_two.recv_event()["data"], "marker");
}

/// Issue 12, finding 4: an array bigger than half a subscriber's queue is
/// refused whole with 413 (`batch_too_large`, naming the limits) before
/// anything is published, and a subscriber that reads stays connected.
/// Before, 2,000 events overflowed every queue in one round: the reader
/// got Close 4008 and none of them. The largest array allowed reaches a
/// reader whole. The embedding API refuses the same batches.
#[test]
fn an_array_that_would_not_fit_a_queue_is_refused_whole() {
    let hub = TestHub::new().start(); // --queue-size 1024: 512 per array
    let mut reader = hub.subscriber(&["news"]);
    let array = |n: usize| {
        let items: Vec<_> = (0..n)
            .map(|i| json!({"channel": "news", "data": i}))
            .collect();
        serde_json::Value::Array(items).to_string()
    };
    let refused = http(hub.http, "POST", "/publish", &[], array(2000).as_bytes());
    assert_eq!(refused.status, 413, "{}", refused.text());
    let error = &refused.json()["error"];
    assert_eq!(error["code"], "batch_too_large");
    assert!(
        error["message"].as_str().unwrap().contains("512 events"),
        "{error}"
    );
    assert_eq!(
        hub.handle.stats().unwrap().seq.0,
        0,
        "nothing was published"
    );

    let fits = http(hub.http, "POST", "/publish", &[], array(512).as_bytes());
    assert_eq!(fits.status, 200, "{}", fits.text());
    for i in 0..512 {
        assert_eq!(reader.recv_event()["data"], i);
    }
    reader.sync(); // still connected: no 4008
    let too_many: Vec<(String, serde_json::Value)> =
        (0..513).map(|i| ("news".to_string(), json!(i))).collect();
    assert!(matches!(
        hub.handle.publish_all(too_many),
        Err(pumphub::Error::BatchTooLarge {
            events: 513,
            max_events: 512,
            ..
        })
    ));
    let metrics = hub.handle.render_metrics().unwrap();
    assert_eq!(metric_value(&metrics, "pumphub_batches_refused_total"), 2.0);
}

/// The same rule in bytes: with `--queue-bytes 65536` an array may carry
/// 32 KiB of events, however few.
#[test]
fn an_array_is_bounded_in_bytes_too() {
    let hub = TestHub::new().config(|c| c.queue_bytes = 65536).start();
    let big = "z".repeat(4000);
    let body = |n: usize| {
        let items: Vec<_> = (0..n)
            .map(|_| json!({"channel": "c", "data": big}))
            .collect();
        serde_json::Value::Array(items).to_string()
    };
    let refused = http(hub.http, "POST", "/publish", &[], body(10).as_bytes());
    assert_eq!(refused.status, 413, "{}", refused.text());
    assert!(refused.text().contains("32768 bytes"), "{}", refused.text());
    let fits = http(hub.http, "POST", "/publish", &[], body(7).as_bytes());
    assert_eq!(fits.status, 200, "{}", fits.text());
}
