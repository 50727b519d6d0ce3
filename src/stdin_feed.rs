//! `--stdin CHANNEL`: publish each line of a reader as one event.
//!
//! Runs on a thread of its own in the binary (`main.rs`), talking to the hub
//! through a [`HubHandle`] like any embedding application. A line that
//! parses as JSON is published as that value, anything else as a JSON
//! string. Empty lines are skipped and a trailing `\r` is stripped. At EOF
//! the feed ends and the hub keeps serving.

use std::io::BufRead;

use log::{info, warn};
use serde_json::Value;

use crate::handle::HubHandle;

/// Publish every line of `input` to `channel` until EOF, or until the hub
/// shuts down. Returns how many events were published.
pub fn publish_lines(input: impl BufRead, hub: &HubHandle, channel: &str) -> u64 {
    let mut published = 0;
    for line in input.lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                warn!("stdin: read failed, stopping the feed: {e}");
                break;
            }
        };
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if line.is_empty() {
            continue;
        }
        let data = serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.to_string()));
        match hub.publish_value(channel, data) {
            Ok(_) => published += 1,
            Err(e) => {
                warn!("stdin: {e}; stopping the feed");
                break;
            }
        }
    }
    info!("stdin: end of input after {published} events; the hub keeps running");
    published
}
