//! The in-memory vendor.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;
use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, FileSource, ResolveOptions,
    ResolvedArtifact, ResolvedFile, Result, Scheme, Sha256Digest, VendorSource, lock_unpoisoned,
    partial,
};
use tokio_util::sync::CancellationToken;
use url::Url;

/// Bytes written between two looks at the cancellation token, so a cancel is seen within one
/// write as the engine sees it within one read.
const CHUNK: usize = 16 * 1024;

/// A vendor serving artifacts held in memory, under one scheme.
///
/// Artifacts are keyed by their reference as written ([`ArtifactRef`]'s `Display`). Downloads
/// behave like the transfer engine's: bytes go to `<name>.part` (a partial that is a prefix of
/// the file is continued), the digest is checked before the rename to the final name, and a
/// mismatch deletes the partial and is [`Error::Integrity`].
#[derive(Debug)]
pub struct InMemoryVendor {
    scheme: Scheme,
    artifacts: Mutex<HashMap<String, Artifact>>,
    stall_after: Mutex<Option<u64>>,
    bytes_written: AtomicU64,
    downloads: AtomicUsize,
}

#[derive(Debug, Clone)]
struct Artifact {
    revision: Option<String>,
    files: Vec<MemoryFile>,
}

#[derive(Debug, Clone)]
struct MemoryFile {
    path: String,
    served: Vec<u8>,
    published: Sha256Digest,
}

impl InMemoryVendor {
    /// An empty vendor answering for `scheme`.
    pub fn new(scheme: Scheme) -> Self {
        Self {
            scheme,
            artifacts: Mutex::new(HashMap::new()),
            stall_after: Mutex::new(None),
            bytes_written: AtomicU64::new(0),
            downloads: AtomicUsize::new(0),
        }
    }

    /// Serves `files` (path, bytes) for `reference` at `revision`, replacing what was there
    /// (a moved branch, a new release).
    pub fn insert(
        &self,
        reference: &ArtifactRef,
        revision: Option<&str>,
        files: &[(&str, Vec<u8>)],
    ) {
        let files = files
            .iter()
            .map(|(path, bytes)| MemoryFile {
                path: path.to_string(),
                published: Sha256Digest::of(bytes),
                served: bytes.clone(),
            })
            .collect();
        let artifact = Artifact {
            revision: revision.map(str::to_string),
            files,
        };
        lock_unpoisoned(&self.artifacts).insert(reference.to_string(), artifact);
    }

    /// From now on serves bytes for `path` of `reference` that differ from its published digest
    /// (its first byte flipped), as a corrupted mirror would. Returns whether the file exists.
    pub fn corrupt(&self, reference: &ArtifactRef, path: &str) -> bool {
        let mut artifacts = lock_unpoisoned(&self.artifacts);
        let file = artifacts
            .get_mut(&reference.to_string())
            .and_then(|a| a.files.iter_mut().find(|f| f.path == path));
        match file {
            Some(file) if !file.served.is_empty() => {
                file.served[0] ^= 0xff;
                true
            }
            _ => false,
        }
    }

    /// The next download stops after writing `bytes` bytes (in total, over its files) and waits
    /// until it is cancelled: an interruption no later than a known point.
    pub fn stall_once_after(&self, bytes: u64) {
        *lock_unpoisoned(&self.stall_after) = Some(bytes);
    }

    /// Bytes written into partial files by all downloads so far (a resumed download writes only
    /// what was missing).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// How many times [`download`](VendorSource::download) was called.
    pub fn download_count(&self) -> usize {
        self.downloads.load(Ordering::Relaxed)
    }

    fn artifact(&self, reference: &ArtifactRef) -> Result<Artifact> {
        lock_unpoisoned(&self.artifacts)
            .get(&reference.to_string())
            .cloned()
            .ok_or_else(|| Error::NotFound {
                message: format!(
                    "{reference} is not served by this in-memory vendor; insert it first"
                ),
            })
    }

