//! The `pumphub` binary as an operator meets it: `--help`, `--version`,
//! `--check-config`, exit codes (0 / 1 / 2), the `listening` line, SIGTERM
//! and SIGINT, the log lines, `RUST_LOG` against `--log-level`, `--stdin`.
//!
//! Each test runs the real binary (`CARGO_BIN_EXE_pumphub`) on port 0 and
//! waits on its output: a reader thread forwards stderr line by line, and
//! every wait is a `recv_timeout`. A process that outlives its test is
//! stopped by the harness's `Drop` with SIGTERM, as an operator would, so
//! it removes its socket directory (SIGKILL only if it does not exit).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::Instant;

use serde_json::json;

use crate::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_pumphub");

/// A command for the binary with a clean environment for the variables
/// it reads, so the developer's own `RUST_LOG` or `PUMPHUB_*` cannot change
/// a test, and whether the tests run under systemd does not either. Log
/// lines carry no timestamp (`PUMPHUB_LOG_TIMESTAMPS=off`) unless a test
/// says otherwise, so they can be matched from their start.
fn pumphub(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PUMPHUB_") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("INVOCATION_ID")
        .env("PUMPHUB_LOG_TIMESTAMPS", "off");
    command
}

/// What a run to completion left behind.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Run the binary to completion; it must exit within `PATIENCE`.
fn run(args: &[&str]) -> Finished {
    let child = pumphub(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pumphub");
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    match done_rx.recv_timeout(PATIENCE) {
        Ok(output) => {
            let output = output.expect("collect output");
            Finished {
                status: output.status,
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        }
        Err(_) => {
            send_signal(pid, "KILL");
            panic!("pumphub {args:?} did not exit within {PATIENCE:?}");
        }
    }
}

/// A running hub process started on port 0.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines_rx: Receiver<String>,
    /// Every stderr line read so far.
    lines: Vec<String>,
    ws: SocketAddr,
    http: SocketAddr,
    exited: bool,
}

impl Running {
    /// Start `pumphub --ws 127.0.0.1:0 --http 127.0.0.1:0 ARGS` with `env`
    /// and wait for its `listening` line.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut all = vec!["--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut command = pumphub(&all);
        command.envs(env.iter().copied());
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pumphub");
        let lines_rx = forward_lines(child.stderr.take().unwrap());
        let mut running = Running {
            stdin: child.stdin.take(),
            child,
            lines_rx,
            lines: Vec::new(),
            ws: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            exited: false,
        };
        let line = running.wait_for_line("the listening line", |l| l.contains("listening"));
        (running.ws, running.http) = listening_addresses(&line);
        running
    }

    /// Read stderr until a line satisfies `matches`; returns it.
    fn wait_for_line(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines_rx.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {what} within {PATIENCE:?}; stderr so far: {:#?}",
                        self.lines
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("pumphub exited before {what}; stderr: {:#?}", self.lines)
                }
            }
        }
    }

    fn signal(&self, signal: &str) {
        send_signal(self.child.id(), signal);
    }

    /// Wait for the process to exit (stderr closes first); returns its
    /// status and every stderr line.
    fn wait_exit(&mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines_rx.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("pumphub did not exit; stderr: {:#?}", self.lines)
                }
            }
        }
        let status = self.child.wait().expect("wait for pumphub");
        self.exited = true;
        (status, self.lines.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.exited {
            return;
        }
        // SIGTERM first: a hub killed with SIGKILL leaves its socket
        // directory in the temporary directory.
        stop_child(&mut self.child);
    }
}

