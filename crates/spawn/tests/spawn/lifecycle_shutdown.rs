//! SPEC §4 Shutdown: stop (SIGTERM the group, wait, SIGKILL the group, reap), a crashed
//! leader's grandchildren, drop without stop, and children dying with conductor.

use std::{
    io::{BufRead, BufReader as StdBufReader},
    os::unix::process::{CommandExt, ExitStatusExt},
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use conductor_spawn::{StopOutcome, spawn};
use nix::{
    sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill, pthread_sigmask, signal},
    unistd::Pid,
};
use tokio::io::BufReader;

use conductor_test_support::{DEADLINE, wait_until, wait_until_async};

use crate::support::{KillOnDrop, exited, parse_pid, read_line, running, sh, state};

const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn cooperative_child_is_terminated_and_later_calls_repeat_the_status() {
    let mut group = spawn(&sh("exec sleep 1000")).expect("/bin/sh starts");
    let outcome = group.stop(DEADLINE).await.expect("stop succeeds");
    let StopOutcome::Terminated(status) = outcome else {
        panic!("expected Terminated, got {outcome:?}");
    };
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    assert_eq!(exited(group.pid()), Ok(()));
    assert_eq!(
        group.stop(DEADLINE).await.expect("stop is idempotent"),
        StopOutcome::AlreadyExited(status)
    );
    assert_eq!(group.wait().await.expect("wait after stop"), status);
}

#[tokio::test]
async fn stopped_child_is_continued_and_terminated() {
    let mut group = spawn(&sh("exec sleep 1000")).expect("/bin/sh starts");
    let pid = group.pid();
    kill(
        Pid::from_raw(i32::try_from(pid).expect("pid fits")),
        Signal::SIGSTOP,
    )
    .expect("our child can be stopped");
    wait_until_async(DEADLINE, "the child to be stopped", || match state(pid) {
        Some('T') => Ok(()),
        other => Err(format!("state {other:?}")),
    })
    .await;
    let outcome = group.stop(DEADLINE).await.expect("stop succeeds");
    let StopOutcome::Terminated(status) = outcome else {
        panic!("a stopped process acts on SIGTERM once continued; got {outcome:?}");
    };
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
}

#[tokio::test]
async fn child_ignoring_sigterm_is_killed_after_the_timeout() {
    let mut group =
        spawn(&sh("trap '' TERM; echo ready; exec sleep 1000")).expect("/bin/sh starts");
    let mut stdout = BufReader::new(group.take_stdout().expect("stdout is piped"));
    assert_eq!(read_line(&mut stdout).await, "ready");
    let started = Instant::now();
    let outcome = group.stop(SHORT_TIMEOUT).await.expect("stop succeeds");
    let elapsed = started.elapsed();
    assert_eq!(outcome, StopOutcome::Killed);
    assert!(
        elapsed >= SHORT_TIMEOUT,
        "SIGKILL came after {elapsed:?}, before the timeout"
    );
    assert_eq!(exited(group.pid()), Ok(()));
    let status = group.wait().await.expect("wait after stop");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
}

#[tokio::test]
async fn stop_waits_for_the_grandchildren_it_terminates() {
    let mut group = spawn(&sh("sleep 1000 & echo $!; wait")).expect("/bin/sh starts");
    let mut guard = KillOnDrop::default();
    guard.group(group.pid());
    let mut stdout = BufReader::new(group.take_stdout().expect("stdout is piped"));
    let grandchild = parse_pid(&read_line(&mut stdout).await);
    assert!(running(grandchild));
    let outcome = group.stop(DEADLINE).await.expect("stop succeeds");
    assert!(matches!(outcome, StopOutcome::Terminated(_)), "{outcome:?}");
    // No waiting here: stop returns only once the whole group has gone.
    assert_eq!(exited(grandchild), Ok(()));
}

#[tokio::test]
async fn grandchild_ignoring_sigterm_is_killed_after_the_timeout() {
    let script = "(trap '' TERM; echo ready; exec sleep 1000) & echo $!; wait";
    let mut group = spawn(&sh(script)).expect("/bin/sh starts");
    let mut guard = KillOnDrop::default();
    guard.group(group.pid());
    let mut stdout = BufReader::new(group.take_stdout().expect("stdout is piped"));
    // The subshell's "ready" and the leader's pid line may come in either order.
    let lines = [read_line(&mut stdout).await, read_line(&mut stdout).await];
    let pid_line = lines
        .iter()
        .find(|line| *line != "ready")
        .expect("a pid line");
    assert!(lines.contains(&"ready".to_owned()), "{lines:?}");
    let grandchild = parse_pid(pid_line);
    let outcome = group.stop(SHORT_TIMEOUT).await.expect("stop succeeds");
    assert_eq!(outcome, StopOutcome::Killed);
    assert_eq!(exited(grandchild), Ok(()));
}

