//! An exclusive lock beside a partial file, so two processes never write the same file.

use std::fs::{File, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::TransferError;

/// Held while a file is being fetched. The lock is an OS file lock (`flock`), so it dies with
/// its process: a lock file left by a killed process blocks nobody. Dropping the guard removes
/// the lock file (while still holding the lock, so a waiter re-checks it got the live file).
#[derive(Debug)]
pub(crate) struct FileLock {
    file: Option<File>,
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock at `path`, waiting (cancellably) while another holder has it. Returns
    /// whether it had to wait, so the caller can re-check what the other holder left behind.
    pub(crate) async fn acquire(
        path: &Path,
        cancel: &CancellationToken,
    ) -> Result<(Self, bool), TransferError> {
        let mut waited = false;
        loop {
            let file = crate::nofollow::open_rw(path).map_err(|e| {
                TransferError::io(format!("creating the lock file {}", path.display()), e)
            })?;
            match file.try_lock() {
                Ok(()) => {
                    // The previous holder removes the file when done; if it did so between our
                    // open and our lock, we hold a lock on an unlinked file: start over.
                    let same = match (file.metadata(), std::fs::metadata(path)) {
                        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                        _ => false,
                    };
                    if same {
                        return Ok((
                            Self {
                                file: Some(file),
                                path: path.to_path_buf(),
                            },
                            waited,
                        ));
                    }
                }
                Err(TryLockError::WouldBlock) => {
                    if !waited {
                        tracing::info!(path = %path.display(), "another transfer is writing this file; waiting for it");
                    }
                    waited = true;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = cancel.cancelled() => return Err(TransferError::cancelled()),
                    }
                }
                Err(TryLockError::Error(e)) => {
                    return Err(TransferError::io(format!("locking {}", path.display()), e));
                }
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_holder_waits_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.part.lock");
        let cancel = CancellationToken::new();
        let (first, waited) = FileLock::acquire(&path, &cancel).await.unwrap();
        assert!(!waited);
        let p = path.clone();
        let c = cancel.clone();
        let second = tokio::spawn(async move { FileLock::acquire(&p, &c).await.map(|(_, w)| w) });
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!second.is_finished());
        drop(first);
        assert!(second.await.unwrap().unwrap());
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn waiting_is_cancellable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.part.lock");
        let cancel = CancellationToken::new();
        let (_first, _) = FileLock::acquire(&path, &cancel).await.unwrap();
        let c2 = CancellationToken::new();
        c2.cancel();
        let err = FileLock::acquire(&path, &c2).await.unwrap_err();
        assert!(err.is_cancelled());
    }
}
