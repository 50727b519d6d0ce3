//! `Hub`: a running hub instance. Binds the listeners the config asks for
//! (the WebSocket one, the HTTP one, both or neither), starts every thread,
//! hands out the [`Upgrader`] for connections the application accepts
//! itself, and runs the graceful shutdown.
//!
//! Threads a hub starts, and who ends them:
//!
//! ```text
//!   broadcaster  (1)        broadcaster.rs     ends on HubCommand::Stop
//!   acceptor     (0 or 1)   ws/acceptor.rs     ends when `stop_accepting` is set and it is woken
//!   read pumps   (1/client) ws/read_pump.rs    end when the peer closes or the write pump shuts the socket
//!   write pumps  (1/client) ws/write_pump.rs   end after the close handshake or the shutdown deadline
//!   http guard   (0 or 1)   http/guard.rs      ends when `HttpServer::stop` sets its flag and wakes it
//!   http conns   (≤128)     http/guard/        per HTTP connection (`http-conn-N`, and `http-resp-N`
//!                                              while relaying); end with it; joined by the guard
//!   http workers (N or 0)   http/routes.rs     end on tiny_http's `unblock()`
//! ```
//!
//! Clients handed over through the [`Upgrader`] get the same read and
//! write pumps; their threads are joined by `Hub::shutdown` itself.
//!
//! (tiny_http also runs its own accept thread and a small pool for its
//! connections; they end when its `Server` is dropped, the pool after up to
//! 5 s of idleness.)
//!
//! Nothing here is global: two `Hub`s in one process share no state.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use uuid::Uuid;

use crate::auth::{Authorizer, ConfigAuthorizer};
use crate::broadcaster::{Broadcaster, HubCommand, HubSettings, Lifecycle};
use crate::config::{os_connection_ceiling, Config};
use crate::engine::{Engine, EngineStatus};
use crate::error::Error;
use crate::handle::{BatchLimit, HubHandle};
use crate::http::HttpServer;
use crate::metrics::Metrics;
use crate::ws::{ConnectionLimiter, ConnectionThreads, ServerContext, Upgrader};

/// A running hub. Dropping it shuts it down gracefully.
///
/// ```no_run
/// use pumphub::{Config, Hub};
/// let hub = Hub::start(Config::default())?;
/// if let (Some(ws), Some(http)) = (hub.ws_addr(), hub.http_addr()) {
///     println!("WebSocket on {ws}, HTTP on {http}");
/// }
/// hub.handle().publish("news", pumphub::json!({"title": "hello"}))?;
/// hub.shutdown();
/// # Ok::<(), pumphub::Error>(())
/// ```
pub struct Hub {
    handle: HubHandle,
    context: Arc<ServerContext>,
    ws_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    stop_accepting: Arc<AtomicBool>,
    threads: Arc<ConnectionThreads>,
    upgrader: Upgrader,
    acceptor: Option<JoinHandle<()>>,
    broadcaster: Option<JoinHandle<()>>,
    http: Option<HttpServer>,
}

impl Hub {
    /// Bind the listeners `config` asks for and start serving, with the
    /// [`ConfigAuthorizer`] built from `config` (`--token`,
    /// `--token-secret`, `--token-allow-no-exp`, `--allow-client-publish`).
    ///
    /// # Errors
    /// [`Error::Bind`] if a listener cannot be bound; [`Error::Spawn`] if a
    /// thread cannot be started; [`Error::InvalidConfig`] if the token
    /// secrets cannot be used.
    pub fn start(config: Config) -> Result<Hub, Error> {
        let authorizer =
            ConfigAuthorizer::from_config(&config).map_err(|e| Error::InvalidConfig {
                setting: "token-secret",
                reason: e.to_string(),
            })?;
        Hub::start_with_authorizer(config, Arc::new(authorizer))
    }

