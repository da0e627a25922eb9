//! Resolving a reference to a commit and its files: online against the Hub, or offline from the
//! HuggingFace cache.

use rbee_artifact::{ArtifactRef, Error, FileSource, ResolvedArtifact, ResolvedFile, Result};

use crate::reference::HfRef;
use tokio_util::sync::CancellationToken;

use super::HuggingFaceVendor;
use crate::api;
use crate::files::RepoFile;
use crate::snapshot::PathFilter;

impl HuggingFaceVendor {
    pub(super) fn resolved_file(&self, hf: &HfRef, commit: &str, file: &RepoFile) -> ResolvedFile {
        ResolvedFile {
            path: file.path.clone(),
            size: file.size,
            sha256: file.sha256,
            version: file
                .oid
                .clone()
                .or_else(|| file.sha256.map(|s| s.to_string())),
            git_blob: file.git_blob(),
            source: FileSource::Http {
                url: api::resolve_url(&self.config.endpoint, &hf.org, &hf.repo, commit, &file.path),
            },
        }
    }

    pub(super) async fn resolve_online(
        &self,
        reference: &ArtifactRef,
        hf: &HfRef,
        revision: &str,
        filter: &PathFilter,
        cancel: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        let (commit, listing, gated) = self.list(hf, revision, cancel).await?;
        let mut notes = Vec::new();
        if !listing.unsafe_names.is_empty() {
            const SHOWN: usize = 5;
            let more = listing.unsafe_names.len().saturating_sub(SHOWN);
            notes.push(format!(
                "refused {} file name(s) from the listing that are not safe relative paths (they are not downloaded): {}{}",
                listing.unsafe_names.len(),
                listing.unsafe_names[..listing.unsafe_names.len().min(SHOWN)].join(", "),
                if more > 0 { format!(", and {more} more") } else { String::new() }
            ));
        }
        let mut chosen: Vec<RepoFile> = self
            .select(hf, revision, &listing.files, filter, &mut notes)?
            .into_iter()
            .cloned()
            .collect();
        for (i, file) in chosen.iter_mut().enumerate() {
            // A gated model's metadata is public but its files are not: ask for one now, so
            // a missing licence acceptance is reported before any download starts.
            if file.size.is_none() || (gated && i == 0) {
                self.probe(hf, &commit, file, cancel).await?;
            }
        }
        if revision != commit {
            notes.push(format!("{revision} is commit {commit}"));
        }
        Ok(ResolvedArtifact {
            reference: reference.clone(),
            files: chosen
                .iter()
                .map(|f| self.resolved_file(hf, &commit, f))
                .collect(),
            revision: Some(commit),
            notes,
        })
    }

    /// Resolves from the HuggingFace cache alone.
    pub(super) fn resolve_offline(
        &self,
        reference: &ArtifactRef,
        hf: &HfRef,
        revision: &str,
        filter: &PathFilter,
    ) -> Result<ResolvedArtifact> {
        let name = format!("{}/{}", hf.org, hf.repo);
        let cached = self.cache.repo(&hf.org, &hf.repo);
        let offline = |what: String| Error::Offline {
            message: format!(
                "offline (HF_HUB_OFFLINE or --offline): {what}; run once with network access, or unset HF_HUB_OFFLINE"
            ),
        };
        let io = |e: std::io::Error| {
            Error::io(
                format!(
                    "reading the HuggingFace cache at {}",
                    cached.dir().display()
                ),
                e,
            )
        };
        let Some(commit) = cached.read_ref(revision).map_err(io)? else {
            return Err(offline(format!(
                "{name}@{revision} is not in the HuggingFace cache ({} has no refs/{revision})",
                cached.dir().display()
            )));
        };
        let files = cached.list_snapshot(&commit).map_err(io)?;
        if files.is_empty() {
            return Err(offline(format!(
                "{name}@{revision} (commit {commit}) has no files in the HuggingFace cache ({})",
                cached.snapshot_dir(&commit).display()
            )));
        }
        let mut notes = vec![format!(
            "offline: resolved from the HuggingFace cache at {}",
            cached.dir().display()
        )];
        let chosen = match self.select(hf, revision, &files, filter, &mut notes) {
            Ok(chosen) => chosen,
            Err(Error::NotFound { message } | Error::InvalidRequest(message)) => {
                return Err(offline(format!(
                    "only the HuggingFace cache was searched and it cannot satisfy {reference}: {message}"
                )));
            }
            Err(e) => return Err(e),
        };
        Ok(ResolvedArtifact {
            reference: reference.clone(),
            files: chosen
                .into_iter()
                .map(|f| ResolvedFile {
                    path: f.path.clone(),
                    size: f.size,
                    sha256: f.sha256,
                    version: f.oid.clone().or_else(|| f.sha256.map(|s| s.to_string())),
                    git_blob: f.git_blob(),
                    source: FileSource::Local {
                        path: cached.snapshot_file(&commit, &f.path),
                    },
                })
                .collect(),
            revision: Some(commit),
            notes,
        })
    }
}
