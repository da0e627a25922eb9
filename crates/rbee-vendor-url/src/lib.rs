//! Direct `https://…` and `http://…` references as an rbee vendor.
//!
//! [`UrlVendor`] resolves a URL with one `HEAD` (or a one-byte ranged `GET` where `HEAD` is
//! refused) to learn the file's size, validators and name, takes a `#sha256=` fragment as its
//! digest, and downloads through the shared [`rbee_transfer::Transfer`] engine, so URLs get the
//! same resume, parallel ranges, verification and retries as every other vendor.
//!
//! ```no_run
//! use rbee_artifact::{ArtifactRef, ResolveOptions, VendorSource};
//! use rbee_transfer::{Transfer, TransferConfig};
//! use rbee_vendor_url::UrlVendor;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> rbee_artifact::Result<()> {
//! let vendor = UrlVendor::new(Transfer::new(TransferConfig::default())?);
//! let r: ArtifactRef = "https://example.com/models/tiny.gguf".parse()?;
//! let plan = vendor.resolve(&r, &ResolveOptions::default(), &CancellationToken::new()).await?;
//! println!("{} ({:?} bytes)", plan.files[0].path, plan.files[0].size);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use reference::{SCHEME, UrlRef};
pub use vendor::UrlVendor;

mod name;
mod reference;
mod vendor;
