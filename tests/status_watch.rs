//! End-to-end tests of issue 14's `conductor status --watch`: in a real terminal (a tmux pane)
//! it draws the table with its CPU and MEM columns, redraws it in place every metrics interval
//! and quits on `q` and on Ctrl-C with exit code 0; with stdout piped it prints the plain
//! table again each interval, without a terminal escape.
//!
//! tmux is required, not optional: without it the terminal tests fail saying how to install
//! it. Each tmux runs its own server (`-S <socket in the test's temp dir>`), killed with the
//! test, and carries a `TEST_TAG` so that a server that outlived `kill-server` is killed too.
//! What is sampled is `metrics.rs`'s to test.

pub mod support;

use support::{
    CliProcess, Conductor, DEADLINE, TaggedDir, TempDir, free_ports, python_service, registry_head,
    tmux::Tmux, wait_until,
};

/// Does nothing until killed.
const IDLE: &str = "import time\ntime.sleep(1000)\n";

/// A conductor running one idle python3 service, `idle`, sampled every 500 ms.
fn conductor_with_idle_service(dir: &TempDir, tag: &str) -> Conductor {
    let idle = dir.write("idle.py", IDLE);
    let [port] = free_ports();
    let registry = format!(
        "{head}metrics_interval = \"500ms\"\n{service}",
        head = registry_head("WatchTest"),
        service = python_service("idle", port, &idle, &[], tag),
    );
    Conductor::start(dir, &registry)
}

/// `conductor status --watch` in a tmux pane, followed by `WATCH-EXITED <its exit code>`,
/// watching a conductor with one idle service. Dropped in field order: the terminal, then
/// conductor, then the tagged processes and the temp dir (which holds tmux's socket).
struct WatchInTmux {
    tmux: Tmux,
    _conductor: Conductor,
    _scope: TaggedDir,
}

impl WatchInTmux {
    /// Starts it and waits for its first complete frame, which it returns too.
    fn start(name: &str) -> (WatchInTmux, String) {
        let scope = TaggedDir::new(name);
        let conductor = conductor_with_idle_service(&scope.dir, &scope.tag);
        let script = r#""$0" status --watch --data-dir "$1"; echo WATCH-EXITED $?; exec sleep 30"#;
        let data_dir = conductor.data_dir.display().to_string();
        let tmux = Tmux::run(
            &scope.dir,
            &format!("{}-tmux", scope.tag),
            &[
                "bash",
                "-c",
                script,
                env!("CARGO_BIN_EXE_conductor"),
                &data_dir,
            ],
        );
        let first = wait_first_frame(&tmux);
        let watch = WatchInTmux {
            tmux,
            _conductor: conductor,
            _scope: scope,
        };
        (watch, first)
    }

    /// Types `keys` (tmux key names: `q`, `C-c`) and asserts that the watch ends with exit
    /// code 0.
    fn assert_quits_on(&self, keys: &str) {
        self.tmux.send_keys(keys);
        let screen = self
            .tmux
            .wait_for(&format!("the watch to exit on {keys}"), "WATCH-EXITED");
        assert!(
            screen.contains("WATCH-EXITED 0"),
            "{keys} did not end the watch with exit code 0:\n{screen}"
        );
    }
}

/// The line above the table: `<time to the second>  every 500ms  (q to quit)`.
fn clock_lines(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter(|line| line.contains("(q to quit)"))
        .collect()
}

fn header_lines(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter(|line| line.starts_with("SERVICE "))
        .collect()
}

/// Waits until the table shows `idle` with a CPU and a memory figure (its first sample).
fn wait_first_frame(tmux: &Tmux) -> String {
    wait_until(DEADLINE, "the watch to show idle's CPU and MEM", || {
        let screen = tmux.capture();
        let header = header_lines(&screen);
        let row = screen.lines().find(|line| line.starts_with("idle "));
        let complete = header
            .first()
            .is_some_and(|header| header.contains(" CPU ") && header.contains(" MEM "))
            && row.is_some_and(|row| row.contains('%') && row.contains("MB"));
        if complete {
            Ok(screen)
        } else {
            Err(format!("the pane shows:\n{screen}"))
        }
    })
}

