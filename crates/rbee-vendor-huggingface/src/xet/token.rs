//! CAS read tokens: fetched from the Hub with the Hub token, kept until shortly before they
//! expire, dropped when the CAS refuses one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rbee_artifact::{Error, Secret};
use rbee_transfer::{ApiRequest, Transfer, redact_url};
use rbee_xet::cas::XetTokenResponse;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::api;

/// A token this close to its expiry is replaced before use: a transfer that starts with it
/// should not have it run out on the first request.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The token answer is a few hundred bytes.
const MAX_TOKEN_BODY: usize = 64 << 10;

/// A read token for the Xet CAS. Its `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct XetToken {
    /// Sent as `Authorization: Bearer …` to [`cas_url`](XetToken::cas_url)'s origin only.
    pub access_token: Secret,
    /// When the CAS stops accepting it.
    pub expires_at: SystemTime,
    /// The CAS to ask for reconstructions.
    pub cas_url: Url,
}

impl XetToken {
    /// Whether it is still good for at least `margin`.
    fn good_for(&self, margin: Duration) -> bool {
        self.expires_at
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > margin)
    }
}

/// Read tokens for one repository revision: fetched when first needed and again shortly
/// before they expire or after the CAS refused one; callers at the same time share one fetch.
#[derive(Debug)]
pub struct XetTokens {
    transfer: Transfer,
    url: Url,
    hub_token: Option<Secret>,
    current: tokio::sync::Mutex<Option<XetToken>>,
}

impl XetTokens {
    /// Tokens for `org/repo` at `revision` from the Hub at `endpoint`, asked for with
    /// `hub_token` (the caller decides whether the endpoint may see it).
    pub fn new(
        transfer: Transfer,
        endpoint: &Url,
        org: &str,
        repo: &str,
        revision: &str,
        hub_token: Option<Secret>,
    ) -> Self {
        Self::at(
            transfer,
            api::xet_token_url(endpoint, org, repo, revision),
            hub_token,
        )
    }

    /// Tokens from the route a resolve `HEAD` announced ([`XetFile::auth_url`](super::XetFile::auth_url)).
    pub fn at(transfer: Transfer, url: Url, hub_token: Option<Secret>) -> Self {
        Self {
            transfer,
            url,
            hub_token,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// A token good for a while yet: the one held, or a fresh one.
    pub async fn get(&self, cancel: &CancellationToken) -> Result<XetToken, Error> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref()
            && t.good_for(REFRESH_MARGIN)
        {
            return Ok(t.clone());
        }
        let fresh = self.fetch(cancel).await?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    /// The CAS refused `token` (401): the next [`get`](XetTokens::get) fetches a new one,
    /// unless another caller already has.
    pub async fn refused(&self, token: &XetToken) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|t| t.access_token.expose() == token.access_token.expose())
        {
            *current = None;
        }
    }

    async fn fetch(&self, cancel: &CancellationToken) -> Result<XetToken, Error> {
        let shown = redact_url(&self.url);
        let request = ApiRequest::get(self.url.clone()).with_auth(self.hub_token.clone());
        let response = self.transfer.send(request, cancel).await?;
        let status = response.status();
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(Error::Unauthorized {
                message: format!(
                    "the Hub refused a Xet read token at {shown} (HTTP {}); set HF_TOKEN to a token that can read this repository",
                    status.as_u16()
                ),
            });
        }
        if !status.is_success() {
            return Err(Error::Network {
                message: format!(
                    "asking {shown} for a Xet read token failed (HTTP {})",
                    status.as_u16()
                ),
                source: None,
            });
        }
        let body = rbee_transfer::read_body(response, MAX_TOKEN_BODY, cancel).await?;
        let parsed: XetTokenResponse =
            serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                message: format!(
                    "{shown} answered a Xet token this client does not understand ({e})"
                ),
            })?;
        let cas_url = Url::parse(&parsed.cas_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| Error::Protocol {
                message: format!("{shown} named a CAS that is not an http(s) URL"),
            })?;
        let access_token = Secret::new(parsed.access_token).ok_or_else(|| Error::Protocol {
            message: format!("{shown} answered an empty Xet token"),
        })?;
        let expires_at = UNIX_EPOCH
            .checked_add(Duration::from_secs(parsed.exp))
            .ok_or_else(|| Error::Protocol {
                message: format!(
                    "{shown} answered a Xet token expiring at {}, past any time this system can hold",
                    parsed.exp
                ),
            })?;
        Ok(XetToken {
            access_token,
            expires_at,
            cas_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_in: i64) -> XetToken {
        let now = SystemTime::now();
        let expires_at = if expires_in >= 0 {
            now + Duration::from_secs(expires_in as u64)
        } else {
            now - Duration::from_secs((-expires_in) as u64)
        };
        XetToken {
            access_token: Secret::new("xet_SECRET").unwrap(),
            expires_at,
            cas_url: "https://cas.example".parse().unwrap(),
        }
    }

    #[test]
    fn a_token_near_its_expiry_is_not_good() {
        assert!(token(3600).good_for(REFRESH_MARGIN));
        assert!(!token(10).good_for(REFRESH_MARGIN));
        assert!(!token(-10).good_for(REFRESH_MARGIN));
    }

    #[test]
    fn debug_hides_the_token() {
        assert!(!format!("{:?}", token(3600)).contains("xet_SECRET"));
    }
}
