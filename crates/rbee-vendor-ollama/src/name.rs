//! Ollama model names: `[HOST/][NAMESPACE/]MODEL[:TAG]`, as `ollama pull` takes them (the
//! `ollama:` vendor, `rbee-vendor-ollama`, resolves them).
//!
//! ```text
//! llama3.2                     registry.ollama.ai/library/llama3.2:latest
//! llama3.2:1b                  registry.ollama.ai/library/llama3.2:1b
//! jmorgan/mixtral:8x7b         registry.ollama.ai/jmorgan/mixtral:8x7b
//! hf.co/ORG/REPO:Q4_K_M        the hf.co registry (HuggingFace's Ollama-compatible one)
//! localhost:5000/team/m:v1     any registry speaking the same protocol
//! ```
//!
//! Parts follow Ollama's own rules (`types/model/name.go`): letters, digits, `_`, `-` and `.`
//! (no `.` in a namespace, never two dots in a row), a host may end in `:PORT`. Stricter than
//! Ollama in one way: a part may not start with `.` or `-`, because parts become folder names
//! in Ollama's store and in the catalog.

use std::fmt;

use rbee_artifact::{Claim, RefError, RefErrorKind, Scheme, VendorReference, key_segment};

/// The registry a name without a host lives in.
pub const DEFAULT_HOST: &str = "registry.ollama.ai";
/// The namespace of a name without one (Ollama's official models).
pub const DEFAULT_NAMESPACE: &str = "library";
/// The tag of a name without one.
pub const DEFAULT_TAG: &str = "latest";
/// A valid reference, shown in error messages.
pub const EXAMPLE: &str = "ollama:llama3.2:1b";
/// The scheme prefix (without the colon).
pub const SCHEME: &str = "ollama";
/// The scheme of Ollama references.
pub const OLLAMA: Scheme = Scheme::new(SCHEME);

/// Longest part Ollama accepts.
const MAX_PART: usize = 128;

/// A parsed Ollama model name, every part filled in.
///
/// [`Display`](fmt::Display) writes the canonical reference (`ollama:` + the shortest name
/// Ollama shows, always with its tag), which parses back to an equal value.
///
/// ```
/// use rbee_vendor_ollama::OllamaRef;
///
/// let r: OllamaRef = "llama3.2:1b".parse().unwrap();
/// assert_eq!(r.host, "registry.ollama.ai");
/// assert_eq!(r.namespace, "library");
/// assert_eq!((r.model.as_str(), r.tag.as_str()), ("llama3.2", "1b"));
/// assert_eq!(r.to_string(), "ollama:llama3.2:1b");
/// assert_eq!("ollama:hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M".parse::<OllamaRef>().unwrap().host, "hf.co");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OllamaRef {
    /// The registry host (`registry.ollama.ai`, `hf.co`, `HOST:PORT`).
    pub host: String,
    /// The namespace (`library` for official models; the organisation on `hf.co`).
    pub namespace: String,
    /// The model (the repository on `hf.co`).
    pub model: String,
    /// The tag (`latest`, `1b`, a quantization on `hf.co`).
    pub tag: String,
}

impl OllamaRef {
    /// The name as Ollama's store files it: `HOST/NAMESPACE/MODEL/TAG`.
    pub fn store_segments(&self) -> [&str; 4] {
        [&self.host, &self.namespace, &self.model, &self.tag]
    }

    /// The name `ollama list` shows: the default host and `library/` left out.
    pub fn short_name(&self) -> String {
        let name = format!("{}:{}", self.model, self.tag);
        if self.host != DEFAULT_HOST {
            format!("{}/{}/{name}", self.host, self.namespace)
        } else if self.namespace != DEFAULT_NAMESPACE {
            format!("{}/{name}", self.namespace)
        } else {
            name
        }
    }

