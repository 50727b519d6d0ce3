//! Request heads: what the guard lets through to tiny_http.
//!
//! [`check_head`] takes a complete request head and returns the head to
//! forward ([`Forward`]) or the refusal to answer with ([`error_answer`]
//! writes it out). The small parsers beside it (`parse_length`,
//! `contains_token`) serve the answer side too. It runs on
//! the `http-conn-N` threads (the parsers also on `http-resp-N`), but
//! nothing here does I/O: it is kept apart so the rules read as one list,
//! and the tests at the end can hammer them without a socket.

use crate::request_head::{reason_phrase, MAX_HEADERS};

/// Why the guard will not forward a request: the status and the JSON
/// error code and message to answer with.
type Refusal = (u16, &'static str, String);

/// A request the guard accepted: the head to send tiny_http, and its
/// body's length.
#[derive(Debug, PartialEq)]
pub(crate) struct Forward {
    pub(super) head: Vec<u8>,
    pub(super) body_length: usize,
    pub(super) expects_continue: bool,
    /// HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `Connection:
    /// keep-alive` (as `ab -k` sends); never `HEAD`.
    pub(super) keep_alive: bool,
    /// The client spoke HTTP/1.0: an answer that keeps the connection open
    /// must say `Connection: keep-alive`, or the client closes it.
    pub(super) http_1_0: bool,
    /// A `HEAD` request: its answer has a length but no body.
    pub(super) is_head: bool,
    /// A `POST`: its answer is short, so it may be pipelined.
    pub(super) is_post: bool,
    /// `POST /publish` (with any query), which the guard answers itself
    /// (`http/publish.rs`): its `Authorization` values. `head` is empty
    /// then, as nothing is relayed.
    pub(super) publish: Option<Vec<Vec<u8>>>,
}

/// Headers the guard drops because it sets them itself: `Connection:
/// keep-alive` towards tiny_http whatever the client asked (the guard
/// decides when the client's connection ends), the body already read (so
/// no `Expect`), its length checked and written once.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "expect",
    "content-length",
    "te",
];

/// Decide on a complete request head: the head to forward, or the refusal.
/// Pure, so the fuzz-style tests below can hammer it.
pub(crate) fn check_head(head: &[u8], max_body: usize) -> Result<Forward, Refusal> {
    let bad = |message: &str| (400, "bad_request", message.to_string());
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err((
                431,
                "header_too_large",
                format!("more than {MAX_HEADERS} headers"),
            ))
        }
        Err(e) => return Err(bad(&format!("not an HTTP request: {e}"))),
    }
    let (Some(method), Some(path), Some(version)) = (request.method, request.path, request.version)
    else {
        return Err(bad("incomplete request line"));
    };
    let mut body_length: Option<usize> = None;
    let mut expects_continue = false;
    let (mut closes, mut asks_keep_alive) = (false, false);
    let is_publish = method == "POST" && path.split('?').next() == Some("/publish");
    let mut authorization = Vec::new();
    let mut kept = Vec::new();
    if !is_publish {
        kept.reserve(head.len() + 64);
        // HTTP/1.0 towards tiny_http, whatever the client spoke: see `Pipeline`.
        kept.extend_from_slice(format!("{method} {path} HTTP/1.0\r\n").as_bytes());
    }
    for header in request.headers.iter() {
        // httparse allows obs-text (bytes over 0x7F) in values; tiny_http
        // hangs up on them without an answer. Say why instead.
        if !header.value.is_ascii() {
            return Err(bad("header values must be ASCII"));
        }
        let name = header.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err((
                411,
                "length_required",
                "send the body with Content-Length, not Transfer-Encoding".into(),
            ));
        } else if name.eq_ignore_ascii_case("content-length") {
            let length =
                parse_length(header.value).ok_or_else(|| bad("Content-Length is not a number"))?;
            if body_length.is_some_and(|seen| seen != length) {
                return Err(bad("conflicting Content-Length headers"));
            }
            if length > max_body {
                return Err((413, "too_large", format!("body over {max_body} bytes")));
            }
            body_length = Some(length);
        } else if name.eq_ignore_ascii_case("expect") {
            expects_continue = header.value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("connection") {
            closes |= contains_token(header.value, b"close");
            asks_keep_alive |= contains_token(header.value, b"keep-alive");
        } else if is_publish && name.eq_ignore_ascii_case("authorization") {
            authorization.push(header.value.to_vec());
        }
        if is_publish || HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        kept.extend_from_slice(header.name.as_bytes());
        kept.extend_from_slice(b": ");
        kept.extend_from_slice(header.value);
        kept.extend_from_slice(b"\r\n");
    }
    if !is_publish {
        if let Some(length) = body_length {
            kept.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
        }
        kept.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
    }
    let keep_alive = method != "HEAD" && !closes && (version == 1 || asks_keep_alive);
    Ok(Forward {
        head: kept,
        http_1_0: version == 0,
        body_length: body_length.unwrap_or(0),
        expects_continue,
        keep_alive,
        is_head: method == "HEAD",
        is_post: method == "POST",
        publish: is_publish.then_some(authorization),
    })
}

