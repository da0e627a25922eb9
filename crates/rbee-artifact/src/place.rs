//! Placing files: the free space where they go, and putting an existing file at a new name
//! without spending space when the file system allows.

use std::fs;
use std::io;
use std::path::Path;

/// Puts the file at `source` at `target`: a hard link when both are on one file system, else a
/// synced copy. It is written at `temp` (beside `target`; whatever is there is replaced) and
/// renamed over `target`, so `target` is never half there. A symbolic link at `source` is
/// followed: the link's file is placed, never the link.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let (a, b) = (dir.path().join("a"), dir.path().join("b"));
/// std::fs::write(&a, b"bytes")?;
/// rbee_artifact::link_or_copy(&a, &b, &dir.path().join("b.tmp"))?;
/// assert_eq!(std::fs::read(&b)?, b"bytes");
/// assert!(!dir.path().join("b.tmp").exists());
/// # Ok(()) }
/// ```
pub fn link_or_copy(source: &Path, target: &Path, temp: &Path) -> io::Result<()> {
    let source = fs::canonicalize(source)?;
    let _ = fs::remove_file(temp);
    if let Err(link_error) = fs::hard_link(&source, temp) {
        tracing::debug!(from = %source.display(), to = %temp.display(), error = %link_error, "hard link refused; copying");
        fs::copy(&source, temp)?;
        fs::File::open(temp)?.sync_all()?;
    }
    fs::rename(temp, target).inspect_err(|_| {
        let _ = fs::remove_file(temp);
    })
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
mod tests {
    use super::*;

    #[test]
    fn a_link_is_followed_and_the_old_target_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::write(&real, b"real bytes").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"old").unwrap();
        link_or_copy(&link, &target, &dir.path().join("target.tmp")).unwrap();
        let meta = fs::symlink_metadata(&target).unwrap();
        assert!(meta.is_file(), "the link's file is placed, not the link");
        assert_eq!(fs::read(&target).unwrap(), b"real bytes");
    }

    #[test]
    fn a_missing_source_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"old").unwrap();
        let tmp = dir.path().join("target.tmp");
        assert!(link_or_copy(&dir.path().join("absent"), &target, &tmp).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert!(!tmp.exists());
    }
}
