//! The file the engine is asked to fetch.

use std::sync::Arc;

use rbee_artifact::{GitBlobId, Secret, Sha256Digest};
use url::Url;

use super::piece_source::PieceSource;

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
    /// The git blob id the vendor published, for a file it keeps in git rather than with a
    /// sha256 (the Hub's configs and tokenizers): checked before the file is put in place (a
    /// mismatch is [`Error::Integrity`](rbee_artifact::Error::Integrity)), and before a
    /// complete file already there is adopted.
    pub git_blob: Option<GitBlobId>,
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
            git_blob: None,
            pieces: None,
        }
    }
}
