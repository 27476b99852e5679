//! The event bus: every event gets the next id (SSE `id:`), is kept in a bounded replay buffer
//! for clients that reconnect with `Last-Event-ID`, and is broadcast to live subscribers.
//! It never waits on a subscriber: a slow one lags and is told so by its receiver.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use conductor_protocol::Event;
use tokio::sync::broadcast;

/// One event with its stream id (ids increase by one, starting at 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced {
    /// The SSE `id:` of this event.
    pub id: u64,
    /// The event.
    pub event: Event,
}

/// What a (re)connecting subscriber gets: the events it missed, then the live stream.
#[derive(Debug)]
pub struct Subscription {
    /// Events after the client's `Last-Event-ID`, oldest first; or, when those are no longer
    /// buffered, a single `resync` event telling it to refetch `services:get-all`.
    pub missed: Vec<Sequenced>,
    /// Everything published from now on. A receiver that falls more than the channel's
    /// capacity behind gets `RecvError::Lagged`.
    pub live: broadcast::Receiver<Arc<Sequenced>>,
}

struct Ring {
    next_id: u64,
    buffer: VecDeque<Arc<Sequenced>>,
}

/// Publishes events in order to any number of subscribers.
#[derive(Clone)]
pub(crate) struct EventBus {
    // The id assignment, the buffer push and the broadcast happen under this one lock, so a
    // subscriber's replay and its live stream neither overlap nor leave a gap.
    ring: Arc<Mutex<Ring>>,
    sender: broadcast::Sender<Arc<Sequenced>>,
    replay_capacity: usize,
}

impl EventBus {
    pub(crate) fn new(replay_capacity: usize, live_capacity: usize) -> EventBus {
        let (sender, _) = broadcast::channel(live_capacity.max(1));
        EventBus {
            ring: Arc::new(Mutex::new(Ring {
                next_id: 1,
                buffer: VecDeque::new(),
            })),
            sender,
            replay_capacity: replay_capacity.max(1),
        }
    }

    pub(crate) fn publish(&self, event: Event) {
        let mut ring = self.ring.lock().expect("event bus lock is never poisoned");
        let sequenced = Arc::new(Sequenced {
            id: ring.next_id,
            event,
        });
        ring.next_id += 1;
        if ring.buffer.len() == self.replay_capacity {
            ring.buffer.pop_front();
        }
        ring.buffer.push_back(sequenced.clone());
        // No receivers is fine: nobody is listening yet.
        let _ = self.sender.send(sequenced);
    }

    /// Subscribes; `last_event_id` is the id the client saw last, if it is reconnecting.
    pub(crate) fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        let ring = self.ring.lock().expect("event bus lock is never poisoned");
        let live = self.sender.subscribe();
        let missed = match last_event_id {
            None => Vec::new(),
            Some(last) if last + 1 >= ring.next_id => Vec::new(),
            Some(last) => {
                let oldest = ring.buffer.front().map_or(ring.next_id, |e| e.id);
                if last + 1 < oldest {
                    vec![Sequenced {
                        id: last,
                        event: Event::Resync {
                            oldest_available: oldest,
                        },
                    }]
                } else {
                    ring.buffer
                        .iter()
                        .filter(|e| e.id > last)
                        .map(|e| (**e).clone())
                        .collect()
                }
            }
        };
        Subscription { missed, live }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32) -> Event {
        Event::DatabaseInitialized {
            success: true,
            migrations_run: n,
        }
    }

    #[tokio::test]
    async fn ids_increase_by_one_and_live_subscribers_see_them_in_order() {
        let bus = EventBus::new(8, 64);
        let mut sub = bus.subscribe(None);
        for n in 0..5 {
            bus.publish(event(n));
        }
        for expected in 1..=5 {
            let got = sub.live.recv().await.unwrap();
            assert_eq!(got.id, expected);
        }
    }

    #[test]
    fn a_reconnecting_client_gets_what_it_missed() {
        let bus = EventBus::new(8, 64);
        for n in 0..5 {
            bus.publish(event(n));
        }
        let sub = bus.subscribe(Some(3));
        let ids: Vec<u64> = sub.missed.iter().map(|e| e.id).collect();
        assert_eq!(ids, [4, 5]);
        assert!(bus.subscribe(Some(5)).missed.is_empty());
    }

    #[test]
    fn a_client_too_far_behind_is_told_to_resync() {
        let bus = EventBus::new(4, 64);
        for n in 0..10 {
            bus.publish(event(n));
        }
        let sub = bus.subscribe(Some(2));
        assert_eq!(sub.missed.len(), 1);
        assert_eq!(
            sub.missed[0].event,
            Event::Resync {
                oldest_available: 7
            }
        );
        // Exactly at the edge of the buffer nothing is lost, so no resync.
        let ids: Vec<u64> = bus.subscribe(Some(6)).missed.iter().map(|e| e.id).collect();
        assert_eq!(ids, [7, 8, 9, 10]);
    }
}
