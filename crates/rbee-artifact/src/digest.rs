//! Content digests as typed values: SHA-256 ([`Sha256Digest`]), git blob ids ([`GitBlobId`])
//! and either of them ([`ContentDigest`]). Each displays and serializes as lower-case hex,
//! the form on disk and on the wire.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 digest; displays and parses as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// The algorithm's name as digests that name it are written: `sha256:`.
    pub const PREFIX: &'static str = "sha256:";

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads `sha256:<64 hex digits>`, the spelling that names its algorithm (Ollama manifests,
    /// GitHub asset digests): bare hex, which [`FromStr`] also takes, is refused here.
    pub fn from_prefixed(text: &str) -> Result<Self, InvalidDigest> {
        text.strip_prefix(Self::PREFIX)
            .and_then(Self::from_hex)
            .ok_or_else(|| InvalidDigest(text.to_string()))
    }

    /// Exactly 64 hex digits.
    fn from_hex(hex: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        if hex.len() != 64 {
            return None;
        }
        hex::decode_to_slice(hex, &mut out).ok()?;
        Some(Self(out))
    }

    /// Hashes a byte slice.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// Hashes everything `reader` yields, calling `on_bytes` with each block's length so the
    /// caller can show progress. Blocking: call from a blocking context.
    pub fn of_reader(
        mut reader: impl Read,
        mut on_bytes: impl FnMut(u64),
    ) -> std::io::Result<(Self, u64)> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            total += n as u64;
            on_bytes(n as u64);
        }
        Ok((Self(hasher.finalize().into()), total))
    }

    /// Hashes a file. Blocking.
    pub fn of_file(
        path: &std::path::Path,
        on_bytes: impl FnMut(u64),
    ) -> std::io::Result<(Self, u64)> {
        Self::of_reader(std::fs::File::open(path)?, on_bytes)
    }
}

/// Incremental SHA-256 (for bytes that arrive in pieces).
#[derive(Debug, Clone, Default)]
pub struct Sha256Hasher(Sha256);

impl Sha256Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything fed.
    pub fn finalize(self) -> Sha256Digest {
        Sha256Digest(self.0.finalize().into())
    }
}

/// Incremental git blob id (`sha1("blob <size>\0" + bytes)`): how the Hub names files it
/// keeps in git rather than LFS, which have no published sha256.
#[derive(Debug, Clone)]
pub struct GitBlobHasher(sha1::Sha1);

impl GitBlobHasher {
    /// A hasher for content of `size` bytes (git hashes the size first).
    pub fn new(size: u64) -> Self {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {size}\0").as_bytes());
        Self(h)
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The blob id of everything fed.
    pub fn finalize(self) -> GitBlobId {
        GitBlobId(self.0.finalize().into())
    }

    /// The blob id of the first `size` bytes of `file`, read at their offsets (its position
    /// is left alone, so a file shared with positional writers can be read). Blocking.
    pub fn of_open_file(file: &std::fs::File, size: u64) -> std::io::Result<GitBlobId> {
        use std::os::unix::fs::FileExt;
        const BLOCK: u64 = 1 << 20;
        let mut hasher = Self::new(size);
        let mut buf = vec![0u8; size.min(BLOCK) as usize];
        let mut off = 0u64;
        while off < size {
            let n = (size - off).min(BLOCK) as usize;
            file.read_exact_at(&mut buf[..n], off)?;
            hasher.update(&buf[..n]);
            off += n as u64;
        }
        Ok(hasher.finalize())
    }
}

/// A git blob id (`sha1("blob <size>\0" + bytes)`); displays and parses as 40 lower-case hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GitBlobId([u8; 20]);

impl fmt::Display for GitBlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for GitBlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "git-blob:{self}")
    }
}

impl FromStr for GitBlobId {
    type Err = InvalidDigest;

    /// Accepts 40 hex digits in either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 20];
        if s.len() != 40 {
            return Err(InvalidDigest(s.to_string()));
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| InvalidDigest(s.to_string()))?;
        Ok(Self(out))
    }
}

/// The digest a file is checked against: SHA-256 where the vendor publishes one, the git blob
/// id for files a Hub keeps in git. Displays as the bare hex of a SHA-256 and as
/// `git blob HEX` for a blob id, so a message says which kind was compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentDigest {
    /// A SHA-256 of the bytes.
    Sha256(Sha256Digest),
    /// A git blob id of the bytes.
    GitBlob(GitBlobId),
}

impl From<Sha256Digest> for ContentDigest {
    fn from(d: Sha256Digest) -> Self {
        ContentDigest::Sha256(d)
    }
}

impl From<GitBlobId> for ContentDigest {
    fn from(d: GitBlobId) -> Self {
        ContentDigest::GitBlob(d)
    }
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentDigest::Sha256(d) => d.fmt(f),
            ContentDigest::GitBlob(d) => write!(f, "git blob {d}"),
        }
    }
}

