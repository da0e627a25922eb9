//! Who may talk to the daemon.
//!
//! - With a token: every route but `/health` needs `Authorization: Bearer <token>`, compared in
//!   constant time. Browsers cannot attach that header to a cross-site request without a
//!   preflight the daemon never approves, so nothing more is needed.
//! - Without a token (loopback only, see [`crate::check_bind`]): the `Host` must be a loopback
//!   name, which defeats DNS rebinding, and an `Origin`, which only browsers send, must be the
//!   daemon itself, which stops other web pages from driving it.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rbee_artifact::Secret;
use sha2::{Digest, Sha256};

use crate::connections::RequestSlot;
use crate::error::ApiError;
use crate::state::HiveState;

/// The middleware in front of every route.
pub(crate) async fn guard(State(state): State<HiveState>, req: Request, next: Next) -> Response {
    let host = match request_host(&req) {
        Ok(host) => host,
        Err(e) => return e.into_response(),
    };
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    match &state.config().token {
        Some(token) => {
            if !bearer_matches(req.headers(), token) {
                let mut response = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this rbee-hive needs its bearer token: send `Authorization: Bearer <token>` with the token it was started with (--token / RBEE_HIVE_TOKEN; the rbee CLI reads RBEE_HIVE_TOKEN)",
                )
                .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return response;
            }
        }
        None => {
            if let Err(e) = check_loopback_request(&req, host.as_ref()) {
                return e.into_response();
            }
        }
    }
    // A client the daemon works for: its connection is not closed to make room for others.
    if let Some(slot) = req.extensions().get::<RequestSlot>() {
        slot.authorize();
    }
    next.run(req).await
}

/// The host a request is for: its `Host` header, or the authority of an absolute-form target
/// (which, when present, is what counts). Each must be exactly `host[:port]`; anything else —
/// userinfo (`localhost:1@evil.example`), a path, spaces, two `Host` headers, two different
/// hosts — is `400 invalid_host`, so no later check can read it two ways.
fn request_host(req: &Request) -> Result<Option<Authority>, ApiError> {
    let mut headers = req.headers().get_all(header::HOST).iter();
    let header = headers.next();
    if headers.next().is_some() {
        return Err(invalid_host("the request has more than one Host header"));
    }
    let header = header
        .map(|v| {
            v.to_str().ok().and_then(Authority::parse).ok_or_else(|| {
                invalid_host(format!(
                    "the Host header `{}` is not host[:port]",
                    v.as_bytes().escape_ascii()
                ))
            })
        })
        .transpose()?;
    let target = req
        .uri()
        .authority()
        .map(|a| {
            Authority::parse(a.as_str()).ok_or_else(|| {
                invalid_host(format!(
                    "the request target's host `{a}` is not host[:port]"
                ))
            })
        })
        .transpose()?;
    match (header, target) {
        (Some(h), Some(t)) if h != t => Err(invalid_host(format!(
            "the Host header `{h}` and the request target's host `{t}` differ"
        ))),
        (h, t) => Ok(t.or(h)),
    }
}

fn invalid_host(message: impl Into<String>) -> ApiError {
    let message: String = message.into();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_host",
        format!("{message}; send `Host: NAME[:PORT]`, e.g. `Host: localhost:8600`"),
    )
}

/// A host as requests name it: a DNS name or IPv4 address, or a bracketed IPv6 address, and
/// an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authority {
    /// Lower-cased; an IPv6 address without its brackets.
    host: String,
    port: Option<u16>,
    ipv6: bool,
}

impl Authority {
    /// Parses exactly `host[:port]`; `None` for any other shape.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (host, port, ipv6) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']')?;
            inside.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (inside, port, true)
        } else {
            let (host, port) = match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            };
            let name_ok = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if !name_ok {
                return None;
            }
            (host, port, false)
        };
        let port = match port {
            None => None,
            Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse::<u16>().ok()?)
            }
            Some(_) => return None,
        };
        Some(Self {
            host: host.to_ascii_lowercase(),
            port,
            ipv6,
        })
    }

    /// `localhost`, `*.localhost`, `127.x.y.z` or `[::1]`.
    fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self.host.ends_with(".localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ipv6 {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

fn bearer_matches(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
    else {
        return false;
    };
    constant_time_eq(given.as_bytes(), token.expose().as_bytes())
}

/// Compares digests of both sides, so the time taken depends on neither the token's length nor
/// how much of it a guess got right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let a = Sha256::digest(a);
    let b = Sha256::digest(b);
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn check_loopback_request(req: &Request, host: Option<&Authority>) -> Result<(), ApiError> {
    if let Some(host) = host
        && !host.is_loopback()
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "requests for host `{host}` are refused: this rbee-hive has no token and only answers loopback names (localhost, 127.0.0.1, [::1]); start it with --token to serve other names"
            ),
        ));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin_host = origin.to_str().ok().and_then(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .and_then(Authority::parse)
        });
        let same = matches!((origin_host, host), (Some(o), Some(h)) if &o == h);
        if !same {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "cross-origin requests are refused: a web page may not drive this rbee-hive",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "localhost:8600",
            "LOCALHOST:8600",
            "127.0.0.1:1",
            "[::1]:8600",
            "[::1]",
            "x.localhost",
        ] {
            assert!(Authority::parse(ok).unwrap().is_loopback(), "{ok}");
        }
        for other in [
            "evil.com",
            "evil.com:8600",
            "10.0.0.1:80",
            "localhost.evil.com",
            "[::2]:1",
        ] {
            assert!(!Authority::parse(other).unwrap().is_loopback(), "{other}");
        }
    }

    #[test]
    fn only_host_and_port_parse() {
        for bad in [
            "localhost:1@evil.example",
            "user@localhost",
            "localhost/path",
            "localhost:8600/x",
            "localhost:",
            ":8600",
            "",
            "localhost:99999",
            "localhost:123456",
            "localhost:+80",
            "local host",
            "localhost:80:80",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[evil.example]",
            "[::1]:80@evil",
            "localhost\\evil",
            "localhost#",
            "localhost?x",
            "localhost%2f",
        ] {
            assert_eq!(Authority::parse(bad), None, "{bad}");
        }
        let a = Authority::parse("LocalHost:08600").unwrap();
        assert_eq!(a.to_string(), "localhost:8600");
        assert_eq!(
            Authority::parse("[::1]:80").unwrap().to_string(),
            "[::1]:80"
        );
    }

    #[test]
    fn tokens_compare_by_value() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
