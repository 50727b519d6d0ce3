//! pumphub's integration tests: one binary (faster to link on a 2-core CI),
//! one file per behaviour area. Every test starts its own hub on
//! OS-assigned ports, so all of them run in parallel.

mod support;
// a real redis-server per test, for the cluster tests
mod redis_support;

// welcome, subscribe/unsubscribe replies, request errors
mod protocol;
// HTTP and library publishing, ordering under concurrency
mod publish;
// replay with since, complete, URL subscribe, resume
mod replay;
// GET /history: kept events, complete/oldest/more, bounded, behind the key
mod history;
// 4008 for slow consumers, resume after it, stalled TCP clients
mod slow_consumer;
// graceful shutdown: frames, 503s, every thread ends
mod shutdown;
// heartbeat, message-size limit, handshake that never comes
mod heartbeat;
// the live page (GET /) and pumphub.js in headless Chromium, driven over CDP
mod browser;
// the echo server Autobahn grades: the hub's pumps without the hub
mod echo;
// protocol violations: Close 1002/1007/1009 after what was already queued
mod violations;
// generated hostile input for the parsers (fuzz/ on stable, bounded)
mod fuzz_inputs;
// GET /metrics: Prometheus text format, contract names, counters under traffic
mod metrics;
// GET /status and /health: every field, the publish key on /status
mod status;
// --token, auth, the Authorizer trait deciding subscribe and publish
mod auth;
// --token-secret: signed tokens, their claims, expiry, refresh, rotation
mod signed_tokens;
// section 6 limits: 503/429/403/404, deadlines, raw bad frames, rate limit
mod limits;
// the HTTP guard: absurd Content-Length, huge heads, slowloris
mod http_exposure;
// a hostile mix of aborts, garbage and half frames; events and counts survive
mod hostile;
// --trusted-proxy: X-Forwarded-For / Forwarded believed only from trusted peers
mod forwarded;
// the binary: --help, --check-config, exit codes, signals, log lines, --stdin
mod cli;
// pumphub::client: resume after cuts, gaps reported, shutdown, giving up
mod client;
// the examples' binaries, run briefly against a hub
mod examples;
// POST /publish answered by the guard: shape, keep-alive, deadlines, concurrency
mod http_publish;
// pipelined WebSocket requests and HTTP publishes: order, rate limit, 4008
mod pipelining;
// embedding: no listeners, handed-over connections, one port, in-process resume
mod embedding;
// The import layers of src/ (docs/architecture.md) hold.
mod layers;
// README and docs/: every block tagged, the Quick start and Python snippets as written
mod docs;
// clients that never read: queues and replays bounded in bytes (the binary's RSS)
mod budgets;
// channel lifetime: --max-channels, --channel-idle-ms, --history-bytes
mod channels;
// per-address limits at accept on both ports; refusals never block accepting
mod front_doors;
// the Redis engine's pieces against a real redis-server
#[cfg(feature = "redis")]
mod engine_redis;
// cluster mode: several pumphub processes on one real redis-server
#[cfg(feature = "redis")]
mod cluster;
