//! End-to-end tests of hot reload (issue 15) against the real `conductor up` and real
//! fake-service processes: `conductor reload`, `app:reload`, SIGHUP and `up --watch`.
//!
//! A reload touches exactly what changed: an untouched service keeps its process and emits no
//! status event, a changed one runs its new spec under a new pid, an added one starts, a
//! removed one's whole tree (a `setsid` escapee included) is gone and it leaves
//! `services:get-all`. A probe-only change keeps the process and the probes follow the new
//! interval. An invalid or refused file, or a reload during startup, changes nothing and says
//! why. Survivors are looked for by `TEST_TAG` (read from `/proc`) and pids with start times.
//!
//! The random pairs of registries are `reload_property.rs`.

pub mod support;

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use conductor_protocol::ServiceState;
use conductor_test_support::Proc;
use serde_json::{Value, json};
use support::{
    Conductor, DEADLINE, EventStream, KillTagged, TempDir, conductor_cli, describe_pids,
    fake_service, free_ports, get_json, http, registry_head, running_pid, tagged, toml_path,
    toml_string, unique_tag, wait_until,
};

/// The message of a reload refused because startup (or another reload) holds the lifecycle.
const BUSY: &str = "conductor is starting its services or applying another reload; reload \
                    again once it is done";

/// How long `up --watch` may take to apply an edit here: "within a second" is the goal, with
/// room for a loaded machine; the measured latency is in the assertion messages.
const WATCH_DEADLINE: Duration = Duration::from_secs(5);

/// A `[services.<name>]` table running fake-service, with `extra` lines.
fn fake(name: &str, port: u16, extra: &str) -> String {
    format!(
        "\n[services.{name}]\nport = {port}\ncommand = {bin}\n{extra}\n",
        bin = fake_service()
    )
}

/// A running service's process, pinned by its start time.
fn running_proc(conductor: &Conductor, name: &str) -> Proc {
    let pid = running_pid(&conductor.status(name));
    Proc::identify(pid).unwrap_or_else(|| panic!("{name}'s process {pid} is not in /proc"))
}

/// `name`, `status`, `pid` of every service, to compare before and after a reload.
fn fleet_view(conductor: &Conductor) -> Vec<(String, ServiceState, Option<u32>)> {
    conductor
        .statuses()
        .into_iter()
        .map(|status| (status.name, status.status, status.pid))
        .collect()
}

/// `conductor reload [--file FILE]` against `conductor`.
fn cli_reload(conductor: &Conductor, file: Option<&Path>) -> std::process::Output {
    let file = file.map(|file| file.display().to_string());
    let mut args = vec!["reload"];
    if let Some(file) = &file {
        args.extend(["--file", file.as_str()]);
    }
    conductor_cli(&conductor.data_dir, &args)
}

