//! Follow channels with `pumphub::client` and print each event as a line.
//!
//! ```text
//! cargo run --example subscriber -- --url ws://127.0.0.1:9001/ws --channel news --count 3
//! ```
//!
//! Options (all optional): `--url URL` (default `ws://127.0.0.1:9001/ws`),
//! `--channel NAME` (repeatable or comma-separated; default `news`),
//! `--count N` (exit after N events; default: run until Ctrl-C),
//! `--since SEQ` (replay kept events after SEQ first), `--token TOKEN`.
//!
//! Output on stdout, one line per item:
//!
//! ```text
//! connected id=4c1f... epoch=9b2e... resumed=false
//! event seq=1 channel=news data={"title":"hello"}
//! gap after=41 reason=the hub's history was too short
//! disconnected: the hub shut down: shutting down
//! ```
//!
//! Stop the hub and start it again while this runs: the subscriber
//! reconnects by itself, resumes from the last seq it printed, and prints a
//! `gap` line for what it could not get back.

use std::process::ExitCode;

use pumphub::client::{Client, ClientEvent};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = flag(&args, "--url").unwrap_or("ws://127.0.0.1:9001/ws");
    let channels: Vec<&str> = flags(&args, "--channel")
        .flat_map(|c| c.split(','))
        .collect();
    let channels = if channels.is_empty() {
        vec!["news"]
    } else {
        channels
    };
    let count: Option<usize> = match flag(&args, "--count").map(str::parse).transpose() {
        Ok(count) => count,
        Err(_) => return usage("--count needs a number"),
    };

    let mut builder = Client::builder(url).channels(&channels);
    if let Some(since) = flag(&args, "--since") {
        match since.parse() {
            Ok(since) => builder = builder.since(since),
            Err(_) => return usage("--since needs a number"),
        }
    }
    if let Some(token) = flag(&args, "--token") {
        builder = builder.token(token);
    }
    let client = match builder.connect() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("subscriber: cannot connect to {url}: {}", chain(&e));
            return ExitCode::from(1);
        }
    };

    let mut events = 0;
    for item in &client {
        match item {
            Ok(ClientEvent::Event(event)) => {
                println!(
                    "event seq={} channel={} data={}",
                    event.seq, event.channel, event.data
                );
                events += 1;
                if Some(events) == count {
                    break;
                }
            }
            Ok(ClientEvent::Connected {
                connection_id,
                epoch,
                resumed,
            }) => println!("connected id={connection_id} epoch={epoch} resumed={resumed}"),
            Ok(ClientEvent::Gap { after_seq, reason }) => {
                println!("gap after={after_seq} reason={reason}")
            }
            Ok(ClientEvent::Disconnected(why)) => println!("disconnected: {why}"),
            Ok(ClientEvent::HubError { code, message, .. }) => {
                println!("hub error {code}: {message}")
            }
            Ok(other) => println!("{other:?}"),
            Err(e) => {
                eprintln!("subscriber: {}", chain(&e));
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

/// The value after the first `name`.
fn flag<'a>(args: &'a [String], name: &'a str) -> Option<&'a str> {
    flags(args, name).next()
}

/// The values after every `name`.
fn flags<'a>(args: &'a [String], name: &'a str) -> impl Iterator<Item = &'a str> {
    args.windows(2)
        .filter(move |pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
}

/// An error and its causes on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("subscriber: {problem}");
    eprintln!("usage: subscriber [--url URL] [--channel NAME]... [--count N] [--since SEQ] [--token TOKEN]");
    ExitCode::from(2)
}
