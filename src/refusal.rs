//! Turning connections away at accept without holding up the accept loop.
//!
//! Both listeners refuse some connections before reading a byte: the HTTP
//! guard when all its places, or the caller's address's share of them, are
//! taken; the WebSocket acceptor when the caller's address already has its
//! share of handshakes in progress. The refusal is a short HTTP answer. It
//! must not be lost: a socket closed while the client's request is still
//! unread in it sends RST, which can destroy the answer before the client
//! reads it. So a refused socket is held open a moment (its write side shut,
//! so the client sees the answer end) before it is closed.
//!
//! Holding it used to happen on the accept thread itself, up to a second per
//! refused peer; with hundreds of refusals queued, a client waited 30 s for
//! its own 503. A [`Refuser`] instead hands each refused socket to one thread
//! of its own (`<listener>-refuse`), which keeps them in arrival order and
//! closes each [`LINGER`] after it came, draining what the client sent
//! first. The accept thread only writes the answer, which a fresh socket's
//! send buffer always takes without blocking. At most [`MAX_LINGERING`]
//! sockets wait; beyond that a refused socket is closed at once (its answer
//! may then be lost to a reset, which only a flood of refusals can cause).
//!
//! Owned by the acceptor that starts it; nothing else touches it. Stopping
//! it closes whatever is still waiting.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

/// How long a refused socket stays open after its answer.
pub(crate) const LINGER: Duration = Duration::from_secs(1);
/// Refused sockets held open at most; each is one file descriptor.
pub(crate) const MAX_LINGERING: usize = 1024;
/// What is read (and dropped) from a refused socket before it closes.
const DRAIN_LIMIT: usize = 64 * 1024;

/// The refusing side of one listener. See the module docs.
pub(crate) struct Refuser {
    sockets: Option<Sender<(TcpStream, Instant)>>,
    thread: Option<JoinHandle<()>>,
}

impl Refuser {
    /// Start the thread that holds refused sockets, named `name`.
    pub fn start(name: &str) -> io::Result<Refuser> {
        let (tx, rx) = crossbeam_channel::bounded(MAX_LINGERING);
        let thread = thread::Builder::new()
            .name(name.to_string())
            .stack_size(64 * 1024)
            .spawn(move || hold(rx))?;
        Ok(Refuser {
            sockets: Some(tx),
            thread: Some(thread),
        })
    }

    /// Answer `socket` with `answer` and close it [`LINGER`] later, without
    /// waiting for the client. Never blocks.
    pub fn refuse(&self, socket: TcpStream, answer: &[u8]) {
        // Non-blocking: a fresh socket's send buffer takes a short answer
        // at once; if it cannot, the client is not reading anyway.
        let _ = socket.set_nonblocking(true);
        let _ = (&socket).write(answer);
        let _ = socket.shutdown(Shutdown::Write);
        if let Some(sockets) = &self.sockets {
            match sockets.try_send((socket, Instant::now() + LINGER)) {
                Ok(()) => {}
                // Full (a flood of refusals) or stopped: close it now.
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

impl Drop for Refuser {
    fn drop(&mut self) {
        // Closing the channel ends the thread, which closes what it holds.
        self.sockets.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The refusing thread: hold each socket until its deadline, then drain
/// what the client sent and close it. Deadlines come in order, so the
/// oldest is always first.
fn hold(sockets: Receiver<(TcpStream, Instant)>) {
    let mut held: VecDeque<(TcpStream, Instant)> = VecDeque::new();
    loop {
        let next = match held.front() {
            None => sockets.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some((_, deadline)) => {
                sockets.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            }
        };
        match next {
            Ok(socket) => held.push_back(socket),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while held.front().is_some_and(|(_, deadline)| *deadline <= now) {
            if let Some((socket, _)) = held.pop_front() {
                close_quietly(socket);
            }
        }
    }
}

/// Read what the client sent (without waiting), so that closing does not
/// reset the connection, then close.
fn close_quietly(mut socket: TcpStream) {
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match socket.read(&mut sink) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_refused_client_reads_its_answer_and_the_refuser_never_waits() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let refuser = Refuser::start("test-refuse").unwrap();
        let started = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..50 {
            let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            // A request the refused side never reads: closing over it
            // unread would reset the connection.
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            let (socket, _) = listener.accept().unwrap();
            refuser.refuse(socket, b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
            clients.push(client);
        }
        // Fifty refusals cost the accepting thread far less than one linger.
        assert!(started.elapsed() < LINGER, "{:?}", started.elapsed());
        for mut client in clients {
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut answer = String::new();
            client.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        }
        drop(refuser);
    }
}
