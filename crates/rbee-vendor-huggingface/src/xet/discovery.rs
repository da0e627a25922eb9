//! How the Hub announces that a file is stored in Xet.

use rbee_xet::is_xet_hash;
use reqwest::header::HeaderMap;
use url::Url;

/// A file the Hub stores in Xet, as its resolve `HEAD` (not followed) announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XetFile {
    /// The file's Xet hash (64 lowercase hex digits): the id its reconstruction is asked by.
    pub hash: String,
    /// Where to get a read token (`Link` rel `xet-auth`, older `X-Xet-Refresh-Route`), when
    /// on the Hub's own origin: the Hub token is never sent anywhere else.
    pub auth_url: Option<Url>,
    /// Where to ask how to rebuild the file (`Link` rel `xet-reconstruction-info`).
    pub reconstruction_url: Option<Url>,
}

impl XetFile {
    /// Reads the announcement from the headers of a resolve `HEAD` of `resolve_url` (relative
    /// links are taken against it). `None` when the file is not in Xet, or the hash is not
    /// one (then the bridge is used, as for any file).
    pub fn from_headers(headers: &HeaderMap, resolve_url: &Url) -> Option<Self> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let hash = header("x-xet-hash")?.trim().to_ascii_lowercase();
        if !is_xet_hash(&hash) {
            tracing::debug!(
                "the Hub sent an X-Xet-Hash that is not 64 hex digits; using the bridge"
            );
            return None;
        }
        let links: Vec<(&str, &str)> = headers
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(links)
            .collect();
        let target = |rel: &str| {
            links
                .iter()
                .find(|(_, r)| *r == rel)
                .and_then(|(t, _)| resolve_url.join(t).ok())
        };
        let same_origin = |u: &Url| u.origin() == resolve_url.origin();
        let auth_url = target("xet-auth")
            .or_else(|| {
                header("x-xet-refresh-route").and_then(|route| resolve_url.join(route.trim()).ok())
            })
            .filter(|u| {
                let ok = same_origin(u);
                if !ok {
                    tracing::warn!(host = u.host_str().unwrap_or_default(), "the Hub pointed the Xet token route at another host; asking the Hub itself instead");
                }
                ok
            });
        Some(Self {
            hash,
            auth_url,
            reconstruction_url: target("xet-reconstruction-info"),
        })
    }
}

/// The `(target, rel)` pairs of one `Link` header value (`<url>; rel="name", …`). A target may
/// hold commas, so entries are split where a new `<` starts.
fn links(value: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let target = &rest[open + 1..open + close];
        let after = &rest[open + close + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        for param in after[..params_end].split(';') {
            let param = param.trim().trim_end_matches(',').trim();
            if let Some(rel) = param.strip_prefix("rel=") {
                for name in rel.trim_matches('"').split_ascii_whitespace() {
                    out.push((target, name));
                }
            }
        }
        rest = &after[params_end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use reqwest::header::HeaderValue;

    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn resolve() -> Url {
        "https://hub.example/org/repo/resolve/main/m.gguf"
            .parse()
            .unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_hash_and_both_links() {
        let h = headers(&[
            ("x-xet-hash", &HASH.to_ascii_uppercase()),
            (
                "link",
                "<https://hub.example/api/models/org/repo/xet-read-token/abc>; rel=\"xet-auth\", <https://cas.example/v1/reconstructions/0123>; rel=\"xet-reconstruction-info\"",
            ),
        ]);
        let f = XetFile::from_headers(&h, &resolve()).unwrap();
        assert_eq!(f.hash, HASH);
        assert_eq!(
            f.auth_url.unwrap().as_str(),
            "https://hub.example/api/models/org/repo/xet-read-token/abc"
        );
        assert_eq!(
            f.reconstruction_url.unwrap().as_str(),
            "https://cas.example/v1/reconstructions/0123"
        );
    }

    #[test]
    fn older_responses_name_a_refresh_route() {
        let h = headers(&[
            ("x-xet-hash", HASH),
            (
                "x-xet-refresh-route",
                "/api/models/org/repo/xet-read-token/abc",
            ),
        ]);
        let f = XetFile::from_headers(&h, &resolve()).unwrap();
        assert_eq!(
            f.auth_url.unwrap().as_str(),
            "https://hub.example/api/models/org/repo/xet-read-token/abc"
        );
        assert_eq!(f.reconstruction_url, None);
    }

    #[test]
    fn a_token_route_on_another_host_is_ignored() {
        let h = headers(&[
            ("x-xet-hash", HASH),
            ("link", "<https://evil.example/steal>; rel=\"xet-auth\""),
        ]);
        assert_eq!(
            XetFile::from_headers(&h, &resolve()).unwrap().auth_url,
            None
        );
    }

    #[test]
    fn no_or_bad_hash_means_not_xet() {
        assert_eq!(XetFile::from_headers(&headers(&[]), &resolve()), None);
        let h = headers(&[("x-xet-hash", "not-a-hash")]);
        assert_eq!(XetFile::from_headers(&h, &resolve()), None);
    }

    #[test]
    fn link_values_split_on_entries_not_commas() {
        assert_eq!(
            links("<https://a/x?y=1,2>; rel=\"next\", <b>;rel=xet-auth"),
            vec![("https://a/x?y=1,2", "next"), ("b", "xet-auth")]
        );
        assert_eq!(links("garbage"), Vec::<(&str, &str)>::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn link_parsing_never_panics(value in ".{0,200}") {
            let _ = links(&value);
        }
    }
}
