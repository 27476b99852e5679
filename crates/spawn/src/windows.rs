//! Windows stubs: every operation reports that it is unsupported on this platform yet.
//! A real implementation needs job objects (a process group equivalent that is killed as one
//! and dies with its parent); until then `spawn` refuses, so no child is ever started here.

use std::io;

use tokio::process::Command;

use crate::{group::GroupSignal, port::PortHolder, reclaim::Member};

const UNSUPPORTED: &str = "unsupported on this platform yet (needs job objects)";

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, UNSUPPORTED)
}

pub(crate) fn prepare(_command: &mut Command, _limits: crate::ResourceLimits) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn signal_group(_pgid: u32, _signal: GroupSignal) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn signal_leader(_pgid: u32, _signal: GroupSignal) -> io::Result<()> {
    Err(unsupported())
}

/// Never constructed in practice: `prepare` refuses every spawn.
#[derive(Debug)]
pub(crate) struct ExitWatch;

impl ExitWatch {
    pub(crate) fn new(_pid: u32) -> Self {
        Self
    }

    pub(crate) async fn exited(&self) -> io::Result<bool> {
        Ok(false)
    }

    pub(crate) fn has_exited(&self) -> Option<bool> {
        None
    }
}

pub(crate) fn live_members_besides(
    _leader: u32,
    _is_our_leader: impl Fn(u32) -> bool,
) -> Option<usize> {
    None
}

/// Never constructed: no process is ever found by a marker here (a job object would hold the
/// whole tree instead).
#[derive(Debug)]
pub(crate) struct ProcessHandle;

impl ProcessHandle {
    pub(crate) fn signal(&self, _signal: GroupSignal) -> io::Result<()> {
        Err(unsupported())
    }

    pub(crate) fn has_exited(&self) -> bool {
        true
    }

    pub(crate) fn reap_if_child(&self) {}
}

pub(crate) fn find_marked(
    _entry_prefix: &[u8],
    _since: u64,
    _exclude: &[u32],
) -> Vec<crate::tree::MarkedProcess> {
    Vec::new()
}

pub(crate) fn find_tree(
    _entry_prefix: &[u8],
    _since: u64,
    _leader: u32,
    _is_our_leader: impl Fn(u32) -> bool,
) -> Vec<crate::tree::MarkedProcess> {
    Vec::new()
}

pub(crate) fn become_subreaper() -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn reap_adopted() -> usize {
    0
}

pub(crate) fn process_start_time(_pid: u32) -> Option<u64> {
    None
}

pub(crate) fn process_table() -> io::Result<Vec<Member>> {
    Err(unsupported())
}

pub(crate) fn boot_id() -> Option<String> {
    None
}

pub(crate) fn port_holder(_port: u16) -> Option<PortHolder> {
    None
}
