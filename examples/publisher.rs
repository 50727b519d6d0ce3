//! Publish events over WebSocket with `pumphub::client`, waiting for each
//! `published` answer. The hub must run with `--allow-client-publish`.
//!
//! ```text
//! cargo run -- --allow-client-publish            # the hub, in another terminal
//! cargo run --example publisher -- --channel news --count 5
//! ```
//!
//! Options (all optional; `--help` lists them): `--url URL` (default
//! `ws://127.0.0.1:9001/ws`), `--channel NAME` (default `news`), `--count N`
//! (default 10), `--interval-ms MS` between events (default 500),
//! `--token TOKEN`. An unknown flag or a bad value is an error (exit 2).
//!
//! Each event's data is `{"n": i, "from": "publisher"}`; each answer is
//! printed as `published seq=S delivered=D`. A hub that refuses makes it
//! exit 1 with the hub's reason; for `forbidden`, it adds that the hub
//! needs `--allow-client-publish`.

use std::process::ExitCode;
use std::time::Duration;

use pumphub::client::{Client, ClientError};
use serde_json::json;

#[path = "common/args.rs"]
mod args;
#[path = "common/causes.rs"]
mod causes;

use args::{Repeat, Spec};
use causes::with_causes;

const SPEC: Spec = Spec {
    program: "publisher",
    help: "\
publisher: publish events to a pumphub over WebSocket, waiting for each answer

Usage: publisher [--url URL] [--channel NAME] [--count N] [--interval-ms MS] [--token TOKEN]

  --url URL          the hub's WebSocket URL [ws://127.0.0.1:9001/ws]
  --channel NAME     the channel to publish to [news]
  --count N          how many events [10]
  --interval-ms MS   pause between events [500]
  --token TOKEN      the hub's --token, if it has one
  -h, --help         print this help

The hub must run with --allow-client-publish; otherwise it answers
`forbidden` and this exits 1.
",
    flags: &[
        ("--url", Repeat::Once),
        ("--channel", Repeat::Once),
        ("--count", Repeat::Once),
        ("--interval-ms", Repeat::Once),
        ("--token", Repeat::Once),
    ],
};

fn main() -> ExitCode {
    let args = match SPEC.parse() {
        Ok(args) => args,
        Err(exit) => return exit,
    };
    let url = args.get("--url").unwrap_or("ws://127.0.0.1:9001/ws");
    let channel = args.get("--channel").unwrap_or("news");
    let (count, interval_ms) = match (
        args.number::<u64>("--count", 10),
        args.number::<u64>("--interval-ms", 500),
    ) {
        (Ok(count), Ok(interval_ms)) => (count, interval_ms),
        (Err(exit), _) | (_, Err(exit)) => return exit,
    };

    // No channels: this client only publishes.
    let mut builder = Client::builder(url);
    if let Some(token) = args.get("--token") {
        builder = builder.token(token);
    }
    let client = match builder.connect() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("publisher: cannot connect to {url}: {}", with_causes(&e));
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
                eprintln!("publisher: event {n}: {}", with_causes(&e));
                if matches!(&e, ClientError::Refused { code, .. } if code == "forbidden") {
                    eprintln!(
                        "publisher: a hub takes publishes from WebSocket clients only when \
                         started with --allow-client-publish (or an Authorizer that allows them)"
                    );
                }
                return ExitCode::from(1);
            }
        }
        if n < count {
            std::thread::sleep(Duration::from_millis(interval_ms));
        }
    }
    ExitCode::SUCCESS
}
