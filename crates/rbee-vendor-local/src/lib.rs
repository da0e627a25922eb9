//! The `file:` vendor of the rbee model provisioner: registers model files and folders that are
//! already on this machine, by hard link when possible, else by a streamed copy, hashing every
//! byte so the catalog can verify them later.
//!
//! Links are followed to the files they lead to (a HuggingFace cache snapshot is a folder of
//! links into its `blobs/`), and the catalog stores those real files under the links' names.
//! [`LocalAccess`] decides how far links may lead: anywhere for a program acting with its own
//! user's rights, only inside given folders for a daemon acting for its callers.
//!
//! ```no_run
//! use rbee_artifact::{ResolveOptions, VendorSource};
//! use rbee_vendor_local::LocalVendor;
//! # async fn demo() -> rbee_artifact::Result<()> {
//! let vendor = LocalVendor::new();
//! let reference = "file:/data/models/custom.gguf".parse()?;
//! let plan = vendor
//!     .resolve(&reference, &ResolveOptions::default(), &Default::default())
//!     .await?;
//! assert_eq!(plan.files[0].path, "custom.gguf");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use access::LocalAccess;
pub use reference::{LocalRef, SCHEME};
pub use vendor::LocalVendor;

mod access;
mod reference;
mod scan;
mod vendor;
