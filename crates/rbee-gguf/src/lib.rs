//! Know a model before you fetch it.
#![deny(missing_docs)]

pub use error::GgufError;
pub use estimate::{
    DEFAULT_CONTEXT_CAP, DEFAULT_UBATCH, DeviceMemory, Estimate, EstimateOptions, estimate,
};
pub use gpu::{
    Detected, Gpu, NVIDIA_SMI_ARGS, Verdict, available_ram, detect_gpus, parse_nvidia_smi, verdict,
};
pub use hparams::{Attention, ModelParams};
pub use reader::{
    DEFAULT_ALIGNMENT, Gguf, MAGIC, MAX_DIMS, ReadOptions, TensorInfo, array_strings_at,
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
mod reader;
mod source;
mod summary;
mod types;
mod value;
mod write;
