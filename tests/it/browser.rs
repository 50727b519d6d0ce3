//! The live page (`GET /`, src/http/page.html) and the browser client it is
//! built on (`GET /pumphub.js`, src/http/pumphub.js), in a real browser.
//!
//! Each test starts a hub and a headless Chromium of its own, and drives it
//! over the Chrome DevTools Protocol (CDP): JSON-RPC over a WebSocket, spoken
//! here with the tungstenite client and serde_json the crate already depends
//! on, so no browser-automation crate is needed. The page tests use the
//! page's own controls as a person would: they click buttons and type into
//! fields with CDP's input events, and read what the page shows.
//!
//! What happens inside the browser can only be seen by asking it, so these
//! tests poll the DOM (`Runtime.evaluate` every 100 ms, for at most 15 s per
//! step) where the other tests wait on channels or socket reads. Every step
//! waits for the page to show the result of the one before; none sleeps.
//! Screenshots go to `<target dir>/browser/` for a human to look at.
//!
//! Needs Chromium (`apt-get install -y chromium`; `.ci/run` installs it).
//! Without it the tests fail when `CI=true`, and elsewhere print a loud SKIP
//! and pass, so `cargo test` works on a fresh machine.

use std::env;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pumphub::ConnectionId;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use crate::examples::{example, lines, start};
use crate::support::{http, RunningHub, TestHub};

/// How long any one wait on the browser may take before the test fails.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(15);

