//! The event bus: every event gets the next id (SSE `id:`), is kept in a bounded replay buffer
//! for clients that reconnect with `Last-Event-ID`, and is broadcast to live subscribers.
//! It never waits on a subscriber: a slow one lags and is told so by its receiver.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use conductor_protocol::Event;
use tokio::sync::broadcast;

/// One event with its stream id. Ids increase by one; each run starts at its own random point
/// (a per-run epoch), so an id a client kept from an earlier run is told apart and answered
/// with `resync` instead of a wrong replay.
#[derive(Debug, Clone, PartialEq)]
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
    /// The id of this run's first event.
    first_id: u64,
    next_id: u64,
    buffer: VecDeque<Arc<Sequenced>>,
}

/// Runs start their ids at a random multiple of this (below 2^52, so every id is exact in a
/// JavaScript number): two runs' ranges overlap only if they draw neighbouring slots and one of
/// them publishes more than this many events.
const EPOCH_SPAN: u64 = 1 << 21;
const EPOCH_SLOTS: u64 = 1 << 31;

/// Publishes events in order to any number of subscribers.
#[derive(Clone)]
pub(crate) struct EventBus {
    // The id assignment, the buffer push and the broadcast happen under this one lock, so a
    // subscriber's replay and its live stream neither overlap nor leave a gap.
    ring: Arc<Mutex<Ring>>,
    sender: broadcast::Sender<Arc<Sequenced>>,
    /// Woken by each subscribe, so a task that works only while someone listens
    /// (`publish_live_logs`) starts at once rather than at its next poll.
    subscribed: Arc<tokio::sync::Notify>,
    replay_capacity: usize,
}

impl EventBus {
    /// A bus whose first id is this run's random epoch.
    pub(crate) fn new(replay_capacity: usize, live_capacity: usize) -> EventBus {
        let slot = (uuid::Uuid::new_v4().as_u128() as u64) % EPOCH_SLOTS;
        EventBus::starting_at(replay_capacity, live_capacity, slot * EPOCH_SPAN + 1)
    }

    /// A bus whose first event gets `first_id` (at least 1).
    pub(crate) fn starting_at(
        replay_capacity: usize,
        live_capacity: usize,
        first_id: u64,
    ) -> EventBus {
        let (sender, _) = broadcast::channel(live_capacity.max(1));
        let first_id = first_id.max(1);
        EventBus {
            ring: Arc::new(Mutex::new(Ring {
                first_id,
                next_id: first_id,
                buffer: VecDeque::new(),
            })),
            sender,
            subscribed: Arc::new(tokio::sync::Notify::new()),
            replay_capacity: replay_capacity.max(1),
        }
    }

    pub(crate) fn publish(&self, event: Event) {
        if event.is_live_only() {
            return self.publish_live(event);
        }
        let mut ring = lock(&self.ring);
        let sequenced = Arc::new(Sequenced {
            id: ring.next_id,
            event,
        });
        ring.next_id = ring.next_id.saturating_add(1);
        if ring.buffer.len() == self.replay_capacity {
            ring.buffer.pop_front();
        }
        ring.buffer.push_back(sequenced.clone());
        // No receivers is fine: nobody is listening yet.
        let _ = self.sender.send(sequenced);
    }

    /// Sends `event` to the live subscribers only: it is not kept for replay (`logs:entry`,
    /// whose lines a reconnecting client reads from `logs:get`, and which would otherwise push
    /// the events that matter out of the buffer). Its id is the newest buffered event's, and
    /// the stream writes it without `id:` ([`Event::is_live_only`]), so a client's
    /// `Last-Event-ID` stays where a replay can resume.
    fn publish_live(&self, event: Event) {
        let ring = lock(&self.ring);
        let sequenced = Arc::new(Sequenced {
            id: ring.next_id - 1,
            event,
        });
        let _ = self.sender.send(sequenced);
    }

