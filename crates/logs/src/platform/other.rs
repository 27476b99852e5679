//! Other platforms: thread priorities are left alone (compression then competes with capture
//! for the CPU at equal priority, which costs backlog memory during bursts, never lines).

/// Does nothing on this platform.
pub(crate) fn lower_thread_priority() {}
