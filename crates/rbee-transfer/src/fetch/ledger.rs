//! The ledger of one file: what is written, what is left to hand out, and the resume state
//! saved from it.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use rbee_artifact::lock_unpoisoned;
use url::Url;

use super::hasher::HashCell;
use super::job::Job;
use crate::engine::SyncCounts;
use crate::state::PartState;
use crate::written::WrittenBoard;

/// The smallest range handed out near the end of a file.
pub(super) const MIN_CLAIM: u64 = 1 << 20;
/// Split points of a range taken over by another connection are multiples of this.
const SPLIT_ALIGN: u64 = 64 << 10;
/// A range's rate is not judged before it has run this long (connection set-up dominates).
const JUDGE_AFTER: Duration = Duration::from_millis(100);
/// A connection this many times slower than a typical one has its range split or raced...
const SLOW_BELOW: f64 = 4.0;
/// ... when it would need at least this long for the rest: less is not worth a request, nor
/// the bytes in flight that the split or race fetches twice.
const WORTH_HEDGING: Duration = Duration::from_millis(500);

/// A range connections are fetching. Its bytes are taken in order through [`Span::accept`]:
/// each byte by whichever connection delivers it first, and written once. An idle connection
/// may take over its back part or race its owner for the rest (see [`Shared::hedge`]).
#[derive(Debug)]
pub(super) struct Span {
    m: Mutex<SpanState>,
}

#[derive(Debug)]
struct SpanState {
    /// Bytes before this are taken: written, or in a connection's buffer on their way.
    frontier: u64,
    /// Where the span ends; lowered when another connection takes over the rest.
    end: u64,
    /// Where and when it started (its rate).
    from: u64,
    since: Instant,
    /// Connections on it.
    writers: u32,
}

impl SpanState {
    fn rest(&self) -> u64 {
        self.end.saturating_sub(self.frontier)
    }

    /// Bytes per second taken so far; `None` while too young to judge.
    fn rate(&self, now: Instant) -> Option<f64> {
        let age = now.duration_since(self.since);
        (age >= JUDGE_AFTER).then(|| (self.frontier - self.from) as f64 / age.as_secs_f64())
    }
}

