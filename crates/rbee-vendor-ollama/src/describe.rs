//! What `rbee model info` shows of an Ollama model beside its files: the template, system
//! prompt, parameters, licence, projector and config, read from the artifact's folder.

use std::path::Path;

use crate::manifest::LayerKind;

/// Longest text shown for one layer.
const MAX_SHOWN: usize = 400;

/// `(label, text)` pairs for the layers present in `files_dir` (an Ollama artifact's
/// `files/`), in a fixed order; text layers are shown whole up to a few hundred characters,
/// with control characters escaped; GGUF layers by size.
pub fn describe(files_dir: &Path) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let text = |name: &str| -> Option<String> {
        let bytes = std::fs::read(files_dir.join(name)).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        let mut shown: String = text.trim().chars().take(MAX_SHOWN).collect();
        if text.trim().chars().count() > MAX_SHOWN {
            shown.push('…');
        }
        Some(shown.escape_debug().to_string())
    };
    if let Some(config) = std::fs::read(files_dir.join(LayerKind::Config.file_name(1)))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    {
        let field = |k: &str| {
            config
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        };
        out.push((
            "config",
            format!(
                "format {}, family {}, file type {}",
                field("model_format"),
                field("model_family"),
                field("file_type")
            ),
        ));
    }
    for kind in [
        LayerKind::Template,
        LayerKind::System,
        LayerKind::Params,
        LayerKind::Messages,
        LayerKind::License,
    ] {
        if let Some(t) = text(&kind.file_name(1)) {
            out.push((kind.label(), t));
        }
    }
    for kind in [LayerKind::Projector, LayerKind::Adapter] {
        if let Ok(meta) = std::fs::metadata(files_dir.join(kind.file_name(1))) {
            out.push((
                kind.label(),
                format!(
                    "{} ({})",
                    kind.file_name(1),
                    rbee_artifact::human_bytes(meta.len())
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_layers_present() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("template"), "{{ .Prompt }}\n").unwrap();
        std::fs::write(dir.path().join("params.json"), r#"{"stop":["x"]}"#).unwrap();
        std::fs::write(dir.path().join("license"), "MIT\x1b[31m").unwrap();
        std::fs::write(dir.path().join("projector.gguf"), vec![0u8; 2048]).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_format":"gguf","model_family":"llama","file_type":"Q4_K_M"}"#,
        )
        .unwrap();
        let shown = describe(dir.path());
        let labels: Vec<&str> = shown.iter().map(|(l, _)| *l).collect();
        assert_eq!(
            labels,
            ["config", "template", "parameters", "license", "projector"]
        );
        assert_eq!(shown[0].1, "format gguf, family llama, file type Q4_K_M");
        assert_eq!(shown[1].1, "{{ .Prompt }}");
        assert!(!shown[3].1.contains('\x1b'), "{}", shown[3].1);
        assert!(shown[4].1.starts_with("projector.gguf ("), "{}", shown[4].1);
    }
}
