//! End-to-end tests of `conductor up --exit-with-parent` and `--exit-on-stdin-close` (issue
//! 17): the app's main process that started conductor is SIGKILLed, or closes the pipe it
//! holds, and conductor stops its whole fleet gracefully and exits, leaving nothing behind.
//!
//! Every process of a test (the python3 parent, conductor, the services and a `setsid`
//! descendant) carries the test's `TEST_TAG`, so a guard kills whatever is left even when the
//! test panics.

pub mod support;

use std::{
    io::Read,
    path::Path,
    process::{Command, Stdio},
};

use support::{
    DEADLINE, TaggedDir, conductor_cli, fake_service, free_ports, is_gone, registry_head, tagged,
    toml_string, wait_until,
};

/// One plain service and one that leaves a `setsid sleep` outside its process group.
fn registry(tag: &str, [plain, loner]: [u16; 2]) -> String {
    format!(
        r#"{head}
[services.plain]
port = {plain}
command = {bin}
env = {{ TEST_TAG = {tag} }}

[services.loner]
port = {loner}
command = "/bin/sh"
args = ["-c", "setsid sleep 1000 & exec \"$0\"", {bin}]
env = {{ TEST_TAG = {tag} }}
"#,
        head = registry_head("ExitWithParentTest"),
        bin = fake_service(),
        tag = toml_string(tag),
    )
}

/// Waits until `conductor status` answers with both services running.
fn wait_running(data_dir: &Path, output: &Path) {
    wait_until(DEADLINE, "both services running", || {
        let status = conductor_cli(data_dir, &["status", "--json"]);
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        let running = text.matches("\"running\"").count();
        if status.status.success() && running == 2 {
            Ok(())
        } else {
            Err(format!(
                "status: {text}; conductor printed: {}",
                std::fs::read_to_string(output).unwrap_or_default()
            ))
        }
    });
}

/// Where the parent sends conductor's output.
enum Output {
    /// A file the test reads afterwards.
    File,
    /// Pipes the parent holds and never reads, as an Electron main process does: once it is
    /// killed, every line conductor prints while stopping meets a closed pipe.
    Pipes,
}

/// Starts conductor under a python3 parent, SIGKILLs the parent, and waits until conductor and
/// its fleet are gone; returns what conductor printed (empty with [`Output::Pipes`]).
fn kill_the_parent(test: &TaggedDir, output: Output) -> String {
    let registry = test
        .dir
        .write("conductor.toml", &registry(&test.tag, free_ports()));
    let data_dir = test.dir.join("data");
    let output_file = test.dir.join("conductor.out");
    // The app's main process: starts conductor, says its pid, then only waits.
    let parent_script = r#"
import subprocess, sys
if sys.argv[1] == "pipes":
    out, err = subprocess.PIPE, subprocess.PIPE
else:
    out = open(sys.argv[1], "w")
    err = subprocess.STDOUT
child = subprocess.Popen(sys.argv[2:], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
print(child.pid, flush=True)
child.wait()
"#;
    let mut parent = Command::new("python3");
    parent.arg("-c").arg(parent_script);
    match output {
        Output::File => parent.arg(&output_file),
        Output::Pipes => parent.arg("pipes"),
    };
    let mut parent = parent
        .arg(env!("CARGO_BIN_EXE_conductor"))
        .args(["up", "--exit-with-parent", "--registry"])
        .arg(&registry)
        .arg("--data-dir")
        .arg(&data_dir)
        .env("TEST_TAG", &test.tag)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut line = String::new();
    let mut stdout = parent.stdout.take().expect("piped");
    let mut byte = [0_u8; 1];
    while stdout.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    let conductor: u32 = line
        .trim()
        .parse()
        .expect("the parent prints conductor's pid");
    wait_running(&data_dir, &output_file);
    assert!(
        tagged(&test.tag).len() >= 5,
        "parent, conductor, two services and the setsid sleeper carry the tag: {:?}",
        tagged(&test.tag)
    );

    parent.kill().expect("SIGKILL the parent");
    let _ = parent.wait();

    wait_until(
        DEADLINE,
        "conductor and every process of its fleet to be gone after its parent was killed",
        || {
            let left = tagged(&test.tag);
            if is_gone(conductor) && left.is_empty() {
                Ok(())
            } else {
                Err(format!("still alive: {left:?}"))
            }
        },
    );
    assert!(
        !data_dir.join("ipc.json").exists(),
        "ipc.json is removed by the graceful stop"
    );
    std::fs::read_to_string(&output_file).unwrap_or_default()
}

#[test]
fn a_sigkilled_parent_takes_conductor_and_every_service_with_it() {
    let test = TaggedDir::new("exit-with-parent");
    let printed = kill_the_parent(&test, Output::File);
    assert!(
        printed.contains("reason: the parent process (pid "),
        "conductor said why it stopped:\n{printed}"
    );
    assert!(printed.contains("✓ Exiting"), "a graceful stop:\n{printed}");
}

/// Regression (issue 17): `println!` panicked on EPIPE once the parent holding conductor's
/// stdout was gone, so the stop that `--exit-with-parent` began never finished.
#[test]
fn issue_17_a_parent_holding_conductors_pipes_still_gets_a_graceful_stop() {
    let test = TaggedDir::new("exit-with-parent-pipes");
    kill_the_parent(&test, Output::Pipes);
}

#[test]
fn closing_stdin_stops_conductor_gracefully() {
    let test = TaggedDir::new("exit-on-stdin-close");
    let registry = test
        .dir
        .write("conductor.toml", &registry(&test.tag, free_ports()));
    let data_dir = test.dir.join("data");
    let output = test.dir.join("conductor.out");
    let mut conductor = Command::new(env!("CARGO_BIN_EXE_conductor"))
        .args(["up", "--exit-on-stdin-close", "--registry"])
        .arg(&registry)
        .arg("--data-dir")
        .arg(&data_dir)
        .env("TEST_TAG", &test.tag)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&output).expect("output file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("conductor starts");
    wait_running(&data_dir, &output);

    drop(conductor.stdin.take());
    let status = wait_until(DEADLINE, "conductor to exit after stdin closed", || {
        conductor.try_wait().ok().flatten()
    });
    assert!(status.success(), "exit status {status}");
    wait_until(DEADLINE, "every process of the fleet to be gone", || {
        tagged(&test.tag).is_empty()
    });
    let printed = std::fs::read_to_string(&output).unwrap_or_default();
    assert!(
        printed.contains("reason: stdin was closed"),
        "conductor said why it stopped:\n{printed}"
    );
}