#[test]
fn status_watch_in_a_terminal_redraws_in_place_and_quits_on_q() {
    let (watch, first) = WatchInTmux::start("watch-q");
    let tmux = &watch.tmux;
    let first_clock = clock_lines(&first).first().map(|line| line.to_string());
    assert!(
        first_clock.is_some(),
        "no clock line above the table:\n{first}"
    );
    // In place: a later frame replaces the first instead of scrolling below it, so the screen
    // holds one clock line and one header, whatever the number of frames drawn.
    wait_until(DEADLINE, "a redraw in place (a new clock line)", || {
        let screen = tmux.capture();
        let clocks = clock_lines(&screen);
        let redrawn = clocks.len() == 1
            && header_lines(&screen).len() == 1
            && Some(clocks[0].to_string()) != first_clock;
        if redrawn {
            Ok(())
        } else {
            Err(format!("the pane shows:\n{screen}"))
        }
    });

    watch.assert_quits_on("q");
}

#[test]
fn status_watch_in_a_terminal_quits_on_ctrl_c() {
    let (watch, _) = WatchInTmux::start("watch-ctrl-c");
    watch.assert_quits_on("C-c");
}

#[test]
fn status_watch_into_a_pipe_prints_the_plain_table_each_interval() {
    let scope = TaggedDir::new("watch-pipe");
    let (dir, tag) = (&scope.dir, scope.tag.as_str());
    let conductor = conductor_with_idle_service(dir, tag);
    let watch = CliProcess::spawn(&conductor.data_dir, &["status", "--watch"]);

    let output = wait_until(DEADLINE, "three tables showing idle's CPU and MEM", || {
        let output = watch.stdout();
        let n_tables = output
            .lines()
            .filter(|line| line.starts_with("idle ") && line.contains('%'))
            .count();
        if n_tables >= 3 {
            Ok(output)
        } else {
            Err(format!("stdout so far:\n{output}"))
        }
    });
    assert!(
        !output.contains('\x1b'),
        "terminal escapes written into a pipe:\n{output:?}"
    );
    // Each table: a timestamp line, the header, the row, a blank line.
    let headers = header_lines(&output);
    assert!(
        headers.len() >= 3
            && headers
                .iter()
                .all(|header| header.contains(" CPU ") && header.contains(" MEM ")),
        "{output}"
    );
    let clocks: Vec<&str> = output
        .lines()
        .zip(output.lines().skip(1))
        .filter(|(_, next)| next.starts_with("SERVICE "))
        .map(|(clock, _)| clock)
        .collect();
    assert!(
        clocks.len() == headers.len()
            && clocks
                .iter()
                .all(|clock| humantime::parse_rfc3339(clock).is_ok()),
        "each table is not preceded by its time:\n{output}"
    );

    watch.signal(libc::SIGINT);
    let exit = watch.wait_exit();
    assert_eq!(
        exit.status.code(),
        Some(0),
        "Ctrl-C did not end the watch with exit code 0: {exit:?}"
    );
}

/// Requests that wait, unread, in the receive queue of a socket of `port` on 127.0.0.1 (from
/// `/proc/net/tcp`): a conductor that is stopped still has the kernel take them in.
fn unread_requests(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1).and_then(|local| local.rsplit(':').next());
            let rx_queue = fields.get(4).and_then(|queues| queues.rsplit(':').next());
            local_port.and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port)
                && rx_queue.and_then(|q| usize::from_str_radix(q, 16).ok()) > Some(0)
        })
        .count()
}

/// The Ctrl-C comes while the watch waits for its `services:get-all` (conductor is stopped
/// with SIGSTOP until it has arrived): it must still end the watch once the answer is in.
#[test]
fn issue_14_status_watch_quits_on_a_ctrl_c_that_comes_while_a_table_is_fetched() {
    let scope = TaggedDir::new("watch-ctrl-c-fetch");
    let (dir, tag) = (&scope.dir, scope.tag.as_str());
    let conductor = conductor_with_idle_service(dir, tag);
    let port: u16 = match conductor.addr().rsplit(':').next().map(str::parse) {
        Some(Ok(port)) => port,
        _ => panic!("no port in {}", conductor.addr()),
    };
    let watch = CliProcess::spawn(&conductor.data_dir, &["status", "--watch"]);
    wait_until(DEADLINE, "the first table", || {
        watch.stdout().lines().any(|line| line.starts_with("idle "))
    });

    conductor.signal(libc::SIGSTOP);
    // Resumed however the test ends: a stopped conductor must not outlive a failure here.
    struct Resume<'a>(&'a Conductor);
    impl Drop for Resume<'_> {
        fn drop(&mut self) {
            self.0.signal(libc::SIGCONT);
        }
    }
    let resume = Resume(&conductor);
    wait_until(DEADLINE, "the watch's next request to wait unread", || {
        unread_requests(port) > 0
    });
    watch.signal(libc::SIGINT);
    drop(resume);
    let exit = watch.wait_exit();
    assert_eq!(
        exit.status.code(),
        Some(0),
        "a Ctrl-C during a fetch did not end the watch: {exit:?}"
    );
}
