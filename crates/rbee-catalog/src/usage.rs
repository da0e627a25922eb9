//! Disk accounting that matches what the file system really holds: a file hard-linked into
//! several entries (digest reuse, `--local-dir`) is counted once, and a partial file counts the
//! blocks written, not the length it was preallocated or truncated to.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rbee_artifact::partial;

use crate::layout;

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
