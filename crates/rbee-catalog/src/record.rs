//! The `metadata.json` record of one artifact.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use rbee_artifact::{ArtifactRef, CatalogKey, Scheme, Selection, Sha256Digest};

use crate::layout;

/// The version of the record format written by this build.
pub const RECORD_SCHEMA: u32 = 1;

/// Everything the catalog knows about one artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// Record format version.
    pub schema: u32,
    /// Stable id (see [`CatalogKey`](rbee_artifact::CatalogKey)).
    pub id: String,
    /// The reference, canonical form (credentials in a URL's query string redacted).
    pub reference: ArtifactRef,
    /// The files the request chose beyond its reference (`--include`/`--exclude`); part of the
    /// entry's identity.
    #[serde(default, skip_serializing_if = "Selection::is_empty")]
    pub selection: Selection,
    /// The vendor.
    pub scheme: Scheme,
    /// The exact revision the files came from, when the vendor has one.
    pub revision: Option<String>,
    /// The files, with their sizes and digests.
    pub files: Vec<FileRecord>,
    /// Where the artifact stands.
    pub status: ArtifactStatus,
    /// When the entry was first created.
    pub created_at: DateTime<Utc>,
    /// When the entry last changed.
    pub updated_at: DateTime<Utc>,
    /// Notes for people (what was picked and why, where files were linked from).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ArtifactRecord {
    /// Total bytes of all files (saturating: a record read from disk may claim anything).
    pub fn total_size(&self) -> u64 {
        self.files
            .iter()
            .fold(0u64, |total, f| total.saturating_add(f.size))
    }

    /// The key of the entry this record describes: its reference and selection.
    pub fn key(&self) -> CatalogKey {
        CatalogKey::of_request(&self.reference, &self.selection)
    }

    /// Decodes a `metadata.json` and checks it as strictly as data from the network: the
    /// format version, the id against the reference and selection, the scheme, and every file
    /// path ([`check_file_path`](rbee_artifact::check_file_path): nothing absolute, no `..`, no repeats). The error says
    /// what is wrong, for a "damaged" listing.
    pub fn decode(json: &[u8]) -> Result<Self, String> {
        let record: ArtifactRecord =
            serde_json::from_slice(json).map_err(|e| format!("it is not a valid record: {e}"))?;
        record.check()?;
        Ok(record)
    }

    /// The checks of [`decode`](Self::decode) on a record already decoded (one the catalog's
    /// index kept, say, which another rbee may have written): no I/O.
    pub fn check(&self) -> Result<(), String> {
        let record = self;
        if record.schema > RECORD_SCHEMA {
            return Err(format!(
                "it was written by a newer rbee (record schema {}); upgrade rbee",
                record.schema
            ));
        }
        let key = record.key();
        if record.id != key.id() {
            return Err(format!(
                "its id `{}` does not belong to its reference {} (expected `{}`)",
                record.id.escape_debug(),
                record.reference,
                key.id()
            ));
        }
        if record.scheme != record.reference.scheme() {
            return Err(format!(
                "its scheme `{}` does not match its reference {}",
                record.scheme, record.reference
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &record.files {
            rbee_artifact::check_file_path(&f.path)
                .map_err(|why| format!("it names a file `{}`: {why}", f.path.escape_debug()))?;
            if !seen.insert(f.path.as_str()) {
                return Err(format!("it lists the file `{}` twice", f.path));
            }
        }
        Ok(())
    }
}

/// One file of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path within the artifact's `files/` folder.
    pub path: String,
    /// Size in bytes (as announced while downloading, as written once ready).
    pub size: u64,
    /// Digest of the bytes (known once the file is complete, or from the vendor).
    pub sha256: Option<Sha256Digest>,
    /// The vendor's content identifier (see `ResolvedFile::version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where it came from (URL without credentials, or local path), for `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Where an artifact stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ArtifactStatus {
    /// A live process is fetching it.
    Downloading {
        /// Bytes present when last recorded.
        bytes: u64,
        /// Total bytes.
        total: u64,
    },
    /// Complete and verified.
    Ready,
    /// The last attempt failed; files may be partial.
    Failed {
        /// What happened.
        error: String,
        /// Stable error code.
        code: String,
        /// Files whose bytes a check found wrong (`verify`, or a digest or size mismatch while
        /// downloading). The next download deletes them first: they are fetched again, never
        /// adopted, resumed from or re-hashed into the record.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        suspect: Vec<String>,
    },
    /// Interrupted (cancelled, or its process died); partial files can resume.
    Incomplete {
        /// Bytes present when last recorded.
        bytes: u64,
        /// Total bytes.
        total: u64,
    },
}

impl ArtifactStatus {
    /// `downloading`, `ready`, `failed` or `incomplete`.
    pub fn name(&self) -> &'static str {
        match self {
            ArtifactStatus::Downloading { .. } => "downloading",
            ArtifactStatus::Ready => "ready",
            ArtifactStatus::Failed { .. } => "failed",
            ArtifactStatus::Incomplete { .. } => "incomplete",
        }
    }
}

/// An artifact in the catalog: its record and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    /// The record: shared with the catalog's index, which keeps every record it listed.
    pub record: Arc<ArtifactRecord>,
    /// The artifact's folder.
    pub dir: PathBuf,
}

impl CatalogEntry {
    /// The folder with the artifact's files.
    pub fn files_dir(&self) -> PathBuf {
        layout::files_dir(&self.dir)
    }

    /// Absolute paths of the artifact's files.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.record
            .files
            .iter()
            .map(|f| layout::file_path(&self.dir, &f.path))
            .collect()
    }

    /// The path a runtime should be given: the single file, the first part of a split GGUF, or
    /// the files folder of a snapshot.
    pub fn primary_path(&self) -> PathBuf {
        match self.record.files.as_slice() {
            [only] => layout::file_path(&self.dir, &only.path),
            // A split GGUF's first part; an Ollama model's weights (its other layers are a
            // template, parameters, a projector…). Elsewhere `model.gguf` is just one file of
            // a snapshot, which a runtime takes as a whole.
            files => files
                .iter()
                .find(|f| is_first_split(&f.path))
                .or_else(|| {
                    (self.record.scheme.as_str() == "ollama")
                        .then(|| files.iter().find(|f| f.path == "model.gguf"))
                        .flatten()
                })
                .map(|f| layout::file_path(&self.dir, &f.path))
                .unwrap_or_else(|| self.files_dir()),
        }
    }

    /// Whether every file is present with its recorded size (cheap; no hashing), as a regular
    /// file reached without following any symbolic link.
    pub fn files_present(&self) -> bool {
        self.record.files.iter().all(|f| {
            let path = layout::file_path(&self.dir, &f.path);
            crate::contain::first_link(&self.dir, &path).is_none()
                && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == f.size)
        })
    }
}

fn is_first_split(path: &str) -> bool {
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.contains("-00001-of-") && name.ends_with(".gguf")
}

/// One line of a catalog listing: an entry, or a folder whose record cannot be read.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // Nearly every listing is an entry; boxing would only add a hop.
pub enum Listing {
    /// A readable entry.
    Entry(CatalogEntry),
    /// A damaged entry: the rest of the catalog still lists.
    Damaged {
        /// The id its folder implies.
        id: String,
        /// Its folder.
        dir: PathBuf,
        /// Why its record cannot be read.
        reason: String,
    },
}
