//! An API call the engine is asked to send.

use rbee_artifact::Secret;
use reqwest::Method;
use url::Url;

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
