//! The `file:` vendor of the rbee model provisioner: registers model files and folders that are
//! already on this machine, by hard link when possible, else by a streamed copy, hashing every
//! byte so the catalog can verify them later.
//!
//! ```no_run
//! use rbee_artifact_catalog::{ResolveOptions, VendorSource};
//! use rbee_vendor_local::LocalVendor;
//! # async fn demo() -> rbee_artifact_catalog::Result<()> {
//! let vendor = LocalVendor::new();
//! let reference = "file:/data/models/custom.gguf".parse()?;
//! let plan = vendor
//!     .resolve(&reference, &ResolveOptions::default(), &Default::default())
//!     .await?;
//! assert_eq!(plan.files[0].path, "custom.gguf");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use vendor::LocalVendor;

mod scan;
mod vendor;
