//! The Hub's wire format: URLs and JSON bodies of the model API and the resolve endpoint.
//!
//! ```text
//! GET  {endpoint}/api/models/{org}/{repo}/revision/{rev}?blobs=true
//!      → {"sha": "<commit>", "siblings": [{"rfilename", "size", "blobId", "lfs": {"sha256", "size"}}]}
//! GET  {endpoint}/api/models/{org}/{repo}/tree/{rev}?recursive=true
//!      → [{"type": "file"|"directory", "path", "size", "oid", "lfs": {"oid", "size"}}]
//!        (paginated with a `Link: <…>; rel="next"` header)
//! HEAD|GET {endpoint}/{org}/{repo}/resolve/{rev}/{path}
//!      → LFS files: 302 to a CDN, X-Repo-Commit, X-Linked-Etag (the sha256), X-Linked-Size
//!        other files: 200, ETag (the git blob id), X-Repo-Commit
//! ```
//!
//! A revision is one path segment: `refs/pr/1` travels as `refs%2Fpr%2F1`.

use rbee_artifact::{Error, Sha256Digest, quote_untrusted, validate_relative_path};
use serde::Deserialize;
use url::Url;

use crate::files::RepoFile;

/// `GET /api/models/{org}/{repo}/revision/{rev}?blobs=true`.
pub(crate) fn revision_url(endpoint: &Url, org: &str, repo: &str, revision: &str) -> Url {
    let mut url = join(
        endpoint,
        &["api", "models", org, repo, "revision", revision],
    );
    url.query_pairs_mut().append_pair("blobs", "true");
    url
}

/// `GET /api/models/{org}/{repo}/tree/{rev}?recursive=true`.
pub(crate) fn tree_url(endpoint: &Url, org: &str, repo: &str, revision: &str) -> Url {
    let mut url = join(endpoint, &["api", "models", org, repo, "tree", revision]);
    url.query_pairs_mut().append_pair("recursive", "true");
    url
}

/// `{endpoint}/{org}/{repo}/resolve/{rev}/{path}`, each path segment percent-encoded.
pub(crate) fn resolve_url(
    endpoint: &Url,
    org: &str,
    repo: &str,
    revision: &str,
    path: &str,
) -> Url {
    let mut segments = vec![org, repo, "resolve", revision];
    segments.extend(path.split('/'));
    join(endpoint, &segments)
}

/// `GET /api/models/{org}/{repo}/xet-read-token/{rev}`: a read token for the Xet store.
pub(crate) fn xet_token_url(endpoint: &Url, org: &str, repo: &str, revision: &str) -> Url {
    join(
        endpoint,
        &["api", "models", org, repo, "xet-read-token", revision],
    )
}

/// The model's page, where a gated model's licence is accepted.
pub(crate) fn repo_page_url(endpoint: &Url, org: &str, repo: &str) -> Url {
    join(endpoint, &[org, repo])
}

/// Appends `segments` to the endpoint's path (a mirror may live under a path prefix).
fn join(endpoint: &Url, segments: &[&str]) -> Url {
    let mut url = endpoint.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url
            .path_segments_mut()
            .expect("the endpoint is an http(s) URL, which has a path");
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// The body of the revision endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct ModelInfo {
    /// The commit the revision points at.
    pub sha: Option<String>,
    /// Every file of the repository at that commit.
    pub siblings: Option<Vec<Sibling>>,
    /// `false`, or `"auto"` / `"manual"` for models whose files need an accepted licence.
    #[serde(default)]
    pub gated: Option<serde_json::Value>,
}

impl ModelInfo {
    /// Whether downloading needs an accepted licence (the metadata itself stays public).
    pub(crate) fn is_gated(&self) -> bool {
        match &self.gated {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => !s.is_empty() && s != "false",
            _ => false,
        }
    }
}

