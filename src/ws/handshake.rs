//! The WebSocket upgrade: read the HTTP request, decide, answer.
//!
//! Runs on the connection's own thread, before its pumps exist, under an
//! absolute deadline counted from accept (`--handshake-timeout-ms`), so a
//! silent or slow client delays nobody else. We parse the request ourselves
//! (with httparse) instead of calling tungstenite's `accept`: tungstenite
//! writes nothing for a request that is not an upgrade, and the contract
//! wants a precise status for each failure, checked in this order
//! (docs/protocol.md, "Connecting: the upgrade"):
//!
//! 1. not HTTP, or not GET → 400
//! 2. path other than `/ws` → 404 (on the hub's own listener only: a
//!    connection the application handed over was routed by the
//!    application, so its path is the application's business)
//! 3. not a WebSocket upgrade → 400
//! 4. shutting down, or `--max-connections` reached → 503
//! 5. `--max-connections-per-ip` reached → 429
//! 6. `Origin` not allowed → 403
//! 7. bad `?channels=` / `?since=` → 400
//! 8. wrong token → 401 (the log line says why: `expired`,
//!    `bad_signature`, ...; `pumphub_token_refusals_total` counts it)
//!
//! Then we write `101 Switching Protocols` and hand any bytes that came
//! after the request to tungstenite (`WebSocket::from_partially_read`).
//!
//! A connection the application handed over may come with the bytes it
//! already read (the request head, perhaps more): reading starts from them,
//! under the same bounds, and every check above runs on them the same way.
//!
//! Every refusal is counted in `Metrics` under its `RejectReason`, and
//! logged by [`log_refusal`]: at debug each, as a throttled warning per
//! reason, so a flood of bad handshakes cannot flood the log.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use tungstenite::handshake::derive_accept_key;

use super::admission::{ConnectionSlot, LimitExceeded};
use super::ServerContext;
use crate::auth::{bearer_token, AuthSession, Identity, Refusal as TokenRefusal, RefusalReason};
use crate::metrics::RejectReason;
use crate::peer::{describe_client, forwarded_client, ConnectionId, ConnectionInfo};
use crate::protocol::{is_valid_channel_name, unix_ms};
use crate::request_head::{
    find_head_end, percent_decode, read_some, reason_phrase, MAX_HEAD, MAX_HEADERS,
};

/// How a connection reached the hub, which decides the one check that
/// differs: the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The hub's own listener: the request must be for `/ws` (else 404).
    Listener,
    /// Handed over by the application (`Upgrader`), which routed it by its
    /// own rules: any path is taken.
    HandedOver,
}

/// A request that passed every check.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// Held for the connection's life; dropping it frees the place.
    pub slot: ConnectionSlot,
    /// Who it is, as the authorizer saw it.
    pub info: ConnectionInfo,
    /// Held for the connection's life; tells the authorizer when it ends.
    pub session: AuthSession,
    /// `?channels=…&since=…`, the same as a first `subscribe`.
    pub initial: Option<(Vec<String>, Option<u64>)>,
    /// Who the token that came with the upgrade names, and until when it
    /// holds; `None` if the client must still send `auth`. (`Some` with an
    /// empty identity when no token is needed.)
    pub identity: Option<Identity>,
    /// Bytes the client sent after the request (its first frames).
    pub leftover: Vec<u8>,
}

/// Why a handshake did not complete.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// We answered with this HTTP status and closed; the client a trusted
    /// proxy forwarded the request for, if it was read by then.
    Answered(u16, RejectReason, Option<SocketAddr>),
    /// We answered 401 to this token and closed; the forwarded client, as
    /// for `Answered`.
    Unauthorized(TokenRefusal, Option<SocketAddr>),
    /// No complete request before the deadline; TCP dropped.
    TimedOut,
    /// The peer went away, or the socket failed, before a request arrived.
    Gone(io::Error),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Answered(status, reason, _) => {
                write!(f, "HTTP {status} ({})", reason.label())
            }
            Refusal::Unauthorized(refusal, _) => {
                write!(f, "HTTP 401 (token refused: {refusal})")
            }
            Refusal::TimedOut => write!(f, "no complete request before the deadline"),
            Refusal::Gone(e) => write!(f, "connection lost: {e}"),
        }
    }
}

