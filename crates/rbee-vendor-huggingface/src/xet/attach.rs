//! Which requests of a download go over Xet: those the Hub announces in Xet and whose
//! reconstruction adds up to the size that was resolved.

use std::sync::Arc;

use rbee_artifact::{Error, Result};
use rbee_transfer::{ApiRequest, FetchRequest, Transfer};
use tokio_util::sync::CancellationToken;

use super::{ChunkCache, XetFile, XetSource, XetTokens};

/// Gives each request the Hub stores in Xet a [`XetSource`], so the engine fetches it
/// natively with the request's `resolve` URL as the fallback. Anything unexpected on the way
/// (no announcement, a refused token, a reconstruction that does not add up) leaves that
/// request on the bridge, with one warning when Xet was announced. Only cancellation fails.
/// Returns the sources given out, for their byte counts.
pub(crate) async fn attach(
    transfer: &Transfer,
    requests: &mut [FetchRequest],
    tokens: &Arc<XetTokens>,
    cache: Option<&Arc<ChunkCache>>,
    cancel: &CancellationToken,
) -> Result<Vec<Arc<XetSource>>> {
    let mut sources = Vec::new();
    for req in requests.iter_mut() {
        // Pieces need a digest to prove the whole; Xet only holds LFS files anyway.
        let (Some(_), Some(size)) = (req.sha256, req.expected_size) else {
            continue;
        };
        let head = ApiRequest::head(req.url.clone()).with_auth(req.auth.clone());
        let response = match transfer.send(head, cancel).await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => return Err(Error::Cancelled),
            Err(e) => {
                tracing::debug!(path = %req.path, error = %e, "no Xet announcement (the HEAD failed); using the bridge");
                continue;
            }
        };
        let Some(xet) = XetFile::from_headers(response.headers(), &req.url) else {
            continue;
        };
        match XetSource::new(
            transfer.clone(),
            tokens.clone(),
            &xet.hash,
            cache.cloned(),
            cancel,
        )
        .await
        {
            Ok(source) if source.size() == size => {
                tracing::debug!(path = %req.path, terms = source.pieces_len(), "fetching over Xet");
                let source = Arc::new(source);
                sources.push(source.clone());
                req.pieces = Some(source);
            }
            Ok(source) => {
                tracing::warn!(path = %req.path, xet = source.size(), resolved = size, "the Xet reconstruction does not add up to the file's size; using the plain download");
            }
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => {
                tracing::warn!(path = %req.path, error = %e, "Xet is announced for this file but could not be used; using the plain download");
            }
        }
    }
    Ok(sources)
}
