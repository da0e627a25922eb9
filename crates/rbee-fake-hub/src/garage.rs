//! A real Garage (the S3-compatible store of the shared-store tier) for tests, started by the
//! repository's `scripts/garage-dev.sh` on loopback: the remote half of "the world as it is"
//! for the cluster.
//!
//! Garage is an external program (`cargo install --locked garage`, about 11 minutes the first
//! time). When it is missing the test is skipped with a message on stderr, unless
//! `RBEE_REQUIRE_GARAGE=1` (CI), which makes that a failure. One Garage serves a whole test
//! binary ([`Garage::shared`]); tests keep apart by prefix.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A running single-node Garage and the variables that reach it.
#[derive(Debug)]
pub struct Garage {
    dir: PathBuf,
    _owned: Option<tempfile::TempDir>,
    env: HashMap<String, String>,
}

impl Garage {
    /// The Garage of this test binary (started on first use, stopped when the binary exits),
    /// or `None` after saying loudly why the test is skipped.
    pub fn shared() -> Option<&'static Garage> {
        static GARAGE: OnceLock<Result<Garage, String>> = OnceLock::new();
        match GARAGE.get_or_init(Garage::start) {
            Ok(garage) => Some(garage),
            Err(why) => skip(why),
        }
    }

    /// A Garage of its own, for tests that stop it.
    pub fn start_own() -> Option<Garage> {
        Garage::start_own_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// A Garage of its own listening on `host` (an address of this machine: a test network's
    /// bridge, or another loopback address).
    pub fn start_own_on(host: IpAddr) -> Option<Garage> {
        match Garage::start_on(host) {
            Ok(garage) => Some(garage),
            Err(why) => skip(&why),
        }
    }

    fn start() -> Result<Garage, String> {
        Garage::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    fn start_on(host: IpAddr) -> Result<Garage, String> {
        let script = script();
        let owned = tempfile::tempdir().map_err(|e| format!("a temp folder: {e}"))?;
        let dir = owned.path().to_path_buf();
        let [s3, rpc, admin] = free_ports(host);
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(&dir)
            .env("GARAGE_HOST", host.to_string())
            .env("GARAGE_S3_PORT", s3.to_string())
            .env("GARAGE_RPC_PORT", rpc.to_string())
            .env("GARAGE_ADMIN_PORT", admin.to_string())
            .env("GARAGE_WATCH_PID", std::process::id().to_string())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Garage {
            dir,
            _owned: Some(owned),
            env,
        })
    }

    /// A variable the script printed (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `RBEE_SHARED_STORE`).
    pub fn var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    /// Every variable the script printed.
    pub fn vars(&self) -> &HashMap<String, String> {
        &self.env
    }

    /// `s3://BUCKET/PREFIX`: a place of its own in the bucket for one test.
    pub fn store_url(&self, prefix: &str) -> String {
        format!(
            "{}/{prefix}",
            self.var("RBEE_SHARED_STORE")
                .expect("the script prints the bucket")
        )
    }

    /// Kills it at once (`kill -9`), as a power cut would: for tests of a store that dies in
    /// the middle of a transfer.
    pub fn kill(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("garage.pid")) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
        }
        self.stop();
    }

    /// Stops it (for tests of a store that goes away).
    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/garage-dev.sh")
}

fn free_ports(host: IpAddr) -> [u16; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind((host, 0)).expect("a free port"))
        .collect();
    let port = |i: usize| listeners[i].local_addr().expect("an address").port();
    [port(0), port(1), port(2)]
}

#[allow(clippy::print_stderr)]
fn skip<T>(why: &str) -> Option<T> {
    if std::env::var_os("RBEE_REQUIRE_GARAGE").is_some_and(|v| v == "1") {
        panic!("RBEE_REQUIRE_GARAGE=1 but Garage cannot be started: {why}");
    }
    eprintln!(
        "SKIPPED: this test needs Garage (cargo install --locked garage; set RBEE_REQUIRE_GARAGE=1 to make this an error): {why}"
    );
    None
}
