//! The exec probe: run a command as the leader of its own process group (through
//! `conductor-spawn`, so it gets the parent-death signal and the service's tree marker);
//! exit code 0 means healthy. Whatever it started is killed when it exits, when it times out
//! and when the probe is dropped half-way, so a probe leaves nothing running. It does not
//! retry and does not interpret the command's output beyond quoting the last line of its
//! stderr in the reason.

use std::{path::Path, time::Duration};

use conductor_spawn::{ProcessGroup, SpawnSpec, TreeMarker};
use tokio::{io::AsyncReadExt, process::ChildStderr, process::ChildStdout, time::Instant};

use crate::{ProbeOutcome, duration::human};

/// Stderr kept for the reason; the rest is read and dropped so the command never blocks on it.
const STDERR_TAIL_BYTES: usize = 4096;

/// After the command exits, how long to wait for the rest of its stderr. A background process
/// it left behind held the pipe open until it was killed; its words are not worth waiting for.
const STDERR_GRACE: Duration = Duration::from_millis(100);

pub(crate) async fn probe(
    program: &str,
    args: &[String],
    cwd: Option<&Path>,
    marker: Option<&TreeMarker>,
    timeout: Duration,
    correlation_id: &str,
) -> ProbeOutcome {
    let deadline = Instant::now() + timeout;
    let mut env = Vec::new();
    if !correlation_id.is_empty() {
        env.push(("CONDUCTOR_CORRELATION_ID".into(), correlation_id.into()));
    }
    let spec = SpawnSpec {
        program: program.into(),
        args: args.iter().map(Into::into).collect(),
        cwd: cwd.map(Path::to_path_buf),
        env,
        marker: marker.cloned(),
        limits: Default::default(),
    };
    // The group is the guard: returning early or being dropped SIGKILLs it and its tree.
    let mut group: ProcessGroup = match conductor_spawn::spawn(&spec) {
        Ok(group) => group,
        Err(err) => {
            return ProbeOutcome::Unhealthy(format!("cannot run `{program}`: {}", err.kind));
        }
    };
    let mut stderr = group.take_stderr();
    // Drained and dropped: a probe that prints must not block on a full pipe or die of SIGPIPE.
    let mut stdout = group.take_stdout();
    let mut tail = Vec::new();

    let run = async {
        let mut buf = [0u8; 1024];
        let mut sink = [0u8; 1024];
        loop {
            tokio::select! {
                // Every branch is cancel-safe: `wait` and `read` lose nothing when dropped.
                // `wait` also SIGKILLs what the command left in its group and tree.
                status = group.wait() => break status,
                read = read_some(stderr.as_mut(), &mut buf), if stderr.is_some() => match read {
                    Some(bytes) => keep_tail(&mut tail, bytes),
                    None => stderr = None,
                },
                read = drain(stdout.as_mut(), &mut sink), if stdout.is_some() => {
                    if !read {
                        stdout = None;
                    }
                }
            }
        }
    };
    let status = match tokio::time::timeout_at(deadline, run).await {
        Ok(Ok(status)) => status,
        Ok(Err(err)) => {
            return ProbeOutcome::Unhealthy(format!("waiting for `{program}`: {err}"));
        }
        Err(_elapsed) => {
            // No grace: a probe past its timeout has nothing left to say.
            let _ = group.stop(Duration::ZERO).await;
            return ProbeOutcome::Unhealthy(format!("timed out after {}", human(timeout)));
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

/// Reads and forgets what is available; `false` at end of file or on error.
async fn drain(stdout: Option<&mut ChildStdout>, buf: &mut [u8]) -> bool {
    match stdout {
        Some(stdout) => matches!(stdout.read(buf).await, Ok(n) if n > 0),
        None => false,
    }
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

#[cfg(unix)]
mod platform {
    use std::{os::unix::process::ExitStatusExt, process::ExitStatus};

    pub(super) fn signal(status: &ExitStatus) -> Option<i32> {
        status.signal()
    }
}

#[cfg(not(unix))]
mod platform {
    use std::process::ExitStatus;

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
