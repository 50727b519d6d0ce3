//! The operator surface on its own port, served by tiny_http:
//! `GET /health`, `GET /metrics`, `GET /status`, `GET /`. (`POST /publish`
//! is answered before tiny_http, by the guard: `publish.rs`.)
//!
//! A few worker threads (`--http-workers`) take requests from tiny_http's
//! queue and talk to the hub only through a [`HubHandle`], like any
//! embedding application would. They stop when `HttpServer::stop` calls
//! tiny_http's `unblock()` once per worker.
//!
//! tiny_http itself listens only on a private Unix socket: the
//! public listener belongs to [`HttpGuard`], which
//! bounds what a request may be before forwarding it (see that module for
//! why). So a request reaching a worker has a head under 16 KiB and a body
//! no larger than the publish limit.
//!
//! Errors follow one shape, built by [`error_response`]:
//! `{"error":{"code":…,"message":…}}` with the HTTP status.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use log::{debug, error};
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

use super::guard::{HttpGuard, InternalSocket};
use super::publish::PublishRoute;
use crate::auth::{bearer_token, constant_time_eq};
use crate::config::Config;
use crate::error::Error;
use crate::handle::HubHandle;
use crate::protocol::unix_ms;

/// The live page served at `GET /`.
const PAGE: &str = include_str!("page.html");

/// The HTTP listener: the guard on the public port, tiny_http behind it,
/// and the worker threads.
pub(crate) struct HttpServer {
    guard: HttpGuard,
    server: Arc<Server>,
    workers: Vec<JoinHandle<()>>,
    /// The private directory of tiny_http's socket; removed after it.
    socket: InternalSocket,
}

/// What every worker needs.
struct HttpContext {
    hub: HubHandle,
    publish_key: Option<String>,
    page: String,
}

type HttpResponse = Response<std::io::Cursor<Vec<u8>>>;

impl HttpServer {
    /// Serve HTTP on `public`: start tiny_http on a private Unix socket
    /// with `config.http_workers` workers, and the guard in front.
    pub fn start(
        public: TcpListener,
        hub: HubHandle,
        config: &Config,
        ws_addr: SocketAddr,
    ) -> Result<HttpServer, Error> {
        // Failing here is a bind failure (exit 1), of our private socket.
        let internal = |source| Error::Bind {
            listener: "internal http",
            address: std::env::temp_dir().display().to_string(),
            source,
        };
        let socket = InternalSocket::create().map_err(internal)?;
        let server = Server::http_unix(&socket.path())
            .map_err(|e| internal(std::io::Error::other(e.to_string())))?;
        let server = Arc::new(server);
        let max_body = config.max_message_size.saturating_mul(16);
        let context = Arc::new(HttpContext {
            hub,
            publish_key: config.publish_key.clone(),
            page: PAGE
                .replace("{{WS_PORT}}", &ws_addr.port().to_string())
                .replace("{{VERSION}}", env!("CARGO_PKG_VERSION")),
        });
        let mut workers = Vec::new();
        for n in 0..config.http_workers.max(1) {
            let server = server.clone();
            let context = context.clone();
            let worker = thread::Builder::new()
                .name(format!("http-worker-{n}"))
                .spawn(move || {
                    // `recv` fails once `unblock()` is called: time to stop.
                    while let Ok(request) = server.recv() {
                        serve(&context, request);
                    }
                })
                .map_err(Error::Spawn)?;
            workers.push(worker);
        }
        let publish = PublishRoute::new(
            context.hub.clone(),
            config.publish_key.clone(),
            max_body,
            config.queue_size,
        );
        let guard = HttpGuard::start(
            public,
            &socket.path(),
            publish,
            max_body,
            config.handshake_timeout,
        )?;
        Ok(HttpServer {
            guard,
            server,
            workers,
            socket,
        })
    }

