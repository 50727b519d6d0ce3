//! pumphub: a small, synchronous WebSocket event hub.

pub mod config;
