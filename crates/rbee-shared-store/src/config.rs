//! The settings of a shared store: where it is and how to sign in. The binaries read them from
//! the standard AWS variables ([`StoreConfig::from_vars`]); the library reads no environment.

use std::time::Duration;

use rbee_artifact::Secret;
use url::Url;

use crate::error::StoreError;
use crate::url::StoreUrl;

/// Where a shared store is and how to reach it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The bucket and prefix.
    pub url: StoreUrl,
    /// The S3 endpoint (`http://garage.lan:3900`); `None` is AWS itself.
    pub endpoint: Option<Url>,
    /// The region to sign for (Garage's default is `garage`).
    pub region: String,
    /// The access key id (not a secret by itself, but kept out of messages all the same).
    pub access_key_id: Secret,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// Plain HTTP to the endpoint: only when the endpoint says `http://`.
    pub allow_http: bool,
    /// Longest wait for one request's answer before the store counts as stalled.
    pub request_timeout: Duration,
    /// Attempts of one request on 5xx or a dropped connection before giving up.
    pub max_retries: usize,
}

impl StoreConfig {
    /// The settings for `url`, from variables read through `var` (the binaries pass
    /// `std::env::var`): `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (or `AWS_DEFAULT_REGION`, default `us-east-1`).
    pub fn from_vars(url: &str, var: impl Fn(&str) -> Option<String>) -> Result<Self, StoreError> {
        let url: StoreUrl = url.trim().parse()?;
        let store = url.to_string();
        let config_error = |message: String| StoreError::Config {
            store: store.clone(),
            message,
        };
        let endpoint = match var("AWS_ENDPOINT_URL").or_else(|| var("AWS_ENDPOINT")) {
            Some(text) if !text.trim().is_empty() => {
                let endpoint = Url::parse(text.trim()).map_err(|e| {
                    config_error(format!(
                        "AWS_ENDPOINT_URL is not a URL ({e}); set it like http://127.0.0.1:3900"
                    ))
                })?;
                if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
                    return Err(config_error(format!(
                        "AWS_ENDPOINT_URL must be an http:// or https:// URL with a host, like http://127.0.0.1:3900 (got scheme `{}`)",
                        endpoint.scheme()
                    )));
                }
                if !endpoint.username().is_empty() || endpoint.password().is_some() {
                    return Err(config_error(
                        "AWS_ENDPOINT_URL holds a user name or password; put credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
                    ));
                }
                Some(endpoint)
            }
            _ => None,
        };
        let access_key_id = var("AWS_ACCESS_KEY_ID").and_then(Secret::new);
        let secret_access_key = var("AWS_SECRET_ACCESS_KEY").and_then(Secret::new);
        let (Some(access_key_id), Some(secret_access_key)) = (access_key_id, secret_access_key)
        else {
            return Err(config_error(
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to a key allowed to read and write the bucket (Garage: `garage key create` and `garage bucket allow --read --write`)".into(),
            ));
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_string());
        let allow_http = endpoint.as_ref().is_some_and(|e| e.scheme() == "http");
        Ok(StoreConfig {
            url,
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            allow_http,
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
        })
    }

    /// How the store is named in messages: `s3://BUCKET/PREFIX at ENDPOINT`.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!(
                "{} at {}",
                self.url,
                rbee_artifact::redact_url(endpoint).trim_end_matches('/')
            ),
            None => format!("{} (AWS S3, region {})", self.url, self.region),
        }
    }

    /// Removes every credential from `text` (an answer from the store, say). Values shorter
    /// than a real key are left alone: replacing every `a` would garble the message and hide
    /// nothing worth hiding.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in [&self.secret_access_key, &self.access_key_id] {
            // Shorter values would blank ordinary words of the message; real keys are longer.
            if secret.expose().len() >= 6 {
                text = secret.redact(&text);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_the_standard_variables() {
        let c = StoreConfig::from_vars(
            "s3://models/rack",
            vars(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:3900"),
                ("AWS_ACCESS_KEY_ID", "GK31c2f218a2e44f485b94239e"),
                ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
                ("AWS_REGION", "garage"),
            ]),
        )
        .unwrap();
        assert!(c.allow_http);
        assert_eq!(c.region, "garage");
        assert_eq!(c.describe(), "s3://models/rack at http://127.0.0.1:3900");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(
            c.redact("key GK31c2f218a2e44f485b94239e secret s3cr3t"),
            "key **** secret ****"
        );

        let c = StoreConfig::from_vars(
            "s3://models",
            vars(&[
                ("AWS_ENDPOINT_URL", "https://s3.lan"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "b"),
            ]),
        )
        .unwrap();
        assert!(!c.allow_http, "plain HTTP only for an http:// endpoint");
        assert_eq!(c.region, "us-east-1");
    }

    #[test]
    fn refuses_unusable_settings_saying_what_to_set() {
        let e = StoreConfig::from_vars("s3://models", vars(&[])).unwrap_err();
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
        let e = StoreConfig::from_vars(
            "s3://models",
            vars(&[
                ("AWS_ENDPOINT_URL", "ftp://x"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "b"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("http:// or https://"), "{e}");
        let e = StoreConfig::from_vars(
            "s3://models",
            vars(&[
                ("AWS_ENDPOINT_URL", "http://user:pw0rd@x:3900"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "b"),
            ]),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("pw0rd"), "{e}");
    }
}
