//! The `file:` vendor.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use rbee_artifact::partial::part_path;
use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, FileProgress, FileSource, ResolveOptions,
    ResolvedArtifact, ResolvedFile, Result, Scheme, Sha256Digest, Sha256Hasher, VendorSource,
};

use crate::reference::LocalRef;
use tokio_util::sync::CancellationToken;

use crate::access::{LocalAccess, Roots, same_file};
use crate::scan;

/// Registers files and folders already on this machine.
///
/// Files are **hard-linked** into the catalog when the catalog is on the same file system: no
/// bytes are copied and no space is used twice, and deleting the original keeps the catalog's
/// copy. The price: the two names share one inode, so editing the original *in place* changes
/// the catalog's file too — `rbee model verify` detects that against the recorded sha256. Across
/// file systems (or where links are refused) the file is copied, streamed with progress. Either
/// way every byte is hashed once and the sha256 is recorded.
///
/// **Links** (a HuggingFace cache snapshot is a folder of them) are followed to the file they
/// lead to, within the vendor's [`LocalAccess`]; the catalog stores that real file under the
/// link's name, never the link itself. A dangling link, a link loop, or a link leading where
/// the access does not reach is an error naming the link.
#[derive(Debug, Default, Clone)]
pub struct LocalVendor {
    access: LocalAccess,
}

impl LocalVendor {
    /// A vendor that reads any file this process can read, following links anywhere: for a
    /// program acting with its own user's rights (the CLI).
    pub fn new() -> Self {
        Self::default()
    }

    /// A vendor that reads only files whose real path `access` admits: for a daemon reading on
    /// behalf of its callers.
    pub fn with_access(access: LocalAccess) -> Self {
        Self { access }
    }

    /// What this vendor may read.
    pub fn access(&self) -> &LocalAccess {
        &self.access
    }
}

#[async_trait]
impl VendorSource for LocalVendor {
    fn scheme(&self) -> Scheme {
        crate::SCHEME
    }

    async fn resolve(
        &self,
        reference: &ArtifactRef,
        options: &ResolveOptions,
        _cancel: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        let Some(local) = reference.get::<LocalRef>() else {
            return Err(Error::Unsupported(format!(
                "the file: vendor cannot fetch `{reference}`"
            )));
        };
        let path = local.path.clone();
        let options = options.clone();
        let reference = reference.clone();
        let roots = self.access.real_roots();
        tokio::task::spawn_blocking(move || resolve_blocking(reference, &path, &roots, &options))
            .await
            .map_err(|e| Error::task_failed("scanning local files", e))?
    }

    async fn download(
        &self,
        _plan: &ResolvedArtifact,
        files: &[ResolvedFile],
        dest: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        let mut done = Vec::with_capacity(files.len());
        let roots = self.access.real_roots();
        for file in files {
            let FileSource::Local { path: source } = &file.source else {
                return Err(Error::Unsupported(format!(
                    "{} is not a local file",
                    file.path
                )));
            };
            rbee_artifact::validate_relative_path(&file.path).map_err(|kind| {
                Error::InvalidRequest(format!("unsafe file name `{}`: {kind}", file.path))
            })?;
            let target = dest.join(&file.path);
            let progress = tracker.file(&file.path, file.size, 0);
            let job = Job {
                roots: roots.clone(),
                source: source.clone(),
                target,
                rel: file.path.clone(),
                expected: file.sha256,
                cancel: cancel.clone(),
            };
            let (progress, result) = tokio::task::spawn_blocking(move || {
                let r = job.run(&progress);
                (progress, r)
            })
            .await
            .map_err(|e| Error::task_failed("copying a local file", e))?;
            let (downloaded, how) = result?;
            tracker.message(format!("{}: {how}", file.path));
            progress.done();
            done.push(downloaded);
        }
        Ok(done)
    }
}

fn resolve_blocking(
    reference: ArtifactRef,
    path: &Path,
    roots: &Roots,
    options: &ResolveOptions,
) -> Result<ResolvedArtifact> {
    let root = roots.check(path)?;
    let meta =
        fs::metadata(&root).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let files = if meta.is_file() {
        // Named as asked: a link keeps its own name, not its target's.
        let name = path
            .file_name()
            .or_else(|| root.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::InvalidRequest(format!("{} has no file name", path.display())))?;
        vec![check_file(roots, &root, name, true)?]
    } else if meta.is_dir() {
        scan::model_files(&root, roots, &options.include, &options.exclude)?
            .into_iter()
            .map(|f| check_file(roots, &f.absolute, f.relative, false))
            .collect::<Result<Vec<_>>>()?
    } else {
        return Err(Error::InvalidRequest(format!(
            "{} is neither a regular file nor a folder",
            path.display()
        )));
    };
    Ok(ResolvedArtifact {
        reference,
        revision: None,
        files,
        notes: vec![],
    })
}

/// Checks that the file at the real path `path` may be read and is not empty, and describes
/// it.
fn check_file(roots: &Roots, path: &Path, relative: String, single: bool) -> Result<ResolvedFile> {
    let (_, meta) = roots.open(path)?;
    if meta.len() == 0 && (single || scan::is_weight(&relative)) {
        return Err(Error::InvalidRequest(format!(
            "{} is empty (0 bytes), so it cannot be a model",
            path.display()
        )));
    }
    Ok(ResolvedFile {
        path: relative,
        size: Some(meta.len()),
        sha256: None,
        version: Some(version_of(&meta)),
        git_blob: None,
        source: FileSource::Local {
            path: path.to_path_buf(),
        },
    })
}