#[tokio::test]
async fn grandchild_is_killed_when_the_leader_crashes() {
    let mut group = spawn(&sh("sleep 1000 & echo $!; exit 3")).expect("/bin/sh starts");
    let mut guard = KillOnDrop::default();
    guard.group(group.pid());
    let mut stdout = BufReader::new(group.take_stdout().expect("stdout is piped"));
    let grandchild = parse_pid(&read_line(&mut stdout).await);
    let status = tokio::time::timeout(DEADLINE, group.wait())
        .await
        .expect("the leader exits at once")
        .expect("it can be awaited");
    assert_eq!(status.code(), Some(3));
    // wait() returns once the rest of the group is gone too.
    assert_eq!(exited(grandchild), Ok(()));
    assert_eq!(
        group.stop(DEADLINE).await.expect("stop after exit"),
        StopOutcome::AlreadyExited(status)
    );
}

#[tokio::test]
async fn stop_after_an_unobserved_exit_reports_already_exited() {
    let mut group = spawn(&sh("exit 7")).expect("/bin/sh starts");
    let pid = group.pid();
    // The leader is our unreaped child: it shows as a zombie once it has exited.
    wait_until_async(DEADLINE, "the leader to become a zombie", || {
        match state(pid) {
            Some('Z') => Ok(()),
            other => Err(format!("state {other:?}")),
        }
    })
    .await;
    let outcome = group.stop(DEADLINE).await.expect("stop succeeds");
    let StopOutcome::AlreadyExited(status) = outcome else {
        panic!("expected AlreadyExited, got {outcome:?}");
    };
    assert_eq!(status.code(), Some(7));
}

#[tokio::test]
async fn wait_is_cancel_safe_in_select() {
    let mut group = spawn(&sh("exec sleep 1000")).expect("/bin/sh starts");
    for _ in 0..3 {
        tokio::select! {
            status = group.wait() => panic!("the child should still run, it ended: {status:?}"),
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    let outcome = group.stop(DEADLINE).await.expect("stop succeeds");
    assert!(matches!(outcome, StopOutcome::Terminated(_)), "{outcome:?}");
}

#[tokio::test]
async fn dropping_a_group_without_stop_kills_the_whole_group() {
    let mut group = spawn(&sh("sleep 1000 & echo $!; wait")).expect("/bin/sh starts");
    let leader = group.pid();
    let mut guard = KillOnDrop::default();
    guard.group(leader);
    let mut stdout = BufReader::new(group.take_stdout().expect("stdout is piped"));
    let grandchild = parse_pid(&read_line(&mut stdout).await);
    drop(group);
    wait_until_async(DEADLINE, "the grandchild to be gone after drop", || {
        exited(grandchild)
    })
    .await;
    wait_until_async(DEADLINE, "the leader to be gone after drop", || {
        exited(leader)
    })
    .await;
}

/// Set in the environment of this test binary when it runs as the intermediate parent of the
/// parent-death tests.
const PARENT_ROLE_VAR: &str = "CONDUCTOR_SPAWN_TEST_PARENT_ROLE";

/// The intermediate parent: spawns a child through the crate from a tokio worker thread,
/// prints its pid and blocks until killed. Before the runtime starts it ignores SIGHUP and
/// blocks SIGUSR1 (worker threads inherit the mask), which the child must not inherit.
fn run_as_intermediate_parent() {
    // SAFETY: no signal handler is installed, only the "ignore" disposition, and no other
    // thread of this process exists yet.
    unsafe { signal(Signal::SIGHUP, SigHandler::SigIgn) }.expect("SIGHUP can be ignored");
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGUSR1);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None).expect("SIGUSR1 can be blocked");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime starts");
    runtime.block_on(async {
        let group = tokio::spawn(async { spawn(&sh("exec sleep 1000")) })
            .await
            .expect("the task joins")
            .expect("/bin/sh starts");
        println!("child-pid {}", group.pid());
        // Holds `group` (and so the child) until this process is killed.
        std::future::pending::<()>().await;
    });
}

