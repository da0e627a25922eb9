//! The router in-process (`oneshot`): every bad input, the token, the host and origin checks,
//! and the queue bound.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use rbee_artifact::Secret;
use rbee_catalog::Catalog;
use rbee_hive::{HiveConfig, HiveState, app};
use rbee_model_provisioner::{Provisioner, ProvisionerConfig, VendorRegistry};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_url::UrlVendor;
use serde_json::{Value, json};
use tower::ServiceExt;

fn state(dir: &std::path::Path, config: HiveConfig) -> HiveState {
    let catalog = Arc::new(Catalog::open(dir.join("cache")).unwrap());
    let transfer = TransferConfig {
        use_env_proxy: false,
        ..Default::default()
    };
    let vendors =
        VendorRegistry::new().with(Arc::new(UrlVendor::new(Transfer::new(transfer).unwrap())));
    HiveState::new(
        Provisioner::new(catalog, vendors, ProvisionerConfig::default()),
        config,
    )
}

async fn send(state: &HiveState, request: Request<Body>) -> (StatusCode, Value) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

fn post_json(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// An error body is exactly `{"error": {"code", "message"}}`.
fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, code: &str) {
    assert_error_in("", status, body, want_status, code);
}

fn assert_error_in(
    what: &str,
    status: StatusCode,
    body: &Value,
    want_status: StatusCode,
    code: &str,
) {
    assert_eq!(status, want_status, "{what} {code}: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["error"].as_object().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn every_bad_input_gets_a_json_error_with_a_stable_code() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), HiveConfig::default());
    let big = format!(
        r#"{{"operation":"model_list","x":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post_json("/v1/jobs", "{not json"),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            post_json("/v1/jobs", ""),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            Request::post("/v1/jobs")
                .body(Body::from(r#"{"operation":"model_list"}"#))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Request::post("/v1/jobs")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(r#"{"operation":"model_list"}"#))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post_json("/v1/jobs", big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            post_json("/v1/jobs", r#"{"operation":"model_teleport"}"#),
            StatusCode::BAD_REQUEST,
            "unknown_operation",
        ),
        (
            post_json("/v1/jobs", r#"{"model":"hf:a/b"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_json("/v1/jobs", r#"{"operation":["model_list"]}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_json("/v1/jobs", r#"[1,2,3]"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_json("/v1/jobs", r#"{"operation":"model_download"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_json(
                "/v1/jobs",
                r#"{"operation":"model_download","model":"hf:a/b","modle":1}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_json("/v1/jobs", r#"{"operation":"model_download","model":7}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_json(
                "/v1/jobs",
                r#"{"operation":"model_download","model":"hf:org"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_reference",
        ),
        (
            post_json(
                "/v1/jobs",
                r#"{"operation":"model_download","model":"ftp://x/y"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_reference",
        ),
        (
            post_json(
                "/v1/jobs",
                r#"{"operation":"model_download","model":"file:relative/x.gguf"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            // The router's state allows no local folder: the daemon reads files for callers.
            post_json(
                "/v1/jobs",
                r#"{"operation":"model_download","model":"file:/etc/passwd"}"#,
            ),
            StatusCode::FORBIDDEN,
            "local_files_not_allowed",
        ),
        (
            post_json(
                "/v1/jobs",
                r#"{"operation":"model_download","model":"hf:a/b","include":["[z"]}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_json(
                "/v1/jobs",
                r#"{"operation":"model_download","model":"hf:a/b","hive_id":"gpu-7"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_json("/v1/models/download", r#"{}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_json("/v1/models/download", r#"{"model_ref":"gh:"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_reference",
        ),
        (
            get("/v1/jobs/job-0000"),
            StatusCode::NOT_FOUND,
            "job_not_found",
        ),
        (
            get("/v1/jobs/job-0000/stream"),
            StatusCode::NOT_FOUND,
            "job_not_found",
        ),
        (
            Request::post("/v1/jobs/job-0000/cancel")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
            "job_not_found",
        ),
        (
            Request::post("/v1/jobs/job-0000/pause")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
            "job_not_found",
        ),
        (
            Request::post("/v1/jobs/job-0000/resume")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
            "job_not_found",
        ),
        (
            get("/v1/jobs/%FF%FE"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            get("/v1/models/hf--nobody--nothing--Q4_K_M"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            get("/v1/models/hf%3Anobody%2Fnothing"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            get("/v1/models/hf:nobody/nothing:Q8_0"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            get("/v1/models/..%2F..%2Fetc%2Fpasswd"),
            StatusCode::BAD_REQUEST,
            "invalid_reference",
        ),
        (
            Request::delete("/v1/models/hf--nobody--nothing--Q4_K_M")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            get("/v2/everything"),
            StatusCode::NOT_FOUND,
            "unknown_route",
        ),
        (
            Request::put("/v1/jobs").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Request::delete("/v1/jobs/job-0000")
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (request, want, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (status, body) = send(&state, request).await;
        assert_error_in(&what, status, &body, want, code);
    }

    // A catalog operation cannot be paused or cancelled: 409 while it runs, or once finished.
    let (status, created) = send(
        &state,
        post_json("/v1/jobs", r#"{"operation":"model_list"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(
        created["sse_url"],
        format!("/v1/jobs/{}/stream", created["job_id"].as_str().unwrap())
    );
    let (status, body) = send(
        &state,
        Request::post(format!(
            "/v1/jobs/{}/pause",
            created["job_id"].as_str().unwrap()
        ))
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "invalid_state");
}

#[tokio::test]
async fn a_token_is_checked_on_every_route_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HiveConfig::default();
    config.token = Secret::new("tok-123");
    let state = state(dir.path(), config);
    let with = |auth: Option<&str>, path: &str| {
        let mut r = Request::get(path);
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(Body::empty()).unwrap()
    };
    for path in [
        "/v1/models",
        "/v1/jobs",
        "/v1/jobs/job-x",
        "/v1/models/download/progress",
        "/nowhere",
    ] {
        for auth in [
            None,
            Some("Bearer tok-124"),
            Some("Bearer tok-12"),
            Some("Basic dG9rLTEyMw=="),
            Some("tok-123"),
        ] {
            let (status, body) = send(&state, with(auth, path)).await;
            assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
            assert!(!body.to_string().contains("tok-123"));
        }
    }
    let (status, _) = send(&state, with(Some("Bearer tok-123"), "/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&state, with(Some("bearer tok-123"), "/v1/jobs")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(&state, with(None, "/health")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    // With a token, any Host will do (a remote hive is reached by its name).
    let request = Request::get("/v1/models")
        .header(header::HOST, "hive.example.net:8600")
        .header(header::AUTHORIZATION, "Bearer tok-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&state, request).await.0, StatusCode::OK);
}

#[tokio::test]
async fn without_a_token_only_loopback_hosts_and_no_foreign_origins_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), HiveConfig::default());
    let request = |host: &str, origin: Option<&str>| {
        let mut r = Request::post("/v1/jobs")
            .header(header::HOST, host)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(o) = origin {
            r = r.header(header::ORIGIN, o);
        }
        r.body(Body::from(r#"{"operation":"model_list"}"#)).unwrap()
    };
    for (host, origin) in [
        ("evil.example:8600", None),
        ("127.0.0.1:8600", Some("http://evil.example")),
        ("127.0.0.1:8600", Some("null")),
        ("localhost:8600", Some("http://localhost:9999")),
    ] {
        let (status, body) = send(&state, request(host, origin)).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    for (host, origin) in [
        ("127.0.0.1:8600", None),
        ("localhost:8600", Some("http://localhost:8600")),
        ("[::1]:8600", None),
    ] {
        let (status, body) = send(&state, request(host, origin)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{host} {origin:?}: {body}");
    }
}

#[tokio::test]
async fn a_host_is_exactly_host_and_port_or_the_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = state(dir.path(), HiveConfig::default());
    let mut config = HiveConfig::default();
    config.token = Secret::new("tok-123");
    let protected = state(dir.path(), config);
    let list = |uri: &str, hosts: &[&str]| {
        let mut r = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, "Bearer tok-123");
        for h in hosts {
            r = r.header(header::HOST, *h);
        }
        r.body(Body::from(r#"{"operation":"model_list"}"#)).unwrap()
    };
    let malformed: Vec<(&str, Vec<&str>)> = vec![
        // Read loosely, this is "localhost" with port "1@evil.example".
        ("/v1/jobs", vec!["localhost:1@evil.example"]),
        ("/v1/jobs", vec!["user@localhost:8600"]),
        ("/v1/jobs", vec!["localhost:8600/evil"]),
        ("/v1/jobs", vec!["localhost:99999"]),
        ("/v1/jobs", vec!["[::1"]),
        ("/v1/jobs", vec!["localhost", "evil.example"]),
        ("http://evil.example/v1/jobs", vec!["localhost"]),
        ("http://user@localhost/v1/jobs", vec!["localhost"]),
    ];
    for state in [&open, &protected] {
        for (uri, hosts) in &malformed {
            let (status, body) = send(state, list(uri, hosts)).await;
            assert_error_in(
                &format!("{uri} {hosts:?}"),
                status,
                &body,
                StatusCode::BAD_REQUEST,
                "invalid_host",
            );
        }
        let (status, body) = send(
            state,
            list("http://localhost:8600/v1/jobs", &["localhost:8600"]),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    // /health too: nothing reads a malformed host.
    let request = Request::get("/health")
        .header(header::HOST, "localhost:1@evil.example")
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&open, request).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_host");
}

#[tokio::test]
async fn downloads_beyond_the_queue_bound_are_refused_and_shutdown_cancels_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HiveConfig::default();
    config.max_jobs = 1;
    let state = state(dir.path(), config);
    // A server that accepts connections and never answers keeps the download busy.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/model.gguf", silent.local_addr().unwrap());
    let body = json!({"operation": "model_download", "model": url}).to_string();
    let (status, first) = send(&state, post_json("/v1/jobs", body.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, refused) = send(&state, post_json("/v1/jobs", body)).await;
    assert_error(
        status,
        &refused,
        StatusCode::TOO_MANY_REQUESTS,
        "queue_full",
    );
    // Catalog operations do not count against the bound.
    let (status, _) = send(
        &state,
        post_json("/v1/jobs", r#"{"operation":"model_list"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    tokio::time::timeout(std::time::Duration::from_secs(10), state.shutdown())
        .await
        .expect("shutdown finishes");
    let job = first["job_id"].as_str().unwrap();
    let (_, view) = send(&state, get(&format!("/v1/jobs/{job}"))).await;
    assert_eq!(view["state"], "cancelled", "{view}");
    let (status, body) = send(
        &state,
        post_json("/v1/jobs", r#"{"operation":"model_list"}"#),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
    );
}
