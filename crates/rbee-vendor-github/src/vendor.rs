//! [`GitHubVendor`]: resolves `gh:` references through the releases API and fetches assets
//! through the shared transfer engine.

use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, FileSource, ResolveOptions,
    ResolvedArtifact, ResolvedFile, Result, Scheme, Secret, Sha256Digest, VendorSource,
    validate_relative_path,
};

use crate::reference::GhRef;
use rbee_transfer::{ApiRequest, FetchRequest, Transfer, TransferError};
use reqwest::Method;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::api::{
    self, ACCEPT_JSON, ACCEPT_OCTET_STREAM, API_VERSION, ApiErrorBody, Asset, Release,
};
use crate::config::GitHubConfig;
use crate::rate_limit;
use crate::select::{self, ReleaseLabel};

/// Largest API answer read (a release list with hundreds of assets is well below this).
const MAX_API_BODY: usize = 32 << 20;

/// The `gh:` vendor: GitHub (or GitHub Enterprise Server) release assets.
///
/// - [`resolve`](VendorSource::resolve) reads `/repos/{owner}/{repo}/releases/latest` or
///   `/releases/tags/{tag}` and chooses assets (see the crate docs); each file carries the
///   asset's size, its `sha256:` digest when GitHub publishes one, and as `version` the asset
///   id and upload time, so a re-uploaded asset counts as changed.
/// - [`download`](VendorSource::download) hands the files to [`Transfer::fetch_all`]: public
///   assets from `browser_download_url` without credentials; with a token, from the asset API
///   URL with `Accept: application/octet-stream` and the token, which the engine never
///   forwards to the CDN host the API redirects to.
///
/// Rate limits are waited out (cancellably) when the wait is at most
/// [`GitHubConfig::max_rate_limit_wait`]; longer ones fail with [`Error::RateLimited`].
#[derive(Debug, Clone)]
pub struct GitHubVendor {
    config: GitHubConfig,
    transfer: Transfer,
}

/// A successful API answer, or GitHub's 404 (whose meaning depends on the call).
enum Answer<T> {
    Found(T),
    NotFound,
}

impl GitHubVendor {
    /// A vendor talking to `config.api_base`, moving bytes (and API calls) through `transfer`.
    pub fn new(config: GitHubConfig, transfer: Transfer) -> Self {
        Self { config, transfer }
    }

    /// The configuration in use.
    pub fn config(&self) -> &GitHubConfig {
        &self.config
    }

    fn token(&self) -> Option<&Secret> {
        self.config.token.as_ref()
    }

    /// Removes the token from text a server sent back (it may echo the request).
    fn redact(&self, text: &str) -> String {
        match self.token() {
            Some(token) => token.redact(text),
            None => text.to_string(),
        }
    }

