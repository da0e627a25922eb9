//! Hub mirrors (`--mirror URL`, `RBEE_MIRRORS`): tried in order before the origin; one that
//! fails is passed over for a while. Only the endpoint changes: the reference, and so the
//! catalog entry, stay the origin's, and the origin's token is never sent to a mirror.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rbee_artifact::{lock_unpoisoned, redact_url};
use url::Url;

/// How long a mirror that failed is passed over.
pub(crate) const SKIP_FOR: Duration = Duration::from_secs(300);

/// When each failed mirror may be tried again.
#[derive(Debug, Default)]
pub(crate) struct MirrorHealth {
    down_until: Mutex<HashMap<Url, Instant>>,
}

impl MirrorHealth {
    pub(crate) fn usable(&self, mirror: &Url) -> bool {
        lock_unpoisoned(&self.down_until)
            .get(mirror)
            .is_none_or(|until| Instant::now() >= *until)
    }

    pub(crate) fn failed(&self, mirror: &Url) {
        lock_unpoisoned(&self.down_until).insert(mirror.clone(), Instant::now() + SKIP_FOR);
    }
}

/// Parses a list of mirror URLs (`RBEE_MIRRORS`: separated by commas or whitespace).
pub(crate) fn parse_mirrors(text: &str) -> std::result::Result<Vec<Url>, String> {
    text.split([',', ' ', '\n', '\t'])
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_mirror(s.trim()))
        .collect()
}

/// One mirror URL: http(s), a host, no credentials (a mirror is never sent the origin's token,
/// and a URL is no place for one). The error says what is wrong and shows a valid one.
///
/// ```
/// assert!(rbee_vendor_huggingface::parse_mirror("http://hive-a:8600").is_ok());
/// assert!(rbee_vendor_huggingface::parse_mirror("hive-a:8600").is_err());
/// ```
pub fn parse_mirror(text: &str) -> std::result::Result<Url, String> {
    let url = Url::parse(text).map_err(|e| {
        format!("mirror `{text}` is not a URL ({e}); write e.g. http://hive-a:8600")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "mirror `{text}` must be an http(s) URL with a host, e.g. http://hive-a:8600"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(format!(
            "mirror `{}` must not carry credentials or a query",
            redact_url(&url)
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_lists_parse() {
        let list = parse_mirrors("http://a:8600, https://b/hf\nhttp://c").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].as_str(), "https://b/hf");
        assert!(parse_mirrors("").unwrap().is_empty());
        for bad in [
            "ftp://a",
            "a:8600",
            "http://u:p@a",
            "http://a/?token=x",
            "not a url",
        ] {
            assert!(parse_mirror(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_failed_mirror_is_skipped_for_a_while() {
        let health = MirrorHealth::default();
        let m = Url::parse("http://a").unwrap();
        assert!(health.usable(&m));
        health.failed(&m);
        assert!(!health.usable(&m));
        assert!(health.usable(&Url::parse("http://b").unwrap()));
    }
}
