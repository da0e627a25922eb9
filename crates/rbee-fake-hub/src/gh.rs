//! GitHub releases protocol.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::state::HubState;

pub(crate) async fn api(State(_state): State<Arc<HubState>>, _req: Request) -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

pub(crate) async fn browser_download(
    _state: Arc<HubState>,
    _req: Request,
    _segs: Vec<String>,
) -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}
