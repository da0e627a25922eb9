//! How much memory llama.cpp allocates for a model: weights per device with `--ngl`, the KV
//! cache (GQA, sliding window, latent attention; f16 or quantized), compute and output
//! buffers, for a context size and a number of parallel sequences.
//!
//! The formulas, and where each comes from in llama.cpp, are written down in
//! `docs/inspect.md`; keep the two in step.

use serde::{Deserialize, Serialize};

use crate::error::GgufError;
use crate::hparams::ModelParams;
use crate::reader::Gguf;
use crate::types::GgmlType;

/// The context used when none is asked for: the training context, capped here.
pub const DEFAULT_CONTEXT_CAP: u64 = 8192;
/// llama.cpp's default micro-batch (`n_ubatch`).
pub const DEFAULT_UBATCH: u64 = 512;
/// llama.cpp rounds the context (per sequence) and the sliding-window cache up to this.
const CONTEXT_PAD: u64 = 256;
/// Bytes of an f32.
const F32: u64 = 4;

/// Architectures without a causal KV cache or an output layer (embedding encoders).
const ENCODERS: &[&str] = &[
    "bert",
    "nomic-bert",
    "nomic-bert-moe",
    "jina-bert-v2",
    "jina-bert-v3",
    "neo-bert",
    "modern-bert",
    "t5encoder",
];

/// What to estimate for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EstimateOptions {
    /// Context per sequence (`-c`); `None`: the training context, at most
    /// [`DEFAULT_CONTEXT_CAP`].
    pub context: Option<u64>,
    /// KV cache type (`-ctk`/`-ctv`): f16 (default), q8_0, q4_0, …
    pub kv_type: GgmlType,
    /// Repeating layers offloaded to the GPU (`-ngl`); `None`: all, and the output layer.
    pub gpu_layers: Option<u64>,
    /// Parallel sequences (`-np`), each with its own context.
    pub parallel: u64,
    /// Micro-batch size (`-ub`).
    pub ubatch: u64,
    /// Flash attention (llama.cpp turns it on where the GPU supports it); without it the
    /// attention scores of a micro-batch are materialised.
    pub flash_attention: bool,
}

impl Default for EstimateOptions {
    fn default() -> Self {
        EstimateOptions {
            context: None,
            kv_type: GgmlType::F16,
            gpu_layers: None,
            parallel: 1,
            ubatch: DEFAULT_UBATCH,
            flash_attention: true,
        }
    }
}

/// Memory on one device, by purpose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMemory {
    /// Model weights.
    pub weights: u64,
    /// KV cache.
    pub kv_cache: u64,
    /// Compute buffer (intermediate tensors of the largest graph).
    pub compute: u64,
    /// Output buffer (logits of the last token of each sequence).
    pub output: u64,
}

impl DeviceMemory {
    /// Everything on this device.
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_add(self.kv_cache)
            .saturating_add(self.compute)
            .saturating_add(self.output)
    }
}

/// The memory a model needs, split between the GPU and the CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Context per sequence, as asked (before padding).
    pub context: u64,
    /// KV cells of all sequences together (after padding), for full-attention layers.
    pub kv_cells: u64,
    /// KV cells of all sequences together for sliding-window layers.
    pub kv_cells_swa: u64,
    /// Parallel sequences.
    pub parallel: u64,
    /// KV cache type.
    pub kv_type: GgmlType,
    /// Repeating layers on the GPU.
    pub gpu_layers: u64,
    /// Repeating layers in the model.
    pub layers: u64,
    /// Whether the output layer is on the GPU.
    pub output_on_gpu: bool,
    /// What the GPU holds (VRAM).
    pub gpu: DeviceMemory,
    /// What the CPU holds (RAM; weights are memory-mapped from the file).
    pub cpu: DeviceMemory,
    /// Assumptions worth knowing.
    pub notes: Vec<String>,
}

/// Where llama.cpp puts a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Token embeddings: always the CPU ("very little benefit to offloading the input layer").
    Input,
    /// `blk.N.*`.
    Layer(u64),
    /// Output norm, output projection and anything else outside the blocks.
    Output,
}