/// The two addresses of `pumphub 0.1.0 listening: websocket
/// ws://127.0.0.1:P/ws, http http://127.0.0.1:Q`.
fn listening_addresses(line: &str) -> (SocketAddr, SocketAddr) {
    let after = |marker: &str| {
        line.split(marker)
            .nth(1)
            .unwrap_or_else(|| panic!("{line}"))
    };
    // Up to the first character that is no part of an address: the line
    // may be a JSON object (`--log-format json`).
    let address = |rest: &str| -> SocketAddr {
        let end = rest
            .find(|c: char| !(c.is_ascii_hexdigit() || ".:[]".contains(c)))
            .unwrap_or(rest.len());
        rest[..end]
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    (address(after("ws://")), address(after("http://")))
}

/// A file under the temp dir, unique to this process and call, removed on
/// drop, so tests can run in parallel.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("pumphub-cli-{}-{n}.toml", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A port held by the test, so the binary cannot bind it.
fn held_port() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

// ----- --help, --version, --check-config, exit codes -----------------------

/// `--help` prints usage and every flag grouped by purpose with its default,
/// on stdout, and exits 0; `-h` is the same.
#[test]
fn help_groups_flags_with_their_defaults() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert_eq!(help.stderr, "");
    for needle in [
        "Usage:",
        "pumphub --check-config FILE",
        "\nListeners:\n",
        "\nLimits:\n",
        "\nHeartbeat:\n",
        "\nDelivery & history:\n",
        "\nSecurity:\n",
        "\nOperations:\n",
        "--ws ADDR",
        "[127.0.0.1:9001]",
        "--max-connections N",
        "[10000]",
        "--log-level LEVEL",
        "PUMPHUB_TOKEN",
    ] {
        assert!(
            help.stdout.contains(needle),
            "{needle:?} not in:\n{}",
            help.stdout
        );
    }
    assert_eq!(run(&["-h"]).stdout, help.stdout);
}

