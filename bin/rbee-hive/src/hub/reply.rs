//! Answers in the Hub's shape: a JSON `{"error": …}` body with `X-Error-Code` and
//! `X-Error-Message`, so that huggingface_hub and rbee raise the same errors as against the Hub.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The Hub's error codes this mirror answers with or passes on; anything else an upstream says
/// is passed on without a code.
const KNOWN_CODES: &[&str] = &[
    "RepoNotFound",
    "RevisionNotFound",
    "EntryNotFound",
    "GatedRepo",
    "DisabledRepo",
];

/// A Hub-style error.
#[derive(Debug, Clone)]
pub(crate) struct HubError {
    pub(crate) status: StatusCode,
    pub(crate) code: Option<&'static str>,
    pub(crate) message: String,
    /// `X-Repo-Commit`, which the Hub sends with `EntryNotFound`.
    pub(crate) commit: Option<String>,
}

impl HubError {
    pub(crate) fn new(status: StatusCode, code: Option<&'static str>, message: String) -> Self {
        Self {
            status,
            code,
            message,
            commit: None,
        }
    }

    /// 400 for a name, revision or path this mirror refuses before asking anyone.
    pub(crate) fn bad_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, None, message)
    }

    pub(crate) fn entry_not_found(path: &str, commit: &str) -> Self {
        Self {
            commit: Some(commit.to_string()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                Some("EntryNotFound"),
                format!("Entry not found: {path} is not a file of this revision"),
            )
        }
    }

    /// The upstream could not be asked (unreachable, or an answer that makes no sense).
    pub(crate) fn upstream(message: String) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, None, message)
    }

    /// An error status from the upstream, passed on with its status and (known) code only.
    pub(crate) fn from_upstream(
        status: StatusCode,
        code: Option<&str>,
        message: Option<String>,
    ) -> Self {
        let code = code.and_then(|c| KNOWN_CODES.iter().copied().find(|k| *k == c));
        let said = message.map(|m| clean_message(&m)).filter(|m| !m.is_empty());
        // The Hub's own refusals pass on as they are; a failing upstream is named as such.
        let message = match said {
            Some(m) if !status.is_server_error() => m,
            Some(m) => format!("the mirror's upstream answered {status} ({m}); retry later"),
            None => format!("the mirror's upstream answered {status}"),
        };
        Self::new(status, code, message)
    }
}

/// Keeps a message from an upstream printable and short, so it can travel in a header.
fn clean_message(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(500)
        .collect::<String>()
        .trim()
        .to_string()
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        let headers = response.headers_mut();
        if let Some(code) = self.code {
            headers.insert("x-error-code", HeaderValue::from_static(code));
        }
        // Headers carry visible ASCII only.
        let ascii: String = self
            .message
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&ascii) {
            headers.insert("x-error-message", v);
        }
        if let Some(commit) = self.commit.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert("x-repo-commit", commit);
        }
        response
    }
}
