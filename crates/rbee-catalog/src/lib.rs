//! The on-disk catalog: one folder and one `metadata.json` per artifact, no database.
//!
//! # Concurrency
//! - Every record write is atomic (temp file, fsync, rename, fsync of the folder): a reader sees
//!   the old record or the new one, never a torn one.
//! - Read-modify-write of a record happens under a catalog-wide file lock, so two processes
//!   (or threads) never lose each other's updates.
//! - A process downloading an artifact holds that artifact's `.lock` ([`DownloadLease`]) for the
//!   whole download. An entry marked `downloading` whose lock nobody holds was left by a dead
//!   process: reads show it as `incomplete`, and [`Catalog::list`] records that when it can.
//! - The index (`.catalog-index.json`) is a cache that every reader checks against the records
//!   (see `index`); it is replaced whole by a rename, and a save racing another is harmless.
//!
//! # Scale
//! Opening reads nothing; a lookup by id or reference reads one record; a listing stats every
//! record and reads only those that changed since the index was saved, in any process.
//!
//! # Reading never needs writing
//! Opening, listing, reading, verifying and removing work on a full disk: recovery and status
//! updates are best effort (a failed write is logged, the answer is still given), and removal
//! only unlinks.
//!
//! # Untrusted local state
//! A record is checked like data from the network when it is read ([`ArtifactRecord::decode`]),
//! and nothing inside the catalog is reached through a symbolic link (see `contain`): a
//! tampered record or a planted link shows as a damaged entry or a failed check, never as a read,
//! write or deletion outside the catalog.
//! - Methods do blocking file I/O; they are small except [`Catalog::verify`], which hashes
//!   every file (call it from a blocking context).

#![deny(missing_docs)]

mod contain;
mod hygiene;
mod index;
pub mod layout;
mod record;
mod usage;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use serde::{Deserialize, Serialize};

pub use hygiene::{PruneItem, PruneReason, PruneReport, parse_age, parse_cache_size};
pub use record::{
    ArtifactRecord, ArtifactStatus, CatalogEntry, FileRecord, Listing, RECORD_SCHEMA,
};

use rbee_artifact::{ArtifactRef, CatalogKey, Error, Result, Sha256Digest, available_space};

/// The catalog rooted at one folder.
#[derive(Debug)]
pub struct Catalog {
    root: PathBuf,
    write_lock: Mutex<()>,
    /// What the last walk found, checked against the disk on every walk (see `index`); `None`
    /// until the first walk loads the saved index.
    index: Mutex<Option<index::Nodes>>,
    /// Record files read and decoded so far.
    records_read: AtomicU64,
    /// How old a change to a record must be before the index caches it (shorter in tests).
    settle: std::time::Duration,
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
    /// Why the outcome could not be written to the record (a full disk, say); the report
    /// itself is still true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_recorded: Option<String>,
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
                    CheckOutcome::Refused { reason } => format!("was not read: {reason}"),
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
    /// The file was not read: it is (or is reached through) a symbolic link, or is not a
    /// regular file.
    Refused {
        /// What was found.
        reason: String,
    },
}

/// Disk use of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskUsage {
    /// The catalog root.
    pub root: PathBuf,
    /// Bytes of complete files, a file hard-linked into several entries counted once.
    pub total_bytes: u64,
    /// Bytes written into partial (`.part`) files kept for resuming.
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
    /// Of `bytes`, those hard-linked into another entry too (counted once in the total).
    pub shared_bytes: u64,
    /// Bytes written into partial files.
    pub partial_bytes: u64,
}

