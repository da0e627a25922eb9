//! Taking verified files from the HuggingFace cache, and placing downloaded ones in its layout.

use std::path::{Path, PathBuf};

use rbee_artifact::{
    DownloadTracker, DownloadedFile, Error, ResolvedFile, Result, link_or_copy, partial,
};

use crate::reference::HfRef;
use tokio_util::sync::CancellationToken;

use super::HuggingFaceVendor;
use super::download::{expected_git_oid, safe_path};
use super::plan_index::PlanIndex;
use crate::cache::{LocalDigest, hash_file};

impl HuggingFaceVendor {
    /// Takes `file` from `source` (a HuggingFace cache entry) into `dest` if its bytes are the
    /// ones the plan expects. `Ok(None)`: not usable (absent or different).
    pub(super) async fn reuse(
        &self,
        file: &ResolvedFile,
        source: PathBuf,
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<Option<DownloadedFile>> {
        let target = dest.join(safe_path(&file.path)?);
        let expected = file.clone();
        let stop = cancel.clone();
        let outcome = tokio::task::spawn_blocking(move || -> std::io::Result<Option<LocalDigest>> {
            let Ok(meta) = std::fs::metadata(&source) else {
                return Ok(None);
            };
            if !meta.is_file() || expected.size.is_some_and(|s| s != meta.len()) {
                return Ok(None);
            }
            let oid = expected_git_oid(&expected);
            let digest = hash_file(&source, expected.sha256.is_none() && oid.is_some(), Some(&stop))?;
            let matches = match (&expected.sha256, oid) {
                (Some(sha), _) => *sha == digest.sha256,
                (None, Some(oid)) => digest.git_oid == Some(oid),
                // Nothing to check against but the size.
                (None, None) => true,
            };
            if !matches {
                tracing::warn!(path = %source.display(), "the HuggingFace cache holds different bytes than the Hub lists; downloading instead");
                return Ok(None);
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            link_or_copy(&source, &target, &partial::reuse_temp_path(&target))?;
            // A complete file makes any partial of an earlier attempt useless.
            let _ = std::fs::remove_file(partial::part_path(&target));
            let _ = std::fs::remove_file(partial::part_state_path(&target));
            Ok(Some(digest))
        })
        .await
        .map_err(|e| Error::task_failed("checking a file in the HuggingFace cache", e))?;
        match outcome {
            Ok(Some(digest)) => Ok(Some(DownloadedFile {
                path: file.path.clone(),
                size: digest.size,
                sha256: digest.sha256,
            })),
            Ok(None) => Ok(None),
            Err(_) if cancel.is_cancelled() => Err(Error::Cancelled),
            Err(e) => Err(Error::io(
                format!("taking {} from the HuggingFace cache", file.path),
                e,
            )),
        }
    }

    /// Places downloaded files in the HuggingFace cache layout. Failures are reported, not
    /// fatal: the download itself succeeded.
    pub(super) async fn write_cache(
        &self,
        at: Pinned<'_>,
        plan: &PlanIndex<'_>,
        downloaded: &[DownloadedFile],
        dest: &Path,
        tracker: &DownloadTracker,
    ) {
        let (hf, commit, revision) = (at.hf, at.commit, at.revision);
        let cached = self.cache.repo(&hf.org, &hf.repo);
        for done in downloaded {
            let Some(planned) = plan.get(&done.path) else {
                continue;
            };
            let local = dest.join(&done.path);
            // The blob name huggingface_hub uses: sha256 for LFS files, else the git blob id.
            let etag = match (&planned.sha256, planned.version.as_deref()) {
                (Some(sha), _) => Some(sha.to_string()),
                (None, Some(v)) if v.len() == 40 => Some(v.to_string()),
                _ => None,
            };
            let (cached, commit, revision, path) = (
                cached.clone(),
                commit.to_string(),
                revision.to_string(),
                done.path.clone(),
            );
            let result = tokio::task::spawn_blocking(move || {
                let etag = match etag {
                    Some(etag) => etag,
                    None => hash_file(&local, true, None)?
                        .git_oid
                        .expect("asked for the git blob id")
                        .to_string(),
                };
                cached.store(&commit, &revision, &path, &etag, &local)
            })
            .await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(path = %done.path, error = %e, "could not place the file in the HuggingFace cache");
                    tracker.message(format!(
                        "could not place {} in the HuggingFace cache: {e}",
                        done.path
                    ));
                }
                Err(e) => tracing::warn!(error = %e, "HuggingFace cache task failed"),
            }
        }
    }
}

/// A repository at a resolved commit, and the revision that was asked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pinned<'a> {
    pub(super) hf: &'a HfRef,
    pub(super) commit: &'a str,
    pub(super) revision: &'a str,
}
