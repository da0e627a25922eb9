//! Artifact references: what a user names, parsed once at the edge.
//!
//! ```text
//! hf:ORG/REPO[@REV][:QUANT]        a HuggingFace repo, optionally one GGUF quantization
//! hf:ORG/REPO[@REV]:fit            the largest GGUF quantization that fits the GPUs
//! hf:ORG/REPO[@REV]/PATH           exactly one file of a HuggingFace repo
//! ORG/REPO…, hf.co/ORG/REPO…       accepted spellings of the same (also hf://ORG/REPO…;
//!                                  `:latest` means the default quantization)
//! https://huggingface.co/ORG/REPO[/blob|resolve|tree/REV[/PATH]]
//! gh:OWNER/REPO[@TAG][/ASSET]      a GitHub release asset (name or glob); no tag = latest release
//! https://github.com/OWNER/REPO/releases/download/TAG/ASSET
//! file:PATH                        a file or folder already on disk
//! https://HOST/PATH[#sha256=HEX]   one file from any HTTP(S) server
//! ```
//!
//! A revision containing `/` is written with `%2F` (`@release%2Fv1`), except the pull-request
//! refs `refs/pr/N` that the Hub uses, which may be written as they are.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::digest::Sha256Digest;
use crate::redact::redacted_url;

/// A parsed reference to an artifact at some vendor.
///
/// Parse with [`str::parse`]; [`Display`](fmt::Display) writes the canonical form, which parses
/// back to an equal value — except that credentials in a URL's query string (a pre-signed URL's
/// signature, say) are written as `REDACTED` ([`redact_url`](crate::redact_url)). The parsed
/// value keeps them for the request itself; the redacted and the full form have the same
/// catalog key, so a record (which holds the redacted form) is found again by the full URL.
///
/// ```
/// use rbee_artifact::{ArtifactRef, HfSelector};
///
/// let r: ArtifactRef = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:q4_k_m".parse().unwrap();
/// let ArtifactRef::HuggingFace(hf) = &r else { panic!() };
/// assert_eq!(hf.selector, HfSelector::Quant("Q4_K_M".into()));
/// assert_eq!(r.to_string(), "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ArtifactRef {
    /// `hf:` — HuggingFace Hub (or a compatible mirror).
    HuggingFace(HfRef),
    /// `gh:` — GitHub release assets.
    GitHub(GhRef),
    /// `file:` — a file or folder on this machine.
    Local(LocalRef),
    /// `https://…` — one file from an HTTP(S) URL.
    Url(UrlRef),
}

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

/// A local file or folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalRef {
    /// The path as given (made absolute by [`ArtifactRef::absolutize`]).
    pub path: PathBuf,
}

/// A direct HTTP(S) URL, optionally with an expected digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UrlRef {
    /// The URL, without fragment, as given: with any credential in its query string. Fetch
    /// from it; show or record it only through [`redact_url`](crate::redact_url).
    pub url: Url,
    /// Expected SHA-256 from a `#sha256=` fragment.
    pub sha256: Option<Sha256Digest>,
}

impl fmt::Debug for UrlRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs too.
        f.debug_struct("UrlRef")
            .field("url", &redacted_url(&self.url).as_str())
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// The vendor a reference belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// HuggingFace Hub.
    Hf,
    /// GitHub releases.
    Gh,
    /// Local files.
    File,
    /// Direct HTTP(S) URLs.
    Url,
}

impl Scheme {
    /// Every scheme, in the order they are documented.
    pub const ALL: [Scheme; 4] = [Scheme::Hf, Scheme::Gh, Scheme::File, Scheme::Url];

