//! The daemon's JSON errors: `{"error": {"code": "...", "message": "..."}}` with a stable code
//! and the HTTP status that goes with it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rbee_artifact::Error;

use crate::api::{ErrorBody, ErrorResponse};

/// An error answered to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.to_string(),
                message: message.into(),
            },
        }
    }

    /// 400 `bad_json`: the body is not JSON.
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_json", message)
    }

    /// 400 `invalid_request`: JSON, but not the fields this route takes.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 `job_not_found`.
    pub fn job_not_found(job_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "job_not_found",
            format!(
                "there is no job `{job_id}` (finished jobs are forgotten after a while, and all of them when the daemon restarts); GET /v1/jobs lists the jobs"
            ),
        )
    }

    /// 409 `invalid_state`: the job cannot do that now.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "invalid_state", message)
    }

    /// 503 `shutting_down`.
    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "rbee-hive is shutting down and takes no new jobs; start it again and retry",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &str {
        &self.body.code
    }

    /// The body's `error` object.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = status_of(&e);
        if status.is_server_error() {
            tracing::warn!(code = e.code(), error = %e.report(), "request failed");
        }
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<rbee_artifact::RefError> for ApiError {
    fn from(e: rbee_artifact::RefError) -> Self {
        Error::InvalidReference(e).into()
    }
}

/// The HTTP status for a library error answered synchronously.
fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::InvalidReference(_) | Error::InvalidRequest(_) | Error::Unsupported(_) => {
            StatusCode::BAD_REQUEST
        }
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Busy { .. } | Error::Damaged { .. } | Error::Cancelled => StatusCode::CONFLICT,
        Error::InsufficientSpace { .. } | Error::OverBudget { .. } => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        Error::Offline { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Unauthorized { .. }
        | Error::RateLimited { .. }
        | Error::Network { .. }
        | Error::Protocol { .. } => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorResponse { error: self.body })).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_keep_their_code_and_get_a_status() {
        let e = ApiError::from(Error::Busy {
            id: "hf--a--b--Q4_K_M".into(),
            reason: "downloading".into(),
        });
        assert_eq!(e.status(), StatusCode::CONFLICT);
        assert_eq!(e.code(), "busy");
        let e = ApiError::from("hf:".parse::<rbee_artifact::ArtifactRef>().unwrap_err());
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.code(), "invalid_reference");
    }
}
