//! The registry protocol as Ollama's client speaks it: manifests by tag, blobs by digest, and
//! the anonymous Bearer token a `401` may ask for.
//!
//! ```text
//! GET {base}/v2/{ns}/{model}/manifests/{tag}     Accept: application/vnd.docker.distribution.manifest.v2+json
//! GET {base}/v2/{ns}/{model}/blobs/sha256:{hex}  307 to the CDN (followed without credentials)
//! 401 WWW-Authenticate: Bearer realm="…",service="…",scope="…"
//!   → GET realm?service=…&scope=…  → {"token": "…"}  → Authorization: Bearer … (registry host only)
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use rbee_artifact::{Error, Result, Secret, Sha256Digest, lock_unpoisoned};
use rbee_transfer::{ApiRequest, Transfer};
use reqwest::header::WWW_AUTHENTICATE;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::OllamaRef;
use crate::challenge::{Challenge, token_from_json};
use crate::digest::BlobDigest;
use crate::manifest::{MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES};

/// Largest error or token answer read.
const MAX_SMALL_BODY: usize = 64 << 10;

/// Anonymous tokens the registries handed out, by registry origin and repository: a token is
/// scoped to one repository (`repository:ns/model:pull`), so jobs for two models of one
/// registry each keep their own. They live in memory only: never in plans, records, events or
/// logs.
#[derive(Debug, Default)]
pub(crate) struct Tokens(Mutex<HashMap<String, Secret>>);

impl Tokens {
    pub(crate) fn get(&self, url: &Url) -> Option<Secret> {
        lock_unpoisoned(&self.0).get(&token_key(url)).cloned()
    }

    fn set(&self, url: &Url, token: Secret) {
        lock_unpoisoned(&self.0).insert(token_key(url), token);
    }
}

/// The origin and the repository's path of a manifest or blob URL
/// (`{base}/v2/{ns}/{model}`, without `/manifests/{tag}` or `/blobs/{digest}`).
fn token_key(url: &Url) -> String {
    let path = url.path();
    let repository = path
        .rsplitn(3, '/')
        .nth(2)
        .filter(|_| path.contains("/manifests/") || path.contains("/blobs/"))
        .unwrap_or(path);
    format!("{}{repository}", url.origin().ascii_serialization())
}

/// `{base}/v2/{ns}/{model}/{kind}/{last}`.
fn endpoint(base: &Url, name: &OllamaRef, kind: &str, last: &str) -> Result<Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| {
            Error::InvalidRequest(format!(
                "the Ollama registry base `{base}` cannot take a path; use e.g. https://registry.ollama.ai"
            ))
        })?
        .pop_if_empty()
        .extend(["v2", &name.namespace, &name.model, kind, last]);
    Ok(url)
}

/// `{base}/v2/{ns}/{model}/manifests/{tag}`.
pub(crate) fn manifest_url(base: &Url, name: &OllamaRef) -> Result<Url> {
    endpoint(base, name, "manifests", &name.tag)
}

/// `{base}/v2/{ns}/{model}/blobs/sha256:{hex}`.
pub(crate) fn blob_url(base: &Url, name: &OllamaRef, digest: &Sha256Digest) -> Result<Url> {
    endpoint(base, name, "blobs", &BlobDigest(*digest).to_string())
}

/// The headers a manifest request carries.
pub(crate) fn manifest_headers() -> Vec<(String, String)> {
    vec![("Accept".to_string(), MANIFEST_MEDIA_TYPE.to_string())]
}

/// Talks to one registry for one name.
pub(crate) struct Registry<'a> {
    pub(crate) transfer: &'a Transfer,
    pub(crate) tokens: &'a Tokens,
    pub(crate) base: Url,
    pub(crate) name: &'a OllamaRef,
}

