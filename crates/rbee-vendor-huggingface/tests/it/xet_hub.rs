//! Native Xet downloads against the fake hub with Xet on: terms rebuilt from xorbs, and the
//! bridge as the fallback for anything that goes wrong.

use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault, XetCounters};
use rbee_vendor_huggingface::HuggingFaceVendor;

use crate::common::*;

const MIB: usize = 1 << 20;
const REPO: &str = "org/xet-GGUF";
const FILE: &str = "m.Q4_K_M.gguf";

/// Bytes that do not repeat, so chunks do not dedupe within the file.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Hub {
    hub: FakeHub,
    _root: tempfile::TempDir,
    home: tempfile::TempDir,
    data: Vec<u8>,
}

impl Hub {
    async fn start(len: usize) -> Self {
        let root = tempfile::tempdir().unwrap();
        let data = noise(len, 7);
        let p = root.path().join("hf").join(REPO).join(FILE);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &data).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(root.path()).with_xet())
            .await
            .unwrap();
        Self {
            hub,
            _root: root,
            home: tempfile::tempdir().unwrap(),
            data,
        }
    }

    fn vendor(&self, xet: bool) -> HuggingFaceVendor {
        let mut c = config(self.hub.url().as_str(), self.home.path());
        c.xet = xet;
        HuggingFaceVendor::new(c, transfer())
    }

    /// Downloads the file, checks it, and returns what the hub served.
    async fn download(&self, xet: bool) -> XetCounters {
        self.download_with(&self.vendor(xet)).await
    }

    /// Downloads the file with `v` into a new folder, checks it, and returns what the hub
    /// served.
    async fn download_with(&self, v: &HuggingFaceVendor) -> XetCounters {
        let plan = resolve(v, &format!("hf:{REPO}/{FILE}")).await.unwrap();
        self.hub.reset_counters();
        let dest = tempfile::tempdir().unwrap();
        let (out, _) = download_all(v, &plan, dest.path()).await;
        let files = out.unwrap();
        assert_eq!(files[0].sha256, sha(&self.data));
        assert_eq!(std::fs::read(dest.path().join(FILE)).unwrap(), self.data);
        let mut left: Vec<_> = std::fs::read_dir(dest.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec![FILE.to_string()], "nothing else left behind");
        self.hub.xet_counters()
    }
}

#[tokio::test]
async fn a_xet_file_is_rebuilt_from_xorbs_not_the_bridge() {
    let hub = Hub::start(3 * MIB + 12_345).await;
    let c = hub.download(true).await;
    assert!(c.token_requests >= 1, "{c:?}");
    assert_eq!(c.reconstructions_v2, 1, "{c:?}");
    assert!(c.xorb_requests >= 1, "{c:?}");
    assert!(c.xorb_bytes_total() > 0, "{c:?}");
    assert_eq!(c.bridge_bytes, 0, "{c:?}");
}

#[tokio::test]
async fn without_xet_the_bridge_serves_the_file() {
    let hub = Hub::start(MIB).await;
    let c = hub.download(false).await;
    assert_eq!(
        c.token_requests + c.reconstructions() + c.xorb_requests,
        0,
        "{c:?}"
    );
    assert!(c.bridge_bytes >= MIB as u64, "{c:?}");
}

#[tokio::test]
async fn without_v2_the_v1_reconstruction_is_used() {
    let hub = Hub::start(MIB).await;
    hub.hub
        .set_faults(vec![Fault::status(404).path("cas/v2/reconstructions/*")]);
    let c = hub.download(true).await;
    assert_eq!(c.reconstructions_v1, 1, "{c:?}");
    assert_eq!(c.bridge_bytes, 0, "{c:?}");
}

#[tokio::test]
async fn a_corrupt_xorb_falls_back_to_the_bridge_and_nothing_wrong_is_kept() {
    let hub = Hub::start(2 * MIB).await;
    hub.hub
        .set_faults(vec![Fault::flip_byte(100).path("xorbs/*")]);
    let c = hub.download(true).await;
    assert!(c.xorb_requests >= 1, "{c:?}");
    assert!(c.bridge_bytes > 0, "the bridge filled in: {c:?}");
}

#[tokio::test]
async fn a_reconstruction_that_lies_about_lengths_falls_back_to_the_bridge() {
    let hub = Hub::start(2 * MIB).await;
    hub.hub.set_faults(vec![
        Fault::reconstruction_lie(1000, 0).path("cas/v2/reconstructions/*"),
    ]);
    let c = hub.download(true).await;
    assert!(c.bridge_bytes > 0, "{c:?}");
}

