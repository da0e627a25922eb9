//! The hive's own upstream (its `HF_ENDPOINT`, with its `HF_TOKEN`): metadata requests, and the
//! revision listings the resolve route needs, kept a short while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rbee_artifact::{Secret, lock_unpoisoned, redact_url};
use rbee_transfer::{ApiRequest, Transfer, TransferConfig};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::names::{check_path, is_commit};
use super::reply::HubError;

/// Largest metadata answer read from the upstream (a tree page of a huge repository is a few
/// MiB).
const MAX_METADATA: usize = 32 << 20;
/// How long the listing of a branch or tag is reused by default: long enough that a client's
/// HEAD and GET of one file cost one upstream request, short enough that a push is seen soon.
const MOVING_TTL: Duration = Duration::from_secs(30);
/// How long the listing of a commit is reused (its files never change; its access may).
const COMMIT_TTL: Duration = Duration::from_secs(600);
/// Listings kept at most; beyond this the cache starts over.
const MAX_CACHED: usize = 1024;

/// Where the mirror pulls from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubUpstream {
    /// The Hub or another mirror (another hive), e.g. `https://huggingface.co`.
    pub endpoint: Url,
    /// The hive's own token, sent upstream only: never forwarded to or shown to clients.
    pub token: Option<Secret>,
    /// How long the listing of a branch or tag is reused before the upstream is asked again
    /// (default 30 s). When the upstream is down, the last listing keeps serving what the
    /// catalog holds, however old.
    pub listing_ttl: Duration,
}

impl HubUpstream {
    /// An upstream at `endpoint`, using `token` there.
    pub fn new(endpoint: Url, token: Option<Secret>) -> Self {
        Self {
            endpoint,
            token,
            listing_ttl: MOVING_TTL,
        }
    }
}

/// One file of a revision.
#[derive(Debug, Clone)]
pub(crate) struct RepoFile {
    pub(crate) size: u64,
    /// The content's sha256, for LFS files.
    pub(crate) sha256: Option<String>,
    /// The git blob id.
    pub(crate) oid: Option<String>,
    pub(crate) pointer_size: Option<u64>,
}

/// A revision as the upstream lists it.
#[derive(Debug)]
pub(crate) struct RevisionInfo {
    pub(crate) commit: String,
    pub(crate) private: bool,
    pub(crate) gated: bool,
    pub(crate) files: HashMap<String, RepoFile>,
}

impl RevisionInfo {
    /// Whether only authenticated clients may have its files.
    pub(crate) fn restricted(&self) -> bool {
        self.private || self.gated
    }
}

#[derive(Debug, Deserialize)]
struct InfoBody {
    sha: Option<String>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    gated: serde_json::Value,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    lfs: Option<Lfs>,
}

#[derive(Debug, Deserialize)]
struct Lfs {
    sha256: Option<String>,
    size: Option<u64>,
    #[serde(rename = "pointerSize")]
    pointer_size: Option<u64>,
}

/// An answer from the upstream, read whole: what the mirror may pass on of it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
    pub(crate) next_link: Option<String>,
}

type Key = (String, String, String);

/// The upstream client and its listing cache.
#[derive(Debug)]
pub(crate) struct Upstream {
    config: HubUpstream,
    transfer: Transfer,
    listings: Mutex<HashMap<Key, (Instant, Arc<RevisionInfo>)>>,
}

impl Upstream {
    /// The upstream client, on the daemon's engine settings (`base`: proxies, user agent…).
    pub(crate) fn new(config: HubUpstream, base: &TransferConfig) -> rbee_artifact::Result<Self> {
        Ok(Self {
            config,
            // A client waits on these (huggingface_hub gives a HEAD 10 s): retry briefly, then
            // say the upstream is down.
            transfer: Transfer::new(TransferConfig {
                max_attempts: 3,
                max_backoff: Duration::from_secs(2),
                response_timeout: Duration::from_secs(8),
                ..base.clone()
            })?,
            listings: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn endpoint(&self) -> &Url {
        &self.config.endpoint
    }

    /// `{endpoint}/{segments…}` (each segment percent-encoded) with `query`.
    pub(crate) fn url(&self, segments: &[&str], query: Option<&str>) -> Url {
        let mut url = self.config.endpoint.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url.set_query(query.filter(|q| !q.is_empty()));
        url
    }

    /// Sends a metadata `GET` with the hive's token (to the upstream's origin only) and reads
    /// the answer. Nothing of the client's request travels upstream but the path and query.
    pub(crate) async fn get(&self, url: Url) -> Result<Answer, HubError> {
        let request = ApiRequest::get(url.clone()).with_auth(self.config.token.clone());
        let cancel = CancellationToken::new();
        let shown = redact_url(&url);
        let response = self.transfer.send(request, &cancel).await.map_err(|e| {
            HubError::upstream(format!(
                "the mirror's upstream could not be reached for {shown}: {}",
                rbee_artifact::Error::from(e)
            ))
        })?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let code = header("x-error-code");
        let message = header("x-error-message");
        let next_link = header("link");
        let body = rbee_transfer::read_body(response, MAX_METADATA, &cancel)
            .await
            .map_err(|e| {
                HubError::upstream(format!("reading the upstream's answer for {shown}: {e}"))
            })?;
        if !status.is_success() {
            let message = message.or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            });
            return Err(HubError::from_upstream(
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
                code.as_deref(),
                message,
            ));
        }
        Ok(Answer {
            status: StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::OK),
            body,
            next_link,
        })
    }