    /// GET an API URL, decode JSON; waits out short rate limits and maps errors other than 404.
    async fn get_json<T: DeserializeOwned>(
        &self,
        url: &Url,
        cancel: &CancellationToken,
    ) -> Result<Answer<T>> {
        let mut waited = 0u32;
        loop {
            let request = ApiRequest {
                method: Method::GET,
                url: url.clone(),
                auth: self
                    .token()
                    .filter(|_| api::is_under_api_base(&self.config.api_base, url))
                    .cloned(),
                headers: vec![
                    ("Accept".to_string(), ACCEPT_JSON.to_string()),
                    ("X-GitHub-Api-Version".to_string(), API_VERSION.to_string()),
                ],
                // Renamed or transferred repositories answer 301 to their new location.
                follow_redirects: true,
            };
            tracing::debug!(%url, "GitHub API request");
            let response = self.transfer.send(request, cancel).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = rbee_transfer::read_body(response, MAX_API_BODY, cancel).await?;
            if status.is_success() {
                return serde_json::from_slice(&body).map(Answer::Found).map_err(|e| {
                    Error::Protocol {
                        message: format!(
                            "the GitHub API answered {url} with something that is not the expected JSON ({e}); is GITHUB_API_URL ({}) a GitHub API?",
                            self.config.api_base
                        ),
                    }
                });
            }
            let message = serde_json::from_slice::<ApiErrorBody>(&body)
                .ok()
                .and_then(|b| b.message)
                .map(|m| self.redact(&m));
            if let Some(limit) = rate_limit::detect(
                status.as_u16(),
                &headers,
                message.as_deref(),
                SystemTime::now(),
            ) {
                if limit.wait > self.config.max_rate_limit_wait
                    || waited >= self.config.max_rate_limit_retries
                {
                    return Err(rate_limit::exceeded(&limit, self.token().is_some()));
                }
                waited += 1;
                tracing::info!(
                    %url,
                    wait_secs = limit.wait.as_secs_f64(),
                    "GitHub API rate limit hit; waiting before trying again"
                );
                tokio::select! {
                    () = cancel.cancelled() => return Err(Error::Cancelled),
                    () = tokio::time::sleep(limit.wait) => continue,
                }
            }
            let said = message
                .as_deref()
                .map(|m| format!(" (GitHub says: {m})"))
                .unwrap_or_default();
            return match status.as_u16() {
                404 => Ok(Answer::NotFound),
                401 => Err(Error::Unauthorized {
                    message: if self.token().is_some() {
                        format!(
                            "GitHub rejected the token{said}: GITHUB_TOKEN (or GH_TOKEN) is invalid or expired; create a new token, or unset it for public repositories"
                        )
                    } else {
                        format!(
                            "GitHub asks for authentication for {url}{said}; set GITHUB_TOKEN (or GH_TOKEN) to a token that can read the repository"
                        )
                    },
                }),
                403 => Err(Error::Unauthorized {
                    message: if self.token().is_some() {
                        format!(
                            "GitHub refused access to {url}{said}: the token lacks access to this repository (a fine-grained token needs \"Contents: read\" on it)"
                        )
                    } else {
                        format!(
                            "GitHub refused access to {url}{said}; set GITHUB_TOKEN (or GH_TOKEN) to a token that can read the repository"
                        )
                    },
                }),
                s if s >= 500 => Err(Error::Network {
                    message: format!(
                        "the GitHub API answered HTTP {status} for {url}{said}; try again later"
                    ),
                    source: None,
                }),
                _ => Err(Error::Protocol {
                    message: format!(
                        "the GitHub API answered HTTP {status} for {url}{said}, which this tool does not understand"
                    ),
                }),
            };
        }
    }

    fn repo_not_found(&self, gh: &GhRef) -> Error {
        let (owner, repo) = (&gh.owner, &gh.repo);
        Error::NotFound {
            message: if self.token().is_some() {
                format!(
                    "GitHub repository {owner}/{repo} was not found, or the token cannot read it; check the spelling and the token's repository access"
                )
            } else {
                format!(
                    "GitHub repository {owner}/{repo} was not found; check the spelling (a private repository needs GITHUB_TOKEN or GH_TOKEN set to a token that can read it)"
                )
            },
        }
    }

    /// Recent releases (newest first) for messages, or the repository's absence.
    async fn recent_releases(
        &self,
        gh: &GhRef,
        cancel: &CancellationToken,
    ) -> Result<Vec<Release>> {
        let url = api::releases_url(&self.config.api_base, &gh.owner, &gh.repo)?;
        match self.get_json::<Vec<Release>>(&url, cancel).await? {
            Answer::Found(releases) => Ok(releases),
            Answer::NotFound => Err(self.repo_not_found(gh)),
        }
    }

    async fn release(&self, gh: &GhRef, cancel: &CancellationToken) -> Result<Release> {
        let base = &self.config.api_base;
        match &gh.tag {
            Some(tag) => {
                let url = api::tagged_release_url(base, &gh.owner, &gh.repo, tag)?;
                match self.get_json::<Release>(&url, cancel).await? {
                    Answer::Found(release) if release.draft => Err(Error::NotFound {
                        message: format!(
                            "release {tag} of {}/{} is a draft; drafts cannot be downloaded until they are published",
                            gh.owner, gh.repo
                        ),
                    }),
                    Answer::Found(release) => Ok(release),
                    Answer::NotFound => {
                        let recent = self.recent_releases(gh, cancel).await?;
                        Err(Error::NotFound {
                            message: format!(
                                "{}/{} has no release tagged `{tag}`; {}",
                                gh.owner,
                                gh.repo,
                                recent_tags(gh, &recent)
                            ),
                        })
                    }
                }
            }
            None => {
                let url = api::latest_release_url(base, &gh.owner, &gh.repo)?;
                match self.get_json::<Release>(&url, cancel).await? {
                    Answer::Found(release) if !release.draft && !release.prerelease => Ok(release),
                    // GitHub's "latest" is never a draft or pre-release; a server that says
                    // otherwise is not trusted on it.
                    Answer::Found(_) | Answer::NotFound => {
                        let recent = self.recent_releases(gh, cancel).await?;
                        recent
                            .iter()
                            .find(|r| !r.draft && !r.prerelease)
                            .cloned()
                            .ok_or_else(|| Error::NotFound {
                                message: format!(
                                    "{}/{} has no published release (pre-releases and drafts never count as the latest); {}",
                                    gh.owner,
                                    gh.repo,
                                    recent_tags(gh, &recent)
                                ),
                            })
                    }
                }
            }
        }
    }

