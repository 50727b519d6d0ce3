//! `ClientBuilder`: every knob of the client, with its default, and the
//! backoff schedule the reconnect loop follows.
//!
//! The application builds a `ClientBuilder` on its own thread; `connect`
//! moves it into the worker, which only reads it from then on (the client
//! thread rebuilds the upgrade request from it for every reconnect). A
//! `Backoff` belongs to the client thread alone.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::http::header::{HeaderValue, AUTHORIZATION};

use super::error::ClientError;
use super::{check_channel, worker, Client};

/// How the client presents its token (contract section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenVia {
    /// An `auth` message right after `welcome`. Keeps the token out of
    /// proxy logs that record URLs.
    #[default]
    AuthMessage,
    /// `?token=` in the URL of the upgrade request.
    Query,
    /// An `Authorization: Bearer` header on the upgrade request.
    Header,
}

/// What [`ClientBuilder::token_source`] calls for a token: a fresh one,
/// or why there is none (the attempt then fails and is retried).
pub type TokenSource =
    Arc<dyn Fn() -> Result<String, Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// Configures and connects a [`Client`]. Start from [`Client::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// let client = pumphub::client::Client::builder("ws://127.0.0.1:9001/ws")
///     .channels(&["prices", "news"])
///     .token("s3cret")
///     .backoff(Duration::from_millis(200), Duration::from_secs(10))
///     .max_attempts(20)
///     .connect()?;
/// # Ok::<(), pumphub::client::ClientError>(())
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    pub(crate) url: String,
    pub(crate) channels: Vec<String>,
    pub(crate) since: Option<u64>,
    /// The epoch `since` belongs to, from [`resume`](Self::resume).
    pub(crate) since_epoch: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) token_source: Option<TokenSource>,
    pub(crate) token_via: TokenVia,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) connect_timeout: Duration,
    pub(crate) publish_timeout: Duration,
    pub(crate) buffer: usize,
}

impl ClientBuilder {
    pub(crate) fn new(url: &str) -> Self {
        ClientBuilder {
            url: url.to_string(),
            channels: Vec::new(),
            since: None,
            since_epoch: None,
            token: None,
            token_source: None,
            token_via: TokenVia::default(),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_attempts: None,
            connect_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(10),
            buffer: 1024,
        }
    }

    /// Follow these channels (added to any given before). Defaults to none:
    /// a client that only publishes.
    pub fn channels(mut self, channels: &[&str]) -> Self {
        for channel in channels {
            if !self.channels.iter().any(|c| c == channel) {
                self.channels.push(channel.to_string());
            }
        }
        self
    }

    /// Start after `seq` instead of at the moment of connecting: the first
    /// subscribe replays kept events with a larger seq, whatever the hub's
    /// epoch (see [`resume`](Self::resume) to check it). Defaults to the
    /// hub's current seq (live events only).
    pub fn since(mut self, seq: u64) -> Self {
        self.since = Some(seq);
        self.since_epoch = None;
        self
    }

    /// Continue from a point saved by an earlier run of the application:
    /// the `epoch` of its last [`ClientEvent::Connected`](super::ClientEvent)
    /// and the seq of the last event it handled. If the hub still runs that
    /// epoch, the client replays what came after `seq`; if the hub has
    /// restarted since, the first items are a
    /// [`GapReason::NewEpoch`](super::GapReason) gap and the new instance's
    /// whole history. Defaults to starting live.
    pub fn resume(mut self, epoch: &str, seq: u64) -> Self {
        self.since = Some(seq);
        self.since_epoch = Some(epoch.to_string());
        self
    }

    /// Present `token` to a hub started with `--token`. Defaults to none.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    /// Ask `source` for the token before every connection attempt, the
    /// first and each reconnect, instead of presenting one fixed token:
    /// for a hub with signed tokens (`--token-secret`), which expire. When
    /// one expires, the hub closes with 4001; the client reconnects like
    /// after any close, with a fresh token from `source`, and resumes
    /// where it was, so nothing is lost while the hub's history covers the
    /// gap. Replaces [`token`](Self::token).
    ///
    /// `source` runs on the thread that connects (the caller of
    /// [`connect`](Self::connect) for the first attempt, the client thread
    /// after). An `Err` fails that attempt: the first one is returned as
    /// [`ClientError::TokenSource`], later ones are retried with backoff.
    ///
    /// ```no_run
    /// # fn ask_my_backend_for_a_token() -> Result<String, std::io::Error> { Ok(String::new()) }
    /// let client = pumphub::client::Client::builder("ws://127.0.0.1:9001/ws")
    ///     .channels(&["user.42.inbox"])
    ///     .token_source(|| Ok(ask_my_backend_for_a_token()?))
    ///     .connect()?;
    /// # Ok::<(), pumphub::client::ClientError>(())
    /// ```
    pub fn token_source<F>(mut self, source: F) -> Self
    where
        F: Fn() -> Result<String, Box<dyn std::error::Error + Send + Sync>> + Send + Sync + 'static,
    {
        self.token_source = Some(Arc::new(source));
        self
    }

    /// The token for the next attempt: from the source if there is one.
    pub(crate) fn token_for_attempt(&self) -> Result<Option<String>, ClientError> {
        match &self.token_source {
            Some(source) => source().map(Some).map_err(ClientError::TokenSource),
            None => Ok(self.token.clone()),
        }
    }

