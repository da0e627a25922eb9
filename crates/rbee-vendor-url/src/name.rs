//! The local file name of a URL download.

use percent_encoding::percent_decode_str;
use rbee_artifact_catalog::validate_relative_path;
use url::Url;

/// Used when neither the server nor the URL names the file.
pub(crate) const FALLBACK_NAME: &str = "download";

/// The name from `Content-Disposition` (RFC 6266: `filename*=UTF-8''…` preferred over
/// `filename="…"`), reduced to its last component; `None` when absent or unusable.
pub(crate) fn from_content_disposition(value: &str) -> Option<String> {
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
            let encoded = raw.splitn(3, '\'').nth(2)?;
            extended = Some(percent_decode_str(encoded).decode_utf8().ok()?.into_owned());
        } else if key == "filename" {
            plain = Some(raw.trim_matches('"').replace("\\\"", "\""));
        }
    }
    extended.or(plain).and_then(|n| clean(&n))
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
            from_content_disposition("attachment; filename=\"m.gguf\"").as_deref(),
            Some("m.gguf")
        );
        assert_eq!(
            from_content_disposition(
                "attachment; filename=\"fallback.bin\"; filename*=UTF-8''my%20model.gguf"
            )
            .as_deref(),
            Some("my model.gguf")
        );
        assert_eq!(
            from_content_disposition("attachment; filename=\"../../etc/passwd\"").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            from_content_disposition("attachment; filename=\"..\""),
            None
        );
        assert_eq!(from_content_disposition("inline"), None);
        assert_eq!(
            from_content_disposition("attachment; filename=\".bashrc\""),
            None
        );
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
}
