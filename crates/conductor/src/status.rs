//! `conductor status`: the services table (with each tree's CPU and memory), once or, with
//! `--watch`, redrawn in place every metrics interval like `docker stats` until `q` or Ctrl-C.
//! When stdout is not a terminal, `--watch` prints the table again each interval instead.

use std::{
    io::{IsTerminal, Read, Write},
    time::Duration,
};

use conductor_ipc::Client;
use conductor_protocol::{Channel, MetricsGetRequest, MetricsGetResponse, ServiceStatus};

/// The redraw interval when no service is sampled.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// The human `status` table.
pub(crate) fn table(statuses: &[ServiceStatus]) -> String {
    let mut table = format!(
        "{:<14} {:<10} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8}  {}\n",
        "SERVICE", "STATUS", "PID", "PORT", "CPU", "MEM", "UPTIME", "RESTARTS", "LAST ERROR"
    );
    for status in statuses {
        let pid = status.pid.map_or("-".to_owned(), |pid| pid.to_string());
        let uptime = if status.uptime > 0 {
            humantime::format_duration(Duration::from_secs(status.uptime)).to_string()
        } else {
            "-".to_owned()
        };
        let cpu = status
            .cpu_percent
            .map_or("-".to_owned(), |cpu| format!("{cpu:.1}%"));
        let memory = status
            .memory_bytes
            .map_or("-".to_owned(), conductor_registry::format_size);
        table.push_str(&format!(
            "{:<14} {:<10} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8}  {}\n",
            status.name,
            status.status.as_str(),
            pid,
            status.port,
            cpu,
            memory,
            uptime,
            status.restarts,
            status.last_error.as_deref().unwrap_or("")
        ));
    }
    table
}

/// `status --watch`.
pub(crate) async fn watch(client: &Client) -> anyhow::Result<()> {
    let interval = redraw_interval(client).await?;
    let interactive = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let _terminal = if interactive {
        Some(Terminal::take()?)
    } else {
        None
    };
    let mut keys = quit_keys(interactive);
    // One listener for the whole watch, made before the first fetch: a `ctrl_c()` made anew
    // in each select misses a Ctrl-C that comes while a table is fetched (its listener does
    // not exist yet), and the watch would go on. `recv` is cancel-safe.
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            Some(()) = keys.recv() => return Ok(()),
            _ = interrupts.recv() => return Ok(()),
        }
        let statuses: Vec<ServiceStatus> =
            client.call(Channel::ServicesGetAll, None::<&()>).await?;
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let mut out = std::io::stdout().lock();
        if interactive {
            // Home, clear to the end: the table is redrawn in place, without scrolling.
            write!(out, "\x1b[H\x1b[2J")?;
            write!(
                out,
                "{now}  every {}  (q to quit)\r\n\r\n",
                humantime::format_duration(interval)
            )?;
            write!(out, "{}", table(&statuses).replace('\n', "\r\n"))?;
        } else {
            writeln!(out, "{now}")?;
            write!(out, "{}", table(&statuses))?;
            writeln!(out)?;
        }
        out.flush()?;
    }
}

/// The shortest metrics interval of any sampled service: a faster redraw shows nothing new.
async fn redraw_interval(client: &Client) -> anyhow::Result<Duration> {
    let request = MetricsGetRequest {
        service_name: None,
        seconds: Some(0),
    };
    let metrics: MetricsGetResponse = client.call(Channel::MetricsGet, Some(&request)).await?;
    Ok(metrics
        .services
        .iter()
        .map(|service| service.interval_ms)
        .filter(|&ms| ms > 0)
        .min()
        .map_or(DEFAULT_INTERVAL, Duration::from_millis))
}

/// Resolves once `q` (or `Q`) is typed; never when stdin is not a terminal.
fn quit_keys(interactive: bool) -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    if interactive {
        // A plain thread: tokio's stdin reads on a blocking thread too, and this one ends
        // with the process.
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut byte = [0_u8; 1];
            while let Ok(1) = stdin.read(&mut byte) {
                if matches!(byte[0], b'q' | b'Q') {
                    let _ = tx.blocking_send(());
                    return;
                }
            }
        });
    }
    rx
}

/// The terminal in the mode the watch needs (keys arrive one by one, unechoed; the cursor
/// hidden), restored on drop, whatever ends the watch.
struct Terminal {
    saved: nix::sys::termios::Termios,
}

impl Terminal {
    fn take() -> anyhow::Result<Terminal> {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut keys = saved.clone();
        // Not raw: ISIG stays, so Ctrl-C is still SIGINT.
        keys.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &keys)?;
        print!("\x1b[?25l");
        Ok(Terminal { saved })
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
        println!("\x1b[?25h");
        let _ = std::io::stdout().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conductor_protocol::ServiceState;

    #[test]
    fn the_table_shows_cpu_and_memory_only_for_a_sampled_process() {
        let status = |cpu: Option<f64>, memory: Option<u64>| ServiceStatus {
            name: "api".into(),
            port: 3001,
            status: ServiceState::Running,
            pid: Some(42),
            uptime: 3,
            last_health_check: None,
            restarts: 0,
            critical: true,
            last_error: None,
            cpu_percent: cpu,
            memory_bytes: memory,
            processes: memory.map(|_| 2),
        };
        let text = table(&[status(Some(12.5), Some(48 << 20)), status(None, None)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains(" CPU ") && lines[0].contains(" MEM "),
            "{text}"
        );
        assert!(
            lines[1].contains("12.5%") && lines[1].contains("48.0MB"),
            "{text}"
        );
        assert!(!lines[2].contains('%'), "{text}");
    }
}
