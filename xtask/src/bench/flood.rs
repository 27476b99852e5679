//! The connection-flood check of `cargo xtask verify` (issue 12): the release `conductor`
//! with a real fleet, while one machine's worth of hostile clients hold 10 000 idle
//! connections and a slow-loris client trickles a request one byte at a time. Throughout,
//! an authorised `services:get-all` and a `services:restart` (a real spawn) on a fresh
//! connection must answer within 100 ms, and conductor's open descriptors must stay bounded.
//!
//! Loopback only, bounded in count (10 000 connections) and time (a few seconds of
//! flooding), and it stops by itself. Its own file limit is raised to hold the connections.

use std::{
    io::Write,
    net::TcpStream,
    path::Path,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure};
use conductor_test_support::TempDir;
use serde_json::json;

use super::{
    fleet::{self, FleetSpec},
    ms,
};

/// Connections the flood attempts.
const FLOOD_CONNECTIONS: usize = 10_000;
/// What an authorised request may take while the flood goes on.
const ANSWER_WITHIN: Duration = Duration::from_millis(100);
/// Half the usual soft file limit (1024), which conductor and its services keep: its own
/// limit on connections (256, `ipc/src/server.rs`), its other descriptors (pipes, pidfds,
/// logs, the database: about 40 here), and evicted connections whose tasks have not yet
/// been dropped, with room to spare for spawning.
const MAX_CONDUCTOR_FDS: usize = 512;

/// Runs the check against `conductor` (a release build) and `fake_service`; prints what it
/// measured.
pub(crate) fn run(conductor_binary: &Path, fake_service: &Path) -> anyhow::Result<()> {
    raise_file_limit(FLOOD_CONNECTIONS + 1_000)?;
    let work = TempDir::try_new("flood")?;
    let data_dir = work.join("data");
    let (registry, services) =
        fleet::write_registry(work.path(), &FleetSpec::plain(2), fake_service)?;
    let (mut conductor, _, _) = fleet::start_ready(conductor_binary, &registry, &data_dir)?;
    let control = conductor.control()?;
    let addr = control.addr;

    let stop = AtomicBool::new(false);
    let opened = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let mut latencies: Vec<(f64, f64)> = Vec::new();
    let mut max_fds = 0;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let flood = scope.spawn(|| {
            let mut held = Vec::with_capacity(FLOOD_CONNECTIONS);
            for _ in 0..FLOOD_CONNECTIONS {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    Ok(stream) => {
                        held.push(stream);
                        opened.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            held
        });
        let loris = scope.spawn(|| -> usize {
            let request = b"POST /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1\r\n";
            let Ok(mut stream) = TcpStream::connect(addr) else {
                return 0;
            };
            let mut sent = 0;
            for byte in request.iter().cycle() {
                if stop.load(Ordering::SeqCst) || stream.write_all(&[*byte]).is_err() {
                    break;
                }
                sent += 1;
                // The trickle itself: one byte every 20 ms, as a slow-loris client sends.
                std::thread::sleep(Duration::from_millis(20));
            }
            sent
        });

        let started = Instant::now();
        let result = (|| -> anyhow::Result<()> {
            let mut round = 0;
            while opened.load(Ordering::SeqCst) + refused.load(Ordering::SeqCst) < FLOOD_CONNECTIONS
                || round < 5
            {
                ensure!(
                    started.elapsed() < Duration::from_secs(60),
                    "the flood did not finish within 60 s"
                );
                let service = &services[round % services.len()];
                let mut client = control.connect()?;
                let sent = Instant::now();
                fleet::get_all_raw(&mut client)?;
                let get_all = sent.elapsed();
                let body = json!({ "serviceName": service.name });
                let sent = Instant::now();
                client.action("services:restart", &body)?;
                let restart = sent.elapsed();
                latencies.push((ms(get_all), ms(restart)));
                ensure!(
                    get_all <= ANSWER_WITHIN && restart <= ANSWER_WITHIN,
                    "round {round} with {} connections held: get-all took {get_all:?}, \
                     restart {restart:?} (at most {ANSWER_WITHIN:?} each)",
                    opened.load(Ordering::SeqCst)
                );
                max_fds = max_fds.max(open_fds(conductor.pid()));
                round += 1;
                // Spreads the rounds over the flood rather than measuring one moment of it.
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })();
        stop.store(true, Ordering::SeqCst);
        let held = flood
            .join()
            .map_err(|_| anyhow::anyhow!("the flood thread panicked"))?;
        let trickled = loris.join().unwrap_or(0);
        drop(held);
        println!(
            "  flood: {} connections opened, {} refused at connect, slow-loris sent {trickled} \
             bytes; {} rounds: get-all max {:.1} ms, restart max {:.1} ms; conductor fds max {max_fds}",
            opened.load(Ordering::SeqCst),
            refused.load(Ordering::SeqCst),
            latencies.len(),
            latencies.iter().map(|l| l.0).fold(0.0, f64::max),
            latencies.iter().map(|l| l.1).fold(0.0, f64::max),
        );
        result
    })?;
    ensure!(
        max_fds <= MAX_CONDUCTOR_FDS,
        "conductor held {max_fds} descriptors during the flood (at most {MAX_CONDUCTOR_FDS})"
    );
    // And afterwards it still works as ever.
    let statuses = fleet::get_all(&mut control.connect()?)?;
    ensure!(
        statuses.iter().all(|status| status.state == "running"),
        "after the flood: {statuses:?}"
    );
    fleet::remember(&mut conductor, &statuses);
    conductor.terminate();
    if conductor.wait_exit(Duration::from_secs(30)).is_err() {
        bail!("conductor did not exit within 30 s of SIGTERM after the flood");
    }
    Ok(())
}

/// How many descriptors process `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Raises this process's soft file limit to at least `wanted` (up to the hard limit).
fn raise_file_limit(wanted: usize) -> anyhow::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    let wanted = wanted as libc::rlim_t;
    ensure!(
        limit.rlim_max >= wanted,
        "the hard file limit is {}; the flood needs {wanted} (raise it with `ulimit -Hn`)",
        limit.rlim_max
    );
    if limit.rlim_cur < wanted {
        limit.rlim_cur = wanted;
        // SAFETY: setrlimit reads one rlimit through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}