impl Registry<'_> {
    /// The manifest's URL and bytes. Answers the registry's Bearer challenge once; maps a
    /// missing model or tag, a refusal and a failing registry to clear errors.
    pub(crate) async fn manifest(&self, cancel: &CancellationToken) -> Result<(Url, Vec<u8>)> {
        let url = manifest_url(&self.base, self.name)?;
        let mut challenged = false;
        loop {
            let mut request = ApiRequest::get(url.clone()).with_auth(self.tokens.get(&url));
            for (name, value) in manifest_headers() {
                request = request.with_header(name, value);
            }
            tracing::debug!(url = %url, "Ollama manifest request");
            let response = self.transfer.send(request, cancel).await?;
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            if status == 200 {
                let bytes = rbee_transfer::read_body(response, MAX_MANIFEST_BYTES, cancel).await?;
                return Ok((url, bytes));
            }
            let body = rbee_transfer::read_body(response, MAX_SMALL_BODY, cancel)
                .await
                .unwrap_or_default();
            match (status, challenge) {
                (401, Some(challenge)) if !challenged => {
                    challenged = true;
                    self.fetch_token(&url, &challenge, cancel).await?;
                }
                (401 | 403, _) => {
                    return Err(Error::Unauthorized {
                        message: format!(
                            "{} refused {} (HTTP {status}{}); rbee pulls public models anonymously, so this model is private or the registry needs a login",
                            self.host(),
                            self.name.short_name(),
                            registry_says(&body)
                        ),
                    });
                }
                (404, _) => return Err(self.not_found(&body)),
                (429, _) => {
                    return Err(Error::RateLimited {
                        message: format!(
                            "{} is rate-limiting manifest requests (HTTP 429{}); wait and run the command again",
                            self.host(),
                            registry_says(&body)
                        ),
                        retry_after: None,
                    });
                }
                (s, _) if s >= 500 => {
                    return Err(Error::Network {
                        message: format!(
                            "{} answered HTTP {s} for the manifest of {} after retries{}; try again later, or use a mirror (OLLAMA_REGISTRY)",
                            self.host(),
                            self.name.short_name(),
                            registry_says(&body)
                        ),
                        source: None,
                    });
                }
                (s, _) => {
                    return Err(Error::Protocol {
                        message: format!(
                            "{} answered HTTP {s} for the manifest of {}{}, which is not the registry protocol; is {} an Ollama registry?",
                            self.host(),
                            self.name.short_name(),
                            registry_says(&body),
                            rbee_artifact::redacted_url(&self.base)
                        ),
                    });
                }
            }
        }
    }

    /// Asks the challenge's realm for an anonymous token, keeps it for `url`'s registry and
    /// repository, and returns it.
    pub(crate) async fn fetch_token(
        &self,
        url: &Url,
        challenge: &Challenge,
        cancel: &CancellationToken,
    ) -> Result<Secret> {
        let token_url = challenge
            .token_url_for(url)
            .ok_or_else(|| Error::Unauthorized {
                message: format!(
                    "{} sent rbee to a plain-http token service ({}); refusing to ask for a token over http for an https registry",
                    self.host(),
                    rbee_artifact::redacted_url(&challenge.realm),
                ),
            })?;
        tracing::debug!(realm = %challenge.realm, "asking the registry's token service for an anonymous token");
        let response = self
            .transfer
            .send(ApiRequest::get(token_url), cancel)
            .await?;
        let status = response.status();
        let body = rbee_transfer::read_body(response, MAX_SMALL_BODY, cancel).await?;
        let token = status
            .is_success()
            .then(|| token_from_json(&body))
            .flatten()
            .and_then(Secret::new)
            .ok_or_else(|| Error::Unauthorized {
                message: format!(
                    "{} asks for a token and its token service ({}) gave none to an anonymous pull (HTTP {}); the model may be private",
                    self.host(),
                    rbee_artifact::redacted_url(&challenge.realm),
                    status.as_u16()
                ),
            })?;
        self.tokens.set(url, token.clone());
        Ok(token)
    }

    fn host(&self) -> String {
        match self.base.host_str() {
            Some(host) if host == self.name.host => host.to_string(),
            Some(host) => format!("{} (at {host})", self.name.host),
            None => self.name.host.clone(),
        }
    }

    /// A 404 for the manifest: the model or only the tag is unknown (by the registry's error
    /// code when it sends one).
    fn not_found(&self, body: &[u8]) -> Error {
        let codes = error_codes(body);
        let name = &self.name;
        let page = if name.host == crate::DEFAULT_HOST {
            let path = if name.namespace == crate::DEFAULT_NAMESPACE {
                format!("library/{}", name.model)
            } else {
                format!("{}/{}", name.namespace, name.model)
            };
            format!(" (its tags are listed at https://ollama.com/{path}/tags)")
        } else {
            String::new()
        };
        let message = if codes.iter().any(|c| c == "NAME_UNKNOWN") {
            format!(
                "{} has no model `{}/{}`; check the name (official models are written without a namespace, e.g. ollama:llama3.2:1b)",
                self.host(),
                name.namespace,
                name.model
            )
        } else {
            format!(
                "{} has no tag `{}` for `{}/{}`, or no such model{page}",
                self.host(),
                name.tag,
                name.namespace,
                name.model
            )
        };
        Error::NotFound { message }
    }
}

