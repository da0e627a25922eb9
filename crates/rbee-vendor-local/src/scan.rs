//! Which files of a folder make up a model.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rbee_artifact_catalog::{Error, Result};

/// Weight formats: a folder must hold at least one of these to be a model.
const WEIGHT_EXTENSIONS: &[&str] = &[
    "gguf",
    "safetensors",
    "bin",
    "onnx",
    "pt",
    "pth",
    "ckpt",
    "ggml",
];

/// Files a runtime needs beside the weights (configs, tokenizers, vocabularies).
const COMPANION_EXTENSIONS: &[&str] = &["json", "model", "txt", "tiktoken", "jinja", "py"];

/// A file found in a model folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoundFile {
    /// `/`-separated path relative to the folder.
    pub(crate) relative: String,
    /// Absolute path.
    pub(crate) absolute: PathBuf,
    /// Size in bytes.
    pub(crate) size: u64,
}

/// Lists the model files of `dir`: weights and companions, recursively, skipping hidden files
/// and partial downloads. With `include` globs only matching files are taken; `exclude` globs
/// drop files. Fails when no weight file remains.
pub(crate) fn model_files(
    dir: &Path,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<FoundFile>> {
    let include = globs(include)?;
    let exclude = globs(exclude)?;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|e| Error::io(format!("reading the folder {}", current.display()), e))?;
        for entry in entries {
            let entry = entry
                .map_err(|e| Error::io(format!("reading the folder {}", current.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".part") || name.ends_with(".part.state") {
                continue;
            }
            let path = entry.path();
            let meta = std::fs::metadata(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let Ok(rel) = path.strip_prefix(dir) else {
                continue;
            };
            let relative = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let wanted = match &include {
                Some(set) => set.is_match(&relative),
                None => is_weight(&relative) || has_extension(&relative, COMPANION_EXTENSIONS),
            };
            let excluded = exclude.as_ref().is_some_and(|set| set.is_match(&relative));
            if wanted && !excluded {
                found.push(FoundFile {
                    relative,
                    absolute: path,
                    size: meta.len(),
                });
            }
        }
    }
    found.sort_by(|a, b| a.relative.cmp(&b.relative));
    if !found.iter().any(|f| is_weight(&f.relative)) {
        return Err(Error::InvalidRequest(format!(
            "{} holds no model files (looked for {}); name a model file or a folder that contains one",
            dir.display(),
            WEIGHT_EXTENSIONS
                .iter()
                .map(|e| format!("*.{e}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(found)
}

/// Whether a path names a weight file.
pub(crate) fn is_weight(path: &str) -> bool {
    has_extension(path, WEIGHT_EXTENSIONS)
}

fn has_extension(path: &str, extensions: &[&str]) -> bool {
    Path::new(path)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| extensions.contains(&e.as_str()))
}

fn globs(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p)
            .map_err(|e| Error::InvalidRequest(format!("the glob `{p}` is not valid: {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| Error::InvalidRequest(format!("invalid globs: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, rel: &str, size: usize) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![1u8; size]).unwrap();
    }

    fn names(files: &[FoundFile]) -> Vec<&str> {
        files.iter().map(|f| f.relative.as_str()).collect()
    }

    #[test]
    fn takes_weights_and_companions_only() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        touch(d, "model.safetensors", 10);
        touch(d, "config.json", 2);
        touch(d, "tokenizer.model", 2);
        touch(d, "sub/extra.gguf", 3);
        touch(d, "README.md", 1);
        touch(d, ".hidden.gguf", 1);
        touch(d, "big.gguf.part", 1);
        touch(d, "photo.png", 1);
        let files = model_files(d, &[], &[]).unwrap();
        assert_eq!(
            names(&files),
            [
                "config.json",
                "model.safetensors",
                "sub/extra.gguf",
                "tokenizer.model"
            ]
        );
        assert_eq!(files[1].size, 10);
    }

    #[test]
    fn globs_override_the_default_choice() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        touch(d, "a.gguf", 1);
        touch(d, "b.gguf", 1);
        touch(d, "config.json", 1);
        let files = model_files(d, &["*.gguf".into()], &["b*".into()]).unwrap();
        assert_eq!(names(&files), ["a.gguf"]);
        let err = model_files(d, &["*.json".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("holds no model files"));
        assert!(model_files(d, &["[".into()], &[]).is_err());
    }

    #[test]
    fn a_folder_without_weights_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        touch(tmp.path(), "notes.txt", 3);
        let err = model_files(tmp.path(), &[], &[]).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)));
        assert!(err.to_string().contains("*.gguf"), "{err}");
    }
}