    /// Parses the part after `ollama:` (also accepted without the prefix). Errors name the
    /// offending part; [`parse_reference`] wraps them with the input and an example.
    pub fn parse_name(body: &str) -> Result<OllamaRef, RefErrorKind> {
        let body = body.strip_prefix("//").unwrap_or(body);
        if body.is_empty() {
            return Err(RefErrorKind::Missing {
                part: "model name (write NAME[:TAG], e.g. llama3.2:1b)",
            });
        }
        if let Some((_, digest)) = body.split_once('@') {
            return Err(RefErrorKind::Invalid {
                part: "digest",
                value: format!("@{digest}"),
                reason: "digest pins are not supported; name a tag (NAME:TAG)",
            });
        }
        let (path, tag) = match body.rfind('/') {
            Some(slash) => match body[slash + 1..].split_once(':') {
                Some((_, tag)) => (&body[..body.len() - tag.len() - 1], Some(tag)),
                None => (body, None),
            },
            None => match body.split_once(':') {
                Some((model, tag)) => (model, Some(tag)),
                None => (body, None),
            },
        };
        let tag = match tag {
            None => DEFAULT_TAG.to_string(),
            Some("") => {
                return Err(RefErrorKind::Missing {
                    part: "tag after `:`",
                });
            }
            Some(tag) => check_part("tag", tag, false)?,
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (host, namespace, model) = match parts.as_slice() {
            [model] => (
                DEFAULT_HOST.to_string(),
                DEFAULT_NAMESPACE.to_string(),
                *model,
            ),
            [namespace, model] => (
                DEFAULT_HOST.to_string(),
                check_part("namespace", namespace, true)?,
                *model,
            ),
            [host, namespace, model] => (
                check_host(host)?,
                check_part("namespace", namespace, true)?,
                *model,
            ),
            _ => {
                return Err(RefErrorKind::Invalid {
                    part: "name",
                    value: path.to_string(),
                    reason: "at most HOST/NAMESPACE/MODEL: three `/`-separated parts",
                });
            }
        };
        let model = check_part("model name", model, false)?;
        Ok(OllamaRef {
            host,
            namespace,
            model,
            tag,
        })
    }
}

impl std::str::FromStr for OllamaRef {
    type Err = RefError;

    /// `ollama:NAME…`, or the name alone.
    fn from_str(input: &str) -> Result<Self, RefError> {
        parse_reference(input)
    }
}

impl fmt::Display for OllamaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}:{}", self.short_name())
    }
}

impl VendorReference for OllamaRef {
    const SCHEME: Scheme = OLLAMA;
    const PREFIXES: &'static [&'static str] = &[SCHEME];
    const EXAMPLE: &'static str = EXAMPLE;
    const KEY_DEPTH: usize = 4;

    fn parse(_input: &str, body: &str) -> Result<Self, RefErrorKind> {
        OllamaRef::parse_name(body)
    }

    /// `NAME:TAG` without a scheme: see [`claims_bare`].
    fn claim(input: &str) -> Option<Claim> {
        claims_bare(input).then_some(Claim::Bare)
    }

    fn catalog_segments(&self) -> Vec<String> {
        self.store_segments().into_iter().map(key_segment).collect()
    }

    /// A tag moves like a branch; there is no digest pin in the grammar.
    fn is_pinned(&self) -> bool {
        false
    }
}

/// Parses `ollama:NAME…` (or a bare name) into an [`OllamaRef`], with an error naming the bad
/// part and showing [`EXAMPLE`].
pub fn parse_reference(input: &str) -> Result<OllamaRef, RefError> {
    let input = input.trim();
    let fail = |kind| RefError {
        input: input.escape_debug().to_string(),
        kind,
        example: EXAMPLE,
    };
    if let Some((position, _)) = input.char_indices().find(|(_, c)| c.is_control()) {
        return Err(fail(RefErrorKind::ControlCharacter { position }));
    }
    let body = match input.split_once(':') {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case(SCHEME) => rest,
        _ => input,
    };
    OllamaRef::parse_name(body).map_err(fail)
}