fn place(name: &str) -> Place {
    const INPUT: &[&str] = &[
        "token_embd.",
        "token_embd_norm.",
        "token_types.",
        "position_embd.",
    ];
    if INPUT.iter().any(|p| name.starts_with(p)) {
        return Place::Input;
    }
    if let Some(rest) = name.strip_prefix("blk.")
        && let Some((n, _)) = rest.split_once('.')
        && let Ok(n) = n.parse()
    {
        return Place::Layer(n);
    }
    Place::Output
}

fn pad(n: u64, to: u64) -> u64 {
    n.div_ceil(to).saturating_mul(to)
}

/// One weight tensor for an estimate: its GGUF-style name (which places it on a device) and
/// its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weight {
    /// `blk.N.…`, `token_embd.weight`, `output.weight`, …
    pub name: String,
    /// Bytes of its data.
    pub bytes: u64,
}

/// The weights of a GGUF model (all shards); refuses tensors of a type this crate does not
/// know, whose size it cannot tell.
pub fn gguf_weights(shards: &[Gguf]) -> Result<Vec<Weight>, GgufError> {
    shards
        .iter()
        .flat_map(|g| &g.tensors)
        .map(|t| {
            Ok(Weight {
                name: t.name.clone(),
                bytes: t.n_bytes().ok_or_else(|| GgufError::Estimate {
                    message: format!(
                        "cannot estimate: tensor `{}` has ggml type {}, which this version of rbee does not know",
                        t.name, t.ggml_type.0
                    ),
                })?,
            })
        })
        .collect()
}