    /// The files of `org/repo` at `rev`, from the cache or the upstream's revision endpoint.
    pub(crate) async fn revision(
        &self,
        org: &str,
        repo: &str,
        rev: &str,
    ) -> Result<Arc<RevisionInfo>, HubError> {
        let key = (org.to_string(), repo.to_string(), rev.to_string());
        let ttl = if is_commit(rev) {
            COMMIT_TTL
        } else {
            self.config.listing_ttl
        };
        let cached = lock_unpoisoned(&self.listings).get(&key).cloned();
        if let Some((at, info)) = &cached
            && at.elapsed() < ttl
        {
            return Ok(info.clone());
        }
        let url = self.url(
            &["api", "models", org, repo, "revision", rev],
            Some("blobs=true"),
        );
        let answer = match self.get(url.clone()).await {
            Ok(answer) => answer,
            // The upstream is down (not saying no): what it said last still serves the
            // catalog's copies, with the access rules it said then.
            Err(e) if e.status.is_server_error() => match cached {
                Some((_, info)) => {
                    tracing::info!(repo = %format!("{org}/{repo}"), %rev, error = %e.message, "upstream unavailable; using its last listing");
                    return Ok(info);
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let info = Arc::new(parse_revision(&answer.body, &url)?);
        let mut cache = lock_unpoisoned(&self.listings);
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let now = Instant::now();
        cache.insert(key, (now, info.clone()));
        cache.insert(
            (org.to_string(), repo.to_string(), info.commit.clone()),
            (now, info.clone()),
        );
        Ok(info)
    }
}

/// Reads a revision body; names that are not safe paths are left out (they can be neither
/// stored nor served).
fn parse_revision(body: &[u8], url: &Url) -> Result<RevisionInfo, HubError> {
    let info: InfoBody = serde_json::from_slice(body).map_err(|e| {
        HubError::upstream(format!(
            "the upstream's answer for {} is not a Hub model listing ({e}); is the hive's HF_ENDPOINT a HuggingFace Hub?",
            redact_url(url)
        ))
    })?;
    let commit = match info.sha.as_deref() {
        Some(sha) if is_commit(sha) => sha.to_ascii_lowercase(),
        _ => {
            return Err(HubError::upstream(format!(
                "the upstream's answer for {} names no commit; is the hive's HF_ENDPOINT a HuggingFace Hub?",
                redact_url(url)
            )));
        }
    };
    let gated = match &info.gated {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::String(s) => !s.is_empty() && s != "false",
        _ => false,
    };
    let mut files = HashMap::new();
    for s in info.siblings {
        if check_path(&s.rfilename).is_err() {
            tracing::warn!(path = %s.rfilename.escape_default(), "the upstream listed a file name that is not a safe path; not serving it");
            continue;
        }
        let lfs = s.lfs.as_ref();
        let Some(size) = lfs.and_then(|l| l.size).or(s.size) else {
            continue;
        };
        let sha256 = lfs
            .and_then(|l| l.sha256.clone())
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        files.insert(
            s.rfilename,
            RepoFile {
                size,
                sha256,
                oid: s
                    .blob_id
                    .filter(|o| o.bytes().all(|b| b.is_ascii_alphanumeric())),
                pointer_size: lfs.and_then(|l| l.pointer_size),
            },
        );
    }
    Ok(RevisionInfo {
        commit,
        private: info.private,
        gated,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_keep_safe_files_with_sizes() {
        let sha = "a".repeat(64);
        let body = format!(
            r#"{{"sha":"0123456789ABCDEF0123456789abcdef01234567","gated":"manual","siblings":[
                {{"rfilename":"config.json","size":12,"blobId":"b1"}},
                {{"rfilename":"m.gguf","size":100,"lfs":{{"sha256":"{sha}","size":100,"pointerSize":130}}}},
                {{"rfilename":"../evil","size":1}},
                {{"rfilename":"nosize.bin"}}]}}"#
        );
        let url = Url::parse("http://h/x").unwrap();
        let info = parse_revision(body.as_bytes(), &url).unwrap();
        assert_eq!(info.commit, "0123456789abcdef0123456789abcdef01234567");
        assert!(info.gated && info.restricted() && !info.private);
        assert_eq!(info.files.len(), 2);
        assert_eq!(info.files["m.gguf"].sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(info.files["config.json"].oid.as_deref(), Some("b1"));
        assert!(parse_revision(br#"{"sha":"main"}"#, &url).is_err());
        assert!(parse_revision(b"<html>", &url).is_err());
    }
}
