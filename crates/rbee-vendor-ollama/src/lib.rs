//! The `ollama:` vendor: models from the Ollama registry, and bytes shared with Ollama's own
//! store instead of copied.
//!
//! ```text
//! ollama:NAME[:TAG]              registry.ollama.ai/library/NAME (tag `latest` by default)
//! ollama:NAMESPACE/NAME:TAG      another namespace of registry.ollama.ai
//! ollama:hf.co/ORG/REPO:QUANT    HuggingFace's Ollama-compatible registry
//! ollama:HOST[:PORT]/NS/NAME:TAG any registry speaking the same protocol
//! NAME:TAG                       the same as ollama:NAME:TAG (no `/`: see `claims_bare`)
//! ```
//!
//! A model is its manifest's layers, fetched into the artifact's folder as `manifest.json`,
//! `config.json`, `model.gguf` (the weights, a GGUF file llama.cpp loads as it is),
//! `projector.gguf`, `adapter.gguf`, `template`, `system`, `params.json`, `messages.json` and
//! `license`, each verified against its digest.
//!
//! Ollama's store (`$OLLAMA_MODELS`, `~/.ollama/models`) is read first: a model Ollama has is
//! provisioned without the network, and any blob it has is taken (hashed once, hard-linked on
//! the same file system, else copied) instead of downloaded. With
//! [`OllamaConfig::publish_to_store`], what rbee downloads is placed there too, so `ollama
//! run` finds it without pulling.
//!
//! ```no_run
//! use rbee_transfer::{Transfer, TransferConfig};
//! use rbee_vendor_ollama::{OllamaConfig, OllamaRef, OllamaVendor};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn example() -> Result<(), rbee_artifact::Error> {
//! let vendor = OllamaVendor::new(OllamaConfig::from_env()?, Transfer::new(TransferConfig::default())?);
//! let name: OllamaRef = "ollama:llama3.2:1b".parse()?;
//! let plan = vendor.resolve_name(&name, false, &CancellationToken::new()).await?;
//! println!("{} files, manifest {}", plan.files.len(), plan.revision);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub use config::{DEFAULT_REGISTRY, OllamaConfig};
pub use describe::describe;
pub use manifest::{Layer, LayerKind, MANIFEST_FILE, MANIFEST_MEDIA_TYPE, Manifest};
pub use name::{
    DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG, EXAMPLE, OLLAMA, OllamaRef, SCHEME, claims_bare,
    parse_reference,
};
pub use share::{GgufPlan, OllamaNaming, SharedWithOllama};
pub use store::{GgufModel, OllamaStore, StoredModel, VerifiedFile};
pub use vendor::{OllamaVendor, Resolution};

mod challenge;
mod config;
mod describe;
mod digest;
mod manifest;
mod name;
mod publish;
mod registry;
mod reuse;
mod share;
mod stamp;
mod store;
mod vendor;