/// Estimates what llama.cpp allocates to run a model with these `weights` and `params`.
pub fn estimate(
    weights: &[Weight],
    params: &ModelParams,
    options: &EstimateOptions,
) -> Result<Estimate, GgufError> {
    let refuse = |message: String| GgufError::Estimate { message };
    if options.parallel == 0 || options.ubatch == 0 {
        return Err(refuse(
            "--parallel and the micro-batch must be at least 1".into(),
        ));
    }
    let n_layer = params.n_layer;
    let gpu_layers = options.gpu_layers.unwrap_or(u64::MAX).min(n_layer + 1);
    // llama.cpp: layers from `n_layer - ngl` on go to the GPU; the output layer counts as
    // layer `n_layer`, so it goes along only when ngl exceeds the repeating layers.
    let first_gpu_layer = n_layer.saturating_sub(gpu_layers);
    let output_on_gpu = gpu_layers > n_layer;
    let on_gpu = |p: Place| match p {
        Place::Input => false,
        Place::Layer(n) if n < n_layer => n >= first_gpu_layer,
        Place::Layer(_) | Place::Output => output_on_gpu,
    };
    let mut gpu = DeviceMemory::default();
    let mut cpu = DeviceMemory::default();
    let mut notes = Vec::new();

    let mut has_output = false;
    let mut token_embd = None;
    for w in weights {
        has_output |= w.name == "output.weight";
        if w.name == "token_embd.weight" {
            token_embd = Some(w.bytes);
        }
        let device = if on_gpu(place(&w.name)) {
            &mut gpu
        } else {
            &mut cpu
        };
        device.weights = device.weights.saturating_add(w.bytes);
    }
    let encoder = ENCODERS.contains(&params.architecture.as_str());
    if let Some(bytes) = token_embd.filter(|_| !has_output && !encoder) {
        // Tied embeddings: llama.cpp loads the token embeddings a second time as the output
        // projection, on the output layer's device.
        let device = if output_on_gpu { &mut gpu } else { &mut cpu };
        device.weights = device.weights.saturating_add(bytes);
        notes.push("tied embeddings: the token embeddings are loaded twice (input on the CPU, output with the output layer)".into());
    }

    let context = options
        .context
        .or(params.n_ctx_train.map(|c| c.min(DEFAULT_CONTEXT_CAP)))
        .unwrap_or(DEFAULT_CONTEXT_CAP)
        .max(1);
    let streams = options.parallel;
    let cells = pad(context, CONTEXT_PAD);
    let cells_swa = if params.n_swa > 0 {
        pad(
            cells.min(params.n_swa.saturating_add(options.ubatch)),
            CONTEXT_PAD,
        )
    } else {
        cells
    };
    let kv = options.kv_type;
    if encoder {
        notes.push("an encoder: no KV cache".into());
    } else {
        let block = kv
            .block_size()
            .ok_or_else(|| refuse(format!("unknown KV cache type {kv}")))?;
        if block > 1
            && (!params.n_embd_head_k.is_multiple_of(block)
                || (params.n_embd_v_gqa(0) > 0 && !params.n_embd_head_v.is_multiple_of(block)))
        {
            return Err(refuse(format!(
                "--kv-type {kv} needs head sizes in multiples of {block}; this model's are {} (K) and {} (V); use f16",
                params.n_embd_head_k, params.n_embd_head_v
            )));
        }
        for il in 0..n_layer as usize {
            let layer_cells = if params.swa_layers.get(il).copied().unwrap_or(false) {
                cells_swa
            } else {
                cells
            };
            let row = |n: u64| kv.row_bytes(n).unwrap_or(0);
            let bytes = (row(params.n_embd_k_gqa(il)) + row(params.n_embd_v_gqa(il)))
                .saturating_mul(layer_cells)
                .saturating_mul(streams);
            let device = if on_gpu(Place::Layer(il as u64)) {
                &mut gpu
            } else {
                &mut cpu
            };
            device.kv_cache = device.kv_cache.saturating_add(bytes);
        }
    }

    // Compute buffers: the peak of the largest graph (a full micro-batch). See
    // docs/inspect.md for the calibration against llama.cpp's reports.
    let ub = options.ubatch.min(cells.saturating_mul(streams));
    let n_embd = params.n_embd;
    let act = |k: u64| {
        k.saturating_mul(n_embd)
            .saturating_mul(ub)
            .saturating_mul(F32)
    };
    let logits = params.n_vocab.saturating_mul(ub).saturating_mul(F32);
    let heads = ModelParams::max_of(&params.n_head);
    let scores = if options.flash_attention {
        0
    } else {
        heads
            .saturating_mul(cells)
            .saturating_mul(ub)
            .saturating_mul(F32)
    };
    let moe = if params.n_expert > 0 {
        let ff = ModelParams::max_of(&params.n_ff);
        ub.saturating_mul(F32).saturating_mul(
            params
                .n_expert
                .saturating_add(params.n_expert_used.saturating_mul(ff).saturating_mul(3)),
        )
    } else {
        0
    };
    let layers_peak = scores.saturating_add(act(6)).saturating_add(moe);
    let output_peak = logits.saturating_add(act(1));
    let any_gpu = gpu_layers > 0;
    if any_gpu {
        gpu.compute = (if output_on_gpu { output_peak } else { 0 }).max(layers_peak);
    }
    // The CPU always embeds the input; it runs whatever was not offloaded.
    let cpu_layers = gpu_layers.min(n_layer) < n_layer;
    cpu.compute = act(3).saturating_add(
        (if output_on_gpu { 0 } else { output_peak }).max(if cpu_layers { layers_peak } else { 0 }),
    );
    cpu.output = params.n_vocab.saturating_mul(F32).saturating_mul(streams);
    if !options.flash_attention {
        notes.push(
            "without flash attention, the attention scores of a micro-batch are materialised"
                .into(),
        );
    }
    notes.push("compute buffers are an approximation of llama.cpp's graph reservation; weights and KV cache are exact".into());
    Ok(Estimate {
        context,
        kv_cells: cells.saturating_mul(streams),
        kv_cells_swa: cells_swa.saturating_mul(streams),
        parallel: streams,
        kv_type: kv,
        gpu_layers: gpu_layers.min(n_layer),
        layers: n_layer,
        output_on_gpu,
        gpu,
        cpu,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places() {
        assert_eq!(place("token_embd.weight"), Place::Input);
        assert_eq!(place("blk.12.attn_q.weight"), Place::Layer(12));
        assert_eq!(place("output.weight"), Place::Output);
        assert_eq!(place("output_norm.weight"), Place::Output);
        assert_eq!(place("blk.x.attn_q.weight"), Place::Output);
        assert_eq!(pad(8192, 256), 8192);
        assert_eq!(pad(8193, 256), 8448);
    }
}
