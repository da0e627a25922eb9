//! The hasher: folds the contiguous written prefix into SHA-256 on a blocking thread while
//! the connections write, and hashes whole files and prefixes on demand.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rbee_artifact::{Error, GitBlobHasher, GitBlobId, Sha256Digest};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::job::Job;
use super::ledger::Shared;
use crate::error::TransferError;
use crate::state::serialize_hasher;
use rbee_artifact::lock_unpoisoned;

/// Read size of the hasher.
pub(super) const HASH_BLOCK: usize = 1 << 20;
/// The hasher publishes its state for the resume file at least this often (bytes).
pub(super) const HASH_PUBLISH: u64 = 32 << 20;
/// Hashed bytes after which the hasher hands them to the disk (see [`write_out`]).
pub(super) const WRITE_OUT_EVERY: u64 = 8 << 20;
/// How long a stopping transfer lets the hasher catch up with what was written.
pub(super) const HASH_DRAIN: Duration = Duration::from_millis(500);

/// Hashes a file on a blocking thread; stops early when cancelled.
pub(super) async fn hash_file(
    path: &Path,
    cancel: &CancellationToken,
) -> Result<Sha256Digest, TransferError> {
    let path_buf = path.to_path_buf();
    let hasher = hash_blocking(cancel, move |stop| {
        let file = crate::nofollow::open_read(&path_buf)?;
        hash_range(&file, u64::MAX, stop)
    })
    .await?
    .map_err(|e| TransferError::io(format!("reading {}", path.display()), e))?;
    Ok(hasher.finalize().into())
}

/// The git blob id of the first `size` bytes of the file at `path`, on a blocking thread.
pub(super) async fn git_blob_of(
    path: &Path,
    size: u64,
    cancel: &CancellationToken,
) -> Result<GitBlobId, TransferError> {
    let path_buf = path.to_path_buf();
    let task = tokio::task::spawn_blocking(move || {
        let file = crate::nofollow::open_read(&path_buf)?;
        GitBlobHasher::of_open_file(&file, size)
    });
    let read = tokio::select! {
        r = task => r,
        _ = cancel.cancelled() => return Err(TransferError::cancelled()),
    };
    read.map_err(|e| TransferError::catalog(Error::task_failed("hashing", e)))?
        .map_err(|e| TransferError::io(format!("reading {}", path.display()), e))
}

/// Runs `work` (hashing) on a blocking thread, telling it to stop when `cancel` fires. A
/// cancellation is an `Interrupted` I/O error (the callers say what was being read); a task
/// that panicked is an internal error.
pub(super) async fn hash_blocking<F>(
    cancel: &CancellationToken,
    work: F,
) -> Result<Result<Sha256, std::io::Error>, TransferError>
where
    F: FnOnce(&AtomicBool) -> std::io::Result<Option<Sha256>> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::task::spawn_blocking(move || work(&flag));
    let result = tokio::select! {
        r = task => r,
        _ = cancel.cancelled() => {
            stop.store(true, Ordering::Relaxed);
            return Ok(Err(interrupted()));
        }
    };
    match result {
        Ok(Ok(Some(h))) => Ok(Ok(h)),
        Ok(Ok(None)) => Ok(Err(interrupted())),
        Ok(Err(e)) => Ok(Err(e)),
        Err(e) => Err(TransferError::catalog(Error::task_failed("hashing", e))),
    }
}

fn interrupted() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled")
}

/// SHA-256 of bytes `[0, end)` of `file` (to its end when shorter); `None` when `stop` is set.
pub(super) fn hash_range(
    file: &File,
    end: u64,
    stop: &AtomicBool,
) -> std::io::Result<Option<Sha256>> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_BLOCK];
    let mut off = 0u64;
    while off < end {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let want = (end - off).min(HASH_BLOCK as u64) as usize;
        let n = file.read_at(&mut buf[..want], off)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        off += n as u64;
    }
    Ok(Some(hasher))
}

/// The hasher thread's shared state.
#[derive(Debug, Default)]
pub(super) struct HashShared {
    /// End of the contiguous written prefix.
    pub(super) available: u64,
    /// Bytes folded in so far, and the serialized state after them.
    pub(super) hashed: u64,
    pub(super) snapshot: Option<String>,
    pub(super) finish_at: Option<u64>,
    pub(super) abort: bool,
}

#[derive(Debug, Default)]
pub(super) struct HashCell {
    pub(super) m: Mutex<HashShared>,
    pub(super) cv: Condvar,
}

