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
