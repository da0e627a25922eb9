//! The standard set of vendors, wired once for every binary. Adding a vendor is its crate, its
//! dependency in this crate's `Cargo.toml`, one line in [`register_references`] and its source
//! in [`standard_vendors`].

use std::sync::Arc;

use async_trait::async_trait;
use rbee_artifact::register_reference;
use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, ResolveOptions, ResolvedArtifact,
    ResolvedFile, Result, Scheme, VendorSource,
};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_github::{GhRef, GitHubConfig, GitHubVendor};
use rbee_vendor_huggingface::{HfConfig, HfRef, HfSelector, HuggingFaceVendor, parse_gguf_name};
use rbee_vendor_local::{LocalRef, LocalVendor};
use rbee_vendor_ollama::{
    GgufPlan, OllamaConfig, OllamaRef, OllamaStore, OllamaVendor, SharedWithOllama,
};
use rbee_vendor_url::{UrlRef, UrlVendor};
use tokio_util::sync::CancellationToken;

use crate::registry::VendorRegistry;

/// Settings shared by the vendors of one process.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VendorSettings {
    /// The download engine's tuning (connections, rate limit, timeouts…).
    pub transfer: TransferConfig,
    /// Also place HuggingFace downloads in the HuggingFace cache layout.
    pub write_hf_cache: bool,
    /// Never touch the network.
    pub offline: bool,
    /// The HuggingFace settings; `None` reads them from the environment (`HF_ENDPOINT`,
    /// `HF_TOKEN`, `HF_HOME`, `HF_HUB_OFFLINE`).
    pub huggingface: Option<HfConfig>,
    /// The GitHub settings; `None` reads them from the environment (`GITHUB_API_URL`,
    /// `GITHUB_TOKEN` / `GH_TOKEN`).
    pub github: Option<GitHubConfig>,
    /// The Ollama settings; `None` reads them from the environment (`OLLAMA_REGISTRY`,
    /// `OLLAMA_MODELS`).
    pub ollama: Option<OllamaConfig>,
    /// Also place Ollama downloads, and HuggingFace GGUFs (as `hf.co/ORG/REPO:QUANT`), in
    /// Ollama's store, so `ollama run` finds them.
    pub write_ollama_store: bool,
    /// Where the HuggingFace vendor keeps Xet chunks when its settings name no place (the
    /// binaries put it inside rbee's cache folder); `None`: no chunk cache.
    pub xet_cache: Option<std::path::PathBuf>,
}

impl VendorSettings {
    /// The same settings with the Xet chunk cache in its default place inside the catalog at
    /// `catalog_root`: hidden, so the catalog's own walks pass it by. `RBEE_XET_CACHE` still
    /// moves it or turns it off.
    pub fn with_xet_cache_in(mut self, catalog_root: &std::path::Path) -> Self {
        self.xet_cache = Some(catalog_root.join(".xet-packs-v1"));
        self
    }

    /// Defaults, with the download engine tuned by `transfer`.
    pub fn new(transfer: TransferConfig) -> Self {
        Self {
            transfer,
            ..Self::default()
        }
    }

    /// Settings from the download options every binary offers: an exact connection count (no
    /// adaptive growth past it) and a total rate limit, else the engine's defaults.
    pub fn from_options(
        connections: Option<usize>,
        rate_limit: Option<u64>,
        write_hf_cache: bool,
        offline: bool,
    ) -> Self {
        let mut transfer = TransferConfig::default();
        if let Some(n) = connections {
            transfer.connections = n;
            transfer.max_connections = n;
        }
        transfer.rate_limit = rate_limit;
        Self {
            write_hf_cache,
            offline,
            ..Self::new(transfer)
        }
    }
}

/// Makes the references of every vendor of this build parse in this process (idempotent).
/// Binaries call it first thing; [`standard_vendors`] and `Provisioner::new` call it too.
///
/// The order is the order of the examples in messages that name no vendor (the first one's)
/// and of the known schemes listed for an unknown one; which vendor reads a spelling does not
/// depend on it (see `rbee_artifact::VendorReference`).
///
/// ```
/// use rbee_artifact::{ArtifactRef, CatalogKey};
///
/// rbee_model_provisioner::register_references();
/// let r: ArtifactRef = "hf.co/TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M".parse()?;
/// assert_eq!(r.scheme().as_str(), "hf");
/// assert_eq!(CatalogKey::of(&r).id(), "hf--TheBloke--TinyLlama-1.1B-Chat-v1.0-GGUF--Q4_K_M");
/// # Ok::<(), rbee_artifact::RefError>(())
/// ```
pub fn register_references() {
    register_reference::<HfRef>();
    register_reference::<GhRef>();
    register_reference::<LocalRef>();
    register_reference::<UrlRef>();
    register_reference::<OllamaRef>();
}

