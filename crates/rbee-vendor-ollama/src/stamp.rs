//! "Verified once": having hashed a blob of Ollama's store, rbee notes the digest on the file
//! itself, in an extended attribute (`user.rbee.sha256`) that every hard link shares, keyed by
//! the file's size and modification time. Taking the same blob again — into another catalog,
//! or after `rbee model rm` — then needs no second read of every byte. Writing to the file
//! moves its modification time and so voids the note; Ollama itself never rewrites a blob. On
//! a file system without user extended attributes nothing is noted and every take hashes.

use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;

use rbee_artifact::Sha256Digest;

const ATTRIBUTE: &str = "user.rbee.sha256";

/// What the note says besides the digest: the state of the file it was taken in.
fn key(meta: &Metadata) -> String {
    format!("{} {}.{:09}", meta.len(), meta.mtime(), meta.mtime_nsec())
}

/// The digest noted on `file`, if the note was made when the file was as `meta` shows it.
pub(crate) fn noted(file: &File, meta: &Metadata) -> Option<Sha256Digest> {
    let mut buf = [0u8; 128];
    let len = rustix::fs::fgetxattr(file, ATTRIBUTE, &mut buf[..]).ok()?;
    let (digest, state) = std::str::from_utf8(&buf[..len]).ok()?.split_once(' ')?;
    (state == key(meta)).then(|| digest.parse().ok()).flatten()
}

/// Notes that `file`, as `meta` shows it (read before hashing), hashes to `digest`. Best
/// effort: a file rbee may not write to, or a file system without the attribute, is skipped.
pub(crate) fn note(file: &File, meta: &Metadata, digest: &Sha256Digest) {
    let value = format!("{digest} {}", key(meta));
    if let Err(e) = rustix::fs::fsetxattr(
        file,
        ATTRIBUTE,
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    ) {
        tracing::debug!(error = %e, "could not note the verified digest on the blob");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_holds_until_the_file_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"bytes").unwrap();
        let digest = Sha256Digest::of(b"bytes");
        let file = File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(noted(&file, &meta), None);
        note(&file, &meta, &digest);
        if rustix::fs::fgetxattr(&file, ATTRIBUTE, &mut [0u8; 128][..]).is_err() {
            return; // no user extended attributes here: nothing to check
        }
        // Another link to the same file sees the note.
        let link = dir.path().join("link");
        std::fs::hard_link(&path, &link).unwrap();
        let linked = File::open(&link).unwrap();
        assert_eq!(noted(&linked, &linked.metadata().unwrap()), Some(digest));
        // A write (same size) moves the modification time: the note no longer holds.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"BYTES").unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(noted(&file, &file.metadata().unwrap()), None);
    }
}