    /// Whether anyone listens (an open event stream): live-only events are not even built
    /// otherwise.
    pub(crate) fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Resolves once someone subscribes (or has subscribed since the last call).
    pub(crate) async fn subscribed(&self) {
        self.subscribed.notified().await;
    }

    /// Subscribes; `last_event_id` is the id the client saw last, if it is reconnecting.
    ///
    /// `None`: live events only. `Some(0)`: everything this run still buffers (a client that
    /// has seen nothing yet). An id of this run: the events after it. Anything else (an id of
    /// an earlier run, one beyond the newest, one whose successors are no longer buffered)
    /// gets a single `resync` event, so the client refetches `services:get-all`. Whatever the
    /// number, nothing here can overflow or panic.
    pub(crate) fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        let ring = lock(&self.ring);
        let live = self.sender.subscribe();
        self.subscribed.notify_one();
        let newest = ring.next_id - 1;
        let oldest = ring.buffer.front().map_or(ring.next_id, |e| e.id);
        let after = match last_event_id {
            None => {
                return Subscription {
                    missed: Vec::new(),
                    live,
                };
            }
            Some(0) => Some(ring.first_id - 1),
            Some(last) if (ring.first_id - 1..=newest).contains(&last) => Some(last),
            Some(_) => None,
        };
        let missed = match after {
            // Everything after `last` is still buffered (or there is nothing after it).
            Some(last) if last >= oldest - 1 => ring
                .buffer
                .iter()
                .filter(|e| e.id > last)
                .map(|e| (**e).clone())
                .collect(),
            _ => vec![Sequenced {
                // The newest id: a client that reconnects after refetching resumes from here.
                id: newest,
                event: Event::Resync {
                    oldest_available: oldest,
                },
            }],
        };
        Subscription { missed, live }
    }
}

/// The ring's lock. A panic while it was held cannot leave it inconsistent (every update is
/// a push, a pop or an increment), so a poisoned lock is taken over, not propagated.
fn lock(ring: &Mutex<Ring>) -> std::sync::MutexGuard<'_, Ring> {
    ring.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let bus = EventBus::starting_at(8, 64, 1);
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
        let bus = EventBus::starting_at(8, 64, 1);
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
        let bus = EventBus::starting_at(4, 64, 1);
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

    fn is_resync(subscription: &Subscription) -> bool {
        matches!(
            subscription.missed.as_slice(),
            [Sequenced {
                event: Event::Resync { .. },
                ..
            }]
        )
    }

    #[test]
    fn ids_from_another_run_or_beyond_the_newest_get_a_resync_never_a_panic() {
        let first = 5 * EPOCH_SPAN + 1;
        let bus = EventBus::starting_at(8, 64, first);
        for n in 0..3 {
            bus.publish(event(n));
        }
        for foreign in [
            1,
            first - 2,
            first + 3,
            first + 1000,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let subscription = bus.subscribe(Some(foreign));
            assert!(
                is_resync(&subscription),
                "{foreign}: {:?}",
                subscription.missed
            );
            assert_eq!(
                subscription.missed[0].id,
                first + 2,
                "resumes from the newest"
            );
        }
        let ids: Vec<u64> = bus.subscribe(Some(0)).missed.iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            [first, first + 1, first + 2],
            "0 replays the whole run"
        );
        let ids: Vec<u64> = bus
            .subscribe(Some(first - 1))
            .missed
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [first, first + 1, first + 2]);
    }

    #[test]
    fn two_runs_start_their_ids_apart() {
        let a = EventBus::new(8, 64);
        let b = EventBus::new(8, 64);
        a.publish(event(0));
        b.publish(event(0));
        let id_a = a.subscribe(Some(0)).missed[0].id;
        let id_b = b.subscribe(Some(0)).missed[0].id;
        assert_ne!(id_a, id_b);
        assert!(
            id_a < 1 << 53 && id_b < 1 << 53,
            "ids must be exact in JavaScript"
        );
        assert!(is_resync(&b.subscribe(Some(id_a))));
    }
}
