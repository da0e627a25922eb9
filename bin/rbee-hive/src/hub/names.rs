//! The names in a Hub request path: repository, revision and file, split from the raw path and
//! checked before anything is looked up or fetched.

use percent_encoding::percent_decode_str;
use rbee_artifact::{
    check_file_path, check_name as check_ref_name, check_revision as check_ref_revision,
};

/// Percent-decoded segments of a raw path, without the leading `/`. `None` when a segment is
/// not UTF-8 once decoded.
pub(crate) fn segments(raw: &str) -> Option<Vec<String>> {
    raw.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .collect()
}

/// Splits `rev[/path…]` where the revision is one segment (`refs%2Fpr%2F1` arrives decoded as
/// `refs/pr/1`), or the three unencoded segments of `refs/pr/N` / `refs/convert/NAME`, as the Hub
/// also accepts.
pub(crate) fn split_revision(tail: &[String]) -> Option<(String, &[String])> {
    match tail {
        [refs, kind, n, rest @ ..] if refs == "refs" && (kind == "pr" || kind == "convert") => {
            Some((format!("refs/{kind}/{n}"), rest))
        }
        [rev, rest @ ..] => Some((rev.clone(), rest)),
        [] => None,
    }
}

/// A user, organisation or repository name, checked as references check them.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    check_ref_name("repository or owner name", name)
        .map_err(|why| format!("{why} (e.g. TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF)"))
}

/// A branch, tag or commit, checked as references check them (a revision arrives decoded:
/// `refs%2Fpr%2F1` as `refs/pr/1`).
pub(crate) fn check_revision(rev: &str) -> Result<(), String> {
    let hint = "a branch, tag or commit such as main, v1.0 or refs/pr/1";
    match check_ref_revision(rev) {
        // The check decodes `%2F`; a `%` left after the path was decoded is not a revision.
        Ok(checked) if checked == rev => Ok(()),
        Ok(_) => Err(format!(
            "the revision `{}` is not valid: `%` is not allowed ({hint})",
            rev.escape_default()
        )),
        Err(why) => Err(format!("{why} ({hint})")),
    }
}

/// A file path inside a repository, checked as the catalog checks every path it stores.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    check_file_path(path).map_err(|why| {
        format!(
            "`{}` is not a file path this mirror serves: {why}",
            path.escape_default()
        )
    })
}

/// Whether a revision is a full commit id, which never moves.
pub(crate) fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(raw: &str) -> Vec<String> {
        segments(raw).unwrap()
    }

    #[test]
    fn revisions_split_both_ways() {
        let tail = segs("refs%2Fpr%2F1/sub/m.gguf");
        let (rev, rest) = split_revision(&tail).unwrap();
        assert_eq!(
            (rev.as_str(), rest.join("/")),
            ("refs/pr/1", "sub/m.gguf".into())
        );
        let tail = segs("refs/pr/1/m.gguf");
        let (rev, rest) = split_revision(&tail).unwrap();
        assert_eq!(
            (rev.as_str(), rest.join("/")),
            ("refs/pr/1", "m.gguf".into())
        );
        let tail = segs("main/a%20b.json");
        let (rev, rest) = split_revision(&tail).unwrap();
        assert_eq!((rev.as_str(), rest.join("/")), ("main", "a b.json".into()));
        assert!(segments("/x/%ff").is_none());
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "a b", "a\0", "é", &"x".repeat(97)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["TheBloke", "Qwen2.5-7B", "org_1", "a.b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "../main", "a/../b", "/main", "a b", "a%2Fb", "a\\b", "x\n", "main/", "a//b",
        ] {
            assert!(check_revision(bad).is_err(), "{bad:?}");
        }
        for good in [
            "main",
            "v1.0",
            "refs/pr/1",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(check_revision(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../etc/passwd",
            "/abs",
            "a//b",
            "m.gguf.part",
            "a\u{7}b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path("sub dir/model.Q4_K_M.gguf").is_ok());
    }
}
