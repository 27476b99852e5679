//! Waiting on a condition with a deadline: look, pause briefly, look again; when time is up,
//! fail naming what was awaited and what was last seen.
//! For conditions nothing can be blocked on (another process's state, a port, a file, an HTTP
//! answer). The pauses start at 1 ms and double up to 50 ms: a poll interval, never a wait
//! for something to happen.
//!
//! One loop serves three fronts: [`wait_until`] panics (tests), [`try_wait_until`] returns
//! the error (xtask, and checks that can fail for good), [`wait_until_async`] pauses without
//! blocking the thread (tests on an async runtime, whose other tasks must go on meanwhile).

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
    task::{Poll, Waker},
    time::{Duration, Instant},
};

const FIRST_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// What one look at a condition found: the value once it holds, else what was seen instead.
///
/// Implemented for `bool` (no value), `Option<T>` and `Result<T, String>`, whose `Err` says
/// what was seen; that text ends up in the timeout message.
pub trait Outcome {
    /// What the wait returns once the condition holds.
    type Value;

    /// `Ok` once the condition holds; `Err` with what was seen (maybe empty) while it does not.
    fn into_result(self) -> Result<Self::Value, String>;
}

impl Outcome for bool {
    type Value = ();

    fn into_result(self) -> Result<(), String> {
        if self { Ok(()) } else { Err(String::new()) }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;

    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

impl<T> Outcome for Result<T, String> {
    type Value = T;

    fn into_result(self) -> Result<T, String> {
        self
    }
}

/// A condition that did not hold in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeout {
    /// What was awaited, as the caller put it ("the service to be running").
    pub what: String,
    /// How long it was awaited.
    pub waited: Duration,
    /// What the last look saw, if the condition says.
    pub last_seen: Option<String>,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}",
            self.waited, self.what
        )?;
        match &self.last_seen {
            Some(seen) => write!(f, "; last seen: {seen}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Timeout {}

impl From<Timeout> for std::io::Error {
    fn from(timeout: Timeout) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, timeout.to_string())
    }
}

/// When to look again, and when to give up.
struct Schedule {
    started: Instant,
    deadline: Duration,
    pause: Duration,
}

impl Schedule {
    fn new(deadline: Duration) -> Schedule {
        Schedule {
            started: Instant::now(),
            deadline,
            pause: FIRST_PAUSE,
        }
    }

    /// The pause before the next look, or `Err` once the deadline has passed: the last look
    /// falls on the deadline, so a condition that holds just in time is still seen.
    fn next_pause(&mut self, what: &str, seen: String) -> Result<Duration, Timeout> {
        let left = self.deadline.saturating_sub(self.started.elapsed());
        if left.is_zero() {
            return Err(Timeout {
                what: what.to_owned(),
                waited: self.started.elapsed(),
                last_seen: (!seen.is_empty()).then_some(seen),
            });
        }
        let pause = self.pause.min(left);
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        Ok(pause)
    }
}

/// Looks at `check` until it holds and returns its value; panics after `deadline` (how long
/// to wait at most) with `what` and what the last look saw.
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// let waited = conductor_test_support::wait_until(Duration::from_secs(10), "5 ms to pass", || {
///     let elapsed = start.elapsed();
///     (elapsed >= Duration::from_millis(5)).then_some(elapsed)
/// });
/// assert!(waited >= Duration::from_millis(5));
/// ```
///
/// # Panics
/// When `check` has not held by the deadline.
pub fn wait_until<O: Outcome>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> O,
) -> O::Value {
    try_wait_until(deadline, what, || Ok::<O, Timeout>(check()))
        .unwrap_or_else(|timeout| panic!("{timeout}"))
}

