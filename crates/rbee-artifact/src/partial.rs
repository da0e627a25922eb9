//! The names of the files rbee keeps beside a file being downloaded (partial data, its resume
//! state, the per-file lock, a reused copy in flight), in one place for the transfer engine, the
//! vendors and the catalog.

use std::path::{Path, PathBuf};

/// Suffix of partial files.
pub const PART_SUFFIX: &str = ".part";
/// Suffix of the resume state kept beside a partial file (`model.gguf.part.state`).
pub const PART_STATE_SUFFIX: &str = ".part.state";
/// Suffix of the per-file lock held while a download writes (`model.gguf.part.lock`).
pub const PART_LOCK_SUFFIX: &str = ".part.lock";
/// Suffix of a reused copy (from another cache) on its way to its final name.
pub const REUSE_TEMP_SUFFIX: &str = ".rbee-reuse.tmp";
/// Endings of the files rbee keeps beside a download (partial data, resume state, the
/// per-file lock, a copy being reused); no file of an artifact may be named like them.
pub const RESERVED_SUFFIXES: [&str; 4] = [
    PART_SUFFIX,
    PART_STATE_SUFFIX,
    PART_LOCK_SUFFIX,
    REUSE_TEMP_SUFFIX,
];

/// The partial-data path for a final path: `model.gguf` → `model.gguf.part`.
pub fn part_path(final_path: &Path) -> PathBuf {
    beside(final_path, PART_SUFFIX)
}

/// The resume state of a partial: `model.gguf` → `model.gguf.part.state`.
pub fn part_state_path(final_path: &Path) -> PathBuf {
    beside(final_path, PART_STATE_SUFFIX)
}

/// The per-file download lock: `model.gguf` → `model.gguf.part.lock`.
pub fn part_lock_path(final_path: &Path) -> PathBuf {
    beside(final_path, PART_LOCK_SUFFIX)
}

/// Where a reused copy is written before it is renamed over `final_path`.
pub fn reuse_temp_path(final_path: &Path) -> PathBuf {
    beside(final_path, REUSE_TEMP_SUFFIX)
}

/// Whether a file name is one of rbee's own files kept beside a download (partial data, its
/// state or lock, a reused copy in flight), never a file of the artifact.
///
/// ```
/// use rbee_artifact::partial::is_reserved_name;
/// assert!(is_reserved_name("model.gguf.part.lock"));
/// assert!(!is_reserved_name("model.gguf"));
/// ```
pub fn is_reserved_name(name: &str) -> bool {
    RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `path` with `suffix` appended to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_paths() {
        assert_eq!(
            part_path(Path::new("/c/files/m.gguf")),
            PathBuf::from("/c/files/m.gguf.part")
        );
        assert_eq!(
            part_lock_path(Path::new("m.gguf")),
            PathBuf::from("m.gguf.part.lock")
        );
        assert!(
            RESERVED_SUFFIXES
                .iter()
                .all(|s| is_reserved_name(&format!("m{s}")))
        );
    }
}
