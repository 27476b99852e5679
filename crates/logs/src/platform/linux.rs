//! Linux: thread priorities. Compression is background work: during a burst it must not take
//! the CPU from the child, the capture task and the writer, or the write backlog grows.
//! Nothing else platform-specific lives here.

/// Lowers the calling thread's scheduling priority (nice 10); failure is harmless and ignored.
pub(crate) fn lower_thread_priority() {
    // SAFETY: gettid and setpriority only read their integer arguments; on Linux a thread id
    // with PRIO_PROCESS changes that one thread's nice value.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS as _, tid as libc::id_t, 10);
    }
}
