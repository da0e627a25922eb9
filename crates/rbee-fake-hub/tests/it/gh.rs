//! The GitHub releases protocol.

use rbee_fake_hub::{FakeHubConfig, Fault};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{Fixture, client, header, pattern, start_with, write};

/// `acme/tools`: v1.0, v1.10 (latest), v2.0-rc1 (prerelease), v3 (draft); `acme/secret`
/// (private).
async fn gh_fixture(rate_limit: u64) -> (Fixture, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let tool = pattern(150_000, 50);
    write(root, "gh/acme/tools/v1.0/tool.gguf", &pattern(1000, 51));
    write(root, "gh/acme/tools/v1.0/notes.txt", b"notes");
    write(
        root,
        "gh/acme/tools/v1.0/.release.json",
        br#"{"published_at": "2024-01-01T00:00:00Z", "name": "First"}"#,
    );
    write(root, "gh/acme/tools/v1.10/tool.gguf", &tool);
    write(
        root,
        "gh/acme/tools/v1.10/.release.json",
        br#"{"published_at": "2024-03-01T00:00:00Z"}"#,
    );
    write(root, "gh/acme/tools/v2.0-rc1/tool.gguf", b"rc");
    write(
        root,
        "gh/acme/tools/v2.0-rc1/.release.json",
        br#"{"published_at": "2024-06-01T00:00:00Z", "prerelease": true}"#,
    );
    write(root, "gh/acme/tools/v3/tool.gguf", b"draft");
    write(
        root,
        "gh/acme/tools/v3/.release.json",
        br#"{"published_at": "2024-07-01T00:00:00Z", "draft": true}"#,
    );
    write(
        root,
        "gh/acme/secret/.repo.json",
        br#"{"private": true, "tokens": ["ghp_repo"]}"#,
    );
    write(root, "gh/acme/secret/v1/asset.bin", b"secret bytes");
    let fx = start_with(
        move |c: FakeHubConfig| {
            let mut c = c.with_gh_token("ghp_global");
            c.gh_rate_limit = rate_limit;
            c
        },
        dir,
    )
    .await;
    (fx, tool)
}

fn api(fx: &Fixture, path: &str) -> url::Url {
    fx.hub.url().join(path).unwrap()
}

