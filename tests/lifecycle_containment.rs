//! End-to-end tests of SPEC §4 "No process a service started may survive a stop", for
//! descendants that leave the process group: a service that runs `setsid sleep 1000 &` and one
//! that double-forks a daemon (a python3 program). After `stop`, `restart`, a crash and its
//! recovery, and `quit`, none of their processes is alive; after conductor itself is SIGKILLed,
//! the next `up` reclaims them and leaves an unrelated `sleep 1000` alone.
//!
//! Survivors are looked for by a `TEST_TAG` variable each test puts in its services' `env`
//! (read straight from `/proc`), not by conductor's own marker, and killed by a guard on drop.

pub mod support;

use conductor_protocol::ServiceState;
use support::{
    Bystander, Conductor, DEADLINE, KillTagged, TempDir, conductor_cli, daemonize_script,
    describe_pids, fake_service, free_ports, is_gone, read_pid_file, registry_head, tagged,
    toml_path, toml_string, unique_tag, wait_untagged, wait_until,
};

struct Fleet {
    setsid_tag: String,
    daemon_tag: String,
    _cleanup: [KillTagged; 2],
}

impl Fleet {
    fn new(name: &str) -> Fleet {
        let tag = unique_tag(name);
        let (setsid_tag, daemon_tag) = (format!("{tag}-setsid"), format!("{tag}-daemon"));
        Fleet {
            _cleanup: [
                KillTagged(setsid_tag.clone()),
                KillTagged(daemon_tag.clone()),
            ],
            setsid_tag,
            daemon_tag,
        }
    }

    /// `loner` backgrounds `setsid sleep 1000`, then execs fake-service; `daemon` runs the
    /// python3 double-fork helper, which writes its daemon's pid to `daemon.pid`, then execs
    /// fake-service.
    fn registry(&self, dir: &TempDir, [loner, daemon]: [u16; 2]) -> String {
        format!(
            r#"{head}
[services.loner]
port = {loner}
command = "/bin/sh"
args = ["-c", "setsid sleep 1000 & exec \"$0\"", {bin}]
env = {{ TEST_TAG = {setsid_tag} }}

[services.daemon]
port = {daemon}
command = "python3"
args = [{script}, "double-fork", {pid_file}, {bin}]
env = {{ TEST_TAG = {daemon_tag} }}
"#,
            head = registry_head("ContainmentTest"),
            bin = fake_service(),
            script = daemonize_script(),
            pid_file = toml_path(&dir.join("daemon.pid")),
            setsid_tag = toml_string(&self.setsid_tag),
            daemon_tag = toml_string(&self.daemon_tag),
        )
    }
}

/// The `setsid`'d sleeper of `loner`: the tagged process that is not its leader and leads a
/// session of its own.
fn setsid_sleeper(conductor: &Conductor, tag: &str) -> u32 {
    let leader = conductor.status("loner").pid.expect("loner runs");
    let sleeper = wait_until(DEADLINE, "loner's setsid sleeper", || {
        let found = tagged(tag);
        found
            .iter()
            .copied()
            .find(|&pid| pid != leader && session(pid) == Some(pid))
            .ok_or_else(|| format!("tagged: {}", describe_pids(&found)))
    });
    conductor.track(sleeper);
    sleeper
}

fn session(pid: u32) -> Option<u32> {
    conductor_test_support::process::stat(pid).map(|stat| stat.session)
}

/// The daemon's pid from `daemon.pid`, removed afterwards so the next attempt's is not
/// confused with it.
fn daemon_pid(conductor: &Conductor, dir: &TempDir) -> u32 {
    let file = dir.join("daemon.pid");
    let pid = read_pid_file(&file);
    let _ = std::fs::remove_file(&file);
    conductor.track(pid);
    assert!(!is_gone(pid), "the daemon {pid} should be running");
    pid
}

