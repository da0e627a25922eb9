//! The GitHub releases protocol over `<root>/gh/<owner>/<repo>/<tag>/<asset files>`.
//!
//! A tag folder's name is percent-decoded into the tag; files starting with `.` are not
//! assets; `<tag>/.release.json` may set `name`, `draft`, `prerelease`, `published_at`
//! (RFC 3339), `body` and `target_commitish`; `<repo>/.repo.json` may set `private` and
//! accepted `tokens`. See the README.

use std::cmp::Ordering;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::hashes::{HashKind, sha1_hex};
use crate::reply::redirect;
use crate::state::HubState;
use crate::url_path::{encode_segment, segments};

type AppState = Arc<HubState>;

const REPO_SETTINGS: &str = ".repo.json";
const RELEASE_SETTINGS: &str = ".release.json";
const DOCS: &str = "https://docs.github.com/rest/releases/releases";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RepoSettings {
    private: bool,
    tokens: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReleaseSettings {
    name: Option<String>,
    draft: bool,
    prerelease: bool,
    published_at: Option<String>,
    body: Option<String>,
    target_commitish: Option<String>,
}

#[derive(Debug)]
struct Repo {
    owner: String,
    name: String,
    dir: PathBuf,
}

#[derive(Debug)]
struct Asset {
    id: u64,
    name: String,
    size: u64,
    mtime: SystemTime,
    sha256: String,
}

#[derive(Debug)]
struct Release {
    id: u64,
    tag: String,
    /// Folder name under the repo (the tag, percent-encoded where needed).
    folder: String,
    settings: ReleaseSettings,
    published: DateTime<Utc>,
    assets: Vec<Asset>,
}

/// Why a GitHub request fails.
#[derive(Debug)]
enum GhError {
    NotFound,
    BadCredentials,
    RateLimited,
    Internal(String),
}

/// A stable positive id (below 2^48, so exact in every JSON reader) from a name.
fn stable_id(kind: &str, name: &str) -> u64 {
    let h = sha1_hex(format!("{kind}:{name}").as_bytes());
    u64::from_str_radix(&h[..12], 16).unwrap_or(1).max(1)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Compares tags with digit runs as numbers, so `v1.10` sorts after `v1.9`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    for (x, y) in runs(a).into_iter().zip(runs(b)) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("xz") => "application/x-xz",
        Some("txt" | "md") => "text/plain",
        _ => "application/octet-stream",
    }
}

fn plain_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\']) && !s.contains('\0')
}

fn token_of(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| token.trim().to_owned())
}

async fn read_json<T: for<'de> Deserialize<'de> + Default>(path: PathBuf) -> Result<T, GhError> {
    match tokio::fs::read(&path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| GhError::Internal(format!("{}: {e}", path.display()))),
        Err(_) => Ok(T::default()),
    }
}

/// Finds the repo and checks the caller may see it. Unknown tokens are refused everywhere
/// (GitHub's "Bad credentials"); private repos answer 404 without an accepted token.
async fn open_repo(
    state: &HubState,
    headers: &HeaderMap,
    owner: &str,
    name: &str,
) -> Result<Repo, GhError> {
    let dir = state.config.root.join("gh").join(owner).join(name);
    let exists = plain_name(owner)
        && plain_name(name)
        && tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir());
    let settings: RepoSettings = if exists {
        read_json(dir.join(REPO_SETTINGS)).await?
    } else {
        RepoSettings::default()
    };
    let token = token_of(headers);
    let accepted = token.as_ref().is_some_and(|t| {
        state.config.gh_tokens.iter().any(|a| a == t) || settings.tokens.iter().any(|a| a == t)
    });
    if token.is_some() && !accepted {
        return Err(GhError::BadCredentials);
    }
    if !exists || (settings.private && !accepted) {
        return Err(GhError::NotFound);
    }
    Ok(Repo {
        owner: owner.to_owned(),
        name: name.to_owned(),
        dir,
    })
}

/// Every release of the repo, newest first (published date, then tag).
async fn releases(state: &HubState, repo: &Repo) -> Result<Vec<Release>, GhError> {
    let mut rd = tokio::fs::read_dir(&repo.dir)
        .await
        .map_err(|e| GhError::Internal(format!("{}: {e}", repo.dir.display())))?;
    let mut out = Vec::new();
    while let Ok(Some(entry)) = rd.next_entry().await {
        let folder = entry.file_name().to_string_lossy().into_owned();
        if folder.starts_with('.') || !entry.file_type().await.is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let tag = percent_encoding::percent_decode_str(&folder)
            .decode_utf8_lossy()
            .into_owned();
        let dir = entry.path();
        let settings: ReleaseSettings = read_json(dir.join(RELEASE_SETTINGS)).await?;
        let published = match &settings.published_at {
            Some(s) => DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    GhError::Internal(format!(
                        "{}: published_at {s:?} is not RFC 3339: {e}",
                        dir.join(RELEASE_SETTINGS).display()
                    ))
                })?
                .with_timezone(&Utc),
            None => entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .map(DateTime::<Utc>::from)
                .unwrap_or_default(),
        };
        let full = format!("{}/{}", repo.owner, repo.name);
        let mut assets = Vec::new();
        let mut files = tokio::fs::read_dir(&dir)
            .await
            .map_err(|e| GhError::Internal(format!("{}: {e}", dir.display())))?;
        while let Ok(Some(f)) = files.next_entry().await {
            let name = f.file_name().to_string_lossy().into_owned();
            let Ok(meta) = f.metadata().await else {
                continue;
            };
            if name.starts_with('.') || !meta.is_file() {
                continue;
            }
            let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
            let abs = f.path();
            let sha256 = state
                .hashes
                .get(&abs, meta.len(), mtime, HashKind::Sha256)
                .await
                .map_err(|e| GhError::Internal(format!("{}: {e}", abs.display())))?;
            assets.push(Asset {
                id: stable_id("asset", &format!("{full}/{tag}/{name}")),
                name,
                size: meta.len(),
                mtime,
                sha256,
            });
        }
        assets.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(Release {
            id: stable_id("release", &format!("{full}/{tag}")),
            tag,
            folder,
            settings,
            published,
            assets,
        });
    }
    out.sort_by(|a, b| {
        b.published
            .cmp(&a.published)
            .then_with(|| natural_cmp(&b.tag, &a.tag))
    });
    Ok(out)
}

