//! The engine behind [`Transfer::fetch`](crate::Transfer::fetch): one URL to one file.
//!
//! ```text
//! lock <dest>.part.lock ─► dest complete? reuse ─► load <dest>.part.state
//!   ─► probe: first ranged GET (follows redirects once; learns size, validators, final URL)
//!   ─► preallocate <dest>.part ─► N workers claim ranges, stream, write_at, mark done
//!        (a hasher thread folds the contiguous prefix into SHA-256 as it completes;
//!         written bytes are handed to the disk as they come, so syncs find little left;
//!         the state file is rewritten every `state_interval`, after a sync;
//!         a worker with nothing left to claim takes over the back of the slowest range,
//!         or races its connection for the rest: each byte is written once, by whichever
//!         connection delivers it first)
//!   ─► verify size + sha256 (or the git blob id) ─► fsync ─► rename to dest
//! ```

mod connections;
mod content_range;
mod durable_dirs;
mod fetch_request;
mod hasher;
mod job;
mod ledger;
mod piece_source;
mod pieces;
mod probe;
mod publish;
mod range;
mod request;
mod resume;
mod stream;

pub(crate) use content_range::parse_unsatisfied_total;
pub use content_range::{ContentRange, RangeRequest, parse_content_range, parse_range_request};
pub(crate) use durable_dirs::DirtyDirs;
pub use fetch_request::FetchRequest;
pub use piece_source::PieceSource;
pub use pieces::PieceSink;
pub(crate) use resume::bytes_on_disk;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rbee_artifact::partial;
use rbee_artifact::{DownloadedFile, FileProgress};
use reqwest::Response;
use tokio_util::sync::CancellationToken;

use crate::engine::Inner;
use crate::error::{TransferError, redact_url};
use crate::http;
use crate::lock::FileLock;
use hasher::{git_blob_of, hash_file};
use job::Job;

/// The files beside `dest`.
#[derive(Debug, Clone)]
struct Paths {
    part: PathBuf,
    state: PathBuf,
    lock: PathBuf,
}

impl Paths {
    fn new(dest: &Path) -> Self {
        Self {
            part: partial::part_path(dest),
            state: partial::part_state_path(dest),
            lock: partial::part_lock_path(dest),
        }
    }
}

pub(crate) async fn fetch(
    inner: &Inner,
    req: &FetchRequest,
    dest: &Path,
    progress: &FileProgress,
    cancel: &CancellationToken,
    batch: Option<&DirtyDirs>,
) -> Result<DownloadedFile, TransferError> {
    if cancel.is_cancelled() {
        return Err(TransferError::cancelled());
    }
    if !matches!(req.url.scheme(), "http" | "https") {
        return Err(TransferError::config(format!(
            "{} is not an http(s) URL",
            redact_url(&req.url)
        )));
    }
    let headers = http::header_map(&req.headers)?;
    let paths = Paths::new(dest);
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| TransferError::io(format!("creating {}", parent.display()), e))?;
    }
    let before = file_identity(dest);
    let (_lock, waited) = FileLock::acquire(&paths.lock, cancel).await?;
    // A file put in place while we waited was published by another transfer of this file,
    // which verified what it could: that, and only that, may be adopted without a digest.
    let fresh = waited && file_identity(dest).is_some_and(|id| Some(id) != before);
    if let Some(size) = req.expected_size
        && let Some(done) = reuse_existing(req, dest, &paths, size, fresh, progress, cancel).await?
    {
        // Its name may come from a run that ended before its folder was synced.
        if let (Some(batch), Some(parent)) = (batch, dest.parent()) {
            batch.add(parent);
        }
        return Ok(done);
    }
    if let Some(source) = req.pieces.as_deref() {
        if req.sha256.is_some() {
            let mut job = Job::new(
                inner,
                req,
                dest,
                paths.clone(),
                headers.clone(),
                progress,
                cancel,
            )?;
            job.fresh = fresh;
            job.batch = batch;
            match job.run_pieces(source).await {
                Ok(done) => return Ok(done),
                Err(e) if e.is_cancelled() => return Err(e),
                Err(e) => {
                    // What the pieces wrote stays (the digest checks the whole at the end);
                    // the URL fetches the rest.
                    tracing::warn!(path = %dest.display(), error = %e, "fetching the file in pieces failed; fetching it from {} instead", redact_url(&req.url));
                    progress.retrying(
                        1,
                        std::time::Duration::ZERO,
                        format!("{e}; fetching it from {} instead", redact_url(&req.url)),
                    );
                }
            }
        } else {
            // Bytes assembled from pieces need a digest to prove the whole.
            tracing::debug!(path = %dest.display(), "no published digest: fetching from the URL, not in pieces");
        }
    }
    let mut job = Job::new(inner, req, dest, paths, headers, progress, cancel)?;
    job.fresh = fresh;
    job.batch = batch;
    job.run().await
}