/// [`wait_until`] that returns the [`Timeout`] (converted into the caller's error type)
/// instead of panicking, and stops at once when `check` itself fails (`Err`): for conditions
/// that can turn out never to hold, such as a service reported `failed` while it was awaited
/// `running`.
pub fn try_wait_until<O: Outcome, E: From<Timeout>>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<O, E>,
) -> Result<O::Value, E> {
    let mut schedule = Schedule::new(deadline);
    loop {
        match check()?.into_result() {
            Ok(value) => return Ok(value),
            Err(seen) => std::thread::sleep(schedule.next_pause(what, seen)?),
        }
    }
}

/// [`wait_until`] for async tests: the pauses do not block the thread, so the runtime's other
/// tasks (the code under test) run meanwhile. `check` itself must not block.
///
/// # Panics
/// When `check` has not held by the deadline.
pub async fn wait_until_async<O: Outcome>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> O,
) -> O::Value {
    let mut schedule = Schedule::new(deadline);
    loop {
        match check().into_result() {
            Ok(value) => return value,
            Err(seen) => match schedule.next_pause(what, seen) {
                Ok(pause) => sleep(pause).await,
                Err(timeout) => panic!("{timeout}"),
            },
        }
    }
}

/// A sleep for any executor: a thread sleeps and wakes the task. This crate has no runtime
/// of its own (xtask builds it too), and one short-lived thread a pause is cheap at 1–50 ms.
async fn sleep(duration: Duration) {
    let until = Instant::now() + duration;
    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let mut timer_started = false;
    std::future::poll_fn(|cx| {
        *waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        // Checked after storing the waker: a timer that fired before that finds no waker or an
        // old one, but then the time is already up here.
        if Instant::now() >= until {
            return Poll::Ready(());
        }
        if !timer_started {
            timer_started = true;
            let waker = Arc::clone(&waker);
            // Detached: it owns only the waker slot and ends at `until`; a wake after the
            // sleep was dropped is a no-op.
            std::thread::spawn(move || {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                if let Some(waker) = waker.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    waker.wake();
                }
            });
        }
        Poll::Pending
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::pin};

    use super::*;

    #[test]
    fn a_condition_that_holds_later_is_waited_for() {
        let mut n_looks = 0;
        let value = wait_until(Duration::from_secs(10), "the third look", || {
            n_looks += 1;
            (n_looks == 3).then_some("third")
        });
        assert_eq!((value, n_looks), ("third", 3));
    }

    #[test]
    fn a_timeout_names_what_was_awaited_and_last_seen() {
        let err = try_wait_until(Duration::from_millis(20), "the impossible", || {
            Ok::<_, Timeout>(Err::<(), _>("still possible".to_owned()))
        })
        .unwrap_err();
        assert_eq!(err.what, "the impossible");
        assert!(err.waited >= Duration::from_millis(20), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with("timed out after ")
                && message.ends_with(" waiting for the impossible; last seen: still possible"),
            "{message}"
        );
        let bare = try_wait_until(Duration::ZERO, "nothing", || Ok::<_, Timeout>(false))
            .unwrap_err()
            .to_string();
        assert!(bare.ends_with("waiting for nothing"), "{bare}");
    }

    #[test]
    fn a_failing_check_stops_the_wait_at_once() {
        let started = Instant::now();
        let err = try_wait_until(Duration::from_secs(30), "a failure", || {
            Err::<bool, std::io::Error>(std::io::Error::other("gone for good"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "gone for good");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_async_wait_lets_other_work_go_on() {
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let setter = Arc::clone(&flag);
        let other = std::thread::spawn(move || {
            // Stands in for work that takes a while; the wait under test is what synchronises.
            std::thread::sleep(Duration::from_millis(20));
            setter.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        block_on(wait_until_async(
            Duration::from_secs(10),
            "the flag",
            || flag.load(std::sync::atomic::Ordering::SeqCst),
        ));
        other.join().unwrap();
    }

    /// A minimal executor: parks the thread until the waker unparks it.
    fn block_on<F: Future>(future: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            match future.as_mut().poll(&mut cx) {
                Poll::Ready(output) => return output,
                Poll::Pending => std::thread::park(),
            }
        }
    }
}
