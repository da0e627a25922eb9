//! The `hf:` vendor of the rbee model provisioner: HuggingFace Hub repositories (and any
//! HF-compatible mirror through `HF_ENDPOINT`).
//!
//! - [`HuggingFaceVendor`] implements [`VendorSource`](rbee_artifact::VendorSource):
//!   it resolves `hf:ORG/REPO[@REV][:QUANT|/PATH]` to a commit and a list of files with sizes
//!   and sha256s, and downloads them through the shared [`rbee_transfer::Transfer`] engine.
//! - [`select_quant`] picks a GGUF quantization (or split set) from a repository's files, and
//!   [`select_snapshot`] the files a runtime needs from a non-GGUF repository; both are pure.
//! - [`HfCache`] reads and writes the HuggingFace cache (`$HF_HOME/hub/models--ORG--REPO`), so
//!   files already there are not downloaded again, and files we download can be found there by
//!   huggingface_hub, hf-hub and llama.cpp.
//! - [`HfConfig`] holds the endpoint, token and cache paths; binaries build it with
//!   [`HfConfig::from_env`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), rbee_artifact::Error> {
//! use rbee_artifact::{ArtifactRef, ResolveOptions, VendorSource};
//! use rbee_transfer::{Transfer, TransferConfig};
//! use rbee_vendor_huggingface::{HfConfig, HuggingFaceVendor};
//! use tokio_util::sync::CancellationToken;
//!
//! let vendor = HuggingFaceVendor::new(HfConfig::from_env()?, Transfer::new(TransferConfig::default())?);
//! let reference: ArtifactRef = "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M".parse()?;
//! let plan = vendor
//!     .resolve(&reference, &ResolveOptions::default(), &CancellationToken::new())
//!     .await?;
//! println!("{} at {:?}: {} bytes", plan.reference, plan.revision, plan.total_size());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use cache::{CachedRepo, HfCache};
pub use config::{DEFAULT_ENDPOINT, DEFAULT_XET_CACHE_BYTES, HfConfig};
pub use files::RepoFile;
pub use mirrors::parse_mirror;
pub use quant::{
    DEFAULT_PREFERENCE, GgufName, QuantChoice, available_quants, is_gguf_repo, parse_gguf_name,
    select_quant, split_set_of,
};
pub use reference::{HfRef, HfSelector, SCHEME};
pub use snapshot::{PathFilter, SnapshotChoice, select_snapshot};
pub use vendor::HuggingFaceVendor;
pub use xet::{
    ChunkCache, HeldFile, LinkedChunk, XetFile, XetSource, XetToken, XetTokens, is_xet_hash,
};

mod api;
mod cache;
mod config;
mod files;
mod hub_error;
mod mirrors;
mod quant;
mod reference;
mod snapshot;
mod vendor;
mod xet;