/// A `Content-Length` value: ASCII digits only (no sign, no spaces inside,
/// which `str::parse` would partly allow), within `usize`.
pub(super) fn parse_length(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// True if a comma-separated header value has `token` (any ASCII case).
pub(super) fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A complete response in the HTTP endpoints' error shape, closing.
pub(super) fn error_answer(status: u16, code: &str, message: &str) -> Vec<u8> {
    let reason = reason_phrase(status);
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::pipeline::{client_response_head, response_framing};
    use super::*;

    fn head_of(forward: &Forward) -> String {
        String::from_utf8_lossy(&forward.head).into_owned()
    }

    #[test]
    fn forwards_a_good_request_as_http_1_0_keep_alive() {
        let forward = check_head(
            b"POST /other HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\
              Content-Length: 12\r\nExpect: 100-continue\r\nAuthorization: Bearer k\r\n\r\n",
            100,
        )
        .unwrap();
        assert_eq!(forward.body_length, 12);
        assert!(forward.expects_continue);
        assert!(forward.keep_alive);
        assert_eq!(forward.publish, None);
        assert_eq!(
            head_of(&forward),
            "POST /other HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer k\r\n\
             Content-Length: 12\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn post_publish_is_kept_for_the_guard_with_its_authorization() {
        let forward = check_head(
            b"POST /publish?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\
              Authorization: Bearer a\r\nauthorization: Bearer b\r\n\r\n",
            100,
        )
        .unwrap();
        assert_eq!(forward.body_length, 12);
        assert!(forward.keep_alive);
        assert!(forward.head.is_empty());
        assert_eq!(
            forward.publish,
            Some(vec![b"Bearer a".to_vec(), b"Bearer b".to_vec()])
        );
        let get = check_head(b"GET /publish HTTP/1.1\r\n\r\n", 100).unwrap();
        assert_eq!(get.publish, None);
        // The guard's refusals come first, as for any request.
        let chunked = b"POST /publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(check_head(chunked, 100).unwrap_err().0, 411);
    }

    #[test]
    fn keep_alive_unless_asked_otherwise() {
        let keeps = |head: &str| check_head(head.as_bytes(), 10).unwrap().keep_alive;
        assert!(keeps("GET / HTTP/1.1\r\n\r\n"));
        assert!(!keeps(
            "GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n"
        ));
        assert!(!keeps("GET / HTTP/1.0\r\n\r\n"));
        assert!(keeps("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!keeps(
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
        assert!(!keeps("HEAD / HTTP/1.1\r\n\r\n"));
    }

    /// Generated hostile heads (mutations of good ones, bounded, seeded):
    /// `check_head` never panics and answers only with its known statuses;
    /// what it forwards is a well-formed HTTP/1.0 head with a length no
    /// larger than the limit.
    #[test]
    fn generated_heads_get_a_known_answer() {
        let good: [&[u8]; 3] = [
            b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n",
            b"GET /status HTTP/1.1\r\nAuthorization: Bearer k\r\nConnection: close\r\n\r\n",
            b"HEAD / HTTP/1.0\r\nExpect: 100-continue\r\nTE: chunked\r\n\r\n",
        ];
        let alphabet =
            b" :\r\n\t0123456789-+,;/HTTPGETPOSTContent-LengthTransfer-Encoding\x00\x7f\xff";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut head = good[next() as usize % good.len()].to_vec();
            for _ in 0..1 + next() % 6 {
                let at = next() as usize % (head.len() + 1);
                let byte = alphabet[next() as usize % alphabet.len()];
                match next() % 3 {
                    0 => head.insert(at, byte),
                    1 if at < head.len() => head[at] = byte,
                    _ if at < head.len() => {
                        head.remove(at);
                    }
                    _ => {}
                }
            }
            match check_head(&head, 100) {
                Ok(forward) if forward.publish.is_some() => {
                    assert!(forward.body_length <= 100);
                    assert!(forward.head.is_empty());
                }
                Ok(forward) => {
                    assert!(forward.body_length <= 100);
                    assert!(forward.head.ends_with(b"Connection: keep-alive\r\n\r\n"));
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 2];
                    let parsed = httparse::Request::new(&mut headers).parse(&forward.head);
                    assert!(
                        matches!(parsed, Ok(httparse::Status::Complete(_))),
                        "forwarded a bad head: {:?}",
                        String::from_utf8_lossy(&forward.head)
                    );
                }
                Err((status, _, _)) => assert!(matches!(status, 400 | 411 | 413 | 431)),
            }
            // The answer side never panics on what tiny_http might send.
            let _ = response_framing(&head, false);
            let _ = client_response_head(&head, true, false);
        }
    }

    #[test]
    fn refuses_what_tiny_http_must_not_see() {
        let status = |head: &str| {
            check_head(head.as_bytes(), 1000)
                .map(|_| 200)
                .unwrap_or_else(|e| e.0)
        };
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 200);
        assert_eq!(
            status("POST /publish HTTP/1.1\r\nContent-Length: 1000\r\n\r\n"),
            200
        );
        assert_eq!(
            status("POST /publish HTTP/1.1\r\nContent-Length: 1001\r\n\r\n"),
            413
        );
        assert_eq!(
            status("POST /publish HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n"),
            413
        );
        assert_eq!(
            status("POST /publish HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            400
        );
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"), 400);
        assert_eq!(
            status("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(status("\x16\x03\x01garbage\r\n\r\n"), 400);
        let obs_text = b"GET / HTTP/1.1\r\nX-A: \xff\r\n\r\n";
        assert_eq!(check_head(obs_text, 10).unwrap_err().0, 400);
        let many: String = (0..65).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
    }
}
