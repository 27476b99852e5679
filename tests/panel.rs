//! End-to-end tests of issue 16's ways to the debug panel: `conductor up` ends its startup
//! with the panel's address (its token only on a terminal: captured stdout goes into launcher
//! logs), and `conductor open` prints the link and hands it to the platform's opener through a
//! file only its user can read. The page itself is tested in a real browser
//! (`tests/browser/panel.test.mjs`), its HTTP in `crates/ipc/tests/control_api_panel.rs`.

pub mod support;

use std::{
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Command, Output, Stdio},
};

use support::{
    Conductor, DEADLINE, TaggedDir, TempDir, fake_service, free_ports, registry_head, tmux::Tmux,
    wait_until,
};

/// A registry of one fake service tagged `tag`.
fn one_service(tag: &str) -> String {
    let [port] = free_ports();
    format!(
        "{head}\n[services.records]\nport = {port}\ncommand = {binary}\n\
         env = {{ FAKE_REQUIRE_DB = \"0\", TEST_TAG = \"{tag}\" }}\n",
        head = registry_head("PanelTest"),
        binary = fake_service(),
    )
}

/// `conductor open --data-dir <data_dir> <args>` with `env` set and `unset` removed, run to
/// completion.
fn open(data_dir: &Path, args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_conductor"));
    command
        .arg("open")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    for name in unset {
        command.env_remove(name);
    }
    match command.output() {
        Ok(output) => output,
        Err(error) => panic!("cannot run conductor open: {error}"),
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn up_ends_its_startup_with_the_panel_address_and_keeps_the_token_out_of_a_pipe() {
    let scope = TaggedDir::new("panel-up-pipe");
    let conductor = Conductor::start(&scope.dir, &one_service(&scope.tag));
    let token = conductor.info().token.clone();
    let line = wait_until(DEADLINE, "the panel line", || {
        let out = conductor.stdout();
        match out
            .lines()
            .find(|line| line.trim_start().starts_with("panel: "))
        {
            Some(line) => Ok(line.to_owned()),
            None => Err(format!("stdout so far:\n{out}")),
        }
    });
    let out = conductor.stdout();
    assert_eq!(
        out.lines().last(),
        Some(line.as_str()),
        "the panel line is the last startup line:\n{out}"
    );
    assert!(
        line.contains(&format!("{}/", conductor.info().url)),
        "{line}"
    );
    assert!(
        !out.contains(&token),
        "the token was printed into a pipe:\n{out}"
    );
    assert!(
        line.contains("conductor open --data-dir"),
        "it says how to get the link: {line}"
    );
}

#[test]
fn up_in_a_terminal_prints_the_panel_link_with_its_token() {
    let scope = TaggedDir::new("panel-up-tty");
    let (dir, tag) = (&scope.dir, scope.tag.as_str());
    let registry = dir.write("conductor.toml", &one_service(tag));
    let data = dir.join("data");
    let script = r#""$0" up --registry "$1" --data-dir "$2"; echo UP-EXITED $?; exec sleep 30"#;
    let registry_arg = registry.display().to_string();
    let data_arg = data.display().to_string();
    let tmux = Tmux::run(
        dir,
        &format!("{tag}-tmux"),
        &[
            "bash",
            "-c",
            script,
            env!("CARGO_BIN_EXE_conductor"),
            &registry_arg,
            &data_arg,
        ],
    );
    let screen = tmux.wait_for("the panel line", "panel: http://");
    let info = conductor_ipc::read_info(&data).expect("ipc.json is written before the panel line");
    let expected = format!("panel: {}/#token={}", info.url, info.token);
    assert!(
        screen.lines().any(|line| line.trim() == expected),
        "expected {expected:?} on the screen:\n{screen}"
    );
    tmux.send_keys("C-c");
    let screen = tmux.wait_for("conductor to exit", "UP-EXITED");
    assert!(screen.contains("UP-EXITED 0"), "{screen}");
}

/// The opener stand-in: records its arguments and the mode of the file it was given.
const OPENER: &str = "#!/bin/sh\n\
     printf '%s\\n' \"$@\" > \"$OPENER_RECORD.tmp\"\n\
     stat -c %a \"$1\" >> \"$OPENER_RECORD.tmp\"\n\
     mv \"$OPENER_RECORD.tmp\" \"$OPENER_RECORD\"\n";

#[test]
fn open_prints_the_link_and_hands_it_to_the_opener_in_a_private_file() {
    let scope = TaggedDir::new("panel-open");
    let dir = &scope.dir;
    let conductor = Conductor::start(dir, &one_service(&scope.tag));
    let info = conductor.info().clone();
    let url = format!("{}/#token={}", info.url, info.token);

    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("a bin dir");
    let opener = bin.join("xdg-open");
    std::fs::write(&opener, OPENER).expect("the opener is written");
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755))
        .expect("the opener is executable");
    let record = dir.join("opener-record");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let record_arg = record.display().to_string();
    let output = open(
        &conductor.data_dir,
        &[],
        &[
            ("PATH", &path),
            ("DISPLAY", ":99"),
            ("OPENER_RECORD", &record_arg),
        ],
        &["WAYLAND_DISPLAY"],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output).lines().next(),
        Some(url.as_str()),
        "{output:?}"
    );

    let recorded = wait_until(DEADLINE, "the opener to run", || {
        std::fs::read_to_string(&record).map_err(|error| error.to_string())
    });
    let lines: Vec<&str> = recorded.lines().collect();
    assert_eq!(lines.len(), 2, "one argument, then its mode: {recorded:?}");
    assert!(
        !lines[0].contains(&info.token),
        "the token is on the opener's command line: {recorded:?}"
    );
    assert_eq!(
        lines[1], "600",
        "the file handed over is not private: {recorded:?}"
    );
    let page = std::fs::read_to_string(lines[0]).expect("the handed-over file exists");
    assert!(
        page.contains(&url),
        "it sends the browser to the panel: {page}"
    );

    // Without a display nothing is started: it prints the link and says so.
    std::fs::remove_file(&record).expect("the record is removed");
    let headless = open(
        &conductor.data_dir,
        &[],
        &[("PATH", &path), ("OPENER_RECORD", &record_arg)],
        &["DISPLAY", "WAYLAND_DISPLAY"],
    );
    assert!(headless.status.success(), "{headless:?}");
    assert_eq!(stdout(&headless).lines().next(), Some(url.as_str()));
    assert!(stdout(&headless).contains("no display"), "{headless:?}");
    let printed_only = open(
        &conductor.data_dir,
        &["--no-browser"],
        &[("DISPLAY", ":99")],
        &[],
    );
    assert_eq!(
        stdout(&printed_only),
        format!("{url}\n"),
        "{printed_only:?}"
    );
    assert!(
        !record.exists(),
        "an opener ran without a display or with --no-browser"
    );
}

#[test]
fn open_without_a_running_conductor_says_so() {
    let dir = TempDir::new("panel-open-none");
    let nothing = open(&dir.join("data"), &["--no-browser"], &[], &[]);
    assert_eq!(nothing.status.code(), Some(1), "{nothing:?}");
    let stderr = String::from_utf8_lossy(&nothing.stderr);
    assert!(stderr.contains("no conductor is running for"), "{stderr}");

    // An ipc.json left by a conductor that was killed names an address nobody answers on.
    let data = dir.join("stale");
    std::fs::create_dir_all(&data).expect("a data dir");
    let [port] = free_ports();
    std::fs::write(
        data.join("ipc.json"),
        format!(r#"{{"url":"http://127.0.0.1:{port}","token":"abc","pid":1}}"#),
    )
    .expect("ipc.json is written");
    let stale = open(&data, &["--no-browser"], &[], &[]);
    assert_eq!(stale.status.code(), Some(1), "{stale:?}");
    let stderr = String::from_utf8_lossy(&stale.stderr);
    assert!(
        stderr.contains("does not answer") && stderr.contains("is it still running"),
        "{stderr}"
    );
    assert!(
        stale.stdout.is_empty(),
        "a dead link was printed: {stale:?}"
    );
}