impl Span {
    fn new(start: u64, end: u64) -> Arc<Self> {
        Arc::new(Self {
            m: Mutex::new(SpanState {
                frontier: start,
                end,
                from: start,
                since: Instant::now(),
                writers: 1,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, SpanState> {
        lock_unpoisoned(&self.m)
    }

    /// Where a connection (re)opening the span starts and where it ends; `None` when every
    /// byte of it is taken.
    pub(super) fn next(&self) -> Option<(u64, u64)> {
        let s = self.state();
        (s.frontier < s.end).then_some((s.frontier, s.end))
    }

    /// A connection received `[at, at + len)`: takes the part nobody took before it. Returns
    /// where that part starts and its length (0: none), and whether the span is complete.
    /// Bytes before the frontier were taken by another connection racing this one, and bytes
    /// past the end belong to the connection that took over the rest: both are dropped.
    pub(super) fn accept(&self, at: u64, len: u64) -> (u64, u64, bool) {
        let mut s = self.state();
        let from = at.max(s.frontier);
        let to = at.saturating_add(len).min(s.end);
        // A connection never gets ahead of the frontier: it starts there and advances it.
        debug_assert!(at <= s.frontier);
        let take = to.saturating_sub(from);
        s.frontier += take;
        (from, take, s.frontier >= s.end)
    }
}

/// The ledger of one file: what is written, what is left to hand out.
#[derive(Debug)]
pub(super) struct Book {
    pub(super) st: PartState,
    pub(super) dirty: bool,
    pub(super) unclaimed: VecDeque<(u64, u64)>,
    /// Range length handed out (`u64::MAX`: whole gaps, one connection).
    pub(super) claim_len: u64,
    pub(super) workers: usize,
    pub(super) notified_prefix: u64,
    /// Bytes written since the resume state was last saved.
    pub(super) unsaved: u64,
    /// One connection, one open-ended request: the server gives no validator, so separate
    /// range requests could not be proven to come from the same version of the file.
    pub(super) single: bool,
    /// Ranges being fetched.
    pub(super) active: Vec<Arc<Span>>,
    /// Bytes and seconds of recently finished ranges (older ones weigh less): their ratio is
    /// what a fresh connection may expect.
    pub(super) finished: (f64, f64),
    /// Ranges taken over or raced by another connection.
    pub(super) hedges: u64,
    /// One-range connections started to help a slow range while every other one was busy.
    pub(super) helpers: usize,
    /// Whether idle connections may help slow ones: not under the engine's rate limit, which
    /// then sets the pace (slow connections are its doing, and bytes fetched twice would
    /// spend it twice).
    pub(super) hedging: bool,
}

impl Book {
    pub(super) fn total(&self) -> Option<u64> {
        self.st.validators.total
    }
}

/// Where ranges are sent: the final URL after the first redirect chain.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) url: Url,
    pub(super) generation: u64,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) file: File,
    pub(super) book: Mutex<Book>,
    pub(super) hash: HashCell,
    pub(super) target: Mutex<Target>,
    /// Bytes received by this process (for connection growth).
    pub(super) received: AtomicU64,
    pub(super) state_path: PathBuf,
    pub(super) syncs: Arc<SyncCounts>,
    /// While set, dropping the job saves the resume state.
    pub(super) armed: AtomicBool,
    /// A save of the written state runs on a blocking thread.
    pub(super) saving: AtomicBool,
    /// A `sync_data` (then a save recording what it made durable) runs on a blocking thread.
    pub(super) syncing: AtomicBool,
    /// Bumped whenever the partial's bytes are forgotten, so a sync that began before does
    /// not vouch for bytes written after.
    pub(super) resets: AtomicU64,
    /// Woken when `unsaved` passes `save_every`.
    pub(super) save_soon: tokio::sync::Notify,
    pub(super) save_every: u64,
    /// Requests answered by silence so far (see [`MAX_SILENT_ANSWERS`]).
    pub(super) silent: AtomicU32,
    /// What readers of the growing file may read (see [`crate::watch_written`]).
    pub(super) written: WrittenBoard,
    /// Woken when a range is finished, so idle connections look for one to help.
    pub(super) span_done: tokio::sync::Notify,
}

impl Shared {
    /// Records `[off, off+len)` as written and wakes the hasher when the prefix grew.
    pub(super) fn mark_written(&self, off: u64, len: u64) {
        let prefix = {
            let mut b = lock_unpoisoned(&self.book);
            b.st.done.insert(off, off + len);
            self.written.publish(&b.st.done);
            b.dirty = true;
            b.unsaved += len;
            if b.unsaved >= self.save_every {
                // Bounds what a kill -9 loses to well under one range, however fast bytes
                // arrive.
                self.save_soon.notify_one();
            }
            let prefix = b.st.done.prefix_end();
            if prefix <= b.notified_prefix {
                return;
            }
            b.notified_prefix = prefix;
            prefix
        };
        let mut h = lock_unpoisoned(&self.hash.m);
        h.available = h.available.max(prefix);
        self.hash.cv.notify_one();
    }

    /// The resume state as it is now, for a save: what was written so far counts as saved.
    pub(super) fn snapshot(&self) -> PartState {
        {
            let mut b = lock_unpoisoned(&self.book);
            b.dirty = false;
            b.unsaved = 0;
        }
        self.current()
    }

    /// The resume state as it is now: written ranges plus the hasher's last published state.
    fn current(&self) -> PartState {
        let mut st = lock_unpoisoned(&self.book).st.clone();
        let h = lock_unpoisoned(&self.hash.m);
        if h.snapshot.is_some() && h.hashed <= st.done.prefix_end() {
            st.hashed = h.hashed;
            st.hasher = h.snapshot.clone();
        } else if st.hashed > st.done.prefix_end() || st.hasher.is_none() {
            st.hashed = 0;
            st.hasher = None;
        }
        st
    }

    /// Makes the written bytes durable, records them as such, and writes the resume state. Only
    /// what was written before the `sync_data` began is recorded durable: a state that claimed
    /// durable bytes the disk may not hold would, after a power loss, resume over holes.
    pub(super) fn persist(&self) -> std::io::Result<()> {
        let resets = self.resets.load(Ordering::Acquire);
        let synced = self.current().written_view();
        self.file.sync_data()?;
        {
            let mut b = lock_unpoisoned(&self.book);
            if self.resets.load(Ordering::Acquire) == resets {
                b.st.mark_durable(synced);
            }
        }
        self.syncs.states.fetch_add(1, Ordering::Relaxed);
        self.snapshot().save(&self.state_path)
    }

    pub(super) fn save_sync(&self) {
        if let Err(e) = self.persist() {
            tracing::warn!(path = %self.state_path.display(), error = %e, "could not save the resume state");
        }
    }

    /// Hands out the next range to fetch.
    pub(super) fn claim(&self) -> Option<(u64, u64)> {
        let mut b = lock_unpoisoned(&self.book);
        let (s, e) = b.unclaimed.pop_front()?;
        let mut len = e - s;
        if b.claim_len != u64::MAX {
            let remaining: u64 = len + b.unclaimed.iter().map(|(s, e)| e - s).sum::<u64>();
            // Near the end, smaller ranges keep every connection busy to the last byte.
            let fair = (remaining / (b.workers as u64 * 2).max(1)).max(MIN_CLAIM);
            len = len.min(b.claim_len).min(fair);
        }
        if s + len < e {
            b.unclaimed.push_front((s + len, e));
        }
        Some((s, s + len))
    }

    /// Starts fetching `[start, end)` on a connection.
    pub(super) fn track(&self, start: u64, end: u64) -> Arc<Span> {
        let span = Span::new(start, end);
        lock_unpoisoned(&self.book).active.push(span.clone());
        span
    }

    /// A connection is done with `span` (finished, taken over, or failed).
    pub(super) fn release(&self, span: &Arc<Span>) {
        let mut b = lock_unpoisoned(&self.book);
        let mut s = span.state();
        s.writers = s.writers.saturating_sub(1);
        if s.writers == 0 {
            if s.rest() == 0 {
                // Bytes over time of the last few finished ranges, weighted by their time, so a
                // short burst (a rate limit's first bucket) barely counts.
                let age = Instant::now().duration_since(s.since).as_secs_f64();
                let (bytes, secs) = b.finished;
                b.finished = (bytes * 0.8 + (s.frontier - s.from) as f64, secs * 0.8 + age);
            }
            drop(s);
            b.active.retain(|a| !Arc::ptr_eq(a, span));
        }
        drop(b);
        self.span_done.notify_waiters();
    }

    /// A connection that helped with `span` stops: when nobody else is on it, the rest of
    /// it is handed out again.
    pub(super) fn give_back(&self, span: &Arc<Span>) {
        {
            let mut b = lock_unpoisoned(&self.book);
            let s = span.state();
            if s.writers == 1 && s.rest() > 0 {
                b.unclaimed.push_front((s.frontier, s.end));
            }
        }
        self.release(span);
    }

    /// Whether any range is still being fetched or waits to be (a range given back).
    pub(super) fn busy(&self) -> bool {
        let b = lock_unpoisoned(&self.book);
        !b.active.is_empty() || !b.unclaimed.is_empty()
    }

    /// Help for the range whose rest will take longest, when its connection is far slower
    /// than a typical one ([`SLOW_BELOW`]) and would need more than [`WORTH_HEDGING`] for it:
    /// either split (the caller's connection takes the back part, sized so that both should
    /// end together) or, when too little is left to split, raced for the rest. Asked by idle
    /// connections and, while every connection is busy, by the supervisor for a one-range
    /// helper, so a slow connection is relieved as soon as it is measured rather than when
    /// nothing is left to hand out. `None`: no range is worth it (connections of about the
    /// same speed are left alone: hedging them would only fetch bytes twice).
    pub(super) fn hedge(&self) -> Option<Arc<Span>> {
        let mut b = lock_unpoisoned(&self.book);
        if b.claim_len == u64::MAX || !b.hedging {
            // One connection for the whole file (nothing to split), or a rate limit.
            return None;
        }
        let now = Instant::now();
        let min_split = (b.claim_len / 4).clamp(SPLIT_ALIGN, MIN_CLAIM);
        let running: Vec<f64> = b
            .active
            .iter()
            .filter_map(|span| span.state().rate(now))
            .collect();
        let typical = typical_rate(b.finished, running)?;
        let mut worst: Option<(f64, usize, f64)> = None;
        for (i, span) in b.active.iter().enumerate() {
            let s = span.state();
            let Some(rate) = s.rate(now) else { continue };
            let rest = s.rest();
            if rest == 0 {
                continue;
            }
            let eta = rest as f64 / rate.max(1.0);
            if worst.is_none_or(|(w, _, _)| eta > w) {
                worst = Some((eta, i, rate));
            }
        }
        let (eta, i, rate) = worst?;
        if rate * SLOW_BELOW >= typical || eta < WORTH_HEDGING.as_secs_f64() {
            return None;
        }
        let span = b.active[i].clone();
        let mut s = span.state();
        let rest = s.rest();
        let keep_to = s.frontier + (rest as f64 * rate / (rate + typical)) as u64;
        let split = keep_to.div_ceil(SPLIT_ALIGN) * SPLIT_ALIGN;
        if split < s.end && s.end - split >= min_split {
            let end = s.end;
            s.end = split;
            drop(s);
            tracing::debug!(
                from = split,
                to = end,
                "taking over the rest of a slow range"
            );
            let thief = Span::new(split, end);
            b.active.push(thief.clone());
            b.hedges += 1;
            return Some(thief);
        }
        if s.writers > 1 {
            return None;
        }
        s.writers += 1;
        drop(s);
        tracing::debug!(
            bytes = rest,
            "racing a slow connection for the rest of its range"
        );
        b.hedges += 1;
        Some(span)
    }

    /// Work for a helper connection while ranges are still to be handed out and every
    /// connection is busy with one: the back of a slow range, or a race for its rest (see
    /// [`Shared::hedge`]), at most `max_helpers` at a time. Once nothing is left to hand out,
    /// connections that run out of work help instead.
    pub(super) fn help_slow_range(&self, max_helpers: usize) -> Option<Arc<Span>> {
        {
            let b = lock_unpoisoned(&self.book);
            if b.helpers >= max_helpers || b.unclaimed.is_empty() {
                return None;
            }
        }
        let span = self.hedge()?;
        lock_unpoisoned(&self.book).helpers += 1;
        Some(span)
    }

    pub(super) fn unclaimed_bytes(&self) -> u64 {
        lock_unpoisoned(&self.book)
            .unclaimed
            .iter()
            .map(|(s, e)| e - s)
            .sum()
    }

    pub(super) fn stop_hasher(&self) {
        let mut h = lock_unpoisoned(&self.hash.m);
        h.abort = true;
        self.hash.cv.notify_all();
    }
}

/// What a connection of this file typically achieves: the larger of what recently finished
/// ranges took and the median rate of the ranges running now (those old enough to judge).
/// Running ranges are what tell a slow connection from the others before any range has
/// finished; two are needed, so that a lone range is never measured against itself.
fn typical_rate(finished: (f64, f64), mut rates: Vec<f64>) -> Option<f64> {
    let done = match finished {
        (bytes, secs) if secs > 0.0 => Some(bytes / secs),
        _ => None,
    };
    let now = (rates.len() >= 2).then(|| {
        rates.sort_by(f64::total_cmp);
        // The upper median: with one slow range of two, the other one is the measure.
        rates[rates.len() / 2]
    });
    match (done, now) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Job<'_> {
    /// Writes the resume state if anything changed since the last time, and waits for it.
    pub(super) async fn save_state(&self) {
        self.settle_saves().await;
        if !self.shared.armed.load(Ordering::Acquire) || !lock_unpoisoned(&self.shared.book).dirty {
            return;
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.save_sync()).await;
    }

    /// Starts writing the resume state without waiting (the connections keep running): the
    /// written state at once, without waiting for the disk (it bounds what a `kill -9` loses,
    /// however slow a sync is), and a `sync_data` that then advances the durable state (what
    /// a power loss keeps). Each is skipped while the previous one is still in flight.
    pub(super) fn save_detached(&self) {
        if !self.shared.armed.load(Ordering::Acquire) || !lock_unpoisoned(&self.shared.book).dirty {
            return;
        }
        if !self.shared.saving.swap(true, Ordering::AcqRel) {
            let st = self.shared.snapshot();
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || {
                if shared.armed.load(Ordering::Acquire)
                    && let Err(e) = st.save(&shared.state_path)
                {
                    tracing::warn!(path = %shared.state_path.display(), error = %e, "could not save the resume state");
                }
                shared.saving.store(false, Ordering::Release);
            });
        }
        if !self.shared.syncing.swap(true, Ordering::AcqRel) {
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || {
                if shared.armed.load(Ordering::Acquire) {
                    shared.save_sync();
                }
                shared.syncing.store(false, Ordering::Release);
            });
        }
    }

    /// Waits until no detached save or sync is in flight.
    pub(super) async fn settle_saves(&self) {
        while self.shared.saving.load(Ordering::Acquire)
            || self.shared.syncing.load(Ordering::Acquire)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_typical_rate_needs_a_finished_range_or_two_running() {
        assert_eq!(typical_rate((0.0, 0.0), vec![]), None);
        // A lone range is never measured against itself.
        assert_eq!(typical_rate((0.0, 0.0), vec![5.0]), None);
        // One slow range of two: the other is the measure.
        assert_eq!(typical_rate((0.0, 0.0), vec![100.0, 5.0]), Some(100.0));
        assert_eq!(typical_rate((0.0, 0.0), vec![5.0, 90.0, 100.0]), Some(90.0));
        assert_eq!(typical_rate((300.0, 3.0), vec![5.0]), Some(100.0));
        // Whichever says more: a slow range stands out against either.
        assert_eq!(typical_rate((300.0, 3.0), vec![5.0, 200.0]), Some(200.0));
        assert_eq!(typical_rate((900.0, 3.0), vec![5.0, 200.0]), Some(300.0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Two connections racing over one span, their chunks arriving in any interleaving:
        /// every byte is taken exactly once, in order, and the span completes.
        #[test]
        fn racing_connections_take_each_byte_once(
            start in 0u64..1000,
            len in 1u64..5000,
            chunks in proptest::collection::vec((any::<bool>(), 1u64..700), 1..200),
            lowered in proptest::option::of(0u64..5000),
        ) {
            let span = Span::new(start, start + len);
            // A split may lower the end while the connections run.
            if let Some(cut) = lowered {
                let mut s = span.state();
                s.end = s.end.min(start + cut).max(s.frontier);
            }
            let end = span.state().end;
            let mut taken = crate::ranges::RangeSet::new();
            let mut taken_len = 0;
            let mut at = [start, start];
            let mut complete = false;
            for (second, n) in chunks.into_iter().chain(std::iter::repeat_n((false, 700), 20)) {
                let w = usize::from(second);
                let (off, take, done) = span.accept(at[w], n);
                if take > 0 {
                    prop_assert_eq!(off, taken.ranges().last().map_or(start, |r| r.1));
                    taken.insert(off, off + take);
                    taken_len += take;
                }
                at[w] += n;
                complete = done;
                if done {
                    break;
                }
            }
            prop_assert!(complete);
            prop_assert_eq!(taken_len, end - start, "each byte once");
            let whole = if end > start { vec![(start, end)] } else { vec![] };
            prop_assert_eq!(taken.ranges(), whole.as_slice());
            prop_assert_eq!(span.next(), None);
        }
    }
}
