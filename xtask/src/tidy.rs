//! Always-true properties of the source tree, checked as `#[test]`s so `cargo test` runs them:
//! the crate dependency edges of the crate map, module docs, and no switched-off tests.
//! Nothing here is a subcommand; these checks read files and never build anything.

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeSet,
        fs,
        path::{Path, PathBuf},
    };

    use crate::util::project_root;

    /// The crate map of ARCHITECTURE.md, left to right: a crate may depend only on crates in a
    /// later rank (skipping ranks is fine), never on its own rank or an earlier one.
    const RANKS: &[&[&str]] = &[
        &["conductor"],
        &["ipc"],
        &["supervisor"],
        &["health", "logs", "db"],
        // Below the other workers: exec probes are children too (health -> spawn).
        // `export` beside it: a translation of the registry that uses nothing else of ours.
        &["spawn", "export"],
        &["registry"],
        &["protocol"],
        // Right of everything, so it can use none of our crates (a dev-dependency cycle would
        // link a second copy of the crate under test); see `TEST_ONLY`.
        &["test-support"],
    ];

    /// The test harness: a dev-dependency (and xtask's), never a normal dependency of a crate.
    const TEST_ONLY: &str = "test-support";

    fn rank_of(name: &str) -> Option<usize> {
        RANKS.iter().position(|rank| rank.contains(&name))
    }

    /// Our crates each crate's manifest names as normal (not dev) dependencies.
    fn our_dependencies(manifest: &str) -> BTreeSet<String> {
        let mut in_dependencies = false;
        let mut found = BTreeSet::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                // `[dependencies]` and `[target.'cfg(..)'.dependencies]`, not dev or build.
                in_dependencies = line == "[dependencies]"
                    || (line.starts_with("[target.") && line.ends_with(".dependencies]"));
                continue;
            }
            if in_dependencies
                && let Some(name) = line.strip_prefix("conductor-")
                && let Some(name) = name.split(['.', ' ', '=']).next()
            {
                found.insert(name.to_owned());
            }
        }
        found
    }

    fn crate_dirs() -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = fs::read_dir(project_root().join("crates"))
            .expect("crates/ exists")
            .map(|entry| entry.expect("crates/ is readable").path())
            .filter(|path| path.join("Cargo.toml").is_file())
            .collect();
        dirs.sort();
        dirs
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name == "target") {
                    continue;
                }
                rust_files(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_crate_is_in_the_crate_map() {
        for dir in crate_dirs() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                rank_of(&name).is_some(),
                "crates/{name} is not in the crate map (RANKS)"
            );
        }
    }

    #[test]
    fn dependency_edges_only_point_rightwards() {
        let mut wrong = Vec::new();
        for dir in crate_dirs() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            let from = rank_of(&name).unwrap_or(0);
            for dependency in our_dependencies(&manifest) {
                match rank_of(&dependency) {
                    Some(to) if to > from && dependency != TEST_ONLY => {}
                    _ => wrong.push(format!("{name} -> {dependency}")),
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "edges not allowed by the crate map: {wrong:?}"
        );
    }

    #[test]
    fn edge_check_catches_a_backward_edge() {
        let manifest = "[dependencies]\nconductor-supervisor.workspace = true\n[dev-dependencies]\nconductor-ipc.workspace = true\n";
        assert_eq!(
            our_dependencies(manifest),
            BTreeSet::from(["supervisor".to_owned()])
        );
    }

    #[test]
    fn protocol_has_no_io_deps() {
        let manifest =
            fs::read_to_string(project_root().join("crates/protocol/Cargo.toml")).unwrap();
        let normal = manifest.split("[dev-dependencies]").next().unwrap();
        for banned in ["tokio", "hyper", "rusqlite", "nix", "libc"] {
            assert!(
                !normal.contains(banned),
                "protocol depends on {banned}: it must stay types only"
            );
        }
    }

    #[test]
    fn every_module_starts_with_a_module_doc() {
        let mut files = Vec::new();
        for dir in ["crates", "xtask/src", "fixtures"] {
            rust_files(&project_root().join(dir), &mut files);
        }
        let missing: Vec<String> = files
            .iter()
            .filter(|path| path.components().any(|c| c.as_os_str() == "src"))
            .filter(|path| {
                let text = fs::read_to_string(path).unwrap_or_default();
                !text.trim_start().starts_with("//!")
            })
            .map(|path| {
                path.strip_prefix(project_root())
                    .unwrap_or(path)
                    .display()
                    .to_string()
            })
            .collect();
        assert!(
            missing.is_empty(),
            "modules without a `//!` doc: {missing:?}"
        );
    }

    #[test]
    fn no_switched_off_tests() {
        let mut files = Vec::new();
        for dir in ["crates", "tests", "fixtures", "xtask/src"] {
            rust_files(&project_root().join(dir), &mut files);
        }
        let ignore_attribute = concat!("#[", "ignore");
        let should_panic = concat!("#[", "should_panic");
        let offenders: Vec<String> = files
            .iter()
            .filter(|path| {
                let text = fs::read_to_string(path).unwrap_or_default();
                text.contains(ignore_attribute) || text.contains(should_panic)
            })
            .map(|path| path.display().to_string())
            .collect();
        assert!(offenders.is_empty(), "switched-off tests in {offenders:?}");
    }
}
