//! One connection to Redis, with the scripts loaded, and the errors the
//! engine's threads meet on it.
//!
//! Every engine thread (the log reader, each publisher, the replayer) owns
//! its own [`Link`]: blocking reads on one never hold up another, and a
//! connection never crosses threads. A link is made by [`Link::open`]
//! (connect with a timeout, set socket timeouts, `SCRIPT LOAD` each
//! script); a thread that loses its link drops it and opens a new one,
//! waiting between attempts with [`Backoff`].

use std::fmt;
use std::time::Duration;

use redis::{Client, Connection, ConnectionLike, Value};

use super::script;

/// How long connecting may take before the attempt counts as failed.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What can go wrong talking to Redis.
#[derive(Debug)]
pub(crate) enum LinkError {
    /// Connecting, reading or writing failed, or Redis refused a command.
    Redis(redis::RedisError),
    /// Redis answered something the engine does not expect (another
    /// program wrote the hub's keys, or a version without streams).
    Reply(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Redis(e) => write!(f, "{e}"),
            LinkError::Reply(what) => write!(f, "unexpected reply from Redis: {what}"),
        }
    }
}

impl std::error::Error for LinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LinkError::Redis(e) => Some(e),
            LinkError::Reply(_) => None,
        }
    }
}

impl From<redis::RedisError> for LinkError {
    fn from(e: redis::RedisError) -> Self {
        LinkError::Redis(e)
    }
}

/// The SHA1s `SCRIPT LOAD` gave for this connection's scripts.
#[derive(Debug, Clone)]
struct Loaded {
    hello: String,
    publish: String,
    replay: String,
}

/// Which script to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Script {
    Hello,
    Publish,
    Replay,
}

impl Script {
    fn source(self) -> &'static str {
        match self {
            Script::Hello => script::HELLO,
            Script::Publish => script::PUBLISH,
            Script::Replay => script::REPLAY,
        }
    }
}

/// A connection with the engine's scripts loaded.
pub(crate) struct Link {
    connection: Connection,
    loaded: Loaded,
}

impl Link {
    /// Connect, set the socket's timeouts (a read blocks at most
    /// `read_timeout`, so a Redis that hangs counts as lost), and load the
    /// scripts.
    pub(crate) fn open(client: &Client, read_timeout: Duration) -> Result<Link, LinkError> {
        let mut connection = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        connection.set_read_timeout(Some(read_timeout))?;
        connection.set_write_timeout(Some(read_timeout))?;
        let loaded = load(&mut connection)?;
        Ok(Link { connection, loaded })
    }

    /// The `EVALSHA` command for `script` with `keys` (ARGV follow, added
    /// by the caller).
    pub(crate) fn evalsha(&self, script: Script, keys: &[String]) -> redis::Cmd {
        let sha = match script {
            Script::Hello => &self.loaded.hello,
            Script::Publish => &self.loaded.publish,
            Script::Replay => &self.loaded.replay,
        };
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(sha).arg(keys.len()).arg(keys);
        cmd
    }

    /// Run `cmd` (made by [`evalsha`](Self::evalsha)); on `NOSCRIPT` (the
    /// script cache was flushed under us) load the scripts again and retry
    /// once. `NOSCRIPT` means the script did not run, so the retry cannot
    /// apply anything twice. `rebuild` makes the command again with the
    /// new SHA.
    pub(crate) fn run(
        &mut self,
        cmd: &redis::Cmd,
        rebuild: impl Fn(&Link) -> redis::Cmd,
    ) -> Result<Value, LinkError> {
        let value = self.connection.req_command(cmd)?;
        match value {
            Value::ServerError(e) if e.code() == "NOSCRIPT" => {
                self.reload()?;
                let again = rebuild(self);
                let value = self.connection.req_command(&again)?;
                Ok(value.extract_error()?)
            }
            other => Ok(other.extract_error()?),
        }
    }

    /// Load the scripts again (after `NOSCRIPT`).
    pub(crate) fn reload(&mut self) -> Result<(), LinkError> {
        self.loaded = load(&mut self.connection)?;
        Ok(())
    }

    /// Send `pipeline` in one round trip and return one reply per command,
    /// errors included as `Value::ServerError`: a publisher must answer
    /// each of its batched publishes on its own.
    pub(crate) fn pipeline(
        &mut self,
        pipeline: &redis::Pipeline,
        count: usize,
    ) -> Result<Vec<Value>, LinkError> {
        let packed = pipeline.get_packed_pipeline();
        Ok(self.connection.req_packed_commands(&packed, 0, count)?)
    }
}

fn load(connection: &mut Connection) -> Result<Loaded, LinkError> {
    let mut sha = |script: Script| -> Result<String, LinkError> {
        let value = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(script.source())
            .query::<String>(connection)?;
        Ok(value)
    };
    Ok(Loaded {
        hello: sha(Script::Hello)?,
        publish: sha(Script::Publish)?,
        replay: sha(Script::Replay)?,
    })
}

/// Waits between reconnection attempts: 50 ms doubling to 1 s, so a Redis
/// restart is noticed quickly and a long outage costs one attempt a second.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MOST: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The wait before the next attempt; each call doubles the one after.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MOST);
        wait
    }

    /// Start again from the shortest wait (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..7)
            .map(|_| backoff.next_wait().as_millis() as u64)
            .collect();
        assert_eq!(waits, vec![50, 100, 200, 400, 800, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_millis(50));
    }
}
