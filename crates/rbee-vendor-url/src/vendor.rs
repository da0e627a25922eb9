//! [`UrlVendor`]: resolve with `HEAD`, download with the transfer engine.

use std::path::Path;

use async_trait::async_trait;
use globset::{Glob, GlobSetBuilder};
use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, FileSource, ResolveOptions,
    ResolvedArtifact, ResolvedFile, Result, Scheme, VendorSource,
};

use crate::reference::UrlRef;
use rbee_transfer::{ApiRequest, FetchRequest, Transfer, redact_url};
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderMap};
use reqwest::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::name;

/// The vendor for plain `http(s)://` URLs.
///
/// # Contract
/// - [`resolve`](VendorSource::resolve) sends one `HEAD` (following redirects), or a
///   `GET` for byte 0 only when the server refuses `HEAD`; it reads no body and writes nothing.
///   The plan has one file, named after `Content-Disposition` or the URL's last path segment,
///   with the size the server announced (if any), the `#sha256=` digest (if any) and the
///   `ETag` as its version.
/// - [`download`](VendorSource::download) hands the files to
///   [`Transfer::fetch_all`]: resumable, verified, cancellable.
/// - No credentials are ever sent: URLs that need a login are refused with
///   [`Error::Unauthorized`].
#[derive(Debug, Clone)]
pub struct UrlVendor {
    transfer: Transfer,
}

impl UrlVendor {
    /// A vendor downloading through `transfer`.
    pub fn new(transfer: Transfer) -> UrlVendor {
        UrlVendor { transfer }
    }
}

/// What the server said about the file.
#[derive(Debug, Default)]
struct Head {
    size: Option<u64>,
    etag: Option<String>,
    name: Option<String>,
}

fn header(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl UrlVendor {
    async fn probe(&self, u: &UrlRef, cancel: &CancellationToken) -> Result<Head> {
        let shown = redact_url(&u.url);
        let head = ApiRequest {
            method: Method::HEAD,
            follow_redirects: true,
            ..ApiRequest::get(u.url.clone())
        };
        let resp = self
            .transfer
            .send(head, cancel)
            .await
            .map_err(Error::from)?;
        let status = resp.status();
        if status.is_success() {
            let h = resp.headers();
            return Ok(Head {
                size: header(h, CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()),
                etag: header(h, ETAG).map(str::to_string),
                name: disposition_name(h, &shown)?,
            });
        }
        // Some servers (and URLs signed for GET only) refuse HEAD: ask for one byte instead.
        if matches!(status.as_u16(), 400 | 403 | 405 | 501) {
            let get = ApiRequest::get(u.url.clone()).with_header("Range", "bytes=0-0");
            let resp = self.transfer.send(get, cancel).await.map_err(Error::from)?;
            let status = resp.status();
            let h = resp.headers();
            let head = match status {
                StatusCode::PARTIAL_CONTENT => Head {
                    size: header(h, CONTENT_RANGE)
                        .and_then(|v| v.rsplit_once('/'))
                        .and_then(|(_, total)| total.trim().parse().ok()),
                    etag: header(h, ETAG).map(str::to_string),
                    name: disposition_name(h, &shown)?,
                },
                s if s.is_success() => Head {
                    size: header(h, CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()),
                    etag: header(h, ETAG).map(str::to_string),
                    name: disposition_name(h, &shown)?,
                },
                s => return Err(status_error(&shown, s)),
            };
            // Dropping the response closes the connection without reading the body.
            drop(resp);
            return Ok(head);
        }
        Err(status_error(&shown, status))
    }
}

/// The file name a response's `Content-Disposition` gives, refusing unsafe ones.
fn disposition_name(headers: &HeaderMap, url: &str) -> Result<Option<String>> {
    let Some(value) = header(headers, CONTENT_DISPOSITION) else {
        return Ok(None);
    };
    name::from_content_disposition(value).map_err(|why| Error::Protocol {
        message: format!(
            "{url} names the file {why} in its Content-Disposition header, which is not a safe file name; refusing the download (the server is broken or hostile: ask its owner, or use another link)"
        ),
    })
}

/// A clear error for an HTTP status that ends resolution.
fn status_error(url: &str, status: StatusCode) -> Error {
    match status.as_u16() {
        404 | 410 => Error::NotFound {
            message: format!("nothing at {url} (HTTP {status}); check the address"),
        },
        401 | 403 => Error::Unauthorized {
            message: format!(
                "{url} refused access (HTTP {status}); plain URLs are fetched without credentials, so use a public or pre-signed link"
            ),
        },
        429 => Error::RateLimited {
            message: format!("{url} is rate-limiting requests (HTTP 429); try again later"),
            retry_after: None,
        },
        _ => Error::Network {
            message: format!("{url} answered HTTP {status}"),
            source: None,
        },
    }
}

/// Applies `--include` / `--exclude` to the single file.
fn check_globs(options: &ResolveOptions, file: &str) -> Result<()> {
    let set =
        |globs: &[String]| -> Result<Option<globset::GlobSet>> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut b = GlobSetBuilder::new();
            for g in globs {
                b.add(Glob::new(g).map_err(|e| {
                    Error::InvalidRequest(format!("`{g}` is not a valid glob: {e}"))
                })?);
            }
            b.build()
                .map(Some)
                .map_err(|e| Error::InvalidRequest(format!("invalid globs: {e}")))
        };
    if let Some(include) = set(&options.include)?
        && !include.is_match(file)
    {
        return Err(Error::InvalidRequest(format!(
            "the URL names one file, `{file}`, and --include leaves it out"
        )));
    }
    if let Some(exclude) = set(&options.exclude)?
        && exclude.is_match(file)
    {
        return Err(Error::InvalidRequest(format!(
            "the URL names one file, `{file}`, and --exclude leaves it out"
        )));
    }
    Ok(())
}

