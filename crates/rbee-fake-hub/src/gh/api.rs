//! The routes: the releases API and the browser download link.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::reply::redirect;
use crate::state::HubState;
use crate::url_path::segments;

use super::budget::charge;
use super::json::{asset_json, release_json};
use super::release::{
    Asset, DOCS, GhError, REPO_SETTINGS, Release, Repo, RepoSettings, open_repo, read_json,
    releases, stable_id, token_of,
};

type AppState = Arc<HubState>;

fn error_response(err: GhError) -> Response {
    let (status, body) = match err {
        GhError::NotFound => (
            StatusCode::NOT_FOUND,
            json!({ "message": "Not Found", "documentation_url": DOCS, "status": "404" }),
        ),
        GhError::BadCredentials => (
            StatusCode::UNAUTHORIZED,
            json!({ "message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401" }),
        ),
        GhError::RateLimited => (
            StatusCode::FORBIDDEN,
            json!({
                "message": "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)",
                "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
            }),
        ),
        GhError::Internal(message) => {
            tracing::warn!(%message, "GitHub request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "message": format!("fake hub: {message}") }),
            )
        }
    };
    (status, axum::Json(body)).into_response()
}

/// `/repos/{owner}/{repo}[/releases[/latest|/tags/{tag}|/{id}|/assets/{id}]]`.
pub(crate) async fn api(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    let budget = charge(&state, &parts.headers);
    let mut resp = if parts.method != Method::GET && parts.method != Method::HEAD {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "message": "Not Found", "documentation_url": DOCS })),
        )
            .into_response()
    } else if budget.exceeded {
        error_response(GhError::RateLimited)
    } else {
        api_inner(&state, &parts)
            .await
            .unwrap_or_else(error_response)
    };
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(budget.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(budget.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(budget.reset));
    h.insert("x-ratelimit-used", HeaderValue::from(budget.used));
    h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
    h.insert(
        "x-github-api-version-selected",
        HeaderValue::from_static("2022-11-28"),
    );
    resp
}

fn page_params(parts: &Parts) -> (usize, usize) {
    let mut page = 1usize;
    let mut per_page = 30usize;
    for (k, v) in url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        match &*k {
            "page" => page = v.parse().unwrap_or(1).max(1),
            "per_page" => per_page = v.parse().unwrap_or(30).clamp(1, 100),
            _ => {}
        }
    }
    (page, per_page)
}

async fn api_inner(state: &HubState, parts: &Parts) -> Result<Response, GhError> {
    let segs = segments(parts.uri.path());
    // segs: ["repos", owner, repo, ...]
    let rest: Vec<&str> = segs.iter().skip(1).map(String::as_str).collect();
    let (owner, name, tail) = match rest.as_slice() {
        [owner, name, tail @ ..] => (*owner, *name, tail),
        _ => return Err(GhError::NotFound),
    };
    let repo = open_repo(state, &parts.headers, owner, name).await?;
    let authorized = token_of(&parts.headers).is_some();
    match tail {
        [] => {
            let settings: RepoSettings = read_json(repo.dir.join(REPO_SETTINGS)).await?;
            let full = format!("{owner}/{name}");
            Ok(axum::Json(json!({
                "id": stable_id("repo", &full),
                "name": name,
                "full_name": full,
                "private": settings.private,
                "owner": { "login": owner, "id": stable_id("user", owner), "type": "User" },
                "default_branch": "main",
            }))
            .into_response())
        }
        ["releases"] => {
            let all: Vec<Release> = releases(state, &repo)
                .await?
                .into_iter()
                // Drafts are only visible to those with push access.
                .filter(|r| !r.settings.draft || authorized)
                .collect();
            let (page, per_page) = page_params(parts);
            let start = (page - 1).saturating_mul(per_page).min(all.len());
            let end = (start + per_page).min(all.len());
            let items: Vec<Value> = all[start..end]
                .iter()
                .map(|r| release_json(state, &repo, r))
                .collect();
            let mut resp = axum::Json(Value::Array(items)).into_response();
            let last = all.len().div_ceil(per_page).max(1);
            if let Some(link) = link_header(state, parts, page, per_page, last) {
                resp.headers_mut().insert(header::LINK, link);
            }
            Ok(resp)
        }
        ["releases", "latest"] => {
            let all = releases(state, &repo).await?;
            let latest = all
                .iter()
                .find(|r| !r.settings.draft && !r.settings.prerelease)
                .ok_or(GhError::NotFound)?;
            Ok(axum::Json(release_json(state, &repo, latest)).into_response())
        }
        ["releases", "tags", tag @ ..] if !tag.is_empty() => {
            let tag = tag.join("/");
            let all = releases(state, &repo).await?;
            let rel = all
                .iter()
                .find(|r| r.tag == tag && !r.settings.draft)
                .ok_or(GhError::NotFound)?;
            Ok(axum::Json(release_json(state, &repo, rel)).into_response())
        }
        ["releases", "assets", id] => {
            let id: u64 = id.parse().map_err(|_| GhError::NotFound)?;
            let all = releases(state, &repo).await?;
            let (rel, asset) = all
                .iter()
                .filter(|r| !r.settings.draft || authorized)
                .flat_map(|r| r.assets.iter().map(move |a| (r, a)))
                .find(|(_, a)| a.id == id)
                .ok_or(GhError::NotFound)?;
            let wants_bytes = parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/octet-stream"));
            if wants_bytes {
                Ok(asset_redirect(state, parts, &repo, rel, asset))
            } else {
                Ok(axum::Json(asset_json(state, &repo, rel, asset)).into_response())
            }
        }
        ["releases", id] => {
            let id: u64 = id.parse().map_err(|_| GhError::NotFound)?;
            let all = releases(state, &repo).await?;
            let rel = all
                .iter()
                .find(|r| r.id == id && (!r.settings.draft || authorized))
                .ok_or(GhError::NotFound)?;
            Ok(axum::Json(release_json(state, &repo, rel)).into_response())
        }
        _ => Err(GhError::NotFound),
    }
}

