//! The hyperparameters llama.cpp derives from a header (`llama_hparams`): per-layer head
//! counts, head sizes, sliding-window layers, MLA, experts.

use serde::Serialize;

use crate::reader::Gguf;
use crate::value::Metadata;

/// How attention caches keys and values, as far as memory is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attention {
    /// One K and one V row per head and token (GQA when KV heads < heads).
    Standard,
    /// Multi-head latent attention (DeepSeek-V2/V3, Kimi): one compressed row per token and
    /// layer, no separate V cache.
    Latent,
}

/// Model hyperparameters relevant to a summary and a memory estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelParams {
    /// `general.architecture`.
    pub architecture: String,
    /// Repeating layers.
    pub n_layer: u64,
    /// Training context.
    pub n_ctx_train: Option<u64>,
    /// Hidden size.
    pub n_embd: u64,
    /// Vocabulary size.
    pub n_vocab: u64,
    /// Query heads per layer.
    pub n_head: Vec<u64>,
    /// KV heads per layer (0 for layers without attention, e.g. recurrent ones).
    pub n_head_kv: Vec<u64>,
    /// Feed-forward size per layer.
    pub n_ff: Vec<u64>,
    /// Size of a K head (`attention.key_length`, else `n_embd / n_head`).
    pub n_embd_head_k: u64,
    /// Size of a V head (`attention.value_length`, else `n_embd / n_head`).
    pub n_embd_head_v: u64,
    /// Experts per MoE layer (0: dense).
    pub n_expert: u64,
    /// Experts used per token.
    pub n_expert_used: u64,
    /// Sliding-window size (0: none).
    pub n_swa: u64,
    /// Which layers use the sliding window.
    pub swa_layers: Vec<bool>,
    /// How K and V are cached.
    pub attention: Attention,
}

impl ModelParams {
    /// The parameters of a header; `None` without `general.architecture` or a layer count (a
    /// vocabulary-only file, say).
    pub fn from_gguf(gguf: &Gguf) -> Option<ModelParams> {
        let m = &gguf.metadata;
        let arch = m.str("general.architecture")?.to_string();
        let key = |k: &str| format!("{arch}.{k}");
        let n_layer = m.u64(&key("block_count"))?;
        // Per-layer arrays are bounded by the layer count; refuse absurd counts rather than
        // allocate for them.
        if n_layer == 0 || n_layer > 1 << 16 {
            return None;
        }
        let n_embd = m.u64(&key("embedding_length")).unwrap_or(0);
        let per_layer = |k: &str, default: u64| per_layer(m, &key(k), n_layer, default);
        let n_head = per_layer("attention.head_count", 0);
        let n_head_kv = match m.get(&key("attention.head_count_kv")) {
            Some(_) => per_layer("attention.head_count_kv", 0),
            None => n_head.clone(),
        };
        let n_ff = per_layer("feed_forward_length", 0);
        let head0 = n_head.iter().copied().find(|&h| h > 0).unwrap_or(0);
        let default_head = n_embd.checked_div(head0).unwrap_or(0);
        let n_embd_head_k = m.u64(&key("attention.key_length")).unwrap_or(default_head);
        let n_embd_head_v = m
            .u64(&key("attention.value_length"))
            .unwrap_or(default_head);
        let n_vocab = m
            .u64(&key("vocab_size"))
            .or_else(|| m.array("tokenizer.ggml.tokens").map(|a| a.len))
            .or_else(|| {
                gguf.tensors
                    .iter()
                    .find(|t| t.name == "token_embd.weight")
                    .and_then(|t| t.dims.get(1).copied())
            })
            .unwrap_or(0);
        let (n_swa, swa_layers) = sliding_window(m, &arch, n_layer);
        let latent = m.u64(&key("attention.key_length_mla")).is_some()
            && m.u64(&key("attention.value_length_mla")).is_some();
        Some(ModelParams {
            n_layer,
            n_ctx_train: m.u64(&key("context_length")),
            n_embd,
            n_vocab,
            n_head,
            n_head_kv,
            n_ff,
            n_embd_head_k,
            n_embd_head_v,
            n_expert: m.u64(&key("expert_count")).unwrap_or(0),
            n_expert_used: m.u64(&key("expert_used_count")).unwrap_or(0),
            n_swa,
            swa_layers,
            attention: if latent {
                Attention::Latent
            } else {
                Attention::Standard
            },
            architecture: arch,
        })
    }

    /// Elements of K cached per token in layer `il`.
    pub fn n_embd_k_gqa(&self, il: usize) -> u64 {
        self.n_embd_head_k * self.n_head_kv.get(il).copied().unwrap_or(0)
    }

    /// Elements of V cached per token in layer `il` (none with latent attention, whose V is a
    /// view of K).
    pub fn n_embd_v_gqa(&self, il: usize) -> u64 {
        match self.attention {
            Attention::Latent => 0,
            Attention::Standard => {
                self.n_embd_head_v * self.n_head_kv.get(il).copied().unwrap_or(0)
            }
        }
    }

    /// The largest value of a per-layer list.
    pub fn max_of(values: &[u64]) -> u64 {
        values.iter().copied().max().unwrap_or(0)
    }
}

/// A key that is either one number for every layer or an array with one per layer.
fn per_layer(m: &Metadata, key: &str, n_layer: u64, default: u64) -> Vec<u64> {
    let n = n_layer as usize;
    match m.get(key) {
        Some(v) => match v.as_array().and_then(|a| a.u64s()) {
            Some(list) => (0..n)
                .map(|i| list.get(i).copied().unwrap_or(default))
                .collect(),
            None => vec![v.as_u64().unwrap_or(default); n],
        },
        None => vec![default; n],
    }
}

/// The sliding window and which layers use it, as llama.cpp's `load_hparams` sets them: a
/// per-layer pattern for the architectures that have one (every n-th layer full, the others
/// windowed), or a per-layer list in the file.
fn sliding_window(m: &Metadata, arch: &str, n_layer: u64) -> (u64, Vec<bool>) {
    let n = n_layer as usize;
    let key = |k: &str| format!("{arch}.{k}");
    let window = m.u64(&key("attention.sliding_window")).or_else(|| {
        m.array(&key("attention.sliding_window"))
            .and_then(|a| a.u64s())
            .and_then(|v| v.first().copied())
    });
    let (default_window, pattern) = match arch {
        "gemma2" => (Some(4096), Some(2)),
        "gemma3" | "gemma-embedding" => (None, Some(6)),
        "gemma3n" => (None, Some(5)),
        "cohere2" | "exaone4" => (None, Some(4)),
        // Chunked attention: 8192-token chunks on three layers of four.
        "llama4" => (Some(8192), Some(4)),
        "gpt-oss" => (None, Some(2)),
        // llama.cpp ignores the window of these (phi3's is disabled on purpose).
        _ => (None, None),
    };
    let n_swa = window.or(default_window).unwrap_or(0);
    if let Some(list) = m
        .array(&key("attention.sliding_window_pattern"))
        .and_then(|a| a.bools())
    {
        let layers = (0..n)
            .map(|i| list.get(i).copied().unwrap_or(false))
            .collect();
        return (n_swa, layers);
    }
    let pattern = m.u64(&key("attention.sliding_window_pattern")).or(pattern);
    match pattern {
        Some(p) if n_swa > 0 => {
            // llama_hparams::set_swa_pattern: 0 = all windowed, 1 = none.
            let layers = (0..n as u64).map(|il| p == 0 || il % p < p - 1).collect();
            (n_swa, layers)
        }
        _ => (0, vec![false; n]),
    }
}
