//! The on-disk catalog: one folder and one `metadata.json` per artifact, no database.
//!
//! # Concurrency
//! - Every record write is atomic (temp file, fsync, rename, fsync of the folder): a reader sees
//!   the old record or the new one, never a torn one.
//! - Read-modify-write of a record happens under a catalog-wide file lock, so two processes
//!   (or threads) never lose each other's updates.
//! - A process downloading an artifact holds that artifact's `.lock` ([`DownloadLease`]) for the
//!   whole download. At [`Catalog::open`], an entry still marked `downloading` whose lock nobody
//!   holds was left by a dead process and becomes `incomplete`.
//! - Methods do blocking file I/O; they are small except [`Catalog::verify`], which hashes
//!   every file (call it from a blocking context).

pub(crate) mod layout;
mod record;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::Utc;
use serde::{Deserialize, Serialize};

pub use layout::CatalogKey;
pub use record::{
    ArtifactRecord, ArtifactStatus, CatalogEntry, FileRecord, Listing, RECORD_SCHEMA,
};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::reference::ArtifactRef;

/// The catalog rooted at one folder.
#[derive(Debug)]
pub struct Catalog {
    root: PathBuf,
    write_lock: Mutex<()>,
}

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

/// The outcome of [`Catalog::verify`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The entry id.
    pub id: String,
    /// One check per file.
    pub files: Vec<FileCheck>,
}

impl VerifyReport {
    /// Whether every file matched.
    pub fn ok(&self) -> bool {
        self.files
            .iter()
            .all(|f| matches!(f.outcome, CheckOutcome::Ok | CheckOutcome::NoDigest { .. }))
    }

    /// One line per failing file, for people.
    pub fn problems(&self) -> Vec<String> {
        self.files
            .iter()
            .filter_map(|f| {
                let what = match &f.outcome {
                    CheckOutcome::Ok | CheckOutcome::NoDigest { .. } => return None,
                    CheckOutcome::Missing => "is missing".to_string(),
                    CheckOutcome::SizeMismatch { expected, actual } => {
                        format!("has {actual} bytes, expected {expected}: it changed on disk")
                    }
                    CheckOutcome::DigestMismatch { expected, actual } => {
                        format!("changed on disk: sha256 is {actual}, expected {expected}")
                    }
                };
                Some(format!("{} {what}", f.path))
            })
            .collect()
    }
}

/// The check of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileCheck {
    /// Path within the artifact.
    pub path: String,
    /// What was found.
    pub outcome: CheckOutcome,
}

/// What verifying one file found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Size and digest match.
    Ok,
    /// No digest was recorded; the size matches and this digest was computed.
    NoDigest {
        /// The digest now.
        actual: String,
    },
    /// The file is gone.
    Missing,
    /// The size differs.
    SizeMismatch {
        /// Recorded size.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// The bytes differ.
    DigestMismatch {
        /// Recorded digest.
        expected: String,
        /// Digest on disk.
        actual: String,
    },
}

/// Disk use of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskUsage {
    /// The catalog root.
    pub root: PathBuf,
    /// Bytes of complete files.
    pub total_bytes: u64,
    /// Bytes of partial (`.part`) files kept for resuming.
    pub partial_bytes: u64,
    /// Free bytes on the file system holding the root.
    pub free_bytes: Option<u64>,
    /// Per entry, largest first.
    pub entries: Vec<EntryUsage>,
}

/// Disk use of one entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryUsage {
    /// Entry id.
    pub id: String,
    /// Reference (absent for damaged entries).
    pub reference: Option<String>,
    /// Status name.
    pub status: String,
    /// Bytes of complete files.
    pub bytes: u64,
    /// Bytes of partial files.
    pub partial_bytes: u64,
}

/// What [`Catalog::remove`] removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removed {
    /// Entry id.
    pub id: String,
    /// Bytes freed (including partial files).
    pub bytes: u64,
}

