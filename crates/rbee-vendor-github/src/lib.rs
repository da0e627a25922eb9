//! The `gh:` vendor: GitHub release assets (model files, adapters, tokenizers, binaries).
//!
//! ```text
//! gh:OWNER/REPO                 the latest published release's single model file
//! gh:OWNER/REPO@TAG             that release (pre-releases only this way)
//! gh:OWNER/REPO[@TAG]/NAME      the asset called NAME
//! gh:OWNER/REPO[@TAG]/*.gguf    every asset matching the glob, as one artifact
//! ```
//!
//! A model file is an asset ending in `.gguf`, `.safetensors`, `.bin` or `.onnx`; without an
//! asset name the release must have exactly one, else the error lists the assets and how to
//! name one. `--include` / `--exclude` globs ([`ResolveOptions`]) filter further. Drafts are
//! never downloaded.
//!
//! Each file is verified against the asset's `digest` (`sha256:…`) when GitHub publishes one
//! and against its size always. With a token ([`GitHubConfig::token`], from `GITHUB_TOKEN` or
//! `GH_TOKEN`) assets come through the asset API (`Accept: application/octet-stream`), which
//! is how private repositories work; the token goes only to the API host, never to the CDN it
//! redirects to, and never into plans, errors, events or logs. Rate limits (403/429 with
//! `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset` or `Retry-After`) are waited out when short
//! and otherwise reported with the reset time.
//!
//! ```no_run
//! use rbee_artifact::{ArtifactRef, ResolveOptions, VendorSource};
//! use rbee_transfer::{Transfer, TransferConfig};
//! use rbee_vendor_github::{GitHubConfig, GitHubVendor};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn example() -> Result<(), rbee_artifact::Error> {
//! let vendor = GitHubVendor::new(GitHubConfig::from_env()?, Transfer::new(TransferConfig::default())?);
//! let reference: ArtifactRef = "gh:ggml-org/llama.cpp@b4500/ggml-vocab-llama.gguf".parse()?;
//! let plan = vendor
//!     .resolve(&reference, &ResolveOptions::default(), &CancellationToken::new())
//!     .await?;
//! println!("{} bytes in {} file(s) from {:?}", plan.total_size(), plan.files.len(), plan.revision);
//! # Ok(())
//! # }
//! ```
//!
//! [`ResolveOptions`]: rbee_artifact::ResolveOptions
#![deny(missing_docs)]

pub use config::{DEFAULT_API_BASE, DEFAULT_MAX_RATE_LIMIT_WAIT, GitHubConfig};
pub use reference::{GhRef, SCHEME};
pub use vendor::GitHubVendor;

mod api;
mod config;
mod rate_limit;
mod reference;
mod select;
mod vendor;
