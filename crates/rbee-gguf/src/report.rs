//! Putting an inspection to use: the KV cache types an estimate takes, the GPUs to judge it
//! against, the fit, and the [`InspectReport`] that `rbee model inspect --json` prints and
//! rbee-hive's `POST /v1/inspect` answers (one shape for both, so either side reads the other).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::GgufError;
use crate::estimate::{Estimate, EstimateOptions};
use crate::gpu::{Detected, Gpu, Verdict, available_ram, detect_gpus, verdict};
use crate::inspect::{InspectedFile, Inspection, ModelSummary};
use crate::types::GgmlType;

/// The KV cache types llama.cpp takes for `-ctk`/`-ctv`, as spelled on its command line.
pub const KV_CACHE_TYPES: [&str; 9] = [
    "f16", "bf16", "f32", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl",
];

/// The KV cache type named `name` (case-insensitive), or a sentence listing the valid ones.
///
/// ```
/// use rbee_gguf::{GgmlType, kv_cache_type};
///
/// assert_eq!(kv_cache_type("Q8_0").unwrap(), GgmlType::from_name("q8_0").unwrap());
/// assert!(kv_cache_type("q4_k").unwrap_err().contains("use one of f16, bf16"));
/// ```
pub fn kv_cache_type(name: &str) -> Result<GgmlType, String> {
    let lower = name.trim().to_ascii_lowercase();
    KV_CACHE_TYPES
        .contains(&lower.as_str())
        .then(|| GgmlType::from_name(&lower))
        .flatten()
        .ok_or_else(|| {
            format!(
                "`{name}` is not a KV cache type; use one of {}",
                KV_CACHE_TYPES.join(", ")
            )
        })
}

/// The GPUs to judge a fit against: one of `vram` bytes when given (the user's word beats
/// detection), else what `nvidia_smi` lists; with no GPU, why none was found.
pub async fn find_gpus(vram: Option<u64>, nvidia_smi: &Path) -> (Vec<Gpu>, Option<String>) {
    if let Some(vram) = vram {
        return (vec![Gpu::declared(vram)], None);
    }
    match detect_gpus(nvidia_smi).await {
        Detected::Gpus(g) => (g, None),
        Detected::NoGpu(why) => (Vec::new(), Some(why)),
    }
}

/// The estimate at some settings and the verdict on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// The memory the model needs.
    pub estimate: Estimate,
    /// Whether (and where) that fits the GPUs.
    pub verdict: Verdict,
    /// RAM the OS could give a new process now, where known.
    pub ram: Option<u64>,
}

impl Inspection {
    /// The estimate with `options` and its verdict against `gpus`; `None` when the headers
    /// lack the hyperparameters for an estimate.
    pub fn fit(&self, options: &EstimateOptions, gpus: &[Gpu]) -> Option<Result<Fit, GgufError>> {
        let estimate = match self.estimate(options)? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let with_layers = |n: u64| {
            self.estimate(&EstimateOptions {
                gpu_layers: Some(n),
                ..options.clone()
            })
            .and_then(Result::ok)
        };
        let verdict = verdict(gpus, &estimate, &with_layers);
        Some(Ok(Fit {
            estimate,
            verdict,
            ram: available_ram(),
        }))
    }
}

/// What is known about a model from its headers, with the estimate and verdict: what
/// `rbee model inspect --json` prints and rbee-hive's `POST /v1/inspect` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InspectReport {
    /// The reference inspected (a `:fit` already replaced by the quantization chosen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// What choosing the quantization found (`:fit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The summary.
    pub summary: ModelSummary,
    /// The files read.
    pub files: Vec<InspectedFile>,
    /// Every metadata key (large arrays by length unless asked in full).
    pub metadata: serde_json::Value,
    /// The commit or tag the files come from (remote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Every tensor (only when asked in full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors: Option<serde_json::Value>,
    /// The GPUs judged against.
    pub gpus: Vec<Gpu>,
    /// Why no GPU was found, when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_detection: Option<String>,
    /// The memory estimate (absent when the headers lack layer and head counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
    /// Whether it fits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// RAM available on the machine judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_available: Option<u64>,
}

impl InspectReport {
    /// The report on `inspection` (every array item and tensor when `full`) with its `fit`
    /// against `gpus` (`no_gpu`: why there are none).
    pub fn new(
        inspection: &Inspection,
        full: bool,
        fit: Option<Fit>,
        gpus: Vec<Gpu>,
        no_gpu: Option<String>,
    ) -> Self {
        let (estimate, verdict, ram_available) = match fit {
            Some(f) => (Some(f.estimate), Some(f.verdict), f.ram),
            None => (None, None, None),
        };
        InspectReport {
            reference: None,
            notes: Vec::new(),
            summary: inspection.summary.clone(),
            files: inspection.files.clone(),
            metadata: inspection.metadata_json(),
            revision: inspection.revision.clone(),
            tensors: full.then(|| inspection.tensors_json()),
            gpus,
            gpu_detection: no_gpu,
            estimate,
            verdict,
            ram_available,
        }
    }

    /// The estimate and verdict together, when there is an estimate.
    pub fn fit(&self) -> Option<Fit> {
        Some(Fit {
            estimate: self.estimate.clone()?,
            verdict: self.verdict.clone()?,
            ram: self.ram_available,
        })
    }

    /// The chat template (`tokenizer.chat_template`), if the model has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.metadata.get("tokenizer.chat_template")?.as_str()
    }

    /// As a JSON value (keys sorted).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GgufWriter, ReadOptions, Value, inspect_local};

    #[test]
    fn kv_cache_types_are_the_ones_llama_cpp_takes() {
        for name in KV_CACHE_TYPES {
            assert_eq!(
                kv_cache_type(name).unwrap().name().to_ascii_lowercase(),
                name
            );
        }
        assert_eq!(
            kv_cache_type(" Q8_0 ").unwrap(),
            GgmlType::from_name("q8_0").unwrap()
        );
        // A ggml type, but not one a KV cache can use.
        let e = kv_cache_type("q4_k").unwrap_err();
        assert!(e.starts_with("`q4_k` is not a KV cache type"), "{e}");
    }

    #[test]
    fn a_report_reads_back_as_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        GgufWriter::new()
            .kv("general.architecture", Value::String("llama".into()))
            .kv("llama.block_count", Value::U32(2))
            .kv("llama.embedding_length", Value::U32(64))
            .kv("llama.attention.head_count", Value::U32(4))
            .kv("tokenizer.chat_template", Value::String("{{ x }}".into()))
            .tensor("blk.0.attn_q.weight", &[64, 64], GgmlType::F16)
            .tensor("blk.1.attn_q.weight", &[64, 64], GgmlType::Q8_0)
            .write_to(&path)
            .unwrap();
        let inspection = inspect_local(&[path], &ReadOptions::default()).unwrap();
        let gpus = vec![Gpu::declared(1 << 30)];
        let fit = inspection
            .fit(&EstimateOptions::default(), &gpus)
            .unwrap()
            .unwrap();
        assert!(fit.verdict.fits, "{}", fit.verdict.line);
        let report = InspectReport::new(&inspection, true, Some(fit.clone()), gpus, None);
        let back: InspectReport = serde_json::from_value(report.to_json()).unwrap();
        assert_eq!(back.summary, inspection.summary);
        assert_eq!(back.files, inspection.files);
        assert_eq!(back.fit(), Some(fit));
        assert_eq!(back.chat_template(), Some("{{ x }}"));
        assert_eq!(back.tensors.unwrap().as_array().unwrap().len(), 2);
    }
}
