//! `rbee model inspect` and the summary in `rbee model info`, against the fake hub: headers
//! only, the estimate and the verdict, with `--vram` or a stand-in `nvidia-smi`.

use std::path::PathBuf;
use std::process::{Command, Output};

use rbee_fake_hub::{FakeHub, FakeHubConfig};
use rbee_gguf::{GgmlType, GgufWriter, Value, string_array};
use serde_json::Value as Json;

use crate::support::{failure, text};

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(dir.path().join("root")))
            .await
            .unwrap();
        Env { dir, hub }
    }

    fn file(&self, repo: &str, name: &str) -> PathBuf {
        let p = self.dir.path().join("root/hf").join(repo).join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    fn rbee(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.dir.path().join("catalog"))
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path().join("home"))
            .env("HF_HOME", self.dir.path().join("hf-home"))
            .env("HF_ENDPOINT", self.hub.url().as_str())
            // No real GPU tool in tests: a missing program means "no GPU found".
            .env("RBEE_NVIDIA_SMI", self.dir.path().join("no-nvidia-smi"));
        for var in [
            "RBEE_CACHE_DIR",
            "HF_TOKEN",
            "HF_HUB_OFFLINE",
            "XDG_CACHE_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn inspect(&self, args: &[&str]) -> Output {
        self.rbee()
            .args(["model", "inspect"])
            .args(args)
            .output()
            .unwrap()
    }
}

/// A small llama: 4 layers of 256, 8 heads (2 KV heads), a 2000-token vocabulary, a chat
/// template; 64 MiB of (sparse) tensor data after the header.
fn model(path: &std::path::Path) {
    model_with_padding(path, 16);
}

/// [`model`] with a last-layer tensor of `columns` × 4 MiB, to make quantizations of
/// different sizes.
fn model_with_padding(path: &std::path::Path, columns: u64) {
    let tokens: Vec<String> = (0..2000).map(|i| format!("t{i}")).collect();
    let mut w = GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("general.name", Value::String("Tiny Llama".into()))
        .kv("general.file_type", Value::U32(7))
        .kv("llama.block_count", Value::U32(4))
        .kv("llama.context_length", Value::U32(4096))
        .kv("llama.embedding_length", Value::U32(256))
        .kv("llama.feed_forward_length", Value::U32(1024))
        .kv("llama.attention.head_count", Value::U32(8))
        .kv("llama.attention.head_count_kv", Value::U32(2))
        .kv("tokenizer.ggml.model", Value::String("llama".into()))
        .kv("tokenizer.ggml.tokens", string_array(tokens))
        .kv("tokenizer.ggml.bos_token_id", Value::U32(1))
        .kv(
            "tokenizer.chat_template",
            Value::String("<|user|>{{ m }}".into()),
        )
        .tensor("token_embd.weight", &[256, 2000], GgmlType::Q8_0);
    for i in 0..4 {
        w = w.tensor(
            format!("blk.{i}.ffn_up.weight"),
            &[256, 1024],
            GgmlType::Q8_0,
        );
    }
    w = w
        .tensor("output.weight", &[256, 2000], GgmlType::Q8_0)
        .tensor("blk.3.pad.weight", &[1 << 20, columns], GgmlType::F32);
    w.write_to(path).unwrap();
}

