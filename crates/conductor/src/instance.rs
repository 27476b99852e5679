//! Where a conductor keeps its data and how only one runs per data directory: the data-dir
//! choice (flag, environment, platform convention) and the single-instance lock.
//!
//! It does not start or stop anything; the lock is released when [`InstanceLock`] drops.

use std::{
    fs::File,
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
};

use anyhow::Context;

use crate::failure::Failure;

/// The data directory: `--data-dir`, else `CONDUCTOR_DATA_DIR`, else the platform's
/// conventional per-app data directory (XDG on Linux) named after the app.
pub(crate) fn data_dir(flag: Option<&Path>, app_name: &str) -> anyhow::Result<PathBuf> {
    let chosen = match flag {
        Some(dir) => dir.to_path_buf(),
        None => match std::env::var_os("CONDUCTOR_DATA_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => directories::ProjectDirs::from("", "", app_name)
                .map(|dirs| dirs.data_dir().to_path_buf())
                .context("no home directory to put the data dir in; pass --data-dir DIR")?,
        },
    };
    if chosen.is_absolute() {
        Ok(chosen)
    } else {
        Ok(std::env::current_dir()
            .context("reading the current directory")?
            .join(chosen))
    }
}

/// Another conductor holds the lock of this data directory (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error(
    "another conductor is already running for {data_dir} (pid {pid}, control URL {url})\n  help: \
     talk to it with `conductor status`, stop it with `conductor quit`, or use another --data-dir"
)]
pub(crate) struct AlreadyRunning {
    pub(crate) data_dir: String,
    pub(crate) pid: String,
    pub(crate) url: String,
}

/// The held single-instance lock (`<userData>/conductor.lock`); released on drop.
pub(crate) struct InstanceLock {
    _file: File,
}

/// Takes the lock or reports who holds it. Touches nothing else.
pub(crate) fn lock(user_data: &Path) -> Result<InstanceLock, Failure> {
    std::fs::create_dir_all(user_data)
        .with_context(|| format!("creating the data directory {}", user_data.display()))?;
    let path = user_data.join("conductor.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    let locked = fs4::FileExt::try_lock(&file);
    match locked {
        Ok(()) => {
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| write!(file, "{}", std::process::id()))
                .and_then(|()| file.flush())
                .with_context(|| format!("writing our pid into {}", path.display()))?;
            Ok(InstanceLock { _file: file })
        }
        Err(fs4::TryLockError::WouldBlock) => {
            let mut holder_pid = String::new();
            let _ = file.read_to_string(&mut holder_pid);
            let info = conductor_ipc::read_info(user_data).ok();
            Err(AlreadyRunning {
                data_dir: user_data.display().to_string(),
                pid: info
                    .as_ref()
                    .map(|info| info.pid.to_string())
                    .unwrap_or_else(|| holder_pid.trim().to_owned()),
                url: info
                    .map(|info| info.url)
                    .unwrap_or_else(|| "not yet published".to_owned()),
            }
            .into())
        }
        Err(fs4::TryLockError::Error(err)) => Err(anyhow::Error::from(err)
            .context(format!("locking {}", path.display()))
            .into()),
    }
}
