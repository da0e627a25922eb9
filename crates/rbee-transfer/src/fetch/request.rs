//! One ranged GET and what its answer means.

use reqwest::header::{CONTENT_RANGE, HeaderValue, IF_RANGE, RANGE};
use reqwest::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use super::content_range::{parse_content_range, parse_unsatisfied_total};
use super::job::Job;
use super::{Flow, Got};
use crate::error::{TransferError, redact_url};
use crate::http::{self, Outgoing, SendError};
use rbee_artifact::lock_unpoisoned;

impl Job<'_> {
    /// Sends one ranged GET to the current target.
    pub(super) async fn request_range(
        &self,
        pos: u64,
        end: u64,
        attempt: u32,
        stop: &CancellationToken,
    ) -> Result<Got, Flow> {
        let (url, generation) = {
            let t = lock_unpoisoned(&self.shared.target);
            (t.url.clone(), t.generation)
        };
        let mut headers = self.headers.clone();
        let range = if end == u64::MAX {
            format!("bytes={pos}-")
        } else {
            format!("bytes={pos}-{}", end - 1)
        };
        headers.insert(RANGE, HeaderValue::from_str(&range).expect("ascii range"));
        let if_range = lock_unpoisoned(&self.shared.book)
            .st
            .validators
            .if_range()
            .map(str::to_string);
        if let Some(v) = if_range
            && let Ok(v) = HeaderValue::from_str(&v)
        {
            headers.insert(IF_RANGE, v);
        }
        let cached = url != self.req.url;
        let out = Outgoing {
            method: Method::GET,
            url: url.clone(),
            auth: self.req.auth.as_ref().map(|s| (s, &self.req.url)),
            headers,
            follow_redirects: true,
            response_timeout: self.inner.config.response_timeout,
        };
        let sent = match http::send(&self.inner.data, out, stop).await {
            Ok(sent) => sent,
            Err(SendError::Cancelled) => return Err(Flow::Fail(TransferError::cancelled())),
            Err(e) => return Err(Flow::Fail(e.into_transfer(&self.what, attempt))),
        };
        if sent.redirected {
            let mut t = lock_unpoisoned(&self.shared.target);
            if t.generation == generation {
                t.url = sent.url.clone();
                t.generation += 1;
            }
        }
        let redirected = sent.redirected;
        let resp = sent.response;
        let status = resp.status();
        match status {
            StatusCode::PARTIAL_CONTENT => {
                let cr = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range)
                    .ok_or_else(|| {
                        // A broken proxy or server; another attempt may reach a sane one.
                        Flow::Fail(TransferError::protocol(format!(
                            "{}: 206 without a valid Content-Range",
                            self.what
                        )))
                    })?;
                Ok(Got::Partial(resp, cr))
            }
            StatusCode::OK => Ok(Got::Full(resp)),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(Got::Unsatisfiable(
                resp.headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_unsatisfied_total),
            )),
            s if (cached || redirected) && matches!(s.as_u16(), 400 | 401 | 403 | 404 | 410) => {
                // A signed CDN link that expired (or was stale when issued): go back to the
                // original URL for a fresh one. Attempts bound this when the refusal is real.
                let mut t = lock_unpoisoned(&self.shared.target);
                if t.generation == generation {
                    t.url = self.req.url.clone();
                    t.generation += 1;
                }
                Err(Flow::Reresolve(TransferError::from_status(
                    &format!("GET {}", redact_url(&url)),
                    s,
                    resp.headers().clone(),
                    attempt,
                )))
            }
            s => Err(Flow::Fail(TransferError::from_status(
                &self.what,
                s,
                resp.headers().clone(),
                attempt,
            ))),
        }
    }
}