/// `~` or `~/…` made relative to `home`: a quoted path or a variable is not expanded by the
/// shell, and a folder literally named `~` is never what was meant.
fn expand_home(path: PathBuf, home: Option<PathBuf>) -> PathBuf {
    let Some(home) = home else {
        return path;
    };
    match path.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => path,
    }
}

impl Catalog {
    /// The default root: `$RBEE_CACHE_DIR`, else the platform cache folder + `rbee/models`
    /// (`~/.cache/rbee/models` on Linux). Binaries call this; libraries take the root explicitly.
    pub fn default_root() -> Option<PathBuf> {
        match std::env::var_os("RBEE_CACHE_DIR") {
            Some(dir) if !dir.is_empty() => Some(expand_home(PathBuf::from(dir), dirs::home_dir())),
            _ => dirs::cache_dir().map(|d| d.join("rbee").join("models")),
        }
    }

    /// The root a binary should open: `explicit` (a `--cache-dir` flag) else
    /// [`default_root`](Self::default_root), made absolute so that paths handed to other
    /// programs do not depend on the current folder.
    pub fn resolve_root(explicit: Option<&Path>) -> Result<PathBuf> {
        let dir = match explicit {
            Some(dir) => expand_home(dir.to_path_buf(), dirs::home_dir()),
            None => Self::default_root().ok_or_else(|| {
                Error::InvalidRequest(
                    "cannot tell where the cache folder is (no home directory); pass --cache-dir or set RBEE_CACHE_DIR".into(),
                )
            })?,
        };
        std::path::absolute(&dir)
            .map_err(|e| Error::io(format!("using {} as the cache folder", dir.display()), e))
    }

