//! `s3://BUCKET[/PREFIX]`: where a cluster's shared store lives, parsed once at the edge.

use std::fmt;
use std::str::FromStr;

use crate::error::StoreError;

/// A parsed shared-store location: a bucket and an optional key prefix inside it.
///
/// ```
/// use rbee_shared_store::StoreUrl;
/// let url: StoreUrl = "s3://models/rack-1/".parse()?;
/// assert_eq!(url.bucket(), "models");
/// assert_eq!(url.prefix(), "rack-1");
/// assert_eq!(url.to_string(), "s3://models/rack-1");
/// # Ok::<(), rbee_shared_store::StoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreUrl {
    bucket: String,
    prefix: String,
}

const EXAMPLE: &str = "s3://models or s3://models/rack-1";

impl StoreUrl {
    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix (no leading or trailing `/`; empty for the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `key` under the prefix.
    pub(crate) fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, StoreError> {
        // A user part may hold a credential typed into the URL: never echo it.
        let shown = match text.rsplit_once('@') {
            Some((_, host)) => format!("s3://****@{}", host.escape_debug()),
            None => text.escape_debug().to_string(),
        };
        let invalid = |reason: String| StoreError::InvalidUrl {
            url: shown.clone(),
            reason,
            example: EXAMPLE,
        };
        let Some(rest) = text.strip_prefix("s3://") else {
            let reason = match text.split_once("://") {
                Some((scheme, _)) => format!(
                    "the scheme is `{}`; only s3:// (any S3-compatible store: Garage, MinIO, AWS) is supported, with the endpoint in AWS_ENDPOINT_URL",
                    scheme.escape_debug()
                ),
                None => "it does not start with s3://".to_string(),
            };
            return Err(invalid(reason));
        };
        if rest.contains(['?', '#', '@']) {
            return Err(invalid(
                "it has a query, fragment or user part; credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the endpoint in AWS_ENDPOINT_URL".into(),
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket).map_err(invalid)?;
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            for segment in prefix.split('/') {
                if segment.is_empty() || segment == "." || segment == ".." {
                    return Err(invalid(format!(
                        "the prefix `{}` has an empty, `.` or `..` part",
                        prefix.escape_debug()
                    )));
                }
                if segment.chars().any(|c| c.is_control() || c == '\\') {
                    return Err(invalid(
                        "the prefix has a control character or a backslash".into(),
                    ));
                }
            }
        }
        Ok(StoreUrl {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// The S3 bucket naming rules: 3 to 63 characters of lower-case letters, digits, `.` and `-`,
/// beginning and ending with a letter or digit.
fn check_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("the bucket name is missing".into());
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "the bucket name `{}` has {} characters; S3 bucket names have 3 to 63",
            bucket.escape_debug(),
            bucket.chars().count()
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !bucket.chars().all(allowed) || !edge(bucket.chars().next()) || !edge(bucket.chars().last())
    {
        return Err(format!(
            "the bucket name `{}` is not valid: use lower-case letters, digits, `.` and `-`, beginning and ending with a letter or digit",
            bucket.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_bucket_and_prefix() {
        let u: StoreUrl = "s3://models".parse().unwrap();
        assert_eq!((u.bucket(), u.prefix()), ("models", ""));
        assert_eq!(u.key("blobs/x"), "blobs/x");
        let message = "s3://models/a//b"
            .parse::<StoreUrl>()
            .unwrap_err()
            .to_string();
        assert!(message.contains("empty"), "{message}");
        let u: StoreUrl = "s3://models/a/b/".parse().unwrap();
        assert_eq!(u.key("blobs/x"), "a/b/blobs/x");
        assert_eq!(u.to_string(), "s3://models/a/b");
    }

    #[test]
    fn refuses_bad_urls_saying_why() {
        for (text, says) in [
            ("", "does not start with s3://"),
            ("models", "does not start with s3://"),
            ("gs://models", "the scheme is `gs`"),
            ("s3://", "bucket name is missing"),
            ("s3://ab", "3 to 63"),
            ("s3://Models", "lower-case"),
            ("s3://-models", "beginning and ending"),
            ("s3://models/../x", "`..`"),
            (
                "s3://key:secret@models",
                "credentials go in AWS_ACCESS_KEY_ID",
            ),
            ("s3://models?x=1", "query"),
        ] {
            let message = text.parse::<StoreUrl>().unwrap_err().to_string();
            assert!(message.contains(says), "{text}: {message}");
            assert!(message.contains("s3://models/rack-1"), "{message}");
        }
        // A credential typed into the URL is not echoed back.
        let message = "s3://AKIA:supersecret@models"
            .parse::<StoreUrl>()
            .unwrap_err()
            .to_string();
        assert!(!message.contains("supersecret"), "{message}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn any_text_parses_or_errors_and_round_trips(text in "s3://[a-z0-9.\\-/]{0,20}|\\PC{0,30}") {
            if let Ok(url) = text.parse::<StoreUrl>() {
                let again: StoreUrl = url.to_string().parse().unwrap();
                prop_assert_eq!(&again, &url);
                prop_assert!(!url.prefix().starts_with('/') && !url.prefix().ends_with('/'));
            }
        }
    }
}
