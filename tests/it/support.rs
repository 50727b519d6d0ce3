//! Test harness: a hub on OS-assigned ports, a WebSocket client with
//! timeouts, and a minimal HTTP client. Every helper waits on an event (a
//! frame, a reply) with a deadline; none sleeps to wait for something.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pumphub::{Authorizer, Config, Hub, HubHandle};
use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Shorthand for milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How long a helper waits for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Builds a hub for one test: ports 0, small limits where a test wants them.
pub struct TestHub {
    config: Config,
}

impl TestHub {
    pub fn new() -> Self {
        let config = Config {
            ws_addr: Some("127.0.0.1:0".into()),
            http_addr: Some("127.0.0.1:0".into()),
            http_workers: 2,
            ..Config::default()
        };
        TestHub { config }
    }
    pub fn queue_size(mut self, n: usize) -> Self {
        self.config.queue_size = n;
        self
    }
    pub fn history(mut self, n: usize) -> Self {
        self.config.history_size = n;
        self
    }
    pub fn config(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }
    pub fn start(self) -> RunningHub {
        let hub = Hub::start(self.config).expect("hub starts");
        RunningHub::around(hub)
    }
    /// Start with an application's own `Authorizer` instead of the config's.
    pub fn start_with_authorizer(self, authorizer: Arc<dyn Authorizer>) -> RunningHub {
        let hub = Hub::start_with_authorizer(self.config, authorizer).expect("hub starts");
        RunningHub::around(hub)
    }
}

impl RunningHub {
    fn around(hub: Hub) -> RunningHub {
        RunningHub {
            ws: hub.ws_addr().expect("TestHub binds a WebSocket listener"),
            http: hub.http_addr().expect("TestHub binds an HTTP listener"),
            handle: hub.handle(),
            hub: Some(hub),
        }
    }
}

/// A started hub; dropping it shuts the hub down.
pub struct RunningHub {
    pub ws: SocketAddr,
    pub http: SocketAddr,
    pub handle: HubHandle,
    hub: Option<Hub>,
}

impl RunningHub {
    /// Shut down now (graceful) and wait for every hub thread.
    pub fn shutdown(&mut self) {
        if let Some(hub) = self.hub.take() {
            hub.shutdown();
        }
    }

    /// Connect a client to `/ws` and read its `welcome`.
    pub fn client(&self) -> Client {
        self.client_at("/ws")
    }

    /// Connect to `path` (with query) and read its `welcome`.
    pub fn client_at(&self, path: &str) -> Client {
        let mut client = Client::connect(self.ws, path).expect("upgrade succeeds");
        let welcome = client.recv_json();
        assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
        client.welcome = welcome;
        client
    }

    /// A client subscribed to `channels`, its `subscribed` already read.
    pub fn subscriber(&self, channels: &[&str]) -> Client {
        let mut client = self.client();
        client.subscribe(channels, None);
        client
    }

    /// Publish over HTTP; returns the reply body.
    pub fn http_publish(&self, channel: &str, data: Value) -> Value {
        let body = json!({"channel": channel, "data": data}).to_string();
        let reply = http(self.http, "POST", "/publish", &[], body.as_bytes());
        assert_eq!(reply.status, 200, "publish failed: {}", reply.text());
        reply.json()
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A WebSocket test client with a read timeout on every receive.
pub struct Client {
    pub socket: WebSocket<MaybeTlsStream<TcpStream>>,
    pub welcome: Value,
}

/// What a receive produced when it was not a text frame.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Closed(Option<(u16, String)>),
    /// The TCP connection ended without a close frame.
    Dropped(String),
}

impl Client {
    /// Open a WebSocket to `path` on `addr`; the handshake error if refused.
    pub fn connect(addr: SocketAddr, path: &str) -> Result<Client, tungstenite::Error> {
        Self::connect_with(addr, path, &[])
    }

