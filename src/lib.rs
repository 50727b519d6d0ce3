//! pumphub: a small, synchronous WebSocket event hub.
//!
//! Clients connect over WebSocket, subscribe to channels, and receive
//! sequenced events that a backend publishes (over HTTP, through this
//! library, from stdin, or from other clients). Thread per connection, no
//! async runtime: every moving part is a plain thread and every hand-off a
//! crossbeam channel, so the code reads top to bottom.
//!
//! ```text
//!          HTTP POST /publish          HubHandle::publish        client `publish`
//!          (http/publish.rs)            (handle.rs)            (ws/read_pump.rs)
//!                      \                      |                      /
//!                       '---- HubCommand (broadcaster/command.rs) --'
//!                                            |
//!                           broadcaster thread (broadcaster.rs)
//!           seq, history (broadcaster/history.rs), fan-out with try-push
//!                                            |
//!            one OutboundQueue per client (broadcaster/outbound.rs)
//!                                            |
//!                          write pump thread (ws/write_pump.rs)
//!                                            |
//!                                         socket
//! ```
//!
//! # Embedding
//!
//! Start a [`Hub`], publish through its [`HubHandle`] anything that is
//! `Serialize` (the application's own types; [`json!`] for ad-hoc data, so
//! no JSON dependency of its own is needed), follow channels in process.
//!
//! ```
//! use pumphub::{json, Config, Hub};
//!
//! #[derive(serde::Serialize)]
//! struct Price {
//!     symbol: &'static str,
//!     cents: u64,
//! }
//!
//! let mut config = Config::default();
//! config.ws_addr = Some("127.0.0.1:0".into()); // any free port
//! config.http_addr = Some("127.0.0.1:0".into());
//! let hub = Hub::start(config)?;
//! let handle = hub.handle();
//!
//! let subscription = handle.subscribe(&["prices"])?;
//! let published = handle.publish("prices", Price { symbol: "BTC", cents: 100 })?;
//! assert_eq!(published.seq.0, 1);
//! assert_eq!(published.delivered, 1);
//!
//! let event = subscription.recv().unwrap();
//! assert_eq!(event.seq, published.seq);
//! assert_eq!(event.data, json!({"symbol": "BTC", "cents": 100}));
//!
//! hub.shutdown(); // graceful: clients get `shutdown`, then Close 1001
//! # Ok::<(), pumphub::Error>(())
//! ```
//!
//! # On the application's port
//!
//! Both listeners are optional ([`Config::ws_addr`], [`Config::http_addr`]).
//! An application that accepts connections itself gives them to the hub
//! through an [`Upgrader`]: the hub reads the upgrade request, runs every
//! check of its own listener but the path (the application routed the
//! connection), answers `101` or the refusal, and serves the client with
//! the same pumps, limits, metrics and graceful shutdown.
//!
//! ```
//! use std::net::TcpListener;
//! use pumphub::client::{Client, ClientEvent};
//! use pumphub::{Config, Hub};
//!
//! // No listener of the hub's own.
//! let hub = Hub::start(Config { ws_addr: None, http_addr: None, ..Config::default() })?;
//! let upgrader = hub.upgrader();
//!
//! // The application's accept loop.
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! std::thread::spawn(move || {
//!     for tcp in listener.incoming().flatten() {
//!         if upgrader.upgrade(tcp).is_err() {
//!             break; // the hub has shut down
//!         }
//!     }
//! });
//!
//! let client = Client::connect(&format!("ws://{addr}/live"), &["news"])?;
//! hub.handle().publish("news", "hello")?;
//! for item in &client {
//!     if let ClientEvent::Event(event) = item? {
//!         assert_eq!(event.data, "hello");
//!         break;
//!     }
//! }
//! // Without the HTTP port, the operator's figures are on the handle.
//! assert_eq!(hub.handle().stats()?.connections_active, 1);
//! assert!(hub.handle().render_metrics()?.contains("pumphub_connections_active 1"));
//! client.close();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! An application with its own HTTP server reads the request head to route
//! it, then hands the connection over with the bytes it read:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use pumphub::{Config, Hub, Upgrader};
//!
//! /// The application's server: `/live` is the hub's, the rest its own.
//! fn route(mut tcp: TcpStream, upgrader: &Upgrader) -> std::io::Result<()> {
//!     let mut already_read = Vec::new();
//!     let mut chunk = [0u8; 1024];
//!     while !already_read.windows(4).any(|w| w == b"\r\n\r\n") {
//!         let n = tcp.read(&mut chunk)?;
//!         if n == 0 || already_read.len() > 16 * 1024 {
//!             return Ok(());
//!         }
//!         already_read.extend_from_slice(&chunk[..n]);
//!     }
//!     if already_read.starts_with(b"GET /live") {
//!         // The hub checks the head and writes the 101 or the refusal.
//!         let _ = upgrader.upgrade_read(tcp, already_read);
//!     } else {
//!         tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\napp")?;
//!     }
//!     Ok(())
//! }
//!
//! let hub = Hub::start(Config { ws_addr: None, http_addr: None, ..Config::default() })?;
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let upgrader = hub.upgrader();
//! std::thread::spawn(move || {
//!     for tcp in listener.incoming().flatten() {
//!         let upgrader = upgrader.clone();
//!         std::thread::spawn(move || route(tcp, &upgrader));
//!     }
//! });
//!
//! let client = pumphub::client::Client::connect(&format!("ws://{addr}/live"), &["news"])?;
//! let mut page = TcpStream::connect(addr)?;
//! page.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
//! let mut answer = String::new();
//! page.read_to_string(&mut answer)?;
//! assert!(answer.ends_with("\r\n\r\napp"));
//! client.close();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! tiny_http's `Request::upgrade` cannot be used for this: its stream
//! cannot be read and written by two threads at once. `examples/one_port.rs`
//! serves tiny_http pages and the hub on one port anyway, and
//! docs/embedding.md explains.
//!
//! # Resuming in process
//!
//! [`HubHandle::subscribe_since`] replays what a subscriber missed, then
//! goes live, with neither a gap nor a duplicate; keep the seq of the last
//! event handled together with [`HubHandle::epoch`], since a seq means
//! something only within one hub instance.
//!
//! ```
//! use pumphub::{Config, Hub};
//! let hub = Hub::start(Config { ws_addr: None, http_addr: None, ..Config::default() })?;
//! let handle = hub.handle();
//!
//! let subscription = handle.subscribe(&["orders"])?;
//! handle.publish("orders", 1)?;
//! let (epoch, last) = (handle.epoch().to_string(), subscription.recv().unwrap().seq);
//! drop(subscription); // the component restarts...
//! handle.publish("orders", 2)?; // ...and misses this one
//!
//! assert_eq!(handle.epoch(), epoch); // the same hub instance: `last` holds
//! let resumed = handle.subscribe_since(&["orders"], last)?;
//! assert!(resumed.complete());
//! assert_eq!(resumed.recv().unwrap().data, 2);
//! assert_eq!(handle.stats()?.seq.0, 2);
//! # Ok::<(), pumphub::Error>(())
//! ```
//!
//! # Errors
//!
//! [`Error`] says what went wrong and why: its `Display` includes the
//! cause (the OS error of a failed bind), which `source()` also returns.
//!
//! # Consuming with the client
//!
//! [`client::Client`] is the other end in Rust: it connects over WebSocket,
//! subscribes, and when the connection drops it reconnects and resumes with
//! `since`, so each event arrives once and in order; what cannot be resumed
//! arrives as a [`client::ClientEvent::Gap`].
//!
//! ```
//! use pumphub::client::{Client, ClientEvent};
//! use pumphub::{Config, Hub};
//! use serde_json::json;
//!
//! let mut config = Config::default();
//! config.ws_addr = Some("127.0.0.1:0".into());
//! config.http_addr = Some("127.0.0.1:0".into());
//! let hub = Hub::start(config)?;
//!
//! let url = format!("ws://{}/ws", hub.ws_addr().unwrap());
//! // Returns once subscribed: nothing published from here on is missed.
//! let client = Client::connect(&url, &["prices"])?;
//! hub.handle().publish("prices", json!({"btc": 2}))?;
//!
//! for item in &client {
//!     match item? {
//!         ClientEvent::Event(event) => {
//!             assert_eq!(event.seq.0, 1);
//!             assert_eq!(event.data, json!({"btc": 2}));
//!             break;
//!         }
//!         ClientEvent::Connected { resumed, .. } => assert!(!resumed),
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! client.close();
//! hub.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The modules, bottom layer first. A module imports only from its own
// layer or from layers earlier in this list (docs/architecture.md draws it;
// tests/it/layers.rs checks it).
//
// 1. wire types, settings, errors: no threads, no sockets
pub mod config;
mod error;
mod peer;
pub mod protocol;
mod request_head;
// 2. counters, access checks, the engines that order events, and turning
// connections away at accept
pub mod auth;
mod engine;
mod metrics;
mod refusal;
// 3. the broadcaster thread and what it hands out
mod broadcaster;
// 4. the one door into the broadcaster for the layers above
mod handle;
// 5. the front ends: WebSocket clients, the operator HTTP port, stdin
mod http;
pub mod stdin_feed;
mod ws;
// 6. the assembly
mod hub;
// A peer of the hub, not part of it: imports only `protocol`.
pub mod client;
// Fixtures for tests, examples and fuzz/, not embedding API.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

// The README and the guides in docs/ as doctests: their Rust blocks
// compile (and run unless marked `no_run`) with every `cargo test`, so a
// snippet cannot drift from the API. Every other block carries a language
// tag, which rustdoc leaves alone (tests/it/docs.rs checks both).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../docs/architecture.md")]
    mod architecture {}
    #[doc = include_str!("../docs/browser-client.md")]
    mod browser_client {}
    #[doc = include_str!("../docs/cluster.md")]
    mod cluster {}
    #[doc = include_str!("../docs/conformance.md")]
    mod conformance {}
    #[doc = include_str!("../docs/decisions.md")]
    mod decisions {}
    #[doc = include_str!("../docs/embedding.md")]
    mod embedding {}
    #[doc = include_str!("../docs/operations.md")]
    mod operations {}
    #[doc = include_str!("../docs/performance.md")]
    mod performance {}
    #[doc = include_str!("../docs/protocol.md")]
    mod protocol {}
    #[doc = include_str!("../docs/pumps.md")]
    mod pumps {}
    #[doc = include_str!("../docs/security.md")]
    mod security {}
}

pub use auth::{Authorizer, ConfigAuthorizer};
pub use broadcaster::{ConnectionStatus, History, MAX_HISTORY_PAGE};
pub use config::Config;
pub use error::Error;
pub use handle::{BatchLimit, HubHandle, Stats, Subscription};
pub use hub::Hub;
pub use peer::{ConnectionId, ConnectionInfo};
pub use protocol::{Event, Published, Seq};
pub use ws::Upgrader;

/// The JSON library events are made of, re-exported so that an application
/// can build and read event data (`pumphub::serde_json::Value`,
/// `pumphub::json!`) without a dependency of its own on a matching version.
pub use serde_json;
/// Build event data inline: `handle.publish("news", pumphub::json!({"title": "hi"}))`.
pub use serde_json::json;
