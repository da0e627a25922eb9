//! `hf:` references: the HuggingFace grammar, its typed reference and its catalog key.
//!
//! ```text
//! hf:ORG/REPO[@REV][:QUANT]        a HuggingFace repo, optionally one GGUF quantization
//! hf:ORG/REPO[@REV]:fit            the largest GGUF quantization that fits the GPUs
//! hf:ORG/REPO[@REV]/PATH           exactly one file of a HuggingFace repo
//! ORG/REPO…, hf.co/ORG/REPO…       accepted spellings of the same (also hf://ORG/REPO…;
//!                                  `:latest` means the default quantization)
//! https://huggingface.co/ORG/REPO[/blob|resolve|tree/REV[/PATH]]
//! ```
//!
//! A revision containing `/` is written with `%2F` (`@release%2Fv1`), except the pull-request
//! refs `refs/pr/N` that the Hub uses, which may be written as they are.
//!
//! Claims: the Hub's hosts (`hf.co/…`, `huggingface.co/…`, `https://huggingface.co/…`) before
//! any prefix is read, and any text without a prefix (`ORG/REPO…`, as llama.cpp's `-hf` and
//! Ollama's `hf.co/` read it) when no other vendor's prefix matched.

use std::fmt;

use rbee_artifact::{
    Claim, RefErrorKind, Scheme, VendorReference, check_name, check_repo_path, check_revision,
    decode_revision, encode_revision, key_segment, split_scheme,
};
use url::Url;

/// The Hub's hosts, as written in a reference.
const HOSTS: [&str; 3] = ["hf.co", "huggingface.co", "www.huggingface.co"];

/// A HuggingFace reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HfRef {
    /// The user or organisation.
    pub org: String,
    /// The repository name.
    pub repo: String,
    /// Branch, tag or commit; `None` means the default branch (`main`).
    pub revision: Option<String>,
    /// What to take from the repository.
    pub selector: HfSelector,
}

/// What to take from a HuggingFace repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HfSelector {
    /// GGUF repos: the preferred quantization; other repos: a runnable snapshot.
    Default,
    /// One GGUF quantization, stored upper-case (`Q4_K_M`); matched case-insensitively.
    Quant(String),
    /// Exactly one file, by its path in the repository.
    File(String),
    /// GGUF repos: the largest quantization that fits the GPUs (`:fit`). Only a caller that
    /// knows the GPUs can choose it; it names the chosen quantization before resolving.
    Fit,
}

impl fmt::Display for HfRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hf:{}/{}", self.org, self.repo)?;
        if let Some(rev) = &self.revision {
            write!(f, "@{}", encode_revision(rev))?;
        }
        match &self.selector {
            HfSelector::Default => Ok(()),
            HfSelector::Quant(q) => write!(f, ":{q}"),
            HfSelector::File(p) => write!(f, "/{p}"),
            HfSelector::Fit => write!(f, ":fit"),
        }
    }
}

