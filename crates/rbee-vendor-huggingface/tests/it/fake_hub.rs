//! Whole flows against the project's fake hub: real redirects to a second host, ranges,
//! faults and byte counters.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rbee_artifact::{ResolveOptions, ResolvedArtifact, Secret};
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_huggingface::{HfConfig, HuggingFaceVendor};

use crate::common::*;

const GOOD_TOKEN: &str = "hf_fakehub_good_token";

/// A repository: its id and its files (path, bytes).
type RepoSpec<'a> = (&'a str, &'a [(&'a str, Vec<u8>)]);

struct Hub {
    hub: FakeHub,
    /// Keeps the served folder alive.
    _root: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Hub {
    async fn start(repos: &[RepoSpec<'_>]) -> Self {
        let root = tempfile::tempdir().unwrap();
        for (repo, files) in repos {
            for (path, data) in *files {
                let p = root.path().join("hf").join(repo).join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, data).unwrap();
            }
        }
        let hub = FakeHub::start(FakeHubConfig::new(root.path()).with_hf_token(GOOD_TOKEN))
            .await
            .unwrap();
        Self {
            hub,
            _root: root,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.hub.root().join("hf").join(repo)
    }

    fn config(&self) -> HfConfig {
        HfConfig::new(self.hub.url().clone(), self.home.path())
    }

    fn vendor(&self) -> HuggingFaceVendor {
        HuggingFaceVendor::new(self.config(), transfer())
    }

    fn vendor_with(&self, config: HfConfig) -> HuggingFaceVendor {
        HuggingFaceVendor::new(config, transfer())
    }

    /// Body bytes the CDN sent for a file of `repo` on `main`.
    fn cdn_bytes(&self, repo: &str, path: &str) -> u64 {
        self.hub
            .counters_for(&format!("/files/hf/{repo}/{path}"))
            .bytes_sent
    }
}

async fn fetch(
    v: &HuggingFaceVendor,
    plan: &ResolvedArtifact,
    dest: &Path,
) -> Vec<rbee_artifact::DownloadedFile> {
    let (out, _) = download_all(v, plan, dest).await;
    out.unwrap()
}

fn paths(plan: &ResolvedArtifact) -> Vec<&str> {
    plan.files.iter().map(|f| f.path.as_str()).collect()
}

const MIB: usize = 1 << 20;

#[tokio::test]
async fn a_quant_is_downloaded_over_ranges_and_verified() {
    let q4 = bytes(3 * MIB + 123, 1);
    let q8 = bytes(5 * MIB, 2);
    let hub = Hub::start(&[(
        "org/tiny-GGUF",
        &[
            ("README.md", b"# tiny\n".to_vec()),
            ("tiny.Q4_K_M.gguf", q4.clone()),
            ("tiny.Q8_0.gguf", q8.clone()),
        ],
    )])
    .await;
    // Small chunks so the file travels as parallel ranges through the signed redirect.
    let engine = Transfer::new(TransferConfig {
        connections: 4,
        chunk_size: 256 * 1024,
        parallel_threshold: MIB as u64,
        use_env_proxy: false,
        ..TransferConfig::default()
    })
    .unwrap();
    let v = HuggingFaceVendor::new(hub.config(), engine);
    let plan = resolve(&v, "hf:org/tiny-GGUF:q4_k_m").await.unwrap();
    assert_eq!(paths(&plan), vec!["tiny.Q4_K_M.gguf"]);
    assert_eq!(plan.files[0].sha256, Some(sha(&q4)));
    let commit = plan.revision.clone().unwrap();
    assert_eq!(commit.len(), 40);

    let dest = tempfile::tempdir().unwrap();
    let files = fetch(&v, &plan, dest.path()).await;
    assert_eq!(files[0].sha256, sha(&q4));
    assert_eq!(
        std::fs::read(dest.path().join("tiny.Q4_K_M.gguf")).unwrap(),
        q4
    );
    assert_eq!(hub.cdn_bytes("org/tiny-GGUF", "tiny.Q8_0.gguf"), 0);
    let sent = hub.cdn_bytes("org/tiny-GGUF", "tiny.Q4_K_M.gguf");
    assert!(sent >= q4.len() as u64, "{sent}");
    let ranges = hub
        .hub
        .counters_for("/files/hf/org/tiny-GGUF/tiny.Q4_K_M.gguf")
        .ranges
        .len();
    assert!(ranges > 1, "expected ranged requests, saw {ranges}");
}

#[tokio::test]
async fn default_quant_split_set_and_vision_projector() {
    let hub = Hub::start(&[
        (
            "org/chat-GGUF",
            &[
                ("chat.Q2_K.gguf", bytes(1000, 1)),
                ("chat.Q4_K_M.gguf", bytes(2000, 2)),
                ("chat.Q8_0.gguf", bytes(4000, 3)),
                ("mmproj-chat-f16.gguf", bytes(500, 4)),
            ],
        ),
        (
            "org/big-GGUF",
            &[
                ("Q8_0/big-Q8_0-00001-of-00003.gguf", bytes(MIB, 5)),
                ("Q8_0/big-Q8_0-00002-of-00003.gguf", bytes(MIB, 6)),
                ("Q8_0/big-Q8_0-00003-of-00003.gguf", bytes(1234, 7)),
                ("big-Q2_K.gguf", bytes(MIB, 8)),
            ],
        ),
    ])
    .await;
    let v = hub.vendor();
    let plan = resolve(&v, "hf:org/chat-GGUF").await.unwrap();
    assert_eq!(
        paths(&plan),
        vec!["chat.Q4_K_M.gguf", "mmproj-chat-f16.gguf"]
    );
    let dest = tempfile::tempdir().unwrap();
    assert_eq!(fetch(&v, &plan, dest.path()).await.len(), 2);
    // `:fit` needs the GPUs, which the vendor does not know: refused, saying where it works.
    match resolve(&v, "hf:org/chat-GGUF:fit").await {
        Err(rbee_artifact::Error::InvalidRequest(m)) => {
            assert!(m.contains("rbee model download"), "{m}")
        }
        other => panic!("{other:?}"),
    }

    let plan = resolve(&v, "hf:org/big-GGUF:Q8_0").await.unwrap();
    assert_eq!(
        paths(&plan),
        vec![
            "Q8_0/big-Q8_0-00001-of-00003.gguf",
            "Q8_0/big-Q8_0-00002-of-00003.gguf",
            "Q8_0/big-Q8_0-00003-of-00003.gguf"
        ]
    );
    // Naming one part takes the whole set.
    let named = resolve(&v, "hf:org/big-GGUF/Q8_0/big-Q8_0-00002-of-00003.gguf")
        .await
        .unwrap();
    assert_eq!(paths(&named), paths(&plan));
    let dest = tempfile::tempdir().unwrap();
    let files = fetch(&v, &plan, dest.path()).await;
    assert_eq!(files.len(), 3);
    assert_eq!(
        std::fs::read(dest.path().join("Q8_0/big-Q8_0-00003-of-00003.gguf")).unwrap(),
        bytes(1234, 7)
    );
}

#[tokio::test]
async fn a_safetensors_repo_arrives_as_a_verified_snapshot() {
    let config = br#"{"model_type": "llama"}"#.to_vec();
    let hub = Hub::start(&[(
        "org/tiny-llama",
        &[
            (".gitattributes", b"*.safetensors filter=lfs\n".to_vec()),
            ("README.md", b"readme".to_vec()),
            ("config.json", config.clone()),
            ("generation_config.json", b"{}".to_vec()),
            ("tokenizer.json", br#"{"model": {}}"#.to_vec()),
            ("tokenizer_config.json", b"{}".to_vec()),
            ("model-00001-of-00002.safetensors", bytes(MIB, 1)),
            ("model-00002-of-00002.safetensors", bytes(MIB / 2, 2)),
            (
                "model.safetensors.index.json",
                br#"{"weight_map": {}}"#.to_vec(),
            ),
            ("original/consolidated.00.pth", bytes(1000, 3)),
        ],
    )])
    .await;
    let v = hub.vendor();
    let plan = resolve(&v, "hf:org/tiny-llama").await.unwrap();
    assert_eq!(
        paths(&plan),
        vec![
            "config.json",
            "generation_config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
    );
    // Git-stored files carry their blob id (checked before a file is put in place), LFS ones
    // their sha256.
    assert_eq!(plan.files[0].sha256, None);
    assert_eq!(
        plan.files[0].version.as_deref(),
        Some(git_oid(&config).as_str())
    );
    assert!(plan.files[2].sha256.is_some());
    let dest = tempfile::tempdir().unwrap();
    let files = fetch(&v, &plan, dest.path()).await;
    assert_eq!(files.len(), 7);
    assert_eq!(
        std::fs::read(dest.path().join("config.json")).unwrap(),
        config
    );
    assert!(!dest.path().join("original").exists());
}

#[tokio::test]
async fn revisions_branches_and_pinned_commits() {
    let hub = Hub::start(&[(
        "org/r",
        &[
            ("m.Q4_K_M.gguf", bytes(1000, 1)),
            (".revisions/dev/m.Q4_K_M.gguf", bytes(1000, 2)),
            (".revisions/refs%2Fpr%2F1/m.Q4_K_M.gguf", bytes(1000, 3)),
        ],
    )])
    .await;
    let v = hub.vendor();
    let main = resolve(&v, "hf:org/r").await.unwrap();
    let dev = resolve(&v, "hf:org/r@dev").await.unwrap();
    let pr = resolve(&v, "hf:org/r@refs/pr/1").await.unwrap();
    assert_ne!(main.revision, dev.revision);
    assert_ne!(dev.revision, pr.revision);
    assert_eq!(dev.files[0].sha256, Some(sha(&bytes(1000, 2))));
    assert_eq!(pr.files[0].sha256, Some(sha(&bytes(1000, 3))));

    // Pinned to dev's commit: the same files, the commit recorded.
    let commit = dev.revision.clone().unwrap();
    let pinned = resolve(&v, &format!("hf:org/r@{commit}")).await.unwrap();
    assert_eq!(pinned.revision.as_deref(), Some(commit.as_str()));
    let dest = tempfile::tempdir().unwrap();
    fetch(&v, &pinned, dest.path()).await;
    assert_eq!(
        std::fs::read(dest.path().join("m.Q4_K_M.gguf")).unwrap(),
        bytes(1000, 2)
    );

    // The branch moves: resolving again names the new commit and the new digest.
    std::fs::write(
        hub.repo_dir("org/r").join(".revisions/dev/m.Q4_K_M.gguf"),
        bytes(1000, 9),
    )
    .unwrap();
    let moved = resolve(&v, "hf:org/r@dev").await.unwrap();
    assert_ne!(moved.revision, dev.revision);
    assert_eq!(moved.files[0].sha256, Some(sha(&bytes(1000, 9))));

    let e = resolve(&v, "hf:org/r@nope").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    assert!(e.to_string().contains("revision `nope`"), "{e}");
}

#[tokio::test]
async fn the_hf_cache_is_filled_then_reused_without_a_byte() {
    let model = bytes(2 * MIB, 4);
    let hub = Hub::start(&[(
        "org/cached-GGUF",
        &[
            ("m.Q4_K_M.gguf", model.clone()),
            ("config.json", b"{}".to_vec()),
        ],
    )])
    .await;
    let mut writer = hub.config();
    writer.write_hf_cache = true;
    let writer = hub.vendor_with(writer);
    let all = ResolveOptions::with_globs(vec!["*".into()], vec![]);
    let plan = resolve_with(&writer, "hf:org/cached-GGUF", &all)
        .await
        .unwrap();
    let dest = tempfile::tempdir().unwrap();
    fetch(&writer, &plan, dest.path()).await;
    let sent = hub.cdn_bytes("org/cached-GGUF", "m.Q4_K_M.gguf");
    assert!(sent >= model.len() as u64);

    // huggingface_hub's layout is there.
    let repo = hub.home.path().join("hub/models--org--cached-GGUF");
    let commit = plan.revision.clone().unwrap();
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        commit
    );
    assert_eq!(
        std::fs::read(repo.join("snapshots").join(&commit).join("m.Q4_K_M.gguf")).unwrap(),
        model
    );

    // Another catalog, same machine: nothing crosses the network but the listing.
    hub.hub.reset_counters();
    let reader = hub.vendor();
    let plan = resolve_with(&reader, "hf:org/cached-GGUF", &all)
        .await
        .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let (out, events) = download_all(&reader, &plan, dest.path()).await;
    assert_eq!(out.unwrap().len(), 2);
    let mut reused = reused_paths(&events);
    reused.sort();
    assert_eq!(reused, vec!["config.json", "m.Q4_K_M.gguf"]);
    assert_eq!(hub.cdn_bytes("org/cached-GGUF", "m.Q4_K_M.gguf"), 0);
    let counters = hub.hub.counters();
    assert!(
        counters.paths.keys().all(|p| p.starts_with("/api/")),
        "only the API was asked: {:?}",
        counters.paths.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read(dest.path().join("m.Q4_K_M.gguf")).unwrap(),
        model
    );
}

#[tokio::test]
async fn private_and_gated_repos_need_the_right_token() {
    let hub = Hub::start(&[
        ("org/private", &[("m.Q4_K_M.gguf", bytes(100, 1))]),
        ("org/gated", &[("m.Q4_K_M.gguf", bytes(100, 2))]),
    ])
    .await;
    std::fs::write(
        hub.repo_dir("org/private").join("fakehub.json"),
        br#"{"private": true}"#,
    )
    .unwrap();
    std::fs::write(
        hub.repo_dir("org/gated").join("fakehub.json"),
        br#"{"gated": "manual"}"#,
    )
    .unwrap();

    let anonymous = hub.vendor();
    let e = resolve(&anonymous, "hf:org/private").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    assert!(e.to_string().contains("set HF_TOKEN"), "{e}");
    let e = resolve(&anonymous, "hf:org/gated").await.unwrap_err();
    assert_eq!(e.code(), "unauthorized");
    assert!(
        e.to_string()
            .contains(&format!("accept the licence at {}org/gated", hub.hub.url())),
        "{e}"
    );

    let mut wrong = hub.config();
    wrong.token = Secret::new("hf_wrong_token");
    let wrong = hub.vendor_with(wrong);
    let e = resolve(&wrong, "hf:org/gated").await.unwrap_err();
    assert!(e.to_string().contains("not been granted access"), "{e}");
    assert!(!format!("{e:?}").contains("hf_wrong_token"));

    let mut good = hub.config();
    good.token = Secret::new(GOOD_TOKEN);
    let good = hub.vendor_with(good);
    for repo in ["hf:org/private", "hf:org/gated"] {
        let plan = resolve(&good, repo).await.unwrap();
        let dest = tempfile::tempdir().unwrap();
        let (out, events) = download_all(&good, &plan, dest.path()).await;
        assert_eq!(out.unwrap().len(), 1, "{repo}");
        let text = format!(
            "{} {}",
            serde_json::to_string(&events).unwrap(),
            serde_json::to_string(&plan).unwrap()
        );
        assert!(!text.contains(GOOD_TOKEN));
    }
}

#[tokio::test]
async fn a_connection_cut_mid_file_resumes_to_the_right_bytes() {
    let model = bytes(4 * MIB, 6);
    let hub = Hub::start(&[("org/flaky-GGUF", &[("m.Q4_K_M.gguf", model.clone())])]).await;
    hub.hub.set_faults(vec![
        Fault::drop_after(MIB as u64)
            .path("/files/hf/org/flaky-GGUF/m.Q4_K_M.gguf")
            .times(1),
    ]);
    let v = hub.vendor();
    let plan = resolve(&v, "hf:org/flaky-GGUF").await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    let files = tokio::time::timeout(Duration::from_secs(60), fetch(&v, &plan, dest.path()))
        .await
        .expect("the download finished");
    assert_eq!(files[0].sha256, sha(&model));
    assert!(
        hub.hub
            .counters_for("/files/hf/org/flaky-GGUF/m.Q4_K_M.gguf")
            .requests
            >= 2
    );
}

/// A hub whose listing lies about a file's size or digest: nothing it serves becomes final.
#[tokio::test]
async fn listing_lies_about_size_or_digest_never_leave_a_file() {
    let data = bytes(2 * MIB, 7);
    let hub = Hub::start(&[("org/liar-GGUF", &[("liar.Q4_K_M.gguf", data.clone())])]).await;
    let other = sha(b"not these bytes").to_string();
    for (lie, kind) in [
        // The CDN's honest Content-Range then contradicts the listing.
        (Fault::listed_size(MIB as u64), "size_mismatch"),
        (Fault::listed_sha256(other), "integrity"),
    ] {
        hub.hub.set_faults(vec![lie.path("liar.Q4_K_M.gguf")]);
        let v = hub.vendor();
        let plan = resolve(&v, "hf:org/liar-GGUF:Q4_K_M").await.unwrap();
        let dest = tempfile::tempdir().unwrap();
        let (out, _) = download_all(&v, &plan, dest.path()).await;
        let err = out.unwrap_err();
        assert_eq!(err.code(), kind, "{err}");
        assert!(!dest.path().join("liar.Q4_K_M.gguf").exists());
    }
}

/// A file the Hub keeps in git (no sha256 published, only its blob id) whose bytes arrive
/// other than listed: refused as an integrity failure, and never left in place.
#[tokio::test]
async fn a_git_stored_file_whose_bytes_are_not_the_listed_ones_never_leaves_a_file() {
    let config = br#"{"model_type": "llama", "hidden_size": 4096}"#.to_vec();
    let hub = Hub::start(&[("org/configs", &[("config.json", config.clone())])]).await;
    let v = hub.vendor();

    hub.hub
        .set_faults(vec![Fault::flip_byte(10).path("config.json")]);
    let plan = resolve(&v, "hf:org/configs/config.json").await.unwrap();
    assert_eq!(plan.files[0].sha256, None, "stored in git");
    let dest = tempfile::tempdir().unwrap();
    let (out, _) = download_all(&v, &plan, dest.path()).await;
    let err = out.unwrap_err();
    assert_eq!(err.code(), "integrity", "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
    assert!(!dest.path().join("config.json").exists());

    // Served right, the same plan puts it in place.
    hub.hub.set_faults(vec![]);
    fetch(&v, &plan, dest.path()).await;
    assert_eq!(
        std::fs::read(dest.path().join("config.json")).unwrap(),
        config
    );
}

/// Names with escapes, `..` or absurd lengths in the listing are refused, shown escaped and
/// bounded, and never reach the plan or the disk.
#[tokio::test]
async fn hostile_names_in_listings_are_refused() {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.Q4_K_M.gguf", bytes(1000, 1)),
        ("b.Q5_K_M.gguf", bytes(1000, 2)),
        ("c.Q8_0.gguf", bytes(1000, 3)),
        ("d.Q6_K.gguf", bytes(1000, 4)),
    ];
    let hub = Hub::start(&[("org/names-GGUF", &files)]).await;
    let long = format!("{}.Q4_0.gguf", "x".repeat(5000));
    hub.hub.set_faults(vec![
        Fault::listed_name("\u{1b}[31mred.Q4_K_M.gguf").path("a.Q4_K_M.gguf"),
        Fault::listed_name("../../outside.Q5_K_M.gguf").path("b.Q5_K_M.gguf"),
        Fault::listed_name(long.as_str()).path("c.Q8_0.gguf"),
    ]);
    let v = hub.vendor();
    let plan = resolve(&v, "hf:org/names-GGUF:Q6_K").await.unwrap();
    assert_eq!(
        paths(&plan),
        vec!["d.Q6_K.gguf"],
        "only the safe file is planned"
    );
    let note = plan
        .notes
        .iter()
        .find(|n| n.contains("not safe relative paths"))
        .expect("a note names the refused files");
    assert!(note.contains("refused 3 file name(s)"), "{note}");
    assert!(!note.contains('\u{1b}'), "escaped: {note:?}");
    assert!(note.contains("\\u{1b}[31mred"), "{note}");
    assert!(note.len() < 1000, "bounded: {} bytes", note.len());
    // Asking for the refused file by its real name is an ordinary "not there".
    let err = resolve(&v, "hf:org/names-GGUF/a.Q4_K_M.gguf")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains('\u{1b}'), "{err}");
}