#[tokio::test]
async fn expired_xorb_urls_are_asked_for_again() {
    let hub = Hub::start(2 * MIB).await;
    // The presigned URLs of the first reconstruction are dead on arrival.
    hub.hub.set_faults(vec![
        Fault::expire_redirect(0)
            .path("cas/v2/reconstructions/*")
            .times(1),
    ]);
    let c = hub.download(true).await;
    assert_eq!(c.reconstructions_v2, 2, "asked once more: {c:?}");
    assert_eq!(c.bridge_bytes, 0, "{c:?}");
}

#[tokio::test]
async fn a_token_the_cas_refuses_is_replaced() {
    let hub = Hub::start(2 * MIB).await;
    // The CAS refuses the first token (expired, or revoked): a new one is fetched.
    hub.hub.set_faults(vec![
        Fault::status(401).path("cas/v2/reconstructions/*").times(1),
    ]);
    let c = hub.download(true).await;
    assert_eq!(c.token_requests, 2, "{c:?}");
    assert_eq!(c.reconstructions_v2, 2, "{c:?}");
    assert_eq!(c.bridge_bytes, 0, "{c:?}");
}

/// Two quants that share most chunks (as quants of one model do on the Hub): with the chunk
/// cache, the second fetches only the chunks the first did not have. Prints the share fetched
/// (visible with `--nocapture`).
#[tokio::test]
#[allow(clippy::print_stderr)]
async fn a_second_file_sharing_chunks_fetches_only_what_it_lacks() {
    let hub = Hub::start(3 * MIB).await;
    let second = rbee_fake_hub::mutate_chunks(&hub.data, 0.10, 0);
    let p = hub.hub.root().join("hf").join(REPO).join("m.Q5_K_M.gguf");
    std::fs::write(&p, &second).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let vendor = || {
        let mut c = config(hub.hub.url().as_str(), hub.home.path());
        c.xet_cache = Some(cache.path().join("chunks"));
        HuggingFaceVendor::new(c, transfer())
    };
    let dest = tempfile::tempdir().unwrap();
    for (file, data) in [(FILE, &hub.data), ("m.Q5_K_M.gguf", &second)] {
        let v = vendor();
        let plan = resolve(&v, &format!("hf:{REPO}/{file}")).await.unwrap();
        hub.hub.reset_counters();
        let (out, events) = download_all(&v, &plan, dest.path()).await;
        assert_eq!(out.unwrap()[0].sha256, sha(data));
        assert_eq!(&std::fs::read(dest.path().join(file)).unwrap(), data);
        let c = hub.hub.xet_counters();
        assert_eq!(c.bridge_bytes, 0, "{c:?}");
        let told = events
            .iter()
            .any(|e| format!("{e:?}").contains("bytes reused from the chunk cache"));
        assert!(told, "the download says what it reused");
        if file != FILE {
            let fetched = c.xorb_bytes_total();
            eprintln!(
                "second file: {fetched} of {} bytes fetched ({:.1}%)",
                data.len(),
                fetched as f64 * 100.0 / data.len() as f64
            );
            assert!(
                fetched * 100 <= data.len() as u64 * 15,
                "fetched {fetched} of {} bytes: {c:?}",
                data.len()
            );
        }
    }
}

#[tokio::test]
async fn the_chunk_cache_can_be_turned_off() {
    let hub = Hub::start(MIB).await;
    let cache = tempfile::tempdir().unwrap();
    let mut c = config(hub.hub.url().as_str(), hub.home.path());
    c.xet_cache = Some(cache.path().join("chunks"));
    c.xet_cache_max_bytes = 0;
    let v = HuggingFaceVendor::new(c, transfer());
    let plan = resolve(&v, &format!("hf:{REPO}/{FILE}")).await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    download_all(&v, &plan, dest.path()).await.0.unwrap();
    assert!(!cache.path().join("chunks").exists());
}