    /// Opens (creating if needed) the catalog at `root`, and marks entries left `downloading`
    /// by a dead process as `incomplete`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating the catalog folder {}", root.display()), e))?;
        let catalog = Self {
            root,
            write_lock: Mutex::new(()),
        };
        catalog.recover()?;
        Ok(catalog)
    }

    /// The catalog root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder an artifact lives in (whether or not it exists yet).
    pub fn entry_dir(&self, key: &CatalogKey) -> PathBuf {
        layout::entry_dir(&self.root, key)
    }

    /// Looks an entry up by id, or by reference (canonical or any accepted spelling).
    pub fn get(&self, id_or_reference: &str) -> Result<Option<CatalogEntry>> {
        if let Some(key) = CatalogKey::from_id(id_or_reference) {
            return self.read(&key);
        }
        let reference: ArtifactRef = id_or_reference.parse()?;
        self.find(&reference)
    }

    /// Looks an entry up by reference.
    pub fn find(&self, reference: &ArtifactRef) -> Result<Option<CatalogEntry>> {
        self.read(&CatalogKey::of(reference))
    }

    /// Reads the entry at `key`; `Ok(None)` when there is none, [`Error::Damaged`] when its
    /// record cannot be read.
    pub fn read(&self, key: &CatalogKey) -> Result<Option<CatalogEntry>> {
        let dir = self.entry_dir(key);
        match read_record(&dir) {
            Ok(Some(record)) => Ok(Some(CatalogEntry { record, dir })),
            Ok(None) => Ok(None),
            Err(reason) => Err(Error::Damaged {
                id: key.id(),
                reason,
            }),
        }
    }

    /// Every entry, damaged ones included, sorted by id.
    pub fn list(&self) -> Result<Vec<Listing>> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let read = match fs::read_dir(&dir) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
            };
            let has_record = dir != self.root && dir.join(layout::METADATA_FILE).exists();
            if has_record {
                let id = self.id_of_dir(&dir);
                match read_record(&dir) {
                    Ok(Some(record)) => out.push(Listing::Entry(CatalogEntry { record, dir })),
                    Ok(None) => {}
                    Err(reason) => out.push(Listing::Damaged { id, dir, reason }),
                }
                continue;
            }
            for item in read.flatten() {
                let name = item.file_name();
                let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
                if is_dir && !name.to_string_lossy().starts_with('.') {
                    stack.push(item.path());
                }
            }
        }
        out.sort_by_key(|l| match l {
            Listing::Entry(e) => e.record.id.clone(),
            Listing::Damaged { id, .. } => id.clone(),
        });
        Ok(out)
    }

    /// Takes the download lease of an artifact if no other download holds it.
    pub fn try_lease(&self, reference: &ArtifactRef) -> Result<Option<DownloadLease>> {
        self.try_lease_key(CatalogKey::of(reference))
    }

    fn try_lease_key(&self, key: CatalogKey) -> Result<Option<DownloadLease>> {
        let dir = self.entry_dir(&key);
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

    /// Writes a whole record (atomically) into the folder of its key.
    pub fn save(&self, record: &ArtifactRecord) -> Result<CatalogEntry> {
        let key = CatalogKey::of(&record.reference);
        let dir = self.entry_dir(&key);
        let _guard = self.write_guard()?;
        write_record(&dir, record)?;
        Ok(CatalogEntry {
            record: record.clone(),
            dir,
        })
    }

    /// Reads, changes and writes back one record under the catalog lock.
    pub fn update(
        &self,
        key: &CatalogKey,
        change: impl FnOnce(&mut ArtifactRecord),
    ) -> Result<CatalogEntry> {
        let dir = self.entry_dir(key);
        let _guard = self.write_guard()?;
        let mut record = read_record(&dir)
            .map_err(|reason| Error::Damaged {
                id: key.id(),
                reason,
            })?
            .ok_or_else(|| Error::NotFound {
                message: format!("`{}` is not in the catalog", key.id()),
            })?;
        change(&mut record);
        record.updated_at = Utc::now();
        write_record(&dir, &record)?;
        Ok(CatalogEntry { record, dir })
    }

    /// Sets an entry's status.
    pub fn set_status(&self, key: &CatalogKey, status: ArtifactStatus) -> Result<CatalogEntry> {
        self.update(key, |r| r.status = status)
    }

    /// Removes an entry: its files, partial files and record. Refused while a download holds it.
    pub fn remove(&self, id_or_reference: &str) -> Result<Removed> {
        let key = match CatalogKey::from_id(id_or_reference) {
            Some(key) => key,
            None => CatalogKey::of(&id_or_reference.parse()?),
        };
        let dir = self.entry_dir(&key);
        let id = key.id();
        if !dir.join(layout::METADATA_FILE).exists() {
            return Err(Error::NotFound {
                message: format!(
                    "`{id_or_reference}` is not in the catalog; `rbee model list` shows what is"
                ),
            });
        }
        // Holding the lease proves no download is writing into the folder.
        let lease = self.try_lease_key(key)?.ok_or_else(|| Error::Busy {
            id: id.clone(),
            reason: "it is being downloaded; cancel that download first".into(),
        })?;
        let (complete, partial) = dir_size(&dir);
        let bytes = complete + partial;
        let _guard = self.write_guard()?;
        // Remove the record first so a crash mid-removal leaves no entry pointing at missing files.
        fs::remove_file(dir.join(layout::METADATA_FILE))
            .map_err(|e| Error::io(format!("removing the record in {}", dir.display()), e))?;
        fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
        drop(lease);
        // Tidy empty parents (org/repo folders), never the root.
        let mut parent = dir.parent();
        while let Some(p) = parent {
            if p == self.root || fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
        Ok(Removed { id, bytes })
    }

    /// Re-hashes every file of an entry against its recorded digest and size. A mismatch marks
    /// the entry `failed` (so the next provision fetches it again); a clean check of an entry
    /// that had failed verification marks it `ready` again. `on_bytes` sees hashing progress.
    /// Blocking.
    pub fn verify(
        &self,
        id_or_reference: &str,
        mut on_bytes: impl FnMut(u64),
    ) -> Result<VerifyReport> {
        let entry = self.get(id_or_reference)?.ok_or_else(|| Error::NotFound {
            message: format!(
                "`{id_or_reference}` is not in the catalog; `rbee model list` shows what is"
            ),
        })?;
        // Holding the lease keeps a download (in any process) from changing the files and the
        // status while they are checked.
        let _lease = self
            .try_lease(&entry.record.reference)?
            .ok_or_else(|| Error::Busy {
                id: entry.record.id.clone(),
                reason: "it is being downloaded; verify it once the download ends".into(),
            })?;
        let entry = self
            .read(&CatalogKey::of(&entry.record.reference))?
            .unwrap_or(entry);
        let mut files = Vec::new();
        for f in &entry.record.files {
            let path = layout::file_path(&entry.dir, &f.path);
            let outcome = match fs::metadata(&path) {
                Err(_) => CheckOutcome::Missing,
                Ok(m) if !m.is_file() => CheckOutcome::Missing,
                Ok(m) if m.len() != f.size => CheckOutcome::SizeMismatch {
                    expected: f.size,
                    actual: m.len(),
                },
                Ok(_) => {
                    let (actual, _) = Sha256Digest::of_file(&path, &mut on_bytes)
                        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                    match f.sha256 {
                        Some(expected) if expected == actual => CheckOutcome::Ok,
                        Some(expected) => CheckOutcome::DigestMismatch {
                            expected: expected.to_string(),
                            actual: actual.to_string(),
                        },
                        None => CheckOutcome::NoDigest {
                            actual: actual.to_string(),
                        },
                    }
                }
            };
            files.push(FileCheck {
                path: f.path.clone(),
                outcome,
            });
        }
        let report = VerifyReport {
            id: entry.record.id.clone(),
            files,
        };
        let key = CatalogKey::of(&entry.record.reference);
        if !report.ok() {
            let error = format!("verification failed: {}", report.problems().join("; "));
            self.set_status(
                &key,
                ArtifactStatus::Failed {
                    error,
                    code: "integrity".into(),
                },
            )?;
        } else if matches!(&entry.record.status, ArtifactStatus::Failed { code, .. } if code == "integrity")
        {
            self.set_status(&key, ArtifactStatus::Ready)?;
        }
        Ok(report)
    }

    /// Bytes used per entry, partial bytes, and free space.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut entries = Vec::new();
        for listing in self.list()? {
            let (id, reference, status, dir) = match &listing {
                Listing::Entry(e) => (
                    e.record.id.clone(),
                    Some(e.record.reference.to_string()),
                    e.record.status.name().to_string(),
                    e.dir.clone(),
                ),
                Listing::Damaged { id, dir, .. } => {
                    (id.clone(), None, "damaged".to_string(), dir.clone())
                }
            };
            let (bytes, partial_bytes) = dir_size(&dir);
            entries.push(EntryUsage {
                id,
                reference,
                status,
                bytes,
                partial_bytes,
            });
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.bytes + e.partial_bytes));
        Ok(DiskUsage {
            root: self.root.clone(),
            total_bytes: entries.iter().map(|e| e.bytes).sum(),
            partial_bytes: entries.iter().map(|e| e.partial_bytes).sum(),
            free_bytes: available_space(&self.root).ok(),
            entries,
        })
    }

    /// A ready file anywhere in the catalog with this digest and size, to link instead of
    /// downloading the same bytes twice.
    pub fn find_by_digest(&self, sha256: &Sha256Digest, size: u64) -> Result<Option<PathBuf>> {
        Ok(self.digest_index()?.remove(&(*sha256, size)))
    }

    /// Every present file of every ready entry, by (digest, size): one pass over the catalog
    /// for a download that wants to reuse several files.
    pub fn digest_index(&self) -> Result<HashMap<(Sha256Digest, u64), PathBuf>> {
        let mut index = HashMap::new();
        for listing in self.list()? {
            let Listing::Entry(entry) = listing else {
                continue;
            };
            if entry.record.status != ArtifactStatus::Ready {
                continue;
            }
            for f in &entry.record.files {
                let Some(sha256) = f.sha256 else { continue };
                let path = layout::file_path(&entry.dir, &f.path);
                if fs::metadata(&path).is_ok_and(|m| m.len() == f.size) {
                    index.entry((sha256, f.size)).or_insert(path);
                }
            }
        }
        Ok(index)
    }

    fn id_of_dir(&self, dir: &Path) -> String {
        dir.strip_prefix(&self.root)
            .unwrap_or(dir)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("--")
    }

    fn recover(&self) -> Result<()> {
        for listing in self.list()? {
            let Listing::Entry(entry) = listing else {
                continue;
            };
            let ArtifactStatus::Downloading { bytes, total } = entry.record.status else {
                continue;
            };
            if let Ok(Some(_lease)) = self.try_lease(&entry.record.reference) {
                tracing::info!(id = %entry.record.id, "download left by a dead process; marking incomplete");
                self.set_status(
                    &CatalogKey::of(&entry.record.reference),
                    ArtifactStatus::Incomplete { bytes, total },
                )?;
            }
        }
        Ok(())
    }

    fn write_guard(&self) -> Result<WriteGuard<'_>> {
        let guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.root.join(layout::CATALOG_LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        file.lock()
            .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
        Ok(WriteGuard {
            _file: file,
            _guard: guard,
        })
    }
}

