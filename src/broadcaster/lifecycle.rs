//! [`Lifecycle`]: the facts about a running hub that every thread may read
//! and none but `Hub` changes: whether it is shutting down, when it
//! started, its epoch, and the engine's status (which only the engine's
//! threads write). One per hub behind an `Arc`; nothing here is global,
//! so two hubs in one process never see each other's flag.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::EngineStatus;

/// Facts about a running hub instance shared by all its threads.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    pub shutting_down: AtomicBool,
    pub started_at: Instant,
    /// This process's own epoch; with the shared log, the hub's epoch is
    /// `engine.epoch()` once joined.
    pub epoch: String,
    /// `local` for the memory engine; Redis's state in cluster mode.
    pub engine: Arc<EngineStatus>,
}
