//! What `rbee model info` shows of an Ollama model beside its files: the template, system
//! prompt, parameters, licence, projector and config, read from the artifact's folder.

use std::path::Path;

use crate::manifest::LayerKind;

/// Longest text shown for one layer.
const MAX_SHOWN: usize = 400;
/// Most bytes read of a text layer (a licence may be long; only its start is shown).
const MAX_TEXT_READ: u64 = 16 << 10;
/// Largest config read (real ones are a few hundred bytes).
const MAX_CONFIG_READ: u64 = 64 << 10;
/// Longest config value shown.
const MAX_FIELD: usize = 64;

/// At most `limit` bytes of the file at `path`, and whether there was more.
fn read_prefix(path: &Path, limit: u64) -> Option<(Vec<u8>, bool)> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    let more = bytes.len() as u64 > limit;
    bytes.truncate(limit as usize);
    Some((bytes, more))
}

/// `(label, text)` pairs for the layers present in `files_dir` (an Ollama artifact's
/// `files/`), in a fixed order; text layers are shown whole up to a few hundred characters,
/// with control characters escaped (config values too: they come from the registry); GGUF
/// layers by size.
pub fn describe(files_dir: &Path) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let text = |name: &str| -> Option<String> {
        let (bytes, more) = read_prefix(&files_dir.join(name), MAX_TEXT_READ)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut shown: String = text.trim().chars().take(MAX_SHOWN).collect();
        if more || text.trim().chars().count() > MAX_SHOWN {
            shown.push('…');
        }
        Some(shown.escape_debug().to_string())
    };
    if let Some(config) = read_prefix(
        &files_dir.join(LayerKind::Config.file_name(1)),
        MAX_CONFIG_READ,
    )
    .filter(|(_, more)| !more)
    .and_then(|(b, _)| serde_json::from_slice::<serde_json::Value>(&b).ok())
    {
        let field = |k: &str| {
            let value = config.get(k).and_then(|v| v.as_str()).unwrap_or("?");
            let mut shown: String = value.chars().take(MAX_FIELD).collect();
            if value.chars().count() > MAX_FIELD {
                shown.push('…');
            }
            shown.escape_debug().to_string()
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

    #[test]
    fn config_values_from_the_registry_are_escaped_and_long_text_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_format":"gguf","model_family":"llama\u001b]0;pwned\u0007","file_type":"Q4\u001b[2J"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("license"), "x".repeat(1 << 20)).unwrap();
        let shown = describe(dir.path());
        assert_eq!(shown[0].0, "config");
        assert!(!shown[0].1.contains('\x1b'), "{}", shown[0].1);
        assert!(!shown[0].1.contains('\x07'), "{}", shown[0].1);
        assert!(shown[0].1.contains("llama"), "{}", shown[0].1);
        assert_eq!(shown[1].0, "license");
        assert_eq!(shown[1].1, format!("{}…", "x".repeat(MAX_SHOWN)));
    }
}