/// Which file is at `path` (device and inode), not following a link.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| (m.dev(), m.ino()))
}

/// A complete file already at `dest`: the right size and the published digest, or, when none
/// was published, a file another transfer of it has just put there (`fresh`). A file of the
/// right size without a digest proves nothing (it may be one that failed verification, or
/// was changed since): it is fetched again.
async fn reuse_existing(
    req: &FetchRequest,
    dest: &Path,
    paths: &Paths,
    size: u64,
    fresh: bool,
    progress: &FileProgress,
    cancel: &CancellationToken,
) -> Result<Option<DownloadedFile>, TransferError> {
    let Ok(meta) = tokio::fs::symlink_metadata(dest).await else {
        return Ok(None);
    };
    if !meta.is_file() || meta.len() != size {
        return Ok(None);
    }
    if req.sha256.is_none() && !fresh {
        tracing::info!(path = %dest.display(), "a file of the right size is in the way, but without a published digest nothing proves its bytes; fetching it again");
        return Ok(None);
    }
    progress.verifying();
    let digest = hash_file(dest, cancel).await?;
    if let Some(expected) = &req.sha256
        && *expected != digest
    {
        tracing::warn!(path = %dest.display(), "a file with the right size but the wrong digest is in the way; fetching again");
        return Ok(None);
    }
    if let Some(expected) = req.git_blob
        && git_blob_of(dest, size, cancel).await? != expected
    {
        tracing::warn!(path = %dest.display(), "a file with the right size but the wrong git blob id is in the way; fetching again");
        return Ok(None);
    }
    sync_progress(progress, size);
    // A complete file makes any leftover partial moot.
    let _ = std::fs::remove_file(&paths.part);
    let _ = std::fs::remove_file(&paths.state);
    tracing::debug!(path = %dest.display(), "already complete");
    Ok(Some(DownloadedFile {
        path: req.path.clone(),
        size,
        sha256: digest,
    }))
}

/// Makes `progress` show `bytes` for this file.
fn sync_progress(progress: &FileProgress, bytes: u64) {
    let shown = progress.bytes();
    if bytes > shown {
        progress.advance(bytes - shown);
    } else if shown > bytes {
        progress.rewind(shown - bytes);
    }
}

/// How an attempt ended when it did not produce the file.
#[derive(Debug)]
enum Flow {
    /// Give up with this error (transient ones are retried by the caller first).
    Fail(TransferError),
    /// The remote is not what the partial was built from (or answered inconsistently):
    /// discard and start over. The error, when given, is what to report if restarts run out.
    Restart(String, Option<TransferError>),
    /// A redirect target stopped working (expired signature): resolve it again.
    Reresolve(TransferError),
    /// Try again from the probe, with what this attempt learnt (nothing was written).
    Again,
}

impl From<TransferError> for Flow {
    fn from(e: TransferError) -> Self {
        Flow::Fail(e)
    }
}

/// What a ranged GET got back.
#[derive(Debug)]
enum Got {
    /// 206 with its `Content-Range`.
    Partial(Response, ContentRange),
    /// 200: the whole file (Range ignored, or If-Range did not match).
    Full(Response),
    /// 416, with the total from `Content-Range: bytes */N` when given.
    Unsatisfiable(Option<u64>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sit_beside_the_file() {
        let p = Paths::new(Path::new("/c/files/m.gguf"));
        assert_eq!(p.part, Path::new("/c/files/m.gguf.part"));
        assert_eq!(p.state, Path::new("/c/files/m.gguf.part.state"));
        assert_eq!(p.lock, Path::new("/c/files/m.gguf.part.lock"));
    }
}
