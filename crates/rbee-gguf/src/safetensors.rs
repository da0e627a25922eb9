//! Safetensors headers (an 8-byte length, then JSON: dtype, shape and byte range of each
//! tensor) and the `config.json` of a HuggingFace model folder.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::GgufError;
use crate::hparams::{Attention, ModelParams};

/// The largest JSON header accepted (the `safetensors` library's own limit).
pub const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;
/// The largest `config.json` read.
pub const MAX_CONFIG_JSON: u64 = 4 << 20;

/// One tensor of a safetensors file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafeTensor {
    /// Its name (`model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    /// Its dtype (`BF16`, `F8_E4M3`, …).
    pub dtype: String,
    /// Its shape, outermost first.
    pub shape: Vec<u64>,
    /// Its bytes.
    pub bytes: u64,
}

impl SafeTensor {
    /// Elements (checked not to overflow when read).
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A parsed safetensors header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafetensorsHeader {
    /// Tensors in file order.
    pub tensors: Vec<SafeTensor>,
    /// `__metadata__`.
    pub metadata: BTreeMap<String, String>,
    /// Bytes of the header (the length prefix and the JSON).
    pub header_len: u64,
    /// Bytes of the file.
    pub file_size: u64,
}

/// Bits per element of a safetensors dtype.
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => 8,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "U16" | "I16" | "F16" | "BF16" => 16,
        "U32" | "I32" | "F32" => 32,
        "U64" | "I64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// The length of the JSON header from the first 8 bytes of a file, checked against the file
/// and [`MAX_SAFETENSORS_HEADER`].
pub fn safetensors_header_len(
    prefix: [u8; 8],
    file_size: u64,
    name: &str,
) -> Result<u64, GgufError> {
    let n = u64::from_le_bytes(prefix);
    if n > MAX_SAFETENSORS_HEADER {
        return Err(GgufError::TooLarge {
            what: format!("the safetensors header of {name}"),
            size: n,
            limit: MAX_SAFETENSORS_HEADER,
        });
    }
    if n.saturating_add(8) > file_size {
        return Err(GgufError::Truncated {
            what: format!("the safetensors header of {name}"),
            offset: 8,
            needed: n,
            file_len: file_size,
        });
    }
    Ok(n)
}

/// Parses the JSON header of `name` (without its length prefix), checking each tensor's byte
/// range against its dtype and shape, and the ranges against each other and the file, as the
/// `safetensors` library does.
pub fn parse_safetensors_header(
    json: &[u8],
    file_size: u64,
    name: &str,
) -> Result<SafetensorsHeader, GgufError> {
    let bad = |message: String| GgufError::Safetensors {
        message: format!("{name}: {message}"),
    };
    let raw: HashMap<String, serde_json::Value> = serde_json::from_slice(json)
        .map_err(|e| bad(format!("the header is not a JSON object ({e})")))?;
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::new();
    let mut ranges = Vec::new();
    for (key, value) in raw {
        if key == "__metadata__" {
            metadata = serde_json::from_value(value)
                .map_err(|e| bad(format!("__metadata__ is not a map of strings ({e})")))?;
            continue;
        }
        let t: RawTensor = serde_json::from_value(value)
            .map_err(|e| bad(format!("tensor `{key}` is malformed ({e})")))?;
        let bits = dtype_bits(&t.dtype)
            .ok_or_else(|| bad(format!("tensor `{key}` has unknown dtype {}", t.dtype)))?;
        let elements = t
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad(format!("tensor `{key}` has too many elements")))?;
        let bytes = elements
            .checked_mul(bits)
            .map(|b| b.div_ceil(8))
            .ok_or_else(|| bad(format!("tensor `{key}` has too many elements")))?;
        let (begin, end) = t.data_offsets;
        if end < begin || end - begin != bytes {
            return Err(bad(format!(
                "tensor `{key}` spans bytes {begin}..{end}, but a {} tensor of shape {:?} takes {bytes}",
                t.dtype, t.shape
            )));
        }
        ranges.push((begin, end, key.clone()));
        tensors.push(SafeTensor {
            name: key,
            dtype: t.dtype,
            shape: t.shape,
            bytes,
        });
    }
    // The data must be tensors back to back from the start, ending at the end of the file.
    ranges.sort();
    let mut pos = 0;
    for (begin, end, key) in &ranges {
        if *begin != pos {
            return Err(bad(format!(
                "tensor `{key}` starts at byte {begin} of the data, expected {pos} (tensors must not overlap or leave gaps)"
            )));
        }
        pos = *end;
    }
    let header_len = 8 + json.len() as u64;
    if header_len.saturating_add(pos) != file_size {
        return Err(bad(format!(
            "the tensors end at byte {}, but the file has {file_size}; it is truncated or damaged",
            header_len.saturating_add(pos)
        )));
    }
    // File order, for people.
    let order: HashMap<&str, u64> = ranges.iter().map(|(b, _, k)| (k.as_str(), *b)).collect();
    tensors.sort_by_key(|t| order.get(t.name.as_str()).copied().unwrap_or(0));
    Ok(SafetensorsHeader {
        tensors,
        metadata,
        header_len,
        file_size,
    })
}