    /// As [`start`](Self::start), with the application's own [`Authorizer`]
    /// deciding tokens and per-channel permissions.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_with_authorizer(
        config: Config,
        authorizer: Arc<dyn Authorizer>,
    ) -> Result<Hub, Error> {
        let ws_listener = bind_listener("websocket", config.ws_addr.as_deref())?;
        let http_listener = bind_listener("http", config.http_addr.as_deref())?;
        let ws_addr = ws_listener.as_ref().map(|(_, addr)| *addr);
        let http_addr = http_listener.as_ref().map(|(_, addr)| *addr);

        let metrics = Arc::new(Metrics::default());
        let (commands_tx, commands_rx) = crossbeam_channel::unbounded();
        let (engine, engine_status) = start_engine(&config, &commands_tx)?;
        let lifecycle = Arc::new(Lifecycle {
            shutting_down: AtomicBool::new(false),
            started_at: Instant::now(),
            epoch: Uuid::new_v4().hyphenated().to_string(),
            engine: engine_status,
        });
        let handle = HubHandle::new(
            commands_tx.clone(),
            metrics.clone(),
            lifecycle.clone(),
            config.queue_size,
            BatchLimit::for_queue(config.queue_size, config.queue_bytes),
        );

        let settings = HubSettings {
            history_size: config.history_size,
            history_bytes: config.history_bytes,
            max_channels: config.max_channels,
            channel_idle: (!config.channel_idle.is_zero()).then_some(config.channel_idle),
            max_subscriptions: config.max_subscriptions,
            heartbeat_ms: config.ping_interval.as_millis() as u64,
            epoch: lifecycle.epoch.clone(),
        };
        let broadcaster = Broadcaster::new(settings, metrics.clone(), commands_rx, engine);
        let broadcaster = spawn("broadcaster", move || broadcaster.run())?;

        // The default already fits (config/machine.rs), so this warns only
        // when someone asked for more than the machine can hold.
        let max_connections = match os_connection_ceiling() {
            Some((ceiling, why)) if ceiling < config.max_connections => {
                warn!(
                    "max-connections {} is more than this machine can hold: {why}; \
                     refusing connections (503) beyond {ceiling}",
                    config.max_connections
                );
                ceiling
            }
            _ => config.max_connections,
        };
        let context = Arc::new(ServerContext {
            limiter: ConnectionLimiter::new(max_connections, config.max_connections_per_ip),
            config,
            commands: commands_tx,
            metrics,
            lifecycle,
            authorizer,
        });
        let threads = ConnectionThreads::new(context.clone());
        let upgrader = Upgrader::new(threads.clone());
        let stop_accepting = Arc::new(AtomicBool::new(false));
        // From here on a failure must stop what already runs: `Hub`'s
        // drop does, so build it first and fill in the rest.
        let mut hub = Hub {
            handle,
            context,
            ws_addr,
            http_addr,
            stop_accepting,
            threads,
            upgrader,
            acceptor: None,
            broadcaster: Some(broadcaster),
            http: None,
        };
        if let Some((listener, _)) = http_listener {
            hub.http = Some(HttpServer::start(
                listener,
                hub.handle.clone(),
                &hub.context.config,
                ws_addr,
            )?);
        }
        if let Some((listener, _)) = ws_listener {
            let threads = hub.threads.clone();
            let stop = hub.stop_accepting.clone();
            hub.acceptor = Some(spawn("acceptor", move || {
                crate::ws::run_acceptor(listener, threads, stop)
            })?);
        }
        Ok(hub)
    }

    /// Remove the private socket directories (`$TMPDIR/pumphub-…`) that
    /// hubs of this user left behind when they could not clean up: killed
    /// with SIGKILL, or crashed. A directory whose socket still answers
    /// belongs to a live hub and stays. Returns how many were removed. The
    /// binary calls this at start; a hub that ends normally removes its own.
    pub fn remove_stale_socket_dirs() -> usize {
        crate::http::remove_stale_socket_dirs(&std::env::temp_dir())
    }

    /// A handle for publishing, subscribing and reading stats.
    pub fn handle(&self) -> HubHandle {
        self.handle.clone()
    }

    /// Hands the hub connections the application accepted itself, so the
    /// hub can serve WebSocket clients on the application's own port (with
    /// or without a listener of its own). See [`Upgrader`].
    pub fn upgrader(&self) -> Upgrader {
        self.upgrader.clone()
    }

    /// The bound WebSocket address (useful with port 0); `None` if the
    /// config asked for no WebSocket listener.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The bound HTTP address; `None` if the config asked for no HTTP
    /// listener.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Shut down gracefully and wait for every thread the hub started, in
    /// this order:
    ///
    /// 1. Mark the hub as shutting down: new handshakes and `POST /publish`
    ///    get 503, `/health` answers 503, the embedding API refuses work.
    /// 2. Ask the broadcaster to queue `shutdown` and Close 1001 for every
    ///    client, behind the events already queued, with a deadline of
    ///    `--shutdown-grace-ms`. In-process subscriptions end.
    /// 3. Wait until every connection thread has ended, or the deadline
    ///    passes. A write pump ends once its client answered the Close (or
    ///    did not, within 2 s); none writes past the deadline. Meanwhile
    ///    the acceptor still accepts, and the [`Upgrader`] still takes
    ///    connections, so late clients get their 503.
    /// 4. Stop the acceptor (wake its `accept` by connecting once) and join
    ///    it; it joins every connection thread it started. Shut the
    ///    [`Upgrader`] (it refuses from now on) and join the connection
    ///    threads of the clients handed over.
    /// 5. Stop and join the broadcaster.
    /// 6. Stop and join the HTTP workers. The HTTP listener answers (503 for
    ///    `/health`) until this last step.
    pub fn shutdown(mut self) {
        self.shutdown_now();
    }

    /// The steps of [`shutdown`](Self::shutdown); also run on drop, and
    /// when `start` fails half-way (then some parts never started).
    fn shutdown_now(&mut self) {
        let Some(broadcaster) = self.broadcaster.take() else {
            return; // already done
        };
        let config = &self.context.config;
        let grace = config.shutdown_grace;
        info!("shutting down (grace {} ms)", grace.as_millis());

        // 1.
        self.context
            .lifecycle
            .shutting_down
            .store(true, Ordering::Release);
        // 2.
        let deadline = Instant::now() + grace;
        let reconnect_ms = 1000;
        let _ = self.context.commands.send(HubCommand::BeginShutdown {
            deadline,
            reconnect_ms,
        });
        // 3.
        let left = self.threads.wait_for_none(deadline);
        if left > 0 {
            info!("{left} connections still closing at the end of the grace period");
        }
        // 4.
        if let Some(acceptor) = self.acceptor.take() {
            self.stop_accepting.store(true, Ordering::Release);
            if let Some(addr) = self.ws_addr {
                wake_acceptor(addr);
            }
            if acceptor.join().is_err() {
                error!("the acceptor thread panicked");
            }
        }
        self.upgrader.close();
        // 5.
        let _ = self.context.commands.send(HubCommand::Stop);
        if broadcaster.join().is_err() {
            error!("the broadcaster thread panicked");
        }
        // 6.
        if let Some(http) = self.http.take() {
            http.stop();
        }
        info!("shutdown complete");
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// Connect to our own listener once so its blocking `accept` returns and
/// sees the stop flag (the tiny_http idiom). A wildcard bind address is
/// reached through loopback.
fn wake_acceptor(addr: SocketAddr) {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
}

/// How many connections may wait in the kernel's accept queue. std's
/// `TcpListener::bind` uses 128, which a burst of clients overflows: the
/// kernel then drops their SYNs and they retry after a full second. The
/// kernel caps this at `net.core.somaxconn` (4096 on current kernels).
const LISTEN_BACKLOG: i32 = 4096;

/// Bind `listener` ("websocket" or "http") to `address`, if there is one.
fn bind_listener(
    listener: &'static str,
    address: Option<&str>,
) -> Result<Option<(TcpListener, SocketAddr)>, Error> {
    let Some(address) = address else {
        return Ok(None);
    };
    let bound = bind(address).map_err(|source| Error::Bind {
        listener,
        address: address.to_string(),
        source,
    })?;
    let addr = bound.local_addr().map_err(Error::Spawn)?;
    Ok(Some((bound, addr)))
}

/// Bind a listening TCP socket with our backlog (std offers no way to set it).
fn bind(address: &str) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let mut last_error = None;
    for addr in address.to_socket_addrs()? {
        let attempt = (|| {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok::<TcpListener, std::io::Error>(socket.into())
        })();
        match attempt {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("the address resolved to nothing")))
}

