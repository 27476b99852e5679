//! SPEC §4 Startup steps 2 and 4: reclaiming the process groups a killed run left behind, and
//! checking that a port is free or naming the process that holds it.

use std::{
    io::{BufRead, BufReader as StdBufReader, Read},
    net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream},
    os::unix::process::{CommandExt, ExitStatusExt},
    process::Stdio,
};

use conductor_spawn::{
    GroupRecord, ReclaimOutcome, Reclaimed, SkipReason, StopOutcome, port_holder, port_is_free,
    process_start_time, reclaim, spawn,
};
use tokio::io::BufReader;

use conductor_test_support::{DEADLINE, wait_until};

use crate::support::{KillOnDrop, exited, parse_pid, read_line, running, sh};

async fn reclaim_in_background(records: Vec<GroupRecord>) -> Vec<Reclaimed> {
    tokio::task::spawn_blocking(move || reclaim(&records))
        .await
        .expect("reclaim does not panic")
}

#[tokio::test]
async fn reclaim_kills_a_recorded_live_group_of_ours() {
    let mut group = spawn(&sh("sleep 1000 & echo $!; wait")).expect("/bin/sh starts");
    let mut guard = KillOnDrop::default();
    guard.group(group.pid());
    let mut stdout = BufReader::new(group.take_stdout().expect("stdout is piped"));
    let grandchild = parse_pid(&read_line(&mut stdout).await);
    let record = group.record();
    assert_eq!(record.pgid, group.pid());
    assert_eq!(Some(record.start_time), process_start_time(group.pid()));

    let results = reclaim_in_background(vec![record]).await;

    assert_eq!(
        results,
        vec![Reclaimed {
            record,
            outcome: ReclaimOutcome::Killed { n_processes: 2 }
        }]
    );
    // reclaim returns once what it killed is gone.
    assert_eq!(exited(grandchild), Ok(()));
    let status = group.wait().await.expect("the leader is reaped");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
}

#[tokio::test]
async fn reclaim_skips_a_group_whose_leader_started_at_another_time() {
    let mut group = spawn(&sh("exec sleep 1000")).expect("/bin/sh starts");
    let real = group.record();
    let reused = GroupRecord {
        start_time: real.start_time + 1,
        ..real
    };

    let results = reclaim_in_background(vec![reused]).await;

    assert_eq!(
        results,
        vec![Reclaimed {
            record: reused,
            outcome: ReclaimOutcome::Skipped(SkipReason::LeaderStartTimeMismatch {
                found: real.start_time
            }),
        }]
    );
    let outcome = group.stop(DEADLINE).await.expect("stop succeeds");
    assert!(
        matches!(outcome, StopOutcome::Terminated(_)),
        "it was left running: {outcome:?}"
    );
}

#[tokio::test]
async fn reclaim_never_kills_the_test_process_group() {
    let own_pgid = u32::try_from(nix::unistd::getpgrp().as_raw()).expect("pgids are positive");
    // Later than any process here started: a leader alive has another start time, and if the
    // leader is gone, this process is a member older than the record.
    let record = GroupRecord {
        pgid: own_pgid,
        start_time: u64::MAX - 1,
    };

    let results = reclaim_in_background(vec![record]).await;

    assert_eq!(results.len(), 1);
    assert!(
        matches!(
            results[0].outcome,
            ReclaimOutcome::Skipped(
                SkipReason::LeaderStartTimeMismatch { .. }
                    | SkipReason::MemberPredatesRecord { .. }
            )
        ),
        "{results:?}"
    );
}

