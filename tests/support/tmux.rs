//! A real terminal for the tests of what conductor prints to one (`status --watch`, `up`'s
//! panel line): a tmux pane. tmux is required, not optional: without it a test fails saying
//! how to install it. Each tmux runs its own server (`-S <socket in the test's temp dir>`),
//! killed with the test, and carries a `TEST_TAG` so that a server that outlived
//! `kill-server` is killed too.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use super::{DEADLINE, KillTagged, TempDir, wait_until};

/// A tmux server of its own with one detached 160×30 session running a command; the server
/// is killed on drop, even when the test panics.
pub struct Tmux {
    socket: PathBuf,
    session: String,
    tag: String,
    _cleanup: KillTagged,
}

impl Tmux {
    /// Starts `command` (a program and its arguments, run directly, without a shell) in a
    /// new session; its processes, the tmux server included, carry `TEST_TAG=<tag>`.
    pub fn run(dir: &TempDir, tag: &str, command: &[&str]) -> Tmux {
        let tmux = Tmux {
            socket: dir.join("tmux.socket"),
            session: "test".to_owned(),
            tag: tag.to_owned(),
            _cleanup: KillTagged(tag.to_owned()),
        };
        let size = ["-x", "160", "-y", "30"];
        let mut args = vec!["new-session", "-d", "-s", &tmux.session];
        args.extend(size.iter().chain(command));
        let output = tmux.tmux(&args);
        assert!(output.status.success(), "tmux new-session: {output:?}");
        tmux
    }

    /// `tmux -S <socket> <args>` with `TEST_TAG=<tag>` in its environment, which the server
    /// it starts inherits.
    pub fn tmux(&self, args: &[&str]) -> Output {
        match Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env("TEST_TAG", &self.tag)
            .output()
        {
            Ok(output) => output,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "tmux is not installed, and these tests drive a real terminal with it; \
                 install it with: apt-get install -y tmux"
            ),
            Err(error) => panic!("cannot run tmux: {error}"),
        }
    }

    /// What the pane shows now, one line per row.
    pub fn capture(&self) -> String {
        let output = self.tmux(&["capture-pane", "-p", "-t", &self.session]);
        assert!(output.status.success(), "tmux capture-pane: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `keys` (tmux key names: `q`, `C-c`) into the pane.
    pub fn send_keys(&self, keys: &str) {
        let output = self.tmux(&["send-keys", "-t", &self.session, keys]);
        assert!(output.status.success(), "tmux send-keys {keys}: {output:?}");
    }

    /// Waits until the pane shows a line containing `text`; returns the whole screen.
    pub fn wait_for(&self, what: &str, text: &str) -> String {
        wait_until(DEADLINE, what, || {
            let screen = self.capture();
            if screen.lines().any(|line| line.contains(text)) {
                Ok(screen)
            } else {
                Err(format!("the pane shows:\n{screen}"))
            }
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}