/// Size and modification time: enough to notice that a local file changed.
fn version_of(meta: &fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    format!(
        "{}:{}.{:09}",
        meta.len(),
        mtime.as_secs(),
        mtime.subsec_nanos()
    )
}

struct Job {
    roots: Roots,
    /// Real path of the file to register.
    source: PathBuf,
    target: PathBuf,
    rel: String,
    expected: Option<Sha256Digest>,
    cancel: CancellationToken,
}

impl Job {
    /// Links (or copies) `source` to `target` through a `.part` name, hashing every byte.
    fn run(&self, progress: &FileProgress) -> Result<(DownloadedFile, &'static str)> {
        if let Some(parent) = self.target.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        // Everything below reads through this handle, the file that was checked.
        let (mut src, src_meta) = self.roots.open(&self.source)?;
        let part = part_path(&self.target);
        let _ = fs::remove_file(&part);
        let result = match fs::hard_link(&self.source, &part) {
            // The name may have been swapped between the check and the link: keep the link
            // only when it is the very file opened.
            Ok(()) if fs::symlink_metadata(&part).is_ok_and(|m| same_file(&m, &src_meta)) => self
                .pump(&mut src, None, progress)
                .map_err(|e| e.with_context(&self.source))
                .map(|d| (d, "hard-linked (same file system: no bytes copied)")),
            Ok(()) => {
                let _ = fs::remove_file(&part);
                self.copy(&mut src, &src_meta, &part, progress)
                    .map(|d| (d, "copied"))
            }
            Err(e) => {
                tracing::debug!(error = %e, "hard link refused; copying");
                self.copy(&mut src, &src_meta, &part, progress)
                    .map(|d| (d, "copied (the catalog is on another file system)"))
            }
        };
        let (sha256, how) = match result {
            Ok(ok) => ok,
            Err(e) => {
                // A local copy restarts cheaply; never leave a stray partial behind.
                let _ = fs::remove_file(&part);
                return Err(e);
            }
        };
        let size = fs::metadata(&part)
            .map_err(|e| Error::io(format!("reading {}", part.display()), e))?
            .len();
        if let Some(expected) = self.expected
            && expected != sha256
        {
            let _ = fs::remove_file(&part);
            return Err(Error::Integrity {
                path: self.rel.clone(),
                expected: expected.into(),
                actual: sha256.into(),
            });
        }
        fs::rename(&part, &self.target)
            .map_err(|e| Error::io(format!("renaming into {}", self.target.display()), e))?;
        // Renaming a link over another link to the same file (linked again from the same
        // source) succeeds without removing the old name: the partial is still there.
        if fs::symlink_metadata(&part).is_ok() {
            let _ = fs::remove_file(&part);
        }
        Ok((
            DownloadedFile {
                path: self.rel.clone(),
                size,
                sha256,
            },
            how,
        ))
    }

    fn copy(
        &self,
        src: &mut File,
        src_meta: &fs::Metadata,
        part: &Path,
        progress: &FileProgress,
    ) -> Result<Sha256Digest> {
        let mut out =
            File::create(part).map_err(|e| Error::io(format!("creating {}", part.display()), e))?;
        // The copy is no more readable than the original.
        out.set_permissions(src_meta.permissions())
            .map_err(|e| Error::io(format!("setting the permissions of {}", part.display()), e))?;
        let digest = self
            .pump(src, Some(&mut out), progress)
            .map_err(|e| e.with_context(&self.source))?;
        out.sync_all()
            .map_err(|e| Error::io(format!("syncing {}", part.display()), e))?;
        Ok(digest)
    }

    /// Reads `src` to the end, hashing, optionally writing to `out`, reporting progress and
    /// stopping at the first block after cancellation.
    fn pump(
        &self,
        src: &mut File,
        mut out: Option<&mut File>,
        progress: &FileProgress,
    ) -> std::result::Result<Sha256Digest, PumpError> {
        let mut hasher = Sha256Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            if self.cancel.is_cancelled() {
                return Err(PumpError::Cancelled);
            }
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PumpError::Io(e)),
            };
            hasher.update(&buf[..n]);
            if let Some(out) = out.as_deref_mut() {
                out.write_all(&buf[..n]).map_err(PumpError::Write)?;
            }
            progress.advance(n as u64);
        }
        Ok(hasher.finalize())
    }
}

enum PumpError {
    Cancelled,
    Io(std::io::Error),
    Write(std::io::Error),
}

impl PumpError {
    fn with_context(self, path: &Path) -> Error {
        match self {
            PumpError::Cancelled => Error::Cancelled,
            PumpError::Io(e) => Error::io(format!("reading {}", path.display()), e),
            PumpError::Write(e) if e.raw_os_error() == Some(28) => Error::InsufficientSpace {
                path: path.to_path_buf(),
                needed: 0,
                available: 0,
            },
            PumpError::Write(e) => Error::io("writing into the catalog", e),
        }
    }
}
