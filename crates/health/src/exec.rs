//! The exec probe: run a command in its own process group; exit code 0 means healthy.
//! On timeout the whole group is killed and the command reaped, so a probe leaves nothing
//! running. It does not retry and does not interpret the command's output beyond quoting the
//! last line of its stderr in the reason.

use std::{path::Path, process::Stdio, time::Duration};

use tokio::{
    io::AsyncReadExt,
    process::{Child, ChildStderr, Command},
    time::Instant,
};

use crate::{ProbeOutcome, duration::human};

/// Stderr kept for the reason; the rest is read and dropped so the command never blocks on it.
const STDERR_TAIL_BYTES: usize = 4096;

/// After the command exits, how long to wait for the rest of its stderr. A background process
/// it left behind may hold the pipe open forever; its words are not worth waiting for.
const STDERR_GRACE: Duration = Duration::from_millis(100);

/// How long reaping may take after SIGKILL before we give up on it (kill_on_drop remains).
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn probe(
    program: &str,
    args: &[String],
    cwd: Option<&Path>,
    timeout: Duration,
    correlation_id: &str,
) -> ProbeOutcome {
    let deadline = Instant::now() + timeout;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !correlation_id.is_empty() {
        command.env("CONDUCTOR_CORRELATION_ID", correlation_id);
    }
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    platform::own_group(&mut command);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return ProbeOutcome::Unhealthy(format!("cannot run `{program}`: {err}")),
    };
    let mut stderr = child.stderr.take();
    let mut tail = Vec::new();

    let run = async {
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                // Both branches are cancel-safe: `wait` and `read` lose nothing when dropped.
                status = child.wait() => break status,
                read = read_some(stderr.as_mut(), &mut buf), if stderr.is_some() => match read {
                    Some(bytes) => keep_tail(&mut tail, bytes),
                    None => stderr = None,
                },
            }
        }
    };
    let status = match tokio::time::timeout_at(deadline, run).await {
        Ok(status) => status,
        Err(_elapsed) => {
            kill_and_reap(&mut child).await;
            return ProbeOutcome::Unhealthy(format!("timed out after {}", human(timeout)));
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(err) => {
            kill_and_reap(&mut child).await;
            return ProbeOutcome::Unhealthy(format!("waiting for `{program}`: {err}"));
        }
    };
    if status.success() {
        return ProbeOutcome::Healthy;
    }
    let grace = deadline
        .saturating_duration_since(Instant::now())
        .min(STDERR_GRACE);
    let _ = tokio::time::timeout(grace, async {
        let mut buf = [0u8; 1024];
        while let Some(bytes) = read_some(stderr.as_mut(), &mut buf).await {
            keep_tail(&mut tail, bytes);
        }
    })
    .await;
    let last_line = String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(|line| format!(": {line}"))
        .unwrap_or_default();
    let how = match (status.code(), platform::signal(&status)) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended with {status}"),
    };
    ProbeOutcome::Unhealthy(format!("`{program}` {how}{last_line}"))
}

/// Reads what is available; `None` at end of file, on error, or without a pipe.
async fn read_some<'b>(stderr: Option<&mut ChildStderr>, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    match stderr?.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(&buf[..n]),
    }
}

fn keep_tail(tail: &mut Vec<u8>, bytes: &[u8]) {
    tail.extend_from_slice(bytes);
    if tail.len() > STDERR_TAIL_BYTES {
        tail.drain(..tail.len() - STDERR_TAIL_BYTES);
    }
}

/// Kills the command's process group (grandchildren included) and reaps the command.
async fn kill_and_reap(child: &mut Child) {
    // `id()` is `Some` only until the child is reaped, so the group id is still ours here.
    if let Some(pid) = child.id() {
        platform::kill_group(pid);
    }
    let _ = child.start_kill();
    if tokio::time::timeout(REAP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            pid = child.id(),
            "exec probe did not die within {REAP_TIMEOUT:?} of SIGKILL"
        );
    }
}

#[cfg(unix)]
mod platform {
    use std::{os::unix::process::ExitStatusExt, process::ExitStatus};

    use nix::{
        sys::signal::{Signal, killpg},
        unistd::Pid,
    };
    use tokio::process::Command;

    /// Its own process group, so that a timeout can kill everything it started.
    pub(super) fn own_group(command: &mut Command) {
        command.process_group(0);
    }

    pub(super) fn kill_group(pid: u32) {
        let Ok(pid) = i32::try_from(pid) else { return };
        // ESRCH: already gone, which is what we want.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }

    pub(super) fn signal(status: &ExitStatus) -> Option<i32> {
        status.signal()
    }
}

#[cfg(not(unix))]
mod platform {
    use std::process::ExitStatus;

    use tokio::process::Command;

    // Not done yet on this platform: no process group, so only the command itself is killed
    // (by `start_kill`), not what it started. Listed in ARCHITECTURE.md's platform gaps.
    pub(super) fn own_group(_command: &mut Command) {}

    pub(super) fn kill_group(_pid: u32) {}

    pub(super) fn signal(_status: &ExitStatus) -> Option<i32> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut tail = Vec::new();
        keep_tail(&mut tail, &[b'a'; STDERR_TAIL_BYTES]);
        keep_tail(&mut tail, b"end");
        assert_eq!(tail.len(), STDERR_TAIL_BYTES);
        assert!(tail.ends_with(b"aend"));
    }
}
