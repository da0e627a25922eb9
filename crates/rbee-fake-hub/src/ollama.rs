//! The Ollama registry protocol over `<root>/ollama/<ns>/<model>/<tag>/`, as
//! registry.ollama.ai answers `ollama pull` (ollama/ollama `server/images.go`,
//! `server/download.go`):
//!
//! - `GET /v2/{ns}/{model}/manifests/{tag}`: the Docker v2 manifest built from the tag's
//!   folder: a generated config blob, then one layer per known file (`model.gguf`,
//!   `projector.gguf`, `adapter.gguf`, `template`, `system`, `params.json`, `messages.json`,
//!   `license`). A missing model is `404 NAME_UNKNOWN`, a missing tag `404 MANIFEST_UNKNOWN`.
//! - `GET /v2/{ns}/{model}/blobs/sha256:{hex}`: `307` to the file on the CDN (signed); the
//!   config blob is answered directly.
//! - With `<root>/ollama/<ns>/<model>/fakehub.json` `{"auth": true}`, those answer `401` with
//!   `WWW-Authenticate: Bearer realm="…/v2/token",service="fake-hub",scope="repository:ns/model:pull"`
//!   unless they carry the token `GET /v2/token?scope=…` hands out.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::hashes::HashKind;
use crate::reply::redirect_with;
use crate::state::HubState;
use crate::url_path::segments;

type AppState = std::sync::Arc<HubState>;

/// The manifest media type Ollama asks for and the registry answers with.
const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG_TYPE: &str = "application/vnd.docker.container.image.v1+json";

/// Files of a tag's folder that become layers, in the order they are listed.
const LAYERS: [(&str, &str); 8] = [
    ("model.gguf", "model"),
    ("projector.gguf", "projector"),
    ("adapter.gguf", "adapter"),
    ("template", "template"),
    ("system", "system"),
    ("params.json", "params"),
    ("messages.json", "messages"),
    ("license", "license"),
];

#[derive(Debug, Default, Deserialize)]
struct ModelSettings {
    #[serde(default)]
    auth: bool,
}

/// One layer of a tag: its media type suffix, digest, size and file (none for the config).
struct Layer {
    media: String,
    digest: String,
    size: u64,
    file: Option<PathBuf>,
}

/// `/v2/…`.
pub(crate) async fn api(State(state): State<AppState>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let segs = segments(req.uri().path());
    match segs.as_slice() {
        [v2] if v2 == "v2" => json(StatusCode::OK, "{}".into()),
        [v2, token] if v2 == "v2" && token == "token" => {
            let scope = req
                .uri()
                .query()
                .and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "scope")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default();
            json(
                StatusCode::OK,
                format!(r#"{{"token":"{}","expires_in":300}}"#, token_for(&scope)),
            )
        }
        [v2, ns, model, kind, last] if v2 == "v2" => {
            let dir = state.config.root.join("ollama").join(ns).join(model);
            if !safe(&[ns, model, last]) || !dir.is_dir() {
                return registry_error(
                    StatusCode::NOT_FOUND,
                    "NAME_UNKNOWN",
                    "repository name not known to registry",
                );
            }
            let settings: ModelSettings = std::fs::read(dir.join("fakehub.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let scope = format!("repository:{ns}/{model}:pull");
            if settings.auth && bearer(req.headers()).as_deref() != Some(token_for(&scope).as_str())
            {
                return challenge(&state, &scope);
            }
            match kind.as_str() {
                "manifests" => manifest(&state, &dir.join(last)).await,
                "blobs" => blob(&state, &dir, ns, model, last).await,
                _ => registry_error(StatusCode::NOT_FOUND, "UNSUPPORTED", "not found"),
            }
        }
        _ => registry_error(StatusCode::NOT_FOUND, "UNSUPPORTED", "not found"),
    }
}

/// The token the fake token service gives for `scope` (stable, so a test can predict it).
fn token_for(scope: &str) -> String {
    let digest = Sha256::digest(scope.as_bytes());
    format!("fakehub-{}", hex_of(&digest[..8]))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn safe(parts: &[&String]) -> bool {
    parts
        .iter()
        .all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains(['/', '\\']))
}

fn challenge(state: &HubState, scope: &str) -> Response {
    let realm = state.hub_url.join("v2/token").expect("a valid path");
    let value = format!(r#"Bearer realm="{realm}",service="fake-hub",scope="{scope}""#);
    let mut resp = registry_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn registry_error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#),
    )
}

/// The config blob of a tag (generated: format, family from the model's name, file type from
/// the tag).
fn config_bytes(tag_dir: &Path) -> Vec<u8> {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let model = tag_dir.parent().map(name).unwrap_or_default();
    serde_json::json!({
        "model_format": "gguf",
        "model_family": model,
        "model_families": [model],
        "file_type": name(tag_dir),
        "architecture": "amd64",
        "os": "linux",
    })
    .to_string()
    .into_bytes()
}

async fn layers(state: &HubState, tag_dir: &Path) -> std::io::Result<Vec<Layer>> {
    let config = config_bytes(tag_dir);
    let mut out = vec![Layer {
        media: CONFIG_TYPE.to_string(),
        digest: hex_of(&Sha256::digest(&config)),
        size: config.len() as u64,
        file: None,
    }];
    for (file, kind) in LAYERS {
        let path = tag_dir.join(file);
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            continue;
        };
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        let digest = state
            .hashes
            .get(&path, meta.len(), mtime, HashKind::Sha256)
            .await?;
        out.push(Layer {
            media: format!("application/vnd.ollama.image.{kind}"),
            digest,
            size: meta.len(),
            file: Some(path),
        });
    }
    Ok(out)
}

async fn manifest(state: &HubState, tag_dir: &Path) -> Response {
    if !tag_dir.is_dir() {
        return registry_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        );
    }
    let layers = match layers(state, tag_dir).await {
        Ok(l) => l,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let entry = |l: &Layer| serde_json::json!({"mediaType": l.media, "digest": format!("sha256:{}", l.digest), "size": l.size});
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": entry(&layers[0]),
        "layers": layers[1..].iter().map(entry).collect::<Vec<_>>(),
    })
    .to_string();
    let digest = format!("sha256:{}", hex_of(&Sha256::digest(body.as_bytes())));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, MANIFEST_TYPE.to_string()),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest,
            ),
        ],
        body,
    )
        .into_response()
}

async fn blob(state: &HubState, model_dir: &Path, ns: &str, model: &str, digest: &str) -> Response {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return registry_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "invalid digest");
    };
    let mut tags: Vec<PathBuf> = std::fs::read_dir(model_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    for tag_dir in tags {
        let Ok(layers) = layers(state, &tag_dir).await else {
            continue;
        };
        let Some(layer) = layers.into_iter().find(|l| l.digest == hex) else {
            continue;
        };
        let Some(file) = layer.file else {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, CONFIG_TYPE)],
                config_bytes(&tag_dir),
            )
                .into_response();
        };
        let tag = tag_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = format!("ollama/{ns}/{model}/{tag}/{name}");
        let request_path = format!("/v2/{ns}/{model}/blobs/{digest}");
        let location = state.signed_cdn_url(&rel, &request_path);
        return redirect_with(StatusCode::TEMPORARY_REDIRECT, &location);
    }
    registry_error(
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
        "blob unknown to registry",
    )
}
