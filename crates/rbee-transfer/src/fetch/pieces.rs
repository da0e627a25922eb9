//! A file fetched piece by piece from a [`PieceSource`] instead of ranges of its URL: the
//! same ledger, resume state, hasher and publishing as ranged GETs, with the source's calls
//! in place of the connections.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rbee_artifact::{DownloadedFile, lock_unpoisoned};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Flow;
use super::job::Job;
use super::piece_source::PieceSource;
use super::stream::WRITE_BUFFER;
use crate::error::TransferError;

/// The most a sink buffers between [`PieceSink::settle`] calls before writing it out anyway.
const HELD_AT_MOST: usize = 4 * WRITE_BUFFER;

/// Where a [`PieceSource`] puts the bytes of one piece: positional writes into the partial
/// file, past the bytes an earlier attempt already wrote.
pub struct PieceSink<'a> {
    job: &'a Job<'a>,
    stop: &'a CancellationToken,
    /// Moves whenever bytes arrive or are handed over: the stall watchdog's pulse.
    activity: &'a AtomicU64,
    start: u64,
    /// File offset of the next byte the source hands over.
    at: u64,
    end: u64,
    /// Bytes before this are on disk already.
    skip_to: u64,
    buf: Vec<u8>,
    buf_at: u64,
}

impl std::fmt::Debug for PieceSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceSink")
            .field("span", &(self.start..self.end))
            .field("at", &self.at)
            .field("skip_to", &self.skip_to)
            .finish_non_exhaustive()
    }
}

impl PieceSink<'_> {
    /// The span of the file this piece fills.
    pub fn span(&self) -> Range<u64> {
        self.start..self.end
    }

    /// The file offset before which the engine already holds every byte of this piece (a
    /// retry, or a resume after the process was stopped). The bytes must still be handed over
    /// in order; those before this offset are not written again.
    pub fn have_until(&self) -> u64 {
        self.skip_to
    }

    /// Moves past the bytes the engine already holds without their being handed over, for a
    /// source that can start in the middle of a piece: the next byte handed over is the one
    /// at [`have_until`](Self::have_until).
    pub fn skip_held(&mut self) {
        if self.at < self.skip_to {
            self.at = self.skip_to;
        }
    }

    /// Counts `n` bytes received from the network for this piece: waits for the engine's rate
    /// limit and tells the stall watchdog the piece is moving. Errors once the transfer is
    /// cancelled.
    pub async fn received(&mut self, n: u64) -> Result<(), TransferError> {
        self.activity.fetch_add(1, Ordering::Relaxed);
        if let Some(limiter) = &self.job.inner.limiter
            && !limiter.acquire(n, self.stop).await
        {
            return Err(TransferError::cancelled());
        }
        if self.stop.is_cancelled() {
            return Err(TransferError::cancelled());
        }
        self.job.shared.received.fetch_add(n, Ordering::Relaxed);
        // After the limit's wait too, so a long wait does not look like a stall.
        self.activity.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Hands over the next `bytes` of the piece. More bytes than the piece holds are refused
    /// (the source was told wrong lengths): nothing past the piece is written.
    ///
    /// Bytes are buffered and written out in large blocks: at [`settle`](Self::settle), or
    /// here once several blocks are waiting.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), TransferError> {
        if self.stop.is_cancelled() {
            return Err(TransferError::cancelled());
        }
        let len = bytes.len() as u64;
        if len > self.end - self.at {
            return Err(TransferError::protocol(format!(
                "{}: {} more bytes for a piece ({}-{}) with {} left",
                self.job.what,
                len,
                self.start,
                self.end,
                self.end - self.at
            )));
        }
        self.activity.fetch_add(1, Ordering::Relaxed);
        let from = self.at.max(self.skip_to);
        let to = self.at + len;
        if from < to {
            if self.buf.is_empty() {
                self.buf_at = from;
            }
            self.buf
                .extend_from_slice(&bytes[(from - self.at) as usize..]);
            self.job.progress.advance(to - from);
            if self.buf.len() >= HELD_AT_MOST {
                self.flush().await?;
            }
        }
        self.at = to;
        Ok(())
    }

    /// Writes out what is buffered once it fills a block. A source calls it after letting go
    /// of the network bytes its writes came from: the HTTP client can then read into the same
    /// buffer again, where a write made while it is still held makes the client allocate
    /// (and map, and fault in) a new one for every read.
    pub async fn settle(&mut self) -> Result<(), TransferError> {
        if self.buf.len() >= WRITE_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransferError> {
        let at = self.buf_at;
        match self.job.flush(&mut self.buf, at).await {
            Ok(()) => Ok(()),
            Err(flow) => Err(flow_error(flow)),
        }
    }
}