impl From<sha2::digest::Output<Sha256>> for Sha256Digest {
    fn from(out: sha2::digest::Output<Sha256>) -> Self {
        Self(out.into())
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

/// The text is not a digest of the expected kind (64 hex digits for SHA-256, 40 for a git
/// blob id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a digest (expected 64 hexadecimal digits for SHA-256, 40 for a git blob id)")]
pub struct InvalidDigest(pub String);

impl FromStr for Sha256Digest {
    type Err = InvalidDigest;

    /// Accepts 64 hex digits, optionally prefixed with `sha256:` (GitHub's form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s.strip_prefix(Self::PREFIX).unwrap_or(s))
            .ok_or_else(|| InvalidDigest(s.to_string()))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for GitBlobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GitBlobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefixed_digest_needs_its_prefix_once() {
        let d = Sha256Digest::of(b"x");
        assert_eq!(Sha256Digest::from_prefixed(&format!("sha256:{d}")), Ok(d));
        assert!(Sha256Digest::from_prefixed(&d.to_string()).is_err());
        assert!(Sha256Digest::from_prefixed(&format!("sha512:{d}")).is_err());
        assert!(Sha256Digest::from_prefixed(&format!("sha256:sha256:{d}")).is_err());
        assert!(Sha256Digest::from_prefixed("sha256:abc").is_err());
    }

    #[test]
    fn git_blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let mut h = GitBlobHasher::new(6);
        h.update(b"hello\n");
        assert_eq!(
            h.finalize().to_string(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let empty = std::fs::File::open(&empty).unwrap();
        assert_eq!(
            GitBlobHasher::of_open_file(&empty, 0).unwrap().to_string(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        let hello = dir.path().join("hello");
        std::fs::write(&hello, b"hello\nand more after the first six bytes").unwrap();
        let hello = std::fs::File::open(&hello).unwrap();
        assert_eq!(
            GitBlobHasher::of_open_file(&hello, 6).unwrap().to_string(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // Fewer bytes than asked for: an error, not the id of other content.
        assert!(GitBlobHasher::of_open_file(&hello, 1 << 30).is_err());
    }

    #[test]
    fn git_blob_ids_parse_in_either_case_and_show_lower_case() {
        let id: GitBlobId = "CE013625030BA8DBA906F756967F9E9CA394464A".parse().unwrap();
        assert_eq!(id.to_string(), "ce013625030ba8dba906f756967f9e9ca394464a");
        assert!("ce01".parse::<GitBlobId>().is_err());
        assert!("zz".repeat(20).parse::<GitBlobId>().is_err());
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert!(
            hex.parse::<GitBlobId>().is_err(),
            "a SHA-256 is not a blob id"
        );
    }

    #[test]
    fn content_digests_say_which_kind_they_are() {
        let sha = ContentDigest::from(Sha256Digest::of(b"abc"));
        assert_eq!(
            sha.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = GitBlobHasher::new(6);
        h.update(b"hello\n");
        let blob = ContentDigest::from(h.finalize());
        assert_eq!(
            blob.to_string(),
            "git blob ce013625030ba8dba906f756967f9e9ca394464a"
        );
        assert_ne!(sha, blob);
    }

    #[test]
    fn a_digest_serializes_as_the_hex_older_files_hold() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let d = Sha256Digest::of(b"abc");
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{hex}\""));
        let back: Sha256Digest = serde_json::from_str(&format!("\"{hex}\"")).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Sha256Digest>("\"abc\"").is_err());
    }

    #[test]
    fn a_git_blob_id_serializes_as_its_hex() {
        let hex = "ce013625030ba8dba906f756967f9e9ca394464a";
        let id: GitBlobId = hex.parse().unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{hex}\""));
        let back: GitBlobId = serde_json::from_str(&format!("\"{hex}\"")).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<GitBlobId>("\"abc\"").is_err());
    }

    #[test]
    fn known_vector_and_round_trip() {
        let d = Sha256Digest::of(b"abc");
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(d.to_string(), hex);
        assert_eq!(hex.parse::<Sha256Digest>().unwrap(), d);
        assert_eq!(format!("sha256:{hex}").parse::<Sha256Digest>().unwrap(), d);
        assert_eq!(hex.to_uppercase().parse::<Sha256Digest>().unwrap(), d);
        assert!("abc".parse::<Sha256Digest>().is_err());
        assert!("zz".repeat(32).parse::<Sha256Digest>().is_err());
        let (r, n) = Sha256Digest::of_reader(&b"abc"[..], |_| {}).unwrap();
        assert_eq!((r, n), (d, 3));
        let mut h = Sha256Hasher::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finalize(), d);
    }
}
