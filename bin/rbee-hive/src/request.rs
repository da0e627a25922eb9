//! Request bodies: read with a size limit, parsed as JSON, then validated into typed operations.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use rbee_artifact_catalog::{ArtifactRef, CatalogKey, Error, ResolveOptions};
use rbee_model_provisioner::ProvisionOptions;
use rbee_vendor_local::LocalAccess;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::HiveState;

/// The operations `POST /v1/jobs` accepts.
pub(crate) const OPERATIONS: [&str; 5] = [
    "model_download",
    "model_list",
    "model_get",
    "model_delete",
    "model_verify",
];

/// A JSON request body: `Content-Type: application/json`, at most the configured size.
///
/// Requiring the JSON content type is also what keeps web pages away: a browser may send a
/// cross-site form or `text/plain` POST to a loopback daemon without asking, but not a JSON one.
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) serde_json::Value);

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

impl JsonBody {
    /// The body as `T`; wrong or missing fields are `invalid_request`.
    pub(crate) fn parse<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        serde_json::from_value(self.0)
            .map_err(|e| ApiError::invalid_request(format!("the request does not fit: {e}")))
    }
}

/// What a job does.
#[derive(Debug, Clone)]
pub(crate) enum Operation {
    /// Make a model ready in the catalog.
    Download(DownloadRequest),
    /// List the catalog.
    List,
    /// One catalog entry.
    Get {
        /// Id or reference, as given.
        model: String,
    },
    /// Remove an entry.
    Delete {
        /// Id or reference, as given.
        model: String,
    },
    /// Re-hash an entry's files.
    Verify {
        /// Id or reference, as given.
        model: String,
    },
}

impl Operation {
    /// The operation's name in requests and job states.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Operation::Download(_) => "model_download",
            Operation::List => "model_list",
            Operation::Get { .. } => "model_get",
            Operation::Delete { .. } => "model_delete",
            Operation::Verify { .. } => "model_verify",
        }
    }

    /// The model the job is about, when there is one.
    pub(crate) fn model(&self) -> Option<String> {
        match self {
            Operation::Download(d) => Some(d.reference.to_string()),
            Operation::List => None,
            Operation::Get { model }
            | Operation::Delete { model }
            | Operation::Verify { model } => Some(model.clone()),
        }
    }
}

/// A validated download request.
#[derive(Debug, Clone)]
pub(crate) struct DownloadRequest {
    pub(crate) reference: ArtifactRef,
    pub(crate) key: CatalogKey,
    pub(crate) options: ProvisionOptions,
}

/// The fields of `POST /v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFields {
    // Read (and checked) before the rest of the body, for a clearer error.
    #[serde(rename = "operation")]
    _operation: String,
    #[serde(default)]
    hive_id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    offline: bool,
    #[serde(default)]
    refresh: bool,
}

/// The fields of `POST /v1/models/download`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelDownloadFields {
    model_ref: String,
    #[serde(default)]
    hive_id: Option<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    offline: bool,
    #[serde(default)]
    refresh: bool,
}

/// Download options, accepted by both download routes. (Spelled out in each body rather than
/// flattened: serde cannot refuse unknown fields next to a flattened struct.)
#[derive(Debug, Default)]
struct DownloadFields {
    /// Only files matching these globs.
    include: Vec<String>,
    /// Leave out files matching these globs.
    exclude: Vec<String>,
    /// Use only what is already on this machine.
    offline: bool,
    /// Ask the vendor again even when a pinned model is ready.
    refresh: bool,
}

/// Parses `POST /v1/jobs`.
pub(crate) fn job_operation(body: JsonBody, hive_id: &str) -> Result<Operation, ApiError> {
    let operation = match body.0.get("operation") {
        Some(serde_json::Value::String(op)) => op.clone(),
        Some(_) => return Err(ApiError::invalid_request("`operation` must be a string")),
        None => {
            return Err(ApiError::invalid_request(format!(
                "missing `operation`; one of: {}",
                OPERATIONS.join(", ")
            )));
        }
    };
    if !OPERATIONS.contains(&operation.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_operation",
            format!(
                "unknown operation `{operation}`; one of: {}",
                OPERATIONS.join(", ")
            ),
        ));
    }
    let fields: JobFields = body.parse()?;
    check_hive(fields.hive_id.as_deref(), hive_id)?;
    let options = DownloadFields {
        include: fields.include,
        exclude: fields.exclude,
        offline: fields.offline,
        refresh: fields.refresh,
    };
    let needs_model = || {
        fields.model.clone().filter(|m| !m.trim().is_empty()).ok_or_else(|| {
            ApiError::invalid_request(format!(
                "`{operation}` needs `model`: a catalog id or a reference such as hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M"
            ))
        })
    };
    let has_download_options = !options.include.is_empty()
        || !options.exclude.is_empty()
        || options.offline
        || options.refresh;
    if operation != "model_download" && has_download_options {
        return Err(ApiError::invalid_request(format!(
            "`include`, `exclude`, `offline` and `refresh` apply to model_download, not to {operation}"
        )));
    }
    Ok(match operation.as_str() {
        "model_download" => Operation::Download(download(&needs_model()?, options)?),
        "model_list" => Operation::List,
        "model_get" => Operation::Get {
            model: needs_model()?,
        },
        "model_delete" => Operation::Delete {
            model: needs_model()?,
        },
        _ => Operation::Verify {
            model: needs_model()?,
        },
    })
}

