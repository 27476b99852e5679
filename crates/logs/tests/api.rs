//! SPEC §6 behaviours of the `Logs` handle on small inputs: framing and levels end to end, the
//! file format, `logs:get` semantics, clear, followers, and disk trouble (an unwritable
//! directory, failed compression, failed rotation) losing no line.

#[expect(dead_code, reason = "the burst test uses the rest of the helpers")]
mod support;

use std::{fs, io::Cursor, path::Path, time::Duration};

use conductor_logs::{LogConfig, LogEntry, LogLevel, LogProblem, Logs, MAX_LINE_BYTES, Stream};
use conductor_test_support::{TempDir, wait_until_async};
use support::{all_log_files, file_names, parse_file_line};
use tokio::sync::broadcast;

const TIMEOUT: Duration = Duration::from_secs(30);

fn logs_in(dir: &Path, max_size: u64, max_files: usize, tail: usize) -> Logs {
    Logs::new(LogConfig {
        dir: dir.to_path_buf(),
        max_size,
        max_files,
        tail,
        ..LogConfig::default()
    })
}

async fn capture_bytes(logs: &Logs, service: &str, stream: Stream, bytes: Vec<u8>) {
    let summary = tokio::time::timeout(TIMEOUT, logs.capture(service, stream, Cursor::new(bytes)))
        .await
        .expect("a capture of an in-memory reader ends")
        .expect("the capture task does not panic");
    assert!(summary.bytes > 0);
    tokio::time::timeout(TIMEOUT, logs.flush())
        .await
        .expect("flush ends");
}

fn messages(entries: &[LogEntry]) -> Vec<&str> {
    entries.iter().map(|entry| entry.message.as_str()).collect()
}

