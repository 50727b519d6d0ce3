//! Publishing: where a published event goes.
//!
//! Part of the broadcaster (see `broadcaster.rs`): more `impl Broadcaster` methods,
//! run only on the broadcaster thread. An event gets the next seq, is
//! serialized once into an [`EncodedEvent`], is kept in its channel's
//! history, and is pushed into the queue of every subscriber. The push
//! never blocks: a full queue closes that client with 4008 (it resumes from
//! history), and no other client waits for it. The write pumps are woken
//! at the end of the broadcaster's round (`Broadcaster::wake_writers`).

use std::sync::Arc;

use crossbeam_channel::TrySendError;
use serde_json::Value;
use tungstenite::protocol::frame::Utf8Bytes;

use super::{Broadcaster, EncodedEvent, Member, OutboundFrame};
use crate::protocol::{self, unix_ms, Event, Published, Seq};

impl Broadcaster {
    pub(super) fn next_seq(&mut self) -> Seq {
        self.seq = Seq(self.seq.0 + 1);
        self.seq
    }

    /// Give the event the next seq, keep it in history, and queue it for
    /// every subscriber of `channel`.
    pub(super) fn publish(&mut self, channel_name: &str, data: Value) -> Published {
        let seq = self.next_seq();
        let channel: Arc<str> = match self.channels.get_key_value(channel_name) {
            Some((key, _)) => key.clone(),
            None => channel_name.into(),
        };
        let delivered = self.fan_out(Event {
            seq,
            channel,
            ts_ms: unix_ms(),
            data,
        });
        self.metrics.events_published.inc();
        Published { seq, delivered }
    }

    /// Serialize an event that has its seq, keep it in its channel's
    /// history and queue it for every subscriber. Returns how many it was
    /// queued for. The memory engine's `publish` and the shared log's
    /// entries (`cluster.rs`) both end here, so channel lifetime
    /// (`channels.rs`) holds in cluster mode too.
    #[inline]
    pub(super) fn fan_out(&mut self, event: Event) -> usize {
        let seq = event.seq;
        let Some(channel_key) = self.channel_for_publish(&event.channel) else {
            // At --max-channels with every channel followed: a new channel
            // has nobody to deliver to and no place to be kept. Its seq is
            // remembered as forgotten, so `complete` stays honest.
            self.forgotten = self.forgotten.max(seq);
            return 0;
        };
        let event = EncodedEvent::new(Event {
            channel: channel_key.clone(),
            ..event
        });
        self.keep_in_history(&channel_key, &event);
        let Some(channel) = self.channels.get(&channel_key) else {
            return 0;
        };
        if channel.subscribers.is_empty() {
            // Unfollowed, and used just now: forgotten last.
            self.mark_unfollowed(&channel_key, event.accepted_at);
            return 0;
        }

        let mut delivered = 0;
        let mut slow: Vec<usize> = Vec::new();
        for &slot in &channel.subscribers {
            match &mut self.members[slot] {
                Some(Member::Client(client)) => {
                    if client.closing {
                        continue;
                    }
                    // The push never blocks: the broadcaster must not wait on
                    // any one client. A full queue means this client is too
                    // slow; it is closed with 4008 and resumes from history.
                    let frame = OutboundFrame::Event(event.clone());
                    match client.push(slot, frame, &mut self.to_wake) {
                        Ok(()) => {
                            client.last_sent = seq;
                            delivered += 1;
                        }
                        Err(_) => slow.push(slot),
                    }
                }
                Some(Member::Local(local)) => match local.events.try_send(event.event.clone()) {
                    Ok(()) => delivered += 1,
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                        slow.push(slot)
                    }
                },
                None => {}
            }
        }
        for slot in slow {
            match &self.members[slot] {
                Some(Member::Client(_)) => self.close_slow_consumer(slot),
                Some(Member::Local(local)) => {
                    // Dropping the sender ends the subscription: its receiver
                    // sees the channel disconnect once it has read what it has.
                    let key = local.key;
                    self.locals_by_key.remove(&key);
                    self.remove_member(slot);
                    self.metrics.slow_consumer_disconnects.inc();
                }
                None => {}
            }
        }
        self.metrics.events_delivered.add(delivered as u64);
        delivered
    }

    /// Send an `error` frame with the next seq to every connected client,
    /// whatever it follows. It is not kept in any history.
    pub(super) fn broadcast_error(
        &mut self,
        code: &str,
        message: &str,
        context: Option<&Value>,
    ) -> Seq {
        let seq = self.next_seq();
        self.fan_out_error(seq, unix_ms(), code, message, context);
        seq
    }

    /// Queue a broadcast `error` that has its seq for every client.
    pub(super) fn fan_out_error(
        &mut self,
        seq: Seq,
        ts_ms: u64,
        code: &str,
        message: &str,
        context: Option<&Value>,
    ) {
        let frame: Utf8Bytes =
            protocol::encode_broadcast_error(code, message, context, seq.0, ts_ms).into();
        let slots: Vec<usize> = self.clients_by_id.values().copied().collect();
        for slot in slots {
            let Some(Member::Client(client)) = &mut self.members[slot] else {
                continue;
            };
            if client.closing {
                continue;
            }
            match client.push(slot, OutboundFrame::Text(frame.clone()), &mut self.to_wake) {
                Ok(()) => client.last_sent = seq,
                Err(_) => self.close_slow_consumer(slot),
            }
        }
        self.metrics.broadcast_errors.inc();
    }
}
