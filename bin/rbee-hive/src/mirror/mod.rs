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
mod listing;
mod manifest;
mod range;
mod resolve;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::hub::names::{check_name, segments};
use crate::hub::reply::HubError;
use crate::hub::upstream::{RevisionInfo, Upstream};
use crate::state::HiveState;
use listing::{model_info, paths_info, refs, tree};
use resolve::resolve;

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
