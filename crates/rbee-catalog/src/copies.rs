//! Finding a ready copy of some bytes elsewhere in the catalog, to link instead of downloading
//! them again.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use rbee_artifact::{Result, Sha256Digest};

use crate::{ArtifactStatus, Catalog, Listing, contain, layout};

impl Catalog {
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
}