    /// As `connect`, with extra request headers.
    pub fn connect_with(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, tungstenite::Error> {
        use tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{addr}{path}").into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(PATIENCE))?;
        let (socket, _response) = tungstenite::client(request, MaybeTlsStream::Plain(tcp))
            .map_err(|e| match e {
                tungstenite::HandshakeError::Failure(e) => e,
                tungstenite::HandshakeError::Interrupted(_) => {
                    tungstenite::Error::Io(std::io::ErrorKind::WouldBlock.into())
                }
            })?;
        Ok(Client {
            socket,
            welcome: Value::Null,
        })
    }

    fn tcp(&self) -> &TcpStream {
        match self.socket.get_ref() {
            MaybeTlsStream::Plain(tcp) => tcp,
            _ => unreachable!("tests use plain TCP"),
        }
    }

    pub fn set_timeout(&self, timeout: Duration) {
        self.tcp().set_read_timeout(Some(timeout)).unwrap();
    }

    pub fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string());
    }

    pub fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).expect("send");
    }

    /// The next text frame, parsed; skips Ping/Pong. Panics on timeout or close.
    pub fn recv_json(&mut self) -> Value {
        match self.recv() {
            Received::Json(value) => value,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text frame or the end of the connection.
    pub fn recv(&mut self) -> Received {
        loop {
            match self.socket.read() {
                Ok(Message::Text(text)) => {
                    return Received::Json(serde_json::from_str(&text).expect("server sends JSON"))
                }
                Ok(Message::Close(frame)) => {
                    return Received::Closed(
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                    )
                }
                Ok(Message::Binary(_)) => panic!("server sent a binary frame"),
                Ok(_) => continue,
                // See `interrupted`: read again.
                Err(tungstenite::Error::Io(e)) if interrupted(&e) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("timed out waiting for a frame")
                }
                Err(e) => return Received::Dropped(e.to_string()),
            }
        }
    }

    /// Read frames until one of `kind` arrives; returns it and what came before.
    pub fn recv_until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let frame = self.recv_json();
            if frame["type"] == kind {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    /// Read until the server closes; returns the close code (None = dropped).
    pub fn recv_close(&mut self) -> Option<u16> {
        loop {
            match self.recv() {
                Received::Json(_) => continue,
                Received::Closed(frame) => return frame.map(|(code, _)| code),
                Received::Dropped(_) => return None,
            }
        }
    }

    /// Subscribe and read `subscribed`; returns it and the replayed events.
    pub fn subscribe(&mut self, channels: &[&str], since: Option<u64>) -> (Value, Vec<Value>) {
        let mut request = json!({"type": "subscribe", "channels": channels});
        if let Some(since) = since {
            request["since"] = json!(since);
        }
        self.send_json(request);
        self.recv_until("subscribed")
    }

    /// Send `ping` and read up to its `pong`. The write pump handles our
    /// requests in order and counts each batch of frames before writing
    /// it, so once the `pong` is here, every frame before it is counted in
    /// `/status` and `/metrics`.
    pub fn sync(&mut self) {
        self.send_json(json!({"type": "ping", "id": "sync"}));
        self.recv_until("pong");
    }

    /// The next `event` frame.
    pub fn recv_event(&mut self) -> Value {
        let frame = self.recv_json();
        assert_eq!(frame["type"], "event", "expected an event: {frame}");
        frame
    }

    /// Start a clean close from our side.
    pub fn close(&mut self) {
        let _ = self.socket.close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }));
        let _ = self.socket.flush();
    }

    pub fn connection_id(&self) -> String {
        self.welcome["connection_id"].as_str().unwrap().to_string()
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`; reads the whole answer.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut tcp = TcpStream::connect(addr).expect("connect to HTTP");
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    tcp.write_all(body).unwrap();
    read_http_response(&mut tcp)
}

/// True for a read that a stop signal interrupted: on Linux, a socket read
/// with a timeout (`SO_RCVTIMEO`) fails with EINTR after the process was
/// stopped and continued, even without a signal handler (signal(7)). Seen
/// under load (`Interrupted system call` in the auth tests); the hub's own
/// readers treat it as "nothing yet" (`error::is_quiet`), and so do the
/// test clients: they read again.
pub fn interrupted(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::Interrupted
}

/// One `read`, again as long as it is [`interrupted`].
pub fn read_some(tcp: &mut TcpStream, buffer: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match tcp.read(buffer) {
            Err(e) if interrupted(&e) => continue,
            other => return other,
        }
    }
}

/// The next message of a tungstenite socket, reading again when
/// [`interrupted`].
pub fn read_message<S: Read + Write>(
    socket: &mut WebSocket<S>,
) -> Result<Message, tungstenite::Error> {
    loop {
        match socket.read() {
            Err(tungstenite::Error::Io(e)) if interrupted(&e) => continue,
            other => return other,
        }
    }
}

/// Read a response with a Content-Length (or until EOF).
pub fn read_http_response(tcp: &mut TcpStream) -> HttpReply {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = read_some(tcp, &mut chunk).expect("read HTTP response");
        assert!(
            n > 0,
            "connection closed before the response head: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&chunk[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().unwrap());
    let mut body = raw[head_end..].to_vec();
    match length {
        Some(length) => {
            while body.len() < length {
                let n = read_some(tcp, &mut chunk).expect("read HTTP body");
                assert!(n > 0, "body cut short");
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(length);
        }
        None => {
            let _ = tcp.read_to_end(&mut body);
        }
    }
    HttpReply {
        status,
        headers,
        body,
    }
}

/// GET `path` and parse JSON.
pub fn http_get(addr: SocketAddr, path: &str) -> HttpReply {
    http(addr, "GET", path, &[], b"")
}

/// Threads of this process still running, from /proc (not just handles
/// we kept). See [`live_threads`] for why exiting ones do not count.
pub fn thread_count() -> usize {
    live_threads().len()
}

/// Wait until `condition` holds, checking every 20 ms, or panic with `what`.
/// For facts only observable by polling (thread counts, gauges).
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(ms(20));
    }
}

/// Assert a sequence of events is strictly increasing in seq with no gap
/// among `expected` (the seqs published to this client's channels).
pub fn assert_in_order_without_gaps(events: &[Value], expected: &[u64]) {
    let got: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "not strictly increasing: {got:?}"
    );
    assert_eq!(got, expected, "missing or extra events");
}

/// Run `body` in a fresh process of this test binary, alone, so it can
/// count the process's threads without other tests' threads in the way.
/// `name` is the test's full path (e.g. `shutdown::ends_every_thread`);
/// the child runs exactly that test with `PUMPHUB_ISOLATED` set, and the
/// parent asserts the child passed.
pub fn isolated(name: &str, body: impl FnOnce()) {
    if std::env::var("PUMPHUB_ISOLATED").as_deref() == Ok(name) {
        body();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture"])
        .env("PUMPHUB_ISOLATED", name)
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "isolated run of {name} failed:\n{stdout}\n{stderr}"
    );
}

/// Names of this process's running threads (Linux truncates them to 15
/// bytes). See [`live_threads`].
pub fn thread_names() -> Vec<String> {
    live_threads()
}

/// The names of the threads of this process that have not begun to exit,
/// from /proc/self/task/*/stat.
///
/// A joined thread can still be listed there for a moment: `join` returns
/// once the kernel has cleared the thread's id (in the middle of its exit,
/// when it lets go of the address space), and the kernel unlists it only at
/// the end of that exit. On a busy machine the thread can be preempted in
/// between; `shutdown_ends_every_thread_the_hub_started` once saw
/// `http-worker-1` that way, and a probe of 300 hub shutdowns under load
/// caught `write-pump-1` with its address space already gone. Such a
/// thread has `PF_EXITING` set in its flags, so it is left out here: it
/// runs none of our code any more, and waiting for the kernel to reap it
/// would be a sleep, not an event.
fn live_threads() -> Vec<String> {
    /// `PF_EXITING` in include/linux/sched.h: set as `do_exit` begins.
    const PF_EXITING: u64 = 0x4;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok())
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| {
            // `TID (NAME) STATE PPID PGRP SESSION TTY TPGID FLAGS ...`; the
            // name may hold spaces and parentheses, so split at the last `)`.
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let name = stat.get(open + 1..close)?.to_string();
            let flags: u64 = stat.get(close + 2..)?.split(' ').nth(6)?.parse().ok()?;
            (flags & PF_EXITING == 0).then_some(name)
        })
        .collect()
}

/// Threads a hub names for itself (Linux truncates names to 15 bytes).
pub fn hub_thread_names() -> Vec<String> {
    thread_names()
        .into_iter()
        .filter(|n| {
            [
                "read-pump",
                "write-pump",
                "broadcaster",
                "acceptor",
                "http-worker",
            ]
            .iter()
            .any(|prefix| n.starts_with(prefix))
        })
        .collect()
}

/// A WebSocket client made of a bare `TcpStream`: it writes only what a
/// test tells it to, so it never answers a Ping by itself. For tests of
/// silence and of malformed input.
pub struct RawWs {
    pub tcp: TcpStream,
    buffer: Vec<u8>,
}

/// One frame from the server: opcode and payload.
#[derive(Debug, PartialEq)]
pub struct RawFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// For a Close frame: its code and reason.
    pub fn close_code(&self) -> Option<(u16, String)> {
        (self.opcode == 0x8 && self.payload.len() >= 2).then(|| {
            (
                u16::from_be_bytes([self.payload[0], self.payload[1]]),
                String::from_utf8_lossy(&self.payload[2..]).into_owned(),
            )
        })
    }
}

impl RawWs {
    /// Upgrade on `path`; panics unless the answer is 101.
    pub fn connect(addr: SocketAddr, path: &str) -> RawWs {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).unwrap();
        let mut raw = RawWs {
            tcp,
            buffer: Vec::new(),
        };
        let head_end = loop {
            if let Some(i) = raw.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(raw.fill(), "closed during the handshake");
        };
        let head = String::from_utf8_lossy(&raw.buffer[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        raw.buffer.drain(..head_end);
        raw
    }

    /// Read more bytes; false at EOF or on error.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match read_some(&mut self.tcp, &mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next frame, or `None` once the connection has ended.
    pub fn read_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Read frames until a Close; returns its code and reason.
    pub fn read_close(&mut self) -> Option<(u16, String)> {
        while let Some(frame) = self.read_frame() {
            if frame.opcode == 0x8 {
                return frame.close_code();
            }
        }
        None
    }

    /// Send one masked client frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.tcp
            .write_all(&client_frame(fin, opcode, payload))
            .unwrap();
    }
}

/// A masked client frame (mask key fixed: tests need no secrecy).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    masked_frame(opcode, fin, payload, [0x12, 0x34, 0x56, 0x78])
}

/// A client frame masked with `mask`, as tungstenite would send it.
pub fn masked_frame(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Parse one unmasked server frame from the front of `bytes`.
fn parse_server_frame(bytes: &[u8]) -> Option<(RawFrame, usize)> {
    if bytes.len() < 2 {
        return None;
    }
    let opcode = bytes[0] & 0x0F;
    let (length, header) = match bytes[1] & 0x7F {
        126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
        127 if bytes.len() >= 10 => (
            u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if bytes.len() < header + length {
        return None;
    }
    let payload = bytes[header..header + length].to_vec();
    Some((RawFrame { opcode, payload }, header + length))
}

// ----- the binary as a process ---------------------------------------------

/// Send `signal` (`TERM`, `INT`, `KILL`…) to process `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A directory of its own under the system's temporary directory, removed
/// with everything in it on drop: a `TMPDIR` for one spawned binary, so
/// that whatever it leaves behind goes with the test.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("pumphub-test-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    /// The names of what is in it now.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `pumphub` binary running on ports 0, for tests that measure the
/// process (its memory) or what it leaves behind. It gets a `TMPDIR` of
/// its own ([`TempDir`]). Dropping it stops the binary the way an operator
/// does, with SIGTERM, and waits for it to exit (SIGKILL only if it has not
/// within `PATIENCE`): a killed hub cannot remove its socket directory.
pub struct HubProcess {
    child: Option<std::process::Child>,
    pub ws: SocketAddr,
    pub http: SocketAddr,
    pub tmp: TempDir,
    /// Its stderr, line by line, read on a thread.
    pub lines: crossbeam_channel::Receiver<String>,
}

