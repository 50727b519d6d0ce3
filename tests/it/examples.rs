//! The examples run as CI runs them: the built binaries, against a hub on
//! port 0, with bounded options so each ends by itself.
//!
//! `cargo test` builds the examples next to the test binary
//! (`target/<profile>/examples/`). A narrower run (`cargo test --test it`)
//! does not, so the first test here asks cargo to build the four it needs;
//! that is a no-op when they are fresh.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;

use crossbeam_channel::Receiver;

use crate::support::*;

const EXAMPLES: [&str; 4] = ["subscriber", "publisher", "embed", "one_port"];

/// The path of example `name`, built if needed (once per test run).
pub(crate) fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // target/<profile>/pumphub -> target/<profile>/examples
        let profile_dir = PathBuf::from(env!("CARGO_BIN_EXE_pumphub"))
            .parent()
            .expect("the binary has a directory")
            .to_path_buf();
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .args(["build", "--quiet", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        for name in EXAMPLES {
            build.args(["--example", name]);
        }
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        // Build into the tree the test binary came from, whatever
        // CARGO_TARGET_DIR says in this environment.
        if let Some(target) = profile_dir.parent() {
            build.env("CARGO_TARGET_DIR", target);
        }
        let status = build.status().expect("run cargo build for the examples");
        assert!(status.success(), "building the examples failed");
        profile_dir.join("examples")
    });
    dir.join(name)
}

/// Lines of a child's stdout, read on a thread so the test can wait on
/// them with a deadline.
pub(crate) fn lines(running: &mut Running) -> Receiver<String> {
    let child = running.0.as_mut().expect("running");
    forward_lines(child.stdout.take().expect("stdout is piped"))
}

/// A started example, killed if the test fails before it exits, so no
/// subscriber is left waiting for events after a failed run.
pub(crate) struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn start(command: &mut Command) -> Running {
    Running(Some(
        command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the example"),
    ))
}

/// Wait for the example to exit (at most `PATIENCE`) and collect its output:
/// a thread waits on the process, the test on that thread's answer.
fn finish(mut running: Running) -> Output {
    let child = running.0.take().expect("not finished yet");
    let pid = child.id();
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    match done_rx.recv_timeout(PATIENCE) {
        Ok(output) => output.expect("collect output"),
        Err(_) => {
            // Our own child, by its id: it outlived the test.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the example did not exit within {PATIENCE:?}");
        }
    }
}

#[test]
fn subscriber_prints_what_publisher_publishes() {
    let hub = TestHub::new()
        .config(|c| c.allow_client_publish = true)
        .start();
    let url = format!("ws://{}/ws", hub.ws);
    let mut subscriber = start(Command::new(example("subscriber")).args([
        "--url",
        &url,
        "--channel",
        "news",
        "--count",
        "3",
    ]));
    let printed = lines(&mut subscriber);
    let first = printed.recv_timeout(PATIENCE).expect("subscriber connects");
    assert!(first.starts_with("connected id="), "{first}");

    let publisher = start(
        Command::new(example("publisher"))
            .args(["--url", &url, "--channel", "news", "--count", "3"])
            .args(["--interval-ms", "0"]),
    );
    let published = finish(publisher);
    assert!(published.status.success(), "{published:?}");
    let published = String::from_utf8_lossy(&published.stdout).into_owned();
    assert_eq!(published.lines().count(), 3, "{published}");
    assert!(
        published.starts_with("published seq=1 delivered=1"),
        "{published}"
    );

    for seq in 1..=3 {
        let line = printed.recv_timeout(PATIENCE).expect("an event line");
        let expected =
            format!("event seq={seq} channel=news data={{\"from\":\"publisher\",\"n\":{seq}}}");
        assert_eq!(line, expected);
    }
    let subscriber = finish(subscriber);
    assert!(subscriber.status.success(), "stops after --count events");
}

#[test]
fn embed_publishes_from_its_loop_and_shuts_down() {
    let embed = start(
        Command::new(example("embed"))
            .args(["--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--count", "3", "--interval-ms", "1"]),
    );
    let output = finish(embed);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("hub listening ws://127.0.0.1:"),
        "{stdout}"
    );
    for seq in 1..=3 {
        assert!(
            lines.contains(&format!("published seq={seq} delivered=1").as_str()),
            "{stdout}"
        );
    }
    assert!(
        lines.contains(&"stats: published=3 connections_total=0"),
        "{stdout}"
    );
    assert_eq!(lines.last(), Some(&"shut down"), "{stdout}");
}

#[test]
fn publisher_reports_a_hub_that_refuses_client_publishing() {
    let hub = TestHub::new().start(); // without --allow-client-publish
    let publisher = start(
        Command::new(example("publisher"))
            .args(["--url", &format!("ws://{}/ws", hub.ws), "--count", "1"])
            .stderr(Stdio::piped()),
    );
    let output = finish(publisher);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("forbidden"), "{stderr}");
    assert!(
        stderr.contains("--allow-client-publish"),
        "a hint at the fix: {stderr}"
    );
}

