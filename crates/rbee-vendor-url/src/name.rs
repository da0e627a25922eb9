//! The local file name of a URL download.

use percent_encoding::percent_decode_str;
use rbee_artifact::{quote_untrusted, validate_relative_path};
use url::Url;

/// Used when neither the server nor the URL names the file.
pub(crate) const FALLBACK_NAME: &str = "download";

/// The name from `Content-Disposition` (RFC 6266: `filename*=UTF-8''…` preferred over
/// `filename="…"`). `Ok(None)` when the header names no file; an error (saying why, with the
/// name quoted and escaped) when it names one that is not a plain, safe file name: a path
/// (`../x`, `a/b`), control characters or ANSI escapes, an absurd length. Such a name is
/// refused rather than cleaned, since a server sending it is not one to trust with a guess.
pub(crate) fn from_content_disposition(value: &str) -> Result<Option<String>, String> {
    let mut plain = None;
    let mut extended = None;
    for part in value.split(';').map(str::trim) {
        let Some((key, raw)) = part.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let raw = raw.trim();
        if key == "filename*" {
            // charset'language'percent-encoded
            let Some(encoded) = raw.splitn(3, '\'').nth(2) else {
                return Err(format!(
                    "{} is not charset'language'value",
                    quote_untrusted(raw)
                ));
            };
            let decoded = percent_decode_str(encoded)
                .decode_utf8()
                .map_err(|_| format!("{} is not UTF-8", quote_untrusted(encoded)))?;
            extended = Some(decoded.into_owned());
        } else if key == "filename" {
            plain = Some(raw.trim_matches('"').replace("\\\"", "\""));
        }
    }
    match extended.or(plain) {
        None => Ok(None),
        Some(name) => check_name(&name).map(Some),
    }
}

/// `name` as a file name, or why it is not a safe one.
fn check_name(name: &str) -> Result<String, String> {
    let reason = if name.contains(['/', '\\']) {
        Some("it is a path, not a file name".to_string())
    } else if name.trim().is_empty() || name.starts_with('.') {
        Some("it is empty or hidden (starts with `.`)".to_string())
    } else {
        validate_relative_path(name).err().map(|e| e.to_string())
    };
    match reason {
        None => Ok(name.to_string()),
        Some(why) => Err(format!("{} ({why})", quote_untrusted(name))),
    }
}

/// The last segment of the URL's path, percent-decoded.
pub(crate) fn from_url(url: &Url) -> Option<String> {
    let last = url.path_segments()?.rev().find(|s| !s.is_empty())?;
    clean(&percent_decode_str(last).decode_utf8_lossy())
}

/// The last path component of `name`, if it is a safe file name.
fn clean(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next()?.trim();
    if base.is_empty() || base.starts_with('.') {
        return None;
    }
    validate_relative_path(base).ok()?;
    Some(base.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_forms() {
        assert_eq!(
            from_content_disposition("attachment; filename=\"m.gguf\""),
            Ok(Some("m.gguf".to_string()))
        );
        assert_eq!(
            from_content_disposition(
                "attachment; filename=\"fallback.bin\"; filename*=UTF-8''my%20model.gguf"
            ),
            Ok(Some("my model.gguf".to_string()))
        );
        assert_eq!(from_content_disposition("inline"), Ok(None));
        for hostile in [
            "attachment; filename=\"../../etc/passwd\"",
            "attachment; filename=\"..\"",
            "attachment; filename=\".bashrc\"",
            "attachment; filename=\"a\\\\b.gguf\"",
            "attachment; filename*=UTF-8''%1B%5B31mred.gguf",
            "attachment; filename*=UTF-8''evil%E2%80%AEfugg.exe",
            "attachment; filename*=UTF-8''%FF%FE",
        ] {
            let err = from_content_disposition(hostile).unwrap_err();
            assert!(!err.contains('\u{1b}'), "{err}");
        }
        let long = format!("attachment; filename=\"{}.gguf\"", "a".repeat(10_000));
        let err = from_content_disposition(&long).unwrap_err();
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn url_names() {
        let u = Url::parse("https://h/a/b/my%20model.gguf?x=1").unwrap();
        assert_eq!(from_url(&u).as_deref(), Some("my model.gguf"));
        assert_eq!(from_url(&Url::parse("https://h/").unwrap()), None);
        assert_eq!(
            from_url(&Url::parse("https://h/a/%2e%2e").unwrap()),
            None,
            "a decoded `..` is not a name"
        );
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any header: no panic; a name that comes out is one plain, safe file name.
            #[test]
            fn content_disposition_never_panics(
                value in prop_oneof![
                    "\\PC{0,80}",
                    "attachment; filename\\*?=[\"']?(\\PC|%[0-9A-F]{2}){0,40}[\"']?",
                    "attachment; filename\\*=(UTF-8)?'[a-z]{0,2}'(%[0-9A-Fa-f]{2}|[a-z./\\\\]){0,40}",
                ]
            ) {
                if let Ok(Some(name)) = from_content_disposition(&value) {
                    prop_assert!(validate_relative_path(&name).is_ok(), "{name:?}");
                    prop_assert!(!name.contains(['/', '\\']) && !name.starts_with('.'));
                }
            }
        }
    }
}
