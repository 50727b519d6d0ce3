//! One port for an application's own pages, served by tiny_http, and the
//! hub's WebSocket at `/live`: the hub binds no port of its own.
//!
//! ```text
//! cargo run --example one_port -- --addr 127.0.0.1:8080
//! # open http://127.0.0.1:8080/ : the page follows the ticks over ws://127.0.0.1:8080/live
//! ```
//!
//! Options (all optional; `--help` lists them): `--addr ADDR` (default
//! `127.0.0.1:8080`; port 0 picks a free one), `--count N` (default 60):
//! stop after N ticks have reached at least one client, `--interval-ms MS`
//! between ticks (default 1000). An unknown flag or a bad value is an
//! error (exit 2).
//!
//! Output:
//!
//! ```text
//! listening http://127.0.0.1:8080/ (pages: tiny_http, /live: the hub)
//! tick seq=3 delivered=1
//! ...
//! shut down
//! ```
//!
//! How the port is shared. tiny_http takes connections only from its own
//! listener, and the stream its `Request::upgrade` returns is one boxed
//! `Read + Write` that cannot be read and written from two threads at
//! once, nor given a read timeout or shut down, which the hub's two pumps
//! need (docs/embedding.md). So the application keeps the public port for
//! itself and reads each request head (httparse): an upgrade to `/live`
//! goes to the hub with [`pumphub::Upgrader::upgrade_read`], which checks
//! it and answers `101` or the refusal itself; anything else is relayed to
//! tiny_http on a private loopback port. A real application would also cap
//! the front's threads, as the hub's own HTTP guard does.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use pumphub::{Config, Hub, Upgrader};
use serde::Serialize;

/// Where the hub is mounted on the application's port.
const HUB_PATH: &str = "/live";

/// The largest request head the front reads before deciding.
const MAX_HEAD: usize = 16 * 1024;

#[path = "common/args.rs"]
mod args;
use args::{Repeat, Spec};

const SPEC: Spec = Spec {
    program: "one_port",
    help: "\
one_port: an application's pages and the hub's WebSocket (/live) on one port

Usage: one_port [--addr ADDR] [--count N] [--interval-ms MS]

  --addr ADDR        the application's port; port 0 = any [127.0.0.1:8080]
  --count N          stop after N ticks reached at least one client [60]
  --interval-ms MS   pause between ticks [1000]
  -h, --help         print this help
",
    flags: &[
        ("--addr", Repeat::Once),
        ("--count", Repeat::Once),
        ("--interval-ms", Repeat::Once),
    ],
};

/// What the application publishes.
#[derive(Serialize)]
struct Tick {
    n: u64,
    uptime_ms: u64,
}