    /// The prefix that names this scheme (`"hf"`, `"gh"`, `"file"`, `"url"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Hf => "hf",
            Scheme::Gh => "gh",
            Scheme::File => "file",
            Scheme::Url => "url",
        }
    }

    /// Maps a reference prefix (the part before the first `:`) to its scheme.
    ///
    /// ```
    /// use rbee_artifact::Scheme;
    /// assert_eq!(Scheme::parse("hf"), Some(Scheme::Hf));
    /// assert_eq!(Scheme::parse("HTTPS"), Some(Scheme::Url));
    /// assert_eq!(Scheme::parse("s3"), None);
    /// ```
    pub fn parse(prefix: &str) -> Option<Scheme> {
        match prefix.to_ascii_lowercase().as_str() {
            "hf" | "huggingface" => Some(Scheme::Hf),
            "gh" | "github" => Some(Scheme::Gh),
            "file" => Some(Scheme::File),
            "http" | "https" => Some(Scheme::Url),
            _ => None,
        }
    }

    /// A valid reference of this scheme, shown in error messages.
    pub fn example(self) -> &'static str {
        match self {
            Scheme::Hf => "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M",
            Scheme::Gh => "gh:ggml-org/llama.cpp@b4500/ggml-vocab-llama.gguf",
            Scheme::File => "file:/data/models/custom.gguf",
            Scheme::Url => "https://example.com/models/model.gguf#sha256=<64 hex digits>",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a reference did not parse. Names the offending part and shows a valid example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference `{input}`: {kind}\n  a valid example: {example}")]
pub struct RefError {
    /// What the user wrote (control characters escaped).
    pub input: String,
    /// What is wrong with it.
    pub kind: RefErrorKind,
    /// A valid reference of the scheme the user seemed to mean.
    pub example: &'static str,
}

/// The specific problem with a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefErrorKind {
    /// Nothing was given.
    #[error("the reference is empty")]
    Empty,
    /// A control character (newline, tab, NUL…) appears.
    #[error("it contains a control character at byte {position}")]
    ControlCharacter {
        /// Byte offset in the input.
        position: usize,
    },
    /// A prefix that is not a known vendor.
    #[error("unknown scheme `{scheme}:` (known: hf:, gh:, file:, http(s)://)")]
    UnknownScheme {
        /// The prefix as written.
        scheme: String,
    },
    /// A required part is absent.
    #[error("the {part} is missing")]
    Missing {
        /// Which part (e.g. "repository name").
        part: &'static str,
    },
    /// A part has characters or a shape its vendor does not allow.
    #[error("the {part} `{value}` is not valid: {reason}")]
    Invalid {
        /// Which part (e.g. "organisation", "path segment").
        part: &'static str,
        /// The offending text.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A well-formed reference to something this tool does not fetch.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl FromStr for ArtifactRef {
    type Err = RefError;

    fn from_str(input: &str) -> Result<Self, RefError> {
        parse(input)
    }
}

impl ArtifactRef {
    /// The vendor scheme of this reference.
    pub fn scheme(&self) -> Scheme {
        match self {
            ArtifactRef::HuggingFace(_) => Scheme::Hf,
            ArtifactRef::GitHub(_) => Scheme::Gh,
            ArtifactRef::Local(_) => Scheme::File,
            ArtifactRef::Url(_) => Scheme::Url,
        }
    }

    /// Whether the reference always names the same bytes (a commit sha, a digest-pinned URL).
    /// Moving references (branches, "latest") are worth re-resolving when asked again.
    pub fn is_pinned(&self) -> bool {
        match self {
            ArtifactRef::HuggingFace(hf) => hf
                .revision
                .as_deref()
                .is_some_and(|rev| rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())),
            ArtifactRef::GitHub(gh) => gh.tag.is_some(),
            ArtifactRef::Local(_) => false,
            ArtifactRef::Url(u) => u.sha256.is_some(),
        }
    }

    /// The reference with any credential in a URL's query string left in: what another process
    /// (a daemon) needs to fetch it. Only for handing the request on — never show or record it;
    /// [`Display`](fmt::Display) is the safe form.
    pub fn to_request_string(&self) -> String {
        match self {
            ArtifactRef::Url(u) => {
                let mut s = u.url.to_string();
                if let Some(d) = &u.sha256 {
                    s.push_str(&format!("#sha256={d}"));
                }
                s
            }
            other => other.to_string(),
        }
    }

    /// Makes a relative `file:` path absolute against the current directory (no file-system
    /// access); other references are returned unchanged. Binaries call this at the edge so the
    /// same file always has the same catalog entry.
    pub fn absolutize(self) -> std::io::Result<Self> {
        match self {
            ArtifactRef::Local(LocalRef { path }) if path.is_relative() => {
                Ok(ArtifactRef::Local(LocalRef {
                    path: std::path::absolute(path)?,
                }))
            }
            other => Ok(other),
        }
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactRef::HuggingFace(hf) => {
                write!(f, "hf:{}/{}", hf.org, hf.repo)?;
                if let Some(rev) = &hf.revision {
                    write!(f, "@{}", encode_revision(rev))?;
                }
                match &hf.selector {
                    HfSelector::Default => Ok(()),
                    HfSelector::Quant(q) => write!(f, ":{q}"),
                    HfSelector::File(p) => write!(f, "/{p}"),
                    HfSelector::Fit => write!(f, ":fit"),
                }
            }
            ArtifactRef::GitHub(gh) => {
                write!(f, "gh:{}/{}", gh.owner, gh.repo)?;
                if let Some(tag) = &gh.tag {
                    write!(f, "@{}", encode_revision(tag))?;
                }
                if let Some(asset) = &gh.asset {
                    write!(f, "/{asset}")?;
                }
                Ok(())
            }
            ArtifactRef::Local(l) => write!(f, "file:{}", l.path.display()),
            ArtifactRef::Url(u) => {
                write!(f, "{}", redacted_url(&u.url))?;
                if let Some(d) = &u.sha256 {
                    write!(f, "#sha256={d}")?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for ArtifactRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ArtifactRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

fn parse(raw: &str) -> Result<ArtifactRef, RefError> {
    let input = raw.trim();
    let fail = |kind: RefErrorKind, scheme: Scheme| RefError {
        input: input.escape_debug().to_string(),
        kind,
        example: scheme.example(),
    };
    if input.is_empty() {
        return Err(fail(RefErrorKind::Empty, Scheme::Hf));
    }
    if let Some((position, _)) = input.char_indices().find(|(_, c)| c.is_control()) {
        return Err(fail(
            RefErrorKind::ControlCharacter { position },
            Scheme::Hf,
        ));
    }

    let lower = input.to_ascii_lowercase();
    for host in ["hf.co/", "huggingface.co/", "www.huggingface.co/"] {
        if lower.starts_with(host) {
            return parse_hf_page(&input[host.len()..]).map_err(|k| fail(k, Scheme::Hf));
        }
    }

    let scheme_end = input.find(':');
    let slash = input.find('/');
    let prefix = match (scheme_end, slash) {
        (Some(colon), Some(slash)) if colon < slash => Some(&input[..colon]),
        (Some(colon), None) => Some(&input[..colon]),
        _ => None,
    };
    let Some(prefix) = prefix else {
        // No scheme: `ORG/REPO…` means HuggingFace, as in llama.cpp's `-hf` and Ollama's `hf.co/`.
        if slash.is_none() {
            return Err(fail(
                RefErrorKind::Missing {
                    part: "organisation (write ORG/REPO, or use a scheme such as hf: or file:)",
                },
                Scheme::Hf,
            ));
        }
        return parse_hf(input).map_err(|k| fail(k, Scheme::Hf));
    };
    let body = &input[prefix.len() + 1..];
    let Some(scheme) = Scheme::parse(prefix) else {
        return Err(fail(
            RefErrorKind::UnknownScheme {
                scheme: prefix.to_string(),
            },
            Scheme::Hf,
        ));
    };
    match scheme {
        // `hf://ORG/REPO` is huggingface_hub's filesystem spelling of the same.
        Scheme::Hf => {
            parse_hf(body.strip_prefix("//").unwrap_or(body)).map_err(|k| fail(k, scheme))
        }
        Scheme::Gh => parse_gh(body).map_err(|k| fail(k, scheme)),
        Scheme::File => parse_file(body).map_err(|k| fail(k, scheme)),
        Scheme::Url => parse_url(input).map_err(|(k, s)| fail(k, s)),
    }
}

/// `ORG/REPO[@REV][:QUANT]` or `ORG/REPO[@REV]/PATH`; also tolerates `ORG/REPO:QUANT@REV`.
fn parse_hf(body: &str) -> Result<ArtifactRef, RefErrorKind> {
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
    Ok(ArtifactRef::HuggingFace(HfRef {
        org: org.to_string(),
        repo: repo.to_string(),
        revision,
        selector,
    }))
}

/// The path of a `huggingface.co` page: `ORG/REPO`, `ORG/REPO:QUANT`, or
/// `ORG/REPO/{blob,resolve}/REV/PATH`, `ORG/REPO/tree/REV`.
fn parse_hf_page(path: &str) -> Result<ArtifactRef, RefErrorKind> {
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
            Ok(ArtifactRef::HuggingFace(HfRef {
                org: org.to_string(),
                repo: repo.to_string(),
                revision: Some(rev),
                selector,
            }))
        }
        _ => parse_hf(path),
    }
}

/// `OWNER/REPO[@TAG][/ASSET]`.
fn parse_gh(body: &str) -> Result<ArtifactRef, RefErrorKind> {
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
    Ok(ArtifactRef::GitHub(GhRef {
        owner: owner.to_string(),
        repo: repo.to_string(),
        tag,
        asset,
    }))
}

fn parse_file(body: &str) -> Result<ArtifactRef, RefErrorKind> {
    let path = if let Some(after) = body.strip_prefix("//") {
        // `file:///abs/path` (URL form); `file://host/…` names another machine.
        if !after.starts_with('/') {
            return Err(RefErrorKind::Unsupported(
                "file://HOST/… names another machine; write file:/absolute/path or file:relative/path",
            ));
        }
        after.trim_start_matches('/').to_string()
    } else {
        body.to_string()
    };
    // Keep one leading slash for absolute paths so display round-trips.
    let path = if body.starts_with('/') {
        format!("/{}", path.trim_start_matches('/'))
    } else {
        path
    };
    if path.is_empty() {
        return Err(RefErrorKind::Missing { part: "file path" });
    }
    Ok(ArtifactRef::Local(LocalRef {
        path: PathBuf::from(path),
    }))
}

fn parse_url(input: &str) -> Result<ArtifactRef, (RefErrorKind, Scheme)> {
    let mut url = Url::parse(input).map_err(|_| {
        (
            RefErrorKind::Invalid {
                part: "URL",
                value: input.to_string(),
                reason: "it does not parse as a URL",
            },
            Scheme::Url,
        )
    })?;
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return Err((RefErrorKind::Missing { part: "URL host" }, Scheme::Url));
    };
    if matches!(
        host.as_str(),
        "huggingface.co" | "hf.co" | "www.huggingface.co"
    ) {
        return parse_hf_page(url.path().trim_start_matches('/')).map_err(|k| (k, Scheme::Hf));
    }
    if host == "github.com"
        && let Some(r) = parse_github_release_url(url.path())
    {
        return r.map_err(|k| (k, Scheme::Gh));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err((
            RefErrorKind::Unsupported(
                "credentials inside a URL would be stored and shown; pass a token through the environment instead",
            ),
            Scheme::Url,
        ));
    }
    let sha256 = match url.fragment() {
        None | Some("") => None,
        Some(fragment) => {
            let hex = fragment.strip_prefix("sha256=").ok_or((
                RefErrorKind::Invalid {
                    part: "URL fragment",
                    value: fragment.to_string(),
                    reason: "the only fragment understood is #sha256=<64 hex digits>",
                },
                Scheme::Url,
            ))?;
            Some(hex.parse::<Sha256Digest>().map_err(|_| {
                (
                    RefErrorKind::Invalid {
                        part: "sha256 digest",
                        value: hex.to_string(),
                        reason: "expected 64 hexadecimal digits",
                    },
                    Scheme::Url,
                )
            })?)
        }
    };
    url.set_fragment(None);
    if url.path().ends_with('/') {
        return Err((
            RefErrorKind::Missing {
                part: "file name at the end of the URL",
            },
            Scheme::Url,
        ));
    }
    Ok(ArtifactRef::Url(UrlRef { url, sha256 }))
}

/// `/OWNER/REPO/releases/download/TAG/ASSET` or `/OWNER/REPO/releases/tag/TAG`.
fn parse_github_release_url(path: &str) -> Option<Result<ArtifactRef, RefErrorKind>> {
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

fn decode_revision(rev: &str) -> String {
    rev.replace("%2F", "/").replace("%2f", "/")
}

fn encode_revision(rev: &str) -> String {
    if is_pr_ref(rev) {
        rev.to_string()
    } else {
        rev.replace('/', "%2F")
    }
}

fn is_pr_ref(rev: &str) -> bool {
    rev.strip_prefix("refs/pr/")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn check_name(part: &'static str, value: &str) -> Result<(), RefErrorKind> {
    let invalid = |reason| {
        Err(RefErrorKind::Invalid {
            part,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return Err(RefErrorKind::Missing { part });
    }
    if value.len() > 96 {
        return invalid("longer than 96 characters");
    }
    if value == "." || value == ".." {
        return invalid("`.` and `..` are not names");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return invalid("only letters, digits, `-`, `_` and `.` are allowed");
    }
    Ok(())
}

fn check_revision(rev: &str) -> Result<String, RefErrorKind> {
    let rev = decode_revision(rev);
    let invalid = |reason| {
        Err(RefErrorKind::Invalid {
            part: "revision",
            value: rev.clone(),
            reason,
        })
    };
    if rev.is_empty() {
        return Err(RefErrorKind::Missing {
            part: "revision after `@`",
        });
    }
    if rev.len() > 255 {
        return invalid("longer than 255 characters");
    }
    if rev.contains("..") || rev.starts_with('/') || rev.ends_with('/') || rev.contains("//") {
        return invalid("`..`, leading, trailing or doubled `/` are not allowed");
    }
    if !rev
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'+'))
    {
        return invalid("only letters, digits, `-`, `_`, `.`, `+` and `/` (as %2F) are allowed");
    }
    Ok(rev)
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

/// A relative path inside a repository: no empty, `.` or `..` segments, no backslashes.
pub(crate) fn check_repo_path(path: &str) -> Result<String, RefErrorKind> {
    if path.is_empty() {
        return Err(RefErrorKind::Missing {
            part: "file path after the repository",
        });
    }
    if path.starts_with('/') {
        return Err(RefErrorKind::Invalid {
            part: "path",
            value: path.to_string(),
            reason: "a path inside a repository must be relative",
        });
    }
    for segment in path.split('/') {
        let reason = match segment {
            "" => Some("empty path segment (doubled or trailing `/`)"),
            "." | ".." => Some("`.` and `..` segments are not allowed"),
            s if s.contains('\\') => Some("backslashes are not allowed"),
            s if s.contains(':') => Some("`:` is not allowed in a path"),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(RefErrorKind::Invalid {
                part: "path segment",
                value: segment.to_string(),
                reason,
            });
        }
    }
    Ok(path.to_string())
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

/// Checks that `path` is a safe relative path (as used for files inside an artifact):
/// `/`-separated, no empty, `.` or `..` segments, no backslash, not absolute, no control
/// characters (ANSI escapes included) or text-direction overrides, no segment longer than
/// 255 bytes and at most 1024 bytes in all.
///
/// Vendors call this on every remote file name before writing or showing it, so a hostile
/// server can neither write outside the artifact's folder nor write to the terminal.
pub fn validate_relative_path(path: &str) -> Result<&Path, RefErrorKind> {
    // Checked first, so that later messages may quote the path.
    if let Some(position) = path
        .char_indices()
        .find_map(|(i, c)| unshowable(c).then_some(i))
    {
        return Err(RefErrorKind::ControlCharacter { position });
    }
    if path.len() > MAX_PATH_BYTES || path.split('/').any(|s| s.len() > MAX_NAME_BYTES) {
        let preview: String = path.chars().take(40).collect();
        return Err(RefErrorKind::Invalid {
            part: "path",
            value: format!("{preview}… ({} bytes)", path.len()),
            reason: "a file name is at most 255 bytes and a path at most 1024",
        });
    }
    check_repo_path(path)?;
    Ok(Path::new(path))
}

/// Longest file name (one path segment) accepted from a remote, in bytes: what file systems
/// store.
const MAX_NAME_BYTES: usize = 255;
/// Longest relative path accepted from a remote, in bytes.
const MAX_PATH_BYTES: usize = 1024;

/// A name from a remote as it may be shown in a message: quoted, control characters escaped,
/// cut after 60 characters (a refused name can be megabytes long).
pub fn quote_untrusted(text: &str) -> String {
    const SHOWN: usize = 60;
    let head: String = text.chars().take(SHOWN).collect();
    if head.len() < text.len() {
        format!("{:?}… ({} bytes)", head, text.len())
    } else {
        format!("{head:?}")
    }
}

/// Characters that must not reach a terminal or a file name: control characters (C0, DEL, C1,
/// so every ANSI escape) and the bidirectional overrides that reorder what is displayed.
fn unshowable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hf(s: &str) -> HfRef {
        match s.parse::<ArtifactRef>() {
            Ok(ArtifactRef::HuggingFace(h)) => h,
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
            let ArtifactRef::HuggingFace(h) = &r else {
                panic!("{s}")
            };
            assert_eq!(h.selector, HfSelector::Default, "{s}");
            // `:latest` is a spelling, not part of the identity.
            assert!(!r.to_string().contains("latest"), "{r}");
        }
    }

    #[test]
    fn fit_selector_round_trips() {
        for s in ["hf:org/repo:fit", "org/repo:FIT", "hf.co/org/repo:Fit"] {
            let r: ArtifactRef = s.parse().unwrap();
            let ArtifactRef::HuggingFace(h) = &r else {
                panic!("{s}")
            };
            assert_eq!(h.selector, HfSelector::Fit, "{s}");
            assert_eq!(r.to_string(), "hf:org/repo:fit");
        }
        let r: ArtifactRef = "hf:org/repo@v2:fit".parse().unwrap();
        assert_eq!(r.to_string(), "hf:org/repo@v2:fit");
        assert_eq!(r.to_string().parse::<ArtifactRef>().unwrap(), r);
    }

    #[test]
    fn gh_forms() {
        let r: ArtifactRef = "gh:ggml-org/llama.cpp@b4500/ggml-vocab-llama.gguf"
            .parse()
            .unwrap();
        let ArtifactRef::GitHub(g) = &r else { panic!() };
        assert_eq!(g.tag.as_deref(), Some("b4500"));
        assert_eq!(g.asset.as_deref(), Some("ggml-vocab-llama.gguf"));
        let r: ArtifactRef = "gh:o/r/*.gguf".parse().unwrap();
        let ArtifactRef::GitHub(g) = &r else { panic!() };
        assert_eq!(g.tag, None);
        assert_eq!(g.asset.as_deref(), Some("*.gguf"));
        let r: ArtifactRef = "https://github.com/o/r/releases/download/v1/m.gguf"
            .parse()
            .unwrap();
        assert_eq!(r.to_string(), "gh:o/r@v1/m.gguf");
    }

    #[test]
    fn file_and_url_forms() {
        let r: ArtifactRef = "file:/data/m.gguf".parse().unwrap();
        assert_eq!(r.to_string(), "file:/data/m.gguf");
        let r: ArtifactRef = "file:///data/m.gguf".parse().unwrap();
        assert_eq!(r.to_string(), "file:/data/m.gguf");
        let r: ArtifactRef = "file:models/m.gguf".parse().unwrap();
        assert!(matches!(&r, ArtifactRef::Local(l) if l.path == Path::new("models/m.gguf")));
        let digest = "ab".repeat(32);
        let r: ArtifactRef = format!("https://example.com/a/m.gguf#sha256={digest}")
            .parse()
            .unwrap();
        let ArtifactRef::Url(u) = &r else { panic!() };
        assert_eq!(u.url.as_str(), "https://example.com/a/m.gguf");
        assert_eq!(u.sha256.as_ref().unwrap().to_string(), digest);
        assert!(r.is_pinned());
    }

    fn err(s: &str) -> RefError {
        s.parse::<ArtifactRef>().expect_err(s)
    }

    #[test]
    fn errors_name_the_bad_part() {
        assert_eq!(err("").kind, RefErrorKind::Empty);
        assert!(
            matches!(err("s3:bucket/key").kind, RefErrorKind::UnknownScheme { scheme } if scheme == "s3")
        );
        assert!(matches!(
            err("hf:org/repo/../x").kind,
            RefErrorKind::Invalid {
                part: "path segment",
                ..
            }
        ));
        assert!(matches!(
            err("hf:org/../x").kind,
            RefErrorKind::Invalid {
                part: "repository name",
                ..
            }
        ));
        assert!(
            matches!(err("hf:org//x").kind, RefErrorKind::Missing { part } if part.starts_with("repository"))
        );
        assert!(matches!(
            err("hf:org/repo:").kind,
            RefErrorKind::Missing { .. }
        ));
        assert!(matches!(
            err("hf:org/repo:Q4 K").kind,
            RefErrorKind::Invalid {
                part: "quantization",
                ..
            }
        ));
        assert!(matches!(
            err("hf:org/re po").kind,
            RefErrorKind::Invalid {
                part: "repository name",
                ..
            }
        ));
        assert!(matches!(
            err("hf:o/r\nx").kind,
            RefErrorKind::ControlCharacter { position: 6 }
        ));
        assert!(matches!(
            err("hf:o/r\u{0}x").kind,
            RefErrorKind::ControlCharacter { position: 6 }
        ));
        assert!(matches!(
            err("tinyllama").kind,
            RefErrorKind::Missing { .. }
        ));
        assert!(matches!(
            err("hf:org/repo//abs").kind,
            RefErrorKind::Invalid { .. }
        ));
        assert!(matches!(
            err("gh:o/r/a/b").kind,
            RefErrorKind::Invalid {
                part: "asset name",
                ..
            }
        ));
        assert!(matches!(
            err("https://huggingface.co/datasets/x/y").kind,
            RefErrorKind::Unsupported(_)
        ));
        assert!(matches!(
            err("https://u:p@example.com/m.gguf").kind,
            RefErrorKind::Unsupported(_)
        ));
        assert!(matches!(
            err("https://e.com/m.gguf#md5=1").kind,
            RefErrorKind::Invalid {
                part: "URL fragment",
                ..
            }
        ));
        let e = err("hf:org/repo/../x");
        let msg = e.to_string();
        assert!(
            msg.contains("`..`") && msg.contains("hf:TheBloke/"),
            "{msg}"
        );
    }

    #[test]
    fn a_signed_url_is_shown_redacted_and_handed_on_whole() {
        let signed = "https://h.example/m.gguf?X-Amz-Signature=abc&v=1";
        let r: ArtifactRef = signed.parse().unwrap();
        assert_eq!(
            r.to_string(),
            "https://h.example/m.gguf?X-Amz-Signature=REDACTED&v=1"
        );
        assert_eq!(r.to_request_string(), signed);
        assert_eq!(r.to_request_string().parse::<ArtifactRef>().unwrap(), r);
        let plain: ArtifactRef = "hf:o/r:Q8_0".parse().unwrap();
        assert_eq!(plain.to_request_string(), plain.to_string());
    }

    #[test]
    fn pinned() {
        assert!(!"hf:o/r".parse::<ArtifactRef>().unwrap().is_pinned());
        let sha = "a".repeat(40);
        assert!(
            format!("hf:o/r@{sha}")
                .parse::<ArtifactRef>()
                .unwrap()
                .is_pinned()
        );
        assert!("gh:o/r@v1".parse::<ArtifactRef>().unwrap().is_pinned());
    }

    #[test]
    fn remote_names_with_escapes_or_absurd_lengths_are_refused() {
        assert!(validate_relative_path("sub/model.gguf").is_ok());
        assert!(validate_relative_path("模型/ünïcode name.gguf").is_ok());
        for bad in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "\u{1b}[31mred.gguf",
            "a\u{9b}31m.gguf",
            "tab\there",
            "line\nbreak",
            "evil\u{202E}fugg.exe",
            "del\u{7f}",
        ] {
            assert!(validate_relative_path(bad).is_err(), "{bad:?}");
        }
        let long = "a".repeat(256);
        let err = validate_relative_path(&long).unwrap_err().to_string();
        assert!(
            err.contains("at most 255 bytes") && err.len() < 200,
            "{err}"
        );
        assert!(validate_relative_path(&"a".repeat(255)).is_ok());
        let deep = vec!["d"; 600].join("/");
        assert!(validate_relative_path(&deep).is_err());
        assert_eq!(quote_untrusted("a\u{1b}b"), "\"a\\u{1b}b\"");
        assert!(quote_untrusted(&long).ends_with("… (256 bytes)"));
        let err = validate_relative_path("x\u{1b}[2J")
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains('\u{1b}'),
            "the message never carries the escape: {err:?}"
        );
    }
}
