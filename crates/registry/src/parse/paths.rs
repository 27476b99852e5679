//! Turns the paths and commands written in a registry into what the model holds: absolute
//! paths based on the registry's directory, and commands that are either such a path or a bare
//! name left for a `PATH` lookup.
//!
//! Only text is joined here; nothing touches the file system beyond asking for the current
//! directory, so a path that does not exist yet is not a problem at this stage.

use std::path::{Component, Path, PathBuf};

/// The absolute directory that holds `path`; `.` components are dropped, symlinks are kept.
pub(super) fn base_dir_of(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        // "conductor.toml" has the empty path as parent, which std::path::absolute rejects.
        _ => Path::new("."),
    };
    // std::path::absolute only fails when the current directory is unreadable; a relative base
    // then still resolves correctly for a process started in the same directory.
    clean(&std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf()))
}

/// `base` joined with `relative` (which may be absolute), without `.` components.
pub(super) fn resolve(base: &Path, relative: &str) -> PathBuf {
    clean(&base.join(relative))
}

fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|component| *component != Component::CurDir)
        .collect()
}

/// A command with a path separator is relative to the registry; a bare name is found in `PATH`.
pub(super) fn resolve_command(base: &Path, command: &str) -> String {
    if command.contains('/') || command.contains(std::path::MAIN_SEPARATOR) {
        resolve(base, command).to_string_lossy().into_owned()
    } else {
        command.to_owned()
    }
}
