//! The live page (`GET /`, src/page.html) in a real browser.
//!
//! Starts a hub, launches headless Chromium, and drives it over the Chrome
//! DevTools Protocol (CDP): JSON-RPC over a WebSocket, spoken here with the
//! tungstenite client and serde_json the crate already depends on, so no
//! browser-automation crate is needed. The test loads
//! `/?channels=demo&autoconnect=1`, waits until the page says it is
//! subscribed, publishes over HTTP and sees the row appear, publishes once
//! more from the page's own form, and saves a screenshot to
//! `<target dir>/browser/page.png` for a human to look at.
//!
//! What happens inside the browser can only be seen by asking it, so this
//! file polls (`Runtime.evaluate` every 100 ms, for at most 15 s) where the
//! other tests wait on channels or socket reads.
//!
//! Needs Chromium (`apt-get install -y chromium`; `.ci/run` installs it).
//! Without it the test fails under CI (`CI` set), and elsewhere prints a
//! notice and passes, so `cargo test` works on a fresh machine.

use std::env;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use crate::support::TestHub;

/// How long any one wait on the browser may take before the test fails.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(15);

/// How often `wait_for` asks the page again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The page connects, subscribes, and shows events published over HTTP and
/// from its own form. Deterministic because each step waits for the page to
/// show the previous one before the next begins.
#[test]
fn live_page_shows_published_events() {
    let Some(binary) = find_chromium() else {
        if env::var_os("CI").is_none() {
            eprintln!(
                "NOTE: skipping the browser test: chromium is not installed \
                 (apt-get install -y chromium; CI installs it and runs this test)"
            );
            return;
        }
        panic!(
            "chromium not found (looked for /usr/bin/chromium and `chromium` on PATH): \
             install it with `apt-get install -y chromium`"
        );
    };
    let hub = TestHub::new().start();

    let (_chromium, devtools_url) = Chromium::launch(&binary);
    let mut page = Cdp::connect(&devtools_url);
    page.open_page();
    page.call(
        "Page.navigate",
        json!({ "url": format!("http://{}/?channels=demo&autoconnect=1", hub.http) }),
    );
    page.wait_for(
        "document.querySelector('#state')?.dataset.state === 'subscribed'",
        "the page to subscribe",
    );

    // The markup in the data also checks that the page inserts it as text.
    let data = json!({ "n": 1, "text": "<b>not bold</b>" });
    let reply = hub.http_publish("demo", data.clone());
    let seq = reply["seq"]
        .as_u64()
        .expect("POST /publish answers with a seq");
    let row = page.wait_for(&row_text(seq), "the published event's row");
    let row = row.as_str().unwrap_or_default();
    assert!(
        row.contains("demo") && row.contains(&data.to_string()),
        "row {seq} reads {row:?}"
    );
    let markup = page.evaluate("document.querySelector('#events b') !== null");
    assert_eq!(
        markup,
        json!(false),
        "event data must be shown as text, not markup"
    );

    // Now the page's own publish form: fill it in, click, read its result.
    let form_data = r#"{"from":"form"}"#;
    page.evaluate(&format!(
        "document.querySelector('#pub-channel').value = 'demo';
         document.querySelector('#pub-data').value = {};
         document.querySelector('#pub-send').click();",
        json!(form_data)
    ));
    let result = page.wait_for(
        "document.querySelector('#pub-result').textContent.match(/^published seq (\\d+)/)?.[1]",
        "the publish form's result",
    );
    let form_seq: u64 = result.as_str().unwrap_or_default().parse().expect("a seq");
    let row = page.wait_for(&row_text(form_seq), "the form-published event's row");
    assert!(
        row.as_str().unwrap_or_default().contains(form_data),
        "row {form_seq} reads {row}"
    );

    page.screenshot(&browser_output_dir().join("page.png"));
}

/// A JS expression for the text of the event row with this seq, or null.
fn row_text(seq: u64) -> String {
    format!("document.querySelector('#events [data-seq=\"{seq}\"]')?.textContent ?? null")
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
                "--window-size=1000,720",
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

/// A minimal CDP client: one WebSocket to the browser, one page session.
///
/// `call` sends `{id, method, params}` and reads until the message with the
/// same `id` comes back. Everything else on the socket (events, which have a
/// `method` and no `id`) is skipped: this test asks, it never listens.
struct Cdp {
    socket: WebSocket<TcpStream>,
    next_id: u64,
    /// Set by `open_page`; from then on every call goes to that page.
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
    fn open_page(&mut self) {
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

        let deadline = Instant::now() + BROWSER_TIMEOUT;
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            self.socket.get_ref().set_read_timeout(Some(left)).unwrap();
            let text = match self.socket.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(err) => panic!("CDP {method}: no reply within {BROWSER_TIMEOUT:?}: {err}"),
            };
            let reply: Value = serde_json::from_str(&text).expect("CDP sends JSON");
            if reply["id"] != json!(id) {
                continue;
            }
            if let Some(error) = reply.get("error") {
                panic!("CDP {method} failed: {error}");
            }
            return reply["result"].clone();
        }
    }

    /// Evaluates a JS expression in the page and returns its value as JSON.
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

    /// Polls `expression` until it is truthy and returns that value. On
    /// timeout, saves `page-failure.png` and panics with the page's state.
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
                self.screenshot(&browser_output_dir().join("page-failure.png"));
                let state = self.evaluate("document.querySelector('#state')?.textContent ?? null");
                panic!(
                    "timed out after {BROWSER_TIMEOUT:?} waiting for {what}; #state reads {state}"
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Saves a PNG screenshot of the page.
    fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = decode_base64(shot["data"].as_str().expect("base64 PNG data"));
        fs::create_dir_all(path.parent().expect("a file path")).unwrap();
        fs::write(path, png).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
        eprintln!("screenshot saved to {}", path.display());
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
