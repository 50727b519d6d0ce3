//! A WebSocket echo server made of pumphub's own read and write pumps, to
//! run the Autobahn|Testsuite against (see docs/conformance.md).
//!
//! Every text and binary message comes back unchanged, through the same
//! queue as the Pongs. The framing, fragmentation, UTF-8 checks, Ping/Pong
//! and close handling that Autobahn grades are the hub's code
//! (`src/ws/read_pump.rs`, `src/ws/write_pump.rs`); only what happens to a
//! data message differs (`src/testing/echo.rs`). It prints the address it
//! bound.
//!
//! ```text
//! cargo run --release --example echo -- 127.0.0.1:9011
//! scripts/autobahn.sh      # runs this example and the suite against it
//! ```
//!
//! The address defaults to `127.0.0.1:9011`; use port 0 for any free port.
//! Set `RUST_LOG`-style verbosity with `PUMPHUB_ECHO_LOG=debug` to see each
//! connection's close reason. Stop it with Ctrl-C.

use std::net::TcpListener;
use std::process::ExitCode;

use pumphub::testing::echo::EchoServer;

fn main() -> ExitCode {
    let level = std::env::var("PUMPHUB_ECHO_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Warn);
    let _ = simple_logger::SimpleLogger::new().with_level(level).init();

    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9011".into());
    let listener = match TcpListener::bind(&addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("echo: cannot bind {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let server = match EchoServer::start(listener) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("echo: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    println!("echo server listening on ws://{}", server.local_addr());
    server.wait();
    ExitCode::SUCCESS
}
