//! Disk accounting that matches what the file system really holds: a file hard-linked into
//! several entries (digest reuse, `--local-dir`) is counted once, and a partial file counts the
//! blocks written, not the length it was preallocated or truncated to.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rbee_artifact::{Result, available_space, partial};
use serde::Serialize;

use crate::{Catalog, Listing, layout};

/// A file's identity on disk: (device, inode).
pub(super) type Inode = (u64, u64);

/// One file below an entry's `files/` folder.
#[derive(Debug, Clone, Copy)]
pub(super) struct FileUse {
    pub inode: Inode,
    /// Bytes it occupies: the length of a complete file; for a partial one, no more than its
    /// allocated blocks (a preallocated or sparse `.part` is mostly holes).
    pub bytes: u64,
    /// Hard links to this inode anywhere on the file system.
    pub links: u64,
    /// A `.part` or `.part.state` file.
    pub partial: bool,
}

/// Every regular file below `entry_dir/files`, not following links.
pub(super) fn scan(entry_dir: &Path) -> Vec<FileUse> {
    let mut out = Vec::new();
    let mut stack = vec![layout::files_dir(entry_dir)];
    while let Some(d) = stack.pop() {
        let Ok(read) = fs::read_dir(&d) else { continue };
        for item in read.flatten() {
            let Ok(meta) = item.metadata() else { continue };
            if meta.is_dir() {
                stack.push(item.path());
            } else if let Some(f) = file_use(&item.path(), &meta) {
                out.push(f);
            }
        }
    }
    out
}

/// These regular files (links and missing files are left out).
pub(super) fn scan_files(paths: &[PathBuf]) -> Vec<FileUse> {
    paths
        .iter()
        .filter_map(|p| file_use(p, &fs::symlink_metadata(p).ok()?))
        .collect()
}

fn file_use(path: &Path, meta: &fs::Metadata) -> Option<FileUse> {
    if !meta.is_file() {
        return None;
    }
    let name = path.file_name()?.to_string_lossy();
    let partial =
        name.ends_with(partial::PART_SUFFIX) || name.ends_with(partial::PART_STATE_SUFFIX);
    let bytes = if partial {
        meta.len().min(meta.blocks().saturating_mul(512))
    } else {
        meta.len()
    };
    Some(FileUse {
        inode: (meta.dev(), meta.ino()),
        bytes,
        links: meta.nlink(),
        partial,
    })
}

/// (complete bytes, partial bytes) of `files`, each inode once.
pub(super) fn unique_bytes(files: &[FileUse]) -> (u64, u64) {
    let mut seen = HashSet::new();
    let (mut complete, mut partial) = (0u64, 0u64);
    for f in files {
        if seen.insert(f.inode) {
            let sum = if f.partial {
                &mut partial
            } else {
                &mut complete
            };
            *sum = sum.saturating_add(f.bytes);
        }
    }
    (complete, partial)
}

/// Bytes that removing every one of `files` gives back: an inode counts only when all its
/// links are among them (a link elsewhere, inside the catalog or out, keeps the data alive).
pub(super) fn freed_bytes(files: &[FileUse]) -> u64 {
    let mut names: HashMap<Inode, (u64, FileUse)> = HashMap::new();
    for f in files {
        names.entry(f.inode).or_insert((0, *f)).0 += 1;
    }
    names
        .values()
        .filter(|(count, f)| *count >= f.links)
        .fold(0u64, |t, (_, f)| t.saturating_add(f.bytes))
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

impl Catalog {
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
            scanned.push((id, reference, status, scan(&dir)));
        }
        let mut entries_of: HashMap<Inode, usize> = HashMap::new();
        for (_, _, _, files) in &scanned {
            let inodes: std::collections::HashSet<_> = files.iter().map(|f| f.inode).collect();
            for inode in inodes {
                *entries_of.entry(inode).or_default() += 1;
            }
        }
        let all: Vec<FileUse> = scanned.iter().flat_map(|s| s.3.iter().copied()).collect();
        let (total_bytes, partial_bytes) = unique_bytes(&all);
        let mut entries: Vec<EntryUsage> = scanned
            .into_iter()
            .map(|(id, reference, status, files)| {
                let (bytes, partial_bytes) = unique_bytes(&files);
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
                    shared_bytes: unique_bytes(&shared).0,
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
}
