//! Routing, the layer every request passes through (counters and faults), and plain files.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header, response::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::body::{BodyPlan, ShapedStream};
use crate::conn::ConnInfo;
use crate::fault::{FaultAction, Phase};
use crate::files::{BodyOrigin, ServeOptions, serve_file};
use crate::reply::{redirect, s3_denied, s3_error};
use crate::sign::SignError;
use crate::state::HubState;
use crate::url_path::{decode_path, safe_join, segments};

type AppState = Arc<HubState>;

/// The hub's routes: plain files, redirects, the admin API, HuggingFace and GitHub.
pub(crate) fn hub_router(state: AppState) -> Router {
    Router::new()
        .nest("/_admin", crate::admin::router())
        .route("/files/{*path}", any(hub_file))
        .route("/redirect/files/{*path}", any(redirect_file))
        .route("/api/models/{*rest}", any(crate::hf::api))
        .route("/repos/{*rest}", any(crate::gh::api))
        .route("/v2", any(crate::ollama::api))
        .route("/v2/{*rest}", any(crate::ollama::api))
        .fallback(hub_fallback)
        .layer(middleware::from_fn_with_state(state.clone(), shape))
        .with_state(state)
}

/// The CDN's routes: files, signed or not, and Xet's CAS and xorbs.
pub(crate) fn cdn_router(state: AppState) -> Router {
    Router::new()
        .route("/files/{*path}", any(cdn_file))
        .route("/cas/{*rest}", any(crate::xet::cas_api))
        .route("/xorbs/{hash}", any(crate::xet::xorb_route))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), shape))
        .with_state(state)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "GET, HEAD")],
        "method not allowed\n",
    )
        .into_response()
}

/// The path under `prefix` as decoded segments, or `None` when it is not a safe relative path.
fn rel_segments(raw: &str, prefix: &str) -> Option<Vec<String>> {
    let rest = raw.strip_prefix(prefix)?;
    let segs = segments(rest);
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(segs)
}

async fn hub_file(State(state): State<AppState>, req: Request) -> Response {
    serve_root_file(&state, req, "/files/").await
}

async fn cdn_file(State(state): State<AppState>, req: Request) -> Response {
    let path = decode_path(req.uri().path());
    match state.signer.check(&path, req.uri().query()) {
        // S3, behind GitHub's and the Hub's download hosts, refuses a signed URL that also
        // carries credentials: a client forwarding its token to the CDN fails loudly here.
        Ok(true) if req.headers().contains_key(header::AUTHORIZATION) => s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        ),
        Ok(_) => serve_root_file(&state, req, "/files/").await,
        Err(SignError::Expired) => s3_denied("Request has expired"),
        Err(SignError::BadSignature) => s3_denied(
            "The request signature we calculated does not match the signature you provided",
        ),
    }
}

async fn serve_root_file(state: &HubState, req: Request, prefix: &str) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed();
    }
    let Some(path) = rel_segments(req.uri().path(), prefix)
        .and_then(|segs| safe_join(&state.config.root, &segs))
    else {
        return not_found().await;
    };
    serve_file(
        req.method(),
        req.headers(),
        &path,
        ServeOptions::default(),
        state.config.read_chunk,
    )
    .await
}

async fn redirect_file(State(state): State<AppState>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed();
    }
    let Some(segs) = rel_segments(req.uri().path(), "/redirect/files/") else {
        return not_found().await;
    };
    let Some(path) = safe_join(&state.config.root, &segs) else {
        return not_found().await;
    };
    if !tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
        return not_found().await;
    }
    let location = state.signed_cdn_url(&segs.join("/"), &decode_path(req.uri().path()));
    redirect(&location)
}

async fn hub_fallback(State(state): State<AppState>, req: Request) -> Response {
    let segs = segments(req.uri().path());
    match segs.get(2).map(String::as_str) {
        Some("resolve") if segs.len() >= 5 => crate::hf::resolve(state, req, segs).await,
        Some("releases") if segs.len() == 6 && segs[3] == "download" => {
            crate::gh::browser_download(state, req, segs).await
        }
        _ => not_found().await,
    }
}