impl Refusal {
    /// The same refusal, naming the forwarded client it refused.
    fn for_client(self, client: Option<SocketAddr>) -> Refusal {
        match self {
            Refusal::Answered(status, reason, _) => Refusal::Answered(status, reason, client),
            Refusal::Unauthorized(refusal, _) => Refusal::Unauthorized(refusal, client),
            other => other,
        }
    }

    /// The reason it was counted under, if it was counted.
    fn reason(&self) -> Option<RejectReason> {
        match self {
            Refusal::Answered(_, reason, _) => Some(*reason),
            Refusal::Unauthorized(..) => Some(RejectReason::Unauthorized),
            Refusal::TimedOut => Some(RejectReason::HandshakeTimeout),
            Refusal::Gone(_) => None,
        }
    }
}

/// Log a refused handshake: always at `debug`, and as a warning at most
/// once per reason per [`REJECTION_WARNING_INTERVAL`](crate::metrics::REJECTION_WARNING_INTERVAL),
/// so that a flood of bad handshakes cannot flood the log. The counter
/// `pumphub_connections_rejected_total{reason}` is the signal to alert on.
/// Refusals while shutting down are expected and logged at `info`; a peer
/// that just went away was not refused and gets `debug` only.
pub(crate) fn log_refusal(metrics: &crate::metrics::Metrics, peer: SocketAddr, refusal: &Refusal) {
    let peer = match refusal {
        Refusal::Answered(_, _, Some(client)) | Refusal::Unauthorized(_, Some(client)) => {
            describe_client(*client, Some(peer))
        }
        _ => peer.to_string(),
    };
    debug!("handshake from {peer} refused: {refusal}");
    let Some(reason) = refusal.reason() else {
        return;
    };
    let Some(count) = metrics.rejection_warning_due(reason) else {
        return;
    };
    let more = match count {
        1 => String::new(),
        n => format!(
            " (one of {n} refused for {} since the last such warning)",
            reason.label()
        ),
    };
    match reason {
        RejectReason::ShuttingDown => info!("handshake from {peer} refused: {refusal}{more}"),
        _ => warn!("handshake from {peer} refused: {refusal}{more}"),
    }
}

/// The parts of the request the checks need, owned.
struct UpgradeRequest {
    query: String,
    key: String,
    user_agent: Option<String>,
    origin: Option<String>,
    authorization: Option<String>,
    /// Every `X-Forwarded-For` line, joined with `,`.
    x_forwarded_for: Option<String>,
    /// Every `Forwarded` line, joined with `,`.
    forwarded: Option<String>,
}

