//! The plugin trait every vendor implements, and what resolving produces.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::digest::{GitBlobId, Sha256Digest};
use crate::error::Result;
use crate::grammar::Scheme;
use crate::progress::DownloadTracker;
use crate::reference::ArtifactRef;
use crate::selection::Selection;

/// A source of artifacts: HuggingFace, GitHub releases, local files, plain URLs, …
///
/// # Contract
/// - [`resolve`](VendorSource::resolve) talks to the vendor's metadata API only and writes no
///   bytes: it returns every file that would be fetched, with sizes and digests where the vendor
///   publishes them, so the caller can check disk space, dedupe identical requests and show a
///   plan (`--dry-run`).
/// - [`download`](VendorSource::download) fetches the given files of a resolved plan into
///   `dest` (the artifact's folder), each to `dest/<file.path>`. A file appears under its final
///   name only when complete and verified; partial data stays in `<name>.part` for a later
///   resume. Progress goes to the tracker as bytes arrive. On cancellation it returns
///   [`Error::Cancelled`](crate::Error::Cancelled) promptly (within one read), keeping partial
///   files.
/// - Both are called from async tasks; neither may block the executor for long.
/// - Credentials stay inside the vendor: never in the plan, errors, events or logs.
#[async_trait]
pub trait VendorSource: Send + Sync + Debug + 'static {
    /// The scheme this vendor serves.
    fn scheme(&self) -> Scheme;

    /// Works out what `reference` means right now: files, sizes, digests, revision.
    async fn resolve(
        &self,
        reference: &ArtifactRef,
        options: &ResolveOptions,
        cancel: &CancellationToken,
    ) -> Result<ResolvedArtifact>;

    /// Fetches `files` (all from `plan`, possibly a subset of its files) into `dest`.
    async fn download(
        &self,
        plan: &ResolvedArtifact,
        files: &[ResolvedFile],
        dest: &Path,
        progress: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>>;

    /// What a reader of part of `file` (a model header, read without downloading) must send:
    /// the vendor's credential when the file's URL is on the vendor's own origin, and extra
    /// headers. The default sends nothing, which suits vendors without credentials.
    fn read_access(&self, file: &ResolvedFile) -> FileAccess {
        let _ = file;
        FileAccess::default()
    }
}

/// Credential and headers for reading a resolved file's bytes directly
/// ([`VendorSource::read_access`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileAccess {
    /// Sent as `Authorization: Bearer …` to the file URL's origin only.
    pub auth: Option<crate::Secret>,
    /// Extra non-secret headers (e.g. `Accept: application/octet-stream`).
    pub headers: Vec<(String, String)>,
}

impl FileAccess {
    /// Access with this credential and these headers.
    pub fn new(auth: Option<crate::Secret>, headers: Vec<(String, String)>) -> Self {
        Self { auth, headers }
    }
}

/// Knobs for [`VendorSource::resolve`] beyond the reference itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResolveOptions {
    /// Globs over file paths: when non-empty, only matching files are taken (overrides the
    /// vendor's default choice of files).
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs over file paths to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Use only what is already on this machine; never touch the network.
    #[serde(default)]
    pub offline: bool,
}

impl ResolveOptions {
    /// The include and exclude globs: part of what a request is (see [`Selection`]).
    pub fn selection(&self) -> Selection {
        Selection::new(self.include.clone(), self.exclude.clone())
    }

    /// Options with these include and exclude globs.
    pub fn with_globs(include: Vec<String>, exclude: Vec<String>) -> Self {
        Self {
            include,
            exclude,
            offline: false,
        }
    }
}

