//! Speed over a sliding window of samples, and the time left at that speed.

use std::time::Duration;

use tokio::time::Instant;

/// Samples of bytes moved, kept for one window.
#[derive(Debug, Default)]
pub(super) struct SpeedWindow {
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl SpeedWindow {
    /// Starts the window at `moved` now, unless it has started already, so the first reading
    /// after bytes begin to move is a real rate instead of 0.
    pub(super) fn start(&mut self, now: Instant, moved: u64) {
        if self.samples.is_empty() {
            self.samples.push_back((now, moved));
        }
    }

    /// Bytes per second between the oldest sample still in the window and `moved` now.
    pub(super) fn rate(&mut self, now: Instant, moved: u64, window: Duration) -> f64 {
        let newest_is_recent = self
            .samples
            .back()
            .is_some_and(|(t, _)| now.duration_since(*t) < window / 50);
        if !newest_is_recent {
            self.samples.push_back((now, moved));
        }
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= window)
        {
            self.samples.pop_front();
        }
        let Some(&(t0, b0)) = self.samples.front() else {
            return 0.0;
        };
        let elapsed = now.duration_since(t0).as_secs_f64();
        if elapsed < 0.05 {
            return 0.0;
        }
        moved.saturating_sub(b0) as f64 / elapsed
    }
}

/// Seconds left for `total - bytes` at `rate`, when both are known.
pub(super) fn eta(bytes: u64, total: u64, rate: f64) -> Option<f64> {
    (total > 0 && rate > 0.0).then(|| total.saturating_sub(bytes) as f64 / rate)
}
