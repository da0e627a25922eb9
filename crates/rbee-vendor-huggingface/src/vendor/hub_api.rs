//! The Hub's metadata API: the revision and tree listings, probing one file's headers, and
//! error answers mapped to the Hub's meaning.

use std::time::SystemTime;

use rbee_artifact::{Error, Result, redact_url};

use crate::reference::HfRef;
use rbee_transfer::{ApiRequest, TransferError, parse_retry_after};
use reqwest::Response;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::HuggingFaceVendor;
use crate::api::{self, Listing, ModelInfo, TreeEntry, is_commit};
use crate::files::RepoFile;
use crate::hub_error::{self, Answer, Context};

/// The largest metadata answer read (a listing of tens of thousands of files fits easily).
pub(super) const MAX_API_BODY: usize = 64 << 20;

/// Pages of the tree listing followed at most (1000 entries each on the Hub).
pub(super) const MAX_TREE_PAGES: usize = 1000;

/// Bytes of an error body read for its message.
pub(super) const MAX_ERROR_BODY: usize = 64 * 1024;

impl HuggingFaceVendor {
    /// Sends an API request; an error status becomes the Hub's error, mapped.
    pub(super) async fn api(
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

    pub(super) async fn json<T: serde::de::DeserializeOwned>(
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
    pub(super) async fn list(
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
    pub(super) async fn tree(
        &self,
        hf: &HfRef,
        commit: &str,
        cancel: &CancellationToken,
    ) -> Result<Listing> {
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
    pub(super) async fn probe(
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
}

/// Reads an error answer's status, `X-Error-Code`, `X-Error-Message` (or the JSON `error` of
/// its body) and `Retry-After`.
pub(super) async fn answer_of(response: Response, cancel: &CancellationToken) -> Result<Answer> {
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
pub(super) fn transfer_error(e: TransferError, ctx: &Context<'_>) -> Error {
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
