//! The `GET /events` stream: a subscription to the supervisor's event bus written as
//! Server-Sent Events (`id:`, `event:`, `data:` lines), with replay after `Last-Event-ID`,
//! keep-alive comments, and an end when the server shuts down or the client falls behind.
//! It does not buffer per client: the broadcast receiver is the client's bounded queue, so a
//! slow reader costs the supervisor nothing; once it lags it gets a last `lagged` event and the
//! stream ends (it reconnects with `Last-Event-ID` and is replayed what it missed, or told to
//! resync).

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use conductor_protocol::Event;
use conductor_supervisor::{Sequenced, Subscription};
use hyper::body::{Body, Frame};
use tokio::{
    sync::{broadcast, watch},
    time::{Instant, Interval, MissedTickBehavior},
};

type NextFrame = Pin<Box<dyn Future<Output = Option<(Bytes, Feed)>> + Send>>;

/// The response body of `GET /events`. Each frame is one SSE event or comment; the body ends
/// when the feed does.
pub(crate) struct SseBody {
    next: Option<NextFrame>,
    /// This stream's place among the server's limited event streams, given back on drop.
    _place: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl SseBody {
    pub(crate) fn new(
        subscription: Subscription,
        keep_alive: Duration,
        shutdown: watch::Receiver<bool>,
        place: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> SseBody {
        let mut keep_alive = tokio::time::interval_at(Instant::now() + keep_alive, keep_alive);
        keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let feed = Feed {
            missed: subscription.missed.into(),
            live: subscription.live,
            keep_alive,
            shutdown,
            ended: false,
        };
        SseBody {
            next: Some(Box::pin(feed.next_frame())),
            _place: place,
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(next) = self.next.as_mut() else {
            return Poll::Ready(None);
        };
        match next.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.next = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some((frame, feed))) => {
                self.next = Some(Box::pin(feed.next_frame()));
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.next.is_none()
    }
}

/// The state of one client's stream between two frames.
struct Feed {
    missed: VecDeque<Sequenced>,
    live: broadcast::Receiver<Arc<Sequenced>>,
    keep_alive: Interval,
    shutdown: watch::Receiver<bool>,
    /// Set after the `lagged` event: nothing may follow it.
    ended: bool,
}

impl Feed {
    /// The next frame and the feed to continue from, or `None` at the end of the stream.
    async fn next_frame(mut self) -> Option<(Bytes, Feed)> {
        if self.ended {
            return None;
        }
        if let Some(event) = self.missed.pop_front() {
            return Some((encode_sequenced(&event), self));
        }
        let frame = tokio::select! {
            // Shutdown first, so a busy stream cannot hold the server open.
            biased;
            _ = crate::server::stopped(&mut self.shutdown) => return None,
            received = self.live.recv() => match received {
                Ok(event) => encode_sequenced(&event),
                Err(broadcast::error::RecvError::Lagged(n_missed)) => {
                    self.ended = true;
                    // No `id:`: the client's Last-Event-ID stays at the last event it really
                    // received, so its reconnect replays from there.
                    encode(None, &Event::Lagged { missed: n_missed })
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = self.keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
        };
        Some((frame, self))
    }
}

/// A published event in SSE framing: with its `id:`, unless it is live only.
fn encode_sequenced(event: &Sequenced) -> Bytes {
    let id = (!event.event.is_live_only()).then_some(event.id);
    encode(id, &event.event)
}

/// One event in SSE framing. The payload is single-line JSON (serde_json escapes newlines in
/// strings), so one `data:` line carries it.
pub(crate) fn encode(id: Option<u64>, event: &Event) -> Bytes {
    let mut text = String::new();
    if let Some(id) = id {
        text.push_str(&format!("id: {id}\n"));
    }
    text.push_str(&format!(
        "event: {}\ndata: {}\n\n",
        event.name().as_str(),
        event.payload_json()
    ));
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    fn event(n: u32) -> Event {
        Event::DatabaseInitialized {
            success: true,
            migrations_run: n,
        }
    }

    fn sequenced(id: u64) -> Sequenced {
        Sequenced {
            id,
            event: event(id as u32),
        }
    }

    /// The frames of `body` as text until it ends, or `None` if it is still open after 5 s.
    async fn frames(mut body: SseBody, limit: usize) -> Vec<String> {
        let mut frames = Vec::new();
        while frames.len() < limit {
            let next = tokio::time::timeout(Duration::from_secs(5), body.frame()).await;
            match next.expect("a frame or the end arrives") {
                Some(Ok(frame)) => frames.push(
                    String::from_utf8_lossy(&frame.into_data().unwrap_or_default()).into_owned(),
                ),
                None => break,
            }
        }
        frames
    }

    #[tokio::test]
    async fn replays_missed_events_then_goes_live_and_ends_at_shutdown() {
        let (sender, live) = broadcast::channel(16);
        let (stop, shutdown) = watch::channel(false);
        let subscription = Subscription {
            missed: vec![sequenced(1), sequenced(2)],
            live,
        };
        sender.send(Arc::new(sequenced(3))).unwrap();
        let body = SseBody::new(subscription, Duration::from_secs(3600), shutdown, None);
        let reader = tokio::spawn(frames(body, 10));
        // Nothing more will come: ask it to end, as Server::shutdown does.
        tokio::task::yield_now().await;
        stop.send_replace(true);
        let frames = reader.await.unwrap();
        let ids: Vec<&str> = frames
            .iter()
            .map(|f| f.lines().next().unwrap_or_default())
            .collect();
        assert_eq!(ids, ["id: 1", "id: 2", "id: 3"], "{frames:?}");
    }

    #[tokio::test]
    async fn a_lagging_client_gets_a_lagged_event_and_the_end() {
        let (sender, live) = broadcast::channel(2);
        let (_stop, shutdown) = watch::channel(false);
        let body = SseBody::new(
            Subscription {
                missed: vec![],
                live,
            },
            Duration::from_secs(3600),
            shutdown,
            None,
        );
        for id in 1..=5 {
            sender.send(Arc::new(sequenced(id))).unwrap();
        }
        let frames = frames(body, 10).await;
        assert_eq!(frames, ["event: lagged\ndata: {\"missed\":3}\n\n"]);
    }

    #[tokio::test]
    async fn an_idle_stream_gets_keep_alive_comments() {
        let (_sender, live) = broadcast::channel::<Arc<Sequenced>>(2);
        let (_stop, shutdown) = watch::channel(false);
        let body = SseBody::new(
            Subscription {
                missed: vec![],
                live,
            },
            Duration::from_millis(20),
            shutdown,
            None,
        );
        let frames = frames(body, 2).await;
        assert_eq!(frames, [": keep-alive\n\n", ": keep-alive\n\n"]);
    }

    #[test]
    fn an_event_is_id_event_and_one_data_line() {
        let event = Event::DatabaseInitialized {
            success: true,
            migrations_run: 2,
        };
        assert_eq!(
            encode(Some(7), &event),
            "id: 7\nevent: database:initialized\ndata: {\"migrationsRun\":2,\"success\":true}\n\n"
        );
        assert_eq!(
            encode(None, &Event::Lagged { missed: 3 }),
            "event: lagged\ndata: {\"missed\":3}\n\n"
        );
    }
}
