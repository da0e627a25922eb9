//! Request bodies fuzzed through the real router: arbitrary JSON shaped like the job and
//! download requests, and arbitrary bytes. Whatever arrives, the daemon answers with JSON, bad
//! input gets a 4xx with a stable code, never a 5xx or a panic, and every job it accepts
//! finishes without an internal error.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use rbee_catalog::Catalog;
use rbee_hive::{HiveConfig, HiveState, app};
use rbee_model_provisioner::{Provisioner, ProvisionerConfig, VendorRegistry};
use serde_json::{Map, Value};
use tower::ServiceExt;

use crate::support::SOON;

/// Codes a request body can earn synchronously.
const BODY_CODES: &[&str] = &[
    "bad_json",
    "invalid_request",
    "unknown_operation",
    "invalid_reference",
    "payload_too_large",
    "local_files_not_allowed",
    "queue_full",
    "not_found",
];

const ROUTES: [&str; 2] = ["/v1/jobs", "/v1/models/download"];

/// A daemon with no vendors at all: accepted downloads fail at once, and nothing can reach a
/// network or read a file, whatever the fuzzer writes. Local files are "allowed" everywhere, so
/// the check that resolves a `file:` path runs in full on whatever path arrives.
struct Fixture {
    _dir: tempfile::TempDir,
    state: HiveState,
    runtime: tokio::runtime::Runtime,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = runtime.block_on(async {
            let catalog = Arc::new(Catalog::open(dir.path().join("a/b/c/cache")).unwrap());
            let mut config = HiveConfig::default();
            config.local_roots = vec!["/".into()];
            HiveState::new(
                Provisioner::new(catalog, VendorRegistry::new(), ProvisionerConfig::default()),
                config,
            )
        });
        Self {
            _dir: dir,
            state,
            runtime,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: the answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    /// Posts `body` and checks the answer; a job it starts must finish cleanly.
    fn check(&self, route: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
        self.runtime.block_on(async {
            let request = Request::post(route)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap();
            let (status, answer) = self.send(request).await;
            prop_assert!(!status.is_server_error(), "{status}: {answer}");
            if status.is_success() {
                prop_assert_eq!(status, StatusCode::ACCEPTED, "{}", answer);
                let id = answer["job_id"]
                    .as_str()
                    .or_else(|| answer["download_id"].as_str())
                    .unwrap_or_else(|| panic!("no job id: {answer}"))
                    .to_string();
                let job = self.wait_final(&id).await;
                prop_assert_ne!(&job["error"]["code"], "internal", "{}", job);
                return Ok(());
            }
            prop_assert!(status.is_client_error(), "{status}: {answer}");
            let code = answer["error"]["code"].as_str().unwrap_or_default();
            prop_assert!(BODY_CODES.contains(&code), "{status} {answer}");
            prop_assert!(
                !answer["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
            );
            prop_assert_eq!(answer.as_object().map(Map::len), Some(1), "{}", answer);
            Ok(())
        })
    }

    async fn wait_final(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let request = Request::get(format!("/v1/jobs/{id}"))
                .body(Body::empty())
                .unwrap();
            let (status, job) = self.send(request).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if matches!(job["state"].as_str(), Some("done" | "failed" | "cancelled")) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the job never finished: {job}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Strings the parsers care about, and anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        // Local paths the daemon resolves before it accepts a job: odd bytes, loops through
        // /proc, names too long for the file system.
        "file:/[a-z/.\\x00]{0,24}",
        prop::sample::select(vec![
            "file:/proc/self/cwd/../../../../etc/passwd",
            "file:/etc/passwd/x",
            "file:/dev/null",
            "file:/proc/self/fd/0",
        ])
        .prop_map(String::from),
        "[a-z]{250,300}".prop_map(|name| format!("file:/tmp/{name}")),
        "[a-z/]{4000,5000}".prop_map(|path| format!("file:/{path}")),
        prop::sample::select(vec![
            "model_download",
            "model_list",
            "model_get",
            "model_delete",
            "model_verify",
            "localhost",
            "hf:org/repo",
            "hf:org/repo:Q4_K_M",
            "hf:org/repo@main/x.gguf",
            "gh:owner/repo@v1/a.gguf",
            "file:/etc/passwd",
            "file:relative/x.gguf",
            "file:///",
            "http://127.0.0.1:9/x.gguf#sha256=00",
            "hf--org--repo--Q4_K_M",
            "url--127.0.0.1--x.gguf-00000000",
            "*.gguf",
            "[",
            "../..",
            "",
            " ",
        ])
        .prop_map(String::from),
        ".{0,40}",
        "\\PC{0,20}",
    ]
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "operation", "hive_id", "model", "model_ref", "include", "exclude", "offline",
            "refresh",
        ])
        .prop_map(String::from),
        1 => ".{0,12}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A request to `route`: its own fields, mostly with values of the right type so the cases
/// reach past the type checks into validation and the jobs, and now and then anything at all.
fn request_body(route: &'static str) -> impl Strategy<Value = Value> {
    let (required, model) = if route == ROUTES[0] {
        ("operation", "model")
    } else {
        ("model_ref", "model_ref")
    };
    let operation = prop_oneof![
        8 => prop::sample::select(vec![
            "model_download", "model_list", "model_get", "model_delete", "model_verify",
        ])
        .prop_map(Value::from),
        1 => json(),
    ];
    let typed_text = || prop_oneof![8 => text().prop_map(Value::from), 1 => json()];
    let globs = || {
        prop_oneof![
            8 => prop::collection::vec(text(), 0..3).prop_map(Value::from),
            1 => json(),
        ]
    };
    let flag = || prop_oneof![8 => any::<bool>().prop_map(Value::from), 1 => json()];
    let hive = prop_oneof![
        8 => Just(Value::from("localhost")),
        1 => typed_text(),
    ];
    let optional = |p: f64, s: BoxedStrategy<Value>| prop::option::weighted(p, s);
    (
        optional(
            0.95,
            if required == "operation" {
                operation.boxed()
            } else {
                typed_text().boxed()
            },
        ),
        optional(0.8, typed_text().boxed()),
        optional(0.2, hive.boxed()),
        optional(0.2, globs().boxed()),
        optional(0.2, globs().boxed()),
        optional(0.15, flag().boxed()),
        optional(0.15, flag().boxed()),
        prop::option::weighted(0.1, (field(), json())),
    )
        .prop_map(
            move |(req, m, hive, include, exclude, offline, refresh, extra)| {
                let mut object = Map::new();
                let fields = [
                    (required, req),
                    (model, m),
                    ("hive_id", hive),
                    ("include", include),
                    ("exclude", exclude),
                    ("offline", offline),
                    ("refresh", refresh),
                ];
                for (name, value) in fields {
                    if let Some(value) = value {
                        object.insert(name.to_string(), value);
                    }
                }
                if let Some((name, value)) = extra {
                    object.insert(name, value);
                }
                Value::Object(object)
            },
        )
}

/// A route and a body for it; one case in eight is any JSON at all.
fn request() -> impl Strategy<Value = (&'static str, Value)> {
    prop::sample::select(ROUTES.to_vec()).prop_flat_map(|route| {
        let body = prop_oneof![7 => request_body(route), 1 => json()];
        (Just(route), body)
    })
}

/// Arbitrary bytes, and request bodies cut short or with bytes changed.
fn raw_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (
            request().prop_map(|(_, body)| body),
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 0..4)
        )
            .prop_map(|(body, at, bytes)| {
                let mut raw = serde_json::to_vec(&body).unwrap();
                let at = at.index(raw.len() + 1);
                raw.truncate(at);
                raw.extend(bytes);
                raw
            }),
    ]
}

/// Bounded, so it runs in every `cargo test`; no regression files are written.
fn runner() -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

#[test]
fn any_json_request_gets_a_json_answer_and_never_a_server_error() {
    let fixture = Fixture::new();
    if let Err(e) = runner().run(&request(), |(route, body)| {
        fixture.check(route, serde_json::to_vec(&body).unwrap())
    }) {
        panic!("{e}");
    }
}

#[test]
fn any_bytes_get_a_json_answer_and_never_a_server_error() {
    let fixture = Fixture::new();
    let cases = (raw_body(), prop::sample::select(ROUTES.to_vec()));
    if let Err(e) = runner().run(&cases, |(body, route)| fixture.check(route, body)) {
        panic!("{e}");
    }
}
