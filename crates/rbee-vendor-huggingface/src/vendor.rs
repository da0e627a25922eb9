//! [`HuggingFaceVendor`]: resolve `hf:` references against the Hub, download through the
//! shared transfer engine, reuse and fill the HuggingFace cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, FileSource, GitBlobId, ResolveOptions,
    ResolvedArtifact, ResolvedFile, Result, Scheme, Secret, VendorSource, link_or_copy, partial,
    redact_url, validate_relative_path,
};

use crate::reference::{HfRef, HfSelector};
use rbee_transfer::{ApiRequest, FetchRequest, Transfer, TransferError, parse_retry_after};
use reqwest::Response;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::api::{self, Listing, ModelInfo, TreeEntry, is_commit};
use crate::cache::{HfCache, LocalDigest, hash_file};
use crate::config::HfConfig;
use crate::files::RepoFile;
use crate::hub_error::{self, Answer, Context};
use crate::mirrors::MirrorHealth;
use crate::quant::{is_gguf_repo, parse_gguf_name, select_quant, split_set_of};
use crate::snapshot::{PathFilter, select_snapshot};
use crate::xet::{ChunkCache, XetTokens};

/// The largest metadata answer read (a listing of tens of thousands of files fits easily).
const MAX_API_BODY: usize = 64 << 20;

/// Where reused files are said to come from, in progress events.
const FROM_HF_CACHE: &str = "HuggingFace cache";

/// Pages of the tree listing followed at most (1000 entries each on the Hub).
const MAX_TREE_PAGES: usize = 1000;

/// Bytes of an error body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The `hf:` vendor.
///
/// - `resolve` makes one API call (`/api/models/{org}/{repo}/revision/{rev}?blobs=true`) for
///   the commit, the file list, sizes and LFS sha256s, falling back to the paginated tree
///   listing when sizes are missing; then picks the files ([`select_quant`],
///   [`select_snapshot`], include/exclude globs). Download URLs name the resolved commit, so a
///   branch that moves mid-download cannot mix revisions. Offline, it resolves from the
///   HuggingFace cache only.
/// - `download` takes each file from the HuggingFace cache when a verified copy is there
///   (hard link, else copy; a `file_reused` event says so), fetches the rest through
///   [`Transfer::fetch_all`], and with [`HfConfig::write_hf_cache`] places them in the
///   HuggingFace cache layout.
/// - The token goes to the endpoint's host only, and never into plans, errors or events.
#[derive(Debug, Clone)]
pub struct HuggingFaceVendor {
    config: HfConfig,
    transfer: Transfer,
    cache: HfCache,
    /// Shared by clones, and by the views [`HuggingFaceVendor::through`] makes.
    mirror_health: std::sync::Arc<MirrorHealth>,
    /// For a mirror's metadata: few retries, since the next mirror or the origin is waiting.
    mirror_api: Transfer,
    /// The Xet chunk cache, opened on first use and shared by every download of this vendor.
    chunk_cache: Arc<tokio::sync::OnceCell<Option<Arc<ChunkCache>>>>,
}

impl HuggingFaceVendor {
    /// A vendor for the Hub in `config`, moving bytes through `transfer`.
    pub fn new(config: HfConfig, transfer: Transfer) -> Self {
        let cache = HfCache::new(config.hub_cache.clone());
        let mirror_api = Transfer::new(rbee_transfer::TransferConfig {
            max_attempts: 2,
            max_backoff: std::time::Duration::from_secs(1),
            ..transfer.config().clone()
        })
        .unwrap_or_else(|_| transfer.clone());
        Self {
            config,
            transfer,
            cache,
            mirror_health: Default::default(),
            mirror_api,
            chunk_cache: Default::default(),
        }
    }

    /// The same vendor speaking to `mirror` instead of the endpoint, without the token (it is
    /// the origin's).
    pub(crate) fn through(&self, mirror: &Url) -> Self {
        let mut config = self.config.clone();
        config.endpoint = mirror.clone();
        config.token = None;
        config.mirrors.clear();
        Self {
            config,
            transfer: self.mirror_api.clone(),
            ..self.clone()
        }
    }

