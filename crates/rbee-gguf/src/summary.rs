//! What a person wants to know about a GGUF model, from its header (all shards of a split
//! file together).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hparams::ModelParams;
use crate::reader::Gguf;
use crate::types::{GgmlType, file_type_name};

/// A GGUF model at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GgufSummary {
    /// `general.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `general.architecture`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// `general.size_label` (`8B`, `8x7B`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_label: Option<String>,
    /// `general.license`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Elements of all tensors of all shards.
    pub parameters: u64,
    /// The quantization the file was made with (`general.file_type`), e.g. `Q4_K_M`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
    /// Tensors by storage type, most bytes first.
    pub tensor_types: Vec<TypeMix>,
    /// Training context length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    /// Repeating layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<u64>,
    /// Hidden size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_length: Option<u64>,
    /// Feed-forward size (the largest, when it varies by layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed_forward_length: Option<u64>,
    /// Attention heads (the largest, when it varies by layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<u64>,
    /// KV heads (the largest, when it varies by layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<u64>,
    /// Size of a K head.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<u64>,
    /// Experts per MoE layer and used per token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experts: Option<Experts>,
    /// Sliding-window attention: window size and windowed layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<SlidingWindow>,
    /// Whether attention is latent (MLA).
    pub latent_attention: bool,
    /// RoPE settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope: Option<Rope>,
    /// The tokenizer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<Tokenizer>,
    /// Whether `tokenizer.chat_template` is present.
    pub chat_template: bool,
    /// Shards read (1 unless the model is a split GGUF).
    pub shards: usize,
    /// Header bytes (all shards).
    pub header_bytes: u64,
    /// File bytes (all shards).
    pub file_bytes: u64,
    /// GGUF version.
    pub version: u32,
}

/// Tensors of one storage type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeMix {
    /// The type (`Q4_K`).
    pub ggml_type: GgmlType,
    /// Tensors of this type.
    pub tensors: u64,
    /// Their elements.
    pub parameters: u64,
    /// Their bytes (`None` for a type this crate does not know).
    pub bytes: Option<u64>,
}

/// Mixture-of-experts settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experts {
    /// Experts per layer.
    pub count: u64,
    /// Experts used per token.
    pub used: u64,
}

/// Sliding-window attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlidingWindow {
    /// Window in tokens.
    pub window: u64,
    /// Layers that use it.
    pub layers: u64,
}

/// RoPE settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rope {
    /// Rotated dimensions per head.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension_count: Option<u64>,
    /// Base frequency (theta).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freq_base: Option<f64>,
    /// Scaling (`linear`, `yarn`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling_type: Option<String>,
    /// Scaling factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling_factor: Option<f64>,
    /// Context the scaling starts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_context_length: Option<u64>,
}

/// The tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tokenizer {
    /// `tokenizer.ggml.model` (`llama` = SentencePiece, `gpt2` = BPE, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `tokenizer.ggml.pre`: the pre-tokenizer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre: Option<String>,
    /// Tokens in the vocabulary.
    pub vocab_size: u64,
    /// BPE merges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merges: Option<u64>,
    /// Beginning-of-sequence token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bos: Option<Token>,
    /// End-of-sequence token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eos: Option<Token>,
}

