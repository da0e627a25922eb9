//! Where each object lives in the store, relative to the URL's prefix:
//!
//! ```text
//! PREFIX/
//!   blobs/sha256/<64 hex>       the bytes of one file, named by their digest
//!   manifests/<catalog id>.json an artifact: reference, revision, files (path, size, sha256)
//!   leases/<catalog id>.json    which hive fetches the artifact from its origin, until when
//!   progress/<catalog id>.json  how far that hive is
//! ```
//!
//! Catalog ids are made of `[A-Za-z0-9._-]` and `--` separators, so they are safe object names.

use rbee_artifact::Sha256Digest;

/// The folder of manifests.
pub const MANIFESTS: &str = "manifests";

/// The largest manifest a hive reads (a repository of many thousand files fits; a store that
/// answers with more is not believed).
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// The largest lease or progress object a hive reads (a few hundred bytes when honest).
pub const MAX_LEASE_BYTES: u64 = 64 * 1024;

/// A blob's key.
pub fn blob(sha256: &Sha256Digest) -> String {
    format!("blobs/sha256/{sha256}")
}

/// An artifact's manifest key.
pub fn manifest(id: &str) -> String {
    format!("{MANIFESTS}/{id}.json")
}

/// An artifact's lease key.
pub fn lease(id: &str) -> String {
    format!("leases/{id}.json")
}

/// An artifact's progress key.
pub fn progress(id: &str) -> String {
    format!("progress/{id}.json")
}

/// The catalog id of a manifest key (`manifests/<id>.json`), if it is one.
pub fn manifest_id(key: &str) -> Option<&str> {
    key.strip_prefix(MANIFESTS)?
        .strip_prefix('/')?
        .strip_suffix(".json")
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable() {
        let sha: Sha256Digest = "a".repeat(64).parse().unwrap();
        assert_eq!(blob(&sha), format!("blobs/sha256/{}", "a".repeat(64)));
        assert_eq!(manifest("hf--a--b"), "manifests/hf--a--b.json");
        assert_eq!(manifest_id("manifests/hf--a--b.json"), Some("hf--a--b"));
        assert_eq!(manifest_id("manifests/x/y.json"), None);
        assert_eq!(manifest_id("leases/a.json"), None);
        assert_eq!(lease("a"), "leases/a.json");
        assert_eq!(progress("a"), "progress/a.json");
    }
}