fn file_lines(dir: &Path, service: &str) -> Vec<String> {
    all_log_files(dir, service)
        .into_iter()
        .flat_map(|(_, text)| text.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

fn drain(problems: &mut broadcast::Receiver<LogProblem>) -> Vec<LogProblem> {
    std::iter::from_fn(|| problems.try_recv().ok()).collect()
}

#[tokio::test]
async fn captured_lines_are_framed_decoded_and_written_in_the_file_format() {
    let dir = TempDir::new("framing");
    let logs = logs_in(dir.path(), 10_000_000, 10, 100);
    let mut input = b"one\r\ntwo\n\xff\xfe bad bytes\n".to_vec();
    input.extend(std::iter::repeat_n(b'a', MAX_LINE_BYTES + 10));
    input.extend(b"\nERROR: last without newline");
    capture_bytes(&logs, "svc", Stream::Stdout, input).await;

    let long_rest = "a".repeat(10);
    let entries = logs.get(Some("svc"), 100);
    assert_eq!(
        messages(&entries),
        [
            "one",
            "two",
            "\u{FFFD}\u{FFFD} bad bytes",
            "a".repeat(MAX_LINE_BYTES).as_str(),
            long_rest.as_str(),
            "ERROR: last without newline",
        ]
    );
    let levels: Vec<LogLevel> = entries.iter().map(|entry| entry.level).collect();
    use LogLevel::{Error, Info};
    assert_eq!(levels, [Info, Info, Info, Info, Info, Error]);
    assert!(entries.iter().all(|entry| entry.service == "svc"));

    let lines = file_lines(dir.path(), "svc");
    let parsed: Vec<(&str, &str, &str)> = lines.iter().map(|line| parse_file_line(line)).collect();
    let levels_and_messages: Vec<(&str, &str)> = parsed
        .iter()
        .map(|(_, level, message)| (*level, *message))
        .collect();
    assert_eq!(levels_and_messages[0], ("INFO", "one"));
    assert_eq!(
        levels_and_messages[2],
        ("INFO", "\u{FFFD}\u{FFFD} bad bytes")
    );
    assert_eq!(
        levels_and_messages[4],
        ("INFO+", long_rest.as_str()),
        "continuation marker"
    );
    assert_eq!(
        levels_and_messages[5],
        ("ERROR", "ERROR: last without newline")
    );
    for (timestamp, ..) in &parsed {
        let time = humantime::parse_rfc3339(timestamp).expect("file timestamps are RFC 3339");
        assert!(time <= std::time::SystemTime::now());
        assert_eq!(
            timestamp.len(),
            "2024-05-01T10:00:00.123Z".len(),
            "{timestamp}"
        );
    }
    assert_eq!(
        entries[0].timestamp, parsed[0].0,
        "tail and file share the timestamp"
    );
}

#[tokio::test]
async fn stderr_lines_default_to_warn_and_keep_their_level_words() {
    let dir = TempDir::new("stderr");
    let logs = logs_in(dir.path(), 10_000_000, 10, 100);
    let input = b"plain complaint\nERROR: broken\n{\"level\":\"info\",\"msg\":\"json\"}\n".to_vec();
    capture_bytes(&logs, "svc", Stream::Stderr, input).await;
    let levels: Vec<LogLevel> = logs
        .get(Some("svc"), 10)
        .iter()
        .map(|entry| entry.level)
        .collect();
    assert_eq!(levels, [LogLevel::Warn, LogLevel::Error, LogLevel::Info]);
    let file_levels: Vec<String> = file_lines(dir.path(), "svc")
        .iter()
        .map(|line| parse_file_line(line).1.to_string())
        .collect();
    assert_eq!(file_levels, ["WARN", "ERROR", "INFO"]);
}

#[tokio::test]
async fn issue_12_long_lines_keep_the_tail_within_its_byte_bound_and_the_newest_lines() {
    let dir = TempDir::new("tail-bytes");
    let tail_bytes = 64 * 1024;
    let logs = Logs::new(LogConfig {
        dir: dir.path().to_path_buf(),
        tail: 10_000,
        tail_bytes,
        ..LogConfig::default()
    });
    let n_lines = 2000;
    let line = |number: usize| format!("{number:06} {}", "x".repeat(993));
    let input: String = (0..n_lines).map(|number| line(number) + "\n").collect();
    capture_bytes(&logs, "svc", Stream::Stdout, input.into_bytes()).await;

    let entries = logs.get(Some("svc"), usize::MAX);
    let counted: usize = entries
        .iter()
        .map(|entry| entry.message.len() + conductor_logs::TAIL_ENTRY_OVERHEAD_BYTES)
        .sum();
    assert!(counted <= tail_bytes, "{counted} bytes kept");
    let fitting = tail_bytes / (line(0).len() + conductor_logs::TAIL_ENTRY_OVERHEAD_BYTES);
    let numbers: Vec<usize> = entries
        .iter()
        .map(|entry| entry.message[..6].parse().expect("a line number"))
        .collect();
    let expected: Vec<usize> = (n_lines - fitting..n_lines).collect();
    assert_eq!(numbers, expected, "the newest lines that fit, oldest first");
    assert_eq!(
        file_lines(dir.path(), "svc").len(),
        n_lines,
        "the byte bound is for memory only: the file has every line"
    );
}

#[tokio::test]
async fn get_returns_the_newest_lines_last_merged_across_services() {
    let dir = TempDir::new("get");
    let logs = logs_in(dir.path(), 10_000_000, 10, 5);
    for number in 0..4 {
        logs.record("a", LogLevel::Info, format!("a{number}"));
        logs.record("b", LogLevel::Warn, format!("b{number}"));
    }
    assert_eq!(messages(&logs.get(None, 3)), ["b2", "a3", "b3"]);
    assert_eq!(
        messages(&logs.get(None, 100)),
        ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3"]
    );
    assert_eq!(messages(&logs.get(Some("a"), 2)), ["a2", "a3"]);
    assert_eq!(logs.get(Some("b"), 1)[0].level, LogLevel::Warn);
    assert!(logs.get(Some("unknown"), 10).is_empty());
    assert!(logs.get(None, 0).is_empty());

    for number in 4..9 {
        logs.record("a", LogLevel::Info, format!("a{number}"));
    }
    assert_eq!(
        messages(&logs.get(Some("a"), 100)),
        ["a4", "a5", "a6", "a7", "a8"],
        "the tail keeps only its bound"
    );
    let merged = logs.get(None, 100);
    let mut sorted = merged.clone();
    sorted.sort_by(|x, y| x.timestamp.cmp(&y.timestamp));
    assert_eq!(merged, sorted, "merged entries are in timestamp order");
    // Writers finish before the temp dir goes.
    logs.flush().await;
}

#[tokio::test]
async fn issue_12_get_with_usize_max_lines_returns_what_is_kept() {
    let dir = TempDir::new("get-max");
    let logs = logs_in(dir.path(), 10_000_000, 10, 5);
    for number in 0..8 {
        logs.record("a", LogLevel::Info, format!("a{number}"));
        logs.record("b", LogLevel::Info, format!("b{number}"));
    }
    for lines in [usize::MAX, usize::MAX - 1, usize::MAX / 2 + 1] {
        assert_eq!(
            messages(&logs.get(Some("a"), lines)),
            ["a3", "a4", "a5", "a6", "a7"],
            "one service, lines = {lines}"
        );
        assert_eq!(
            messages(&logs.get(None, lines)),
            ["a3", "b3", "a4", "b4", "a5", "b5", "a6", "b6", "a7", "b7"],
            "merged, lines = {lines}"
        );
        assert!(logs.get(Some("unknown"), lines).is_empty());
    }
    logs.flush().await;
}

#[tokio::test]
async fn record_splits_multi_line_messages_and_writes_them() {
    let dir = TempDir::new("record");
    let logs = logs_in(dir.path(), 10_000_000, 10, 100);
    logs.record("svc", LogLevel::Error, "exited with code 1\r\nlast lines:");
    logs.flush().await;
    assert_eq!(
        messages(&logs.get(Some("svc"), 10)),
        ["exited with code 1", "last lines:"]
    );
    let lines = file_lines(dir.path(), "svc");
    let parsed: Vec<_> = lines.iter().map(|line| parse_file_line(line)).collect();
    assert_eq!(parsed[0].1, "ERROR");
    assert_eq!(parsed[0].2, "exited with code 1");
    assert_eq!(parsed[1].2, "last lines:");
    assert_eq!(logs.stats().lines_written, 2);
}

#[tokio::test]
async fn followers_see_new_entries() {
    let dir = TempDir::new("follow");
    let logs = logs_in(dir.path(), 10_000_000, 10, 100);
    let mut follower = logs.subscribe();
    capture_bytes(
        &logs,
        "svc",
        Stream::Stdout,
        b"hello\nWARN there\n".to_vec(),
    )
    .await;
    let read = follower.try_recv().expect("the lines of the read");
    assert_eq!((read.service(), read.len()), ("svc", 2));
    assert_eq!(
        read.entries(1).len(),
        1,
        "a follower may take only the first lines"
    );
    let entries = read.entries(usize::MAX);
    let (first, second) = (&entries[0], &entries[1]);
    assert_eq!(
        (first.message.as_str(), first.level),
        ("hello", LogLevel::Info)
    );
    assert_eq!(
        (second.message.as_str(), second.level),
        ("WARN there", LogLevel::Warn)
    );
    assert_eq!(second.service, "svc");
}

#[tokio::test]
async fn clear_empties_tails_and_deletes_current_and_rotated_files() {
    let dir = TempDir::new("clear");
    fs::write(dir.path().join("conductor.log"), "not ours\n").expect("writing a file");
    let logs = logs_in(dir.path(), 200, 3, 100);
    for number in 0..40 {
        logs.record(
            "svc",
            LogLevel::Info,
            format!("line {number} padded to make the file rotate"),
        );
    }
    logs.record("other", LogLevel::Info, "other line");
    logs.flush().await;
    let before = file_names(dir.path());
    assert!(
        before.contains(&"svc.1.log.gz".to_string()),
        "rotated before clear: {before:?}"
    );

    logs.clear().await.expect("clear works");
    assert!(logs.get(None, 100).is_empty());
    assert_eq!(
        file_names(dir.path()),
        ["conductor.log"],
        "only the foreign file remains"
    );

    logs.record("svc", LogLevel::Info, "after clear");
    logs.flush().await;
    assert_eq!(messages(&logs.get(None, 100)), ["after clear"]);
    assert_eq!(file_lines(dir.path(), "svc").len(), 1);
}

#[tokio::test]
async fn an_unusable_directory_keeps_capturing_in_memory_reports_once_and_recovers() {
    let parent = TempDir::new("unusable");
    let dir = parent.path().join("logs");
    // A regular file where the directory should be: unusable even for root.
    fs::write(&dir, "in the way").expect("writing a file");
    let logs = logs_in(&dir, 10_000_000, 10, 100);
    let mut problems = logs.problems();
    for number in 0..5 {
        logs.record("svc", LogLevel::Info, format!("memory {number}"));
        logs.flush().await;
    }
    assert_eq!(
        logs.get(Some("svc"), 100).len(),
        5,
        "capture goes on in memory"
    );
    let reported = drain(&mut problems);
    assert_eq!(
        reported.len(),
        1,
        "one problem for the outage: {reported:?}"
    );
    assert_eq!(reported[0].service, "svc");
    assert!(
        reported[0].message.contains("cannot write"),
        "{}",
        reported[0].message
    );
    assert_eq!(logs.stats().lines_unwritten, 5);

    fs::remove_file(&dir).expect("removing the obstacle");
    let mut attempt = 0;
    let lines = wait_until_async(
        TIMEOUT,
        "writing to resume once the directory can be made",
        || {
            attempt += 1;
            logs.record("svc", LogLevel::Info, format!("disk {attempt}"));
            let lines =
                fs::read_to_string(dir.join("svc.log")).map_err(|error| error.to_string())?;
            Ok(lines)
        },
    )
    .await;
    assert!(lines.contains(" INFO disk "), "{lines}");
    assert!(
        drain(&mut problems).is_empty(),
        "recovery reports no further problem"
    );
    logs.flush().await;
}

#[tokio::test]
async fn a_failed_compression_keeps_the_rotated_file_uncompressed() {
    let dir = TempDir::new("no-gzip");
    // A directory where the compressor writes its temporary file makes compression fail.
    fs::create_dir(dir.path().join("svc.log.gz.tmp")).expect("creating a directory");
    let logs = logs_in(dir.path(), 300, 5, 100);
    let mut problems = logs.problems();
    for number in 0..20 {
        logs.record(
            "svc",
            LogLevel::Info,
            format!("line {number:03} with some padding text"),
        );
    }
    logs.flush().await;

    let names = file_names(dir.path());
    assert!(names.contains(&"svc.1.log".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|name| name.ends_with(".log.gz")),
        "{names:?}"
    );
    let numbers: Vec<String> = file_lines(dir.path(), "svc")
        .iter()
        .map(|line| parse_file_line(line).2.to_string())
        .collect();
    let expected: Vec<String> = (0..20)
        .map(|number| format!("line {number:03} with some padding text"))
        .collect();
    assert_eq!(numbers, expected, "no line lost to the failed compressions");
    let reported = drain(&mut problems);
    assert!(
        reported
            .iter()
            .any(|problem| problem.message.contains("kept uncompressed")),
        "{reported:?}"
    );
}

#[tokio::test]
async fn a_failed_rotation_keeps_appending_to_the_current_file() {
    let dir = TempDir::new("no-rotate");
    // A non-empty directory where the writer renames the full file makes rotation fail.
    let obstacle = dir.path().join("svc.log.rotating.0");
    fs::create_dir(&obstacle).expect("creating a directory");
    fs::write(obstacle.join("keep"), "x").expect("writing a file");
    let logs = logs_in(dir.path(), 300, 5, 100);
    let mut problems = logs.problems();
    for number in 0..20 {
        logs.record(
            "svc",
            LogLevel::Info,
            format!("line {number:03} with some padding text"),
        );
    }
    logs.flush().await;

    let lines = file_lines(dir.path(), "svc");
    assert_eq!(
        lines.len(),
        20,
        "every line is in the oversized current file: {lines:?}"
    );
    let reported = drain(&mut problems);
    assert!(
        !reported.is_empty()
            && reported
                .iter()
                .all(|problem| problem.message.contains("cannot rotate")),
        "{reported:?}"
    );
    assert_eq!(logs.stats().lines_written, 20);
}

#[tokio::test]
async fn a_rotation_interrupted_by_a_crash_is_compressed_at_the_next_start() {
    let dir = TempDir::new("resume");
    fs::write(
        dir.path().join("svc.log.rotating.7"),
        "2024-05-01T10:00:00.000Z INFO old\n",
    )
    .expect("writing a file");
    let logs = logs_in(dir.path(), 10_000_000, 3, 100);
    logs.record("svc", LogLevel::Info, "new");
    logs.flush().await;
    assert_eq!(file_names(dir.path()), ["svc.1.log.gz", "svc.log"]);
    let lines = file_lines(dir.path(), "svc");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].ends_with(" INFO old") && lines[1].ends_with(" INFO new"),
        "{lines:?}"
    );
}

