//! `gh:` references: the GitHub releases grammar, its typed reference and its catalog key.
//!
//! ```text
//! gh:OWNER/REPO[@TAG][/ASSET]      a release asset (name or glob); no tag = the latest release
//! https://github.com/OWNER/REPO/releases/download/TAG/ASSET
//! https://github.com/OWNER/REPO/releases/tag/TAG, …/releases/latest
//! ```
//!
//! Claims: a `https://github.com/…/releases/…` URL, before any prefix is read (other GitHub
//! URLs stay plain `https:` downloads).

use std::fmt;

use rbee_artifact::{
    Claim, RefErrorKind, Scheme, VendorReference, check_name, check_revision, decode_revision,
    encode_revision, key_segment, split_scheme,
};
use url::Url;

/// A GitHub release reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GhRef {
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Release tag; `None` means the latest release.
    pub tag: Option<String>,
    /// Asset name or glob; `None` means the single model-like asset of the release.
    pub asset: Option<String>,
}

/// The scheme of GitHub release references.
pub const SCHEME: Scheme = Scheme::new("gh");

impl fmt::Display for GhRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gh:{}/{}", self.owner, self.repo)?;
        if let Some(tag) = &self.tag {
            write!(f, "@{}", encode_revision(tag))?;
        }
        if let Some(asset) = &self.asset {
            write!(f, "/{asset}")?;
        }
        Ok(())
    }
}

impl VendorReference for GhRef {
    const SCHEME: Scheme = SCHEME;
    const PREFIXES: &'static [&'static str] = &["gh", "github"];
    const EXAMPLE: &'static str = "gh:ggml-org/llama.cpp@b4500/ggml-vocab-llama.gguf";
    const KEY_DEPTH: usize = 3;

    fn parse(_input: &str, body: &str) -> Result<Self, RefErrorKind> {
        parse_gh(body)
    }

    fn claim(input: &str) -> Option<Claim> {
        release_url(input).is_some().then_some(Claim::Host)
    }

    fn parse_claimed(input: &str) -> Result<Self, RefErrorKind> {
        match release_url(input) {
            Some(parsed) => parsed,
            None => parse_gh(input),
        }
    }

    fn catalog_segments(&self) -> Vec<String> {
        let mut variant = self.tag.clone().unwrap_or_else(|| "latest".into());
        if let Some(asset) = &self.asset {
            variant = format!("{variant}+{asset}");
        }
        vec![
            key_segment(&self.owner),
            key_segment(&self.repo),
            key_segment(&variant),
        ]
    }

    fn is_pinned(&self) -> bool {
        self.tag.is_some()
    }
}

/// A `http(s)://github.com/…/releases/…` URL, parsed.
fn release_url(input: &str) -> Option<Result<GhRef, RefErrorKind>> {
    let (prefix, _) = split_scheme(input)?;
    if !matches!(prefix.to_ascii_lowercase().as_str(), "http" | "https") {
        return None;
    }
    let url = Url::parse(input).ok()?;
    if !url.host_str()?.eq_ignore_ascii_case("github.com") {
        return None;
    }
    parse_github_release_url(url.path())
}

/// `OWNER/REPO[@TAG][/ASSET]`.
fn parse_gh(body: &str) -> Result<GhRef, RefErrorKind> {
    let (owner, rest) = body.split_once('/').ok_or(RefErrorKind::Missing {
        part: "repository name (write gh:OWNER/REPO)",
    })?;
    check_name("owner", owner)?;
    let repo_end = rest.find(['@', '/']).unwrap_or(rest.len());
    let repo = &rest[..repo_end];
    check_name("repository name", repo)?;
    let mut tail = &rest[repo_end..];
    let mut tag = None;
    if let Some(after_at) = tail.strip_prefix('@') {
        let end = after_at.find('/').unwrap_or(after_at.len());
        tag = Some(check_revision(&decode_revision(&after_at[..end]))?);
        tail = &after_at[end..];
    }
    let asset = match tail.strip_prefix('/') {
        Some(asset) => Some(check_asset(asset)?),
        None if tail.is_empty() => None,
        None => {
            return Err(RefErrorKind::Invalid {
                part: "text after the repository",
                value: tail.to_string(),
                reason: "expected @TAG or /ASSET",
            });
        }
    };
    Ok(GhRef {
        owner: owner.to_string(),
        repo: repo.to_string(),
        tag,
        asset,
    })
}

/// `/OWNER/REPO/releases/download/TAG/ASSET` or `/OWNER/REPO/releases/tag/TAG`.
fn parse_github_release_url(path: &str) -> Option<Result<GhRef, RefErrorKind>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let body = match parts.as_slice() {
        [owner, repo, "releases", "download", tag, asset] => {
            format!("{owner}/{repo}@{tag}/{asset}")
        }
        [owner, repo, "releases", "tag", tag] => format!("{owner}/{repo}@{tag}"),
        [owner, repo, "releases", "latest"] => format!("{owner}/{repo}"),
        _ => return None,
    };
    let body = percent_encoding::percent_decode_str(&body)
        .decode_utf8_lossy()
        .into_owned();
    Some(parse_gh(&body))
}

fn check_asset(asset: &str) -> Result<String, RefErrorKind> {
    if asset.is_empty() {
        return Err(RefErrorKind::Missing {
            part: "asset name after `/`",
        });
    }
    if asset.contains('/') || asset.contains('\\') || asset == "." || asset == ".." {
        return Err(RefErrorKind::Invalid {
            part: "asset name",
            value: asset.to_string(),
            reason: "an asset is one file name (a glob such as *.gguf is allowed), without `/`",
        });
    }
    Ok(asset.to_string())
}

#[cfg(test)]
mod tests {
    use rbee_artifact::{ArtifactRef, register_reference};

    use super::*;

    #[test]
    fn gh_forms() {
        register_reference::<GhRef>();
        let r: ArtifactRef = "gh:ggml-org/llama.cpp@b4500/ggml-vocab-llama.gguf"
            .parse()
            .unwrap();
        let Some(g) = r.get::<GhRef>() else { panic!() };
        assert_eq!(g.tag.as_deref(), Some("b4500"));
        assert_eq!(g.asset.as_deref(), Some("ggml-vocab-llama.gguf"));
        let r: ArtifactRef = "gh:o/r/*.gguf".parse().unwrap();
        let Some(g) = r.get::<GhRef>() else { panic!() };
        assert_eq!(g.tag, None);
        assert_eq!(g.asset.as_deref(), Some("*.gguf"));
        let r: ArtifactRef = "https://github.com/o/r/releases/download/v1/m.gguf"
            .parse()
            .unwrap();
        assert_eq!(r.to_string(), "gh:o/r@v1/m.gguf");
    }
}
