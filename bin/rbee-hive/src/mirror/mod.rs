//! rbee-hive as a HuggingFace Hub mirror: the Hub's read-only routes, answered from the catalog
//! and, on a miss, pulled through from the hive's own upstream once however many clients ask.
//!
//! ```text
//! GET  /api/models/{org}/{repo}[/revision/{rev}]   model info (the upstream's, passed on)
//! GET  /api/models/{org}/{repo}/refs              branches and tags (the upstream's, passed on)
//! GET  /api/models/{org}/{repo}/tree/{rev}[/{dir}] listing, paginated (Link rewritten to here)
//! POST /api/models/{org}/{repo}/paths-info/{rev}   the named paths, from the revision listing
//! HEAD|GET /{org}/{repo}/resolve/{rev}/{path}      the file: Range, ETag, X-Repo-Commit,
//!                                                  X-Linked-Etag, X-Linked-Size
//! GET  /v2/{org}/{repo}/manifests/{tag}            llama.cpp's `-hf`: the GGUF file a quant names
//! ```
//!
//! Who may have what: the daemon's usual rules decide who reaches these routes at all (its
//! bearer token, or loopback names without one). Files of gated and private repositories go
//! only to clients that presented the token, so a hive without a token serves public files
//! only. The hive's own `HF_TOKEN` is used upstream and never leaves it: no upstream header is
//! passed on but the Hub's error code and message, and the next-page link, rewritten.

mod body;
mod manifest;
mod names;
mod range;
mod reply;
mod upstream;

pub use upstream::HubUpstream;
pub(crate) use upstream::Upstream;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rbee_artifact::{ArtifactRef, CatalogKey};
use rbee_catalog::ArtifactStatus;
use rbee_model_provisioner::ProvisionOptions;
use serde_json::{Value, json};

use crate::jobs::Job;
use crate::request::{DownloadRequest, Operation};
use crate::state::HiveState;
use names::{check_name, check_path, check_revision, segments, split_revision};
use range::Wanted;
use reply::HubError;
use upstream::{RepoFile, RevisionInfo};

/// The mirror's routes (merged into the daemon's router when the mirror is on).
pub(crate) fn router() -> Router<HiveState> {
    Router::new()
        .route("/api/models/{org}/{repo}", get(model_info))
        .route("/api/models/{org}/{repo}/revision/{*rev}", get(model_info))
        .route("/api/models/{org}/{repo}/refs", get(refs))
        .route("/api/models/{org}/{repo}/tree/{*rest}", get(tree))
        .route(
            "/api/models/{org}/{repo}/paths-info/{*rev}",
            post(paths_info),
        )
        .route("/{org}/{repo}/resolve/{*rest}", get(resolve))
        .route("/v2/{org}/{repo}/manifests/{tag}", get(manifest::manifest))
}

fn mirror(state: &HiveState) -> Result<&Upstream, HubError> {
    state.mirror().ok_or_else(|| {
        HubError::new(
            StatusCode::NOT_FOUND,
            None,
            "this rbee-hive does not mirror the Hub (started with --no-mirror)".into(),
        )
    })
}

/// Whether the client presented the daemon's token (the guard let it in, and there is one).
fn authenticated(state: &HiveState) -> bool {
    state.config().token.is_some()
}

/// `org`, `repo` and what follows them in a raw path that starts with `skip` segments.
fn repo_path(uri: &Uri, skip: usize) -> Result<(String, String, Vec<String>), HubError> {
    let segs = segments(uri.path())
        .ok_or_else(|| HubError::bad_request("the path is not UTF-8 once decoded".into()))?;
    let mut rest = segs.into_iter().skip(skip);
    let (Some(org), Some(repo)) = (rest.next(), rest.next()) else {
        return Err(HubError::bad_request(
            "expected /ORG/REPO in the path".into(),
        ));
    };
    check_name(&org).map_err(HubError::bad_request)?;
    check_name(&repo).map_err(HubError::bad_request)?;
    Ok((org, repo, rest.collect()))
}

