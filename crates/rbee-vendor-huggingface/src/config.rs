//! Where the Hub is, who we are, and where the HuggingFace cache lives.

use std::path::{Path, PathBuf};

use rbee_artifact::{Error, Secret};
use url::Url;

/// The default Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Settings of the HuggingFace vendor. Libraries take it explicitly; binaries build it with
/// [`HfConfig::from_env`].
#[derive(Debug, Clone)]
pub struct HfConfig {
    /// The Hub or a compatible mirror (`HF_ENDPOINT`), e.g. `https://huggingface.co`.
    pub endpoint: Url,
    /// Sent as `Authorization: Bearer …` to the endpoint's host only. Never printed.
    pub token: Option<Secret>,
    /// `HF_HOME` (default `~/.cache/huggingface`).
    pub hf_home: PathBuf,
    /// The HuggingFace cache of repositories (`HF_HUB_CACHE`, default `$HF_HOME/hub`): files
    /// found there are reused instead of downloaded.
    pub hub_cache: PathBuf,
    /// Never touch the network: resolve from the HuggingFace cache only (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Also place downloaded files in the HuggingFace cache layout, so huggingface_hub, hf-hub
    /// and llama.cpp's `-hf` find them without downloading again (`--hf-cache`).
    pub write_hf_cache: bool,
    /// Look in the HuggingFace cache before downloading (default on).
    pub reuse_hf_cache: bool,
    /// Hub mirrors tried in order before `endpoint` (`RBEE_MIRRORS`, `--mirror`), e.g. other
    /// rbee-hives. A mirror that fails is passed over for a while; the token is never sent to
    /// one. The catalog records the origin's reference whichever served.
    pub mirrors: Vec<Url>,
    /// Fetch files the Hub stores in Xet natively, with the plain `resolve` URL as the
    /// fallback (default on; off with `HF_HUB_DISABLE_XET=1` or `--no-xet`).
    pub xet: bool,
    /// Where decoded Xet chunks are kept between downloads (`RBEE_XET_CACHE`; the CLI and the
    /// daemon default to a folder inside rbee's cache). `None`: no chunk cache.
    pub xet_cache: Option<PathBuf>,
    /// The chunk cache's size budget (default 20 GiB); 0 turns it off (`RBEE_XET_CACHE=off`).
    pub xet_cache_max_bytes: u64,
}

/// The chunk cache's default size budget.
pub const DEFAULT_XET_CACHE_BYTES: u64 = 20 << 30;

impl HfConfig {
    /// A configuration for `endpoint` with the HuggingFace cache under `hf_home/hub`, no
    /// token, online, reusing but not writing the HuggingFace cache.
    pub fn new(endpoint: Url, hf_home: impl Into<PathBuf>) -> Self {
        let hf_home = hf_home.into();
        Self {
            endpoint,
            token: None,
            hub_cache: hf_home.join("hub"),
            hf_home,
            offline: false,
            write_hf_cache: false,
            reuse_hf_cache: true,
            mirrors: Vec::new(),
            xet: true,
            xet_cache: None,
            xet_cache_max_bytes: DEFAULT_XET_CACHE_BYTES,
        }
    }

    /// Reads the environment the way huggingface_hub does: `HF_ENDPOINT`; `HF_TOKEN` (else
    /// the legacy `HUGGING_FACE_HUB_TOKEN`, else the file at `HF_TOKEN_PATH`, default
    /// `$HF_HOME/token`); `RBEE_MIRRORS`; `HF_HOME` (default `$XDG_CACHE_HOME/huggingface`, else
    /// `~/.cache/huggingface`); `HF_HUB_CACHE`; `HF_HUB_OFFLINE`; `HF_HUB_DISABLE_XET`; `RBEE_XET_CACHE`.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(|name| std::env::var(name).ok(), std::env::home_dir())
    }

    /// [`from_env`](Self::from_env) over any variable source (for tests and embedding).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        home: Option<PathBuf>,
    ) -> Result<Self, Error> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let endpoint_text = set("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let endpoint = parse_endpoint(endpoint_text.trim())?;

        let hf_home = match set("HF_HOME") {
            Some(h) => PathBuf::from(h),
            None => match set("XDG_CACHE_HOME") {
                Some(x) => Path::new(&x).join("huggingface"),
                None => home
                    .ok_or_else(|| Error::InvalidRequest(
                        "cannot find the HuggingFace cache: neither HF_HOME nor HOME is set; set HF_HOME".into(),
                    ))?
                    .join(".cache")
                    .join("huggingface"),
            },
        };
        let mut config = Self::new(endpoint, hf_home);
        if let Some(hub) = set("HF_HUB_CACHE").or_else(|| set("HUGGINGFACE_HUB_CACHE")) {
            config.hub_cache = PathBuf::from(hub);
        }
        if let Some(list) = set("RBEE_MIRRORS") {
            config.mirrors = crate::mirrors::parse_mirrors(&list)
                .map_err(|e| Error::InvalidRequest(format!("RBEE_MIRRORS: {e}")))?;
        }
        config.offline = set("HF_HUB_OFFLINE").is_some_and(|v| is_truthy(&v));
        config.xet = !set("HF_HUB_DISABLE_XET").is_some_and(|v| is_truthy(&v));
        match set("RBEE_XET_CACHE") {
            Some(v) if matches!(v.trim(), "off" | "0" | "false" | "no") => {
                config.xet_cache_max_bytes = 0;
            }
            // On, where it is by default: not a folder named `on` wherever rbee runs.
            Some(v) if is_truthy(&v) => {}
            Some(dir) => config.xet_cache = Some(PathBuf::from(dir)),
            None => {}
        }
        config.token = match set("HF_TOKEN").or_else(|| set("HUGGING_FACE_HUB_TOKEN")) {
            Some(token) => Secret::new(token),
            None => {
                let path = set("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| config.hf_home.join("token"));
                read_token_file(&path)?
            }
        };
        Ok(config)
    }
}