fn json(out: &Output) -> Json {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_the_header_only_and_judges_the_fit() {
    let env = Env::new().await;
    let file = env.file("org/tiny", "tiny.Q8_0.gguf");
    model(&file);
    let size = std::fs::metadata(&file).unwrap().len();

    let v = json(&env.inspect(&["hf:org/tiny", "--vram", "1GiB", "--ctx", "2048", "--json"]));
    assert_eq!(v["summary"]["format"], "gguf");
    assert_eq!(v["summary"]["architecture"], "llama");
    assert_eq!(v["summary"]["file_type"], "Q8_0");
    assert_eq!(v["summary"]["kv_heads"], 2);
    assert_eq!(v["summary"]["tokenizer"]["vocab_size"], 2000);
    assert_eq!(v["metadata"]["general.name"], "Tiny Llama");
    // The vocabulary is summarised by its length without --full.
    assert_eq!(v["metadata"]["tokenizer.ggml.tokens"]["len"], 2000);
    assert!(v.get("tensors").is_none());
    // KV: 4 layers × (2 heads × 32) × K and V × 2 bytes × 2048 cells.
    assert_eq!(v["estimate"]["gpu"]["kv_cache"], 4 * 64 * 2 * 2 * 2048);
    assert_eq!(v["verdict"]["fits"], true, "{}", v["verdict"]);
    assert!(
        v["verdict"]["line"]
            .as_str()
            .unwrap()
            .starts_with("fits on GPU 0")
    );
    let served = env.hub.counters_for("/files/hf/org/tiny/tiny.Q8_0.gguf");
    assert_eq!(served.ranges.len(), 1);
    assert!(served.bytes_sent <= 256 << 10 && served.bytes_sent < size / 100);
    // Nothing was downloaded or catalogued.
    let catalog = env.dir.path().join("catalog");
    assert!(
        !catalog.exists()
            || std::fs::read_dir(&catalog).unwrap().all(|e| !e
                .unwrap()
                .path()
                .join("metadata.json")
                .exists())
    );

    // --full: every token and tensor.
    let v = json(&env.inspect(&["hf:org/tiny", "--json", "--full", "--vram", "1GiB"]));
    assert_eq!(
        v["metadata"]["tokenizer.ggml.tokens"]
            .as_array()
            .unwrap()
            .len(),
        2000
    );
    assert_eq!(v["tensors"].as_array().unwrap().len(), 7);

    // For people: one line per fact, then the memory and the verdict.
    let out = env.inspect(&["hf:org/tiny", "--vram", "1GiB"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "architecture:  llama",
        "file type:     Q8_0",
        "8, KV heads 2",
        "2000 tokens",
        "BOS 1 \"t1\"",
        "chat template: yes",
        "verdict:       fits on GPU 0",
    ] {
        assert!(s.contains(needle), "{needle:?} missing in\n{s}");
    }

    // --template prints the template itself.
    let out = env.inspect(&["hf:org/tiny", "--template"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "<|user|>{{ m }}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detected_gpus_that_are_too_small_get_a_layer_count() {
    let env = Env::new().await;
    model(&env.file("org/tiny", "tiny.Q8_0.gguf"));
    // A stand-in nvidia-smi: one GPU with 50 MiB free, less than the last layer's 64 MiB.
    let smi = env.dir.path().join("nvidia-smi");
    std::fs::write(&smi, "#!/bin/sh\necho 'NVIDIA Test GPU, 60 MiB, 10 MiB'\n").unwrap();
    let mut perms = std::fs::metadata(&smi).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&smi, perms).unwrap();
    let out = env
        .rbee()
        .env("RBEE_NVIDIA_SMI", &smi)
        .args(["--json", "model", "inspect", "hf:org/tiny"])
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["gpus"][0]["name"], "NVIDIA Test GPU");
    assert_eq!(v["verdict"]["fits"], false, "{}", v["verdict"]);
    // The last layer holds the 64 MiB tensor, and llama.cpp offloads the last layers first.
    assert_eq!(v["verdict"]["gpu_layers_that_fit"], 0);
    assert!(
        v["verdict"]["line"]
            .as_str()
            .unwrap()
            .contains("does not fit on GPU 0 (NVIDIA Test GPU")
    );

    // No GPU tool: says so, and what the CPU alone would need.
    let out = env.inspect(&["hf:org/tiny"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("no GPU to check against"), "{s}");
    assert!(s.contains("not found"), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_and_models_without_templates() {
    let env = Env::new().await;
    model(&env.file("org/tiny", "tiny.Q8_0.gguf"));
    for args in [
        &["hf:org/tiny", "--kv-type", "q3_k"][..],
        &["hf:org/tiny", "--vram", "lots"],
        &["hf:org/tiny", "--parallel", "0"],
    ] {
        let out = env.inspect(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    // A head size of 32 is a whole number of q8_0 blocks: the estimate works.
    let v = json(&env.inspect(&[
        "hf:org/tiny",
        "--json",
        "--kv-type",
        "q8_0",
        "--vram",
        "1GiB",
    ]));
    assert_eq!(v["estimate"]["kv_type"], "Q8_0");
    GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .tensor("output.weight", &[32, 2], GgmlType::F32)
        .write_to(&env.file("org/bare", "bare.Q4_0.gguf"))
        .unwrap();
    let out = env
        .rbee()
        .args(["--json", "model", "inspect", "hf:org/bare", "--template"])
        .output()
        .unwrap();
    let (code, kind, message) = failure(&out);
    assert_eq!((code, kind.as_str()), (1, "not_found"));
    assert!(message.contains("no chat template"), "{message}");
    let out = env.inspect(&["hf:org/missing"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_shows_the_summary_of_a_downloaded_model() {
    let env = Env::new().await;
    model(&env.file("org/tiny", "tiny.Q8_0.gguf"));
    let out = env
        .rbee()
        .args(["--json", "model", "download", "hf:org/tiny"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v = json(
        &env.rbee()
            .args(["--json", "model", "info", "hf:org/tiny"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["status"]["state"], "ready", "{v}");
    assert_eq!(v["model"]["summary"]["architecture"], "llama");
    assert_eq!(v["model"]["summary"]["layers"], 4);
    assert!(v["model"]["estimate"]["gpu"]["kv_cache"].as_u64().unwrap() > 0);
    let out = env
        .rbee()
        .args(["model", "info", "hf:org/tiny"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("model:") && s.contains("architecture:  llama"),
        "{s}"
    );
    // A local file is inspected in place.
    let file = env.file("org/tiny", "tiny.Q8_0.gguf");
    let v = json(&env.inspect(&[
        &format!("file:{}", file.display()),
        "--json",
        "--vram",
        "1GiB",
    ]));
    assert_eq!(v["summary"]["name"], "Tiny Llama");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_the_estimate_and_verdict_from_the_header() {
    let env = Env::new().await;
    let file = env.file("org/tiny", "tiny.Q8_0.gguf");
    model(&file);
    let size = std::fs::metadata(&file).unwrap().len();
    let dry_run = |extra: &[&str]| {
        env.rbee()
            .args(["model", "download", "hf:org/tiny", "--dry-run"])
            .args(extra)
            .output()
            .unwrap()
    };

    let v = json(&dry_run(&["--json", "--vram", "1GiB", "--ctx", "2048"]));
    assert_eq!(v["files"][0]["path"], "tiny.Q8_0.gguf");
    assert_eq!(v["model"]["summary"]["architecture"], "llama");
    assert_eq!(v["model"]["estimate"]["context"], 2048);
    assert_eq!(
        v["model"]["estimate"]["gpu"]["kv_cache"],
        4 * 64 * 2 * 2 * 2048
    );
    assert_eq!(v["model"]["verdict"]["fits"], true, "{}", v["model"]);
    // Headers only: one small range request, nothing downloaded.
    let served = env.hub.counters_for("/files/hf/org/tiny/tiny.Q8_0.gguf");
    assert_eq!(served.ranges.len(), 1);
    assert!(served.bytes_sent <= 256 << 10 && served.bytes_sent < size / 100);

    // The estimate flags reach the estimate: a q8_0 cache and two sequences.
    let v = json(&dry_run(&[
        "--json",
        "--vram",
        "1MiB",
        "--kv-type",
        "q8_0",
        "--parallel",
        "2",
    ]));
    assert_eq!(v["model"]["estimate"]["kv_type"], "Q8_0");
    assert_eq!(v["model"]["estimate"]["parallel"], 2);
    assert_eq!(v["model"]["verdict"]["fits"], false, "{}", v["model"]);

    let out = dry_run(&["--vram", "1GiB"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "tiny.Q8_0.gguf",
        "architecture:  llama",
        "memory:        at ctx 4096",
        "verdict:       fits on GPU 0",
        "Nothing was downloaded (--dry-run).",
    ] {
        assert!(s.contains(needle), "{needle:?} missing in\n{s}");
    }

    // A bad flag fails before anything is resolved; a flag a download would ignore is refused.
    let before = env.hub.counters().total_requests;
    let out = dry_run(&["--kv-type", "q3_k"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(env.hub.counters().total_requests, before);
    let out = env
        .rbee()
        .args(["model", "download", "hf:org/tiny", "--ctx", "2048"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--ctx only applies to --dry-run"),
        "{}",
        text(&out)
    );

    // Once the model is ready, a dry run reads its headers from the catalog, not the hub.
    let out = env
        .rbee()
        .args(["--json", "model", "download", "hf:org/tiny"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let file_requests = || {
        env.hub
            .counters_for("/files/hf/org/tiny/tiny.Q8_0.gguf")
            .requests
    };
    let before = file_requests();
    let v = json(&dry_run(&["--json", "--vram", "1GiB"]));
    assert_eq!(file_requests(), before);
    assert_eq!(v["files"][0]["action"], "present");
    assert_eq!(v["model"]["summary"]["architecture"], "llama");
    assert_eq!(v["model"]["verdict"]["fits"], true, "{}", v["model"]);

    // Not a model: the plan, and no model part.
    std::fs::write(env.file("org/data", "notes.txt"), "hello").unwrap();
    let v = json(
        &env.rbee()
            .args(["--json", "model", "download", "hf:org/data", "--dry-run"])
            .args(["--include", "*.txt"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["files"][0]["path"], "notes.txt");
    assert!(v["model"].is_null(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fit_takes_the_largest_quantization_that_fits() {
    let env = Env::new().await;
    for (quant, columns) in [("Q8_0", 16), ("Q6_K", 8), ("Q4_K_M", 4)] {
        model_with_padding(
            &env.file("org/multi", &format!("multi.{quant}.gguf")),
            columns,
        );
    }
    let needs = |quant: &str| {
        let v = json(&env.inspect(&[&format!("hf:org/multi:{quant}"), "--json", "--vram", "1GiB"]));
        v["estimate"]["gpu"]["weights"].as_u64().unwrap()
            + v["estimate"]["gpu"]["kv_cache"].as_u64().unwrap()
            + v["estimate"]["gpu"]["compute"].as_u64().unwrap()
            + v["estimate"]["gpu"]["output"].as_u64().unwrap()
    };
    let (q8, q6) = (needs("Q8_0"), needs("Q6_K"));
    assert!(q6 < q8);
    // Room for Q6_K, not for Q8_0 (whose file alone is larger, so its header is not read).
    let vram = format!("{}MiB", (q6 >> 20) + 2);
    assert!((q6 >> 20) + 2 < (q8 >> 20) - 1, "{q6} {q8}");
    env.hub.reset_counters();

    let dry_run = |args: &[&str]| {
        env.rbee()
            .args(["--json", "model", "download", "--dry-run"])
            .args(args)
            .output()
            .unwrap()
    };
    let v = json(&dry_run(&["hf:org/multi:fit", "--vram", &vram]));
    assert_eq!(v["reference"], "hf:org/multi:Q6_K", "{v}");
    assert_eq!(v["files"][0]["path"], "multi.Q6_K.gguf");
    let notes: Vec<&str> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(notes[0].starts_with("fit: passed over Q8_0"), "{notes:?}");
    assert!(notes[0].contains("larger than the GPU memory"), "{notes:?}");
    assert!(notes[1].starts_with("fit: took Q6_K"), "{notes:?}");
    assert!(notes[1].contains("fits on GPU 0"), "{notes:?}");
    assert_eq!(v["model"]["verdict"]["fits"], true);
    // Only headers: Q8_0 too large to be worth reading, Q4_K_M not needed.
    let requests = |quant: &str| {
        env.hub
            .counters_for(&format!("/files/hf/org/multi/multi.{quant}.gguf"))
            .requests
    };
    assert_eq!(requests("Q8_0"), 0);
    assert_eq!(requests("Q4_K_M"), 0);
    assert!(env.hub.counters().total_bytes_sent < 2 << 20);

    // Too little memory for any: a clear error naming each.
    let out = dry_run(&["hf:org/multi", "--fit", "--vram", "1MiB"]);
    let (code, kind, message) = failure(&out);
    assert_eq!((code, kind.as_str()), (1, "invalid_request"), "{message}");
    assert!(message.contains("no quantization fits"), "{message}");
    assert!(message.contains("Q4_K_M"), "{message}");
    // No GPU and no --vram: says what to pass.
    let out = dry_run(&["hf:org/multi:fit"]);
    let (_, _, message) = failure(&out);
    assert!(message.contains("--vram"), "{message}");
    // Offline, nothing is asked of the hub.
    let before = env.hub.counters().total_requests;
    let out = dry_run(&["hf:org/multi:fit", "--vram", &vram, "--offline"]);
    let (_, _, message) = failure(&out);
    assert!(message.contains("--offline"), "{message}");
    assert_eq!(env.hub.counters().total_requests, before);
    // --fit names no file or quantization of its own.
    let out = dry_run(&["hf:org/multi:Q8_0", "--fit"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // inspect makes the same choice and says so.
    let v = json(&env.inspect(&["hf:org/multi:fit", "--json", "--vram", &vram]));
    assert_eq!(v["reference"], "hf:org/multi:Q6_K", "{v}");
    assert!(
        v["notes"][1]
            .as_str()
            .unwrap()
            .starts_with("fit: took Q6_K"),
        "{v}"
    );

    // The download takes the chosen quantization and says why.
    let out = env
        .rbee()
        .args([
            "--json",
            "model",
            "download",
            "hf:org/multi",
            "--fit",
            "--vram",
            &vram,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fit: took Q6_K"), "{stdout}");
    let v = json(
        &env.rbee()
            .args(["--json", "model", "info", "hf:org/multi:Q6_K"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["files"][0]["path"], "multi.Q6_K.gguf", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ollama_model_is_inspected_from_its_model_layer_header() {
    let env = Env::new().await;
    let tag = env.dir.path().join("root/ollama/library/tiny/1b");
    std::fs::create_dir_all(&tag).unwrap();
    model(&tag.join("model.gguf"));
    std::fs::write(tag.join("template"), "{{ .Prompt }}").unwrap();
    let size = std::fs::metadata(tag.join("model.gguf")).unwrap().len();

    let out = env
        .rbee()
        .args(["model", "inspect", "tiny:1b", "--vram", "1GiB", "--json"])
        .env("OLLAMA_REGISTRY", env.hub.url().as_str())
        .env("OLLAMA_MODELS", env.dir.path().join("ollama-models"))
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["summary"]["architecture"], "llama");
    assert_eq!(v["summary"]["tokenizer"]["vocab_size"], 2000);
    assert_eq!(v["verdict"]["fits"], true, "{}", v["verdict"]);
    let served = env
        .hub
        .counters_for("/files/ollama/library/tiny/1b/model.gguf");
    assert!(served.bytes_sent > 0, "the header came from the registry");
    assert!(served.bytes_sent <= 256 << 10 && served.bytes_sent < size / 100);
    // Inspecting stores nothing in rbee's catalog or in Ollama's store.
    assert!(!env.dir.path().join("ollama-models").exists());
}