/// Run the handshake on `tcp`, whose first bytes, if the application read
/// them already, are `already_read`. On success the 101 response has been
/// written; on failure the answer (if any) has been written and the socket
/// shut down.
pub(crate) fn accept(
    mut tcp: &TcpStream,
    peer: SocketAddr,
    accepted_at: Instant,
    already_read: Vec<u8>,
    entry: Entry,
    context: &ServerContext,
) -> Result<Admitted, Refusal> {
    let deadline = accepted_at + context.config.handshake_timeout;
    let (head, leftover) = match read_request_head(tcp, already_read, deadline, context) {
        Ok(Some(read)) => read,
        Ok(None) => return Err(refuse(tcp, context, 431, RejectReason::BadRequest)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            context
                .metrics
                .count_rejection(RejectReason::HandshakeTimeout);
            let _ = tcp.shutdown(Shutdown::Both);
            return Err(Refusal::TimedOut);
        }
        Err(e) => return Err(Refusal::Gone(e)),
    };
    // From here on the request is in memory: answering does not wait on the
    // client, except for the write, which the socket's write timeout bounds.
    let _ = tcp.set_read_timeout(None);
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(5)));

    let request = match parse_request(&head, entry) {
        Ok(request) => request,
        Err(status) => {
            let reason = if status == 404 {
                RejectReason::NotFound
            } else {
                RejectReason::BadRequest
            };
            let is_head = head.starts_with(b"HEAD ");
            return Err(refuse_request(tcp, context, status, reason, is_head));
        }
    };

    // Who the client is: the peer, or whom a trusted proxy forwarded for
    // (`--trusted-proxy`). It is what the per-address limit, the logs and
    // `/status` go by.
    let forwarded = forwarded_client(
        peer.ip(),
        &context.config.trusted_proxies,
        request.x_forwarded_for.as_deref(),
        request.forwarded.as_deref(),
    );
    let client = forwarded.unwrap_or(peer);
    let refuse_client = |status, reason| refuse(tcp, context, status, reason).for_client(forwarded);

    // 4 and 5: capacity. The slot is taken now and kept on success.
    if context.is_shutting_down() {
        return Err(refuse_client(503, RejectReason::ShuttingDown));
    }
    let slot = match context.limiter.try_acquire(client.ip()) {
        Ok(slot) => slot,
        Err(LimitExceeded::Total) => return Err(refuse_client(503, RejectReason::MaxConnections)),
        Err(LimitExceeded::PerIp) => return Err(refuse_client(429, RejectReason::PerIp)),
    };

    // 6 to 8. A refusal from here on gives the slot back before answering:
    // `refuse` lingers for the peer to read its answer, and a refused client
    // that retries at once must not find its own ghost holding the place.
    let query = match check_origin_and_query(&request, context) {
        Ok(query) => query,
        Err((status, reason)) => {
            drop(slot);
            return Err(refuse_client(status, reason));
        }
    };
    // From here the authorizer knows the connection: `session` tells it
    // when the connection ends, a 401 just below included.
    let info = ConnectionInfo {
        id: ConnectionId::new(),
        remote_addr: client,
        via: forwarded.map(|_| peer),
        user_agent: request.user_agent.clone(),
        origin: request.origin.clone(),
        connected_at_ms: unix_ms(),
    };
    let session = AuthSession::new(context.authorizer.clone(), info.clone());
    let identity = match check_token(&request, &query, &info, context) {
        Ok(identity) => identity,
        Err(token_refusal) => {
            drop(slot);
            drop(session);
            // Counted before the 401 goes out (and `refuse` lingers): a
            // client that reads the answer and then the metrics finds it.
            if let Some(refusal) = &token_refusal {
                context.metrics.count_token_refusal(refusal.reason);
            }
            let answered = refuse_client(401, RejectReason::Unauthorized);
            return Err(match token_refusal {
                Some(refusal) => Refusal::Unauthorized(refusal, forwarded),
                None => answered,
            });
        }
    };

    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(request.key.as_bytes())
    );
    tcp.write_all(response.as_bytes()).map_err(Refusal::Gone)?;
    Ok(Admitted {
        slot,
        info,
        session,
        initial: query.initial,
        identity,
        leftover,
    })
}

/// Checks 6 and 7: origin and query. Returns the query, or the status and
/// reason to refuse with.
fn check_origin_and_query(
    request: &UpgradeRequest,
    context: &ServerContext,
) -> Result<Query, (u16, RejectReason)> {
    // 6: origin. Requests without Origin come from non-browser clients.
    if let Some(origin) = &request.origin {
        let allowed = &context.config.allowed_origins;
        if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            return Err((403, RejectReason::Origin));
        }
    }

    // 7: the query.
    parse_query(&request.query).map_err(|()| (400, RejectReason::BadRequest))
}

/// Check 8: the token, in the URL and the header (both must be right if
/// both are there; the header's, checked last, gives the identity).
/// Returns who the client is, `None` if it brought no token and must send
/// `auth`; or, for a 401, why its token was refused (`None` if it brought
/// none but needed one for `?channels=`).
fn check_token(
    request: &UpgradeRequest,
    query: &Query,
    info: &ConnectionInfo,
    context: &ServerContext,
) -> Result<Option<Identity>, Option<TokenRefusal>> {
    let authorizer = &context.authorizer;
    if !authorizer.requires_token() {
        return Ok(Some(Identity::default()));
    }
    let mut identity = None;
    if let Some(token) = &query.token {
        if token.is_empty() {
            return Err(Some(TokenRefusal::new(
                RefusalReason::Invalid,
                "empty `?token=`",
            )));
        }
        identity = Some(authorizer.verify_token(info, token).map_err(Some)?);
    }
    if let Some(header) = &request.authorization {
        let Some(token) = bearer_token(header) else {
            return Err(Some(TokenRefusal::new(
                RefusalReason::Invalid,
                "the Authorization header is not `Bearer <token>`",
            )));
        };
        identity = Some(authorizer.verify_token(info, token).map_err(Some)?);
    }
    // URL channels are honoured only for a client that proved itself in
    // the upgrade; otherwise it could read before authenticating.
    if identity.is_none() && query.initial.is_some() {
        return Err(None);
    }
    Ok(identity)
}

