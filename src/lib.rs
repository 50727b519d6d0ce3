//! pumphub: a small, synchronous WebSocket event hub.
//!
//! Clients connect over WebSocket, subscribe to channels, and receive
//! sequenced events that a backend publishes (over HTTP, through this
//! library, from stdin, or from other clients). Thread per connection, no
//! async runtime: every moving part is a plain thread and every hand-off a
//! crossbeam channel, so the code reads top to bottom.
//!
//! ```text
//!             HTTP POST /publish        HubHandle::publish        client `publish`
//!                  (http.rs)              (handle.rs)             (read_pump.rs)
//!                      \                      |                      /
//!                       '------------ HubCommand (command.rs) ------'
//!                                            |
//!                               broadcaster thread (hub.rs)
//!                       seq, history (history.rs), fan-out with try-push
//!                                            |
//!                    one OutboundQueue per client (outbound.rs)
//!                                            |
//!                            write pump thread (write_pump.rs)
//!                                            |
//!                                         socket
//! ```
//!
//! # Embedding
//!
//! ```
//! use pumphub::{Config, Hub};
//! use serde_json::json;
//!
//! let mut config = Config::default();
//! config.ws_addr = "127.0.0.1:0".into();   // any free port
//! config.http_addr = "127.0.0.1:0".into();
//! let hub = Hub::start(config)?;
//! let handle = hub.handle();
//!
//! let subscription = handle.subscribe(&["prices"])?;
//! let published = handle.publish("prices", json!({"btc": 1}))?;
//! assert_eq!(published.seq.0, 1);
//! assert_eq!(published.delivered, 1);
//!
//! let event = subscription.recv().unwrap();
//! assert_eq!(event.seq, published.seq);
//! assert_eq!(event.data, json!({"btc": 1}));
//!
//! hub.shutdown(); // graceful: clients get `shutdown`, then Close 1001
//! # Ok::<(), pumphub::Error>(())
//! ```
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
//! config.ws_addr = "127.0.0.1:0".into();
//! config.http_addr = "127.0.0.1:0".into();
//! let hub = Hub::start(config)?;
//!
//! let url = format!("ws://{}/ws", hub.ws_addr());
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

mod acceptor;
mod admission;
pub mod auth;
pub mod client;
mod command;
pub mod config;
pub mod connection;
// A conformance fixture (Autobahn, tests/it/echo.rs), not embedding API.
#[doc(hidden)]
pub mod echo;
mod error;
pub mod event;
// Entry points for fuzz/ and tests/it/fuzz_inputs.rs, not embedding API.
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod handshake;
mod history;
mod http;
mod http_guard;
mod http_head;
mod hub;
mod metrics;
mod outbound;
pub mod protocol;
mod rate_limit;
mod read_pump;
mod server;
mod stats;
pub mod stdin_feed;
mod write_pump;

pub use auth::{Authorizer, ConfigAuthorizer};
pub use config::Config;
pub use connection::ConnectionId;
pub use error::Error;
pub use event::{Event, Seq};
pub use handle::{HubHandle, Published, Stats, Subscription};
pub use server::Hub;
pub use stats::ConnectionStatus;
