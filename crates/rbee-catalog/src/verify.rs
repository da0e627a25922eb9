//! Checking an entry's files against their recorded sizes and digests.

use std::fs;

use serde::{Deserialize, Serialize};

use rbee_artifact::{Error, Result, Sha256Digest};

use crate::{ArtifactStatus, Catalog, contain, layout};

/// The outcome of [`Catalog::verify`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The entry id.
    pub id: String,
    /// One check per file.
    pub files: Vec<FileCheck>,
    /// Why the outcome could not be written to the record (a full disk, say); the report
    /// itself is still true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_recorded: Option<String>,
}

impl VerifyReport {
    /// Whether every file matched.
    pub fn ok(&self) -> bool {
        self.files
            .iter()
            .all(|f| matches!(f.outcome, CheckOutcome::Ok | CheckOutcome::NoDigest { .. }))
    }

    /// One line per failing file, for people.
    pub fn problems(&self) -> Vec<String> {
        self.files
            .iter()
            .filter_map(|f| {
                let what = match &f.outcome {
                    CheckOutcome::Ok | CheckOutcome::NoDigest { .. } => return None,
                    CheckOutcome::Missing => "is missing".to_string(),
                    CheckOutcome::SizeMismatch { expected, actual } => {
                        format!("has {actual} bytes, expected {expected}: it changed on disk")
                    }
                    CheckOutcome::DigestMismatch { expected, actual } => {
                        format!("changed on disk: sha256 is {actual}, expected {expected}")
                    }
                    CheckOutcome::Refused { reason } => format!("was not read: {reason}"),
                };
                Some(format!("{} {what}", f.path))
            })
            .collect()
    }
}

/// The check of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileCheck {
    /// Path within the artifact.
    pub path: String,
    /// What was found.
    pub outcome: CheckOutcome,
}

/// What verifying one file found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Size and digest match.
    Ok,
    /// No digest was recorded; the size matches and this digest was computed.
    NoDigest {
        /// The digest now.
        actual: String,
    },
    /// The file is gone.
    Missing,
    /// The size differs.
    SizeMismatch {
        /// Recorded size.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// The bytes differ.
    DigestMismatch {
        /// Recorded digest.
        expected: String,
        /// Digest on disk.
        actual: String,
    },
    /// The file was not read: it is (or is reached through) a symbolic link, or is not a
    /// regular file.
    Refused {
        /// What was found.
        reason: String,
    },
}

impl Catalog {
    /// Re-hashes every file of an entry against its recorded digest and size. A mismatch marks
    /// the entry `failed` with the files that failed (so the next provision deletes and fetches
    /// them again); a clean check of an entry that had failed verification marks it `ready`
    /// again. When that mark cannot be written (a full disk), the report says so in
    /// [`VerifyReport::not_recorded`]. `on_bytes` sees hashing progress. Blocking.
    pub fn verify(
        &self,
        id_or_reference: &str,
        mut on_bytes: impl FnMut(u64),
    ) -> Result<VerifyReport> {
        let entry = self.get(id_or_reference)?.ok_or_else(|| Error::NotFound {
            message: format!(
                "`{id_or_reference}` is not in the catalog; `rbee model list` shows what is"
            ),
        })?;
        // Holding the lease keeps a download (in any process) from changing the files and the
        // status while they are checked.
        let key = entry.record.key();
        let _lease = self
            .try_lease_key(key.clone())?
            .ok_or_else(|| Error::Busy {
                id: entry.record.id.clone(),
                reason: "it is being downloaded; verify it once the download ends".into(),
            })?;
        let entry = self.read(&key)?.unwrap_or(entry);
        let mut files = Vec::new();
        for f in &entry.record.files {
            let path = layout::file_path(&entry.dir, &f.path);
            if let Some(link) = contain::first_link(&entry.dir, &path) {
                files.push(FileCheck {
                    path: f.path.clone(),
                    outcome: CheckOutcome::Refused {
                        reason: contain::link_reason(&link),
                    },
                });
                continue;
            }
            let outcome = match fs::symlink_metadata(&path) {
                Err(_) => CheckOutcome::Missing,
                Ok(m) if !m.is_file() => CheckOutcome::Refused {
                    reason: format!("{} is not a regular file", path.display()),
                },
                Ok(m) if m.len() != f.size => CheckOutcome::SizeMismatch {
                    expected: f.size,
                    actual: m.len(),
                },
                Ok(_) => {
                    let (actual, _) = contain::open_regular(&path)
                        .and_then(|file| Sha256Digest::of_reader(file, &mut on_bytes))
                        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                    match f.sha256 {
                        Some(expected) if expected == actual => CheckOutcome::Ok,
                        Some(expected) => CheckOutcome::DigestMismatch {
                            expected: expected.to_string(),
                            actual: actual.to_string(),
                        },
                        None => CheckOutcome::NoDigest {
                            actual: actual.to_string(),
                        },
                    }
                }
            };
            files.push(FileCheck {
                path: f.path.clone(),
                outcome,
            });
        }
        let mut report = VerifyReport {
            id: entry.record.id.clone(),
            files,
            not_recorded: None,
        };
        let status = if !report.ok() {
            Some(ArtifactStatus::Failed {
                error: format!("verification failed: {}", report.problems().join("; ")),
                code: "integrity".into(),
                suspect: report
                    .files
                    .iter()
                    .filter(|f| {
                        !matches!(f.outcome, CheckOutcome::Ok | CheckOutcome::NoDigest { .. })
                    })
                    .map(|f| f.path.clone())
                    .collect(),
            })
        } else if matches!(&entry.record.status, ArtifactStatus::Failed { code, .. } if code == "integrity")
        {
            Some(ArtifactStatus::Ready)
        } else {
            None
        };
        if let Some(status) = status
            && let Err(e) = self.set_status(&key, status)
        {
            tracing::warn!(id = %report.id, error = %e.report(), "could not record the outcome of a verification");
            report.not_recorded = Some(e.report());
        }
        Ok(report)
    }
}