    /// Stop the guard (it finishes the requests it is relaying, so tiny_http
    /// goes on answering meanwhile), then the workers, and wait for them.
    pub fn stop(self) {
        self.guard.stop();
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers {
            if worker.join().is_err() {
                error!("an HTTP worker panicked");
            }
        }
        // The server first (it closes and removes its socket), then the
        // private directory the socket was in.
        drop(self.server);
        drop(self.socket);
    }
}

fn serve(context: &HttpContext, request: Request) {
    let method = request.method().clone();
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let response = match (&method, path.as_str()) {
        (Method::Get, "/health") => health(context),
        (Method::Get, "/metrics") => metrics(context),
        (Method::Get, "/status") => status(context, &request),
        (Method::Get, "/") => html(&context.page),
        (_, "/health" | "/metrics" | "/status" | "/publish" | "/") => {
            error_response(405, "method_not_allowed", "method not allowed on this path")
        }
        _ => error_response(404, "not_found", "no such path"),
    };
    debug!("http {method} {path} -> {}", response.status_code().0);
    let _ = request.respond(response);
}

fn health(context: &HttpContext) -> HttpResponse {
    let hub = &context.hub;
    let shutting_down = hub.is_shutting_down();
    let seq = hub.hub_stats().map(|s| s.seq.0).ok();
    let status = if shutting_down || seq.is_none() {
        "shutting_down"
    } else {
        "healthy"
    };
    let body = json!({
        "status": status,
        "connections": {"active": hub.metrics().connections_active()},
        "seq": seq.unwrap_or(0),
        "uptime_s": hub.uptime().as_secs(),
        "timestamp": unix_ms(),
    });
    json_response(if status == "healthy" { 200 } else { 503 }, &body)
}

fn metrics(context: &HttpContext) -> HttpResponse {
    match context.hub.render_metrics() {
        Ok(text) => Response::from_data(text.into_bytes()).with_header(header(
            "Content-Type",
            "text/plain; version=0.0.4; charset=utf-8",
        )),
        Err(_) => error_response(503, "shutting_down", "the hub has stopped"),
    }
}

fn status(context: &HttpContext, request: &Request) -> HttpResponse {
    if !authorized(context, request) {
        return unauthorized();
    }
    let hub = &context.hub;
    let (Ok(stats), Ok(connections)) = (hub.stats(), hub.connections()) else {
        return error_response(503, "shutting_down", "the hub has stopped");
    };
    let body = json!({
        "summary": {
            "active": stats.connections_active,
            "total": stats.connections_total,
            "peak": stats.connections_peak,
            "channels": stats.channels,
            "seq": stats.seq.0,
            "events_published": stats.events_published,
            "events_delivered": stats.events_delivered,
            "uptime_s": stats.uptime.as_secs(),
        },
        "connections": connections,
    });
    json_response(200, &body)
}

/// True if no publish key is set, or the request presents it.
fn authorized(context: &HttpContext, request: &Request) -> bool {
    let Some(key) = &context.publish_key else {
        return true;
    };
    request
        .headers()
        .iter()
        .filter(|h| h.field.equiv("Authorization"))
        .filter_map(|h| bearer_token(h.value.as_str()))
        .any(|token| constant_time_eq(token.as_bytes(), key.as_bytes()))
}

fn unauthorized() -> HttpResponse {
    error_response(
        401,
        "unauthorized",
        "send Authorization: Bearer <publish key>",
    )
    .with_header(header("WWW-Authenticate", "Bearer"))
}

/// The one error shape: `{"error":{"code":…,"message":…}}`.
fn error_response(status: u16, code: &str, message: &str) -> HttpResponse {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    Response::from_data(body.to_string().into_bytes())
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
}

fn html(page: &str) -> HttpResponse {
    Response::from_data(page.as_bytes().to_vec())
        .with_header(header("Content-Type", "text/html; charset=utf-8"))
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII literals chosen above, so this cannot fail.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}
