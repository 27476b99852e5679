//! `cargo xtask ts-types [--check]`: regenerates clients/js's wire types (`protocol.d.ts`,
//! `protocol.js`) from crates/protocol, whose types derive ts-rs's `TS` behind the `typescript`
//! feature; `--check` writes them under `target/ts-types/` instead and fails when the
//! checked-in files differ. The generator is the protocol crate's `ts_types` example, so
//! neither xtask nor anything that ships links ts-rs.

use std::{fs, path::PathBuf};

use anyhow::{Context, bail};

use crate::util::{cargo, project_root, run_checked, target_dir};

/// The generated files, in `clients/js/src/`.
const FILES: [&str; 2] = ["protocol.d.ts", "protocol.js"];

const USAGE: &str = "usage: cargo xtask ts-types [--check]
  (no flag)  regenerate clients/js/src/protocol.{d.ts,js} from crates/protocol
  --check    fail when the checked-in files differ from what crates/protocol generates";

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => {
            let generated = generate()?;
            for file in FILES {
                fs::copy(generated.join(file), checked_in().join(file))
                    .with_context(|| format!("copying {file} into clients/js/src"))?;
            }
            Ok(())
        }
        ["--check"] => check(),
        ["-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("unexpected arguments {args:?}\n{USAGE}"),
    }
}

/// Fails naming each checked-in file that is not what crates/protocol generates now.
pub(crate) fn check() -> anyhow::Result<()> {
    let generated = generate()?;
    let mut drifted = Vec::new();
    for file in FILES {
        let fresh = fs::read_to_string(generated.join(file))?;
        let path = checked_in().join(file);
        match fs::read_to_string(&path) {
            Ok(old) if old == fresh => {}
            Ok(old) => drifted.push(format!("{file} ({})", first_difference(&old, &fresh))),
            Err(_) => drifted.push(format!("{file} (missing)")),
        }
    }
    if drifted.is_empty() {
        Ok(())
    } else {
        bail!(
            "clients/js/src/ is out of date with crates/protocol: {}\n  help: run `cargo xtask ts-types` and commit the result",
            drifted.join(", ")
        )
    }
}

fn checked_in() -> PathBuf {
    project_root().join("clients/js/src")
}

/// Runs the generator into a fresh `target/ts-types/`.
fn generate() -> anyhow::Result<PathBuf> {
    let out = target_dir().join("ts-types");
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    run_checked(
        cargo()
            .args(["run", "--quiet", "-p", "conductor-protocol"])
            .args(["--features", "typescript", "--example", "ts_types", "--"])
            .arg(&out),
    )?;
    Ok(out)
}

fn first_difference(old: &str, new: &str) -> String {
    let mut old_lines = old.lines();
    let mut new_lines = new.lines();
    for number in 1.. {
        match (old_lines.next(), new_lines.next()) {
            (None, None) => break,
            (old, new) if old == new => {}
            (old, new) => {
                return format!(
                    "line {number}: checked in {:?}, generated {:?}",
                    old.unwrap_or("<end>"),
                    new.unwrap_or("<end>")
                );
            }
        }
    }
    "line endings differ".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_names_the_line_and_both_texts() {
        assert_eq!(
            first_difference("a\nb\nc\n", "a\nB\nc\n"),
            r#"line 2: checked in "b", generated "B""#
        );
        assert_eq!(
            first_difference("a\n", "a\nb\n"),
            r#"line 2: checked in "<end>", generated "b""#
        );
    }
}
