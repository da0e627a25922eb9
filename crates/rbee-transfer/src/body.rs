//! Reading a small API answer whole, with a size cap.

use std::sync::Arc;

use rbee_artifact::Error;
use tokio_util::sync::CancellationToken;

use crate::error::redact_url;

/// Reads the body of an API answer (a JSON listing, an error page) into memory, refusing more
/// than `limit` bytes so a broken or hostile server cannot exhaust memory. Cancellable.
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
    cancel: &CancellationToken,
) -> Result<Vec<u8>, Error> {
    let url = redact_url(response.url());
    let mut body = Vec::new();
    loop {
        let chunk = tokio::select! {
            () = cancel.cancelled() => return Err(Error::Cancelled),
            chunk = response.chunk() => chunk,
        };
        match chunk {
            Ok(Some(bytes)) => {
                if body.len() + bytes.len() > limit {
                    return Err(Error::Protocol {
                        message: format!("the answer from {url} is larger than {limit} bytes"),
                    });
                }
                body.extend_from_slice(&bytes);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(Error::Network {
                    message: format!("reading the answer from {url} failed"),
                    source: Some(Arc::new(e.without_url())),
                });
            }
        }
    }
}