#[test]
fn reclaim_judges_a_group_whose_leader_is_gone_by_its_members_start_times() {
    // A group like one a killed conductor leaves: the leader exited and was reaped, its
    // background child lives on in the group.
    let mut leader = std::process::Command::new("/bin/sh")
        .args(["-c", "sleep 1000 & echo $!"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("/bin/sh starts");
    let pgid = leader.id();
    let mut guard = KillOnDrop::default();
    guard.group(pgid);
    // Unreaped until the wait below, so its /proc entry is there even if it already exited.
    let leader_start = process_start_time(pgid).expect("the unreaped leader has a stat");
    let mut line = String::new();
    StdBufReader::new(leader.stdout.take().expect("stdout is piped"))
        .read_line(&mut line)
        .expect("the leader prints its child's pid");
    let grandchild = parse_pid(&line);
    let grandchild_start = process_start_time(grandchild).expect("the grandchild runs");
    assert!(leader.wait().expect("the leader is reaped").success());

    let too_late = GroupRecord {
        pgid,
        start_time: grandchild_start + 1,
    };
    assert_eq!(
        reclaim(&[too_late]),
        vec![Reclaimed {
            record: too_late,
            outcome: ReclaimOutcome::Skipped(SkipReason::MemberPredatesRecord {
                pid: grandchild,
                start_time: grandchild_start,
            }),
        }]
    );
    assert!(running(grandchild), "a skipped group is left alone");

    let ours = GroupRecord {
        pgid,
        start_time: leader_start,
    };
    assert_eq!(
        reclaim(&[ours]),
        vec![Reclaimed {
            record: ours,
            outcome: ReclaimOutcome::Killed { n_processes: 1 }
        }]
    );
    assert_eq!(exited(grandchild), Ok(()));
}

#[tokio::test]
async fn reclaim_skips_a_group_that_is_already_gone() {
    let mut group = spawn(&sh("exit 0")).expect("/bin/sh starts");
    let record = group.record();
    assert!(group.wait().await.expect("the leader is reaped").success());

    let results = reclaim_in_background(vec![record]).await;

    assert_eq!(
        results,
        vec![Reclaimed {
            record,
            outcome: ReclaimOutcome::Skipped(SkipReason::NoLiveProcess)
        }]
    );
}

#[test]
fn port_holder_names_this_process_for_its_listener() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("loopback binds");
    let port = listener.local_addr().expect("a bound address").port();

    let holder = port_holder(port).expect("our own listener is visible");

    assert_eq!(holder.pid, std::process::id());
    let exe = std::env::current_exe().expect("the test binary path");
    let exe_name = exe.file_name().expect("a file name").to_string_lossy();
    assert!(holder.command_line.contains(&*exe_name), "{holder:?}");
}

#[test]
fn port_holder_of_a_port_nobody_listens_on_is_none() {
    let port = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("loopback binds");
        listener.local_addr().expect("a bound address").port()
    };
    assert_eq!(port_holder(port), None);
}

#[test]
fn port_is_busy_while_held_on_either_loopback_and_free_after() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("loopback binds");
    let port = listener.local_addr().expect("a bound address").port();
    assert!(!port_is_free(port), "held on 127.0.0.1");
    drop(listener);
    assert!(port_is_free(port), "released");

    // A service told to listen on "localhost" may end up on ::1 only.
    if let Ok(listener) = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        let port = listener.local_addr().expect("a bound address").port();
        assert!(!port_is_free(port), "held on ::1");
    }
    assert!(
        !port_is_free(0),
        "port 0 is not a port a service can be reached on"
    );
}

/// Whether `/proc/net/tcp` has a TIME_WAIT (`06`) row whose local port is `port`.
fn time_wait_rows(port: u16) -> Result<(), String> {
    let table = std::fs::read_to_string("/proc/net/tcp").map_err(|error| error.to_string())?;
    let local = format!(":{port:04X} ");
    let rows: Vec<&str> = table.lines().filter(|row| row.contains(&local)).collect();
    if rows
        .iter()
        .any(|row| row.split_ascii_whitespace().nth(3) == Some("06"))
    {
        Ok(())
    } else {
        Err(format!("rows for the port: {rows:?}"))
    }
}

#[test]
fn port_with_connections_in_time_wait_counts_as_free() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("loopback binds");
    let port = listener.local_addr().expect("a bound address").port();
    let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connects");
    let (server_side, _) = listener.accept().expect("accepts");
    // The side that closes first keeps the connection in TIME_WAIT: make it the server's,
    // whose local port is the service port.
    drop(server_side);
    let mut rest = Vec::new();
    client
        .read_to_end(&mut rest)
        .expect("the client sees the server close");
    drop(client);
    drop(listener);
    wait_until(DEADLINE, "a TIME_WAIT connection on the port", || {
        time_wait_rows(port)
    });

    assert!(port_is_free(port));
}
