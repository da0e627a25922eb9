//! The connections of one file: run them, save state on the way, add more while that helps.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use futures::future::Either;
use futures::stream::FuturesUnordered;
use reqwest::Response;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Flow;
use super::job::Job;
use super::ledger::{MIN_CLAIM, Span};
use crate::error::{TransferError, TransferErrorKind};
use rbee_artifact::lock_unpoisoned;

/// How long connection growth measures before deciding, at most: new connections must have
/// set up and reached their pace within it. A server that answered the first request
/// quickly gets a shorter window ([`growth_window`]).
pub(super) const GROWTH_WINDOW: Duration = Duration::from_millis(500);
/// The shortest window, so that a rate is still measured over many reads.
const MIN_GROWTH_WINDOW: Duration = Duration::from_millis(150);
/// The window in round trips: the first answer's time covers a connection's set-up and one
/// request, which is what each added connection goes through before it delivers.
const GROWTH_WINDOW_PER_FIRST_ANSWER: u32 = 4;
/// How often an idle connection, or the supervisor while none is idle, looks again for a
/// slow range to help.
const HEDGE_RECHECK: Duration = Duration::from_millis(50);
/// Helpers for slow ranges running at once, per this many connections: a slow connection is
/// rare, and each helper is one more connection to the server.
const CONNECTIONS_PER_HELPER: usize = 4;
/// A connection at least this fast is not being throttled: more would not help.
pub(super) const SLOW_CONNECTION: f64 = 64.0 * 1024.0 * 1024.0;