    /// The Xet chunk cache, when one is configured and can be opened (reading what an earlier
    /// process left is blocking work, done once).
    async fn chunk_cache(&self) -> Option<Arc<ChunkCache>> {
        self.chunk_cache
            .get_or_init(|| async {
                let dir = self.config.xet_cache.clone()?;
                let max = self.config.xet_cache_max_bytes;
                if max == 0 {
                    return None;
                }
                let opened =
                    tokio::task::spawn_blocking(move || (ChunkCache::open(&dir, max), dir)).await;
                match opened {
                    Ok((Ok(c), _)) => Some(Arc::new(c)),
                    Ok((Err(e), dir)) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot use the Xet chunk cache; going on without it");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot use the Xet chunk cache; going on without it");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    pub(crate) fn mirror_health(&self) -> &MirrorHealth {
        &self.mirror_health
    }

    /// The configuration.
    pub fn config(&self) -> &HfConfig {
        &self.config
    }

    /// The token, for a URL on the endpoint's origin only.
    fn auth_for(&self, url: &Url) -> Option<Secret> {
        let same_origin = url.scheme() == self.config.endpoint.scheme()
            && url.host_str() == self.config.endpoint.host_str()
            && url.port_or_known_default() == self.config.endpoint.port_or_known_default();
        same_origin.then(|| self.config.token.clone()).flatten()
    }

    fn context<'a>(&'a self, hf: &'a HfRef, revision: &'a str, url: &'a Url) -> Context<'a> {
        Context {
            endpoint: &self.config.endpoint,
            org: &hf.org,
            repo: &hf.repo,
            revision,
            path: None,
            known_files: &[],
            token: self.config.token.as_ref(),
            url,
        }
    }

    /// Sends an API request; an error status becomes the Hub's error, mapped.
    async fn api(
        &self,
        request: ApiRequest,
        ctx: &Context<'_>,
        cancel: &CancellationToken,
    ) -> Result<Response> {
        match self.transfer.send(request, cancel).await {
            Ok(response) if response.status().is_success() => Ok(response),
            Ok(response) if response.status().is_redirection() => Ok(response),
            Ok(response) => Err(hub_error::map(&answer_of(response, cancel).await?, ctx)),
            Err(e) => Err(transfer_error(e, ctx)),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        response: Response,
        url: &Url,
        cancel: &CancellationToken,
    ) -> Result<T> {
        let body = rbee_transfer::read_body(response, MAX_API_BODY, cancel).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Protocol {
            message: format!(
                "{} answered JSON this client does not understand ({e}); is HF_ENDPOINT a HuggingFace Hub?",
                redact_url(url)
            ),
        })
    }

    /// The commit `revision` points at and every file at that commit.
    async fn list(
        &self,
        hf: &HfRef,
        revision: &str,
        cancel: &CancellationToken,
    ) -> Result<(String, Listing, bool)> {
        let url = api::revision_url(&self.config.endpoint, &hf.org, &hf.repo, revision);
        let ctx = self.context(hf, revision, &url);
        let mut request = ApiRequest::get(url.clone());
        request.auth = self.auth_for(&url);
        let response = self.api(request, &ctx, cancel).await?;
        let info: ModelInfo = self.json(response, &url, cancel).await?;
        let commit = match info.sha.as_deref() {
            Some(sha) if is_commit(sha) => sha.to_ascii_lowercase(),
            other => {
                return Err(Error::Protocol {
                    message: format!(
                        "{} did not name the commit of {}/{}@{revision} (got {:?}); is HF_ENDPOINT a HuggingFace Hub?",
                        redact_url(&url),
                        hf.org,
                        hf.repo,
                        other.map(|s| s.escape_debug().to_string())
                    ),
                });
            }
        };
        let listing = info.listing()?;
        let gated = info.is_gated();
        if info.siblings.is_some() && listing.is_complete() {
            return Ok((commit, listing, gated));
        }
        tracing::debug!(repo = %format!("{}/{}", hf.org, hf.repo), "revision listing lacks sizes; reading the tree");
        let listing = self.tree(hf, &commit, cancel).await?;
        Ok((commit, listing, gated))
    }

    /// Every file at `commit` from the paginated tree endpoint.
    async fn tree(&self, hf: &HfRef, commit: &str, cancel: &CancellationToken) -> Result<Listing> {
        let mut url = api::tree_url(&self.config.endpoint, &hf.org, &hf.repo, commit);
        let mut listing = Listing::default();
        for _ in 0..MAX_TREE_PAGES {
            let ctx = self.context(hf, commit, &url);
            let mut request = ApiRequest::get(url.clone());
            request.auth = self.auth_for(&url);
            let response = self.api(request, &ctx, cancel).await?;
            let next = response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(api::next_link)
                .map(str::to_string);
            let page: Vec<TreeEntry> = self.json(response, &url, cancel).await?;
            api::add_tree_page(page, &mut listing)?;
            let Some(next) = next else {
                return Ok(listing);
            };
            let next = url.join(&next).map_err(|_| Error::Protocol {
                message: format!("{} sent an invalid next-page link", redact_url(&url)),
            })?;
            if next.origin() != self.config.endpoint.origin() {
                return Err(Error::Protocol {
                    message: format!(
                        "{} sent a next-page link to another host ({}); refusing to follow it",
                        redact_url(&url),
                        next.host_str().unwrap_or("?")
                    ),
                });
            }
            url = next;
        }
        Err(Error::Protocol {
            message: format!(
                "the tree listing of {}/{} did not end after {MAX_TREE_PAGES} pages",
                hf.org, hf.repo
            ),
        })
    }

    /// Size and digest of one file from the resolve endpoint's headers, for listings that
    /// lack them.
    async fn probe(
        &self,
        hf: &HfRef,
        commit: &str,
        file: &mut RepoFile,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let url = api::resolve_url(&self.config.endpoint, &hf.org, &hf.repo, commit, &file.path);
        let mut ctx = self.context(hf, commit, &url);
        ctx.path = Some(&file.path);
        let mut request = ApiRequest::head(url.clone());
        request.auth = self.auth_for(&url);
        let response = self.api(request, &ctx, cancel).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.trim()
                        .trim_start_matches("W/")
                        .trim_matches('"')
                        .to_string()
                })
        };
        let linked_etag = header("x-linked-etag");
        let size = header("x-linked-size")
            .or_else(|| {
                response
                    .status()
                    .is_success()
                    .then(|| header("content-length"))
                    .flatten()
            })
            .and_then(|s| s.parse::<u64>().ok());
        if file.size.is_none() {
            file.size = size;
        }
        if file.sha256.is_none()
            && let Some(etag) = linked_etag
        {
            // On LFS files the linked ETag is the content's sha256.
            file.sha256 = etag.parse().ok();
        }
        Ok(())
    }

