//! Benchmark: lines per second captured to disk from one chatty service.
//!
//! Starts fake-service with a burst of 1 000 000 lines of 100 bytes on stdout, captures it
//! through `Logs` into a temp dir with the default rotation (10 MB, 10 files), waits for end of
//! file and `flush` (every line written, every rotated file compressed), then checks the files:
//! the burst numbers kept must be a gapless, duplicate-free run ending at the last line (older
//! lines were rotated out by design). Prints one JSON line:
//! `{"lines", "seconds", "lines_per_sec", "lost", "rss_growth_bytes", …}`.
//!
//! The fake-service binary is `$FAKE_SERVICE_BIN`, else the first argument, else the debug
//! build from `fake_service::binary()`; benchmark with a release build of it:
//! `cargo build --release -p fake-service && FAKE_SERVICE_BIN=target/release/fake-service \
//!  cargo run --release -p conductor-logs --example log_throughput`.

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    bench::main()
}

#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    eprintln!("log_throughput: only implemented for unix (process groups, /proc)");
    std::process::ExitCode::FAILURE
}

#[cfg(unix)]
mod bench {
    use std::{
        fs,
        io::Read,
        path::{Path, PathBuf},
        process::{Command, ExitCode, Stdio},
        time::{Duration, Instant},
    };

    use conductor_logs::{LogConfig, Logs, Stream};
    use conductor_test_support::{GroupGuard, TempDir, process};

    const N_LINES: u64 = 1_000_000;
    const LINE_BYTES: usize = 100;
    const SERVICE: &str = "chatty";

    pub(super) fn main() -> ExitCode {
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("log_throughput: cannot start the tokio runtime: {error}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(run()) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("log_throughput: {error}");
                ExitCode::FAILURE
            }
        }
    }

    fn fake_service_binary() -> PathBuf {
        std::env::var_os("FAKE_SERVICE_BIN")
            .or_else(|| std::env::args_os().nth(1))
            .map_or_else(fake_service::binary, PathBuf::from)
    }

    /// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`).
    fn proc_status_bytes(field: &str) -> Option<u64> {
        process::status_bytes(std::process::id(), field)
    }

    async fn run() -> Result<serde_json::Value, String> {
        let binary = fake_service_binary();
        let dir = TempDir::try_new("log-throughput")
            .map_err(|error| format!("cannot make a temp dir: {error}"))?;
        let port = conductor_test_support::free_port();

        let logs = Logs::new(LogConfig::new(dir.path()));
        let rss_before = proc_status_bytes("VmRSS:");
        let start = Instant::now();
        let mut guard = GroupGuard::spawn(
            Command::new(&binary)
                .env("FAKE_REQUIRE_DB", "0")
                .env("FAKE_LOG_BURST", N_LINES.to_string())
                .env("FAKE_LOG_LINE_BYTES", LINE_BYTES.to_string())
                .env("FAKE_LOG_LEVELS", "mixed")
                .env("FAKE_EXIT_AFTER_BURST", "1")
                .env("PORT", port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped()),
        )
        .map_err(|error| format!("cannot start {}: {error}", binary.display()))?;
        let stdout = guard
            .child()
            .stdout
            .take()
            .ok_or("fake-service has no stdout pipe")?;
        let stdout = tokio::process::ChildStdout::from_std(stdout)
            .map_err(|error| format!("cannot register the pipe: {error}"))?;
        let capture = logs.capture(SERVICE, Stream::Stdout, stdout);
        tokio::time::timeout(Duration::from_secs(300), capture)
            .await
            .map_err(|_| "the burst did not end within 300 s")?
            .map_err(|error| format!("the capture task failed: {error}"))?;
        let capture_seconds = start.elapsed().as_secs_f64();
        logs.flush().await;
        let seconds = start.elapsed().as_secs_f64();
        let rss_after = proc_status_bytes("VmRSS:");
        let rss_peak = proc_status_bytes("VmHWM:");

        let check = check_files(dir.path())?;
        let stats = logs.stats();
        let lost = stats.lines_dropped
            + stats.lines_unwritten
            + check.missing_or_repeated
            + (N_LINES - check.last.min(N_LINES));
        let growth = |after: Option<u64>| match (after, rss_before) {
            (Some(after), Some(before)) => serde_json::Value::from(after.saturating_sub(before)),
            _ => serde_json::Value::Null,
        };
        Ok(serde_json::json!({
            "lines": N_LINES,
            "seconds": round3(seconds),
            "lines_per_sec": (N_LINES as f64 / seconds).round(),
            "lost": lost,
            "rss_growth_bytes": growth(rss_after),
            "rss_peak_growth_bytes": growth(rss_peak),
            "capture_seconds": round3(capture_seconds),
            "lines_kept_on_disk": check.kept,
            "files": check.n_files,
        }))
    }

    fn round3(value: f64) -> f64 {
        (value * 1000.0).round() / 1000.0
    }

    struct Check {
        kept: u64,
        last: u64,
        missing_or_repeated: u64,
        n_files: usize,
    }

    /// Reads the rotated (oldest first) and current files, checking the burst numbers.
    fn check_files(dir: &Path) -> Result<Check, String> {
        let mut files = Vec::new();
        for number in (1..=100).rev() {
            for extension in ["log.gz", "log"] {
                let path = dir.join(format!("{SERVICE}.{number}.{extension}"));
                if path.exists() {
                    files.push(path);
                }
            }
        }
        files.push(dir.join(format!("{SERVICE}.log")));
        let mut check = Check {
            kept: 0,
            last: 0,
            missing_or_repeated: 0,
            n_files: files.len(),
        };
        for path in &files {
            let bytes = fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
            let text = if path.extension().is_some_and(|extension| extension == "gz") {
                let mut text = String::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_string(&mut text)
                    .map_err(|error| format!("{}: {error}", path.display()))?;
                text
            } else {
                String::from_utf8(bytes).map_err(|error| format!("{}: {error}", path.display()))?
            };
            if !text.is_empty() && !text.ends_with('\n') {
                return Err(format!("{} does not end with a whole line", path.display()));
            }
            for line in text.lines() {
                let Some((_, rest)) = line.split_once(" burst out ") else {
                    continue;
                };
                let number: u64 = rest
                    .split(' ')
                    .next()
                    .and_then(|digits| digits.parse().ok())
                    .ok_or_else(|| format!("unreadable burst line {line:?}"))?;
                if check.kept > 0 && number != check.last + 1 {
                    check.missing_or_repeated += number.abs_diff(check.last + 1).max(1);
                }
                check.kept += 1;
                check.last = number;
            }
        }
        Ok(check)
    }
}
