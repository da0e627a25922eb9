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
mod copies;
mod hygiene;
mod index;
pub mod layout;
mod lease;
mod listing;
mod record;
mod usage;
mod verify;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::{Deserialize, Serialize};

pub use hygiene::{PruneItem, PruneReason, PruneReport, parse_age, parse_cache_size};
pub use lease::DownloadLease;
use lease::{lease_held, shown_status};
pub use record::{
    ArtifactRecord, ArtifactStatus, CatalogEntry, FileRecord, Listing, RECORD_SCHEMA,
};
pub use usage::{DiskUsage, EntryUsage};
pub use verify::{CheckOutcome, FileCheck, VerifyReport};

use rbee_artifact::{ArtifactRef, CatalogKey, Error, Result};

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
                record: shown_status(&dir, Arc::new(record)),
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
            record: Arc::new(record.clone()),
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
            return Ok(CatalogEntry {
                record: Arc::new(record),
                dir,
            });
        }
        record.updated_at = Utc::now();
        write_record(&dir, &record)?;
        Ok(CatalogEntry {
            record: Arc::new(record),
            dir,
        })
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

    fn id_of_dir(&self, dir: &Path) -> String {
        dir.strip_prefix(&self.root)
            .unwrap_or(dir)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("--")
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

struct WriteGuard<'a> {
    _file: File,
    _guard: std::sync::MutexGuard<'a, ()>,
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