/// What a client who is not authenticated may not see of a restricted repository, answered as
/// the Hub answers an anonymous client.
fn refuse_restricted(info: &RevisionInfo, org: &str, repo: &str) -> HubError {
    let hint = "authenticate to this mirror: set HF_TOKEN to the hive's token (RBEE_HIVE_TOKEN), or start the hive with --token";
    if info.private {
        HubError::new(
            StatusCode::UNAUTHORIZED,
            Some("RepoNotFound"),
            format!("Repository not found: {org}/{repo} is private on this mirror; {hint}"),
        )
    } else {
        HubError::new(
            StatusCode::UNAUTHORIZED,
            Some("GatedRepo"),
            format!("Access to model {org}/{repo} is restricted: it is gated; {hint}"),
        )
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn model_info(State(state): State<HiveState>, uri: Uri) -> Response {
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

async fn refs(State(state): State<HiveState>, uri: Uri) -> Response {
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

async fn tree(State(state): State<HiveState>, headers: HeaderMap, uri: Uri) -> Response {
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

async fn paths_info(State(state): State<HiveState>, uri: Uri, body: Bytes) -> Response {
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

async fn resolve(
    State(state): State<HiveState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    resolve_inner(&state, &method, &headers, &uri)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn resolve_inner(
    state: &HiveState,
    method: &Method,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, HubError> {
    let upstream = mirror(state)?;
    let (org, repo, rest) = repo_path(uri, 0)?;
    let (rev, path) = split_revision(&rest[1..])
        .filter(|(_, p)| !p.is_empty())
        .ok_or_else(|| HubError::bad_request("expected /ORG/REPO/resolve/REV/PATH".into()))?;
    check_revision(&rev).map_err(HubError::bad_request)?;
    let path = path.join("/");
    check_path(&path).map_err(HubError::bad_request)?;

    let info = upstream.revision(&org, &repo, &rev).await?;
    if info.restricted() && !authenticated(state) {
        return Err(refuse_restricted(&info, &org, &repo));
    }
    let file = info
        .files
        .get(&path)
        .ok_or_else(|| HubError::entry_not_found(&path, &info.commit))?;
    let etag = file
        .sha256
        .clone()
        .or_else(|| file.oid.clone())
        .unwrap_or_else(|| info.commit.clone());
    let wanted = range::wanted(headers, file.size, &etag);

    let mut response_headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response_headers.insert(name, v);
        }
    };
    put("x-repo-commit", info.commit.clone());
    put("etag", format!("\"{etag}\""));
    if file.sha256.is_some() {
        put("x-linked-etag", format!("\"{etag}\""));
        put("x-linked-size", file.size.to_string());
    }
    put("accept-ranges", "bytes".into());
    put("content-type", "application/octet-stream".into());

    let (status, from, to) = match wanted {
        Wanted::Unsatisfiable => {
            put("content-range", format!("bytes */{}", file.size));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, response_headers).into_response());
        }
        Wanted::Whole => (StatusCode::OK, 0, file.size),
        Wanted::Part(from, to) => {
            put(
                "content-range",
                format!("bytes {from}-{}/{}", to - 1, file.size),
            );
            (StatusCode::PARTIAL_CONTENT, from, to)
        }
    };
    put("content-length", (to - from).to_string());

    // A resume on top of bytes this mirror sent wrong would end in a corrupt file of the
    // right size: such a client has to start over. Only a GET from the start clears that (a
    // HEAD comes before the resume too).
    let key = format!("{org}/{repo}@{}/{path}", info.commit);
    if from == 0 {
        if method == Method::GET {
            body::untaint(&key);
        }
    } else if body::tainted(&key) {
        return Err(HubError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!(
                "an earlier download of {path} from this mirror was cut after the mirror had sent bytes that were wrong (its upstream copy failed the check or changed); the partial file cannot be resumed: delete the .incomplete file of {path} and download it again"
            ),
        ));
    }

    let ready = ready_copy(state, &org, &repo, &info.commit, &path, file).await;
    if method == Method::HEAD {
        return Ok((status, response_headers).into_response());
    }
    let body = match ready {
        Some(local) => body::finished(local, from, to),
        None => {
            let (job, dest) = pull(state, &org, &repo, &info.commit, &path)?;
            body::growing(dest, job, key, file.size, from, to)
        }
    };
    let mut response = (status, response_headers).into_response();
    *response.body_mut() = body;
    Ok(response)
}

/// A ready catalog copy of `path` (listed at `size` bytes, with content digest `sha256` for
/// LFS files) of `org/repo` at `commit`, reached without following a link. The entry this
/// mirror keeps for the file is read by its key; failing that, a copy of the same content is
/// found by digest, or a file without a digest in another entry of the repository: both walk
/// the catalog (through its index, reading only records that changed).
async fn ready_copy(
    state: &HiveState,
    org: &str,
    repo: &str,
    commit: &str,
    path: &str,
    file: &RepoFile,
) -> Option<std::path::PathBuf> {
    let catalog = state.provisioner().catalog().clone();
    let (_, key) = file_reference(org, repo, commit, path).ok()?;
    let (org, repo, commit, path) = (
        org.to_string(),
        repo.to_string(),
        commit.to_string(),
        path.to_string(),
    );
    let (size, sha256) = (file.size, file.sha256.clone());
    tokio::task::spawn_blocking(move || {
        let present = |local: std::path::PathBuf| {
            std::fs::symlink_metadata(&local)
                .is_ok_and(|m| m.is_file() && m.len() == size)
                .then_some(local)
        };
        let holds = |record: &rbee_catalog::ArtifactRecord| {
            record.status == ArtifactStatus::Ready
                && record.revision.as_deref() == Some(commit.as_str())
                && record
                    .files
                    .iter()
                    .any(|f| f.path == path && f.size == size)
        };
        if let Ok(Some(entry)) = catalog.read(&key)
            && holds(&entry.record)
            && let Some(local) = catalog
                .file_inside(&entry.dir, &path)
                .ok()
                .and_then(present)
        {
            return Some(local);
        }
        if let Some(sha256) = sha256 {
            let digest: rbee_artifact::Sha256Digest = sha256.parse().ok()?;
            return catalog
                .find_copies(&[(digest, size)])
                .ok()?
                .remove(&(digest, size));
        }
        let prefix = format!("hf:{org}/{repo}");
        for listing in catalog.list().ok()? {
            let rbee_catalog::Listing::Entry(entry) = listing else {
                continue;
            };
            let reference = entry.record.reference.to_string();
            let same_repo = reference
                .strip_prefix(&prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['@', ':', '/']));
            if same_repo
                && holds(&entry.record)
                && let Some(local) = catalog
                    .file_inside(&entry.dir, &path)
                    .ok()
                    .and_then(present)
            {
                return Some(local);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// The reference of the one-file entry the mirror downloads `path` into, and its key.
fn file_reference(
    org: &str,
    repo: &str,
    commit: &str,
    path: &str,
) -> Result<(ArtifactRef, CatalogKey), HubError> {
    let text = format!("hf:{org}/{repo}@{commit}/{path}");
    let reference: ArtifactRef = text
        .parse()
        .map_err(|e| HubError::bad_request(format!("this mirror cannot fetch {path}: {e}")))?;
    let key = ProvisionOptions::default().key(&reference);
    Ok((reference, key))
}

/// Starts (or joins) the hive's download of one file, as a job like any other: it shows in the
/// job list, is fetched once however many clients ask, and goes on when they leave.
fn pull(
    state: &HiveState,
    org: &str,
    repo: &str,
    commit: &str,
    path: &str,
) -> Result<(Arc<Job>, std::path::PathBuf), HubError> {
    let (reference, key) = file_reference(org, repo, commit, path)?;
    let catalog = state.provisioner().catalog();
    // Clients read this path as the download writes it: never through a link on the way.
    let dest = catalog
        .file_inside(&catalog.entry_dir(&key), path)
        .map_err(|e| {
            HubError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                format!("this hive's copy of {path} cannot be served: {e}"),
            )
        })?;
    let job = match state.jobs().downloading(&key) {
        Some(job) => job,
        None => crate::ops::start(
            state,
            Operation::Download(DownloadRequest {
                reference,
                key,
                options: ProvisionOptions::default(),
            }),
        )
        .map_err(|e| HubError::new(e.status(), None, e.body().message.clone()))?,
    };
    Ok((job, dest))
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
