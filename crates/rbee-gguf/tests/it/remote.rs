//! Remote inspection against the fake hub: real redirects to a CDN host, ranges, faults,
//! private repositories, and byte counters showing what was read.

use std::path::Path;
use std::time::Duration;

use rbee_artifact::{ArtifactRef, Error, Secret};
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use rbee_gguf::{
    GgmlType, GgufError, GgufWriter, Inspection, Items, ModelSummary, RemoteOptions, Value, array,
    inspect_remote, string_array,
};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_huggingface::{HfConfig, HuggingFaceVendor};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "hf_gguf_inspect_token";

fn transfer() -> Transfer {
    Transfer::new(TransferConfig {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(2),
        stall_timeout: Duration::from_secs(10),
        use_env_proxy: false,
        ..TransferConfig::default()
    })
    .unwrap()
}

struct Hub {
    hub: FakeHub,
    _root: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Hub {
    async fn start() -> Hub {
        let root = tempfile::tempdir().unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(root.path()).with_hf_token(TOKEN))
            .await
            .unwrap();
        Hub {
            hub,
            _root: root,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, repo: &str, file: &str) -> std::path::PathBuf {
        let p = self.hub.root().join("hf").join(repo).join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    fn vendor(&self, token: Option<&str>) -> HuggingFaceVendor {
        let mut config = HfConfig::new(self.hub.url().clone(), self.home.path());
        config.token = token.and_then(Secret::new);
        HuggingFaceVendor::new(config, transfer())
    }

    async fn inspect(&self, reference: &str, token: Option<&str>) -> Result<Inspection, GgufError> {
        let r: ArtifactRef = reference.parse().unwrap();
        inspect_remote(
            &self.vendor(token),
            &transfer(),
            &r,
            &RemoteOptions::default(),
            &CancellationToken::new(),
        )
        .await
    }

    /// Range requests and body bytes the CDN served for a file.
    fn served(&self, repo: &str, file: &str) -> (u64, u64) {
        let c = self.hub.counters_for(&format!("/files/hf/{repo}/{file}"));
        (c.ranges.len() as u64, c.bytes_sent)
    }
}

/// A Llama 3 shaped model: a 128256-token BPE vocabulary with 280147 merges before 291
/// tensor infos (a header of about 7 MiB), tensor data as a hole.
fn llama3_like(path: &Path) -> u64 {
    let tokens: Vec<String> = (0..128_256).map(|i| format!("Ġtok{i}")).collect();
    let merges: Vec<String> = (0..280_147)
        .map(|i| format!("Ġa{} b{}", i % 977, i % 991))
        .collect();
    let mut w = GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("general.name", Value::String("Llama-like".into()))
        .kv("general.license", Value::String("llama3".into()))
        .kv("general.file_type", Value::U32(15))
        .kv("llama.block_count", Value::U32(32))
        .kv("llama.context_length", Value::U32(8192))
        .kv("llama.embedding_length", Value::U32(4096))
        .kv("llama.feed_forward_length", Value::U32(14336))
        .kv("llama.attention.head_count", Value::U32(32))
        .kv("llama.attention.head_count_kv", Value::U32(8))
        .kv("llama.rope.freq_base", Value::F32(500000.0))
        .kv("llama.rope.dimension_count", Value::U32(128))
        .kv("tokenizer.ggml.model", Value::String("gpt2".into()))
        .kv("tokenizer.ggml.pre", Value::String("llama-bpe".into()))
        .kv("tokenizer.ggml.tokens", string_array(tokens))
        .kv(
            "tokenizer.ggml.token_type",
            array(Items::I32(vec![1; 128_256])),
        )
        .kv("tokenizer.ggml.merges", string_array(merges))
        .kv("tokenizer.ggml.bos_token_id", Value::U32(128_000))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(128_009))
        .kv(
            "tokenizer.chat_template",
            Value::String("{{ messages }}".into()),
        )
        .tensor("token_embd.weight", &[4096, 128_256], GgmlType(12));
    for i in 0..32 {
        for (name, dims, t) in [
            ("attn_norm", vec![4096], GgmlType::F32),
            ("attn_q", vec![4096, 4096], GgmlType(12)),
            ("attn_k", vec![4096, 1024], GgmlType(12)),
            ("attn_v", vec![4096, 1024], GgmlType(14)),
            ("attn_output", vec![4096, 4096], GgmlType(12)),
            ("ffn_norm", vec![4096], GgmlType::F32),
            ("ffn_gate", vec![4096, 14336], GgmlType(12)),
            ("ffn_up", vec![4096, 14336], GgmlType(12)),
            ("ffn_down", vec![14336, 4096], GgmlType(14)),
        ] {
            w = w.tensor(format!("blk.{i}.{name}.weight"), &dims, t);
        }
    }
    w = w
        .tensor("output_norm.weight", &[4096], GgmlType::F32)
        .tensor("output.weight", &[4096, 128_256], GgmlType(14));
    w.write_to(path).unwrap();
    w.header_bytes().len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_header_takes_three_range_requests_and_little_more_than_its_bytes() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let hub = Hub::start().await;
    let file = "Llama-like.Q4_K_M.gguf";
    let header = llama3_like(&hub.path("org/llama", file));
    let i = hub.inspect("hf:org/llama:Q4_K_M", None).await.unwrap();
    let (requests, bytes) = hub.served("org/llama", file);
    assert!(requests <= 3, "{requests} range requests");
    assert!(
        bytes <= header + (1 << 20),
        "{bytes} bytes read for a {header}-byte header"
    );
    assert_eq!(i.files[0].requests, Some(requests));
    let ModelSummary::Gguf(s) = &i.summary else {
        panic!()
    };
    assert_eq!(s.architecture.as_deref(), Some("llama"));
    assert_eq!(s.file_type.as_deref(), Some("Q4_K_M"));
    assert_eq!(
        (s.layers, s.heads, s.kv_heads),
        (Some(32), Some(32), Some(8))
    );
    let t = s.tokenizer.as_ref().unwrap();
    assert_eq!((t.vocab_size, t.merges), (128_256, Some(280_147)));
    assert_eq!(t.bos.as_ref().unwrap().text.as_deref(), Some("Ġtok128000"));
    assert!(s.chat_template);
    assert_eq!(i.chat_template(), Some("{{ messages }}"));
    assert!(
        (8_000_000_000..8_100_000_000).contains(&s.parameters),
        "{}",
        s.parameters
    );
    assert!(i.revision.is_some());
    // No byte of tensor data was needed, and nothing was written to the HF cache.
    assert!(std::fs::read_dir(hub.home.path()).unwrap().next().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_without_a_vocabulary_takes_one_small_request() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let hub = Hub::start().await;
    let file = "tiny.Q8_0.gguf";
    let mut w = GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("llama.block_count", Value::U32(22))
        .kv("llama.embedding_length", Value::U32(2048))
        .kv("llama.attention.head_count", Value::U32(32))
        .kv("llama.attention.head_count_kv", Value::U32(4));
    for i in 0..22 {
        w = w.tensor(
            format!("blk.{i}.attn_q.weight"),
            &[2048, 2048],
            GgmlType::Q8_0,
        );
    }
    w.write_to(&hub.path("org/tiny", file)).unwrap();
    let i = hub.inspect("hf:org/tiny", None).await.unwrap();
    let (requests, bytes) = hub.served("org/tiny", file);
    assert_eq!(requests, 1);
    assert!(bytes <= 256 << 10, "{bytes}");
    assert!(i.estimate(&Default::default()).unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_repos_need_the_token_which_never_reaches_the_cdn() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let hub = Hub::start().await;
    let file = "m.Q4_0.gguf";
    GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .tensor("output.weight", &[64, 64], GgmlType::F16)
        .write_to(&hub.path("org/private", file))
        .unwrap();
    std::fs::write(
        hub.path("org/private", "fakehub.json"),
        format!(r#"{{"private": true, "tokens": ["{TOKEN}"]}}"#),
    )
    .unwrap();
    let err = hub.inspect("hf:org/private", None).await.unwrap_err();
    assert!(
        matches!(
            err,
            GgufError::Remote(Error::Unauthorized { .. })
                | GgufError::Remote(Error::NotFound { .. })
        ),
        "{err}"
    );
    assert!(!err.to_string().contains(TOKEN));
    // With the token: the hub gets it, the CDN (another host, which refuses an
    // Authorization header beside its signature) does not.
    let i = hub.inspect("hf:org/private", Some(TOKEN)).await.unwrap();
    assert_eq!(i.files.len(), 1);
    let (requests, _) = hub.served("org/private", file);
    assert_eq!(requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_retried_and_ignored_ranges_read_through() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let hub = Hub::start().await;
    let file = "Llama-like.Q4_K_M.gguf";
    llama3_like(&hub.path("org/llama", file));
    // The first response is cut after 100 KiB, the second answers 503.
    hub.hub.set_faults(vec![
        Fault::drop_after(100 << 10)
            .path(format!("*{file}"))
            .times(1),
        Fault::status(503).path(format!("*{file}")).times(1),
    ]);
    let i = hub.inspect("hf:org/llama:Q4_K_M", None).await.unwrap();
    let ModelSummary::Gguf(s) = &i.summary else {
        panic!()
    };
    assert_eq!(s.layers, Some(32));
    // A server that ignores Range sends the file from the start; the reader takes what it
    // needs and hangs up.
    hub.hub.clear_faults();
    hub.hub
        .set_faults(vec![Fault::ignore_range().path(format!("*{file}"))]);
    let i = hub.inspect("hf:org/llama:Q4_K_M", None).await.unwrap();
    let ModelSummary::Gguf(s) = &i.summary else {
        panic!()
    };
    assert_eq!(s.tokenizer.as_ref().unwrap().merges, Some(280_147));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_models_are_read_shard_by_shard() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let hub = Hub::start().await;
    for (no, name) in [
        (0u16, "big-Q4_0-00001-of-00002.gguf"),
        (1, "big-Q4_0-00002-of-00002.gguf"),
    ] {
        let mut w = GgufWriter::new()
            .kv("general.architecture", Value::String("llama".into()))
            .kv("split.no", Value::U16(no))
            .kv("split.count", Value::U16(2))
            .kv("llama.block_count", Value::U32(2))
            .kv("llama.embedding_length", Value::U32(256))
            .kv("llama.attention.head_count", Value::U32(4));
        w = w.tensor(
            format!("blk.{no}.attn_q.weight"),
            &[256, 256],
            GgmlType::Q4_0,
        );
        w.write_to(&hub.path("org/split", name)).unwrap();
    }
    let i = hub.inspect("hf:org/split:Q4_0", None).await.unwrap();
    assert_eq!(i.files.len(), 2);
    let ModelSummary::Gguf(s) = &i.summary else {
        panic!()
    };
    assert_eq!(s.shards, 2);
    assert_eq!(s.parameters, 2 * 256 * 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_foreign_files_are_clear_errors() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let hub = Hub::start().await;
    let w = GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .tensor("output.weight", &[4096, 4096], GgmlType::F16);
    // Only the header: the tensor data is missing.
    std::fs::write(hub.path("org/cut", "m.Q4_0.gguf"), w.header_bytes()).unwrap();
    let err = hub.inspect("hf:org/cut", None).await.unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("output.weight"), "{err}");
    std::fs::write(
        hub.path("org/zip", "m.Q4_0.gguf"),
        b"PK\x03\x04not a model at all",
    )
    .unwrap();
    let err = hub.inspect("hf:org/zip", None).await.unwrap_err();
    assert!(matches!(err, GgufError::NotGguf { .. }), "{err}");
}

/// A safetensors file with these tensors `(name, dtype, shape)`, zero data.
fn safetensors(path: &Path, tensors: &[(&str, &str, &[u64])]) {
    let mut header = serde_json::Map::new();
    let mut pos = 0u64;
    for (name, dtype, shape) in tensors {
        let bytes = shape.iter().product::<u64>() * rbee_gguf::dtype_bits(dtype).unwrap() / 8;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [pos, pos + bytes]}),
        );
        pos += bytes;
    }
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.resize(out.len() + pos as usize, 0);
    std::fs::write(path, out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safetensors_headers_take_one_request_per_shard() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let hub = Hub::start().await;
    let repo = "org/st";
    std::fs::write(
        hub.path(repo, "config.json"),
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 1000, "max_position_embeddings": 4096, "torch_dtype": "bfloat16",
            "intermediate_size": 512
        })
        .to_string(),
    )
    .unwrap();
    safetensors(
        &hub.path(repo, "model-00001-of-00002.safetensors"),
        &[
            ("model.embed_tokens.weight", "BF16", &[1000, 256]),
            ("model.layers.0.mlp.up_proj.weight", "BF16", &[512, 256]),
        ],
    );
    safetensors(
        &hub.path(repo, "model-00002-of-00002.safetensors"),
        &[
            ("model.layers.1.mlp.up_proj.weight", "F32", &[512, 256]),
            ("lm_head.weight", "BF16", &[1000, 256]),
        ],
    );
    let i = hub.inspect("hf:org/st", None).await.unwrap();
    let ModelSummary::Safetensors(s) = &i.summary else {
        panic!("{:?}", i.summary)
    };
    assert_eq!(s.parameters, 1000 * 256 * 2 + 512 * 256 * 2);
    assert_eq!(s.dtypes[0].dtype, "BF16");
    assert_eq!(s.config.as_ref().unwrap().kv_heads, Some(2));
    for f in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        let (requests, _) = hub.served(repo, f);
        assert_eq!(requests, 1, "{f}");
    }
    // KV: 2 layers × (2 heads × 64) × 2 (K, V) × 2 bytes × 4096 cells.
    let e = i.estimate(&Default::default()).unwrap().unwrap();
    assert_eq!(e.gpu.kv_cache, 2 * 128 * 2 * 2 * 4096);
    assert_eq!(
        e.gpu.weights + e.cpu.weights,
        (1000 * 256 * 2) * 2 + 512 * 256 * 2 + 512 * 256 * 4
    );
}
