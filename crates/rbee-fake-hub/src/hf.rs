//! The HuggingFace Hub protocol over `<root>/hf/<org>/<repo>/`.
//!
//! A repo folder is the `main` branch; `.revisions/<name>/` folders are further branches
//! (`<name>` percent-decoded, so `refs%2Fpr%2F1` is `refs/pr/1`); an optional `fakehub.json`
//! sets `private`, `gated`, accepted `tokens` and `tags` (tag → revision). See the README.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::files::{ServeOptions, serve_file};
use crate::hashes::{HashKind, git_blob_id, sha1_hex};
use crate::reply::redirect;
use crate::state::HubState;
use crate::url_path::{encode_segment, segments};

/// The repo's settings file, at the top of the repo folder.
const SETTINGS: &str = "fakehub.json";
/// Folder of the non-`main` revisions, at the top of the repo folder.
const REVISIONS: &str = ".revisions";

/// Extensions the Hub's default `.gitattributes` stores with LFS (plus GGUF).
const LFS_EXTENSIONS: &[&str] = &[
    "7z",
    "arrow",
    "bin",
    "bz2",
    "ckpt",
    "ftz",
    "gguf",
    "gz",
    "h5",
    "joblib",
    "mlmodel",
    "model",
    "msgpack",
    "npy",
    "npz",
    "onnx",
    "ot",
    "parquet",
    "pb",
    "pickle",
    "pkl",
    "pt",
    "pth",
    "rar",
    "safetensors",
    "tar",
    "tflite",
    "tgz",
    "wasm",
    "xz",
    "zip",
    "zst",
];

type AppState = Arc<HubState>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    private: bool,
    /// `false`, `true` (= "auto"), `"auto"` or `"manual"`.
    gated: Value,
    tokens: Vec<String>,
    tags: BTreeMap<String, String>,
    /// `true`: every LFS file is also stored in Xet; a list of globs: the LFS files matching
    /// one (a glob without `/` matches the file name).
    xet: Value,
}

impl Settings {
    /// Whether the LFS file at `path` is stored in Xet (the hub-wide switch or this repo's).
    fn xet(&self, hub_wide: bool, path: &str) -> bool {
        match &self.xet {
            _ if hub_wide => true,
            Value::Bool(on) => *on,
            Value::Array(globs) => globs.iter().filter_map(Value::as_str).any(|g| {
                let name = path.rsplit('/').next().unwrap_or(path);
                let target = if g.contains('/') { path } else { name };
                globset::GlobBuilder::new(g)
                    .literal_separator(true)
                    .build()
                    .is_ok_and(|glob| glob.compile_matcher().is_match(target))
            }),
            _ => false,
        }
    }

