//! Locks that survive a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data even when a thread panicked while holding it: the state behind
/// rbee's mutexes (counters, ledgers, queues) stays usable after a panic, and a panic in one
/// download must not take every later one down with it.
///
/// ```
/// use std::sync::Mutex;
/// use rbee_artifact::lock_unpoisoned;
/// let m = Mutex::new(1);
/// let _ = std::panic::catch_unwind(|| {
///     let _g = m.lock().unwrap();
///     panic!("while holding the lock");
/// });
/// assert!(m.is_poisoned());
/// assert_eq!(*lock_unpoisoned(&m), 1);
/// ```
pub fn lock_unpoisoned<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
