//! Whether a copy (in the catalog or the shared store) holds what a pinned reference promises.

use rbee_artifact::{ArtifactRef, Error, Result, Sha256Digest, redact_url};
use rbee_catalog::CatalogEntry;
use rbee_vendor_github::GhRef;
use rbee_vendor_huggingface::HfRef;
use rbee_vendor_url::UrlRef;

/// Whether a pinned reference's promise holds for its ready entry. A `#sha256=` that differs
/// from the recorded digest is refused at once (the ready copy stays); a commit or tag that the
/// record does not show is resolved again (`false`).
pub(crate) fn pin_holds(reference: &ArtifactRef, entry: &CatalogEntry) -> Result<bool> {
    let record = &entry.record;
    let digests: Vec<_> = record.files.iter().map(|f| f.sha256).collect();
    pin_holds_for(
        reference,
        "the catalog",
        &record.id,
        record.revision.as_deref(),
        &digests,
    )
}

/// [`pin_holds`] for a copy that `holder` describes by its revision and file digests.
pub(crate) fn pin_holds_for(
    reference: &ArtifactRef,
    holder: &str,
    id: &str,
    revision: Option<&str>,
    digests: &[Option<Sha256Digest>],
) -> Result<bool> {
    if let Some(u) = reference.get::<UrlRef>() {
        let Some(pin) = u.sha256 else {
            return Ok(true);
        };
        match digests {
            [only] if *only == Some(pin) => Ok(true),
            [Some(other)] => Err(Error::InvalidRequest(format!(
                "{holder} holds {} (id {id}) with sha256 {other}, but the reference pins sha256 {pin}; nothing was downloaded. If the file at that URL changed, add --refresh to fetch it again and check it against the pin; otherwise correct the digest",
                redact_url(&u.url),
            ))),
            _ => Ok(false),
        }
    } else if let Some(hf) = reference.get::<HfRef>() {
        Ok(match (&hf.revision, revision) {
            (Some(pin), Some(recorded)) => pin.eq_ignore_ascii_case(recorded),
            (None, _) => true,
            (Some(_), None) => false,
        })
    } else if let Some(gh) = reference.get::<GhRef>() {
        Ok(match &gh.tag {
            Some(tag) => revision == Some(tag.as_str()),
            None => true,
        })
    } else {
        Ok(true)
    }
}
