//! Where the registries are, where Ollama's store is, and whether rbee writes into it.

use std::path::PathBuf;

use rbee_artifact::{Error, Result};
use url::Url;

use crate::DEFAULT_HOST;

/// The public registry's address.
pub const DEFAULT_REGISTRY: &str = "https://registry.ollama.ai";

/// Configuration of [`OllamaVendor`](crate::OllamaVendor).
///
/// Libraries take explicit configuration; binaries build it with [`OllamaConfig::from_env`],
/// tests by hand (a registry on loopback, a temporary store).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OllamaConfig {
    /// Where each registry host is reached: `(host, base URL)`. A host not listed is reached
    /// at `https://HOST/`; `registry.ollama.ai` is listed by default.
    pub registries: Vec<(String, Url)>,
    /// Ollama's model store (`$OLLAMA_MODELS`, `~/.ollama/models`), when known: models and
    /// blobs found there are used instead of downloading.
    pub store: Option<PathBuf>,
    /// Also place what rbee downloads into [`store`](Self::store), so `ollama list` and
    /// `ollama run` see it.
    pub publish_to_store: bool,
    /// Never touch the network: only models already in Ollama's store resolve.
    pub offline: bool,
    /// Where Ollama itself would create its store (`~/.ollama/models`) when none exists yet:
    /// where [`publishing`](Self::publishing) writes then.
    pub store_to_create: Option<PathBuf>,
}

impl Default for OllamaConfig {
    /// The public registry, no store. Reads no environment.
    fn default() -> Self {
        Self {
            registries: vec![(
                DEFAULT_HOST.to_string(),
                Url::parse(DEFAULT_REGISTRY).expect("the default registry is a valid URL"),
            )],
            store: None,
            publish_to_store: false,
            offline: false,
            store_to_create: None,
        }
    }
}

impl OllamaConfig {
    /// The default registry reached at `base` (a mirror, or a test server).
    pub fn with_registry(base: Url) -> Self {
        Self::default().with_registry_for(DEFAULT_HOST, base)
    }

    /// The same configuration with `host` reached at `base`.
    pub fn with_registry_for(mut self, host: &str, base: Url) -> Self {
        let host = host.to_ascii_lowercase();
        self.registries.retain(|(h, _)| *h != host);
        self.registries.push((host, base));
        self
    }

    /// The same configuration reading (and with `publish`, writing) Ollama's store at `store`.
    pub fn with_store(mut self, store: Option<PathBuf>, publish: bool) -> Self {
        self.store = store;
        self.publish_to_store = publish;
        self
    }

    /// The same configuration also writing what rbee downloads into Ollama's store: the one
    /// found, else the one Ollama would create, so `--ollama-store` on a machine where Ollama
    /// has not run yet still leaves models `ollama list` shows.
    pub fn publishing(mut self) -> Self {
        self.publish_to_store = true;
        if self.store.is_none() {
            self.store = self.store_to_create.clone();
        }
        self
    }

    /// The base URL of the registry at `host`.
    pub fn registry_base(&self, host: &str) -> Result<Url> {
        if let Some((_, base)) = self.registries.iter().find(|(h, _)| h == host) {
            return Ok(base.clone());
        }
        Url::parse(&format!("https://{host}/")).map_err(|_| {
            Error::InvalidRequest(format!(
                "`{host}` is not a registry host that can be reached over HTTPS"
            ))
        })
    }

    /// Reads `OLLAMA_REGISTRY` and `OLLAMA_MODELS` (else `~/.ollama/models` when it exists,
    /// else the Linux service's `/usr/share/ollama/.ollama/models` when that does). For
    /// binaries; libraries and tests build the configuration explicitly.
    pub fn from_env() -> Result<Self> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::from_lookup(|name| std::env::var(name).ok(), home)
    }

    /// As [`from_env`](Self::from_env), reading variables through `lookup` and the home
    /// folder from `home`.
    ///
    /// `OLLAMA_REGISTRY` is a base URL for registry.ollama.ai (a mirror), or a comma-separated
    /// list of `HOST=URL` pairs for several registries
    /// (`registry.ollama.ai=https://mirror.example,hf.co=https://hf-mirror.example`).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        home: Option<PathBuf>,
    ) -> Result<Self> {
        let mut config = Self::default();
        if let Some(raw) = lookup("OLLAMA_REGISTRY").filter(|v| !v.trim().is_empty()) {
            for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (host, url) = match entry.split_once('=') {
                    Some((host, url)) if !host.contains('/') => (host.trim(), url.trim()),
                    _ => (DEFAULT_HOST, entry),
                };
                config = config.with_registry_for(host, parse_base(url)?);
            }
        }
        config.store = match lookup("OLLAMA_MODELS").filter(|v| !v.trim().is_empty()) {
            Some(dir) => Some(PathBuf::from(dir.trim())),
            None => {
                config.store_to_create = home.as_ref().map(|h| h.join(".ollama").join("models"));
                let candidates = home
                    .map(|h| h.join(".ollama").join("models"))
                    .into_iter()
                    .chain([PathBuf::from("/usr/share/ollama/.ollama/models")]);
                candidates.into_iter().find(|p| p.is_dir())
            }
        };
        Ok(config)
    }
}

