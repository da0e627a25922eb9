//! A rack of hives on a network of their own: each hive a real `rbee` process in a network
//! namespace of its own (a veth pair on a bridge this test creates, addresses in 10.77.N.0/24),
//! the fake hub as "the internet" (its responses capped in rate, not the link itself), Garage
//! on the "LAN" (the bridge).
//!
//! Where namespaces cannot be made (not root, `ip netns add` refused, or
//! `RBEE_TEST_LOOPBACK_ONLY=1`), the same cases run on distinct loopback addresses
//! (127.77.N.x) and the test says so on stderr. Namespaces, veths and the bridge are removed
//! when the test ends, passed or failed.
// The test says on stderr which network it runs on.
#![allow(clippy::print_stderr)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rbee_artifact::Sha256Digest;
use rbee_fake_hub::{FakeHub, FakeHubConfig, Garage};
use rbee_shared_store::{S3Store, SharedStore, StoreConfig, layout};
use serde_json::Value;

use crate::support::bytes;

/// Runs `ip ARGS`; the error says which command failed and why.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("`ip` cannot be run ({e}); it is in Debian's iproute2"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Tells the networks of tests running at once apart.
static NEXT_NETWORK: AtomicU32 = AtomicU32::new(0);

/// A bridge and one namespace per hive; removed on drop, whatever is left of them.
#[derive(Debug, Default)]
struct Namespaces {
    bridge: Option<String>,
    names: Vec<String>,
}

impl Namespaces {
    /// The bridge (with the hub, CDN and store addresses `.1`, `.2`, `.3` of `subnet`) and
    /// `hives` namespaces at `.11`, `.12`, …, each reaching the bridge through a veth pair.
    fn create(hives: usize, tag: &str, subnet: [u8; 3]) -> Result<Namespaces, String> {
        let mut made = Namespaces::default();
        let addr = |last: u8| format!("{}.{}.{}.{last}/24", subnet[0], subnet[1], subnet[2]);
        let bridge = format!("rbb{tag}");
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        made.bridge = Some(bridge.clone());
        for last in [1, 2, 3] {
            ip(&["addr", "add", &addr(last), "dev", &bridge])?;
        }
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..hives {
            let ns = format!("rbee-{tag}-{i}");
            ip(&["netns", "add", &ns])?;
            made.names.push(ns.clone());
            let (host_end, hive_end) = (format!("rbv{tag}h{i}"), format!("rbv{tag}n{i}"));
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &hive_end,
            ])?;
            ip(&["link", "set", &host_end, "master", &bridge])?;
            ip(&["link", "set", &host_end, "up"])?;
            // Moved into the namespace, it goes with it (and takes its peer along).
            ip(&["link", "set", &hive_end, "netns", &ns])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &addr(11 + i as u8),
                "dev",
                &hive_end,
            ])?;
            ip(&["-n", &ns, "link", "set", &hive_end, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(made)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.names {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("could not remove network namespace {ns}: {e}");
            }
        }
        if let Some(bridge) = &self.bridge
            && let Err(e) = ip(&["link", "del", bridge])
        {
            eprintln!("could not remove bridge {bridge}: {e}");
        }
    }
}

/// Where a test's hives, origin and store live.
#[derive(Debug)]
pub(crate) struct Lan {
    namespaces: Option<Namespaces>,
    /// The origin's hub and CDN, and the store: addresses of this machine.
    pub(crate) hub: IpAddr,
    pub(crate) cdn: IpAddr,
    pub(crate) store: IpAddr,
}

