//! The HuggingFace Hub protocol over `<root>/hf/<org>/<repo>/`.
//!
//! A repo folder is the `main` branch; `.revisions/<name>/` folders are further branches
//! (`<name>` percent-decoded, so `refs%2Fpr%2F1` is `refs/pr/1`); an optional `fakehub.json`
//! sets `private`, `gated`, accepted `tokens` and `tags` (tag → revision). See the README.

mod api;
mod repo;
mod resolve;
mod revision;

pub(crate) use api::api;
pub(crate) use resolve::{resolve, resolve_url};

#[cfg(test)]
mod tests {
    use super::repo::Settings;
    use super::resolve::resolve_url;
    use super::revision::is_lfs;

    #[test]
    fn lfs_by_extension_or_size() {
        assert!(is_lfs("model.Q4_K_M.gguf", 10, 1000));
        assert!(is_lfs("sub/model.safetensors", 10, 1000));
        assert!(is_lfs("big.txt", 1000, 1000));
        assert!(!is_lfs("config.json", 999, 1000));
        assert!(!is_lfs("README", 10, 1000));
    }

    #[test]
    fn gated_values() {
        let s: Settings = serde_json::from_str(r#"{"gated": "manual"}"#).unwrap();
        assert_eq!(s.gated(), Some("manual"));
        let s: Settings = serde_json::from_str(r#"{"gated": true}"#).unwrap();
        assert_eq!(s.gated(), Some("auto"));
        let s: Settings = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(s.gated(), None);
    }

    #[test]
    fn resolve_urls_encode_the_revision_whole() {
        let base = url::Url::parse("http://127.0.0.1:1/").unwrap();
        assert_eq!(
            resolve_url(&base, "org/repo", "refs/pr/1", "dir/a b.gguf").as_str(),
            "http://127.0.0.1:1/org/repo/resolve/refs%2Fpr%2F1/dir/a%20b.gguf"
        );
    }
}
