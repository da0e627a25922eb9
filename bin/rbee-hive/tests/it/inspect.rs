//! `POST /v1/inspect` and the `model_inspect` job on the real binary: headers read over HTTP
//! ranges from the fake hub (nothing downloaded), the fit judged on the daemon's GPUs, and
//! hostile headers answered with clear errors.

use std::os::unix::fs::PermissionsExt;

use rbee_gguf::{GgmlType, GgufWriter, InspectReport, Value as GgufValue};
use rbee_hive::api::InspectRequest;
use rbee_hive::client::HiveClient;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Daemon, TestEnv};

/// A model-shaped GGUF at `<hub>/<rel>`: a small header, then 16 MiB of tensor data.
fn write_model(env: &TestEnv, rel: &str) -> u64 {
    write_quant(env, rel, GgmlType::F16)
}

/// As [`write_model`], with the weights in `weights`.
fn write_quant(env: &TestEnv, rel: &str, weights: GgmlType) -> u64 {
    let path = env.dir.path().join("hub").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    GgufWriter::new()
        .kv("general.architecture", GgufValue::String("llama".into()))
        .kv("general.name", GgufValue::String("Tiny Test".into()))
        .kv("llama.block_count", GgufValue::U32(2))
        .kv("llama.context_length", GgufValue::U32(4096))
        .kv("llama.embedding_length", GgufValue::U32(2048))
        .kv("llama.attention.head_count", GgufValue::U32(16))
        .kv("llama.attention.head_count_kv", GgufValue::U32(4))
        .kv(
            "tokenizer.chat_template",
            GgufValue::String("{% for m in messages %}{{ m.content }}{% endfor %}".into()),
        )
        .tensor("blk.0.ffn_up.weight", &[2048, 2048], weights)
        .tensor("blk.1.ffn_up.weight", &[2048, 2048], weights)
        .write_to(&path)
        .unwrap();
    std::fs::metadata(&path).unwrap().len()
}