/// How often a waiting handshake looks up to see if the hub is shutting
/// down, so shutdown never waits out a silent client's full deadline.
const SHUTDOWN_CHECK: Duration = Duration::from_millis(250);

/// Read until the blank line that ends the request head, starting from
/// `already_read`. Returns the head and whatever followed it, `None` if the
/// head is too large, or the I/O error (`TimedOut` once the deadline
/// passes, or once the hub is shutting down). Bytes received do not extend
/// the deadline.
fn read_request_head(
    tcp: &TcpStream,
    already_read: Vec<u8>,
    deadline: Instant,
    context: &ServerContext,
) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buffer = already_read;
    if !buffer.is_empty() {
        // The application read these; its head may be complete already,
        // and is held to the same size bound as one we read.
        match find_head_end(&buffer) {
            Some(end) if end <= MAX_HEAD => {
                let leftover = buffer.split_off(end);
                return Ok(Some((buffer, leftover)));
            }
            Some(_) => return Ok(None),
            None if buffer.len() > MAX_HEAD => return Ok(None),
            None => {}
        }
    }
    buffer.reserve(1024);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Past the deadline, one last read that hardly waits still takes
        // what has already arrived: on a busy machine this thread may start
        // after the deadline of a client that sent its request at once, and
        // that client must not be dropped for the hub's lateness. A slow
        // client gains nothing: whatever this read brings, an unfinished
        // head ends the handshake.
        let late = left.is_zero();
        let wait = if late {
            Duration::from_millis(1)
        } else {
            left.min(SHUTDOWN_CHECK)
        };
        let searched_from = buffer.len().saturating_sub(3);
        let got = read_some(tcp, &mut buffer, wait)?;
        if got {
            if let Some(end) = find_head_end(&buffer[searched_from..]) {
                let end = searched_from + end;
                let leftover = buffer.split_off(end);
                return Ok(Some((buffer, leftover)));
            }
            if buffer.len() > MAX_HEAD {
                return Ok(None);
            }
        }
        // A quiet moment: give up early only if the hub is going away (a
        // prompt client still gets its 503 from the checks below).
        if late || (!got && context.is_shutting_down()) {
            return Err(io::ErrorKind::TimedOut.into());
        }
    }
}

/// Checks 1-3 and 7 on a complete request head, the parts of `accept`
/// that read peer bytes and need no hub state: `Ok` if they would upgrade,
/// else the HTTP status. For the fuzz targets (`testing/fuzzing.rs`).
#[cfg(feature = "testing")]
pub(crate) fn check_request_head(head: &[u8]) -> Result<(), u16> {
    let request = parse_request(head, Entry::Listener)?;
    parse_query(&request.query).map_err(|()| 400u16)?;
    Ok(())
}

/// Check 7 alone on a `/ws` query string: the channels (with `since`) and
/// whether a token came, or `Err` for a query answered 400. For the fuzz
/// targets (`testing/fuzzing.rs`).
#[cfg(feature = "testing")]
#[allow(clippy::type_complexity)]
pub(crate) fn check_query(query: &str) -> Result<(Option<(Vec<String>, Option<u64>)>, bool), ()> {
    parse_query(query).map(|query| (query.initial, query.token.is_some()))
}

