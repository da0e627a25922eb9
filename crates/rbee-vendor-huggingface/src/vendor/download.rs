//! Downloading a plan's files: reuse what is already verified on disk, fetch the rest, check
//! git-stored files against their blob ids.

use std::path::Path;
use std::sync::Arc;

use rbee_artifact::{
    DownloadTracker, DownloadedFile, Error, FileSource, GitBlobId, ResolvedArtifact, ResolvedFile,
    Result, redact_url, validate_relative_path,
};

use crate::reference::HfRef;
use rbee_transfer::FetchRequest;
use tokio_util::sync::CancellationToken;

use super::HuggingFaceVendor;
use super::hf_cache::Pinned;
use crate::api::is_commit;
use crate::cache::hash_file;
use crate::xet::XetTokens;

/// Where reused files are said to come from, in progress events.
pub(super) const FROM_HF_CACHE: &str = "HuggingFace cache";

impl HuggingFaceVendor {
    pub(super) async fn download_files(
        &self,
        plan: &ResolvedArtifact,
        files: &[ResolvedFile],
        dest: &Path,
        progress: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        let Some(hf) = plan.reference.get::<HfRef>() else {
            return Err(Error::Unsupported(format!(
                "the HuggingFace vendor cannot download `{}`",
                plan.reference
            )));
        };
        let commit = plan
            .revision
            .as_deref()
            .filter(|c| is_commit(c))
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "the plan for {} has no resolved commit; resolve it again",
                    plan.reference
                ))
            })?;
        let revision = hf.revision.as_deref().unwrap_or("main");
        let cached = self.cache.repo(&hf.org, &hf.repo);

        let mut done: Vec<DownloadedFile> = Vec::new();
        let mut requests = Vec::new();
        for file in files {
            safe_path(&file.path)?;
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            match &file.source {
                FileSource::Local { path } => {
                    let Some(reused) = self.reuse(file, path.clone(), dest, cancel).await? else {
                        return Err(Error::Offline {
                            message: format!(
                                "{} in the HuggingFace cache ({}) is missing or does not match what was resolved; run with network access to download it",
                                file.path,
                                path.display()
                            ),
                        });
                    };
                    progress.file_reused(&file.path, reused.size, FROM_HF_CACHE);
                    done.push(reused);
                }
                FileSource::Http { url } => {
                    if expected_git_oid(file).is_some()
                        && let Some(kept) = keep_if_identical(file, dest, cancel).await?
                    {
                        progress.file_reused(
                            &file.path,
                            kept.size,
                            "already in the artifact folder",
                        );
                        done.push(kept);
                        continue;
                    }
                    if self.config.reuse_hf_cache {
                        let source = cached.snapshot_file(commit, &file.path);
                        if let Some(reused) = self.reuse(file, source, dest, cancel).await? {
                            progress.file_reused(&file.path, reused.size, FROM_HF_CACHE);
                            done.push(reused);
                            continue;
                        }
                    }
                    if self.config.offline {
                        return Err(Error::Offline {
                            message: format!(
                                "offline (HF_HUB_OFFLINE): {} of {}/{} is not in the HuggingFace cache; unset HF_HUB_OFFLINE to download it",
                                file.path, hf.org, hf.repo
                            ),
                        });
                    }
                    requests.push(FetchRequest {
                        path: file.path.clone(),
                        url: url.clone(),
                        auth: self.auth_for(url),
                        headers: Vec::new(),
                        expected_size: file.size,
                        sha256: file.sha256,
                        pieces: None,
                    });
                }
                other => {
                    return Err(Error::Unsupported(format!(
                        "the HuggingFace vendor cannot fetch {} from {other:?}",
                        file.path
                    )));
                }
            }
        }

        let mut xet_sources = Vec::new();
        let mut xet_cache = None;
        if self.config.xet && !requests.is_empty() {
            let tokens = Arc::new(XetTokens::new(
                self.transfer.clone(),
                &self.config.endpoint,
                &hf.org,
                &hf.repo,
                commit,
                self.config.token.clone(),
            ));
            xet_cache = self.chunk_cache().await;
            xet_sources = crate::xet::attach(
                &self.transfer,
                &mut requests,
                &tokens,
                xet_cache.as_ref(),
                cancel,
            )
            .await?;
        }
        if !requests.is_empty() {
            let origin = self.origin_requests(&requests, hf, commit);
            if let Some((mirror, _)) = &origin {
                progress.message(format!("downloading from mirror {}", redact_url(mirror)));
            }
            let fetched = match self
                .transfer
                .fetch_all(requests, dest, progress, cancel)
                .await
            {
                Ok(fetched) => fetched,
                Err(e) if e.is_cancelled() => return Err(e.into()),
                // A mirror that fails mid-download: the origin has the same bytes (the plan's
                // digests still hold them to it), and the partial files are kept.
                Err(e) => match origin {
                    Some((mirror, origin)) => {
                        self.mirror_health.failed(&mirror);
                        progress.message(format!(
                            "mirror {} failed ({}); continuing from the origin {}",
                            redact_url(&mirror),
                            Error::from(e),
                            redact_url(&self.config.endpoint)
                        ));
                        self.transfer
                            .fetch_all(origin, dest, progress, cancel)
                            .await?
                    }
                    None => return Err(e.into()),
                },
            };
            if let Some(cache) = &xet_cache {
                // On disk before this download returns: the next one may be another process.
                cache.flush().await;
            }
            if !xet_sources.is_empty() {
                let (fetched, reused) = xet_sources
                    .iter()
                    .map(|s| s.bytes_fetched_and_reused())
                    .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
                tracing::info!(
                    fetched,
                    reused,
                    "Xet: bytes fetched and reused from the chunk cache"
                );
                progress.message(format!(
                    "Xet: {fetched} bytes fetched, {reused} bytes reused from the chunk cache"
                ));
                progress.fetched_and_reused(fetched, reused);
            }
            check_git_blobs(files, &fetched, dest).await?;
            if self.config.write_hf_cache {
                let at = Pinned {
                    hf,
                    commit,
                    revision,
                };
                self.write_cache(at, files, &fetched, dest, progress).await;
            }
            done.extend(fetched);
        }
        // In the plan's order, whatever order they completed in.
        done.sort_by_key(|d| files.iter().position(|f| f.path == d.path));
        Ok(done)
    }
}