/// A program that answers like `nvidia-smi` with one 24 GiB GPU, 1 GiB of it in use.
fn fake_nvidia_smi(env: &TestEnv) -> String {
    let path = env.dir.path().join("nvidia-smi");
    std::fs::write(
        &path,
        "#!/bin/sh\necho 'NVIDIA Test GPU, 24576 MiB, 1024 MiB'\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_model_is_inspected_from_its_header_and_judged_on_the_daemons_gpus() {
    let env = TestEnv::new().await;
    let size = write_model(&env, "models/tiny.F16.gguf");
    let smi = fake_nvidia_smi(&env);
    let hive = Daemon::try_start(&env, &[], &[("RBEE_NVIDIA_SMI", &smi)])
        .await
        .unwrap();
    let client = HiveClient::new(hive.url.parse().unwrap(), None).unwrap();
    let mut request = InspectRequest::new(env.file_ref("models/tiny.F16.gguf"));
    request.ctx = Some(1024);
    let report: InspectReport = client.inspect(&request).await.unwrap();

    let rbee_gguf::ModelSummary::Gguf(summary) = &report.summary else {
        panic!("not a GGUF summary: {report:?}");
    };
    assert_eq!(summary.architecture.as_deref(), Some("llama"));
    assert_eq!(summary.name.as_deref(), Some("Tiny Test"));
    assert_eq!(summary.kv_heads, Some(4));
    assert!(summary.chat_template);
    assert_eq!(report.gpus.len(), 1, "{:?}", report.gpus);
    assert_eq!(report.gpus[0].name, "NVIDIA Test GPU");
    let estimate = report.estimate.as_ref().unwrap();
    assert_eq!(estimate.context, 1024);
    // KV: 2 layers × (4 heads × 128) × K and V × 2 bytes × 1024 cells.
    assert_eq!(estimate.gpu.kv_cache, 2 * 512 * 2 * 2 * 1024);
    let verdict = report.verdict.as_ref().unwrap();
    assert!(verdict.fits, "{}", verdict.line);
    assert!(
        verdict.line.starts_with("fits on GPU 0 (NVIDIA Test GPU"),
        "{}",
        verdict.line
    );
    assert_eq!(
        report.chat_template(),
        Some("{% for m in messages %}{{ m.content }}{% endfor %}")
    );
    // Only the header travelled; nothing entered the catalog.
    let sent = env.sent("models/tiny.F16.gguf");
    assert!(sent <= 256 << 10, "{sent} of {size} bytes sent");
    assert!(report.files[0].requests.is_some_and(|r| r <= 3));
    let (_, list) = hive.get("/v1/models").await;
    assert_eq!(list["models"], json!([]), "{list}");

    // The same as a job, with declared VRAM too small: the verdict says so.
    let (status, job) = hive
        .post(
            "/v1/jobs",
            json!({"operation": "model_inspect", "model": env.file_ref("models/tiny.F16.gguf"), "vram": 1_000_000}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let events = hive
        .stream(job["job_id"].as_str().unwrap())
        .await
        .until_final()
        .await;
    let done = events.last().unwrap();
    assert_eq!(done.name, "done", "{done:?}");
    let result = &done.data["result"];
    assert_eq!(result["verdict"]["fits"], false, "{result}");
    assert_eq!(result["summary"]["architecture"], "llama");
    assert!(
        done.data["message"]
            .as_str()
            .unwrap()
            .contains("does not fit on GPU 0 (declared with --vram"),
        "{}",
        done.data
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_what_to_do() {
    let env = TestEnv::new().await;
    let hive = Daemon::try_start(&env, &[], &[("RBEE_NVIDIA_SMI", "/nonexistent/nvidia-smi")])
        .await
        .unwrap();
    let model = env.file_ref("m.gguf");
    let cases = [
        (
            json!({"model": model, "contex": 5}),
            "invalid_request",
            "unknown field `contex`",
        ),
        (
            json!({"ctx": 5}),
            "invalid_request",
            "missing field `model`",
        ),
        (
            json!({"model": model, "kv_type": "q4_k"}),
            "invalid_request",
            "use one of f16",
        ),
        (
            json!({"model": model, "parallel": 0}),
            "invalid_request",
            "at least 1",
        ),
        (
            json!({"model": model, "vram": 0}),
            "invalid_request",
            "above 0",
        ),
        (
            json!({"model": "hf:org/repo:fit"}),
            "invalid_request",
            "needs GPUs to fit, and this hive has none",
        ),
        (
            json!({"model": "hf:"}),
            "invalid_reference",
            "a valid example",
        ),
        (
            json!({"model": "file:rel/x.gguf"}),
            "invalid_request",
            "must be absolute",
        ),
        (
            json!({"model": model, "include": ["a[b"]}),
            "invalid_request",
            "not a valid glob",
        ),
        (
            json!({"model": model, "hive_id": "other"}),
            "invalid_request",
            "not `other`",
        ),
    ];
    for (body, code, says) in cases {
        let (status, answer) = hive.post("/v1/inspect", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (status, answer) = hive
        .post("/v1/inspect", json!({"model": "file:/etc/hostname"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["code"], "local_files_not_allowed");
    let (status, answer) = hive
        .post(
            "/v1/inspect",
            json!({"model": env.file_ref("missing.gguf")}),
        )
        .await;
    assert_eq!(answer["error"]["code"], "not_found", "{status} {answer}");
}

/// GGUF bytes: magic, version 3, the counts, then `rest`.
fn gguf(tensors: u64, keys: u64, rest: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&tensors.to_le_bytes());
    b.extend_from_slice(&keys.to_le_bytes());
    b.extend_from_slice(rest);
    b
}

/// A string key/value whose string claims `len` bytes.
fn string_kv(key: &str, len: u64) -> Vec<u8> {
    let mut b = (key.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_headers_get_clear_errors_and_cost_little() {
    let env = TestEnv::new().await;
    let hub = env.dir.path().join("hub");
    std::fs::create_dir_all(hub.join("bad")).unwrap();
    write_model(&env, "bad/good.gguf");
    let good = std::fs::read(hub.join("bad/good.gguf")).unwrap();
    std::fs::write(hub.join("bad/cut.gguf"), &good[..100]).unwrap();
    std::fs::write(
        hub.join("bad/counts.gguf"),
        gguf(1 << 60, 1 << 60, &[0u8; 4096]),
    )
    .unwrap();
    std::fs::write(hub.join("bad/noise.gguf"), crate::support::noise(4096, 7)).unwrap();
    std::fs::write(hub.join("bad/v9.gguf"), {
        let mut b = gguf(0, 0, &[0u8; 64]);
        b[4] = 9;
        b
    })
    .unwrap();
    // A string that claims 40 MiB inside a 64 MiB (sparse) file: inside the file, but past
    // what the daemon reads of a header, so it is refused before it is fetched.
    let huge = hub.join("bad/huge-string.gguf");
    std::fs::write(&huge, gguf(0, 1, &string_kv("general.name", 40 << 20))).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();

    let hive = Daemon::start(&env, &[]).await;
    for (file, code, says) in [
        ("cut.gguf", "truncated", "the header is cut short"),
        ("counts.gguf", "truncated", ""),
        ("noise.gguf", "not_gguf", "not a GGUF file"),
        ("v9.gguf", "unsupported_version", "GGUF version 9"),
        ("huge-string.gguf", "invalid_header", "more than the limit"),
    ] {
        let rel = format!("bad/{file}");
        let (status, answer) = hive
            .post("/v1/inspect", json!({"model": env.file_ref(&rel)}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{file}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{file}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("cannot read the model's header: ") && message.contains(says),
            "{file}: {message}"
        );
        let sent = env.sent(&rel);
        assert!(sent <= 1 << 20, "{file}: {sent} bytes fetched");
    }
    let (status, health) = hive.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
}

/// `hf:ORG/REPO:fit` through the daemon: the largest quantization whose estimate fits the
/// GPUs, judged from the candidates' headers; a download names the quantization it chose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fit_picks_the_largest_quantization_that_fits_the_daemons_gpus() {
    let env = TestEnv::new().await;
    write_quant(&env, "hf/acme/fit-GGUF/fit.F16.gguf", GgmlType::F16);
    write_quant(&env, "hf/acme/fit-GGUF/fit.Q8_0.gguf", GgmlType::Q8_0);
    write_quant(&env, "hf/acme/fit-GGUF/fit.Q4_0.gguf", GgmlType::Q4_0);
    let hive = Daemon::try_start(&env, &[], &[("RBEE_NVIDIA_SMI", "/nonexistent/nvidia-smi")])
        .await
        .unwrap();
    let need = |quant: &'static str| {
        let hive = &hive;
        async move {
            let (status, r) = hive
                .post(
                    "/v1/inspect",
                    json!({"model": format!("hf:acme/fit-GGUF:{quant}"), "vram": 1u64 << 40}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{r}");
            let gpu = &r["estimate"]["gpu"];
            ["weights", "kv_cache", "compute", "output"]
                .iter()
                .map(|k| gpu[k].as_u64().unwrap())
                .sum::<u64>()
        }
    };
    let (f16, q8, q4) = (need("F16").await, need("Q8_0").await, need("Q4_0").await);
    assert!(f16 > q8 && q8 > q4, "{f16} {q8} {q4}");
    // Room for Q8_0, not for F16.
    let vram = (f16 + q8) / 2;
    let (status, report) = hive
        .post(
            "/v1/inspect",
            json!({"model": "hf:acme/fit-GGUF:fit", "vram": vram}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["reference"], "hf:acme/fit-GGUF:Q8_0", "{report}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("fit: passed over F16"), "{notes}");
    assert!(notes.contains("fit: took Q8_0"), "{notes}");
    assert_eq!(report["verdict"]["fits"], true, "{report}");

    // Nothing fits: every candidate is named with why.
    let (status, answer) = hive
        .post(
            "/v1/inspect",
            json!({"model": "hf:acme/fit-GGUF:fit", "vram": 1000}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("no quantization fits"), "{message}");
    assert!(message.contains("Q4_0"), "{message}");

    // A download job is for a named quantization; the refusal says how to get one.
    let (status, answer) = hive
        .post(
            "/v1/jobs",
            json!({"operation": "model_download", "model": "hf:acme/fit-GGUF:fit"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/inspect"),
        "{answer}"
    );
}
