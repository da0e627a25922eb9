//! A response body into the file: bounded, rate-limited, buffered positional writes.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use rbee_artifact::Error;
use reqwest::Response;
use tokio_util::sync::CancellationToken;

use super::Flow;
use super::job::Job;
use super::ledger::Span;
use crate::error::TransferError;

/// Bytes a connection gathers before one positional write.
pub(super) const WRITE_BUFFER: usize = 128 << 10;

impl Job<'_> {
    /// Streams a body for `span` from `*at` until `end` (or the body ends, or the span is
    /// complete because another connection took its rest), advancing `*at` past every byte
    /// received and writing those no other connection took first. Every read is raced against
    /// `stop` and the stall timeout.
    pub(super) async fn stream(
        &self,
        mut resp: Response,
        span: &Span,
        at: &mut u64,
        end: u64,
        stop: &CancellationToken,
    ) -> Result<(), Flow> {
        let stall = self.inner.config.stall_timeout;
        // Where the file itself ends: a body that reaches it must end there too.
        let at_file_end = self.file_end() == Some(end);
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
        let mut buf_at = *at;
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.cancelled() => None,
                r = tokio::time::timeout(stall, resp.chunk()) => Some(r),
            };
            let outcome = match next {
                None => Err(TransferError::cancelled()),
                Some(Err(_)) => Err(TransferError::stalled(&self.what, stall, 1)),
                Some(Ok(Err(e))) => Err(TransferError::network(&self.what, e, 1)),
                Some(Ok(Ok(None))) => {
                    if end != u64::MAX && *at < end {
                        Err(TransferError::truncated(&self.what, *at, end, 1))
                    } else {
                        Ok(true)
                    }
                }
                Some(Ok(Ok(Some(bytes)))) => {
                    let within = (bytes.len() as u64).min(end - *at);
                    let mut complete = false;
                    if within > 0 {
                        if let Some(limiter) = &self.inner.limiter
                            && !limiter.acquire(within, stop).await
                        {
                            self.flush(&mut buf, buf_at).await?;
                            return Err(Flow::Fail(TransferError::cancelled()));
                        }
                        self.shared.received.fetch_add(within, Ordering::Relaxed);
                        let (off, take, done) = span.accept(*at, within);
                        if take > 0 {
                            if off != buf_at + buf.len() as u64 {
                                // Another connection wrote the bytes in between.
                                self.flush(&mut buf, buf_at).await?;
                            }
                            if buf.is_empty() {
                                buf_at = off;
                            }
                            let skip = (off - *at) as usize;
                            buf.extend_from_slice(&bytes[skip..skip + take as usize]);
                            self.progress.advance(take);
                        }
                        *at += within;
                        complete = done;
                    }
                    if within < bytes.len() as u64 && at_file_end {
                        self.flush(&mut buf, buf_at).await?;
                        return Err(self.too_long(end));
                    }
                    if complete && *at < end {
                        // The rest of the span was taken by another connection: this one's
                        // answer is not needed any more.
                        self.flush(&mut buf, buf_at).await?;
                        return Ok(());
                    }
                    Ok(*at >= end)
                }
            };
            match outcome {
                Ok(true) => {
                    self.flush(&mut buf, buf_at).await?;
                    if at_file_end && self.body_goes_on(&mut resp, stop).await {
                        return Err(self.too_long(end));
                    }
                    return Ok(());
                }
                Ok(false) => {
                    if buf.len() >= WRITE_BUFFER {
                        self.flush(&mut buf, buf_at).await?;
                    }
                }
                Err(e) => {
                    // What arrived is good: keep it for the retry or the resume.
                    self.flush(&mut buf, buf_at).await?;
                    return Err(Flow::Fail(e));
                }
            }
        }
    }

    /// Whether a body that delivered the whole file still has bytes to send. An honest body
    /// ends at once (its length or final chunk says so); one that says nothing for the stall
    /// timeout has sent the file and is left.
    pub(super) async fn body_goes_on(&self, resp: &mut Response, stop: &CancellationToken) -> bool {
        let stall = self.inner.config.stall_timeout;
        tokio::select! {
            biased;
            _ = stop.cancelled() => false,
            r = tokio::time::timeout(stall, resp.chunk()) => {
                matches!(r, Ok(Ok(Some(b))) if !b.is_empty())
            }
        }
    }

    /// Writes the buffer at `off` on a blocking thread, records it and empties the buffer.
    pub(super) async fn flush(&self, buf: &mut Vec<u8>, off: u64) -> Result<(), Flow> {
        if buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(buf);
        let shared = self.shared.clone();
        let (data, result) = tokio::task::spawn_blocking(move || {
            let r = shared.file.write_all_at(&data, off);
            (data, r)
        })
        .await
        .map_err(|e| TransferError::catalog(Error::task_failed("writing", e)))?;
        result.map_err(|e| {
            if e.raw_os_error() == Some(28) {
                let dir = self.paths.part.parent().unwrap_or(Path::new("."));
                TransferError::catalog(Error::InsufficientSpace {
                    path: dir.to_path_buf(),
                    needed: data.len() as u64,
                    available: 0,
                })
            } else {
                TransferError::io(format!("writing {}", self.paths.part.display()), e)
            }
        })?;
        self.shared.mark_written(off, data.len() as u64);
        *buf = data;
        buf.clear();
        Ok(())
    }
}
