//! The rule for the path of a file inside an artifact, wherever the path comes from.

use crate::check::check_repo_path;
use crate::partial::RESERVED_SUFFIXES;

/// Checks the path of a file inside an artifact, wherever it comes from (a vendor's listing or a
/// record read from disk): a safe relative path (no `..`, not absolute, no empty segments, no
/// backslash), no control characters, and not named like rbee's own partial-download files.
/// Returns why it is refused.
///
/// ```
/// use rbee_artifact::check_file_path;
/// assert!(check_file_path("sub/model.gguf").is_ok());
/// assert!(check_file_path("../../victim").is_err());
/// assert!(check_file_path("/etc/passwd").is_err());
/// assert!(check_file_path("model.gguf.part").is_err());
/// ```
pub fn check_file_path(path: &str) -> Result<(), String> {
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(format!(
            "it contains the control character {}",
            c.escape_debug()
        ));
    }
    check_repo_path(path).map_err(|kind| kind.to_string())?;
    if let Some(suffix) = RESERVED_SUFFIXES.iter().find(|s| path.ends_with(*s)) {
        return Err(format!(
            "it ends in `{suffix}`, like rbee's own partial-download files"
        ));
    }
    Ok(())
}
