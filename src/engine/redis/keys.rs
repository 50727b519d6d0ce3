//! Key names in Redis for one hub (one `--redis-prefix`).
//!
//! Every key carries the prefix as a hash tag (`{prefix}`), so all of a
//! hub's keys live in one hash slot: a Lua script may touch them together
//! on a Redis Cluster too, and the scripts declare every key they touch.
//! Pure names, no I/O; used by the engine's threads to build commands.

/// The keys of one hub.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    tag: String,
}

impl Keys {
    /// The keys under `prefix` (already validated: no braces).
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            tag: format!("{{{prefix}}}"),
        }
    }

    /// A hash: `epoch` (the hub's epoch) and `seq` (the newest seq taken).
    pub(crate) fn meta(&self) -> String {
        format!("{}:meta", self.tag)
    }

    /// The shared log: a stream of every event and broadcast error, entry
    /// ID `<seq>-0`, dense (every seq is there until trimmed).
    pub(crate) fn log(&self) -> String {
        format!("{}:log", self.tag)
    }

    /// A hash: channel name → the newest seq trimmed from its history.
    pub(crate) fn trimmed(&self) -> String {
        format!("{}:trimmed", self.tag)
    }

    /// One channel's history: a stream, entry ID `<seq>-0`.
    pub(crate) fn channel(&self, name: &str) -> String {
        format!("{}:ch:{name}", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_hash_tag() {
        let keys = Keys::new("pumphub");
        for key in [keys.meta(), keys.log(), keys.trimmed(), keys.channel("a:b")] {
            assert!(key.starts_with("{pumphub}:"), "{key}");
        }
        assert_eq!(keys.channel("news"), "{pumphub}:ch:news");
    }
}
