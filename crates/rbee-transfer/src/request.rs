//! The requests the engine takes: a file to fetch, an API call to send.

use std::sync::Arc;

use rbee_artifact::{Secret, Sha256Digest};
use reqwest::Method;
use url::Url;

use crate::piece::PieceSource;

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// Path within the artifact (for events and [`DownloadedFile::path`](rbee_artifact::DownloadedFile::path)).
    pub path: String,
    /// Where the bytes are. Redirects are followed; ranges then go to the final URL.
    pub url: Url,
    /// Sent as `Authorization: Bearer …` to `url`'s origin only, never after a redirect to
    /// another host.
    pub auth: Option<Secret>,
    /// Extra non-secret headers (e.g. `Accept: application/octet-stream`).
    pub headers: Vec<(String, String)>,
    /// The size the vendor announced; checked before the first byte and at the end.
    pub expected_size: Option<u64>,
    /// The digest the vendor published; a mismatch is [`Error::Integrity`](rbee_artifact::Error::Integrity).
    pub sha256: Option<Sha256Digest>,
    /// Another way to the same bytes, piece by piece (the Hub's Xet store): tried first when
    /// `sha256` is known, with `url` as the fallback for the rest of the file when it fails.
    pub pieces: Option<Arc<dyn PieceSource>>,
}

impl FetchRequest {
    /// A request for `url`, to be known as `path`, without credentials, size or digest.
    pub fn new(path: impl Into<String>, url: Url) -> Self {
        Self {
            path: path.into(),
            url,
            auth: None,
            headers: Vec::new(),
            expected_size: None,
            sha256: None,
            pieces: None,
        }
    }
}

/// An API or metadata request (JSON listings, `HEAD` probes).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: Url,
    /// Sent as `Authorization: Bearer …` to `url`'s origin only.
    pub auth: Option<Secret>,
    /// Extra non-secret headers.
    pub headers: Vec<(String, String)>,
    /// Follow redirects (without credentials to other hosts); off: return the 3xx itself.
    pub follow_redirects: bool,
}

impl ApiRequest {
    /// A `GET` that follows redirects.
    pub fn get(url: Url) -> Self {
        Self {
            method: Method::GET,
            url,
            auth: None,
            headers: Vec::new(),
            follow_redirects: true,
        }
    }

    /// A `HEAD` that does not follow redirects (to read `Location` and the hub's headers).
    pub fn head(url: Url) -> Self {
        Self {
            method: Method::HEAD,
            follow_redirects: false,
            ..Self::get(url)
        }
    }

    /// The same request with a credential for its URL's origin.
    pub fn with_auth(mut self, auth: Option<Secret>) -> Self {
        self.auth = auth;
        self
    }

    /// The same request with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}
