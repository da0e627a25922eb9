//! Download leases: which process may write into an entry, held as a file lock across processes.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbee_artifact::{ArtifactRef, CatalogKey, Error, Result};

use crate::{ArtifactRecord, ArtifactStatus, Catalog, contain, layout};

/// Exclusive right to download one artifact, held across processes; released on drop.
#[derive(Debug)]
pub struct DownloadLease {
    _lock: File,
    key: CatalogKey,
    dir: PathBuf,
}

impl DownloadLease {
    /// The artifact's key.
    pub fn key(&self) -> &CatalogKey {
        &self.key
    }

    /// The artifact's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder its files go to.
    pub fn files_dir(&self) -> PathBuf {
        layout::files_dir(&self.dir)
    }
}

impl Catalog {
    /// Takes the download lease of an artifact if no other download holds it.
    pub fn try_lease(&self, reference: &ArtifactRef) -> Result<Option<DownloadLease>> {
        self.try_lease_key(CatalogKey::of(reference))
    }

    /// Takes the download lease of the entry at `key` if no other download holds it. Refused
    /// (as [`Error::Damaged`]) when the entry's folder is reached through a symbolic link.
    pub fn try_lease_key(&self, key: CatalogKey) -> Result<Option<DownloadLease>> {
        let dir = self.entry_dir(&key);
        self.check_inside(&key, &layout::files_dir(&dir))?;
        self.check_inside(&key, &dir.join(layout::LOCK_FILE))?;
        let file = open_lock_file(&dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DownloadLease {
                _lock: file,
                key,
                dir,
            })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            // Without the lock nothing proves that no download is writing here.
            Err(fs::TryLockError::Error(e)) => {
                Err(Error::io(format!("locking {}", dir.display()), e))
            }
        }
    }
}

/// Opens (creating the artifact's folders if needed) its lock file. Creates nothing when they
/// exist, so a lease can be taken on a full disk.
pub(crate) fn open_lock_file(dir: &Path) -> Result<File> {
    let files = layout::files_dir(dir);
    if !files.is_dir() {
        fs::create_dir_all(&files)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let path = dir.join(layout::LOCK_FILE);
    contain::open_lock(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// Whether a download holds the lease of the entry at `dir`. Opens the lock file read-only and
/// never creates it: an entry without one has no download.
pub(crate) fn lease_held(dir: &Path) -> bool {
    let path = dir.join(layout::LOCK_FILE);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        // Cannot tell: do not claim the download is dead.
        Err(_) => return true,
    };
    match file.try_lock_shared() {
        Ok(()) => false,
        Err(fs::TryLockError::WouldBlock) => true,
        Err(fs::TryLockError::Error(_)) => true,
    }
}

/// A record as readers should see it: `downloading` without a live download is `incomplete`
/// (its process died, or could not write its final status).
pub(crate) fn shown_status(dir: &Path, mut record: Arc<ArtifactRecord>) -> Arc<ArtifactRecord> {
    if let ArtifactStatus::Downloading { bytes, total } = record.status
        && !lease_held(dir)
    {
        Arc::make_mut(&mut record).status = ArtifactStatus::Incomplete { bytes, total };
    }
    record
}
