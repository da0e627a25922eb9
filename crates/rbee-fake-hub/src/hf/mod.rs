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
    use super::revision::{is_lfs, walk};
    use crate::scanned::Listed;
    use crate::walks::Walks;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The files under `top`, through the kept walks, counting the walks really made.
    fn counted_walk(walks: &Walks, top: &Path, calls: &AtomicUsize) -> Arc<Vec<Listed>> {
        walks
            .get(top, || {
                calls.fetch_add(1, Ordering::SeqCst);
                walk(top, false)
            })
            .unwrap()
    }

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

    #[test]
    fn a_walk_is_reused_until_something_under_it_changes() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("repo");
        std::fs::create_dir_all(top.join("sub")).unwrap();
        std::fs::write(top.join("sub/a.txt"), b"a").unwrap();
        let walks = Walks::default();
        let calls = AtomicUsize::new(0);
        let get = || counted_walk(&walks, &top, &calls);

        assert_eq!(get().len(), 1);
        assert_eq!(get().len(), 1);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "a first walk and its check, then reuse"
        );

        // A file's content changed in place, in a sub-folder: same name, new size.
        std::fs::write(top.join("sub/a.txt"), b"longer").unwrap();
        assert_eq!(get()[0].2, 6);
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // A new file, a removed one, a renamed folder: each seen by the very next call.
        std::fs::write(top.join("b.txt"), b"b").unwrap();
        assert_eq!(get().len(), 2);
        std::fs::remove_file(top.join("b.txt")).unwrap();
        assert_eq!(get().len(), 1);
        std::fs::rename(top.join("sub"), top.join("moved")).unwrap();
        assert!(get()[0].0.starts_with("moved"));
        assert_eq!(calls.load(Ordering::SeqCst), 10);

        // Only a time changed (`touch`).
        let f = std::fs::File::options()
            .write(true)
            .open(top.join("moved/a.txt"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(get()[0].3, std::time::UNIX_EPOCH);
        assert_eq!(calls.load(Ordering::SeqCst), 12);
    }

    #[test]
    fn a_walk_that_found_a_link_is_never_reused() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("repo");
        std::fs::create_dir_all(&top).unwrap();
        std::fs::write(root.path().join("outside.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(root.path().join("outside.txt"), top.join("link.txt")).unwrap();
        let walks = Walks::default();
        let calls = AtomicUsize::new(0);
        counted_walk(&walks, &top, &calls);
        counted_walk(&walks, &top, &calls);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
