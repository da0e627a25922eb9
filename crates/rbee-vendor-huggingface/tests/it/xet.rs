//! Xet discovery and read tokens against wiremock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rbee_artifact::{Error, Secret};
use rbee_transfer::ApiRequest;
use rbee_vendor_huggingface::{XetFile, XetTokens};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{COMMIT, TOKEN, transfer};

const XET_HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const TOKEN_PATH: &str = "/api/models/org/repo/xet-read-token/main";

fn unix_in(secs: u64) -> u64 {
    (SystemTime::now() + Duration::from_secs(secs))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token_body(access: &str, exp: u64) -> serde_json::Value {
    json!({"accessToken": access, "exp": exp, "casUrl": "http://127.0.0.1:9/cas"})
}

fn tokens(server: &MockServer) -> XetTokens {
    XetTokens::new(
        transfer(),
        &Url::parse(&server.uri()).unwrap(),
        "org",
        "repo",
        "main",
        Secret::new(TOKEN),
    )
}

#[tokio::test]
async fn a_resolve_head_announces_xet_without_being_followed() {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(path("/org/repo/resolve/main/m.gguf"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", "http://127.0.0.1:9/cdn/m.gguf")
                .insert_header("x-xet-hash", XET_HASH)
                .insert_header("x-linked-etag", format!("\"{}\"", "a".repeat(64)))
                .insert_header("x-repo-commit", COMMIT)
                .insert_header(
                    "link",
                    format!(
                        "<{}/api/models/org/repo/xet-read-token/{COMMIT}>; rel=\"xet-auth\", <http://127.0.0.1:9/cas/v1/reconstructions/{XET_HASH}>; rel=\"xet-reconstruction-info\"",
                        server.uri()
                    ),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let url = Url::parse(&format!("{}/org/repo/resolve/main/m.gguf", server.uri())).unwrap();
    let response = transfer()
        .send(ApiRequest::head(url.clone()), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(response.status(), 302, "not followed");
    let xet = XetFile::from_headers(response.headers(), &url).unwrap();
    assert_eq!(xet.hash, XET_HASH);
    assert_eq!(
        xet.auth_url.unwrap().path(),
        format!("/api/models/org/repo/xet-read-token/{COMMIT}")
    );
    assert!(
        xet.reconstruction_url
            .unwrap()
            .path()
            .ends_with(&format!("/v1/reconstructions/{XET_HASH}"))
    );
}

#[tokio::test]
async fn a_token_is_fetched_with_the_hub_token_and_kept_while_good() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(token_body("xet_ONE", unix_in(3600))),
        )
        .expect(1)
        .mount(&server)
        .await;
    let tokens = tokens(&server);
    let cancel = CancellationToken::new();
    let first = tokens.get(&cancel).await.unwrap();
    assert_eq!(first.access_token.expose(), "xet_ONE");
    assert_eq!(first.cas_url.as_str(), "http://127.0.0.1:9/cas");
    let second = tokens.get(&cancel).await.unwrap();
    assert_eq!(
        second.access_token.expose(),
        "xet_ONE",
        "kept, not fetched again"
    );
    assert!(!format!("{first:?}").contains("xet_ONE"));
}

#[tokio::test]
async fn a_token_about_to_expire_is_replaced_before_use() {
    let server = MockServer::start().await;
    // Good for ten more seconds: too little to start a transfer with.
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("xet_OLD", unix_in(10))))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(token_body("xet_NEW", unix_in(3600))),
        )
        .expect(1)
        .mount(&server)
        .await;
    let tokens = tokens(&server);
    let cancel = CancellationToken::new();
    assert_eq!(
        tokens.get(&cancel).await.unwrap().access_token.expose(),
        "xet_OLD"
    );
    assert_eq!(
        tokens.get(&cancel).await.unwrap().access_token.expose(),
        "xet_NEW"
    );
    assert_eq!(
        tokens.get(&cancel).await.unwrap().access_token.expose(),
        "xet_NEW"
    );
}

#[tokio::test]
async fn a_token_the_cas_refused_is_replaced() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("xet_A", unix_in(3600))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("xet_B", unix_in(3600))))
        .mount(&server)
        .await;
    let tokens = tokens(&server);
    let cancel = CancellationToken::new();
    let a = tokens.get(&cancel).await.unwrap();
    tokens.refused(&a).await;
    let b = tokens.get(&cancel).await.unwrap();
    assert_eq!(b.access_token.expose(), "xet_B");
    // A late report about the old token does not throw away the new one.
    tokens.refused(&a).await;
    assert_eq!(
        tokens.get(&cancel).await.unwrap().access_token.expose(),
        "xet_B"
    );
}

#[tokio::test]
async fn a_refused_or_broken_token_answer_is_a_clear_error_without_secrets() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!("bad token {TOKEN}")))
        .mount(&server)
        .await;
    let err = tokens(&server)
        .get(&CancellationToken::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unauthorized { .. }), "{text}");
    assert!(text.contains("HF_TOKEN"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"accessToken": "xet_X", "exp": 1, "casUrl": "file:///etc"})),
        )
        .mount(&server)
        .await;
    let err = tokens(&server)
        .get(&CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert!(!err.to_string().contains("xet_X"), "{err}");
}

#[tokio::test]
async fn a_token_expiring_past_any_representable_time_is_a_protocol_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("xet_FAR", u64::MAX)))
        .mount(&server)
        .await;
    let err = tokens(&server)
        .get(&CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("expiring"), "{err}");
    assert!(!err.to_string().contains("xet_FAR"), "{err}");
}
