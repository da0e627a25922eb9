//! A vendor that serves artifacts from memory, and the conformance suite every vendor passes.
//!
//! - [`InMemoryVendor`]: a real [`VendorSource`](rbee_artifact::VendorSource) whose artifacts
//!   are byte strings held in memory. It writes `.part` files, verifies digests, resumes from a
//!   partial and observes cancellation like the network vendors, so tests of code built on the
//!   provisioner need neither a network nor a fake server. It can be told to lie about a digest
//!   or to stall part way, to exercise failure paths.
//! - [`conformance`]: the behaviour every vendor owes its callers (resolve without bytes,
//!   download with progress, cancellation, idempotent repeats, integrity failures never at a
//!   final name, resume after an interruption), as public functions taking a vendor and a
//!   fixture. Each vendor crate runs them against its own backend; the in-memory vendor runs
//!   them here.
//!
//! ```
//! # async fn demo() -> rbee_artifact::Result<()> {
//! use rbee_artifact::{ArtifactRef, ResolveOptions, Scheme, VendorSource};
//! use rbee_vendor_memory::InMemoryVendor;
//! use tokio_util::sync::CancellationToken;
//!
//! let vendor = InMemoryVendor::new(Scheme::new("hf"));
//! let reference: ArtifactRef = "hf:org/repo".parse()?;
//! vendor.insert(&reference, Some("rev1"), &[("model.gguf", b"GGUF".to_vec())]);
//! let plan = vendor
//!     .resolve(&reference, &ResolveOptions::default(), &CancellationToken::new())
//!     .await?;
//! assert_eq!(plan.files[0].size, Some(4));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod conformance;
mod vendor;

pub use vendor::InMemoryVendor;