fn main() -> ExitCode {
    let args = match SPEC.parse() {
        Ok(args) => args,
        Err(exit) => return exit,
    };
    let addr = args.get("--addr").unwrap_or("127.0.0.1:8080");
    let (count, interval_ms) = match (
        args.number::<u64>("--count", 60),
        args.number::<u64>("--interval-ms", 1000),
    ) {
        (Ok(count), Ok(interval_ms)) => (count, interval_ms),
        (Err(exit), _) | (_, Err(exit)) => return exit,
    };
    match run(addr, count, Duration::from_millis(interval_ms)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("one_port: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(
    addr: &str,
    count: u64,
    interval: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The hub without a port of its own: no WebSocket listener, no
    // operator HTTP listener (its figures stay on the handle).
    let hub = Hub::start(Config {
        ws_addr: None,
        http_addr: None,
        ..Config::default()
    })?;
    // The application's pages, on a private port only the front talks to.
    let pages = Arc::new(tiny_http::Server::http("127.0.0.1:0")?);
    let pages_addr = pages
        .server_addr()
        .to_ip()
        .ok_or("tiny_http is not on TCP")?;
    let pages_worker = {
        let pages = pages.clone();
        thread::spawn(move || serve_pages(&pages))
    };
    // The one public port.
    let listener = TcpListener::bind(addr)?;
    let public = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let front = {
        let (upgrader, stop) = (hub.upgrader(), stop.clone());
        thread::spawn(move || accept(listener, &upgrader, pages_addr, &stop))
    };
    println!("listening http://{public}/ (pages: tiny_http, {HUB_PATH}: the hub)");

    let handle = hub.handle();
    let mut reached = 0;
    let mut n = 0;
    while reached < count {
        thread::sleep(interval);
        n += 1;
        let tick = Tick {
            n,
            uptime_ms: handle.uptime().as_millis() as u64,
        };
        let published = handle.publish("ticks", tick)?;
        if published.delivered > 0 {
            reached += 1;
            println!(
                "tick seq={} delivered={}",
                published.seq, published.delivered
            );
        }
    }

    hub.shutdown(); // clients get `shutdown`, then Close 1001
    stop.store(true, Ordering::Release);
    let _ = TcpStream::connect(public); // wakes the front's `accept`
    let _ = front.join();
    pages.unblock();
    let _ = pages_worker.join();
    println!("shut down");
    Ok(())
}

/// The front: accept on the public port, one thread per connection.
fn accept(listener: TcpListener, upgrader: &Upgrader, pages: SocketAddr, stop: &AtomicBool) {
    for tcp in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let Ok(tcp) = tcp else { continue };
        let upgrader = upgrader.clone();
        thread::spawn(move || route(tcp, &upgrader, pages));
    }
}

/// Read the request head and send the connection where it belongs.
fn route(mut tcp: TcpStream, upgrader: &Upgrader, pages: SocketAddr) {
    let Ok(already_read) = read_head(&mut tcp) else {
        return;
    };
    if path_of(&already_read).as_deref() == Some(HUB_PATH) {
        // The hub checks the rest (the upgrade headers and key, limits,
        // Origin, token) and writes the 101 or the refusal itself.
        if let Err(e) = upgrader.upgrade_read(tcp, already_read) {
            eprintln!("one_port: the hub did not take a connection: {e}");
        }
    } else {
        relay(tcp, already_read, pages);
    }
}

/// Every byte read until the head is complete (or `MAX_HEAD` is passed:
/// whoever gets it answers 431), within 10 s.
fn read_head(tcp: &mut TcpStream) -> io::Result<Vec<u8>> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 2048];
    while !bytes.windows(4).any(|w| w == b"\r\n\r\n") && bytes.len() <= MAX_HEAD {
        match tcp.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(bytes)
}

/// The path of the request target, without its query.
fn path_of(head: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    request.parse(head).ok()?;
    let target = request.path?;
    Some(target.split('?').next().unwrap_or("").to_string())
}

/// Pass the connection to tiny_http, starting with what was read: one
/// thread copies each way until either side closes.
fn relay(client: TcpStream, already_read: Vec<u8>, pages: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(pages) else {
        return;
    };
    let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if to_server.write_all(&already_read).is_err() {
        return;
    }
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut server, &mut &client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

/// The application's routes.
fn serve_pages(pages: &tiny_http::Server) {
    let html: tiny_http::Header = "Content-Type: text/html; charset=utf-8"
        .parse()
        .expect("a valid header");
    while let Ok(request) = pages.recv() {
        let response = match request.url() {
            "/" => tiny_http::Response::from_string(PAGE).with_header(html.clone()),
            _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
        };
        let _ = request.respond(response);
    }
}

/// The application's page: follows `ticks` over the hub's WebSocket on the
/// same host and port.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>one port</title>
<h1>Ticks</h1>
<p id="state">connecting…</p>
<ol id="ticks"></ol>
<script>
const ws = new WebSocket(`ws://${location.host}/live?channels=ticks`);
ws.onopen = () => { document.getElementById("state").textContent = "connected"; };
ws.onclose = () => { document.getElementById("state").textContent = "closed"; };
ws.onmessage = (message) => {
  const frame = JSON.parse(message.data);
  if (frame.type !== "event") return;
  const item = document.createElement("li");
  item.textContent = `seq ${frame.seq}: ${JSON.stringify(frame.data)}`;
  document.getElementById("ticks").prepend(item);
};
</script>
"#;
