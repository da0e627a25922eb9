//! Protocol cases on wiremock: plain bodies, statuses, retries, Range handling, redirects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rbee_artifact::{Error, Secret};
use rbee_transfer::{ApiRequest, FetchRequest};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::*;

/// Answers Range requests from `data` like a real file server (or ignores them).
struct Ranged {
    data: Arc<Vec<u8>>,
    honour_range: bool,
    etag: &'static str,
}

impl Respond for Ranged {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let len = self.data.len() as u64;
        let range = req
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'))
            .map(|(a, b)| {
                let a: u64 = a.parse().unwrap();
                let b: u64 = if b.is_empty() {
                    len - 1
                } else {
                    b.parse().unwrap()
                };
                (a, b.min(len - 1))
            });
        match range {
            Some((a, b)) if self.honour_range => ResponseTemplate::new(206)
                .insert_header("content-range", format!("bytes {a}-{b}/{len}"))
                .insert_header("etag", self.etag)
                .set_body_bytes(self.data[a as usize..=b as usize].to_vec()),
            _ => ResponseTemplate::new(200)
                .insert_header("etag", self.etag)
                .set_body_bytes(self.data.as_ref().clone()),
        }
    }
}

#[tokio::test]
async fn small_file_is_fetched_verified_and_published() {
    let server = MockServer::start().await;
    let data = body(100_000);
    Mock::given(method("GET"))
        .and(path("/m.gguf"))
        .respond_with(Ranged {
            data: Arc::new(data.clone()),
            honour_range: true,
            etag: "\"v1\"",
        })
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.gguf");
    let mut req = FetchRequest::new(
        "m.gguf",
        format!("{}/m.gguf", server.uri()).parse().unwrap(),
    );
    req.expected_size = Some(data.len() as u64);
    req.sha256 = Some(digest(&data));
    let t = tracker();
    let p = progress(&t, req.expected_size);
    let got = transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(got.size, data.len() as u64);
    assert_eq!(got.sha256, digest(&data));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(listing(dir.path()), vec!["m.gguf"]);
    assert_eq!(p.bytes(), data.len() as u64);
    // Complete already: no second request (the mock expects exactly one).
    let again = transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again, got);
}

#[tokio::test]
async fn large_file_uses_parallel_ranges() {
    let server = MockServer::start().await;
    let data = body(3 * 1024 * 1024 + 17);
    Mock::given(method("GET"))
        .and(path("/big.bin"))
        .and(header_exists("range"))
        .respond_with(Ranged {
            data: Arc::new(data.clone()),
            honour_range: true,
            etag: "\"v1\"",
        })
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.bin");
    let mut req = FetchRequest::new(
        "big.bin",
        format!("{}/big.bin", server.uri()).parse().unwrap(),
    );
    req.expected_size = Some(data.len() as u64);
    let t = tracker();
    let p = progress(&t, req.expected_size);
    let got = transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(got.sha256, digest(&data));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let requests = server.received_requests().await.unwrap();
    // 256 KiB ranges at most: at least 13 requests, each for a distinct range.
    assert!(requests.len() >= 13, "{}", requests.len());
    let mut ranges: Vec<String> = requests
        .iter()
        .map(|r| r.headers["range"].to_str().unwrap().to_string())
        .collect();
    ranges.sort();
    ranges.dedup();
    assert_eq!(ranges.len(), requests.len(), "no range fetched twice");
}

#[tokio::test]
async fn server_ignoring_range_still_gives_the_right_file() {
    let server = MockServer::start().await;
    let data = body(2 * 1024 * 1024);
    Mock::given(method("GET"))
        .respond_with(Ranged {
            data: Arc::new(data.clone()),
            honour_range: false,
            etag: "\"v1\"",
        })
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let mut req = FetchRequest::new("f.bin", format!("{}/f.bin", server.uri()).parse().unwrap());
    req.expected_size = Some(data.len() as u64);
    req.sha256 = Some(digest(&data));
    let t = tracker();
    let p = progress(&t, req.expected_size);
    transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    // One whole-file answer was enough: no range storm against a server that ignores them.
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// Fails the first `failures` requests with `status`, then serves.
struct Flaky {
    failures: usize,
    status: u16,
    retry_after: Option<&'static str>,
    seen: AtomicUsize,
    data: Arc<Vec<u8>>,
}

impl Respond for Flaky {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if self.seen.fetch_add(1, Ordering::SeqCst) < self.failures {
            let mut r = ResponseTemplate::new(self.status);
            if let Some(ra) = self.retry_after {
                r = r.insert_header("retry-after", ra);
            }
            return r;
        }
        Ranged {
            data: self.data.clone(),
            honour_range: true,
            etag: "\"v1\"",
        }
        .respond(req)
    }
}

async fn fetch_with_flaky(
    status: u16,
    retry_after: Option<&'static str>,
) -> (Vec<String>, std::time::Duration) {
    let server = MockServer::start().await;
    let data = body(50_000);
    Mock::given(method("GET"))
        .respond_with(Flaky {
            failures: 2,
            status,
            retry_after,
            seen: AtomicUsize::new(0),
            data: Arc::new(data.clone()),
        })
        .expect(3)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let req = FetchRequest::new("f.bin", format!("{}/f.bin", server.uri()).parse().unwrap());
    let t = tracker();
    let (_, mut rx) = t.subscribe();
    let p = progress(&t, None);
    let start = std::time::Instant::now();
    transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let mut retries = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let rbee_artifact::EventKind::Retrying { reason, .. } = e.kind {
            retries.push(reason);
        }
    }
    (retries, took)
}

