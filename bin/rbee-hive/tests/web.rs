//! The web page at `/`, end to end in a real headless Chromium driven over WebDriver
//! (`chromedriver` + `fantoccini`), against the real `rbee-hive` binary and the fake hub.
//!
//! The browser tests skip with a message when `/usr/bin/chromium` or `/usr/bin/chromedriver` is
//! missing (override with `RBEE_CHROMIUM` / `RBEE_CHROMEDRIVER`), unless `RBEE_REQUIRE_BROWSER=1`,
//! which `.ci/run` sets after installing Debian's `chromium` and `chromium-driver`. Screenshots
//! land in `target/web-ui/`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use rbee_artifact::Secret;
use rbee_catalog::Catalog;
use rbee_fake_hub::{FakeHub, FakeHubConfig};
use rbee_hive::{HiveConfig, HiveState, app};
use rbee_model_provisioner::{Provisioner, ProvisionerConfig, VendorRegistry};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_url::UrlVendor;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tower::ServiceExt;

/// Generous limit for things that should happen "soon" (slow CI machines).
const SOON: Duration = Duration::from_secs(30);

const MIB: usize = 1 << 20;

/// One browser at a time: two Chromiums at once would only slow each other down on small
/// machines.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// Without a browser: what the page may and may not see

fn state(dir: &Path, token: Option<&str>) -> HiveState {
    let catalog = Arc::new(Catalog::open(dir.join("cache")).unwrap());
    let transfer = TransferConfig {
        use_env_proxy: false,
        ..Default::default()
    };
    let vendors =
        VendorRegistry::new().with(Arc::new(UrlVendor::new(Transfer::new(transfer).unwrap())));
    let mut config = HiveConfig::default();
    config.token = token.and_then(Secret::new);
    HiveState::new(
        Provisioner::new(catalog, vendors, ProvisionerConfig::default()),
        config,
    )
}

