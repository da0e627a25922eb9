//! How people actually type references: a path to a file they have (`/data/m.gguf`,
//! `./m.gguf`), and near misses of a scheme (`hg:`, `htps://`) that deserve a "did you mean".
//! The grammar itself lives with the references; this is the shell's side of it.

use std::path::{Path, PathBuf};

use rbee_artifact::{RefError, RefErrorKind};

/// `Some` when `text` is written as a path (absolute, `./`, `../` or `~/`): the path when
/// something is there, else what to write instead. `None` for anything else.
pub(crate) fn as_local_path(text: &str) -> Option<Result<PathBuf, String>> {
    let text = text.trim();
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    let path = if text == "~" {
        home()?
    } else if let Some(rest) = text.strip_prefix("~/") {
        home()?.join(rest)
    } else if text.starts_with('/')
        || text.starts_with("./")
        || text.starts_with("../")
        || matches!(text, "." | "..")
    {
        PathBuf::from(text)
    } else {
        return None;
    };
    if path.exists() {
        return Some(Ok(path));
    }
    Some(Err(format!(
        "`{text}` looks like a path, but there is no file or folder at {}; a file on this machine is written file:PATH (e.g. file:/data/models/m.gguf), a HuggingFace repository ORG/REPO",
        path.display()
    )))
}

/// What the user probably meant by `text`, which failed with `error`.
pub(crate) fn suggest(text: &str, error: &RefError) -> Option<String> {
    let text = text.trim();
    if !text.is_empty() && !text.contains(':') && Path::new(text).exists() {
        return Some(format!("file:{text}"));
    }
    match &error.kind {
        RefErrorKind::UnknownScheme { scheme } => {
            let lower = scheme.to_ascii_lowercase();
            let rest = &text[scheme.len()..];
            // The prefixes of the vendors of this build, as a user would type them.
            let (best, distance) = rbee_artifact::registered_prefixes()
                .into_iter()
                .map(|s| (s, edit_distance(&lower, s)))
                .min_by_key(|(_, d)| *d)?;
            // Close enough to be a slip, not a different word.
            (distance <= 2 && distance < lower.len()).then(|| format!("{best}{rest}"))
        }
        _ => None,
    }
}

/// Levenshtein distance (the strings here are a few characters long).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbee_artifact::ArtifactRef;

    fn suggestion(text: &str) -> Option<String> {
        let e = text.parse::<ArtifactRef>().unwrap_err();
        suggest(text, &e)
    }

    #[test]
    fn near_miss_schemes_get_a_suggestion() {
        rbee_model_provisioner::register_references();
        assert_eq!(suggestion("hg:org/repo").as_deref(), Some("hf:org/repo"));
        assert_eq!(suggestion("gih:o/r").as_deref(), Some("gh:o/r"));
        assert_eq!(
            suggestion("htps://example.com/m.gguf").as_deref(),
            Some("https://example.com/m.gguf")
        );
        assert_eq!(suggestion("fiel:/x.gguf").as_deref(), Some("file:/x.gguf"));
        // Without a `/` this could read as an Ollama name; a model file's ending keeps the hint.
        assert_eq!(
            suggestion("fiel:model.gguf").as_deref(),
            Some("file:model.gguf")
        );
        assert_eq!(suggestion("s3:bucket/key"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn paths_are_recognised_by_their_shape() {
        rbee_model_provisioner::register_references();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.gguf");
        std::fs::write(&file, b"x").unwrap();
        let text = file.to_str().unwrap();
        assert_eq!(as_local_path(text), Some(Ok(file.clone())));
        let missing = dir.path().join("nope.gguf");
        let Some(Err(message)) = as_local_path(missing.to_str().unwrap()) else {
            panic!()
        };
        assert!(message.contains("file:PATH"), "{message}");
        assert_eq!(as_local_path("TheBloke/X-GGUF"), None);
        assert_eq!(as_local_path("hf:o/r"), None);
    }
}
