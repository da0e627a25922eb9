//! The HTTP plumbing under the engine: clients, and requests that follow redirects by hand so
//! credentials never leave their host.

use std::time::Duration;

use rbee_artifact::Secret;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Client, Method, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::TransferConfig;
use crate::error::{TransferError, no_response_text, redact_url};

/// Redirect hops followed for one request at most.
const MAX_REDIRECTS: usize = 10;

/// Builds a client with redirects off (the engine follows them), the configured timeouts and
/// user agent, and proxies from the environment. `http1_only` gives one TCP connection per
/// in-flight request, which is what parallel ranges need to get around per-connection caps.
pub(crate) fn build_client(
    config: &TransferConfig,
    http1_only: bool,
) -> Result<Client, TransferError> {
    let mut b = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(config.user_agent.clone())
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.read_timeout)
        .pool_max_idle_per_host(config.max_connections.max(8))
        .tcp_nodelay(true)
        .dns_resolver(std::sync::Arc::new(crate::dns::SystemResolver))
        // Content encodings would make byte ranges and sizes meaningless.
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate();
    if http1_only {
        b = b.http1_only();
    }
    b = b.no_proxy();
    if config.use_env_proxy {
        for proxy in env_proxies(|name| std::env::var(name).ok())? {
            b = b.proxy(proxy);
        }
    }
    b.build()
        .map_err(|e| TransferError::config(format!("could not set up the HTTP client: {e}")))
}

/// Proxies named by the usual variables. Loopback is never proxied: a proxy cannot reach
/// this machine's own servers (local mirrors, test servers).
fn env_proxies(env: impl Fn(&str) -> Option<String>) -> Result<Vec<reqwest::Proxy>, TransferError> {
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
    };
    let mut no_proxy = var(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
    if !no_proxy.is_empty() {
        no_proxy.push(',');
    }
    no_proxy.push_str("localhost,127.0.0.0/8,::1");
    let exempt = || reqwest::NoProxy::from_string(&no_proxy);
    let bad = |name: &'static str| {
        move |e: reqwest::Error| {
            TransferError::config(format!("the proxy in {name} is not a valid URL: {e}"))
        }
    };
    let mut out = Vec::new();
    if let Some(p) = var(&["HTTPS_PROXY", "https_proxy"]) {
        out.push(
            reqwest::Proxy::https(p.as_str())
                .map_err(bad("HTTPS_PROXY"))?
                .no_proxy(exempt()),
        );
    }
    // Like curl, ignore HTTP_PROXY inside CGI handlers, where it can come from a request header.
    if env("REQUEST_METHOD").is_none()
        && let Some(p) = var(&["HTTP_PROXY", "http_proxy"])
    {
        out.push(
            reqwest::Proxy::http(p.as_str())
                .map_err(bad("HTTP_PROXY"))?
                .no_proxy(exempt()),
        );
    }
    if let Some(p) = var(&["ALL_PROXY", "all_proxy"]) {
        out.push(
            reqwest::Proxy::all(p.as_str())
                .map_err(bad("ALL_PROXY"))?
                .no_proxy(exempt()),
        );
    }
    Ok(out)
}

/// Same scheme, host and port: where a credential for `a` may also go.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Why a [`send`] failed.
#[derive(Debug)]
pub(crate) enum SendError {
    Cancelled,
    Http(reqwest::Error),
    Redirect(String),
    /// The server took the request but sent no response headers in time.
    NoResponse(Duration),
}

impl SendError {
    /// For logs: the cause without its URL (a signed redirect target carries credentials in
    /// its query).
    pub(crate) fn describe(&self) -> String {
        match self {
            SendError::Cancelled => "cancelled".to_string(),
            SendError::Http(e) => {
                // reqwest's own message names the URL; its kind and causes do not.
                let mut text = if e.is_connect() {
                    "could not connect"
                } else if e.is_timeout() {
                    "timed out"
                } else if e.is_body() || e.is_decode() {
                    "the response body failed"
                } else {
                    "the request failed"
                }
                .to_string();
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    text.push_str(": ");
                    text.push_str(&cause.to_string());
                    source = cause.source();
                }
                text
            }
            SendError::Redirect(m) => m.clone(),
            SendError::NoResponse(t) => no_response_text(*t),
        }
    }

    pub(crate) fn into_transfer(self, what: &str, attempts: u32) -> TransferError {
        match self {
            SendError::Cancelled => TransferError::cancelled(),
            SendError::Http(e) => TransferError::network(what, e, attempts),
            SendError::Redirect(m) => TransferError::protocol(format!("{what}: {m}")),
            SendError::NoResponse(t) => TransferError::no_response(what, t, attempts),
        }
    }

    pub(crate) fn is_transient(&self) -> bool {
        match self {
            SendError::Http(e) => crate::retry::is_transient_reqwest(e),
            SendError::NoResponse(_) => true,
            _ => false,
        }
    }
}

/// A response and where it came from.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) response: Response,
    /// The URL that answered (after redirects).
    pub(crate) url: Url,
    /// Whether at least one redirect was followed.
    pub(crate) redirected: bool,
}