async fn status_of(state: &HiveState, request: Request<Body>) -> (StatusCode, String, String) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// With a token, the page's files load without it (the page must ask for it), while the API and
/// unknown paths still refuse; without one, a foreign `Host` gets the page (it holds no data) but
/// not the API.
#[tokio::test]
async fn the_page_is_public_and_the_api_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let guarded = state(dir.path(), Some("s3cret-token"));
    for path in [
        "/",
        "/assets/app.js",
        "/assets/style.css",
        "/assets/icon.svg",
    ] {
        let (status, _, _) =
            status_of(&guarded, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (_, content_type, html) =
        status_of(&guarded, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(html.contains("<title>rbee-hive</title>"));
    for path in [
        "/v1/models",
        "/v1/jobs",
        "/favicon.ico",
        "/v1/models/download/progress",
    ] {
        let (status, _, body) =
            status_of(&guarded, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    let (status, _, _) = status_of(
        &guarded,
        Request::get("/v1/models")
            .header(header::AUTHORIZATION, "Bearer s3cret-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let open = state(dir.path(), None);
    let foreign = |path: &str| {
        Request::get(path)
            .header(header::HOST, "rebound.example:8600")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(status_of(&open, foreign("/")).await.0, StatusCode::OK);
    assert_eq!(
        status_of(&open, foreign("/v1/models")).await.0,
        StatusCode::FORBIDDEN
    );
}

// ---------------------------------------------------------------------------------------------
// The browser

/// Chromium and chromedriver, or `None` (after saying why) when the test should skip.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var_os("RBEE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    let driver = std::env::var_os("RBEE_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromedriver".into());
    if chromium.is_file() && driver.is_file() {
        return Some((chromium, driver));
    }
    let why = format!(
        "the browser test needs {} and {} (Debian: apt-get install chromium chromium-driver)",
        chromium.display(),
        driver.display()
    );
    if std::env::var_os("RBEE_REQUIRE_BROWSER").is_some_and(|v| v == "1") {
        panic!("{why}; RBEE_REQUIRE_BROWSER=1 makes that a failure");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: {why}");
    }
    None
}

/// Where screenshots go: `target/web-ui/`.
fn artifacts_dir() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_rbee-hive"));
    let target = exe.parent().and_then(Path::parent).unwrap();
    let dir = target.join("web-ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A WebDriver session in a fresh headless Chromium.
struct Browser {
    client: Client,
    driver: tokio::process::Child,
    driver_log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(chromium: &Path, driver: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let driver_log = profile.path().join("chromedriver.log");
        let port = free_port();
        let child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", driver_log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let url = format!("http://127.0.0.1:{port}");
        let probe = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let ready = probe.get(format!("{url}/status")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not come up on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let user_data = profile.path().join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                    "--disable-dev-shm-usage",
                    "--no-proxy-server",
                    "--window-size=1280,1250",
                    format!("--user-data-dir={}", user_data.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no browser session: {e}\n{}",
                    std::fs::read_to_string(&driver_log).unwrap_or_default()
                )
            });
        Browser {
            client,
            driver: child,
            driver_log,
            _profile: profile,
        }
    }
}

/// Runs `scenario` in a fresh browser and always ends the session (so no Chromium outlives a
/// failing test), then passes the scenario's panic on.
async fn with_browser<F, Fut>(scenario: F)
where
    F: FnOnce(Page) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some((chromium, driver)) = browser_binaries() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    let mut browser = Browser::start(&chromium, &driver).await;
    let page = Page {
        client: browser.client.clone(),
    };
    let outcome = AssertUnwindSafe(scenario(page)).catch_unwind().await;
    let closed = browser.client.clone().close().await;
    // Ending the session quits Chromium; then chromedriver can go (and is reaped).
    let _ = browser.driver.kill().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    if let Err(e) = closed {
        panic!(
            "closing the browser: {e}\n{}",
            std::fs::read_to_string(&browser.driver_log).unwrap_or_default()
        );
    }
}

/// The page under test.
#[derive(Clone)]
struct Page {
    client: Client,
}

impl Page {
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something other than `null`/`false`/`""`; returns it.
    async fn wait_for(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let value = self.js(script, args.clone()).await;
            let done = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if done {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                let text = self.js("return document.body.innerText", vec![]).await;
                panic!(
                    "timed out waiting for {what}; the page says:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Replaces the text of the input `css` with `text`.
    async fn fill(&self, css: &str, text: &str) {
        let input = self.client.find(Locator::Css(css)).await.unwrap();
        input.clear().await.unwrap();
        if !text.is_empty() {
            input.send_keys(text).await.unwrap();
        }
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = artifacts_dir().join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn wait_live(&self) {
        self.wait_for(
            "the download feed to connect",
            "return document.getElementById('connection').dataset.state === 'live'",
            vec![],
        )
        .await;
    }

    /// `{state, badge, pct, bytes, speed, message, id}` of the download card for `model`, once
    /// it satisfies `condition` (a JS expression over `c`, that object).
    async fn card(&self, what: &str, model: &str, condition: &str) -> Value {
        let script = format!(
            "const li = [...document.querySelectorAll('li.job')]
                 .find(li => li.querySelector('.job-model').textContent === arguments[0]);
             if (!li) return null;
             const bar = li.querySelector('[role=progressbar]');
             const c = {{
                 state: li.dataset.state,
                 id: li.dataset.jobId,
                 badge: li.querySelector('.badge').textContent,
                 value: parseFloat(bar.getAttribute('aria-valuenow')),
                 width: parseFloat(li.querySelector('.bar-fill').style.width),
                 label: bar.getAttribute('aria-label'),
                 pct: li.querySelector('.pct').textContent,
                 bytes: li.querySelector('.bytes').textContent,
                 speed: li.querySelector('.speed').textContent,
                 eta: li.querySelector('.eta').textContent,
                 message: li.querySelector('.job-message').textContent,
             }};
             return ({condition}) ? c : null;"
        );
        self.wait_for(what, &script, vec![json!(model)]).await
    }

    /// The catalog row of `reference` as `{id, status, note, vendor, cameFrom, size, path,
    /// revision, revisionTitle, files, actionNote}`, once it satisfies `condition` (over `r`).
    async fn row(&self, what: &str, reference: &str, condition: &str) -> Value {
        let script = format!(
            "const tr = [...document.querySelectorAll('#catalog-body tr')]
                 .find(tr => tr.querySelector('.ref').textContent === arguments[0]);
             if (!tr) return null;
             const cell = (label) => tr.querySelector(`td[data-label='${{label}}']`);
             const r = {{
                 id: tr.dataset.modelId,
                 status: tr.querySelector('.badge').textContent,
                 note: tr.querySelector('.status-note').textContent,
                 vendor: cell('Vendor').querySelector('span').textContent,
                 cameFrom: tr.querySelector('.came-from').textContent,
                 files: cell('Files').textContent,
                 size: cell('Size').textContent,
                 path: cell('Local path').textContent,
                 revision: cell('Revision').textContent,
                 revisionTitle: cell('Revision').querySelector('span').title,
                 actionNote: tr.querySelector('.row-note').textContent,
             }};
             return ({condition}) ? r : null;"
        );
        self.wait_for(what, &script, vec![json!(reference)]).await
    }

    /// Clicks the button with accessible name `label` (its `aria-label`).
    async fn press(&self, label: &str) {
        self.click(&format!("button[aria-label=\"{label}\"]")).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon and the hub

struct Hive {
    child: tokio::process::Child,
    url: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Hive {
    async fn start(dir: &Path, hub: &FakeHub, token: Option<&str>, args: &[&str]) -> Hive {
        std::fs::create_dir_all(dir.join("home")).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rbee-hive"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.join("home"))
            .env("HF_HOME", dir.join("home/hf"))
            .env("HF_ENDPOINT", hub.url().as_str())
            .env("RUST_LOG", "info")
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("hive.log")).unwrap())
            .kill_on_drop(true);
        if !args.contains(&"--port") {
            cmd.args(["--port", "0"]);
        }
        if let Some(token) = token {
            cmd.env("RBEE_HIVE_TOKEN", token);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(SOON, lines.next_line())
            .await
            .expect("rbee-hive did not say where it listens")
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "rbee-hive exited: {}",
                    std::fs::read_to_string(dir.join("hive.log")).unwrap_or_default()
                )
            });
        let listening: Value = serde_json::from_str(&line).unwrap();
        Hive {
            child,
            url: listening["url"].as_str().unwrap().to_string(),
            token: token.map(str::to_string),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }
}

fn noise(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}

fn write_file(hub_root: &Path, rel: &str, size: usize) {
    let path = hub_root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, noise(size, rel.len() as u64 + size as u64)).unwrap();
}

/// A hub serving two 12 MiB files and a small GGUF repo with two quantizations, its bodies
/// capped at 3 MB/s so a download lasts a few seconds.
async fn hub(dir: &Path) -> FakeHub {
    let root = dir.join("hub");
    write_file(&root, "big/model-a.gguf", 12 * MIB);
    write_file(&root, "big/model-b.gguf", 12 * MIB);
    write_file(&root, "small/tiny.gguf", 256 * 1024);
    write_file(&root, "hf/acme/tiny-GGUF/tiny.Q4_K_M.gguf", 256 * 1024);
    write_file(&root, "hf/acme/tiny-GGUF/tiny.Q8_0.gguf", 512 * 1024);
    let mut config = FakeHubConfig::new(root);
    config.rate_limit = Some(3_000_000);
    FakeHub::start(config).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// The scenarios

/// Downloads from the form and watches the bar move to `ready`, verifies, cancels a second
/// download, deletes a model, shows API and form errors next to the form, picks a quantization
/// from the form, and stays usable by keyboard and at 420 px.
#[tokio::test]
async fn download_watch_cancel_and_delete_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    // One download at a time, so a second one waits in the queue.
    let hive = Hive::start(dir.path(), &hub, None, &["--max-concurrent-downloads", "1"]).await;
    let model_a = hub.file_url("big/model-a.gguf").to_string();
    let model_b = hub.file_url("big/model-b.gguf").to_string();
    let small = hub.file_url("small/tiny.gguf").to_string();

    with_browser(|page| async move {
        page.client.goto(&format!("{}/", hive.url)).await.unwrap();
        page.wait_live().await;
        assert_eq!(page.client.title().await.unwrap(), "rbee-hive");
        page.wait_for(
            "the empty catalog",
            "return !document.getElementById('catalog-empty').hidden",
            vec![],
        )
        .await;

        // Keyboard: every control has an accessible name, and the form is in reading order.
        let unnamed = page
            .js(
                "return [...document.querySelectorAll('input, button')]
                    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                                 && !e.textContent.trim())
                    .map(e => e.outerHTML)",
                vec![],
            )
            .await;
        assert_eq!(unnamed, json!([]), "controls without a name");
        page.client
            .find(Locator::Id("ref-input"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let mut order = Vec::new();
        for _ in 0..3 {
            page.client
                .active_element()
                .await
                .unwrap()
                .send_keys(&Key::Tab)
                .await
                .unwrap();
            order.push(page.js("return document.activeElement.id", vec![]).await);
        }
        assert_eq!(
            order,
            vec![json!("quant-input"), json!("rev-input"), json!("download-button")]
        );

        // The quantization field picks the file of a HuggingFace repo.
        page.fill("#ref-input", "hf:acme/tiny-GGUF").await;
        page.fill("#quant-input", "q8_0").await;
        page.click("#download-button").await;
        assert_eq!(page.text("#download-error").await, "");
        let hf = page
            .row(
                "the HuggingFace model in the catalog",
                "hf:acme/tiny-GGUF:Q8_0",
                "r.status === 'ready'",
            )
            .await;
        assert_eq!(hf["vendor"], "HuggingFace");
        assert_eq!(hf["cameFrom"], "from the origin");
        assert_eq!(hf["files"], "tiny.Q8_0.gguf");
        let revision = hf["revisionTitle"].as_str().unwrap();
        assert_eq!(revision.len(), 40, "{hf}");
        assert_eq!(hf["revision"], &revision[..12]);

        // Start a download from the form, with the Enter key (slow enough to watch).
        hub.set_rate_limit(Some(2_000_000));
        page.fill("#ref-input", &model_a).await;
        page.client
            .find(Locator::Id("ref-input"))
            .await
            .unwrap()
            .send_keys(&Key::Enter)
            .await
            .unwrap();
        let first = page
            .card(
                "download A to show bytes",
                &model_a,
                "c.state === 'running' && c.value > 0 && c.value < 90",
            )
            .await;
        assert_eq!(first["badge"], "downloading");
        assert_eq!(first["label"], format!("Progress of {model_a}"));
        // Another download meanwhile waits for the only slot, and says so.
        page.fill("#ref-input", &small).await;
        page.click("#download-button").await;
        let queued = page
            .card("the second download to queue", &small, "c.state === 'queued'")
            .await;
        assert_eq!(queued["badge"], "queued");
        assert_eq!(queued["message"], "Waiting for a download slot");
        // The bar moves: a later read shows more, in the attribute and in the drawn width.
        let later = page
            .card(
                "the bar of download A to move",
                &model_a,
                &format!(
                    "c.state === 'running' && c.value > {} + 2 && c.width > {}",
                    first["value"], first["width"]
                ),
            )
            .await;
        assert!(
            later["bytes"].as_str().unwrap().ends_with("of 12.0 MiB"),
            "{later}"
        );
        assert!(later["pct"].as_str().unwrap().ends_with('%'), "{later}");
        page.card(
            "speed and time left",
            &model_a,
            "c.speed.endsWith('/s') && c.eta.endsWith('left') || c.state === 'done'",
        )
        .await;
        // The catalog shows the entry being downloaded with the live percentage.
        let downloading = page
            .row(
                "A in the catalog while downloading",
                &model_a,
                "r.status === 'downloading' && r.note.endsWith('%') && parseInt(r.note) >= 20",
            )
            .await;
        let shot = page.screenshot("mid-download.png").await;
        let waiting = page.card("the queued download", &small, "true").await;
        assert_eq!(waiting["state"], "queued", "still queued while A runs");
        assert!(
            std::fs::metadata(&shot).unwrap().len() > 10_000,
            "{downloading}"
        );

        let done = page
            .card("download A to be ready", &model_a, "c.state === 'done'")
            .await;
        assert_eq!(done["badge"], "ready");
        assert_eq!(done["value"], 100.0);
        page.card("the queued download to finish", &small, "c.state === 'done'")
            .await;
        let row = page
            .row("A in the catalog", &model_a, "r.status === 'ready'")
            .await;
        assert_eq!(row["vendor"], "URL");
        assert_eq!(row["size"], "12.0 MiB");
        assert_eq!(row["files"], "model-a.gguf");
        assert_eq!(row["revision"], "—");
        let path_a = PathBuf::from(row["path"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(&path_a).unwrap().len(),
            12 * MIB as u64,
            "the page shows where the file is"
        );
        let id_a = row["id"].as_str().unwrap().to_string();

        hub.set_rate_limit(Some(3_000_000));

        // Verify re-hashes the files.
        page.press(&format!("Verify {model_a}")).await;
        page.row(
            "A to be verified",
            &model_a,
            "r.actionNote.startsWith('Verified')",
        )
        .await;

        // A second, slower download, cancelled from the page.
        hub.set_rate_limit(Some(400_000));
        page.fill("#ref-input", &model_b).await;
        page.click("#download-button").await;
        let running = page
            .card(
                "download B to start",
                &model_b,
                "c.state === 'running' && c.value > 0",
            )
            .await;
        // Pause and resume it, then cancel it.
        page.press(&format!("Pause download of {model_b}")).await;
        page.card(
            "download B to pause",
            &model_b,
            "c.state === 'paused' && c.badge === 'paused'",
        )
        .await;
        page.press(&format!("Resume download of {model_b}")).await;
        page.card(
            "download B to resume",
            &model_b,
            &format!("c.state === 'running' && c.value >= {}", running["value"]),
        )
        .await;
        page.press(&format!("Cancel download of {model_b}")).await;
        let cancelled = page
            .card("download B to be cancelled", &model_b, "c.state === 'cancelled'")
            .await;
        assert_eq!(cancelled["badge"], "cancelled");
        let job = hive
            .get(&format!("/v1/jobs/{}", running["id"].as_str().unwrap()))
            .await;
        assert_eq!(job["state"], "cancelled", "{job}");
        page.row(
            "B to be kept as incomplete",
            &model_b,
            "r.status === 'incomplete' && r.note.includes('to resume')",
        )
        .await;

        // Resuming it from its catalog row finishes it.
        hub.set_rate_limit(None);
        page.press(&format!("Resume {model_b}")).await;
        page.row("B to be ready", &model_b, "r.status === 'ready'")
            .await;

        // A file changed on disk fails verification, in words, in its row.
        let mut bytes = std::fs::read(&path_a).unwrap();
        bytes[4096] ^= 0xff;
        std::fs::write(&path_a, bytes).unwrap();
        page.press(&format!("Verify {model_a}")).await;
        let failed = page
            .row(
                "A to fail verification",
                &model_a,
                "r.actionNote.startsWith('Verification failed')",
            )
            .await;
        assert!(
            failed["actionNote"]
                .as_str()
                .unwrap()
                .contains("failed verification"),
            "{failed}"
        );

        // Delete A (confirming the browser's dialog): the row and the file go.
        page.press(&format!("Delete {model_a}")).await;
        let question = page.client.get_alert_text().await.unwrap();
        assert!(question.contains(&model_a), "{question}");
        page.client.accept_alert().await.unwrap();
        page.wait_for(
            "A's row to go",
            "return !document.querySelector(`#catalog-body tr[data-model-id='${arguments[0]}']`)",
            vec![json!(id_a)],
        )
        .await;
        assert!(!path_a.exists(), "the file is gone from disk");
        let listed = hive.get("/v1/models").await;
        assert!(
            listed["models"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["id"] != id_a.as_str()),
            "{listed}"
        );

        // An API error, in plain words next to the form, with the field marked.
        page.fill("#ref-input", "hf:").await;
        page.click("#download-button").await;
        let error = page
            .wait_for(
                "the error for a bad reference",
                "return document.getElementById('download-error').textContent",
                vec![],
            )
            .await;
        let error = error.as_str().unwrap();
        assert!(
            error.starts_with("Could not start the download: invalid reference `hf:`"),
            "{error}"
        );
        assert_eq!(
            page.js(
                "return [document.getElementById('ref-input').getAttribute('aria-invalid'),
                         document.activeElement.id]",
                vec![]
            )
            .await,
            json!(["true", "ref-input"])
        );
        // A mistake the page catches itself, on the field that caused it.
        page.fill("#ref-input", "gh:ggml-org/llama.cpp").await;
        page.fill("#quant-input", "Q4_K_M").await;
        page.click("#download-button").await;
        let error = page.text("#download-error").await;
        assert!(error.contains("apply to HuggingFace references"), "{error}");
        assert_eq!(
            page.js("return document.activeElement.id", vec![]).await,
            "quant-input"
        );

        page.screenshot("catalog.png").await;

        // Narrow: nothing scrolls sideways, and catalog rows become labelled cards.
        page.client.set_window_size(420, 900).await.unwrap();
        let layout = page
            .wait_for(
                "the narrow layout",
                "const td = document.querySelector('#catalog-body td');
                 if (window.innerWidth > 420 || !td) return null;
                 return {
                     overflow: document.documentElement.scrollWidth - window.innerWidth,
                     cell: getComputedStyle(td).display,
                     label: getComputedStyle(td, '::before').content,
                     button: document.getElementById('download-button').getBoundingClientRect().width,
                     width: window.innerWidth,
                 };",
                vec![],
            )
            .await;
        assert!(layout["overflow"].as_f64().unwrap() <= 0.0, "{layout}");
        assert_eq!(layout["cell"], "grid", "{layout}");
        assert_eq!(layout["label"], "\"Model\"", "{layout}");
        assert!(
            layout["button"].as_f64().unwrap() > layout["width"].as_f64().unwrap() * 0.7,
            "{layout}"
        );
        page.screenshot("narrow.png").await;
        page.js(
            "document.getElementById('catalog-title').scrollIntoView()",
            vec![],
        )
        .await;
        page.screenshot("narrow-catalog.png").await;
    })
    .await;
}

/// Finished cards shrink and make way for the catalog; an already-present download says so; a
/// cancelled card goes once its model is ready from elsewhere; long names wrap at separators;
/// a check that could not read a file says so; a redacted signed URL is never posted again.
#[tokio::test]
async fn finished_downloads_stay_out_of_the_way_and_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let long = "small/a-rather-long-folder-name-for-a-model/with-another-long-subfolder/tiny-model-with-a-very-long-name.Q4_K_M.gguf";
    for i in 0..4 {
        write_file(
            &dir.path().join("hub"),
            &format!("small/t{i}.gguf"),
            64 * 1024,
        );
    }
    write_file(&dir.path().join("hub"), long, 64 * 1024);
    let hive = Hive::start(dir.path(), &hub, None, &[]).await;
    let small = hub.file_url("small/tiny.gguf").to_string();
    let long_url = hub.file_url(long).to_string();
    let model_b = hub.file_url("big/model-b.gguf").to_string();
    let model_a = hub.file_url("big/model-a.gguf").to_string();
    hub.set_rate_limit(None);

    with_browser(|page| async move {
        page.client.goto(&format!("{}/", hive.url)).await.unwrap();
        page.wait_live().await;

        page.fill("#ref-input", &small).await;
        page.click("#download-button").await;
        page.card("the first download", &small, "c.state === 'done'").await;
        // Again: nothing to fetch, and the card says so instead of "100% 0 B".
        page.fill("#ref-input", &small).await;
        page.click("#download-button").await;
        let again = page
            .card(
                "the repeat to be already present",
                &small,
                "c.state === 'done' && c.bytes === 'already present'",
            )
            .await;
        assert_eq!(again["pct"], "", "{again}");
        assert_eq!(again["message"], "Already present: nothing to download");

        // More downloads: finished cards are compact and only the newest few stay.
        for i in 0..4 {
            let url = hub.file_url(&format!("small/t{i}.gguf")).to_string();
            page.fill("#ref-input", &url).await;
            page.click("#download-button").await;
            page.card("a small download", &url, "c.state === 'done'").await;
        }
        page.fill("#ref-input", &long_url).await;
        page.click("#download-button").await;
        page.card("the long-named download", &long_url, "c.state === 'done'")
            .await;
        let jobs = page
            .js(
                "const cards = [...document.querySelectorAll('li.job')];
                 return {
                     cards: cards.length,
                     collapsed: cards.every(li => li.classList.contains('collapsed')
                         && getComputedStyle(li.querySelector('.bar')).display === 'none'),
                     catalogTop: document.getElementById('catalog-title').getBoundingClientRect().top + window.scrollY,
                     wraps: document.querySelector('li.job .job-model').querySelectorAll('wbr').length,
                 };",
                vec![],
            )
            .await;
        assert_eq!(jobs["cards"], 3, "{jobs}");
        assert_eq!(jobs["collapsed"], true, "{jobs}");
        assert!(jobs["catalogTop"].as_f64().unwrap() < 1300.0, "{jobs}");
        assert!(jobs["wraps"].as_u64().unwrap() > 5, "{jobs}");
        let row = page
            .row("the long-named model", &long_url, "r.status === 'ready'")
            .await;
        let path = PathBuf::from(row["path"].as_str().unwrap());

        // Narrow: the long name and path wrap, nothing scrolls sideways.
        page.client.set_window_size(420, 900).await.unwrap();
        let overflow = page
            .wait_for(
                "the narrow layout",
                "if (window.innerWidth > 420) return null;
                 return String(document.documentElement.scrollWidth - window.innerWidth);",
                vec![],
            )
            .await;
        assert!(overflow.as_str().unwrap().parse::<f64>().unwrap() <= 0.0, "{overflow}");
        page.screenshot("long-names-narrow.png").await;
        page.client.set_window_size(1280, 1250).await.unwrap();

        // A file replaced by a link is not read, and the row says so.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        page.press(&format!("Verify {long_url}")).await;
        let refused = page
            .row(
                "the refused check",
                &long_url,
                "r.actionNote.startsWith('Not verified')",
            )
            .await;
        assert!(
            refused["actionNote"].as_str().unwrap().contains("was not read"),
            "{refused}"
        );

        // A cancelled card goes once the model is ready from elsewhere.
        hub.set_rate_limit(Some(400_000));
        page.fill("#ref-input", &model_b).await;
        page.click("#download-button").await;
        let running = page
            .card("B to start", &model_b, "c.state === 'running' && c.value > 0")
            .await;
        page.press(&format!("Cancel download of {model_b}")).await;
        page.card("B to be cancelled", &model_b, "c.state === 'cancelled'")
            .await;
        hub.set_rate_limit(None);
        hive.post("/v1/models/download", json!({"model_ref": model_b}))
            .await;
        page.row("B ready from elsewhere", &model_b, "r.status === 'ready'")
            .await;
        page.wait_for(
            "the stale cancelled card to go",
            "return !document.querySelector(`li.job[data-job-id='${arguments[0]}']`)",
            vec![running["id"].clone()],
        )
        .await;

        // A signed URL is recorded redacted: the page will not post it again.
        hub.set_rate_limit(Some(400_000));
        let signed = format!("{model_a}?X-Amz-Signature=s3cr3tsig");
        let started = hive
            .post("/v1/models/download", json!({"model_ref": signed}))
            .await;
        let job_id = started["download_id"].as_str().unwrap().to_string();
        page.wait_for(
            "the signed download to run",
            "const li = document.querySelector(`li.job[data-job-id='${arguments[0]}']`);
             return li && li.dataset.state === 'running';",
            vec![json!(job_id)],
        )
        .await;
        hive.post(&format!("/v1/jobs/{job_id}/cancel"), json!({})).await;
        let redacted = format!("{model_a}?X-Amz-Signature=REDACTED");
        page.row(
            "the signed download to be incomplete",
            &redacted,
            "r.status === 'incomplete'",
        )
        .await;
        // The daemon says so in a field; the page does not guess from the text.
        let listed = hive.get("/v1/models").await;
        assert!(
            listed["models"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["reference"] == redacted.as_str() && m["reference_redacted"] == true),
            "{listed}"
        );
        let jobs_before = hive.get("/v1/jobs").await["jobs"].as_array().unwrap().len();
        page.press(&format!("Resume {redacted}")).await;
        let note = page
            .row(
                "the page to refuse the redacted URL",
                &redacted,
                "r.actionNote.includes('cannot fetch it again')",
            )
            .await;
        assert!(!note.to_string().contains("s3cr3tsig"), "{note}");
        assert_eq!(
            hive.get("/v1/jobs").await["jobs"].as_array().unwrap().len(),
            jobs_before,
            "nothing was posted"
        );
        page.screenshot("finished-cards.png").await;
    })
    .await;
}

/// A daemon with a token: the page asks for it, says when it is wrong, and once it is right
/// downloads and streams progress with it as a bearer token.
#[tokio::test]
async fn the_page_asks_for_the_token() {
    const TOKEN: &str = "hive-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let hive = Hive::start(dir.path(), &hub, Some(TOKEN), &[]).await;
    let small = hub.file_url("small/tiny.gguf").to_string();

    with_browser(|page| async move {
        page.client.goto(&format!("{}/", hive.url)).await.unwrap();
        page.wait_for(
            "the token prompt",
            "return !document.getElementById('token-panel').hidden
                 && document.getElementById('app').hidden
                 && document.activeElement.id === 'token-input'",
            vec![],
        )
        .await;
        page.screenshot("token-prompt.png").await;

        page.fill("#token-input", "not-the-token").await;
        page.client
            .find(Locator::Id("token-input"))
            .await
            .unwrap()
            .send_keys(&Key::Enter)
            .await
            .unwrap();
        let error = page
            .wait_for(
                "the wrong token to be refused",
                "return document.getElementById('token-error').textContent",
                vec![],
            )
            .await;
        assert!(
            error.as_str().unwrap().contains("was not accepted"),
            "{error}"
        );

        page.fill("#token-input", TOKEN).await;
        page.click("#token-button").await;
        page.wait_live().await;
        assert_eq!(
            page.js(
                "return [document.getElementById('token-panel').hidden,
                         document.getElementById('app').hidden,
                         document.body.innerText.includes(arguments[0])]",
                vec![json!(TOKEN)]
            )
            .await,
            json!([true, false, false])
        );

        // Downloads and their progress go through with the token.
        page.fill("#ref-input", &small).await;
        page.click("#download-button").await;
        page.card("the download to be ready", &small, "c.state === 'done'")
            .await;
        page.row("the model in the catalog", &small, "r.status === 'ready'")
            .await;

        // The token lasts for the tab: a reload goes straight to the catalog.
        page.client.refresh().await.unwrap();
        page.wait_live().await;
        page.row("the catalog after a reload", &small, "r.status === 'ready'")
            .await;

        // The daemon goes away: the page says so, and picks up again when it is back.
        let port = hive.url.rsplit(':').next().unwrap().to_string();
        let mut hive = hive;
        hive.child.kill().await.unwrap();
        let lost = page
            .wait_for(
                "the page to notice the daemon is gone",
                "const c = document.getElementById('connection');
                 return c.dataset.state === 'lost' && c.textContent",
                vec![],
            )
            .await;
        assert!(
            lost.as_str().unwrap().starts_with("Disconnected: "),
            "{lost}"
        );
        let _hive = Hive::start(dir.path(), &hub, Some(TOKEN), &["--port", &port]).await;
        page.wait_live().await;
        page.row(
            "the catalog after the restart",
            &small,
            "r.status === 'ready'",
        )
        .await;

        // Forgetting the token brings the prompt back.
        page.click("#forget-token").await;
        page.wait_for(
            "the prompt after forgetting the token",
            "return !document.getElementById('token-panel').hidden
                 && sessionStorage.getItem('rbee-hive.token') === null",
            vec![],
        )
        .await;
    })
    .await;
}

/// A model-shaped GGUF (with a chat template) at `<hub>/<rel>`.
fn write_gguf(hub_root: &Path, rel: &str) {
    use rbee_gguf::{GgmlType, GgufWriter, Value as GgufValue};
    let path = hub_root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    GgufWriter::new()
        .kv("general.architecture", GgufValue::String("llama".into()))
        .kv("llama.block_count", GgufValue::U32(2))
        .kv("llama.context_length", GgufValue::U32(4096))
        .kv("llama.embedding_length", GgufValue::U32(256))
        .kv("llama.attention.head_count", GgufValue::U32(8))
        .kv("llama.attention.head_count_kv", GgufValue::U32(2))
        .kv(
            "tokenizer.chat_template",
            GgufValue::String("{{ messages }}".into()),
        )
        .tensor("blk.0.attn_q.weight", &[256, 256], GgmlType::Q8_0)
        .tensor("blk.1.attn_q.weight", &[256, 256], GgmlType::Q8_0)
        .write_to(&path)
        .unwrap();
}

/// The summary rows (`{label: text}`) inside the element `css`, once it has some.
const SUMMARY_ROWS: &str = "const box = document.querySelector(arguments[0]);
    if (!box || box.hidden) return null;
    const rows = [...box.querySelectorAll('.model-summary > div')];
    if (!rows.length) return null;
    return Object.fromEntries(rows.map(r => [r.dataset.row, r.querySelector('dd').textContent]));";

/// A remote reference is inspected from the form (nothing downloaded), and a ready catalog
/// entry shows the same summary under Details.
#[tokio::test]
async fn the_page_shows_what_a_model_is() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("hub");
    write_gguf(&root, "models/tiny.Q8_0.gguf");
    let hub = FakeHub::start(FakeHubConfig::new(root)).await.unwrap();
    let hive = Hive::start(dir.path(), &hub, None, &[]).await;
    let model = hub.file_url("models/tiny.Q8_0.gguf").to_string();

    with_browser(|page| async move {
        page.client.goto(&format!("{}/", hive.url)).await.unwrap();
        page.wait_live().await;
        page.fill("#ref-input", &model).await;
        page.click("#inspect-button").await;
        let rows = page
            .wait_for(
                "the inspected summary",
                SUMMARY_ROWS,
                vec![json!("#inspect-summary")],
            )
            .await;
        assert_eq!(rows["Architecture"], "llama", "{rows}");
        assert_eq!(rows["Layers"], "2", "{rows}");
        assert_eq!(rows["Heads"], "8, KV heads 2", "{rows}");
        assert_eq!(rows["Context"], "4096 tokens (training)", "{rows}");
        assert_eq!(rows["Chat template"], "yes", "{rows}");
        assert!(
            rows["Quantization"].as_str().unwrap().contains("Q8_0 ×2"),
            "{rows}"
        );
        assert!(
            rows["Memory"].as_str().unwrap().contains("at ctx 4096"),
            "{rows}"
        );
        assert_eq!(page.text("#inspect-title").await, model);
        // Reading headers put nothing in the catalog.
        assert_eq!(hive.get("/v1/models").await["models"], json!([]));
        page.screenshot("inspect.png").await;

        // A failure says why, next to the form.
        page.fill("#ref-input", hub.file_url("models/missing.gguf").as_ref())
            .await;
        page.click("#inspect-button").await;
        let error = page
            .wait_for(
                "the inspect error",
                "return document.getElementById('download-error').textContent",
                vec![],
            )
            .await;
        assert!(
            error
                .as_str()
                .unwrap()
                .starts_with("Could not inspect it: "),
            "{error}"
        );
        assert_eq!(
            page.js(
                "return document.getElementById('inspect-result').hidden",
                vec![]
            )
            .await,
            json!(true),
            "the earlier summary is left up"
        );

        // Once downloaded, the catalog row shows the same summary under Details.
        hive.post("/v1/models/download", json!({"model_ref": model}))
            .await;
        page.row("the model to be ready", &model, "r.status === 'ready'")
            .await;
        page.press(&format!("Details of {model}")).await;
        let rows = page
            .wait_for(
                "the entry's summary",
                SUMMARY_ROWS,
                vec![json!("#catalog-body .row-summary")],
            )
            .await;
        assert_eq!(rows["Architecture"], "llama", "{rows}");
        assert_eq!(rows["Chat template"], "yes", "{rows}");
        page.screenshot("catalog-details.png").await;
    })
    .await;
}