/// Runs this test binary as the intermediate parent for the test `test_name`; returns it and
/// its child's pid. Both groups are killed when the guard drops.
fn start_intermediate_parent(
    test_name: &str,
    guard: &mut KillOnDrop,
) -> (std::process::Child, u32) {
    let mut parent =
        std::process::Command::new(std::env::current_exe().expect("the test binary path"))
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(PARENT_ROLE_VAR, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("the test binary re-executes");
    guard.group(parent.id());
    let stdout = parent.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    // Blocking reads get a thread; it ends at end of file, when the parent dies.
    std::thread::spawn(move || {
        for line in StdBufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test <name> ... " without a newline before the test's output.
            if let Some((_, pid)) = line.split_once("child-pid ") {
                let _ = tx.send(parse_pid(pid));
            }
        }
    });
    let child = rx
        .recv_timeout(DEADLINE)
        .expect("the intermediate parent prints its child's pid");
    guard.group(child);
    (parent, child)
}

#[test]
fn child_dies_when_its_parent_is_sigkilled() {
    if std::env::var_os(PARENT_ROLE_VAR).is_some() {
        return run_as_intermediate_parent();
    }
    let mut guard = KillOnDrop::default();
    let (mut parent, child) = start_intermediate_parent(
        "lifecycle_shutdown::child_dies_when_its_parent_is_sigkilled",
        &mut guard,
    );
    assert!(running(child), "the child runs while its parent lives");
    kill(
        Pid::from_raw(i32::try_from(parent.id()).expect("pid fits")),
        Signal::SIGKILL,
    )
    .expect("the intermediate parent can be killed");
    parent.wait().expect("the intermediate parent is reaped");
    wait_until(DEADLINE, "the child to die with its parent", || {
        exited(child)
    });
}

#[test]
fn child_starts_with_no_blocked_or_ignored_signals() {
    if std::env::var_os(PARENT_ROLE_VAR).is_some() {
        return run_as_intermediate_parent();
    }
    let mut guard = KillOnDrop::default();
    let (mut parent, child) = start_intermediate_parent(
        "lifecycle_shutdown::child_starts_with_no_blocked_or_ignored_signals",
        &mut guard,
    );
    let status = std::fs::read_to_string(format!("/proc/{child}/status")).expect("the child runs");
    let mask = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name} in {status}"))
            .to_owned()
    };
    // The parent ignores SIGHUP (and SIGPIPE, as every Rust program does, and whatever it
    // inherited); its worker thread that spawned the child blocks SIGUSR1.
    let parent_status =
        std::fs::read_to_string(format!("/proc/{}/status", parent.id())).expect("the parent runs");
    let parent_ignored = parent_status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .expect("SigIgn in /proc/<pid>/status");
    assert_ne!(
        parent_ignored & (1 << (libc::SIGHUP - 1)),
        0,
        "{parent_status}"
    );
    assert_eq!(mask("SigBlk:"), "0000000000000000");
    assert_eq!(mask("SigIgn:"), "0000000000000000");
    let _ = parent.kill();
    let _ = parent.wait();
}

#[test]
fn child_spawned_on_a_worker_outlives_retired_blocking_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_millis(200))
        .enable_all()
        .build()
        .expect("a runtime starts");
    runtime.block_on(async {
        // Spawned from a blocking-pool thread: the runtime retires that thread once it has
        // idled for the keep-alive, and Linux then sends the child its parent-death signal.
        let mut from_blocking = tokio::task::spawn_blocking(|| spawn(&sh("exec sleep 1000")))
            .await
            .expect("the blocking task joins")
            .expect("/bin/sh starts");
        // Spawned from a worker thread (the tasks of a multi-thread runtime run there), which
        // lives as long as the runtime.
        let mut from_worker = tokio::spawn(async { spawn(&sh("exec sleep 1000")) })
            .await
            .expect("the task joins")
            .expect("/bin/sh starts");
        // This wait IS the condition under test: the first child dies only when its blocking
        // thread is retired (200 ms of idleness), so after it the second child has lived
        // through that retirement.
        let status = tokio::time::timeout(DEADLINE, from_blocking.wait())
            .await
            .expect("the child of a retired blocking thread is killed")
            .expect("it can be awaited");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
        let outcome = from_worker.stop(DEADLINE).await.expect("stop succeeds");
        assert!(
            matches!(outcome, StopOutcome::Terminated(_)),
            "the worker's child was still running until stop: {outcome:?}"
        );
    });
}
