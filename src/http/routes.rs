//! The operator surface on its own port, served by tiny_http:
//! `GET /health`, `GET /metrics`, `GET /status`, `GET /history`, `GET /`
//! and `GET /pumphub.js`. (`POST /publish` is answered before tiny_http,
//! by the guard: `publish.rs`.)
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
use crate::broadcaster::MAX_HISTORY_PAGE;
use crate::config::Config;
use crate::error::Error;
use crate::handle::HubHandle;
use crate::protocol::{is_valid_channel_name, unix_ms, ErrorCode, Seq};
use crate::request_head::percent_decode;

/// The live page served at `GET /`.
const PAGE: &str = include_str!("page.html");

/// The browser client at `GET /pumphub.js`: the live page loads it, and so
/// may any web page. Served as is (no substitution), so it stays the file
/// in the repository that its documentation describes.
const CLIENT_SCRIPT: &str = include_str!("pumphub.js");

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
    /// The byte budget of a `/history` answer (as of a publish body).
    max_body: usize,
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
        ws_addr: Option<SocketAddr>,
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
            max_body,
            page: fill_page(
                PAGE,
                &[
                    // Without a WebSocket listener of the hub's own the page
                    // falls back to its default URL, which the operator edits.
                    (
                        "{{WS_PORT}}",
                        &ws_addr.map_or_else(String::new, |a| a.port().to_string()),
                    ),
                    ("{{VERSION}}", env!("CARGO_PKG_VERSION")),
                ],
            ),
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
        let publish = PublishRoute::new(context.hub.clone(), config.publish_key.clone(), max_body);
        let guard = HttpGuard::start(
            public,
            &socket.path(),
            publish,
            max_body,
            config.handshake_timeout,
            config.http_max_connections_per_ip,
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
    // HEAD is answered as GET (tiny_http leaves the body out for HEAD).
    let as_get = matches!(method, Method::Get | Method::Head);
    let response = match (&method, path.as_str()) {
        (_, "/health") if as_get => health(context),
        (_, "/metrics") if as_get => metrics(context),
        (_, "/status") if as_get => status(context, &request),
        (_, "/history") if as_get => history(context, &request),
        (_, "/") if as_get => html(&context.page),
        (_, "/pumphub.js") if as_get => javascript(CLIENT_SCRIPT),
        (_, "/health" | "/metrics" | "/status" | "/publish" | "/history" | "/" | "/pumphub.js") => {
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
    let engine = hub.engine_status();
    // A node that cannot reach the shared log cannot publish: a load
    // balancer should send new clients elsewhere.
    let status = if shutting_down || seq.is_none() {
        "shutting_down"
    } else if !engine.is_serving() {
        "unavailable"
    } else {
        "healthy"
    };
    let body = json!({
        "status": status,
        "engine": engine.describe(),
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
        "engine": hub.engine_status().describe(),
        "connections": connections,
    });
    json_response(200, &body)
}

/// Events on one `GET /history` page unless `limit` says otherwise.
const HISTORY_DEFAULT_LIMIT: usize = 100;

/// `GET /history?channel=NAME&since=SEQ&limit=N`: kept events of one
/// channel after `since`, oldest first, as the same objects as WebSocket
/// `event` frames; with `complete`, `oldest` (when not complete), `more`
/// and the hub's `seq`. Behind the publish key, like `/status`.
///
/// The answer is bounded: at most `limit` events (1 to
/// [`MAX_HISTORY_PAGE`], default 100), and events stop once they pass the
/// publish body limit in bytes (one event always fits), with `more` set.
fn history(context: &HttpContext, request: &Request) -> HttpResponse {
    if !authorized(context, request) {
        return unauthorized();
    }
    let bad = |message: &str| error_response(400, ErrorCode::BadMessage.as_str(), message);
    let query = request.url().split_once('?').map_or("", |(_, q)| q);
    let (mut channel, mut since, mut limit) = (None, 0, HISTORY_DEFAULT_LIMIT);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(value) = percent_decode(value) else {
            return bad("malformed %-escape in the query");
        };
        match name {
            "channel" => channel = Some(value),
            "since" => match value.parse() {
                Ok(seq) => since = seq,
                Err(_) => return bad("`since` must be a whole number"),
            },
            "limit" => match value.parse() {
                Ok(n) if (1..=MAX_HISTORY_PAGE).contains(&n) => limit = n,
                _ => return bad(&format!("`limit` must be 1 to {MAX_HISTORY_PAGE}")),
            },
            _ => {}
        }
    }
    let Some(channel) = channel else {
        return bad("missing `channel`: GET /history?channel=NAME&since=SEQ&limit=N");
    };
    if !is_valid_channel_name(&channel) {
        return error_response(
            400,
            ErrorCode::BadChannel.as_str(),
            "invalid channel name: use 1-128 of A-Z a-z 0-9 _ . : -",
        );
    }
    let mut page = match context.hub.history(&channel, Seq(since), limit) {
        Ok(page) => page,
        Err(_) => return error_response(503, "shutting_down", "the hub has stopped"),
    };
    // Bound the body by bytes too: stop before the event that would pass
    // the budget, but keep at least one so that paging always advances.
    let mut bytes = 0;
    let fits = page
        .frames()
        .take_while(|frame| {
            bytes += frame.len() + 1;
            bytes <= context.max_body || bytes == frame.len() + 1
        })
        .count();
    page.truncate(fits);
    let mut body = String::with_capacity(bytes.min(context.max_body) + 256);
    body.push_str("{\"channel\":");
    body.push_str(&Value::from(channel).to_string());
    body.push_str(&format!(",\"since\":{since},\"events\":["));
    for (n, frame) in page.frames().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(frame);
    }
    body.push_str(&format!("],\"complete\":{}", page.complete));
    if let Some(oldest) = page.oldest {
        body.push_str(&format!(",\"oldest\":{}", oldest.0));
    }
    body.push_str(&format!(",\"more\":{},\"seq\":{}}}", page.more, page.seq.0));
    Response::from_data(body.into_bytes())
        .with_status_code(200)
        .with_header(header("Content-Type", "application/json"))
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

/// The page with its placeholders filled in, except inside HTML comments:
/// the page's own header comment names the placeholders to explain them,
/// and a reader of the served source should still see their names there.
fn fill_page(page: &str, values: &[(&str, &str)]) -> String {
    let fill = |text: &str| {
        values
            .iter()
            .fold(text.to_string(), |text, (placeholder, value)| {
                text.replace(placeholder, value)
            })
    };
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&fill(&rest[..start]));
        let end = rest[start..]
            .find("-->")
            .map_or(rest.len(), |end| start + end + "-->".len());
        out.push_str(&rest[start..end]);
        rest = &rest[end..];
    }
    out.push_str(&fill(rest));
    out
}

