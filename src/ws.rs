//! One WebSocket client's life, from the accepted TCP connection to its
//! cleanup. Reading order:
//!
//! ```text
//!   acceptor.rs    the listener thread: accept, cap pending handshakes, spawn
//!   handover.rs    the Upgrader: connections the application accepted itself
//!   admission.rs   connection limits (total and per address), the OS ceiling
//!   handshake.rs   the HTTP upgrade: path, origin, token, limits -> 101 or a refusal
//!   serve.rs       runs the connection: handshake, register, both pumps, cleanup
//!   read_pump.rs   reads frames, answers what it can, sends the rest to the broadcaster
//!   write_pump.rs  the only writer of the socket: drains the outbound queue, pings
//!   done.rs        the done channel from the read pump to the write pump
//!   socket.rs      the shared socket, tungstenite settings, thread stack sizes
//!   rate_limit.rs  the per-connection token bucket
//! ```
//!
//! [`ServerContext`] is what all of these share: one per hub, behind an
//! `Arc`, built by `Hub::start`. The layer below is the broadcaster (its
//! commands and the outbound queue); nothing here imports `hub.rs` or
//! `http/`.

mod acceptor;
mod admission;
mod done;
mod handover;
mod handshake;
mod rate_limit;
mod read_pump;
mod serve;
mod socket;
mod write_pump;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::auth::Authorizer;
use crate::broadcaster::{HubCommand, Lifecycle};
use crate::config::Config;
use crate::metrics::Metrics;

pub(crate) use acceptor::{run as run_acceptor, ConnectionThreads};
pub(crate) use admission::ConnectionLimiter;
pub use handover::Upgrader;
#[cfg(feature = "testing")]
pub use socket::READ_PUMP_STACK;
#[cfg(feature = "testing")]
pub(crate) use {
    done::{Done, DoneSender},
    handshake::{check_query, check_request_head},
    read_pump::{done_for, ReadPump},
    socket::{read_config, write_side, ReadSide},
    write_pump::WritePump,
};

/// What connection threads share: settings, the broadcaster's command
/// channel, counters, limits and the authorizer. One per hub, behind an
/// `Arc`; nothing in it changes after start except atomics and the limiter.
pub(crate) struct ServerContext {
    pub config: Config,
    pub commands: Sender<HubCommand>,
    pub metrics: Arc<Metrics>,
    pub lifecycle: Arc<Lifecycle>,
    pub limiter: Arc<crate::ws::admission::ConnectionLimiter>,
    pub authorizer: Arc<dyn Authorizer>,
}

impl ServerContext {
    pub fn is_shutting_down(&self) -> bool {
        self.lifecycle.shutting_down.load(Ordering::Acquire)
    }
}
