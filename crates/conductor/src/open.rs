//! `conductor open` and the panel line of `up` (issue 16): the debug panel's address.
//!
//! The token is a secret. It travels only in the URL's fragment (a browser never sends that
//! to the server, so it is in no request line or log). `up` prints it only to a terminal: a
//! launcher's captured stdout ends up in log files. `open` prints it because that is what it
//! was asked for, and hands it to the browser through a file only its user can read, not on
//! the opener's command line, which any local user can read in `/proc/<pid>/cmdline`.

use std::{
    io::{IsTerminal as _, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use conductor_ipc::Client;
use conductor_protocol::{AppHealth, Channel, IpcInfo};

use crate::remote::{Target, running_instance};

/// `conductor open`.
#[derive(Debug, clap::Args)]
pub(crate) struct OpenArgs {
    /// Only print the URL; do not start a browser
    #[arg(long)]
    no_browser: bool,
}

/// How long the running conductor may take to answer before `open` says it does not.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The page that hands the panel's URL to the browser, beside `ipc.json` (which holds the
/// same token under the same protection).
const REDIRECT_FILE: &str = "panel.html";

pub(crate) fn run(args: &OpenArgs, target: &Target) -> anyhow::Result<()> {
    let (info, user_data) = running_instance(target)?;
    answers(&info)?;
    let url = panel_url(&info);
    println!("{url}");
    if args.no_browser {
        return Ok(());
    }
    if !has_display() {
        println!("no display to open a browser on: open the URL above in one");
        return Ok(());
    }
    let redirect = write_redirect(&user_data, &url)?;
    let (program, opener_args) = opener(&redirect);
    Command::new(program)
        .args(&opener_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Not waited for: some openers run the browser in the foreground.
        .spawn()
        .with_context(|| {
            format!("cannot start {program} to open the panel; open the URL above in a browser")
        })?;
    Ok(())
}

/// The panel's address, without the token.
fn panel_address(info: &IpcInfo) -> String {
    format!("{}/", info.url.trim_end_matches('/'))
}

/// The panel's address with its token.
fn panel_url(info: &IpcInfo) -> String {
    format!("{}#token={}", panel_address(info), info.token)
}

/// `up`'s last startup line: the address with its token on a terminal, else the address and
/// how to get the token.
pub(crate) fn panel_line(info: &IpcInfo, user_data: &Path) -> String {
    if std::io::stdout().is_terminal() {
        format!("panel: {}", panel_url(info))
    } else {
        format!(
            "panel: {} (`conductor open --data-dir {}` gives its link with the token)",
            panel_address(info),
            user_data.display()
        )
    }
}

/// Fails unless the conductor of `info` answers: an `ipc.json` left by a conductor that was
/// killed names a dead address, and a browser would only show a connection error.
fn answers(info: &IpcInfo) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = Client::new(info.clone()).with_timeout(ANSWER_TIMEOUT);
    runtime
        .block_on(client.call::<(), AppHealth>(Channel::AppHealth, None))
        .map(drop)
        .with_context(|| {
            format!(
                "conductor (pid {}) does not answer at {}; is it still running?",
                info.pid, info.url
            )
        })
}

fn has_display() -> bool {
    if cfg!(any(target_os = "macos", windows)) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

/// Writes the page that sends the browser on to `url`, readable by this user only.
fn write_redirect(user_data: &Path, url: &str) -> anyhow::Result<PathBuf> {
    let path = user_data.join(REDIRECT_FILE);
    // The URL is ours (an address and a hex token): nothing in it needs escaping in HTML.
    let page = format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>conductor</title>\n\
         <meta http-equiv=\"refresh\" content=\"0; url={url}\">\n\
         <p><a href=\"{url}\">Open conductor's debug panel</a></p>\n"
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let write = || -> std::io::Result<()> {
        let mut file = options.open(&path)?;
        // An older file keeps its mode on open: make sure it is ours alone.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(page.as_bytes())
    };
    write().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The platform's opener and its arguments for `file`.
fn opener(file: &Path) -> (&'static str, Vec<std::ffi::OsString>) {
    let file = file.as_os_str().to_owned();
    if cfg!(target_os = "macos") {
        ("open", vec![file])
    } else if cfg!(windows) {
        // `start`'s first quoted argument is the window title.
        ("cmd", vec!["/C".into(), "start".into(), "".into(), file])
    } else {
        ("xdg-open", vec![file])
    }
}
