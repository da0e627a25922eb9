//! The files of a catalog entry: which a resolve changes, which to distrust or remove, and how they are placed.

use std::path::Path;

use rbee_artifact::partial::{part_path, part_state_path};
use rbee_artifact::{
    DownloadedFile, Error, FileSource, ResolvedArtifact, ResolvedFile, Result, Sha256Digest,
    redact_url,
};
use rbee_catalog::{ArtifactRecord, ArtifactStatus, Catalog, CatalogEntry, FileRecord, layout};

/// Rejects remote file names that would escape the artifact folder, collide with the engine's
/// own files, or repeat (the same rule as for paths in records read from disk).
pub(crate) fn check_paths(resolved: &ResolvedArtifact) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for f in &resolved.files {
        rbee_artifact::check_file_path(&f.path).map_err(|why| Error::Protocol {
            message: format!(
                "the vendor named a file `{}` that cannot be stored safely: {why}",
                f.path.escape_debug()
            ),
        })?;
        if !seen.insert(f.path.as_str()) {
            return Err(Error::Protocol {
                message: format!("the vendor listed `{}` twice", f.path),
            });
        }
    }
    if resolved.files.is_empty() {
        return Err(Error::NotFound {
            message: format!("{} has no files to fetch", resolved.reference),
        });
    }
    Ok(())
}

/// Files of `resolved` that are not already present and identical in `existing`.
pub(crate) fn changed_files(
    existing: Option<&CatalogEntry>,
    resolved: &ResolvedArtifact,
) -> Vec<ResolvedFile> {
    resolved
        .files
        .iter()
        .filter(|f| {
            let Some(entry) = existing else { return true };
            let Some(old) = entry.record.files.iter().find(|o| o.path == f.path) else {
                return true;
            };
            let complete = entry.record.status == ArtifactStatus::Ready
                && std::fs::metadata(layout::file_path(&entry.dir, &f.path))
                    .is_ok_and(|m| m.len() == old.size);
            !(complete && same_content(old, f))
        })
        .cloned()
        .collect()
}

pub(crate) fn same_content(old: &FileRecord, new: &ResolvedFile) -> bool {
    if new.size.is_some_and(|s| s != old.size) {
        return false;
    }
    match (old.sha256, new.sha256, &old.version, &new.version) {
        (Some(a), Some(b), _, _) => a == b,
        (_, _, Some(a), Some(b)) => a == b,
        // Nothing to compare but the size: trust it only when the vendor gave one.
        _ => new.size.is_some(),
    }
}

pub(crate) fn file_record(f: &ResolvedFile, existing: Option<&CatalogEntry>) -> FileRecord {
    let kept_digest = existing
        .and_then(|e| e.record.files.iter().find(|o| o.path == f.path))
        .filter(|old| same_content(old, f))
        .and_then(|old| old.sha256);
    FileRecord {
        path: f.path.clone(),
        size: f.size.unwrap_or(0),
        sha256: f.sha256.or(kept_digest),
        version: f.version.clone(),
        source: Some(match &f.source {
            FileSource::Http { url } => redact_url(url),
            FileSource::Local { path } => path.display().to_string(),
            other => format!("{other:?}"),
        }),
    }
}

pub(crate) fn set_digest(record: &mut ArtifactRecord, path: &str, sha: Sha256Digest, size: u64) {
    if let Some(f) = record.files.iter_mut().find(|f| f.path == path) {
        f.sha256 = Some(sha);
        f.size = size;
    }
}

/// Double-checks the vendor's work against the plan: every requested file came back, with the
/// announced size and digest.
pub(crate) fn check_downloaded(
    wanted: &[ResolvedFile],
    got: &[DownloadedFile],
    files_dir: &Path,
) -> Result<()> {
    for w in wanted {
        let Some(d) = got.iter().find(|d| d.path == w.path) else {
            return Err(Error::Protocol {
                message: format!("the vendor did not deliver {}", w.path),
            });
        };
        if let Some(expected) = w.sha256
            && expected != d.sha256
        {
            let _ = std::fs::remove_file(files_dir.join(&w.path));
            return Err(Error::Integrity {
                path: w.path.clone(),
                expected: expected.into(),
                actual: d.sha256.into(),
            });
        }
        if let Some(size) = w.size
            && size != d.size
        {
            let _ = std::fs::remove_file(files_dir.join(&w.path));
            return Err(Error::SizeMismatch {
                path: w.path.clone(),
                expected: size,
                actual: d.size,
            });
        }
    }
    Ok(())
}

/// Files of an entry that a check found wrong.
pub(crate) fn suspect_files(existing: Option<&CatalogEntry>) -> Vec<String> {
    match existing.map(|e| &e.record.status) {
        Some(ArtifactStatus::Failed { suspect, .. }) => suspect.clone(),
        _ => Vec::new(),
    }
}

pub(crate) fn existing_lists(existing: Option<&CatalogEntry>, path: &str) -> bool {
    existing.is_some_and(|e| e.record.files.iter().any(|old| old.path == path))
}

/// Removes a file's final copy (`rel` is a checked path, its folders are not links: a link at
/// the last component is removed itself, never its target).
pub(crate) fn remove_final(files_dir: &Path, rel: &str) {
    let _ = std::fs::remove_file(files_dir.join(rel));
}

/// Removes a file's final copy and its partial data, so nothing of it is adopted or resumed.
pub(crate) fn remove_with_partials(files_dir: &Path, rel: &str) {
    let path = files_dir.join(rel);
    for p in [part_path(&path), part_state_path(&path), path] {
        let _ = std::fs::remove_file(p);
    }
}

/// After an update, files the new revision no longer has are removed.
pub(crate) fn remove_stale_files(
    existing: Option<&CatalogEntry>,
    resolved: &ResolvedArtifact,
    files_dir: &Path,
    catalog: &Catalog,
) {
    let Some(entry) = existing else { return };
    for old in &entry.record.files {
        if !resolved.files.iter().any(|f| f.path == old.path)
            && catalog.file_inside(&entry.dir, &old.path).is_ok()
        {
            remove_final(files_dir, &old.path);
        }
    }
}

/// A local file on the catalog's file system is hard-linked: it takes no new space.
pub(crate) fn linkable(file: &ResolvedFile, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let FileSource::Local { path } = &file.source else {
        return false;
    };
    match (std::fs::metadata(path), std::fs::metadata(dir)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

pub(crate) fn partial_len(dir: &Path, rel: &str) -> u64 {
    std::fs::metadata(part_path(&layout::file_path(dir, rel)))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Puts `source` at `target` (creating its folder): a hard link when both are on one file
/// system, else a synced copy, renamed into place so `target` is never half there.
pub fn link_or_copy(source: &Path, target: &Path) -> Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    rbee_artifact::link_or_copy(source, target, &part_path(target)).map_err(|e| {
        Error::io(
            format!("placing {} at {}", source.display(), target.display()),
            e,
        )
    })
}
