//! An inspection for people: the model's summary, the memory estimate and the verdict, or the
//! report as JSON.

use anyhow::Result;
use rbee_artifact::{Error, human_bytes};
use rbee_catalog::CatalogEntry;
use rbee_gguf::{EstimateOptions, Fit, InspectReport, InspectedFile, ModelSummary};
use serde_json::json;

use super::{PlannedModel, entry_inspection, fit};
use crate::args::{GlobalArgs, InspectArgs};

/// Prints an inspection: the chat template alone (`--template`), the report as JSON
/// (`--json`), or the summary, estimate and verdict for people. The same for a report made
/// here and one from rbee-hive.
pub(crate) fn print_report(
    global: &GlobalArgs,
    args: &InspectArgs,
    report: &InspectReport,
) -> Result<()> {
    if args.template {
        return print_template(report.chat_template());
    }
    if global.json {
        out!("{}", serde_json::to_string_pretty(&report.to_json())?);
        return Ok(());
    }
    if let Some(reference) = &report.reference {
        out!("reference:     {reference}");
    }
    if let Some(rev) = &report.revision {
        out!("revision:      {rev}");
    }
    for note in &report.notes {
        out!("note:          {note}");
    }
    print_inspection(&report.files, &report.summary);
    print_fit(report.fit().as_ref(), report.gpu_detection.as_deref());
    Ok(())
}

/// The model of a dry run as JSON: the summary as `rbee model info --json` has it, with the
/// estimate and verdict as `rbee model inspect --json` has them; `{"error"}` when the headers
/// could not be read.
pub(crate) fn planned_model_json(model: &Result<PlannedModel>) -> serde_json::Value {
    match model {
        Ok(m) => m.0.to_json(),
        Err(e) => json!({"error": format!("{e:#}")}),
    }
}

/// Prints the model of a dry run after the plan.
pub(crate) fn print_planned_model(model: &Result<PlannedModel>) {
    match model {
        Ok(PlannedModel(report)) => {
            out!("model:");
            print_inspection(&report.files, &report.summary);
            print_fit(report.fit().as_ref(), report.gpu_detection.as_deref());
        }
        Err(e) => out!("model:         cannot read the headers: {e:#}"),
    }
}

pub(super) fn print_template(template: Option<&str>) -> Result<()> {
    match template {
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

fn count(n: u64) -> String {
    match n {
        0..1_000_000 => n.to_string(),
        1_000_000..1_000_000_000 => format!("{:.2} M ({n})", n as f64 / 1e6),
        _ => format!("{:.2} B ({n})", n as f64 / 1e9),
    }
}

fn print_inspection(files: &[InspectedFile], summary: &ModelSummary) {
    for f in files {
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
    match summary {
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

fn print_fit(fit: Option<&Fit>, no_gpu: Option<&str>) {
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

/// Prints the model summary of a catalog entry after its catalog fields.
pub(crate) fn print_entry_summary(entry: &CatalogEntry) {
    match entry_inspection(entry) {
        None => {}
        Some(Ok(inspection)) => {
            out!("model:");
            print_inspection(&inspection.files, &inspection.summary);
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