impl HubProcess {
    /// Start `pumphub --ws 127.0.0.1:0 --http 127.0.0.1:0 ARGS` and wait for
    /// its `listening` line.
    pub fn start(args: &[&str]) -> HubProcess {
        Self::start_in(TempDir::new("hub"), args)
    }

    /// As `start`, with `tmp` as its `TMPDIR`.
    pub fn start_in(tmp: TempDir, args: &[&str]) -> HubProcess {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pumphub"))
            .args(["--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(args)
            .env("TMPDIR", &tmp.0)
            .env_remove("RUST_LOG")
            .env_remove("PUMPHUB_TOKEN")
            .env_remove("PUMPHUB_PUBLISH_KEY")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start pumphub");
        let lines = forward_lines(child.stderr.take().expect("stderr is piped"));
        let mut hub = HubProcess {
            child: Some(child),
            ws: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            tmp,
            lines,
        };
        let deadline = Instant::now() + PATIENCE;
        let listening = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match hub.lines.recv_timeout(left) {
                Ok(line) if line.contains("listening") => break line,
                Ok(_) => continue,
                Err(e) => panic!("pumphub printed no listening line: {e}"),
            }
        };
        let after = |marker: &str| listening.split(marker).nth(1).expect("an address");
        hub.ws = after("ws://").split("/ws").next().unwrap().parse().unwrap();
        hub.http = after("http://").trim().parse().unwrap();
        hub
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A `kB` figure of /proc/PID/status: `VmRSS` (resident now) or
    /// `VmHWM` (the most it ever was).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    /// A figure from `GET /metrics` (the first sample of `name`).
    pub fn metric(&self, name: &str) -> f64 {
        metric_value(&http_get(self.http, "/metrics").text(), name)
    }

    /// Stop with SIGTERM and wait for the exit; its status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        send_signal(child.id(), "TERM");
        exit_status_within(&mut child, PATIENCE).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pumphub did not exit within {PATIENCE:?} of SIGTERM");
        })
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }
}

