//! A real `redis-server` per test: started on a free loopback port with no
//! persistence (unless a test asks for it), ready once its log says so and
//! it answers PING, stopped with SIGTERM when the test ends. Each test also
//! takes its own key prefix, so tests run in parallel with everything else.
//!
//! Where `redis-server` is not installed, [`RedisServer::start`] prints a
//! loud SKIP and returns `None`; under `CI=true` it panics instead, so CI
//! cannot pass without running these tests.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long redis-server may take to start or stop.
const STARTUP: Duration = Duration::from_secs(10);

/// The redis-server binary, if installed.
fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        test
    )
}

/// A running redis-server owned by one test.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// Data directory when persistence is on (removed on drop).
    dir: Option<PathBuf>,
    extra: Vec<String>,
}

impl RedisServer {
    /// Start a redis-server without persistence, or `None` (after a loud
    /// SKIP) if it is not installed. Panics under `CI=true` instead.
    pub fn start(test: &str) -> Option<RedisServer> {
        Self::start_with(test, false)
    }

    /// As [`start`](Self::start), with an append-only file fsynced on every
    /// write, so a restart keeps every acknowledged publish.
    pub fn start_persistent(test: &str) -> Option<RedisServer> {
        Self::start_with(test, true)
    }

    /// True if redis-server is installed; else a loud SKIP (a panic
    /// under `CI=true`).
    fn installed(test: &str) -> bool {
        if binary().is_some() {
            return true;
        }
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "redis-server is not installed, and CI=true: {test} must run (.ci/run installs it)"
        );
        eprintln!(
            "\n*** SKIP {test}: redis-server is not installed \
             (apt-get install redis-server); this cluster test did NOT run ***\n"
        );
        false
    }

    fn start_with(test: &str, persistent: bool) -> Option<RedisServer> {
        if !Self::installed(test) {
            return None;
        }
        let mut extra = vec!["--save".to_string(), String::new()];
        let dir = if persistent {
            let dir = std::env::temp_dir().join(unique_prefix(test));
            std::fs::create_dir_all(&dir).expect("create a data directory");
            extra.extend(
                [
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--dir",
                    dir.to_str().expect("a UTF-8 temp dir"),
                ]
                .map(String::from),
            );
            Some(dir)
        } else {
            extra.extend(["--appendonly", "no"].map(String::from));
            None
        };
        // A port that was free a moment ago may be taken by the time the
        // server binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                child: None,
                port,
                dir: dir.clone(),
                extra: extra.clone(),
            };
            if server.launch() {
                return Some(server);
            }
        }
        panic!("redis-server did not start on any of 5 ports");
    }

    /// Start the process on `self.port`; true once it is ready.
    fn launch(&mut self) -> bool {
        let mut child = Command::new(binary().expect("checked"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let ready = ready_rx.recv_timeout(STARTUP).is_ok();
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        self.child = Some(child);
        assert_eq!(
            self.command(&["PING"]),
            "+PONG",
            "redis-server answers PING"
        );
        true
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stop the server gracefully (SIGTERM) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let (exited_tx, exited_rx) = mpsc::channel();
            thread::spawn(move || {
                let _ = child.wait();
                let _ = exited_tx.send(());
            });
            if exited_rx.recv_timeout(STARTUP).is_err() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                let _ = exited_rx.recv_timeout(STARTUP);
            }
        }
    }

    /// Start it again on the same port (with its data, if persistent).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        // The port was just released; another process could grab it in
        // between, but only a test on this machine would.
        assert!(self.launch(), "redis-server restarts on port {}", self.port);
    }

    /// Send one command and return the first line of the raw RESP answer
    /// (`+OK`, `:3`, `$5`, ...). Enough for test set-up and checks.
    pub fn command(&self, args: &[&str]) -> String {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        tcp.set_read_timeout(Some(STARTUP)).unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        tcp.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n") {
            if tcp.read(&mut byte).unwrap_or(0) == 0 {
                break;
            }
            answer.push(byte[0]);
        }
        String::from_utf8_lossy(&answer).trim_end().to_string()
    }

    /// The data directory (persistent servers only).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().unwrap().port()
}