    async fn write_file(
        &self,
        file: &MemoryFile,
        dest: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
        stall_at: Option<u64>,
        written_in_job: &mut u64,
    ) -> Result<DownloadedFile> {
        let target = dest.join(&file.path);
        let part = partial::part_path(&target);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        // A partial that is a prefix of the file is continued; anything else starts over.
        let kept = match fs::read(&part) {
            Ok(existing) if file.served.starts_with(&existing) => existing.len(),
            _ => 0,
        };
        let mut out = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&part)
            .map_err(|e| Error::io(format!("opening {}", part.display()), e))?;
        out.set_len(kept as u64)
            .map_err(|e| Error::io(format!("truncating {}", part.display()), e))?;
        let io_err = |e| Error::io(format!("writing {}", part.display()), e);
        std::io::Seek::seek(&mut out, std::io::SeekFrom::Start(kept as u64)).map_err(io_err)?;
        let progress = tracker.file(&file.path, Some(file.served.len() as u64), kept as u64);
        for chunk in file.served[kept..].chunks(CHUNK) {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let take = stall_at.map_or(chunk.len(), |at| {
                (at.saturating_sub(*written_in_job) as usize).min(chunk.len())
            });
            out.write_all(&chunk[..take]).map_err(io_err)?;
            self.bytes_written.fetch_add(take as u64, Ordering::Relaxed);
            *written_in_job += take as u64;
            progress.advance(take as u64);
            if stall_at.is_some_and(|at| *written_in_job >= at) {
                out.sync_all().map_err(io_err)?;
                cancel.cancelled().await;
                return Err(Error::Cancelled);
            }
            tokio::task::yield_now().await;
        }
        out.sync_all().map_err(io_err)?;
        drop(out);
        progress.verifying();
        let (actual, size) = Sha256Digest::of_file(&part, |_| {})
            .map_err(|e| Error::io(format!("reading {}", part.display()), e))?;
        if actual != file.published {
            let _ = fs::remove_file(&part);
            return Err(Error::Integrity {
                path: file.path.clone(),
                expected: file.published.into(),
                actual: actual.into(),
            });
        }
        fs::rename(&part, &target)
            .map_err(|e| Error::io(format!("renaming {}", part.display()), e))?;
        progress.done();
        Ok(DownloadedFile {
            path: file.path.clone(),
            size,
            sha256: actual,
        })
    }
}

#[async_trait]
impl VendorSource for InMemoryVendor {
    fn scheme(&self) -> Scheme {
        self.scheme
    }

    async fn resolve(
        &self,
        reference: &ArtifactRef,
        options: &ResolveOptions,
        cancel: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let artifact = self.artifact(reference)?;
        let files = artifact
            .files
            .iter()
            .filter(|f| selected(&f.path, options))
            .map(|f| ResolvedFile {
                path: f.path.clone(),
                size: Some(f.served.len() as u64),
                sha256: Some(f.published),
                version: None,
                git_blob: None,
                source: FileSource::Http {
                    url: memory_url(&f.path),
                },
            })
            .collect();
        Ok(ResolvedArtifact {
            reference: reference.clone(),
            revision: artifact.revision,
            files,
            notes: Vec::new(),
        })
    }

    async fn download(
        &self,
        plan: &ResolvedArtifact,
        files: &[ResolvedFile],
        dest: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        self.downloads.fetch_add(1, Ordering::Relaxed);
        let artifact = self.artifact(&plan.reference)?;
        // Taken when the download starts, so it stalls this download only, even one cancelled
        // before it gets there.
        let stall_at = lock_unpoisoned(&self.stall_after).take();
        let mut written_in_job = 0;
        let mut done = Vec::with_capacity(files.len());
        for wanted in files {
            let file = artifact
                .files
                .iter()
                .find(|f| f.path == wanted.path)
                .ok_or_else(|| Error::NotFound {
                    message: format!("{} has no file {}", plan.reference, wanted.path),
                })?;
            done.push(
                self.write_file(file, dest, tracker, cancel, stall_at, &mut written_in_job)
                    .await?,
            );
        }
        Ok(done)
    }
}

/// Where a file "is": never fetched, only shown.
fn memory_url(path: &str) -> Url {
    let mut url = Url::parse("memory://in-memory/").expect("a constant URL parses");
    url.set_path(path);
    url
}

/// Include and exclude globs over paths, with `*` matching any run of characters.
fn selected(path: &str, options: &ResolveOptions) -> bool {
    (options.include.is_empty() || options.include.iter().any(|g| wildcard(g, path)))
        && !options.exclude.iter().any(|g| wildcard(g, path))
}

fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| wildcard(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shell_stars() {
        assert!(wildcard("*.gguf", "model.gguf"));
        assert!(wildcard("sub/*", "sub/a.json"));
        assert!(wildcard("a*b*c", "axxbyyc"));
        assert!(!wildcard("*.gguf", "model.json"));
        assert!(!wildcard("model", "model.gguf"));
    }
}
