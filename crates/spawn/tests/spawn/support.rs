//! Test support beyond the workspace's harness (`conductor-test-support`): process probes in
//! this crate's terms, scripts, and guards that kill what a test started even when the test
//! panics.

use std::ffi::OsString;

use conductor_spawn::SpawnSpec;
use conductor_test_support::{DEADLINE, process};
use nix::{
    errno::Errno,
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The state letter of `pid` (`S`, `R`, `Z` …), `None` if it is gone.
pub fn state(pid: u32) -> Option<char> {
    process::stat(pid).map(|stat| stat.state)
}

/// The process group of `pid`, `None` if it is gone.
pub fn pgid(pid: u32) -> Option<u32> {
    process::stat(pid).map(|stat| stat.pgid)
}

fn raw_pid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).expect("Linux pids fit in pid_t"))
}

/// `Ok` once `pid` has exited: `kill(pid, 0)` says ESRCH, or it is a zombie. A zombie has
/// exited and waits for its parent to reap it; orphans are reaped by PID 1 or a subreaper,
/// some of which reap lazily (seconds) or never (a container's PID 1 that is not an init).
pub fn exited(pid: u32) -> Result<(), String> {
    match kill(raw_pid(pid), None) {
        Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(format!("kill({pid}, 0) failed: {errno}")),
        Ok(()) => match state(pid) {
            None | Some('Z' | 'X') => Ok(()),
            Some(state) => Err(format!("pid {pid} is still running (state {state})")),
        },
    }
}

/// Whether `pid` exists and has not exited.
pub fn running(pid: u32) -> bool {
    exited(pid).is_err()
}

/// `/bin/sh -c script`.
pub fn sh(script: &str) -> SpawnSpec {
    SpawnSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        cwd: None,
        env: Vec::new(),
        marker: None,
        limits: Default::default(),
    }
}

/// Reads one line (without its newline), failing the test on EOF or after [`DEADLINE`].
pub async fn read_line(reader: &mut (impl AsyncBufRead + Unpin)) -> String {
    let mut line = String::new();
    let n_read = tokio::time::timeout(DEADLINE, reader.read_line(&mut line))
        .await
        .expect("a line within the deadline")
        .expect("a readable pipe");
    assert!(n_read > 0, "expected a line, got end of file");
    line.trim_end().to_owned()
}

/// Parses a pid printed by a script.
pub fn parse_pid(line: &str) -> u32 {
    line.trim()
        .parse()
        .unwrap_or_else(|_| panic!("expected a pid, got {line:?}"))
}

/// SIGKILLs these process groups when dropped: for processes a test learns about but does not
/// own through a `ProcessGroup` (grandchildren, children of `std::process`).
#[derive(Default)]
pub struct KillOnDrop {
    pgids: Vec<u32>,
}

impl KillOnDrop {
    pub fn group(&mut self, pgid: u32) {
        self.pgids.push(pgid);
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pgid in &self.pgids {
            let _ = killpg(raw_pid(pgid), Signal::SIGKILL);
        }
    }
}

/// `s` as an `OsString`, for spec fields.
pub fn os(s: &str) -> OsString {
    s.into()
}

/// A python3 program that double-forks a daemon (fork, `setsid`, fork again, the middle
/// process exits), prints the daemon's pid and then runs `then` (a shell command).
pub fn double_fork_then(then: &str) -> SpawnSpec {
    let program = r#"
import os, sys
reader, writer = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(reader)
        os.write(writer, str(os.getpid()).encode())
        os.close(writer)
        os.execvp("sleep", ["sleep", "1000"])
    os._exit(0)
os.close(writer)
daemon = os.read(reader, 32).decode()
os.wait()
print(daemon, flush=True)
os.execvp("/bin/sh", ["/bin/sh", "-c", sys.argv[1]])
"#;
    SpawnSpec {
        program: "python3".into(),
        args: vec!["-c".into(), program.into(), then.into()],
        ..SpawnSpec::default()
    }
}
