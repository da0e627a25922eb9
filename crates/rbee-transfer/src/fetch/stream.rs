//! A response body into the file: bounded, rate-limited, buffered positional writes.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use rbee_artifact::Error;
use reqwest::Response;
use tokio_util::sync::CancellationToken;

use super::Flow;
use super::job::Job;
use crate::error::TransferError;

/// Bytes a connection gathers before one positional write.
pub(super) const WRITE_BUFFER: usize = 128 << 10;

impl Job<'_> {
    /// Streams a body into the file at `*pos` until `end` (or the body ends), advancing `*pos`
    /// as bytes are written. Every read is raced against `stop` and the stall timeout.
    pub(super) async fn stream(
        &self,
        mut resp: Response,
        pos: &mut u64,
        end: u64,
        stop: &CancellationToken,
    ) -> Result<(), Flow> {
        let stall = self.inner.config.stall_timeout;
        // Where the file itself ends: a body that reaches it must end there too.
        let at_file_end = self.file_end() == Some(end);
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
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
                    let got = *pos + buf.len() as u64;
                    if end != u64::MAX && got < end {
                        Err(TransferError::truncated(&self.what, got, end, 1))
                    } else {
                        Ok(true)
                    }
                }
                Some(Ok(Ok(Some(bytes)))) => {
                    let room = end - (*pos + buf.len() as u64);
                    let take = (bytes.len() as u64).min(room) as usize;
                    if take < bytes.len() && at_file_end {
                        buf.extend_from_slice(&bytes[..take]);
                        self.flush(&mut buf, pos).await?;
                        return Err(self.too_long(end));
                    }
                    if take > 0 {
                        if let Some(limiter) = &self.inner.limiter
                            && !limiter.acquire(take as u64, stop).await
                        {
                            self.flush(&mut buf, pos).await?;
                            return Err(Flow::Fail(TransferError::cancelled()));
                        }
                        buf.extend_from_slice(&bytes[..take]);
                        self.shared
                            .received
                            .fetch_add(take as u64, Ordering::Relaxed);
                        self.progress.advance(take as u64);
                    }
                    Ok(*pos + buf.len() as u64 >= end)
                }
            };
            match outcome {
                Ok(true) => {
                    self.flush(&mut buf, pos).await?;
                    if at_file_end && self.body_goes_on(&mut resp, stop).await {
                        return Err(self.too_long(end));
                    }
                    return Ok(());
                }
                Ok(false) => {
                    if buf.len() >= WRITE_BUFFER {
                        self.flush(&mut buf, pos).await?;
                    }
                }
                Err(e) => {
                    // What arrived is good: keep it for the retry or the resume.
                    self.flush(&mut buf, pos).await?;
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

    /// Writes the buffer at `*pos` on a blocking thread and records it.
    pub(super) async fn flush(&self, buf: &mut Vec<u8>, pos: &mut u64) -> Result<(), Flow> {
        if buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(buf);
        let off = *pos;
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
        let len = data.len() as u64;
        self.shared.mark_written(off, len);
        *pos += len;
        *buf = data;
        buf.clear();
        Ok(())
    }
}
