//! The Hub's JSON API: model info, refs, tree listings, paths-info and the Xet read token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::hashes::sha1_hex;
use crate::state::HubState;
use crate::url_path::segments;

use super::repo::{HubError, open_repo};
use super::revision::{
    RepoFile, Revision, open_revision, revision_dirs, scan_revision, split_revision,
};

type AppState = Arc<HubState>;

pub(super) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(super) fn query_flag(query: Option<&str>, key: &str) -> bool {
    query_value(query, key).is_some_and(|v| matches!(v.as_str(), "true" | "1" | "True" | ""))
}

pub(super) fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
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
            .sha
            .clone();
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
