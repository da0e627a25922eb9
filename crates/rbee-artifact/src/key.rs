//! The identity of an artifact in the catalog: its folder below the catalog root and the id
//! made from that folder (`hf--TheBloke--TinyLlama-1.1B-Chat-v1.0-GGUF--Q4_K_M`), stable,
//! readable and safe in a URL path. Folder names never contain `--`, so an id maps back to
//! exactly one folder.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::grammar::Scheme;
use crate::grammar::with_grammars;
use crate::reference::ArtifactRef;
use crate::selection::Selection;

/// Where an artifact lives in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CatalogKey {
    scheme: Scheme,
    segments: Vec<String>,
}

impl CatalogKey {
    /// The key of the artifact a reference names: the vendor's scheme and its
    /// [`catalog_segments`](crate::VendorReference::catalog_segments).
    pub fn of(reference: &ArtifactRef) -> Self {
        Self::of_request(reference, &Selection::default())
    }

    /// The key of a request: its reference and its selection. A non-empty selection gets an
    /// entry of its own (`…--default=sel-1a2b3c4d`), so requests that want other files never
    /// share or overwrite each other's entries.
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
        Self {
            scheme: reference.scheme(),
            segments: reference.catalog_segments(),
        }
    }

    /// Parses an id back into a key; `None` when it is not an id this catalog could produce
    /// (which also rules out any path traversal).
    pub fn from_id(id: &str) -> Option<Self> {
        let mut parts = id.split("--");
        let name = parts.next()?;
        let (scheme, expected) = with_grammars(|g| {
            g.iter()
                .find(|g| g.scheme().as_str() == name)
                .map(|g| (g.scheme(), g.key_depth()))
        })?;
        let segments: Vec<String> = parts.map(str::to_string).collect();
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

/// A catalog folder name made from `raw`: `[A-Za-z0-9._@+=-]`, no `--`, no leading `.`, at
/// most 80 characters. Lossy conversions get a short hash of the original so two names never
/// share a folder. Vendors build their [`catalog_segments`](crate::VendorReference) with it.
///
/// ```
/// use rbee_artifact::key_segment;
/// assert_eq!(key_segment("TinyLlama-GGUF"), "TinyLlama-GGUF");
/// assert!(key_segment("a--b").starts_with("a-b-"));
/// ```
pub fn key_segment(raw: &str) -> String {
    let body = key_segment_body(raw);
    if body == raw {
        body
    } else {
        format!("{body}-{}", short_hash(raw))
    }
}

/// [`key_segment`] without the hash: for a segment the vendor makes unique itself (say, by
/// appending [`short_hash`] of the whole reference).
pub fn key_segment_body(raw: &str) -> String {
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

/// Eight hex digits of the SHA-256 of `s`: enough to keep two names apart in one folder.
pub fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..4])
}
