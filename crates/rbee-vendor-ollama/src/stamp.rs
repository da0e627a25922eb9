//! "Verified once": having hashed a blob of Ollama's store, rbee notes the digest on the file
//! itself, in an extended attribute (`user.rbee.sha256`) that every hard link shares, with the
//! file's size and modification time and the moment the note was made. Taking the same blob
//! again — into another catalog, or after `rbee model rm` — then needs no second read of every
//! byte.
//!
//! The note holds only while the inode's change time is no later than the note itself: any
//! write, and any later change of the modification time (`touch -d`, `rsync -t`), moves the
//! change time, which no unprivileged writer can set back. Linking the blob moves it too, so
//! whoever links a noted blob checks the note first and notes it again after. A writer who can forge the note can
//! equally forge the blob Ollama itself loads; on a file system without user extended
//! attributes, or a blob rbee may not write to, nothing is noted and every take hashes.

use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rbee_artifact::{FileIdentity, Sha256Digest};

const ATTRIBUTE: &str = "user.rbee.sha256";

/// How far the change time may trail the note: setting the attribute itself moves the change
/// time, a moment after the clock was read for the note.
const NOTE_SETTLES_WITHIN: Duration = Duration::from_millis(100);

/// The state of the file a note describes.
fn key(meta: &Metadata) -> String {
    format!("{} {}.{:09}", meta.len(), meta.mtime(), meta.mtime_nsec())
}

fn nanos(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

/// The digest noted on `file`, if the note was made when the file was as `meta` shows it and
/// nothing changed the inode since.
pub(crate) fn noted(file: &File, meta: &Metadata) -> Option<Sha256Digest> {
    let mut buf = [0u8; 160];
    let len = rustix::fs::fgetxattr(file, ATTRIBUTE, &mut buf[..]).ok()?;
    let text = std::str::from_utf8(&buf[..len]).ok()?;
    let (digest, rest) = text.split_once(' ')?;
    let (state, made) = rest.rsplit_once(' ')?;
    if state != key(meta) {
        return None;
    }
    let made: i128 = made.parse().ok()?;
    let changed = nanos(meta.ctime(), meta.ctime_nsec());
    if changed > made + NOTE_SETTLES_WITHIN.as_nanos() as i128 {
        return None;
    }
    digest.parse().ok()
}

/// Notes that `file`, as `meta` shows it (read before hashing), hashes to `digest`, unless the
/// inode changed since `meta` was read (a write while it was hashed). Best effort: a file rbee
/// may not write to, or a file system without the attribute, is skipped.
pub(crate) fn note(file: &File, meta: &Metadata, digest: &Sha256Digest) {
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return;
    };
    match file.metadata() {
        Ok(m) if (m.ctime(), m.ctime_nsec()) == (meta.ctime(), meta.ctime_nsec()) => {}
        _ => return,
    }
    let value = format!("{digest} {} {}", key(meta), now.as_nanos());
    if let Err(e) = rustix::fs::fsetxattr(
        file,
        ATTRIBUTE,
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    ) {
        tracing::debug!(error = %e, "could not note the verified digest on the blob");
    }
}

/// Whether `a` and `b` are the same inode in the same state (size, modification time).
pub(crate) fn same_file_unchanged(a: &Metadata, b: &Metadata) -> bool {
    FileIdentity::of(a) == FileIdentity::of(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes_work(file: &File) -> bool {
        rustix::fs::fgetxattr(file, ATTRIBUTE, &mut [0u8; 160][..]).is_ok()
    }

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
        if !attributes_work(&file) {
            return; // no user extended attributes here: nothing to check
        }
        assert_eq!(noted(&file, &file.metadata().unwrap()), Some(digest));
        // A write (same size) moves the modification time: the note no longer holds.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, b"BYTES").unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(noted(&file, &file.metadata().unwrap()), None);
    }

    #[test]
    fn a_note_does_not_survive_other_bytes_put_back_under_the_old_modification_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"bytes").unwrap();
        let digest = Sha256Digest::of(b"bytes");
        let file = File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        note(&file, &meta, &digest);
        if !attributes_work(&file) {
            return;
        }
        // Another file system user writes other bytes and sets the modification time back:
        // size and modification time match the note, but the change time moved.
        std::thread::sleep(NOTE_SETTLES_WITHIN * 2);
        std::fs::write(&path, b"BYTES").unwrap();
        let w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        w.set_modified(meta.modified().unwrap()).unwrap();
        drop(w);
        let file = File::open(&path).unwrap();
        let now = file.metadata().unwrap();
        assert_eq!(key(&now), key(&meta), "the forged time matches the note");
        assert_eq!(noted(&file, &now), None);
    }

    #[test]
    fn a_link_voids_the_note_until_the_linker_notes_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"bytes").unwrap();
        let digest = Sha256Digest::of(b"bytes");
        let file = File::open(&path).unwrap();
        let before = file.metadata().unwrap();
        note(&file, &before, &digest);
        if !attributes_work(&file) {
            return;
        }
        std::thread::sleep(NOTE_SETTLES_WITHIN * 2);
        let link = dir.path().join("link");
        std::fs::hard_link(&path, &link).unwrap();
        let linked = File::open(&link).unwrap();
        let after = linked.metadata().unwrap();
        assert!(same_file_unchanged(&before, &after));
        assert_eq!(
            noted(&linked, &after),
            None,
            "the link moved the change time"
        );
        note(&linked, &after, &digest);
        assert_eq!(noted(&file, &file.metadata().unwrap()), Some(digest));
    }
}