/// Folds the written prefix of the file into SHA-256 as it grows. Returns the hasher once
/// `finish_at` bytes are in, `None` when aborted.
pub(super) fn hash_loop(
    shared: Arc<Shared>,
    mut hasher: Sha256,
    mut hashed: u64,
) -> std::io::Result<Option<Sha256>> {
    let mut buf = vec![0u8; HASH_BLOCK];
    let mut last_publish = hashed;
    let mut written_out = hashed;
    loop {
        let available = {
            let mut h = lock_unpoisoned(&shared.hash.m);
            loop {
                if h.abort {
                    return Ok(None);
                }
                if h.finish_at.is_some_and(|t| hashed >= t) {
                    h.hashed = hashed;
                    h.snapshot = Some(serialize_hasher(&hasher));
                    return Ok(Some(hasher));
                }
                if h.available > hashed {
                    break h.available;
                }
                h = shared.hash.cv.wait(h).unwrap_or_else(|e| e.into_inner());
            }
        };
        while hashed < available {
            let n = ((available - hashed) as usize).min(HASH_BLOCK);
            shared.file.read_exact_at(&mut buf[..n], hashed)?;
            hasher.update(&buf[..n]);
            hashed += n as u64;
            if hashed - written_out >= WRITE_OUT_EVERY {
                write_out(&shared.file, written_out, hashed);
                written_out = hashed;
            }
            if hashed - last_publish >= HASH_PUBLISH || hashed == available {
                last_publish = hashed;
                let snapshot = serialize_hasher(&hasher);
                {
                    let mut h = lock_unpoisoned(&shared.hash.m);
                    if h.abort {
                        return Ok(None);
                    }
                    h.hashed = hashed;
                    h.snapshot = Some(snapshot);
                }
                // The saved state should carry it: without a published digest, a resume keeps
                // only the prefix this hash covers.
                lock_unpoisoned(&shared.book).dirty = true;
            }
        }
    }
}

/// Starts writing `[from, to)` of `file` to the disk without waiting, and lets the page cache
/// drop it once clean: those bytes are hashed and not read again. The syncs before each
/// resume-state save and before publishing then find little left to write, and a large
/// download does not fill memory with dirty pages. Durability still comes only from those
/// syncs.
fn write_out(file: &File, from: u64, to: u64) {
    // On Linux, DONTNEED starts write-back of the range's dirty pages (and drops clean ones).
    let len = std::num::NonZeroU64::new(to - from);
    if let Err(e) = rustix::fs::fadvise(file, from, len, rustix::fs::Advice::DontNeed) {
        tracing::trace!(error = %e, "write-out not started");
    }
}

pub(super) type HashTask = tokio::task::JoinHandle<std::io::Result<Option<Sha256>>>;

impl Job<'_> {
    pub(super) fn start_hasher(&self) -> HashTask {
        let (hashed, hasher) = {
            let b = lock_unpoisoned(&self.shared.book);
            match b.st.restore_hasher() {
                Some((n, h)) => (n, h),
                None => (0, Sha256::new()),
            }
        };
        {
            let mut h = lock_unpoisoned(&self.shared.hash.m);
            let prefix = lock_unpoisoned(&self.shared.book).st.done.prefix_end();
            *h = HashShared {
                available: prefix,
                hashed,
                snapshot: (hashed > 0).then(|| serialize_hasher(&hasher)),
                finish_at: None,
                abort: false,
            };
            lock_unpoisoned(&self.shared.book).notified_prefix = prefix;
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || hash_loop(shared, hasher, hashed))
    }

    /// Lets the hasher catch up with the bytes written before the transfer stops, for a
    /// moment at most: without a published digest, a resume keeps only the hashed prefix.
    pub(super) async fn drain_hasher(&self, hasher: HashTask) {
        {
            let mut h = lock_unpoisoned(&self.shared.hash.m);
            let prefix = lock_unpoisoned(&self.shared.book).st.done.prefix_end();
            h.available = h.available.max(prefix);
            h.finish_at = Some(h.available);
            self.shared.hash.cv.notify_all();
        }
        if tokio::time::timeout(HASH_DRAIN, hasher).await.is_err() {
            tracing::debug!("the hasher did not catch up in time; the resume state keeps less");
        }
        self.shared.stop_hasher();
        lock_unpoisoned(&self.shared.book).dirty = true;
    }
}