/// Whether a reference written without a scheme is Ollama's spelling: `NAME:TAG` with no `/`
/// (`llama3.2:1b`). Spellings with a `/` stay HuggingFace's (`ORG/REPO:QUANT`, as llama.cpp
/// reads them); write `ollama:NS/NAME:TAG` for those. Only asked when the text's prefix names
/// no registered vendor, so `hf:x` never lands here.
///
/// ```
/// use rbee_vendor_ollama::claims_bare;
/// assert!(claims_bare("llama3.2:1b"));
/// assert!(claims_bare("qwen2.5-coder:7b-instruct-q4_K_M"));
/// assert!(!claims_bare("TheBloke/TinyLlama-GGUF:Q4_K_M"));
/// assert!(!claims_bare("llama3.2"));
/// assert!(!claims_bare("hf.co/o/r:Q4"));
/// assert!(!claims_bare("fiel:model.gguf"));
/// ```
pub fn claims_bare(input: &str) -> bool {
    let input = input.trim();
    if input.contains('/') {
        return false;
    }
    let Some((model, tag)) = input.split_once(':') else {
        return false;
    };
    // Claimed when it looks like a name, so a malformed tag still gets Ollama's error.
    check_part("model name", model, false).is_ok() && !tag.starts_with(':') && !names_a_file(tag)
}

/// Ollama tags never end like a model file, but a mistyped scheme before a path does
/// (`fiel:model.gguf`): left unclaimed, it gets the "unknown scheme" error and its hint instead of
/// a registry pull.
fn names_a_file(tag: &str) -> bool {
    const FILE_ENDINGS: [&str; 5] = [".gguf", ".safetensors", ".bin", ".json", ".onnx"];
    let tag = tag.to_ascii_lowercase();
    FILE_ENDINGS.iter().any(|ending| tag.ends_with(ending))
}

fn check_part(part: &'static str, value: &str, namespace: bool) -> Result<String, RefErrorKind> {
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
    if value.len() > MAX_PART {
        return invalid("longer than 128 characters");
    }
    if namespace && value.contains('.') {
        return invalid(
            "a namespace has no `.`; a name with a host is written HOST/NAMESPACE/MODEL",
        );
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return invalid("only letters, digits, `-`, `_` and `.` are allowed");
    }
    if value.starts_with(['.', '-']) {
        return invalid("it may not start with `.` or `-`");
    }
    if value.contains("..") {
        return invalid("two dots in a row are not allowed");
    }
    Ok(value.to_string())
}

