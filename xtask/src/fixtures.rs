//! `cargo xtask fixtures`: builds the fake-service fixture that tests and gates run.
//! Tests find the binary through `fake_service::binary()`, which also builds it on demand;
//! building it here first keeps parallel test processes from racing to build it.

use crate::util::{cargo, run_checked};

pub(crate) fn run(_args: &[String]) -> anyhow::Result<()> {
    run_checked(cargo().args(["build", "--quiet", "-p", "fake-service"]))
}
