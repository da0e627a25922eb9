//! The cluster's shared model store: a bucket on S3-compatible object storage (Garage, MinIO,
//! AWS S3) that the hives of a rack read and write, so a model is fetched from the internet
//! once per cluster.
//!
//! - [`StoreUrl`] / [`StoreConfig`]: `s3://BUCKET[/PREFIX]` and the standard AWS variables.
//! - [`SharedStore`]: the operations the tier needs, behind a trait; [`S3Store`] implements it
//!   on the `object_store` crate (signing, retries, multipart uploads).
//! - [`layout`]: content-addressed blobs (`blobs/sha256/<hex>`) and one [`Manifest`] per
//!   artifact, so a hive can provision from the store alone.
//! - [`Elector`]: which hive fetches from the origin while the others wait, on stores with and
//!   without conditional writes.
//!
//! ```no_run
//! use rbee_shared_store::{S3Store, SharedStore, StoreConfig, read_manifest};
//!
//! # async fn demo() -> Result<(), rbee_shared_store::StoreError> {
//! let config = StoreConfig::from_vars("s3://models/rack-1", |k| std::env::var(k).ok())?;
//! let store = S3Store::new(config)?;
//! if let Some(m) = read_manifest(&store, "hf--TheBloke--TinyLlama-1.1B-Chat-v1.0-GGUF--Q4_K_M").await? {
//!     println!("{} files, {} bytes", m.files.len(), m.total_size());
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use config::StoreConfig;
pub use error::{FailureKind, StoreError, diagnose};
pub use lease::{
    Election, Elector, HolderProgress, Lease, LeaseConfig, LeaseRecord, honours_create_only,
};
pub use manifest::{MANIFEST_SCHEMA, Manifest, ManifestFile};
pub use manifests::{list_manifests, publish_blob, read_manifest, remove_artifact, write_manifest};
pub use s3::S3Store;
pub use store::SharedStore;
pub use url::StoreUrl;

pub mod layout;

/// This machine's host name (for naming a hive in leases), `localhost` when it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

mod config;
mod error;
mod growing;
mod lease;
mod manifest;
mod manifests;
mod s3;
mod store;
mod url;
