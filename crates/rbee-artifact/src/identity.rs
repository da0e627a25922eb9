//! Telling a file apart from the same path holding other bytes, without reading them.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// A file's device and inode, size and modification time (to the nanosecond): the same for a
/// file left as it was. Any write moves the modification time, unless the writer puts it back;
/// where that matters, what was read must still be checked by its digest. The change time is
/// left out: it also moves when the file gains or loses a name (linked into another catalog
/// entry, or such a link removed), which leaves its bytes as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
}

impl FileIdentity {
    /// Bytes of [`to_bytes`](Self::to_bytes).
    pub const LEN: usize = 32;

    /// The identity of the file `meta` describes.
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
        }
    }

    /// Little-endian, in the order of the fields, for a record on disk.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let fields = [self.dev, self.ino, self.size, self.mtime_ns as u64];
        for (slot, v) in out.chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// What [`to_bytes`](Self::to_bytes) wrote.
    pub fn from_bytes(b: &[u8; Self::LEN]) -> Self {
        let field = |i: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(v)
        };
        Self {
            dev: field(0),
            ino: field(1),
            size: field(2),
            mtime_ns: field(3) as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_survives_its_bytes_and_tells_a_rewritten_file_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let was = FileIdentity::of(&std::fs::metadata(&path).unwrap());
        assert_eq!(FileIdentity::from_bytes(&was.to_bytes()), was);
        std::fs::hard_link(&path, dir.path().join("g")).unwrap();
        assert_eq!(FileIdentity::of(&std::fs::metadata(&path).unwrap()), was);
        let new = dir.path().join("new");
        std::fs::write(&new, b"two").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_ne!(FileIdentity::of(&std::fs::metadata(&path).unwrap()), was);
    }
}
