//! A blob's digest as Ollama writes it in manifests, registry paths and model ids:
//! `sha256:<64 hex digits>`.

use std::fmt;
use std::str::FromStr;

use rbee_artifact::Sha256Digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `sha256:<64 hex digits>`, the only spelling a manifest may use: a bare hex string, which
/// [`Sha256Digest`] also reads, is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct BlobDigest(pub(crate) Sha256Digest);

/// A digest that is not `sha256:<64 hex digits>`, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidBlobDigest(String);

impl fmt::Display for InvalidBlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not sha256:<64 hex digits>", self.0)
    }
}

impl std::error::Error for InvalidBlobDigest {}

impl FromStr for BlobDigest {
    type Err = InvalidBlobDigest;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Sha256Digest::from_prefixed(raw)
            .map(BlobDigest)
            .map_err(|_| InvalidBlobDigest(raw.to_string()))
    }
}

impl fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Sha256Digest::PREFIX, self.0)
    }
}

impl Serialize for BlobDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlobDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Reads a digest once, keeping a malformed one as its error: a manifest's layer that rbee
/// leaves out may carry a digest rbee cannot read without the manifest being refused.
pub(crate) fn digest_as_written<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Result<BlobDigest, InvalidBlobDigest>, D::Error> {
    Ok(String::deserialize(d)?.parse())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_digest_reads_and_writes_its_algorithm_and_64_hex_digits() {
        let sha = Sha256Digest::of(b"m");
        let written = format!("sha256:{sha}");
        let digest: BlobDigest = written.parse().unwrap();
        assert_eq!(digest, BlobDigest(sha));
        assert_eq!(digest.to_string(), written);
        assert_eq!(
            serde_json::to_string(&digest).unwrap(),
            format!("\"{written}\"")
        );
        let back: BlobDigest = serde_json::from_str(&format!("\"{written}\"")).unwrap();
        assert_eq!(back, digest);
    }

    #[test]
    fn a_malformed_digest_is_refused_saying_what_a_digest_looks_like() {
        let bare = Sha256Digest::of(b"m").to_string();
        let doubled = format!("sha256:sha256:{bare}");
        for raw in [bare.as_str(), &doubled, "sha256:abc", "md5:0123", ""] {
            let e = raw.parse::<BlobDigest>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{raw:?} is not sha256:<64 hex digits>")
            );
            let e = serde_json::from_str::<BlobDigest>(&format!("\"{raw}\"")).unwrap_err();
            assert!(
                e.to_string().contains("is not sha256:<64 hex digits>"),
                "{e}"
            );
        }
    }
}
