//! `rbee --hive URL`: the real `rbee` binary working through a rbee-hive daemon run in this
//! test process (`rbee_hive::serve` on an ephemeral port) over a temp catalog, downloading from
//! the fake hub. Output must match embedded mode on the same catalog.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rbee_artifact::Secret;
use rbee_catalog::Catalog;
use rbee_fake_hub::{FakeHub, FakeHubConfig};
use rbee_hive::{HiveConfig, HiveState};
use rbee_model_provisioner::{Provisioner, ProvisionerConfig, VendorRegistry};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_local::LocalVendor;
use rbee_vendor_url::UrlVendor;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const MIB: usize = 1 << 20;

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("hub")).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(dir.path().join("hub")))
            .await
            .unwrap();
        Self { dir, hub }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// A hub file of `size` bytes; returns its `http://` reference and its bytes.
    fn file(&self, name: &str, size: usize) -> (String, Vec<u8>) {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(self.dir.path().join("hub").join(name), &bytes).unwrap();
        (self.hub.file_url(name).to_string(), bytes)
    }

    /// `rbee` with a clean environment (no daemon unless asked).
    fn rbee(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.current_dir(self.dir.path())
            .env_remove("RBEE_CACHE_DIR")
            .env_remove("RBEE_HIVE_URL")
            .env_remove("RBEE_HIVE_TOKEN")
            .env("HOME", self.dir.path().join("home"))
            .env("NO_COLOR", "1")
            .kill_on_drop(true);
        cmd
    }

    async fn via(&self, hive: &Hive, args: &[&str]) -> Output {
        self.rbee()
            .arg("--hive")
            .arg(&hive.url)
            .args(args)
            .output()
            .await
            .unwrap()
    }

    async fn embedded(&self, args: &[&str]) -> Output {
        self.rbee()
            .arg("--cache-dir")
            .arg(self.cache())
            .args(args)
            .output()
            .await
            .unwrap()
    }
}