/// Reads the header of a local safetensors file.
pub fn read_safetensors_file(path: &Path) -> Result<SafetensorsHeader, GgufError> {
    let io = |e| GgufError::Io {
        context: format!("reading {}", path.display()),
        source: e,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let name = path.display().to_string();
    let mut prefix = [0u8; 8];
    if size < 8 {
        return Err(GgufError::Truncated {
            what: format!("the safetensors header of {name}"),
            offset: 0,
            needed: 8,
            file_len: size,
        });
    }
    f.read_exact(&mut prefix).map_err(io)?;
    let n = safetensors_header_len(prefix, size, &name)?;
    let mut json = vec![0u8; n as usize];
    f.read_exact(&mut json).map_err(io)?;
    parse_safetensors_header(&json, size, &name)
}

/// What `config.json` says about a model (the text model's part for multimodal ones).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// `architectures[0]` (`LlamaForCausalLM`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// `model_type` (`llama`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// `hidden_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<u64>,
    /// `intermediate_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intermediate_size: Option<u64>,
    /// `num_hidden_layers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<u64>,
    /// `num_attention_heads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<u64>,
    /// `num_key_value_heads` (default: the heads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<u64>,
    /// `head_dim` (default: hidden size / heads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<u64>,
    /// `vocab_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<u64>,
    /// `max_position_embeddings`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    /// `torch_dtype` (or `dtype`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// `sliding_window`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<u64>,
    /// `num_local_experts` / `num_experts` / `n_routed_experts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experts: Option<u64>,
    /// `num_experts_per_tok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experts_used: Option<u64>,
    /// `rope_theta`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// `tie_word_embeddings`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tie_word_embeddings: Option<bool>,
}

impl ModelConfig {
    /// Reads what matters from a `config.json` body.
    pub fn parse(json: &[u8], name: &str) -> Result<ModelConfig, GgufError> {
        let v: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| GgufError::Safetensors {
                message: format!("{name} is not valid JSON ({e})"),
            })?;
        if !v.is_object() {
            return Err(GgufError::Safetensors {
                message: format!("{name} is not a JSON object"),
            });
        }
        // Multimodal models keep the language model's settings in `text_config`.
        let text = v.get("text_config").filter(|t| t.is_object()).unwrap_or(&v);
        let u = |k: &str| text.get(k).and_then(serde_json::Value::as_u64);
        let s = |k: &str| {
            text.get(k)
                .or_else(|| v.get(k))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        };
        Ok(ModelConfig {
            architecture: v
                .get("architectures")
                .and_then(|a| a.get(0))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
            model_type: s("model_type"),
            hidden_size: u("hidden_size"),
            intermediate_size: u("intermediate_size"),
            layers: u("num_hidden_layers"),
            heads: u("num_attention_heads"),
            kv_heads: u("num_key_value_heads"),
            head_dim: u("head_dim"),
            vocab_size: u("vocab_size").or_else(|| v.get("vocab_size").and_then(|x| x.as_u64())),
            context_length: u("max_position_embeddings"),
            dtype: s("torch_dtype").or_else(|| s("dtype")),
            sliding_window: u("sliding_window"),
            experts: u("num_local_experts")
                .or_else(|| u("num_experts"))
                .or_else(|| u("n_routed_experts")),
            experts_used: u("num_experts_per_tok"),
            rope_theta: text.get("rope_theta").and_then(serde_json::Value::as_f64),
            tie_word_embeddings: v
                .get("tie_word_embeddings")
                .and_then(serde_json::Value::as_bool),
        })
    }

    /// The hyperparameters for a memory estimate, when the config has the essentials.
    pub fn params(&self) -> Option<ModelParams> {
        let n_layer = self.layers.filter(|&n| n > 0 && n <= 1 << 16)?;
        let n = n_layer as usize;
        let n_embd = self.hidden_size?;
        let heads = self.heads?;
        let kv_heads = self.kv_heads.unwrap_or(heads);
        let head_dim = self.head_dim.or(n_embd.checked_div(heads))?;
        let model_type = self.model_type.clone().unwrap_or_default();
        // The same sliding-window layouts as for GGUF, by HF model type.
        let pattern = match model_type.as_str() {
            "gemma2" => Some(2),
            "gemma3" | "gemma3_text" => Some(6),
            "cohere2" => Some(4),
            "gpt_oss" => Some(2),
            _ => None,
        };
        let n_swa = self
            .sliding_window
            .filter(|_| pattern.is_some())
            .unwrap_or(0);
        let swa_layers = match pattern {
            Some(p) if n_swa > 0 => (0..n_layer).map(|il| il % p < p - 1).collect(),
            _ => vec![false; n],
        };
        Some(ModelParams {
            architecture: model_type,
            n_layer,
            n_ctx_train: self.context_length,
            n_embd,
            n_vocab: self.vocab_size.unwrap_or(0),
            n_head: vec![heads; n],
            n_head_kv: vec![kv_heads; n],
            n_ff: vec![self.intermediate_size.unwrap_or(0); n],
            n_embd_head_k: head_dim,
            n_embd_head_v: head_dim,
            n_expert: self.experts.unwrap_or(0),
            n_expert_used: self.experts_used.unwrap_or(0),
            n_swa,
            swa_layers,
            attention: Attention::Standard,
        })
    }
}

