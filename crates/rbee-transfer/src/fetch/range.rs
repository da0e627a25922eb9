//! One range on one connection, retried from where its bytes stopped.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::Response;
use tokio_util::sync::CancellationToken;

use super::content_range::validators_of;
use super::job::Job;
use super::ledger::Span;
use super::{Flow, Got};
use crate::error::{TransferError, TransferErrorKind, redact_url};
use crate::retry::MAX_SILENT_ANSWERS;
use rbee_artifact::lock_unpoisoned;

impl Job<'_> {
    /// Fetches what is left of `span` (its end `u64::MAX`: to the end of the body), retrying
    /// transient failures from where its bytes stopped. `resp`: an answer already open at the
    /// span's start, with where its body ends.
    pub(super) async fn fetch_range(
        &self,
        span: &Span,
        mut resp: Option<(Response, u64)>,
        stop: &CancellationToken,
        mut attempt: u32,
    ) -> Result<(), Flow> {
        loop {
            let Some((pos, end)) = span.next() else {
                return Ok(());
            };
            let (r, stream_end) = match resp.take() {
                Some(r) => r,
                None => self.open(pos, end, &mut attempt, stop).await?,
            };
            let mut at = pos;
            match self.stream(r, span, &mut at, stream_end, stop).await {
                Ok(()) => {
                    if end == u64::MAX {
                        return Ok(());
                    }
                }
                Err(Flow::Fail(e)) if e.is_transient() => {
                    if at > pos {
                        // Progress was made: this is a new problem, not the same one again.
                        attempt = 1;
                    }
                    attempt += 1;
                    // A server that does not honour ranges answers the retry with the whole
                    // file, which `open` turns into a clean restart.
                    let Some(delay) = self.inner.retry.wait_before(attempt, None) else {
                        return Err(Flow::Fail(e.with_attempts(attempt - 1)));
                    };
                    tracing::debug!(url = %redact_url(&self.req.url), error = %e, attempt, "retrying the range");
                    self.progress.retrying(attempt, delay, e.to_string());
                    self.sleep(delay, stop).await?;
                }
                Err(flow) => return Err(flow),
            }
        }
    }

    pub(super) async fn sleep(
        &self,
        delay: Duration,
        stop: &CancellationToken,
    ) -> Result<(), Flow> {
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = stop.cancelled() => Err(Flow::Fail(TransferError::cancelled())),
        }
    }

    /// Opens `[pos, end)` for a worker: a 206 from `pos` of the same remote, or why not.
    pub(super) async fn open(
        &self,
        pos: u64,
        end: u64,
        attempt: &mut u32,
        stop: &CancellationToken,
    ) -> Result<(Response, u64), Flow> {
        match self.open_raw(pos, end, attempt, stop).await? {
            Got::Partial(resp, cr) => {
                let b = lock_unpoisoned(&self.shared.book);
                let validators = validators_of(resp.headers(), cr.total.or(b.st.validators.total));
                if cr.start != pos {
                    return Err(Flow::Restart(
                        format!(
                            "asked for bytes from {pos}, the server sent bytes from {}",
                            cr.start
                        ),
                        None,
                    ));
                }
                if cr.total.is_some_and(|t| Some(t) != b.st.validators.total)
                    || !self.same_remote(&b.st.validators, &validators)
                {
                    return Err(Flow::Restart(self.changed_reason(&validators), None));
                }
                Ok((resp, end.min(cr.end)))
            }
            Got::Full(resp) => {
                let b = lock_unpoisoned(&self.shared.book);
                let total = resp.content_length();
                let single = b.claim_len == u64::MAX;
                let known = b.st.validators.total;
                if pos == 0
                    && single
                    && total.is_none_or(|t| known.is_none_or(|k| k == t))
                    && b.st
                        .validators
                        .same_as(&validators_of(resp.headers(), total.or(known)))
                {
                    return Ok((resp, end));
                }
                Err(Flow::Restart(
                    "the server sent the whole file in answer to a range request".to_string(),
                    None,
                ))
            }
            Got::Unsatisfiable(_) => Err(Flow::Restart(
                "the server refused the range (416)".to_string(),
                None,
            )),
        }
    }

    /// One ranged GET with retries for failures before the body: connection errors, 5xx, 429
    /// (honouring `Retry-After`), and expired redirect targets (resolved again).
    pub(super) async fn open_raw(
        &self,
        pos: u64,
        end: u64,
        attempt: &mut u32,
        stop: &CancellationToken,
    ) -> Result<Got, Flow> {
        let policy = &self.inner.retry;
        loop {
            let err = match self.request_range(pos, end, *attempt, stop).await {
                Ok(got) => return Ok(got),
                Err(Flow::Reresolve(e)) => {
                    *attempt += 1;
                    if !policy.allows(*attempt) {
                        return Err(Flow::Fail(e.with_attempts(*attempt - 1)));
                    }
                    self.progress.retrying(
                        *attempt,
                        Duration::ZERO,
                        "the download link expired; resolving it again",
                    );
                    continue;
                }
                Err(Flow::Fail(e))
                    if e.kind() == TransferErrorKind::NoResponse
                        && self.shared.silent.fetch_add(1, Ordering::AcqRel) + 1
                            >= MAX_SILENT_ANSWERS =>
                {
                    return Err(Flow::Fail(e.with_attempts(*attempt)));
                }
                Err(Flow::Fail(e)) if e.is_transient() => e,
                Err(flow) => return Err(flow),
            };
            *attempt += 1;
            let Some(delay) = policy.wait_before(*attempt, err.retry_after()) else {
                return Err(Flow::Fail(err.with_attempts(*attempt - 1)));
            };
            tracing::debug!(url = %redact_url(&self.req.url), error = %err, attempt = *attempt, "retrying the request");
            self.progress.retrying(*attempt, delay, err.to_string());
            self.sleep(delay, stop).await?;
        }
    }
}