struct WriteGuard<'a> {
    _file: File,
    _guard: std::sync::MutexGuard<'a, ()>,
}

/// Opens (creating the artifact's folders if needed) its lock file.
fn open_lock_file(dir: &Path) -> Result<File> {
    fs::create_dir_all(layout::files_dir(dir))
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(layout::LOCK_FILE);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

fn read_record(dir: &Path) -> std::result::Result<Option<ArtifactRecord>, String> {
    let path = dir.join(layout::METADATA_FILE);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let record: ArtifactRecord = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a valid record: {e}", path.display()))?;
    if record.schema > RECORD_SCHEMA {
        return Err(format!(
            "{} was written by a newer rbee (record schema {}); upgrade rbee",
            path.display(),
            record.schema
        ));
    }
    Ok(Some(record))
}

/// Temp file in the same folder, fsync, rename over the record, fsync the folder.
fn write_record(dir: &Path, record: &ArtifactRecord) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Protocol {
        message: format!("cannot encode the record of {}: {e}", record.id),
    })?;
    let target = dir.join(layout::METADATA_FILE);
    let tmp = dir.join(format!(
        "{}.tmp-{}-{}",
        layout::METADATA_FILE,
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&json)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, &target)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io(format!("writing {}", target.display()), e))
}

/// (complete bytes, partial bytes) below `dir`, not following links.
fn dir_size(dir: &Path) -> (u64, u64) {
    let mut complete = 0;
    let mut partial = 0;
    let mut stack = vec![layout::files_dir(dir)];
    while let Some(d) = stack.pop() {
        let Ok(read) = fs::read_dir(&d) else { continue };
        for item in read.flatten() {
            let Ok(meta) = item.metadata() else { continue };
            if meta.is_dir() {
                stack.push(item.path());
            } else if item
                .file_name()
                .to_string_lossy()
                .ends_with(layout::PART_SUFFIX)
                || item
                    .file_name()
                    .to_string_lossy()
                    .ends_with(layout::PART_STATE_SUFFIX)
            {
                partial += meta.len();
            } else {
                complete += meta.len();
            }
        }
    }
    (complete, partial)
}

/// Free bytes on the file system that holds `path` (or its nearest existing ancestor).
pub fn available_space(path: &Path) -> std::io::Result<u64> {
    let mut p = path;
    loop {
        if p.exists() {
            return fs4::available_space(p);
        }
        p = match p.parent() {
            Some(parent) => parent,
            None => return fs4::available_space(path),
        };
    }
}

#[cfg(test)]
mod tests;
