//! Estimates against sizes computed by hand, for the shapes of real models written as sparse
//! files: dense with GQA, mixture of experts, sliding window, latent attention.

use rbee_gguf::{
    EstimateOptions, GgmlType, GgufWriter, Inspection, Items, ReadOptions, Value, array,
    inspect_local,
};

const Q4_K: GgmlType = GgmlType(12);
const Q6_K: GgmlType = GgmlType(14);
const GIB: u64 = 1 << 30;

/// Bytes of `n` elements of Q4_K / Q6_K / F32 / F16, by the block layouts (256 elements in 144
/// and 210 bytes).
fn q4k(n: u64) -> u64 {
    n / 256 * 144
}
fn q6k(n: u64) -> u64 {
    n / 256 * 210
}

fn inspect(w: GgufWriter) -> (Inspection, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    w.write_to(&path).unwrap();
    (
        inspect_local(&[path], &ReadOptions::default()).unwrap(),
        dir,
    )
}

fn within_5_percent(got: u64, want: u64, what: &str) {
    let diff = got.abs_diff(want) as f64 / want as f64;
    assert!(
        diff <= 0.05,
        "{what}: estimated {got}, computed by hand {want} ({:.1}% off)",
        diff * 100.0
    );
}

/// Llama 3 8B's shapes in Q4_K_M's mix: 32 layers, 4096 wide, 32 heads, 8 KV heads.
fn llama3_8b(tied: bool) -> GgufWriter {
    let (e, ff, vocab, kv) = (4096u64, 14336u64, 128256u64, 1024u64);
    let mut w = GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("llama.block_count", Value::U32(32))
        .kv("llama.context_length", Value::U32(8192))
        .kv("llama.embedding_length", Value::U32(e as u32))
        .kv("llama.feed_forward_length", Value::U32(ff as u32))
        .kv("llama.attention.head_count", Value::U32(32))
        .kv("llama.attention.head_count_kv", Value::U32(8))
        .kv("llama.vocab_size", Value::U32(vocab as u32))
        .tensor("token_embd.weight", &[e, vocab], Q4_K);
    for i in 0..32 {
        w = w
            .tensor(format!("blk.{i}.attn_norm.weight"), &[e], GgmlType::F32)
            .tensor(format!("blk.{i}.attn_q.weight"), &[e, e], Q4_K)
            .tensor(format!("blk.{i}.attn_k.weight"), &[e, kv], Q4_K)
            .tensor(format!("blk.{i}.attn_v.weight"), &[e, kv], Q6_K)
            .tensor(format!("blk.{i}.attn_output.weight"), &[e, e], Q4_K)
            .tensor(format!("blk.{i}.ffn_norm.weight"), &[e], GgmlType::F32)
            .tensor(format!("blk.{i}.ffn_gate.weight"), &[e, ff], Q4_K)
            .tensor(format!("blk.{i}.ffn_up.weight"), &[e, ff], Q4_K)
            .tensor(format!("blk.{i}.ffn_down.weight"), &[ff, e], Q6_K);
    }
    w = w.tensor("output_norm.weight", &[e], GgmlType::F32);
    if !tied {
        w = w.tensor("output.weight", &[e, vocab], Q6_K);
    }
    w
}

fn llama3_layer_bytes() -> u64 {
    let (e, ff, kv) = (4096u64, 14336u64, 1024u64);
    4 * e + 4 * e + q4k(e * e) * 2 + q4k(e * kv) + q6k(e * kv) + q4k(e * ff) * 2 + q6k(ff * e)
}