/// A special token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Its id.
    pub id: u64,
    /// Its text, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl GgufSummary {
    /// The summary of a model from its shards (the first holds the metadata). `token_text`
    /// gives the text of a token id when the vocabulary was not kept in memory.
    pub fn new(shards: &[Gguf], token_text: &dyn Fn(u64) -> Option<String>) -> GgufSummary {
        let first = &shards[0];
        let m = &first.metadata;
        let params = ModelParams::from_gguf(first);
        let text = |k: &str| m.str(k).map(str::to_string);
        let arch = m.str("general.architecture");
        let key = |k: &str| arch.map(|a| format!("{a}.{k}"));
        let u = |k: &str| key(k).and_then(|k| m.u64(&k));

        let mut mix: BTreeMap<GgmlType, TypeMix> = BTreeMap::new();
        for t in shards.iter().flat_map(|g| &g.tensors) {
            let e = mix.entry(t.ggml_type).or_insert(TypeMix {
                ggml_type: t.ggml_type,
                tensors: 0,
                parameters: 0,
                bytes: Some(0),
            });
            e.tensors += 1;
            e.parameters = e.parameters.saturating_add(t.elements());
            e.bytes = e.bytes.zip(t.n_bytes()).map(|(a, b)| a.saturating_add(b));
        }
        let mut tensor_types: Vec<TypeMix> = mix.into_values().collect();
        tensor_types.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.ggml_type.cmp(&b.ggml_type)));

        let tokens = m.array("tokenizer.ggml.tokens");
        let token = |k: &str| {
            m.u64(k).map(|id| Token {
                id,
                text: token_text(id),
            })
        };
        let tokenizer =
            (tokens.is_some() || m.get("tokenizer.ggml.model").is_some()).then(|| Tokenizer {
                model: text("tokenizer.ggml.model"),
                pre: text("tokenizer.ggml.pre"),
                vocab_size: tokens.map_or(0, |a| a.len),
                merges: m.array("tokenizer.ggml.merges").map(|a| a.len),
                bos: token("tokenizer.ggml.bos_token_id"),
                eos: token("tokenizer.ggml.eos_token_id"),
            });
        let rope = {
            let r = Rope {
                dimension_count: u("rope.dimension_count"),
                freq_base: key("rope.freq_base").and_then(|k| m.f64(&k)),
                scaling_type: key("rope.scaling.type").and_then(|k| text(&k)),
                scaling_factor: key("rope.scaling.factor").and_then(|k| m.f64(&k)),
                original_context_length: u("rope.scaling.original_context_length"),
            };
            (r.dimension_count.is_some() || r.freq_base.is_some() || r.scaling_type.is_some())
                .then_some(r)
        };
        let largest = |v: &[u64]| Some(ModelParams::max_of(v)).filter(|&x| x > 0);
        GgufSummary {
            name: text("general.name"),
            architecture: arch.map(str::to_string),
            size_label: text("general.size_label"),
            license: text("general.license"),
            parameters: shards
                .iter()
                .fold(0u64, |a, g| a.saturating_add(g.parameter_count())),
            file_type: m.u64("general.file_type").map(|id| {
                u32::try_from(id)
                    .ok()
                    .and_then(file_type_name)
                    .map_or_else(|| format!("file type {id}"), str::to_string)
            }),
            tensor_types,
            context_length: u("context_length"),
            layers: u("block_count"),
            embedding_length: u("embedding_length"),
            feed_forward_length: params.as_ref().and_then(|p| largest(&p.n_ff)),
            heads: params.as_ref().and_then(|p| largest(&p.n_head)),
            kv_heads: params.as_ref().and_then(|p| largest(&p.n_head_kv)),
            head_dim: params.as_ref().map(|p| p.n_embd_head_k).filter(|&d| d > 0),
            experts: params.as_ref().filter(|p| p.n_expert > 0).map(|p| Experts {
                count: p.n_expert,
                used: p.n_expert_used,
            }),
            sliding_window: params
                .as_ref()
                .filter(|p| p.n_swa > 0)
                .map(|p| SlidingWindow {
                    window: p.n_swa,
                    layers: p.swa_layers.iter().filter(|&&s| s).count() as u64,
                }),
            latent_attention: params
                .as_ref()
                .is_some_and(|p| p.attention == crate::hparams::Attention::Latent),
            rope,
            tokenizer,
            chat_template: m.get("tokenizer.chat_template").is_some(),
            shards: shards.len(),
            header_bytes: shards.iter().map(|g| g.header_len).sum(),
            file_bytes: shards.iter().map(|g| g.file_size).sum(),
            version: first.version,
        }
    }
}