/// The git blob id a plan file expects, for files the Hub stores in git rather than LFS (no
/// sha256 published).
pub(super) fn expected_git_oid(file: &ResolvedFile) -> Option<GitBlobId> {
    file.expected_git_blob()
}

/// A git-stored file already at its place in `dest`: kept when its blob id is the one the
/// plan expects, removed otherwise. (Without a sha256, a file of the right size would pass
/// for complete downstream, so a changed config of the same length must not stay.)
pub(super) async fn keep_if_identical(
    file: &ResolvedFile,
    dest: &Path,
    cancel: &CancellationToken,
) -> Result<Option<DownloadedFile>> {
    let Some(expected) = expected_git_oid(file) else {
        return Ok(None);
    };
    let target = dest.join(safe_path(&file.path)?);
    if !tokio::fs::metadata(&target)
        .await
        .is_ok_and(|m| m.is_file())
    {
        return Ok(None);
    }
    let (path, stop) = (target.clone(), cancel.clone());
    let digest = tokio::task::spawn_blocking(move || hash_file(&path, true, Some(&stop)))
        .await
        .map_err(|e| Error::task_failed("checking a file", e))?;
    match digest {
        Ok(d) if d.git_oid == Some(expected) => Ok(Some(DownloadedFile {
            path: file.path.clone(),
            size: d.size,
            sha256: d.sha256,
        })),
        Ok(_) => {
            tokio::fs::remove_file(&target)
                .await
                .map_err(|e| Error::io(format!("removing the outdated {}", target.display()), e))?;
            Ok(None)
        }
        Err(_) if cancel.is_cancelled() => Err(Error::Cancelled),
        Err(e) => Err(Error::io(format!("checking {}", target.display()), e)),
    }
}

/// Files without a published sha256 (configs, tokenizers: stored in git, not LFS) are checked
/// against their git blob id; a mismatch removes the file and is [`Error::Integrity`].
pub(super) async fn check_git_blobs(
    plan_files: &[ResolvedFile],
    fetched: &[DownloadedFile],
    dest: &Path,
) -> Result<()> {
    for done in fetched {
        let Some(expected) = plan_files
            .iter()
            .find(|f| f.path == done.path)
            .and_then(expected_git_oid)
        else {
            continue;
        };
        let local = dest.join(safe_path(&done.path)?);
        let path = local.clone();
        let digest = tokio::task::spawn_blocking(move || hash_file(&path, true, None))
            .await
            .map_err(|e| Error::task_failed("checking a downloaded file", e))?
            .map_err(|e| Error::io(format!("checking {}", local.display()), e))?;
        let actual = digest.git_oid.expect("asked for the git blob id");
        if actual != expected {
            let _ = std::fs::remove_file(&local);
            return Err(Error::Integrity {
                path: done.path.clone(),
                expected: expected.into(),
                actual: actual.into(),
            });
        }
    }
    Ok(())
}

/// A plan's file path as a relative path, refusing anything that could leave `dest`.
pub(super) fn safe_path(path: &str) -> Result<&Path> {
    validate_relative_path(path).map_err(|kind| Error::Protocol {
        message: format!(
            "refusing to write `{}`: {kind}; the plan must name files inside the artifact folder",
            path.escape_debug()
        ),
    })
}