/// What a reference resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedArtifact {
    /// The reference as requested.
    pub reference: ArtifactRef,
    /// The exact revision the files come from (commit sha, release tag), when the vendor has one.
    pub revision: Option<String>,
    /// The files to fetch, in a stable order.
    pub files: Vec<ResolvedFile>,
    /// Vendor notes for people (e.g. "picked Q4_K_M: the default preference").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ResolvedArtifact {
    /// Total bytes, counting unknown sizes as zero; `None` when the announced sizes add up to
    /// more than a `u64` holds (a vendor that lies).
    pub fn checked_total_size(&self) -> Option<u64> {
        self.files
            .iter()
            .filter_map(|f| f.size)
            .try_fold(0u64, |total, size| total.checked_add(size))
    }

    /// Total bytes, counting unknown sizes as zero (saturating; see
    /// [`checked_total_size`](Self::checked_total_size)).
    pub fn total_size(&self) -> u64 {
        self.checked_total_size().unwrap_or(u64::MAX)
    }
}

/// One file of a resolved artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedFile {
    /// Path within the artifact (`/`-separated, validated by
    /// [`validate_relative_path`](crate::validate_relative_path)).
    pub path: String,
    /// Size in bytes, when the vendor says.
    pub size: Option<u64>,
    /// Expected digest, when the vendor publishes one.
    pub sha256: Option<Sha256Digest>,
    /// An opaque content identifier from the vendor (git blob id, ETag), used with `sha256` to
    /// tell whether a file changed since it was last fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The git blob id of the content, for a vendor that keeps files in git and says so (the
    /// Hub, for files outside LFS). Never read from `version`: an opaque identifier that
    /// happens to be 40 hex digits (an ETag) is not a blob id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_blob: Option<GitBlobId>,
    /// Where the bytes are.
    pub source: FileSource,
}

impl ResolvedFile {
    /// The git blob id the file must have, for files kept in git rather than LFS (no sha256
    /// published, a [`git_blob`](Self::git_blob) given by the vendor).
    pub fn expected_git_blob(&self) -> Option<GitBlobId> {
        if self.sha256.is_some() {
            return None;
        }
        self.git_blob
    }
}

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileSource {
    /// An HTTP(S) URL without credentials (the vendor adds them when fetching).
    Http {
        /// The URL.
        url: Url,
    },
    /// A file on this machine.
    Local {
        /// Its absolute path.
        path: PathBuf,
    },
}

/// A file that is now complete in the artifact's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadedFile {
    /// Path within the artifact.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Digest of the bytes on disk.
    pub sha256: Sha256Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: &str = "ce013625030ba8dba906f756967f9e9ca394464a";

    fn file(version: Option<&str>, git_blob: Option<GitBlobId>) -> ResolvedFile {
        ResolvedFile {
            path: "model.gguf".into(),
            size: Some(3),
            sha256: None,
            version: version.map(str::to_string),
            git_blob,
            source: FileSource::Http {
                url: "https://example.com/model.gguf".parse().unwrap(),
            },
        }
    }

    #[test]
    fn a_version_of_forty_hex_digits_is_not_taken_for_a_git_blob_id() {
        // An ETag, as a plain-URL vendor records it.
        assert_eq!(file(Some(BLOB), None).expected_git_blob(), None);
    }

    #[test]
    fn the_git_blob_id_is_the_one_the_vendor_gave_unless_a_sha256_is_published() {
        let id: GitBlobId = BLOB.parse().unwrap();
        let f = file(None, Some(id));
        assert_eq!(f.expected_git_blob(), Some(id));
        let lfs = ResolvedFile {
            sha256: Some(Sha256Digest::of(b"abc")),
            ..f
        };
        assert_eq!(lfs.expected_git_blob(), None);
    }

    #[test]
    fn a_git_blob_id_round_trips_through_json_and_is_left_out_when_absent() {
        let id: GitBlobId = BLOB.parse().unwrap();
        let f = file(None, Some(id));
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["git_blob"], BLOB);
        assert_eq!(serde_json::from_value::<ResolvedFile>(json).unwrap(), f);
        let without = serde_json::to_value(file(None, None)).unwrap();
        assert!(without.get("git_blob").is_none());
    }
}
