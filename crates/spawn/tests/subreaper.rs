//! The subreaper (Linux `PR_SET_CHILD_SUBREAPER`): orphaned descendants are re-parented to us,
//! [`reap_adopted`] reaps them, and children that somebody in this process awaits keep their
//! exit status. A test binary of its own, because becoming a subreaper is process-wide and
//! permanent.
#![cfg(target_os = "linux")]

#[path = "spawn/support.rs"]
#[expect(
    dead_code,
    reason = "shared with the main test binary, which uses the rest"
)]
mod support;

use std::time::Duration;

use conductor_spawn::{SpawnSpec, TreeMarker, become_subreaper, reap_adopted, spawn};
use conductor_test_support::{
    DEADLINE,
    process::{self, KillTagged, unique_tag},
    wait_until_async,
};
use support::{double_fork_then, os, parse_pid, read_line, sh, state};
use tokio::io::BufReader;

fn parent_of(pid: u32) -> Option<u32> {
    process::stat(pid).map(|stat| stat.ppid)
}

async fn wait_zombie(pid: u32, what: &str) {
    wait_until_async(DEADLINE, what, || match state(pid) {
        Some('Z') => Ok(()),
        other => Err(format!("state {other:?}")),
    })
    .await;
}

#[tokio::test]
async fn adopted_orphans_are_reaped_and_awaited_children_keep_their_status() {
    become_subreaper().expect("Linux lets a process become a subreaper");
    let tag = unique_tag("subreaper");
    let _cleanup = KillTagged(tag.clone());
    let marker = TreeMarker::new("CONDUCTOR_INSTANCE", format!("test/{tag}"));
    let spec = SpawnSpec {
        env: vec![(os("TEST_TAG"), os(&tag))],
        marker: Some(marker),
        ..double_fork_then("exec sleep 1000")
    };
    let mut service = spawn(&spec).expect("python3 starts");
    let mut stdout = BufReader::new(service.take_stdout().expect("stdout is piped"));
    let daemon = parse_pid(&read_line(&mut stdout).await);
    let own = std::process::id();
    assert_eq!(
        parent_of(daemon),
        Some(own),
        "the daemon's parent exited, so it is re-parented to us"
    );

    // Children somebody here awaits: one of ours (own group), one started by std.
    let mut awaited = spawn(&sh("exit 7")).expect("/bin/sh starts");
    let mut plain = std::process::Command::new("/bin/sh")
        .args(["-c", "exit 5"])
        .spawn()
        .expect("/bin/sh starts");
    wait_zombie(awaited.pid(), "the awaited child to exit").await;
    wait_zombie(plain.id(), "the plain child to exit").await;

    // The adopted daemon dies on its own and becomes our zombie.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(daemon).expect("pid fits")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("the daemon can be signalled");
    wait_zombie(daemon, "the adopted daemon to exit").await;

    let n_reaped = reap_adopted();
    assert!(n_reaped >= 1, "nothing was reaped");
    assert_eq!(state(daemon), None, "the adopted zombie is still there");
    let status = tokio::time::timeout(DEADLINE, awaited.wait())
        .await
        .expect("it was already exited")
        .expect("its status was not stolen");
    assert_eq!(status.code(), Some(7));
    assert_eq!(plain.wait().expect("not stolen either").code(), Some(5));
    service.stop(DEADLINE).await.expect("stop succeeds");
}

#[tokio::test]
async fn a_stopped_tree_leaves_no_zombie_of_ours() {
    become_subreaper().expect("Linux lets a process become a subreaper");
    let tag = unique_tag("no-zombie");
    let _cleanup = KillTagged(tag.clone());
    let spec = SpawnSpec {
        env: vec![(os("TEST_TAG"), os(&tag))],
        marker: Some(TreeMarker::new("CONDUCTOR_INSTANCE", format!("test/{tag}"))),
        ..sh("setsid sleep 1000 & echo $!; exec sleep 1000")
    };
    let mut service = spawn(&spec).expect("/bin/sh starts");
    let mut stdout = BufReader::new(service.take_stdout().expect("stdout is piped"));
    let escapee = parse_pid(&read_line(&mut stdout).await);
    wait_until_async(DEADLINE, "the sleeper to leave the group", || {
        let session = process::stat(escapee).map(|stat| stat.session);
        if session == Some(escapee) {
            Ok(())
        } else {
            Err(format!("session {session:?}"))
        }
    })
    .await;
    service
        .stop(Duration::from_secs(5))
        .await
        .expect("stop succeeds");
    assert_eq!(
        state(escapee),
        None,
        "the killed sleeper was adopted by us and must be reaped, not left a zombie"
    );
}

#[tokio::test]
async fn an_adopted_double_forked_daemon_is_found_and_stopped_with_its_tree() {
    become_subreaper().expect("Linux lets a process become a subreaper");
    let tag = unique_tag("adopted-daemon");
    let _cleanup = KillTagged(tag.clone());
    let spec = SpawnSpec {
        env: vec![(os("TEST_TAG"), os(&tag))],
        marker: Some(TreeMarker::new("CONDUCTOR_INSTANCE", format!("test/{tag}"))),
        ..double_fork_then("exec sleep 1000")
    };
    let mut service = spawn(&spec).expect("python3 starts");
    let mut stdout = BufReader::new(service.take_stdout().expect("stdout is piped"));
    let daemon = parse_pid(&read_line(&mut stdout).await);
    assert_eq!(parent_of(daemon), Some(std::process::id()), "adopted by us");
    service.stop(DEADLINE).await.expect("stop succeeds");
    assert_eq!(
        state(daemon),
        None,
        "the adopted daemon must be killed and reaped with its tree"
    );
}