/// `--version` and `-V` print `pumphub <crate version>` and exit 0.
#[test]
fn version_prints_the_crate_version() {
    for flag in ["--version", "-V"] {
        let version = run(&[flag]);
        assert!(version.status.success());
        assert_eq!(
            version.stdout,
            format!("pumphub {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// `--check-config` on a good file exits 0 and binds nothing: the file
/// names a port the test holds.
#[test]
fn check_config_accepts_a_good_file_without_binding() {
    let (_held, address) = held_port();
    let file = TempFile::new(&format!(
        "ws = \"{address}\"\nqueue-size = 8\nallowed-origin = [\"https://a.example\"]\n"
    ));
    let checked = run(&["--check-config", file.path()]);
    assert!(checked.status.success(), "{}", checked.stderr);
    assert_eq!(checked.stdout, format!("{}: ok\n", file.path()));
}

/// A bad config file exits 2, and the message names the file and the key.
#[test]
fn check_config_rejects_bad_files_with_exit_2_naming_the_key() {
    let cases = [
        ("bogus-key = 1\n", vec!["unknown key `bogus-key`"]),
        (
            "max_connections = 5\n",
            vec!["did you mean `max-connections`"],
        ),
        ("queue-size = 0\n", vec!["`queue-size`", "out of range"]),
        (
            "ping-interval-ms = \"fast\"\n",
            vec!["`ping-interval-ms`", "must be an integer"],
        ),
        (
            "log-level = \"loud\"\n",
            vec!["`log-level`", "expected one of"],
        ),
        ("ws = \"nowhere\"\n", vec!["`ws`", "HOST:PORT"]),
        ("queue-size = \n", vec!["not valid TOML", "line 1"]),
    ];
    for (contents, needles) in cases {
        let file = TempFile::new(contents);
        let checked = run(&["--check-config", file.path()]);
        assert_eq!(
            checked.status.code(),
            Some(2),
            "{contents:?}: {}",
            checked.stderr
        );
        assert_eq!(checked.stdout, "");
        assert!(
            checked.stderr.starts_with("pumphub: "),
            "{}",
            checked.stderr
        );
        assert!(checked.stderr.contains(file.path()), "{}", checked.stderr);
        for needle in needles {
            assert!(
                checked.stderr.contains(needle),
                "{needle:?} not in {}",
                checked.stderr
            );
        }
    }
    let missing = run(&["--check-config", "/nonexistent/pumphub.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    // The OS's reason is on the same line, not only in a `source()`.
    assert!(
        missing.stderr.contains(
            "cannot read config file /nonexistent/pumphub.toml: No such file or directory"
        ),
        "{}",
        missing.stderr
    );
}

/// The example config shipped in deploy/ is valid and mentions every
/// setting `--help` lists, so the operations guide cannot drift from the
/// binary.
#[test]
fn the_shipped_example_config_is_valid_and_names_every_setting() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/pumphub.toml");
    let checked = run(&["--check-config", example]);
    assert!(checked.status.success(), "{}", checked.stderr);
    let text = std::fs::read_to_string(example).unwrap();
    let help = run(&["--help"]).stdout;
    let flags = help
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .map(|rest| rest.split_whitespace().next().unwrap());
    for flag in flags.filter(|f| !["config", "check-config", "version"].contains(f)) {
        let set = text.lines().any(|line| {
            let line = line.trim_start_matches(['#', ' ']);
            line.starts_with(&format!("{flag} ="))
        });
        assert!(set, "deploy/pumphub.toml does not mention `{flag}`");
    }
}

/// A bad flag or value exits 2 before anything is bound: the test holds the
/// port the command line names, and a bind attempt would have exited 1.
#[test]
fn a_bad_flag_exits_2_before_binding() {
    let (_held, address) = held_port();
    let cases = [
        (vec!["--bogus"], "unknown flag `--bogus`"),
        (vec!["--queue-size", "0"], "--queue-size is out of range"),
        (vec!["--log-level", "loud"], "--log-level"),
        (
            vec!["--allowed-origin", "https://a.example/"],
            "--allowed-origin",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["--ws", address.as_str(), "--http", "127.0.0.1:0"];
        args.extend(extra);
        let failed = run(&args);
        assert_eq!(failed.status.code(), Some(2), "{args:?}: {}", failed.stderr);
        assert!(
            failed.stderr.contains(needle),
            "{needle:?} not in {}",
            failed.stderr
        );
        // Exactly one hint, on the line after the message.
        assert_eq!(
            failed.stderr.matches("--help").count(),
            1,
            "{}",
            failed.stderr
        );
        assert!(
            failed
                .stderr
                .contains("run `pumphub --help` for the list of options"),
            "{}",
            failed.stderr
        );
        assert!(!failed.stderr.contains("listening"), "{}", failed.stderr);
    }
    // A misspelling gets its correction as the one hint.
    let misspelt = run(&["--max_connections", "5"]);
    assert_eq!(misspelt.status.code(), Some(2));
    assert_eq!(
        misspelt.stderr,
        "pumphub: unknown flag `--max_connections` (did you mean `--max-connections`?)\n"
    );
}

/// A listener that cannot be bound is a runtime failure: exit 1, with a
/// message naming the listener, the address and the OS's reason.
#[test]
fn a_port_in_use_exits_1_with_a_clear_message() {
    let (_held, address) = held_port();
    let ws_busy = run(&["--ws", &address, "--http", "127.0.0.1:0"]);
    assert_eq!(ws_busy.status.code(), Some(1), "{}", ws_busy.stderr);
    let expected = format!("cannot bind the websocket listener to {address}");
    assert!(ws_busy.stderr.contains(&expected), "{}", ws_busy.stderr);
    assert!(ws_busy.stderr.contains("in use"), "{}", ws_busy.stderr);
    assert!(!ws_busy.stderr.contains("listening"));

    let http_busy = run(&["--ws", "127.0.0.1:0", "--http", &address]);
    assert_eq!(http_busy.status.code(), Some(1), "{}", http_busy.stderr);
    let expected = format!("cannot bind the http listener to {address}");
    assert!(http_busy.stderr.contains(&expected), "{}", http_busy.stderr);
}

// ----- a running process ---------------------------------------------------

/// SIGTERM and SIGINT each shut the hub down gracefully: the client gets
/// `shutdown` then Close 1001, and the process exits 0. At `--log-level
/// error` the `listening` line, naming both addresses, is all it prints.
#[test]
fn sigterm_and_sigint_shut_down_gracefully_with_exit_0() {
    for signal in ["TERM", "INT"] {
        let mut hub = Running::start(&["--log-level", "error"], &[]);
        assert_eq!(http_get(hub.http, "/health").status, 200);
        let mut client = Client::connect(hub.ws, "/ws").unwrap();
        assert_eq!(client.recv_json()["type"], "welcome");

        hub.signal(signal);
        let (frame, _) = client.recv_until("shutdown");
        assert_eq!(frame["reason"], "server shutting down");
        assert_eq!(client.recv_close(), Some(1001));
        let _ = client.socket.flush(); // send our answer to the Close

        let (status, lines) = hub.wait_exit();
        assert_eq!(status.code(), Some(0), "SIG{signal}: {lines:#?}");
        assert_eq!(
            lines.len(),
            1,
            "only the listening line at error: {lines:#?}"
        );
        assert!(lines[0].starts_with(&format!("pumphub {} listening", env!("CARGO_PKG_VERSION"))));
    }
}

/// At the default level: one line per connection open and close, with id,
/// address, user agent, who closed, duration and frames in/out; a throttled
/// warning for refused handshakes; nothing per event.
#[test]
fn logs_one_line_per_connection_and_none_per_event() {
    let mut hub = Running::start(&[], &[]);
    let agent = [("User-Agent", "cli-test/2")];
    let mut client = Client::connect_with(hub.ws, "/ws", &agent).unwrap();
    let id = client.recv_json()["connection_id"]
        .as_str()
        .unwrap()
        .to_string();
    let peer = match client.socket.get_ref() {
        tungstenite::stream::MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap(),
        _ => unreachable!(),
    };
    client.subscribe(&["ticker"], None);
    for n in 0..20 {
        let body = json!({"channel": "ticker", "data": n}).to_string();
        assert_eq!(
            http(hub.http, "POST", "/publish", &[], body.as_bytes()).status,
            200
        );
    }
    for _ in 0..20 {
        client.recv_event();
    }
    client.send_text("{oops");
    assert_eq!(client.recv_json()["code"], "bad_json");
    client.close();
    assert_eq!(client.recv_close(), Some(1000));

    let opened = hub.wait_for_line("the open line", |l| l.contains(&format!("{id} opened")));
    assert!(opened.starts_with("INFO"), "{opened}");
    assert!(opened.contains(&format!("from {peer}")), "{opened}");
    assert!(opened.contains("cli-test/2"), "{opened}");
    let closed = hub.wait_for_line("the close line", |l| l.contains(&format!("{id} closed")));
    assert!(closed.starts_with("INFO"), "{closed}");
    assert!(
        closed.contains(&format!("from {peer}: closed by peer (1000 bye)")),
        "{closed}"
    );
    assert!(closed.contains("; after "), "{closed}");
    // In: subscribe, bad JSON, Close. Out: welcome, subscribed, 20 events, error.
    assert!(closed.ends_with("s, 3 frames in, 23 out"), "{closed}");

    for _ in 0..3 {
        assert!(Client::connect(hub.ws, "/nope").is_err());
    }
    let warning = hub.wait_for_line("a refusal warning", |l| l.contains("refused"));
    assert!(warning.starts_with("WARN"), "{warning}");
    assert!(warning.contains("HTTP 404 (not_found)"), "{warning}");

    hub.signal("TERM");
    let (status, lines) = hub.wait_exit();
    assert_eq!(status.code(), Some(0));
    let refusals = lines.iter().filter(|l| l.contains("refused")).count();
    assert_eq!(refusals, 1, "three refusals, one warning: {lines:#?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("ticker") || l.contains("seq")),
        "an event was logged: {lines:#?}"
    );
    assert!(lines.len() < 20, "more lines than events: {lines:#?}");
}

/// `PUMPHUB_TOKEN_SECRET` reaches the binary; a refused signed token gets
/// a warning that says why, an accepted one's `sub` is in the open line,
/// and the secret is printed nowhere.
#[test]
fn signed_tokens_from_the_environment_and_why_one_was_refused() {
    let secret = "cli-test-secret-0123456789abcdef0123456789";
    let mut hub = Running::start(&[], &[("PUMPHUB_TOKEN_SECRET", secret)]);
    let claims = json!({"sub": "cli-user", "channels": ["news"]});
    let forged = crate::signed_tokens::token_signed_with(
        "somebody-elses-secret-0123456789abcdef012",
        claims.clone(),
    );
    let refused = Client::connect(hub.ws, &format!("/ws?token={forged}"));
    assert_eq!(crate::auth::refused_status(refused), 401);
    let warning = hub.wait_for_line("the refusal", |l| l.contains("refused"));
    assert!(warning.starts_with("WARN"), "{warning}");
    assert!(
        warning.contains("HTTP 401 (token refused: bad_signature: the signature matches none"),
        "{warning}"
    );

    let good = crate::signed_tokens::token_signed_with(secret, claims);
    let mut client = Client::connect(hub.ws, &format!("/ws?token={good}")).unwrap();
    let id = client.recv_json()["connection_id"]
        .as_str()
        .unwrap()
        .to_string();
    let opened = hub.wait_for_line("the open line", |l| l.contains(&format!("{id} opened")));
    assert!(opened.contains(r#"sub "cli-user""#), "{opened}");

    hub.signal("TERM");
    let (status, lines) = hub.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(secret) || l.contains(&good)),
        "a secret or a token was logged: {lines:#?}"
    );
}

/// `--log-level` beats `RUST_LOG`; `RUST_LOG` alone sets the level; a
/// per-module directive is ignored with a warning.
#[test]
fn log_level_flag_beats_rust_log() {
    let debug = [("RUST_LOG", "debug")];

    let mut quiet = Running::start(&["--log-level", "warn"], &debug);
    assert_eq!(http_get(quiet.http, "/health").status, 200);
    quiet.signal("TERM");
    let (status, lines) = quiet.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(
        lines
            .iter()
            .all(|l| !l.starts_with("INFO") && !l.starts_with("DEBUG")),
        "{lines:#?}"
    );

    let mut chatty = Running::start(&[], &debug);
    assert_eq!(http_get(chatty.http, "/health").status, 200);
    chatty.wait_for_line("a debug line", |l| {
        l.starts_with("DEBUG") && l.contains("/health")
    });
    chatty.signal("TERM");
    assert_eq!(chatty.wait_exit().0.code(), Some(0));

    // Logged at start-up, before the listening line.
    let mut directive = Running::start(&[], &[("RUST_LOG", "pumphub=debug")]);
    assert!(
        directive
            .lines
            .iter()
            .any(|l| l.starts_with("WARN") && l.contains("ignoring RUST_LOG=\"pumphub=debug\"")),
        "{:#?}",
        directive.lines
    );
    assert_eq!(http_get(directive.http, "/health").status, 200);
    directive.signal("TERM");
    let (status, lines) = directive.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(
        lines.iter().any(|l| l.starts_with("INFO")),
        "still info: {lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("DEBUG")), "{lines:#?}");
}

/// `--stdin CHANNEL`: a JSON line becomes that value, other text a string,
/// empty lines are skipped, a trailing `\r` is stripped; at EOF the hub logs
/// it and keeps serving.
#[test]
fn stdin_lines_become_events_and_the_hub_outlives_eof() {
    let mut hub = Running::start(&["--stdin", "feed"], &[]);
    let mut client = Client::connect(hub.ws, "/ws").unwrap();
    client.recv_json(); // welcome
    client.subscribe(&["feed"], None);

    let mut stdin = hub.stdin.take().unwrap();
    stdin
        .write_all(b"{\"a\":1}\nplain text\n\nwith cr\r\n42\n\r\n")
        .unwrap();
    stdin.flush().unwrap();
    let expected = [
        json!({"a": 1}),
        json!("plain text"),
        json!("with cr"),
        json!(42),
    ];
    for (n, data) in expected.iter().enumerate() {
        let event = client.recv_event();
        assert_eq!(event["channel"], "feed");
        assert_eq!(event["seq"], n as u64 + 1);
        assert_eq!(&event["data"], data);
    }

    drop(stdin); // EOF
    hub.wait_for_line("the end-of-input line", |l| {
        l.contains("stdin: end of input after 4 events")
    });
    let body = json!({"channel": "feed", "data": "after eof"}).to_string();
    assert_eq!(
        http(hub.http, "POST", "/publish", &[], body.as_bytes()).status,
        200
    );
    let event = client.recv_event();
    assert_eq!(
        (event["seq"].as_u64(), &event["data"]),
        (Some(5), &json!("after eof"))
    );

    hub.signal("TERM");
    assert_eq!(hub.wait_exit().0.code(), Some(0));
}

/// The request that used to abort the process (tiny_http allocating a
/// declared terabyte to drain an unread body): the binary answers 413,
/// `/health` still answers, and the process is still running.
#[test]
fn an_absurd_content_length_does_not_kill_the_binary() {
    let mut hub = Running::start(&["--publish-key", "k"], &[]);
    for path in ["/publish", "/status", "/nope"] {
        let mut tcp = TcpStream::connect(hub.http).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n");
        tcp.write_all(head.as_bytes()).unwrap();
        let _ = tcp.write_all(&[b'x'; 4096]);
        assert_eq!(read_http_response(&mut tcp).status, 413, "{path}");
    }
    assert_eq!(http_get(hub.http, "/health").status, 200);
    assert!(hub.child.try_wait().unwrap().is_none(), "pumphub exited");
    // A graceful exit, which also removes tiny_http's private socket.
    hub.signal("TERM");
    assert_eq!(hub.wait_exit().0.code(), Some(0));
}

/// The default `--max-connections` fits the machine, so a plain start warns
/// about nothing; asking for more than fits is warned about once, naming
/// the limit to raise.
#[test]
fn max_connections_defaults_to_what_fits_and_warns_only_when_asked_for_more() {
    let mut plain = Running::start(&[], &[]);
    plain.signal("TERM");
    let (status, lines) = plain.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(
        !lines.iter().any(|l| l.contains("WARN")),
        "a warning on a plain start: {lines:#?}"
    );

    let mut greedy = Running::start(&["--max-connections", "100000000"], &[]);
    let warnings: Vec<&String> = greedy.lines.iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{:#?}", greedy.lines);
    assert!(
        warnings[0].contains("max-connections 100000000 is more than this machine can hold"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("vm.max_map_count") || warnings[0].contains("open-files limit"),
        "{}",
        warnings[0]
    );
    greedy.signal("TERM");
    assert_eq!(greedy.wait_exit().0.code(), Some(0));
}

/// Is `text` an RFC 3339 UTC timestamp with milliseconds,
/// `2026-12-07T22:48:39.123Z`?
fn is_utc_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.clone().all(|i| bytes[i].is_ascii_digit());
    bytes.len() == 24
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
        && bytes[19] == b'.'
        && digits(20..23)
        && bytes[23] == b'Z'
}

/// Log lines start with a UTC timestamp when not under systemd, and with
/// the level under it (the journal stamps lines itself); `--log-timestamps`
/// says so explicitly either way.
#[test]
fn log_lines_carry_timestamps_unless_under_systemd() {
    let auto = [("PUMPHUB_LOG_TIMESTAMPS", "auto")];
    let mut plain = Running::start(&[], &auto);
    let listening = plain.lines.last().unwrap().clone();
    let (stamp, rest) = listening.split_once(' ').unwrap();
    assert!(is_utc_timestamp(stamp), "{listening}");
    assert!(rest.starts_with("pumphub "), "{listening}");
    plain.signal("TERM");
    let (status, lines) = plain.wait_exit();
    assert_eq!(status.code(), Some(0));
    let info = lines
        .iter()
        .find(|l| l.contains("INFO "))
        .expect("an info line");
    let (stamp, rest) = info.split_once(' ').unwrap();
    assert!(is_utc_timestamp(stamp), "{info}");
    assert!(rest.starts_with("INFO  [pumphub"), "{info}");

    for systemd in [("JOURNAL_STREAM", "8:12345"), ("INVOCATION_ID", "0123abcd")] {
        let mut unit = Running::start(&[], &[auto[0], systemd]);
        assert!(
            unit.lines.last().unwrap().starts_with("pumphub "),
            "{:#?}",
            unit.lines
        );
        unit.signal("TERM");
        let (_, lines) = unit.wait_exit();
        assert!(
            lines.iter().any(|l| l.starts_with("INFO  [pumphub")),
            "{lines:#?}"
        );
    }

    let mut forced = Running::start(
        &["--log-timestamps", "on"],
        &[("JOURNAL_STREAM", "8:12345")],
    );
    let first = forced.lines.last().unwrap().clone();
    assert!(
        is_utc_timestamp(first.split(' ').next().unwrap()),
        "{first}"
    );
    forced.signal("TERM");
    assert_eq!(forced.wait_exit().0.code(), Some(0));
}

/// `--log-format json`: every line, the `listening` one included, is one
/// JSON object with `level`, `target` and `message` (and `ts` when
/// timestamps are on).
#[test]
fn json_log_lines_are_one_object_each() {
    let mut hub = Running::start(&["--log-format", "json", "--log-timestamps", "on"], &[]);
    let mut client = Client::connect(hub.ws, "/ws").unwrap();
    client.recv_json();
    client.close();
    hub.wait_for_line("the close line", |l| l.contains(" closed from "));
    hub.signal("TERM");
    let (status, lines) = hub.wait_exit();
    assert_eq!(status.code(), Some(0));
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(is_utc_timestamp(object["ts"].as_str().unwrap()), "{line}");
        assert!(
            object["level"].is_string() && object["target"].is_string(),
            "{line}"
        );
        assert!(object["message"].is_string(), "{line}");
    }
    let listening: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(
        listening["message"].as_str().unwrap().contains("listening"),
        "{listening}"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("\"level\":\"INFO\"") && l.contains("opened from")));
}

/// Every setting can come from `PUMPHUB_<FLAG>`; flags beat it, and it beats
/// the config file (`PUMPHUB_CONFIG` names one). An unknown `PUMPHUB_`
/// variable is warned about; a bad value names its variable and exits 2.
#[test]
fn environment_settings_sit_between_flags_and_the_file() {
    let file = TempFile::new("publish-key = \"from-file\"\nmax-connections = 5\n");
    let env = [
        ("PUMPHUB_CONFIG", file.path()),
        ("PUMPHUB_PUBLISH_KEY", "from-env"),
        ("PUMPHUB_MAX_CONNECTIONS", "1"),
        ("PUMPHUB_MAX_CONECTIONS", "3"),
    ];
    let status_with = |hub: &Running, key: &str| {
        let bearer = format!("Bearer {key}");
        http(
            hub.http,
            "GET",
            "/status",
            &[("Authorization", bearer.as_str())],
            b"",
        )
        .status
    };

    let mut hub = Running::start(&[], &env);
    assert!(
        hub.lines.iter().any(|l| l.starts_with("WARN")
            && l.contains("ignoring environment variable PUMPHUB_MAX_CONECTIONS")),
        "{:#?}",
        hub.lines
    );
    assert_eq!(
        status_with(&hub, "from-env"),
        200,
        "the environment beats the file"
    );
    assert_eq!(status_with(&hub, "from-file"), 401);
    let mut first = Client::connect(hub.ws, "/ws").unwrap();
    first.recv_json();
    match Client::connect(hub.ws, "/ws") {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!(
            "PUMPHUB_MAX_CONNECTIONS=1 let a second in: {:?}",
            other.map(|_| ())
        ),
    }
    drop(first);
    hub.signal("TERM");
    assert_eq!(hub.wait_exit().0.code(), Some(0));

    let mut flagged = Running::start(&["--publish-key", "from-flag"], &env);
    assert_eq!(
        status_with(&flagged, "from-flag"),
        200,
        "the flag beats the environment"
    );
    assert_eq!(status_with(&flagged, "from-env"), 401);
    flagged.signal("TERM");
    assert_eq!(flagged.wait_exit().0.code(), Some(0));

    let bad = pumphub(&["--check-config", file.path()])
        .env("PUMPHUB_QUEUE_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("invalid value `lots` for environment variable PUMPHUB_QUEUE_SIZE"),
        "{stderr}"
    );
}

/// With `--trusted-proxy`, the open and close lines name the client the
/// proxy forwarded for, and the proxy; without it, the header is ignored.
#[test]
fn log_lines_name_the_forwarded_client_of_a_trusted_proxy() {
    let mut hub = Running::start(&["--trusted-proxy", "127.0.0.1,::1"], &[]);
    let mut client =
        Client::connect_with(hub.ws, "/ws", &[("X-Forwarded-For", "203.0.113.9")]).unwrap();
    let id = client.recv_json()["connection_id"]
        .as_str()
        .unwrap()
        .to_string();
    let opened = hub.wait_for_line("the open line", |l| l.contains(&format!("{id} opened")));
    assert!(
        opened.contains("opened from 203.0.113.9 via 127.0.0.1:"),
        "{opened}"
    );
    client.close();
    let closed = hub.wait_for_line("the close line", |l| l.contains(&format!("{id} closed")));
    assert!(
        closed.contains("closed from 203.0.113.9 via 127.0.0.1:"),
        "{closed}"
    );
    hub.signal("TERM");
    assert_eq!(hub.wait_exit().0.code(), Some(0));

    let mut untrusting = Running::start(&[], &[]);
    let mut client =
        Client::connect_with(untrusting.ws, "/ws", &[("X-Forwarded-For", "203.0.113.9")]).unwrap();
    let id = client.recv_json()["connection_id"]
        .as_str()
        .unwrap()
        .to_string();
    let opened = untrusting.wait_for_line("the open line", |l| l.contains(&format!("{id} opened")));
    assert!(opened.contains("opened from 127.0.0.1:"), "{opened}");
    assert!(!opened.contains("203.0.113.9"), "{opened}");
    untrusting.signal("TERM");
    assert_eq!(untrusting.wait_exit().0.code(), Some(0));
}

/// Issue 12, finding 7: what a hub leaves in the temporary directory. A
/// directory left by a hub killed with SIGKILL (its socket file, nobody
/// listening) is removed when the next one starts; a live hub's directory
/// is not; and a hub stopped with SIGTERM, SIGINT or SIGHUP removes its
/// own, so after them the directory is as it was.
#[test]
fn socket_directories_are_cleaned_up() {
    use std::os::unix::net::UnixListener;
    let tmp = TempDir::new("cli-cleanup");
    // What a killed hub leaves: a private directory with its socket file.
    let stale = tmp.0.join("pumphub-0123456789abcdef0123456789abcdef");
    std::fs::create_dir(&stale).unwrap();
    drop(UnixListener::bind(stale.join("http.sock")).unwrap());
    // Not a hub's: another name, left alone.
    std::fs::create_dir(tmp.0.join("pumphub-notes")).unwrap();
    let tmp_dir = tmp.0.to_str().unwrap().to_string();

    let mut live = Running::start(&[], &[("TMPDIR", &tmp_dir)]);
    assert!(!stale.exists(), "the stale directory is still there");
    assert_eq!(tmp.entries().len(), 2, "{:?}", tmp.entries());
    for signal in ["TERM", "INT", "HUP"] {
        let mut hub = Running::start(&[], &[("TMPDIR", &tmp_dir)]);
        assert_eq!(tmp.entries().len(), 3, "the live hub's directory stays");
        hub.signal(signal);
        let (status, _) = hub.wait_exit();
        assert!(status.success(), "{signal}: {status:?}");
        assert_eq!(
            tmp.entries().len(),
            2,
            "after {signal}: {:?}",
            tmp.entries()
        );
    }
    live.signal("TERM");
    assert!(live.wait_exit().0.success());
    assert_eq!(tmp.entries(), ["pumphub-notes"]);
}

/// `--ws off` binds no WebSocket listener; the `listening` line says so,
/// the HTTP port serves, and SIGTERM still ends it with 0.
#[test]
fn ws_off_binds_no_websocket_listener() {
    /// Kills the process if the test fails before it exits.
    struct Guard(Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Guard(
        pumphub(&["--ws", "off", "--http", "127.0.0.1:0"])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pumphub"),
    );
    let child = &mut child.0;
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).expect("the listening line");
    let http: SocketAddr = line
        .trim_end()
        .strip_prefix(&format!(
            "pumphub {} listening: websocket off, http http://",
            env!("CARGO_PKG_VERSION")
        ))
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap_or_else(|_| panic!("{line}"));
    assert_eq!(http_get(http, "/health").status, 200);
    send_signal(child.id(), "TERM");
    let status = child.wait().expect("wait for pumphub");
    assert_eq!(status.code(), Some(0));
}
