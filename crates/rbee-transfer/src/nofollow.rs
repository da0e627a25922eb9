//! Opening the engine's own files (`.part`, `.part.state`, `.part.lock`) without following a
//! link planted in their place: whoever can write the cache folder must not be able to make
//! the engine write, truncate or read another file through it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Opens `path` for reading and writing, creating it when absent. A symbolic link, a hard
/// link (a second name of another file) or anything but a regular file at `path` is removed
/// (the link itself, never its target) and replaced by a new, empty file.
pub(crate) fn open_rw(path: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => {
            let meta = file.metadata()?;
            if meta.is_file() && meta.nlink() == 1 {
                return Ok(file);
            }
            replace(path, "is not a plain file of its own")
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => replace(path, "is a symbolic link"),
        Err(e) => Err(e),
    }
}

/// Opens an existing `path` for reading; a symbolic link there is an error (`ELOOP`), never
/// followed.
pub(crate) fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Creates `path`, failing if anything (a link included) is already there.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn replace(path: &Path, why: &str) -> io::Result<File> {
    tracing::warn!(path = %path.display(), "{why}; replacing it with a new file");
    std::fs::remove_file(path)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn links_are_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let part = dir.path().join("x.part");
        std::os::unix::fs::symlink(&victim, &part).unwrap();
        let mut f = open_rw(&part).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&part).unwrap().is_symlink());

        let hard = dir.path().join("y.part");
        std::fs::hard_link(&victim, &hard).unwrap();
        open_rw(&hard).unwrap().write_all(b"other").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

        let state = dir.path().join("x.part.state");
        std::os::unix::fs::symlink(&victim, &state).unwrap();
        assert!(open_read(&state).is_err());
        assert!(create_new(&state).is_err());
        let mut s = String::new();
        open_read(&victim).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "precious");
    }
}
