//! What the hub's two readers of HTTP requests share: the WebSocket
//! handshake (`handshake`, on each `read-pump-N` thread before its pumps
//! exist) and the HTTP guard (`http/guard`, on its `http-conn-N` threads,
//! and `http-resp-N` for tiny_http's answers). Both read a request head from
//! a client that may be slow or hostile, under the same bounds: at most
//! [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers (else 431).
//!
//! Here are those bounds, where a head ends ([`find_head_end`]), one read
//! under a timeout ([`read_some`]), the step both deadline loops are made
//! of, and the reason phrases of their refusals ([`reason_phrase`]). The
//! loops themselves stay with their callers, because they stop differently:
//! the handshake reads on while shutting down as long as the client is
//! prompt (so it gets its 503), the guard gives up at once. No state;
//! nothing here blocks longer than the wait it is given.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Duration;

use crate::error::is_quiet;

/// The largest request head read; bigger gets 431.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed at most; more gets 431.
pub(crate) const MAX_HEADERS: usize = 64;

/// The index just past the blank line that ends a head: the first
/// `\n\n` or `\n\r\n`, so `\r\n\r\n` and bare `\n` line endings (which
/// httparse accepts, as RFC 9112 section 2.2 allows) alike. Looking only
/// for `\r\n\r\n` left a head with bare `\n`s waiting for its deadline,
/// unanswered.
pub(crate) fn find_head_end(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = bytes.get(from..)?.iter().position(|&b| b == b'\n') {
        let newline = from + at;
        match bytes.get(newline + 1..) {
            Some([b'\n', ..]) => return Some(newline + 2),
            Some([b'\r', b'\n', ..]) => return Some(newline + 3),
            _ => from = newline + 1,
        }
    }
    None
}

/// The reason phrase for a status the hub answers a refused request with
/// (the handshake's and the guard's), `Error` for any other.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// One read into `buffer`, waiting at most `wait`: `Ok(true)` if bytes
/// came, `Ok(false)` if the client was quiet (or the read was interrupted),
/// `UnexpectedEof` if it closed, or the socket's error.
pub(crate) fn read_some(
    mut client: &TcpStream,
    buffer: &mut Vec<u8>,
    wait: Duration,
) -> io::Result<bool> {
    client.set_read_timeout(Some(wait))?;
    // Straight into `buffer`'s tail, with no chunk on the stack: the
    // handshake runs on what becomes a read pump's thread, whose touched
    // stack pages stay resident for the connection's life (see
    // `run_handshake` in ws/serve.rs).
    let start = buffer.len();
    buffer.resize(start + 2048, 0);
    let read = client.read(&mut buffer[start..]);
    buffer.truncate(start + read.as_ref().map_or(0, |&n| n));
    match read {
        Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(_) => Ok(true),
        Err(e) if is_quiet(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Decode a query value: `%XX` escapes and `+` (as space). `None` if
/// malformed or not UTF-8. For `/ws?channels=` and `/history?channel=`.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_a_blank_line_with_either_line_ending() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"),
            Some(24)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nA: b\n\nrest"), Some(21));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nA: b\n\r\n"), Some(22));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r"), None);
        assert_eq!(find_head_end(b""), None);
        assert_eq!(find_head_end(b"\n"), None);
    }
}
