//! The real `huggingface_hub` client (from PyPI, in a virtualenv cached under the target folder) against a hive in
//! front of fake-hub, with `HF_ENDPOINT` pointing at the hive: a file, a snapshot, model info,
//! an error code, and a gated repository without and with the hive's token.
//!
//! Skips with a message when Python or PyPI is unavailable, unless `RBEE_REQUIRE_HF_CLIENT=1`,
//! which turns the skip into a failure.

use std::path::Path;

use rbee_fake_hub::python::{PythonEnv, skip};

use crate::support::{Daemon, TestEnv};

const CHECK: &str = r#"
import os, sys
from huggingface_hub import hf_hub_download, snapshot_download, model_info
try:
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError
except ImportError:
    from huggingface_hub.utils import EntryNotFoundError, GatedRepoError
root = os.environ["FIXTURE"]

def same(path, rel):
    if open(path, "rb").read() != open(os.path.join(root, rel), "rb").read():
        sys.exit(f"{rel}: different bytes at {path}")

same(hf_hub_download("org/repo", "model.Q4_K_M.gguf"), "hf/org/repo/model.Q4_K_M.gguf")
info = model_info("org/repo", files_metadata=True)
names = sorted(s.rfilename for s in info.siblings)
if names != ["config.json", "model.Q4_K_M.gguf", "sub/tokenizer.json"]:
    sys.exit(f"model_info siblings: {names}")
if len(info.sha) != 40:
    sys.exit(f"model_info sha: {info.sha}")
snap = snapshot_download("org/repo")
for rel in names:
    same(os.path.join(snap, rel), "hf/org/repo/" + rel)
try:
    hf_hub_download("org/repo", "missing.bin")
    sys.exit("a missing file did not raise EntryNotFoundError")
except EntryNotFoundError:
    pass
if os.environ.get("HF_TOKEN"):
    same(hf_hub_download("org/gated", "model.gguf"), "hf/org/gated/model.gguf")
else:
    try:
        hf_hub_download("org/gated", "model.gguf")
        sys.exit("a gated file was served to an anonymous client")
    except GatedRepoError:
        pass
print("OK")
"#;

fn check(venv: &PythonEnv, tmp: &Path, hive: &Daemon, token: Option<&str>, fixture: &Path) {
    let mut cmd = venv.command();
    cmd.arg("-c")
        .arg(CHECK)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", tmp)
        .env("HF_HOME", tmp.join(format!("hf-{}", token.is_some())))
        .env("HF_ENDPOINT", &hive.url)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("NO_PROXY", "*")
        .env("FIXTURE", fixture);
    if let Some(token) = token {
        cmd.env("HF_TOKEN", token);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "huggingface_hub against the hive failed (token: {})\nstdout:\n{stdout}\nstderr:\n{stderr}\nhive log:\n{}",
        token.is_some(),
        hive.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_huggingface_hub_uses_the_hive_as_its_endpoint() {
    let venv = match tokio::task::spawn_blocking(|| {
        PythonEnv::with_packages(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            &["huggingface_hub"],
            &["huggingface_hub"],
        )
    })
    .await
    .unwrap()
    {
        Ok(venv) => venv,
        Err(reason) => {
            return skip(
                "RBEE_REQUIRE_HF_CLIENT",
                "huggingface_hub mirror check",
                &reason,
            );
        }
    };
    let tmp = tempfile::tempdir().unwrap();

    let env = TestEnv::new().await;
    env.write_file("hf/org/repo/model.Q4_K_M.gguf", 2_000_000);
    env.write_file("hf/org/repo/config.json", 50);
    env.write_file("hf/org/repo/sub/tokenizer.json", 70);
    env.write_file("hf/org/gated/model.gguf", 100_000);
    std::fs::write(
        env.dir.path().join("hub/hf/org/gated/fakehub.json"),
        r#"{"gated": "auto", "tokens": ["hf_hive_own"]}"#,
    )
    .unwrap();
    let fixture = env.dir.path().join("hub");

    let open = Daemon::try_start(&env, &[], &[("HF_TOKEN", "hf_hive_own")])
        .await
        .unwrap();
    let guarded = Daemon::try_start(
        &env,
        &[
            "--cache-dir",
            env.dir.path().join("cache2").to_str().unwrap(),
        ],
        &[
            ("HF_TOKEN", "hf_hive_own"),
            ("RBEE_HIVE_TOKEN", "hive-token"),
        ],
    )
    .await
    .unwrap();
    let (tmp_path, fixture_path) = (tmp.path().to_path_buf(), fixture.clone());
    tokio::task::spawn_blocking(move || {
        check(&venv, &tmp_path, &open, None, &fixture_path);
        check(
            &venv,
            &tmp_path,
            &guarded,
            Some("hive-token"),
            &fixture_path,
        );
    })
    .await
    .unwrap();
    // The origin sent the model's bytes once per hive, whatever the client asked twice.
    let sent = env
        .hub
        .counters_for("/files/hf/org/repo/model.Q4_K_M.gguf")
        .bytes_sent;
    assert!(sent <= 2 * 2_000_000 * 102 / 100, "{sent}");
}