/// Every vendor of this build, sharing one download engine (so a rate limit holds across them).
///
/// A vendor whose settings cannot be read (say, no home folder to find the HuggingFace cache
/// in) is still registered, and explains the problem when it is asked for something, so the
/// other vendors keep working.
pub fn standard_vendors(settings: &VendorSettings) -> Result<VendorRegistry> {
    register_references();
    let transfer = Transfer::new(settings.transfer.clone())?;
    let mut registry = VendorRegistry::new();
    registry.register(Arc::new(LocalVendor::new()));
    registry.register(Arc::new(UrlVendor::new(transfer.clone())));
    let ollama = match &settings.ollama {
        Some(config) => Ok(config.clone()),
        None => OllamaConfig::from_env(),
    }
    .map(|mut config| {
        if settings.write_ollama_store {
            config = config.publishing();
        }
        config.offline |= settings.offline;
        config
    });
    let hf = match &settings.huggingface {
        Some(config) => Ok(config.clone()),
        None => HfConfig::from_env(),
    };
    registry.register(match hf {
        Ok(mut config) => {
            config.write_hf_cache |= settings.write_hf_cache;
            config.offline |= settings.offline;
            if config.xet_cache.is_none() {
                config.xet_cache = settings.xet_cache.clone();
            }
            let hf: Arc<dyn VendorSource> =
                Arc::new(HuggingFaceVendor::new(config, transfer.clone()));
            let ollama_store = ollama
                .as_ref()
                .ok()
                .and_then(|o| Some((o.store.clone()?, o.publish_to_store)));
            match ollama_store {
                // A GGUF Ollama already pulled (`hf.co/…`) is the same bytes under its LFS
                // sha256: taken from Ollama's store instead of fetched.
                Some((store, publish)) => {
                    let shared = SharedWithOllama::new(hf, OllamaStore::new(store));
                    Arc::new(if publish {
                        shared.publishing(Arc::new(ollama_name_of_hf))
                    } else {
                        shared
                    })
                }
                None => hf,
            }
        }
        Err(e) => Arc::new(Unavailable::new(rbee_vendor_huggingface::SCHEME, e)),
    });
    let gh = match &settings.github {
        Some(config) => Ok(config.clone()),
        None => GitHubConfig::from_env(),
    };
    registry.register(match gh {
        Ok(config) => Arc::new(GitHubVendor::new(config, transfer.clone())),
        Err(e) => Arc::new(Unavailable::new(rbee_vendor_github::SCHEME, e)),
    });
    registry.register(match ollama {
        Ok(config) => Arc::new(OllamaVendor::new(config, transfer.clone())),
        Err(e) => Arc::new(Unavailable::new(rbee_vendor_ollama::OLLAMA, e)),
    });
    Ok(registry)
}

/// The Ollama model an `hf:` GGUF download makes, named as `ollama pull` names HuggingFace
/// models: `hf.co/ORG/REPO:QUANT` (the quantization asked for, else the one in the file name,
/// else `latest`), so `ollama run hf.co/ORG/REPO:QUANT` finds it without pulling.
fn ollama_name_of_hf(plan: &ResolvedArtifact) -> std::result::Result<GgufPlan, String> {
    let Some(hf) = plan.reference.get::<HfRef>() else {
        return Err(format!("{} is not a HuggingFace reference", plan.reference));
    };
    let ggufs: Vec<(&ResolvedFile, rbee_vendor_huggingface::GgufName)> = plan
        .files
        .iter()
        .filter_map(|f| Some((f, parse_gguf_name(&f.path)?)))
        .collect();
    let (models, projectors): (Vec<_>, Vec<_>) = ggufs.iter().partition(|(_, n)| !n.mmproj);
    if models.iter().any(|(_, n)| n.split.is_some()) {
        return Err(
            "the model is split into several GGUF files, which Ollama does not load as one"
                .to_string(),
        );
    }
    let (model, name) = match models.as_slice() {
        [(file, name)] => (file, name),
        [] => return Err("it has no GGUF model file".to_string()),
        many => {
            return Err(format!(
                "it has {} GGUF model files; name one quantization",
                many.len()
            ));
        }
    };
    let projector = match projectors.as_slice() {
        [] => None,
        [(file, _)] => Some(file.path.clone()),
        many => {
            return Err(format!(
                "it has {} vision projectors; Ollama takes one",
                many.len()
            ));
        }
    };
    let tag = match &hf.selector {
        HfSelector::Quant(q) => q.clone(),
        _ => name.quant.clone().unwrap_or_else(|| "latest".to_string()),
    };
    let written = format!("hf.co/{}/{}:{tag}", hf.org, hf.repo);
    let ollama_name = OllamaRef::parse_name(&written)
        .map_err(|e| format!("`{written}` is not a name Ollama accepts ({e})"))?;
    Ok(GgufPlan {
        name: ollama_name,
        model: model.path.clone(),
        projector,
        file_type: name.quant.clone(),
    })
}