impl Lan {
    /// A namespace per hive where that is allowed, else distinct loopback addresses.
    pub(crate) fn new(hives: usize) -> Lan {
        let n = NEXT_NETWORK.fetch_add(1, Ordering::Relaxed);
        if std::env::var_os("RBEE_TEST_LOOPBACK_ONLY").is_some_and(|v| v == "1") {
            return Lan::loopback(n, "RBEE_TEST_LOOPBACK_ONLY=1");
        }
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        let Some(octet) = free_subnet(pid, n) else {
            return Lan::loopback(n, "no free 10.77.x.0/24 subnet");
        };
        match Namespaces::create(hives, &tag, [10, 77, octet]) {
            Ok(namespaces) => {
                eprintln!(
                    "rack: {hives} hive(s) in network namespaces rbee-{tag}-*, on bridge rbb{tag} (10.77.{octet}.0/24)"
                );
                let at = |last| IpAddr::V4(Ipv4Addr::new(10, 77, octet, last));
                Lan {
                    namespaces: Some(namespaces),
                    hub: at(1),
                    cdn: at(2),
                    store: at(3),
                }
            }
            Err(why) => Lan::loopback(n, &why),
        }
    }

    /// Every hive on this host's network; origin and store on loopback addresses of their own.
    pub(crate) fn loopback(n: u32, why: &str) -> Lan {
        let octet = (n % 250) as u8 + 1;
        eprintln!(
            "rack: NOT in network namespaces ({why}); the hives share this host's network, the origin and store listen on 127.77.{octet}.1-3"
        );
        let at = |last| IpAddr::V4(Ipv4Addr::new(127, 77, octet, last));
        Lan {
            namespaces: None,
            hub: at(1),
            cdn: at(2),
            store: at(3),
        }
    }

    /// Whether the hives run in namespaces of their own.
    pub(crate) fn isolated(&self) -> bool {
        self.namespaces.is_some()
    }

    /// `program`, run as hive `hive` (in its namespace, when there are namespaces).
    fn command(&self, hive: usize, program: &Path) -> Command {
        match &self.namespaces {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &ns.names[hive]]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }
}

/// A 10.77.x.0/24 that no interface of this machine uses yet (spread by process, so test
/// binaries running at once pick different ones).
fn free_subnet(pid: u32, n: u32) -> Option<u8> {
    let used = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .ok()?;
    let used = String::from_utf8_lossy(&used.stdout).into_owned();
    (0..250u32)
        .map(|k| ((pid.wrapping_mul(7) + n * 31 + k) % 250 + 2) as u8)
        .find(|octet| !used.contains(&format!(" 10.77.{octet}.")))
}

/// The rack: the origin (a fake hub serving `hf:org/model`), the store and the hives' folders.
pub(crate) struct Rack {
    pub(crate) lan: Lan,
    pub(crate) hub: FakeHub,
    pub(crate) garage: Garage,
    pub(crate) weights: Vec<u8>,
    dir: tempfile::TempDir,
    store: String,
}

/// How fast the origin sends each response, and how many connections a hive opens: 16 MB/s
/// for one hive, slow enough to act at half way and fast enough for CI.
const ORIGIN_RATE: u64 = 8_000_000;
const CONNECTIONS: &str = "2";

impl Rack {
    /// A rack of `hives` with a `size`-byte model at the origin; `None` (skipped) without
    /// Garage.
    pub(crate) async fn start(hives: usize, size: usize) -> Option<Rack> {
        Rack::start_on(Lan::new(hives), size).await
    }