/// GitHub's `Link` header: prev, next, last, first as they apply.
fn link_header(
    state: &HubState,
    parts: &Parts,
    page: usize,
    per_page: usize,
    last: usize,
) -> Option<HeaderValue> {
    let page_url = |p: usize| {
        let mut url = state.hub_url.clone();
        url.set_path(parts.uri.path());
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        {
            if k != "page" && k != "per_page" {
                q.append_pair(&k, &v);
            }
        }
        q.append_pair("per_page", &per_page.to_string());
        q.append_pair("page", &p.to_string());
        url.set_query(Some(&q.finish()));
        url
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!(
            "<{}>; rel=\"prev\"",
            page_url((page - 1).min(last))
        ));
    }
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", page_url(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", page_url(last)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", page_url(1)));
    }
    if links.is_empty() {
        return None;
    }
    HeaderValue::from_str(&links.join(", ")).ok()
}

fn asset_redirect(
    state: &HubState,
    parts: &Parts,
    repo: &Repo,
    rel: &Release,
    asset: &Asset,
) -> Response {
    let file = format!(
        "gh/{}/{}/{}/{}",
        repo.owner, repo.name, rel.folder, asset.name
    );
    let location = state.signed_cdn_url(&file, &crate::url_path::decode_path(parts.uri.path()));
    redirect(&location)
}

/// `GET /{owner}/{repo}/releases/download/{tag}/{name}`: 302 to the CDN for public repos.
pub(crate) async fn browser_download(state: AppState, req: Request, segs: Vec<String>) -> Response {
    let (parts, _body) = req.into_parts();
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return error_response(GhError::NotFound);
    }
    let result = async {
        // github.com serves private assets only to signed-in browsers: 404 here, token or not.
        let dir = state.config.root.join("gh").join(&segs[0]).join(&segs[1]);
        let settings: RepoSettings = read_json(dir.join(REPO_SETTINGS)).await?;
        if settings.private {
            return Err(GhError::NotFound);
        }
        let repo = open_repo(&state, &HeaderMap::new(), &segs[0], &segs[1]).await?;
        let all = releases(&state, &repo).await?;
        let rel = all
            .iter()
            .find(|r| r.tag == segs[4] && !r.settings.draft)
            .ok_or(GhError::NotFound)?;
        let asset = rel
            .assets
            .iter()
            .find(|a| a.name == segs[5])
            .ok_or(GhError::NotFound)?;
        Ok(asset_redirect(&state, &parts, &repo, rel, asset))
    }
    .await;
    result.unwrap_or_else(error_response)
}
