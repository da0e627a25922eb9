//! At most one `progress` event per interval, decided without a lock: byte counting asks on
//! every write, from any number of threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(super) struct Throttle {
    epoch: Instant,
    interval_ns: u64,
    /// Nanoseconds since `epoch` of the last time a caller was let through; 0 before the first.
    last_ns: AtomicU64,
}

impl Throttle {
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            interval_ns: interval.as_nanos() as u64,
            last_ns: AtomicU64::new(0),
        }
    }

    /// Whether the caller may emit now. The first call passes; later ones pass once `interval`
    /// has gone by since the last that did, and of concurrent callers only one wins.
    pub(super) fn ready(&self) -> bool {
        let now_ns = self.epoch.elapsed().as_nanos() as u64;
        let last = self.last_ns.load(Ordering::Relaxed);
        if last != 0 && now_ns.saturating_sub(last) < self.interval_ns {
            return false;
        }
        self.last_ns
            .compare_exchange(last, now_ns.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn lets_one_caller_through_per_interval() {
        let t = Throttle::new(Duration::from_millis(100));
        assert!(t.ready(), "the first call passes");
        assert!(!t.ready());
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(!t.ready());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(t.ready());
        assert!(!t.ready());
    }
}