    pub(crate) async fn start_on(lan: Lan, size: usize) -> Option<Rack> {
        let garage = Garage::start_own_on(lan.store)?;
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("origin/hf/org/model");
        std::fs::create_dir_all(&repo).unwrap();
        let weights = bytes(size, 18);
        std::fs::write(repo.join("model.safetensors"), &weights).unwrap();
        std::fs::write(repo.join("config.json"), br#"{"model_type":"llama"}"#).unwrap();
        let mut config = FakeHubConfig::new(dir.path().join("origin")).with_rate_limit(ORIGIN_RATE);
        config.hub_addr = SocketAddr::new(lan.hub, 0);
        config.cdn_addr = SocketAddr::new(lan.cdn, 0);
        let hub = FakeHub::start(config).await.unwrap();
        let store = garage.store_url("rack");
        Some(Rack {
            lan,
            hub,
            garage,
            weights,
            dir,
            store,
        })
    }

    /// Hive `i`'s catalog.
    pub(crate) fn cache(&self, hive: usize) -> PathBuf {
        self.dir.path().join(format!("hive-{hive}"))
    }

    /// Starts hive `i` downloading `hf:org/model` through the store.
    pub(crate) fn spawn(&self, hive: usize) -> HiveProcess {
        self.spawn_with_origin(hive, self.hub.url().as_str())
    }

    /// Starts hive `i` on a host that cannot reach the origin: in a namespace, its routes to
    /// the origin's addresses are refused; on loopback, it is sent to a closed port.
    pub(crate) fn spawn_without_origin(&self, hive: usize) -> HiveProcess {
        match &self.lan.namespaces {
            Some(ns) => {
                for addr in [self.lan.hub, self.lan.cdn] {
                    ip(&[
                        "-n",
                        &ns.names[hive],
                        "route",
                        "add",
                        "prohibit",
                        &format!("{addr}/32"),
                    ])
                    .unwrap();
                }
                self.spawn(hive)
            }
            None => {
                let closed = std::net::TcpListener::bind((self.lan.hub, 0)).unwrap();
                let nowhere = format!("http://{}/", closed.local_addr().unwrap());
                drop(closed);
                self.spawn_with_origin(hive, &nowhere)
            }
        }
    }

    fn spawn_with_origin(&self, hive: usize, origin: &str) -> HiveProcess {
        let program = Path::new(env!("CARGO_BIN_EXE_rbee"));
        let mut cmd = self.lan.command(hive, program);
        let log = |ext: &str| {
            std::fs::File::create(self.dir.path().join(format!("hive-{hive}.{ext}"))).unwrap()
        };
        cmd.arg("--cache-dir")
            .arg(self.cache(hive))
            .args(["--shared-store", &self.store])
            .args(["model", "download", "hf:org/model", "--connections"])
            .arg(CONNECTIONS)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path().join("home"))
            .env("HF_HOME", self.dir.path().join(format!("hf-home-{hive}")))
            .env("HF_ENDPOINT", origin)
            .env("RBEE_HIVE_NAME", format!("hive-{hive}"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log("out"))
            .stderr(log("err"));
        for var in [
            "RBEE_CACHE_DIR",
            "HF_TOKEN",
            "RBEE_SHARED_STORE",
            "RBEE_SHARED_STORE_REQUIRED",
            "AWS_PROFILE",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in self.garage.vars() {
            if k.starts_with("AWS_") {
                cmd.env(k, v);
            }
        }
        HiveProcess(cmd.spawn().expect("rbee starts"))
    }

    /// What hive `i` wrote on stderr.
    pub(crate) fn stderr(&self, hive: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("hive-{hive}.err")))
            .unwrap_or_default()
    }

    /// Bytes the origin sent.
    pub(crate) fn origin_bytes(&self) -> u64 {
        self.hub.counters().total_bytes_sent
    }

    /// The store, as a client of it (to look at or damage its objects).
    pub(crate) fn store_client(&self) -> S3Store {
        S3Store::new(StoreConfig::from_vars(&self.store, |k| self.garage.var(k)).unwrap()).unwrap()
    }

    /// The key of the weights' blob.
    pub(crate) fn weights_blob(&self) -> String {
        layout::blob(&Sha256Digest::of(&self.weights))
    }

