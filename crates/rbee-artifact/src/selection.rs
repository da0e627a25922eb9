//! `--include` / `--exclude`: which files of an artifact a request wants.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The globs a request adds to its reference: when `include` is non-empty only matching files
/// are taken, and files matching `exclude` are left out.
///
/// A selection is part of a request's identity: requests with different selections want
/// different files, so each selection has its own catalog entry (and its own transfer). The
/// globs are kept sorted and without repeats, so the order they were written in does not matter.
///
/// ```
/// use rbee_artifact::Selection;
/// let a = Selection::new(vec!["*.json".into(), "*.txt".into()], vec![]);
/// let b = Selection::new(vec!["*.txt".into(), "*.json".into(), "*.txt".into()], vec![]);
/// assert_eq!(a, b);
/// assert!(Selection::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "RawSelection")]
pub struct Selection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exclude: Vec<String>,
}

#[derive(Deserialize)]
struct RawSelection {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

impl From<RawSelection> for Selection {
    fn from(raw: RawSelection) -> Self {
        Selection::new(raw.include, raw.exclude)
    }
}

impl Selection {
    /// A selection of these globs (sorted, repeats dropped).
    pub fn new(include: Vec<String>, exclude: Vec<String>) -> Self {
        Self {
            include: canonical(include),
            exclude: canonical(exclude),
        }
    }

    /// Globs a file must match (any of them) to be taken; empty: the vendor's default choice.
    pub fn include(&self) -> &[String] {
        &self.include
    }

    /// Globs whose files are left out.
    pub fn exclude(&self) -> &[String] {
        &self.exclude
    }

    /// Whether the request takes the reference's files as the vendor chooses them.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// One unambiguous line of text, the input of the catalog key's hash.
    pub(crate) fn canonical_text(&self) -> String {
        // Globs cannot hold NUL (references and flags refuse control characters), so this
        // joins without ambiguity.
        format!(
            "include\0{}\0exclude\0{}",
            self.include.join("\0"),
            self.exclude.join("\0")
        )
    }
}

fn canonical(mut globs: Vec<String>) -> Vec<String> {
    globs.sort();
    globs.dedup();
    globs
}

impl fmt::Display for Selection {
    /// `include *.json, *.txt; exclude tok*` (empty for the default choice).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.include.is_empty() {
            parts.push(format!("include {}", self.include.join(", ")));
        }
        if !self.exclude.is_empty() {
            parts.push(format!("exclude {}", self.exclude.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_repeats_do_not_matter_and_the_record_form_is_canonical() {
        let s = Selection::new(vec!["b".into(), "a".into()], vec!["x".into(), "x".into()]);
        assert_eq!(s.include(), ["a", "b"]);
        assert_eq!(s.exclude(), ["x"]);
        assert_eq!(s.to_string(), "include a, b; exclude x");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"include":["a","b"],"exclude":["x"]}"#);
        let back: Selection =
            serde_json::from_str(r#"{"include":["b","a","b"],"exclude":["x"]}"#).unwrap();
        assert_eq!(back, s);
        assert_eq!(serde_json::to_string(&Selection::default()).unwrap(), "{}");
        assert_ne!(
            Selection::new(vec!["a".into()], vec![]),
            Selection::new(vec![], vec!["a".into()])
        );
    }
}
