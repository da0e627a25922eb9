//! Interop with the real `huggingface_hub` client (from PyPI, in a throw-away virtualenv) through
//! the HuggingFace cache, both ways:
//! - what rbee places with `write_hf_cache`, huggingface_hub finds offline;
//! - what huggingface_hub downloaded, rbee reuses without a byte from the network.
//!
//! Skips with a message when Python or PyPI is unavailable, unless `RBEE_REQUIRE_HF_CLIENT=1`,
//! which turns the skip into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use rbee_artifact::ResolveOptions;
use rbee_fake_hub::{FakeHub, FakeHubConfig};
use rbee_vendor_huggingface::{HfConfig, HuggingFaceVendor};

use crate::common::*;

const REPO: &str = "org/interop";

/// Reads every file of the repo through huggingface_hub and checks it against the fixture.
/// Offline or online depends on the environment it runs in.
const CHECK: &str = r#"
import os, sys
from huggingface_hub import hf_hub_download, snapshot_download
root = os.environ["FIXTURE"]
files = ["m.Q4_K_M.gguf", "config.json", "sub/tokenizer.json"]
for f in files:
    p = hf_hub_download("org/interop", f)
    if open(p, "rb").read() != open(os.path.join(root, f), "rb").read():
        sys.exit(f"{f}: different bytes at {p}")
d = snapshot_download("org/interop")
for f in files:
    if not os.path.isfile(os.path.join(d, f)):
        sys.exit(f"{f}: missing from the snapshot at {d}")
print("OK")
"#;

fn skip(reason: &str) {
    if std::env::var_os("RBEE_REQUIRE_HF_CLIENT").is_some_and(|v| v == "1") {
        panic!("huggingface_hub interop check could not run: {reason}");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIPPED huggingface_hub interop check: {reason}");
    }
}

/// A virtualenv with huggingface_hub, kept out of the home directory.
fn prepare(tmp: &Path) -> Result<PathBuf, String> {
    let venv = tmp.join("venv");
    let run = |cmd: &mut Command| {
        cmd.env("PIP_NO_CACHE_DIR", "1")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("HOME", tmp)
            .output()
    };
    let out = run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        .map_err(|e| format!("python3 not found ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let out =
        run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "huggingface_hub"]))
            .map_err(|e| format!("pip did not start ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "pip install huggingface_hub failed (offline?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(venv)
}

fn python(venv: &Path, hf_home: &Path, endpoint: &str, fixture: &Path, offline: bool) {
    let out = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(CHECK)
        .env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_OFFLINE", if offline { "1" } else { "0" })
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("FIXTURE", fixture)
        .env("HOME", hf_home)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"),
        "huggingface_hub (offline: {offline}) failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hf_cache_is_shared_with_huggingface_hub_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let prepared = tokio::task::spawn_blocking({
        let tmp = tmp.path().to_path_buf();
        move || prepare(&tmp)
    })
    .await
    .unwrap();
    let venv = match prepared {
        Ok(venv) => venv,
        Err(reason) => return skip(&reason),
    };

    let root = tmp.path().join("root");
    let fixture = root.join("hf").join(REPO);
    for (path, data) in [
        ("m.Q4_K_M.gguf", bytes(1 << 20, 1)),
        ("config.json", br#"{"a": 1}"#.to_vec()),
        ("sub/tokenizer.json", br#"{"t": 2}"#.to_vec()),
    ] {
        let p = fixture.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let hub = FakeHub::start(FakeHubConfig::new(&root)).await.unwrap();
    let endpoint = hub.url().as_str().trim_end_matches('/').to_string();
    let everything = ResolveOptions::with_globs(vec!["*".into()], vec![]);

    // rbee → huggingface_hub: placed by rbee, found offline by the Python client.
    let home_a = tmp.path().join("home-a");
    let mut config = HfConfig::new(hub.url().clone(), &home_a);
    config.write_hf_cache = true;
    let v = HuggingFaceVendor::new(config, transfer());
    let plan = resolve_with(&v, &format!("hf:{REPO}"), &everything)
        .await
        .unwrap();
    let dest = tempfile::tempdir().unwrap();
    download_all(&v, &plan, dest.path()).await.0.unwrap();
    let (venv_a, home, ep, fx) = (
        venv.clone(),
        home_a.clone(),
        endpoint.clone(),
        fixture.clone(),
    );
    tokio::task::spawn_blocking(move || python(&venv_a, &home, &ep, &fx, true))
        .await
        .unwrap();

    // huggingface_hub → rbee: downloaded by the Python client, reused by rbee.
    let home_b = tmp.path().join("home-b");
    let (home, ep, fx) = (home_b.clone(), endpoint.clone(), fixture.clone());
    tokio::task::spawn_blocking(move || python(&venv, &home, &ep, &fx, false))
        .await
        .unwrap();
    hub.reset_counters();
    let v = HuggingFaceVendor::new(HfConfig::new(hub.url().clone(), &home_b), transfer());
    let plan = resolve_with(&v, &format!("hf:{REPO}"), &everything)
        .await
        .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let (out, events) = download_all(&v, &plan, dest.path()).await;
    assert_eq!(out.unwrap().len(), 3);
    let mut reused = reused_paths(&events);
    reused.sort();
    assert_eq!(
        reused,
        vec!["config.json", "m.Q4_K_M.gguf", "sub/tokenizer.json"]
    );
    let counters = hub.counters();
    assert!(
        counters.paths.keys().all(|p| p.starts_with("/api/")),
        "only the API was asked: {:?}",
        counters.paths.keys().collect::<Vec<_>>()
    );
}
