//! Know a model before you fetch it.
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
    InspectedFile, Inspection, ModelSummary, RemoteOptions, inspect_local, inspect_path,
    inspect_plan, inspect_remote,
};
pub use reader::{
    DEFAULT_ALIGNMENT, Gguf, MAGIC, MAX_DIMS, ReadOptions, TensorInfo, array_strings_at,
};
pub use remote::{FIRST_WINDOW, RangeSource, RemoteGguf, read_remote};
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
mod safetensors;
mod source;
mod summary;
mod types;
mod value;
mod write;