/// A daemon in this process.
struct Hive {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Hive {
    async fn start(cache: &Path, token: Option<&str>) -> Hive {
        let catalog = Arc::new(Catalog::open(cache).unwrap());
        let transfer = Transfer::new(TransferConfig {
            use_env_proxy: false,
            ..Default::default()
        })
        .unwrap();
        let vendors = VendorRegistry::new()
            .with(Arc::new(LocalVendor::new()))
            .with(Arc::new(UrlVendor::new(transfer)));
        let mut config = HiveConfig::default();
        config.token = token.and_then(Secret::new);
        let state = HiveState::new(
            Provisioner::new(catalog, vendors, ProvisionerConfig::default()),
            config,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rbee_hive::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Hive {
            url,
            stop: Some(stop),
            task,
        }
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the daemon stops")
            .unwrap()
            .unwrap();
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_list_info_verify_rm_through_the_daemon_print_like_embedded_mode() {
    let env = Env::new().await;
    let (reference, bytes) = env.file("tiny.gguf", 2 * MIB);
    let hive = Hive::start(&env.cache(), None).await;

    let out = env.via(&hive, &["model", "download", &reference]).await;
    let path = ok(&out).trim().to_string();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(path.starts_with(env.cache().to_str().unwrap()), "{path}");
    assert!(stderr(&out).contains("Ready: "), "{}", stderr(&out));
    let again = env.via(&hive, &["model", "download", &reference]).await;
    assert_eq!(ok(&again).trim(), path);
    assert!(
        stderr(&again).contains("already present"),
        "{}",
        stderr(&again)
    );

    let list: Value =
        serde_json::from_str(&ok(&env.via(&hive, &["--json", "model", "list"]).await)).unwrap();
    let id = list["models"][0]["id"].as_str().unwrap().to_string();
    for args in [
        vec!["model", "list"],
        vec!["--json", "model", "list"],
        vec!["model", "info", &reference],
        vec!["--json", "model", "info", &id],
        vec!["model", "verify"],
        vec!["--json", "model", "verify", &id],
    ] {
        let remote = ok(&env.via(&hive, &args).await);
        let local = ok(&env.embedded(&args).await);
        assert_eq!(remote, local, "{args:?}");
    }
    // RBEE_HIVE_URL works like --hive.
    let out = env
        .rbee()
        .env("RBEE_HIVE_URL", &hive.url)
        .args(["model", "list"])
        .output()
        .await
        .unwrap();
    assert!(ok(&out).contains(&id));

    // A changed file fails verification, with the same report and exit status as embedded mode.
    let mut changed = bytes.clone();
    changed[10] ^= 1;
    std::fs::write(&path, &changed).unwrap();
    let remote = env.via(&hive, &["model", "verify", &id]).await;
    let local = env.embedded(&["model", "verify", &id]).await;
    assert_eq!(remote.status.code(), Some(1));
    assert_eq!(local.status.code(), Some(1));
    assert_eq!(remote.stdout, local.stdout);
    assert!(String::from_utf8_lossy(&remote.stdout).contains("FAILED"));

    let out = env.via(&hive, &["model", "rm", &id]).await;
    assert_eq!(ok(&out), format!("removed {id} (2.0 MiB freed)\n"));
    assert!(!Path::new(&path).exists());
    let out = env.via(&hive, &["--json", "model", "info", &id]).await;
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["code"], "not_found");
    hive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_progress_and_exit_codes_match_embedded_mode() {
    let env = Env::new().await;
    let (reference, _) = env.file("m.gguf", MIB);
    let hive = Hive::start(&env.cache(), None).await;

    let out = env
        .via(&hive, &["--json", "model", "download", &reference])
        .await;
    let events = json_lines(&ok(&out));
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"started"), "{names:?}");
    assert_eq!(names.last(), Some(&"completed"), "{names:?}");
    assert!(names.contains(&"file_done"), "{names:?}");
    let job = events[0]["job_id"].as_str().unwrap();
    assert!(events.iter().all(|e| e["job_id"] == job));

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["model", "download", "hf:"], 2, "invalid reference"),
        (
            vec!["model", "download", &reference, "--dry-run"],
            2,
            "--dry-run",
        ),
        (
            vec!["model", "download", &reference, "--rate-limit", "1MB"],
            2,
            "--rate-limit",
        ),
        (vec!["model", "du"], 2, "not available with --hive"),
        (
            vec!["--cache-dir", "/tmp", "model", "list"],
            2,
            "--cache-dir",
        ),
        (
            vec!["model", "info", "hf:nobody/nothing"],
            1,
            "not in the catalog",
        ),
        (
            vec!["model", "rm", "hf:nobody/nothing"],
            1,
            "not in the catalog",
        ),
    ];
    for (args, code, says) in cases {
        let out = env.via(&hive, &args).await;
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let out = env
        .rbee()
        .args(["--hive", "http://127.0.0.1:9", "model", "list"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach rbee-hive at http://127.0.0.1:9/"),
        "{}",
        stderr(&out)
    );
    hive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_the_remote_job_exits_130_and_a_rerun_resumes() {
    let env = Env::new().await;
    let (reference, bytes) = env.file("slow.gguf", 4 * MIB);
    env.hub.set_rate_limit(Some(MIB as u64));
    let hive = Hive::start(&env.cache(), None).await;

    let mut child = env
        .rbee()
        .args([
            "--hive", &hive.url, "--json", "model", "download", &reference,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut job = String::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("progress in time")
            .unwrap()
            .expect("a progress line before the end");
        let event: Value = serde_json::from_str(&line).unwrap();
        job = event["job_id"].as_str().unwrap_or(&job).to_string();
        if event["event"] == "progress" && event["bytes"].as_u64().unwrap() >= 512 * 1024 {
            break;
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("rbee exits")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(rest.last().unwrap()["event"], "cancelled", "{rest:?}");
    let view = hive.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(view["state"], "cancelled", "{view}");
    let models = hive.get("/v1/models").await;
    assert_eq!(
        models["models"][0]["status"]["state"], "incomplete",
        "{models}"
    );

    env.hub.set_rate_limit(None);
    let out = env
        .via(&hive, &["--json", "model", "download", &reference])
        .await;
    let events = json_lines(&ok(&out));
    let started = events
        .iter()
        .find(|e| e["event"] == "file_started")
        .unwrap();
    assert!(
        started["resumed_from"].as_u64().unwrap() >= 512 * 1024,
        "{started}"
    );
    let done = events.last().unwrap();
    assert_eq!(done["event"], "completed");
    let path = done["paths"][0].as_str().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    hive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_with_a_token_takes_it_from_rbee_hive_token() {
    let env = Env::new().await;
    let token = "hive-token-5e4d3c2b1a";
    let hive = Hive::start(&env.cache(), Some(token)).await;
    let out = env
        .rbee()
        .env("RBEE_HIVE_TOKEN", token)
        .args(["--hive", &hive.url, "model", "list"])
        .output()
        .await
        .unwrap();
    ok(&out);
    for wrong in [None, Some("hive-token-wrong")] {
        let mut cmd = env.rbee();
        if let Some(w) = wrong {
            cmd.env("RBEE_HIVE_TOKEN", w);
        }
        let out = cmd
            .args(["--hive", &hive.url, "--json", "model", "list"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let error: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(error["error"]["code"], "unauthorized");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("bearer token"), "{message}");
        // What to do on this side: the flag or variable that carries the token.
        assert!(message.contains("--hive-token"), "{message}");
        assert!(!stderr(&out).contains("bearer token"), "{}", stderr(&out));
        let all = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(!all.contains(token));
    }
    hive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps_lists_pauses_resumes_and_cancels_jobs_and_rm_of_a_busy_model_names_the_job() {
    let env = Env::new().await;
    let (reference, _) = env.file("slow.gguf", 8 * MIB);
    env.hub.set_rate_limit(Some(MIB as u64 / 2));
    let hive = Hive::start(&env.cache(), None).await;
    let mut child = env
        .rbee()
        .args(["--hive", &hive.url, "pull", &reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the job to be running.
    let job = loop {
        let out = env.via(&hive, &["--json", "ps"]).await;
        let doc: Value = serde_json::from_str(&ok(&out)).unwrap();
        assert_eq!(doc["version"], 1);
        let running = doc["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["state"] == "running")
            .map(|j| j["job_id"].as_str().unwrap().to_string());
        if let Some(job) = running {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let table = ok(&env.via(&hive, &["ps"]).await);
    assert!(table.starts_with("JOB"), "{table}");
    assert!(table.contains(&job) && table.contains("running"), "{table}");

    // Removing it now is refused, and the message says how to free it.
    let out = env.via(&hive, &["rm", &reference]).await;
    assert_eq!(out.status.code(), Some(1));
    let says = format!("rbee --hive {} ps cancel {job}", hive.url);
    assert!(stderr(&out).contains(&says), "{}", stderr(&out));

    let out = env.via(&hive, &["ps", "pause", &job]).await;
    assert!(ok(&out).contains(&format!("{job}: paused")));
    let out = env.via(&hive, &["ps", "resume", &job]).await;
    let line = ok(&out);
    assert!(
        line.starts_with(&format!("{job}: ")) && !line.contains("paused"),
        "{line}"
    );
    let out = env.via(&hive, &["--json", "ps", "cancel", &job]).await;
    let doc: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(doc["job"]["state"], "cancelled", "{doc}");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the pull ends with its job")
        .unwrap();
    // Cancelled is cancelled, whoever asked: the partial stays for a later pull.
    assert_eq!(status.code(), Some(130));
    hive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_another_selection_never_joins_a_running_one() {
    let env = Env::new().await;
    let (reference, bytes) = env.file("sel.bin", 4 * MIB);
    env.hub.set_rate_limit(Some(4 * MIB as u64));
    let hive = Hive::start(&env.cache(), None).await;
    let run = |args: Vec<String>| {
        let mut cmd = env.rbee();
        cmd.arg("--hive")
            .arg(&hive.url)
            .args(["--json", "model", "download"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let plain = run(vec![reference.clone()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while env.hub.counters_for("/files/sel.bin").bytes_sent == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first job never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let selected = run(vec![reference, "--include".into(), "*.bin".into()]);
    let id_of = |out: Output| -> String {
        let lines = json_lines(&ok(&out));
        lines.last().unwrap()["id"].as_str().unwrap().to_string()
    };
    let plain_id = id_of(plain.wait_with_output().await.unwrap());
    let selected_id = id_of(selected.wait_with_output().await.unwrap());
    assert_ne!(plain_id, selected_id, "the second job joined the first");
    assert!(selected_id.contains("=sel-"), "{selected_id}");
    let models = hive.get("/v1/models").await;
    let listed = models["models"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{models}");
    for m in listed {
        assert_eq!(m["status"]["state"], "ready", "{m}");
        let path = PathBuf::from(m["path"].as_str().unwrap());
        assert!(std::fs::read(path).unwrap() == bytes);
    }
    hive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_url_reaches_the_daemon_whole_and_is_shown_redacted() {
    let env = Env::new().await;
    let (_, bytes) = env.file("signed.bin", MIB);
    // A URL the CDN only serves with its signature.
    let response = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(env.hub.redirect_url("signed.bin"))
        .send()
        .await
        .unwrap();
    let signed = response.headers()["location"].to_str().unwrap().to_string();
    let sig = signed
        .split("sig=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap_or_else(|| panic!("not a signed URL: {signed}"))
        .to_string();
    let hive = Hive::start(&env.cache(), None).await;
    let out = env
        .via(&hive, &["--json", "model", "download", &signed])
        .await;
    let stdout = ok(&out);
    assert!(
        !stdout.contains(&sig) && !stderr(&out).contains(&sig),
        "{stdout}{}",
        stderr(&out)
    );
    let models = hive.get("/v1/models").await;
    assert!(!models.to_string().contains(&sig), "{models}");
    let path = PathBuf::from(models["models"][0]["path"].as_str().unwrap());
    assert!(std::fs::read(path).unwrap() == bytes);
    hive.stop().await;
}