/// Checks 1-3: HTTP GET, path `/ws` (for `Entry::Listener`), a WebSocket
/// upgrade. The error is the HTTP status to answer.
fn parse_request(head: &[u8], entry: Entry) -> Result<UpgradeRequest, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        _ => return Err(400),
    }
    // HEAD is answered as GET would be (without the body, see `refuse`):
    // 404 for another path, and 400 for /ws, since it cannot upgrade.
    let head = parsed.method == Some("HEAD");
    if !(parsed.method == Some("GET") || head) || parsed.version != Some(1) {
        return Err(400);
    }
    let target = parsed.path.unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if entry == Entry::Listener && path != "/ws" {
        return Err(404);
    }
    if head {
        return Err(400);
    }
    let header = |name: &str| -> Option<String> {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(|v| v.trim().to_string())
    };
    // A header that may come in several lines, as one list.
    let joined = |name: &str| -> Option<String> {
        let values: Vec<&str> = parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    let has_token = |name: &str, token: &str| {
        parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let key = header("Sec-WebSocket-Key").unwrap_or_default();
    let is_upgrade = has_token("Upgrade", "websocket")
        && has_token("Connection", "upgrade")
        && header("Sec-WebSocket-Version").as_deref() == Some("13")
        && is_websocket_key(&key);
    if !is_upgrade {
        return Err(400);
    }
    Ok(UpgradeRequest {
        query: query.to_string(),
        key,
        user_agent: header("User-Agent"),
        origin: header("Origin"),
        authorization: header("Authorization"),
        x_forwarded_for: joined("X-Forwarded-For"),
        forwarded: joined("Forwarded"),
    })
}

/// True for a `Sec-WebSocket-Key` that is 16 bytes in base64 (RFC 6455
/// section 4.1): 22 characters of the base64 alphabet, then `==`.
fn is_websocket_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes.ends_with(b"==")
        && bytes[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// What the `/ws` query asked for.
#[derive(Debug, Default, PartialEq)]
struct Query {
    initial: Option<(Vec<String>, Option<u64>)>,
    token: Option<String>,
}

/// Parse `channels=a,b&since=S&token=T`. Unknown parameters are ignored.
/// A bad channel name, `since` without `channels`, or a non-numeric `since`
/// is an error.
fn parse_query(query: &str) -> Result<Query, ()> {
    let mut channels: Option<Vec<String>> = None;
    let mut since: Option<u64> = None;
    let mut token = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        // Decoded only for the parameters read: an unknown one is ignored
        // whatever it holds, a bad escape included.
        let value = || percent_decode(raw).ok_or(());
        match name {
            "channels" => {
                let value = value()?;
                let mut names: Vec<String> = Vec::new();
                for name in value.split(',') {
                    if !is_valid_channel_name(name) {
                        return Err(());
                    }
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_string());
                    }
                }
                channels = Some(names);
            }
            "since" => since = Some(value()?.parse().map_err(|_| ())?),
            "token" => token = Some(value()?),
            _ => {}
        }
    }
    if since.is_some() && channels.is_none() {
        return Err(());
    }
    Ok(Query {
        initial: channels.map(|c| (c, since)),
        token,
    })
}

/// The whole answer to a refused upgrade request: `status`, a plain-text
/// body naming the reason, `Connection: close`. Also what the acceptor
/// answers a connection over its address's handshake share.
pub(crate) fn refusal_answer(status: u16, reason: RejectReason) -> Vec<u8> {
    refusal_answer_to(status, reason, false)
}

/// [`refusal_answer`], without the body for a `HEAD` request (the headers
/// still say how long it would be).
fn refusal_answer_to(status: u16, reason: RejectReason, head: bool) -> Vec<u8> {
    let text = reason_phrase(status);
    let body = format!("{status} {text}: {}\n", reason.label());
    let extra = if status == 400 {
        "Sec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n{extra}\r\n{}",
        body.len(),
        if head { "" } else { &body }
    )
    .into_bytes()
}

/// Answer with `status`, count the rejection, and close.
fn refuse(tcp: &TcpStream, context: &ServerContext, status: u16, reason: RejectReason) -> Refusal {
    refuse_request(tcp, context, status, reason, false)
}