fn javascript(script: &str) -> HttpResponse {
    Response::from_data(script.as_bytes().to_vec())
        .with_header(header("Content-Type", "text/javascript; charset=utf-8"))
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII literals chosen above, so this cannot fail.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_filled_in_but_its_comments_are_not() {
        let page = fill_page(PAGE, &[("{{WS_PORT}}", "9123"), ("{{VERSION}}", "9.9.9")]);
        assert!(page.contains("9123") && page.contains("9.9.9"));
        // Outside comments, no placeholder is left.
        let mut outside = page.clone();
        while let Some(start) = outside.find("<!--") {
            let end = outside[start..]
                .find("-->")
                .map_or(outside.len(), |e| start + e + 3);
            outside.replace_range(start..end, "");
        }
        assert!(!outside.contains("{{"), "a placeholder was left unfilled");
        // Inside them, the text is as written.
        let comments = |text: &str| -> Vec<String> {
            text.split("<!--")
                .skip(1)
                .map(|c| c.split("-->").next().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(comments(&page), comments(PAGE));
        let filled = fill_page(
            "a {{X}} <!-- {{X}} --> b {{X}} <!-- open",
            &[("{{X}}", "1")],
        );
        assert_eq!(filled, "a 1 <!-- {{X}} --> b 1 <!-- open");
    }
}