    /// Where an asset's bytes are fetched from: the asset API when there is a token (the only
    /// way for private repositories) and the URL is under the API base (so the token may go
    /// there), else the public download URL.
    fn asset_source(&self, asset: &Asset) -> Result<Url> {
        if self.token().is_some() {
            match Url::parse(&asset.url) {
                Ok(url) if api::is_under_api_base(&self.config.api_base, &url) => return Ok(url),
                _ => tracing::warn!(
                    asset = %asset.name,
                    "asset API URL is not under the configured API base; downloading without the token"
                ),
            }
        }
        Url::parse(&asset.browser_download_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| Error::Protocol {
                message: format!(
                    "the GitHub API gave asset `{}` a download URL that is not http(s): {:?}",
                    asset.name, asset.browser_download_url
                ),
            })
    }

    /// A transfer request for one planned file: the token and octet-stream `Accept` only for
    /// asset API URLs.
    fn fetch_request(&self, file: &ResolvedFile) -> Result<FetchRequest> {
        validate_relative_path(&file.path).map_err(|e| Error::Protocol {
            message: format!("refusing to write planned file {:?}: {e}", file.path),
        })?;
        let FileSource::Http { url } = &file.source else {
            return Err(Error::Unsupported(format!(
                "{}: the GitHub vendor only fetches HTTP(S) sources",
                file.path
            )));
        };
        let access = self.access_for(url);
        Ok(FetchRequest {
            path: file.path.clone(),
            url: url.clone(),
            auth: access.auth,
            headers: access.headers,
            expected_size: file.size,
            sha256: file.sha256,
            git_blob: None,
            pieces: None,
        })
    }

    /// The token and octet-stream `Accept` for asset API URLs; nothing for other hosts.
    fn access_for(&self, url: &Url) -> rbee_artifact::FileAccess {
        if !api::is_under_api_base(&self.config.api_base, url) {
            return rbee_artifact::FileAccess::default();
        }
        rbee_artifact::FileAccess::new(
            self.token().cloned(),
            vec![
                ("Accept".to_string(), ACCEPT_OCTET_STREAM.to_string()),
                ("X-GitHub-Api-Version".to_string(), API_VERSION.to_string()),
            ],
        )
    }
}

impl GitHubVendor {
    /// Adds what a refused or missing asset download means on GitHub to the engine's error: a
    /// rate limit (403 or 429 with GitHub's headers) says when it resets and what helps, as it
    /// does for API calls.
    fn explain_download_error(&self, error: TransferError) -> Error {
        let has_token = self.token().is_some();
        if let (Some(status), Some(headers)) = (error.status(), error.headers())
            && let Some(limit) = rate_limit::detect(status, headers, None, SystemTime::now())
        {
            return rate_limit::exceeded(&limit, has_token);
        }
        match Error::from(error) {
            Error::Unauthorized { message } => Error::Unauthorized {
                message: if has_token {
                    format!(
                        "{message}: GitHub refused the asset download; the token lacks access to this repository, or is invalid or expired"
                    )
                } else {
                    format!(
                        "{message}: GitHub refused the asset download; a private repository needs GITHUB_TOKEN (or GH_TOKEN) set to a token that can read it"
                    )
                },
            },
            Error::NotFound { message } => Error::NotFound {
                message: format!(
                    "{message}: the asset is no longer there (deleted or re-uploaded since the release was read); run the command again to resolve it anew"
                ),
            },
            Error::RateLimited {
                message,
                retry_after,
            } if !has_token => Error::RateLimited {
                message: format!(
                    "{message}: GitHub is rate-limiting downloads; set GITHUB_TOKEN (or GH_TOKEN) for a higher limit"
                ),
                retry_after,
            },
            other => other,
        }
    }
}

/// "recent releases: b4501, b4500 (pre-release); name one as gh:o/r@TAG".
fn recent_tags(gh: &GhRef, releases: &[Release]) -> String {
    let tags: Vec<String> = releases
        .iter()
        .filter(|r| !r.draft)
        .take(api::RECENT_RELEASES)
        .map(|r| {
            if r.prerelease {
                format!("{} (pre-release)", r.tag_name)
            } else {
                r.tag_name.clone()
            }
        })
        .collect();
    if tags.is_empty() {
        "it has no published releases".to_string()
    } else {
        format!(
            "recent releases: {}; name one as gh:{}/{}@TAG",
            tags.join(", "),
            gh.owner,
            gh.repo
        )
    }
}