/// A writer stuck on a full pipe stands for a disk that fell behind: the capture goes on, the
/// backlog stays bounded, and the dropped lines are counted, reported and noted in the file.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_beyond_the_backlog_bound_are_counted_reported_and_noted() {
    use std::io::Read;
    let dir = TempDir::new("backlog");
    let fifo = dir.path().join("svc.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("creating a fifo");
    let logs = logs_in(dir.path(), 0, 3, 100);
    let mut problems = logs.problems();

    let line = format!("{}\n", "x".repeat(999));
    let n_lines = (conductor_logs::MAX_BACKLOG_BYTES / line.len()) as u64 * 3 / 2;
    let input = line.repeat(n_lines as usize).into_bytes();
    let summary = tokio::time::timeout(
        TIMEOUT,
        logs.capture("svc", Stream::Stdout, Cursor::new(input)),
    )
    .await
    .expect("the capture is not blocked by the stuck writer")
    .expect("the capture task does not panic");
    assert_eq!(summary.lines, n_lines);
    let stats = logs.stats();
    assert!(
        stats.lines_dropped > 0 && stats.lines_dropped < n_lines,
        "{stats:?}"
    );
    let reported = drain(&mut problems);
    let count = format!("{} lines", stats.lines_dropped);
    assert!(
        reported.len() == 1 && reported[0].message.contains(&count),
        "one problem with the count {count}: {reported:?}"
    );
    assert_eq!(
        logs.get(Some("svc"), 100).len(),
        100,
        "the tail got every line"
    );

    // Unblock the writer: read the fifo until every line that was not dropped, and the note
    // about the drop, have arrived. The note sits where the gap is: last, or before the lines
    // of a final smaller read that still fitted in the backlog.
    let expected_lines = n_lines - stats.lines_dropped + 1;
    let reader = std::thread::spawn(move || {
        let mut fifo = fs::File::open(&fifo).expect("opening the fifo for reading");
        let (mut text, mut buffer) = (Vec::new(), vec![0u8; 1 << 16]);
        let mut n_newlines = 0;
        while n_newlines < expected_lines {
            match fifo.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    n_newlines += buffer[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                    text.extend_from_slice(&buffer[..n]);
                }
            }
        }
        text
    });
    tokio::time::timeout(TIMEOUT, logs.flush())
        .await
        .expect("flush ends once the fifo is read");
    let text = tokio::time::timeout(TIMEOUT, tokio::task::spawn_blocking(move || reader.join()))
        .await
        .unwrap_or_else(|_| panic!("{expected_lines} lines (the note among them) never arrived"))
        .expect("joining the reader")
        .expect("the reader does not panic");
    let text = String::from_utf8_lossy(&text);
    let written = text.lines().filter(|line| line.ends_with("xxx")).count() as u64;
    assert_eq!(
        written + stats.lines_dropped,
        n_lines,
        "every line is written or counted"
    );
    let notes: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("the disk fell behind"))
        .collect();
    assert!(
        notes.len() == 1 && notes[0].contains(" WARN ") && notes[0].contains(&count),
        "the count is logged once as a warning: {notes:?}"
    );
}

