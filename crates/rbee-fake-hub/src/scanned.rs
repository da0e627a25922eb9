//! A scanned revision of a Hub repo: its files with their hashes, and the commit id over
//! them; and the last scan of each revision folder, kept for the requests that follow.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// A file found by a walk: its path in the repo, where it is, its size and modification time.
pub(crate) type Listed = (String, PathBuf, u64, SystemTime);

#[derive(Debug, Clone)]
pub(crate) struct Lfs {
    pub(crate) sha256: String,
    pub(crate) pointer_size: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct RepoFile {
    /// Path in the repo, `/`-separated.
    pub(crate) path: String,
    pub(crate) abs: PathBuf,
    pub(crate) size: u64,
    pub(crate) mtime: SystemTime,
    /// Git blob id: of the content, or of the LFS pointer for LFS files.
    pub(crate) oid: String,
    pub(crate) lfs: Option<Lfs>,
    /// The Xet file hash, for LFS files stored in Xet.
    pub(crate) xet: Option<rbee_xet::XetHash>,
}

/// The last scan of each revision folder, used again while a walk finds the same files (paths,
/// sizes, modification times) under the same Xet settings. Hashes were already kept per file;
/// building the listing and the commit id again for each request of a 1,000-file snapshot
/// still cost the fake more CPU than the client it was serving.
#[derive(Debug, Default)]
pub(crate) struct Scans(Mutex<HashMap<PathBuf, Scan>>);

impl Scans {
    /// The last scan of `dir`, when it was of the same files under the same Xet settings.
    pub(crate) fn get(
        &self,
        dir: &Path,
        listing: &Arc<Vec<Listed>>,
        xet: &serde_json::Value,
    ) -> Option<Arc<Revision>> {
        let scans = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let scan = scans.get(dir)?;
        let same_files = Arc::ptr_eq(&scan.listing, listing) || scan.listing == *listing;
        (same_files && scan.xet == *xet).then(|| scan.revision.clone())
    }

    /// Keeps the scan of `dir`.
    pub(crate) fn put(
        &self,
        dir: &Path,
        listing: Arc<Vec<Listed>>,
        xet: serde_json::Value,
        revision: Arc<Revision>,
    ) {
        let scan = Scan {
            listing,
            xet,
            revision,
        };
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dir.to_path_buf(), scan);
    }
}

#[derive(Debug)]
struct Scan {
    listing: Arc<Vec<Listed>>,
    xet: serde_json::Value,
    revision: Arc<Revision>,
}

#[derive(Debug)]
pub(crate) struct Revision {
    /// Path of the revision's folder relative to the served root (`hf/org/repo[/.revisions/x]`).
    pub(crate) rel_dir: String,
    pub(crate) sha: String,
    pub(crate) files: Vec<RepoFile>,
}
