//! SPEC §6 under load: a fake-service bursting numbered lines into `Logs`, checked line by line
//! in the current and rotated (gzip) files.
#![cfg(unix)]

mod support;

use std::{path::Path, time::Duration};

use conductor_logs::{LogConfig, LogLevel, Logs, Stream};
use conductor_test_support::TempDir;
use support::{FakeService, all_log_files, burst_number, parse_file_line};

const SERVICE: &str = "chatty";

/// Runs a fake-service burst of `n_lines` lines of `line_bytes` through `Logs` into `dir`,
/// waits for end of file and flush.
async fn burst(
    dir: &Path,
    n_lines: u64,
    line_bytes: usize,
    max_size: u64,
    max_files: usize,
) -> Logs {
    let logs = Logs::new(LogConfig {
        dir: dir.to_path_buf(),
        max_size,
        max_files,
        tail: 1000,
        ..LogConfig::default()
    });
    let mut problems = logs.problems();
    let n_lines = n_lines.to_string();
    let line_bytes = line_bytes.to_string();
    let mut service = FakeService::start(&[
        ("FAKE_LOG_BURST", n_lines.as_str()),
        ("FAKE_LOG_LINE_BYTES", line_bytes.as_str()),
        ("FAKE_EXIT_AFTER_BURST", "1"),
    ]);
    let capture = logs.capture(SERVICE, Stream::Stdout, service.stdout());
    let summary = tokio::time::timeout(Duration::from_secs(120), capture)
        .await
        .expect("the burst reaches end of file within 120 s")
        .expect("the capture task does not panic");
    assert!(summary.lines > 0 && summary.bytes > 0, "{summary:?}");
    tokio::time::timeout(Duration::from_secs(120), logs.flush())
        .await
        .expect("flush finishes within 120 s");
    assert!(
        problems.try_recv().is_err(),
        "no problem is reported for a healthy disk"
    );
    logs
}

/// The burst numbers in the files, oldest first, checking every file is whole lines within
/// `max_size`.
fn numbers_on_disk(dir: &Path, max_size: u64) -> (Vec<u64>, usize) {
    let files = all_log_files(dir, SERVICE);
    let mut numbers = Vec::new();
    for (path, text) in &files {
        assert!(
            text.ends_with('\n'),
            "{} ends in the middle of a line",
            path.display()
        );
        assert!(
            text.len() as u64 <= max_size,
            "{} has {} bytes",
            path.display(),
            text.len()
        );
        for line in text.lines() {
            let (_, level, message) = parse_file_line(line);
            // Burst lines cycle INFO, WARN, ERROR, DEBUG as their first word.
            let word = message.split(' ').next().unwrap_or_default();
            if burst_number(message).is_some() {
                assert_eq!(level, word, "level of {line:?}");
            }
            numbers.extend(burst_number(message));
        }
    }
    (numbers, files.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_line_burst_is_on_disk_every_line_once_in_order() {
    let dir = TempDir::new("burst-all");
    // 1M lines of ~53 bytes in files: 14 rotated files of 4 MB hold them all.
    let (max_size, max_files) = (4_000_000, 20);
    let logs = burst(dir.path(), 1_000_000, 24, max_size, max_files).await;

    let (numbers, n_files) = numbers_on_disk(dir.path(), max_size);
    let expected: Vec<u64> = (1..=1_000_000).collect();
    if numbers != expected {
        let first_wrong = numbers
            .iter()
            .zip(&expected)
            .position(|(seen, want)| seen != want);
        panic!(
            "{} burst numbers on disk instead of 1..=1000000; first difference at index {first_wrong:?}",
            numbers.len()
        );
    }
    assert!(
        n_files > 10,
        "the burst rotated the file many times, found {n_files} files"
    );

    let stats = logs.stats();
    assert_eq!(stats.lines_dropped, 0, "{stats:?}");
    assert_eq!(stats.lines_unwritten, 0, "{stats:?}");
    assert_eq!(stats.lines_written, stats.lines_captured, "{stats:?}");

    let tail = logs.get(Some(SERVICE), usize::MAX);
    assert_eq!(tail.len(), 1000, "the tail stays at its bound");
    assert_eq!(
        tail.last().and_then(|entry| burst_number(&entry.message)),
        Some(1_000_000)
    );
    // Line 1000000 is the fourth of its cycle: DEBUG.
    assert_eq!(tail.last().map(|entry| entry.level), Some(LogLevel::Debug));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_retention_keeps_max_files_and_the_newest_lines() {
    let dir = TempDir::new("burst-overflow");
    // 200k lines of ~53 bytes (~10 MB) through 1 MB files, keeping 3 rotated ones.
    let (max_size, max_files) = (1_000_000, 3);
    let n_lines = 200_000;
    burst(dir.path(), n_lines, 24, max_size, max_files).await;

    let names = support::file_names(dir.path());
    let gz: Vec<&String> = names
        .iter()
        .filter(|name| name.ends_with(".log.gz"))
        .collect();
    assert_eq!(
        names,
        [
            format!("{SERVICE}.1.log.gz"),
            format!("{SERVICE}.2.log.gz"),
            format!("{SERVICE}.3.log.gz"),
            format!("{SERVICE}.log"),
        ],
        "exactly max_files rotated files besides the current one ({} gz)",
        gz.len()
    );
    let (numbers, _) = numbers_on_disk(dir.path(), max_size);
    let first = numbers.first().copied().unwrap_or_default();
    let expected: Vec<u64> = (first..=n_lines).collect();
    assert!(
        numbers == expected,
        "the kept files hold a gapless run ending at the newest line; got {} numbers from {first}",
        numbers.len()
    );
    // 3 full files plus the current one hold at least 3 MB of 53-byte lines.
    assert!(numbers.len() > 55_000, "only {} lines kept", numbers.len());
}
