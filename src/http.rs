//! The operator surface on its own port: health, metrics, status, publish
//! and the live page.
//!
//! ```text
//!   guard.rs          owns the public listener: bounds every request's head,
//!     guard/client.rs   body and time, then relays it over a private Unix
//!     guard/check.rs    socket to tiny_http (one thread per HTTP connection)
//!     guard/pipeline.rs
//!   publish.rs        POST /publish, answered by the guard's connection threads
//!   routes.rs         tiny_http workers: one function per other endpoint
//!   page.html         the live page served at `GET /`
//!   pumphub.js        the browser client served at `GET /pumphub.js` (the page uses it)
//! ```
//!
//! This layer reaches the hub only through the public
//! [`HubHandle`](crate::HubHandle), like any embedding application would;
//! it never sends broadcaster commands itself.

mod guard;
mod publish;
mod routes;

pub(crate) use guard::remove_stale_socket_dirs;
pub(crate) use routes::HttpServer;
