//! cluster_pipeline: how many publishes per second one Redis takes from the
//! cluster engine, with pipelining.
//!
//! It drives pumphub's Redis engine directly (no HTTP, no WebSocket, no
//! fan-out): one node's engine, `--in-flight` publishes outstanding at any
//! moment over 64 lanes (so both publisher threads fill their pipelines),
//! one event of `--payload` bytes each, until `--count` were appended.
//! Meanwhile the node's log reader reads every entry back, as in a real
//! node. It prints a line and a JSON line (appended to `--json-out FILE`).
//! `scripts/bench.sh` runs it as `cluster-pipeline` against a fresh
//! redis-server; only loopback Redis URLs are accepted.
//!
//! ```text
//! redis-server --port 6390 --save '' --appendonly no &
//! cargo run --release --example cluster_pipeline -- --redis redis://127.0.0.1:6390
//! ```

use std::fs::OpenOptions;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pumphub::testing::engine::{
    EngineInput, EngineState, EngineStatus, Item, RedisEngine, RedisSettings, Sink,
};
use serde_json::json;

struct Options {
    redis: String,
    count: u64,
    in_flight: u64,
    payload: usize,
    json_out: Option<String>,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        redis: "redis://127.0.0.1:6379".into(),
        count: 200_000,
        in_flight: 2048,
        payload: 128,
        json_out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--redis" => options.redis = value()?,
            "--count" => options.count = number(value()?)?,
            "--in-flight" => options.in_flight = number(value()?)?.max(1),
            "--payload" => options.payload = number(value()?)? as usize,
            "--json-out" => options.json_out = Some(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let host = options
        .redis
        .strip_prefix("redis://")
        .ok_or("--redis must be redis://127.0.0.1:PORT")?;
    if !(host.starts_with("127.") || host.starts_with("localhost")) {
        return Err("--redis must be on this machine (loopback)".into());
    }
    Ok(options)
}

fn main() {
    let options = match parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("cluster_pipeline: {message}");
            std::process::exit(2);
        }
    };
    let (tx, inputs) = crossbeam_channel::unbounded();
    let sink: Sink = Arc::new(move |input| tx.send(input).is_ok());
    let status = Arc::new(EngineStatus::with_state(EngineState::Connecting));
    let prefix = format!("bench-{}", std::process::id());
    let settings = RedisSettings::new(&options.redis, &prefix, 100);
    let engine = RedisEngine::start(&settings, sink, status.clone()).unwrap_or_else(|e| {
        eprintln!("cluster_pipeline: {e}");
        std::process::exit(1);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while status.state() != EngineState::Up {
        if Instant::now() > deadline {
            eprintln!("cluster_pipeline: Redis not joined within 10 s");
            std::process::exit(1);
        }
        let _ = inputs.recv_timeout(Duration::from_millis(20));
    }
    let data = json!({"p": "x".repeat(options.payload.saturating_sub(8))});
    let (mut submitted, mut assigned, mut refused, mut read_back) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let give_up = started + Duration::from_secs(90);
    while assigned + refused < options.count && Instant::now() < give_up {
        while submitted < options.count && submitted - assigned - refused < options.in_flight {
            let item = Item::Event {
                channel: "bench".into(),
                data: data.clone(),
            };
            if engine
                .submit(submitted % 64, submitted, vec![item])
                .is_err()
            {
                refused += 1;
            }
            submitted += 1;
        }
        match inputs.recv_timeout(Duration::from_secs(5)) {
            Ok(EngineInput::Assigned { .. }) => assigned += 1,
            Ok(EngineInput::Refused { .. }) => refused += 1,
            Ok(EngineInput::Entries { entries, credit }) => {
                read_back += entries.len() as u64;
                let _ = credit.try_send(());
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_s = assigned as f64 / elapsed;
    println!(
        "cluster-pipeline: {assigned} publishes appended in {elapsed:.2} s = {per_s:.0}/s \
         ({refused} refused, {read_back} read back by the node's reader, {} in flight, \
         {} B payload)",
        options.in_flight, options.payload
    );
    let line = json!({
        "label": "cluster-pipeline",
        "mode": "engine",
        "published": assigned,
        "publish_errors": refused,
        "published_per_s": per_s.round(),
        "in_flight": options.in_flight,
        "payload_bytes": options.payload,
        "read_back": read_back,
    })
    .to_string();
    println!("{line}");
    if let Some(path) = &options.json_out {
        let appended = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{line}"));
        if let Err(e) = appended {
            eprintln!("cluster_pipeline: cannot append to {path}: {e}");
        }
    }
    drop(engine);
}
