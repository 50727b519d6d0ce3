//! A sync application that embeds the hub: it owns a [`pumphub::Hub`],
//! publishes from its own loop through the [`pumphub::HubHandle`], follows
//! its own channel in process, and shuts the hub down gracefully at the end.
//!
//! ```text
//! cargo run --example embed -- --count 5
//! cargo run --example subscriber -- --channel ticks     # in another terminal
//! ```
//!
//! Options (all optional): `--ws ADDR` (default `127.0.0.1:9001`),
//! `--http ADDR` (default `127.0.0.1:9002`), `--count N` ticks (default 10),
//! `--interval-ms MS` between ticks (default 1000). Port 0 picks a free port;
//! `off` binds no such listener.
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listener = |name: &str, default: &str| match flag(&args, name).unwrap_or(default) {
        "off" => None,
        address => Some(address.to_string()),
    };
    let config = Config {
        ws_addr: listener("--ws", "127.0.0.1:9001"),
        http_addr: listener("--http", "127.0.0.1:9002"),
        ..Config::default()
    };
    let (Ok(count), Ok(interval_ms)) = (
        flag(&args, "--count").unwrap_or("10").parse::<u64>(),
        flag(&args, "--interval-ms")
            .unwrap_or("1000")
            .parse::<u64>(),
    ) else {
        eprintln!("embed: --count and --interval-ms need numbers");
        eprintln!("usage: embed [--ws ADDR] [--http ADDR] [--count N] [--interval-ms MS]");
        return ExitCode::from(2);
    };

    let hub = match Hub::start(config) {
        Ok(hub) => hub,
        Err(e) => {
            eprintln!("embed: {e}");
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

/// The value after `name`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
}
