//! A token bucket shared by every connection of every transfer of one `Transfer`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Bytes per second across all callers. Callers take tokens for the bytes they just received
/// and sleep off any debt, which slows their reads and so, through TCP flow control, the
/// sender: the limit holds for the wire, not just for the disk.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// May go negative: a debt the next takers wait for.
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        // A tenth of a second of burst keeps the rate smooth without starving small reads.
        let burst = (rate / 10.0).max(16.0 * 1024.0);
        Self {
            rate,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    /// How long the caller must wait after taking `n` bytes now.
    fn take(&self, n: u64) -> Duration {
        let mut b = rbee_artifact::lock_unpoisoned(&self.state);
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.tokens -= n as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.rate)
        }
    }

    /// Accounts for `n` bytes and waits until the rate allows them. Returns `false` when
    /// cancelled while waiting.
    pub(crate) async fn acquire(&self, n: u64, cancel: &CancellationToken) -> bool {
        let wait = self.take(n);
        if wait.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = cancel.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_across_callers() {
        let limiter = std::sync::Arc::new(RateLimiter::new(1_000_000));
        let cancel = CancellationToken::new();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let l = limiter.clone();
            let c = cancel.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    assert!(l.acquire(10_000, &c).await);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 2 MB at 1 MB/s, less the initial burst of 100 kB: about 1.9 s of (virtual) time.
        let secs = start.elapsed().as_secs_f64();
        assert!((1.85..=2.0).contains(&secs), "{secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_is_cancellable() {
        let limiter = RateLimiter::new(1000);
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(!limiter.acquire(1_000_000, &cancel).await);
    }
}