fn parse_base(raw: &str) -> Result<Url> {
    let bad = |shown: &str, why: &str| {
        Error::InvalidRequest(format!(
            "OLLAMA_REGISTRY `{shown}` is not usable: {why}; expected a base URL such as https://registry.ollama.ai, or HOST=URL pairs separated by commas"
        ))
    };
    let url = Url::parse(raw).map_err(|_| bad(raw, "it does not parse as a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(raw, "it must be an http(s) URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        let shown = rbee_artifact::redacted_url(&url);
        return Err(bad(shown.as_str(), "credentials do not belong in the URL"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_and_one_mirror() {
        let c = OllamaConfig::from_lookup(lookup(&[]), None).unwrap();
        assert_eq!(
            c.registry_base("registry.ollama.ai").unwrap().as_str(),
            "https://registry.ollama.ai/"
        );
        assert_eq!(c.registry_base("hf.co").unwrap().as_str(), "https://hf.co/");
        let c = OllamaConfig::from_lookup(
            lookup(&[("OLLAMA_REGISTRY", "http://127.0.0.1:8080/mirror")]),
            None,
        )
        .unwrap();
        assert_eq!(
            c.registry_base("registry.ollama.ai").unwrap().as_str(),
            "http://127.0.0.1:8080/mirror"
        );
    }

    #[test]
    fn several_registries_and_bad_values() {
        let c = OllamaConfig::from_lookup(
            lookup(&[(
                "OLLAMA_REGISTRY",
                "registry.ollama.ai=http://127.0.0.1:1, hf.co=http://127.0.0.1:2",
            )]),
            None,
        )
        .unwrap();
        assert_eq!(
            c.registry_base("hf.co").unwrap().as_str(),
            "http://127.0.0.1:2/"
        );
        assert_eq!(
            c.registry_base("registry.ollama.ai").unwrap().as_str(),
            "http://127.0.0.1:1/"
        );
        for bad in ["nope", "ftp://x", "https://u:secret@x"] {
            let e = OllamaConfig::from_lookup(lookup(&[("OLLAMA_REGISTRY", bad)]), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("OLLAMA_REGISTRY"), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn the_store_comes_from_ollama_models_or_an_existing_home_store() {
        let home = tempfile::tempdir().unwrap();
        let c = OllamaConfig::from_lookup(lookup(&[]), Some(home.path().into())).unwrap();
        // Only an existing store is read (the service's path may exist on this machine).
        assert_ne!(c.store, Some(home.path().join(".ollama/models")));
        std::fs::create_dir_all(home.path().join(".ollama/models")).unwrap();
        let c = OllamaConfig::from_lookup(lookup(&[]), Some(home.path().into())).unwrap();
        assert_eq!(c.store, Some(home.path().join(".ollama/models")));
        let c = OllamaConfig::from_lookup(
            lookup(&[("OLLAMA_MODELS", "/srv/ollama")]),
            Some(home.path().into()),
        )
        .unwrap();
        assert_eq!(c.store, Some(PathBuf::from("/srv/ollama")));
        assert!(!c.publish_to_store);
    }

    #[test]
    fn writing_with_no_store_yet_writes_where_ollama_would_create_it() {
        let home = tempfile::tempdir().unwrap();
        let c = OllamaConfig::from_lookup(lookup(&[]), Some(home.path().into())).unwrap();
        let found = c.store.clone();
        let c = c.publishing();
        assert!(c.publish_to_store);
        // A store found (the service's, on a machine that has one) is kept; else Ollama's
        // default under the home folder.
        assert_eq!(
            c.store,
            Some(found.unwrap_or_else(|| home.path().join(".ollama/models")))
        );
        let c = OllamaConfig::from_lookup(
            lookup(&[("OLLAMA_MODELS", "/srv/ollama")]),
            Some(home.path().into()),
        )
        .unwrap()
        .publishing();
        assert_eq!(c.store, Some(PathBuf::from("/srv/ollama")));
    }
}
