//! A repo folder as the Hub sees it: its settings (`fakehub.json`), who may see it, and how a
//! refusal is answered.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::state::HubState;

/// The repo's settings file, at the top of the repo folder.
pub(super) const SETTINGS: &str = "fakehub.json";
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Settings {
    pub(super) private: bool,
    /// `false`, `true` (= "auto"), `"auto"` or `"manual"`.
    pub(super) gated: Value,
    pub(super) tokens: Vec<String>,
    pub(super) tags: BTreeMap<String, String>,
    /// `true`: every LFS file is also stored in Xet; a list of globs: the LFS files matching
    /// one (a glob without `/` matches the file name).
    pub(super) xet: Value,
}

impl Settings {
    /// Whether the LFS file at `path` is stored in Xet (the hub-wide switch or this repo's).
    pub(super) fn xet(&self, hub_wide: bool, path: &str) -> bool {
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

    pub(super) fn gated(&self) -> Option<&'static str> {
        match &self.gated {
            Value::Bool(true) => Some("auto"),
            Value::String(s) if s == "manual" => Some("manual"),
            Value::String(s) if s == "auto" => Some("auto"),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(super) struct Repo {
    pub(super) org: String,
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) settings: Settings,
}

impl Repo {
    pub(super) fn id(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }
}

/// Why a Hub request fails, with the Hub's error code.
#[derive(Debug)]
pub(super) enum HubError {
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

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A plain name: not empty, no separators, not hidden or relative.
pub(super) fn plain_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\']) && !s.contains('\0')
}

pub(super) struct Access {
    pub(super) token: Option<String>,
    pub(super) valid: bool,
}

/// Finds the repo and checks the caller may see it (private repos need a valid token).
pub(super) async fn open_repo(
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