/// One request.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// The credential and the origin it belongs to.
    pub(crate) auth: Option<(&'a Secret, &'a Url)>,
    /// Headers sent on every hop (never secrets).
    pub(crate) headers: HeaderMap,
    pub(crate) follow_redirects: bool,
    /// How long each hop may take to send its response headers.
    pub(crate) response_timeout: Duration,
}

/// Sends `out`, following redirects by hand when asked: `Authorization` goes only to the
/// credential's origin, a 303 turns into GET, and at most [`MAX_REDIRECTS`] hops are taken.
/// Every await is raced against `cancel`.
pub(crate) async fn send(
    client: &Client,
    out: Outgoing<'_>,
    cancel: &CancellationToken,
) -> Result<Sent, SendError> {
    let mut method = out.method;
    let mut url = out.url;
    let mut redirected = false;
    for _ in 0..=MAX_REDIRECTS {
        let mut req = client
            .request(method.clone(), url.clone())
            .headers(out.headers.clone());
        if let Some((secret, origin)) = out.auth
            && same_origin(&url, origin)
        {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", secret.expose())).map_err(|_| {
                    SendError::Redirect(
                        "the token contains characters not allowed in a header".into(),
                    )
                })?;
            value.set_sensitive(true);
            req = req.header(AUTHORIZATION, value);
        }
        let response = tokio::select! {
            r = tokio::time::timeout(out.response_timeout, req.send()) => match r {
                Ok(r) => r.map_err(SendError::Http)?,
                Err(_) => return Err(SendError::NoResponse(out.response_timeout)),
            },
            _ = cancel.cancelled() => return Err(SendError::Cancelled),
        };
        let status = response.status();
        if !out.follow_redirects || !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
            return Ok(Sent {
                response,
                url,
                redirected,
            });
        }
        let Some(location) = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(SendError::Redirect(format!(
                "HTTP {status} without a Location header from {}",
                redact_url(&url)
            )));
        };
        let next = url.join(location).map_err(|_| {
            SendError::Redirect(format!(
                "HTTP {status} from {} points to an invalid URL",
                redact_url(&url)
            ))
        })?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(SendError::Redirect(format!(
                "{} redirects to an unsupported scheme `{}:`",
                redact_url(&url),
                next.scheme()
            )));
        }
        if url.scheme() == "https" && next.scheme() == "http" {
            return Err(SendError::Redirect(format!(
                "{} redirects from https to plain http ({}); refusing the downgrade",
                redact_url(&url),
                redact_url(&next)
            )));
        }
        tracing::debug!(from = %redact_url(&url), to = %redact_url(&next), %status, "following redirect");
        if status == StatusCode::SEE_OTHER && method != Method::HEAD {
            method = Method::GET;
        }
        url = next;
        redirected = true;
    }
    Err(SendError::Redirect(format!(
        "more than {MAX_REDIRECTS} redirects, last at {}",
        redact_url(&url)
    )))
}

/// Extra request headers as a map; names or values that are not valid HTTP are a config error.
pub(crate) fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, TransferError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| TransferError::config(format!("invalid header name `{name}`")))?;
        if n == AUTHORIZATION {
            return Err(TransferError::config(
                "pass credentials in `auth`, not as an Authorization header, so they are never sent to another host",
            ));
        }
        let v = HeaderValue::from_str(value)
            .map_err(|_| TransferError::config(format!("invalid value for header `{name}`")))?;
        map.append(n, v);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let a = Url::parse("https://huggingface.co/x").unwrap();
        assert!(same_origin(
            &a,
            &Url::parse("https://huggingface.co:443/y?z").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://cdn-lfs.huggingface.co/y").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("http://huggingface.co/y").unwrap()
        ));
        assert!(!same_origin(
            &Url::parse("http://127.0.0.1:1/").unwrap(),
            &Url::parse("http://127.0.0.1:2/").unwrap()
        ));
    }

    #[tokio::test]
    async fn loopback_bypasses_proxies_from_the_environment() {
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        // A proxy nobody listens on: any request sent through it fails.
        let dead = "http://127.0.0.1:9".to_string();
        let env = |name: &str| match name {
            "HTTP_PROXY" | "HTTPS_PROXY" | "ALL_PROXY" => Some(dead.clone()),
            "NO_PROXY" => Some("example.internal".to_string()),
            _ => None,
        };
        let mut b = Client::builder().no_proxy();
        for p in env_proxies(env).unwrap() {
            b = b.proxy(p);
        }
        let client = b.build().unwrap();
        let resp = client.get(server.uri()).send().await.unwrap();
        assert_eq!(resp.status(), 204);
        assert!(env_proxies(|n| (n == "HTTPS_PROXY").then(|| "::bad::".to_string())).is_err());
    }

    #[test]
    fn refuses_authorization_in_plain_headers() {
        assert!(header_map(&[("Authorization".into(), "Bearer x".into())]).is_err());
        assert!(header_map(&[("bad name".into(), "x".into())]).is_err());
        let m = header_map(&[("Accept".into(), "application/octet-stream".into())]).unwrap();
        assert_eq!(m.len(), 1);
    }
}