    /// How to present the token. Defaults to [`TokenVia::AuthMessage`].
    pub fn token_via(mut self, via: TokenVia) -> Self {
        self.token_via = via;
        self
    }

    /// The reconnect delay: `initial` before the first attempt, doubling
    /// after each failure up to `max`, each with up to half of it taken off
    /// at random so that many clients cut at once do not come back in step.
    /// Defaults to 100 ms and 5 s.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Give up after `attempts` failed reconnects in a row; the application
    /// then receives [`ClientError::GaveUp`]. Defaults to trying forever.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// How long one connection attempt may take, from TCP connect to
    /// `subscribed`. Defaults to 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`Client::publish`] waits for `published`. Defaults to 10 s.
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// How many items may wait for the application. When it falls this far
    /// behind, the client thread stops reading the socket, and the hub
    /// eventually closes it as a slow consumer (4008); the client then
    /// resumes from history, so a slow application loses nothing while the
    /// history covers it. Defaults to 1024.
    pub fn buffer(mut self, items: usize) -> Self {
        self.buffer = items.max(1);
        self
    }

    /// Connect, authenticate and subscribe, then hand the connection to the
    /// client thread. The first connection is not retried: an error here
    /// means the hub is not there or refused us. Later drops are retried.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`], [`ClientError::InvalidChannel`] before
    /// any I/O; then whatever the first connection attempt ran into.
    pub fn connect(self) -> Result<Client, ClientError> {
        for channel in &self.channels {
            check_channel(channel)?;
        }
        self.request()?;
        worker::start(self)
    }

    /// The upgrade request with the fixed token, if any: checked once up
    /// front.
    pub(crate) fn request(&self) -> Result<Request, ClientError> {
        self.request_with(self.token.as_deref())
    }

    /// The upgrade request, with `token` in the URL or a header when
    /// asked. Built again for every attempt.
    pub(crate) fn request_with(&self, token: Option<&str>) -> Result<Request, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: self.url.clone(),
            reason: reason.to_string(),
        };
        let mut url = self.url.clone();
        if let (Some(token), TokenVia::Query) = (token, self.token_via) {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("token=");
            url.push_str(&percent_encode(token));
        }
        let mut request = url
            .into_client_request()
            .map_err(|e| invalid(&e.to_string()))?;
        match request.uri().scheme_str() {
            Some("ws") => {}
            Some("wss") => return Err(invalid("wss:// needs TLS, which this client lacks")),
            _ => return Err(invalid("the scheme must be ws://")),
        }
        if let (Some(token), TokenVia::Header) = (token, self.token_via) {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| invalid("the token cannot go in a header"))?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        Ok(request)
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-written only to keep the token out of logs; keep the field
        // list in step with the struct.
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("channels", &self.channels)
            .field("since", &self.since)
            .field("since_epoch", &self.since_epoch)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_source", &self.token_source.as_ref().map(|_| "<fn>"))
            .field("token_via", &self.token_via)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_attempts", &self.max_attempts)
            .field("connect_timeout", &self.connect_timeout)
            .field("publish_timeout", &self.publish_timeout)
            .field("buffer", &self.buffer)
            .finish()
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The reconnect schedule: exponential with a cap, and "equal jitter"
/// (half the delay fixed, half random) so a crowd of clients cut by one
/// restart spreads out instead of knocking together.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    /// xorshift64 state. Jitter needs spread, not secrecy, so a tiny PRNG
    /// seeded from a v4 UUID (already a dependency) does; never zero.
    state: u64,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&bytes[..8]);
        Backoff {
            initial,
            max,
            state: u64::from_le_bytes(seed) | 1,
        }
    }

    /// The delay before attempt `attempt` (0 = the first after a drop).
    pub(crate) fn delay(&mut self, attempt: u32) -> Duration {
        let nominal = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max);
        let half = nominal / 2;
        let fraction = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(fraction)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_at_most_half_jitter() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(5000));
        for (attempt, nominal) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (5, 3200),
            (6, 5000),
            (40, 5000),
        ] {
            let delay = backoff.delay(attempt);
            assert!(
                delay >= ms(nominal / 2) && delay <= ms(nominal),
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn a_bad_channel_is_refused_before_any_io() {
        // Nothing listens on port 1: a Connect error would mean the name
        // was checked too late.
        let refused = ClientBuilder::new("ws://127.0.0.1:1/ws")
            .channels(&["ok", "bad name"])
            .connect();
        assert!(
            matches!(&refused, Err(ClientError::InvalidChannel { name }) if name == "bad name"),
            "{refused:?}"
        );
    }

    #[test]
    fn token_goes_where_asked() {
        let builder = ClientBuilder::new("ws://127.0.0.1:1/ws").token("a b&c");
        let query = builder
            .clone()
            .token_via(TokenVia::Query)
            .request()
            .unwrap();
        assert_eq!(query.uri().query(), Some("token=a%20b%26c"));
        let header = builder.token_via(TokenVia::Header).request().unwrap();
        assert_eq!(header.headers()[AUTHORIZATION], "Bearer a b&c");
        assert!(ClientBuilder::new("wss://x/ws").request().is_err());
        assert!(ClientBuilder::new("http://x/ws").request().is_err());
        let shown = format!("{:?}", ClientBuilder::new("ws://x/ws").token("s3cret"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
