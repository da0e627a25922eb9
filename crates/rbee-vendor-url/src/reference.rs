//! `https:` references: one file from any HTTP(S) server, its grammar and its catalog key.
//!
//! ```text
//! https://HOST/PATH[#sha256=HEX]   (also http://)
//! ```
//!
//! The Hub's and GitHub's release URLs are claimed by their own vendors before this one is
//! asked.

use std::fmt;

use rbee_artifact::{
    RefErrorKind, Scheme, Sha256Digest, VendorReference, key_segment, key_segment_body,
    redacted_url, short_hash,
};
use url::Url;

/// A direct HTTP(S) URL, optionally with an expected digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UrlRef {
    /// The URL, without fragment, as given: with any credential in its query string. Fetch
    /// from it; show or record it only through [`redact_url`](rbee_artifact::redact_url).
    pub url: Url,
    /// Expected SHA-256 from a `#sha256=` fragment.
    pub sha256: Option<Sha256Digest>,
}

impl fmt::Debug for UrlRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs too.
        f.debug_struct("UrlRef")
            .field("url", &redacted_url(&self.url).as_str())
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// The scheme of plain URL references.
pub const SCHEME: Scheme = Scheme::new("url");

impl fmt::Display for UrlRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", redacted_url(&self.url))?;
        if let Some(d) = &self.sha256 {
            write!(f, "#sha256={d}")?;
        }
        Ok(())
    }
}

impl VendorReference for UrlRef {
    const SCHEME: Scheme = SCHEME;
    const PREFIXES: &'static [&'static str] = &["https", "http"];
    const EXAMPLE: &'static str = "https://example.com/models/model.gguf#sha256=<64 hex digits>";
    const KEY_DEPTH: usize = 2;

    fn parse(input: &str, _body: &str) -> Result<Self, RefErrorKind> {
        parse_url(input)
    }

    fn catalog_segments(&self) -> Vec<String> {
        // The redacted form: it is what the record holds, and every signature of the same
        // object finds the same entry.
        let url = redacted_url(&self.url);
        let host = url.host_str().unwrap_or("host");
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|s| !s.is_empty())
            .unwrap_or("file");
        let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        vec![
            key_segment(host),
            format!("{}-{}", key_segment_body(&name), short_hash(url.as_str())),
        ]
    }

    fn is_pinned(&self) -> bool {
        self.sha256.is_some()
    }

    fn to_request_string(&self) -> String {
        let mut s = self.url.to_string();
        if let Some(d) = &self.sha256 {
            s.push_str(&format!("#sha256={d}"));
        }
        s
    }
}

fn parse_url(input: &str) -> Result<UrlRef, RefErrorKind> {
    let mut url = Url::parse(input).map_err(|_| RefErrorKind::Invalid {
        part: "URL",
        value: input.to_string(),
        reason: "it does not parse as a URL",
    })?;
    if url.host_str().is_none() {
        return Err(RefErrorKind::Missing { part: "URL host" });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RefErrorKind::Unsupported(
            "credentials inside a URL would be stored and shown; pass a token through the environment instead",
        ));
    }
    let sha256 = match url.fragment() {
        None | Some("") => None,
        Some(fragment) => {
            let hex = fragment
                .strip_prefix("sha256=")
                .ok_or(RefErrorKind::Invalid {
                    part: "URL fragment",
                    value: fragment.to_string(),
                    reason: "the only fragment understood is #sha256=<64 hex digits>",
                })?;
            Some(
                hex.parse::<Sha256Digest>()
                    .map_err(|_| RefErrorKind::Invalid {
                        part: "sha256 digest",
                        value: hex.to_string(),
                        reason: "expected 64 hexadecimal digits",
                    })?,
            )
        }
    };
    url.set_fragment(None);
    if url.path().ends_with('/') {
        return Err(RefErrorKind::Missing {
            part: "file name at the end of the URL",
        });
    }
    Ok(UrlRef { url, sha256 })
}
