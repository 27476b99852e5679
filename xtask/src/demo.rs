//! `cargo xtask demo`: builds the fixtures and conductor, then runs
//! `conductor up --registry fixtures/demo.toml` in a fresh temp data dir.
//! On unix the task replaces itself with conductor, so Ctrl-C reaches conductor alone and its
//! clean shutdown is what the terminal shows.

use anyhow::Context;

use crate::util::{cargo, project_root, run_checked};

pub(crate) fn run(_args: &[String]) -> anyhow::Result<()> {
    crate::fixtures::run(&[])?;
    run_checked(cargo().args(["build", "--quiet", "-p", "conductor"]))?;
    let root = project_root();
    let binary = crate::util::target_dir().join("debug").join("conductor");
    let data_dir = std::env::temp_dir().join(format!("conductor-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    println!("data dir: {} (Ctrl-C stops the fleet)", data_dir.display());
    let mut command = std::process::Command::new(&binary);
    command
        .arg("up")
        .arg("--registry")
        .arg(root.join("fixtures").join("demo.toml"))
        .arg("--data-dir")
        .arg(&data_dir);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = command.exec();
        Err(err).with_context(|| format!("could not run {}", binary.display()))
    }
    #[cfg(not(unix))]
    {
        run_checked(&mut command)
    }
}
