//! Taking a file rbee plans to fetch from Ollama's store instead: linked or copied to a
//! temporary name, and kept only when that copy hashes to the planned digest.

use std::io::Read;
use std::path::{Path, PathBuf};

use rbee_artifact::{DownloadedFile, Error, ResolvedFile, Result, Sha256Digest, partial};

use tokio_util::sync::CancellationToken;

use crate::stamp;

/// How a reused file is described in progress events.
pub(crate) const FROM_OLLAMA_STORE: &str = "from Ollama's store";

/// Takes `file` from `source` (a blob or manifest in Ollama's store) into `dest` if its bytes
/// hash to the planned digest. `Ok(None)`: absent or different.
pub(crate) async fn reuse(
    file: &ResolvedFile,
    source: PathBuf,
    dest: &Path,
    cancel: &CancellationToken,
) -> Result<Option<DownloadedFile>> {
    let (Some(expected), Some(size)) = (file.sha256, file.size) else {
        return Ok(None);
    };
    let target = dest.join(&file.path);
    let stop = cancel.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        place_verified(&source, &target, expected, size, &stop, |_| {})
    })
    .await
    .map_err(|e| Error::task_failed("checking a blob in Ollama's store", e))?;
    match outcome {
        Ok(true) => Ok(Some(DownloadedFile {
            path: file.path.clone(),
            size,
            sha256: expected,
        })),
        Ok(false) => Ok(None),
        Err(_) if cancel.is_cancelled() => Err(Error::Cancelled),
        Err(e) => Err(Error::io(
            format!("taking {} from Ollama's store", file.path),
            e,
        )),
    }
}

/// Puts `source`'s file at `target` if it holds `size` bytes hashing to `expected`: linked (or
/// copied) to a temporary name first, and that copy is what gets hashed and renamed into
/// place, so a file swapped or rewritten at `source` meanwhile is never kept unchecked.
/// A file hashed once is not hashed again while it is unchanged (see [`stamp`]).
/// `Ok(false)`: absent or other bytes (nothing is left at `target`'s temporary name).
/// `staged` sees the temporary file before it is hashed. Blocking.
fn place_verified(
    source: &Path,
    target: &Path,
    expected: Sha256Digest,
    size: u64,
    cancel: &CancellationToken,
    staged: impl FnOnce(&Path),
) -> std::io::Result<bool> {
    let Ok(meta) = std::fs::metadata(source) else {
        return Ok(false);
    };
    if !meta.is_file() || meta.len() != size {
        return Ok(false);
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temp = partial::reuse_temp_path(target);
    let _ = std::fs::remove_file(&temp);
    let source = std::fs::canonicalize(source)?;
    // Checked before linking: the link itself moves the change time the note is held against.
    let noted_as = std::fs::File::open(&source).ok().and_then(|f| {
        let m = f.metadata().ok()?;
        (stamp::noted(&f, &m) == Some(expected)).then_some(m)
    });
    if let Err(e) = std::fs::hard_link(&source, &temp) {
        tracing::debug!(from = %source.display(), error = %e, "hard link refused; copying");
        std::fs::copy(&source, &temp)?;
        std::fs::File::open(&temp)?.sync_all()?;
    }
    staged(&temp);
    let kept = (|| {
        let file = std::fs::File::open(&temp)?;
        let meta = file.metadata()?;
        if meta.len() != size {
            return Ok(false);
        }
        // Linked, the temporary name is Ollama's blob itself: when its note held before the
        // link and it is still that file in that state, rbee already hashed these bytes.
        if let Some(noted) = &noted_as
            && stamp::same_file_unchanged(noted, &meta)
        {
            stamp::note(&file, &meta, &expected);
            return Ok(true);
        }
        let reader = StopOnCancel {
            file: file.try_clone()?,
            cancel,
        };
        let right = Sha256Digest::of_reader(reader, |_| {})?.0 == expected;
        if right {
            stamp::note(&file, &meta, &expected);
        }
        Ok(right)
    })();
    match kept {
        Ok(true) => {}
        Ok(false) | Err(_) => {
            let _ = std::fs::remove_file(&temp);
            return kept;
        }
    }
    std::fs::rename(&temp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })?;
    let _ = std::fs::remove_file(partial::part_path(target));
    let _ = std::fs::remove_file(partial::part_state_path(target));
    Ok(true)
}

/// A reader that fails once `cancel` fires, so hashing a large blob stops promptly.
struct StopOnCancel<'a> {
    file: std::fs::File,
    cancel: &'a CancellationToken,
}

impl Read for StopOnCancel<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            // Not `Interrupted`: readers retry that.
            return Err(std::io::Error::other("cancelled"));
        }
        self.file.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_hashed_once_is_taken_again_on_its_note_until_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("blob");
        let good = b"verified model bytes".to_vec();
        std::fs::write(&source, &good).unwrap();
        let (digest, size) = (Sha256Digest::of(&good), good.len() as u64);
        let take = |n: u32, cancel: &CancellationToken| {
            let target = dir.path().join(format!("catalog-{n}/model.gguf"));
            place_verified(&source, &target, digest, size, cancel, |_| {}).unwrap_or(false)
        };
        let live = CancellationToken::new();
        assert!(take(1, &live));
        let file = std::fs::File::open(&source).unwrap();
        if stamp::noted(&file, &file.metadata().unwrap()).is_none() {
            return; // no user extended attributes on this file system: every take hashes
        }
        drop(file);
        // What proves the bytes are not read again: a take whose hash would stop at once still
        // succeeds, and so does the next one (each take links the blob, and notes it again).
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        assert!(take(2, &cancelled));
        assert!(take(3, &cancelled));
        // Other bytes put back under the same modification time: the change time gives them
        // away, the bytes are hashed and refused.
        let when = std::fs::metadata(&source).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(250));
        std::fs::write(&source, vec![b'x'; good.len()]).unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&source)
            .unwrap();
        file.set_modified(when).unwrap();
        drop(file);
        assert!(!take(4, &cancelled));
        assert!(!take(5, &live));
        // Written without forging the time: hashed and refused too.
        std::fs::write(&source, vec![b'y'; good.len()]).unwrap();
        assert!(!take(6, &live));
    }

    #[test]
    fn a_source_rewritten_while_it_is_taken_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("blob"), dir.path().join("out/model.gguf"));
        let good = b"verified model bytes".to_vec();
        std::fs::write(&source, &good).unwrap();
        let cancel = CancellationToken::new();
        // The file at the source changes (same size) once rbee has started taking it.
        let kept = place_verified(
            &source,
            &target,
            Sha256Digest::of(&good),
            good.len() as u64,
            &cancel,
            |_| {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&source)
                    .unwrap();
                f.write_all(&vec![b'x'; good.len()]).unwrap();
            },
        )
        .unwrap();
        assert!(!kept);
        assert!(!target.exists());
        assert!(!partial::reuse_temp_path(&target).exists());

        // Unchanged: taken.
        std::fs::write(&source, &good).unwrap();
        let kept = place_verified(
            &source,
            &target,
            Sha256Digest::of(&good),
            good.len() as u64,
            &cancel,
            |_| {},
        )
        .unwrap();
        assert!(kept);
        assert_eq!(std::fs::read(&target).unwrap(), good);
    }
}