    fn gated(&self) -> Option<&'static str> {
        match &self.gated {
            Value::Bool(true) => Some("auto"),
            Value::String(s) if s == "manual" => Some("manual"),
            Value::String(s) if s == "auto" => Some("auto"),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Repo {
    org: String,
    name: String,
    dir: PathBuf,
    settings: Settings,
}

impl Repo {
    fn id(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }
}

#[derive(Debug, Clone)]
struct Lfs {
    sha256: String,
    pointer_size: u64,
}

#[derive(Debug, Clone)]
struct RepoFile {
    /// Path in the repo, `/`-separated.
    path: String,
    abs: PathBuf,
    size: u64,
    mtime: SystemTime,
    /// Git blob id: of the content, or of the LFS pointer for LFS files.
    oid: String,
    lfs: Option<Lfs>,
    /// The Xet file hash, for LFS files stored in Xet.
    xet: Option<rbee_xet::XetHash>,
}

#[derive(Debug)]
struct Revision {
    /// Path of the revision's folder relative to the served root (`hf/org/repo[/.revisions/x]`).
    rel_dir: String,
    sha: String,
    files: Vec<RepoFile>,
}

/// Why a Hub request fails, with the Hub's error code.
#[derive(Debug)]
enum HubError {
    RepoNotFound { authenticated: bool },
    RevisionNotFound(String),
    EntryNotFound { commit: Option<String> },
    Gated { repo: String, authenticated: bool },
    Internal(String),
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let (status, code, message, commit) = match self {
            HubError::RepoNotFound { authenticated } => (
                if authenticated {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::UNAUTHORIZED
                },
                "RepoNotFound",
                "Repository not found".to_owned(),
                None,
            ),
            HubError::RevisionNotFound(rev) => (
                StatusCode::NOT_FOUND,
                "RevisionNotFound",
                format!("Invalid rev id: {rev}"),
                None,
            ),
            HubError::EntryNotFound { commit } => (
                StatusCode::NOT_FOUND,
                "EntryNotFound",
                "Entry not found".to_owned(),
                commit,
            ),
            HubError::Gated {
                repo,
                authenticated: false,
            } => (
                StatusCode::UNAUTHORIZED,
                "GatedRepo",
                format!(
                    "Access to model {repo} is restricted. You must have access to it and be authenticated to access it. Please log in."
                ),
                None,
            ),
            HubError::Gated {
                repo,
                authenticated: true,
            } => (
                StatusCode::FORBIDDEN,
                "GatedRepo",
                format!(
                    "Access to model {repo} is restricted and you are not in the authorized list. Visit https://huggingface.co/{repo} to ask for access."
                ),
                None,
            ),
            HubError::Internal(message) => {
                tracing::warn!(%message, "hub request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal",
                    "Internal Error".to_owned(),
                    None,
                )
            }
        };
        let mut resp = (status, axum::Json(json!({ "error": message }))).into_response();
        let h = resp.headers_mut();
        h.insert("x-error-code", HeaderValue::from_static(code));
        if let Ok(v) = HeaderValue::from_str(&message) {
            h.insert("x-error-message", v);
        }
        if let Some(commit) = commit.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert("x-repo-commit", commit);
        }
        resp
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A plain name: not empty, no separators, not hidden or relative.
fn plain_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\']) && !s.contains('\0')
}

struct Access {
    token: Option<String>,
    valid: bool,
}

/// Finds the repo and checks the caller may see it (private repos need a valid token).
async fn open_repo(
    state: &HubState,
    headers: &HeaderMap,
    org: &str,
    name: &str,
) -> Result<(Repo, Access), HubError> {
    let token = bearer(headers).map(str::to_owned);
    let authenticated = token.is_some();
    if !plain_name(org) || !plain_name(name) {
        return Err(HubError::RepoNotFound { authenticated });
    }
    let dir = state.config.root.join("hf").join(org).join(name);
    if !tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir()) {
        return Err(HubError::RepoNotFound { authenticated });
    }
    let settings = match tokio::fs::read(dir.join(SETTINGS)).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| HubError::Internal(format!("{}: {e}", dir.join(SETTINGS).display())))?,
        Err(_) => Settings::default(),
    };
    let valid = token.as_ref().is_some_and(|t| {
        state.config.hf_tokens.iter().any(|a| a == t) || settings.tokens.iter().any(|a| a == t)
    });
    let repo = Repo {
        org: org.to_owned(),
        name: name.to_owned(),
        dir,
        settings,
    };
    if repo.settings.private && !valid {
        return Err(HubError::RepoNotFound { authenticated });
    }
    Ok((repo, Access { token, valid }))
}

/// Revision folders: `main` first, then `.revisions/*` by name.
async fn revision_dirs(repo: &Repo) -> Vec<(String, PathBuf, String)> {
    let base_rel = format!("hf/{}/{}", repo.org, repo.name);
    let mut out = vec![("main".to_owned(), repo.dir.clone(), base_rel.clone())];
    if let Ok(mut rd) = tokio::fs::read_dir(repo.dir.join(REVISIONS)).await {
        let mut more = Vec::new();
        while let Ok(Some(e)) = rd.next_entry().await {
            if !e.file_type().await.is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let folder = e.file_name().to_string_lossy().into_owned();
            let name = percent_encoding::percent_decode_str(&folder)
                .decode_utf8_lossy()
                .into_owned();
            more.push((name, e.path(), format!("{base_rel}/{REVISIONS}/{folder}")));
        }
        more.sort();
        out.extend(more);
    }
    out
}

fn is_lfs(path: &str, size: u64, threshold: u64) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    size >= threshold
        || name.contains("tfevents")
        || ext.is_some_and(|e| LFS_EXTENSIONS.contains(&e.as_str()))
        || path.starts_with("saved_model/")
}

