//! [`TempDir`]: a directory of its own for one test under the system temp dir, removed when it
//! drops, even when the test panics.
//! It does not pick random names: a name is unique by pid and a per-process counter, which is
//! enough because nothing else writes `conductor-test-*` there.

use std::{
    io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

/// A fresh, empty directory under [`std::env::temp_dir`], removed with everything in it on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// `<temp dir>/conductor-test-<label>-<pid>-<n>`, created empty.
    ///
    /// # Panics
    /// If the directory cannot be created: the test cannot run without it.
    pub fn new(label: &str) -> TempDir {
        TempDir::try_new(label).unwrap_or_else(|err| panic!("{err}"))
    }

    /// [`TempDir::new`] for callers that report errors instead of panicking (xtask).
    pub fn try_new(label: &str) -> io::Result<TempDir> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("conductor-test-{label}-{}-{n}", std::process::id()));
        // A leftover of a crashed run that had the same pid would otherwise leak into this one.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("cannot create the temp dir {}: {err}", path.display()),
            )
        })?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `text` to `name` inside the directory and returns its path.
    ///
    /// # Panics
    /// If the file cannot be written.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, text)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        make_removable(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Tests make directories read-only (to provoke errors); `remove_dir_all` cannot empty those.
#[cfg(unix)]
fn make_removable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        // Not through a symlink: a test's link to elsewhere must not change elsewhere.
        if !std::fs::symlink_metadata(&dir).is_ok_and(|meta| meta.is_dir()) {
            continue;
        }
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(entries.flatten().map(|entry| entry.path()));
        }
    }
}

#[cfg(not(unix))]
fn make_removable(_root: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dir_is_new_and_gone_after_drop_even_when_read_only() {
        let first = TempDir::new("unit");
        let second = TempDir::new("unit");
        assert_ne!(first.path(), second.path());
        assert!(first.path().starts_with(std::env::temp_dir()));
        let locked = first.join("locked");
        std::fs::create_dir(&locked).unwrap();
        first.write("locked/file", "text");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
        }
        let path = first.path().to_path_buf();
        drop(first);
        assert!(!path.exists(), "{} is still there", path.display());
        assert!(second.path().is_dir());
    }
}
