//! GitHub's hourly API budget, charged per token (or per anonymous caller).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;

use crate::state::HubState;

use super::release::token_of;

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The caller's hourly API budget after charging one request.
pub(super) struct Budget {
    pub(super) limit: u64,
    pub(super) remaining: u64,
    pub(super) reset: u64,
    pub(super) used: u64,
    pub(super) exceeded: bool,
}

/// Counts one API request against the caller's (token's, or anonymous) hourly budget.
pub(super) fn charge(state: &HubState, headers: &HeaderMap) -> Budget {
    let identity = token_of(headers).unwrap_or_else(|| "anonymous".to_owned());
    let limit = state.config.gh_rate_limit;
    let now = now_secs();
    let mut usage = state
        .gh_usage
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = usage.entry(identity).or_insert((now, 0));
    if now >= entry.0 + 3600 {
        *entry = (now, 0);
    }
    entry.1 += 1;
    Budget {
        limit,
        remaining: limit.saturating_sub(entry.1),
        reset: entry.0 + 3600,
        used: entry.1.min(limit),
        exceeded: entry.1 > limit,
    }
}
