//! The README and docs/ say what a user will see; these tests hold them to
//! it. Rust blocks are compiled (and run unless `no_run`) as doctests from
//! `src/lib.rs`; here: every guide is in that list, every other block names
//! its language (so rustdoc does not take it for Rust), the Quick start's
//! curl answer and frames are what the hub prints, and the Python snippets
//! run against a real hub.
//!
//! The Python test needs `python3` with the `websockets` package
//! (`pip install websockets`). Without it the test fails under CI (`CI`
//! set), and elsewhere prints a loud SKIP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::support::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, relative to the repository.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut guides: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| PathBuf::from("docs").join(path.file_name().unwrap()))
        .collect();
    guides.sort();
    files.extend(guides);
    files
}

fn read(relative: &Path) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("{}: {e}", relative.display()))
}

/// The code blocks of a markdown text: (line of the opening fence, info
/// string, body).
fn code_blocks(text: &str) -> Vec<(usize, String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => open = Some((n + 1, info.trim().to_string(), String::new())),
            (Some(_), Some(_)) => blocks.push(open.take().expect("open")),
            (Some((_, _, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a code block is never closed");
    blocks
}

/// A new guide must be compiled too: src/lib.rs includes each one.
#[test]
fn every_guide_is_compiled_by_the_doctests() {
    let lib = read(Path::new("src/lib.rs"));
    for file in markdown_files() {
        let include = format!("include_str!(\"../{}\")", file.display());
        assert!(
            lib.contains(&include),
            "src/lib.rs does not compile the Rust blocks of {}: add `#[doc = {include}]` \
             next to the others",
            file.display()
        );
    }
}

/// rustdoc takes a block without a language for Rust and compiles it; a
/// transcript or a file tree must say `text` (or `sh`, `json`...).
#[test]
fn every_code_block_names_its_language() {
    let mut untagged = Vec::new();
    for file in markdown_files() {
        for (line, info, _) in code_blocks(&read(&file)) {
            if info.is_empty() {
                untagged.push(format!("{}:{line}", file.display()));
            }
        }
    }
    assert!(
        untagged.is_empty(),
        "code blocks without a language (rustdoc would compile them as Rust): {untagged:?}"
    );
}

/// The README's Quick start, against a real hub: the JavaScript snippet's
/// URL gives `welcome`, `subscribed`, then the event; the curl command's
/// answer is byte for byte what the README shows, and so is the event
/// (but its `ts`).
#[test]
fn readme_quick_start_shows_what_the_hub_prints() {
    let readme = read(Path::new("README.md"));
    let blocks = code_blocks(&readme);
    let js = &blocks
        .iter()
        .find(|(_, info, _)| info == "js")
        .expect("a js block")
        .2;
    assert!(js.contains("ws://127.0.0.1:9001/ws?channels=news"), "{js}");
    assert!(
        js.contains("// welcome, subscribed, then each event"),
        "{js}"
    );
    let curl = &blocks
        .iter()
        .find(|(_, info, body)| info == "sh" && body.contains("/publish"))
        .expect("the curl block")
        .2;
    let body = curl
        .split("-d '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("curl -d '...'");
    let answer = curl
        .split("# answers ")
        .nth(1)
        .and_then(|rest| rest.split(", and").next())
        .expect("# answers {...}, and the client gets");
    let shown_event: Value = serde_json::from_str(
        curl.lines()
            .last()
            .and_then(|line| line.strip_prefix("# "))
            .expect("the event line"),
    )
    .expect("the event is JSON");

    let hub = TestHub::new().start();
    let mut client = Client::connect(hub.ws, "/ws?channels=news").expect("upgrade");
    assert_eq!(client.recv_json()["type"], "welcome");
    assert_eq!(client.recv_json()["type"], "subscribed");
    let reply = http(hub.http, "POST", "/publish", &[], body.as_bytes());
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), answer, "the README shows another answer");
    let mut event = client.recv_json();
    assert!(event["ts"].is_u64());
    event["ts"] = shown_event["ts"].clone();
    assert_eq!(event, shown_event);
    // And the key order as printed, not just the same object.
    assert!(answer.starts_with("{\"delivered\":1,"), "{answer}");
}

/// A child killed when the test ends, pass or fail.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// True if `python3` can import the `websockets` sync client; else SKIP
/// (or fail under CI).
fn python_with_websockets() -> bool {
    let works = Command::new("python3")
        .args(["-c", "import websockets.sync.client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !works {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with the websockets package is needed (pip install websockets)"
        );
        eprintln!(
            "SKIP: docs::python_snippets_run_against_the_hub needs python3 with the \
             websockets package (pip install websockets); CI installs it and runs this test"
        );
    }
    works
}

/// Start `code` (a snippet, pointed at `url`) with python3, unbuffered.
fn python(code: &str, url: &str) -> (Killed, crossbeam_channel::Receiver<String>) {
    let code = code.replace("ws://127.0.0.1:9001/ws", url);
    let mut child = Command::new("python3")
        .args(["-u", "-c", &code])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python3");
    let lines = forward_lines(child.stdout.take().expect("piped"));
    (Killed(child), lines)
}

/// The README's Python snippet and docs/protocol.md's client, as written
/// (only the URL changed), against a hub: the README one prints `welcome`,
/// the kept event, `subscribed`, then the live event; the protocol.md
/// client prints each event once, in order.
#[test]
fn python_snippets_run_against_the_hub() {
    if !python_with_websockets() {
        return;
    }
    let hub = TestHub::new().start();
    let url = format!("ws://{}/ws", hub.ws);
    hub.handle
        .publish("news", json!({"title": "kept"}))
        .unwrap();

    let readme = read(Path::new("README.md"));
    let snippet = code_blocks(&readme)
        .into_iter()
        .find(|(_, info, _)| info == "python")
        .expect("a python block in the README")
        .2;
    let (_readme_client, lines) = python(&snippet, &url);
    let next = || -> Value {
        let line = lines
            .recv_timeout(PATIENCE)
            .expect("a line from the snippet");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    assert_eq!(next()["type"], "welcome");
    let kept = next();
    assert_eq!(
        (kept["type"].as_str(), kept["seq"].as_u64()),
        (Some("event"), Some(1))
    );
    assert_eq!(
        next()["type"],
        "subscribed",
        "kept events come before `subscribed`"
    );
    hub.handle
        .publish("news", json!({"title": "live"}))
        .unwrap();
    assert_eq!(next()["data"]["title"], "live");

    let protocol = read(Path::new("docs/protocol.md"));
    let client = code_blocks(&protocol)
        .into_iter()
        .find(|(_, info, _)| info == "python")
        .expect("a python block in docs/protocol.md")
        .2;
    let (_follower, lines) = python(&client, &url);
    // It starts "from now" (welcome.seq): publish only once it follows
    // `news`, which /status shows. No event says so, hence the poll.
    wait_until("the Python client follows news", PATIENCE, || {
        let connections = hub.handle.connections().unwrap();
        connections
            .iter()
            .filter(|c| c.channels == ["news"])
            .count()
            == 2
    });
    let mut published = Vec::new();
    for n in 0..3 {
        published.push(hub.handle.publish("news", json!(n)).unwrap().seq.0);
    }
    for (n, seq) in published.iter().enumerate() {
        let line = lines.recv_timeout(PATIENCE).expect("an event line");
        assert_eq!(line, format!("{seq} news {n}"));
    }
}