#[test]
fn dense_gqa_weights_and_kv_cache() {
    let (i, _dir) = inspect(llama3_8b(false));
    let vocab = 128256u64;
    let embd = q4k(4096 * vocab);
    let output = q6k(4096 * vocab) + 4 * 4096;
    let layers = 32 * llama3_layer_bytes();
    // K and V, 8 heads of 128, 2 bytes each, 8192 cells, 32 layers: exactly 1 GiB.
    let kv = 2 * 32 * (8 * 128) * 2 * 8192;
    assert_eq!(kv, GIB);
    let e = i.estimate(&EstimateOptions::default()).unwrap().unwrap();
    assert_eq!(e.context, 8192);
    within_5_percent(e.gpu.weights, layers + output, "GPU weights");
    within_5_percent(e.cpu.weights, embd, "CPU weights (token embeddings)");
    within_5_percent(e.gpu.kv_cache, kv, "KV cache");
    assert_eq!(e.cpu.kv_cache, 0);
    // llama.cpp reports 0.49 MiB for Llama 3's output buffer (128256 logits of 4 bytes).
    assert_eq!(e.cpu.output, vocab * 4);
    // ~258 MiB of compute with flash attention at n_ubatch 512: the logits of the batch.
    let logits = vocab * 512 * 4;
    assert!(
        e.gpu.compute >= logits && e.gpu.compute < logits + (64 << 20),
        "{}",
        e.gpu.compute
    );

    // q8_0 cache: 34 bytes per 32 values.
    let q8 = i
        .estimate(&EstimateOptions {
            kv_type: GgmlType::Q8_0,
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    within_5_percent(
        q8.gpu.kv_cache,
        2 * 32 * (1024 / 32 * 34) * 8192,
        "q8_0 KV cache",
    );
    // q4_0: 18 bytes per 32.
    let q4 = i
        .estimate(&EstimateOptions {
            kv_type: GgmlType::Q4_0,
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    within_5_percent(
        q4.gpu.kv_cache,
        2 * 32 * (1024 / 32 * 18) * 8192,
        "q4_0 KV cache",
    );

    // 16 layers offloaded: the last 16, their KV; output and embeddings on the CPU.
    let half = i
        .estimate(&EstimateOptions {
            gpu_layers: Some(16),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    assert!(!half.output_on_gpu);
    within_5_percent(
        half.gpu.weights,
        16 * llama3_layer_bytes(),
        "GPU weights at ngl 16",
    );
    within_5_percent(
        half.cpu.weights,
        embd + output + 16 * llama3_layer_bytes(),
        "CPU weights at ngl 16",
    );
    within_5_percent(half.gpu.kv_cache, GIB / 2, "GPU KV at ngl 16");
    within_5_percent(half.cpu.kv_cache, GIB / 2, "CPU KV at ngl 16");

    // Four sequences of 2048 hold as many cells as one of 8192; a context rounds up to 256.
    let par = i
        .estimate(&EstimateOptions {
            context: Some(2048),
            parallel: 4,
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    assert_eq!(par.gpu.kv_cache, GIB);
    let odd = i
        .estimate(&EstimateOptions {
            context: Some(8000),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    assert_eq!(odd.kv_cells, 8192);
}

#[test]
fn tied_embeddings_are_loaded_twice() {
    let (i, _dir) = inspect(llama3_8b(true));
    let e = i.estimate(&EstimateOptions::default()).unwrap().unwrap();
    let embd = q4k(4096 * 128256);
    within_5_percent(
        e.gpu.weights,
        32 * llama3_layer_bytes() + 4 * 4096 + embd,
        "GPU weights, tied",
    );
    within_5_percent(e.cpu.weights, embd, "CPU weights, tied");
}

#[test]
fn mixture_of_experts() {
    // Mixtral 8x7B's shapes: 8 experts of 14336, 2 used, 32 layers, 8 KV heads.
    let (e, ff, vocab, n_exp) = (4096u64, 14336u64, 32000u64, 8u64);
    let mut w = GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("llama.block_count", Value::U32(32))
        .kv("llama.context_length", Value::U32(32768))
        .kv("llama.embedding_length", Value::U32(e as u32))
        .kv("llama.feed_forward_length", Value::U32(ff as u32))
        .kv("llama.attention.head_count", Value::U32(32))
        .kv("llama.attention.head_count_kv", Value::U32(8))
        .kv("llama.expert_count", Value::U32(n_exp as u32))
        .kv("llama.expert_used_count", Value::U32(2))
        .tensor("token_embd.weight", &[e, vocab], Q4_K);
    for i in 0..32 {
        w = w
            .tensor(format!("blk.{i}.attn_q.weight"), &[e, e], Q4_K)
            .tensor(format!("blk.{i}.attn_k.weight"), &[e, 1024], Q4_K)
            .tensor(format!("blk.{i}.attn_v.weight"), &[e, 1024], Q6_K)
            .tensor(format!("blk.{i}.attn_output.weight"), &[e, e], Q4_K)
            .tensor(
                format!("blk.{i}.ffn_gate_inp.weight"),
                &[e, n_exp],
                GgmlType::F32,
            )
            .tensor(
                format!("blk.{i}.ffn_gate_exps.weight"),
                &[e, ff, n_exp],
                Q4_K,
            )
            .tensor(format!("blk.{i}.ffn_up_exps.weight"), &[e, ff, n_exp], Q4_K)
            .tensor(
                format!("blk.{i}.ffn_down_exps.weight"),
                &[ff, e, n_exp],
                Q6_K,
            );
    }
    w = w.tensor("output.weight", &[e, vocab], Q6_K);
    let (i, _dir) = inspect(w);
    let layer = q4k(e * e) * 2
        + q4k(e * 1024)
        + q6k(e * 1024)
        + e * n_exp * 4
        + 2 * q4k(e * ff * n_exp)
        + q6k(ff * e * n_exp);
    let est = i
        .estimate(&EstimateOptions {
            context: Some(32768),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    within_5_percent(
        est.gpu.weights,
        32 * layer + q6k(e * vocab),
        "MoE GPU weights",
    );
    within_5_percent(est.gpu.kv_cache, 4 * GIB, "MoE KV cache at 32k");
    let rbee_gguf::ModelSummary::Gguf(s) = &i.summary else {
        panic!()
    };
    assert_eq!(s.experts.as_ref().map(|x| (x.count, x.used)), Some((8, 2)));
    // All experts count as parameters: about 46.7 B for Mixtral.
    assert!(
        (46_000_000_000..47_500_000_000).contains(&s.parameters),
        "{}",
        s.parameters
    );
}

#[test]
fn sliding_window_layers_cache_less() {
    // Gemma 2 9B's shapes: 42 layers alternating 4096-token windows and full attention,
    // 8 KV heads of 256.
    let (e, vocab) = (3584u64, 256000u64);
    let mut w = GgufWriter::new()
        .kv("general.architecture", Value::String("gemma2".into()))
        .kv("gemma2.block_count", Value::U32(42))
        .kv("gemma2.context_length", Value::U32(8192))
        .kv("gemma2.embedding_length", Value::U32(e as u32))
        .kv("gemma2.feed_forward_length", Value::U32(14336))
        .kv("gemma2.attention.head_count", Value::U32(16))
        .kv("gemma2.attention.head_count_kv", Value::U32(8))
        .kv("gemma2.attention.key_length", Value::U32(256))
        .kv("gemma2.attention.value_length", Value::U32(256))
        .kv("gemma2.attention.sliding_window", Value::U32(4096))
        .tensor("token_embd.weight", &[e, vocab], Q6_K);
    for i in 0..42 {
        w = w.tensor(format!("blk.{i}.attn_q.weight"), &[e, 4096], Q4_K);
    }
    let (i, _dir) = inspect(w);
    // 21 full layers of 8192 cells, 21 windowed of pad256(4096 + 512) = 4608; K+V rows of
    // 8 × 256 f16 values.
    let per_cell = 2 * 8 * 256 * 2;
    let kv = 21 * per_cell * 8192 + 21 * per_cell * 4608;
    let est = i.estimate(&EstimateOptions::default()).unwrap().unwrap();
    within_5_percent(est.gpu.kv_cache, kv, "sliding-window KV cache");
    assert_eq!(est.kv_cells_swa, 4608);
    // Tied output (Gemma has no output.weight): the embeddings go to the GPU too.
    within_5_percent(
        est.gpu.weights,
        42 * q4k(e * 4096) + q6k(e * vocab),
        "Gemma GPU weights",
    );
    let rbee_gguf::ModelSummary::Gguf(s) = &i.summary else {
        panic!()
    };
    assert_eq!(
        s.sliding_window.as_ref().map(|w| (w.window, w.layers)),
        Some((4096, 21))
    );
    // A short context is not padded past itself: windows only help beyond 4608.
    let short = i
        .estimate(&EstimateOptions {
            context: Some(2048),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    assert_eq!(short.gpu.kv_cache, 42 * per_cell * 2048);
}

#[test]
fn latent_attention_caches_one_compressed_row() {
    // DeepSeek-V2-Lite: 27 layers, kv_lora_rank 512 + 64 rope dims cached per token, no V.
    let mut w = GgufWriter::new()
        .kv("general.architecture", Value::String("deepseek2".into()))
        .kv("deepseek2.block_count", Value::U32(27))
        .kv("deepseek2.context_length", Value::U32(163840))
        .kv("deepseek2.embedding_length", Value::U32(2048))
        .kv("deepseek2.attention.head_count", Value::U32(16))
        .kv("deepseek2.attention.head_count_kv", Value::U32(1))
        .kv("deepseek2.attention.key_length", Value::U32(576))
        .kv("deepseek2.attention.value_length", Value::U32(512))
        .kv("deepseek2.attention.key_length_mla", Value::U32(192))
        .kv("deepseek2.attention.value_length_mla", Value::U32(128))
        .kv("deepseek2.attention.kv_lora_rank", Value::U32(512))
        .kv("deepseek2.expert_count", Value::U32(64))
        .kv("deepseek2.expert_used_count", Value::U32(6));
    for i in 0..27 {
        w = w.tensor(
            format!("blk.{i}.attn_kv_a_mqa.weight"),
            &[2048, 576],
            GgmlType::F16,
        );
    }
    let (i, _dir) = inspect(w);
    let est = i
        .estimate(&EstimateOptions {
            context: Some(4096),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    within_5_percent(est.gpu.kv_cache, 27 * 576 * 2 * 4096, "MLA KV cache");
    let rbee_gguf::ModelSummary::Gguf(s) = &i.summary else {
        panic!()
    };
    assert!(s.latent_attention);
}

#[test]
fn per_layer_head_counts_and_refusals() {
    // Layers without attention (recurrent) have no KV heads and cache nothing.
    let w = GgufWriter::new()
        .kv("general.architecture", Value::String("hybrid".into()))
        .kv("hybrid.block_count", Value::U32(4))
        .kv("hybrid.embedding_length", Value::U32(256))
        .kv("hybrid.attention.head_count", Value::U32(4))
        .kv(
            "hybrid.attention.head_count_kv",
            array(Items::U32(vec![0, 2, 0, 2])),
        )
        .tensor("blk.0.x.weight", &[256, 4], GgmlType::F16);
    let (i, _dir) = inspect(w);
    let est = i
        .estimate(&EstimateOptions {
            context: Some(1024),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    assert_eq!(est.gpu.kv_cache, 2 * (2 * 2 * 64 * 2 * 1024));
    // Head size 64 is not a multiple of q4_0's... it is; 80 would not be.
    let w = GgufWriter::new()
        .kv("general.architecture", Value::String("phi".into()))
        .kv("phi.block_count", Value::U32(2))
        .kv("phi.embedding_length", Value::U32(2560))
        .kv("phi.attention.head_count", Value::U32(32))
        .tensor("blk.0.x.weight", &[2560, 4], GgmlType::F16);
    let (i, _dir) = inspect(w);
    let err = i
        .estimate(&EstimateOptions {
            kv_type: GgmlType::Q4_0,
            ..Default::default()
        })
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("multiples of 32"), "{err}");
    assert!(err.to_string().contains("80"), "{err}");
}