/// Counts the request, answers it from a fault if one says so, and sends the response body
/// through the rate cap, the body faults and the byte counter.
async fn shape(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(ConnInfo(conn)) = req.extensions().get::<ConnInfo>().cloned() else {
        return next.run(req).await;
    };
    if req.uri().path().starts_with("/_admin") {
        return next.run(req).await;
    }
    let host = conn.host;
    let path = decode_path(req.uri().path());
    let method = req.method().clone();
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let meter = state.counters.begin(
        host,
        conn.id,
        method.as_str(),
        &path,
        req.uri().query(),
        range.as_deref(),
    );

    let answer = state.faults.take(Phase::Answer, host, &path, true).pop();
    let resp = if let Some(action) = answer {
        tracing::debug!(%path, ?action, "fault answers the request");
        if action == FaultAction::NoResponse {
            // Hold the request until the client gives up or the hub stops.
            std::future::pending::<()>().await;
        }
        fault_answer(&state, &action)
    } else {
        if range.is_some()
            && !state
                .faults
                .take(Phase::Range, host, &path, true)
                .is_empty()
        {
            req.headers_mut().remove(header::RANGE);
            req.headers_mut().remove(header::IF_RANGE);
        }
        if req.headers().contains_key(header::IF_RANGE)
            && !state
                .faults
                .take(Phase::IfRange, host, &path, true)
                .is_empty()
        {
            req.headers_mut().remove(header::IF_RANGE);
        }
        next.run(req).await
    };
    meter.status(resp.status().as_u16());

    let (mut parts, body) = resp.into_parts();
    lie_in_headers(&state, host, &path, &mut parts);
    if !parts.headers.contains_key(header::DATE)
        && let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now()))
    {
        // Set here rather than by the HTTP layer so the head's size is known (see head_len).
        parts.headers.insert(header::DATE, v);
    }
    if method == Method::HEAD {
        return Response::from_parts(parts, body);
    }
    if !parts.headers.contains_key(header::CONTENT_LENGTH)
        && let Some(n) = body.size_hint().exact()
    {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }

    let mut plan = BodyPlan::default();
    let status = parts.status;
    if method == Method::GET && (status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT)
    {
        let origin = parts.extensions.get::<BodyOrigin>().map_or(0, |o| o.0);
        for action in state.faults.take(Phase::Body, host, &path, false) {
            tracing::debug!(%path, ?action, "fault shapes the body");
            match action {
                FaultAction::Drop { after_bytes, reset } => {
                    plan.drop_at = Some((after_bytes, reset));
                }
                FaultAction::Stall {
                    after_bytes,
                    secs,
                    hang,
                } => {
                    let pause = (!hang).then(|| std::time::Duration::from_secs_f64(secs));
                    plan.stall = Some((after_bytes, pause));
                }
                FaultAction::SlowConnection { bytes_per_sec } => conn.slow_down(bytes_per_sec),
                FaultAction::FlipByte { offset } => plan.flip_at = offset.checked_sub(origin),
                FaultAction::LongBody { extra_bytes } => {
                    parts.headers.remove(header::CONTENT_LENGTH);
                    plan.trailing = Some(extra_bytes.unwrap_or(u64::MAX));
                }
                FaultAction::NoContentLength => {
                    parts.headers.remove(header::CONTENT_LENGTH);
                }
                FaultAction::WrongContentLength { extra } => {
                    let announced = parts
                        .headers
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    if let Some(len) = announced {
                        parts
                            .headers
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(len + extra));
                        plan.short = true;
                    }
                }
                _ => {}
            }
        }
    }
    let head = head_len(&parts);
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let stream = ShapedStream::new(
        body,
        plan,
        state.rate_limit.clone(),
        meter,
        conn,
        head,
        announced,
    );
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Applies the header lies (`Content-Range`, validators, `Content-Disposition`) that match.
fn lie_in_headers(state: &HubState, host: crate::fault::Host, path: &str, parts: &mut Parts) {
    let status = parts.status;
    let file_answer = status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT;
    let applies = |action: &FaultAction| match action {
        FaultAction::ContentRange { .. } => status == StatusCode::PARTIAL_CONTENT,
        FaultAction::ContentDisposition { .. } => file_answer,
        _ => true,
    };
    for action in state
        .faults
        .take_where(Phase::Headers, host, path, false, applies)
    {
        tracing::debug!(%path, ?action, "fault shapes the headers");
        let h = &mut parts.headers;
        match action {
            FaultAction::ContentRange { value } => {
                let truth = h
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split_once('/'))
                    .and_then(|(range, total)| {
                        let (a, b) = range.split_once('-')?;
                        Some((a.to_owned(), b.to_owned(), total.to_owned()))
                    });
                if let Some((start, end, total)) = truth {
                    let lie = value
                        .replace("{start}", &start)
                        .replace("{end}", &end)
                        .replace("{total}", &total);
                    if let Ok(v) = HeaderValue::from_str(&lie) {
                        h.insert(header::CONTENT_RANGE, v);
                    }
                }
            }
            FaultAction::ChangingValidators => {
                let n = state.next_lie();
                let etag = format!("\"fakehub-changed-{n}\"");
                let when = SystemTime::now() + std::time::Duration::from_secs(n);
                for name in [header::ETAG.as_str(), "x-linked-etag"] {
                    if h.contains_key(name)
                        && let Ok(v) = HeaderValue::from_str(&etag)
                    {
                        h.insert(name, v);
                    }
                }
                if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(when)) {
                    h.insert(header::LAST_MODIFIED, v);
                }
            }
            FaultAction::NoValidators => {
                h.remove(header::ETAG);
                h.remove(header::LAST_MODIFIED);
                h.remove("x-linked-etag");
            }
            FaultAction::ContentDisposition { value } => {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(header::CONTENT_DISPOSITION, v);
                }
            }
            _ => {}
        }
    }
}