async fn get(fx: &Fixture, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = client()
        .get(api(fx, path))
        .header("accept", "application/vnd.github+json");
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn latest_is_the_newest_stable_release_with_full_asset_records() {
    let (fx, tool) = gh_fixture(5000).await;
    let resp = get(&fx, "repos/acme/tools/releases/latest", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-ratelimit-limit"), Some("5000"));
    assert_eq!(header(&resp, "x-ratelimit-remaining"), Some("4999"));
    assert!(header(&resp, "x-ratelimit-reset").is_some());
    assert_eq!(header(&resp, "x-ratelimit-used"), Some("1"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["tag_name"], "v1.10");
    assert_eq!(v["name"], "v1.10");
    assert_eq!(v["draft"], false);
    assert_eq!(v["prerelease"], false);
    assert_eq!(v["published_at"], "2024-03-01T00:00:00Z");
    let a = &v["assets"][0];
    assert_eq!(a["name"], "tool.gguf");
    assert_eq!(a["size"], tool.len());
    assert_eq!(a["state"], "uploaded");
    assert_eq!(a["content_type"], "application/octet-stream");
    assert_eq!(
        a["digest"],
        format!("sha256:{}", hex::encode(Sha256::digest(&tool)))
    );
    let id = a["id"].as_u64().unwrap();
    assert_eq!(
        a["url"],
        api(&fx, &format!("repos/acme/tools/releases/assets/{id}")).as_str()
    );
    assert_eq!(
        a["browser_download_url"],
        api(&fx, "acme/tools/releases/download/v1.10/tool.gguf").as_str()
    );
    assert_eq!(
        v["assets"].as_array().unwrap().len(),
        1,
        "dotfiles are not assets"
    );
}

#[tokio::test]
async fn by_tag_by_id_and_not_found() {
    let (fx, _) = gh_fixture(5000).await;
    let v: Value = get(&fx, "repos/acme/tools/releases/tags/v1.0", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "First");
    let names: Vec<&str> = v["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["notes.txt", "tool.gguf"]);
    assert_eq!(v["assets"][0]["content_type"], "text/plain");
    let id = v["id"].as_u64().unwrap();
    let by_id: Value = get(&fx, &format!("repos/acme/tools/releases/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_id["tag_name"], "v1.0");
    let pre: Value = get(&fx, "repos/acme/tools/releases/tags/v2.0-rc1", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pre["prerelease"], true);

    for path in [
        "repos/acme/tools/releases/tags/v3",
        "repos/acme/tools/releases/tags/nope",
        "repos/acme/nope/releases/latest",
        "repos/acme/tools/releases/assets/12345",
        "repos/acme/tools/nonsense",
    ] {
        let resp = get(&fx, path, None).await;
        assert_eq!(resp.status(), 404, "{path}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["message"], "Not Found", "{path}");
        assert!(v["documentation_url"].is_string());
    }
    // A repo with no stable release has no latest.
    write(fx.dir.path(), "gh/acme/pre/v0.1/x.bin", b"x");
    write(
        fx.dir.path(),
        "gh/acme/pre/v0.1/.release.json",
        br#"{"prerelease": true}"#,
    );
    assert_eq!(
        get(&fx, "repos/acme/pre/releases/latest", None)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn list_is_paginated_newest_first_and_hides_drafts_from_anonymous_callers() {
    let (fx, _) = gh_fixture(5000).await;
    let resp = get(&fx, "repos/acme/tools/releases?per_page=2", None).await;
    let link = header(&resp, "link").unwrap().to_owned();
    assert!(
        link.contains("rel=\"next\"") && link.contains("rel=\"last\""),
        "{link}"
    );
    assert!(link.contains("page=2"), "{link}");
    let page1: Vec<Value> = resp.json().await.unwrap();
    let tags: Vec<&str> = page1
        .iter()
        .map(|r| r["tag_name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["v2.0-rc1", "v1.10"]);
    let resp = get(&fx, "repos/acme/tools/releases?per_page=2&page=2", None).await;
    let link = header(&resp, "link").unwrap().to_owned();
    assert!(
        link.contains("rel=\"prev\"") && !link.contains("rel=\"next\""),
        "{link}"
    );
    let page2: Vec<Value> = resp.json().await.unwrap();
    assert_eq!(page2.len(), 1);
    assert_eq!(page2[0]["tag_name"], "v1.0");

    let all: Vec<Value> = get(&fx, "repos/acme/tools/releases", Some("ghp_global"))
        .await
        .json()
        .await
        .unwrap();
    let tags: Vec<&str> = all
        .iter()
        .map(|r| r["tag_name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["v3", "v2.0-rc1", "v1.10", "v1.0"]);
    assert!(all[0]["published_at"].is_null(), "a draft is not published");
}

#[tokio::test]
async fn asset_downloads_redirect_to_signed_cdn_urls() {
    let (fx, tool) = gh_fixture(5000).await;
    let c = client();
    let v: Value = get(&fx, "repos/acme/tools/releases/latest", None)
        .await
        .json()
        .await
        .unwrap();
    let asset_url = v["assets"][0]["url"].as_str().unwrap().to_owned();
    let meta: Value = c
        .get(&asset_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["name"], "tool.gguf");

    let resp = c
        .get(&asset_url)
        .header("accept", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(header(&resp, "location").unwrap()).unwrap();
    assert_eq!(location.host_str(), fx.hub.cdn_url().host_str());
    assert!(location.query().unwrap().contains("sig="));
    let body = c.get(location).send().await.unwrap().bytes().await.unwrap();
    assert!(body[..] == tool[..]);

    let browser = v["assets"][0]["browser_download_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = c.get(&browser).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = header(&resp, "location").unwrap().to_owned();
    let resp = c
        .get(&location)
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert!(resp.bytes().await.unwrap()[..] == tool[100..]);
    let missing = c
        .get(api(&fx, "acme/tools/releases/download/v1.10/nope.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let draft = c
        .get(api(&fx, "acme/tools/releases/download/v3/tool.gguf"))
        .send()
        .await
        .unwrap();
    assert_eq!(draft.status(), 404);
}

#[tokio::test]
async fn private_repos_need_a_token_and_unknown_tokens_are_refused() {
    let (fx, _) = gh_fixture(5000).await;
    let c = client();
    assert_eq!(
        get(&fx, "repos/acme/secret/releases/latest", None)
            .await
            .status(),
        404
    );
    let resp = get(&fx, "repos/acme/secret/releases/latest", Some("ghp_wrong")).await;
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["message"], "Bad credentials");
    for token in ["ghp_repo", "ghp_global"] {
        let resp = get(&fx, "repos/acme/secret/releases/latest", Some(token)).await;
        assert_eq!(resp.status(), 200, "{token}");
        let v: Value = resp.json().await.unwrap();
        let asset_url = v["assets"][0]["url"].as_str().unwrap().to_owned();
        let browser = v["assets"][0]["browser_download_url"]
            .as_str()
            .unwrap()
            .to_owned();
        // The API asset URL works with the token; the browser URL does not, as on github.com.
        let resp = c
            .get(&asset_url)
            .bearer_auth(token)
            .header("accept", "application/octet-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let body = c
            .get(header(&resp, "location").unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&body[..], b"secret bytes");
        assert_eq!(
            c.get(&browser)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        let resp = c
            .get(&asset_url)
            .header("accept", "application/octet-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "no token, no asset");
    }
}

#[tokio::test]
async fn rate_limit_budget_runs_out_per_identity() {
    let (fx, _) = gh_fixture(2).await;
    let r1 = get(&fx, "repos/acme/tools/releases/latest", None).await;
    assert_eq!(header(&r1, "x-ratelimit-remaining"), Some("1"));
    let r2 = get(&fx, "repos/acme/tools/releases/latest", None).await;
    assert_eq!(r2.status(), 200);
    assert_eq!(header(&r2, "x-ratelimit-remaining"), Some("0"));
    let r3 = get(&fx, "repos/acme/tools/releases/latest", None).await;
    assert_eq!(r3.status(), 403);
    assert_eq!(header(&r3, "x-ratelimit-remaining"), Some("0"));
    let reset: u64 = header(&r3, "x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset > 1_700_000_000);
    let v: Value = r3.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("rate limit exceeded")
    );
    // A token has its own budget.
    let r = get(&fx, "repos/acme/tools/releases/latest", Some("ghp_global")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("1"));
}

#[tokio::test]
async fn rate_limit_faults_answer_like_github() {
    let (fx, _) = gh_fixture(5000).await;
    fx.hub.set_faults(vec![
        Fault::rate_limited(403, 30).path("repos/**").times(1),
        Fault::rate_limited(429, 30).path("repos/**").times(1),
        Fault::secondary_rate_limit(403, 9)
            .path("repos/**")
            .times(1),
    ]);
    for status in [403, 429] {
        let resp = get(&fx, "repos/acme/tools/releases/latest", None).await;
        assert_eq!(resp.status(), status);
        assert_eq!(header(&resp, "x-ratelimit-remaining"), Some("0"));
        let reset: u64 = header(&resp, "x-ratelimit-reset").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(reset >= now + 25 && reset <= now + 35, "{reset} vs {now}");
    }
    let resp = get(&fx, "repos/acme/tools/releases/latest", None).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(header(&resp, "retry-after"), Some("9"));
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("secondary rate limit")
    );
    assert_eq!(
        get(&fx, "repos/acme/tools/releases/latest", None)
            .await
            .status(),
        200
    );
}
