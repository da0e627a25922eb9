//! Wiring: the catalog, the vendors and the provisioner, from flags and the environment.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use rbee_artifact::{ArtifactRef, CatalogKey, Error};
use rbee_catalog::{Catalog, CatalogEntry};
use rbee_model_provisioner::{Provisioner, ProvisionerConfig, VendorSettings, standard_vendors};
use rbee_transfer::parse_rate;
use rbee_vendor_github::GhRef;
use rbee_vendor_huggingface::{HfRef, HfSelector};
use rbee_vendor_local::LocalRef;
use rbee_vendor_ollama::OllamaConfig;

use crate::args::{DownloadArgs, GlobalArgs};
use crate::spelling;

/// A mistake in how rbee was called; exits with status 2.
#[derive(Debug)]
pub(crate) struct UsageError {
    /// Stable code for `--json`: `invalid_argument` or `invalid_reference`.
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl UsageError {
    /// A flag or argument that cannot be used as given.
    pub(crate) fn argument(message: impl Into<String>) -> Self {
        Self {
            code: "invalid_argument",
            message: message.into(),
        }
    }

    /// A reference that does not name anything this tool can fetch.
    pub(crate) fn reference(message: impl Into<String>) -> Self {
        Self {
            code: "invalid_reference",
            message: message.into(),
        }
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// A failure of this program's own (not the catalog's, not the daemon's), with its stable code.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl CliError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The catalog folder: `--cache-dir`, else `$RBEE_CACHE_DIR`, else the platform cache folder.
pub(crate) fn cache_dir(global: &GlobalArgs) -> Result<PathBuf> {
    Ok(Catalog::resolve_root(global.cache_dir.as_deref())?)
}

/// Opens the catalog (creating it if needed).
pub(crate) fn open_catalog(global: &GlobalArgs) -> Result<Arc<Catalog>> {
    let dir = cache_dir(global)?;
    Ok(Arc::new(Catalog::open(&dir)?))
}

/// The catalog if its folder exists: commands that only read (or remove) never create it.
pub(crate) fn existing_catalog(global: &GlobalArgs) -> Result<(PathBuf, Option<Arc<Catalog>>)> {
    let dir = cache_dir(global)?;
    if !dir.exists() {
        return Ok((dir, None));
    }
    let catalog = Arc::new(Catalog::open(&dir)?);
    Ok((dir, Some(catalog)))
}

/// Download-related settings for the vendors.
#[derive(Debug, Default)]
pub(crate) struct TransferSettings {
    pub(crate) connections: Option<usize>,
    pub(crate) rate_limit: Option<u64>,
    pub(crate) hf_cache: bool,
    /// `--no-xet`: HuggingFace files over the plain download only.
    pub(crate) no_xet: bool,
    pub(crate) offline: bool,
    pub(crate) max_cache_bytes: Option<u64>,
    /// `--mirror` URLs, checked (none: `RBEE_MIRRORS`, read with the other HF settings).
    pub(crate) mirrors: Vec<String>,
    /// The Ollama vendor's settings when a flag changed them (else read from the environment).
    pub(crate) ollama: Option<OllamaConfig>,
    pub(crate) ollama_store: bool,
}

impl TransferSettings {
    pub(crate) fn from_args(args: &DownloadArgs) -> Result<Self> {
        let rate_limit = args
            .rate_limit
            .as_deref()
            .map(|text| {
                parse_rate(text).map_err(|e| UsageError::argument(format!("--rate-limit: {e}")))
            })
            .transpose()?;
        if args.connections == Some(0) {
            return Err(UsageError::argument("--connections must be at least 1").into());
        }
        for mirror in &args.mirrors {
            rbee_vendor_huggingface::parse_mirror(mirror)
                .map_err(|e| UsageError::argument(format!("--mirror: {e}")))?;
        }
        Ok(Self {
            connections: args.connections,
            rate_limit,
            hf_cache: args.hf_cache,
            no_xet: args.no_xet,
            offline: args.offline,
            max_cache_bytes: max_cache_bytes(args.max_cache_size.as_deref())?,
            mirrors: args.mirrors.clone(),
            ollama: ollama_config(args.ollama_registry.as_deref())?,
            ollama_store: args.ollama_store,
        })
    }
}

/// The cache budget: `--max-cache-size`, else `RBEE_MAX_CACHE_SIZE` (read here rather than by
/// clap, so that the daemon's variable in the same environment never reads as a flag given to
/// `--hive`).
fn max_cache_bytes(flag: Option<&str>) -> Result<Option<u64>> {
    let (text, name) = match flag {
        Some(text) => (text.to_string(), "--max-cache-size"),
        None => match std::env::var("RBEE_MAX_CACHE_SIZE") {
            Ok(text) if !text.trim().is_empty() => (text, "RBEE_MAX_CACHE_SIZE"),
            _ => return Ok(None),
        },
    };
    rbee_catalog::parse_cache_size(&text)
        .map(Some)
        .map_err(|e| UsageError::argument(format!("{name}: {e}")).into())
}

/// `--ollama-registry` read as `OLLAMA_REGISTRY` would be (the rest from the environment).
fn ollama_config(registry: Option<&str>) -> Result<Option<OllamaConfig>> {
    let Some(registry) = registry else {
        return Ok(None);
    };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let lookup = |name: &str| match name {
        "OLLAMA_REGISTRY" => Some(registry.to_string()),
        other => std::env::var(other).ok(),
    };
    OllamaConfig::from_lookup(lookup, home)
        .map(Some)
        .map_err(|e| UsageError::argument(format!("--ollama-registry: {e}")).into())
}

/// The vendors and the download engine, tuned by the flags.
pub(crate) fn vendor_settings(settings: &TransferSettings) -> VendorSettings {
    let mut vendors = VendorSettings::from_options(
        settings.connections,
        settings.rate_limit,
        settings.hf_cache,
        settings.offline,
    );
    if !settings.mirrors.is_empty() || settings.no_xet {
        // Otherwise the vendor reads the environment itself, and explains a failure on use.
        if let Ok(mut hf) = rbee_vendor_huggingface::HfConfig::from_env() {
            if !settings.mirrors.is_empty() {
                hf.mirrors = settings
                    .mirrors
                    .iter()
                    .filter_map(|m| rbee_vendor_huggingface::parse_mirror(m).ok())
                    .collect();
            }
            hf.xet &= !settings.no_xet;
            vendors.huggingface = Some(hf);
        }
    }
    vendors.ollama = settings.ollama.clone();
    vendors.write_ollama_store = settings.ollama_store;
    vendors
}

pub(crate) fn provisioner(
    catalog: Arc<Catalog>,
    settings: &TransferSettings,
) -> Result<Provisioner> {
    let vendors = standard_vendors(&vendor_settings(settings).with_xet_cache_in(catalog.root()))?;
    Ok(Provisioner::new(
        catalog,
        vendors,
        ProvisionerConfig {
            max_cache_bytes: settings.max_cache_bytes,
            ..ProvisionerConfig::default()
        },
    ))
}

/// A reference as typed: the grammar's spellings, plus a path to something that exists on this
/// machine (`/data/m.gguf`, `./m.gguf`, `~/m.gguf`); a near miss says what was probably meant.
/// Relative `file:` paths are made absolute here, where they were typed.
pub(crate) fn parse_reference(text: &str) -> Result<ArtifactRef> {
    let parsed = match spelling::as_local_path(text) {
        Some(Ok(path)) => Ok(ArtifactRef::new(LocalRef { path })),
        Some(Err(message)) => return Err(UsageError::reference(message).into()),
        None => text.parse::<ArtifactRef>(),
    };
    let reference = parsed.map_err(|e| match spelling::suggest(text, &e) {
        Some(better) => UsageError::reference(format!("{e}\n  did you mean {better}?")).into(),
        None => anyhow::Error::new(e),
    })?;
    reference
        .absolutize()
        .context("cannot make the file path absolute")
}

/// Parses the reference and folds `--quant` / `--revision` into it.
pub(crate) fn reference(args: &DownloadArgs) -> Result<ArtifactRef> {
    let mut reference = parse_reference(&args.reference)?;
    if let Some(quant) = &args.quant {
        let Some(mut hf) = reference.get::<HfRef>().cloned() else {
            return Err(UsageError::argument(format!(
                "--quant applies to hf: references, not to {reference}"
            ))
            .into());
        };
        let quant = quant.to_ascii_uppercase();
        match &hf.selector {
            HfSelector::File(path) => {
                return Err(UsageError::argument(format!(
                    "--quant {quant} conflicts with the file {path} named in the reference"
                ))
                .into());
            }
            HfSelector::Quant(q) if *q != quant => {
                return Err(UsageError::argument(format!(
                    "--quant {quant} conflicts with :{q} in the reference"
                ))
                .into());
            }
            HfSelector::Fit => {
                return Err(UsageError::argument(format!(
                    "--quant {quant} conflicts with :fit in the reference"
                ))
                .into());
            }
            _ => hf.selector = HfSelector::Quant(quant),
        }
        // Re-parse so the quant gets the same validation as in a reference.
        reference = ArtifactRef::new(hf)
            .to_string()
            .parse()
            .map_err(anyhow::Error::new)?;
    }
    if args.fit {
        let Some(mut hf) = reference.get::<HfRef>().cloned() else {
            return Err(UsageError::argument(format!(
                "--fit applies to hf: references, not to {reference}"
            ))
            .into());
        };
        match &hf.selector {
            HfSelector::Default | HfSelector::Fit => hf.selector = HfSelector::Fit,
            HfSelector::Quant(q) => {
                return Err(UsageError::argument(format!(
                    "--fit conflicts with :{q} in the reference"
                ))
                .into());
            }
            HfSelector::File(path) => {
                return Err(UsageError::argument(format!(
                    "--fit conflicts with the file {path} named in the reference"
                ))
                .into());
            }
        }
        reference = ArtifactRef::new(hf);
    }
    if let Some(rev) = &args.revision {
        let conflict = |existing: &Option<String>| -> Result<()> {
            match existing.as_ref().filter(|e| *e != rev) {
                Some(existing) => Err(UsageError::argument(format!(
                    "--revision {rev} conflicts with @{existing} in the reference"
                ))
                .into()),
                None => Ok(()),
            }
        };
        let pinned = match (reference.get::<HfRef>(), reference.get::<GhRef>()) {
            (Some(hf), _) => {
                conflict(&hf.revision)?;
                ArtifactRef::new(HfRef {
                    revision: Some(rev.clone()),
                    ..hf.clone()
                })
            }
            (None, Some(gh)) => {
                conflict(&gh.tag)?;
                ArtifactRef::new(GhRef {
                    tag: Some(rev.clone()),
                    ..gh.clone()
                })
            }
            (None, None) => {
                return Err(UsageError::argument(format!(
                    "--revision applies to hf: and gh: references, not to {reference}"
                ))
                .into());
            }
        };
        reference = pinned.to_string().parse().map_err(anyhow::Error::new)?;
    }
    Ok(reference)
}

/// An entry by id or by reference (relative `file:` paths count from the current folder).
pub(crate) fn find(catalog: &Option<Arc<Catalog>>, model: &str) -> Result<CatalogEntry> {
    let key = match CatalogKey::from_id(model) {
        Some(key) => key,
        None => CatalogKey::of(&parse_reference(model)?),
    };
    let found = match catalog {
        Some(catalog) => catalog.read(&key)?,
        None => None,
    };
    found.ok_or_else(|| not_found(model))
}

pub(crate) fn not_found(model: &str) -> anyhow::Error {
    Error::NotFound {
        message: format!("`{model}` is not in the catalog; `rbee ls` shows what is"),
    }
    .into()
}
