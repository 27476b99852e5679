//! Unix answers to two questions the database needs from the OS: may this process write a
//! path, and which other process holds a lock on a file.
//! Nothing here opens or changes the files it is asked about.

use std::path::Path;

/// Whether this process may write `path` (access(2) with `W_OK`, which also sees read-only
/// mounts). Root passes for any mode bits, as the kernel would let it write.
pub(crate) fn is_writable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// The pid of another process holding a POSIX lock on `path` or on its `-shm` file (where
/// SQLite keeps its locks in WAL mode), read from `/proc/locks`; `None` when not found or not
/// on Linux. Informational only: the answer may be stale by the time it is printed.
pub(crate) fn lock_holder_pid(path: &Path) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        let mut shm = path.as_os_str().to_owned();
        shm.push("-shm");
        [path, Path::new(&shm)]
            .into_iter()
            .find_map(|file| linux::holder_in(&locks, file))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    /// Finds a lock line of `/proc/locks` naming `file`'s device and inode and a pid other
    /// than ours. A line reads `1: POSIX  ADVISORY  WRITE 4242 00:1f:1234 0 EOF`, with `->`
    /// after the id for a waiter; OFD locks show pid -1 and are skipped.
    pub(super) fn holder_in(locks: &str, file: &Path) -> Option<u32> {
        let metadata = std::fs::metadata(file).ok()?;
        let dev = metadata.dev();
        // glibc's encoding of dev_t (gnu_dev_major / gnu_dev_minor).
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let wanted = format!("{major:02x}:{minor:02x}:{}", metadata.ino());
        let own_pid = std::process::id();
        locks.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "->").collect();
            let pid = fields.get(4)?.parse::<u32>().ok()?;
            (fields.get(5) == Some(&wanted.as_str()) && pid != own_pid).then_some(pid)
        })
    }
}
