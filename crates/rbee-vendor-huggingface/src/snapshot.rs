//! Choosing the files of a non-GGUF repository (a "snapshot" of what a runtime needs), and the
//! `--include` / `--exclude` globs: pure functions over a repository's file list.
//!
//! A snapshot takes, from the repository's top folder:
//! - configuration: `config.json`, `generation_config.json`, `adapter_config.json`,
//!   `preprocessor_config.json`, `processor_config.json`, `chat_template.json|jinja`;
//! - tokenizer files: `tokenizer*` (`tokenizer.json`, `tokenizer_config.json`,
//!   `tokenizer.model`, …), `special_tokens_map.json`, `added_tokens.json`, `vocab.json`,
//!   `vocab.txt`, `merges.txt`, `spiece.model`, `sentencepiece.bpe.model`, `*.tiktoken`;
//! - weights: every `*.safetensors` with its `*.safetensors.index.json` (leaving out Mistral's
//!   `consolidated*.safetensors` duplicate when the sharded files are there), or, only when there
//!   are no safetensors, the PyTorch `*.bin` weights with their index (training state such as
//!   `training_args.bin` or `optimizer.bin` is not weights).
//!
//! Sub-folders (`original/`, `onnx/`, …) hold other formats of the same model and are left
//! out; `--include` takes anything.

use globset::{Glob, GlobSet, GlobSetBuilder};
use rbee_artifact::Error;

use crate::files::{RepoFile, depth};

const CONFIG_FILES: [&str; 7] = [
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
    "chat_template.jinja",
];

const TOKENIZER_FILES: [&str; 7] = [
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
];

/// PyTorch `.bin` files that hold training state, not weights.
const NOT_WEIGHTS_PREFIXES: [&str; 4] = ["training_args", "optimizer", "scheduler", "rng_state"];

/// The outcome of [`select_snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotChoice {
    /// Paths taken, in listing order.
    pub paths: Vec<String>,
    /// Why these files, for people.
    pub notes: Vec<String>,
}

fn lower_name(file: &RepoFile) -> String {
    file.name().to_ascii_lowercase()
}

fn is_config_or_tokenizer(name: &str) -> bool {
    CONFIG_FILES.contains(&name)
        || TOKENIZER_FILES.contains(&name)
        || name.starts_with("tokenizer")
        || name.ends_with(".tiktoken")
}

/// Picks what a runtime needs from a non-GGUF repository. `repo` is for messages.
///
/// A repository without weights in a format a runtime loads is [`Error::InvalidRequest`]
/// listing what it has and suggesting `--include`.
pub fn select_snapshot(repo: &str, files: &[RepoFile]) -> Result<SnapshotChoice, Error> {
    let top: Vec<&RepoFile> = files.iter().filter(|f| depth(&f.path) == 0).collect();
    let safetensors: Vec<&RepoFile> = top
        .iter()
        .copied()
        .filter(|f| lower_name(f).ends_with(".safetensors"))
        .collect();
    let sharded_or_plain = safetensors
        .iter()
        .any(|f| !lower_name(f).starts_with("consolidated"));
    let mut notes = Vec::new();
    let weights: Vec<&RepoFile> = if !safetensors.is_empty() {
        let skipped: Vec<&str> = safetensors
            .iter()
            .filter(|f| sharded_or_plain && lower_name(f).starts_with("consolidated"))
            .map(|f| f.path.as_str())
            .collect();
        if !skipped.is_empty() {
            notes.push(format!(
                "left out {} (the same weights in Mistral's own format); add --include to take them",
                skipped.join(", ")
            ));
        }
        top.iter()
            .copied()
            .filter(|f| {
                let name = lower_name(f);
                (name.ends_with(".safetensors")
                    && !(sharded_or_plain && name.starts_with("consolidated")))
                    || name.ends_with(".safetensors.index.json")
            })
            .collect()
    } else {
        top.iter()
            .copied()
            .filter(|f| {
                let name = lower_name(f);
                (name.ends_with(".bin")
                    && !NOT_WEIGHTS_PREFIXES.iter().any(|p| name.starts_with(p)))
                    || name.ends_with(".bin.index.json")
            })
            .collect()
    };
    if weights.is_empty() {
        let listed: Vec<&str> = files.iter().take(20).map(|f| f.path.as_str()).collect();
        let more = files.len().saturating_sub(listed.len());
        return Err(Error::InvalidRequest(format!(
            "{repo} has no GGUF files and no *.safetensors or *.bin weights in its top folder, so there is no default set of files to take; it has: {}{}; choose files with --include GLOB or name one with hf:{repo}/PATH",
            if listed.is_empty() {
                "no files".to_string()
            } else {
                listed.join(", ")
            },
            if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            }
        )));
    }
    if safetensors.is_empty() {
        notes.push(format!(
            "{repo} has no safetensors weights; took its PyTorch .bin weights"
        ));
    }
    let paths = top
        .iter()
        .filter(|f| is_config_or_tokenizer(&lower_name(f)) || weights.contains(f))
        .map(|f| f.path.clone())
        .collect();
    notes.push(format!(
        "{repo} is not a GGUF repository: took a snapshot (configuration, tokenizer, weights)"
    ));
    Ok(SnapshotChoice { paths, notes })
}

