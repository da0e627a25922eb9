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
use super::plan_index::PlanIndex;
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
        let by_path = PlanIndex::new(files);

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
                        git_blob: expected_git_oid(file),
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
            if self.config.write_hf_cache {
                let at = Pinned {
                    hf,
                    commit,
                    revision,
                };
                self.write_cache(at, &by_path, &fetched, dest, progress)
                    .await;
            }
            done.extend(fetched);
        }
        // In the plan's order, whatever order they completed in.
        done.sort_by_key(|d| by_path.position(&d.path));
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

/// A plan's file path as a relative path, refusing anything that could leave `dest`.
pub(super) fn safe_path(path: &str) -> Result<&Path> {
    validate_relative_path(path).map_err(|kind| Error::Protocol {
        message: format!(
            "refusing to write `{}`: {kind}; the plan must name files inside the artifact folder",
            path.escape_debug()
        ),
    })
}

#[cfg(test)]
mod tests {
    use rbee_artifact::{ArtifactRef, DownloadTracker, JobId, ResolveOptions, VendorSource};
    use rbee_fake_hub::{FakeHub, FakeHubConfig};
    use rbee_transfer::{Transfer, TransferConfig};

    use super::*;
    use crate::config::HfConfig;
    use crate::vendor::plan_index::PASSES;

    #[tokio::test]
    async fn a_many_file_snapshot_is_looked_up_in_one_pass_over_the_plan() {
        let root = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let files = 120;
        for i in 0..files {
            // Small text files: git-stored, checked against their blob ids.
            let p = root
                .path()
                .join(format!("hf/org/many/{}/f{i:03}.txt", i % 3));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("file {i}\n").repeat(i + 1)).unwrap();
        }
        let hub = FakeHub::start(FakeHubConfig::new(root.path()))
            .await
            .unwrap();
        let transfer = Transfer::new(TransferConfig {
            use_env_proxy: false,
            ..TransferConfig::default()
        })
        .unwrap();
        let vendor =
            HuggingFaceVendor::new(HfConfig::new(hub.url().clone(), home.path()), transfer);
        rbee_artifact::register_reference::<HfRef>();
        let reference: ArtifactRef = "hf:org/many".parse().unwrap();
        let mut options = ResolveOptions::default();
        options.include = vec!["**".into()];
        let cancel = CancellationToken::new();
        let plan = vendor.resolve(&reference, &options, &cancel).await.unwrap();
        assert_eq!(plan.files.len(), files);
        assert!(plan.files.iter().all(|f| expected_git_oid(f).is_some()));
        PASSES.with(|p| p.set(0));
        let tracker = DownloadTracker::new(JobId::from("many"));
        let done = vendor
            .download(&plan, &plan.files, out.path(), &tracker, &cancel)
            .await
            .unwrap();
        assert_eq!(
            PASSES.with(|p| p.get()),
            1,
            "the plan is indexed once, not searched once per file"
        );
        let order: Vec<&str> = done.iter().map(|d| d.path.as_str()).collect();
        let planned: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(order, planned, "results come in the plan's order");
    }
}
