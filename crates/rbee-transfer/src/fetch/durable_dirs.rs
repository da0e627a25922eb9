//! Folder syncs: what makes a renamed file's name survive a crash. A file fetched alone syncs
//! its folder at once; a batch collects the folders its files were published into and syncs
//! each once before the batch reports success, so nothing is recorded ready on a name that
//! is not yet durable.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rbee_artifact::lock_unpoisoned;

/// Folders whose entries a batch changed and has not synced yet.
#[derive(Debug, Default)]
pub(crate) struct DirtyDirs {
    dirs: Mutex<HashSet<PathBuf>>,
}

impl DirtyDirs {
    /// Notes that a file was published (or found complete) in `dir`.
    pub(crate) fn add(&self, dir: &Path) {
        let mut dirs = lock_unpoisoned(&self.dirs);
        if !dirs.contains(dir) {
            dirs.insert(dir.to_path_buf());
        }
    }

    /// Syncs each folder noted so far, once (blocking), and forgets them. Returns how many.
    pub(crate) fn sync(&self) -> u64 {
        let dirs = std::mem::take(&mut *lock_unpoisoned(&self.dirs));
        for dir in &dirs {
            sync_dir(dir);
        }
        dirs.len() as u64
    }
}

/// Syncs `dir` so the names just created in it are durable. Best effort, as some file systems
/// refuse to sync a folder; the files' own bytes were synced before their rename.
pub(crate) fn sync_dir(dir: &Path) {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => {}
        Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "could not sync the folder"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_folder_is_synced_once_however_many_files_it_got() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let dirty = DirtyDirs::default();
        for _ in 0..100 {
            dirty.add(&a);
        }
        dirty.add(&b);
        assert_eq!(dirty.sync(), 2);
        assert_eq!(dirty.sync(), 0, "nothing left to sync");
    }
}