/// As [`refuse`], answering a `HEAD` request when `head` (no body).
fn refuse_request(
    mut tcp: &TcpStream,
    context: &ServerContext,
    status: u16,
    reason: RejectReason,
    head: bool,
) -> Refusal {
    context.metrics.count_rejection(reason);
    let _ = tcp.write_all(&refusal_answer_to(status, reason, head));
    let _ = tcp.shutdown(Shutdown::Write);
    // Leave the peer a moment to read the answer before the socket closes:
    // closing with unread input would send RST, which can discard it.
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 512];
    for _ in 0..8 {
        if !matches!(tcp.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
    Refusal::Answered(status, reason, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: &[&str]) -> Vec<u8> {
        let mut text = lines.join("\r\n");
        text.push_str("\r\n\r\n");
        text.into_bytes()
    }

    const UPGRADE: [&str; 5] = [
        "Host: x",
        "Upgrade: websocket",
        "Connection: keep-alive, Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];

    fn with_first_line(first: &str) -> Vec<u8> {
        let mut lines = vec![first];
        lines.extend(UPGRADE);
        request(&lines)
    }

    fn parse_request_l(head: &[u8]) -> Result<UpgradeRequest, u16> {
        parse_request(head, Entry::Listener)
    }

    #[test]
    fn a_handed_over_request_may_have_any_path_but_must_still_upgrade() {
        let other = with_first_line("GET /app/live?channels=a HTTP/1.1");
        assert_eq!(parse_request_l(&other).err(), Some(404));
        let parsed = parse_request(&other, Entry::HandedOver).expect("any path");
        assert_eq!(parsed.query, "channels=a");
        let post = with_first_line("POST /app/live HTTP/1.1");
        assert_eq!(parse_request(&post, Entry::HandedOver).err(), Some(400));
        let plain = request(&["GET /app/live HTTP/1.1", "Host: x"]);
        assert_eq!(parse_request(&plain, Entry::HandedOver).err(), Some(400));
    }

    #[test]
    fn checks_method_path_and_upgrade_in_order() {
        assert!(parse_request_l(&with_first_line("GET /ws HTTP/1.1")).is_ok());
        assert_eq!(
            parse_request_l(&with_first_line("POST /ws HTTP/1.1")).err(),
            Some(400)
        );
        assert_eq!(
            parse_request_l(&with_first_line("POST /x HTTP/1.1")).err(),
            Some(400)
        );
        assert_eq!(
            parse_request_l(&with_first_line("GET /x HTTP/1.1")).err(),
            Some(404)
        );
        assert_eq!(parse_request_l(b"garbage\r\n\r\n").err(), Some(400));
        let plain = request(&["GET /ws HTTP/1.1", "Host: x"]);
        assert_eq!(parse_request_l(&plain).err(), Some(400));
    }

    #[test]
    fn parses_the_query() {
        let q = parse_query("channels=a,b,a&since=5&token=t%2Bx").unwrap();
        assert_eq!(q.initial, Some((vec!["a".into(), "b".into()], Some(5))));
        assert_eq!(q.token.as_deref(), Some("t+x"));
        assert_eq!(parse_query("").unwrap(), Query::default());
        assert!(parse_query("since=5").is_err());
        assert!(parse_query("channels=a&since=x").is_err());
        assert!(parse_query("channels=bad%20name").is_err());
        assert!(parse_query("channels=").is_err());
        assert!(parse_query("channels=a&token=%zz").is_err());
        // Unknown parameters are ignored, whatever they hold.
        assert_eq!(
            parse_query("channels=a&x=%zz&y=%").unwrap().initial,
            Some((vec!["a".into()], None))
        );
    }

    #[test]
    fn a_key_is_sixteen_bytes_of_base64() {
        assert!(is_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_websocket_key("AAAAAAAAAAAAAAAAAAAAAA=="));
        assert!(!is_websocket_key("dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_websocket_key("dGhlIHNhbXBsZSBub25jZ==="));
        assert!(!is_websocket_key("dGhlIHNhbXBsZSBub25j!Q=="));
        assert!(!is_websocket_key("x".repeat(24).as_str()));
        // A valid key, but of 17 bytes.
        assert!(!is_websocket_key("dGhlIHNhbXBsZSBub25jZXg="));
        let bad_key = request(&[
            "GET /ws HTTP/1.1",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: 123456789012345678901234",
        ]);
        assert_eq!(parse_request_l(&bad_key).err(), Some(400));
    }

    #[test]
    fn head_is_answered_as_get_would_be() {
        assert_eq!(
            parse_request_l(&with_first_line("HEAD /ws HTTP/1.1")).err(),
            Some(400)
        );
        assert_eq!(
            parse_request_l(&with_first_line("HEAD /x HTTP/1.1")).err(),
            Some(404)
        );
        let answer = refusal_answer_to(404, RejectReason::NotFound, true);
        let text = String::from_utf8(answer).unwrap();
        assert!(
            text.ends_with("\r\n\r\n") && text.contains("Content-Length: 25"),
            "{text}"
        );
    }

    #[test]
    fn reads_bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