/// Stands in for a vendor whose configuration failed, reporting why on use.
#[derive(Debug)]
struct Unavailable {
    scheme: Scheme,
    reason: String,
}

impl Unavailable {
    fn new(scheme: Scheme, error: Error) -> Self {
        Self {
            scheme,
            reason: error.to_string(),
        }
    }

    fn error(&self) -> Error {
        Error::InvalidRequest(format!(
            "the {}: vendor is not configured: {}",
            self.scheme, self.reason
        ))
    }
}

#[async_trait]
impl VendorSource for Unavailable {
    fn scheme(&self) -> Scheme {
        self.scheme
    }

    async fn resolve(
        &self,
        _: &ArtifactRef,
        _: &ResolveOptions,
        _: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        Err(self.error())
    }

    async fn download(
        &self,
        _: &ResolvedArtifact,
        _: &[ResolvedFile],
        _: &std::path::Path,
        _: &DownloadTracker,
        _: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        Err(self.error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbee_artifact::FileSource;

    fn plan(reference: &str, paths: &[&str]) -> ResolvedArtifact {
        register_references();
        ResolvedArtifact {
            reference: reference.parse().unwrap(),
            revision: None,
            files: paths
                .iter()
                .map(|path| ResolvedFile {
                    path: path.to_string(),
                    size: Some(1),
                    sha256: None,
                    version: None,
                    git_blob: None,
                    source: FileSource::Local {
                        path: std::path::PathBuf::from("/nowhere"),
                    },
                })
                .collect(),
            notes: Vec::new(),
        }
    }

    fn named(reference: &str, paths: &[&str]) -> std::result::Result<String, String> {
        ollama_name_of_hf(&plan(reference, paths)).map(|p| {
            format!(
                "{}/{}/{}:{} {} {:?}",
                p.name.host, p.name.namespace, p.name.model, p.name.tag, p.model, p.projector
            )
        })
    }

    #[test]
    fn hf_ggufs_get_the_names_ollama_gives_them() {
        assert_eq!(
            named("hf:org/Repo-GGUF:q4_k_m", &["Repo.Q4_K_M.gguf"]).unwrap(),
            "hf.co/org/Repo-GGUF:Q4_K_M Repo.Q4_K_M.gguf None"
        );
        // No quantization asked for: the file name's, else `latest`.
        assert_eq!(
            named(
                "hf:org/Repo-GGUF/sub/Repo-IQ2_XS.gguf",
                &["sub/Repo-IQ2_XS.gguf"]
            )
            .unwrap(),
            "hf.co/org/Repo-GGUF:IQ2_XS sub/Repo-IQ2_XS.gguf None"
        );
        assert_eq!(
            named("hf:org/Repo-GGUF/model.gguf", &["model.gguf"]).unwrap(),
            "hf.co/org/Repo-GGUF:latest model.gguf None"
        );
        assert_eq!(
            named(
                "hf:org/Vision-GGUF:Q8_0",
                &["Vision-Q8_0.gguf", "mmproj-Vision-F16.gguf", "README.md"]
            )
            .unwrap(),
            "hf.co/org/Vision-GGUF:Q8_0 Vision-Q8_0.gguf Some(\"mmproj-Vision-F16.gguf\")"
        );
    }

    #[test]
    fn what_ollama_cannot_load_as_one_model_is_named_not_written() {
        for (reference, paths, says) in [
            (
                "hf:org/R:Q8_0",
                &["R-Q8_0-00001-of-00002.gguf", "R-Q8_0-00002-of-00002.gguf"][..],
                "split",
            ),
            (
                "hf:org/R",
                &["config.json", "model.safetensors"][..],
                "no GGUF",
            ),
            (
                "hf:org/R",
                &["R-Q4_0.gguf", "R-Q8_0.gguf"][..],
                "2 GGUF model files",
            ),
            (
                "gh:o/r",
                &["R-Q4_0.gguf"][..],
                "not a HuggingFace reference",
            ),
        ] {
            let e = named(reference, paths).unwrap_err();
            assert!(e.contains(says), "{reference}: {e}");
        }
    }
}
