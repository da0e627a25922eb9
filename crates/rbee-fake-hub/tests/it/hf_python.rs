//! Fidelity: the real `huggingface_hub` client (from PyPI, in a throw-away virtualenv)
//! downloads from the fake hub. Skips with a message when Python or PyPI is unavailable, unless
//! `RBEE_REQUIRE_HF_CLIENT=1`, which turns the skip into a failure.

use std::path::Path;
use std::process::Command;

use crate::hf::hf_fixture;

const SCRIPT: &str = include_str!("../hf_client_check.py");

fn skip(reason: &str) {
    if std::env::var_os("RBEE_REQUIRE_HF_CLIENT").is_some_and(|v| v == "1") {
        panic!("huggingface_hub fidelity check could not run: {reason}");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIPPED huggingface_hub fidelity check: {reason}");
    }
}

/// Runs `cmd` with pip and Python kept out of the home directory.
fn run(cmd: &mut Command, tmp: &Path) -> std::io::Result<std::process::Output> {
    cmd.env("PIP_NO_CACHE_DIR", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("HOME", tmp)
        .output()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_huggingface_hub_client_downloads_from_the_fake() {
    let venv_dir = tempfile::tempdir().unwrap();
    let tmp = venv_dir.path().to_path_buf();
    let venv = tmp.join("venv");
    let prepared = tokio::task::spawn_blocking({
        let tmp = tmp.clone();
        let venv = venv.clone();
        move || -> Result<(), String> {
            let out = run(
                Command::new("python3").arg("-m").arg("venv").arg(&venv),
                &tmp,
            )
            .map_err(|e| format!("python3 not found ({e})"))?;
            if !out.status.success() {
                return Err(format!(
                    "python3 -m venv failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let out = run(
                Command::new(venv.join("bin/pip")).args(["install", "--quiet", "huggingface_hub"]),
                &tmp,
            )
            .map_err(|e| format!("pip did not start ({e})"))?;
            if !out.status.success() {
                return Err(format!(
                    "pip install huggingface_hub failed (offline?): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(())
        }
    })
    .await
    .unwrap();
    if let Err(reason) = prepared {
        skip(&reason);
        return;
    }

    let (fx, _) = hf_fixture(2).await;
    let endpoint = fx.hub.url().as_str().trim_end_matches('/').to_owned();
    let root = fx.dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        run(
            Command::new(venv.join("bin/python"))
                .arg("-c")
                .arg(SCRIPT)
                .env("HF_ENDPOINT", endpoint)
                .env("HF_HOME", tmp.join("hf_home"))
                .env("HF_HUB_DISABLE_TELEMETRY", "1")
                .env("HF_HUB_DISABLE_XET", "1")
                .env_remove("HF_TOKEN")
                .env("NO_PROXY", "*")
                .env("FIXTURE", root),
            &tmp,
        )
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