#[async_trait]
impl VendorSource for UrlVendor {
    fn scheme(&self) -> Scheme {
        crate::SCHEME
    }

    async fn resolve(
        &self,
        reference: &ArtifactRef,
        options: &ResolveOptions,
        cancel: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        let Some(u) = reference.get::<UrlRef>() else {
            return Err(Error::Unsupported(format!(
                "the URL vendor cannot fetch `{reference}`"
            )));
        };
        if options.offline {
            return Err(Error::Offline {
                message: format!(
                    "{} is remote and only local files may be used (offline mode)",
                    redact_url(&u.url)
                ),
            });
        }
        let head = self.probe(u, cancel).await?;
        let path = head
            .name
            .or_else(|| name::from_url(&u.url))
            .unwrap_or_else(|| name::FALLBACK_NAME.to_string());
        check_globs(options, &path)?;
        let mut notes = Vec::new();
        if head.size.is_none() {
            notes.push("the server did not announce the size".to_string());
        }
        if u.sha256.is_none() {
            notes.push(
                "no #sha256= in the URL: the file is recorded with the digest of what arrived"
                    .to_string(),
            );
        }
        tracing::debug!(url = %redact_url(&u.url), %path, size = ?head.size, "resolved");
        Ok(ResolvedArtifact {
            reference: reference.clone(),
            revision: None,
            files: vec![ResolvedFile {
                path,
                size: head.size,
                sha256: u.sha256,
                version: head.etag,
                git_blob: None,
                source: FileSource::Http { url: u.url.clone() },
            }],
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
        let mut requests = Vec::with_capacity(files.len());
        for f in files {
            let FileSource::Http { url } = &f.source else {
                return Err(Error::Unsupported(format!(
                    "`{}` is not an HTTP file; the URL vendor only downloads http(s) URLs",
                    f.path
                )));
            };
            requests.push(FetchRequest {
                expected_size: f.size,
                sha256: f.sha256,
                ..FetchRequest::new(f.path.clone(), url.clone())
            });
        }
        self.transfer
            .fetch_all(requests, dest, progress, cancel)
            .await
            .map_err(Error::from)
    }
}
