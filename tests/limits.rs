//! End-to-end tests of issue 14's `limits` against real python3 processes: a service that
//! grows past `memory` is restarted within three metrics intervals with the measured value and
//! the limit in `lastError` and a `service:error` event, and ends `failed` after its
//! `max_retries`; `open_files` is the descriptor limit the OS enforces in the service (EMFILE
//! at the 65th of 64), and `processes` is set beside it.
//!
//! The services report what they saw (their crossing of the limit, their descriptors) in files
//! the test reads; nothing is waited for by time. Sampling itself is `metrics.rs`'s.

pub mod support;

use conductor_protocol::ServiceState;
use support::{
    Conductor, DEADLINE, TaggedDir, epoch_seconds, free_ports, python_service, read_events,
    registry_head, wait_untagged, wait_until,
};

/// `grow.py LIMIT_MIB LOG`: grows by 8 MiB every 50 ms up to 200 MiB, touching every page.
/// When its own PSS (`/proc/self/smaps_rollup`) first exceeds LIMIT_MIB it appends
/// `<pid> <time.time()>` to LOG: the moment the tree (this one process) went over the limit.
const GROW: &str = r#"
import os, sys, time
limit, log = int(sys.argv[1]) << 20, sys.argv[2]

def pss():
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0

chunks, crossed = [], False
while True:
    if len(chunks) < 25:
        chunks.append(b"\x01" * (8 << 20))
    if not crossed and pss() > limit:
        crossed = True
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {time.time()}\n")
    time.sleep(0.05)
"#;

const INTERVAL_SECS: f64 = 0.5;

#[test]
fn a_service_over_its_memory_limit_is_restarted_within_three_intervals_then_failed() {
    let scope = TaggedDir::new("limit-memory");
    let (dir, tag) = (&scope.dir, scope.tag.as_str());
    let script = dir.write("grow.py", GROW);
    let log = dir.join("crossings.log");
    let [port] = free_ports();
    let registry = format!(
        "{head}metrics_interval = \"500ms\"\n{service}\
         limits = {{ memory = \"100MB\" }}\n\
         restart = {{ max_retries = 2, backoff = \"50ms\" }}\n",
        head = registry_head("MemoryLimitTest"),
        service = python_service(
            "grower",
            port,
            &script,
            &["100", &log.display().to_string()],
            tag
        ),
    );
    let conductor = Conductor::start(dir, &registry);
    let info = conductor.info().clone();

    // From the first event on, until the service gives up.
    let events = read_events(&conductor.addr(), &info.token, Some(0), |name, payload| {
        name == "service:status-changed"
            && payload["serviceName"] == "grower"
            && payload["status"]["status"] == "failed"
    });
    let status = conductor.status("grower");
    assert_eq!(status.status, ServiceState::Failed, "{status:?}");
    let last_error = status.last_error.clone().unwrap_or_default();
    assert!(
        last_error.starts_with("its processes used ")
            && last_error
                .contains("MB of memory, over its limit of 100.0MB, in two samples in a row")
            && last_error.ends_with("gave up after 2 restarts"),
        "lastError of a service that kept growing past its limit: {last_error:?}"
    );
    assert_eq!(status.restarts, 2, "{status:?}");

    let errors: Vec<(String, f64)> = events
        .iter()
        .filter(|(name, payload)| name == "service:error" && payload["serviceName"] == "grower")
        .map(|(_, payload)| {
            let error = payload["error"].as_str().unwrap_or_default().to_owned();
            let at = epoch_seconds(payload["timestamp"].as_str().unwrap_or_default());
            (error, at)
        })
        .collect();
    let crossings: Vec<(u32, f64)> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (pid, at) = line.split_once(' ')?;
            Some((pid.parse().ok()?, at.parse().ok()?))
        })
        .collect();
    assert_eq!(
        (errors.len(), crossings.len()),
        (3, 3),
        "one error per attempt, the first and its two restarts: errors {errors:?}, crossings \
         {crossings:?}"
    );
    let mut pids: Vec<u32> = crossings.iter().map(|&(pid, _)| pid).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(
        pids.len(),
        3,
        "three attempts, three processes: {crossings:?}"
    );
    for ((error, errored_at), (pid, crossed_at)) in errors.iter().zip(&crossings) {
        assert!(
            error.starts_with("its processes used ")
                && error.ends_with("over its limit of 100.0MB, in two samples in a row"),
            "service:error of attempt {pid}: {error:?}"
        );
        // Two samples over the limit in a row take between one and two intervals from the
        // crossing; the third is the slack of a loaded machine.
        let after = errored_at - crossed_at;
        assert!(
            (0.0..=3.0 * INTERVAL_SECS).contains(&after),
            "attempt {pid} crossed the limit at {crossed_at} and was restarted {after:.3} s \
             later, not within three intervals of {INTERVAL_SECS} s"
        );
    }
    wait_untagged(tag, "no process of the failed service");
}

