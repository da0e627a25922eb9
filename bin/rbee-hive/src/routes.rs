//! The HTTP API (see `docs/http-api.md`): routes, and the handlers that turn requests into job
//! and catalog calls.

use std::time::Duration;

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Json, Router, middleware};
use serde_json::json;
use tower::ServiceBuilder;

use crate::api::{DownloadAccepted, JobList, ModelList};
use crate::auth::guard;
use crate::error::ApiError;
use crate::jobs::{Job, JobView, Stop};
use crate::ops;
use crate::request::{self, JsonBody, Operation};
use crate::sse;
use crate::state::HiveState;

/// The daemon's router over `state`: every route, the token and host checks, the request
/// timeout (not on event streams), and JSON errors for unknown routes and methods.
pub fn app(state: HiveState) -> Router {
    let timeout = state.config().request_timeout;
    let api = Router::new()
        .route("/v1/jobs", post(create_job).get(list_jobs))
        .route("/v1/jobs/{job_id}", get(get_job))
        .route("/v1/jobs/{job_id}/cancel", post(cancel_job))
        .route("/v1/jobs/{job_id}/pause", post(pause_job))
        .route("/v1/jobs/{job_id}/resume", post(resume_job))
        .route("/v1/inspect", post(inspect_model))
        .route("/v1/models", get(list_models))
        .route("/v1/models/download", post(download_model))
        .route("/v1/models/{*id}", get(get_model).delete(delete_model))
        .route("/health", get(health))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(move |e: BoxError| async move {
                    timed_out(e, timeout)
                }))
                .timeout(timeout),
        );
    let streams = Router::new()
        .route("/v1/jobs/{job_id}/stream", get(job_stream))
        .route("/v1/models/download/progress", get(downloads_stream));
    let mut router = Router::new().merge(api).merge(streams);
    if state.mirror().is_some() {
        // No request timeout: file bodies stream for as long as they take.
        router = router.merge(crate::mirror::router());
    }
    router
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
        // The page carries no data and must load before the user has entered a token.
        .merge(crate::web::router())
}

fn timed_out(e: BoxError, limit: Duration) -> ApiError {
    if e.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request took longer than {} s and was stopped",
                limit.as_secs()
            ),
        )
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the request failed: {e}"),
        )
    }
}

/// One path parameter, percent-decoded; a bad one is a JSON `invalid_request`.
#[derive(Debug)]
struct Param(String);

impl<S: Send + Sync> FromRequestParts<S> for Param {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Param(p))
            .map_err(|e| {
                ApiError::invalid_request(format!("bad path parameter: {}", e.body_text()))
            })
    }
}

impl FromRequest<HiveState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &HiveState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let limit = state.config().body_limit;
        let bytes: Bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the request body is larger than {limit} bytes"),
                )
            })?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_json(format!("the body is not valid JSON: {e}")))?;
        Ok(JsonBody(value))
    }
}

fn find_job(state: &HiveState, id: &str) -> Result<std::sync::Arc<Job>, ApiError> {
    state
        .jobs()
        .get(id)
        .ok_or_else(|| ApiError::job_not_found(id))
}

async fn create_job(State(state): State<HiveState>, body: JsonBody) -> Result<Response, ApiError> {
    let operation = request::job_operation(body, &state.config().hive_id)?;
    let job = ops::start(&state, operation)?;
    Ok(accepted(&job, job.view()))
}

fn accepted(job: &Job, body: impl serde::Serialize) -> Response {
    let location = format!("/v1/jobs/{}", job.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

async fn list_jobs(State(state): State<HiveState>) -> Json<JobList> {
    let jobs: Vec<JobView> = state.jobs().list().iter().map(|j| j.view()).collect();
    Json(JobList { jobs })
}

async fn get_job(
    State(state): State<HiveState>,
    Param(id): Param,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(find_job(&state, &id)?.view()))
}

async fn job_stream(
    State(state): State<HiveState>,
    Param(id): Param,
) -> Result<Response, ApiError> {
    let job = find_job(&state, &id)?;
    Ok(sse::job_stream(&state, job).into_response())
}

async fn cancel_job(
    State(state): State<HiveState>,
    Param(id): Param,
) -> Result<Json<JobView>, ApiError> {
    control(state, id, Stop::Cancel).await
}

async fn pause_job(
    State(state): State<HiveState>,
    Param(id): Param,
) -> Result<Json<JobView>, ApiError> {
    control(state, id, Stop::Pause).await
}

async fn control(state: HiveState, id: String, why: Stop) -> Result<Json<JobView>, ApiError> {
    let job = find_job(&state, &id)?;
    ops::stop(&state, &job, why).await?;
    Ok(Json(job.view()))
}

async fn resume_job(
    State(state): State<HiveState>,
    Param(id): Param,
) -> Result<Json<JobView>, ApiError> {
    let job = find_job(&state, &id)?;
    ops::resume(&state, &job).await?;
    Ok(Json(job.view()))
}

async fn download_model(
    State(state): State<HiveState>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let request = request::model_download(body, &state.config().hive_id)?;
    let job = ops::start(&state, Operation::Download(request))?;
    let view = job.view();
    Ok(accepted(
        &job,
        DownloadAccepted {
            job_url: format!("/v1/jobs/{}", view.job_id),
            download_id: view.job_id,
            status: view.state,
            sse_url: view.sse_url,
        },
    ))
}

async fn downloads_stream(State(state): State<HiveState>) -> Response {
    sse::downloads_stream(&state).into_response()
}

async fn list_models(State(state): State<HiveState>) -> Result<Json<ModelList>, ApiError> {
    let (root, listing) = ops::list_models(&state).await?;
    // Serialised straight to the body: a `serde_json::Value` of 10,000 records first would
    // build and free a tree as large as the document.
    Ok(Json(ModelList::of(&root, &listing)))
}

async fn get_model(
    State(state): State<HiveState>,
    Param(id): Param,
) -> Result<Json<serde_json::Value>, ApiError> {
    let entry = ops::get_model(&state, &id).await?;
    Ok(Json(ops::model_detail_json(entry).await?))
}

async fn delete_model(
    State(state): State<HiveState>,
    Param(id): Param,
) -> Result<Json<serde_json::Value>, ApiError> {
    let removed = ops::delete_model(&state, &id).await?;
    Ok(Json(json!(removed)))
}

async fn inspect_model(
    State(state): State<HiveState>,
    body: JsonBody,
) -> Result<Json<rbee_gguf::InspectReport>, ApiError> {
    let request = request::inspect(body.parse()?, &state.config().hive_id)?;
    // The request timeout ends the read by dropping it; nothing else can cancel it.
    let never = tokio_util::sync::CancellationToken::new();
    Ok(Json(crate::inspect::run(&state, &request, &never).await?))
}

async fn health(State(state): State<HiveState>) -> Json<serde_json::Value> {
    let jobs = state.jobs().list();
    let active = jobs.iter().filter(|j| !j.is_final()).count();
    Json(json!({
        "status": if state.is_shutting_down() { "shutting_down" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "hive_id": state.config().hive_id,
        "jobs": { "active": active, "known": jobs.len() },
        "uptime_secs": state.uptime_secs(),
        "shared_store": state.provisioner().shared_store().map(|s| json!({
            "store": s.name(),
            "required": s.required(),
        })),
    }))
}

async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_route",
        format!(
            "no route {}; see docs/http-api.md (POST /v1/jobs, GET /v1/models, POST /v1/inspect, GET /health, …)",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}
