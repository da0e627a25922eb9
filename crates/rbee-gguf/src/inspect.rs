//! Inspecting a model: pick its GGUF shards or safetensors files, read their headers (from disk
//! or over HTTP ranges through a vendor's resolve), and put the summary together.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rbee_artifact::{
    ArtifactRef, FileSource as PlanSource, ResolveOptions, ResolvedArtifact, ResolvedFile,
    VendorSource,
};
use rbee_catalog::CatalogEntry;
use rbee_transfer::{FetchRequest, RangeReader, Transfer};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::GgufError;
use crate::estimate::{Estimate, EstimateOptions, Weight, estimate, gguf_weights};
use crate::hparams::ModelParams;
use crate::reader::{Gguf, ReadOptions, array_strings_at};
use crate::remote::{FIRST_WINDOW, read_remote};
use crate::safetensors::{
    MAX_CONFIG_JSON, ModelConfig, SafetensorsHeader, SafetensorsSummary, gguf_style_name,
    parse_safetensors_header, read_safetensors_file, safetensors_header_len,
};
use crate::source::{FileSource, Source};
use crate::summary::GgufSummary;

/// The summary of either kind of model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum ModelSummary {
    /// A GGUF model (all shards of a split file).
    Gguf(GgufSummary),
    /// A safetensors model (all shards, with `config.json`).
    Safetensors(SafetensorsSummary),
}

/// One file whose header was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InspectedFile {
    /// Path within the artifact (or on disk).
    pub path: String,
    /// Bytes in the file.
    pub size: u64,
    /// Bytes of its header.
    pub header_bytes: u64,
    /// HTTP requests made to read it (remote files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Bytes received to read it (remote files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
}

/// What was learnt about a model from its headers.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The summary.
    pub summary: ModelSummary,
    /// The files read.
    pub files: Vec<InspectedFile>,
    /// GGUF headers, one per shard (empty for safetensors).
    pub ggufs: Vec<Gguf>,
    /// Safetensors headers, one per shard (empty for GGUF).
    pub safetensors: Vec<SafetensorsHeader>,
    /// Hyperparameters, when the model has what an estimate needs.
    pub params: Option<ModelParams>,
    /// The weights, for an estimate.
    pub weights: Vec<Weight>,
    /// The commit or tag the files come from (remote).
    pub revision: Option<String>,
}

impl Inspection {
    /// The memory the model needs with `options`; `None` when the header lacks the
    /// hyperparameters (a folder without `config.json`) or the tensors (a vocabulary-only
    /// file).
    pub fn estimate(&self, options: &EstimateOptions) -> Option<Result<Estimate, GgufError>> {
        let params = self.params.as_ref()?;
        if self.weights.is_empty() {
            // A vocabulary-only file: nothing to run.
            return None;
        }
        Some(estimate(&self.weights, params, options))
    }

    /// The chat template, if the model has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.ggufs.first()?.metadata.str("tokenizer.chat_template")
    }

    /// Every metadata key of the first shard as JSON (GGUF), or each shard's `__metadata__`
    /// (safetensors).
    pub fn metadata_json(&self) -> serde_json::Value {
        if let Some(g) = self.ggufs.first() {
            return g.metadata.to_json();
        }
        let mut map = serde_json::Map::new();
        for (f, h) in self.files.iter().zip(&self.safetensors) {
            map.insert(f.path.clone(), serde_json::json!(h.metadata));
        }
        serde_json::Value::Object(map)
    }

    /// Everything as JSON: the summary, the files read, every metadata key (large arrays by
    /// length unless `full`), and with `full` every tensor.
    pub fn to_json(&self, full: bool) -> serde_json::Value {
        use serde_json::json;
        let mut value = json!({
            "summary": self.summary,
            "files": self.files,
            "metadata": self.metadata_json(),
        });
        if let Some(rev) = &self.revision {
            value["revision"] = json!(rev);
        }
        if full {
            let tensors: Vec<_> = self
                .ggufs
                .iter()
                .flat_map(|g| &g.tensors)
                .map(|t| {
                    json!({"name": t.name, "type": t.ggml_type, "dims": t.dims, "offset": t.offset, "bytes": t.n_bytes()})
                })
                .chain(self.safetensors.iter().flat_map(|h| &h.tensors).map(|t| {
                    json!({"name": t.name, "type": t.dtype, "dims": t.shape, "bytes": t.bytes})
                }))
                .collect();
            value["tensors"] = json!(tensors);
        }
        value
    }
}