fn check_host(value: &str) -> Result<String, RefErrorKind> {
    let (name, port) = match value.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (value, None),
    };
    if let Some(port) = port
        && (port.is_empty()
            || port.len() > 5
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535))
    {
        return Err(RefErrorKind::Invalid {
            part: "registry port",
            value: port.to_string(),
            reason: "expected a port number (1-65535) after the host",
        });
    }
    check_part("registry host", name, false)?;
    Ok(value.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, String, String, String) {
        let r = parse_reference(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (r.host, r.namespace, r.model, r.tag)
    }

    fn own(a: &str, b: &str, c: &str, d: &str) -> (String, String, String, String) {
        (a.into(), b.into(), c.into(), d.into())
    }

    #[test]
    fn every_spelling_fills_the_defaults() {
        let lib = |m: &str, t: &str| own(DEFAULT_HOST, DEFAULT_NAMESPACE, m, t);
        assert_eq!(parts("ollama:llama3.2"), lib("llama3.2", "latest"));
        assert_eq!(parts("ollama:llama3.2:1b"), lib("llama3.2", "1b"));
        assert_eq!(parts("OLLAMA:llama3.2:1b"), lib("llama3.2", "1b"));
        assert_eq!(parts("llama3.2:1b"), lib("llama3.2", "1b"));
        assert_eq!(parts("ollama://llama3.2:1b"), lib("llama3.2", "1b"));
        assert_eq!(
            parts("ollama:jmorgan/mixtral:8x7b"),
            own(DEFAULT_HOST, "jmorgan", "mixtral", "8x7b")
        );
        assert_eq!(
            parts("ollama:hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"),
            own("hf.co", "bartowski", "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M")
        );
        assert_eq!(
            parts("ollama:localhost:5000/team/m:v1"),
            own("localhost:5000", "team", "m", "v1")
        );
        assert_eq!(
            parts("ollama:Registry.Example.com/team/m"),
            own("registry.example.com", "team", "m", "latest")
        );
    }

    #[test]
    fn display_is_the_shortest_name_with_its_tag() {
        for (input, shown) in [
            ("llama3.2", "ollama:llama3.2:latest"),
            (
                "ollama:registry.ollama.ai/library/llama3.2:1b",
                "ollama:llama3.2:1b",
            ),
            ("ollama:library/llama3.2:1b", "ollama:llama3.2:1b"),
            ("ollama:jmorgan/mixtral", "ollama:jmorgan/mixtral:latest"),
            ("ollama:hf.co/o/r:Q8_0", "ollama:hf.co/o/r:Q8_0"),
            (
                "ollama:example.com/library/m:t",
                "ollama:example.com/library/m:t",
            ),
        ] {
            let r = parse_reference(input).unwrap();
            assert_eq!(r.to_string(), shown, "{input}");
            assert_eq!(parse_reference(shown).unwrap(), r, "{shown}");
        }
    }

    #[test]
    fn errors_name_the_part_and_show_an_example() {
        for (input, says) in [
            ("ollama:", "model name"),
            ("ollama:llama3.2:", "tag after `:`"),
            ("ollama:a/b/c/d:t", "three `/`-separated parts"),
            ("ollama:llama3.2:1b@sha256:abcd", "digest pins"),
            ("ollama:../etc:t", "the namespace `..`"),
            ("ollama:..:t", "`..`"),
            ("ollama:-rf:t", "may not start"),
            ("ollama:my.ns/m:t", "a namespace has no `.`"),
            ("ollama:m:t/x", "namespace"),
            ("ollama:host:99999/ns/m:t", "registry port"),
            ("ollama:host:/ns/m:t", "registry port"),
            ("ollama:llama 3:1b", "only letters"),
            ("ollama:m:a..b", "two dots"),
            ("ollama:m\n:t", "control character"),
        ] {
            let e = parse_reference(input).expect_err(input).to_string();
            assert!(e.contains(says), "{input}: {e}");
            assert!(e.contains(EXAMPLE), "{input}: {e}");
        }
    }

    #[test]
    fn bare_spellings_without_a_slash_and_with_a_tag_are_ollamas() {
        for yes in [
            "llama3.2:1b",
            "mistral:7b",
            "qwen2.5-coder:7b",
            "nomic-embed-text:v1.5",
            "llama3.2:",
        ] {
            assert!(claims_bare(yes), "{yes}");
        }
        for no in [
            "org/repo:Q4_K_M",
            "hf.co/o/r:Q4",
            "llama3.2",
            "s3:bucket/key",
            ":x",
            "a b:c",
            "fiel:model.gguf",
            "flie:weights/Model.Q4_K_M.GGUF",
            "fille:model.safetensors",
        ] {
            assert!(!claims_bare(no), "{no}");
        }
        // A mistyped scheme keeps its "unknown scheme" error rather than becoming a model name.
        rbee_artifact::register_reference::<OllamaRef>();
        let err = "fiel:model.gguf"
            .parse::<rbee_artifact::ArtifactRef>()
            .unwrap_err();
        assert!(err.to_string().contains("fiel"), "{err}");
        assert!(
            matches!(err.kind, RefErrorKind::UnknownScheme { .. }),
            "{err}"
        );
    }

    #[test]
    fn store_segments_are_host_namespace_model_tag() {
        let r = parse_reference("hf.co/o/r:Q4_K_M").unwrap();
        assert_eq!(r.store_segments(), ["hf.co", "o", "r", "Q4_K_M"]);
    }
}
