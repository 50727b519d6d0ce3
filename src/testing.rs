//! Test fixtures that are not embedding API, compiled only with the cargo
//! feature `testing`: the echo server that the conformance suite
//! (scripts/autobahn.sh, `examples/echo.rs`) and `tests/it/echo.rs` drive,
//! and the entry points `fuzz/` and `tests/it/fuzz_inputs.rs` feed. The
//! tests, the examples and the fuzz crate turn the feature on; a plain
//! `cargo build` leaves it out.

pub mod echo;
pub mod fuzzing;

/// Stack size of a read pump thread, so fuzz tests run the read side with
/// the stack it has in the hub.
pub use crate::ws::READ_PUMP_STACK;

/// The sequencing engines, driven directly by `tests/it/engine_redis.rs`
/// against a real redis-server.
pub mod engine {
    #[cfg(feature = "redis")]
    pub use crate::engine::redis::{RedisEngine, RedisSettings, StartError};
    pub use crate::engine::{
        EngineInput, EngineState, EngineStatus, Entry, Item, Replay, Sink, Unavailable,
    };
}
