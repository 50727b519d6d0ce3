//! Connection limits: `--max-connections` and `--max-connections-per-ip`
//! for admitted clients, and `--max-handshakes-per-ip` for connections
//! still in their handshake.
//!
//! Shared by every connection thread during its handshake. A connection
//! that passes takes a [`ConnectionSlot`], an RAII guard it keeps for its
//! whole life; dropping the slot (at close, or when a later handshake check
//! refuses the request) gives the place back. Check and take happen under
//! one mutex, so a burst of concurrent connects can never let N+1 clients in.
//! The mutex is taken twice per connection, never per message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connection threads that may sit in their handshake at once (see
/// `config/machine.rs`, where the connection ceiling counts them).
pub(crate) use crate::config::MAX_PENDING_HANDSHAKES;

/// Connections in their handshake, per remote address, for
/// `--max-handshakes-per-ip`. Only the acceptor takes a place (before it
/// starts the connection's thread); the thread gives it back when its
/// handshake ends, by dropping the [`HandshakePlace`].
#[derive(Debug)]
pub struct HandshakesPerIp {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place among its address's handshakes; freed on drop.
#[derive(Debug)]
pub struct HandshakePlace {
    handshakes: Arc<HandshakesPerIp>,
    ip: IpAddr,
}

impl HandshakesPerIp {
    /// At most `max` handshakes at once from one address.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(HandshakesPerIp {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A place for a handshake from `ip`, or `None` if it has `max` already.
    pub fn try_enter(self: &Arc<Self>, ip: IpAddr) -> Option<HandshakePlace> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(HandshakePlace {
            handshakes: self.clone(),
            ip,
        })
    }
}

impl Drop for HandshakePlace {
    fn drop(&mut self) {
        let mut counts = self
            .handshakes
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    /// `--max-connections` (HTTP 503).
    Total,
    /// `--max-connections-per-ip` (HTTP 429).
    PerIp,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts connections in total and per remote IP.
#[derive(Debug)]
pub struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

/// One admitted connection's place; released on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    /// A limiter allowing `max_total` connections, `max_per_ip` per address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimiter {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Take a place for a connection from `ip`. The total limit is checked
    /// first, so a client over both limits gets 503.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, LimitExceeded> {
        // A poisoned lock only means another thread panicked mid-update of
        // two integers; the counts are still usable.
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.max_total {
            return Err(LimitExceeded::Total);
        }
        let for_ip = counts.per_ip.entry(ip).or_insert(0);
        if *for_ip >= self.max_per_ip {
            return Err(LimitExceeded::PerIp);
        }
        *for_ip += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            limiter: self.clone(),
            ip,
        })
    }

    /// Connections holding a slot now.
    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_are_bounded_per_address_and_places_come_back() {
        let handshakes = HandshakesPerIp::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = handshakes.try_enter(a).unwrap();
        let _second = handshakes.try_enter(a).unwrap();
        assert!(handshakes.try_enter(a).is_none());
        assert!(handshakes.try_enter(b).is_some());
        drop(first);
        assert!(handshakes.try_enter(a).is_some());
    }

    #[test]
    fn total_limit_wins_over_per_ip_and_slots_come_back() {
        let limiter = ConnectionLimiter::new(2, 1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let first = limiter.try_acquire(a).unwrap();
        assert_eq!(limiter.try_acquire(a).unwrap_err(), LimitExceeded::PerIp);
        let _second = limiter.try_acquire(b).unwrap();
        assert_eq!(limiter.try_acquire(a).unwrap_err(), LimitExceeded::Total);
        assert_eq!(limiter.try_acquire(c).unwrap_err(), LimitExceeded::Total);
        drop(first);
        assert_eq!(limiter.total(), 1);
        assert!(limiter.try_acquire(a).is_ok());
    }
}
