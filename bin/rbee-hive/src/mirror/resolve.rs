//! The mirror's file route (`resolve`): a ready catalog copy, or the download of the file joined
//! or started and streamed as it is written.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rbee_artifact::{ArtifactRef, CatalogKey};
use rbee_catalog::ArtifactStatus;
use rbee_model_provisioner::ProvisionOptions;

use super::body;
use super::range::{self, Wanted};
use super::{authenticated, mirror, refuse_restricted, repo_path};
use crate::hub::names::{check_path, check_revision, split_revision};
use crate::hub::reply::HubError;
use crate::hub::upstream::RepoFile;
use crate::jobs::Job;
use crate::request::{DownloadRequest, Operation};
use crate::state::HiveState;

pub(super) async fn resolve(
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
