//! Credentials inside URLs: what may be recorded in the catalog and shown in events, errors
//! and logs.
//!
//! Pre-signed URLs (S3, GCS, Azure, CloudFront, most CDNs) carry their credential in the query
//! string. Only the values of parameters that sign or authorise are replaced; the others stay as
//! written, because they can tell two objects apart (`?file=a` vs `?file=b`) and the catalog
//! derives an entry's identity from the redacted form. Two signatures of the same object
//! therefore share one entry, and a record never holds a secret.

use url::Url;

/// What a credential's value is replaced with.
pub const REDACTED: &str = "REDACTED";

/// Parameter names (lower case) that carry or scope a signature in the common schemes:
/// S3 v2, CloudFront, GCS v2, Azure SAS, Akamai, OAuth, and generic API keys. Expiry and
/// policy values are included because they change with every signing: keeping them would give
/// each signature of the same object its own entry.
const CREDENTIAL_NAMES: &[&str] = &[
    "sig",
    "signature",
    "policy",
    "expires",
    "key",
    "key-pair-id",
    "awsaccesskeyid",
    "googleaccessid",
    "se",
    "st",
    "skoid",
    "sktid",
    "code",
    "jwt",
    "hdnts",
    "hdnea",
    "__token__",
];

/// Fragments of names that mark a credential wherever they appear (`access_token`,
/// `X-Api-Key`, `client_secret`, `dl_auth` …).
const CREDENTIAL_PARTS: &[&str] = &[
    "token",
    "secret",
    "signature",
    "password",
    "passwd",
    "credential",
    "auth",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "accesskey",
    "session",
];

/// Prefixes of whole signing schemes: S3 SigV4 (`X-Amz-*`), GCS v4 (`X-Goog-*`).
const CREDENTIAL_PREFIXES: &[&str] = &["x-amz-", "x-goog-"];

/// Whether a query parameter (its decoded name) carries or scopes a credential.
///
/// ```
/// use rbee_artifact::is_credential_param;
/// assert!(is_credential_param("X-Amz-Signature"));
/// assert!(is_credential_param("access_token"));
/// assert!(is_credential_param("sig"));
/// assert!(!is_credential_param("file"));
/// ```
pub fn is_credential_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    CREDENTIAL_NAMES.contains(&name.as_str())
        || CREDENTIAL_PREFIXES.iter().any(|p| name.starts_with(p))
        || CREDENTIAL_PARTS.iter().any(|p| name.contains(p))
}

/// `url` without user name, password, fragment, or the value of any credential parameter.
/// A URL without any of those comes back unchanged (same text).
///
/// ```
/// use rbee_artifact::redacted_url;
/// let u = "https://b.s3.example/m.gguf?versionId=3&X-Amz-Signature=abc".parse().unwrap();
/// assert_eq!(
///     redacted_url(&u).as_str(),
///     "https://b.s3.example/m.gguf?versionId=3&X-Amz-Signature=REDACTED"
/// );
/// ```
pub fn redacted_url(url: &Url) -> Url {
    let mut shown = url.clone();
    if !shown.username().is_empty() {
        let _ = shown.set_username("");
    }
    if shown.password().is_some() {
        let _ = shown.set_password(None);
    }
    shown.set_fragment(None);
    if let Some(query) = shown.query().filter(|q| !q.is_empty()) {
        let mut changed = false;
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                let (raw_name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let name = percent_encoding::percent_decode_str(&raw_name.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned();
                if is_credential_param(&name) && value != REDACTED {
                    changed = true;
                    format!("{raw_name}={REDACTED}")
                } else {
                    pair.to_string()
                }
            })
            .collect();
        if changed {
            // Rebuilt from the raw pieces: parameters that are kept keep their exact spelling.
            shown.set_query(Some(&pairs.join("&")));
        }
    }
    shown
}

/// Whether `url` had credentials taken out by [`redacted_url`] (a credential parameter whose
/// value is the redaction mark): it was recorded, and cannot be fetched again as it stands.
///
/// ```
/// use rbee_artifact::lost_credentials;
/// let shown = "https://b.s3.example/m.gguf?X-Amz-Signature=REDACTED".parse().unwrap();
/// assert!(lost_credentials(&shown));
/// let plain = "https://b.s3.example/m.gguf?versionId=REDACTED".parse().unwrap();
/// assert!(!lost_credentials(&plain));
/// ```
pub fn lost_credentials(url: &Url) -> bool {
    url.query_pairs()
        .any(|(name, value)| value == REDACTED && is_credential_param(&name))
}

/// [`redacted_url`] as text, for messages and logs.
pub fn redact_url(url: &Url) -> String {
    redacted_url(url).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(s: &str) -> String {
        redact_url(&Url::parse(s).unwrap())
    }

    #[test]
    fn signed_urls_lose_their_credentials_and_keep_the_rest() {
        assert_eq!(
            shown(
                "https://b.s3.amazonaws.com/m.gguf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F1&X-Amz-Date=1&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok&X-Amz-Signature=abcdef"
            ),
            "https://b.s3.amazonaws.com/m.gguf?X-Amz-Algorithm=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Date=REDACTED&X-Amz-Expires=REDACTED&X-Amz-SignedHeaders=REDACTED&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED"
        );
        assert_eq!(
            shown(
                "https://cdn.example/x?response-content-disposition=inline&Expires=1&Policy=p&Signature=s&Key-Pair-Id=k"
            ),
            "https://cdn.example/x?response-content-disposition=inline&Expires=REDACTED&Policy=REDACTED&Signature=REDACTED&Key-Pair-Id=REDACTED"
        );
        assert_eq!(
            shown("https://acct.blob.core.windows.net/c/m?sv=2022&se=2030&sr=b&sp=r&sig=abc%2Bdef"),
            "https://acct.blob.core.windows.net/c/m?sv=2022&se=REDACTED&sr=b&sp=r&sig=REDACTED"
        );
        assert_eq!(
            shown("https://h/m?access_token=a&Token=b&apiKey=c&file=x&%73ig=d"),
            "https://h/m?access_token=REDACTED&Token=REDACTED&apiKey=REDACTED&file=x&%73ig=REDACTED"
        );
        assert_eq!(
            shown("https://user:pw@h/m?x=1#frag"),
            "https://h/m?x=1",
            "user info and fragment go"
        );
    }

    #[test]
    fn a_url_without_credentials_is_unchanged_and_redaction_is_idempotent() {
        for s in [
            "https://h/a/b.gguf",
            "https://h/a/b.gguf?download=true&rev=2",
            "http://127.0.0.1:8080/x?a&b=&c=%20",
        ] {
            assert_eq!(shown(s), Url::parse(s).unwrap().as_str());
        }
        let once = redacted_url(&Url::parse("https://h/m?sig=1&a=2").unwrap());
        assert_eq!(redacted_url(&once), once);
    }
}
