//! SPEC §4 "No process a service started may survive a stop", for descendants that leave the
//! process group: `setsid` and the classic double fork. They are found by the tree marker in
//! their environment and ended on stop, on the leader's exit and on drop; a process without
//! the marker, even one running the same command, is never touched.

use conductor_spawn::{SpawnSpec, TreeMarker, find_marked, spawn};
use tokio::io::BufReader;

use conductor_test_support::{
    DEADLINE,
    process::{KillTagged, tagged, unique_tag},
    wait_until_async,
};

use crate::support::{double_fork_then, exited, os, parse_pid, pgid, read_line, running, sh};

/// `spec` with a test tag (for independent cleanup) and a tree marker of its own.
fn marked(spec: SpawnSpec, tag: &str) -> (SpawnSpec, KillTagged) {
    let spec = SpawnSpec {
        env: vec![(os("TEST_TAG"), os(tag))],
        marker: Some(TreeMarker::new("CONDUCTOR_INSTANCE", format!("test/{tag}"))),
        ..spec
    };
    (spec, KillTagged(tag.to_owned()))
}

/// Starts `spec`, whose first line is the pid of a descendant outside the group.
async fn start_with_escapee(spec: &SpawnSpec) -> (conductor_spawn::ProcessGroup, u32) {
    let mut group = spawn(spec).expect("the program starts");
    let mut stdout = BufReader::new(group.take_stdout().expect("stdout is piped"));
    let escapee = parse_pid(&read_line(&mut stdout).await);
    // Only once it has left the group is a group signal unable to reach it.
    let leader = group.pid();
    wait_until_async(
        DEADLINE,
        "the descendant to leave the process group",
        || match pgid(escapee) {
            Some(pgid) if pgid != leader && running(escapee) => Ok(()),
            other => Err(format!("its process group is {other:?}")),
        },
    )
    .await;
    (group, escapee)
}

fn setsid_sleeper() -> SpawnSpec {
    // The background job is not a group leader, so `setsid` makes a new session in place.
    sh("setsid sleep 1000 & echo $!; exec sleep 1000")
}

#[tokio::test]
async fn stop_ends_a_descendant_that_called_setsid() {
    let tag = unique_tag("setsid-stop");
    let (spec, _cleanup) = marked(setsid_sleeper(), &tag);
    let (mut group, escapee) = start_with_escapee(&spec).await;
    group.stop(DEADLINE).await.expect("stop succeeds");
    assert_eq!(
        exited(escapee),
        Ok(()),
        "the setsid'd sleeper survived stop"
    );
    assert_eq!(tagged(&tag), Vec::<u32>::new());
}

#[tokio::test]
async fn stop_ends_a_double_forked_daemon() {
    let tag = unique_tag("daemon-stop");
    let (spec, _cleanup) = marked(double_fork_then("exec sleep 1000"), &tag);
    let (mut group, daemon) = start_with_escapee(&spec).await;
    group.stop(DEADLINE).await.expect("stop succeeds");
    assert_eq!(exited(daemon), Ok(()), "the daemon survived stop");
    assert_eq!(tagged(&tag), Vec::<u32>::new());
}

#[tokio::test]
async fn a_crashed_leader_takes_its_daemon_with_it() {
    let tag = unique_tag("daemon-crash");
    let (spec, _cleanup) = marked(double_fork_then("exit 3"), &tag);
    let (mut group, daemon) = start_with_escapee(&spec).await;
    let status = tokio::time::timeout(DEADLINE, group.wait())
        .await
        .expect("the leader exits")
        .expect("it can be awaited");
    assert_eq!(status.code(), Some(3));
    assert_eq!(
        exited(daemon),
        Ok(()),
        "the daemon outlived its crashed leader"
    );
}

#[tokio::test]
async fn dropping_the_guard_ends_a_setsid_descendant() {
    let tag = unique_tag("setsid-drop");
    let (spec, _cleanup) = marked(setsid_sleeper(), &tag);
    let (group, escapee) = start_with_escapee(&spec).await;
    drop(group);
    wait_until_async(
        DEADLINE,
        "the setsid'd sleeper to die with the guard",
        || exited(escapee),
    )
    .await;
}

#[tokio::test]
async fn an_unmarked_process_with_the_same_command_is_untouched() {
    let tag = unique_tag("bystander");
    let bystander_tag = unique_tag("bystander-other");
    let _bystander_cleanup = KillTagged(bystander_tag.clone());
    // Same command line as the escapee, started by the same user, after the service.
    let (spec, _cleanup) = marked(setsid_sleeper(), &tag);
    let (mut group, escapee) = start_with_escapee(&spec).await;
    let mut bystander = spawn(&SpawnSpec {
        env: vec![(os("TEST_TAG"), os(&bystander_tag))],
        ..sh("setsid sleep 1000 & echo $!; exec sleep 1000")
    })
    .expect("the bystander starts");
    let mut stdout = BufReader::new(bystander.take_stdout().expect("stdout is piped"));
    let bystander_sleeper = parse_pid(&read_line(&mut stdout).await);

    group.stop(DEADLINE).await.expect("stop succeeds");
    assert_eq!(exited(escapee), Ok(()));
    assert!(
        running(bystander_sleeper),
        "a process without the marker was killed"
    );
    bystander.stop(DEADLINE).await.expect("stop succeeds");
}

#[tokio::test]
async fn the_scan_finds_the_tree_and_nothing_that_started_before_it() {
    let tag = unique_tag("scan");
    let (spec, _cleanup) = marked(setsid_sleeper(), &tag);
    let (mut group, escapee) = start_with_escapee(&spec).await;
    let entry = format!("CONDUCTOR_INSTANCE=test/{tag}");
    let since = group.record().start_time;
    let found: Vec<u32> = find_marked(entry.as_bytes(), since, &[group.pid()])
        .iter()
        .map(|p| p.pid)
        .collect();
    assert!(found.contains(&escapee), "{found:?} lacks {escapee}");
    assert!(
        !found.contains(&group.pid()),
        "the excluded leader was found"
    );
    let later = find_marked(entry.as_bytes(), u64::MAX, &[]);
    assert!(
        later.is_empty(),
        "processes started before `since` were found"
    );
    group.stop(DEADLINE).await.expect("stop succeeds");
}
