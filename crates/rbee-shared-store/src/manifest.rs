//! A manifest: what an artifact is made of, so a hive can provision it from the store alone.

use chrono::{DateTime, Utc};
use rbee_artifact::{ArtifactRef, Selection, Sha256Digest};
use serde::{Deserialize, Serialize};

/// The manifest format's version; a newer one is refused rather than misread.
pub const MANIFEST_SCHEMA: u32 = 1;

/// One published artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_SCHEMA`].
    pub schema: u32,
    /// The catalog id (the manifest's name in the store).
    pub id: String,
    /// The reference as requested.
    pub reference: ArtifactRef,
    /// The `--include`/`--exclude` globs that chose the files.
    #[serde(default)]
    pub selection: Selection,
    /// The revision the files come from (commit, tag), when the vendor has one.
    pub revision: Option<String>,
    /// Every file, each stored as the blob named by its digest.
    pub files: Vec<ManifestFile>,
    /// The hive that published it.
    pub published_by: String,
    /// When.
    pub published_at: DateTime<Utc>,
}

/// One file of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path within the artifact.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Digest of the bytes (the blob's name).
    pub sha256: Sha256Digest,
}

impl Manifest {
    /// Total bytes of its files.
    pub fn total_size(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.size)
            .fold(0, u64::saturating_add)
    }

    /// Reads a manifest, refusing one this version cannot understand or whose paths would
    /// escape an artifact folder (a store is shared, so its contents are not trusted).
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, String> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("it is not a manifest ({e})"))?;
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(format!(
                "it has format version {}, this rbee reads version {MANIFEST_SCHEMA}; upgrade rbee",
                manifest.schema
            ));
        }
        if manifest.files.is_empty() {
            return Err("it lists no files".into());
        }
        for f in &manifest.files {
            rbee_artifact::check_file_path(&f.path).map_err(|why| {
                format!(
                    "it names a file `{}` that cannot be stored safely: {why}",
                    f.path.escape_debug()
                )
            })?;
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
        Manifest {
            schema: MANIFEST_SCHEMA,
            id: "hf--org--repo".into(),
            reference: "hf:org/repo".parse().unwrap(),
            selection: Selection::default(),
            revision: Some("abc".into()),
            files: vec![ManifestFile {
                path: "model.gguf".into(),
                size: 3,
                sha256: Sha256Digest::of(b"abc"),
            }],
            published_by: "hive-a".into(),
            published_at: Utc::now(),
        }
    }

    #[test]
    fn round_trips_and_refuses_what_it_cannot_trust() {
        let m = sample();
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::from_json(&json).unwrap(), m);

        let mut bad = sample();
        bad.files[0].path = "../../etc/passwd".into();
        let e = Manifest::from_json(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert!(e.contains("cannot be stored safely"), "{e}");

        let mut newer = sample();
        newer.schema = 99;
        let e = Manifest::from_json(&serde_json::to_vec(&newer).unwrap()).unwrap_err();
        assert!(e.contains("upgrade rbee"), "{e}");

        assert!(
            Manifest::from_json(b"<html>")
                .unwrap_err()
                .contains("not a manifest")
        );
    }
}
