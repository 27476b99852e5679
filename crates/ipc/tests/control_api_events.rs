//! SPEC §5, the event stream: `GET /events` as Server-Sent Events, live and replayed after
//! `Last-Event-ID`, with the token in the query string for browsers' EventSource.

// `pub` so the helpers this file does not use are not dead code.
pub mod common;

use std::time::Duration;

use common::{Fixture, parse_response};
use conductor_ipc::EventStream;
use conductor_protocol::{Channel, Event, ServiceActionResponse, ServiceRequest, ServiceState};
use conductor_test_support::{DEADLINE, free_port};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn service(name: &str) -> ServiceRequest {
    ServiceRequest {
        service_name: name.to_owned(),
    }
}

/// Reads events until `alpha` reports `state`; returns every (id, event) read on the way.
async fn until_alpha_is(stream: &mut EventStream, state: ServiceState) -> Vec<(u64, Event)> {
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(DEADLINE, async {
        while let Some(next) = stream.next().await {
            let (id, event) = next.expect("events decode");
            // Log lines (live only, without ids) are not what these tests follow.
            if event.is_live_only() {
                continue;
            }
            let done = matches!(&event, Event::ServiceStatusChanged { service_name, status } if service_name == "alpha" && status.status == state);
            seen.push((id, event));
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        outcome,
        Ok(true),
        "expected alpha to become {state:?}; events seen: {seen:#?}"
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_a_stop_made_through_the_api() {
    let fixture = Fixture::new("events-stop", true).await;
    let client = fixture.client();
    let mut stream = client.events(None).await.unwrap();
    let answer: ServiceActionResponse = client
        .call(Channel::ServicesStop, Some(&service("alpha")))
        .await
        .unwrap();
    assert!(answer.success);
    let seen = until_alpha_is(&mut stream, ServiceState::Stopped).await;
    // Ids increase by one with no gaps.
    let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    let expected: Vec<u64> = (ids[0]..ids[0] + ids.len() as u64).collect();
    assert_eq!(ids, expected, "{seen:#?}");
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_with_last_event_id_replays_what_was_missed() {
    let fixture = Fixture::new("events-replay", true).await;
    let client = fixture.client();
    let mut stream = client.events(None).await.unwrap();
    client
        .call::<_, ServiceActionResponse>(Channel::ServicesStop, Some(&service("alpha")))
        .await
        .unwrap();
    let before = until_alpha_is(&mut stream, ServiceState::Stopped).await;
    let last_seen = stream.last_event_id().expect("events carry ids");
    assert_eq!(Some(last_seen), before.last().map(|(id, _)| *id));
    drop(stream);

    // Disconnected while alpha starts again.
    let answer: ServiceActionResponse = client
        .call(Channel::ServicesStart, Some(&service("alpha")))
        .await
        .unwrap();
    assert!(answer.success, "{answer:?}");

    let mut stream = client.events(Some(last_seen)).await.unwrap();
    let missed = until_alpha_is(&mut stream, ServiceState::Running).await;
    assert_eq!(
        missed[0].0,
        last_seen + 1,
        "the replay starts right after the last id seen: {missed:#?}"
    );
    assert!(
        matches!(&missed[0].1, Event::ServiceStatusChanged { service_name, status } if service_name == "alpha" && status.status == ServiceState::Starting),
        "{missed:#?}"
    );
    fixture.finish().await;
}

/// What a browser's EventSource does: token and last id in the query string, and it reads the
/// raw framing, including keep-alive comments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_source_style_query_parameters_and_keep_alive() {
    let fixture = Fixture::with("events-query", true, Duration::from_millis(50), "").await;
    let mut socket = tokio::net::TcpStream::connect(fixture.addr())
        .await
        .unwrap();
    let request = format!(
        "GET /events?token={}&lastEventId=0 HTTP/1.1\r\nHost: localhost:{}\r\nAccept: text/event-stream\r\n\r\n",
        fixture.info.token, fixture.port
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        let mut buffer = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&received);
            // Ids start at a per-run epoch; `lastEventId=0` replays the run from its start.
            if text.contains("\nevent: service:status-changed\ndata: {\"serviceName\":")
                && text.contains("\n: keep-alive\n\n")
            {
                return true;
            }
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&received).into_owned();
    assert_eq!(
        read,
        Ok(true),
        "expected the first event replayed and a keep-alive comment; got {text:?}"
    );
    let response = parse_response(&received);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    drop(socket);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_ends_open_event_streams() {
    let mut fixture = Fixture::new("events-shutdown", false).await;
    let mut stream = fixture.client().events(None).await.unwrap();
    let server = fixture.server.take().unwrap();
    tokio::time::timeout(DEADLINE, server.shutdown())
        .await
        .expect("shutdown does not wait on the stream");
    let end = tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.next().await {
                // Events sent before the shutdown (a metrics sample, log lines) may still be
                // on their way; what matters is that the stream then ends.
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(end.is_none(), "{end:?}");
    fixture.finish().await;
}

/// Issue 12: a `Last-Event-ID` that this run cannot have sent (the largest u64, which once
/// overflowed while a lock was held and left every later request "shutting down"; negative,
/// not a number, beyond the newest, from another run) gets a `resync`, and conductor keeps
/// working: a restart of a real service succeeds afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_last_event_ids_get_a_resync_and_leave_conductor_working() {
    let fixture = Fixture::new("events-hostile-id", true).await;
    let client = fixture.client();
    let mut stream = client.events(Some(0)).await.unwrap();
    let (newest, _) = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("the run's first event is replayed")
        .expect("the stream is open")
        .expect("events decode");
    drop(stream);
    let beyond = (newest + 1_000_000).to_string();
    for value in [
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "yesterday",
        "1",
        beyond.as_str(),
    ] {
        let mut socket = tokio::net::TcpStream::connect(fixture.addr())
            .await
            .unwrap();
        let request = format!(
            "GET /events HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {}\r\nLast-Event-ID: {value}\r\n\r\n",
            fixture.port, fixture.info.token
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let got_resync = tokio::time::timeout(DEADLINE, async {
            let mut buffer = [0u8; 4096];
            loop {
                if String::from_utf8_lossy(&received).contains("\nevent: resync\ndata: ") {
                    return true;
                }
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => received.extend_from_slice(&buffer[..n]),
                }
            }
        })
        .await;
        assert_eq!(
            got_resync,
            Ok(true),
            "Last-Event-ID {value}: {}",
            String::from_utf8_lossy(&received)
        );
        let answer: ServiceActionResponse = client
            .call(Channel::ServicesRestart, Some(&service("alpha")))
            .await
            .unwrap();
        assert!(answer.success, "after Last-Event-ID {value}: {answer:?}");
    }
    fixture.finish().await;
}

/// Issue 12: event streams are capped; one over the cap is refused with a message, and a
/// place frees up when a stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_beyond_the_cap_are_refused_until_one_closes() {
    let fixture = Fixture::new("events-cap", true).await;
    let client = fixture.client();
    let mut streams = Vec::new();
    for _ in 0..64 {
        streams.push(client.events(None).await.expect("a stream within the cap"));
    }
    let refused = client.events(None).await;
    let message = format!("{:?}", refused.err());
    assert!(message.contains("too many event streams"), "{message}");
    drop(streams.pop());
    let reopened = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(stream) = client.events(None).await {
                return stream;
            }
            // Polling interval while the closed stream's place is given back.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "no place freed after a stream closed");
    drop(streams);
    fixture.finish().await;
}

/// Issue 16: new log lines reach the stream as `logs:entry`, at most one event per 200 ms and
/// 100 lines of a service per event; a flooding service's excess is counted with its file,
/// and it does not crowd out a quiet service's line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_log_lines_are_rate_bounded_and_a_flood_does_not_starve_a_quiet_service() {
    let extra = format!(
        "\n[services.flood]\nport = {}\ncommand = {:?}\nenv = {{ FAKE_REQUIRE_DB = \"0\", FAKE_LOG_RATE = \"1000\" }}\n",
        free_port(),
        fake_service::binary().display().to_string(),
    );
    let fixture = Fixture::with("events-logs", true, Duration::from_secs(15), &extra).await;
    let client = fixture.client();
    let mut stream = client.events(None).await.unwrap();
    let subscribed = std::time::Instant::now();
    let answer: ServiceActionResponse = client
        .call(Channel::ServicesRestart, Some(&service("alpha")))
        .await
        .unwrap();
    assert!(answer.success, "{answer:?}");

    let mut n_events = 0u32;
    let mut alpha_line = None;
    let mut flood_skipped = None;
    let outcome = tokio::time::timeout(DEADLINE, async {
        while let Some(next) = stream.next().await {
            let (_, event) = next.expect("events decode");
            let Event::LogsEntry { entries, skipped } = event else {
                continue;
            };
            n_events += 1;
            assert!(
                entries.len() <= 500,
                "{} entries in one event",
                entries.len()
            );
            for name in ["alpha", "beta", "flood"] {
                let n = entries.iter().filter(|e| e.service == name).count();
                assert!(n <= 100, "{n} lines of {name} in one event");
            }
            if let Some(entry) = entries
                .iter()
                .find(|e| e.service == "alpha" && e.message.contains("starting attempt"))
            {
                alpha_line = Some(entry.message.clone());
            }
            if let Some(lines) = skipped
                .iter()
                .find(|s| s.service_name.as_deref() == Some("flood"))
            {
                flood_skipped = Some(lines.clone());
            }
            if alpha_line.is_some() && flood_skipped.is_some() && n_events >= 5 {
                return true;
            }
        }
        false
    })
    .await;
    let elapsed = subscribed.elapsed();
    assert_eq!(
        outcome,
        Ok(true),
        "after {n_events} logs:entry events: alpha's line {alpha_line:?}, flood skipped {flood_skipped:?}"
    );
    // One event per 200 ms at most (one more for the tick already due when the stream opened).
    let most = elapsed.as_millis() / 200 + 2;
    assert!(
        u128::from(n_events) <= most,
        "{n_events} events in {elapsed:?}: more than one per 200 ms"
    );
    let skipped = flood_skipped.unwrap_or_else(|| unreachable!());
    assert!(skipped.lines > 0, "{skipped:?}");
    assert!(
        skipped.file.ends_with("flood.log") && std::path::Path::new(&skipped.file).is_file(),
        "the skipped lines name the service's log file: {skipped:?}"
    );
    fixture.finish().await;
}
