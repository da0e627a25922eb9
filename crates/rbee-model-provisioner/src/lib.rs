//! The provisioner: picks the vendor for a reference, resolves it, checks the catalog and disk
//! space, shares identical concurrent requests, bounds concurrent downloads with a queue, and
//! records the result — so that asking for a model is one call that returns local paths.
//!
//! ```no_run
//! use std::sync::Arc;
//! use rbee_artifact::{DownloadTracker, JobId};
//! use rbee_catalog::Catalog;
//! use rbee_model_provisioner::{ProvisionOptions, Provisioner, ProvisionerConfig, VendorRegistry};
//! use rbee_vendor_local::LocalVendor;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> rbee_artifact::Result<()> {
//! // Every vendor's references parse from here on (binaries do this first thing).
//! rbee_model_provisioner::register_references();
//! let catalog = Arc::new(Catalog::open("/tmp/rbee-demo")?);
//! let vendors = VendorRegistry::new().with(Arc::new(LocalVendor::new()));
//! let provisioner = Provisioner::new(catalog, vendors, ProvisionerConfig::default());
//! let tracker = DownloadTracker::new(JobId::generate());
//! let ready = provisioner
//!     .provision(
//!         "file:/data/models/custom.gguf".parse()?,
//!         ProvisionOptions::default(),
//!         &tracker,
//!         CancellationToken::new(),
//!     )
//!     .await?;
//! println!("{:?}", ready.paths());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use files::link_or_copy;
pub use fit::{
    Candidate, Judgement, asks_for_fit, candidates, choose_fit, choose_fit_with, describe, pick,
    worth_reading,
};
pub use integration::ModelProvisioner;
pub use options::{Outcome, ProvisionOptions, Provisioned, ProvisionerConfig};
pub use provisioner::{ActiveDownload, Plan, PlannedFile, Provisioner};
pub use registry::VendorRegistry;
pub use shared::SharedTier;
pub use vendors::{VendorSettings, register_references, standard_vendors};

mod files;
mod fit;
mod integration;
mod options;
mod pin;
mod provisioner;
mod registry;
mod shared;
mod vendors;