/// huggingface_hub's truthy values for boolean variables.
fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

fn parse_endpoint(text: &str) -> Result<Url, Error> {
    let url = Url::parse(text).map_err(|e| {
        Error::InvalidRequest(format!(
            "HF_ENDPOINT `{text}` is not a URL ({e}); write e.g. https://huggingface.co"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::InvalidRequest(format!(
            "HF_ENDPOINT `{text}` must be an http(s) URL with a host, e.g. https://huggingface.co"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::InvalidRequest(
            "HF_ENDPOINT must not contain credentials; put the token in HF_TOKEN".into(),
        ));
    }
    Ok(url)
}

fn read_token_file(path: &Path) -> Result<Option<Secret>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Secret::new(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(
            format!("reading the HuggingFace token file {}", path.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)], home: Option<&Path>) -> Result<HfConfig, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HfConfig::from_vars(|k| map.get(k).cloned(), home.map(Path::to_path_buf))
    }

    #[test]
    fn defaults_and_overrides() {
        let home = tempfile::tempdir().unwrap();
        let c = from(&[], Some(home.path())).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://huggingface.co/");
        assert_eq!(c.hf_home, home.path().join(".cache/huggingface"));
        assert_eq!(c.hub_cache, home.path().join(".cache/huggingface/hub"));
        assert!(c.token.is_none() && !c.offline && !c.write_hf_cache && c.reuse_hf_cache);

        let c = from(
            &[
                ("HF_ENDPOINT", "http://127.0.0.1:9/mirror"),
                ("HF_HOME", "/x/hf"),
                ("HF_HUB_CACHE", "/y/hub"),
                ("HF_HUB_OFFLINE", "yes"),
                ("HF_TOKEN", " hf_abc "),
            ],
            None,
        )
        .unwrap();
        assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:9/mirror");
        assert_eq!(c.hf_home, Path::new("/x/hf"));
        assert_eq!(c.hub_cache, Path::new("/y/hub"));
        assert!(c.offline);
        assert_eq!(c.token.as_ref().unwrap().expose(), "hf_abc");
        assert!(!format!("{c:?}").contains("hf_abc"));

        let c = from(&[("XDG_CACHE_HOME", "/xdg"), ("HF_HUB_OFFLINE", "0")], None).unwrap();
        assert_eq!(c.hf_home, Path::new("/xdg/huggingface"));
        assert!(!c.offline);
    }

    #[test]
    fn the_xet_cache_is_a_folder_or_off_and_on_means_its_default_place() {
        let c = |v: &str| from(&[("RBEE_XET_CACHE", v), ("HF_HOME", "/x/hf")], None).unwrap();
        for on in ["on", "1", "true", "YES"] {
            assert_eq!(c(on).xet_cache, None, "{on}");
            assert!(c(on).xet_cache_max_bytes > 0, "{on}");
        }
        for off in ["off", "0", "false", "no"] {
            assert_eq!(c(off).xet_cache_max_bytes, 0, "{off}");
        }
        assert_eq!(c("/x/chunks").xet_cache, Some(PathBuf::from("/x/chunks")));
    }

    #[test]
    fn token_file_under_hf_home() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "hf_fromfile\n").unwrap();
        let home = dir.path().to_str().unwrap();
        let c = from(&[("HF_HOME", home)], None).unwrap();
        assert_eq!(c.token.unwrap().expose(), "hf_fromfile");
        let c = from(&[("HF_HOME", home), ("HF_TOKEN", "hf_env")], None).unwrap();
        assert_eq!(c.token.unwrap().expose(), "hf_env", "the variable wins");
        std::fs::write(dir.path().join("other"), "hf_other").unwrap();
        let other = dir.path().join("other");
        let c = from(
            &[
                ("HF_HOME", home),
                ("HF_TOKEN_PATH", other.to_str().unwrap()),
            ],
            None,
        )
        .unwrap();
        assert_eq!(c.token.unwrap().expose(), "hf_other");
    }

    #[test]
    fn bad_endpoint_is_a_clear_error() {
        for bad in ["not a url", "ftp://x", "https://u:p@h"] {
            let e = from(&[("HF_ENDPOINT", bad), ("HF_HOME", "/h")], None).unwrap_err();
            assert!(e.to_string().contains("HF_ENDPOINT"), "{e}");
        }
        let e = from(&[], None).unwrap_err();
        assert!(e.to_string().contains("HF_HOME"), "{e}");
    }
}
