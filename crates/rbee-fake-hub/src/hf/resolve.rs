//! `/{org}/{repo}/resolve/{rev}/{path}`: a file's bytes, or the 302 to the CDN for LFS files.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::files::{ServeOptions, serve_file};
use crate::reply::redirect;
use crate::state::HubState;
use crate::url_path::encode_segment;

use super::repo::{HubError, open_repo};
use super::revision::{open_revision, split_revision};

type AppState = Arc<HubState>;

/// `HEAD|GET /{org}/{repo}/resolve/{rev}/{path…}`.
pub(crate) async fn resolve(state: AppState, req: Request, segs: Vec<String>) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let (req, _body) = req.into_parts();
    resolve_inner(&state, &req, &segs)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn resolve_inner(
    state: &HubState,
    req: &Parts,
    segs: &[String],
) -> Result<Response, HubError> {
    let (repo, access) = open_repo(state, &req.headers, &segs[0], &segs[1]).await?;
    let tail: Vec<&str> = segs[3..].iter().map(String::as_str).collect();
    let (rev, path) = split_revision(&tail);
    let revision = open_revision(state, &repo, &rev).await?;
    if repo.settings.gated().is_some() && !access.valid {
        return Err(HubError::Gated {
            repo: repo.id(),
            authenticated: access.token.is_some(),
        });
    }
    let path = path.join("/");
    if path.is_empty() {
        return Err(HubError::EntryNotFound {
            commit: Some(revision.sha.clone()),
        });
    }
    let Some(file) = revision.files.iter().find(|f| f.path == path) else {
        return Err(HubError::EntryNotFound {
            commit: Some(revision.sha.clone()),
        });
    };
    let commit =
        HeaderValue::from_str(&revision.sha).map_err(|e| HubError::Internal(e.to_string()))?;
    match &file.lfs {
        Some(lfs) => {
            let rel = format!("{}/{}", revision.rel_dir, file.path);
            let request_path = crate::url_path::decode_path(req.uri.path());
            let location = state.signed_cdn_url(&rel, &request_path);
            let lies = state.listed_lies(&rel);
            let mut resp = redirect(&location);
            let h = resp.headers_mut();
            let quoted = format!("\"{}\"", lies.sha256.as_deref().unwrap_or(&lfs.sha256));
            h.insert("x-repo-commit", commit);
            if let Ok(v) = HeaderValue::from_str(&quoted) {
                h.insert("x-linked-etag", v.clone());
                h.insert(header::ETAG, v);
            }
            h.insert(
                "x-linked-size",
                HeaderValue::from(lies.size.unwrap_or(file.size)),
            );
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            if let Some(xet) = &file.xet {
                let mut token_route = state.hub_url.clone();
                token_route.set_path(&format!(
                    "api/models/{}/xet-read-token/{}",
                    repo.id(),
                    revision.sha
                ));
                let link = format!(
                    "<{token_route}>; rel=\"xet-auth\", <{}/v1/reconstructions/{xet}>; rel=\"xet-reconstruction-info\"",
                    crate::xet::cas_url(state)
                );
                if let Ok(v) = HeaderValue::from_str(&link) {
                    h.insert(header::LINK, v);
                }
                if let Ok(v) = HeaderValue::from_str(&xet.to_hex()) {
                    h.insert("x-xet-hash", v);
                }
            }
            Ok(resp)
        }
        None => {
            let mut headers = HeaderMap::new();
            headers.insert("x-repo-commit", commit);
            let opts = ServeOptions {
                etag: Some(format!("\"{}\"", file.oid)),
                content_type: Some("text/plain; charset=utf-8"),
                headers,
            };
            Ok(serve_file(
                &req.method,
                &req.headers,
                &file.abs,
                opts,
                state.config.read_chunk,
            )
            .await)
        }
    }
}

/// The resolve URL of `path` in `org/repo` at `rev` on `base` (revision percent-encoded whole).
pub(crate) fn resolve_url(base: &url::Url, repo_id: &str, rev: &str, path: &str) -> url::Url {
    let encoded: Vec<String> = path.split('/').map(encode_segment).collect();
    let mut url = base.clone();
    url.set_path(&format!(
        "{repo_id}/resolve/{}/{}",
        encode_segment(rev),
        encoded.join("/")
    ));
    url
}
