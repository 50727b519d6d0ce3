//! The fleet: every WebSocket client, driven by one thread with one mio poll.
//!
//! Owns all `ClientConn`s (subscribers, and WebSocket publishers if any) and
//! the run's `RunStats`. Each socket is registered once, for both read and
//! write readiness, under a token that is its index in `connections`. The
//! loadgen's main thread is the only one that touches the fleet; HTTP
//! publishers run on their own threads and never see it.
//!
//! One thread is enough because no client here ever waits: a client that
//! cannot read or write returns at once and is woken again by the poll. That
//! keeps the load generator to one core (plus HTTP publishers), leaving the
//! other for the hub on a 2-core machine.

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use tungstenite::protocol::WebSocketConfig;

use crate::client::{ClientConn, ConnContext, Role};
use crate::options::Target;
use crate::publisher::{EventFactory, LagGate, PublishTally, Schedule, WsPublishState};
use crate::stats::RunStats;

/// Longest single wait in the poll, so phase deadlines are checked often.
const POLL_SLICE: Duration = Duration::from_millis(10);

pub struct Fleet {
    poll: Poll,
    events: Events,
    /// Indexed by mio token. Subscribers first, then publishers.
    connections: Vec<ClientConn>,
    /// Where the publishers start in `connections`.
    first_publisher: usize,
    /// Tokens with an event in the current poll round (reused buffer).
    ready_tokens: Vec<usize>,
    /// The hubs (nodes of a cluster): connection `i` of each role goes to
    /// node `i % nodes.len()`.
    nodes: Vec<Target>,
    config: WebSocketConfig,
    /// Index of the next connection `connect_all` has not started yet.
    next_to_start: usize,
    /// Connections started and neither ready nor failed.
    pending: usize,
    /// Shared with WebSocket publishers while publishing; `None` otherwise.
    events_factory: Option<std::sync::Arc<EventFactory>>,
    /// `--max-lag`: told after every poll round how far the slowest
    /// subscriber has got, so publishers can wait for it.
    lag_gate: Option<std::sync::Arc<LagGate>>,
    pub stats: RunStats,
}

impl Fleet {
    /// Creates `subscribers` + `publishers` connections, none started yet.
    pub fn new(
        nodes: Vec<Target>,
        subscribers: usize,
        publishers: usize,
        read_buffer_bytes: usize,
    ) -> io::Result<Fleet> {
        let mut connections = Vec::with_capacity(subscribers + publishers);
        connections.extend((0..subscribers).map(|_| ClientConn::new(Role::Subscriber)));
        connections.extend((0..publishers).map(|_| ClientConn::new(Role::Publisher)));
        // A small read buffer per client is what lets 10,000 of them fit:
        // tungstenite's default is 128 KiB each. Subscribers write only
        // Pongs, so their write buffer stays tiny too.
        let config = WebSocketConfig::default()
            .read_buffer_size(read_buffer_bytes)
            .write_buffer_size(if publishers > 0 { 64 * 1024 } else { 0 });
        Ok(Fleet {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            connections,
            first_publisher: subscribers,
            ready_tokens: Vec::with_capacity(1024),
            nodes,
            config,
            next_to_start: 0,
            pending: 0,
            events_factory: None,
            lag_gate: None,
            stats: RunStats::default(),
        })
    }

