//! The `pumphub` binary: parse flags and config, start a [`Hub`], wait for
//! SIGINT or SIGTERM, shut down gracefully.
//!
//! Exit codes: 0 after a graceful shutdown (or `--help`, `--version`, a good
//! `--check-config`), 1 if a listener cannot be bound or a thread cannot be
//! started, 2 for a bad flag or config.

use std::io;
use std::process::ExitCode;
use std::thread;

use pumphub::config::{self, Invocation};
use pumphub::Hub;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> ExitCode {
    let config = match config::parse_args(std::env::args().skip(1)) {
        Ok(Invocation::Run(config)) => config,
        Ok(Invocation::Help) => {
            print!("{}", config::help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("pumphub {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::CheckConfig { path, .. }) => {
            println!("{}: ok", path.display());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pumphub: {e}");
            eprintln!("run `pumphub --help` for the list of options");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_level);
    log_panics();

    // Register for signals before binding, so a signal that arrives during
    // start-up is not lost and still leads to a graceful exit. SIGHUP too
    // (a closed terminal): its default would end the process without
    // removing the private socket directory.
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("pumphub: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    // A hub killed with SIGKILL could not remove its private socket
    // directory; the next start does.
    let stale = Hub::remove_stale_socket_dirs();
    if stale > 0 {
        log::info!("removed {stale} socket directories left by killed hubs");
    }
    let stdin_channel = config.stdin_channel.clone();
    let hub = match Hub::start(config) {
        Ok(hub) => hub,
        Err(e) => {
            // `Display` already names the cause (the OS error).
            eprintln!("pumphub: {e}");
            return ExitCode::from(1);
        }
    };
    // Printed directly, not through the logger, so it appears at every
    // log level: scripts wait for this line.
    let ws = hub
        .ws_addr()
        .map_or("off".into(), |a| format!("ws://{a}/ws"));
    let http = hub
        .http_addr()
        .map_or("off".into(), |a| format!("http://{a}"));
    eprintln!(
        "pumphub {} listening: websocket {ws}, http {http}",
        env!("CARGO_PKG_VERSION"),
    );

    if let Some(channel) = stdin_channel {
        let handle = hub.handle();
        // Detached on purpose: a blocking read of stdin cannot be
        // interrupted, and the process exits right after shutdown anyway.
        let _ = thread::Builder::new()
            .name("stdin-feed".into())
            .spawn(move || {
                pumphub::stdin_feed::publish_lines(io::stdin().lock(), &handle, &channel)
            });
    }

    if let Some(signal) = signals.forever().next() {
        log::info!("received signal {signal}");
    }
    hub.shutdown();
    ExitCode::SUCCESS
}

/// Route panic messages through the logger, naming the thread
/// (`read-pump-17`, `http-conn-3`, `broadcaster`), so they land in the same
/// stream and format as everything else. No panic is reachable from the
/// network by design; this is for bugs. A connection thread's panic costs
/// only that client (see `connection::serve`). The library installs no
/// hook: that is the embedding application's choice.
fn log_panics() {
    // With logging off (`--log-level off`) std's own hook still reports the
    // panic on stderr, with RUST_BACKTRACE honoured: a bug is never silent.
    let std_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !log::log_enabled!(log::Level::Error) {
            return std_hook(info);
        }
        // `info` prints as std's own report: "panicked at FILE:LINE:COL:"
        // and the message on the next line.
        let thread = thread::current();
        log::error!("thread '{}' {info}", thread.name().unwrap_or("<unnamed>"));
    }));
}

/// One level for the whole process, already merged by the config module:
/// `--log-level` > `RUST_LOG` > `log-level` in the file > `info`. (So not
/// simple_logger's `env()`, which would let `RUST_LOG` beat the flag.)
/// Lines carry no timestamp: under systemd the journal adds one, and leaving
/// out the clock keeps the binary small.
///
/// tiny_http's own debug lines stay hidden below `trace`: one of them says
/// "Server listening on …", and scripts wait for the first line containing
/// `listening` to read both addresses from it.
fn init_logging(level: log::LevelFilter) {
    let mut logger = simple_logger::SimpleLogger::new().with_level(level);
    if level < log::LevelFilter::Trace {
        logger = logger.with_module_level("tiny_http", level.min(log::LevelFilter::Info));
    }
    let _ = logger.init();
    if let Ok(value) = std::env::var(config::ENV_LOG) {
        if config::level_from_rust_log(&value).is_none() {
            log::warn!(
                "ignoring RUST_LOG={value:?}: pumphub takes a single level \
                 (off, error, warn, info, debug or trace), not per-module directives"
            );
        }
    }
}
