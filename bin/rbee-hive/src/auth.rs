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
use rbee_artifact_catalog::Secret;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::HiveState;

/// The middleware in front of every route.
pub(crate) async fn guard(State(state): State<HiveState>, req: Request, next: Next) -> Response {
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
            if let Err(e) = check_loopback_request(&req) {
                return e.into_response();
            }
        }
    }
    next.run(req).await
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

fn check_loopback_request(req: &Request) -> Result<(), ApiError> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if let Some(host) = &host
        && !is_loopback_host(host)
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
        let same = match (origin.to_str(), &host) {
            (Ok(origin), Some(host)) => {
                origin.strip_prefix("http://") == Some(host.as_str())
                    || origin.strip_prefix("https://") == Some(host.as_str())
            }
            _ => false,
        };
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

/// `localhost`, `*.localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "localhost:8600",
            "127.0.0.1:1",
            "[::1]:8600",
            "x.localhost",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:8600",
            "10.0.0.1:80",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_compare_by_value() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
