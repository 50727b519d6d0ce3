//! The `pumphub` binary: parse flags and config, start a [`Hub`], wait for
//! SIGINT or SIGTERM, shut down gracefully.
//!
//! Exit codes: 0 after a graceful shutdown (or `--help`, `--version`, a good
//! `--check-config`), 1 if a listener cannot be bound or a thread cannot be
//! started, 2 for a bad flag or config.

mod logger;

use std::io;
use std::process::ExitCode;
use std::thread;

use pumphub::config::{self, Config, Invocation};
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
            // One line with the causes (`--config nope.toml` says why the
            // OS could not read it), then one hint at most.
            eprintln!("pumphub: {}", with_causes(&e));
            if !e.has_suggestion() {
                eprintln!("run `pumphub --help` for the list of options");
            }
            return ExitCode::from(2);
        }
    };
    let style = init_logging(&config);
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
            // `Display` already names the direct cause (the OS error);
            // `with_causes` adds any deeper one, each once.
            eprintln!("pumphub: {}", with_causes(&e));
            return ExitCode::from(1);
        }
    };
    // Printed at every log level, even `off`: scripts wait for this line.
    let ws = hub
        .ws_addr()
        .map_or("off".into(), |a| format!("ws://{a}/ws"));
    let http = hub
        .http_addr()
        .map_or("off".into(), |a| format!("http://{a}"));
    style.announce(format_args!(
        "pumphub {} listening: websocket {ws}, http {http}",
        env!("CARGO_PKG_VERSION"),
    ));

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

/// `error: cause: its cause …` on one line, each cause once: a cause
/// that `Display` already printed (its text ends the line so far) is not
/// repeated.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// Route panic messages through the logger, naming the thread
/// (`read-pump-17`, `http-conn-3`, `broadcaster`), so they land in the same
/// stream and format as everything else. No panic is reachable from the
/// network by design; this is for bugs. A connection thread's panic costs
/// only that client (see `ws/serve.rs`). The library installs no
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
/// `--log-level` > `PUMPHUB_LOG_LEVEL` > `RUST_LOG` > `log-level` in the
/// file > `info`. Timestamps unless under systemd, whose journal adds its
/// own (`--log-timestamps auto`). Returns the style, for the `listening`
/// line.
///
/// Then a word about what in the environment was not used: a `RUST_LOG`
/// directive the single level cannot follow, and `PUMPHUB_` variables that
/// are no setting (most likely misspelt, and otherwise silently ignored).
fn init_logging(config: &Config) -> logger::Style {
    let style = logger::Style {
        format: config.log_format,
        timestamps: config
            .log_timestamps
            .resolve(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())),
    };
    logger::Logger::new(config.log_level, style).install();
    if let Ok(value) = std::env::var(config::ENV_LOG) {
        if config::level_from_rust_log(&value).is_none() {
            log::warn!(
                "ignoring RUST_LOG={value:?}: pumphub takes a single level \
                 (off, error, warn, info, debug or trace), not per-module directives"
            );
        }
    }
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("PUMPHUB_") && !config::env_var_names().any(|known| known == name) {
            log::warn!(
                "ignoring environment variable {name}: no setting has that name (see --help)"
            );
        }
    }
    style
}