/// `--include` / `--exclude` globs over repository paths, with huggingface_hub's meaning: `*`
/// also matches `/`, and a pattern ending in `/` means everything under that folder.
#[derive(Debug, Clone)]
pub struct PathFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl PathFilter {
    /// Compiles the globs; a malformed one is [`Error::InvalidRequest`] naming it.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, Error> {
        Ok(Self {
            include: compile(include, "--include")?,
            exclude: compile(exclude, "--exclude")?,
        })
    }

    /// Whether include globs were given (they replace the vendor's own choice of files).
    pub fn has_include(&self) -> bool {
        self.include.is_some()
    }

    /// Whether exclude globs were given.
    pub fn has_exclude(&self) -> bool {
        self.exclude.is_some()
    }

    /// Whether `path` matches an include glob (false when there are none).
    pub fn included(&self, path: &str) -> bool {
        self.include.as_ref().is_some_and(|set| set.is_match(path))
    }

    /// Whether `path` matches an exclude glob.
    pub fn excluded(&self, path: &str) -> bool {
        self.exclude.as_ref().is_some_and(|set| set.is_match(path))
    }
}

fn compile(patterns: &[String], flag: &str) -> Result<Option<GlobSet>, Error> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let text = if pattern.ends_with('/') {
            format!("{pattern}*")
        } else {
            pattern.clone()
        };
        let glob = Glob::new(&text).map_err(|e| {
            Error::InvalidRequest(format!(
                "{flag} `{pattern}` is not a valid glob ({}); write e.g. \"*.safetensors\" or \"tokenizer*\"",
                e.kind()
            ))
        })?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| Error::InvalidRequest(format!("{flag}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<RepoFile> {
        list.iter().map(|p| RepoFile::new(*p, Some(1))).collect()
    }

    #[test]
    fn safetensors_snapshot_takes_config_tokenizer_and_weights() {
        let f = names(&[
            ".gitattributes",
            "README.md",
            "LICENSE",
            "config.json",
            "generation_config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "pytorch_model.bin",
            "special_tokens_map.json",
            "tokenizer.json",
            "tokenizer.model",
            "tokenizer_config.json",
            "original/consolidated.00.pth",
            "original/tokenizer.model",
            "onnx/model.onnx",
        ]);
        let c = select_snapshot("o/r", &f).unwrap();
        assert_eq!(
            c.paths,
            vec![
                "config.json",
                "generation_config.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "model.safetensors.index.json",
                "special_tokens_map.json",
                "tokenizer.json",
                "tokenizer.model",
                "tokenizer_config.json",
            ]
        );
    }

    #[test]
    fn bin_only_when_no_safetensors() {
        let f = names(&[
            "config.json",
            "pytorch_model-00001-of-00002.bin",
            "pytorch_model-00002-of-00002.bin",
            "pytorch_model.bin.index.json",
            "training_args.bin",
            "vocab.txt",
        ]);
        let c = select_snapshot("o/r", &f).unwrap();
        assert_eq!(
            c.paths,
            vec![
                "config.json",
                "pytorch_model-00001-of-00002.bin",
                "pytorch_model-00002-of-00002.bin",
                "pytorch_model.bin.index.json",
                "vocab.txt",
            ]
        );
        assert!(c.notes.iter().any(|n| n.contains(".bin")), "{:?}", c.notes);
    }

    #[test]
    fn mistral_consolidated_is_left_out_when_sharded_exists() {
        let f = names(&[
            "consolidated.safetensors",
            "model-00001-of-00001.safetensors",
            "params.json",
            "tokenizer.model.v3",
        ]);
        let c = select_snapshot("o/r", &f).unwrap();
        assert_eq!(
            c.paths,
            vec!["model-00001-of-00001.safetensors", "tokenizer.model.v3"]
        );
        assert!(c.notes[0].contains("consolidated.safetensors"));
        // Alone, it is the weights.
        let c = select_snapshot("o/r", &names(&["consolidated.safetensors"])).unwrap();
        assert_eq!(c.paths, vec!["consolidated.safetensors"]);
    }

    #[test]
    fn no_weights_is_a_clear_error() {
        let e = select_snapshot("o/r", &names(&["README.md", "sub/model.safetensors"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("README.md")
                && e.contains("sub/model.safetensors")
                && e.contains("--include"),
            "{e}"
        );
    }

    #[test]
    fn globs_match_like_huggingface_hub() {
        let f =
            PathFilter::new(&["*.json".into(), "original/".into()], &["*index*".into()]).unwrap();
        assert!(f.has_include() && f.has_exclude());
        assert!(f.included("config.json"));
        assert!(
            f.included("sub/dir/config.json"),
            "`*` crosses folders as in fnmatch"
        );
        assert!(f.included("original/consolidated.00.pth"));
        assert!(!f.included("model.safetensors"));
        assert!(f.excluded("model.safetensors.index.json"));
        let none = PathFilter::new(&[], &[]).unwrap();
        assert!(!none.has_include() && !none.included("x") && !none.excluded("x"));
        let e = PathFilter::new(&["[".into()], &[]).unwrap_err().to_string();
        assert!(e.contains("--include `[`"), "{e}");
    }
}