/// `fds.py REPORT`: opens /dev/null up to 100 times or until that fails, then closes them
/// and writes `<opened> <highest fd> <errno name> <strerror>` to REPORT (write, then rename),
/// and sleeps.
const FDS: &str = r#"
import errno, os, sys, time
report = sys.argv[1]
fds, failure = [], None
try:
    for _ in range(100):
        fds.append(os.open(os.devnull, os.O_RDONLY))
except OSError as error:
    failure = error
for fd in fds:
    os.close(fd)
name = errno.errorcode.get(failure.errno, "?") if failure else "none"
reason = failure.strerror if failure else "no error"
with open(report + ".tmp", "w") as out:
    out.write(f"{len(fds)} {max(fds)} {name} {reason}")
os.rename(report + ".tmp", report)
time.sleep(1000)
"#;

#[test]
fn open_files_64_makes_the_65th_descriptor_fail_with_emfile() {
    let scope = TaggedDir::new("limit-fds");
    let (dir, tag) = (&scope.dir, scope.tag.as_str());
    let script = dir.write("fds.py", FDS);
    let report = dir.join("fds.report");
    let [port] = free_ports();
    let registry = format!(
        "{head}{service}limits = {{ open_files = 64, processes = 256 }}\n",
        head = registry_head("OpenFilesTest"),
        service = python_service(
            "opener",
            port,
            &script,
            &[&report.display().to_string()],
            tag
        ),
    );
    let conductor = Conductor::start(dir, &registry);
    let pid = conductor.status("opener").pid.expect("opener runs");

    // Written, then renamed: once it is there, it is complete.
    let text = wait_until(DEADLINE, "the opener's report", || {
        std::fs::read_to_string(&report).ok()
    });
    let words: Vec<&str> = text.splitn(4, ' ').collect();
    let [opened, highest, name, reason] = words[..] else {
        panic!("not a report: {text:?}");
    };
    let (opened, highest): (u32, u32) = match (opened.parse(), highest.parse()) {
        (Ok(opened), Ok(highest)) => (opened, highest),
        _ => panic!("not a report: {text:?}"),
    };
    assert_eq!(
        (name, reason),
        ("EMFILE", "Too many open files"),
        "the service opened {opened} descriptors without hitting its limit: {text:?}"
    );
    // Descriptors 0 to 63 are the 64 allowed; the 65th open is the one that failed. Those the
    // interpreter holds itself (0, 1, 2 and maybe a few more) were not opened by the loop.
    assert_eq!(highest, 63, "{text:?}");
    assert!((55..=61).contains(&opened), "{text:?}");

    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let limit = |name: &str| -> Vec<String> {
        let line = limits.lines().find(|line| line.starts_with(name));
        line.map(|line| {
            line[name.len()..]
                .split_whitespace()
                .take(2)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    assert_eq!(limit("Max open files"), ["64", "64"], "{limits}");
    assert_eq!(limit("Max processes"), ["256", "256"], "{limits}");
}