fn api_base(state: &HubState) -> String {
    state.hub_url.as_str().trim_end_matches('/').to_owned()
}

fn asset_json(state: &HubState, repo: &Repo, release: &Release, a: &Asset) -> Value {
    let base = api_base(state);
    let (o, r) = (&repo.owner, &repo.name);
    let created = rfc3339(DateTime::<Utc>::from(a.mtime));
    let lies = state.listed_lies(&format!("gh/{o}/{r}/{}/{}", release.folder, a.name));
    json!({
        "url": format!("{base}/repos/{o}/{r}/releases/assets/{}", a.id),
        "id": a.id,
        "node_id": format!("RA_{}", a.id),
        "name": lies.name.as_deref().unwrap_or(&a.name),
        "label": "",
        "uploader": { "login": o, "id": stable_id("user", o), "type": "User" },
        "content_type": content_type(&a.name),
        "state": "uploaded",
        "size": lies.size.unwrap_or(a.size),
        "digest": format!("sha256:{}", lies.sha256.as_deref().unwrap_or(&a.sha256)),
        "download_count": 0,
        "created_at": created,
        "updated_at": created,
        "browser_download_url": format!(
            "{base}/{o}/{r}/releases/download/{}/{}",
            encode_segment(&release.tag),
            encode_segment(&a.name)
        ),
    })
}

fn release_json(state: &HubState, repo: &Repo, rel: &Release) -> Value {
    let base = api_base(state);
    let (o, r) = (&repo.owner, &repo.name);
    let tag = encode_segment(&rel.tag);
    let published = rfc3339(rel.published);
    json!({
        "url": format!("{base}/repos/{o}/{r}/releases/{}", rel.id),
        "assets_url": format!("{base}/repos/{o}/{r}/releases/{}/assets", rel.id),
        "upload_url": format!("{base}/repos/{o}/{r}/releases/{}/assets{{?name,label}}", rel.id),
        "html_url": format!("{base}/{o}/{r}/releases/tag/{tag}"),
        "id": rel.id,
        "author": { "login": o, "id": stable_id("user", o), "type": "User" },
        "node_id": format!("RE_{}", rel.id),
        "tag_name": rel.tag,
        "target_commitish": rel.settings.target_commitish.as_deref().unwrap_or("main"),
        "name": rel.settings.name.as_deref().unwrap_or(&rel.tag),
        "draft": rel.settings.draft,
        "immutable": false,
        "prerelease": rel.settings.prerelease,
        "created_at": published,
        "published_at": if rel.settings.draft { Value::Null } else { json!(published) },
        "assets": rel.assets.iter().map(|a| asset_json(state, repo, rel, a)).collect::<Vec<_>>(),
        "tarball_url": format!("{base}/repos/{o}/{r}/tarball/{tag}"),
        "zipball_url": format!("{base}/repos/{o}/{r}/zipball/{tag}"),
        "body": rel.settings.body.as_deref().unwrap_or(""),
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The caller's hourly API budget after charging one request.
struct Budget {
    limit: u64,
    remaining: u64,
    reset: u64,
    used: u64,
    exceeded: bool,
}

/// Counts one API request against the caller's (token's, or anonymous) hourly budget.
fn charge(state: &HubState, headers: &HeaderMap) -> Budget {
    let identity = token_of(headers).unwrap_or_else(|| "anonymous".to_owned());
    let limit = state.config.gh_rate_limit;
    let now = now_secs();
    let mut usage = state
        .gh_usage
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = usage.entry(identity).or_insert((now, 0));
    if now >= entry.0 + 3600 {
        *entry = (now, 0);
    }
    entry.1 += 1;
    Budget {
        limit,
        remaining: limit.saturating_sub(entry.1),
        reset: entry.0 + 3600,
        used: entry.1.min(limit),
        exceeded: entry.1 > limit,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_of_tags() {
        assert_eq!(natural_cmp("v1.10.0", "v1.9.0"), Ordering::Greater);
        assert_eq!(natural_cmp("b4500", "b999"), Ordering::Greater);
        assert_eq!(natural_cmp("v1.0", "v1.0"), Ordering::Equal);
        assert_eq!(natural_cmp("v1.0", "v1.0-rc1"), Ordering::Less);
    }

    #[test]
    fn ids_are_stable_and_json_safe() {
        let a = stable_id("asset", "o/r/v1/x.gguf");
        assert_eq!(a, stable_id("asset", "o/r/v1/x.gguf"));
        assert_ne!(a, stable_id("asset", "o/r/v1/y.gguf"));
        assert!(a > 0 && a < (1 << 48));
    }
}
