//! The web page at `/`: the catalog, a download form and live progress, driven by the daemon's
//! own API (see `docs/web-ui.md`).
//!
//! The page's files are embedded in the binary and carry no data, so they are served without the
//! token and host checks: a page asking for the token must load before it has one. Every call the
//! page makes goes to the API routes, which keep their checks (the page sends the token as a
//! bearer token). A strict Content-Security-Policy allows only the page's own script, styles and
//! connections to this daemon, and forbids framing, so another site can neither inject code into
//! the page nor overlay it to steal clicks.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The policy every page response carries: only this daemon's own files and API.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Embedded files: URL path, body, content type.
const FILES: [(&str, &[u8], &str); 4] = [
    (
        "/",
        include_bytes!("../web/index.html"),
        "text/html; charset=utf-8",
    ),
    (
        "/assets/app.js",
        include_bytes!("../web/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "/assets/style.css",
        include_bytes!("../web/style.css"),
        "text/css; charset=utf-8",
    ),
    (
        "/assets/icon.svg",
        include_bytes!("../web/icon.svg"),
        "image/svg+xml",
    ),
];

/// One embedded file and its entity tag (a digest of its bytes, so a new build's files are
/// fetched again while unchanged ones are answered with `304 Not Modified`).
#[derive(Debug)]
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(_, body, content_type)| {
            let digest = Sha256::digest(body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            Asset {
                body,
                content_type,
                etag: HeaderValue::from_str(&format!("\"{hex}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("\"0\"")),
            }
        })
        .collect()
});

/// The page's routes: `/` and `/assets/…`. Merge it outside the API's token and host checks.
pub(crate) fn router() -> Router {
    FILES
        .iter()
        .enumerate()
        .fold(Router::new(), |router, (index, &(path, _, _))| {
            router.route(
                path,
                get(move |headers: HeaderMap| async move { serve(&ASSETS[index], &headers) }),
            )
        })
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, asset.etag.clone());
    // Revalidate every time: the files change with the binary, and a check costs one 304.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if etag_matches(request, &asset.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    (StatusCode::OK, headers, asset.body).into_response()
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for this header).
fn etag_matches(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default();
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn fetch(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_file_is_served_with_its_type_and_the_policy() {
        for (path, body, content_type) in FILES {
            let response = fetch(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers().clone();
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            assert_eq!(&bytes[..], body, "{path}");
        }
    }

    #[tokio::test]
    async fn an_unchanged_file_is_not_sent_again() {
        let first = fetch("/assets/app.js", None).await;
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_string();
        let again = fetch("/assets/app.js", Some(&format!("W/{etag}, \"other\""))).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        let stale = fetch("/assets/app.js", Some("\"stale\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
        // Each file has its own tag.
        let css = fetch("/assets/style.css", None).await;
        assert_ne!(css.headers()[header::ETAG], etag.as_str());
    }

    /// The page loads only files this module serves, and nothing inline (the policy would block
    /// inline scripts and styles).
    #[test]
    fn the_page_refers_only_to_served_files_and_has_nothing_inline() {
        let html = std::str::from_utf8(FILES[0].1).unwrap();
        let served: Vec<&str> = FILES.iter().map(|f| f.0).collect();
        for attr in ["src=\"", "href=\""] {
            for (at, _) in html.match_indices(attr) {
                let rest = &html[at + attr.len()..];
                let url = &rest[..rest.find('"').unwrap()];
                if url.starts_with('#') {
                    continue;
                }
                assert!(served.contains(&url), "the page refers to {url}");
            }
        }
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("<style"), "inline style");
        assert!(!html.contains(" style=\""), "inline style attribute");
        for (at, _) in html.match_indices(" on") {
            let name: String = html[at + 3..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            assert!(
                !html[at + 3 + name.len()..].starts_with('='),
                "inline event handler on{name}"
            );
        }
    }
}
