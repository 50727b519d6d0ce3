//! [`Lifecycle`]: the facts about a running hub that every thread may read
//! and none but `Hub` changes: whether it is shutting down, when it
//! started, its epoch. One per hub behind an `Arc`; nothing here is global,
//! so two hubs in one process never see each other's flag.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Facts about a running hub instance shared by all its threads.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    pub shutting_down: AtomicBool,
    pub started_at: Instant,
    pub epoch: String,
}
