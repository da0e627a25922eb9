//! Request bodies, parsed as JSON (the routes read them, with a size limit), then validated into
//! typed operations.

use axum::http::StatusCode;
use rbee_artifact::{ArtifactRef, CatalogKey, Error, ResolveOptions};
use rbee_gguf::{EstimateOptions, kv_cache_type};
use rbee_model_provisioner::ProvisionOptions;
use rbee_vendor_local::{LocalAccess, LocalRef};
use serde::de::DeserializeOwned;

use crate::api::{InspectRequest, JobRequest, ModelDownloadRequest, OperationName};
use crate::error::ApiError;

/// A JSON request body: `Content-Type: application/json`, at most the configured size.
///
/// Requiring the JSON content type is also what keeps web pages away: a browser may send a
/// cross-site form or `text/plain` POST to a loopback daemon without asking, but not a JSON one.
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) serde_json::Value);

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
    /// Read a model's headers without downloading it.
    Inspect(Box<Inspect>),
}

impl Operation {
    /// The operation's name in requests and job states.
    pub(crate) fn name(&self) -> OperationName {
        match self {
            Operation::Download(_) => OperationName::ModelDownload,
            Operation::List => OperationName::ModelList,
            Operation::Get { .. } => OperationName::ModelGet,
            Operation::Delete { .. } => OperationName::ModelDelete,
            Operation::Verify { .. } => OperationName::ModelVerify,
            Operation::Inspect(_) => OperationName::ModelInspect,
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
            Operation::Inspect(i) => Some(i.reference.to_string()),
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

/// The download options, which only `model_download` takes.
const DOWNLOAD_OPTIONS: [&str; 4] = ["include", "exclude", "offline", "refresh"];

/// Parses `POST /v1/jobs`.
///
/// A few questions are answered before [`JobRequest`] reads the body, so their errors say
/// more than serde's would: a missing or unknown `operation`, a missing `model`, and download
/// options sent with another operation. Fields that earlier daemons ignored with their default
/// value (download options elsewhere, `model` with `model_list`) are still ignored.
pub(crate) fn job_operation(mut body: JsonBody, hive_id: &str) -> Result<Operation, ApiError> {
    let operation = match body.0.get("operation") {
        Some(serde_json::Value::String(op)) => op.clone(),
        Some(_) => return Err(ApiError::invalid_request("`operation` must be a string")),
        None => {
            return Err(ApiError::invalid_request(format!(
                "missing `operation`; one of: {}",
                OperationName::list()
            )));
        }
    };
    let Some(named) = OperationName::named(&operation) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_operation",
            format!(
                "unknown operation `{operation}`; one of: {}",
                OperationName::list()
            ),
        ));
    };
    if let Some(fields) = body.0.as_object_mut() {
        // model_inspect takes globs of its own; its struct refuses the other options.
        if !matches!(
            named,
            OperationName::ModelDownload | OperationName::ModelInspect
        ) {
            let mut has_download_options = false;
            for name in DOWNLOAD_OPTIONS {
                let Some(value) = fields.remove(name) else {
                    continue;
                };
                has_download_options |= if name.ends_with("clude") {
                    !JsonBody(value).parse::<Vec<String>>()?.is_empty()
                } else {
                    JsonBody(value).parse::<bool>()?
                };
            }
            if has_download_options {
                return Err(ApiError::invalid_request(format!(
                    "`include`, `exclude`, `offline` and `refresh` apply to model_download, not to {operation}"
                )));
            }
        }
        if named == OperationName::ModelList {
            if let Some(model) = fields.remove("model") {
                JsonBody(model).parse::<Option<String>>()?;
            }
        } else {
            let model = fields.get("model");
            let blank = match model {
                None | Some(serde_json::Value::Null) => true,
                Some(serde_json::Value::String(m)) => m.trim().is_empty(),
                Some(_) => false,
            };
            if blank {
                return Err(ApiError::invalid_request(format!(
                    "`{operation}` needs `model`: a catalog id or a reference such as hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M"
                )));
            }
        }
    }
    let request: JobRequest = body.parse()?;
    check_hive(request.hive_id(), hive_id)?;
    Ok(match request {
        JobRequest::ModelDownload {
            model,
            hive_id,
            include,
            exclude,
            offline,
            refresh,
        } => Operation::Download(download(ModelDownloadRequest {
            model_ref: model,
            hive_id,
            include,
            exclude,
            offline,
            refresh,
        })?),
        JobRequest::ModelList { .. } => Operation::List,
        JobRequest::ModelGet { model, .. } => Operation::Get { model },
        JobRequest::ModelDelete { model, .. } => Operation::Delete { model },
        JobRequest::ModelVerify { model, .. } => Operation::Verify { model },
        JobRequest::ModelInspect(request) => {
            Operation::Inspect(Box::new(inspect(request, hive_id)?))
        }
    })
}

/// Parses `POST /v1/models/download`.
pub(crate) fn model_download(body: JsonBody, hive_id: &str) -> Result<DownloadRequest, ApiError> {
    let request: ModelDownloadRequest = body.parse()?;
    check_hive(request.hive_id.as_deref(), hive_id)?;
    download(request)
}

