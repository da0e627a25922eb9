//! Which files of a folder make up a model.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rbee_artifact::partial;
use rbee_artifact::{Error, Result};

use crate::access::{Roots, follow_link};

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
    /// `/`-separated path relative to the folder, by the names found there (a link's own name,
    /// not its target's).
    pub(crate) relative: String,
    /// Real path (links resolved).
    pub(crate) absolute: PathBuf,
    /// Size in bytes.
    pub(crate) size: u64,
}

/// Lists the model files of the folder whose real path is `dir`: weights and companions,
/// recursively, skipping hidden files and partial downloads. With `include` globs only matching
/// files are taken; `exclude` globs drop files. Fails when no weight file remains.
///
/// Links are followed, to files and to folders, but only where `roots` admits their real path;
/// a link leading elsewhere, a dangling link, a link loop and a folder reached twice are errors
/// naming the link (a link the `exclude` globs leave out is skipped unread).
pub(crate) fn model_files(
    dir: &Path,
    roots: &Roots,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<FoundFile>> {
    let include = globs(include)?;
    let exclude = globs(exclude)?;
    let is_excluded = |relative: &str| exclude.as_ref().is_some_and(|set| set.is_match(relative));
    let mut found = Vec::new();
    // Folders entered through links: each at most once, so loops end.
    let mut linked_dirs = HashSet::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((current, prefix)) = stack.pop() {
        // The folder was judged by its real path when it was found; refuse it if a link took
        // its place since.
        if fs::canonicalize(&current).ok().as_deref() != Some(current.as_path()) {
            return Err(Error::InvalidRequest(format!(
                "{} changed while it was being read (a link took its place); try again once it stays put",
                current.display()
            )));
        }
        let entries = fs::read_dir(&current)
            .map_err(|e| Error::io(format!("reading the folder {}", current.display()), e))?;
        for entry in entries {
            let entry = entry
                .map_err(|e| Error::io(format!("reading the folder {}", current.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || partial::is_reserved_name(&name) {
                continue;
            }
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = entry.path();
            let is_link = entry
                .file_type()
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
                .is_symlink();
            let real = if is_link {
                if is_excluded(&relative) {
                    continue;
                }
                let real = follow_link(&path)?;
                if !roots.admits(&real) {
                    return Err(roots.link_outside(&path));
                }
                real
            } else {
                // A plain name inside a folder's real path is a real path itself.
                path.clone()
            };
            let meta = fs::metadata(&real)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            if meta.is_dir() {
                if is_link && (real.starts_with(dir) || !linked_dirs.insert(real.clone())) {
                    return Err(Error::InvalidRequest(format!(
                        "{} links to a folder that is already being read ({}), which would list its files twice or loop; remove the link, or leave it out with an exclude glob",
                        path.display(),
                        real.display()
                    )));
                }
                stack.push((real, relative));
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let wanted = match &include {
                Some(set) => set.is_match(&relative),
                None => is_weight(&relative) || has_extension(&relative, COMPANION_EXTENSIONS),
            };
            if wanted && !is_excluded(&relative) {
                found.push(FoundFile {
                    relative,
                    absolute: real,
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
        let d = &fs::canonicalize(tmp.path()).unwrap();
        touch(d, "model.safetensors", 10);
        touch(d, "config.json", 2);
        touch(d, "tokenizer.model", 2);
        touch(d, "sub/extra.gguf", 3);
        touch(d, "README.md", 1);
        touch(d, ".hidden.gguf", 1);
        touch(d, "big.gguf.part", 1);
        touch(d, "photo.png", 1);
        let files = model_files(d, &Roots::Anywhere, &[], &[]).unwrap();
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
        let d = &fs::canonicalize(tmp.path()).unwrap();
        touch(d, "a.gguf", 1);
        touch(d, "b.gguf", 1);
        touch(d, "config.json", 1);
        let files = model_files(d, &Roots::Anywhere, &["*.gguf".into()], &["b*".into()]).unwrap();
        assert_eq!(names(&files), ["a.gguf"]);
        let err = model_files(d, &Roots::Anywhere, &["*.json".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("holds no model files"));
        assert!(model_files(d, &Roots::Anywhere, &["[".into()], &[]).is_err());
    }

    #[test]
    fn rbee_own_files_beside_a_download_are_never_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let d = &fs::canonicalize(tmp.path()).unwrap();
        touch(d, "a.gguf", 1);
        for reserved in partial::RESERVED_SUFFIXES {
            touch(d, &format!("b.gguf{reserved}"), 1);
        }
        let files = model_files(d, &Roots::Anywhere, &["*.gguf*".into()], &[]).unwrap();
        assert_eq!(names(&files), ["a.gguf"]);
    }

    #[test]
    fn a_folder_without_weights_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let d = &fs::canonicalize(tmp.path()).unwrap();
        touch(d, "notes.txt", 3);
        let err = model_files(d, &Roots::Anywhere, &[], &[]).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)));
        assert!(err.to_string().contains("*.gguf"), "{err}");
    }
}
