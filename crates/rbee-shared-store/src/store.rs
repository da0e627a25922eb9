//! [`SharedStore`]: the few operations the cluster tier needs from an object store, so that
//! another engine than S3 can follow by implementing them.

use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rbee_artifact::Sha256Digest;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::error::StoreError;

/// An object store shared by the hives of a cluster. Keys are relative to the store's prefix
/// (see [`layout`](crate::layout)).
///
/// # Contract
/// - Every method is called from async tasks and answers within the store's request timeout
///   (a stalled store is an error, not a hang).
/// - Errors name the store and what to check, and never hold a credential.
/// - [`put`](SharedStore::put) with `create_only` is a hint: stores that ignore conditional
///   writes (Garage) overwrite. Callers learn which with [`honours_create_only`](crate::honours_create_only)
///   and never depend on it for correctness.
#[async_trait]
pub trait SharedStore: Send + Sync + Debug + 'static {
    /// How to name the store in messages (`s3://BUCKET/PREFIX at ENDPOINT`).
    fn describe(&self) -> String;

    /// An object, whole; `None` when it is not there. More than `limit` bytes is an error
    /// ([`StoreError::Corrupt`]) once `limit` is passed, whatever size the store announced: a
    /// hostile or broken store cannot make a hive read gigabytes into memory.
    async fn get(&self, key: &str, limit: u64) -> Result<Option<Bytes>, StoreError>;

    /// Writes a small object. With `create_only`, `Ok(false)` when the store refused because
    /// the object exists.
    async fn put(&self, key: &str, bytes: Bytes, create_only: bool) -> Result<bool, StoreError>;

    /// Uploads `file` as `key`, streamed (in parts for large files), hashing while it reads: if
    /// the bytes do not hash to `sha256` the upload is abandoned and nothing is written.
    async fn put_file(
        &self,
        key: &str,
        file: &Path,
        sha256: &Sha256Digest,
        cancel: &CancellationToken,
    ) -> Result<u64, StoreError>;

    /// Uploads the file this process is downloading to `dest` (`size` bytes) while the download
    /// runs, reading each range once the download engine has written it. The object is
    /// completed only when what was read hashes to `sha256` and the download has put the file
    /// at `dest` (verified); a download that fails, starts over or is cancelled through
    /// `cancel` leaves nothing in the store. `download_ended` is cancelled once the download
    /// has returned: a file still not at `dest` then never will be, and the upload gives up.
    async fn put_growing(
        &self,
        key: &str,
        dest: &Path,
        size: u64,
        sha256: &Sha256Digest,
        cancel: &CancellationToken,
        download_ended: &CancellationToken,
    ) -> Result<u64, StoreError>;

    /// An object's size; `None` when it is not there.
    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError>;

    /// Removes an object (absent is fine).
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Keys under `dir` (relative to the prefix, without it).
    async fn list(&self, dir: &str) -> Result<Vec<String>, StoreError>;

    /// A URL that reads `key` with a plain `GET` (and `Range`) for `valid_for`, so the download
    /// engine can read it like any origin. Its query carries a signature: show it only through
    /// [`rbee_artifact::redact_url`].
    async fn read_url(&self, key: &str, valid_for: Duration) -> Result<Url, StoreError>;
}
