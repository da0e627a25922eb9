//! Fidelity: the real `huggingface_hub` client (from PyPI, in a virtualenv cached under the target folder)
//! downloads from the fake hub. Skips with a message when Python or PyPI is unavailable, unless
//! `RBEE_REQUIRE_HF_CLIENT=1`, which turns the skip into a failure.

use std::path::Path;

use rbee_fake_hub::python::{PythonEnv, skip};

use crate::hf::hf_fixture;

const SCRIPT: &str = include_str!("../hf_client_check.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_huggingface_hub_client_downloads_from_the_fake() {
    let prepared = tokio::task::spawn_blocking(|| {
        PythonEnv::with_packages(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            &["huggingface_hub"],
            &["huggingface_hub"],
        )
    })
    .await
    .unwrap();
    let python = match prepared {
        Ok(python) => python,
        Err(reason) => {
            return skip(
                "RBEE_REQUIRE_HF_CLIENT",
                "huggingface_hub fidelity check",
                &reason,
            );
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let hf_home = tmp.path().join("hf_home");

    let (fx, _) = hf_fixture(2).await;
    let endpoint = fx.hub.url().as_str().trim_end_matches('/').to_owned();
    let root = fx.dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        python
            .command()
            .arg("-c")
            .arg(SCRIPT)
            .env("HF_ENDPOINT", endpoint)
            .env("HF_HOME", hf_home)
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env("HF_HUB_DISABLE_XET", "1")
            .env_remove("HF_TOKEN")
            .env("NO_PROXY", "*")
            .env("FIXTURE", root)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "huggingface_hub against the fake hub failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // The client fetched the LFS file from the CDN, not the hub.
    assert!(
        fx.hub
            .counters_for("/files/hf/org/repo/model.Q4_K_M.gguf")
            .bytes_sent
            >= 300_000
    );
}

const XET_SCRIPT: &str = include_str!("../hf_xet_check.py");

/// The real `huggingface_hub` + `hf_xet` download `repo/file` at `rev` from `hub`; returns the
/// script's JSON (`sha256`, `xet_hash`), or fails the test with its output.
async fn hf_xet_download(
    python: &PythonEnv,
    hub: &rbee_fake_hub::FakeHub,
    hf_home: &Path,
    repo: &str,
    rev: &str,
    file: &str,
) -> serde_json::Value {
    let python = python.clone();
    let endpoint = hub.url().as_str().trim_end_matches('/').to_owned();
    let (hf_home, repo, rev, file) = (
        hf_home.to_path_buf(),
        repo.to_owned(),
        rev.to_owned(),
        file.to_owned(),
    );
    let out = tokio::task::spawn_blocking(move || {
        python
            .command()
            .arg("-c")
            .arg(XET_SCRIPT)
            .env("HF_ENDPOINT", endpoint)
            .env("HF_HOME", hf_home)
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env_remove("HF_HUB_DISABLE_XET")
            .env_remove("HF_TOKEN")
            .env("NO_PROXY", "*")
            .env("REPO", repo)
            .env("REVISION", rev)
            .env("FILENAME", file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "huggingface_hub + hf_xet against the fake hub failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("{e}: not the script's JSON\nstdout:\n{stdout}\nstderr:\n{stderr}")
    })
}

/// The real client downloads over Xet (token, reconstruction, several xorbs, never the
/// bridge), gets the exact bytes, and computes the same Xet file hash as the fake; a token
/// that has already expired when it is handed out is refreshed through the `xet-auth` route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_hf_xet_client_downloads_over_xet_from_the_fake() {
    let prepared = tokio::task::spawn_blocking(|| {
        PythonEnv::with_packages(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            &["huggingface_hub", "hf_xet"],
            &["huggingface_hub", "hf_xet"],
        )
    })
    .await
    .unwrap();
    let python = match prepared {
        Ok(python) => python,
        Err(reason) => {
            return skip(
                "RBEE_REQUIRE_HF_CLIENT",
                "huggingface_hub + hf_xet fidelity check",
                &reason,
            );
        }
    };
    let model = crate::common::pattern(5 << 20, 77);
    let changed = rbee_fake_hub::mutate_chunks(&model, 0.10, 0);
    let dir = tempfile::tempdir().unwrap();
    crate::common::write(dir.path(), "hf/org/xet/model.gguf", &model);
    crate::common::write(dir.path(), "hf/org/xet/.revisions/v2/model.gguf", &changed);
    crate::common::write(dir.path(), "hf/org/xet/fakehub.json", br#"{"xet": true}"#);
    let fx = crate::common::start_with(
        |mut c| {
            c.xet_xorb_bytes = 1 << 20;
            c
        },
        dir,
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let hf_home = tmp.path().join("hf_home");

    let got = hf_xet_download(&python, &fx.hub, &hf_home, "org/xet", "main", "model.gguf").await;
    let head = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
        .head(fx.hub.hf_resolve_url("org/xet", "main", "model.gguf"))
        .send()
        .await
        .unwrap();
    let ours = head.headers()["x-xet-hash"].to_str().unwrap().to_owned();
    assert_eq!(got["sha256"], sha256_hex(&model), "byte-identical download");
    assert_eq!(
        got["xet_hash"], ours,
        "hf_xet hashes the file as the fake does"
    );
    let counters = fx.hub.xet_counters();
    assert_eq!(counters.bridge_requests, 0, "{counters:?}");
    assert!(counters.reconstructions() >= 1, "{counters:?}");
    assert!(counters.xorb_bytes.len() >= 2, "{counters:?}");
    assert!(
        counters.xorb_bytes_total() >= model.len() as u64,
        "{counters:?}"
    );

    fx.hub.reset_counters();
    fx.hub.set_faults(vec![
        rbee_fake_hub::Fault::expire_xet_token(0)
            .path("**/xet-read-token/*")
            .times(1),
    ]);
    let got = hf_xet_download(&python, &fx.hub, &hf_home, "org/xet", "v2", "model.gguf").await;
    assert_eq!(
        got["sha256"],
        sha256_hex(&changed),
        "byte-identical download"
    );
    let counters = fx.hub.xet_counters();
    assert_eq!(counters.bridge_requests, 0, "{counters:?}");
    assert!(
        counters.token_requests >= 2,
        "the expired token was refreshed: {counters:?}"
    );
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
