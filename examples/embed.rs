//! A sync application that embeds the hub: it owns a [`pumphub::Hub`],
//! publishes from its own loop through the [`pumphub::HubHandle`], follows
//! its own channel in process, and shuts the hub down gracefully at the end.
//!
//! ```text
//! cargo run --example embed -- --count 5
//! cargo run --example subscriber -- --channel ticks     # in another terminal
//! ```
//!
//! Options (all optional; `--help` lists them): `--ws ADDR` (default
//! `127.0.0.1:9001`), `--http ADDR` (default `127.0.0.1:9002`), `--count N`
//! ticks (default 10), `--interval-ms MS` between ticks (default 1000).
//! Port 0 picks a free port; `off` binds no such listener. An unknown flag
//! or a bad value is an error (exit 2); a port in use is reported with the
//! OS's reason (exit 1).
//!
//! Each tick is a plain struct deriving `Serialize`: the hub turns it into
//! JSON, so the application needs no JSON library of its own.
//!
//! Output:
//!
//! ```text
//! hub listening ws://127.0.0.1:9001/ws http://127.0.0.1:9002
//! published seq=1 delivered=1
//! in-process subscriber got seq=1 data={"n":1,"uptime_ms":0}
//! ...
//! stats: published=10 connections_total=0
//! shut down
//! ```

use std::process::ExitCode;
use std::time::Duration;

use pumphub::{Config, Hub};
use serde::Serialize;

/// What the application publishes: its own type, not JSON.
#[derive(Serialize)]
struct Tick {
    n: u64,
    uptime_ms: u64,
}

#[path = "common/args.rs"]
mod args;
#[path = "common/causes.rs"]
mod causes;

use args::{Repeat, Spec};
use causes::with_causes;

const SPEC: Spec = Spec {
    program: "embed",
    help: "\
embed: a sync application that owns a pumphub Hub and publishes from its loop

Usage: embed [--ws ADDR] [--http ADDR] [--count N] [--interval-ms MS]

  --ws ADDR|off      the hub's WebSocket listener; port 0 = any [127.0.0.1:9001]
  --http ADDR|off    the hub's HTTP listener; port 0 = any [127.0.0.1:9002]
  --count N          ticks to publish before shutting down [10]
  --interval-ms MS   pause between ticks [1000]
  -h, --help         print this help
",
    flags: &[
        ("--ws", Repeat::Once),
        ("--http", Repeat::Once),
        ("--count", Repeat::Once),
        ("--interval-ms", Repeat::Once),
    ],
};

fn main() -> ExitCode {
    let args = match SPEC.parse() {
        Ok(args) => args,
        Err(exit) => return exit,
    };
    let listener = |name: &str, default: &str| match args.get(name).unwrap_or(default) {
        "off" => None,
        address => Some(address.to_string()),
    };
    let config = Config {
        ws_addr: listener("--ws", "127.0.0.1:9001"),
        http_addr: listener("--http", "127.0.0.1:9002"),
        ..Config::default()
    };
    let (count, interval_ms) = match (
        args.number::<u64>("--count", 10),
        args.number::<u64>("--interval-ms", 1000),
    ) {
        (Ok(count), Ok(interval_ms)) => (count, interval_ms),
        (Err(exit), _) | (_, Err(exit)) => return exit,
    };

    let hub = match Hub::start(config) {
        Ok(hub) => hub,
        Err(e) => {
            // `cannot bind the websocket listener to 127.0.0.1:9001: Address
            // already in use (os error 98)`: the cause is the useful part.
            eprintln!("embed: {}", with_causes(&e));
            return ExitCode::from(1);
        }
    };
    let ws = hub
        .ws_addr()
        .map_or("off".into(), |a| format!("ws://{a}/ws"));
    let http = hub
        .http_addr()
        .map_or("off".into(), |a| format!("http://{a}"));
    println!("hub listening {ws} {http}");
    // The handle is what the rest of an application would hold: cheap to
    // clone into any thread, each call a few microseconds.
    let handle = hub.handle();
    let ticks = match handle.subscribe(&["ticks"]) {
        Ok(subscription) => subscription,
        Err(e) => {
            eprintln!("embed: {e}");
            return ExitCode::from(1);
        }
    };

    for n in 1..=count {
        let tick = Tick {
            n,
            uptime_ms: handle.uptime().as_millis() as u64,
        };
        match handle.publish("ticks", tick) {
            Ok(published) => println!(
                "published seq={} delivered={}",
                published.seq, published.delivered
            ),
            Err(e) => {
                eprintln!("embed: {e}");
                break;
            }
        }
        // The same event, as the in-process subscription sees it.
        if let Ok(event) = ticks.recv_timeout(Duration::from_secs(1)) {
            println!(
                "in-process subscriber got seq={} data={}",
                event.seq, event.data
            );
        }
        if n < count {
            std::thread::sleep(Duration::from_millis(interval_ms));
        }
    }

    if let Ok(stats) = handle.stats() {
        println!(
            "stats: published={} connections_total={}",
            stats.events_published, stats.connections_total
        );
    }
    drop(ticks);
    hub.shutdown(); // connected clients get `shutdown`, then Close 1001
    println!("shut down");
    ExitCode::SUCCESS
}