/// `"sha256:<hex>"` → digest; other algorithms or a malformed value → `None` (size is still
/// checked), with a note.
fn asset_digest(asset: &Asset, notes: &mut Vec<String>) -> Option<Sha256Digest> {
    let digest = asset.digest.as_deref()?;
    match Sha256Digest::from_prefixed(digest) {
        Ok(d) => Some(d),
        _ => {
            tracing::warn!(asset = %asset.name, digest, "unusable asset digest");
            notes.push(format!(
                "`{}`: GitHub's digest {digest:?} is not a SHA-256; only the size is checked",
                asset.name
            ));
            None
        }
    }
}

#[async_trait]
impl VendorSource for GitHubVendor {
    fn read_access(&self, file: &ResolvedFile) -> rbee_artifact::FileAccess {
        match &file.source {
            FileSource::Http { url } => self.access_for(url),
            _ => rbee_artifact::FileAccess::default(),
        }
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
        let Some(gh) = reference.get::<GhRef>() else {
            return Err(Error::Unsupported(format!(
                "the GitHub vendor resolves gh: references, not `{reference}`"
            )));
        };
        if options.offline {
            return Err(Error::Offline {
                message: format!(
                    "{reference} needs the GitHub API, and only local artifacts may be used (offline)"
                ),
            });
        }
        let release = self.release(gh, cancel).await?;
        let label = ReleaseLabel {
            reference: match &gh.tag {
                Some(_) => format!("gh:{}/{}@{}", gh.owner, gh.repo, release.tag_name),
                None => format!("gh:{}/{}", gh.owner, gh.repo),
            },
            release: format!("release {} of {}/{}", release.tag_name, gh.owner, gh.repo),
        };
        let selection = select::select(&release.assets, gh.asset.as_deref(), options, &label)?;

        let mut notes = vec![release_note(&release)];
        if release.prerelease {
            notes.push(format!("{} is a pre-release", release.tag_name));
        }
        notes.push(selection.note.clone());
        let mut files = Vec::with_capacity(selection.assets.len());
        for asset in &selection.assets {
            let sha256 = asset_digest(asset, &mut notes);
            files.push(ResolvedFile {
                path: asset.name.clone(),
                size: Some(asset.size),
                sha256,
                version: Some(match &asset.updated_at {
                    Some(at) => format!("{}@{at}", asset.id),
                    None => asset.id.to_string(),
                }),
                git_blob: None,
                source: FileSource::Http {
                    url: self.asset_source(asset)?,
                },
            });
        }
        let undigested = files.iter().filter(|f| f.sha256.is_none()).count();
        if undigested > 0 {
            notes.push(format!(
                "{undigested} of {} assets have no published SHA-256 (uploaded before GitHub computed digests); their sizes are checked",
                files.len()
            ));
        }
        Ok(ResolvedArtifact {
            reference: reference.clone(),
            revision: Some(release.tag_name.clone()),
            files,
            notes,
        })
    }

    async fn download(
        &self,
        _plan: &ResolvedArtifact,
        files: &[ResolvedFile],
        dest: &Path,
        progress: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        let requests = files
            .iter()
            .map(|f| self.fetch_request(f))
            .collect::<Result<Vec<_>>>()?;
        self.transfer
            .fetch_all(requests, dest, progress, cancel)
            .await
            .map_err(|e| self.explain_download_error(e))
    }
}

/// "release `Name` (tag b4500, from master, published 2025-01-15T10:00:00Z)".
fn release_note(release: &Release) -> String {
    // Release names and tags are the server's text: escaped before they reach a terminal.
    let text = |t: &str| {
        if t.chars().any(char::is_control) {
            rbee_artifact::quote_untrusted(t)
        } else {
            t.to_string()
        }
    };
    let mut parts = vec![format!("tag {}", text(&release.tag_name))];
    if let Some(commitish) = release
        .target_commitish
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        parts.push(format!("from {}", text(commitish)));
    }
    if let Some(at) = &release.published_at {
        parts.push(format!("published {}", text(at)));
    }
    match release.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("release `{}` ({})", text(name), parts.join(", ")),
        None => format!("release ({})", parts.join(", ")),
    }
}