#[tokio::test]
async fn server_errors_are_retried_and_reported() {
    for status in [500, 503] {
        let (retries, _) = fetch_with_flaky(status, None).await;
        assert_eq!(retries.len(), 2, "{retries:?}");
        assert!(retries[0].contains(&status.to_string()), "{retries:?}");
    }
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let (retries, took) = fetch_with_flaky(429, Some("1")).await;
    assert_eq!(retries.len(), 2);
    // Two waits of the one second the server asked for.
    assert!(took >= std::time::Duration::from_millis(1900), "{took:?}");
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let req = FetchRequest::new(
        "x",
        format!("{}/x?sig=secret", server.uri()).parse().unwrap(),
    );
    let t = tracker();
    let p = progress(&t, None);
    let err = transfer()
        .fetch(&req, &dir.path().join("x"), &p, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    let msg = err.to_string();
    assert!(msg.contains("404") && !msg.contains("secret"), "{msg}");
    assert_eq!(Error::from(err).code(), "not_found");
}

#[tokio::test]
async fn authorization_is_not_forwarded_to_another_host() {
    let hub = MockServer::start().await;
    let cdn = MockServer::start().await;
    let data = body(10_000);
    // The CDN listens on another port: another origin.
    Mock::given(method("GET"))
        .and(path("/blob"))
        .respond_with(Ranged {
            data: Arc::new(data.clone()),
            honour_range: true,
            etag: "\"v1\"",
        })
        .mount(&cdn)
        .await;
    Mock::given(method("GET"))
        .and(path("/resolve/m.gguf"))
        .and(header("authorization", "Bearer hf_secret"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/blob", cdn.uri())),
        )
        .expect(1)
        .mount(&hub)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut req = FetchRequest::new(
        "m.gguf",
        format!("{}/resolve/m.gguf", hub.uri()).parse().unwrap(),
    );
    req.auth = Secret::new("hf_secret");
    let t = tracker();
    let p = progress(&t, None);
    transfer()
        .fetch(
            &req,
            &dir.path().join("m.gguf"),
            &p,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let cdn_requests = cdn.received_requests().await.unwrap();
    assert!(!cdn_requests.is_empty());
    for r in cdn_requests {
        assert!(!r.headers.contains_key("authorization"), "{:?}", r.headers);
    }
}

#[tokio::test]
async fn send_retries_and_returns_the_final_status() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(Flaky {
            failures: 1,
            status: 503,
            retry_after: None,
            seen: AtomicUsize::new(0),
            data: Arc::new(b"{}".to_vec()),
        })
        .expect(2)
        .mount(&server)
        .await;
    let resp = transfer()
        .send(
            ApiRequest::get(format!("{}/api", server.uri()).parse().unwrap()),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    let resp = transfer()
        .send(
            ApiRequest::get(format!("{}/api", server.uri()).parse().unwrap()),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// A CDN whose links from the first redirect expire after a few requests.
struct ExpiringCdn {
    file: FileServer,
    first_link_uses: AtomicUsize,
}

impl Respond for ExpiringCdn {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if req.url.query() == Some("sig=1")
            && self.first_link_uses.fetch_add(1, Ordering::SeqCst) >= 3
        {
            return ResponseTemplate::new(403).set_body_string("Request has expired");
        }
        self.file.respond(req)
    }
}

/// Redirects to the CDN with a fresh signature each time.
struct Signer {
    cdn: String,
    calls: AtomicUsize,
}

impl Respond for Signer {
    fn respond(&self, _req: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(302).insert_header("location", format!("{}/blob?sig={n}", self.cdn))
    }
}

#[tokio::test]
async fn expired_redirect_target_is_resolved_again() {
    let hub = MockServer::start().await;
    let cdn = MockServer::start().await;
    let data = body(3 * 1024 * 1024);
    Mock::given(path("/blob"))
        .respond_with(ExpiringCdn {
            file: FileServer::new(data.clone()),
            first_link_uses: AtomicUsize::new(0),
        })
        .mount(&cdn)
        .await;
    Mock::given(path("/resolve/m.bin"))
        .respond_with(Signer {
            cdn: cdn.uri(),
            calls: AtomicUsize::new(0),
        })
        .mount(&hub)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut req = FetchRequest::new(
        "m.bin",
        format!("{}/resolve/m.bin", hub.uri()).parse().unwrap(),
    );
    req.expected_size = Some(data.len() as u64);
    req.sha256 = Some(digest(&data));
    let t = tracker();
    let p = progress(&t, req.expected_size);
    transfer()
        .fetch(
            &req,
            &dir.path().join("m.bin"),
            &p,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("m.bin")).unwrap(), data);
    let hub_calls = hub.received_requests().await.unwrap().len();
    let cdn_calls = cdn.received_requests().await.unwrap().len();
    // Ranges go to the CDN; the hub is asked again only when a link expired, not per range.
    assert!(hub_calls >= 2, "{hub_calls}");
    assert!(
        hub_calls < cdn_calls / 2,
        "hub {hub_calls}, cdn {cdn_calls}"
    );
}
