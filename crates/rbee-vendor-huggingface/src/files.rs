//! One file of a repository as the Hub lists it, independent of which API listed it.

use rbee_artifact::{GitBlobId, Sha256Digest};

/// A file in a repository at one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Path in the repository (`/`-separated, validated).
    pub path: String,
    /// Size in bytes, when listed.
    pub size: Option<u64>,
    /// SHA-256 of the content, for files stored in LFS (or Xet).
    pub sha256: Option<Sha256Digest>,
    /// The git blob id (of the content, or of the LFS pointer).
    pub oid: Option<String>,
    /// The Xet hash (64 hex digits), when the tree listing names one (`xetHash`).
    pub xet_hash: Option<String>,
}

impl RepoFile {
    /// A file with only a path and a size (tests, offline listings).
    pub fn new(path: impl Into<String>, size: Option<u64>) -> Self {
        Self {
            path: path.into(),
            size,
            sha256: None,
            oid: None,
            xet_hash: None,
        }
    }

    /// The last path segment.
    pub fn name(&self) -> &str {
        file_name(&self.path)
    }

    /// The name the HuggingFace cache stores this file's blob under: the SHA-256 for LFS files,
    /// the git blob id otherwise (what the Hub sends as `X-Linked-Etag` / `ETag`).
    pub fn cache_etag(&self) -> Option<String> {
        match (&self.sha256, &self.oid) {
            (Some(sha), _) => Some(sha.to_string()),
            (None, Some(oid)) => Some(oid.clone()),
            (None, None) => None,
        }
    }

    /// The git blob id of the content, for a file kept in git: an LFS file's `oid` is its
    /// pointer's, and its content is checked by the sha256 instead.
    pub fn git_blob(&self) -> Option<GitBlobId> {
        if self.sha256.is_some() {
            return None;
        }
        self.oid.as_deref()?.parse().ok()
    }
}

/// The last segment of a `/`-separated path.
pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// How many folders deep a `/`-separated path is (`a.gguf` → 0, `Q4/a.gguf` → 1).
pub(crate) fn depth(path: &str) -> usize {
    path.matches('/').count()
}
