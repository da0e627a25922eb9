//! The real `rbee` binary with a shared store: two "hives" (catalogs) sharing a real Garage,
//! the fake hub as the origin; and the store's commands and usage errors.

use std::path::PathBuf;
use std::process::{Command, Output};

use rbee_fake_hub::{FakeHub, FakeHubConfig, Garage};

use crate::support::text;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every `metadata.json` of a catalog, concatenated.
fn records(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            all.push_str(&records(&p));
        } else if p.file_name().is_some_and(|n| n == "metadata.json") {
            all.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    all
}

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("root/hf/org/model");
        std::fs::create_dir_all(&repo).unwrap();
        let weights: Vec<u8> = (0..12u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        std::fs::write(repo.join("model.safetensors"), weights).unwrap();
        std::fs::write(repo.join("config.json"), b"{}").unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(dir.path().join("root")))
            .await
            .unwrap();
        Env { dir, hub }
    }

    fn cache(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `rbee` with catalog `cache`, the fake hub as origin and the store's variables (when
    /// given), nothing from the developer's environment.
    fn rbee(&self, cache: &str, garage: Option<&Garage>) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.cache(cache))
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path().join("home"))
            .env("HF_HOME", self.dir.path().join("hf-home"))
            .env("HF_ENDPOINT", self.hub.url().as_str())
            .env("NO_COLOR", "1");
        for var in [
            "RBEE_CACHE_DIR",
            "HF_TOKEN",
            "RBEE_SHARED_STORE",
            "RBEE_SHARED_STORE_REQUIRED",
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_PROFILE",
        ] {
            cmd.env_remove(var);
        }
        if let Some(garage) = garage {
            for (k, v) in garage.vars() {
                if k.starts_with("AWS_") {
                    cmd.env(k, v);
                }
            }
        }
        cmd
    }
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "rbee failed: {}", text(out));
    stdout(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_store_is_a_usage_error_naming_what_to_write() {
    let env = Env::new().await;
    let out = env
        .rbee("a", None)
        .args(["--shared-store", "s3://Bad_Bucket", "pull", "hf:org/model"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("--shared-store") && stderr.contains("s3://models/rack-1"),
        "{stderr}"
    );

    let out = env
        .rbee("a", None)
        .args(["model", "list", "--shared"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("RBEE_SHARED_STORE"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_machine_pulls_from_the_store_and_the_store_can_be_listed_and_emptied() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let env = Env::new().await;
    let store = garage.store_url("cli");
    let out = env
        .rbee("hive-a", Some(garage))
        .args(["--shared-store", &store, "pull", "hf:org/model"])
        .output()
        .unwrap();
    ok(&out);
    let origin_after_a = env.hub.counters().total_bytes_sent;

    let out = env
        .rbee("hive-b", Some(garage))
        .env("RBEE_SHARED_STORE", &store)
        .args(["--json", "pull", "hf:org/model"])
        .output()
        .unwrap();
    let events = ok(&out);
    assert!(
        env.hub.counters().total_bytes_sent - origin_after_a < 64 * 1024,
        "hive B read the store"
    );
    let secret = garage.var("AWS_SECRET_ACCESS_KEY").unwrap();
    assert!(!text(&out).contains(&secret), "{events}");
    let recorded = records(&env.cache("hive-b"));
    assert!(recorded.contains("(shared store)"), "{recorded}");
    assert!(!recorded.contains(&secret));

    let listing = ok(&env
        .rbee("x", Some(garage))
        .args(["--shared-store", &store, "model", "list", "--shared"])
        .output()
        .unwrap());
    assert!(listing.contains("hf--org--model"), "{listing}");

    // Pushing an entry that is there changes nothing and uploads nothing.
    let pushed = ok(&env
        .rbee("hive-b", Some(garage))
        .args([
            "--shared-store",
            &store,
            "--json",
            "model",
            "push",
            "hf:org/model",
        ])
        .output()
        .unwrap());
    assert!(pushed.contains("\"bytes_uploaded\":0"), "{pushed}");

    ok(&env
        .rbee("x", Some(garage))
        .args([
            "--shared-store",
            &store,
            "model",
            "rm",
            "--shared",
            "hf:org/model",
        ])
        .output()
        .unwrap());
    let listing = env
        .rbee("x", Some(garage))
        .args([
            "--shared-store",
            &store,
            "--json",
            "model",
            "list",
            "--shared",
        ])
        .output()
        .unwrap();
    assert!(!ok(&listing).contains("hf--org--model"));
}
