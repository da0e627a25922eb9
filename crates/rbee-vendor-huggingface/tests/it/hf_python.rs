//! Interop with the real `huggingface_hub` client (from PyPI, in a virtualenv cached under the target folder) through
//! the HuggingFace cache, both ways:
//! - what rbee places with `write_hf_cache`, huggingface_hub finds offline;
//! - what huggingface_hub downloaded, rbee reuses without a byte from the network.
//!
//! Skips with a message when Python or PyPI is unavailable, unless `RBEE_REQUIRE_HF_CLIENT=1`,
//! which turns the skip into a failure.

use std::path::Path;

use rbee_artifact::ResolveOptions;
use rbee_fake_hub::python::{PythonEnv, skip};
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

fn python(venv: &PythonEnv, hf_home: &Path, endpoint: &str, fixture: &Path, offline: bool) {
    let out = venv
        .command()
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
    let prepared = tokio::task::spawn_blocking(|| {
        PythonEnv::with_packages(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            &["huggingface_hub"],
            &["huggingface_hub"],
        )
    })
    .await
    .unwrap();
    let venv = match prepared {
        Ok(venv) => venv,
        Err(reason) => {
            return skip(
                "RBEE_REQUIRE_HF_CLIENT",
                "huggingface_hub interop check",
                &reason,
            );
        }
    };
    let tmp = tempfile::tempdir().unwrap();

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
