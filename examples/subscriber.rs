//! Follow channels with `pumphub::client` and print each event as a line.
//!
//! ```text
//! cargo run --example subscriber -- --url ws://127.0.0.1:9001/ws --channel news --count 3
//! ```
//!
//! Options (all optional; `--help` lists them): `--url URL` (default
//! `ws://127.0.0.1:9001/ws`), `--channel NAME` (repeatable or
//! comma-separated; default `news`), `--count N` (exit after N events;
//! default: run until Ctrl-C), `--since SEQ` (replay kept events after SEQ
//! first), `--token TOKEN`. An unknown flag or a bad value is an error
//! (exit 2), as with the `pumphub` binary.
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
//! `gap` line for what it could not get back. A restart prints two lines
//! that belong together:
//!
//! ```text
//! connected id=7d0e... epoch=51c3... resumed=true
//! gap after=41 reason=the hub restarted (epoch 9b2e... -> 51c3...)
//! ```
//!
//! `resumed=true` says this is a reconnection, which asked the hub to
//! resume after seq 41. The `gap` line says that could not work: the new
//! hub is another instance (a new epoch) whose seqs start again at 1, so
//! whatever the old one published after 41 is lost. The subscriber then
//! follows the new hub from the oldest event it kept. After a plain network
//! drop the `connected` line comes alone: nothing was lost.

use std::process::ExitCode;

use pumphub::client::{Client, ClientEvent};

#[path = "common/args.rs"]
mod args;
#[path = "common/causes.rs"]
mod causes;

use args::{Repeat, Spec};
use causes::with_causes;

const SPEC: Spec = Spec {
    program: "subscriber",
    help: "\
subscriber: follow pumphub channels and print each event as a line

Usage: subscriber [--url URL] [--channel NAME]... [--count N] [--since SEQ] [--token TOKEN]

  --url URL        the hub's WebSocket URL [ws://127.0.0.1:9001/ws]
  --channel NAME   a channel to follow; repeatable or comma-separated [news]
  --count N        exit after N events [run until Ctrl-C]
  --since SEQ      replay the kept events after SEQ first [start live]
  --token TOKEN    the hub's --token, if it has one
  -h, --help       print this help

Prints `connected`, `event seq=...`, `gap ...` and `disconnected` lines.
`connected ... resumed=true` is a reconnection; a `gap` line after it says
what could not be resumed (e.g. the hub restarted: a new epoch).
",
    flags: &[
        ("--url", Repeat::Once),
        ("--channel", Repeat::Many),
        ("--count", Repeat::Once),
        ("--since", Repeat::Once),
        ("--token", Repeat::Once),
    ],
};

fn main() -> ExitCode {
    let args = match SPEC.parse() {
        Ok(args) => args,
        Err(exit) => return exit,
    };
    let url = args.get("--url").unwrap_or("ws://127.0.0.1:9001/ws");
    let channels: Vec<&str> = args.all("--channel").flat_map(|c| c.split(',')).collect();
    let channels = if channels.is_empty() {
        vec!["news"]
    } else {
        channels
    };
    let count: Option<usize> = match args.get("--count") {
        None => None,
        Some(_) => match args.number("--count", 0) {
            Ok(count) => Some(count),
            Err(exit) => return exit,
        },
    };

    let mut builder = Client::builder(url).channels(&channels);
    if args.get("--since").is_some() {
        match args.number("--since", 0) {
            Ok(since) => builder = builder.since(since),
            Err(exit) => return exit,
        }
    }
    if let Some(token) = args.get("--token") {
        builder = builder.token(token);
    }
    let client = match builder.connect() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("subscriber: cannot connect to {url}: {}", with_causes(&e));
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
                eprintln!("subscriber: {}", with_causes(&e));
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
