//! Whether, and how much of, a partial left by an earlier run may be continued.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Paths;
use super::fetch_request::FetchRequest;
use super::hasher::{HashShared, hash_blocking, hash_range};
use super::job::Job;
use crate::error::TransferError;
use crate::ranges::RangeSet;
use crate::state::{PartState, serialize_hasher, source_id};
use rbee_artifact::lock_unpoisoned;

/// Bytes of `req` present at `dest` or in its partial file.
pub(crate) fn bytes_on_disk(req: &FetchRequest, dest: &Path) -> u64 {
    // Only a published digest can prove a complete file; without one it is fetched again.
    if req.sha256.is_some()
        && let Ok(m) = std::fs::symlink_metadata(dest)
        && m.is_file()
        && req.expected_size == Some(m.len())
    {
        return m.len();
    }
    let paths = Paths::new(dest);
    let part_len = std::fs::symlink_metadata(&paths.part)
        .ok()
        .filter(|m| m.is_file())
        .map_or(0, |m| m.len());
    match PartState::load(&paths.state) {
        Some(s) if usable_state(&s, req, part_len) => provable_ranges(&s, req).len(),
        _ => 0,
    }
}

/// The written ranges of a saved partial that a resume may keep: all of them when a published
/// digest will check the whole file at the end; without one, only the prefix the saved hash
/// state covers (checked against the disk before it is trusted), since nothing else proves
/// that the bytes on disk are still the ones that arrived.
pub(super) fn provable_ranges(s: &PartState, req: &FetchRequest) -> RangeSet {
    if req.sha256.is_some() {
        return s.done.clone();
    }
    match s.restore_hasher() {
        Some((hashed, _)) if hashed > 0 => RangeSet::from_ranges([(0, hashed)]),
        _ => RangeSet::new(),
    }
}

/// Whether a saved state describes a partial of this request that can be continued.
pub(super) fn usable_state(s: &PartState, req: &FetchRequest, part_len: u64) -> bool {
    let same_content = match (&req.sha256, &s.sha256) {
        // Equal digests prove the same bytes even from another URL (a mirror, a new signature).
        (Some(a), Some(b)) => a == b,
        (None, None) => s.source == source_id(&req.url),
        _ => false,
    };
    let size_agrees = match (req.expected_size, s.validators.total) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    let on_disk = s.done.ranges().last().is_none_or(|&(_, e)| e <= part_len);
    // Without a validator or a digest nothing proves the remote still has these bytes.
    let provable = s.done.len() == 0 || s.validators.if_range().is_some() || req.sha256.is_some();
    same_content && size_agrees && on_disk && provable
}

impl Job<'_> {
    /// Decides how much of a partial left by an earlier run may be continued: the prefix its
    /// saved hash state covers must still hash to that state on disk (else the file changed
    /// since, and everything starts over); without a published digest, ranges past that prefix
    /// prove nothing and are fetched again.
    pub(super) async fn prove_resume(&self) -> Result<(), TransferError> {
        let (restored, kept) = {
            let b = lock_unpoisoned(&self.shared.book);
            if b.st.done.len() == 0 {
                return Ok(());
            }
            (b.st.restore_hasher(), provable_ranges(&b.st, self.req))
        };
        let tampered = match restored {
            Some((hashed, saved)) if hashed > 0 => {
                let started = std::time::Instant::now();
                let shared = self.shared.clone();
                let on_disk = hash_blocking(self.cancel, move |stop| {
                    hash_range(&shared.file, hashed, stop)
                })
                .await?
                .map_err(|e| {
                    if self.cancel.is_cancelled() {
                        TransferError::cancelled()
                    } else {
                        TransferError::io(format!("reading {}", self.paths.part.display()), e)
                    }
                })?;
                tracing::debug!(
                    bytes = hashed,
                    ms = started.elapsed().as_millis() as u64,
                    "re-hashed the saved prefix of the partial"
                );
                serialize_hasher(&on_disk) != serialize_hasher(&saved)
            }
            // A state that names a hashed prefix but whose hash state does not restore.
            None => lock_unpoisoned(&self.shared.book).st.hashed > 0,
            Some(_) => false,
        };
        if tampered {
            tracing::warn!(path = %self.paths.part.display(), "the partial file no longer matches the hash saved with it (changed on disk?); starting over");
            self.progress.retrying(
                1,
                Duration::ZERO,
                "the partial file changed on disk; starting over",
            );
            return self.reset_data();
        }
        let mut b = lock_unpoisoned(&self.shared.book);
        let dropped = b.st.done.len() - kept.len();
        if dropped > 0 {
            tracing::info!(path = %self.paths.part.display(), kept = kept.len(), dropped, "without a published digest only the verified prefix of a partial is kept");
            self.progress.rewind(dropped);
            b.st.retain(kept);
            b.dirty = true;
        }
        self.resumed.store(b.st.done.len() > 0, Ordering::Release);
        Ok(())
    }

    /// Forgets every byte of the partial (the remote changed or ignores ranges).
    pub(super) fn reset_data(&self) -> Result<(), TransferError> {
        self.resumed.store(false, Ordering::Release);
        let mut b = lock_unpoisoned(&self.shared.book);
        self.shared.resets.fetch_add(1, Ordering::AcqRel);
        self.progress.rewind(b.st.done.len());
        let source = b.st.source.clone();
        let sha = b.st.sha256;
        b.st = PartState::new(source, sha);
        b.unclaimed.clear();
        b.active.clear();
        b.notified_prefix = 0;
        b.dirty = true;
        drop(b);
        self.shared.written.reset();
        *lock_unpoisoned(&self.shared.hash.m) = HashShared::default();
        self.shared
            .file
            .set_len(0)
            .map_err(|e| TransferError::io(format!("truncating {}", self.paths.part.display()), e))
    }
}
