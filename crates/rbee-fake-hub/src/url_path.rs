//! The URL paths this server reads and builds: percent-encoding, decoding, and joining them
//! under a folder without leaving it.

use std::path::{Component, Path, PathBuf};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use url::Url;

/// Characters escaped in one path segment of a URL this server builds.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Percent-encodes one path segment.
pub(crate) fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// `base` + `prefix` + the `/`-separated `rel`, each segment of `rel` percent-encoded.
pub(crate) fn join_encoded(base: &Url, prefix: &str, rel: &str) -> Url {
    let encoded: Vec<String> = rel
        .trim_start_matches('/')
        .split('/')
        .map(encode_segment)
        .collect();
    let mut url = base.clone();
    url.set_path(&format!(
        "{}/{}",
        prefix.trim_matches('/'),
        encoded.join("/")
    ));
    url
}

/// Percent-decodes a whole path (for counters and fault matching).
pub(crate) fn decode_path(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// The segments of a raw path, each percent-decoded (`a%2Fb` stays one segment `a/b`).
pub(crate) fn segments(raw: &str) -> Vec<String> {
    raw.trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

/// Joins decoded segments under `root`, refusing anything that could leave it.
pub(crate) fn safe_join(root: &Path, segments: &[String]) -> Option<PathBuf> {
    let mut out = root.to_path_buf();
    if segments.is_empty() {
        return None;
    }
    for seg in segments {
        for part in seg.split('/') {
            let p = Path::new(part);
            let mut comps = p.components();
            match (comps.next(), comps.next()) {
                (Some(Component::Normal(c)), None) if !part.contains('\\') => out.push(c),
                _ => return None,
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_escapes() {
        let root = Path::new("/srv");
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            safe_join(root, &s(&["a", "b.bin"])),
            Some(PathBuf::from("/srv/a/b.bin"))
        );
        assert_eq!(
            safe_join(root, &s(&["a/b.bin"])),
            Some(PathBuf::from("/srv/a/b.bin"))
        );
        assert_eq!(safe_join(root, &s(&["..", "etc"])), None);
        assert_eq!(safe_join(root, &s(&["a/../../x"])), None);
        assert_eq!(safe_join(root, &s(&["/etc"])), None);
        assert_eq!(safe_join(root, &s(&["."])), None);
        assert_eq!(safe_join(root, &s(&["a\\..\\b"])), None);
    }

    #[test]
    fn encoding_round_trips() {
        let base = Url::parse("http://127.0.0.2:1/").unwrap();
        let u = join_encoded(&base, "files", "dir/a b#?.bin");
        assert_eq!(u.as_str(), "http://127.0.0.2:1/files/dir/a%20b%23%3F.bin");
        assert_eq!(decode_path(u.path()), "/files/dir/a b#?.bin");
        assert_eq!(segments("/x/refs%2Fpr%2F1/y"), vec!["x", "refs/pr/1", "y"]);
    }
}
