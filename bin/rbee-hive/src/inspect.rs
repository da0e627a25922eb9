//! `POST /v1/inspect` and the `model_inspect` job: what a model is and whether it fits this
//! machine's GPUs, from its headers alone (nothing is downloaded). The headers are read
//! through the daemon's own vendors, with the daemon's tokens; the fit is judged against the
//! daemon's GPUs.

use axum::http::StatusCode;
use rbee_artifact::Error;
use rbee_gguf::{GgufError, InspectReport, ReadOptions, RemoteOptions, find_gpus, inspect_remote};
use rbee_model_provisioner::{asks_for_fit, choose_fit_with};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::request::{Inspect, check_local_access};
use crate::state::HiveState;

/// Headers larger than this are refused by the daemon: the largest real ones (262k-token
/// vocabularies) are about 16 MiB, and every request may hold one in memory.
const MAX_HEADER_BYTES: u64 = 32 << 20;

/// Reads the headers of `inspect.reference` and judges them against this machine's GPUs; a
/// `:fit` reference first becomes the largest quantization that fits them (the report's
/// `reference`, with `notes` on the candidates).
pub(crate) async fn run(
    state: &HiveState,
    inspect: &Inspect,
    cancel: &CancellationToken,
) -> Result<InspectReport, ApiError> {
    check_local_access(&inspect.reference, &state.config().local_access())?;
    let vendor = state
        .provisioner()
        .vendors()
        .get(inspect.reference.scheme())?;
    let transfer = state.header_engine()?;
    let (gpus, no_gpu) = find_gpus(inspect.vram, &state.config().nvidia_smi).await;
    let (reference, notes) = if asks_for_fit(&inspect.reference) {
        if gpus.is_empty() {
            return Err(ApiError::invalid_request(format!(
                "{} needs GPUs to fit, and this hive has none: {}; send `vram` (GPU memory in bytes), or name a quantization",
                inspect.reference,
                no_gpu.as_deref().unwrap_or("none found")
            )));
        }
        let exclude = &inspect.resolve.exclude;
        // The candidates' headers are held to the same cap as the header inspected below.
        let header_options = RemoteOptions {
            read: ReadOptions {
                max_header_bytes: MAX_HEADER_BYTES,
                ..ReadOptions::default()
            },
            ..RemoteOptions::default()
        };
        let chosen = tokio::select! {
            r = choose_fit_with(vendor.as_ref(), &transfer, &inspect.reference, exclude, &inspect.estimate, &gpus, &header_options, cancel) => r?,
            () = cancel.cancelled() => return Err(Error::Cancelled.into()),
        };
        chosen
    } else {
        (inspect.reference.clone(), Vec::new())
    };
    let options = RemoteOptions {
        read: ReadOptions {
            max_header_bytes: MAX_HEADER_BYTES,
            ..if inspect.full {
                ReadOptions::full()
            } else {
                ReadOptions::default()
            }
        },
        resolve: inspect.resolve.clone(),
        ..RemoteOptions::default()
    };
    let inspection = tokio::select! {
        r = inspect_remote(vendor.as_ref(), &transfer, &reference, &options, cancel) => r,
        () = cancel.cancelled() => return Err(Error::Cancelled.into()),
    }
    .map_err(header_error)?;
    let fit = inspection
        .fit(&inspect.estimate, &gpus)
        .transpose()
        .map_err(header_error)?;
    let mut report = InspectReport::new(&inspection, inspect.full, fit, gpus, no_gpu);
    report.reference = Some(reference.to_string());
    report.notes = notes;
    Ok(report)
}

/// A header that cannot be read: the vendor's or engine's error keeps its code and status; a
/// file that is not what it claims is `422` with the reader's code (`not_gguf`, `truncated`,
/// `invalid_header`, …); settings the model cannot be estimated with are `400 estimate`.
pub(crate) fn header_error(e: GgufError) -> ApiError {
    let code = e.code();
    match e {
        GgufError::Remote(e) => e.into(),
        GgufError::Estimate { message } => ApiError::new(StatusCode::BAD_REQUEST, code, message),
        other @ GgufError::Io { .. } => {
            tracing::warn!(error = %other, "reading a model header failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, other.to_string())
        }
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            format!("cannot read the model's header: {other}"),
        ),
    }
}
