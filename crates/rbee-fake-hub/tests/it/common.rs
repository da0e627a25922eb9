//! Shared helpers: a hub over a temp folder, deterministic file contents, a plain client.

use std::path::Path;

use rbee_fake_hub::{FakeHub, FakeHubConfig};

pub(crate) struct Fixture {
    pub(crate) hub: FakeHub,
    /// Owns the served folder (deleted on drop).
    #[allow(dead_code)]
    pub(crate) dir: tempfile::TempDir,
}

/// Deterministic pseudo-random bytes, so a misplaced or corrupted byte shows.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub(crate) fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

pub(crate) async fn start_with(
    config: impl FnOnce(FakeHubConfig) -> FakeHubConfig,
    dir: tempfile::TempDir,
) -> Fixture {
    let hub = FakeHub::start(config(FakeHubConfig::new(dir.path())))
        .await
        .expect("fake hub starts");
    Fixture { hub, dir }
}

/// A hub serving a temp folder that holds `files`.
pub(crate) async fn start(files: &[(&str, &[u8])]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    for (rel, data) in files {
        write(dir.path(), rel, data);
    }
    start_with(|c| c, dir).await
}

/// No proxy, no redirects followed, no compression: what is on the wire.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Reads a body chunk by chunk; returns what arrived and whether it ended in an error.
pub(crate) async fn read_all(mut resp: reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut got = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

pub(crate) fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}
