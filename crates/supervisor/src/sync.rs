//! The lock policy: no lock of the supervisor propagates a panic. A std mutex is poisoned when
//! a thread panics while holding it, and every later `lock().expect(..)` would panic in turn:
//! one bug in one request would take the status table, the event bus and every later request
//! with it. Every value guarded here stays usable after a partial update (a status snapshot
//! the next update overwrites, an `Option` slot, a task set), so a poisoned guard is taken over.
//! The panic itself is contained where it happens (see `conductor/tasks.rs`, owner tasks).

use std::sync::{Mutex, MutexGuard, PoisonError};

/// [`Mutex::lock`] that takes over a poisoned lock instead of panicking.
pub(crate) trait LockExt<T> {
    fn lock_recovered(&self) -> MutexGuard<'_, T>;
}

impl<T> LockExt<T> for Mutex<T> {
    fn lock_recovered(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_over() {
        let mutex = std::sync::Arc::new(Mutex::new(1));
        let poisoner = mutex.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(mutex.is_poisoned());
        *mutex.lock_recovered() += 1;
        assert_eq!(*mutex.lock_recovered(), 2);
    }
}
