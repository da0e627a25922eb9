//! The mirror's metadata routes: model info, refs, the tree listing and paths-info, from the
//! upstream's answers and the revision listing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{authenticated, json_response, mirror, refuse_restricted, repo_path};
use crate::hub::names::{check_path, check_revision, split_revision};
use crate::hub::reply::HubError;
use crate::hub::upstream::{RepoFile, RevisionInfo};
use crate::state::HiveState;

pub(super) async fn model_info(State(state): State<HiveState>, uri: Uri) -> Response {
    model_info_inner(&state, &uri)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn model_info_inner(state: &HiveState, uri: &Uri) -> Result<Response, HubError> {
    let upstream = mirror(state)?;
    let (org, repo, rest) = repo_path(uri, 2)?;
    let rev = match rest.as_slice() {
        [] => "main".to_string(),
        [kind, tail @ ..] if kind == "revision" => {
            let (rev, after) = split_revision(tail)
                .ok_or_else(|| HubError::bad_request("expected /revision/REV".into()))?;
            if !after.is_empty() {
                return Err(HubError::bad_request("expected /revision/REV".into()));
            }
            rev
        }
        _ => {
            return Err(HubError::bad_request(
                "expected /api/models/ORG/REPO[/revision/REV]".into(),
            ));
        }
    };
    check_revision(&rev).map_err(HubError::bad_request)?;
    let info = upstream.revision(&org, &repo, &rev).await?;
    if info.private && !authenticated(state) {
        return Err(refuse_restricted(&info, &org, &repo));
    }
    let url = upstream.url(
        &["api", "models", &org, &repo, "revision", &rev],
        uri.query(),
    );
    let answer = upstream.get(url).await?;
    Ok(json_response(answer.status, answer.body))
}

pub(super) async fn refs(State(state): State<HiveState>, uri: Uri) -> Response {
    refs_inner(&state, &uri)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// llama.cpp asks here which commit `main` is before it lists the tree.
async fn refs_inner(state: &HiveState, uri: &Uri) -> Result<Response, HubError> {
    let upstream = mirror(state)?;
    let (org, repo, _) = repo_path(uri, 2)?;
    let info = upstream.revision(&org, &repo, "main").await?;
    if info.private && !authenticated(state) {
        return Err(refuse_restricted(&info, &org, &repo));
    }
    let url = upstream.url(&["api", "models", &org, &repo, "refs"], uri.query());
    let answer = upstream.get(url).await?;
    Ok(json_response(answer.status, answer.body))
}

pub(super) async fn tree(State(state): State<HiveState>, headers: HeaderMap, uri: Uri) -> Response {
    tree_inner(&state, &headers, &uri)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn tree_inner(
    state: &HiveState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, HubError> {
    let upstream = mirror(state)?;
    let (org, repo, rest) = repo_path(uri, 2)?;
    let (rev, dir) = split_revision(&rest[1..])
        .ok_or_else(|| HubError::bad_request("expected /tree/REV[/DIR]".into()))?;
    check_revision(&rev).map_err(HubError::bad_request)?;
    let dir = dir.join("/");
    if !dir.is_empty() {
        check_path(&dir).map_err(HubError::bad_request)?;
    }
    let info = upstream.revision(&org, &repo, &rev).await?;
    if info.private && !authenticated(state) {
        return Err(refuse_restricted(&info, &org, &repo));
    }
    let mut segs = vec![
        "api",
        "models",
        org.as_str(),
        repo.as_str(),
        "tree",
        rev.as_str(),
    ];
    segs.extend(dir.split('/').filter(|s| !s.is_empty()));
    let answer = upstream.get(upstream.url(&segs, uri.query())).await?;
    let mut response = json_response(answer.status, answer.body);
    if let Some(link) = answer
        .next_link
        .as_deref()
        .and_then(|l| next_page_here(l, upstream.endpoint(), headers, &org, &repo))
        .and_then(|l| HeaderValue::from_str(&format!("<{l}>; rel=\"next\"")).ok())
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// The upstream's next-page link, pointed at this hive: only a `rel="next"` link to the
/// upstream's own tree route of this repository is kept (clients must not be sent around the
/// mirror).
fn next_page_here(
    link: &str,
    endpoint: &url::Url,
    headers: &HeaderMap,
    org: &str,
    repo: &str,
) -> Option<String> {
    let target = link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        next.then(|| target.trim().strip_prefix('<')?.strip_suffix('>'))
            .flatten()
    })?;
    let target = endpoint.join(target).ok()?;
    if target.origin() != endpoint.origin() {
        return None;
    }
    let prefix = endpoint.path().trim_end_matches('/');
    let path = target.path().strip_prefix(prefix)?;
    let expected = format!("/api/models/{org}/{repo}/tree/");
    if !path.starts_with(&expected) {
        return None;
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let query = target.query().map(|q| format!("?{q}")).unwrap_or_default();
    Some(format!("http://{host}{path}{query}"))
}

pub(super) async fn paths_info(State(state): State<HiveState>, uri: Uri, body: Bytes) -> Response {
    paths_info_inner(&state, &uri, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Answered from the revision listing, so it works in front of any upstream that lists
/// revisions (the Hub's own paths-info adds nothing the clients here use).
async fn paths_info_inner(state: &HiveState, uri: &Uri, body: &[u8]) -> Result<Response, HubError> {
    let upstream = mirror(state)?;
    let (org, repo, rest) = repo_path(uri, 2)?;
    let (rev, after) = split_revision(&rest[1..])
        .ok_or_else(|| HubError::bad_request("expected /paths-info/REV".into()))?;
    if !after.is_empty() {
        return Err(HubError::bad_request("expected /paths-info/REV".into()));
    }
    check_revision(&rev).map_err(HubError::bad_request)?;
    let wanted = requested_paths(body)?;
    let info = upstream.revision(&org, &repo, &rev).await?;
    if info.private && !authenticated(state) {
        return Err(refuse_restricted(&info, &org, &repo));
    }
    // Every directory of the listing, once, rather than a scan of all files per path asked.
    let dirs: std::collections::HashSet<&str> = info
        .files
        .keys()
        .flat_map(|k| k.match_indices('/').map(move |(i, _)| &k[..i]))
        .collect();
    let mut out = Vec::new();
    for path in wanted {
        if let Some(f) = info.files.get(&path) {
            out.push(file_entry(&path, f));
        } else if path.is_empty() || dirs.contains(path.as_str()) {
            let prefix = format!("{path}/");
            out.push(json!({ "type": "directory", "path": path, "size": 0, "oid": dir_oid(&info, &prefix) }));
        }
    }
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&Value::Array(out)).unwrap_or_default(),
    ))
}

/// Most paths one paths-info request is answered for: each costs a lookup, and the answer
/// is built in memory.
const MAX_PATHS: usize = 10_000;

/// `paths` from a form body (`paths=a&paths=b`, as huggingface_hub sends it) or a JSON one:
/// without surrounding slashes, each once, at most [`MAX_PATHS`].
fn requested_paths(body: &[u8]) -> Result<Vec<String>, HubError> {
    let paths: Vec<String> = if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let list = v.get("paths").and_then(Value::as_array).ok_or_else(|| {
            HubError::bad_request(
                "expected {\"paths\": [\"file\", …]} or a form with paths=…".into(),
            )
        })?;
        list.iter()
            .filter_map(|p| p.as_str().map(str::to_string))
            .take(MAX_PATHS)
            .collect()
    } else {
        url::form_urlencoded::parse(body)
            .filter(|(k, _)| k == "paths" || k == "paths[]")
            .map(|(_, v)| v.into_owned())
            .take(MAX_PATHS)
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    Ok(paths
        .into_iter()
        .map(|p| p.trim_matches('/').to_string())
        .filter(|p| seen.insert(p.clone()))
        .collect())
}

/// A directory's id: stable for the same files (the Hub's is a git tree id, which a mirror
/// cannot compute from a listing).
fn dir_oid(info: &RevisionInfo, prefix: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut names: Vec<(&String, &RepoFile)> = info
        .files
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (name, f) in names {
        h.update(name.as_bytes());
        h.update(f.oid.as_deref().unwrap_or_default().as_bytes());
    }
    hex::encode(&h.finalize()[..20])
}

fn file_entry(path: &str, f: &RepoFile) -> Value {
    let mut e = json!({ "type": "file", "path": path, "size": f.size, "oid": f.oid });
    if let Some(sha) = &f.sha256 {
        e["lfs"] = json!({ "oid": sha, "size": f.size, "pointerSize": f.pointer_size });
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_info_considers_at_most_max_paths_each_once() {
        let many: Vec<String> = (0..20_000).map(|i| format!("f{i}")).collect();
        let json = serde_json::to_vec(&json!({ "paths": many })).unwrap();
        assert_eq!(requested_paths(&json).unwrap().len(), MAX_PATHS);
        let form: String = many.iter().map(|p| format!("paths={p}&")).collect();
        assert_eq!(requested_paths(form.as_bytes()).unwrap().len(), MAX_PATHS);
        let twice = serde_json::to_vec(&json!({ "paths": ["a", "/a/", "b", "a"] })).unwrap();
        assert_eq!(requested_paths(&twice).unwrap(), ["a", "b"]);
    }
}
