//! The vocabulary every part of the rbee model provisioner speaks.
//!
//! - [`ArtifactRef`]: a parsed reference (`hf:…`, `gh:…`, `file:…`, `https://…`); raw strings
//!   never cross crate boundaries. [`CatalogKey`] is the artifact's identity in a catalog.
//! - [`VendorReference`]: what a vendor crate implements to plug its own reference grammar,
//!   typed reference and catalog key into the core, registered with [`register_reference`];
//!   the core only splits `scheme:rest` and asks the registered vendors.
//! - [`VendorSource`]: the plugin trait a vendor implements (resolve, then download), with
//!   [`ResolvedArtifact`] as the plan between the two.
//! - [`DownloadTracker`] and [`ProgressEvent`]: vendor-neutral progress, broadcast to any number
//!   of subscribers. Events are data; their `Display` is the one line people read, and
//!   [`human_bytes`] / [`human_duration`] the one spelling of sizes and times.
//! - [`Error`]: one error type with clear messages and stable codes.
//! - [`redact_url`]: the one place that decides what of a URL may be recorded or shown.
//! - [`partial`]: the names of the files kept beside a download; [`check_file_path`]: the rule
//!   every path of a file inside an artifact passes; [`check_name`], [`check_revision`] and
//!   [`check_repo_path`]: the checks vendor grammars share.
//!
//! No HTTP, no vendor and no catalog on disk live here (the catalog is `rbee-catalog`, each
//! vendor is an `rbee-vendor-*` crate).
//!
//! ```
//! use std::fmt;
//! use rbee_artifact::{
//!     ArtifactRef, CatalogKey, RefErrorKind, Scheme, VendorReference, check_name, key_segment,
//!     register_reference,
//! };
//!
//! /// `demo:NAME`, a vendor of one name per artifact.
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! struct DemoRef(String);
//!
//! impl fmt::Display for DemoRef {
//!     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
//!         write!(f, "demo:{}", self.0)
//!     }
//! }
//!
//! impl VendorReference for DemoRef {
//!     const SCHEME: Scheme = Scheme::new("demo");
//!     const PREFIXES: &'static [&'static str] = &["demo"];
//!     const EXAMPLE: &'static str = "demo:tiny";
//!     const KEY_DEPTH: usize = 1;
//!
//!     fn parse(_input: &str, body: &str) -> Result<Self, RefErrorKind> {
//!         check_name("name", body)?;
//!         Ok(DemoRef(body.to_string()))
//!     }
//!
//!     fn catalog_segments(&self) -> Vec<String> {
//!         vec![key_segment(&self.0)]
//!     }
//!
//!     fn is_pinned(&self) -> bool {
//!         false
//!     }
//! }
//!
//! register_reference::<DemoRef>();
//! let r: ArtifactRef = "DEMO:tiny".parse()?;
//! assert_eq!(r.get::<DemoRef>(), Some(&DemoRef("tiny".into())));
//! assert_eq!(r.to_string(), "demo:tiny");
//! assert_eq!(CatalogKey::of(&r).id(), "demo--tiny");
//! assert_eq!(CatalogKey::from_id("demo--tiny"), Some(CatalogKey::of(&r)));
//! assert!("demo:../x".parse::<ArtifactRef>().is_err());
//! assert!("s3:bucket/key".parse::<ArtifactRef>().is_err());
//! # Ok::<(), rbee_artifact::RefError>(())
//! ```
#![deny(missing_docs)]

pub use artifact_path::check_file_path;
pub use check::{
    check_name, check_repo_path, check_revision, decode_revision, encode_revision, quote_untrusted,
    validate_relative_path,
};
pub use digest::{
    ContentDigest, GitBlobHasher, GitBlobId, InvalidDigest, Sha256Digest, Sha256Hasher,
};
pub use error::{Cause, Error, Result};
pub use grammar::{
    Claim, RefError, RefErrorKind, Scheme, VendorReference, register_reference,
    registered_prefixes, registered_schemes, scheme_for_prefix, split_scheme,
};
pub use human::{human_bytes, human_duration};
pub use identity::FileIdentity;
pub use key::{CatalogKey, key_segment, key_segment_body, short_hash};
pub use place::{available_space, link_or_copy};
pub use progress::{
    DownloadTracker, EventKind, FileProgress, FileSnapshot, HeartbeatHandle, JobId, ProgressEvent,
    ProgressSnapshot, TrackerConfig,
};
pub use redact::{REDACTED, is_credential_param, lost_credentials, redact_url, redacted_url};
pub use reference::ArtifactRef;
pub use secret::Secret;
pub use selection::Selection;
pub use sync::lock_unpoisoned;
pub use vendor::{
    DownloadedFile, FileAccess, FileSource, ResolveOptions, ResolvedArtifact, ResolvedFile,
    VendorSource,
};

pub mod partial;

mod artifact_path;
mod check;
mod digest;
mod error;
mod grammar;
mod human;
mod identity;
mod key;
mod place;
mod progress;
mod redact;
mod reference;
mod secret;
mod selection;
mod sync;
mod vendor;
