//! Helpers shared by this crate's integration tests beyond the workspace's harness
//! (`conductor-test-support`): reading back log files (current and rotated), and a
//! fake-service child that dies with the test.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

/// The names of the files in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The text of one log file, gunzipped if its name ends in `.gz`.
pub fn read_log_file(path: &Path) -> String {
    let bytes =
        fs::read(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    if path.extension().is_some_and(|extension| extension == "gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|error| panic!("decompressing {}: {error}", path.display()));
        text
    } else {
        String::from_utf8(bytes).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }
}

/// The rotated files of `service`, oldest first (`<service>.N.log[.gz]`, highest N first).
pub fn rotated_files(dir: &Path, service: &str) -> Vec<PathBuf> {
    let mut numbered: Vec<(u32, PathBuf)> = file_names(dir)
        .into_iter()
        .filter_map(|name| {
            let rest = name.strip_prefix(&format!("{service}."))?;
            let (number, extension) = rest.split_once('.')?;
            matches!(extension, "log" | "log.gz")
                .then(|| Some((number.parse().ok()?, dir.join(&name))))
                .flatten()
        })
        .collect();
    numbered.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
    numbered.into_iter().map(|(_, path)| path).collect()
}

/// Every file of `service` (rotated oldest first, then the current one) as (path, text).
pub fn all_log_files(dir: &Path, service: &str) -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = rotated_files(dir, service);
    let current = dir.join(format!("{service}.log"));
    if current.exists() {
        files.push(current);
    }
    files
        .into_iter()
        .map(|path| {
            let text = read_log_file(&path);
            (path, text)
        })
        .collect()
}

/// Splits a file line `<timestamp> <LEVEL>[+] <message>` into its parts.
pub fn parse_file_line(line: &str) -> (&str, &str, &str) {
    let mut parts = line.splitn(3, ' ');
    let timestamp = parts.next().unwrap_or_default();
    let level = parts.next().unwrap_or_default();
    let message = parts
        .next()
        .unwrap_or_else(|| panic!("no message in file line {line:?}"));
    (timestamp, level, message)
}

/// The number of a fake-service burst line (`INFO burst out 0000042 xxx`), if it is one.
pub fn burst_number(message: &str) -> Option<u64> {
    let (_, rest) = message.split_once(" burst out ")?;
    rest.split(' ').next()?.parse().ok()
}

/// A fake-service process in its own process group, killed (group) and reaped on drop.
#[cfg(unix)]
pub struct FakeService {
    pub guard: conductor_test_support::GroupGuard,
}

#[cfg(unix)]
impl FakeService {
    /// Starts fake-service with `env` (plus `PORT` on a free port and `FAKE_REQUIRE_DB=0`), its
    /// stdout piped.
    pub fn start(env: &[(&str, &str)]) -> FakeService {
        let port = conductor_test_support::free_port();
        let guard = conductor_test_support::GroupGuard::spawn(
            std::process::Command::new(fake_service::binary())
                .envs(env.iter().copied())
                .env("PORT", port.to_string())
                .env("FAKE_REQUIRE_DB", "0")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped()),
        )
        .expect("fake-service starts");
        FakeService { guard }
    }

    /// Its stdout as a tokio reader.
    pub fn stdout(&mut self) -> tokio::process::ChildStdout {
        let stdout = self
            .guard
            .child()
            .stdout
            .take()
            .expect("stdout is piped and taken once");
        tokio::process::ChildStdout::from_std(stdout).expect("registering the pipe with tokio")
    }
}