/// One file in [`ModelInfo::siblings`].
#[derive(Debug, Deserialize)]
pub(crate) struct Sibling {
    pub rfilename: String,
    pub size: Option<u64>,
    #[serde(rename = "blobId")]
    pub blob_id: Option<String>,
    pub lfs: Option<SiblingLfs>,
}

/// `lfs` of a sibling.
#[derive(Debug, Deserialize)]
pub(crate) struct SiblingLfs {
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// One entry of the tree endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct TreeEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    pub size: Option<u64>,
    pub oid: Option<String>,
    pub lfs: Option<TreeLfs>,
    #[serde(rename = "xetHash")]
    pub xet_hash: Option<String>,
}

/// `lfs` of a tree entry: here the sha256 is called `oid`.
#[derive(Debug, Deserialize)]
pub(crate) struct TreeLfs {
    pub oid: Option<String>,
    pub size: Option<u64>,
}

/// Files of a listing, minus those whose names are unsafe as local paths.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub files: Vec<RepoFile>,
    /// Names refused by [`validate_relative_path`] (a hostile or broken mirror).
    pub unsafe_names: Vec<String>,
}

impl Listing {
    fn push(
        &mut self,
        path: String,
        size: Option<u64>,
        sha256: Option<&str>,
        oid: Option<String>,
        xet_hash: Option<String>,
    ) -> Result<(), Error> {
        if let Err(why) = validate_relative_path(&path) {
            let shown = quote_untrusted(&path);
            tracing::warn!(path = %shown, %why, "the Hub listed a file name that is not a safe relative path; ignoring it");
            self.unsafe_names.push(format!("{shown} ({why})"));
            return Ok(());
        }
        let sha256 = sha256
            .map(|s| {
                s.parse::<Sha256Digest>().map_err(|_| Error::Protocol {
                    message: format!(
                        "the Hub listed `{path}` with {} as its sha256, which is not 64 hex digits",
                        quote_untrusted(s)
                    ),
                })
            })
            .transpose()?;
        self.files.push(RepoFile {
            path,
            size,
            sha256,
            oid,
            // A malformed one only costs the Xet path: the bridge still serves the file.
            xet_hash: xet_hash
                .map(|h| h.to_ascii_lowercase())
                .filter(|h| rbee_xet::is_xet_hash(h)),
        });
        Ok(())
    }

    /// Whether every file has a size, and every LFS file its sha256 — enough for a plan.
    pub(crate) fn is_complete(&self) -> bool {
        self.files.iter().all(|f| f.size.is_some())
    }
}

impl ModelInfo {
    /// The siblings as repository files.
    pub(crate) fn listing(&self) -> Result<Listing, Error> {
        let mut out = Listing::default();
        for s in self.siblings.iter().flatten() {
            let lfs = s.lfs.as_ref();
            out.push(
                s.rfilename.clone(),
                s.size.or(lfs.and_then(|l| l.size)),
                lfs.and_then(|l| l.sha256.as_deref()),
                s.blob_id.clone(),
                None,
            )?;
        }
        Ok(out)
    }
}

/// Adds the files of one page of the tree endpoint to `out` (directories are skipped).
pub(crate) fn add_tree_page(entries: Vec<TreeEntry>, out: &mut Listing) -> Result<(), Error> {
    for e in entries {
        if e.kind != "file" {
            continue;
        }
        let lfs = e.lfs.as_ref();
        let size = lfs.and_then(|l| l.size).or(e.size);
        out.push(
            e.path,
            size,
            lfs.and_then(|l| l.oid.as_deref()),
            e.oid,
            e.xet_hash,
        )?;
    }
    Ok(())
}

/// The `rel="next"` target of a `Link` header, as GitHub and the Hub write it.
pub(crate) fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then_some(target)
    })
}

