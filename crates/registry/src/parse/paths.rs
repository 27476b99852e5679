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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_the_base_and_absolute_ones_stay() {
        let base = Path::new("/srv/demo");
        assert_eq!(
            resolve(base, "./data/./app.db"),
            Path::new("/srv/demo/data/app.db")
        );
        assert_eq!(
            resolve(base, "/var/lib/app.db"),
            Path::new("/var/lib/app.db")
        );
        // `..` is kept: dropping it would be wrong behind a symlink.
        assert_eq!(resolve(base, "../shared"), Path::new("/srv/demo/../shared"));
        // The base is relative when the current directory is unreadable; a leading `.` is
        // the one that `Path::components` keeps.
        assert_eq!(resolve(Path::new("."), "./bin"), Path::new("bin"));
    }

    #[test]
    fn a_command_with_a_separator_is_a_path_and_a_bare_name_is_left_for_path_lookup() {
        let base = Path::new("/srv/demo");
        assert_eq!(resolve_command(base, "node"), "node");
        assert_eq!(
            resolve_command(base, "./bin/server"),
            "/srv/demo/bin/server"
        );
        assert_eq!(resolve_command(base, "bin/server"), "/srv/demo/bin/server");
    }

    #[test]
    fn the_base_dir_is_absolute_even_for_a_bare_file_name() {
        assert_eq!(
            base_dir_of(Path::new("/srv/./demo/conductor.toml")),
            Path::new("/srv/demo")
        );
        let base_dir = base_dir_of(Path::new("conductor.toml"));
        assert!(base_dir.is_absolute(), "{}", base_dir.display());
        assert!(
            !base_dir.components().any(|c| c == Component::CurDir),
            "{}",
            base_dir.display()
        );
    }
}
