//! `<userData>/ipc.json`: how a CLI subcommand finds the running instance (URL, token, pid).
//! The file holds the bearer token, so it is written owner-only (0600) and atomically, and a
//! reader never sees half of it. It does not check that the recorded pid is alive: a stale file
//! shows up as [`ClientError::Unreachable`] on the first request.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use conductor_protocol::IpcInfo;

use crate::ClientError;

/// The file name under the user data directory.
pub const INFO_FILE: &str = "ipc.json";

fn info_path(user_data: &Path) -> PathBuf {
    user_data.join(INFO_FILE)
}

/// Reads `<user_data>/ipc.json`.
///
/// # Errors
/// [`ClientError::NotRunning`] when the file does not exist (no instance for this directory),
/// [`ClientError::ReadInfo`] when it cannot be read, [`ClientError::InvalidInfo`] when it is
/// not the JSON conductor writes.
pub fn read_info(user_data: &Path) -> Result<IpcInfo, ClientError> {
    let path = info_path(user_data);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ClientError::NotRunning {
                user_data: user_data.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(ClientError::ReadInfo {
                path,
                error: source,
            });
        }
    };
    serde_json::from_slice(&text).map_err(|source| ClientError::InvalidInfo {
        path,
        error: source,
    })
}

/// Writes `<user_data>/ipc.json` atomically: a temporary file in the same directory, created
/// with mode 0600 on unix (never readable by others, not even for a moment), synced, then
/// renamed over the old file.
///
/// # Errors
/// Any I/O failure; the temporary file is removed again.
pub fn write_info(user_data: &Path, info: &IpcInfo) -> std::io::Result<()> {
    let path = info_path(user_data);
    let tmp = user_data.join(format!("{INFO_FILE}.{}.tmp", std::process::id()));
    let json = serde_json::to_vec_pretty(info).map_err(std::io::Error::other)?;
    let result = write_private(&tmp, &json).and_then(|()| std::fs::rename(&tmp, &path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A leftover from a crashed writer may have other permissions; the mode below applies only
    // to a file this call creates.
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Removes `<user_data>/ipc.json` (at shutdown). A missing file is fine; another failure is
/// logged, as there is nothing better to do with it while exiting.
pub fn remove_info(user_data: &Path) {
    let path = info_path(user_data);
    match std::fs::remove_file(&path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "could not remove the IPC info file: {err}");
        }
        _ => {}
    }
}