/// Issue 12: a clear dropped the queued batches but not their bytes from the backlog count, so
/// clears during a burst left a service's backlog "full" with nothing in it, and none of its
/// later lines reached its file.
///
/// A writer stuck on another service's fifo stands for a disk that fell behind: nothing of "svc"
/// is written meanwhile, so each burst fills its whole backlog, and each clear drops all of it.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_clears_during_a_full_backlog_let_later_lines_reach_the_file() {
    use std::{
        future::Future,
        io::Read,
        sync::mpsc,
        task::{Context, Waker},
    };
    let dir = TempDir::new("clear-backlog");
    let fifo = dir.path().join("blocker.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("creating a fifo");
    let logs = logs_in(dir.path(), 0, 3, 100);

    // Far more than a pipe holds, so the writer blocks in the middle of it.
    logs.record("blocker", LogLevel::Info, "b".repeat(4 * 1024 * 1024));
    let (writing_tx, writing_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut fifo = fs::File::open(&fifo).expect("opening the fifo for reading");
        let mut first = [0u8];
        fifo.read_exact(&mut first).expect("reading the fifo");
        let _ = writing_tx.send(());
        // Until told, the rest stays in the writer's hands.
        let _ = go_rx.recv();
        let mut rest = Vec::new();
        fifo.read_to_end(&mut rest).expect("reading the fifo");
        rest.len() + 1
    });
    tokio::task::spawn_blocking(move || writing_rx.recv_timeout(TIMEOUT))
        .await
        .expect("the waiting task does not panic")
        .expect("the writer starts writing the blocker's line");

    // Records `message` until one is dropped; gives how many were taken before.
    let fill_backlog = |logs: &Logs, message: &str, limit: usize| {
        let n_dropped = logs.stats().lines_dropped;
        (0..limit)
            .position(|_| {
                logs.record("svc", LogLevel::Info, message);
                logs.stats().lines_dropped > n_dropped
            })
            .unwrap_or_else(|| {
                panic!(
                    "{limit} lines of {} bytes did not fill the backlog",
                    message.len()
                )
            })
    };
    let long_line = "x".repeat(64 * 1024);
    let max_long_lines = 2 * conductor_logs::MAX_BACKLOG_BYTES / long_line.len();
    let mut clears = Vec::new();
    let mut n_accepted = Vec::new();
    for _ in 0..3 {
        // Long lines fill the backlog, one-byte lines the rest: what is left is then smaller
        // than any line recorded later, so a count left full after the clears keeps them all
        // out of the file.
        let n_long = fill_backlog(&logs, &long_line, max_long_lines);
        fill_backlog(&logs, "y", 2 * long_line.len());
        n_accepted.push(n_long);
        // The part of clear before it waits for the (stuck) writer: empty the tails and
        // queues, queue the deletes. Its future is awaited once the writer can go on.
        let mut clear = Box::pin(logs.clear());
        assert!(
            clear
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending(),
            "the stuck writer cannot have done the clear"
        );
        assert!(
            logs.get(Some("svc"), 1).is_empty(),
            "clear emptied the tail"
        );
        clears.push(clear);
    }

    // The burst is over: let the writer go on.
    let _ = go_tx.send(());
    for clear in clears {
        tokio::time::timeout(TIMEOUT, clear)
            .await
            .expect("clear ends once the writer goes on")
            .expect("clear works");
    }
    let n_read = tokio::time::timeout(TIMEOUT, tokio::task::spawn_blocking(move || reader.join()))
        .await
        .expect("the writer closes the fifo at its clear")
        .expect("joining the reader")
        .expect("the reader does not panic");
    assert!(
        n_read > 4 * 1024 * 1024,
        "the blocker's line went through whole: {n_read} bytes"
    );

    let file = dir.path().join("svc.log");
    let mut attempt = 0;
    let text = wait_until_async(
        TIMEOUT,
        "a line recorded after the burst to reach svc.log",
        || {
            attempt += 1;
            logs.record("svc", LogLevel::Info, format!("after the burst {attempt}"));
            let text = fs::read_to_string(&file).map_err(|error| error.to_string())?;
            if text.contains("after the burst") {
                Ok(text)
            } else {
                Err(format!("{} bytes without it", text.len()))
            }
        },
    )
    .await;
    assert!(
        !text.contains(&long_line),
        "no line recorded before the clears is in the file"
    );
    assert!(
        n_accepted.iter().all(|&n_long| n_long > 0),
        "every burst found room in the backlog again after the clear before it: {n_accepted:?}"
    );
    logs.flush().await;
}