impl Job<'_> {
    /// Runs the connections until every range is written, saving state on the way and adding
    /// connections while that helps.
    pub(super) async fn run_workers(
        &self,
        first: (Response, (u64, u64), u64),
        stop: &CancellationToken,
        probe_attempts: u32,
        first_answer: Duration,
    ) -> Result<(), Flow> {
        let config = &self.inner.config;
        let mut workers = FuturesUnordered::new();
        workers.push(Either::Left(self.worker(Some(first), stop, probe_attempts)));
        let initial = lock_unpoisoned(&self.shared.book).workers;
        for _ in 1..initial {
            workers.push(Either::Left(self.worker(None, stop, 1)));
        }
        let max_helpers = (config.connections / CONNECTIONS_PER_HELPER).max(1);
        let mut hedge_check = tokio::time::interval(HEDGE_RECHECK);
        hedge_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut active = initial;
        let window = growth_window(first_answer);
        let mut growth = Growth::new(self.shared.received.load(Ordering::Relaxed), window);
        let mut growth_check = tokio::time::interval_at(Instant::now() + window, window);
        growth_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticker = tokio::time::interval_at(
            Instant::now() + config.state_interval,
            config.state_interval,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failure: Option<Flow> = None;
        loop {
            tokio::select! {
                next = workers.next() => match next {
                    // Connections that gave up helping a slow range may have handed its rest
                    // back after the others ended: one more connection fetches it.
                    None if failure.is_none() && self.shared.unclaimed_bytes() > 0 => {
                        workers.push(Either::Left(self.worker(None, stop, 1)));
                    }
                    None => break,
                    Some(Ok(())) => {}
                    Some(Err(flow)) => {
                        if failure.is_none() {
                            failure = Some(flow);
                            stop.cancel();
                        } else if let (Some(Flow::Fail(prev)), Flow::Fail(e)) = (&failure, &flow)
                            && prev.is_cancelled() && !e.is_cancelled()
                        {
                            failure = Some(flow);
                        }
                    }
                },
                _ = self.shared.save_soon.notified() => self.save_detached(),
                _ = hedge_check.tick(), if failure.is_none() => {
                    // Helpers count against the connection cap like any connection.
                    let room = config.max_connections.saturating_sub(active);
                    if let Some(span) = self.shared.help_slow_range(max_helpers.min(room)) {
                        workers.push(Either::Right(self.helper(span, stop)));
                    }
                }
                _ = ticker.tick() => self.save_detached(),
                _ = growth_check.tick(), if failure.is_none() && !growth.done => {
                    let parallel = lock_unpoisoned(&self.shared.book).claim_len != u64::MAX;
                    let add = growth.decide(
                        self.shared.received.load(Ordering::Relaxed),
                        active,
                        parallel,
                        config,
                        self.shared.unclaimed_bytes(),
                    );
                    let helpers = lock_unpoisoned(&self.shared.book).helpers;
                    let add = add.min(
                        config.max_connections.saturating_sub(active + helpers),
                    );
                    if add > 0 {
                        tracing::debug!(from = active, to = active + add, "adding connections");
                        active += add;
                        lock_unpoisoned(&self.shared.book).workers = active;
                        for _ in 0..add {
                            workers.push(Either::Left(self.worker(None, stop, 1)));
                        }
                    }
                }
            }
        }
        match failure {
            None => {
                let hedges = lock_unpoisoned(&self.shared.book).hedges;
                if hedges > 0 {
                    tracing::debug!(hedges, "idle connections helped slow ranges");
                }
                // A file smaller than one save's worth that never needed a save is published
                // next: a state now would cost a sync, a file and a rename, to bound a loss
                // already below what the saves bound it to.
                let total = lock_unpoisoned(&self.shared.book).total();
                let small = total.is_some_and(|t| t < self.shared.save_every);
                if !small || std::fs::symlink_metadata(&self.paths.state).is_ok() {
                    self.save_state().await;
                }
                Ok(())
            }
            Some(flow) => {
                // A user cancel wins over whatever the workers said while stopping.
                if self.cancel.is_cancelled() {
                    return Err(Flow::Fail(TransferError::cancelled()));
                }
                Err(flow)
            }
        }
    }

    /// A connection for one slow range's rest (see [`help_slow_range`](super::ledger::Shared::help_slow_range)).
    async fn helper(&self, span: Arc<Span>, stop: &CancellationToken) -> Result<(), Flow> {
        let result = self.fetch_range(&span, None, stop, 1).await;
        lock_unpoisoned(&self.shared.book).helpers -= 1;
        if self.gave_up_helping(&span, &result) {
            return Ok(());
        }
        self.shared.release(&span);
        result
    }

    /// Helping a slow range is optional: a helping request that failed on the server's
    /// answer (not the disk) ends this connection, not the file. What it did not fetch goes
    /// back to be claimed by the others; it does not claim it itself, as it would likely fail
    /// again. `true`: the span was handed back.
    fn gave_up_helping(&self, span: &Arc<Span>, result: &Result<(), Flow>) -> bool {
        let Err(Flow::Fail(e)) = result else {
            return false;
        };
        if !matches!(
            e.kind(),
            TransferErrorKind::Status
                | TransferErrorKind::Network
                | TransferErrorKind::Stalled
                | TransferErrorKind::NoResponse
        ) {
            return false;
        }
        tracing::debug!(error = %e, "a connection helping a slow range failed; dropping it");
        self.shared.give_back(span);
        true
    }

    /// One connection: takes ranges until none are left, then helps the slowest of the
    /// others until every range is done.
    pub(super) async fn worker(
        &self,
        mut first: Option<(Response, (u64, u64), u64)>,
        stop: &CancellationToken,
        attempts: u32,
    ) -> Result<(), Flow> {
        let mut attempts = attempts;
        loop {
            let (span, resp, helping) = match first.take() {
                Some((resp, (start, end), stream_end)) => (
                    self.shared.track(start, end),
                    Some((resp, stream_end)),
                    false,
                ),
                None => match self.shared.claim() {
                    Some((start, end)) => (self.shared.track(start, end), None, false),
                    None => match self.shared.hedge() {
                        Some(span) => (span, None, true),
                        None => {
                            if !self.shared.busy() {
                                return Ok(());
                            }
                            // Look again when a range finishes, or when rates have moved.
                            let done = self.shared.span_done.notified();
                            tokio::select! {
                                _ = done => {}
                                _ = tokio::time::sleep(HEDGE_RECHECK) => {}
                                _ = stop.cancelled() => {
                                    return Err(Flow::Fail(TransferError::cancelled()));
                                }
                            }
                            continue;
                        }
                    },
                },
            };
            let result = self.fetch_range(&span, resp, stop, attempts).await;
            if helping && self.gave_up_helping(&span, &result) {
                return Ok(());
            }
            self.shared.release(&span);
            result?;
            attempts = 1;
        }
    }
}

