//! Small answers shared by the routes: redirects and S3's refusals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

/// How S3 (behind GitHub's and HuggingFace's download hosts) refuses a signed URL.
pub(crate) fn s3_denied(message: &str) -> Response {
    s3_error(StatusCode::FORBIDDEN, "AccessDenied", message)
}

pub(crate) fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// A 302 to `location` with an empty body.
pub(crate) fn redirect(location: &Url) -> Response {
    redirect_with(StatusCode::FOUND, location)
}

/// A redirect with `status` (302, the Ollama registry's 307) to `location`, with an empty body.
pub(crate) fn redirect_with(status: StatusCode, location: &Url) -> Response {
    match HeaderValue::from_str(location.as_str()) {
        Ok(v) => (status, [(header::LOCATION, v)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
