//! A connection's socket and the settings of the two tungstenite
//! endpoints over it. The read pump and the write pump share one
//! `TcpStream` through an `Arc`: the read pump reads through [`ReadSide`],
//! the write pump writes through [`SharedSocket`]. Also the stack sizes of
//! the two pump threads, which (with the read buffer) decide most of what
//! an idle connection costs in memory (docs/operations.md).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};

/// Stack size of a write pump thread. It only moves bytes, but with history
/// off it may drop the last reference to an event, and dropping a deeply
/// nested JSON value recurses. Measured with the test
/// `deeply_nested_json_does_not_overflow_the_pump_stacks` (126 levels):
/// 16 KiB suffice in release, 64 KiB in debug; this is twice that.
/// Only the pages a thread touches count towards RSS.
pub const WRITE_PUMP_STACK: usize = 128 * 1024;

/// Stack size of a connection thread (handshake, then read pump). It parses
/// client JSON, which serde_json bounds at 128 levels of nesting. Measured
/// with `deeply_nested_json_does_not_overflow_the_pump_stacks`: 48 KiB
/// suffice in release, but debug builds need more than 192 KiB; this
/// leaves room for both. A reservation costs address space, not memory:
/// an idle read pump touches only a few pages of it.
pub const READ_PUMP_STACK: usize = 512 * 1024;

/// tungstenite settings for the read side: a small read buffer (it is
/// zero-filled on first use, so its size is resident memory per client),
/// and both frame and message size capped by `--max-message-size`, so an
/// oversized frame is refused from its header, before its payload is buffered.
pub(crate) fn read_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// tungstenite settings for the write side: it never reads, so its read
/// buffer is tiny; writes are buffered up to 32 KiB before going out, and
/// every batch ends with a flush.
fn write_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(64)
        .write_buffer_size(32 * 1024)
}

/// The write pump's tungstenite socket: the connection's one descriptor,
/// shared with the read pump, with [`write_config`].
pub(crate) fn write_side(tcp: &Arc<TcpStream>) -> WebSocket<SharedSocket> {
    WebSocket::from_raw_socket(
        SharedSocket(tcp.clone()),
        Role::Server,
        Some(write_config()),
    )
}

/// A connection's socket, shared by its two pumps. `&TcpStream` reads and
/// writes, so neither pump needs a descriptor of its own; the write pump's
/// tungstenite `WebSocket` writes through this, the read pump's `ReadSide`
/// reads through the same `Arc`. Derefs to the `TcpStream` for timeouts
/// and `shutdown`.
#[derive(Debug, Clone)]
pub struct SharedSocket(pub Arc<TcpStream>);

impl Deref for SharedSocket {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.0
    }
}

impl Read for SharedSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self.0).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The read pump's stream: reads from the socket, discards every write.
///
/// Only the write pump writes to the socket. tungstenite's own attempts to
/// answer Pings and Closes from inside `read()` end here and are dropped;
/// the read pump forwards the equivalent to the write pump instead.
///
/// The socket is shared with the write pump (an `Arc`, not a `dup`ed file
/// descriptor), so a connection costs one descriptor: see
/// [`SharedSocket`].
///
/// Reads block (up to the socket's read timeout) unless
/// [`set_dont_wait`](Self::set_dont_wait) is on: then a read takes only what
/// the kernel already has and answers `WouldBlock` otherwise, which is how
/// the read pump reads ahead of a pipelining client without ever waiting
/// on it while it has requests to hand on. It cannot simply make the socket
/// non-blocking: that flag belongs to the socket, and the write pump's
/// writes must keep blocking.
#[derive(Debug)]
pub struct ReadSide {
    tcp: Arc<TcpStream>,
    /// Reads take only what has arrived (`WouldBlock` if nothing has).
    dont_wait: bool,
    /// After this instant every read answers `WouldBlock` at once.
    deadline: Option<Instant>,
}

impl ReadSide {
    /// Wrap the connection's socket.
    pub fn new(tcp: Arc<TcpStream>) -> Self {
        ReadSide {
            tcp,
            dont_wait: false,
            deadline: None,
        }
    }

    /// The socket, for setting read timeouts.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Whether reads may wait for the peer (`false`) or take only what has
    /// arrived (`true`: `WouldBlock` if nothing has).
    pub fn set_dont_wait(&mut self, dont_wait: bool) {
        self.dont_wait = dont_wait;
    }

    /// Make `deadline` absolute. tungstenite reads a frame in many small
    /// reads, and a socket timeout restarts with each one, so a peer that
    /// trickles a frame a byte at a time would never let a timeout fire;
    /// past the deadline, reads fail here instead, tungstenite keeps the
    /// partial frame and the read pump gets back control to act on it.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }
}

impl Read for ReadSide {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.dont_wait {
            rustix::net::recv(&*self.tcp, buf, rustix::net::RecvFlags::DONTWAIT)
                .map(|(read, _)| read)
                .map_err(io::Error::from)
        } else {
            (&*self.tcp).read(buf)
        }
    }
}

impl Write for ReadSide {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