/// Decides when more connections help: each one is slow (a per-connection cap) and the total
/// still rose after the last increase.
#[derive(Debug)]
pub(super) struct Growth {
    pub(super) last_at: Instant,
    pub(super) last_received: u64,
    pub(super) base_rate: Option<f64>,
    pub(super) done: bool,
    window: Duration,
}

/// How long growth measures, from how long the first request took to answer.
pub(super) fn growth_window(first_answer: Duration) -> Duration {
    (first_answer * GROWTH_WINDOW_PER_FIRST_ANSWER).clamp(MIN_GROWTH_WINDOW, GROWTH_WINDOW)
}

impl Growth {
    pub(super) fn new(received: u64, window: Duration) -> Self {
        Self {
            last_at: Instant::now(),
            last_received: received,
            base_rate: None,
            done: false,
            window,
        }
    }

    pub(super) fn decide(
        &mut self,
        received: u64,
        active: usize,
        parallel: bool,
        config: &crate::TransferConfig,
        unclaimed: u64,
    ) -> usize {
        if self.done || !parallel {
            return 0;
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last_at);
        // Ticks come every window; one served late leaves the next a little short.
        if dt < self.window / 2 {
            return 0;
        }
        let rate = received.saturating_sub(self.last_received) as f64 / dt.as_secs_f64();
        self.last_at = now;
        self.last_received = received;
        if active >= config.max_connections {
            self.done = true;
            return 0;
        }
        if let Some(limit) = config.rate_limit
            && rate >= limit as f64 * 0.8
        {
            // The limit, not the connections, is what holds us back.
            return 0;
        }
        if rate / active as f64 >= SLOW_CONNECTION {
            self.done = true;
            return 0;
        }
        let rising = self.base_rate.is_none_or(|base| rate > base * 1.15);
        if !rising {
            self.done = true;
            return 0;
        }
        self.base_rate = Some(rate);
        let by_work = (unclaimed / MIN_CLAIM) as usize;
        active.min(config.max_connections - active).min(by_work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_measures_over_a_few_first_answers_within_bounds() {
        let ms = Duration::from_millis;
        // Loopback or a nearby server: the shortest window.
        assert_eq!(growth_window(ms(1)), MIN_GROWTH_WINDOW);
        assert_eq!(growth_window(ms(50)), ms(200));
        // A far server, or one that took long to answer: never longer than before.
        assert_eq!(growth_window(ms(400)), GROWTH_WINDOW);
        assert_eq!(growth_window(Duration::from_secs(30)), GROWTH_WINDOW);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_that_rose_with_the_connections_adds_more_and_one_that_did_not_stops() {
        let config = crate::TransferConfig::default();
        let window = MIN_GROWTH_WINDOW;
        let mut growth = Growth::new(0, window);
        let mib = 1 << 20;
        let unclaimed = 1 << 30;
        // Before a window has passed, nothing is decided.
        assert_eq!(growth.decide(mib, 8, true, &config, unclaimed), 0);
        // 8 slow connections: doubled.
        tokio::time::advance(window).await;
        assert_eq!(growth.decide(3 * mib, 8, true, &config, unclaimed), 8);
        // 16 brought twice the rate: doubled again, up to the maximum.
        tokio::time::advance(window).await;
        assert_eq!(growth.decide(9 * mib, 16, true, &config, unclaimed), 16);
        // 16 brought no more than 8 did: growth ends for good.
        let mut growth = Growth::new(0, window);
        tokio::time::advance(window).await;
        assert_eq!(growth.decide(3 * mib, 8, true, &config, unclaimed), 8);
        tokio::time::advance(window).await;
        assert_eq!(growth.decide(6 * mib, 16, true, &config, unclaimed), 0);
        assert!(growth.done);
    }
}