/// Whether a file is one whose header holds a model summary (a GGUF or safetensors file).
pub fn is_model_file(path: &str) -> bool {
    let name = path.to_ascii_lowercase();
    name.ends_with(".gguf") || name.ends_with(".safetensors")
}

/// The model summary of a catalog entry's files, read from disk: `None` when the entry has no
/// GGUF or safetensors file, or not all its files are present.
pub fn inspect_entry(entry: &CatalogEntry) -> Option<Result<Inspection, GgufError>> {
    let paths: Vec<PathBuf> = entry.paths();
    let model_files = paths.iter().any(|p| is_model_file(&p.to_string_lossy()));
    if !model_files || !entry.files_present() {
        return None;
    }
    Some(inspect_local(&paths, &ReadOptions::default()))
}

/// The model summary of a catalog entry as JSON, as `rbee model info --json` and rbee-hive's
/// `GET /v1/models/{id}` show it: [`Inspection::to_json`] with the default estimate, `null`
/// when there is no model file, `{"error"}` when the headers cannot be read.
pub fn entry_summary_json(entry: &CatalogEntry) -> serde_json::Value {
    match inspect_entry(entry) {
        None => serde_json::Value::Null,
        Some(Ok(i)) => {
            let mut v = i.to_json(false);
            if let Some(Ok(e)) = i.estimate(&EstimateOptions::default()) {
                v["estimate"] = serde_json::json!(e);
            }
            v
        }
        Some(Err(e)) => serde_json::json!({
            "error": format!("reading the model headers in {}: {e}", entry.dir.display())
        }),
    }
}

fn is_gguf(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".gguf") && !file_name(path).contains("mmproj")
}

fn is_safetensors(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".safetensors")
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase()
}

/// Checks that several GGUF files are the shards of one split model.
fn check_shards(ggufs: &[Gguf], names: &[String]) -> Result<(), GgufError> {
    if ggufs.len() < 2 {
        return Ok(());
    }
    let count = ggufs[0].metadata.u64("split.count");
    if count != Some(ggufs.len() as u64) {
        return Err(GgufError::Remote(rbee_artifact::Error::InvalidRequest(
            format!(
                "{} GGUF files ({}) are not the shards of one split model; name one file or one quantization",
                ggufs.len(),
                names.join(", ")
            ),
        )));
    }
    Ok(())
}

/// Reads the texts of some token ids of a header's vocabulary.
type TokenTexts<'a> = &'a mut dyn FnMut(&Gguf, &[u64]) -> HashMap<u64, String>;

/// Builds the summary of GGUF shards; `token_text` reads a token's text from the first shard.
fn gguf_inspection(
    ggufs: Vec<Gguf>,
    files: Vec<InspectedFile>,
    token_text: TokenTexts<'_>,
) -> Result<Inspection, GgufError> {
    let names: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    check_shards(&ggufs, &names)?;
    let first = &ggufs[0];
    let ids: Vec<u64> = ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"]
        .iter()
        .filter_map(|k| first.metadata.u64(k))
        .collect();
    let texts = token_text(first, &ids);
    let summary = GgufSummary::new(&ggufs, &|id| texts.get(&id).cloned());
    let params = ModelParams::from_gguf(first);
    let weights = gguf_weights(&ggufs).unwrap_or_default();
    Ok(Inspection {
        summary: ModelSummary::Gguf(summary),
        files,
        params,
        weights,
        ggufs,
        safetensors: Vec::new(),
        revision: None,
    })
}

