//! `Hub`: a running hub instance. Binds both listeners, starts every thread,
//! and runs the graceful shutdown.
//!
//! Threads a hub starts, and who ends them:
//!
//! ```text
//!   broadcaster  (1)        broadcaster.rs     ends on HubCommand::Stop
//!   acceptor     (1)        ws/acceptor.rs     ends when `stop_accepting` is set and it is woken
//!   read pumps   (1/client) ws/read_pump.rs    end when the peer closes or the write pump shuts the socket
//!   write pumps  (1/client) ws/write_pump.rs   end after the close handshake or the shutdown deadline
//!   http guard   (1)        http/guard.rs      ends when `HttpServer::stop` sets its flag and wakes it
//!   http conns   (≤128)     http/guard/        per HTTP connection (`http-conn-N`, and `http-resp-N`
//!                                              while relaying); end with it; joined by the guard
//!   http workers (N)        http/routes.rs     end on tiny_http's `unblock()`
//! ```
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
use crate::config::Config;
use crate::error::Error;
use crate::handle::{BatchLimit, HubHandle};
use crate::http::HttpServer;
use crate::metrics::Metrics;
use crate::ws::{os_connection_ceiling, ConnectionLimiter, ServerContext, ThreadGauge};

/// A running hub. Dropping it shuts it down gracefully.
///
/// ```no_run
/// use pumphub::{Config, Hub};
/// let hub = Hub::start(Config::default())?;
/// println!("WebSocket on {}, HTTP on {}", hub.ws_addr(), hub.http_addr());
/// hub.handle().publish("news", serde_json::json!({"title": "hello"}))?;
/// hub.shutdown();
/// # Ok::<(), pumphub::Error>(())
/// ```
pub struct Hub {
    handle: HubHandle,
    context: Arc<ServerContext>,
    ws_addr: SocketAddr,
    http_addr: SocketAddr,
    stop_accepting: Arc<AtomicBool>,
    live_connections: Arc<ThreadGauge>,
    acceptor: Option<JoinHandle<()>>,
    broadcaster: Option<JoinHandle<()>>,
    http: Option<HttpServer>,
}

impl Hub {
    /// Bind both listeners and start serving, with the [`ConfigAuthorizer`]
    /// built from `config` (`--token`, `--allow-client-publish`).
    ///
    /// # Errors
    /// [`Error::Bind`] if a listener cannot be bound; [`Error::Spawn`] if a
    /// thread cannot be started.
    pub fn start(config: Config) -> Result<Hub, Error> {
        let authorizer = ConfigAuthorizer::new(config.token.clone(), config.allow_client_publish);
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
        let ws_listener = bind(&config.ws_addr).map_err(|source| Error::Bind {
            listener: "websocket",
            address: config.ws_addr.clone(),
            source,
        })?;
        let ws_addr = ws_listener.local_addr().map_err(Error::Spawn)?;
        let http_listener = bind(&config.http_addr).map_err(|source| Error::Bind {
            listener: "http",
            address: config.http_addr.clone(),
            source,
        })?;
        let http_addr = http_listener.local_addr().map_err(Error::Spawn)?;

        let metrics = Arc::new(Metrics::default());
        let lifecycle = Arc::new(Lifecycle {
            shutting_down: AtomicBool::new(false),
            started_at: Instant::now(),
            epoch: Uuid::new_v4().hyphenated().to_string(),
        });
        let (commands_tx, commands_rx) = crossbeam_channel::unbounded();
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
        let broadcaster = Broadcaster::new(settings, metrics.clone(), commands_rx);
        let broadcaster = spawn("broadcaster", move || broadcaster.run())?;

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
        let http = HttpServer::start(http_listener, handle.clone(), &context.config, ws_addr)?;

        let stop_accepting = Arc::new(AtomicBool::new(false));
        let live_connections = Arc::new(ThreadGauge::default());
        let acceptor = {
            let context = context.clone();
            let stop = stop_accepting.clone();
            let live = live_connections.clone();
            spawn("acceptor", move || {
                crate::ws::run_acceptor(ws_listener, context, stop, live)
            })?
        };
        Ok(Hub {
            handle,
            context,
            ws_addr,
            http_addr,
            stop_accepting,
            live_connections,
            acceptor: Some(acceptor),
            broadcaster: Some(broadcaster),
            http: Some(http),
        })
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

    /// The bound WebSocket address (useful with port 0).
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
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
    ///    the acceptor still accepts, so late clients get their 503.
    /// 4. Stop the acceptor (wake its `accept` by connecting once) and join
    ///    it; it joins every connection thread that is left.
    /// 5. Stop and join the broadcaster.
    /// 6. Stop and join the HTTP workers. The HTTP listener answers (503 for
    ///    `/health`) until this last step.
    pub fn shutdown(mut self) {
        self.shutdown_now();
    }

    /// The steps of [`shutdown`](Self::shutdown); also run on drop.
    fn shutdown_now(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
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
        let left = self.live_connections.wait_for_none(deadline);
        if left > 0 {
            info!("{left} connections still closing at the end of the grace period");
        }
        // 4.
        self.stop_accepting.store(true, Ordering::Release);
        wake_acceptor(self.ws_addr);
        if acceptor.join().is_err() {
            error!("the acceptor thread panicked");
        }
        // 5.
        let _ = self.context.commands.send(HubCommand::Stop);
        if let Some(broadcaster) = self.broadcaster.take() {
            if broadcaster.join().is_err() {
                error!("the broadcaster thread panicked");
            }
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

fn spawn<F: FnOnce() + Send + 'static>(name: &str, body: F) -> Result<JoinHandle<()>, Error> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map_err(Error::Spawn)
}