/// Run an example to completion with `args`, capturing both streams.
fn run(name: &str, args: &[&str]) -> Output {
    finish(start(
        Command::new(example(name))
            .args(args)
            .stderr(Stdio::piped()),
    ))
}

/// Each example's flags: `--help` prints them and exits 0 without doing
/// anything else (the subscriber used to connect and wait instead).
#[test]
fn every_example_has_a_help_that_lists_its_flags() {
    let flags: [(&str, &[&str]); 4] = [
        (
            "subscriber",
            &["--url", "--channel", "--count", "--since", "--token"],
        ),
        (
            "publisher",
            &["--url", "--channel", "--count", "--interval-ms", "--token"],
        ),
        ("embed", &["--ws", "--http", "--count", "--interval-ms"]),
        ("one_port", &["--addr", "--count", "--interval-ms"]),
    ];
    for (name, flags) in flags {
        for help in ["--help", "-h"] {
            // After other flags too: --help wins wherever it is.
            let output = run(name, &["--count", "1", help]);
            assert_eq!(output.status.code(), Some(0), "{name} {help}: {output:?}");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(stdout.starts_with(&format!("{name}: ")), "{stdout}");
            assert!(stdout.contains(&format!("Usage: {name}")), "{stdout}");
            for flag in flags {
                assert!(
                    stdout.contains(flag),
                    "{name} --help lacks {flag}: {stdout}"
                );
            }
            assert!(output.stderr.is_empty(), "{output:?}");
        }
    }
}

/// Mistakes on the command line are errors, exit 2, with one hint, before
/// anything connects or binds: no hub runs here, so an example that went
/// on would fail differently (exit 1) or wait.
#[test]
fn examples_refuse_unknown_flags_and_bad_values_with_exit_2() {
    let cases: [(&str, &[&str], &str); 9] = [
        (
            "subscriber",
            &["--chanel", "x"],
            "unknown flag `--chanel` (did you mean `--channel`?)",
        ),
        (
            "subscriber",
            &["--count", "three"],
            "`--count` needs a number, got `three`",
        ),
        ("subscriber", &["--url"], "`--url` needs a value"),
        ("subscriber", &["news"], "unexpected argument `news`"),
        (
            "publisher",
            &["--interval", "5"],
            "did you mean `--interval-ms`?",
        ),
        (
            "publisher",
            &["--channel", "a", "--channel", "b"],
            "`--channel` is given more than once",
        ),
        ("embed", &["--bogus", "1"], "unknown flag `--bogus`"),
        (
            "embed",
            &["--count=-1"],
            "`--count` needs a number, got `-1`",
        ),
        (
            "one_port",
            &["--adr", "127.0.0.1:0"],
            "did you mean `--addr`?",
        ),
    ];
    for (name, args, needle) in cases {
        let output = run(name, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name} {args:?}: {stderr}");
        assert!(stderr.contains(needle), "{name} {args:?}: {stderr}");
        let hints = stderr.matches("did you mean").count() + stderr.matches("--help").count();
        assert!(hints <= 1, "one hint at most: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{name} {args:?} went on: {output:?}"
        );
    }
}

/// `embed` on a port that is taken says which listener, which address and
/// the OS's reason, and exits 1.
#[test]
fn embed_reports_a_bind_error_with_its_cause() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = held.local_addr().unwrap().to_string();
    let output = run(
        "embed",
        &["--ws", &address, "--http", "127.0.0.1:0", "--count", "1"],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot bind the websocket listener to {address}: "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Address already in use"), "{stderr}");
}

#[test]
fn one_port_serves_the_page_and_the_hub_on_one_port() {
    let mut one_port = start(
        Command::new(example("one_port"))
            .args(["--addr", "127.0.0.1:0"])
            .args(["--count", "3", "--interval-ms", "10"]),
    );
    let printed = lines(&mut one_port);
    let first = printed.recv_timeout(PATIENCE).expect("a listening line");
    let addr: std::net::SocketAddr = first
        .strip_prefix("listening http://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));

    // The application's page, from tiny_http, on the port...
    let page = http_get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("/live?channels=ticks"),
        "{}",
        page.text()
    );
    assert_eq!(http_get(addr, "/nothing").status, 404);
    // ...and the hub's WebSocket on the same one.
    let mut client = Client::connect(addr, "/live?channels=ticks").expect("upgrade");
    assert_eq!(client.recv_json()["type"], "welcome");
    client.recv_until("subscribed");
    // Ticks count once they reach a client: these three are ours.
    for n in 0..3 {
        let event = client.recv_event();
        assert_eq!(event["channel"], "ticks");
        let line = printed.recv_timeout(PATIENCE).expect("a tick line");
        assert_eq!(
            line,
            format!("tick seq={} delivered=1", event["seq"]),
            "tick {n}"
        );
    }
    client.recv_until("shutdown");
    assert_eq!(client.recv_close(), Some(1001));
    let output = finish(one_port);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(printed.recv_timeout(PATIENCE).as_deref(), Ok("shut down"));
}