fn texts_from(source: &mut dyn Source, gguf: &Gguf, ids: &[u64]) -> HashMap<u64, String> {
    let Some(tokens) = gguf.metadata.array("tokenizer.ggml.tokens") else {
        return HashMap::new();
    };
    array_strings_at(source, tokens, ids)
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

fn safetensors_inspection(
    shards: Vec<SafetensorsHeader>,
    config: Option<ModelConfig>,
    files: Vec<InspectedFile>,
) -> Inspection {
    let params = config.as_ref().and_then(ModelConfig::params);
    let weights = shards
        .iter()
        .flat_map(|s| &s.tensors)
        .map(|t| Weight {
            name: gguf_style_name(&t.name),
            bytes: t.bytes,
        })
        .collect();
    Inspection {
        summary: ModelSummary::Safetensors(SafetensorsSummary::new(&shards, config)),
        files,
        params,
        weights,
        ggufs: Vec::new(),
        safetensors: shards,
        revision: None,
    }
}

/// Inspects model files on disk: the GGUF files among `paths` (shards of one model), else its
/// safetensors files with the `config.json` beside them.
pub fn inspect_local(paths: &[PathBuf], options: &ReadOptions) -> Result<Inspection, GgufError> {
    let mut paths: Vec<&PathBuf> = paths.iter().collect();
    paths.sort();
    let shown = |p: &Path| p.display().to_string();
    let ggufs: Vec<&PathBuf> = paths
        .iter()
        .copied()
        .filter(|p| is_gguf(&shown(p)))
        .collect();
    if !ggufs.is_empty() {
        let mut headers = Vec::new();
        let mut files = Vec::new();
        for p in &ggufs {
            let g = Gguf::read_file(p, options)?;
            files.push(InspectedFile {
                path: shown(p),
                size: g.file_size,
                header_bytes: g.header_len,
                requests: None,
                bytes_read: None,
            });
            headers.push(g);
        }
        let first = ggufs[0].clone();
        return gguf_inspection(
            headers,
            files,
            &mut |g, ids| match FileSource::open(&first) {
                Ok(mut src) => texts_from(&mut src, g, ids),
                Err(_) => HashMap::new(),
            },
        );
    }
    let shards: Vec<&PathBuf> = paths
        .iter()
        .copied()
        .filter(|p| is_safetensors(&shown(p)))
        .collect();
    if shards.is_empty() {
        return Err(GgufError::Safetensors {
            message: format!(
                "no GGUF or safetensors file to inspect among {}",
                paths
                    .iter()
                    .map(|p| shown(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let mut headers = Vec::new();
    let mut files = Vec::new();
    for p in &shards {
        let h = read_safetensors_file(p)?;
        files.push(InspectedFile {
            path: shown(p),
            size: h.file_size,
            header_bytes: h.header_len,
            requests: None,
            bytes_read: None,
        });
        headers.push(h);
    }
    let config_path = paths
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "config.json"))
        .map(|p| p.to_path_buf())
        .or_else(|| {
            let beside = shards[0].parent()?.join("config.json");
            beside.is_file().then_some(beside)
        });
    let config = match config_path {
        Some(p) => {
            let meta = std::fs::metadata(&p).map_err(|e| GgufError::Io {
                context: format!("reading {}", p.display()),
                source: e,
            })?;
            if meta.len() > MAX_CONFIG_JSON {
                return Err(GgufError::TooLarge {
                    what: p.display().to_string(),
                    size: meta.len(),
                    limit: MAX_CONFIG_JSON,
                });
            }
            let body = std::fs::read(&p).map_err(|e| GgufError::Io {
                context: format!("reading {}", p.display()),
                source: e,
            })?;
            Some(ModelConfig::parse(&body, &shown(&p))?)
        }
        None => None,
    };
    Ok(safetensors_inspection(headers, config, files))
}

/// Options of a remote inspection.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// How much of each header to keep.
    pub read: ReadOptions,
    /// The first window of each GGUF file.
    pub first_window: u64,
    /// Options for the vendor's resolve (include/exclude globs).
    pub resolve: ResolveOptions,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            read: ReadOptions::default(),
            first_window: FIRST_WINDOW,
            resolve: ResolveOptions::default(),
        }
    }
}

/// Inspects `reference` without downloading it: `vendor` resolves it to files (as for a
/// download), then each header is read with a few HTTP range requests through `transfer`,
/// with the vendor's credential for its own host only.
pub async fn inspect_remote(
    vendor: &dyn VendorSource,
    transfer: &Transfer,
    reference: &ArtifactRef,
    options: &RemoteOptions,
    cancel: &CancellationToken,
) -> Result<Inspection, GgufError> {
    let plan = vendor.resolve(reference, &options.resolve, cancel).await?;
    let mut inspection = inspect_plan(vendor, transfer, &plan, options, cancel).await?;
    inspection.revision = plan.revision.clone();
    Ok(inspection)
}

/// Inspects the files of a resolved plan (see [`inspect_remote`]).
pub async fn inspect_plan(
    vendor: &dyn VendorSource,
    transfer: &Transfer,
    plan: &ResolvedArtifact,
    options: &RemoteOptions,
    cancel: &CancellationToken,
) -> Result<Inspection, GgufError> {
    let mut files: Vec<&ResolvedFile> = plan.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // Files on this machine (a `file:` reference) are read in place.
    let local: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| match &f.source {
            PlanSource::Local { path } => Some(path.clone()),
            _ => None,
        })
        .collect();
    if !local.is_empty() {
        return inspect_local(&local, &options.read);
    }
    let reader = |f: &ResolvedFile| -> Result<RangeReader, GgufError> {
        let PlanSource::Http { url } = &f.source else {
            return Err(GgufError::Remote(rbee_artifact::Error::Unsupported(
                format!("{}: cannot read this file's header remotely", f.path),
            )));
        };
        let access = vendor.read_access(f);
        let mut request = FetchRequest::new(f.path.clone(), url.clone());
        request.auth = access.auth;
        request.headers = access.headers;
        request.expected_size = f.size;
        Ok(transfer.range_reader(request))
    };
    let ggufs: Vec<&&ResolvedFile> = files.iter().filter(|f| is_gguf(&f.path)).collect();
    if !ggufs.is_empty() {
        let mut headers = Vec::new();
        let mut inspected = Vec::new();
        let mut windows = Vec::new();
        for f in &ggufs {
            let r = reader(f)?;
            let got = read_remote(&r, &options.read, options.first_window, cancel).await?;
            let stats = r.stats();
            inspected.push(InspectedFile {
                path: f.path.clone(),
                size: got.gguf.file_size,
                header_bytes: got.gguf.header_len,
                requests: Some(stats.requests),
                bytes_read: Some(stats.bytes),
            });
            headers.push(got.gguf);
            windows.push(got.window);
        }
        let mut first_window = windows.swap_remove(0);
        return gguf_inspection(headers, inspected, &mut |g, ids| {
            texts_from(&mut first_window, g, ids)
        });
    }
    let shards: Vec<&&ResolvedFile> = files.iter().filter(|f| is_safetensors(&f.path)).collect();
    if shards.is_empty() {
        return Err(GgufError::Remote(rbee_artifact::Error::InvalidRequest(
            format!(
                "{} has no GGUF or safetensors file to inspect (files: {})",
                plan.reference,
                files
                    .iter()
                    .map(|f| f.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )));
    }
    let mut headers = Vec::new();
    let mut inspected = Vec::new();
    for f in &shards {
        let r = reader(f)?;
        // Usually one request: the length and a JSON header of up to 64 KiB; a second when
        // the header is larger.
        let first = r.read(0, 64 << 10, cancel).await?;
        let size = r.size().unwrap_or(first.len() as u64);
        let prefix: [u8; 8] = first
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| GgufError::Truncated {
                what: format!("the safetensors header of {}", f.path),
                offset: 0,
                needed: 8,
                file_len: size,
            })?;
        let n = safetensors_header_len(prefix, size, &f.path)?;
        let json = if 8 + n <= first.len() as u64 {
            first.slice(8..8 + n as usize)
        } else {
            let rest = r
                .read(first.len() as u64, 8 + n - first.len() as u64, cancel)
                .await?;
            let mut all = first[8..].to_vec();
            all.extend_from_slice(&rest);
            all.into()
        };
        if json.len() as u64 != n {
            return Err(GgufError::Truncated {
                what: format!("the safetensors header of {}", f.path),
                offset: 8,
                needed: n,
                file_len: size,
            });
        }
        let h = parse_safetensors_header(&json, size, &f.path)?;
        let stats = r.stats();
        inspected.push(InspectedFile {
            path: f.path.clone(),
            size,
            header_bytes: h.header_len,
            requests: Some(stats.requests),
            bytes_read: Some(stats.bytes),
        });
        headers.push(h);
    }
    let config = match files.iter().find(|f| file_name(&f.path) == "config.json") {
        Some(f) => {
            let r = reader(f)?;
            let body = r.read(0, MAX_CONFIG_JSON + 1, cancel).await?;
            if body.len() as u64 > MAX_CONFIG_JSON {
                return Err(GgufError::TooLarge {
                    what: f.path.clone(),
                    size: body.len() as u64,
                    limit: MAX_CONFIG_JSON,
                });
            }
            Some(ModelConfig::parse(&body, &f.path)?)
        }
        None => None,
    };
    Ok(safetensors_inspection(headers, config, inspected))
}

/// Inspects a folder or file on disk (every file in a folder, not recursing).
pub fn inspect_path(path: &Path, options: &ReadOptions) -> Result<Inspection, GgufError> {
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| GgufError::Io {
            context: format!("listing {}", path.display()),
            source: e,
        })?;
        let files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        return inspect_local(&files, options);
    }
    inspect_local(&[path.to_path_buf()], options)
}