/// The Docker registry error codes in a body (`{"errors":[{"code":"MANIFEST_UNKNOWN",…}]}`).
fn error_codes(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.errors.into_iter().map(|e| e.code).collect())
        .unwrap_or_default()
}

/// `: the registry says "…"` from an error body's first message, escaped, or nothing.
fn registry_says(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Item>,
        #[serde(default)]
        error: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        message: String,
    }
    let Ok(body) = serde_json::from_slice::<Body>(body) else {
        return String::new();
    };
    let message = body
        .errors
        .into_iter()
        .map(|e| e.message)
        .find(|m| !m.is_empty())
        .or(body.error);
    match message {
        Some(m) => {
            let m: String = m.chars().take(200).collect();
            format!(": the registry says {:?}", m)
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_under_the_base() {
        let name = OllamaRef::parse_name("llama3.2:1b").unwrap();
        let base = Url::parse("https://registry.ollama.ai").unwrap();
        assert_eq!(
            manifest_url(&base, &name).unwrap().as_str(),
            "https://registry.ollama.ai/v2/library/llama3.2/manifests/1b"
        );
        let d = Sha256Digest::of(b"x");
        let mirror = Url::parse("http://127.0.0.1:9/mirror/").unwrap();
        assert_eq!(
            blob_url(&mirror, &name, &d).unwrap().as_str(),
            format!("http://127.0.0.1:9/mirror/v2/library/llama3.2/blobs/sha256:{d}")
        );
    }

    #[test]
    fn tokens_are_kept_per_repository() {
        let tokens = Tokens::default();
        let name = |s| OllamaRef::parse_name(s).unwrap();
        let base = Url::parse("https://registry.ollama.ai/mirror").unwrap();
        let d = Sha256Digest::of(b"x");
        let a = manifest_url(&base, &name("a:1")).unwrap();
        tokens.set(&a, Secret::new("token-a".to_string()).unwrap());
        let b = manifest_url(&base, &name("b:1")).unwrap();
        tokens.set(&b, Secret::new("token-b".to_string()).unwrap());
        let a_blob = blob_url(&base, &name("a:2"), &d).unwrap();
        assert_eq!(tokens.get(&a_blob).unwrap().expose(), "token-a");
        assert_eq!(tokens.get(&b).unwrap().expose(), "token-b");
        assert!(
            tokens
                .get(&blob_url(&base, &name("c:1"), &d).unwrap())
                .is_none()
        );
    }

    #[test]
    fn registry_error_bodies() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(error_codes(body), ["MANIFEST_UNKNOWN"]);
        assert_eq!(
            registry_says(body),
            ": the registry says \"manifest unknown\""
        );
        assert_eq!(
            registry_says(br#"{"error":"pull model manifest: file does not exist"}"#),
            ": the registry says \"pull model manifest: file does not exist\""
        );
        assert_eq!(registry_says(b"<html>"), "");
        assert!(error_codes(b"").is_empty());
    }
}
