//! Windows twin of `unix.rs`: may this process write a path, and which process holds a lock.
//! Windows has no `/proc/locks`, so the lock holder is never known here.

use std::path::Path;

/// Whether `path` is writable, judged by its read-only attribute only (ACLs are not read;
/// SQLite reports anything finer when it opens the file).
pub(crate) fn is_writable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| !metadata.permissions().readonly())
}

/// Always `None`: finding the process holding a lock needs the Restart Manager API, which
/// conductor does not use yet.
pub(crate) fn lock_holder_pid(_path: &Path) -> Option<u32> {
    None
}
