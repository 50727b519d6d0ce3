//! pumphub: a small, synchronous WebSocket event hub.
