//! pumphub's integration tests: one binary (faster to link on a 2-core CI),
//! one file per behaviour area. Every test starts its own hub on
//! OS-assigned ports, so all of them run in parallel.

mod support;

// welcome, subscribe/unsubscribe replies, request errors
mod protocol;
// HTTP and library publishing, ordering under concurrency
mod publish;
// the echo server Autobahn grades: the hub's pumps without the hub
mod echo;
