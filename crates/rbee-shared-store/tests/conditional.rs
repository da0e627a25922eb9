//! Elections on a store that honours conditional creates (AWS S3, MinIO), and the probe that
//! tells such a store from Garage, which ignores them.
//!
//! Garage answers a second `If-None-Match: *` put with 200 and overwrites. To have a real S3
//! server that refuses it, every request goes through a loopback proxy in front of Garage that
//! forwards it byte for byte (the signature still holds) and, when told to honour conditional
//! creates, answers a conditional put of an object that exists with 412, as AWS does. It sees
//! all traffic of its prefix, so it knows which objects exist.
// Measured figures (conditional puts seen) are printed for the report.
#![allow(clippy::print_stderr)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rbee_artifact::JobId;
use rbee_fake_hub::Garage;
use rbee_shared_store::{
    Election, Elector, LeaseConfig, S3Store, SharedStore, StoreConfig, honours_create_only,
};
use tokio::sync::Mutex;

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    honour: bool,
    /// Paths (bucket and key) of the objects that exist, as the traffic so far says.
    existing: Mutex<HashSet<String>>,
    conditional_puts: AtomicUsize,
    refused: AtomicUsize,
}

impl Proxy {
    /// A proxy to `garage` on a loopback port of its own; its endpoint URL.
    async fn start(garage: &Garage, honour: bool) -> (Arc<Proxy>, String) {
        let upstream = garage
            .var("AWS_ENDPOINT_URL")
            .expect("Garage's endpoint")
            .trim_end_matches('/')
            .to_string();
        let proxy = Arc::new(Proxy {
            upstream,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            honour,
            existing: Mutex::new(HashSet::new()),
            conditional_puts: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (proxy, endpoint)
    }
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    let path = parts.uri.path().to_string();
    let writes = parts.method == Method::PUT || parts.method == Method::DELETE;
    let conditional = parts.method == Method::PUT
        && parts
            .headers
            .get("if-none-match")
            .is_some_and(|v| v.as_bytes() == b"*");
    // Writes one at a time, so that a conditional create and the record of it are one step.
    let mut existing = if writes {
        Some(proxy.existing.lock().await)
    } else {
        None
    };
    if conditional {
        proxy.conditional_puts.fetch_add(1, Ordering::Relaxed);
        if proxy.honour && existing.as_ref().is_some_and(|e| e.contains(&path)) {
            proxy.refused.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::PRECONDITION_FAILED,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>",
            )
                .into_response();
        }
    }
    let target = format!(
        "{}{}",
        proxy.upstream,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        // The client computes the length again; the Host header is kept, as it was signed.
        if name != "content-length" {
            headers.append(name.clone(), value.clone());
        }
    }
    let answer = proxy
        .client
        .request(parts.method.clone(), target)
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    if status.is_success()
        && let Some(existing) = existing.as_mut()
    {
        let multipart = parts.uri.query().is_some_and(|q| q.contains("uploadId"));
        if parts.method == Method::DELETE {
            existing.remove(&path);
        } else if !multipart {
            existing.insert(path);
        }
    }
    let mut response = Response::builder().status(status);
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(answer.bytes().await.unwrap()))
        .unwrap()
}

fn store_through(garage: &Garage, endpoint: &str, prefix: &str) -> Arc<dyn SharedStore> {
    let config = StoreConfig::from_vars(&garage.store_url(prefix), |k| {
        if k == "AWS_ENDPOINT_URL" {
            Some(endpoint.to_string())
        } else {
            garage.var(k)
        }
    })
    .unwrap();
    Arc::new(S3Store::new(config).unwrap())
}

/// Electors for `n` hives, on the path the probe picks for `store` (as the provisioner's
/// tier does when it connects).
async fn electors(store: &Arc<dyn SharedStore>, n: usize) -> (bool, Vec<Elector>) {
    let conditional = honours_create_only(&**store).await.unwrap();
    let hives = (0..n)
        .map(|i| {
            Elector::new(
                store.clone(),
                format!("hive-{i}"),
                conditional,
                LeaseConfig::default(),
            )
        })
        .collect();
    (conditional, hives)
}

/// Rounds of `hives` racing for one lease each; the number of winners of each round.
async fn race(hives: &[Elector], rounds: usize) -> Vec<usize> {
    let mut winners_per_round = Vec::new();
    for round in 0..rounds {
        let id = format!("artifact-{round}");
        let results = futures::future::join_all(hives.iter().map(|h| h.try_acquire(&id))).await;
        let mut winners = Vec::new();
        for r in results {
            if let Election::Won(lease) = r.unwrap() {
                winners.push(lease);
            }
        }
        winners_per_round.push(winners.len());
        for lease in winners {
            lease.release().await.unwrap();
        }
    }
    winners_per_round
}

#[tokio::test]
async fn on_a_store_that_honours_conditional_creates_exactly_one_racing_hive_wins() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let (proxy, endpoint) = Proxy::start(garage, true).await;
    let prefix = format!("conditional-{}", JobId::generate());
    let store = store_through(garage, &endpoint, &prefix);
    let (conditional, hives) = electors(&store, 6).await;
    assert!(
        conditional,
        "the probe did not see that the store refuses a second conditional create"
    );
    let probe_puts = proxy.conditional_puts.load(Ordering::Relaxed);
    let rounds = 10;
    let winners = race(&hives, rounds).await;
    assert!(
        winners.iter().all(|&w| w == 1),
        "winners per round, 6 hives racing: {winners:?}"
    );
    // The elections used conditional creates (a hive that already sees the winner's lease
    // writes none), and the store refused every one but the winners'.
    let election_puts = proxy.conditional_puts.load(Ordering::Relaxed) - probe_puts;
    assert!(
        election_puts >= rounds,
        "conditional lease writes: {election_puts}"
    );
    assert_eq!(
        proxy.refused.load(Ordering::Relaxed),
        1 + election_puts - rounds,
        "refused: the probe's second put and every loser's"
    );
    eprintln!("conditional elections: {rounds} rounds of 6 hives, one winner each: {winners:?}");
}

#[tokio::test]
async fn on_a_store_that_ignores_conditional_creates_the_probe_picks_read_back_leases() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    // The same proxy, passing conditional creates through: Garage overwrites.
    let (proxy, endpoint) = Proxy::start(garage, false).await;
    let prefix = format!("unconditional-{}", JobId::generate());
    let store = store_through(garage, &endpoint, &prefix);
    let (conditional, hives) = electors(&store, 4).await;
    assert!(
        !conditional,
        "Garage does not refuse a second conditional create"
    );
    let probe_puts = proxy.conditional_puts.load(Ordering::Relaxed);
    assert_eq!(probe_puts, 2, "the probe's two conditional puts");
    let winners = race(&hives, 3).await;
    assert!(winners.iter().all(|&w| w >= 1), "{winners:?}");
    assert_eq!(
        proxy.conditional_puts.load(Ordering::Relaxed),
        probe_puts,
        "elections on this store write leases without conditions and read them back"
    );
}
