//! Publish events over WebSocket with `pumphub::client`, waiting for each
//! `published` answer. The hub must run with `--allow-client-publish`.
//!
//! ```text
//! cargo run -- --allow-client-publish            # the hub, in another terminal
//! cargo run --example publisher -- --channel news --count 5
//! ```
//!
//! Options (all optional): `--url URL` (default `ws://127.0.0.1:9001/ws`),
//! `--channel NAME` (default `news`), `--count N` (default 10),
//! `--interval-ms MS` between events (default 500), `--token TOKEN`.
//!
//! Each event's data is `{"n": i, "from": "publisher"}`; each answer is
//! printed as `published seq=S delivered=D`. A hub that refuses (no
//! `--allow-client-publish`) makes it exit 1 with the hub's reason.

use std::process::ExitCode;
use std::time::Duration;

use pumphub::client::Client;
use serde_json::json;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = flag(&args, "--url").unwrap_or("ws://127.0.0.1:9001/ws");
    let channel = flag(&args, "--channel").unwrap_or("news");
    let (Ok(count), Ok(interval_ms)) = (
        flag(&args, "--count").unwrap_or("10").parse::<u64>(),
        flag(&args, "--interval-ms").unwrap_or("500").parse::<u64>(),
    ) else {
        eprintln!("publisher: --count and --interval-ms need numbers");
        eprintln!("usage: publisher [--url URL] [--channel NAME] [--count N] [--interval-ms MS] [--token TOKEN]");
        return ExitCode::from(2);
    };

    // No channels: this client only publishes.
    let mut builder = Client::builder(url);
    if let Some(token) = flag(&args, "--token") {
        builder = builder.token(token);
    }
    let client = match builder.connect() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("publisher: cannot connect to {url}: {e}");
            return ExitCode::from(1);
        }
    };
    for n in 1..=count {
        match client.publish(channel, json!({"n": n, "from": "publisher"})) {
            Ok(published) => println!(
                "published seq={} delivered={}",
                published.seq, published.delivered
            ),
            Err(e) => {
                eprintln!("publisher: event {n}: {e}");
                return ExitCode::from(1);
            }
        }
        if n < count {
            std::thread::sleep(Duration::from_millis(interval_ms));
        }
    }
    ExitCode::SUCCESS
}

/// The value after `name`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
}
