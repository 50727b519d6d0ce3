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
//!          (http/routes.rs)             (handle.rs)            (ws/read_pump.rs)
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
// 2. counters, access checks, and turning connections away at accept
pub mod auth;
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

pub use auth::{Authorizer, ConfigAuthorizer};
pub use broadcaster::ConnectionStatus;
pub use config::Config;
pub use error::Error;
pub use handle::{BatchLimit, HubHandle, Stats, Subscription};
pub use hub::Hub;
pub use peer::{ConnectionId, ConnectionInfo};
pub use protocol::{Event, Published, Seq};
