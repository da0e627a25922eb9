//! One attempt: the probe request, what it proves about the remote, and the plan for the rest.

use std::path::Path;
use std::sync::atomic::Ordering;

use rbee_artifact::{DownloadedFile, Error, available_space};

use super::content_range::validators_of;
use super::job::Job;
use super::{Flow, Got, reuse_existing};
use crate::error::{TransferError, redact_url};
use crate::state::Validators;
use rbee_artifact::lock_unpoisoned;

impl Job<'_> {
    /// One pass: probe, then fetch every missing range, then verify and publish.
    pub(super) async fn attempt(&self) -> Result<DownloadedFile, Flow> {
        let (known_total, first_gap, covered) = {
            let b = lock_unpoisoned(&self.shared.book);
            let total = b.total().or(self.req.expected_size);
            let first_gap =
                b.st.done
                    .gaps(total.unwrap_or(u64::MAX))
                    .first()
                    .map(|g| g.0);
            (total, first_gap, total.is_some_and(|t| b.st.done.covers(t)))
        };
        if covered {
            // Every byte is on disk already (the last run stopped just before publishing).
            let total = known_total.unwrap_or(0);
            return self.finish(total, self.start_hasher()).await;
        }
        let first_gap = first_gap.unwrap_or(0);
        if let Some(total) = known_total {
            self.check_space(total)?;
            self.plan(total);
        }
        let probe_claim = if known_total.is_some() {
            self.shared.claim().unwrap_or((first_gap, u64::MAX))
        } else {
            (first_gap, u64::MAX)
        };
        let stop = self.cancel.child_token();
        let mut attempt = 1;
        let asked = tokio::time::Instant::now();
        let got = self
            .open_raw(probe_claim.0, probe_claim.1, &mut attempt, &stop)
            .await?;
        let first_answer = asked.elapsed();
        let announced = match &got {
            Got::Full(r) => r.content_length(),
            Got::Partial(_, cr) => cr.total,
            Got::Unsatisfiable(_) => None,
        };
        if known_total.is_none()
            && let Some(total) = announced
            && lock_unpoisoned(&self.shared.book).st.done.len() == 0
            && let Some(done) = reuse_existing(
                self.req,
                self.dest,
                &self.paths,
                total,
                self.fresh,
                self.progress,
                self.cancel,
            )
            .await?
        {
            // The size was unknown before asking; the file at `dest` turns out complete (for
            // instance another process just finished it).
            self.shared.armed.store(false, Ordering::Release);
            return Ok(done);
        }
        let first = match got {
            Got::Unsatisfiable(total) => {
                let covered = {
                    let b = lock_unpoisoned(&self.shared.book);
                    total.is_some_and(|t| b.st.done.covers(t))
                };
                if total == Some(0) || covered {
                    let total = total.unwrap_or(0);
                    lock_unpoisoned(&self.shared.book).st.validators.total = Some(total);
                    return self.finish(total, self.start_hasher()).await;
                }
                return Err(Flow::Restart(
                    "the server refused the range (416)".to_string(),
                    None,
                ));
            }
            Got::Full(resp) => {
                let total = resp.content_length();
                // A whole-file answer whose length disagrees with the vendor may be a broken
                // response (a wrong Content-Length): ask again before calling it a mismatch.
                if let Err(Flow::Fail(e)) = self.check_announced(total) {
                    return Err(Flow::Restart(e.to_string(), Some(e)));
                }
                if lock_unpoisoned(&self.shared.book).st.done.len() > 0 {
                    tracing::info!(url = %redact_url(&self.req.url), "the server sent the whole file instead of the missing range; starting over");
                    self.reset_data()?;
                }
                // Without a Content-Length the body is bounded by the size the vendor announced.
                let total = total.or(self.req.expected_size);
                let validators = validators_of(resp.headers(), total);
                {
                    let mut b = lock_unpoisoned(&self.shared.book);
                    b.st.validators = validators;
                    b.claim_len = u64::MAX;
                    b.workers = 1;
                    b.unclaimed.clear();
                    b.dirty = true;
                }
                let end = total.unwrap_or(u64::MAX);
                (resp, (0, end), end)
            }
            Got::Partial(resp, cr) => {
                if cr.start != probe_claim.0 {
                    return Err(Flow::Fail(TransferError::protocol(format!(
                        "{}: asked for bytes from {} but the server sent bytes from {}",
                        self.what, probe_claim.0, cr.start
                    ))));
                }
                // `bytes a-b/*`: the server does not say how long the file is.
                let validators = validators_of(resp.headers(), cr.total.or(known_total));
                {
                    let b = lock_unpoisoned(&self.shared.book);
                    if b.st.done.len() > 0 && !self.same_remote(&b.st.validators, &validators) {
                        return Err(Flow::Restart(self.changed_reason(&validators), None));
                    }
                }
                self.check_announced(cr.total)?;
                let claim = match (known_total, cr.total) {
                    (Some(_), _) => probe_claim,
                    (None, Some(total)) => {
                        self.check_space(total)?;
                        lock_unpoisoned(&self.shared.book).st.validators.total = Some(total);
                        self.plan(total);
                        self.shared.claim().unwrap_or((cr.start, total))
                    }
                    (None, None) => {
                        return Err(Flow::Fail(TransferError::protocol(format!(
                            "{}: the server sent bytes {}-{} without saying how long the file is (`Content-Range: bytes {}-{}/*`), and nothing else announced its size, so a complete file cannot be told from a cut one; refusing it (a server that names the size, or a listing that does, is needed)",
                            self.what,
                            cr.start,
                            cr.end - 1,
                            cr.start,
                            cr.end - 1
                        ))));
                    }
                };
                let proven = self.req.sha256.is_some() || validators.if_range().is_some();
                let single = lock_unpoisoned(&self.shared.book).single;
                let file_end = cr.total.or(known_total).unwrap_or(u64::MAX);
                if !proven && !single && claim.1.min(cr.end) < file_end {
                    // Ranges fetched separately could come from different versions: fetch
                    // the rest in one open-ended request instead.
                    tracing::debug!(url = %redact_url(&self.req.url), "no validator and no digest: one connection");
                    lock_unpoisoned(&self.shared.book).single = true;
                    return Err(Flow::Again);
                }
                {
                    let mut b = lock_unpoisoned(&self.shared.book);
                    b.st.validators = validators;
                    b.dirty = true;
                }
                let stream_end = claim.1.min(cr.end);
                (resp, claim, stream_end)
            }
        };
        let total = lock_unpoisoned(&self.shared.book).total();
        if let Some(total) = total {
            self.progress.set_size(total);
            self.preallocate(total)?;
        }
        // Before any byte arrives a state only matters to replace one already on disk: with
        // nothing written a resume keeps nothing, and a small file is spared a sync.
        let nothing_yet = lock_unpoisoned(&self.shared.book).st.done.len() == 0
            && std::fs::symlink_metadata(&self.paths.state).is_err();
        if !nothing_yet {
            self.save_state().await;
        }
        let hasher = self.start_hasher();
        let result = self.run_workers(first, &stop, attempt, first_answer).await;
        if let Err(flow) = result {
            self.drain_hasher(hasher).await;
            return Err(flow);
        }
        let total = {
            let mut b = lock_unpoisoned(&self.shared.book);
            let total = b.total().unwrap_or_else(|| b.st.done.prefix_end());
            b.st.validators.total = Some(total);
            if !b.st.done.covers(total) {
                return Err(Flow::Fail(TransferError::protocol(format!(
                    "{}: ranges are missing after the transfer",
                    self.what
                ))));
            }
            total
        };
        self.finish(total, hasher).await
    }

    /// Sets up range hand-out for a file of `total` bytes.
    pub(super) fn plan(&self, total: u64) {
        let config = &self.inner.config;
        let mut b = lock_unpoisoned(&self.shared.book);
        let parallel = total >= config.parallel_threshold && config.connections > 1 && !b.single;
        b.unclaimed = b.st.done.gaps(total).into();
        b.active.clear();
        b.claim_len = if parallel {
            config.chunk_size
        } else {
            u64::MAX
        };
        b.workers = if parallel { config.connections } else { 1 };
    }

    /// A size announced by the server must match the vendor's.
    pub(super) fn check_announced(&self, total: Option<u64>) -> Result<(), Flow> {
        if let (Some(expected), Some(actual)) = (self.req.expected_size, total)
            && expected != actual
        {
            return Err(Flow::Fail(TransferError::catalog(Error::SizeMismatch {
                path: self.req.path.clone(),
                expected,
                actual,
            })));
        }
        Ok(())
    }

    /// Whether a response with `new` validators serves the bytes that `saved` described. With
    /// a published digest a mix would be caught at the end (and restarts cleanly), so only a
    /// contradiction counts; without one, the validators must prove it.
    pub(super) fn same_remote(&self, saved: &Validators, new: &Validators) -> bool {
        if self.req.sha256.is_some() {
            saved.same_as(new)
        } else {
            saved.proves_same(new)
        }
    }

    pub(super) fn changed_reason(&self, new: &Validators) -> String {
        if new.if_range().is_none() {
            "the server sent no ETag or Last-Modified, so the bytes already here cannot be proven to be the same file".to_string()
        } else {
            "the remote file changed since the partial download".to_string()
        }
    }

    /// The size the whole file must have, when anyone announced it.
    pub(super) fn file_end(&self) -> Option<u64> {
        lock_unpoisoned(&self.shared.book)
            .total()
            .or(self.req.expected_size)
    }

    pub(super) fn check_space(&self, total: u64) -> Result<(), Flow> {
        if !self.inner.config.check_disk_space {
            return Ok(());
        }
        let dir = self.paths.part.parent().unwrap_or(Path::new("."));
        let reserved = fs4::FileExt::allocated_size(&self.shared.file).unwrap_or(0);
        let needed = total.saturating_sub(reserved);
        if needed == 0 {
            return Ok(());
        }
        match available_space(dir) {
            Ok(available) if available < needed => Err(Flow::Fail(TransferError::catalog(
                Error::InsufficientSpace {
                    path: dir.to_path_buf(),
                    needed,
                    available,
                },
            ))),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "could not read free space; going on");
                Ok(())
            }
        }
    }

    /// Reserves the whole file so parallel writes land in place and a full disk shows now.
    pub(super) fn preallocate(&self, total: u64) -> Result<(), Flow> {
        let file = &self.shared.file;
        let len = file
            .metadata()
            .map_err(|e| TransferError::io(format!("reading {}", self.paths.part.display()), e))?
            .len();
        if len == total {
            return Ok(());
        }
        if len < total
            && let Err(e) = fs4::FileExt::allocate(file, total)
        {
            if e.raw_os_error() == Some(28) {
                let dir = self.paths.part.parent().unwrap_or(Path::new("."));
                return Err(Flow::Fail(TransferError::catalog(
                    Error::InsufficientSpace {
                        path: dir.to_path_buf(),
                        needed: total - len,
                        available: available_space(dir).unwrap_or(0),
                    },
                )));
            }
            tracing::debug!(error = %e, "preallocation not supported here; the file grows as it is written");
        }
        file.set_len(total).map_err(|e| {
            TransferError::io(format!("sizing {}", self.paths.part.display()), e).into()
        })
    }
}