    /// Opens every connection, at most `concurrency` at a time (0 = all at
    /// once), until each is ready or has failed, or `timeout` passes.
    pub fn connect_all(&mut self, concurrency: usize, timeout: Duration) -> io::Result<()> {
        let limit = if concurrency == 0 {
            usize::MAX
        } else {
            concurrency
        };
        let deadline = Instant::now() + timeout;
        loop {
            while self.pending < limit && self.next_to_start < self.connections.len() {
                self.start_next();
            }
            if self.pending == 0 && self.next_to_start == self.connections.len() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                for connection in &mut self.connections {
                    connection.abandon(&mut self.stats);
                }
                self.pending = 0;
                self.next_to_start = self.connections.len();
                return Ok(());
            }
            self.poll_once(deadline - now)?;
        }
    }

    /// The node connection `index` talks to: subscribers and publishers
    /// each take the nodes in turn.
    fn node_of(&self, index: usize) -> &Target {
        let nth = if index < self.first_publisher {
            index
        } else {
            index - self.first_publisher
        };
        &self.nodes[nth % self.nodes.len().max(1)]
    }

    fn start_next(&mut self) {
        let index = self.next_to_start;
        self.next_to_start += 1;
        let registry = self.poll.registry();
        let ws_addr = self.node_of(index).ws_addr;
        self.connections[index].start(ws_addr, &mut self.stats, |stream| {
            registry.register(
                stream,
                Token(index),
                Interest::READABLE | Interest::WRITABLE,
            )
        });
        if self.connections[index].is_pending() {
            self.pending += 1;
        }
    }

    /// Keeps every connection serviced (answering Pings) for `duration`.
    pub fn run_for(&mut self, duration: Duration) -> io::Result<()> {
        let deadline = Instant::now() + duration;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            self.poll_once(left)?;
        }
        Ok(())
    }

    /// Keeps polling until `delivered` reaches `expected` or `timeout` passes.
    pub fn drain(&mut self, expected: u64, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.stats.delivered < expected {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            self.poll_once(left)?;
        }
        Ok(())
    }

    /// Waits for socket events (at most `max_wait`, and never past a paced
    /// publisher's next due time), handles them, then lets publishers send.
    pub fn poll_once(&mut self, max_wait: Duration) -> io::Result<()> {
        let now = Instant::now();
        let next_due = self
            .publishers()
            .filter_map(ClientConn::next_publish_due)
            .min();
        let wait = match next_due {
            Some(due) => due.saturating_duration_since(now),
            None => max_wait,
        }
        .min(max_wait)
        .min(POLL_SLICE);
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(error) => return Err(error),
        }
        self.ready_tokens.clear();
        self.ready_tokens
            .extend(self.events.iter().map(|event| event.token().0));
        for position in 0..self.ready_tokens.len() {
            self.advance(self.ready_tokens[position]);
        }
        self.update_lag_gate();
        self.send_due_publishes();
        Ok(())
    }

    /// Closes the `--max-lag` loop: publishers may send from now on only
    /// while the slowest subscriber that is still open is within the lag.
    pub fn set_lag_gate(&mut self, gate: Option<std::sync::Arc<LagGate>>) {
        self.lag_gate = gate;
    }

    /// Tells the gate what the slowest open subscriber has received. A
    /// closed subscriber does not count: it will never catch up, and its
    /// loss is reported anyway.
    fn update_lag_gate(&self) {
        if let Some(gate) = &self.lag_gate {
            let slowest = self.connections[..self.first_publisher]
                .iter()
                .filter(|connection| connection.is_ready())
                .map(ClientConn::received)
                .min();
            if let Some(slowest) = slowest {
                gate.set_slowest(slowest);
            }
        }
    }

    /// Lets connection `index` make progress, and notes if it just became
    /// ready (its connect time) or just failed.
    fn advance(&mut self, index: usize) {
        let connection = &mut self.connections[index];
        let was_pending = connection.is_pending();
        let node = {
            let n = self.nodes.len().max(1);
            let nth = if index < self.first_publisher {
                index
            } else {
                index - self.first_publisher
            };
            &self.nodes[nth % n]
        };
        let url = match connection.role() {
            Role::Subscriber => &node.subscriber_url,
            Role::Publisher => &node.publisher_url,
        };
        let context = ConnContext {
            url,
            config: self.config,
        };
        connection.on_ready(&context, &mut self.stats);
        if was_pending && !connection.is_pending() {
            self.pending -= 1;
            // Publishers are few and not what the connect figures describe.
            if connection.role() == Role::Subscriber {
                if let Some(micros) = connection.connect_time_us() {
                    self.stats.connect_times_us.push(micros);
                }
            }
        }
    }

    /// Closes every open connection with a Close frame and waits, at most
    /// `timeout`, for the hub to finish each closing handshake. Whatever is
    /// still open then is dropped when the process exits.
    pub fn close_all(&mut self, timeout: Duration) -> io::Result<()> {
        let mut open = 0;
        for connection in &mut self.connections {
            if connection.start_close(&mut self.stats) {
                open += 1;
            }
        }
        let deadline = Instant::now() + timeout;
        while open > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            self.poll_once(left)?;
            open = self
                .connections
                .iter()
                .filter(|connection| !connection.is_closed())
                .count();
        }
        Ok(())
    }

    fn publishers(&self) -> impl Iterator<Item = &ClientConn> {
        self.connections[self.first_publisher..].iter()
    }

    /// Subscribers that are subscribed and still connected.
    pub fn ready_subscribers(&self) -> usize {
        self.connections[..self.first_publisher]
            .iter()
            .filter(|connection| connection.is_ready())
            .count()
    }

    /// Publishers that got their `welcome` and are still connected.
    pub fn ready_publishers(&self) -> usize {
        self.publishers()
            .filter(|connection| connection.is_ready())
            .count()
    }

    /// Gives each ready WebSocket publisher its share of the schedule.
    pub fn start_ws_publishing(
        &mut self,
        events: std::sync::Arc<EventFactory>,
        rate: u64,
        duration: Duration,
        window: usize,
        gate: Option<std::sync::Arc<LagGate>>,
    ) {
        let ready: Vec<usize> = (self.first_publisher..self.connections.len())
            .filter(|&index| self.connections[index].is_ready())
            .collect();
        for (share, &index) in ready.iter().enumerate() {
            let schedule = Schedule::share(rate, duration, ready.len(), share);
            self.connections[index].start_publishing(WsPublishState::new(
                schedule,
                window,
                gate.clone(),
            ));
        }
        self.events_factory = Some(events);
        self.send_due_publishes();
    }

    fn send_due_publishes(&mut self) {
        let Some(events) = &self.events_factory else {
            return;
        };
        let now = Instant::now();
        for connection in &mut self.connections[self.first_publisher..] {
            connection.send_due_publishes(events, now, &mut self.stats);
        }
    }

    /// True when no WebSocket publisher has anything left to send or await.
    pub fn ws_publishing_done(&self) -> bool {
        let now = Instant::now();
        self.publishers()
            .all(|connection| connection.publishing_done(now))
    }

    /// Ends WebSocket publishing and adds up what the publishers achieved.
    pub fn finish_ws_publishing(&mut self) -> PublishTally {
        self.events_factory = None;
        let mut total = PublishTally::default();
        for connection in &mut self.connections[self.first_publisher..] {
            if let Some(tally) = connection.finish_publishing() {
                total.add(tally);
            }
        }
        total
    }
}
