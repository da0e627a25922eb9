//! The identity of an artifact in the catalog: its folder below the catalog root and the id
//! made from that folder (`hf--TheBloke--TinyLlama-1.1B-Chat-v1.0-GGUF--Q4_K_M`), stable,
//! readable and safe in a URL path. Folder names never contain `--`, so an id maps back to
//! exactly one folder.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::redact::redacted_url;
use crate::reference::{ArtifactRef, HfSelector, Scheme};
use crate::selection::Selection;

/// Where an artifact lives in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CatalogKey {
    scheme: Scheme,
    segments: Vec<String>,
}

impl CatalogKey {
    /// The key of the artifact a reference names.
    ///
    /// ```
    /// use rbee_artifact::{ArtifactRef, CatalogKey};
    /// let r: ArtifactRef = "hf:TheBloke/TinyLlama-GGUF:q4_k_m".parse().unwrap();
    /// assert_eq!(CatalogKey::of(&r).id(), "hf--TheBloke--TinyLlama-GGUF--Q4_K_M");
    /// ```
    pub fn of(reference: &ArtifactRef) -> Self {
        Self::of_request(reference, &Selection::default())
    }

    /// The key of a request: its reference and its selection. A non-empty selection gets an
    /// entry of its own (`…--default=sel-1a2b3c4d`), so requests that want other files never
    /// share or overwrite each other's entries.
    ///
    /// ```
    /// use rbee_artifact::{ArtifactRef, CatalogKey, Selection};
    /// let r: ArtifactRef = "hf:o/r".parse().unwrap();
    /// let json = Selection::new(vec!["*.json".into()], vec![]);
    /// let key = CatalogKey::of_request(&r, &json);
    /// assert!(key.id().starts_with("hf--o--r--default=sel-"));
    /// assert_eq!(CatalogKey::of_request(&r, &Selection::default()), CatalogKey::of(&r));
    /// assert_eq!(CatalogKey::from_id(&key.id()), Some(key));
    /// ```
    pub fn of_request(reference: &ArtifactRef, selection: &Selection) -> Self {
        let mut key = Self::of_reference(reference);
        if !selection.is_empty()
            && let Some(last) = key.segments.last_mut()
        {
            last.push_str("=sel-");
            last.push_str(&short_hash(&selection.canonical_text()));
        }
        key
    }

    fn of_reference(reference: &ArtifactRef) -> Self {
        let (scheme, segments) = match reference {
            ArtifactRef::HuggingFace(hf) => {
                let mut variant = match &hf.selector {
                    HfSelector::Default => "default".to_string(),
                    HfSelector::Quant(q) => q.clone(),
                    HfSelector::File(p) => format!("file-{p}"),
                    // Never stored: the quantization is chosen before resolving.
                    HfSelector::Fit => "fit".to_string(),
                };
                if let Some(rev) = hf.revision.as_deref().filter(|r| *r != "main") {
                    variant = format!("{variant}@{rev}");
                }
                (
                    Scheme::Hf,
                    vec![segment(&hf.org), segment(&hf.repo), segment(&variant)],
                )
            }
            ArtifactRef::GitHub(gh) => {
                let mut variant = gh.tag.clone().unwrap_or_else(|| "latest".into());
                if let Some(asset) = &gh.asset {
                    variant = format!("{variant}+{asset}");
                }
                (
                    Scheme::Gh,
                    vec![segment(&gh.owner), segment(&gh.repo), segment(&variant)],
                )
            }
            ArtifactRef::Local(local) => {
                let raw = local.path.to_string_lossy();
                let name = local
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "root".into());
                (
                    Scheme::File,
                    vec![format!("{}-{}", segment_body(&name), short_hash(&raw))],
                )
            }
            ArtifactRef::Url(u) => {
                // The redacted form: it is what the record holds, and every signature of the
                // same object finds the same entry.
                let url = redacted_url(&u.url);
                let host = url.host_str().unwrap_or("host");
                let name = url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .filter(|s| !s.is_empty())
                    .unwrap_or("file");
                let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                (
                    Scheme::Url,
                    vec![
                        segment(host),
                        format!("{}-{}", segment_body(&name), short_hash(url.as_str())),
                    ],
                )
            }
        };
        Self { scheme, segments }
    }

    /// Parses an id back into a key; `None` when it is not an id this catalog could produce
    /// (which also rules out any path traversal).
    pub fn from_id(id: &str) -> Option<Self> {
        let mut parts = id.split("--");
        let scheme = Scheme::ALL
            .into_iter()
            .find(|s| Some(s.as_str()) == parts.clone().next())?;
        parts.next();
        let segments: Vec<String> = parts.map(str::to_string).collect();
        let expected = match scheme {
            Scheme::Hf | Scheme::Gh => 3,
            Scheme::Url => 2,
            Scheme::File => 1,
        };
        if segments.len() != expected || !segments.iter().all(|s| is_clean_segment(s)) {
            return None;
        }
        Some(Self { scheme, segments })
    }

    /// The vendor scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The stable id, usable in a URL path.
    pub fn id(&self) -> String {
        let mut id = self.scheme.as_str().to_string();
        for s in &self.segments {
            id.push_str("--");
            id.push_str(s);
        }
        id
    }

    /// The artifact folder relative to the catalog root.
    pub fn relative_dir(&self) -> PathBuf {
        let mut p = PathBuf::from(self.scheme.as_str());
        p.extend(&self.segments);
        p
    }
}