/// A `pumphub` process in cluster mode, started on port 0 and followed
/// through its log lines (stderr), which the tests wait on.
pub struct NodeProcess {
    child: Child,
    lines_rx: crossbeam_channel::Receiver<String>,
    /// Every stderr line read so far.
    pub lines: Vec<String>,
    /// Lines before this index were matched (or passed over) by a wait.
    consumed: usize,
    pub ws: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
    exited: bool,
}

impl NodeProcess {
    /// Start `pumphub --ws 127.0.0.1:0 --http 127.0.0.1:0 ARGS` and wait
    /// for its `listening` line (it does not wait for Redis).
    pub fn start(args: &[&str]) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pumphub"))
            .args(["--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("PUMPHUB_TOKEN")
            .env_remove("PUMPHUB_PUBLISH_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pumphub");
        let lines_rx = crate::support::forward_lines(child.stderr.take().expect("piped stderr"));
        let mut node = NodeProcess {
            child,
            lines_rx,
            lines: Vec::new(),
            consumed: 0,
            ws: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            exited: false,
        };
        let line = node.wait_for_line("the listening line", |l| l.contains("listening"));
        let after = |marker: &str| {
            line.split(marker)
                .nth(1)
                .unwrap_or_else(|| panic!("{line}"))
        };
        node.ws = after("ws://").split("/ws").next().unwrap().parse().unwrap();
        node.http = after("http://").trim().parse().unwrap();
        // The engine logs from its own threads, so its first lines may come
        // before `listening`: later waits look at those too.
        node.consumed = 0;
        node
    }

    /// A node of the hub `prefix` on `redis`, with client publishing on,
    /// started and joined to the shared log.
    pub fn joined(redis: &RedisServer, prefix: &str, extra: &[&str]) -> NodeProcess {
        let url = redis.url();
        let mut args = vec![
            "--redis",
            &url,
            "--redis-prefix",
            prefix,
            "--allow-client-publish",
        ];
        args.extend_from_slice(extra);
        let mut node = NodeProcess::start(&args);
        node.wait_for_line("the joined line", |l| l.contains("joined epoch"));
        node
    }

    /// The next line, after the last one a wait matched, that satisfies
    /// `matches` (reading stderr until it comes); returns it.
    pub fn wait_for_line(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        while self.consumed < self.lines.len() {
            self.consumed += 1;
            if matches(&self.lines[self.consumed - 1]) {
                return self.lines[self.consumed - 1].clone();
            }
        }
        let deadline = std::time::Instant::now() + crate::support::PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines_rx.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    self.consumed = self.lines.len();
                    if matches(&line) {
                        return line;
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    panic!("no {what}; stderr so far: {:#?}", self.lines)
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    panic!("pumphub exited before {what}; stderr: {:#?}", self.lines)
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (`TERM`, `KILL`, `STOP`, `CONT`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGTERM, and wait for the exit; returns whether it exited 0.
    pub fn stop(mut self) -> bool {
        self.signal("TERM");
        self.wait_exit()
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(mut self) {
        self.signal("KILL");
        self.wait_exit();
    }

    fn wait_exit(&mut self) -> bool {
        // stderr closes when the process ends.
        while let Ok(line) = self.lines_rx.recv_timeout(STARTUP) {
            self.lines.push(line);
        }
        self.exited = true;
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run the binary to completion with `args`; (exit code, stderr).
pub fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pumphub"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run pumphub");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl RedisServer {
    /// Start a redis-server on `port` (which the test picked, e.g. for a
    /// node that was started first), without persistence.
    pub fn start_on(test: &str, port: u16) -> Option<RedisServer> {
        if !Self::installed(test) {
            return None;
        }
        let mut server = RedisServer {
            child: None,
            port,
            dir: None,
            extra: ["--save", "", "--appendonly", "no"]
                .map(String::from)
                .to_vec(),
        };
        assert!(server.launch(), "redis-server starts on port {port}");
        Some(server)
    }

    /// A port nothing listens on now.
    pub fn unused_port() -> u16 {
        free_port()
    }
}