/// A xorb range answered as another range must not reach the chunk cache: the file falls back
/// to the bridge, and a second file sharing the xorb still rebuilds correctly from Xet.
#[tokio::test]
async fn a_xorb_range_answered_as_another_range_is_refused() {
    let hub = Hub::start(2 * MIB).await;
    let second = rbee_fake_hub::mutate_chunks(&hub.data, 0.10, 0);
    let p = hub.hub.root().join("hf").join(REPO).join("m.Q5_K_M.gguf");
    std::fs::write(&p, &second).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let vendor = || {
        let mut c = config(hub.hub.url().as_str(), hub.home.path());
        c.xet_cache = Some(cache.path().join("chunks"));
        HuggingFaceVendor::new(c, transfer())
    };
    let dest = tempfile::tempdir().unwrap();
    for (file, data) in [(FILE, &hub.data), ("m.Q5_K_M.gguf", &second)] {
        let v = vendor();
        let plan = resolve(&v, &format!("hf:{REPO}/{file}")).await.unwrap();
        hub.hub.reset_counters();
        if file == FILE {
            hub.hub.set_faults(vec![
                Fault::content_range("bytes 1-{end}/{total}").path("xorbs/*"),
            ]);
        } else {
            hub.hub.set_faults(vec![]);
        }
        let (out, _) = download_all(&v, &plan, dest.path()).await;
        assert_eq!(out.unwrap()[0].sha256, sha(data));
        assert_eq!(&std::fs::read(dest.path().join(file)).unwrap(), data);
        let c = hub.hub.xet_counters();
        if file == FILE {
            assert!(c.bridge_bytes > 0, "the wrong range was refused: {c:?}");
        } else {
            assert_eq!(c.bridge_bytes, 0, "{c:?}");
            assert!(c.xorb_requests >= 1, "{c:?}");
        }
    }
}

/// A CAS that once served xorb bytes that decode but are wrong: the file fails its digest and
/// comes from the bridge, and the wrong chunks do not stay in the chunk cache, so the next
/// download of the file is rebuilt from Xet alone.
#[tokio::test]
async fn chunks_of_a_file_that_failed_its_digest_are_not_served_again() {
    let hub = Hub::start(2 * MIB).await;
    let cache = tempfile::tempdir().unwrap();
    let vendor = || {
        let mut c = config(hub.hub.url().as_str(), hub.home.path());
        c.xet_cache = Some(cache.path().join("chunks"));
        HuggingFaceVendor::new(c, transfer())
    };
    for corrupt in [true, false] {
        if corrupt {
            // Inside the first chunk's bytes (stored uncompressed: noise does not compress).
            hub.hub
                .set_faults(vec![Fault::flip_byte(100).path("xorbs/*")]);
        } else {
            hub.hub.clear_faults();
        }
        let c = hub.download_with(&vendor()).await;
        if corrupt {
            assert!(c.bridge_bytes > 0, "the bridge filled in: {c:?}");
        } else {
            assert!(
                c.xorb_requests >= 1,
                "the wrong chunks were fetched again: {c:?}"
            );
            assert_eq!(
                c.bridge_bytes, 0,
                "a wrong chunk came from the cache: {c:?}"
            );
        }
    }
}

/// A file the chunk cache links to, changed in place with its size and time put back (nothing a
/// link can tell apart): the file rebuilt from it fails its digest and comes from the bridge,
/// nothing wrong is kept, and the chunks are forgotten, so the next download is rebuilt from
/// Xet alone.
#[tokio::test]
async fn a_linked_file_changed_behind_the_caches_back_is_caught_by_the_digest() {
    let hub = Hub::start(2 * MIB).await;
    let cache = tempfile::tempdir().unwrap();
    let vendor = || {
        let mut c = config(hub.hub.url().as_str(), hub.home.path());
        c.xet_cache = Some(cache.path().join("chunks"));
        HuggingFaceVendor::new(c, transfer())
    };
    let kept = tempfile::tempdir().unwrap();
    let v = vendor();
    let plan = resolve(&v, &format!("hf:{REPO}/{FILE}")).await.unwrap();
    download_all(&v, &plan, kept.path()).await.0.unwrap();
    let linked = kept.path().join(FILE);
    let modified = std::fs::metadata(&linked).unwrap().modified().unwrap();
    let mut changed = hub.data.clone();
    changed[MIB] ^= 1;
    std::fs::write(&linked, &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&linked)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    for caught in [true, false] {
        let c = hub.download_with(&vendor()).await;
        if caught {
            assert!(c.bridge_bytes > 0, "the digest caught it: {c:?}");
        } else {
            assert_eq!(
                c.bridge_bytes, 0,
                "a wrong chunk came from the cache: {c:?}"
            );
            assert!(c.xorb_requests >= 1, "{c:?}");
        }
    }
}