/// A folder name: `[A-Za-z0-9._@+=-]`, no `--`, no leading `.`, at most 80 characters. Lossy
/// conversions get a short hash of the original so two names never share a folder.
fn segment(raw: &str) -> String {
    let body = segment_body(raw);
    if body == raw {
        body
    } else {
        format!("{body}-{}", short_hash(raw))
    }
}

fn segment_body(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '=' | '-') {
            c
        } else {
            '_'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let mut out = out.trim_start_matches('.').to_string();
    out.truncate(80);
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn is_clean_segment(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 120
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'=' | b'-')
        })
}

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> CatalogKey {
        CatalogKey::of(&s.parse().unwrap())
    }

    #[test]
    fn ids_are_readable_and_round_trip() {
        for (r, id) in [
            ("hf:o/r", "hf--o--r--default"),
            ("hf:o/r@main:Q8_0", "hf--o--r--Q8_0"),
            ("hf:o/r@v2:Q8_0", "hf--o--r--Q8_0@v2"),
            ("gh:o/r@b1/m.gguf", "gh--o--r--b1+m.gguf"),
            ("gh:o/r", "gh--o--r--latest"),
        ] {
            let k = key(r);
            assert_eq!(k.id(), id);
            assert_eq!(CatalogKey::from_id(id), Some(k));
        }
        let k = key("hf:o/r/sub/x.gguf");
        assert!(k.id().starts_with("hf--o--r--file-sub_x.gguf-"));
        assert_eq!(CatalogKey::from_id(&k.id()), Some(k));
        let k = key("file:/data/my model.gguf");
        assert!(k.id().starts_with("file--my_model.gguf-"));
        assert_eq!(k.relative_dir().components().count(), 2);
        let k = key("https://example.com/a/b.gguf");
        assert!(k.id().starts_with("url--example.com--b.gguf-"));
    }

    #[test]
    fn distinct_refs_get_distinct_dirs() {
        assert_ne!(key("gh:o/a--b"), key("gh:o/a-b"));
        assert_ne!(key("file:/x/m.gguf"), key("file:/y/m.gguf"));
        assert_ne!(key("hf:o/r/a/b.gguf"), key("hf:o/r/a_b.gguf"));
        assert_eq!(key("hf:o/r:q4_k_m"), key("hf:o/r@main:Q4_K_M"));
    }

    #[test]
    fn foreign_ids_are_refused() {
        for bad in [
            "",
            "hf",
            "hf--..--x--y",
            "hf--a--b",
            "s3--a--b--c",
            "hf--a/b--c--d",
            "file--.hidden",
            "hf--a--b--c--d",
        ] {
            assert_eq!(CatalogKey::from_id(bad), None, "{bad}");
        }
    }
}
