//! The HuggingFace Hub protocol.

use rbee_fake_hub::{FakeHubConfig, Fault, Host};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{Fixture, client, header, pattern, start_with, write};

pub(crate) struct HfRepoData {
    pub(crate) gguf: Vec<u8>,
    pub(crate) config: Vec<u8>,
    pub(crate) config_v2: Vec<u8>,
    pub(crate) tokenizer: Vec<u8>,
}

/// `org/repo` (main + v2 + refs/pr/1 + tag v1.0), `org/private`, `org/gated`.
pub(crate) async fn hf_fixture(page_size: usize) -> (Fixture, HfRepoData) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = HfRepoData {
        gguf: pattern(300_000, 40),
        config: br#"{"model_type": "llama"}"#.to_vec(),
        config_v2: br#"{"model_type": "llama", "v": 2}"#.to_vec(),
        tokenizer: pattern(5_000, 41).iter().map(|b| b'a' + b % 26).collect(),
    };
    write(root, "hf/org/repo/config.json", &data.config);
    write(root, "hf/org/repo/model.Q4_K_M.gguf", &data.gguf);
    write(root, "hf/org/repo/sub/tokenizer.json", &data.tokenizer);
    write(
        root,
        "hf/org/repo/fakehub.json",
        br#"{"tags": {"v1.0": "main"}}"#,
    );
    write(
        root,
        "hf/org/repo/.revisions/v2/config.json",
        &data.config_v2,
    );
    write(
        root,
        "hf/org/repo/.revisions/refs%2Fpr%2F1/config.json",
        b"{\"pr\": 1}",
    );
    write(root, "hf/org/private/config.json", b"{}");
    write(
        root,
        "hf/org/private/fakehub.json",
        br#"{"private": true, "tokens": ["hf_repo_token"]}"#,
    );
    write(root, "hf/org/gated/w.gguf", &pattern(1000, 42));
    write(root, "hf/org/gated/fakehub.json", br#"{"gated": "manual"}"#);
    let fx = start_with(
        move |c: FakeHubConfig| {
            let mut c = c.with_hf_token("hf_global");
            c.hf_tree_page_size = page_size;
            c
        },
        dir,
    )
    .await;
    (fx, data)
}