/// Parses `POST /v1/models/download`.
pub(crate) fn model_download(body: JsonBody, hive_id: &str) -> Result<DownloadRequest, ApiError> {
    let fields: ModelDownloadFields = body.parse()?;
    check_hive(fields.hive_id.as_deref(), hive_id)?;
    let options = DownloadFields {
        include: fields.include,
        exclude: fields.exclude,
        offline: fields.offline,
        refresh: fields.refresh,
    };
    download(&fields.model_ref, options)
}

fn check_hive(asked: Option<&str>, ours: &str) -> Result<(), ApiError> {
    match asked {
        Some(asked) if asked != ours => Err(ApiError::invalid_request(format!(
            "this is hive `{ours}`, not `{asked}`; send the job to that hive, or leave `hive_id` out"
        ))),
        _ => Ok(()),
    }
}

fn download(model: &str, fields: DownloadFields) -> Result<DownloadRequest, ApiError> {
    let reference = parse_reference(model)?;
    for glob in fields.include.iter().chain(&fields.exclude) {
        globset::Glob::new(glob)
            .map_err(|e| ApiError::invalid_request(format!("`{glob}` is not a valid glob: {e}")))?;
    }
    let mut resolve = ResolveOptions::with_globs(fields.include, fields.exclude);
    resolve.offline = fields.offline;
    let mut options = ProvisionOptions::new(resolve);
    options.refresh = fields.refresh;
    Ok(DownloadRequest {
        key: options.key(&reference),
        reference,
        options,
    })
}

/// Parses a reference sent to the daemon. A relative `file:` path is refused: it would be read
/// against the daemon's working folder, not the sender's.
pub(crate) fn parse_reference(text: &str) -> Result<ArtifactRef, ApiError> {
    let reference: ArtifactRef = text.trim().parse()?;
    if let ArtifactRef::Local(local) = &reference
        && local.path.is_relative()
    {
        return Err(Error::InvalidRequest(format!(
            "`{text}`: a file: path sent to rbee-hive must be absolute (it is read on the daemon's machine), e.g. file:/data/models/custom.gguf"
        ))
        .into());
    }
    Ok(reference)
}

/// A `file:` download is refused at once unless its real path (links resolved) lies inside
/// the allowed folders. This is the early answer; the `file:` vendor holds every file it reads,
/// including links inside a folder, to the same folders. Other references pass.
pub(crate) fn check_local_access(
    reference: &ArtifactRef,
    access: &LocalAccess,
) -> Result<(), ApiError> {
    let ArtifactRef::Local(local) = reference else {
        return Ok(());
    };
    match access.check(&local.path) {
        Ok(_) => Ok(()),
        Err(Error::Unauthorized { .. }) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "local_files_not_allowed",
            format!(
                "rbee-hive reads local files only inside the folders it was started with (--allow-local DIR), links resolved; {} is not inside one",
                local.path.display()
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The catalog key for a model named by id or by reference.
pub(crate) fn model_key(model: &str) -> Result<CatalogKey, ApiError> {
    match CatalogKey::from_id(model) {
        Some(key) => Ok(key),
        None => Ok(CatalogKey::of(&parse_reference(model)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(json: serde_json::Value) -> Result<Operation, ApiError> {
        job_operation(JsonBody(json), "localhost")
    }

    #[test]
    fn operations_parse_and_bad_ones_get_stable_codes() {
        let o = op(serde_json::json!({"operation": "model_download", "hive_id": "localhost", "model": "hf:a/b:q8_0", "include": ["*.gguf"]})).unwrap();
        let Operation::Download(d) = o else { panic!() };
        assert_eq!(d.reference.to_string(), "hf:a/b:Q8_0");
        assert_eq!(d.options.resolve.include, vec!["*.gguf".to_string()]);
        assert!(matches!(
            op(serde_json::json!({"operation": "model_list"})).unwrap(),
            Operation::List
        ));
        let cases = [
            (
                serde_json::json!({"operation": "model_explode"}),
                "unknown_operation",
            ),
            (serde_json::json!({"model": "hf:a/b"}), "invalid_request"),
            (serde_json::json!({"operation": 5}), "invalid_request"),
            (
                serde_json::json!({"operation": "model_get"}),
                "invalid_request",
            ),
            (
                serde_json::json!({"operation": "model_list", "modle": "x"}),
                "invalid_request",
            ),
            (
                serde_json::json!({"operation": "model_download", "model": "hf:"}),
                "invalid_reference",
            ),
            (
                serde_json::json!({"operation": "model_download", "model": "file:rel/x.gguf"}),
                "invalid_request",
            ),
            (
                serde_json::json!({"operation": "model_download", "model": "hf:a/b", "include": ["a[b"]}),
                "invalid_request",
            ),
            (
                serde_json::json!({"operation": "model_download", "model": "hf:a/b", "hive_id": "other"}),
                "invalid_request",
            ),
            (
                serde_json::json!({"operation": "model_get", "model": "x", "refresh": true}),
                "invalid_request",
            ),
            (serde_json::json!([1, 2]), "invalid_request"),
        ];
        for (body, code) in cases {
            let e = op(body.clone()).unwrap_err();
            assert_eq!(e.code(), code, "{body}: {}", e.body().message);
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn models_are_named_by_id_or_reference() {
        let by_id = model_key("hf--TheBloke--X-GGUF--Q4_K_M").unwrap();
        let by_ref = model_key("hf:TheBloke/X-GGUF:q4_k_m").unwrap();
        assert_eq!(by_id, by_ref);
        assert_eq!(model_key("../etc").unwrap_err().code(), "invalid_reference");
    }
}
