//! The admin HTTP API (`/_admin/…` on the hub): faults, counters, rate cap at run time.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::fault::Fault;
use crate::state::HubState;

type AppState = Arc<HubState>;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/faults",
            get(list_faults).post(set_faults).delete(clear_faults),
        )
        .route("/faults/add", post(add_faults))
        .route("/counters", get(counters))
        .route("/counters/reset", post(reset_counters))
        .route("/counters/xet", get(xet_counters))
        .route("/requests", get(requests))
        .route("/rate-limit", get(get_rate).post(set_rate))
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// One fault object or an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Fault>),
    One(Box<Fault>),
}

fn parse_faults(body: &[u8]) -> Result<Vec<Fault>, String> {
    match serde_json::from_slice::<OneOrMany>(body) {
        Ok(OneOrMany::Many(v)) => Ok(v),
        Ok(OneOrMany::One(f)) => Ok(vec![*f]),
        Err(_) => {
            // Re-parse as the expected shape for a precise message.
            let detail = match serde_json::from_slice::<Fault>(body) {
                Err(e) => e.to_string(),
                Ok(_) => "expected a fault object or an array of them".to_owned(),
            };
            Err(format!(
                "invalid fault JSON: {detail}; example: {{\"path\":\"files/big.bin\",\"times\":1,\"kind\":\"drop\",\"after_bytes\":1048576}}"
            ))
        }
    }
}

async fn list_faults(State(state): State<AppState>) -> Response {
    axum::Json(state.faults.list()).into_response()
}

async fn set_faults(State(state): State<AppState>, body: Bytes) -> Response {
    let faults = match parse_faults(&body) {
        Ok(f) => f,
        Err(msg) => return bad_request(msg),
    };
    match state.faults.set(faults) {
        Ok(()) => axum::Json(state.faults.list()).into_response(),
        Err(e) => bad_request(e.to_string()),
    }
}

async fn add_faults(State(state): State<AppState>, body: Bytes) -> Response {
    let faults = match parse_faults(&body) {
        Ok(f) => f,
        Err(msg) => return bad_request(msg),
    };
    match state.faults.extend(faults) {
        Ok(()) => axum::Json(state.faults.list()).into_response(),
        Err(e) => bad_request(e.to_string()),
    }
}

async fn clear_faults(State(state): State<AppState>) -> Response {
    let _ = state.faults.set(Vec::new());
    StatusCode::NO_CONTENT.into_response()
}

async fn counters(State(state): State<AppState>) -> Response {
    axum::Json(state.counters.snapshot()).into_response()
}

async fn xet_counters(State(state): State<AppState>) -> Response {
    axum::Json(crate::xet::XetCounters::from_snapshot(
        &state.counters.snapshot(),
    ))
    .into_response()
}

async fn reset_counters(State(state): State<AppState>) -> Response {
    state.counters.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn requests(State(state): State<AppState>) -> Response {
    axum::Json(state.counters.requests()).into_response()
}

#[derive(Deserialize)]
struct Rate {
    bytes_per_sec: Option<u64>,
}

async fn get_rate(State(state): State<AppState>) -> Response {
    let rate = state.rate_limit.load(std::sync::atomic::Ordering::Relaxed);
    axum::Json(json!({ "bytes_per_sec": (rate > 0).then_some(rate) })).into_response()
}

async fn set_rate(State(state): State<AppState>, body: Bytes) -> Response {
    match serde_json::from_slice::<Rate>(&body) {
        Ok(r) => {
            state.set_rate_limit(r.bytes_per_sec.filter(|&n| n > 0));
            get_rate(State(state)).await
        }
        Err(e) => bad_request(format!(
            "invalid rate JSON: {e}; example: {{\"bytes_per_sec\": 1048576}} or {{\"bytes_per_sec\": null}}"
        )),
    }
}
