//! `rbee model inspect REF`: what a model is and whether it fits, from its headers alone; and
//! the same summary for entries already in the catalog (`rbee model info`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use rbee_artifact::{ArtifactRef, Error, ResolveOptions, human_bytes};
use rbee_catalog::CatalogEntry;
use rbee_gguf::{
    Detected, Estimate, EstimateOptions, GgmlType, Gpu, Inspection, ModelSummary, ReadOptions,
    RemoteOptions, Verdict, available_ram, detect_gpus, inspect_remote, verdict,
};
use rbee_transfer::Transfer;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::args::{DownloadArgs, GlobalArgs};
use crate::setup::{self, TransferSettings, UsageError};

/// Flags of `rbee model inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// What to inspect (see "References" in `rbee --help`); nothing is downloaded
    pub(crate) reference: String,
    /// GGUF quantization, e.g. Q4_K_M (same as REF:QUANT)
    #[arg(long)]
    pub(crate) quant: Option<String>,
    /// Branch, tag or commit (hf:), or release tag (gh:) (same as REF@REV)
    #[arg(long, value_name = "REV")]
    pub(crate) revision: Option<String>,
    /// Only files matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub(crate) include: Vec<String>,
    /// Leave out files matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    /// With --json: every array item (token lists, merges) and every tensor, not only lengths
    #[arg(long)]
    pub(crate) full: bool,
    /// Print the chat template and nothing else
    #[arg(long)]
    pub(crate) template: bool,
    #[command(flatten)]
    pub(crate) estimate: EstimateArgs,
}

/// Flags of the memory estimate (`inspect`, and `download --dry-run`).
#[derive(Debug, Clone, Args)]
pub(crate) struct EstimateArgs {
    /// Context per sequence [default: the model's training context, at most 8192]
    #[arg(long, value_name = "TOKENS")]
    pub(crate) ctx: Option<u64>,
    /// KV cache type: f16, bf16, f32, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl
    #[arg(long, value_name = "TYPE", default_value = "f16")]
    pub(crate) kv_type: String,
    /// Repeating layers on the GPU [default: all, and the output layer]
    #[arg(long, value_name = "N")]
    pub(crate) ngl: Option<u64>,
    /// Parallel sequences, each with --ctx tokens
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) parallel: u64,
    /// GPU memory to check the fit against, e.g. 24GiB (instead of asking nvidia-smi)
    #[arg(long, value_name = "SIZE")]
    pub(crate) vram: Option<String>,
    /// Estimate without flash attention (llama.cpp's -fa off)
    #[arg(long)]
    pub(crate) no_flash_attn: bool,
}

/// The values clap gives when no flag is passed.
impl Default for EstimateArgs {
    fn default() -> Self {
        EstimateArgs {
            ctx: None,
            kv_type: "f16".into(),
            ngl: None,
            parallel: 1,
            vram: None,
            no_flash_attn: false,
        }
    }
}

const KV_TYPES: &[&str] = &[
    "f16", "bf16", "f32", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl",
];

impl EstimateArgs {
    /// The flags that were set, for refusing them where they would be ignored.
    pub(crate) fn set_flags(&self) -> Vec<&'static str> {
        let default = EstimateArgs::default();
        [
            (self.ctx.is_some(), "--ctx"),
            (self.kv_type != default.kv_type, "--kv-type"),
            (self.ngl.is_some(), "--ngl"),
            (self.parallel != default.parallel, "--parallel"),
            (self.vram.is_some(), "--vram"),
            (self.no_flash_attn, "--no-flash-attn"),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect()
    }

    pub(crate) fn options(&self) -> Result<EstimateOptions> {
        let kv = self.kv_type.to_ascii_lowercase();
        let kv_type = KV_TYPES
            .contains(&kv.as_str())
            .then(|| GgmlType::from_name(&kv))
            .flatten()
            .ok_or_else(|| {
                UsageError::argument(format!(
                    "--kv-type {}: not a KV cache type; use one of {}",
                    self.kv_type,
                    KV_TYPES.join(", ")
                ))
            })?;
        if self.parallel == 0 {
            return Err(UsageError::argument("--parallel must be at least 1").into());
        }
        if self.ctx == Some(0) {
            return Err(UsageError::argument("--ctx must be at least 1").into());
        }
        Ok(EstimateOptions {
            context: self.ctx,
            kv_type,
            gpu_layers: self.ngl,
            parallel: self.parallel,
            flash_attention: !self.no_flash_attn,
            ..EstimateOptions::default()
        })
    }