/// `send_signal` for a `Drop`: never panics.
pub fn send_signal_quietly(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The value of the first sample of `name` in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// A TCP connection to `to` from the loopback address `from` (any of
/// 127.0.0.0/8): lets a test be several client addresses at once.
pub fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().expect("an IPv4 address");
    socket.bind(&local.into())?;
    socket.connect_timeout(&to.into(), PATIENCE)?;
    Ok(socket.into())
}

/// The child's exit status once it has exited, or `None` after `within`.
/// A child process says it ended only when asked (`try_wait`): there is no
/// event to wait on without a signal handler, so this polls every 20 ms.
pub fn exit_status_within(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(ms(20));
    }
}

/// Stop a child pumphub for good: SIGTERM, so it removes what it made in
/// the temporary directory, then SIGKILL if it has not exited within
/// `PATIENCE`.
pub fn stop_child(child: &mut std::process::Child) {
    if send_signal_quietly(child.id(), "TERM") && exit_status_within(child, PATIENCE).is_some() {
        return;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A plain TCP connection to `addr` that waits at most `PATIENCE` for an
/// answer.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tcp
}

/// Split `bytes` into (status, body) of consecutive responses, each with a
/// `Content-Length`.
pub fn split_responses(mut bytes: &[u8]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole head")
            + 4;
        let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
        let status = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .expect("a length")
            .trim()
            .parse()
            .unwrap();
        out.push((
            status,
            String::from_utf8_lossy(&bytes[end..end + length]).into_owned(),
        ));
        bytes = &bytes[end + length..];
    }
    out
}

/// The lines `reader` (a child's stdout or stderr) yields, read on a
/// thread of their own so that a test waits for a line with a deadline
/// (`recv_timeout`) and the child never blocks on a full pipe. The thread
/// ends at the end of the output or when the receiver is dropped.
pub fn forward_lines(
    reader: impl std::io::Read + Send + 'static,
) -> crossbeam_channel::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