/// The engine `config` asks for, and its status: the memory engine, or
/// with `redis` set the shared log (its threads start connecting now; a
/// Redis that is down is not an error, the node keeps trying).
fn start_engine(
    config: &Config,
    commands: &crossbeam_channel::Sender<HubCommand>,
) -> Result<(Engine, Arc<EngineStatus>), Error> {
    let Some(url) = &config.redis else {
        return Ok((Engine::Memory, EngineStatus::local()));
    };
    #[cfg(feature = "redis")]
    {
        use crate::broadcaster::engine_sink;
        use crate::engine::redis::{RedisEngine, RedisSettings, StartError};
        use crate::engine::EngineState;

        let status = Arc::new(EngineStatus::with_state(EngineState::Connecting));
        let settings = RedisSettings::new(url, &config.redis_prefix, config.history_size);
        let sink = engine_sink(commands.clone());
        info!(
            "cluster mode: shared log in Redis at {}, prefix {:?}",
            without_password(url),
            config.redis_prefix
        );
        let engine = RedisEngine::start(&settings, sink, status.clone()).map_err(|e| match e {
            StartError::Url(e) => Error::InvalidConfig {
                setting: "redis",
                reason: format!("not a Redis URL: {e}"),
            },
            StartError::Spawn(e) => Error::Spawn(e),
        })?;
        Ok((Engine::Redis(engine), status))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (url, commands);
        Err(Error::InvalidConfig {
            setting: "redis",
            reason: "this build has no Redis support (cargo feature `redis`)".into(),
        })
    }
}

/// `url` without the user info, for logs.
#[cfg(feature = "redis")]
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn spawn<F: FnOnce() + Send + 'static>(name: &str, body: F) -> Result<JoinHandle<()>, Error> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map_err(Error::Spawn)
}
