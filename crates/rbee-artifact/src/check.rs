//! The checks every vendor grammar shares: names, revisions, paths inside a repository, and
//! names from a remote that end up on disk or on a terminal.

use std::path::Path;

use crate::grammar::RefErrorKind;

/// A revision as written in a reference, with `%2F` decoded to `/`.
pub fn decode_revision(rev: &str) -> String {
    rev.replace("%2F", "/").replace("%2f", "/")
}

/// A revision as written in a reference: `/` as `%2F`, except in a pull-request ref
/// (`refs/pr/N`), which is written as it is.
pub fn encode_revision(rev: &str) -> String {
    if is_pr_ref(rev) {
        rev.to_string()
    } else {
        rev.replace('/', "%2F")
    }
}

fn is_pr_ref(rev: &str) -> bool {
    rev.strip_prefix("refs/pr/")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks an owner, organisation or repository name: letters, digits, `-`, `_` and `.`, at most
/// 96 characters, not `.` or `..`.
pub fn check_name(part: &'static str, value: &str) -> Result<(), RefErrorKind> {
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
    if value.len() > 96 {
        return invalid("longer than 96 characters");
    }
    if value == "." || value == ".." {
        return invalid("`.` and `..` are not names");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return invalid("only letters, digits, `-`, `_` and `.` are allowed");
    }
    Ok(())
}

/// Checks a branch, tag or commit (after [`decode_revision`]): no `..`, no leading, trailing or
/// doubled `/`, at most 255 characters. Returns it decoded.
pub fn check_revision(rev: &str) -> Result<String, RefErrorKind> {
    let rev = decode_revision(rev);
    let invalid = |reason| {
        Err(RefErrorKind::Invalid {
            part: "revision",
            value: rev.clone(),
            reason,
        })
    };
    if rev.is_empty() {
        return Err(RefErrorKind::Missing {
            part: "revision after `@`",
        });
    }
    if rev.len() > 255 {
        return invalid("longer than 255 characters");
    }
    if rev.contains("..") || rev.starts_with('/') || rev.ends_with('/') || rev.contains("//") {
        return invalid("`..`, leading, trailing or doubled `/` are not allowed");
    }
    if !rev
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'+'))
    {
        return invalid("only letters, digits, `-`, `_`, `.`, `+` and `/` (as %2F) are allowed");
    }
    Ok(rev)
}

/// A relative path inside a repository: no empty, `.` or `..` segments, no backslashes.
pub fn check_repo_path(path: &str) -> Result<String, RefErrorKind> {
    if path.is_empty() {
        return Err(RefErrorKind::Missing {
            part: "file path after the repository",
        });
    }
    if path.starts_with('/') {
        return Err(RefErrorKind::Invalid {
            part: "path",
            value: path.to_string(),
            reason: "a path inside a repository must be relative",
        });
    }
    for segment in path.split('/') {
        let reason = match segment {
            "" => Some("empty path segment (doubled or trailing `/`)"),
            "." | ".." => Some("`.` and `..` segments are not allowed"),
            s if s.contains('\\') => Some("backslashes are not allowed"),
            s if s.contains(':') => Some("`:` is not allowed in a path"),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(RefErrorKind::Invalid {
                part: "path segment",
                value: segment.to_string(),
                reason,
            });
        }
    }
    Ok(path.to_string())
}

/// Checks that `path` is a safe relative path (as used for files inside an artifact):
/// `/`-separated, no empty, `.` or `..` segments, no backslash, not absolute, no control
/// characters (ANSI escapes included) or text-direction overrides, no segment longer than
/// 255 bytes and at most 1024 bytes in all.
///
/// Vendors call this on every remote file name before writing or showing it, so a hostile
/// server can neither write outside the artifact's folder nor write to the terminal.
pub fn validate_relative_path(path: &str) -> Result<&Path, RefErrorKind> {
    // Checked first, so that later messages may quote the path.
    if let Some(position) = path
        .char_indices()
        .find_map(|(i, c)| unshowable(c).then_some(i))
    {
        return Err(RefErrorKind::ControlCharacter { position });
    }
    if path.len() > MAX_PATH_BYTES || path.split('/').any(|s| s.len() > MAX_NAME_BYTES) {
        let preview: String = path.chars().take(40).collect();
        return Err(RefErrorKind::Invalid {
            part: "path",
            value: format!("{preview}… ({} bytes)", path.len()),
            reason: "a file name is at most 255 bytes and a path at most 1024",
        });
    }
    check_repo_path(path)?;
    Ok(Path::new(path))
}

/// Longest file name (one path segment) accepted from a remote, in bytes: what file systems
/// store.
const MAX_NAME_BYTES: usize = 255;
/// Longest relative path accepted from a remote, in bytes.
const MAX_PATH_BYTES: usize = 1024;

/// A name from a remote as it may be shown in a message: quoted, control characters escaped,
/// cut after 60 characters (a refused name can be megabytes long).
pub fn quote_untrusted(text: &str) -> String {
    const SHOWN: usize = 60;
    let head: String = text.chars().take(SHOWN).collect();
    if head.len() < text.len() {
        format!("{:?}… ({} bytes)", head, text.len())
    } else {
        format!("{head:?}")
    }
}

/// Characters that must not reach a terminal or a file name: control characters (C0, DEL, C1,
/// so every ANSI escape) and the bidirectional overrides that reorder what is displayed.
fn unshowable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_with_escapes_or_absurd_lengths_are_refused() {
        assert!(validate_relative_path("sub/model.gguf").is_ok());
        assert!(validate_relative_path("模型/ünïcode name.gguf").is_ok());
        for bad in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "\u{1b}[31mred.gguf",
            "a\u{9b}31m.gguf",
            "tab\there",
            "line\nbreak",
            "evil\u{202E}fugg.exe",
            "del\u{7f}",
        ] {
            assert!(validate_relative_path(bad).is_err(), "{bad:?}");
        }
        let long = "a".repeat(256);
        let err = validate_relative_path(&long).unwrap_err().to_string();
        assert!(
            err.contains("at most 255 bytes") && err.len() < 200,
            "{err}"
        );
        assert!(validate_relative_path(&"a".repeat(255)).is_ok());
        let deep = vec!["d"; 600].join("/");
        assert!(validate_relative_path(&deep).is_err());
        assert_eq!(quote_untrusted("a\u{1b}b"), "\"a\\u{1b}b\"");
        assert!(quote_untrusted(&long).ends_with("… (256 bytes)"));
        let err = validate_relative_path("x\u{1b}[2J")
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains('\u{1b}'),
            "the message never carries the escape: {err:?}"
        );
    }
}