impl VendorReference for HfRef {
    const SCHEME: Scheme = SCHEME;
    const PREFIXES: &'static [&'static str] = &["hf", "huggingface"];
    const EXAMPLE: &'static str = "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M";
    const KEY_DEPTH: usize = 3;

    fn parse(_input: &str, body: &str) -> Result<Self, RefErrorKind> {
        // `hf://ORG/REPO` is huggingface_hub's filesystem spelling of the same.
        parse_hf(body.strip_prefix("//").unwrap_or(body))
    }

    fn claim(input: &str) -> Option<Claim> {
        if hub_page(input).is_some() {
            Some(Claim::Host)
        } else if split_scheme(input).is_none() {
            Some(Claim::Bare)
        } else {
            None
        }
    }

    fn parse_claimed(input: &str) -> Result<Self, RefErrorKind> {
        if let Some(path) = hub_page(input) {
            return parse_hf_page(&path);
        }
        if !input.contains('/') {
            return Err(RefErrorKind::Missing {
                part: "organisation (write ORG/REPO, or use a scheme such as hf: or file:)",
            });
        }
        parse_hf(input)
    }

    fn catalog_segments(&self) -> Vec<String> {
        let mut variant = match &self.selector {
            HfSelector::Default => "default".to_string(),
            HfSelector::Quant(q) => q.clone(),
            HfSelector::File(p) => format!("file-{p}"),
            // Never stored: the quantization is chosen before resolving.
            HfSelector::Fit => "fit".to_string(),
        };
        if let Some(rev) = self.revision.as_deref().filter(|r| *r != "main") {
            variant = format!("{variant}@{rev}");
        }
        vec![
            key_segment(&self.org),
            key_segment(&self.repo),
            key_segment(&variant),
        ]
    }

    fn is_pinned(&self) -> bool {
        self.revision
            .as_deref()
            .is_some_and(|rev| rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

/// The scheme of HuggingFace references.
pub const SCHEME: Scheme = Scheme::new("hf");

/// The path of a Hub page named by `input` (`hf.co/ORG/REPO…`, `https://huggingface.co/…`).
fn hub_page(input: &str) -> Option<String> {
    let lower = input.to_ascii_lowercase();
    for host in HOSTS {
        if lower.starts_with(host) && lower[host.len()..].starts_with('/') {
            return Some(input[host.len() + 1..].to_string());
        }
    }
    let (prefix, _) = split_scheme(input)?;
    if !matches!(prefix.to_ascii_lowercase().as_str(), "http" | "https") {
        return None;
    }
    let url = Url::parse(input).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    HOSTS
        .contains(&host.as_str())
        .then(|| url.path().trim_start_matches('/').to_string())
}

/// `ORG/REPO[@REV][:QUANT]` or `ORG/REPO[@REV]/PATH`; also tolerates `ORG/REPO:QUANT@REV`.
fn parse_hf(body: &str) -> Result<HfRef, RefErrorKind> {
    let (org, rest) = body.split_once('/').ok_or(RefErrorKind::Missing {
        part: "repository name (write ORG/REPO)",
    })?;
    check_name("organisation", org)?;
    let repo_end = rest.find(['@', ':', '/']).unwrap_or(rest.len());
    let repo = &rest[..repo_end];
    check_name("repository name", repo)?;
    let mut tail = &rest[repo_end..];

    let mut revision = None;
    if let Some(after_at) = tail.strip_prefix('@') {
        let (rev, next) = split_revision(after_at);
        revision = Some(check_revision(rev)?);
        tail = next;
    }

    let selector = if let Some(quant) = tail.strip_prefix(':') {
        let quant = match quant.split_once('@') {
            Some((q, rev)) if revision.is_none() => {
                revision = Some(check_revision(rev)?);
                q
            }
            _ => quant,
        };
        // Ollama's default tag: whatever quantization a plain `ORG/REPO` would pick.
        if quant.eq_ignore_ascii_case("latest") {
            HfSelector::Default
        } else if quant.eq_ignore_ascii_case("fit") {
            HfSelector::Fit
        } else {
            HfSelector::Quant(check_quant(quant)?)
        }
    } else if let Some(path) = tail.strip_prefix('/') {
        HfSelector::File(check_repo_path(path)?)
    } else if tail.is_empty() {
        HfSelector::Default
    } else {
        return Err(RefErrorKind::Invalid {
            part: "text after the repository",
            value: tail.to_string(),
            reason: "expected @REVISION, :QUANT or /PATH",
        });
    };
    Ok(HfRef {
        org: org.to_string(),
        repo: repo.to_string(),
        revision,
        selector,
    })
}

/// `ORG/REPO/{blob,resolve}/REV/PATH`, `ORG/REPO/tree/REV`.
fn parse_hf_page(path: &str) -> Result<HfRef, RefErrorKind> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_end_matches('/');
    let first = path.split('/').next().unwrap_or_default();
    if matches!(first, "datasets" | "spaces") {
        return Err(RefErrorKind::Unsupported(
            "HuggingFace datasets and spaces are not models; name a model repository",
        ));
    }
    let mut parts = path.splitn(3, '/');
    let (Some(org), Some(repo)) = (parts.next(), parts.next()) else {
        return parse_hf(path);
    };
    let Some(rest) = parts.next() else {
        return parse_hf(path);
    };
    let (kind, after) = rest.split_once('/').unwrap_or((rest, ""));
    match kind {
        "blob" | "resolve" | "tree" => {
            let (rev, file) = split_revision(after);
            if rev.is_empty() {
                return Err(RefErrorKind::Missing {
                    part: "revision after /blob/, /resolve/ or /tree/",
                });
            }
            let file = file.trim_start_matches('/');
            let rev = check_revision(&decode_revision(rev))?;
            check_name("organisation", org)?;
            check_name("repository name", repo)?;
            let selector = if kind == "tree" || file.is_empty() {
                if kind != "tree" {
                    return Err(RefErrorKind::Missing {
                        part: "file path after the revision",
                    });
                }
                if !file.is_empty() {
                    return Err(RefErrorKind::Unsupported(
                        "a folder inside a repository cannot be fetched on its own; name the repository or one file",
                    ));
                }
                HfSelector::Default
            } else {
                HfSelector::File(check_repo_path(file)?)
            };
            Ok(HfRef {
                org: org.to_string(),
                repo: repo.to_string(),
                revision: Some(rev),
                selector,
            })
        }
        _ => parse_hf(path),
    }
}

/// Splits `REV[:…|/…]` where a revision may itself be `refs/pr/N`.
fn split_revision(s: &str) -> (&str, &str) {
    if let Some(num) = s.strip_prefix("refs/pr/") {
        let digits = num.bytes().take_while(u8::is_ascii_digit).count();
        let end = "refs/pr/".len() + digits;
        return (&s[..end], &s[end..]);
    }
    let end = s.find([':', '/']).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn check_quant(quant: &str) -> Result<String, RefErrorKind> {
    if quant.is_empty() {
        return Err(RefErrorKind::Missing {
            part: "quantization after `:`",
        });
    }
    if quant.len() > 64
        || !quant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(RefErrorKind::Invalid {
            part: "quantization",
            value: quant.to_string(),
            reason: "a quantization looks like Q4_K_M, Q8_0, F16 or IQ2_XXS",
        });
    }
    Ok(quant.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use rbee_artifact::{ArtifactRef, register_reference};

    use super::*;

    fn hf(s: &str) -> HfRef {
        register_reference::<HfRef>();
        match s.parse::<ArtifactRef>() {
            Ok(r) if r.get::<HfRef>().is_some() => r.get::<HfRef>().cloned().unwrap(),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn hf_forms() {
        let h = hf("hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF");
        assert_eq!(
            (h.org.as_str(), h.repo.as_str()),
            ("TheBloke", "TinyLlama-1.1B-Chat-v1.0-GGUF")
        );
        assert_eq!(h.selector, HfSelector::Default);
        assert_eq!(h.revision, None);

        let h = hf("hf:org/repo:q5_k_m");
        assert_eq!(h.selector, HfSelector::Quant("Q5_K_M".into()));

        let h = hf("hf:org/repo@v1.0:Q8_0");
        assert_eq!(h.revision.as_deref(), Some("v1.0"));
        assert_eq!(h.selector, HfSelector::Quant("Q8_0".into()));

        let h = hf("hf:org/repo:Q8_0@v1.0");
        assert_eq!(h.revision.as_deref(), Some("v1.0"));

        let h = hf("hf:org/repo/sub/dir/model.gguf");
        assert_eq!(h.selector, HfSelector::File("sub/dir/model.gguf".into()));

        let h = hf("hf:org/repo@refs/pr/12/model.gguf");
        assert_eq!(h.revision.as_deref(), Some("refs/pr/12"));
        assert_eq!(h.selector, HfSelector::File("model.gguf".into()));

        let h = hf("hf:org/repo@release%2Fv2");
        assert_eq!(h.revision.as_deref(), Some("release/v2"));
    }

    #[test]
    fn accepted_spellings() {
        for s in [
            "org/repo:Q4_K_M",
            "hf.co/org/repo:Q4_K_M",
            "huggingface.co/org/repo:Q4_K_M",
            "https://huggingface.co/org/repo:Q4_K_M",
            "  hf:org/repo:q4_k_m ",
            "huggingface:org/repo:Q4_K_M",
        ] {
            let h = hf(s);
            assert_eq!(h.selector, HfSelector::Quant("Q4_K_M".into()), "{s}");
            assert_eq!(h.org, "org");
        }
        let h = hf("https://huggingface.co/org/repo/blob/main/file.gguf");
        assert_eq!(h.revision.as_deref(), Some("main"));
        assert_eq!(h.selector, HfSelector::File("file.gguf".into()));
        let h = hf("https://huggingface.co/org/repo/resolve/abc123/dir/f.gguf?download=true");
        assert_eq!(h.revision.as_deref(), Some("abc123"));
        assert_eq!(h.selector, HfSelector::File("dir/f.gguf".into()));
        let h = hf("https://huggingface.co/org/repo/tree/dev");
        assert_eq!(h.revision.as_deref(), Some("dev"));
        assert_eq!(h.selector, HfSelector::Default);
        let h = hf("https://huggingface.co/org/repo");
        assert_eq!(h.selector, HfSelector::Default);
    }

    #[test]
    fn hf_filesystem_spelling_and_ollamas_latest_tag() {
        register_reference::<HfRef>();
        let h = hf("hf://org/repo:Q4_K_M");
        assert_eq!((h.org.as_str(), h.repo.as_str()), ("org", "repo"));
        assert_eq!(h.selector, HfSelector::Quant("Q4_K_M".into()));
        assert_eq!(
            hf("hf://org/repo/dir/f.gguf").selector,
            HfSelector::File("dir/f.gguf".into())
        );
        for s in [
            "hf.co/org/repo:latest",
            "org/repo:LATEST",
            "hf:org/repo@v2:latest",
        ] {
            let r: ArtifactRef = s.parse().unwrap();
            let Some(h) = r.get::<HfRef>() else {
                panic!("{s}")
            };
            assert_eq!(h.selector, HfSelector::Default, "{s}");
            // `:latest` is a spelling, not part of the identity.
            assert!(!r.to_string().contains("latest"), "{r}");
        }
    }

    #[test]
    fn fit_selector_round_trips() {
        register_reference::<HfRef>();
        for s in ["hf:org/repo:fit", "org/repo:FIT", "hf.co/org/repo:Fit"] {
            let r: ArtifactRef = s.parse().unwrap();
            let Some(h) = r.get::<HfRef>() else {
                panic!("{s}")
            };
            assert_eq!(h.selector, HfSelector::Fit, "{s}");
            assert_eq!(r.to_string(), "hf:org/repo:fit");
        }
        let r: ArtifactRef = "hf:org/repo@v2:fit".parse().unwrap();
        assert_eq!(r.to_string(), "hf:org/repo@v2:fit");
        assert_eq!(r.to_string().parse::<ArtifactRef>().unwrap(), r);
    }
}
