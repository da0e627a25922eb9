//! The manifest llama.cpp's `-hf ORG/REPO[:QUANT]` asks for: `GET /v2/{org}/{repo}/manifests/{tag}`
//! answers which GGUF file (and vision projector) of the repository's `main` the tag names, and
//! llama.cpp then fetches it through the resolve route, so a rack's llama.cpp instances pull
//! through this hive like huggingface_hub does.
//!
//! The tag is a quantization (`Q4_K_M`, case-insensitive, unsloth's `UD-` variants accepted) or
//! `latest` for the default preference; the choice is the one `hf:ORG/REPO:QUANT` makes.

use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use rbee_artifact::Sha256Digest;
use rbee_vendor_huggingface::{QuantChoice, RepoFile as ListedFile, select_quant};
use serde_json::{Value, json};

use super::{authenticated, json_response, mirror, refuse_restricted};
use crate::hub::names::{check_name, segments};
use crate::hub::reply::HubError;
use crate::hub::upstream::{RepoFile, RevisionInfo};
use crate::state::HiveState;

/// The tag that stands for "the default quantization".
const LATEST: &str = "latest";

pub(super) async fn manifest(
    axum::extract::State(state): axum::extract::State<HiveState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    use axum::response::IntoResponse;
    manifest_inner(&state, &headers, &uri)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn manifest_inner(
    state: &HiveState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, HubError> {
    let upstream = mirror(state)?;
    if wants_registry_manifest(headers) {
        return Err(HubError::new(
            StatusCode::NOT_FOUND,
            None,
            "this mirror answers llama.cpp's manifests only, not Ollama's registry manifests; pull with `rbee model download ollama:hf.co/ORG/REPO:QUANT` on the hive instead".into(),
        ));
    }
    let segs = segments(uri.path())
        .ok_or_else(|| HubError::bad_request("the path is not UTF-8 once decoded".into()))?;
    let [_, org, repo, kind, tag] = segs.as_slice() else {
        return Err(HubError::bad_request(
            "expected /v2/ORG/REPO/manifests/TAG".into(),
        ));
    };
    if kind != "manifests" {
        return Err(HubError::bad_request(
            "expected /v2/ORG/REPO/manifests/TAG".into(),
        ));
    }
    check_name(org).map_err(HubError::bad_request)?;
    check_name(repo).map_err(HubError::bad_request)?;
    check_tag(tag).map_err(HubError::bad_request)?;

    let info = upstream.revision(org, repo, "main").await?;
    if info.private && !authenticated(state) {
        return Err(refuse_restricted(&info, org, repo));
    }
    let wanted = (!tag.eq_ignore_ascii_case(LATEST)).then_some(tag.as_str());
    let choice = select_quant(&format!("{org}/{repo}"), &listed_files(&info), wanted)
        .map_err(|e| HubError::bad_request(e.to_string()))?;
    let body = manifest_body(&info, &choice);
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

/// An Ollama client asks for a registry manifest by its media type; llama.cpp asks for JSON.
fn wants_registry_manifest(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/vnd.docker.distribution.manifest"))
}

/// A quantization label or `latest`: letters, digits, `_`, `-` and `.`, as GGUF file names
/// spell them.
fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !tag.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a quantization tag: expected e.g. Q4_K_M, IQ2_XXS or {LATEST}"
        ))
    }
}

fn listed_files(info: &RevisionInfo) -> Vec<ListedFile> {
    let mut files: Vec<ListedFile> = info
        .files
        .iter()
        .map(|(path, f)| ListedFile {
            path: path.clone(),
            size: Some(f.size),
            sha256: f
                .sha256
                .as_deref()
                .and_then(|s| s.parse::<Sha256Digest>().ok()),
            oid: f.oid.clone(),
            xet_hash: None,
        })
        .collect();
    // The listing is a map: give the choice the stable order a listing has.
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// `{"ggufFile": …, "mmprojFile": …}`, each entry shaped like a sibling of the Hub's model info.
/// A split model names its first part: llama.cpp fetches the others by their names.
fn manifest_body(info: &RevisionInfo, choice: &QuantChoice) -> Value {
    let entry = |path: &str| -> Option<Value> {
        let f: &RepoFile = info.files.get(path)?;
        let mut e = json!({ "rfilename": path, "size": f.size });
        if let Some(oid) = &f.oid {
            e["blobId"] = json!(oid);
        }
        if let Some(sha) = &f.sha256 {
            e["lfs"] = json!({ "sha256": sha, "size": f.size, "pointerSize": f.pointer_size });
        }
        Some(e)
    };
    let mut body = json!({});
    if let Some(first) = choice.model.first().and_then(|p| entry(p)) {
        body["ggufFile"] = first;
    }
    if let Some(mmproj) = choice.mmproj.as_deref().and_then(entry) {
        body["mmprojFile"] = mmproj;
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_quantization_labels() {
        for ok in ["Q4_K_M", "latest", "UD-IQ2_XXS", "q8_0", "BF16", "Q4_0.4.4"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "Q4 K", "a/b", ".hidden", &"Q".repeat(65)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }
}