/// How often `wait_for` asks the page again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The page connects, subscribes, and shows events published over HTTP and
/// from its own form; long data is folded; the list is capped, can be paused
/// and cleared.
#[test]
fn live_page_shows_published_events() {
    let Some(mut page) = Page::open("live_page_shows_published_events") else {
        return;
    };
    let hub = TestHub::new().start();
    page.navigate(&format!("http://{}/?channels=demo&autoconnect=1", hub.http));
    page.wait_for(IS_SUBSCRIBED, "the page to subscribe");

    // The markup in the data also checks that the page inserts it as text.
    let data = json!({ "n": 1, "text": "<b>not bold</b>" });
    let seq = seq_of(&hub.http_publish("demo", data.clone()));
    let row = page.wait_for(&row_text(seq), "the published event's row");
    let row = row.as_str().unwrap_or_default();
    assert!(
        row.contains("demo") && row.contains(&data.to_string()),
        "row {seq} reads {row:?}"
    );
    let markup = page.evaluate("document.querySelector('#events b') !== null");
    assert_eq!(markup, json!(false), "event data must be shown as text");

    // The page's own publish form: fill it in, click, read its result.
    let form_data = r#"{"from":"form"}"#;
    page.type_into("#pub-data", form_data);
    let (form_seq, delivered) = page.publish_from_form();
    assert_eq!(delivered, 1, "the page is subscribed to demo");
    let row = page.wait_for(&row_text(form_seq), "the form-published event's row");
    assert!(
        row.as_str().unwrap_or_default().contains(form_data),
        "row {form_seq} reads {row}"
    );

    // Long data is folded to one line, and unfolds to the whole, indented.
    let long = "x".repeat(400);
    let seq = seq_of(&hub.http_publish("demo", json!({ "long": long })));
    page.wait_for(&row_text(seq), "the long event's row");
    let summary = format!("#events [data-seq=\"{seq}\"] summary");
    let folded = page.evaluate(&format!("document.querySelector('{summary}').textContent"));
    assert!(
        folded.as_str().unwrap_or_default().len() < 300,
        "the folded line is short: {folded}"
    );
    page.click(&summary);
    page.wait_for(
        &format!(
            "document.querySelector('#events [data-seq=\"{seq}\"] pre').textContent\
             .includes('\"long\": \"{long}\"')"
        ),
        "the unfolded, indented data",
    );

    // Paused, the list stands still and says what is waiting.
    page.click("#pause");
    page.wait_for(&text_is("#pause", "Resume"), "the list to pause");
    let seq = seq_of(&hub.http_publish("demo", json!("while paused")));
    page.wait_for(
        "document.querySelector('#events-note').textContent.includes('paused, 1 new')",
        "the note to count the waiting event",
    );
    assert_eq!(
        page.evaluate(&row_text(seq)),
        Value::Null,
        "paused, yet row {seq} is shown"
    );
    page.click("#pause");
    page.wait_for(&row_text(seq), "the waiting event after resuming");

    // A burst larger than the list: the newest 500 shown, and said so. Two
    // arrays of 300: one array may hold at most half a queue (512 events).
    let mut last = 0;
    for half in 0..2 {
        let burst: Vec<Value> = (0..300)
            .map(|n| json!({ "channel": "demo", "data": half * 300 + n }))
            .collect();
        let reply = http(
            hub.http,
            "POST",
            "/publish",
            &[],
            json!(burst).to_string().as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        last = seq_of(&reply.json()[299]);
    }
    page.wait_for(&row_text(last), "the burst's last event");
    let note = page.wait_for(
        "document.querySelector('#events-note').textContent.match(/^showing the last 500 of \\d+/)?.[0]",
        "the list to say it shows only the newest",
    );
    assert_eq!(note, json!("showing the last 500 of 604"));
    let rows = page.evaluate("document.querySelectorAll('#events li').length");
    assert_eq!(rows, json!(500));

    // Everything the page loaded or fetched came from the hub: it works offline.
    let foreign = page.evaluate(
        "performance.getEntriesByType('resource').map((e) => e.name) \
           .filter((url) => !url.startsWith(location.origin + '/'))",
    );
    assert_eq!(foreign, json!([]), "requests outside the hub");
    let loaded = page
        .evaluate("performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname)");
    assert!(
        loaded.as_array().unwrap().contains(&json!("/pumphub.js")),
        "{loaded}"
    );

    page.screenshot("end.png");
    page.click("#clear");
    page.wait_for(
        "document.querySelectorAll('#events li').length === 0",
        "the list to clear",
    );
}

/// While connected, the channel field is the subscription: adding a channel
/// subscribes to it over the open connection, removing one unsubscribes, the
/// hub's replies are shown, and after a reconnect the page subscribes to
/// what the field says.
#[test]
fn live_page_follows_the_channel_field_while_connected() {
    let Some(mut page) = Page::open("live_page_follows_the_channel_field_while_connected") else {
        return;
    };
    let hub = TestHub::new().start();
    page.navigate(&format!("http://{}/?channels=demo&autoconnect=1", hub.http));
    page.wait_for(IS_SUBSCRIBED, "the page to subscribe");
    let first_connection = page.connection_id();

    // Add a channel: subscribed over the same connection, reply shown.
    page.type_into("#channels", "demo, extra");
    page.press_enter();
    page.wait_for(
        "document.querySelector('#replies').textContent.includes('\"type\":\"subscribed\"') \
         && document.querySelector('#state').textContent === 'subscribed to demo, extra'",
        "the subscribed reply for the added channel",
    );
    assert_eq!(
        page.connection_id(),
        first_connection,
        "it must not reconnect"
    );
    let offered = page.evaluate(
        "[...document.querySelectorAll('#subscribed-channels option')].map((o) => o.value)",
    );
    assert_eq!(
        offered,
        json!(["demo", "extra"]),
        "the publish form offers what is followed"
    );

    // Publish to it from the form: the event shows.
    page.type_into("#pub-channel", "extra");
    page.type_into("#pub-data", r#"{"to":"extra"}"#);
    let (seq, delivered) = page.publish_from_form();
    assert_eq!(delivered, 1, "the page is subscribed to extra");
    let row = page.wait_for(&row_text(seq), "the event on the added channel");
    assert!(
        row.as_str().unwrap_or_default().contains("extra"),
        "row {seq} reads {row}"
    );

    // Remove a channel: unsubscribed, reply shown.
    page.type_into("#channels", "extra");
    page.press_enter();
    page.wait_for(
        "document.querySelector('#replies li').textContent.includes('\"type\":\"unsubscribed\"')",
        "the unsubscribed reply",
    );
    // Publishing to it now reaches nobody (the hub says so), and nothing
    // shows, while a later event on the channel still followed does.
    page.type_into("#pub-channel", "demo");
    let (dropped, delivered) = page.publish_from_form();
    assert_eq!(delivered, 0, "demo has no subscriber any more");
    let kept = seq_of(&hub.http_publish("extra", json!("still here")));
    assert!(kept > dropped);
    page.wait_for(&row_text(kept), "the event on the channel still followed");
    assert_eq!(
        page.evaluate(&row_text(dropped)),
        Value::Null,
        "event {dropped} on the unsubscribed channel is shown"
    );

    // Cut the connection from the hub's side: the page reconnects and
    // subscribes to what the field says, not what it started with.
    kick(&hub, &first_connection);
    page.wait_for(
        &format!(
            "{IS_SUBSCRIBED} && !document.querySelector('#info').textContent.includes('{first_connection}')"
        ),
        "the page to reconnect",
    );
    // (The kicked connection may still be listed while its pumps finish.)
    let now = page.connection_id();
    let connections = hub.handle.connections().expect("the hub runs");
    let current = connections
        .iter()
        .find(|c| c.id == now)
        .expect("the page's connection");
    assert_eq!(current.channels, ["extra"]);
    let seq = seq_of(&hub.http_publish("extra", json!("after the reconnect")));
    page.wait_for(&row_text(seq), "an event after the reconnect");
}

/// The hub panel: numbers from /metrics, a chart, and the connection table
/// from /status with a filter; on a hub with a token and a publish key,
/// entered in the page's fields.
#[test]
fn live_page_shows_the_hub_at_a_glance() {
    let Some(mut page) = Page::open("live_page_shows_the_hub_at_a_glance") else {
        return;
    };
    let hub = TestHub::new()
        .config(|c| {
            c.token = Some("tok".into());
            c.publish_key = Some("key".into());
        })
        .start();
    page.navigate(&format!("http://{}/?channels=demo", hub.http));
    // A wrong token is refused for good: the page stops and says why.
    page.type_into("#token", "wrong");
    page.click("#connect");
    page.wait_for(
        "document.querySelector('#state').textContent.includes('unauthenticated') \
         && document.querySelector('#connect').textContent === 'Connect'",
        "the page to report the refused token",
    );
    page.type_into("#token", "tok");
    page.click("#connect");
    page.wait_for(IS_SUBSCRIBED, "the page to authenticate and subscribe");
    page.wait_for(&text_is("#stat-active", "1"), "the panel to count the page");

    let mut second = hub.client_at("/ws?token=tok");
    page.wait_for(
        &text_is("#stat-active", "2"),
        "the panel to count a second client",
    );
    page.wait_for(&text_is("#stat-peak", "2"), "the peak to follow");

    // The chart: both lines have points; the connection line reaches the
    // top of its scale (2), the event line rises once events are published.
    page.evaluate(
        "window.chartPoints = (line) => document.querySelector(line).getAttribute('points') \
           .split(' ').filter(Boolean).map((point) => point.split(',').map(Number))",
    );
    page.wait_for(
        "document.querySelector('#chart-connections-max').textContent === '2' \
         && chartPoints('#chart-connections').length >= 2 \
         && chartPoints('#chart-events').length >= 2",
        "the chart to draw both lines",
    );
    let publish = |n: u64| {
        let body = json!({ "channel": "demo", "data": n }).to_string();
        let reply = http(
            hub.http,
            "POST",
            "/publish",
            &[("Authorization", "Bearer key")],
            body.as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
    };
    publish(1);
    page.wait_for(
        "chartPoints('#chart-events').some(([x, y]) => y < 119)",
        "the event line to rise",
    );
    let inside = page.evaluate(
        "['#chart-events', '#chart-connections'].every((line) => chartPoints(line) \
           .every(([x, y]) => x >= 0 && x <= 600 && y >= 0 && y <= 120))",
    );
    assert_eq!(inside, json!(true), "every point lies inside the chart");

    // The connection table needs /status, which needs the publish key.
    page.click("#connections summary");
    page.wait_for(
        "document.querySelector('#hub-source').textContent.includes('needs the publish key')",
        "the panel to ask for the publish key",
    );
    page.type_into("#pub-key", "key");
    page.wait_for(
        "document.querySelectorAll('#conn-rows tr').length === 2",
        "a table row per connection",
    );
    let mine = page.evaluate("document.querySelector('#conn-rows tr.mine')?.dataset.id ?? null");
    assert_eq!(
        mine,
        json!(page.connection_id()),
        "the page's own row is marked"
    );

    // The filter finds one client by any part of its id.
    let id = second.connection_id();
    page.type_into("#conn-filter", &id[..8]);
    let shown = page.wait_for(
        "document.querySelectorAll('#conn-rows tr').length === 1 \
         && document.querySelector('#conn-rows tr').dataset.id",
        "the filter to leave one row",
    );
    assert_eq!(shown, json!(id));
    page.wait_for(
        &text_is("#connections-note", "(showing 1 of 2)"),
        "the note",
    );
    page.type_into("#conn-filter", "no such client");
    page.wait_for(
        "document.querySelectorAll('#conn-rows tr').length === 0",
        "the filter to leave no row",
    );

    // Publishing with the key from the form works too.
    page.type_into("#pub-data", "2");
    let (seq, _) = page.publish_from_form();
    page.wait_for(&row_text(seq), "the form's event");

    page.screenshot("end.png");
    second.close();
    page.wait_for(
        &text_is("#stat-active", "1"),
        "the panel to see the client go",
    );
}

/// `GET /pumphub.js` on a page of its own, used as its documentation says:
/// events arrive, the client's publish and subscribe calls answer, and after
/// the hub drops the connection it resumes without losing an event.
#[test]
fn pumphub_js_resumes_after_the_hub_drops_it() {
    let Some(mut page) = Page::open("pumphub_js_resumes_after_the_hub_drops_it") else {
        return;
    };
    let hub = TestHub::new()
        .config(|c| c.allow_client_publish = true)
        .start();
    // A web developer's page on a site of its own, loading the script from
    // the hub.
    let test_page = format!(
        r#"<!doctype html><meta charset="utf-8"><title>pumphub.js</title>
        <script src="http://{http}/pumphub.js"></script>
        <script>
          window.seen = []; window.gaps = []; window.states = [];
          window.client = new PumphubClient("ws://{ws}/ws", {{
            channels: ["news"],
            onEvent: (event) => seen.push(event.seq),
            onGap: (gap) => gaps.push(gap),
            onState: (state, detail) => states.push([state, detail]),
          }});
        </script>"#,
        http = hub.http,
        ws = hub.ws,
    );
    let site = Site::serve(test_page);
    page.navigate(&format!("http://{}/", site.addr));
    page.wait_for(
        "window.client?.state === 'subscribed'",
        "the client to subscribe",
    );

    let first = seq_of(&hub.http_publish("news", json!(1)));
    page.wait_for(&format!("seen.includes({first})"), "the first event");
    let published = page.evaluate("client.publish('news', 'from js').then((reply) => reply.seq)");
    let second = published
        .as_u64()
        .expect("publish resolves with the published reply");
    page.wait_for(
        &format!("seen.includes({second})"),
        "the client's own event",
    );
    let reply = page.evaluate("client.subscribe(['other']).then((reply) => reply.type)");
    assert_eq!(reply, json!("subscribed"));
    let refused = page.evaluate("client.subscribe(['bad name']).catch((e) => e.name)");
    assert_eq!(
        refused,
        json!("TypeError"),
        "a bad name is refused before sending"
    );

    // Hold the page's JavaScript still (the debugger pauses it at its next
    // statement, which will be the socket's close handler), drop the
    // connection from the hub, publish while the client cannot possibly be
    // back, then let it run: it must reconnect and replay what it missed.
    let id = page.evaluate("client.connectionId");
    page.call("Debugger.enable", json!({}));
    page.call("Debugger.pause", json!({}));
    kick(&hub, id.as_str().expect("a connection id"));
    let missed: Vec<u64> = (0..3)
        .map(|n| hub.handle.publish("news", json!(n)).expect("publish").seq.0)
        .collect();
    hub.handle
        .publish("elsewhere", json!("not followed"))
        .expect("publish");
    page.wait_event("Debugger.paused");
    page.call("Debugger.resume", json!({}));
    page.call("Debugger.disable", json!({}));

    let last = missed[2];
    page.wait_for(&format!("seen.includes({last})"), "the missed events");
    let seen = page.evaluate("seen");
    assert_eq!(
        seen,
        json!([first, second, missed[0], missed[1], missed[2]])
    );
    assert_eq!(page.evaluate("gaps"), json!([]), "nothing was lost");
    let resumed = page
        .evaluate("states.slice(states.findIndex(([s]) => s === 'reconnecting')).map(([s]) => s)");
    assert_eq!(
        resumed,
        json!(["reconnecting", "connecting", "open", "subscribed"])
    );
    let replayed = page.evaluate("states.at(-1)[1].replayed");
    assert_eq!(replayed, json!(3), "the missed events came as a replay");
    let channels = page.evaluate("states.at(-1)[1].channels.sort()");
    assert_eq!(
        channels,
        json!(["news", "other"]),
        "it resubscribed to both"
    );

    // close() is final: no reconnect, and the hub sees the client go.
    page.evaluate("client.close()");
    assert_eq!(page.evaluate("client.state"), json!("closed"));
    crate::support::wait_until("the hub sees the client go", BROWSER_TIMEOUT, || {
        hub.handle
            .connections()
            .map(|c| c.is_empty())
            .unwrap_or(false)
    });
}

/// The example in docs/browser-client.md, served as it is written there
/// (but for the hub's addresses), shows a published event.
#[test]
fn pumphub_js_documented_example_works() {
    let Some(mut page) = Page::open("pumphub_js_documented_example_works") else {
        return;
    };
    let hub = TestHub::new().start();
    let doc = include_str!("../../docs/browser-client.md");
    let example = doc
        .split("```html\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/browser-client.md has an html example");
    let example = example
        .replace("127.0.0.1:9002", &hub.http.to_string())
        .replace("127.0.0.1:9001", &hub.ws.to_string());
    let site = Site::serve(example);
    page.navigate(&format!("http://{}/", site.addr));
    page.wait_for(
        "document.title === 'news (subscribed)'",
        "the example to subscribe",
    );
    let seq = seq_of(&hub.http_publish("news", json!({ "title": "hello" })));
    page.wait_for(
        &text_is("#news li", &format!(r#"#{seq} {{"title":"hello"}}"#)),
        "the event in the example's list",
    );
}

/// `/pumphub.js` is served as JavaScript, and is the file in the repository.
#[test]
fn pumphub_js_is_served_as_javascript() {
    let hub = TestHub::new().start();
    let reply = crate::support::http_get(hub.http, "/pumphub.js");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("Content-Type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(reply.text().contains("class PumphubClient"));
    let reply = http(hub.http, "POST", "/pumphub.js", &[], b"");
    assert_eq!(reply.status, 405);
}

/// True once the page's state badge says it is subscribed.
const IS_SUBSCRIBED: &str = "document.querySelector('#state')?.dataset.state === 'subscribed'";

/// examples/one_port.rs in a browser: the application's page, served by
/// tiny_http, follows the ticks over the hub's WebSocket on the same port.
#[test]
fn one_port_page_follows_the_hub_on_the_same_port() {
    let Some(mut page) = Page::open("one_port_page_follows_the_hub_on_the_same_port") else {
        return;
    };
    let mut one_port = start(
        Command::new(example("one_port"))
            .args(["--addr", "127.0.0.1:0"])
            .args(["--count", "1000000", "--interval-ms", "50"]),
    );
    let printed = lines(&mut one_port);
    let first = printed
        .recv_timeout(BROWSER_TIMEOUT)
        .expect("a listening line");
    let url = first
        .strip_prefix("listening ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();

    page.call("Page.navigate", json!({ "url": url }));
    page.wait_for(
        "document.querySelector('#state')?.textContent === 'connected'",
        "the page to connect to /live",
    );
    let tick = page.wait_for(
        "document.querySelector('#ticks li')?.textContent ?? null",
        "a tick on the page",
    );
    assert!(
        tick.as_str().unwrap_or_default().contains("\"n\":"),
        "{tick}"
    );
    page.screenshot("one-port.png");
    drop(one_port); // killed: it counts ticks forever
}

/// The page with a signed token (`--token-secret`) typed into its token
/// field: it authenticates, subscribes to what the token grants, and shows
/// events. When the token expires the hub closes with 4001; the page
/// reconnects once, is refused (`invalid token: expired`), and stops,
/// saying why, instead of retrying with a dead token.
#[test]
fn live_page_connects_with_a_signed_token_until_it_expires() {
    let Some(mut page) = Page::open("live_page_connects_with_a_signed_token_until_it_expires")
    else {
        return;
    };
    let hub = TestHub::new()
        .config(|c| c.token_secrets = vec![crate::signed_tokens::SECRET.into()])
        .start();
    page.navigate(&format!("http://{}/?channels=demo", hub.http));
    // Minted only now, with the browser up: it has 5-6 s left (its `exp`
    // is past, inside the hub's 5 s clock-skew allowance).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = now + 6 - pumphub::auth::jwt::DEFAULT_LEEWAY.as_secs();
    let token = crate::signed_tokens::token_signed_with(
        crate::signed_tokens::SECRET,
        json!({"sub": "page", "channels": ["demo"], "exp": exp}),
    );
    page.type_into("#token", &token);
    page.click("#connect");
    page.wait_for(IS_SUBSCRIBED, "the page to authenticate and subscribe");
    let seq = seq_of(&hub.http_publish("demo", json!("signed")));
    page.wait_for(&row_text(seq), "the event's row");
    let state = page.wait_for(
        "document.querySelector('#state')?.dataset.state === 'closed' \
         && document.querySelector('#state').textContent",
        "the page to report the expiry",
    );
    let state = state.as_str().unwrap_or_default();
    assert!(state.contains("invalid token: expired"), "{state}");
}

/// A JS expression for the text of the event row with this seq, or null.
fn row_text(seq: u64) -> String {
    format!("document.querySelector('#events [data-seq=\"{seq}\"]')?.textContent ?? null")
}

/// A JS expression: the element's text is exactly `text`.
fn text_is(selector: &str, text: &str) -> String {
    format!(
        "document.querySelector({})?.textContent === {}",
        json!(selector),
        json!(text)
    )
}

/// The `seq` of a `POST /publish` answer.
fn seq_of(reply: &Value) -> u64 {
    reply["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {reply}"))
}

/// Disconnect a client from the hub's side (Close 1000).
fn kick(hub: &RunningHub, connection_id: &str) {
    let id: ConnectionId = connection_id.parse().expect("a connection id");
    assert!(
        hub.handle.disconnect(id).expect("the hub runs"),
        "connection {id} exists"
    );
}

/// `<target dir>/browser`, where screenshots go (CI can keep it as an artifact).
fn browser_output_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser")
}

/// `/usr/bin/chromium` (Debian's package), else `chromium` on PATH.
fn find_chromium() -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    let on_path = env::split_paths(&path).map(|dir| dir.join("chromium"));
    std::iter::once(PathBuf::from("/usr/bin/chromium"))
        .chain(on_path)
        .find(|candidate| candidate.is_file())
}

/// Chromium, or `None` after a loud SKIP; under `CI=true` a missing
/// Chromium fails the test instead, so CI cannot pass without running it.
fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(binary) = find_chromium() {
        return Some(binary);
    }
    let install = "install it with `apt-get install -y chromium` (looked for \
                   /usr/bin/chromium and `chromium` on PATH)";
    if env::var("CI").is_ok_and(|ci| ci.eq_ignore_ascii_case("true") || ci == "1") {
        panic!("CI=true and Chromium is missing, so browser test {test} cannot run: {install}");
    }
    // Straight to stderr, not eprintln!: the test harness captures the
    // output of passing tests, and a skip nobody sees is a silent pass.
    let _ = writeln!(
        std::io::stderr(),
        "\n********************************************************************\n\
         SKIP browser::{test}: Chromium is not installed;\n\
         {install}.\n\
         This test PASSES WITHOUT RUNNING; under CI=true it would fail.\n\
         ********************************************************************"
    );
    None
}

/// One browser tab in a Chromium of its own, and what a test does with it:
/// navigate, click, type, wait until the page shows something.
struct Page {
    cdp: Cdp,
    /// Dropped after `cdp`: killing the browser ends the DevTools socket.
    _chromium: Chromium,
    /// Names this test's screenshots.
    name: &'static str,
}

impl Page {
    /// Starts Chromium with one blank tab; `None` if Chromium is missing
    /// and the test should skip (see `chromium_or_skip`).
    fn open(name: &'static str) -> Option<Page> {
        let binary = chromium_or_skip(name)?;
        let (chromium, devtools_url) = Chromium::launch(&binary);
        let mut cdp = Cdp::connect(&devtools_url);
        cdp.open_tab();
        Some(Page {
            cdp,
            _chromium: chromium,
            name,
        })
    }

    /// Loads `url` (written as the browser would normalise it) and waits
    /// until it has loaded, scripts included.
    fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for(
            &format!(
                "location.href === {} && document.readyState === 'complete'",
                json!(url)
            ),
            "the page to load",
        );
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.cdp.call(method, params)
    }

    fn evaluate(&mut self, expression: &str) -> Value {
        self.cdp.evaluate(expression)
    }

    /// Waits for a CDP event (say `Debugger.paused`) and returns its params.
    fn wait_event(&mut self, method: &str) -> Value {
        self.cdp.wait_event(method)
    }

    /// Polls `expression` until it is truthy and returns that value. On
    /// timeout, saves `<name>-failure.png` and panics with the page's state.
    fn wait_for(&mut self, expression: &str, what: &str) -> Value {
        let deadline = Instant::now() + BROWSER_TIMEOUT;
        loop {
            let value = self.evaluate(expression);
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0);
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                self.screenshot("failure.png");
                let state = self.evaluate("document.querySelector('#state')?.textContent ?? null");
                panic!(
                    "{}: timed out after {BROWSER_TIMEOUT:?} waiting for {what}; #state reads {state}",
                    self.name
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// A left click in the middle of the element, as a mouse would.
    fn click(&mut self, selector: &str) {
        let center = self.evaluate(&format!(
            "(() => {{
               const element = document.querySelector({});
               if (!element) return null;
               element.scrollIntoView({{ block: 'center' }});
               const box = element.getBoundingClientRect();
               return [box.x + box.width / 2, box.y + box.height / 2];
             }})()",
            json!(selector)
        ));
        let (Some(x), Some(y)) = (center[0].as_f64(), center[1].as_f64()) else {
            panic!("{}: nothing to click at {selector}", self.name);
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Clicks into a field, selects what it holds, and types `text` over it.
    fn type_into(&mut self, selector: &str, text: &str) {
        self.click(selector);
        self.evaluate(&format!(
            "document.querySelector({}).select()",
            json!(selector)
        ));
        self.call("Input.insertText", json!({ "text": text }));
    }

    /// Presses Enter in the focused field (which submits its form).
    fn press_enter(&mut self) {
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": "Enter", "code": "Enter",
                        "windowsVirtualKeyCode": 13, "text": "\r" }),
            );
        }
    }

    /// Clicks Publish and waits for the form's new result; returns its seq
    /// and how many subscribers the hub delivered it to.
    fn publish_from_form(&mut self) -> (u64, u64) {
        let before = self.evaluate("document.querySelector('#pub-result').textContent");
        self.click("#pub-send");
        let result = self.wait_for(
            &format!(
                "(() => {{
                   const text = document.querySelector('#pub-result').textContent;
                   return text !== {before} && text.match(/^published seq (\\d+), delivered to (\\d+)$/)?.slice(1);
                 }})()"
            ),
            "the publish form's result",
        );
        let number = |i: usize| {
            result[i]
                .as_str()
                .and_then(|n| n.parse().ok())
                .expect("a number")
        };
        (number(0), number(1))
    }

    /// The connection id the page shows (from its `welcome`).
    fn connection_id(&mut self) -> String {
        let id = self.evaluate(
            "document.querySelector('#info').textContent.match(/^connection (\\S+)/)?.[1] ?? null",
        );
        id.as_str()
            .expect("the page shows its connection id")
            .to_string()
    }

    /// Saves a PNG screenshot as `<target dir>/browser/<name>-<file>`.
    fn screenshot(&mut self, file: &str) {
        let path = browser_output_dir().join(format!("{}-{file}", self.name));
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = decode_base64(shot["data"].as_str().expect("base64 PNG data"));
        fs::create_dir_all(path.parent().expect("a file path")).unwrap();
        fs::write(&path, png).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
        eprintln!("screenshot saved to {}", path.display());
    }
}

