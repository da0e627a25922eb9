//! Where the GitHub API is, which token to use and how long to wait for rate limits.

use std::time::Duration;

use rbee_artifact::{Error, Result, Secret};
use url::Url;

/// The public GitHub API.
pub const DEFAULT_API_BASE: &str = "https://api.github.com";

/// How long a rate-limit wait may be before resolving gives up with
/// [`Error::RateLimited`] instead of waiting.
pub const DEFAULT_MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Configuration of [`GitHubVendor`](crate::GitHubVendor).
///
/// Libraries take explicit configuration; binaries build it with [`GitHubConfig::from_env`],
/// tests build it by hand (pointing `api_base` at a local server).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GitHubConfig {
    /// The REST API root: `https://api.github.com`, or `https://HOST/api/v3` for GitHub
    /// Enterprise Server.
    pub api_base: Url,
    /// A personal access token (needed for private repositories; raises the rate limit from 60
    /// to 5,000 requests an hour). Sent only to `api_base`'s host.
    pub token: Option<Secret>,
    /// Longest rate-limit wait that is waited out (cancellably); a longer one fails with
    /// [`Error::RateLimited`].
    pub max_rate_limit_wait: Duration,
    /// How many rate-limited answers one API call waits out before giving up.
    pub max_rate_limit_retries: u32,
}

impl Default for GitHubConfig {
    /// The public API, no token, a 60-second rate-limit budget. Reads no environment.
    fn default() -> Self {
        Self {
            api_base: Url::parse(DEFAULT_API_BASE).expect("the default API base is a valid URL"),
            token: None,
            max_rate_limit_wait: DEFAULT_MAX_RATE_LIMIT_WAIT,
            max_rate_limit_retries: 3,
        }
    }
}

impl GitHubConfig {
    /// A configuration for the API at `api_base`, without a token.
    pub fn new(api_base: Url) -> Self {
        Self {
            api_base,
            ..Self::default()
        }
    }

    /// The same configuration with `token`.
    pub fn with_token(mut self, token: Option<Secret>) -> Self {
        self.token = token;
        self
    }

    /// The same configuration with another rate-limit budget.
    pub fn with_max_rate_limit_wait(mut self, wait: Duration) -> Self {
        self.max_rate_limit_wait = wait;
        self
    }

    /// Reads `GITHUB_API_URL` (default `https://api.github.com`) and `GITHUB_TOKEN`, else
    /// `GH_TOKEN`. For binaries; libraries and tests build the configuration explicitly.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut config = Self::default();
        if let Some(raw) = lookup("GITHUB_API_URL").filter(|v| !v.trim().is_empty()) {
            config.api_base = parse_api_base(raw.trim())?;
        }
        config.token = lookup("GITHUB_TOKEN")
            .and_then(Secret::new)
            .or_else(|| lookup("GH_TOKEN").and_then(Secret::new));
        Ok(config)
    }
}

fn parse_api_base(raw: &str) -> Result<Url> {
    let bad = |shown: &str, why: &str| {
        Error::InvalidRequest(format!(
            "GITHUB_API_URL `{shown}` is not usable: {why}; expected e.g. https://api.github.com or https://github.example.com/api/v3"
        ))
    };
    let url = Url::parse(raw).map_err(|_| bad(raw, "it does not parse as a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(raw, "it must be an http(s) URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the credentials themselves.
        let shown = rbee_artifact::redacted_url(&url);
        return Err(bad(
            shown.as_str(),
            "credentials belong in GITHUB_TOKEN, not in the URL",
        ));
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
    fn defaults_without_environment() {
        let c = GitHubConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.api_base.as_str(), "https://api.github.com/");
        assert!(c.token.is_none());
        assert_eq!(c.max_rate_limit_wait, DEFAULT_MAX_RATE_LIMIT_WAIT);
    }

    #[test]
    fn github_token_wins_over_gh_token_and_blank_is_none() {
        let c =
            GitHubConfig::from_lookup(lookup(&[("GITHUB_TOKEN", "a"), ("GH_TOKEN", "b")])).unwrap();
        assert_eq!(c.token.unwrap().expose(), "a");
        let c =
            GitHubConfig::from_lookup(lookup(&[("GITHUB_TOKEN", " "), ("GH_TOKEN", "b")])).unwrap();
        assert_eq!(c.token.unwrap().expose(), "b");
        let c = GitHubConfig::from_lookup(lookup(&[("GH_TOKEN", "")])).unwrap();
        assert!(c.token.is_none());
    }

    #[test]
    fn enterprise_base_and_bad_bases() {
        let c = GitHubConfig::from_lookup(lookup(&[(
            "GITHUB_API_URL",
            "https://ghe.example.com/api/v3",
        )]))
        .unwrap();
        assert_eq!(c.api_base.as_str(), "https://ghe.example.com/api/v3");
        for bad in [
            "not a url",
            "ftp://x/",
            "https://u:p@ghe.example.com/api/v3",
        ] {
            let e = GitHubConfig::from_lookup(lookup(&[("GITHUB_API_URL", bad)])).unwrap_err();
            assert_eq!(e.code(), "invalid_request", "{bad}");
            assert!(e.to_string().contains("GITHUB_API_URL"), "{e}");
            assert!(!e.to_string().contains("u:p@"), "{e}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let c = GitHubConfig::default().with_token(Secret::new("ghp_supersecret"));
        assert!(!format!("{c:?}").contains("supersecret"));
    }
}