/// What [`Catalog::remove`] removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removed {
    /// Entry id.
    pub id: String,
    /// Bytes really freed (including partial files): a file still hard-linked elsewhere
    /// frees nothing.
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

    /// Opens (creating if needed) the catalog at `root`. Reads nothing else: an existing
    /// catalog opens in the same time whatever its size, and without writing anything.
    ///
    /// Entries left `downloading` by a dead process read as `incomplete`; [`list`](Self::list)
    /// records that on disk when it meets them.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            fs::create_dir_all(&root).map_err(|e| {
                Error::io(format!("creating the catalog folder {}", root.display()), e)
            })?;
        }
        Ok(Self {
            root,
            write_lock: Mutex::new(()),
            index: Mutex::new(None),
            records_read: AtomicU64::new(0),
            settle: index::SETTLE,
        })
    }

    /// How many record files (`metadata.json`) this catalog has read and decoded: a lookup of
    /// one entry reads one, a listing reads only those that changed since the last one.
    pub fn records_read(&self) -> u64 {
        self.records_read.load(Ordering::Relaxed)
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
    /// record cannot be read or cannot be trusted. A `downloading` entry that no process is
    /// downloading reads as `incomplete`.
    pub fn read(&self, key: &CatalogKey) -> Result<Option<CatalogEntry>> {
        let dir = self.entry_dir(key);
        match self.read_checked(key, &dir) {
            Ok(Some(record)) => Ok(Some(CatalogEntry {
                record: shown_status(&dir, record),
                dir,
            })),
            Ok(None) => Ok(None),
            Err(reason) => Err(Error::Damaged {
                id: key.id(),
                reason,
            }),
        }
    }

    /// The record at `dir`, checked: reached without links, decodable, valid, and describing
    /// the entry that lives in this folder.
    fn read_checked(
        &self,
        key: &CatalogKey,
        dir: &Path,
    ) -> std::result::Result<Option<ArtifactRecord>, String> {
        if let Some(link) = contain::first_link(&self.root, &dir.join(layout::METADATA_FILE)) {
            return Err(contain::link_reason(&link));
        }
        self.records_read.fetch_add(1, Ordering::Relaxed);
        let Some(record) = read_record(dir)? else {
            return Ok(None);
        };
        if record.key() != *key {
            return Err(format!(
                "its record describes `{}`, which belongs in another folder",
                record.id.escape_debug()
            ));
        }
        Ok(Some(record))
    }

    /// Every entry, damaged ones included, sorted by id. Entries left `downloading` by a dead
    /// process are recorded as `incomplete` (best effort, as reads show them so anyway).
    ///
    /// Reads only the records that changed since the last listing (in any process): the rest
    /// come from the index, each checked against its record's file (see `index`).
    pub fn list(&self) -> Result<Vec<Listing>> {
        let (mut out, dead) = {
            let mut cached = rbee_artifact::lock_unpoisoned(&self.index);
            let old = cached.take().unwrap_or_else(|| index::load(&self.root));
            let mut refresh = index::Refresh::new(old, self.settle);
            let walked = self.walk(&mut refresh);
            let (nodes, changed) = refresh.finish();
            if walked.is_ok() {
                if changed {
                    self.save_index(&nodes);
                }
                *cached = Some(nodes);
            }
            walked?
        };
        out.sort_by(|a, b| listing_id(a).cmp(listing_id(b)));
        self.recover(&dead);
        Ok(out)
    }

    /// Walks the catalog folders, taking from the index what is unchanged on disk and reading
    /// the rest. Returns the listing and the keys of entries whose record says `downloading`
    /// while no process holds their lease.
    fn walk(&self, refresh: &mut index::Refresh) -> Result<(Vec<Listing>, Vec<CatalogKey>)> {
        let mut out = Vec::with_capacity(refresh.known());
        let mut dead = Vec::new();
        let mut folders = index::Folders::new(&self.root);
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            let is_root = rel.is_empty();
            // The root is read every time: saving the index changes it.
            let mut stamp = None;
            if let Some(index::Node::Branch {
                stamp: cached,
                children,
            }) = refresh.cached(&rel)
            {
                let now = folders.lstat(&rel, None).map(|(stamp, _)| stamp);
                if now.as_ref().is_ok_and(|now| now == cached) {
                    // Nothing was added, removed or renamed in it: not even a record.
                    push_children(&mut stack, &rel, children);
                    folders.enter(&rel, children.len());
                    refresh.keep(&rel);
                    continue;
                }
                stamp = now.ok();
            }
            if !is_root && let Ok(found) = folders.lstat(&rel, Some(layout::METADATA_FILE)) {
                let dir = index::dir_of(&self.root, &rel);
                self.visit_entry(&rel, dir, found, refresh, &mut out, &mut dead);
                continue;
            }
            let dir = index::dir_of(&self.root, &rel);
            if !is_root && stamp.is_none() {
                match folders.lstat(&rel, None) {
                    Ok((now, _)) => stamp = Some(now),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
                }
            }
            // Stamped before it is read: a change after the stamp shows as a newer one.
            let read = match fs::read_dir(&dir) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
            };
            let mut children = Vec::new();
            // A folder listing a damaged name is read again each time: the index keeps only
            // names it can replay.
            let mut damaged = false;
            for item in read.flatten() {
                // A link is never a folder here: `file_type` does not follow it.
                let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
                let name = item.file_name();
                match name.to_str() {
                    Some(name) if is_dir && !name.starts_with('.') => {
                        children.push(name.to_string())
                    }
                    // rbee names its folders in ASCII: a record under another name is shown
                    // as damaged, and there is nothing else to find there.
                    None if is_dir && item.path().join(layout::METADATA_FILE).exists() => {
                        damaged = true;
                        out.push(Listing::Damaged {
                            id: self.id_of_dir(&item.path()),
                            dir: item.path(),
                            reason: format!(
                                "its folder {} is not one rbee makes",
                                item.path().display()
                            ),
                        })
                    }
                    _ => {}
                }
            }
            push_children(&mut stack, &rel, &children);
            folders.enter(&rel, children.len());
            if let Some(stamp) = stamp.filter(|_| !damaged) {
                refresh.put(&rel, index::Node::Branch { stamp, children });
            }
        }
        Ok((out, dead))
    }

    /// One folder holding a record: from the index when its record is unchanged, else read.
    fn visit_entry(
        &self,
        rel: &str,
        dir: PathBuf,
        (stamp, is_file): (index::Stamp, bool),
        refresh: &mut index::Refresh,
        out: &mut Vec<Listing>,
        dead: &mut Vec<CatalogKey>,
    ) {
        let cached = match refresh.cached(rel) {
            // Checked as a record read from disk would be: the index may have been written by
            // another rbee, with other rules.
            Some(index::Node::Entry { stamp: s, record })
                if *s == stamp
                    && is_file
                    && record.check().is_ok()
                    && record.id == self.id_of_dir(&dir) =>
            {
                Some(record.clone())
            }
            _ => None,
        };
        let record = match cached {
            Some(record) => {
                refresh.keep(rel);
                record
            }
            None => {
                let id = self.id_of_dir(&dir);
                let read = match CatalogKey::from_id(&id) {
                    Some(key) => self.read_checked(&key, &dir),
                    None => Err(format!(
                        "its folder {} is not one rbee makes",
                        dir.display()
                    )),
                };
                match read {
                    Ok(Some(record)) => {
                        refresh.put(
                            rel,
                            index::Node::Entry {
                                stamp,
                                record: record.clone(),
                            },
                        );
                        record
                    }
                    Ok(None) => return,
                    Err(reason) => {
                        out.push(Listing::Damaged { id, dir, reason });
                        return;
                    }
                }
            }
        };
        let on_disk_downloading = matches!(record.status, ArtifactStatus::Downloading { .. });
        let record = shown_status(&dir, record);
        if on_disk_downloading && !matches!(record.status, ArtifactStatus::Downloading { .. }) {
            dead.push(record.key());
        }
        out.push(Listing::Entry(CatalogEntry { record, dir }));
    }

    /// Saves the index for the next process. Best effort: a catalog on a read-only or full
    /// disk still lists, only slower. Under the catalog lock when it is free, so that a save
    /// never waits for a writer; a save racing another is harmless, since every reader checks
    /// what it takes from the index against the records.
    fn save_index(&self, nodes: &index::Nodes) {
        let path = self.root.join(layout::CATALOG_LOCK_FILE);
        let Ok(lock) = contain::open_lock(&path) else {
            return;
        };
        if lock.try_lock().is_err() {
            return;
        }
        if let Err(e) = index::save(&self.root, nodes) {
            tracing::debug!(root = %self.root.display(), error = %e, "could not save the catalog index; the next listing rebuilds it");
        }
    }

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

    /// Refuses a path of the entry at `key` that is reached through a symbolic link.
    fn check_inside(&self, key: &CatalogKey, path: &Path) -> Result<()> {
        match contain::first_link(&self.root, path) {
            Some(link) => Err(Error::Damaged {
                id: key.id(),
                reason: contain::link_reason(&link),
            }),
            None => Ok(()),
        }
    }

    /// A file of the entry at `dir`, when it is reached without following any link (from the
    /// catalog root down to the file itself). [`Error::Damaged`] names the link otherwise.
    /// `rel` must be a checked file path (as every record's are).
    pub fn file_inside(&self, dir: &Path, rel: &str) -> Result<PathBuf> {
        let path = layout::file_path(dir, rel);
        match contain::first_link(&self.root, &path) {
            Some(link) => Err(Error::Damaged {
                id: self.id_of_dir(dir),
                reason: contain::link_reason(&link),
            }),
            None => Ok(path),
        }
    }

    /// Whether `path` lies below the catalog root and is reached without following any
    /// symbolic link (the root itself may be one).
    pub fn is_inside(&self, path: &Path) -> bool {
        contain::first_link(&self.root, path).is_none()
    }

    /// The id an entry folder implies (its path below the root, joined with `--`).
    pub fn id_of(&self, dir: &Path) -> String {
        self.id_of_dir(dir)
    }

    /// Writes a whole record (atomically) into the folder of its key.
    pub fn save(&self, record: &ArtifactRecord) -> Result<CatalogEntry> {
        let key = record.key();
        let dir = self.entry_dir(&key);
        self.check_inside(&key, &dir.join(layout::METADATA_FILE))?;
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
        self.check_inside(key, &dir.join(layout::METADATA_FILE))?;
        let _guard = self.write_guard()?;
        let mut record = read_record(&dir)
            .map_err(|reason| Error::Damaged {
                id: key.id(),
                reason,
            })?
            .ok_or_else(|| Error::NotFound {
                message: format!("`{}` is not in the catalog", key.id()),
            })?;
        let before = record.clone();
        change(&mut record);
        // Nothing changed: nothing to write (and nothing that can fail on a full disk).
        if record == before {
            return Ok(CatalogEntry { record, dir });
        }
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
        if let Some(link) = contain::first_link(&self.root, &dir) {
            if link != dir {
                return Err(Error::Damaged {
                    id,
                    reason: format!(
                        "{}; remove that link yourself (what it points to is not rbee's)",
                        contain::link_reason(&link)
                    ),
                });
            }
            // The entry's own folder is a planted link: remove the link, never its target.
            fs::remove_file(&dir)
                .map_err(|e| Error::io(format!("removing the link {}", dir.display()), e))?;
            return Ok(Removed { id, bytes: 0 });
        }
        if fs::symlink_metadata(dir.join(layout::METADATA_FILE)).is_err() {
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
        let bytes = usage::freed_bytes(&usage::scan(&dir));
        let _guard = self.write_guard()?;
        // Remove the record first so a crash mid-removal leaves no entry pointing at missing files.
        fs::remove_file(dir.join(layout::METADATA_FILE))
            .map_err(|e| Error::io(format!("removing the record in {}", dir.display()), e))?;
        fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
        drop(lease);
        self.tidy_parents(&dir);
        Ok(Removed { id, bytes })
    }

    /// Removes the empty parents (org/repo folders) of a removed entry folder, never the root.
    fn tidy_parents(&self, dir: &Path) {
        let mut parent = dir.parent();
        while let Some(p) = parent {
            if p == self.root || fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
    }

    /// Re-hashes every file of an entry against its recorded digest and size. A mismatch marks
    /// the entry `failed` with the files that failed (so the next provision deletes and fetches
    /// them again); a clean check of an entry that had failed verification marks it `ready`
    /// again. When that mark cannot be written (a full disk), the report says so in
    /// [`VerifyReport::not_recorded`]. `on_bytes` sees hashing progress. Blocking.
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
        let key = entry.record.key();
        let _lease = self
            .try_lease_key(key.clone())?
            .ok_or_else(|| Error::Busy {
                id: entry.record.id.clone(),
                reason: "it is being downloaded; verify it once the download ends".into(),
            })?;
        let entry = self.read(&key)?.unwrap_or(entry);
        let mut files = Vec::new();
        for f in &entry.record.files {
            let path = layout::file_path(&entry.dir, &f.path);
            if let Some(link) = contain::first_link(&entry.dir, &path) {
                files.push(FileCheck {
                    path: f.path.clone(),
                    outcome: CheckOutcome::Refused {
                        reason: contain::link_reason(&link),
                    },
                });
                continue;
            }
            let outcome = match fs::symlink_metadata(&path) {
                Err(_) => CheckOutcome::Missing,
                Ok(m) if !m.is_file() => CheckOutcome::Refused {
                    reason: format!("{} is not a regular file", path.display()),
                },
                Ok(m) if m.len() != f.size => CheckOutcome::SizeMismatch {
                    expected: f.size,
                    actual: m.len(),
                },
                Ok(_) => {
                    let (actual, _) = contain::open_regular(&path)
                        .and_then(|file| Sha256Digest::of_reader(file, &mut on_bytes))
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
        let mut report = VerifyReport {
            id: entry.record.id.clone(),
            files,
            not_recorded: None,
        };
        let status = if !report.ok() {
            Some(ArtifactStatus::Failed {
                error: format!("verification failed: {}", report.problems().join("; ")),
                code: "integrity".into(),
                suspect: report
                    .files
                    .iter()
                    .filter(|f| {
                        !matches!(f.outcome, CheckOutcome::Ok | CheckOutcome::NoDigest { .. })
                    })
                    .map(|f| f.path.clone())
                    .collect(),
            })
        } else if matches!(&entry.record.status, ArtifactStatus::Failed { code, .. } if code == "integrity")
        {
            Some(ArtifactStatus::Ready)
        } else {
            None
        };
        if let Some(status) = status
            && let Err(e) = self.set_status(&key, status)
        {
            tracing::warn!(id = %report.id, error = %e.report(), "could not record the outcome of a verification");
            report.not_recorded = Some(e.report());
        }
        Ok(report)
    }

    /// Bytes used per entry, partial bytes, and free space. Hard-linked files are counted once
    /// in the totals (and shown per entry as shared); partial files count the bytes written.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut scanned = Vec::new();
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
            scanned.push((id, reference, status, usage::scan(&dir)));
        }
        let mut entries_of: HashMap<usage::Inode, usize> = HashMap::new();
        for (_, _, _, files) in &scanned {
            let inodes: std::collections::HashSet<_> = files.iter().map(|f| f.inode).collect();
            for inode in inodes {
                *entries_of.entry(inode).or_default() += 1;
            }
        }
        let all: Vec<usage::FileUse> = scanned.iter().flat_map(|s| s.3.iter().copied()).collect();
        let (total_bytes, partial_bytes) = usage::unique_bytes(&all);
        let mut entries: Vec<EntryUsage> = scanned
            .into_iter()
            .map(|(id, reference, status, files)| {
                let (bytes, partial_bytes) = usage::unique_bytes(&files);
                let shared: Vec<_> = files
                    .iter()
                    .filter(|f| !f.partial && entries_of.get(&f.inode).is_some_and(|n| *n > 1))
                    .copied()
                    .collect();
                EntryUsage {
                    id,
                    reference,
                    status,
                    bytes,
                    shared_bytes: usage::unique_bytes(&shared).0,
                    partial_bytes,
                }
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.bytes.saturating_add(e.partial_bytes)));
        Ok(DiskUsage {
            root: self.root.clone(),
            total_bytes,
            partial_bytes,
            free_bytes: available_space(&self.root).ok(),
            entries,
        })
    }

    /// A ready file anywhere in the catalog with this digest and size, to link instead of
    /// downloading the same bytes twice.
    pub fn find_by_digest(&self, sha256: &Sha256Digest, size: u64) -> Result<Option<PathBuf>> {
        Ok(self
            .find_copies(&[(*sha256, size)])?
            .remove(&(*sha256, size)))
    }

    /// Every present file of every ready entry, by (digest, size). Files reached through a
    /// symbolic link are never offered.
    pub fn digest_index(&self) -> Result<HashMap<(Sha256Digest, u64), PathBuf>> {
        self.copies(|_| true)
    }

    /// Of these (digest, size) pairs, those a ready entry holds, with the path of a present
    /// copy: one listing (which reads only changed records) for a download that wants to reuse
    /// several files, and a check on disk of the wanted files only.
    pub fn find_copies(
        &self,
        wanted: &[(Sha256Digest, u64)],
    ) -> Result<HashMap<(Sha256Digest, u64), PathBuf>> {
        let wanted: std::collections::HashSet<_> = wanted.iter().copied().collect();
        self.copies(|k| wanted.contains(k))
    }

    fn copies(
        &self,
        wanted: impl Fn(&(Sha256Digest, u64)) -> bool,
    ) -> Result<HashMap<(Sha256Digest, u64), PathBuf>> {
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
                let key = (sha256, f.size);
                if index.contains_key(&key) || !wanted(&key) {
                    continue;
                }
                let path = layout::file_path(&entry.dir, &f.path);
                if contain::first_link(&entry.dir, &path).is_none()
                    && fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == f.size)
                {
                    index.insert(key, path);
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

    /// Records downloads left by dead processes as `incomplete`. Best effort: reads already
    /// show them so, and a catalog on a full disk must still list.
    fn recover(&self, dead: &[CatalogKey]) {
        for key in dead {
            // Holding the lease proves the download is dead and keeps a new one from starting
            // while the record changes.
            let Ok(Some(_lease)) = self.try_lease_key(key.clone()) else {
                continue;
            };
            let result = self.update(key, |r| {
                if let ArtifactStatus::Downloading { bytes, total } = r.status {
                    r.status = ArtifactStatus::Incomplete { bytes, total };
                }
            });
            if let Err(e) = result {
                tracing::warn!(id = %key.id(), error = %e.report(), "could not record a dead process's download as incomplete; it is shown so anyway");
            }
        }
    }

    fn write_guard(&self) -> Result<WriteGuard<'_>> {
        let guard = rbee_artifact::lock_unpoisoned(&self.write_lock);
        let path = self.root.join(layout::CATALOG_LOCK_FILE);
        let file = contain::open_lock(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        file.lock()
            .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
        Ok(WriteGuard {
            _file: file,
            _guard: guard,
        })
    }
}

fn listing_id(listing: &Listing) -> &str {
    match listing {
        Listing::Entry(e) => &e.record.id,
        Listing::Damaged { id, .. } => id,
    }
}

/// Pushes the sub-folders of the folder `rel` for a walk.
fn push_children(stack: &mut Vec<String>, rel: &str, children: &[String]) {
    for child in children {
        stack.push(if rel.is_empty() {
            child.clone()
        } else {
            format!("{rel}/{child}")
        });
    }
}

struct WriteGuard<'a> {
    _file: File,
    _guard: std::sync::MutexGuard<'a, ()>,
}

/// Opens (creating the artifact's folders if needed) its lock file. Creates nothing when they
/// exist, so a lease can be taken on a full disk.
fn open_lock_file(dir: &Path) -> Result<File> {
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
fn lease_held(dir: &Path) -> bool {
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
fn shown_status(dir: &Path, mut record: ArtifactRecord) -> ArtifactRecord {
    if let ArtifactStatus::Downloading { bytes, total } = record.status
        && !lease_held(dir)
    {
        record.status = ArtifactStatus::Incomplete { bytes, total };
    }
    record
}

fn read_record(dir: &Path) -> std::result::Result<Option<ArtifactRecord>, String> {
    let path = dir.join(layout::METADATA_FILE);
    let text = match contain::open_regular(&path).and_then(|file| {
        // A record is a few KiB; a huge file here is not one, and must not fill memory.
        let mut text = Vec::new();
        file.take(MAX_RECORD_BYTES + 1).read_to_end(&mut text)?;
        Ok(text)
    }) {
        Ok(text) if text.len() as u64 > MAX_RECORD_BYTES => {
            return Err(format!(
                "{} is larger than {MAX_RECORD_BYTES} bytes: not a record",
                path.display()
            ));
        }
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    ArtifactRecord::decode(&text)
        .map(Some)
        .map_err(|why| format!("{}: {why}", path.display()))
}

/// The largest `metadata.json` read (a record of a snapshot with thousands of files is well
/// under a MiB).
const MAX_RECORD_BYTES: u64 = 16 << 20;

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

#[cfg(test)]
mod index_tests;
#[cfg(test)]
mod tests;
