//! The parts of GitHub's REST API this vendor reads: releases and their assets.
//!
//! Unknown fields are ignored and optional ones default, so a newer API (or GitHub Enterprise
//! Server, which lags behind) still parses.

use rbee_artifact::{Error, Result};
use serde::Deserialize;
use url::Url;

/// The media type GitHub recommends for REST calls.
pub(crate) const ACCEPT_JSON: &str = "application/vnd.github+json";
/// Asks the asset API for the bytes instead of the asset's metadata.
pub(crate) const ACCEPT_OCTET_STREAM: &str = "application/octet-stream";
/// The API version this vendor is written against.
pub(crate) const API_VERSION: &str = "2022-11-28";
/// How many releases to list when a tag is missing.
pub(crate) const RECENT_RELEASES: usize = 10;

/// A release (`GET /repos/{owner}/{repo}/releases/…`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Release {
    pub(crate) tag_name: String,
    #[serde(default)]
    pub(crate) target_commitish: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) draft: bool,
    #[serde(default)]
    pub(crate) prerelease: bool,
    #[serde(default)]
    pub(crate) published_at: Option<String>,
    #[serde(default)]
    pub(crate) assets: Vec<Asset>,
}

/// One asset of a release.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Asset {
    pub(crate) id: u64,
    pub(crate) name: String,
    /// The asset API URL (`…/releases/assets/{id}`): bytes with `Accept: application/octet-stream`.
    pub(crate) url: String,
    /// The public download URL (`https://github.com/…/releases/download/TAG/NAME`).
    pub(crate) browser_download_url: String,
    pub(crate) size: u64,
    /// `"sha256:<hex>"`, present on assets uploaded since mid-2025.
    #[serde(default)]
    pub(crate) digest: Option<String>,
    /// `"uploaded"` once complete; `"open"` while an upload is in progress.
    #[serde(default)]
    pub(crate) state: Option<String>,
    #[serde(default)]
    pub(crate) updated_at: Option<String>,
}

impl Asset {
    /// Whether the upload finished (GitHub lists half-uploaded assets too).
    pub(crate) fn is_uploaded(&self) -> bool {
        self.state.as_deref().is_none_or(|s| s == "uploaded")
    }
}

/// GitHub's error body: `{"message": "...", "documentation_url": "..."}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiErrorBody {
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// `base` + `segments`, each segment percent-encoded (a tag may contain `/`).
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Result<Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| {
            Error::InvalidRequest(format!(
                "the GitHub API base `{base}` cannot take a path; use e.g. https://api.github.com"
            ))
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// `…/repos/{owner}/{repo}/releases/latest`.
pub(crate) fn latest_release_url(base: &Url, owner: &str, repo: &str) -> Result<Url> {
    endpoint(base, &["repos", owner, repo, "releases", "latest"])
}

/// `…/repos/{owner}/{repo}/releases/tags/{tag}`.
pub(crate) fn tagged_release_url(base: &Url, owner: &str, repo: &str, tag: &str) -> Result<Url> {
    endpoint(base, &["repos", owner, repo, "releases", "tags", tag])
}

/// `…/repos/{owner}/{repo}/releases?per_page=N` (newest first).
pub(crate) fn releases_url(base: &Url, owner: &str, repo: &str) -> Result<Url> {
    let mut url = endpoint(base, &["repos", owner, repo, "releases"])?;
    url.query_pairs_mut()
        .append_pair("per_page", &RECENT_RELEASES.to_string());
    Ok(url)
}

/// Whether `url` lies under the API base (same origin, path below the base's path): only such
/// URLs may carry the token.
pub(crate) fn is_under_api_base(base: &Url, url: &Url) -> bool {
    if url.origin() != base.origin() {
        return false;
    }
    let prefix = base.path().trim_end_matches('/');
    let path = url.path();
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_under_the_base_and_encode_segments() {
        let base = Url::parse("https://api.github.com").unwrap();
        assert_eq!(
            latest_release_url(&base, "o", "r").unwrap().as_str(),
            "https://api.github.com/repos/o/r/releases/latest"
        );
        let ghe = Url::parse("https://ghe.example.com/api/v3/").unwrap();
        assert_eq!(
            tagged_release_url(&ghe, "o", "r", "release/v1+x")
                .unwrap()
                .as_str(),
            "https://ghe.example.com/api/v3/repos/o/r/releases/tags/release%2Fv1+x"
        );
        assert_eq!(
            releases_url(&ghe, "o", "r").unwrap().as_str(),
            "https://ghe.example.com/api/v3/repos/o/r/releases?per_page=10"
        );
        let no_slash = Url::parse("https://ghe.example.com/api/v3").unwrap();
        assert_eq!(
            latest_release_url(&no_slash, "o", "r").unwrap().as_str(),
            "https://ghe.example.com/api/v3/repos/o/r/releases/latest"
        );
    }

    #[test]
    fn only_urls_below_the_base_count_as_api() {
        let base = Url::parse("https://ghe.example.com/api/v3").unwrap();
        let yes = Url::parse("https://ghe.example.com/api/v3/repos/o/r/releases/assets/1").unwrap();
        assert!(is_under_api_base(&base, &yes));
        for no in [
            "https://ghe.example.com/o/r/releases/download/v1/m.gguf",
            "https://ghe.example.com/api/v30/x",
            "http://ghe.example.com/api/v3/repos/o/r/releases/assets/1",
            "https://evil.example.com/api/v3/repos/o/r/releases/assets/1",
            "https://ghe.example.com:8443/api/v3/repos/o/r/releases/assets/1",
        ] {
            assert!(!is_under_api_base(&base, &Url::parse(no).unwrap()), "{no}");
        }
        let root = Url::parse("https://api.github.com/").unwrap();
        assert!(is_under_api_base(
            &root,
            &Url::parse("https://api.github.com/repos/o/r/releases/assets/9").unwrap()
        ));
    }

    #[test]
    fn parses_a_real_release_shape() {
        let json = r#"{
          "url": "https://api.github.com/repos/o/r/releases/1", "id": 1,
          "tag_name": "b4500", "target_commitish": "master", "name": "b4500",
          "draft": false, "prerelease": false, "published_at": "2025-01-15T10:00:00Z",
          "assets": [{
            "url": "https://api.github.com/repos/o/r/releases/assets/7", "id": 7,
            "name": "m.gguf", "label": null, "content_type": "application/octet-stream",
            "state": "uploaded", "size": 42, "digest": "sha256:abc", "download_count": 3,
            "created_at": "2025-01-15T10:00:00Z", "updated_at": "2025-01-15T10:01:00Z",
            "browser_download_url": "https://github.com/o/r/releases/download/b4500/m.gguf"
          }, {
            "url": "u", "id": 8, "name": "old.bin", "size": 1, "digest": null,
            "state": "open", "browser_download_url": "b"
          }]
        }"#;
        let r: Release = serde_json::from_str(json).unwrap();
        assert_eq!(r.tag_name, "b4500");
        assert_eq!(r.assets.len(), 2);
        assert!(r.assets[0].is_uploaded());
        assert!(!r.assets[1].is_uploaded());
        assert_eq!(r.assets[1].digest, None);
    }
}