pub(crate) fn check_hive(asked: Option<&str>, ours: &str) -> Result<(), ApiError> {
    match asked {
        Some(asked) if asked != ours => Err(ApiError::invalid_request(format!(
            "this is hive `{ours}`, not `{asked}`; send the job to that hive, or leave `hive_id` out"
        ))),
        _ => Ok(()),
    }
}

/// Validates a download, from either route (a `model_download` job is the same request).
fn download(fields: ModelDownloadRequest) -> Result<DownloadRequest, ApiError> {
    let reference = parse_reference(&fields.model_ref)?;
    if rbee_model_provisioner::asks_for_fit(&reference) {
        // A job's model (and catalog entry) is fixed when the job is accepted, before any
        // header could be read; the choice is the inspection's answer.
        return Err(ApiError::invalid_request(format!(
            "{reference}: rbee-hive downloads a named quantization; ask POST /v1/inspect with this reference for the one that fits this machine's GPUs (its `reference`), then download that (`rbee --hive URL model download` does both)"
        )));
    }
    check_globs(&fields.include, &fields.exclude)?;
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

/// Refuses a glob that does not parse, naming it.
pub(crate) fn check_globs(include: &[String], exclude: &[String]) -> Result<(), ApiError> {
    for glob in include.iter().chain(exclude) {
        globset::Glob::new(glob)
            .map_err(|e| ApiError::invalid_request(format!("`{glob}` is not a valid glob: {e}")))?;
    }
    Ok(())
}

/// Parses a reference sent to the daemon. A relative `file:` path is refused: it would be read
/// against the daemon's working folder, not the sender's.
pub(crate) fn parse_reference(text: &str) -> Result<ArtifactRef, ApiError> {
    let reference: ArtifactRef = text.trim().parse()?;
    if let Some(local) = reference.get::<LocalRef>()
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
    let Some(local) = reference.get::<LocalRef>() else {
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

/// A validated inspection request.
#[derive(Debug, Clone)]
pub(crate) struct Inspect {
    pub(crate) reference: ArtifactRef,
    pub(crate) resolve: ResolveOptions,
    pub(crate) full: bool,
    pub(crate) estimate: EstimateOptions,
    pub(crate) vram: Option<u64>,
}

/// Checks an inspection request: the reference, globs and estimate settings.
pub(crate) fn inspect(request: InspectRequest, hive_id: &str) -> Result<Inspect, ApiError> {
    check_hive(request.hive_id.as_deref(), hive_id)?;
    let reference = parse_reference(&request.model)?;
    check_globs(&request.include, &request.exclude)?;
    let kv_type = match &request.kv_type {
        Some(name) => {
            kv_cache_type(name).map_err(|e| ApiError::invalid_request(format!("`kv_type`: {e}")))?
        }
        None => EstimateOptions::default().kv_type,
    };
    if request.parallel == Some(0) {
        return Err(ApiError::invalid_request("`parallel` must be at least 1"));
    }
    if request.ctx == Some(0) {
        return Err(ApiError::invalid_request("`ctx` must be at least 1"));
    }
    if request.vram == Some(0) {
        return Err(ApiError::invalid_request(
            "`vram` is GPU memory in bytes and must be above 0, e.g. 25769803776 for 24 GiB",
        ));
    }
    let estimate = EstimateOptions {
        context: request.ctx,
        kv_type,
        gpu_layers: request.ngl,
        parallel: request.parallel.unwrap_or(1),
        flash_attention: request.flash_attn.unwrap_or(true),
        ..EstimateOptions::default()
    };
    Ok(Inspect {
        reference,
        resolve: ResolveOptions::with_globs(request.include, request.exclude),
        full: request.full,
        estimate,
        vram: request.vram,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(json: serde_json::Value) -> Result<Operation, ApiError> {
        job_operation(JsonBody(json), "localhost")
    }

    #[test]
    fn operations_parse_and_bad_ones_get_stable_codes() {
        rbee_model_provisioner::register_references();
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
    fn fields_left_at_their_default_are_still_ignored_where_they_do_not_apply() {
        rbee_model_provisioner::register_references();
        assert!(matches!(
            op(serde_json::json!({"operation": "model_list", "model": "x"})).unwrap(),
            Operation::List
        ));
        assert!(matches!(
            op(serde_json::json!({"operation": "model_get", "model": "x", "include": [], "offline": false})).unwrap(),
            Operation::Get { .. }
        ));
        let e = op(serde_json::json!({"operation": "model_get", "model": "x", "include": "*"}))
            .unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let e = op(serde_json::json!({"operation": "model_verify"})).unwrap_err();
        assert!(
            e.body().message.contains("needs `model`"),
            "{}",
            e.body().message
        );
    }

    #[test]
    fn models_are_named_by_id_or_reference() {
        rbee_model_provisioner::register_references();
        let by_id = model_key("hf--TheBloke--X-GGUF--Q4_K_M").unwrap();
        let by_ref = model_key("hf:TheBloke/X-GGUF:q4_k_m").unwrap();
        assert_eq!(by_id, by_ref);
        assert_eq!(model_key("../etc").unwrap_err().code(), "invalid_reference");
    }
}