    /// Bytes in hive `i`'s catalog folder (finished and partial files alike).
    pub(crate) fn bytes_on_disk(&self, hive: usize) -> u64 {
        walk(&self.cache(hive))
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Hive `i`'s ready entries: (their record, their files folder).
    pub(crate) fn ready(&self, hive: usize) -> Vec<(Value, PathBuf)> {
        walk(&self.cache(hive))
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "metadata.json"))
            .filter_map(|p| {
                let record: Value = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
                (record["status"]["state"] == "ready")
                    .then(|| (record, p.parent().unwrap().join("files")))
            })
            .collect()
    }

    /// Every ready entry of hive `i` holds exactly the origin's bytes; returns where the
    /// catalog says the weights came from (`None`: nothing ready).
    pub(crate) fn check_ready(&self, hive: usize) -> Option<String> {
        let ready = self.ready(hive);
        assert!(
            ready.len() <= 1,
            "hive {hive}: {} ready entries",
            ready.len()
        );
        let (record, files) = ready.into_iter().next()?;
        let (sha, _) = Sha256Digest::of_file(&files.join("model.safetensors"), |_| {}).unwrap();
        assert_eq!(
            sha,
            Sha256Digest::of(&self.weights),
            "hive {hive} has wrong weights marked ready"
        );
        let config = std::fs::read(files.join("config.json")).unwrap();
        assert_eq!(config, br#"{"model_type":"llama"}"#, "hive {hive}");
        let weights = record["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "model.safetensors")
            .expect("the weights are in the record");
        Some(weights["source"].as_str().unwrap_or("").to_string())
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A hive's `rbee` process, killed when dropped: a failed assertion must not leave hives
/// running in namespaces that are being removed.
pub(crate) struct HiveProcess(Child);

impl std::ops::Deref for HiveProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for HiveProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for HiveProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for `child` (a safety net, not a speed check).
pub(crate) async fn wait(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a hive did not finish within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `done` until it holds (a safety net, not a speed check).
async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SIZE: usize = 40 << 20;
const FINISH: Duration = Duration::from_secs(240);

fn from_store(source: &str) -> bool {
    source.ends_with("(shared store)")
}

async fn four_hives_at_once(rack: Rack) {
    let mut hives: Vec<HiveProcess> = (0..4).map(|i| rack.spawn(i)).collect();
    for (i, child) in hives.iter_mut().enumerate() {
        let status = wait(child, FINISH).await;
        assert!(status.success(), "hive {i}: {}", rack.stderr(i));
    }
    let origin = rack.origin_bytes();
    let ratio = origin as f64 / rack.weights.len() as f64;
    eprintln!(
        "rack (isolated: {}): 4 hives, origin sent {origin} bytes for {} = {ratio:.3}x",
        rack.lan.isolated(),
        rack.weights.len()
    );
    assert!(ratio <= 1.02, "origin sent {ratio:.3}x the model");
    let sources: Vec<String> = (0..4)
        .map(|i| rack.check_ready(i).expect("every hive is ready"))
        .collect();
    let from_origin = sources.iter().filter(|s| !from_store(s)).count();
    assert_eq!(
        from_origin, 1,
        "one hive fetched from the origin: {sources:?}"
    );
    for s in &sources {
        assert!(
            from_store(s)
                || s.contains(&format!("//{}:", rack.lan.hub))
                || s.contains(&format!("//{}:", rack.lan.cdn)),
            "the catalog says where the bytes came from: {s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rack_of_four_hosts_fetches_from_the_origin_once() {
    let Some(rack) = Rack::start(4, SIZE).await else {
        return;
    };
    four_hives_at_once(rack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_loopback_addresses_four_hives_fetch_from_the_origin_once() {
    let n = NEXT_NETWORK.fetch_add(1, Ordering::Relaxed);
    let Some(rack) =
        Rack::start_on(Lan::loopback(n, "this test runs the fallback"), 16 << 20).await
    else {
        return;
    };
    four_hives_at_once(rack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lease_holder_killed_at_half_way_is_replaced_and_nothing_wrong_is_ready() {
    let Some(rack) = Rack::start(3, SIZE).await else {
        return;
    };
    let size = rack.weights.len() as u64;
    let mut hives: Vec<HiveProcess> = (0..3).map(|i| rack.spawn(i)).collect();
    until("the origin sending half the model", FINISH, || {
        rack.origin_bytes() >= size / 2
    })
    .await;
    // The holder is the hive with bytes on its disk; the others wait for it.
    let holder = (0..3).max_by_key(|&i| rack.bytes_on_disk(i)).unwrap();
    assert!(rack.bytes_on_disk(holder) > 0);
    let at_kill = rack.origin_bytes();
    hives[holder].kill().unwrap();
    hives[holder].wait().unwrap();
    eprintln!(
        "rack: killed the holder, hive {holder}, with -9 at {at_kill} of {size} origin bytes"
    );
    assert!(
        at_kill < size,
        "the holder died half way, not after its download"
    );
    for (i, child) in hives.iter_mut().enumerate() {
        if i != holder {
            let status = wait(child, FINISH).await;
            assert!(status.success(), "hive {i}: {}", rack.stderr(i));
        }
    }
    let origin = rack.origin_bytes();
    let ratio = origin as f64 / size as f64;
    eprintln!("rack: origin sent {ratio:.3}x the model with one holder killed");
    assert!(ratio <= 1.6, "origin sent {ratio:.3}x the model");
    assert!(
        rack.ready(holder).is_empty(),
        "the killed hive has nothing ready"
    );
    let sources: Vec<String> = (0..3)
        .filter(|&i| i != holder)
        .map(|i| rack.check_ready(i).expect("the living hives are ready"))
        .collect();
    assert_eq!(
        sources.iter().filter(|s| !from_store(s)).count(),
        1,
        "another hive took over the origin fetch: {sources:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_killed_mid_transfer_is_passed_over_and_nothing_corrupt_is_ready() {
    let Some(rack) = Rack::start(3, SIZE).await else {
        return;
    };
    let size = rack.weights.len() as u64;
    let mut hives: Vec<HiveProcess> = (0..3).map(|i| rack.spawn(i)).collect();
    until("the origin sending half the model", FINISH, || {
        rack.origin_bytes() >= size / 2
    })
    .await;
    let at_kill = rack.origin_bytes();
    rack.garage.kill();
    eprintln!("rack: killed Garage at {at_kill} of {size} origin bytes");
    assert!(
        at_kill < size,
        "the store died during the transfer, not after it"
    );
    for (i, child) in hives.iter_mut().enumerate() {
        let status = wait(child, FINISH).await;
        assert!(status.success(), "hive {i}: {}", rack.stderr(i));
        let source = rack.check_ready(i).expect("every hive is ready");
        assert!(!from_store(&source), "hive {i}: {source}");
    }
    // Each hive said why it went to the origin (or why it could not publish).
    for i in 0..3 {
        let stderr = rack.stderr(i);
        assert!(
            stderr.contains("warning") && stderr.contains("shared store"),
            "hive {i}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_a_stored_object_is_refetched_and_replaced_and_the_store_then_serves_alone()
 {
    let Some(rack) = Rack::start(3, 24 << 20).await else {
        return;
    };
    let mut first = rack.spawn(0);
    assert!(
        wait(&mut first, FINISH).await.success(),
        "{}",
        rack.stderr(0)
    );
    assert!(!from_store(&rack.check_ready(0).unwrap()));

    // Someone (a disk, a hostile writer) flips one byte of the stored weights.
    let store = rack.store_client();
    let blob = rack.weights_blob();
    let mut bad = rack.weights.clone();
    let middle = bad.len() / 3;
    bad[middle] ^= 0x20;
    store.put(&blob, bad.into(), false).await.unwrap();

    let before = rack.origin_bytes();
    let mut second = rack.spawn(1);
    assert!(
        wait(&mut second, FINISH).await.success(),
        "{}",
        rack.stderr(1)
    );
    let source = rack.check_ready(1).expect("ready, with the origin's bytes");
    assert!(!from_store(&source), "{source}");
    assert!(
        rack.stderr(1).contains("corrupt"),
        "the damage is reported: {}",
        rack.stderr(1)
    );
    assert!(rack.origin_bytes() - before >= rack.weights.len() as u64);
    assert_eq!(
        store.size(&blob).await.unwrap(),
        Some(rack.weights.len() as u64),
        "the blob was replaced"
    );

    // With the origin out of reach, a third host provisions from the store alone: the
    // replaced blob is whole.
    let after = rack.origin_bytes();
    let mut third = rack.spawn_without_origin(2);
    assert!(
        wait(&mut third, FINISH).await.success(),
        "{}",
        rack.stderr(2)
    );
    let source = rack.check_ready(2).expect("ready from the store alone");
    assert!(from_store(&source), "{source}");
    assert!(
        rack.stderr(2)
            .contains("from the manifest in the shared store"),
        "{}",
        rack.stderr(2)
    );
    assert_eq!(rack.origin_bytes(), after, "the origin was not reached");
}