/// A one-page web site on 127.0.0.1, standing in for a web developer's own:
/// another origin than the hub's. (A `data:` URL will not do: Chromium does
/// not let such a page load scripts from loopback addresses.)
///
/// Each connection gets a thread that answers one request and ends; the
/// accepting thread ends when the site is dropped.
struct Site {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Site {
    /// Serves `html` at `/` (and 404 elsewhere) until dropped.
    fn serve(html: String) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test site");
        let addr = listener.local_addr().expect("its address");
        let stop = Arc::new(AtomicBool::new(false));
        let html: Arc<str> = html.into();
        let acceptor = thread::spawn({
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let (Ok(stream), html) = (stream, html.clone()) else {
                        continue;
                    };
                    thread::spawn(move || Site::answer(stream, &html));
                }
            }
        });
        Site {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn answer(mut stream: TcpStream, html: &str) {
        // A browser may open a connection it never uses: give up on it.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        let (status, body) = if head.starts_with(b"GET / ") {
            ("200 OK", html)
        } else {
            ("404 Not Found", "")
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the acceptor from `accept` so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// A headless Chromium process with its own throwaway profile directory.
///
/// Dropping it kills the browser and removes the profile, also when the test
/// fails halfway (the panic unwinds through this guard).
struct Chromium {
    child: Child,
    profile_dir: PathBuf,
}

impl Chromium {
    /// Starts Chromium and returns it with the browser's DevTools WebSocket URL.
    fn launch(binary: &Path) -> (Chromium, String) {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let profile_dir =
            env::temp_dir().join(format!("pumphub-chromium-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&profile_dir).expect("create the Chromium profile directory");
        // The flags that keep headless Chromium quiet on a machine without
        // outside network access; port 0 lets it pick a free debugging port.
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1000,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile_dir.display()))
            .arg("about:blank")
            // Chromium also writes `org.chromium.Chromium.*` into the
            // temporary directory: into the profile, which is removed below.
            .env("TMPDIR", &profile_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        let mut chromium = Chromium { child, profile_dir };

        // Chromium prints "DevTools listening on ws://..." to stderr. A thread
        // reads stderr to the end, so the pipe never fills and blocks it.
        let stderr = chromium.child.stderr.take().expect("stderr is piped");
        let (url_tx, url_rx) = crossbeam_channel::bounded(1);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = url_tx.try_send(url.trim().to_string());
                }
            }
        });
        let url = url_rx
            .recv_timeout(BROWSER_TIMEOUT)
            .expect("Chromium did not print its DevTools URL");
        (chromium, url)
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Chromium's helper processes (renderer, network service) notice the
        // browser is gone a moment later and may still write to the profile
        // meanwhile, so removing it can fail once: try again for up to 2 s.
        for attempt in 1..=20 {
            match fs::remove_dir_all(&self.profile_dir) {
                Ok(()) => break,
                Err(err) if attempt == 20 => {
                    eprintln!("left {}: {err}", self.profile_dir.display())
                }
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// A minimal CDP client: one WebSocket to the browser, one tab session.
///
/// `call` sends `{id, method, params}` and reads until the message with the
/// same `id` comes back, skipping events (which have a `method` and no
/// `id`); `wait_event` reads until one particular event.
struct Cdp {
    socket: WebSocket<TcpStream>,
    next_id: u64,
    /// Set by `open_tab`; from then on every call goes to that tab.
    session_id: Option<String>,
}

impl Cdp {
    /// Connects to the browser's DevTools WebSocket URL.
    fn connect(url: &str) -> Cdp {
        let address = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("unexpected DevTools URL {url:?}"));
        let stream = TcpStream::connect(address).expect("connect to DevTools");
        let (socket, _response) = tungstenite::client(url, stream).expect("DevTools handshake");
        Cdp {
            socket,
            next_id: 1,
            session_id: None,
        }
    }

    /// Opens a new tab and sends every later call to it (a "flat" session:
    /// the tab's messages share this socket, tagged with `sessionId`).
    fn open_tab(&mut self) {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].clone();
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        let session_id = attached["sessionId"].as_str().expect("a sessionId");
        self.session_id = Some(session_id.to_string());
    }

    /// Calls a CDP method and returns its `result`; panics on a CDP error or
    /// if no reply comes within `BROWSER_TIMEOUT`.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "id": id, "method": method, "params": params });
        if let Some(session_id) = &self.session_id {
            request["sessionId"] = json!(session_id);
        }
        self.socket
            .send(Message::text(request.to_string()))
            .unwrap_or_else(|err| panic!("CDP {method}: send failed: {err}"));
        let reply = self.read_until(method, |message| message["id"] == json!(id));
        if let Some(error) = reply.get("error") {
            panic!("CDP {method} failed: {error}");
        }
        reply["result"].clone()
    }

    /// Reads until the event `method` arrives; returns its `params`.
    fn wait_event(&mut self, method: &str) -> Value {
        self.read_until(method, |message| message["method"] == json!(method))["params"].clone()
    }

    /// Reads messages until one satisfies `wanted`, within `BROWSER_TIMEOUT`.
    fn read_until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + BROWSER_TIMEOUT;
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            self.socket.get_ref().set_read_timeout(Some(left)).unwrap();
            let text = match self.socket.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(err) => panic!("CDP {what}: nothing within {BROWSER_TIMEOUT:?}: {err}"),
            };
            let message: Value = serde_json::from_str(&text).expect("CDP sends JSON");
            if wanted(&message) {
                return message;
            }
        }
    }

    /// Evaluates a JS expression in the page (awaiting a promise) and
    /// returns its value as JSON.
    fn evaluate(&mut self, expression: &str) -> Value {
        let reply = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(exception) = reply.get("exceptionDetails") {
            panic!("JS threw while evaluating {expression:?}: {exception}");
        }
        reply["result"]["value"].clone()
    }
}

/// Decodes standard base64 (RFC 4648, `+/`, `=` padding), as CDP sends
/// screenshots. Panics on other characters: the input comes from Chromium.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", char::from(c)),
        }
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut bytes = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        // Each digit carries 6 bits; a chunk of n digits holds n - 1 bytes.
        let bits = chunk.iter().fold(0, |acc, &c| (acc << 6) | value(c)) << (6 * (4 - chunk.len()));
        bytes.extend_from_slice(&bits.to_be_bytes()[1..chunk.len()]);
    }
    bytes
}

#[test]
fn decode_base64_handles_padding() {
    assert_eq!(decode_base64("TWFu"), b"Man");
    assert_eq!(decode_base64("TWE="), b"Ma");
    assert_eq!(decode_base64("TQ=="), b"M");
    assert_eq!(decode_base64("+/8="), [0xfb, 0xff]);
}