/// Whether a revision is a full commit id (40 hex digits), which never moves.
pub(crate) fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn urls_encode_revisions_and_paths() {
        let e = ep("https://huggingface.co");
        assert_eq!(
            revision_url(&e, "org", "repo", "refs/pr/1").as_str(),
            "https://huggingface.co/api/models/org/repo/revision/refs%2Fpr%2F1?blobs=true"
        );
        assert_eq!(
            tree_url(&e, "org", "repo", "main").as_str(),
            "https://huggingface.co/api/models/org/repo/tree/main?recursive=true"
        );
        assert_eq!(
            resolve_url(&e, "org", "repo", "abc", "sub dir/m#1.gguf").as_str(),
            "https://huggingface.co/org/repo/resolve/abc/sub%20dir/m%231.gguf"
        );
        // A mirror under a path prefix, with or without the trailing slash.
        for m in ["http://127.0.0.1:8080/hf", "http://127.0.0.1:8080/hf/"] {
            assert_eq!(
                resolve_url(&ep(m), "o", "r", "main", "a.gguf").as_str(),
                "http://127.0.0.1:8080/hf/o/r/resolve/main/a.gguf"
            );
        }
        assert_eq!(
            repo_page_url(&e, "o", "r").as_str(),
            "https://huggingface.co/o/r"
        );
    }

    #[test]
    fn parses_revision_and_tree_bodies() {
        let sha = "a".repeat(64);
        let body = format!(
            r#"{{"_id":"x","id":"o/r","sha":"0123456789abcdef0123456789abcdef01234567","private":false,"gated":false,
            "siblings":[{{"rfilename":"config.json","size":12,"blobId":"b1"}},
                        {{"rfilename":"m.gguf","size":100,"blobId":"b2","lfs":{{"sha256":"{sha}","size":100,"pointerSize":130}}}},
                        {{"rfilename":"../evil.gguf","size":1}}]}}"#
        );
        let info: ModelInfo = serde_json::from_str(&body).unwrap();
        assert_eq!(
            info.sha.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        let listing = info.listing().unwrap();
        assert_eq!(listing.files.len(), 2);
        assert_eq!(listing.unsafe_names.len(), 1);
        assert!(listing.unsafe_names[0].starts_with("\"../evil.gguf\" ("));
        assert_eq!(listing.files[1].sha256.unwrap().to_string(), sha);
        assert_eq!(listing.files[1].cache_etag().unwrap(), sha);
        assert_eq!(listing.files[0].cache_etag().unwrap(), "b1");
        assert!(listing.is_complete());

        let tree = format!(
            r#"[{{"type":"directory","oid":"d","size":0,"path":"sub"}},
               {{"type":"file","oid":"b3","size":130,"path":"sub/m.gguf","lfs":{{"oid":"{sha}","size":100,"pointerSize":130}}}},
               {{"type":"file","oid":"b4","size":5,"path":"/abs"}}]"#
        );
        let mut listing = Listing::default();
        add_tree_page(serde_json::from_str(&tree).unwrap(), &mut listing).unwrap();
        assert_eq!(listing.files.len(), 1);
        assert_eq!(
            listing.files[0].size,
            Some(100),
            "the LFS size, not the pointer's"
        );
        assert_eq!(listing.files[0].oid.as_deref(), Some("b3"));
        assert_eq!(listing.unsafe_names.len(), 1);
        assert!(listing.unsafe_names[0].starts_with("\"/abs\" ("));

        let bad: ModelInfo = serde_json::from_str(
            r#"{"sha":"x","siblings":[{"rfilename":"m.gguf","lfs":{"sha256":"nothex"}}]}"#,
        )
        .unwrap();
        assert!(matches!(bad.listing(), Err(Error::Protocol { .. })));
        let sizeless: ModelInfo =
            serde_json::from_str(r#"{"sha":"x","siblings":[{"rfilename":"m.gguf"}]}"#).unwrap();
        assert!(!sizeless.listing().unwrap().is_complete());
    }

    #[test]
    fn tree_entries_carry_their_xet_hash() {
        let hash = "AB".repeat(32);
        let tree = format!(
            r#"[{{"type":"file","oid":"b1","size":10,"path":"a.gguf","xetHash":"{hash}"}},
               {{"type":"file","oid":"b2","size":10,"path":"b.gguf","xetHash":"short"}},
               {{"type":"file","oid":"b3","size":10,"path":"c.gguf"}}]"#
        );
        let mut listing = Listing::default();
        add_tree_page(serde_json::from_str(&tree).unwrap(), &mut listing).unwrap();
        let hashes: Vec<_> = listing.files.iter().map(|f| f.xet_hash.clone()).collect();
        assert_eq!(hashes, vec![Some("ab".repeat(32)), None, None]);
    }

    #[test]
    fn link_header() {
        assert_eq!(
            next_link(r#"<https://h/api/models/o/r/tree/main?cursor=abc>; rel="next""#),
            Some("https://h/api/models/o/r/tree/main?cursor=abc")
        );
        assert_eq!(
            next_link(r#"<https://h/a?page=1>; rel="prev", <https://h/a?page=3>; rel="next""#),
            Some("https://h/a?page=3")
        );
        assert_eq!(next_link(r#"<https://h/a>; rel="last""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn commits() {
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit("main"));
        assert!(!is_commit("0123456789abcdef"));
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z0-9._/-]{0,30}",
                "\\PC{0,30}",
                "(\\.\\./|/|[\\x00-\\x1f\\x7f\\u{9b}\\u{202e}]){0,4}[a-z]{0,8}",
                "[a-z]{250,300}",
            ]
        }

        fn sibling() -> impl Strategy<Value = serde_json::Value> {
            (
                name(),
                proptest::option::of(any::<u64>()),
                proptest::option::of("[0-9a-fA-Fx]{0,70}"),
            )
                .prop_map(|(n, size, sha)| {
                    let mut v = serde_json::json!({ "rfilename": n, "size": size });
                    if let Some(sha) = sha {
                        v["lfs"] = serde_json::json!({ "sha256": sha, "size": size });
                    }
                    v
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Garbage bodies: no panic (a clear error is the caller's `serde_json` message).
            #[test]
            fn bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                if let Ok(info) = serde_json::from_slice::<ModelInfo>(&bytes) {
                    let _ = info.listing();
                    let _ = info.is_gated();
                }
                if let Ok(page) = serde_json::from_slice::<Vec<TreeEntry>>(&bytes) {
                    let _ = add_tree_page(page, &mut Listing::default());
                }
            }

            /// Listings with hostile names and digests: every file kept has a safe path, every
            /// digest kept is a digest; a bad digest is a clear error, not a panic.
            #[test]
            fn listings_keep_only_safe_names(
                siblings in proptest::collection::vec(sibling(), 0..12),
                sha in proptest::option::of("[0-9a-f]{40}|\\PC{0,10}"),
            ) {
                let body = serde_json::json!({ "sha": sha, "siblings": siblings }).to_string();
                let info: ModelInfo = serde_json::from_str(&body).unwrap();
                match info.listing() {
                    Ok(listing) => {
                        for f in &listing.files {
                            prop_assert!(validate_relative_path(&f.path).is_ok(), "{:?}", f.path);
                        }
                        for n in &listing.unsafe_names {
                            prop_assert!(!n.chars().any(char::is_control), "{n:?}");
                            prop_assert!(n.len() < 400);
                        }
                    }
                    Err(e) => prop_assert!(e.to_string().contains("sha256")),
                }
                let tree: Vec<serde_json::Value> = siblings
                    .iter()
                    .map(|s| serde_json::json!({ "type": "file", "path": s["rfilename"], "size": s["size"] }))
                    .collect();
                let page: Vec<TreeEntry> = serde_json::from_value(serde_json::Value::Array(tree)).unwrap();
                let mut listing = Listing::default();
                add_tree_page(page, &mut listing).unwrap();
                for f in &listing.files {
                    prop_assert!(validate_relative_path(&f.path).is_ok());
                }
            }
        }
    }
}
