//! The `metadata.json` record of one artifact.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::reference::{ArtifactRef, Scheme};

/// The version of the record format written by this build.
pub const RECORD_SCHEMA: u32 = 1;

/// Everything the catalog knows about one artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// Record format version.
    pub schema: u32,
    /// Stable id (see [`CatalogKey`](crate::CatalogKey)).
    pub id: String,
    /// The reference, canonical form.
    pub reference: ArtifactRef,
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
    /// Total bytes of all files.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
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
    /// The record.
    pub record: ArtifactRecord,
    /// The artifact's folder.
    pub dir: PathBuf,
}

impl CatalogEntry {
    /// The folder with the artifact's files.
    pub fn files_dir(&self) -> PathBuf {
        super::layout::files_dir(&self.dir)
    }

    /// Absolute paths of the artifact's files.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.record
            .files
            .iter()
            .map(|f| super::layout::file_path(&self.dir, &f.path))
            .collect()
    }

    /// The path a runtime should be given: the single file, the first part of a split GGUF, or
    /// the files folder of a snapshot.
    pub fn primary_path(&self) -> PathBuf {
        match self.record.files.as_slice() {
            [only] => super::layout::file_path(&self.dir, &only.path),
            files => files
                .iter()
                .find(|f| is_first_split(&f.path))
                .map(|f| super::layout::file_path(&self.dir, &f.path))
                .unwrap_or_else(|| self.files_dir()),
        }
    }

    /// Whether every file is present with its recorded size (cheap; no hashing).
    pub fn files_present(&self) -> bool {
        self.record.files.iter().all(|f| {
            std::fs::metadata(super::layout::file_path(&self.dir, &f.path))
                .is_ok_and(|m| m.is_file() && m.len() == f.size)
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
