//! `file:` references: a file or folder on this machine, its grammar and its catalog key.
//!
//! ```text
//! file:PATH, file:///ABSOLUTE/PATH
//! ```

use std::fmt;
use std::path::PathBuf;

use rbee_artifact::{RefErrorKind, Scheme, VendorReference, key_segment_body, short_hash};

/// A local file or folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalRef {
    /// The path as given (made absolute by [`ArtifactRef::absolutize`](rbee_artifact::ArtifactRef::absolutize)).
    pub path: PathBuf,
}

/// The scheme of local references.
pub const SCHEME: Scheme = Scheme::new("file");

impl fmt::Display for LocalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file:{}", self.path.display())
    }
}

impl VendorReference for LocalRef {
    const SCHEME: Scheme = SCHEME;
    const PREFIXES: &'static [&'static str] = &["file"];
    const EXAMPLE: &'static str = "file:/data/models/custom.gguf";
    const KEY_DEPTH: usize = 1;

    fn parse(_input: &str, body: &str) -> Result<Self, RefErrorKind> {
        parse_file(body)
    }

    fn catalog_segments(&self) -> Vec<String> {
        let raw = self.path.to_string_lossy();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        vec![format!("{}-{}", key_segment_body(&name), short_hash(&raw))]
    }

    fn is_pinned(&self) -> bool {
        false
    }

    fn absolutize(self) -> std::io::Result<Self> {
        if self.path.is_relative() {
            Ok(LocalRef {
                path: std::path::absolute(self.path)?,
            })
        } else {
            Ok(self)
        }
    }
}

fn parse_file(body: &str) -> Result<LocalRef, RefErrorKind> {
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
    Ok(LocalRef {
        path: PathBuf::from(path),
    })
}
