//! Secrets that must never be printed.

use std::fmt;

/// A token (HF_TOKEN, GITHUB_TOKEN, a daemon bearer token). `Debug` and `Display` print
/// `****`; only [`Secret::expose`] gives the value, at the one place it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token; returns `None` for an empty or blank one.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into().trim().to_string();
        (!value.is_empty()).then_some(Self(value))
    }

    /// The token itself. Call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the token in `text` with `****`, for messages that might
    /// echo it (a server error body, say).
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "****")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hf_abcdef").unwrap();
        assert!(!format!("{s} {s:?}").contains("abcdef"));
        assert_eq!(s.expose(), "hf_abcdef");
        assert_eq!(s.redact("bad token hf_abcdef"), "bad token ****");
        assert!(Secret::new("  ").is_none());
    }
}