/// A safetensors model at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SafetensorsSummary {
    /// What `config.json` says, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ModelConfig>,
    /// Elements of all tensors of all shards.
    pub parameters: u64,
    /// Tensors by dtype, most bytes first.
    pub dtypes: Vec<DtypeMix>,
    /// Shards read.
    pub shards: usize,
    /// Header bytes (all shards).
    pub header_bytes: u64,
    /// File bytes (all shards).
    pub file_bytes: u64,
}

/// Tensors of one dtype.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtypeMix {
    /// The dtype.
    pub dtype: String,
    /// Tensors of this dtype.
    pub tensors: u64,
    /// Their elements.
    pub parameters: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl SafetensorsSummary {
    /// The summary of a model from its shards and config.
    pub fn new(shards: &[SafetensorsHeader], config: Option<ModelConfig>) -> SafetensorsSummary {
        let mut mix: BTreeMap<&str, DtypeMix> = BTreeMap::new();
        for t in shards.iter().flat_map(|s| &s.tensors) {
            let e = mix.entry(&t.dtype).or_insert_with(|| DtypeMix {
                dtype: t.dtype.clone(),
                tensors: 0,
                parameters: 0,
                bytes: 0,
            });
            e.tensors += 1;
            e.parameters = e.parameters.saturating_add(t.elements());
            e.bytes = e.bytes.saturating_add(t.bytes);
        }
        let mut dtypes: Vec<DtypeMix> = mix.into_values().collect();
        dtypes.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.dtype.cmp(&b.dtype)));
        SafetensorsSummary {
            config,
            parameters: dtypes
                .iter()
                .fold(0u64, |a, d| a.saturating_add(d.parameters)),
            dtypes,
            shards: shards.len(),
            header_bytes: shards.iter().map(|s| s.header_len).sum(),
            file_bytes: shards.iter().map(|s| s.file_size).sum(),
        }
    }
}

/// The GGUF-style name of a HuggingFace tensor, for placing it on a device in an estimate
/// (`model.layers.3.mlp.up_proj.weight` → `blk.3.mlp.up_proj.weight`).
pub fn gguf_style_name(name: &str) -> String {
    let name = name
        .strip_prefix("language_model.")
        .or_else(|| name.strip_prefix("model.language_model."))
        .map(|rest| format!("model.{rest}"))
        .unwrap_or_else(|| name.to_string());
    if let Some(rest) = name.strip_prefix("model.layers.") {
        return format!("blk.{rest}");
    }
    if name.starts_with("model.embed_tokens.") {
        return "token_embd.weight".to_string();
    }
    if name.starts_with("lm_head.") {
        return "output.weight".to_string();
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_ranges_like_the_library() {
        let json = br#"{"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]},"__metadata__":{"format":"pt"}}"#;
        let size = 8 + json.len() as u64 + 14;
        let h = parse_safetensors_header(json, size, "x").unwrap();
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.tensors[0].name, "a");
        assert_eq!(h.metadata["format"], "pt");
        // Truncated file.
        assert!(parse_safetensors_header(json, size - 1, "x").is_err());
        // Wrong byte count for the shape.
        let json = br#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}"#;
        assert!(parse_safetensors_header(json, 8 + json.len() as u64 + 8, "x").is_err());
        // Overlap.
        let json = br#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#;
        assert!(parse_safetensors_header(json, 8 + json.len() as u64 + 6, "x").is_err());
        assert!(safetensors_header_len(u64::MAX.to_le_bytes(), 100, "x").is_err());
        assert!(safetensors_header_len(50u64.to_le_bytes(), 20, "x").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(
            gguf_style_name("model.layers.3.mlp.up_proj.weight"),
            "blk.3.mlp.up_proj.weight"
        );
        assert_eq!(
            gguf_style_name("model.embed_tokens.weight"),
            "token_embd.weight"
        );
        assert_eq!(gguf_style_name("lm_head.weight"), "output.weight");
        assert_eq!(gguf_style_name("model.norm.weight"), "model.norm.weight");
    }
}
