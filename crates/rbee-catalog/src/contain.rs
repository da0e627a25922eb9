//! Keeping every file operation inside the catalog.
//!
//! rbee never creates symbolic links inside its catalog, so a link found there was planted (or
//! left by a tool that does not belong there). Following one would let a record or a folder
//! make rbee read, hash, link, overwrite or delete a file anywhere the user can reach. Paths
//! are checked component by component without following links; the catalog root itself may be
//! a link (a user's choice of where the cache lives).
//!
//! The check and the use are separate system calls, so a process racing rbee with the same
//! rights could still swap a folder between them; lock files and hashed files are additionally
//! opened with `O_NOFOLLOW`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// The first symbolic link on the way from `base` (exclusive) down to `path` (inclusive), or
/// `path` itself when it is not below `base` or contains `..`. A component that does not exist
/// ends the walk: nothing below it can be a link.
pub(crate) fn first_link(base: &Path, path: &Path) -> Option<PathBuf> {
    let Ok(rest) = path.strip_prefix(base) else {
        return Some(path.to_path_buf());
    };
    let mut at = base.to_path_buf();
    for component in rest.components() {
        match component {
            Component::Normal(name) => at.push(name),
            Component::CurDir => continue,
            _ => return Some(path.to_path_buf()),
        }
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => return Some(at),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Why a path inside an entry cannot be used, for messages: the link that was found.
pub(crate) fn link_reason(link: &Path) -> String {
    format!(
        "{} is a symbolic link; rbee does not follow links inside its catalog",
        link.display()
    )
}

/// Opens a file for reading without following a link at its last component, and only when it
/// is a regular file.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// Opens for writing, creating it if needed and keeping what it holds, a small file of the
/// catalog (a lock, a sidecar) without following a link at its last component.
pub(crate) fn open_lock(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_links_below_the_base_only() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("root");
        std::fs::create_dir_all(base.join("a/b")).unwrap();
        std::fs::write(base.join("a/b/f"), b"x").unwrap();
        assert_eq!(first_link(&base, &base.join("a/b/f")), None);
        assert_eq!(first_link(&base, &base.join("a/b/missing/deeper")), None);

        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, base.join("a/link")).unwrap();
        assert_eq!(
            first_link(&base, &base.join("a/link/f")),
            Some(base.join("a/link"))
        );
        std::os::unix::fs::symlink(outside.join("f"), base.join("a/b/g")).unwrap();
        assert_eq!(
            first_link(&base, &base.join("a/b/g")),
            Some(base.join("a/b/g"))
        );
        assert!(first_link(&base, &base.join("a/../../outside")).is_some());
        assert!(first_link(&base, &outside).is_some());

        // The base itself may be a link.
        let linked_base = tmp.path().join("linked");
        std::os::unix::fs::symlink(&base, &linked_base).unwrap();
        assert_eq!(first_link(&linked_base, &linked_base.join("a/b/f")), None);

        assert!(open_regular(&base.join("a/b/g")).is_err());
        assert!(open_regular(&base.join("a/b")).is_err());
        assert!(open_regular(&base.join("a/b/f")).is_ok());
        assert!(open_lock(&base.join("a/b/g")).is_err());
        assert!(
            !outside.join("f").exists(),
            "no file was created through the link"
        );
    }
}