/// Every file of one revision folder, with sizes and (cached) hashes, and the commit id.
async fn scan_revision(
    state: &HubState,
    repo: &Repo,
    dir: &Path,
    rel_dir: String,
    is_main: bool,
) -> Result<Revision, HubError> {
    let dir_owned = dir.to_path_buf();
    let listing = tokio::task::spawn_blocking(move || walk(&dir_owned, is_main))
        .await
        .map_err(|e| HubError::Internal(e.to_string()))?
        .map_err(|e| HubError::Internal(format!("{}: {e}", dir.display())))?;
    let mut files = Vec::with_capacity(listing.len());
    for (path, abs, size, mtime) in listing {
        let file = if is_lfs(&path, size, state.config.lfs_threshold) {
            let sha256 = state
                .hashes
                .get(&abs, size, mtime, HashKind::Sha256)
                .await
                .map_err(|e| HubError::Internal(format!("{}: {e}", abs.display())))?;
            let pointer = format!(
                "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
            );
            let xet = if repo.settings.xet(state.config.xet, &path) {
                let stored = state
                    .xet
                    .file(&abs, size, mtime, &repo.id())
                    .await
                    .map_err(|e| HubError::Internal(format!("{}: {e}", abs.display())))?;
                Some(stored.hash)
            } else {
                None
            };
            RepoFile {
                xet,
                oid: git_blob_id(pointer.as_bytes()),
                lfs: Some(Lfs {
                    sha256,
                    pointer_size: pointer.len() as u64,
                }),
                path,
                abs,
                size,
                mtime,
            }
        } else {
            let oid = state
                .hashes
                .get(&abs, size, mtime, HashKind::GitBlob)
                .await
                .map_err(|e| HubError::Internal(format!("{}: {e}", abs.display())))?;
            RepoFile {
                oid,
                lfs: None,
                xet: None,
                path,
                abs,
                size,
                mtime,
            }
        };
        files.push(file);
    }
    let mut listing = String::from("fakehub commit\n");
    for f in &files {
        listing.push_str(&format!("{} {}\n", f.oid, f.path));
    }
    Ok(Revision {
        rel_dir,
        sha: sha1_hex(listing.as_bytes()),
        files,
    })
}

type Listed = (String, PathBuf, u64, SystemTime);

/// Files under `dir`, sorted by path; skips `.git`, and at the top of `main` the settings
/// file and the revisions folder.
fn walk(dir: &Path, is_main: bool) -> std::io::Result<Vec<Listed>> {
    fn go(
        base: &Path,
        dir: &Path,
        top: bool,
        is_main: bool,
        out: &mut Vec<Listed>,
    ) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".git" || (top && is_main && (name == SETTINGS || name == REVISIONS)) {
                continue;
            }
            let path = entry.path();
            let meta = std::fs::metadata(&path)?;
            if meta.is_dir() {
                go(base, &path, false, is_main, out)?;
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(base)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, path, meta.len(), meta.modified().unwrap_or(UNIX_EPOCH)));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    go(dir, dir, true, is_main, &mut out)?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Resolves a branch, tag or full commit sha to a scanned revision.
async fn open_revision(state: &HubState, repo: &Repo, rev: &str) -> Result<Revision, HubError> {
    let wanted = repo.settings.tags.get(rev).map_or(rev, String::as_str);
    let dirs = revision_dirs(repo).await;
    if let Some((name, dir, rel)) = dirs.iter().find(|(n, _, _)| n == wanted) {
        return scan_revision(state, repo, dir, rel.clone(), name == "main").await;
    }
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        let rev = rev.to_ascii_lowercase();
        for (name, dir, rel) in &dirs {
            let scanned = scan_revision(state, repo, dir, rel.clone(), name == "main").await?;
            if scanned.sha == rev {
                return Ok(scanned);
            }
        }
    }
    Err(HubError::RevisionNotFound(rev.to_owned()))
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn query_flag(query: Option<&str>, key: &str) -> bool {
    query_value(query, key).is_some_and(|v| matches!(v.as_str(), "true" | "1" | "True" | ""))
}

fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Splits `{rev}/{path…}`. The revision is one (percent-encoded) segment, except that an
/// unencoded `refs/pr/N` or `refs/convert/X` takes three, as the Hub accepts both spellings.
fn split_revision<'a>(tail: &[&'a str]) -> (String, Vec<&'a str>) {
    match tail {
        ["refs", kind @ ("pr" | "convert"), n, rest @ ..] => {
            (format!("refs/{kind}/{n}"), rest.to_vec())
        }
        [rev, rest @ ..] => ((*rev).to_owned(), rest.to_vec()),
        [] => (String::new(), Vec::new()),
    }
}

/// `/api/models/{org}/{repo}[/revision/{rev}]`, `…/refs`, `…/tree/{rev}[/{path}]` and
/// `POST …/paths-info/{rev}`.
pub(crate) async fn api(State(state): State<AppState>, req: Request) -> Response {
    let (req, body) = req.into_parts();
    let segs = segments(req.uri.path());
    // segs: ["api", "models", org, repo, ...]
    let rest: Vec<&str> = segs.iter().skip(2).map(String::as_str).collect();
    if let [org, name, "paths-info", after @ ..] = rest.as_slice()
        && req.method == Method::POST
    {
        let (rev, _) = split_revision(after);
        let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        return paths_info(&state, &req, &body, org, name, &rev)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    if req.method != Method::GET && req.method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let result = match rest.as_slice() {
        [org, name] => model_info(&state, &req, org, name, "main").await,
        [org, name, "revision", rev @ ..] if !rev.is_empty() => {
            model_info(&state, &req, org, name, &rev.join("/")).await
        }
        [org, name, "xet-read-token", rev @ ..] if !rev.is_empty() => {
            xet_read_token(&state, &req, org, name, &rev.join("/")).await
        }
        [org, name, "refs"] => refs(&state, &req, org, name).await,
        [org, name, "tree", after @ ..] if !after.is_empty() => {
            let (rev, path) = split_revision(after);
            // The Python client sends the path as one segment with `/` encoded.
            let path: Vec<&str> = path
                .iter()
                .flat_map(|s| s.split('/'))
                .filter(|s| !s.is_empty())
                .collect();
            tree(&state, &req, org, name, &rev, &path.join("/")).await
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "Not Found"})),
            )
                .into_response();
        }
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn model_info(
    state: &HubState,
    req: &Parts,
    org: &str,
    name: &str,
    rev: &str,
) -> Result<Response, HubError> {
    let (repo, _) = open_repo(state, &req.headers, org, name).await?;
    let revision = open_revision(state, &repo, rev).await?;
    let blobs = query_flag(req.uri.query(), "blobs");
    let siblings: Vec<Value> = revision
        .files
        .iter()
        .map(|f| {
            let lies = state.listed_lies(&format!("{}/{}", revision.rel_dir, f.path));
            let size = lies.size.unwrap_or(f.size);
            let mut s = json!({ "rfilename": lies.name.as_deref().unwrap_or(&f.path) });
            if blobs {
                s["size"] = json!(size);
                s["blobId"] = json!(f.oid);
                if let Some(lfs) = &f.lfs {
                    s["lfs"] = json!({
                        "sha256": lies.sha256.as_deref().unwrap_or(&lfs.sha256),
                        "size": size,
                        "pointerSize": lfs.pointer_size,
                    });
                }
            }
            s
        })
        .collect();
    let last_modified = revision
        .files
        .iter()
        .map(|f| f.mtime)
        .max()
        .unwrap_or(UNIX_EPOCH);
    let created = tokio::fs::metadata(&repo.dir)
        .await
        .and_then(|m| m.modified())
        .unwrap_or(UNIX_EPOCH);
    let id = repo.id();
    let mut tags = Vec::new();
    if revision.files.iter().any(|f| f.path.ends_with(".gguf")) {
        tags.push("gguf");
    }
    if revision
        .files
        .iter()
        .any(|f| f.path.ends_with(".safetensors"))
    {
        tags.push("safetensors");
    }
    let body = json!({
        "_id": &sha1_hex(id.as_bytes())[..24],
        "id": id,
        "modelId": id,
        "author": repo.org,
        "sha": revision.sha,
        "lastModified": rfc3339(last_modified),
        "createdAt": rfc3339(created),
        "private": repo.settings.private,
        "gated": repo.settings.gated().map_or(json!(false), |g| json!(g)),
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": tags,
        "siblings": siblings,
        "spaces": [],
        "usedStorage": revision.files.iter().map(|f| f.size).sum::<u64>(),
    });
    Ok(axum::Json(body).into_response())
}

