//! The vocabulary every part of the rbee model provisioner speaks.
//!
//! - [`ArtifactRef`]: a parsed reference (`hf:…`, `gh:…`, `file:…`, `https://…`); raw strings
//!   never cross crate boundaries. [`CatalogKey`] is the artifact's identity in a catalog.
//! - [`VendorSource`]: the plugin trait a vendor implements (resolve, then download), with
//!   [`ResolvedArtifact`] as the plan between the two.
//! - [`DownloadTracker`] and [`ProgressEvent`]: vendor-neutral progress, broadcast to any number
//!   of subscribers.
//! - [`Error`]: one error type with clear messages and stable codes.
//! - [`redact_url`]: the one place that decides what of a URL may be recorded or shown.
//! - [`partial`]: the names of the files kept beside a download; [`check_file_path`]: the rule
//!   every path of a file inside an artifact passes.
//!
//! No HTTP and no catalog on disk live here (the catalog is `rbee-catalog`).
//!
//! ```
//! use rbee_artifact::{ArtifactRef, CatalogKey, Scheme};
//!
//! let r: ArtifactRef = "hf.co/TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M".parse()?;
//! assert_eq!(r.scheme(), Scheme::Hf);
//! assert_eq!(CatalogKey::of(&r).id(), "hf--TheBloke--TinyLlama-1.1B-Chat-v1.0-GGUF--Q4_K_M");
//! # Ok::<(), rbee_artifact::RefError>(())
//! ```
#![deny(missing_docs)]

pub use artifact_path::check_file_path;
pub use digest::{InvalidDigest, Sha256Digest, Sha256Hasher};
pub use error::{BoxError, Error, Result};
pub use key::CatalogKey;
pub use place::{available_space, link_or_copy};
pub use progress::{
    DownloadTracker, EventKind, FileProgress, FileSnapshot, HeartbeatHandle, JobId, ProgressEvent,
    ProgressSnapshot, TrackerConfig, human_bytes, human_duration,
};
pub use redact::{REDACTED, is_credential_param, redact_url, redacted_url};
pub use reference::{
    ArtifactRef, GhRef, HfRef, HfSelector, LocalRef, RefError, RefErrorKind, Scheme, UrlRef,
    quote_untrusted, validate_relative_path,
};
pub use secret::Secret;
pub use selection::Selection;
pub use sync::lock_unpoisoned;
pub use vendor::{
    DownloadedFile, FileAccess, FileSource, ResolveOptions, ResolvedArtifact, ResolvedFile,
    VendorSource,
};

pub mod partial;

mod artifact_path;
mod digest;
mod error;
mod key;
mod place;
mod progress;
mod redact;
mod reference;
mod secret;
mod selection;
mod sync;
mod vendor;
