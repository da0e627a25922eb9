//! Where things live on disk: pure path functions, no I/O.
//!
//! ```text
//! <root>/                                   $RBEE_CACHE_DIR or ~/.cache/rbee/models
//!   .catalog.lock                           serialises metadata writes between processes
//!   .catalog-index.json                     a cache of the records, rebuilt when missing or stale
//!   hf/<org>/<repo>/<variant>/              one artifact (variant: Q4_K_M, default, file-…, …@rev;
//!                                           `…=sel-<hash>` when --include/--exclude chose files)
//!     metadata.json                         the record (reference, revision, files, status)
//!     .lock                                 held by the process downloading this artifact
//!     .last-used                            its mtime is the last use (provisioned, looked up)
//!     .pinned                               present: never evicted to meet the cache budget
//!     files/<path in repo>                  complete, verified files
//!     files/<path in repo>.part             partial data of an interrupted download
//!     files/<path in repo>.part.state       which ranges of the partial file are complete
//!   gh/<owner>/<repo>/<tag or latest>[+asset]/…
//!   url/<host>/<name>-<hash>/…
//!   file/<name>-<hash>/…
//!   ollama/<host>/<namespace>/<model>/<tag>/…
//! ```
//!
//! An artifact's folder and id come from its [`CatalogKey`]; the names of the partial files
//! beside a download from [`rbee_artifact::partial`].

use std::path::{Path, PathBuf};

use rbee_artifact::CatalogKey;

/// The record file inside an artifact folder.
pub const METADATA_FILE: &str = "metadata.json";
/// The per-artifact lock file.
pub const LOCK_FILE: &str = ".lock";
/// Sidecar whose mtime is the artifact's last use.
pub const LAST_USED_FILE: &str = ".last-used";
/// Sidecar whose presence keeps an artifact from eviction.
pub const PINNED_FILE: &str = ".pinned";
/// The folder holding an artifact's files.
pub const FILES_DIR: &str = "files";
/// The catalog-wide lock for metadata writes.
pub const CATALOG_LOCK_FILE: &str = ".catalog.lock";
/// The index of the records at the root (a cache: see `Catalog::list`). Its name starts with a
/// dot, so no walk of the catalog takes it for an entry.
pub const INDEX_FILE: &str = ".catalog-index.json";

/// The artifact folder.
pub fn entry_dir(root: &Path, key: &CatalogKey) -> PathBuf {
    root.join(key.relative_dir())
}

/// The folder holding the artifact's files.
pub fn files_dir(entry_dir: &Path) -> PathBuf {
    entry_dir.join(FILES_DIR)
}

/// The final path of a file of an artifact (`rel` already validated).
pub fn file_path(entry_dir: &Path, rel: &str) -> PathBuf {
    files_dir(entry_dir).join(rel)
}