async fn tree(
    state: &HubState,
    req: &Parts,
    org: &str,
    name: &str,
    rev: &str,
    dir: &str,
) -> Result<Response, HubError> {
    let (repo, _) = open_repo(state, &req.headers, org, name).await?;
    let revision = open_revision(state, &repo, rev).await?;
    let query = req.uri.query();
    let recursive = query_flag(query, "recursive");
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    if !dir.is_empty() && !revision.files.iter().any(|f| f.path.starts_with(&prefix)) {
        return Err(HubError::EntryNotFound {
            commit: Some(revision.sha.clone()),
        });
    }

    // Directories are listed as entries of their own, with a tree id over their files.
    let mut dirs: BTreeMap<String, String> = BTreeMap::new();
    let mut entries: Vec<(String, Value)> = Vec::new();
    for f in &revision.files {
        let Some(rest) = f.path.strip_prefix(&prefix) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        for depth in 1..parts.len() {
            if !recursive && depth > 1 {
                break;
            }
            let d = format!("{prefix}{}", parts[..depth].join("/"));
            dirs.entry(d)
                .or_default()
                .push_str(&format!("{} {}\n", f.oid, f.path));
        }
        if recursive || parts.len() == 1 {
            entries.push((f.path.clone(), file_entry(state, &revision, f)));
        }
    }
    for (d, listing) in dirs {
        let e = json!({ "type": "directory", "oid": sha1_hex(listing.as_bytes()), "size": 0, "path": d });
        entries.push((d, e));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    let page = state.config.hf_tree_page_size.max(1);
    let start: usize = query_value(query, "cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (start + page).min(entries.len());
    let items: Vec<Value> = entries
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|(_, v)| v.clone())
        .collect();
    let mut resp = axum::Json(Value::Array(items)).into_response();
    if end < entries.len() {
        let mut next = state.hub_url.clone();
        next.set_path(req.uri.path());
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if k != "cursor" {
                q.append_pair(&k, &v);
            }
        }
        q.append_pair("cursor", &end.to_string());
        next.set_query(Some(&q.finish()));
        if let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// `/api/models/{org}/{repo}/refs`: branches and tags with their commits, as the Hub lists them
/// (llama.cpp reads `main`'s commit here before it lists the tree). Pull requests and
/// conversions are listed under their own keys.
async fn refs(state: &HubState, req: &Parts, org: &str, name: &str) -> Result<Response, HubError> {
    let (repo, _) = open_repo(state, &req.headers, org, name).await?;
    let (mut branches, mut converts, mut pulls) = (Vec::new(), Vec::new(), Vec::new());
    for (branch, dir, rel) in revision_dirs(&repo).await {
        let sha = scan_revision(state, &repo, &dir, rel, branch == "main")
            .await?
            .sha;
        if let Some(n) = branch.strip_prefix("refs/pr/") {
            pulls.push(json!({ "name": n, "ref": branch, "targetCommit": sha }));
        } else if let Some(n) = branch.strip_prefix("refs/convert/") {
            converts.push(json!({ "name": n, "ref": branch, "targetCommit": sha }));
        } else {
            branches.push(json!({ "name": branch, "ref": format!("refs/heads/{branch}"), "targetCommit": sha }));
        }
    }
    let mut tags = Vec::new();
    for (tag, rev) in &repo.settings.tags {
        let revision = open_revision(state, &repo, rev).await?;
        tags.push(
            json!({ "name": tag, "ref": format!("refs/tags/{tag}"), "targetCommit": revision.sha }),
        );
    }
    let mut body = json!({ "branches": branches, "converts": converts, "tags": tags });
    if query_flag(req.uri.query(), "include_prs") {
        body["pullRequests"] = json!(pulls);
    }
    Ok(axum::Json(body).into_response())
}

/// A file as the tree and paths-info list it (with the configured lies).
fn file_entry(state: &HubState, revision: &Revision, f: &RepoFile) -> Value {
    let lies = state.listed_lies(&format!("{}/{}", revision.rel_dir, f.path));
    let size = lies.size.unwrap_or(f.size);
    let path = lies.name.as_deref().unwrap_or(&f.path);
    let mut e = json!({ "type": "file", "oid": f.oid, "size": size, "path": path });
    if let Some(lfs) = &f.lfs {
        let sha256 = lies.sha256.as_deref().unwrap_or(&lfs.sha256);
        e["lfs"] = json!({ "oid": sha256, "size": size, "pointerSize": lfs.pointer_size });
    }
    if let Some(xet) = &f.xet {
        e["xetHash"] = json!(xet.to_hex());
    }
    e
}

/// `POST /api/models/{org}/{repo}/paths-info/{rev}` with a form `paths=a&paths=b` (as
/// huggingface_hub sends it) or JSON `{"paths": […]}`: the entries of those that exist, files
/// as the tree lists them, folders as `directory` entries; unknown paths are left out.
async fn paths_info(
    state: &HubState,
    req: &Parts,
    body: &[u8],
    org: &str,
    name: &str,
    rev: &str,
) -> Result<Response, HubError> {
    let (repo, _) = open_repo(state, &req.headers, org, name).await?;
    let revision = open_revision(state, &repo, rev).await?;
    let wanted: Vec<String> = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect(),
        Err(_) => url::form_urlencoded::parse(body)
            .filter(|(k, _)| k == "paths")
            .map(|(_, v)| v.into_owned())
            .collect(),
    };
    let mut out = Vec::new();
    for path in wanted {
        let path = path.trim_matches('/');
        if let Some(f) = revision.files.iter().find(|f| f.path == path) {
            out.push(file_entry(state, &revision, f));
            continue;
        }
        let prefix = format!("{path}/");
        let listing: String = revision
            .files
            .iter()
            .filter(|f| path.is_empty() || f.path.starts_with(&prefix))
            .map(|f| format!("{} {}\n", f.oid, f.path))
            .collect();
        if !listing.is_empty() {
            out.push(json!({ "type": "directory", "oid": sha1_hex(listing.as_bytes()), "size": 0, "path": path }));
        }
    }
    Ok(axum::Json(Value::Array(out)).into_response())
}

/// `GET /api/models/{org}/{repo}/xet-read-token/{rev}`: a CAS token for the repo, under the
/// same access rules as resolve (private: a valid token or 401/404; gated: a valid token).
async fn xet_read_token(
    state: &HubState,
    req: &Parts,
    org: &str,
    name: &str,
    rev: &str,
) -> Result<Response, HubError> {
    let (repo, access) = open_repo(state, &req.headers, org, name).await?;
    open_revision(state, &repo, rev).await?;
    if repo.settings.gated().is_some() && !access.valid {
        return Err(HubError::Gated {
            repo: repo.id(),
            authenticated: access.token.is_some(),
        });
    }
    let path = crate::url_path::decode_path(req.uri.path());
    let token = crate::xet::mint_token(state, &repo.id(), &path);
    let mut resp = axum::Json(&token).into_response();
    let h = resp.headers_mut();
    // huggingface_hub reads these headers; hf_xet, refreshing on its own, reads the body.
    for (name, value) in [
        ("x-xet-access-token", token.access_token.clone()),
        ("x-xet-token-expiration", token.exp.to_string()),
        ("x-xet-cas-url", token.cas_url.clone()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    Ok(resp)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfs_by_extension_or_size() {
        assert!(is_lfs("model.Q4_K_M.gguf", 10, 1000));
        assert!(is_lfs("sub/model.safetensors", 10, 1000));
        assert!(is_lfs("big.txt", 1000, 1000));
        assert!(!is_lfs("config.json", 999, 1000));
        assert!(!is_lfs("README", 10, 1000));
    }

    #[test]
    fn gated_values() {
        let s: Settings = serde_json::from_str(r#"{"gated": "manual"}"#).unwrap();
        assert_eq!(s.gated(), Some("manual"));
        let s: Settings = serde_json::from_str(r#"{"gated": true}"#).unwrap();
        assert_eq!(s.gated(), Some("auto"));
        let s: Settings = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(s.gated(), None);
    }

    #[test]
    fn resolve_urls_encode_the_revision_whole() {
        let base = url::Url::parse("http://127.0.0.1:1/").unwrap();
        assert_eq!(
            resolve_url(&base, "org/repo", "refs/pr/1", "dir/a b.gguf").as_str(),
            "http://127.0.0.1:1/org/repo/resolve/refs%2Fpr%2F1/dir/a%20b.gguf"
        );
    }
}