/// The error inside a `Flow` from a write (writes only ever fail).
fn flow_error(flow: Flow) -> TransferError {
    match flow {
        Flow::Fail(e) | Flow::Reresolve(e) | Flow::Restart(_, Some(e)) => e,
        Flow::Restart(reason, None) => TransferError::protocol(reason),
        Flow::Again => TransferError::protocol("writing a piece failed"),
    }
}

/// The size of a file made of `pieces`, when they follow each other from 0 without gaps.
pub(crate) fn pieces_total(pieces: &[Range<u64>]) -> Option<u64> {
    let mut at = 0;
    for p in pieces {
        if p.start != at || p.end <= p.start {
            return None;
        }
        at = p.end;
    }
    Some(at)
}

impl Job<'_> {
    /// Fetches the file from `source`, continuing what an earlier run left: verify, publish.
    pub(super) async fn run_pieces(
        &self,
        source: &dyn PieceSource,
    ) -> Result<DownloadedFile, TransferError> {
        let Some(total) = pieces_total(source.pieces()) else {
            return Err(TransferError::protocol(format!(
                "{}: its pieces do not follow each other from the start of the file",
                self.what
            )));
        };
        self.check_announced(Some(total)).map_err(flow_error)?;
        self.prove_resume().await?;
        self.shared
            .written
            .publish(&lock_unpoisoned(&self.shared.book).st.done);
        let max_restarts = self.inner.retry.max_attempts();
        let mut restarts = 0;
        loop {
            let attempt = self.attempt_pieces(source, total).await;
            if let Err(Flow::Fail(e) | Flow::Restart(_, Some(e))) = &attempt
                && e.kind() == crate::TransferErrorKind::Integrity
            {
                source.digest_mismatch().await;
            }
            match attempt {
                Ok(done) => {
                    source.completed(self.dest).await;
                    return Ok(done);
                }
                Err(Flow::Restart(reason, _)) if restarts < max_restarts => {
                    restarts += 1;
                    tracing::info!(path = %self.dest.display(), %reason, "starting the file over");
                    self.progress.retrying(
                        restarts + 1,
                        Duration::ZERO,
                        format!("{reason}; starting over"),
                    );
                    self.reset_data()?;
                }
                Err(flow) => {
                    self.shared.stop_hasher();
                    self.save_state().await;
                    return Err(flow_error(flow));
                }
            }
        }
    }

    async fn attempt_pieces(
        &self,
        source: &dyn PieceSource,
        total: u64,
    ) -> Result<DownloadedFile, Flow> {
        let todo: VecDeque<usize> = {
            let mut b = lock_unpoisoned(&self.shared.book);
            if b.st.validators.total.is_some_and(|t| t != total) {
                drop(b);
                self.reset_data()?;
                b = lock_unpoisoned(&self.shared.book);
            }
            b.st.validators.total = Some(total);
            b.dirty = true;
            let pieces = source.pieces();
            (0..pieces.len())
                .filter(|&i| !b.st.done.contains(pieces[i].start, pieces[i].end))
                .collect()
        };
        if todo.is_empty() {
            return self.finish(total, self.start_hasher()).await;
        }
        self.check_space(total)?;
        self.progress.set_size(total);
        self.preallocate(total)?;
        if lock_unpoisoned(&self.shared.book).st.done.len() > 0
            || std::fs::symlink_metadata(&self.paths.state).is_ok()
        {
            self.save_state().await;
        }
        let hasher = self.start_hasher();
        let stop = self.cancel.child_token();
        if let Err(flow) = self.run_piece_workers(source, todo, &stop).await {
            self.drain_hasher(hasher).await;
            return Err(flow);
        }
        if !lock_unpoisoned(&self.shared.book).st.done.covers(total) {
            return Err(Flow::Fail(TransferError::protocol(format!(
                "{}: pieces are missing after the transfer",
                self.what
            ))));
        }
        self.finish(total, hasher).await
    }

    /// Runs up to [`connections`](crate::TransferConfig::connections) pieces at once until
    /// `todo` is done, saving the resume state on the way.
    async fn run_piece_workers(
        &self,
        source: &dyn PieceSource,
        todo: VecDeque<usize>,
        stop: &CancellationToken,
    ) -> Result<(), Flow> {
        let config = &self.inner.config;
        let count = config.connections.max(1).min(todo.len());
        let queue = Mutex::new(todo);
        let queue = &queue;
        let mut workers: FuturesUnordered<_> = (0..count)
            .map(|_| async move {
                loop {
                    let Some(index) = lock_unpoisoned(queue).pop_front() else {
                        return Ok(());
                    };
                    self.fetch_piece(source, index, stop).await?;
                }
            })
            .collect();
        let mut ticker = tokio::time::interval_at(
            Instant::now() + config.state_interval,
            config.state_interval,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failure: Option<Flow> = None;
        loop {
            tokio::select! {
                next = workers.next() => match next {
                    None => break,
                    Some(Ok(())) => {}
                    Some(Err(flow)) => {
                        let cancelled = matches!(&flow, Flow::Fail(e) if e.is_cancelled());
                        let replace = match &failure {
                            None => true,
                            Some(Flow::Fail(prev)) => prev.is_cancelled() && !cancelled,
                            Some(_) => false,
                        };
                        if replace {
                            failure = Some(flow);
                        }
                        stop.cancel();
                    }
                },
                _ = self.shared.save_soon.notified() => self.save_detached(),
                _ = ticker.tick() => self.save_detached(),
            }
        }
        match failure {
            None => {
                self.save_state().await;
                Ok(())
            }
            // A user cancel wins over whatever the pieces said while stopping.
            Some(_) if self.cancel.is_cancelled() => Err(Flow::Fail(TransferError::cancelled())),
            Some(flow) => Err(flow),
        }
    }

    /// One piece, retried after transient failures from the first byte not yet on disk.
    async fn fetch_piece(
        &self,
        source: &dyn PieceSource,
        index: usize,
        stop: &CancellationToken,
    ) -> Result<(), Flow> {
        let span = source.pieces()[index].clone();
        let what = format!(
            "{} (piece {index}, bytes {}-{})",
            self.what, span.start, span.end
        );
        let mut attempt = 1;
        loop {
            let skip_to = lock_unpoisoned(&self.shared.book)
                .st
                .done
                .covered_from(span.start)
                .min(span.end);
            if skip_to >= span.end {
                return Ok(());
            }
            let activity = AtomicU64::new(0);
            let mut sink = PieceSink {
                job: self,
                stop,
                activity: &activity,
                start: span.start,
                at: span.start,
                end: span.end,
                skip_to,
                buf: Vec::new(),
                buf_at: span.start,
            };
            let outcome = self
                .watch(source.fetch_piece(index, &mut sink), &activity, stop, &what)
                .await;
            // What arrived is good: keep it for the retry or the resume.
            let flushed = sink.flush().await;
            let outcome = outcome.and(flushed).and_then(|()| {
                if sink.at < span.end {
                    Err(TransferError::protocol(format!(
                        "{what}: the source ended the piece after {} of {} bytes",
                        sink.at - span.start,
                        span.end - span.start
                    )))
                } else {
                    Ok(())
                }
            });
            match outcome {
                Ok(()) => return Ok(()),
                Err(_) if stop.is_cancelled() => {
                    return Err(Flow::Fail(TransferError::cancelled()));
                }
                Err(e) if e.is_transient() => {
                    if sink.at > skip_to {
                        // Progress was made: this is a new problem, not the same one again.
                        attempt = 1;
                    }
                    attempt += 1;
                    let Some(delay) = self.inner.retry.wait_before(attempt, e.retry_after()) else {
                        return Err(Flow::Fail(e.with_attempts(attempt - 1)));
                    };
                    tracing::debug!(error = %e, attempt, "retrying the piece");
                    self.progress.retrying(attempt, delay, e.to_string());
                    self.sleep(delay, stop).await?;
                }
                Err(e) => return Err(Flow::Fail(e)),
            }
        }
    }

    /// Runs `piece`, failing it as stalled when neither a byte arrives nor one is handed over
    /// for the stall timeout.
    async fn watch(
        &self,
        piece: impl Future<Output = Result<(), TransferError>>,
        activity: &AtomicU64,
        stop: &CancellationToken,
        what: &str,
    ) -> Result<(), TransferError> {
        let stall = self.inner.config.stall_timeout;
        let mut seen = activity.load(Ordering::Relaxed);
        tokio::pin!(piece);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Err(TransferError::cancelled()),
                r = &mut piece => return r,
                _ = tokio::time::sleep(stall) => {
                    let now = activity.load(Ordering::Relaxed);
                    if now == seen {
                        return Err(TransferError::stalled(what, stall, 1));
                    }
                    seen = now;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_must_follow_each_other_from_zero() {
        assert_eq!(pieces_total(&[0..3, 3..10]), Some(10));
        assert_eq!(pieces_total(&[]), Some(0));
        assert_eq!(pieces_total(&[1..3, 3..4]), None, "a gap at the start");
        assert_eq!(pieces_total(&[0..3, 4..10]), None, "a gap");
        assert_eq!(pieces_total(&[0..3, 2..10]), None, "an overlap");
        assert_eq!(pieces_total(&[0..3, 3..3]), None, "an empty piece");
    }
}
