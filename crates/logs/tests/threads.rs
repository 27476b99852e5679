//! The thread budget: however many services a `Logs` captures, it runs one writer and one
//! compressor thread, which end when the last handle is dropped; and the shared threads still
//! keep every service's file, rotation and compression apart.
//! Alone in its test binary (its own process), so no other test's threads are counted.
#![cfg(target_os = "linux")]

#[expect(dead_code, reason = "the burst test uses the rest of the helpers")]
mod support;

use std::{fs, io::Cursor, time::Duration};

use conductor_logs::{LogConfig, Logs, Stream};
use conductor_test_support::{TempDir, wait_until_async};
use support::{all_log_files, parse_file_line, rotated_files};

const TIMEOUT: Duration = Duration::from_secs(30);
const N_SERVICES: usize = 50;
const N_LINES: usize = 200;

/// The names of this process's threads that belong to the logs crate.
fn logs_threads() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir("/proc/self/task")
        .expect("/proc/self/task is readable on Linux")
        .filter_map(Result::ok)
        .filter_map(|task| fs::read_to_string(task.path().join("comm")).ok())
        .map(|comm| comm.trim_end().to_string())
        .filter(|comm| comm.starts_with("logs-"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_services_share_one_writer_and_one_compressor_thread() {
    assert_eq!(logs_threads(), Vec::<String>::new(), "no threads before");
    let dir = TempDir::new("threads");
    let logs = Logs::new(LogConfig {
        dir: dir.path().to_path_buf(),
        // A few rotations per service, so the compressor serves every service.
        max_size: 4000,
        max_files: 100,
        tail: 10,
        ..LogConfig::default()
    });
    let captures: Vec<_> = (0..N_SERVICES)
        .map(|service| {
            let text: String = (0..N_LINES)
                .map(|line| format!("service {service} line {line:04}\n"))
                .collect();
            logs.capture(
                &format!("svc{service:02}"),
                Stream::Stdout,
                Cursor::new(text.into_bytes()),
            )
        })
        .collect();
    for capture in captures {
        let summary = tokio::time::timeout(TIMEOUT, capture)
            .await
            .expect("a capture of an in-memory reader ends")
            .expect("the capture task does not panic");
        assert_eq!(summary.lines, N_LINES as u64);
    }
    tokio::time::timeout(TIMEOUT, logs.flush())
        .await
        .expect("flush ends");

    assert_eq!(logs_threads(), ["logs-gzip", "logs-write"]);
    for service in 0..N_SERVICES {
        let name = format!("svc{service:02}");
        assert!(
            rotated_files(dir.path(), &name).len() >= 2,
            "{name} was rotated and compressed"
        );
        let messages: Vec<String> = all_log_files(dir.path(), &name)
            .iter()
            .flat_map(|(_, text)| {
                text.lines()
                    .map(|line| parse_file_line(line).2.to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let expected: Vec<String> = (0..N_LINES)
            .map(|line| format!("service {service} line {line:04}"))
            .collect();
        assert_eq!(messages, expected, "the files of {name}, in order");
    }
    let stats = logs.stats();
    assert_eq!(stats.lines_written, (N_SERVICES * N_LINES) as u64);
    assert_eq!(stats.lines_dropped + stats.lines_unwritten, 0);

    drop(logs);
    wait_until_async(
        TIMEOUT,
        "the logs threads to end with the last handle",
        || {
            let threads = logs_threads();
            if threads.is_empty() {
                Ok(())
            } else {
                Err(format!("{threads:?}"))
            }
        },
    )
    .await;
}
