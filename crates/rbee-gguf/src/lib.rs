//! Know a model before you fetch it: what is inside a GGUF or safetensors model, how much
//! memory it needs, and whether it fits this machine's GPUs — from its headers alone.
//!
//! - [`Gguf`] reads a GGUF header (versions 2 and 3, every value type, nested arrays, tensor
//!   infos, alignment) from any [`Source`]: a local file, bytes, or a [`Window`] of ranges
//!   fetched from a remote file. Hostile input is refused with a clear [`GgufError`], never a
//!   panic or an allocation from an unchecked count.
//! - [`read_remote`] grows a window over HTTP ranges as the parser needs it (a few requests
//!   for the largest vocabularies); [`inspect_remote`] resolves a reference with its vendor and
//!   reads every shard; [`inspect_local`] does the same on disk.
//! - [`GgufSummary`] / [`SafetensorsSummary`]: architecture, parameters, quantization and tensor
//!   types, context, layers, heads, experts, RoPE, tokenizer, chat template, licence.
//! - [`estimate`]: the memory llama.cpp allocates (weights per device with `--ngl`, KV cache
//!   with GQA, sliding windows and latent attention, compute and output buffers), and
//!   [`verdict`] against the GPUs [`detect_gpus`] finds. The formulas are in `docs/inspect.md`.
//!
//! ```
//! use rbee_gguf::{EstimateOptions, GgmlType, GgufWriter, ReadOptions, Value, inspect_local};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.gguf");
//! GgufWriter::new()
//!     .kv("general.architecture", Value::String("llama".into()))
//!     .kv("llama.block_count", Value::U32(1))
//!     .kv("llama.embedding_length", Value::U32(64))
//!     .kv("llama.attention.head_count", Value::U32(4))
//!     .tensor("blk.0.attn_q.weight", &[64, 64], GgmlType::F16)
//!     .write_to(&path)?;
//! let inspection = inspect_local(&[path], &ReadOptions::default())?;
//! let estimate = inspection
//!     .estimate(&EstimateOptions { context: Some(1024), ..Default::default() })
//!     .expect("the header has the hyperparameters")?;
//! // K and V: 4 heads of 16 values, f16, 1024 cells.
//! assert_eq!(estimate.gpu.kv_cache, 2 * 64 * 2 * 1024);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub use error::GgufError;
pub use estimate::{
    DEFAULT_CONTEXT_CAP, DEFAULT_UBATCH, DeviceMemory, Estimate, EstimateOptions, Weight, estimate,
    gguf_weights,
};
pub use gpu::{
    Detected, Gpu, NVIDIA_SMI_ARGS, Verdict, available_ram, detect_gpus, parse_nvidia_smi, verdict,
};
pub use hparams::{Attention, ModelParams};
pub use inspect::{
    InspectedFile, Inspection, ModelSummary, RemoteOptions, entry_summary_json, inspect_entry,
    inspect_local, inspect_path, inspect_plan, inspect_remote, is_model_file,
};
pub use reader::{
    DEFAULT_ALIGNMENT, Gguf, MAGIC, MAX_DIMS, ReadOptions, TensorInfo, array_strings_at,
};
pub use remote::{FIRST_WINDOW, RangeSource, RemoteGguf, read_remote};
pub use report::{Fit, InspectReport, KV_CACHE_TYPES, find_gpus, kv_cache_type};
pub use safetensors::{
    DtypeMix, MAX_CONFIG_JSON, MAX_SAFETENSORS_HEADER, ModelConfig, SafeTensor, SafetensorsHeader,
    SafetensorsSummary, dtype_bits, gguf_style_name, parse_safetensors_header,
    read_safetensors_file, safetensors_header_len,
};
pub use source::{FileSource, SliceSource, Source, SourceError, Window};
pub use summary::{Experts, GgufSummary, Rope, SlidingWindow, Token, Tokenizer, TypeMix};
pub use types::{GgmlType, file_type_name};
pub use value::{Array, Items, Metadata, Value, ValueType};
pub use write::{GgufWriter, array, string_array};

mod error;
mod estimate;
mod gpu;
mod hparams;
mod inspect;
mod reader;
mod remote;
mod report;
mod safetensors;
mod source;
mod summary;
mod types;
mod value;
mod write;