    fn vram(&self) -> Result<Option<u64>> {
        let Some(text) = &self.vram else {
            return Ok(None);
        };
        let size = rbee_catalog::parse_cache_size(text.trim()).map_err(|_| {
            UsageError::argument(format!(
                "--vram {text}: not a size above 0; write e.g. 24GiB or 8000MiB"
            ))
        })?;
        Ok(Some(size))
    }
}

/// The GPUs to judge a fit against: `--vram`, else what nvidia-smi (or `RBEE_NVIDIA_SMI`)
/// lists.
pub(crate) async fn gpus(args: &EstimateArgs) -> Result<(Vec<Gpu>, Option<String>)> {
    if let Some(vram) = args.vram()? {
        return Ok((vec![Gpu::declared(vram)], None));
    }
    let program = std::env::var_os("RBEE_NVIDIA_SMI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nvidia-smi"));
    Ok(match detect_gpus(&program).await {
        Detected::Gpus(g) => (g, None),
        Detected::NoGpu(why) => (Vec::new(), Some(why)),
    })
}

pub(crate) async fn inspect(global: &GlobalArgs, args: &InspectArgs) -> Result<()> {
    let estimate_options = args.estimate.options()?;
    let as_download = DownloadArgs {
        reference: args.reference.clone(),
        quant: args.quant.clone(),
        revision: args.revision.clone(),
        exclude: args.exclude.clone(),
        estimate: args.estimate.clone(),
        ..DownloadArgs::default()
    };
    let reference = setup::reference(&as_download)?;
    let options = RemoteOptions {
        read: read_options(args.full),
        resolve: ResolveOptions::with_globs(args.include.clone(), args.exclude.clone()),
        ..RemoteOptions::default()
    };
    let cancel = crate::commands::cancel_on_signals();
    let (reference, notes) = crate::fit::choose(
        reference,
        &as_download,
        &TransferSettings::default(),
        &cancel,
    )
    .await?;
    let inspection =
        read_headers(&reference, &TransferSettings::default(), &options, &cancel).await?;
    if args.template {
        return print_template(&inspection);
    }
    let (gpus, no_gpu) = gpus(&args.estimate).await?;
    let fit = fit(&inspection, &estimate_options, &gpus)?;
    if global.json {
        let mut value = inspection.to_json(args.full);
        value["reference"] = json!(reference.to_string());
        if !notes.is_empty() {
            value["notes"] = json!(notes);
        }
        add_fit_json(&mut value, &fit, &gpus, no_gpu.as_deref());
        out!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    out!("reference:     {reference}");
    if let Some(rev) = &inspection.revision {
        out!("revision:      {rev}");
    }
    for note in &notes {
        out!("note:          {note}");
    }
    print_inspection(&inspection);
    print_fit(&fit, no_gpu.as_deref());
    Ok(())
}

/// Resolves `reference` as a download would and reads the headers of its model files.
async fn read_headers(
    reference: &ArtifactRef,
    settings: &TransferSettings,
    options: &RemoteOptions,
    cancel: &CancellationToken,
) -> Result<Inspection> {
    let vendor_settings = setup::vendor_settings(settings);
    let vendors = rbee_model_provisioner::standard_vendors(&vendor_settings)?;
    let vendor = vendors.get(reference.scheme())?;
    let transfer = Transfer::new(vendor_settings.transfer.clone())?;
    let inspection = tokio::select! {
        r = inspect_remote(vendor.as_ref(), &transfer, reference, options, cancel) => r,
        () = cancel.cancelled() => return Err(Error::Cancelled.into()),
    };
    inspection.map_err(into_anyhow)
}

/// The model a download's dry run would fetch: its summary, estimate and verdict, from the
/// headers alone.
pub(crate) struct PlannedModel {
    inspection: Inspection,
    fit: Option<Fit>,
    gpus: Vec<Gpu>,
    no_gpu: Option<String>,
}

/// Reads the model of a dry run: from the catalog's files when the model is `ready` there (so
/// a dry run of a ready model needs no network, as its download does), else from the remote
/// headers unless offline. `None` when the plan has no GGUF or safetensors file, or offline
/// with nothing local. Flag errors come first, before anything is resolved; see
/// [`EstimateArgs::check`].
pub(crate) async fn planned_model(
    reference: &ArtifactRef,
    plan_paths: &[&str],
    ready: Option<&CatalogEntry>,
    args: &DownloadArgs,
    settings: &TransferSettings,
    cancel: &CancellationToken,
) -> Option<Result<PlannedModel>> {
    if !plan_paths.iter().any(|p| rbee_gguf::is_model_file(p)) {
        return None;
    }
    let local = ready.and_then(entry_inspection);
    if local.is_none() && args.offline {
        return None;
    }
    let read = async {
        let inspection = match local {
            Some(inspection) => inspection?,
            None => {
                let options = RemoteOptions {
                    resolve: ResolveOptions::with_globs(args.include.clone(), args.exclude.clone()),
                    ..RemoteOptions::default()
                };
                read_headers(reference, settings, &options, cancel).await?
            }
        };
        let (gpus, no_gpu) = gpus(&args.estimate).await?;
        let fit = fit(&inspection, &args.estimate.options()?, &gpus)?;
        Ok(PlannedModel {
            inspection,
            fit,
            gpus,
            no_gpu,
        })
    };
    Some(read.await)
}

impl EstimateArgs {
    /// Refuses bad flag values up front, so a dry run fails before it resolves anything.
    pub(crate) fn check(&self) -> Result<()> {
        self.options()?;
        self.vram()?;
        Ok(())
    }
}

/// The model of a dry run as JSON: the summary as `rbee model info --json` has it, with the
/// estimate and verdict as `rbee model inspect --json` has them; `{"error"}` when the headers
/// could not be read.
pub(crate) fn planned_model_json(model: &Result<PlannedModel>) -> serde_json::Value {
    match model {
        Ok(m) => {
            let mut value = m.inspection.to_json(false);
            add_fit_json(&mut value, &m.fit, &m.gpus, m.no_gpu.as_deref());
            value
        }
        Err(e) => json!({"error": format!("{e:#}")}),
    }
}

/// Prints the model of a dry run after the plan.
pub(crate) fn print_planned_model(model: &Result<PlannedModel>) {
    match model {
        Ok(m) => {
            out!("model:");
            print_inspection(&m.inspection);
            print_fit(&m.fit, m.no_gpu.as_deref());
        }
        Err(e) => out!("model:         cannot read the headers: {e:#}"),
    }
}

fn read_options(full: bool) -> ReadOptions {
    if full {
        ReadOptions::full()
    } else {
        ReadOptions::default()
    }
}

/// GGUF errors keep their message; a remote failure becomes the vocabulary's error, so the
/// exit code and `--json` code are the usual ones.
fn into_anyhow(e: rbee_gguf::GgufError) -> anyhow::Error {
    match e {
        rbee_gguf::GgufError::Remote(e) => e.into(),
        other => other.into(),
    }
}

fn print_template(inspection: &Inspection) -> Result<()> {
    match inspection.chat_template() {
        Some(t) => {
            out!("{t}");
            Ok(())
        }
        None => Err(Error::NotFound {
            message: "this model has no chat template (tokenizer.chat_template)".into(),
        }
        .into()),
    }
}

/// The estimate and the verdict, when the model has the hyperparameters for them.
pub(crate) struct Fit {
    estimate: Estimate,
    pub(crate) verdict: Verdict,
    ram: Option<u64>,
}

pub(crate) fn fit(
    inspection: &Inspection,
    options: &EstimateOptions,
    gpus: &[Gpu],
) -> Result<Option<Fit>> {
    let Some(estimate) = inspection.estimate(options) else {
        return Ok(None);
    };
    let estimate = estimate.map_err(into_anyhow)?;
    let with_layers = |n: u64| {
        inspection
            .estimate(&EstimateOptions {
                gpu_layers: Some(n),
                ..options.clone()
            })
            .and_then(Result::ok)
    };
    let verdict = verdict(gpus, &estimate, &with_layers);
    Ok(Some(Fit {
        estimate,
        verdict,
        ram: available_ram(),
    }))
}

fn add_fit_json(
    value: &mut serde_json::Value,
    fit: &Option<Fit>,
    gpus: &[Gpu],
    no_gpu: Option<&str>,
) {
    value["gpus"] = json!(gpus);
    if let Some(why) = no_gpu {
        value["gpu_detection"] = json!(why);
    }
    if let Some(fit) = fit {
        value["estimate"] = json!(fit.estimate);
        value["verdict"] = json!(fit.verdict);
        if let Some(ram) = fit.ram {
            value["ram_available"] = json!(ram);
        }
    }
}

fn count(n: u64) -> String {
    match n {
        0..1_000_000 => n.to_string(),
        1_000_000..1_000_000_000 => format!("{:.2} M ({n})", n as f64 / 1e6),
        _ => format!("{:.2} B ({n})", n as f64 / 1e9),
    }
}

fn print_inspection(inspection: &Inspection) {
    for f in &inspection.files {
        let read = match (f.requests, f.bytes_read) {
            (Some(r), Some(b)) => format!(
                "; read {} in {r} request{}",
                human_bytes(b),
                if r == 1 { "" } else { "s" }
            ),
            _ => String::new(),
        };
        out!(
            "file:          {} ({}, header {}{read})",
            f.path,
            human_bytes(f.size),
            human_bytes(f.header_bytes)
        );
    }
    match &inspection.summary {
        ModelSummary::Gguf(s) => {
            let line = |label: &str, value: Option<String>| {
                if let Some(v) = value {
                    out!("{:<15}{v}", format!("{label}:"));
                }
            };
            line("name", s.name.clone());
            line("architecture", s.architecture.clone());
            line(
                "parameters",
                Some(match &s.size_label {
                    Some(l) => format!("{} (label {l})", count(s.parameters)),
                    None => count(s.parameters),
                }),
            );
            line("file type", s.file_type.clone());
            if !s.tensor_types.is_empty() {
                let mix: Vec<String> = s
                    .tensor_types
                    .iter()
                    .map(|t| {
                        format!(
                            "{} ×{} ({})",
                            t.ggml_type,
                            t.tensors,
                            t.bytes.map_or_else(|| "?".into(), human_bytes)
                        )
                    })
                    .collect();
                line("tensor types", Some(mix.join(", ")));
            }
            line(
                "context",
                s.context_length.map(|c| format!("{c} (training)")),
            );
            line("layers", s.layers.map(|l| l.to_string()));
            line(
                "embedding",
                s.embedding_length.map(|e| match s.feed_forward_length {
                    Some(ff) => format!("{e} (feed-forward {ff})"),
                    None => e.to_string(),
                }),
            );
            line(
                "heads",
                s.heads.map(|h| {
                    let mut t = h.to_string();
                    if let Some(kv) = s.kv_heads {
                        t.push_str(&format!(", KV heads {kv}"));
                    }
                    if let Some(d) = s.head_dim {
                        t.push_str(&format!(", head size {d}"));
                    }
                    if s.latent_attention {
                        t.push_str(", latent attention (MLA)");
                    }
                    t
                }),
            );
            line(
                "experts",
                s.experts
                    .as_ref()
                    .map(|e| format!("{} ({} used per token)", e.count, e.used)),
            );
            line(
                "sliding window",
                s.sliding_window
                    .as_ref()
                    .map(|w| format!("{} tokens on {} layers", w.window, w.layers)),
            );
            line(
                "rope",
                s.rope.as_ref().map(|r| {
                    let mut parts = Vec::new();
                    if let Some(d) = r.dimension_count {
                        parts.push(format!("{d} dims"));
                    }
                    if let Some(b) = r.freq_base {
                        parts.push(format!("base {b}"));
                    }
                    if let Some(t) = &r.scaling_type {
                        let mut scaling = format!("{t} scaling");
                        if let Some(f) = r.scaling_factor {
                            scaling.push_str(&format!(" ×{f}"));
                        }
                        if let Some(o) = r.original_context_length {
                            scaling.push_str(&format!(" from {o}"));
                        }
                        parts.push(scaling);
                    }
                    parts.join(", ")
                }),
            );
            line(
                "tokenizer",
                s.tokenizer.as_ref().map(|t| {
                    let mut parts = vec![t.model.clone().unwrap_or_else(|| "?".into())];
                    if let Some(p) = &t.pre {
                        parts[0].push_str(&format!(" (pre-tokenizer {p})"));
                    }
                    parts.push(format!("{} tokens", t.vocab_size));
                    if let Some(m) = t.merges {
                        parts.push(format!("{m} merges"));
                    }
                    for (label, tok) in [("BOS", &t.bos), ("EOS", &t.eos)] {
                        if let Some(tok) = tok {
                            parts.push(match &tok.text {
                                Some(text) => format!("{label} {} {text:?}", tok.id),
                                None => format!("{label} {}", tok.id),
                            });
                        }
                    }
                    parts.join(", ")
                }),
            );
            line(
                "chat template",
                Some(if s.chat_template {
                    "yes (--template prints it)".into()
                } else {
                    "no".into()
                }),
            );
            line("license", s.license.clone());
        }
        ModelSummary::Safetensors(s) => {
            if let Some(c) = &s.config {
                let line = |label: &str, value: Option<String>| {
                    if let Some(v) = value {
                        out!("{:<15}{v}", format!("{label}:"));
                    }
                };
                line("architecture", c.architecture.clone());
                line("model type", c.model_type.clone());
                line(
                    "context",
                    c.context_length.map(|x| format!("{x} (training)")),
                );
                line("layers", c.layers.map(|x| x.to_string()));
                line("hidden size", c.hidden_size.map(|x| x.to_string()));
                line(
                    "heads",
                    c.heads
                        .map(|h| format!("{h}, KV heads {}", c.kv_heads.unwrap_or(h))),
                );
                line(
                    "experts",
                    c.experts
                        .map(|e| format!("{e} ({} used per token)", c.experts_used.unwrap_or(0))),
                );
                line("vocabulary", c.vocab_size.map(|x| x.to_string()));
                line("dtype", c.dtype.clone());
            }
            out!("{:<15}{}", "parameters:", count(s.parameters));
            let mix: Vec<String> = s
                .dtypes
                .iter()
                .map(|d| format!("{} ×{} ({})", d.dtype, d.tensors, human_bytes(d.bytes)))
                .collect();
            out!("{:<15}{}", "dtypes:", mix.join(", "));
        }
    }
}

fn print_fit(fit: &Option<Fit>, no_gpu: Option<&str>) {
    let Some(fit) = fit else {
        out!("memory:        no estimate (the header lacks layer and head counts)");
        return;
    };
    let e = &fit.estimate;
    let layers = if e.gpu_layers == e.layers && e.output_on_gpu {
        format!("all {} layers on the GPU", e.layers)
    } else {
        format!("{} of {} layers on the GPU", e.gpu_layers, e.layers)
    };
    out!(
        "memory:        at ctx {} ({} KV cache, {} sequence{}, {layers}):",
        e.context,
        e.kv_type.name().to_ascii_lowercase(),
        e.parallel,
        if e.parallel == 1 { "" } else { "s" }
    );
    for (label, d) in [("GPU", &e.gpu), ("CPU", &e.cpu)] {
        out!(
            "  {label}: {} = weights {} + KV cache {} + compute {} + output {}",
            human_bytes(d.total()),
            human_bytes(d.weights),
            human_bytes(d.kv_cache),
            human_bytes(d.compute),
            human_bytes(d.output)
        );
    }
    if let Some(ram) = fit.ram {
        out!("  RAM available: {}", human_bytes(ram));
    }
    if let Some(why) = no_gpu {
        out!("  GPU detection: {why}");
    }
    out!("verdict:       {}", fit.verdict.line);
}

/// The model summary of a catalog entry's files, for `rbee model info` (nothing when the
/// entry has no GGUF or safetensors file, or its files cannot be read).
pub(crate) fn entry_inspection(entry: &CatalogEntry) -> Option<Result<Inspection>> {
    rbee_gguf::inspect_entry(entry)
        .map(|r| r.with_context(|| format!("reading the model headers in {}", entry.dir.display())))
}

/// Prints the model summary of a catalog entry after its catalog fields.
pub(crate) fn print_entry_summary(entry: &CatalogEntry) {
    match entry_inspection(entry) {
        None => {}
        Some(Ok(inspection)) => {
            out!("model:");
            print_inspection(&inspection);
            if let Ok(Some(fit)) = fit(&inspection, &EstimateOptions::default(), &[]) {
                let e = &fit.estimate;
                out!(
                    "memory:        {} on a GPU at ctx {} (f16 KV cache; `rbee model inspect file:{}` checks the fit)",
                    human_bytes(e.gpu.total()),
                    e.context,
                    entry.primary_path().display()
                );
            }
        }
        Some(Err(e)) => out!("model:         cannot read the headers: {e:#}"),
    }
}