/// `conductor reload` that must succeed; its stdout.
fn cli_reload_ok(conductor: &Conductor, file: Option<&Path>) -> String {
    let output = cli_reload(conductor, file);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "conductor reload failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `app:reload` with `{"registry": file}`.
fn api_reload(conductor: &Conductor, file: &Path) -> Value {
    conductor.call_ok(
        "app:reload",
        &json!({"registry": file.display().to_string()}).to_string(),
    )
}

/// The value of `name` in the environment a fake-service on `port` reports.
fn env_var(port: u16, name: &str) -> Option<String> {
    get_json(port, "/env")
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Writes `text` beside the registry, then renames it over the registry, as editors save.
fn save_as_editors_do(dir: &TempDir, text: &str) -> Instant {
    let staged = dir.write("conductor.toml.swp", text);
    let target = dir.join("conductor.toml");
    std::fs::rename(&staged, &target).unwrap_or_else(|error| {
        panic!(
            "cannot rename {} over {}: {error}",
            staged.display(),
            target.display()
        )
    });
    Instant::now()
}

#[test]
fn a_reload_restarts_the_changed_starts_the_added_stops_the_removed_and_leaves_the_rest() {
    let dir = TempDir::new("reload-four");
    let tag = unique_tag("reload-four");
    let _cleanup = KillTagged(tag.clone());
    let [same_port, changed_port, removed_port, added_port] = free_ports();
    // `removed` backgrounds a `setsid sleep`, which leaves its process group and session:
    // only a stop of the whole tree ends it.
    let removed = format!(
        r#"
[services.removed]
port = {removed_port}
command = "/bin/sh"
args = ["-c", "setsid sleep 1000 & exec \"$0\"", {bin}]
env = {{ TEST_TAG = {tag} }}
"#,
        bin = fake_service(),
        tag = toml_string(&tag),
    );
    let head = registry_head("ReloadFour");
    let same = fake("same", same_port, "");
    let before = format!(
        "{head}{same}{}{removed}",
        fake("changed", changed_port, r#"env = { MODE = "before" }"#)
    );
    let after = format!(
        "{head}{same}{}{}",
        fake("changed", changed_port, r#"env = { MODE = "after" }"#),
        fake("added", added_port, r#"depends_on = ["same"]"#)
    );
    let conductor = Conductor::start(&dir, &before);
    let same_proc = running_proc(&conductor, "same");
    let changed_proc = running_proc(&conductor, "changed");
    let removed_leader = running_pid(&conductor.status("removed"));
    assert_eq!(env_var(changed_port, "MODE").as_deref(), Some("before"));
    let sleeper = wait_until(DEADLINE, "removed's setsid sleeper", || {
        let found = tagged(&tag);
        found
            .iter()
            .copied()
            .find(|&pid| {
                pid != removed_leader
                    && conductor_test_support::process::stat(pid)
                        .is_some_and(|stat| stat.session == pid)
            })
            .ok_or_else(|| format!("tagged: {}", describe_pids(&found)))
    });
    conductor.track(sleeper);
    let sleeper = Proc::identify(sleeper).expect("the sleeper was just seen");

    let mut events = EventStream::open(&conductor, false);
    dir.write("conductor.toml", &after);
    let stdout = cli_reload_ok(&conductor, None);
    insta::assert_snapshot!("four_services_reloaded", stdout);

    let names: Vec<String> = conductor.statuses().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["same", "changed", "added"], "services:get-all");
    assert_eq!(
        running_proc(&conductor, "same"),
        same_proc,
        "the untouched service was restarted"
    );
    let new_changed = running_proc(&conductor, "changed");
    assert_ne!(
        new_changed, changed_proc,
        "the changed service kept its process"
    );
    assert_eq!(
        changed_proc.live_state(),
        None,
        "the old `changed` still runs"
    );
    assert_eq!(env_var(changed_port, "MODE").as_deref(), Some("after"));
    assert_eq!(
        env_var(changed_port, "SERVICE_NAME").as_deref(),
        Some("changed")
    );
    running_pid(&conductor.status("added"));
    assert_eq!(
        env_var(added_port, "SERVICE_NAME").as_deref(),
        Some("added")
    );
    // `conductor reload` returned once the removed tree was stopped: nothing of it is left.
    assert!(
        tagged(&tag).is_empty(),
        "removed's tree outlived the reload: {}",
        describe_pids(&tagged(&tag))
    );
    assert_eq!(sleeper.live_state(), None, "the setsid sleeper survived");

    // Everything the reload caused is published before `app:reloaded`.
    let seen = events.until("app:reloaded", |event| event.name == "app:reloaded");
    let reloaded = &seen[seen.len() - 1].data;
    assert_eq!(
        reloaded,
        &json!({"added": ["added"], "removed": ["removed"], "changed": ["changed"],
                "unchanged": ["same"]}),
    );
    let status_events_of = |name: &str| {
        seen.iter()
            .filter(|event| {
                event.name == "service:status-changed" && event.data["serviceName"] == name
            })
            .count()
    };
    assert_eq!(
        status_events_of("same"),
        0,
        "the untouched service emitted status events: {seen:#?}"
    );
    // The stream does carry the others' transitions, so the zero above means something.
    for name in ["changed", "removed", "added"] {
        assert!(
            status_events_of(name) > 0,
            "no status event for {name}: {seen:#?}"
        );
    }
}

#[test]
fn an_invalid_or_refused_registry_changes_nothing_and_says_why() {
    let dir = TempDir::new("reload-invalid");
    let [records_port, export_port] = free_ports();
    let head = registry_head("ReloadInvalid");
    let records = fake("records", records_port, "");
    let export = fake("export", export_port, r#"depends_on = ["records"]"#);
    let good = format!("{head}{records}{export}");
    let conductor = Conductor::start(&dir, &good);
    let before = fleet_view(&conductor);
    let procs = [
        running_proc(&conductor, "records"),
        running_proc(&conductor, "export"),
    ];
    let mut events = EventStream::open(&conductor, false);
    let control_port = conductor
        .addr()
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in the control API's address {}", conductor.addr()));

    let cases = [
        (
            "syntax error",
            good.replace("[services.export]", "[services.export"),
            "invalid TOML",
        ),
        (
            "dependency cycle",
            format!(
                "{head}{}{export}",
                fake("records", records_port, r#"depends_on = ["export"]"#)
            ),
            "dependency cycle: ",
        ),
        (
            "duplicate port",
            format!(
                "{head}{records}{}",
                fake("export", records_port, r#"depends_on = ["records"]"#)
            ),
            "is also used by \"records\"",
        ),
        (
            "[database] path changed",
            format!(
                "{head}[database]\npath = {}\n{records}{export}",
                toml_path(&dir.join("elsewhere.db"))
            ),
            "[database] changed: a reload never reopens the database or runs migrations; \
             restart conductor to apply it",
        ),
        (
            "the control API's port for a service",
            format!(
                "{head}{records}{}",
                fake("export", control_port, r#"depends_on = ["records"]"#)
            ),
            "services.export.port is [IPC_PORT], the port of the control API; choose another port",
        ),
    ];
    let mut report = String::new();
    for (case, text, expected) in &cases {
        let expected = &expected.replace("[IPC_PORT]", &control_port.to_string());
        let file = dir.write(
            &format!("{}.toml", case.replace([' ', '[', ']', '\''], "-")),
            text,
        );
        let output = cli_reload(&conductor, Some(&file));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{case}: conductor reload must exit 1:\n{stdout}{stderr}"
        );
        assert!(
            stderr.contains("reload not applied; nothing changed:") && stderr.contains(expected),
            "{case}: no {expected:?} in:\n{stderr}"
        );
        let answer = api_reload(&conductor, &file);
        assert_eq!(answer["success"], json!(false), "{case}: {answer}");
        let errors: Vec<&str> = answer["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: app:reload answered no errors: {answer}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            errors.iter().any(|error| error.contains(expected)),
            "{case}: app:reload errors {errors:?} lack {expected:?}"
        );
        // The CLI prints every error app:reload returns.
        for error in &errors {
            assert!(
                stderr.contains(error),
                "{case}: {error:?} not in:\n{stderr}"
            );
        }
        for list in ["added", "removed", "changed", "unchanged"] {
            assert_eq!(answer[list], json!([]), "{case}: {answer}");
        }
        report.push_str(&format!("--- {case} (exit 1)\n{stderr}"));
        assert_eq!(fleet_view(&conductor), before, "{case} changed the fleet");
    }
    let report = report
        .replace(&control_port.to_string(), "[IPC_PORT]")
        .replace(&records_port.to_string(), "[RECORDS_PORT]")
        .replace(&export_port.to_string(), "[EXPORT_PORT]");
    insta::assert_snapshot!("invalid_and_refused_reloads", report);

    // A no-op reload marks where the stream has caught up: nothing came before it.
    let stdout = cli_reload_ok(&conductor, None);
    assert!(
        stdout.contains("unchanged records, export"),
        "a reload of the same file changed something:\n{stdout}"
    );
    let seen = events.until("app:reloaded", |event| event.name == "app:reloaded");
    let noise: Vec<_> = seen
        .iter()
        .filter(|event| event.name != "app:metrics")
        .collect();
    assert_eq!(
        noise.len(),
        1,
        "the refused reloads published events: {noise:#?}"
    );
    assert_eq!(fleet_view(&conductor), before);
    for process in procs {
        assert!(process.live_state().is_some(), "{process:?} was replaced");
    }
}

/// The health table of the service `probed` with its interval.
fn probed(port: u16, interval: &str) -> String {
    fake(
        "probed",
        port,
        &format!(
            r#"health = {{ kind = "http", path = "/health", interval = "{interval}", timeout = "2s", failure_threshold = 3 }}"#
        ),
    )
}

/// When `probed`'s last health probe finished, as `services:get-all` reports it.
fn last_check(conductor: &Conductor) -> Option<SystemTime> {
    let status = conductor.status("probed");
    let text = status.last_health_check?;
    Some(
        humantime::parse_rfc3339(&text)
            .unwrap_or_else(|error| panic!("lastHealthCheck {text:?} is not RFC 3339: {error}")),
    )
}

#[test]
fn a_health_interval_change_retunes_the_probes_without_a_restart() {
    let dir = TempDir::new("reload-probe");
    let [port] = free_ports();
    let head = registry_head("ReloadProbe");
    let conductor = Conductor::start(&dir, &format!("{head}{}", probed(port, "5s")));
    let process = running_proc(&conductor, "probed");
    let first = wait_until(DEADLINE, "a first health check", || last_check(&conductor));

    // With a 5 s interval no probe follows the readiness check for a while: looked at every
    // 50 ms over a window in which nothing may happen (the pause waits for nothing).
    let window = Instant::now();
    while window.elapsed() < Duration::from_millis(1200) {
        assert_eq!(
            last_check(&conductor),
            Some(first),
            "a probe came within {:?} of the last one at interval 5s",
            window.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    dir.write(
        "conductor.toml",
        &format!("{head}{}", probed(port, "300ms")),
    );
    let stdout = cli_reload_ok(&conductor, None);
    assert!(stdout.contains("changed   probed"), "{stdout}");

    // Seven checks after the reload, six gaps; at the old interval the first alone would
    // take up to 5 s, more than this deadline.
    let mut checks: Vec<SystemTime> = Vec::new();
    wait_until(
        Duration::from_secs(4),
        "seven probes at the new interval",
        || {
            if let Some(at) = last_check(&conductor)
                && at != first
                && checks.last() != Some(&at)
            {
                checks.push(at);
            }
            if checks.len() >= 7 {
                Ok(())
            } else {
                Err(format!("{} probes so far", checks.len()))
            }
        },
    );
    let mut gaps: Vec<Duration> = checks
        .windows(2)
        .map(|pair| pair[1].duration_since(pair[0]).unwrap_or_default())
        .collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        (Duration::from_millis(150)..Duration::from_millis(1000)).contains(&median),
        "probes do not come about every 300 ms: gaps {gaps:?}"
    );
    assert_eq!(
        running_proc(&conductor, "probed"),
        process,
        "a probe-only change restarted the process"
    );
    assert_eq!(conductor.status("probed").restarts, 0);
}

#[test]
fn a_watched_registry_applies_an_edit_and_reports_a_bad_one() {
    let dir = TempDir::new("reload-watch");
    let [steady_port, tuned_port] = free_ports();
    let head = registry_head("ReloadWatch");
    let steady = fake("steady", steady_port, "");
    let registry = |mode: &str| {
        format!(
            "{head}{steady}{}",
            fake(
                "tuned",
                tuned_port,
                &format!("env = {{ MODE = \"{mode}\" }}")
            )
        )
    };
    let path = dir.write("conductor.toml", &registry("before"));
    let mut conductor = Conductor::spawn(&path, &dir.join("data"), &["--watch"]);
    conductor.wait_up();
    wait_until(DEADLINE, "the watch to be set up", || {
        conductor.stdout().contains("  watching ")
    });
    let steady_proc = running_proc(&conductor, "steady");
    let tuned_proc = running_proc(&conductor, "tuned");

    let saved = save_as_editors_do(&dir, &registry("after"));
    let tuned = wait_until(WATCH_DEADLINE, "the edit to be applied", || {
        let status = conductor.status("tuned");
        match (status.status, status.pid) {
            (ServiceState::Running, Some(pid)) if pid != tuned_proc.pid => Ok(pid),
            _ => Err(format!("{status:?}")),
        }
    });
    let latency = saved.elapsed();
    assert_eq!(
        env_var(tuned_port, "MODE").as_deref(),
        Some("after"),
        "tuned runs under a new pid {tuned} {latency:?} after the save, but not its new env"
    );
    wait_until(DEADLINE, "the reload line", || {
        conductor.stdout().contains(
            "✓ Reloaded (file changed): added none; removed none; changed tuned; 1 unchanged",
        )
    });
    let tuned_proc = running_proc(&conductor, "tuned");
    assert_eq!(
        running_proc(&conductor, "steady"),
        steady_proc,
        "the edit restarted steady too (applied {latency:?} after the save)"
    );

    let mut events = EventStream::open(&conductor, false);
    let saved = save_as_editors_do(
        &dir,
        &registry("broken").replace("[services.tuned]", "[services.tuned"),
    );
    wait_until(WATCH_DEADLINE, "the bad edit to be reported", || {
        conductor
            .stderr()
            .contains("✗ Reload (file changed) not applied; the fleet runs on unchanged:")
    });
    let latency = saved.elapsed();
    let stderr = conductor.stderr();
    assert!(
        stderr.contains("invalid TOML: unclosed table"),
        "reported {latency:?} after the save, without the problem:\n{stderr}"
    );
    let seen = events.until("app:reload-failed", |event| {
        event.name == "app:reload-failed"
    });
    let failed = &seen[seen.len() - 1].data;
    let errors = failed["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.len() == 1
            && errors[0]
                .as_str()
                .is_some_and(|e| e.contains("invalid TOML")),
        "app:reload-failed: {failed}"
    );
    assert_eq!(
        conductor.try_exit(),
        None,
        "conductor exited after a bad edit"
    );
    for (name, port, process) in [
        ("steady", steady_port, steady_proc),
        ("tuned", tuned_port, tuned_proc),
    ] {
        assert_eq!(
            running_proc(&conductor, name),
            process,
            "{name} was touched"
        );
        let addr = format!("127.0.0.1:{port}");
        let health = http(&addr, &format!("GET /health HTTP/1.1\r\nHost: {addr}"), b"");
        assert_eq!(
            health.status, 200,
            "{name} stopped answering: {}",
            health.body
        );
    }
    assert_eq!(env_var(tuned_port, "MODE").as_deref(), Some("after"));
}

/// A fleet whose startup is held up for as long as the test wants: `quick` (fake-service)
/// runs, `slow` waits for the file `gate` before it execs fake-service. A gate rather than
/// `FAKE_START_DELAY_MS`: a fixed delay either makes the test slow or lets startup end
/// before the reload arrives on a loaded machine.
struct Gated {
    /// Dropped first, while its data dir still exists (its guard reads the run-state).
    conductor: Conductor,
    /// `quick`'s process during startup.
    quick: Proc,
    ports: [u16; 2],
    head: String,
    tag: String,
    _cleanup: KillTagged,
    dir: TempDir,
}

impl Gated {
    /// Starts the fleet with `MODE = "before"` for `quick` and returns once `quick` runs and
    /// `slow` is spawned and not ready.
    fn start(app: &str) -> Gated {
        let dir = TempDir::new(app);
        let tag = unique_tag(app);
        let cleanup = KillTagged(tag.clone());
        let ports = free_ports();
        let head = registry_head(app);
        let path = dir.write(
            "conductor.toml",
            &gated_registry(&head, ports, &dir, "before", &tag),
        );
        let mut conductor = Conductor::spawn(&path, &dir.join("data"), &[]);
        conductor.wait_control_api();
        conductor.wait_status("quick", "running", |s| s.status == ServiceState::Running);
        let slow = conductor.wait_status("slow", "spawned and not ready", |s| {
            s.status == ServiceState::Starting && s.pid.is_some()
        });
        if let Some(pid) = slow.pid {
            conductor.track(pid);
        }
        assert!(
            !conductor.stdout().contains("✓ All services ready"),
            "startup is already over:\n{}",
            conductor.output()
        );
        Gated {
            quick: running_proc(&conductor, "quick"),
            conductor,
            ports,
            head,
            tag,
            _cleanup: cleanup,
            dir,
        }
    }

    /// The registry with `MODE = "<mode>"` for `quick`.
    fn registry(&self, mode: &str) -> String {
        gated_registry(&self.head, self.ports, &self.dir, mode, &self.tag)
    }

    /// Lets `slow` start and waits for startup to end.
    fn open(&mut self) {
        self.dir.write("gate", "");
        self.conductor.wait_up();
    }
}

fn gated_registry(
    head: &str,
    [quick, slow]: [u16; 2],
    dir: &TempDir,
    mode: &str,
    tag: &str,
) -> String {
    format!(
        r#"{head}{quick_table}
[services.slow]
port = {slow}
command = "/bin/sh"
args = ["-c", "while [ ! -e \"$GATE\" ]; do sleep 0.02; done; exec \"$0\"", {bin}]
env = {{ GATE = {gate}, TEST_TAG = {tag} }}
"#,
        quick_table = fake(
            "quick",
            quick,
            &format!(
                "env = {{ MODE = \"{mode}\", TEST_TAG = {} }}",
                toml_string(tag)
            )
        ),
        bin = fake_service(),
        gate = toml_path(&dir.join("gate")),
        tag = toml_string(tag),
    )
}

#[test]
fn a_reload_during_startup_is_refused_and_succeeds_once_the_fleet_runs() {
    let mut gated = Gated::start("ReloadStartup");
    let quick = gated.quick;
    let new_file = gated.dir.write("new.toml", &gated.registry("after"));
    let conductor = &gated.conductor;

    let answer = api_reload(conductor, &new_file);
    assert_eq!(
        answer,
        json!({"success": false, "added": [], "removed": [], "changed": [], "unchanged": [],
               "errors": [BUSY]}),
    );
    let output = cli_reload(conductor, Some(&new_file));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("reload not applied; nothing changed:\n  {BUSY}")),
        "{stderr}"
    );
    assert_eq!(running_proc(conductor, "quick"), quick, "quick was touched");
    assert_eq!(env_var(gated.ports[0], "MODE").as_deref(), Some("before"));
    assert_eq!(conductor.status("slow").status, ServiceState::Starting);

    gated.open();
    let conductor = &gated.conductor;
    let answer = api_reload(conductor, &new_file);
    assert_eq!(
        answer,
        json!({"success": true, "added": [], "removed": [], "changed": ["quick"],
               "unchanged": ["slow"]}),
    );
    assert_ne!(running_proc(conductor, "quick"), quick);
    assert_eq!(quick.live_state(), None, "the old quick still runs");
    assert_eq!(env_var(gated.ports[0], "MODE").as_deref(), Some("after"));
}

#[test]
fn a_sighup_during_startup_is_applied_once_the_fleet_runs() {
    let mut gated = Gated::start("ReloadSighup");
    let quick = gated.quick;
    gated.dir.write("conductor.toml", &gated.registry("after"));
    gated.conductor.signal(libc::SIGHUP);
    // Still starting, and still the same quick: the SIGHUP waits for startup to end.
    assert_eq!(gated.conductor.try_exit(), None, "SIGHUP ended conductor");
    assert_eq!(
        gated.conductor.status("slow").status,
        ServiceState::Starting
    );
    assert_eq!(running_proc(&gated.conductor, "quick"), quick);

    gated.open();
    let conductor = &gated.conductor;
    wait_until(DEADLINE, "the SIGHUP's reload", || {
        conductor
            .stdout()
            .contains("✓ Reloaded (SIGHUP): added none; removed none; changed quick; 1 unchanged")
    });
    assert_ne!(running_proc(conductor, "quick"), quick);
    assert_eq!(env_var(gated.ports[0], "MODE").as_deref(), Some("after"));
    let stderr = conductor.stderr();
    assert!(
        !stderr.contains("not applied"),
        "the SIGHUP was tried during startup:\n{stderr}"
    );
}