    /// Picks the files of `listing` that `hf` and the globs ask for.
    fn select<'a>(
        &self,
        hf: &HfRef,
        revision: &str,
        files: &'a [RepoFile],
        filter: &PathFilter,
        notes: &mut Vec<String>,
    ) -> Result<Vec<&'a RepoFile>> {
        let name = format!("{}/{}", hf.org, hf.repo);
        let chosen: Vec<String> = match &hf.selector {
            HfSelector::File(path) => {
                if filter.has_include() || filter.has_exclude() {
                    notes.push(
                        "--include/--exclude do not apply when a single file is named".into(),
                    );
                }
                if files.iter().any(|f| &f.path == path) {
                    // One part of a split set is useless alone: take the set, as llama.cpp does.
                    let Some((parts, count)) = split_set_of(files, path) else {
                        return Ok(files.iter().filter(|f| &f.path == path).collect());
                    };
                    if parts.len() != count as usize {
                        return Err(Error::InvalidRequest(format!(
                            "{path} is part of a split set of {count} files, but {name} has only {} of them",
                            parts.len()
                        )));
                    }
                    notes.push(format!(
                        "{path} is one part of a split set: taking all {count} parts"
                    ));
                    return Ok(files.iter().filter(|f| parts.contains(&f.path)).collect());
                }
                let known: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
                let url =
                    api::resolve_url(&self.config.endpoint, &hf.org, &hf.repo, revision, path);
                let mut ctx = self.context(hf, revision, &url);
                ctx.path = Some(path);
                ctx.known_files = &known;
                let answer = Answer {
                    status: 404,
                    error_code: Some("EntryNotFound".into()),
                    ..Answer::default()
                };
                return Err(hub_error::map(&answer, &ctx));
            }
            HfSelector::Fit => {
                return Err(Error::InvalidRequest(format!(
                    "hf:{name}:fit asks for the quantization that fits this machine's GPUs, which only the command line can judge: run `rbee model download hf:{name}:fit` (or `--dry-run` to see the choice), or name a quantization"
                )));
            }
            _ if filter.has_include() => {
                let wanted = match &hf.selector {
                    HfSelector::Quant(q) => Some(q.as_str()),
                    _ => None,
                };
                let picked: Vec<String> = files
                    .iter()
                    .filter(|f| filter.included(&f.path))
                    .filter(|f| match (wanted, parse_gguf_name(&f.path)) {
                        // With `:QUANT`, model GGUFs of other quantizations stay out.
                        (Some(q), Some(g)) if !g.mmproj => {
                            g.quant.is_some_and(|gq| gq.eq_ignore_ascii_case(q))
                        }
                        _ => true,
                    })
                    .map(|f| f.path.clone())
                    .collect();
                if picked.is_empty() {
                    let listed: Vec<&str> =
                        files.iter().take(30).map(|f| f.path.as_str()).collect();
                    return Err(Error::InvalidRequest(format!(
                        "no file of {name} matches --include{}; it has: {}",
                        wanted
                            .map(|q| format!(" in quantization {q}"))
                            .unwrap_or_default(),
                        listed.join(", ")
                    )));
                }
                notes.push(format!(
                    "took the files matching --include ({})",
                    picked.len()
                ));
                picked
            }
            HfSelector::Quant(q) => {
                let choice = select_quant(&name, files, Some(q))?;
                notes.extend(choice.notes.iter().cloned());
                choice.paths()
            }
            HfSelector::Default if is_gguf_repo(files) => {
                let choice = select_quant(&name, files, None)?;
                notes.extend(choice.notes.iter().cloned());
                choice.paths()
            }
            HfSelector::Default => {
                let choice = select_snapshot(&name, files)?;
                notes.extend(choice.notes.iter().cloned());
                choice.paths
            }
        };
        let before = chosen.len();
        let kept: Vec<&RepoFile> = files
            .iter()
            .filter(|f| chosen.contains(&f.path) && !filter.excluded(&f.path))
            .collect();
        if kept.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "--exclude left no file of {name} to take (it removed all {before})"
            )));
        }
        if kept.len() < before {
            notes.push(format!(
                "--exclude left out {} file(s)",
                before - kept.len()
            ));
        }
        Ok(kept)
    }

    fn resolved_file(&self, hf: &HfRef, commit: &str, file: &RepoFile) -> ResolvedFile {
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

    pub(crate) async fn resolve_online(
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
    fn resolve_offline(
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

    /// Takes `file` from `source` (a HuggingFace cache entry) into `dest` if its bytes are the
    /// ones the plan expects. `Ok(None)`: not usable (absent or different).
    async fn reuse(
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
    async fn write_cache(
        &self,
        at: Pinned<'_>,
        plan_files: &[ResolvedFile],
        downloaded: &[DownloadedFile],
        dest: &Path,
        tracker: &DownloadTracker,
    ) {
        let (hf, commit, revision) = (at.hf, at.commit, at.revision);
        let cached = self.cache.repo(&hf.org, &hf.repo);
        for done in downloaded {
            let Some(planned) = plan_files.iter().find(|f| f.path == done.path) else {
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
struct Pinned<'a> {
    hf: &'a HfRef,
    commit: &'a str,
    revision: &'a str,
}

#[async_trait]
impl VendorSource for HuggingFaceVendor {
    fn read_access(&self, file: &ResolvedFile) -> rbee_artifact::FileAccess {
        let auth = match &file.source {
            FileSource::Http { url } => self.auth_for(url),
            _ => None,
        };
        rbee_artifact::FileAccess::new(auth, Vec::new())
    }

    fn scheme(&self) -> Scheme {
        crate::SCHEME
    }

    async fn resolve(
        &self,
        reference: &ArtifactRef,
        options: &ResolveOptions,
        cancel: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        let Some(hf) = reference.get::<HfRef>() else {
            return Err(Error::Unsupported(format!(
                "the HuggingFace vendor cannot resolve `{reference}`"
            )));
        };
        let revision = hf.revision.as_deref().unwrap_or("main");
        let filter = PathFilter::new(&options.include, &options.exclude)?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if self.config.offline || options.offline {
            return self.resolve_offline(reference, hf, revision, &filter);
        }
        self.resolve_via_mirrors(reference, hf, revision, &filter, cancel)
            .await
    }

    async fn download(
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

impl HuggingFaceVendor {
    /// For requests that go to a mirror: that mirror, and the same requests against the origin.
    fn origin_requests(
        &self,
        requests: &[FetchRequest],
        hf: &HfRef,
        commit: &str,
    ) -> Option<(Url, Vec<FetchRequest>)> {
        let mirror = self.config.mirrors.iter().find(|m| {
            requests.iter().any(|r| {
                r.url.origin() == m.origin()
                    && r.url.path().starts_with(m.path().trim_end_matches('/'))
            })
        })?;
        let origin = requests
            .iter()
            .map(|r| {
                let url =
                    api::resolve_url(&self.config.endpoint, &hf.org, &hf.repo, commit, &r.path);
                FetchRequest {
                    auth: self.auth_for(&url),
                    url,
                    ..r.clone()
                }
            })
            .collect();
        Some((mirror.clone(), origin))
    }
}

/// The git blob id a plan file expects, for files the Hub stores in git rather than LFS (no
/// sha256 published).
fn expected_git_oid(file: &ResolvedFile) -> Option<GitBlobId> {
    file.expected_git_blob()
}

/// A git-stored file already at its place in `dest`: kept when its blob id is the one the
/// plan expects, removed otherwise. (Without a sha256, a file of the right size would pass
/// for complete downstream, so a changed config of the same length must not stay.)
async fn keep_if_identical(
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
async fn check_git_blobs(
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

/// Reads an error answer's status, `X-Error-Code`, `X-Error-Message` (or the JSON `error` of
/// its body) and `Retry-After`.
async fn answer_of(response: Response, cancel: &CancellationToken) -> Result<Answer> {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut answer = Answer {
        status: response.status().as_u16(),
        error_code: header("x-error-code"),
        error_message: header("x-error-message"),
        retry_after: header("retry-after").and_then(|v| parse_retry_after(&v, SystemTime::now())),
    };
    if answer.error_message.is_none() {
        // The message is a courtesy: an answer too large or cut off just has none.
        let body = match rbee_transfer::read_body(response, MAX_ERROR_BODY, cancel).await {
            Ok(body) => body,
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(_) => Vec::new(),
        };
        answer.error_message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| match v.get("error")? {
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            });
    }
    Ok(answer)
}

/// A failed API request: an error status is the Hub's answer, anything else the engine's.
fn transfer_error(e: TransferError, ctx: &Context<'_>) -> Error {
    match e.status() {
        Some(status) => hub_error::map(
            &Answer {
                status,
                error_code: e.header("x-error-code").map(str::to_string),
                error_message: e.header("x-error-message").map(str::to_string),
                retry_after: e.retry_after(),
            },
            ctx,
        ),
        None => Error::from(e),
    }
}

/// A plan's file path as a relative path, refusing anything that could leave `dest`.
fn safe_path(path: &str) -> Result<&Path> {
    validate_relative_path(path).map_err(|kind| Error::Protocol {
        message: format!(
            "refusing to write `{}`: {kind}; the plan must name files inside the artifact folder",
            path.escape_debug()
        ),
    })
}
