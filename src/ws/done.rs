//! The done channel: how a client's read pump tells its write pump that it
//! stopped, and why. One [`Done`] message, sent once, by the read pump's
//! [`DoneSender`]; the write pump answers the peer accordingly (echo its
//! Close, or close with a violation code) and shuts the socket. See
//! docs/pumps.md for why the two pumps need this channel at all.

use crossbeam_channel::Sender;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;

use crate::broadcaster::OutboundQueue;

/// Why the read pump stopped; sent once over the done channel.
#[derive(Debug)]
pub enum Done {
    /// The peer sent a Close frame (`None` if it had no payload). The write
    /// pump answers with the same frame, unless it started the close itself.
    PeerClosed(Option<CloseFrame>),
    /// The peer broke the protocol; the write pump sends this close code
    /// (1002 protocol error, 1007 invalid UTF-8, 1009 too big) and drops TCP.
    Violation(CloseCode, &'static str),
    /// The socket failed or reached EOF without a close handshake.
    Failed(String),
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::PeerClosed(Some(frame)) => {
                write!(
                    f,
                    "closed by peer ({} {})",
                    u16::from(frame.code),
                    frame.reason
                )
            }
            Done::PeerClosed(None) => write!(f, "closed by peer"),
            Done::Violation(code, why) => write!(f, "{why} (closed with {})", u16::from(*code)),
            Done::Failed(why) => write!(f, "{why}"),
        }
    }
}

/// The read pump's end of the done channel. Sending (or dropping it
/// unsent: a panic outside `catching_panic`, or in the echo server's read
/// pump) also wakes the write pump, which parks on its
/// queue and would not otherwise notice the done channel.
pub(crate) struct DoneSender {
    done_tx: Option<Sender<Done>>,
    writer: OutboundQueue,
}

impl DoneSender {
    /// `done_tx` and the write pump's queue, to wake it. (Also used by
    /// `testing/echo.rs`, which wires the same pumps.)
    pub(crate) fn new(done_tx: Sender<Done>, writer: OutboundQueue) -> Self {
        DoneSender {
            done_tx: Some(done_tx),
            writer,
        }
    }

    pub(crate) fn send(mut self, done: Done) {
        if let Some(done_tx) = self.done_tx.take() {
            // The write pump may already be gone (it ended first); then
            // nobody needs to hear why the read side stopped.
            let _ = done_tx.send(done);
        }
    }
}

impl Drop for DoneSender {
    fn drop(&mut self) {
        // Disconnect first, then wake: the write pump must find either the
        // message or the disconnected channel when it looks.
        drop(self.done_tx.take());
        self.writer.wake();
    }
}