fn cli_ok(conductor: &Conductor, args: &[&str]) {
    let output = conductor_cli(&conductor.data_dir, args);
    assert!(
        output.status.success(),
        "conductor {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn daemonised_descendants_end_with_stop_restart_crash_recovery_and_quit() {
    let dir = TempDir::new("containment");
    let fleet = Fleet::new("containment");
    let mut conductor = Conductor::start(&dir, &fleet.registry(&dir, free_ports()));

    let sleeper = setsid_sleeper(&conductor, &fleet.setsid_tag);
    cli_ok(&conductor, &["stop", "loner"]);
    assert!(
        tagged(&fleet.setsid_tag).is_empty(),
        "after `stop loner` returned, its tree is still alive: {}",
        describe_pids(&tagged(&fleet.setsid_tag))
    );
    assert!(is_gone(sleeper));

    cli_ok(&conductor, &["start", "loner"]);
    let sleeper = setsid_sleeper(&conductor, &fleet.setsid_tag);
    let daemon = daemon_pid(&conductor, &dir);
    cli_ok(&conductor, &["restart", "daemon"]);
    assert!(
        is_gone(daemon),
        "the daemon {daemon} outlived `restart daemon`"
    );

    // A crash: the leader dies; recovery must end the rest of its tree before starting anew.
    let daemon = daemon_pid(&conductor, &dir);
    let leader = conductor.status("daemon").pid.expect("daemon runs");
    conductor.track(leader);
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is the service conductor
    // reports as running right now.
    unsafe {
        libc::kill(
            libc::pid_t::try_from(leader).expect("pid fits"),
            libc::SIGKILL,
        );
    }
    conductor.wait_status("daemon", "running again under a new pid", |status| {
        status.status == ServiceState::Running && status.pid.is_some_and(|pid| pid != leader)
    });
    assert!(
        is_gone(daemon),
        "the daemon {daemon} of the crashed attempt outlived the recovery"
    );
    let daemon = daemon_pid(&conductor, &dir);

    cli_ok(&conductor, &["quit"]);
    let status = conductor.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", conductor.output());
    for (tag, escapee) in [(&fleet.setsid_tag, sleeper), (&fleet.daemon_tag, daemon)] {
        assert!(
            tagged(tag).is_empty(),
            "after quit: {}",
            describe_pids(&tagged(tag))
        );
        assert!(is_gone(escapee));
    }
}

#[test]
fn the_next_up_reclaims_the_daemons_of_a_sigkilled_conductor_and_nothing_else() {
    let dir = TempDir::new("reclaim-daemons");
    let fleet = Fleet::new("reclaim-daemons");
    let registry = fleet.registry(&dir, free_ports());
    let mut first = Conductor::start(&dir, &registry);
    let sleeper = setsid_sleeper(&first, &fleet.setsid_tag);
    let daemon = daemon_pid(&first, &dir);
    let leaders: Vec<u32> = first.statuses().iter().filter_map(|s| s.pid).collect();
    // An unrelated process with the very command line of both escapees.
    let bystander = Bystander::sleep();

    first.signal(libc::SIGKILL);
    first.wait_exit();
    support::wait_all_gone(&leaders, "the services, by their parent-death signal");
    assert!(
        !is_gone(sleeper) && !is_gone(daemon),
        "precondition: the escapees outlive a SIGKILLed conductor"
    );

    let mut second = Conductor::spawn(&dir.join("conductor.toml"), &first.data_dir, &[]);
    second.wait_up();
    assert!(is_gone(sleeper), "the setsid sleeper was not reclaimed");
    assert!(is_gone(daemon), "the daemon was not reclaimed");
    assert!(
        !is_gone(bystander.pid()),
        "an unrelated `sleep 1000` was killed by reclaim"
    );
    let stdout = second.stdout();
    let reclaim_line = stdout
        .find("carrying CONDUCTOR_INSTANCE=")
        .unwrap_or_else(|| panic!("no reclaim line for the marked processes:\n{stdout}"));
    let first_start = stdout
        .find("✓ Starting")
        .unwrap_or_else(|| panic!("no start lines:\n{stdout}"));
    assert!(
        reclaim_line < first_start,
        "reclaim must come before any service starts:\n{stdout}"
    );
    second.signal(libc::SIGTERM);
    assert_eq!(second.wait_exit().code(), Some(0), "{}", second.output());
    wait_untagged(&fleet.setsid_tag, "no loner process after the second run");
    wait_untagged(&fleet.daemon_tag, "no daemon process after the second run");
}