/// Issue 12: the backlog is bounded for all services together, not only each on its own:
/// with the writer stuck, three services each below their own bound still have lines dropped
/// from the file once their sum reaches [`conductor_logs::MAX_TOTAL_BACKLOG_BYTES`].
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_of_all_services_together_is_bounded() {
    use std::io::Read;
    let dir = TempDir::new("total-backlog");
    let fifo = dir.path().join("stuck.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("creating a fifo");
    let logs = logs_in(dir.path(), 0, 3, 100);
    // The one writer thread blocks on this service's fifo once its pipe buffer is full.
    let stuck = format!("{}\n", "s".repeat(999)).repeat(1024).into_bytes();
    logs.capture("stuck", Stream::Stdout, Cursor::new(stuck))
        .await
        .expect("the capture task does not panic");
    let line = format!("{}\n", "y".repeat(999));
    // A batch's footprint is up to twice its text (buffer capacity), so 40 % keeps each
    // service clear of its own bound while three of them exceed the total.
    let share = conductor_logs::MAX_TOTAL_BACKLOG_BYTES * 2 / 5;
    let n_lines = share / line.len();
    assert!(
        share * 2 < conductor_logs::MAX_BACKLOG_BYTES,
        "each stays below its own bound"
    );
    for service in ["b", "c", "d"] {
        let input = line.repeat(n_lines).into_bytes();
        tokio::time::timeout(
            TIMEOUT,
            logs.capture(service, Stream::Stdout, Cursor::new(input)),
        )
        .await
        .expect("the capture is not blocked by the stuck writer")
        .expect("the capture task does not panic");
    }
    let stats = logs.stats();
    assert!(
        stats.lines_dropped > 0,
        "1.2 times the total bound was queued without a drop: {stats:?}"
    );
    // Unblock the writer so the test ends cleanly.
    let reader = std::thread::spawn(move || {
        let mut fifo = fs::File::open(&fifo).expect("opening the fifo for reading");
        let mut sink = Vec::new();
        let _ = fifo.read_to_end(&mut sink);
    });
    drop(logs);
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
}

/// A reader polling `<service>.log` (as `tail -F` or a support script does) never finds it
/// missing while the writer rotates it, again and again.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_file_is_never_missing_while_it_rotates() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    };

    let dir = TempDir::new("rotate-present");
    let logs = logs_in(dir.path(), 2_000, 3, 100);
    logs.record("svc", LogLevel::Info, "first");
    logs.flush().await;
    let path = dir.path().join("svc.log");
    assert!(path.is_file());

    let stop = Arc::new(AtomicBool::new(false));
    let (n_looks, n_missing) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let poller = {
        let (stop, n_looks, n_missing, path) = (
            stop.clone(),
            n_looks.clone(),
            n_missing.clone(),
            path.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                n_looks.fetch_add(1, Ordering::Relaxed);
                if fs::metadata(&path).is_err() {
                    n_missing.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    for round in 0..200 {
        for number in 0..10 {
            logs.record(
                "svc",
                LogLevel::Info,
                format!("round {round:03} line {number} padded to rotate every few rounds"),
            );
        }
        logs.flush().await;
    }
    stop.store(true, Ordering::Relaxed);
    poller.join().expect("the poller does not panic");
    let rotated = file_names(dir.path());
    assert!(
        rotated.iter().any(|name| name == "svc.3.log.gz"),
        "it rotated past max_files: {rotated:?}"
    );
    assert_eq!(
        n_missing.load(Ordering::Relaxed),
        0,
        "svc.log was missing in {} of {} looks",
        n_missing.load(Ordering::Relaxed),
        n_looks.load(Ordering::Relaxed)
    );
    assert_eq!(
        rotated,
        ["svc.1.log.gz", "svc.2.log.gz", "svc.3.log.gz", "svc.log"],
        "no temporary file is left behind"
    );
}
