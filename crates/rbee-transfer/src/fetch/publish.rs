//! The end of a file: verify size and digest, fsync, rename; or discard bytes proven wrong.

use std::path::Path;
use std::sync::atomic::Ordering;

use rbee_artifact::{ContentDigest, DownloadedFile, Error, GitBlobHasher, GitBlobId, Sha256Digest};
use sha2::Digest;

use super::durable_dirs::sync_dir;
use super::hasher::HashTask;
use super::job::Job;
use super::{Flow, sync_progress};
use crate::error::TransferError;
use rbee_artifact::lock_unpoisoned;

impl Job<'_> {
    /// Waits for the hash of all `total` bytes, verifies, fsyncs and publishes the file.
    pub(super) async fn finish(
        &self,
        total: u64,
        hasher: HashTask,
    ) -> Result<DownloadedFile, Flow> {
        // No save may land after the partial is discarded or published.
        self.settle_saves().await;
        self.progress.verifying();
        {
            let mut h = lock_unpoisoned(&self.shared.hash.m);
            h.finish_at = Some(total);
            h.available = h
                .available
                .max(lock_unpoisoned(&self.shared.book).st.done.prefix_end());
            self.shared.hash.cv.notify_all();
        }
        let hashed = tokio::select! {
            r = hasher => r,
            _ = self.cancel.cancelled() => {
                self.shared.stop_hasher();
                return Err(Flow::Fail(TransferError::cancelled()));
            }
        };
        let Some(hasher) = self.read_back(hashed)? else {
            return Err(Flow::Fail(TransferError::cancelled()));
        };
        let digest: Sha256Digest = hasher.finalize().into();
        if let Some(expected) = self.req.expected_size
            && expected != total
        {
            self.discard();
            return Err(Flow::Fail(TransferError::catalog(Error::SizeMismatch {
                path: self.req.path.clone(),
                expected,
                actual: total,
            })));
        }
        if let Some(expected) = self.req.sha256
            && expected != digest
        {
            return Err(self.mismatch(expected.into(), digest.into(), "digest"));
        }
        if let Some(expected) = self.req.git_blob {
            self.check_git_blob(expected, total).await?;
        }
        let shared = self.shared.clone();
        let part = self.paths.part.clone();
        let state = self.paths.state.clone();
        let dest = self.dest.to_path_buf();
        let dir = dest.parent().map(Path::to_path_buf);
        let sync_dir_now = self.batch.is_none();
        let publish = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            shared.file.set_len(total)?;
            shared.file.sync_all()?;
            std::fs::rename(&part, &dest)?;
            if sync_dir_now && let Some(dir) = &dir {
                sync_dir(dir);
            }
            let _ = std::fs::remove_file(&state);
            Ok(())
        });
        self.shared.armed.store(false, Ordering::Release);
        match publish.await {
            Ok(Ok(())) => match (self.batch, self.dest.parent()) {
                (Some(batch), Some(dir)) => batch.add(dir),
                (None, Some(_)) => {
                    self.inner.syncs.dirs.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            },
            Ok(Err(e)) => {
                self.shared.armed.store(true, Ordering::Release);
                return Err(Flow::Fail(TransferError::io(
                    format!("publishing {}", self.dest.display()),
                    e,
                )));
            }
            Err(e) => {
                return Err(Flow::Fail(TransferError::catalog(Error::task_failed(
                    "publishing",
                    e,
                ))));
            }
        }
        sync_progress(self.progress, total);
        Ok(DownloadedFile {
            path: self.req.path.clone(),
            size: total,
            sha256: digest,
        })
    }

    /// Checks the partial's `total` bytes against the git blob id the vendor published, as a
    /// published sha256 is checked.
    async fn check_git_blob(&self, expected: GitBlobId, total: u64) -> Result<(), Flow> {
        let shared = self.shared.clone();
        let read =
            tokio::task::spawn_blocking(move || GitBlobHasher::of_open_file(&shared.file, total));
        let actual = tokio::select! {
            r = read => r,
            _ = self.cancel.cancelled() => return Err(Flow::Fail(TransferError::cancelled())),
        };
        let actual = self.read_back(actual)?;
        if actual == expected {
            return Ok(());
        }
        Err(self.mismatch(expected.into(), actual.into(), "git blob id"))
    }

    /// What a task hashing the partial answered, or why it could not read it back.
    fn read_back<T>(
        &self,
        answer: Result<std::io::Result<T>, tokio::task::JoinError>,
    ) -> Result<T, Flow> {
        match answer {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Flow::Fail(TransferError::io(
                format!("reading back {}", self.paths.part.display()),
                e,
            ))),
            Err(e) => Err(Flow::Fail(TransferError::catalog(Error::task_failed(
                "hashing", e,
            )))),
        }
    }

    /// The bytes do not match what the vendor published (`what`: which kind of digest). Bytes
    /// from an earlier run (another version, or changed on disk) may be what is wrong: those
    /// are fetched afresh once before a mismatch is called one; otherwise the partial goes.
    fn mismatch(&self, expected: ContentDigest, actual: ContentDigest, what: &str) -> Flow {
        let error = TransferError::catalog(Error::Integrity {
            path: self.req.path.clone(),
            expected,
            actual,
        });
        if self.resumed.swap(false, Ordering::AcqRel) {
            return Flow::Restart(
                format!(
                    "the file resumed from an earlier attempt does not match its published {what}"
                ),
                Some(error),
            );
        }
        self.discard();
        Flow::Fail(error)
    }

    /// Deletes the partial and its state: its bytes are wrong.
    pub(super) fn discard(&self) {
        self.shared.armed.store(false, Ordering::Release);
        self.shared.stop_hasher();
        self.progress
            .rewind(lock_unpoisoned(&self.shared.book).st.done.len());
        let _ = std::fs::remove_file(&self.paths.part);
        let _ = std::fs::remove_file(&self.paths.state);
        // Readers of the growing file may have passed these bytes on: tell them.
        self.shared.written.reset();
    }

    /// A response went on past the size announced for the file: nothing of it past that size
    /// was written, and the partial is removed (a server that lies about one thing is not
    /// trusted with the rest).
    pub(super) fn too_long(&self, end: u64) -> Flow {
        self.discard();
        Flow::Fail(TransferError::protocol(format!(
            "{}: the server sent more than the {end} bytes announced for `{}`; the extra bytes were not written and the partial file was removed (the server or a proxy is not serving what was listed; try again later, or report it)",
            self.what,
            self.req.path.escape_debug()
        )))
    }
}