fn api(fx: &Fixture, path: &str) -> url::Url {
    fx.hub.url().join(path).unwrap()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn git_oid(data: &[u8]) -> String {
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    hex::encode(h.finalize())
}

#[tokio::test]
async fn model_info_lists_siblings_with_blobs_on_request() {
    let (fx, data) = hf_fixture(1000).await;
    let c = client();
    let v: Value = c
        .get(api(&fx, "api/models/org/repo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["id"], "org/repo");
    assert_eq!(v["modelId"], "org/repo");
    assert_eq!(v["private"], false);
    assert_eq!(v["gated"], false);
    let sha = v["sha"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 40);
    let names: Vec<&str> = v["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rfilename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["config.json", "model.Q4_K_M.gguf", "sub/tokenizer.json"],
        "settings and revisions are not files"
    );
    assert!(
        v["siblings"][0].get("size").is_none(),
        "sizes only with blobs=true"
    );

    let v: Value = c
        .get(api(&fx, "api/models/org/repo/revision/main?blobs=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["sha"], sha, "the same commit for main");
    let sib = &v["siblings"];
    assert_eq!(sib[0]["size"], data.config.len());
    assert_eq!(sib[0]["blobId"], git_oid(&data.config));
    assert!(sib[0].get("lfs").is_none(), "small text is a regular file");
    assert_eq!(sib[1]["size"], data.gguf.len());
    assert_eq!(sib[1]["lfs"]["sha256"], sha256_hex(&data.gguf));
    assert_eq!(sib[1]["lfs"]["size"], data.gguf.len());
    let pointer = format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
        sha256_hex(&data.gguf),
        data.gguf.len()
    );
    assert_eq!(sib[1]["lfs"]["pointerSize"], pointer.len());
    assert_eq!(
        sib[1]["blobId"],
        git_oid(pointer.as_bytes()),
        "LFS blob id is the pointer's"
    );

    // A tag resolves to its revision; another branch has another commit.
    let tag: Value = c
        .get(api(&fx, "api/models/org/repo/revision/v1.0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tag["sha"], sha);
    let v2: Value = c
        .get(api(&fx, "api/models/org/repo/revision/v2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(v2["sha"], sha);
    let pinned: Value = c
        .get(api(
            &fx,
            &format!(
                "api/models/org/repo/revision/{}",
                v2["sha"].as_str().unwrap()
            ),
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pinned["siblings"].as_array().unwrap().len(), 1);
    let pr: Value = c
        .get(api(&fx, "api/models/org/repo/revision/refs%2Fpr%2F1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pr["siblings"][0]["rfilename"], "config.json");
}

#[tokio::test]
async fn tree_lists_files_and_directories_with_pagination() {
    let (fx, data) = hf_fixture(2).await;
    let c = client();
    let mut url = api(&fx, "api/models/org/repo/tree/main?recursive=true");
    let mut all: Vec<Value> = Vec::new();
    let mut pages = 0;
    loop {
        let resp = c.get(url.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let link = header(&resp, "link").map(str::to_owned);
        let page: Vec<Value> = resp.json().await.unwrap();
        assert!(page.len() <= 2);
        all.extend(page);
        pages += 1;
        match link {
            Some(l) => {
                let next = l.trim_start_matches('<').split('>').next().unwrap();
                assert!(l.ends_with("rel=\"next\""), "{l}");
                url = url::Url::parse(next).unwrap();
            }
            None => break,
        }
    }
    assert_eq!(pages, 2);
    let paths: Vec<&str> = all.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "config.json",
            "model.Q4_K_M.gguf",
            "sub",
            "sub/tokenizer.json"
        ]
    );
    assert_eq!(all[2]["type"], "directory");
    assert_eq!(all[1]["type"], "file");
    assert_eq!(
        all[1]["lfs"]["oid"],
        sha256_hex(&data.gguf),
        "the tree calls the sha256 lfs.oid"
    );
    assert_eq!(all[3]["oid"], git_oid(&data.tokenizer));
    assert_eq!(all[3]["size"], data.tokenizer.len());

    // Not recursive: the top level only. A sub-path, also percent-encoded whole.
    let top: Vec<Value> = c
        .get(api(&fx, "api/models/org/repo/tree/main"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let more: Vec<Value> = c
        .get(api(&fx, "api/models/org/repo/tree/main?cursor=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let top: Vec<&str> = top
        .iter()
        .chain(more.iter())
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(top, ["config.json", "model.Q4_K_M.gguf", "sub"]);
    for p in [
        "api/models/org/repo/tree/main/sub?recursive=1",
        "api/models/org/repo/tree/main/sub%2F?recursive=true",
    ] {
        let sub: Vec<Value> = c
            .get(api(&fx, p))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(sub.len(), 1, "{p}");
        assert_eq!(sub[0]["path"], "sub/tokenizer.json");
    }
    let resp = c
        .get(api(&fx, "api/models/org/repo/tree/main/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(header(&resp, "x-error-code"), Some("EntryNotFound"));
}

#[tokio::test]
async fn resolve_serves_regular_files_and_redirects_lfs_files() {
    let (fx, data) = hf_fixture(1000).await;
    let c = client();
    let info: Value = c
        .get(api(&fx, "api/models/org/repo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sha = info["sha"].as_str().unwrap();

    let url = fx.hub.hf_resolve_url("org/repo", "main", "config.json");
    let head = c.head(url.clone()).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "x-repo-commit"), Some(sha));
    assert_eq!(
        header(&head, "etag"),
        Some(&*format!("\"{}\"", git_oid(&data.config)))
    );
    assert_eq!(
        header(&head, "content-length"),
        Some(&*data.config.len().to_string())
    );
    let body = c
        .get(url.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], &data.config[..]);
    let part = c
        .get(url)
        .header("range", "bytes=2-5")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(&part.bytes().await.unwrap()[..], &data.config[2..=5]);

    let url = fx
        .hub
        .hf_resolve_url("org/repo", "main", "model.Q4_K_M.gguf");
    let head = c.head(url.clone()).send().await.unwrap();
    assert_eq!(head.status(), 302);
    assert_eq!(header(&head, "x-repo-commit"), Some(sha));
    assert_eq!(
        header(&head, "x-linked-etag"),
        Some(&*format!("\"{}\"", sha256_hex(&data.gguf)))
    );
    assert_eq!(
        header(&head, "x-linked-size"),
        Some(&*data.gguf.len().to_string())
    );
    let location = url::Url::parse(header(&head, "location").unwrap()).unwrap();
    assert_eq!(
        location.host_str(),
        fx.hub.cdn_url().host_str(),
        "LFS bytes come from the CDN"
    );
    let resp = c.get(location.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        sha256_hex(&resp.bytes().await.unwrap()),
        sha256_hex(&data.gguf)
    );
    let resp = c
        .get(location)
        .header("range", "bytes=299990-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(&resp.bytes().await.unwrap()[..], &data.gguf[299_990..]);

    // Other revisions, by branch, encoded PR ref, tag and commit sha.
    let v2 = c
        .get(fx.hub.hf_resolve_url("org/repo", "v2", "config.json"))
        .send()
        .await
        .unwrap();
    let v2_sha = header(&v2, "x-repo-commit").unwrap().to_owned();
    assert_eq!(&v2.bytes().await.unwrap()[..], &data.config_v2[..]);
    let pinned = c
        .get(fx.hub.hf_resolve_url("org/repo", &v2_sha, "config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(&pinned.bytes().await.unwrap()[..], &data.config_v2[..]);
    let pr = c
        .get(
            fx.hub
                .hf_resolve_url("org/repo", "refs/pr/1", "config.json"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(&pr.bytes().await.unwrap()[..], b"{\"pr\": 1}");
    // The unencoded spelling of a PR ref is accepted too.
    let pr = c
        .get(api(&fx, "org/repo/resolve/refs/pr/1/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(&pr.bytes().await.unwrap()[..], b"{\"pr\": 1}");
    let info: Value = c
        .get(api(&fx, "api/models/org/repo/revision/refs/pr/1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["siblings"][0]["rfilename"], "config.json");
    // A resolve path naming no file is an entry error, not a crash.
    let resp = c
        .get(api(&fx, "org/repo/resolve/main/"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-error-code"), Some("EntryNotFound"));
    let tag = c
        .get(
            fx.hub
                .hf_resolve_url("org/repo", "v1.0", "sub/tokenizer.json"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(header(&tag, "x-repo-commit"), Some(sha));
}

async fn error_of(resp: reqwest::Response) -> (u16, Option<String>, String) {
    let status = resp.status().as_u16();
    let code = header(&resp, "x-error-code").map(str::to_owned);
    let body: Value = resp.json().await.unwrap();
    (
        status,
        code,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn errors_carry_the_hubs_codes() {
    let (fx, _) = hf_fixture(1000).await;
    let c = client();
    let get = |url: url::Url, token: Option<&str>| {
        let mut r = c.get(url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let (s, code, _) = error_of(
        get(fx.hub.hf_resolve_url("org/nope", "main", "x"), None)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, code.as_deref()), (401, Some("RepoNotFound")));
    let (s, code, _) = error_of(
        get(
            fx.hub.hf_resolve_url("org/nope", "main", "x"),
            Some("hf_global"),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((s, code.as_deref()), (404, Some("RepoNotFound")));
    let (s, code, msg) = error_of(
        get(
            fx.hub.hf_resolve_url("org/repo", "nope", "config.json"),
            None,
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((s, code.as_deref()), (404, Some("RevisionNotFound")));
    assert!(msg.contains("nope"));
    let resp = get(
        fx.hub.hf_resolve_url("org/repo", "main", "missing.bin"),
        None,
    )
    .await
    .unwrap();
    assert!(header(&resp, "x-repo-commit").is_some());
    let (s, code, _) = error_of(resp).await;
    assert_eq!((s, code.as_deref()), (404, Some("EntryNotFound")));

    // Private: invisible without a valid token, on the API too.
    for url in [
        fx.hub.hf_resolve_url("org/private", "main", "config.json"),
        api(&fx, "api/models/org/private"),
        api(&fx, "api/models/org/private/tree/main"),
    ] {
        let (s, code, _) = error_of(get(url.clone(), None).await.unwrap()).await;
        assert_eq!((s, code.as_deref()), (401, Some("RepoNotFound")), "{url}");
        let (s, code, _) = error_of(get(url.clone(), Some("hf_wrong")).await.unwrap()).await;
        assert_eq!((s, code.as_deref()), (404, Some("RepoNotFound")), "{url}");
        assert_eq!(
            get(url.clone(), Some("hf_repo_token"))
                .await
                .unwrap()
                .status(),
            200,
            "{url}"
        );
        assert_eq!(
            get(url.clone(), Some("hf_global")).await.unwrap().status(),
            200,
            "{url}"
        );
    }

    // Gated: listed, but files need an accepted token.
    let info: Value = get(api(&fx, "api/models/org/gated"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["gated"], "manual");
    let url = fx.hub.hf_resolve_url("org/gated", "main", "w.gguf");
    let resp = get(url.clone(), None).await.unwrap();
    assert!(
        header(&resp, "x-error-message")
            .unwrap()
            .contains("org/gated")
    );
    let (s, code, _) = error_of(resp).await;
    assert_eq!((s, code.as_deref()), (401, Some("GatedRepo")));
    let (s, code, msg) = error_of(get(url.clone(), Some("hf_wrong")).await.unwrap()).await;
    assert_eq!((s, code.as_deref()), (403, Some("GatedRepo")));
    assert!(msg.contains("ask for access"), "{msg}");
    assert_eq!(get(url, Some("hf_global")).await.unwrap().status(), 302);
}

#[tokio::test]
async fn faults_and_counters_apply_to_hub_paths() {
    let (fx, data) = hf_fixture(1000).await;
    let c = client();
    fx.hub.set_faults(vec![
        Fault::too_many_requests(1).path("api/models/**").times(1),
        Fault::drop_after(1000)
            .path("*.gguf")
            .on(Host::Cdn)
            .times(1),
    ]);
    let resp = c.get(api(&fx, "api/models/org/repo")).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), Some("1"));
    assert_eq!(
        c.get(api(&fx, "api/models/org/repo"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let url = fx
        .hub
        .hf_resolve_url("org/repo", "main", "model.Q4_K_M.gguf");
    let location = header(&c.get(url.clone()).send().await.unwrap(), "location")
        .unwrap()
        .to_owned();
    let (got, err) = crate::common::read_all(c.get(&location).send().await.unwrap()).await;
    assert!(err.is_some());
    assert_eq!(got.len(), 1000);
    let resp = c
        .get(&location)
        .header("range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(&resp.bytes().await.unwrap()[..], &data.gguf[1000..]);
    let counted = fx.hub.counters_for("/files/hf/org/repo/model.Q4_K_M.gguf");
    assert_eq!(counted.requests, 2);
    assert_eq!(
        counted.bytes_sent,
        data.gguf.len() as u64,
        "cut + resume = the file once"
    );
    assert_eq!(
        fx.hub
            .counters_for("/org/repo/resolve/main/model.Q4_K_M.gguf")
            .status(302),
        1
    );
}

/// A repo changed between requests (a file rewritten, one added, one removed) is served as it
/// is now: a new commit, the new file's validators, the added file listed, the removed one gone.
#[tokio::test]
async fn a_repo_changed_between_requests_is_served_as_it_is_now() {
    let (fx, data) = hf_fixture(1000).await;
    let c = client();
    let head = |file: &'static str| {
        let url = fx.hub.hf_resolve_url("org/repo", "main", file);
        let c = c.clone();
        async move { c.head(url).send().await.unwrap() }
    };
    let before = head("config.json").await;
    let commit = header(&before, "x-repo-commit").unwrap().to_owned();
    assert_eq!(
        header(&before, "etag"),
        Some(&*format!("\"{}\"", git_oid(&data.config)))
    );
    // The same size, other bytes, a later time.
    let changed = br#"{"model_type": "LLAMA"}"#;
    assert_eq!(changed.len(), data.config.len());
    let path = fx.dir.path().join("hf/org/repo/config.json");
    std::fs::write(&path, changed).unwrap();
    let later =
        std::fs::metadata(&path).unwrap().modified().unwrap() + std::time::Duration::from_secs(1);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let after = head("config.json").await;
    assert_ne!(header(&after, "x-repo-commit").unwrap(), commit);
    assert_eq!(
        header(&after, "etag"),
        Some(&*format!("\"{}\"", git_oid(changed)))
    );
    write(fx.dir.path(), "hf/org/repo/added.txt", b"new");
    std::fs::remove_file(fx.dir.path().join("hf/org/repo/sub/tokenizer.json")).unwrap();
    assert_eq!(head("added.txt").await.status(), 200);
    assert_eq!(head("sub/tokenizer.json").await.status(), 404);
}