/// Bytes of the response head as HTTP/1.1 writes it (status line, headers, blank line), so the
/// body's share of the bytes written on the connection is known.
fn head_len(parts: &Parts) -> u64 {
    let reason = parts.status.canonical_reason().unwrap_or("<none>");
    let mut n = "HTTP/1.1 200 ".len() + reason.len() + 2;
    for (name, value) in &parts.headers {
        n += name.as_str().len() + 2 + value.len() + 2;
    }
    (n + 2) as u64
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The response a fault of the answer phase gives instead of the handler's.
fn fault_answer(state: &HubState, action: &FaultAction) -> Response {
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    match *action {
        FaultAction::Status {
            status,
            retry_after,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = json_response(
                code,
                serde_json::json!({ "error": format!("fake hub: injected status {status}") }),
            );
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            resp
        }
        FaultAction::TooManyRequests { retry_after } => {
            let mut resp = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                serde_json::json!({ "error": "Too Many Requests" }),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            resp
        }
        FaultAction::RateLimited {
            status,
            reset_after_secs,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            let limit = state.config.gh_rate_limit;
            let mut resp = json_response(
                code,
                serde_json::json!({
                    "message": "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)",
                    "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
                }),
            );
            let h = resp.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from(limit));
            h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
            h.insert(
                "x-ratelimit-reset",
                HeaderValue::from(now + reset_after_secs),
            );
            h.insert("x-ratelimit-used", HeaderValue::from(limit));
            h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
            resp
        }
        FaultAction::Redirect { ref location } => match HeaderValue::from_str(location) {
            Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        FaultAction::SecondaryRateLimit {
            status,
            retry_after,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            let mut resp = json_response(
                code,
                serde_json::json!({
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                }),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            resp
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
