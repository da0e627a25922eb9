//! The S3 backend (Garage, MinIO, AWS, R2 …), on the `object_store` crate: signing, retries
//! and multipart uploads are its, not ours.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
    WriteMultipart,
};
use rbee_artifact::{Sha256Digest, Sha256Hasher};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::StoreConfig;
use crate::error::{FailureKind, StoreError, diagnose};
use crate::growing::{BlobBytes, GrowingFile};
use crate::store::SharedStore;

/// Files up to this size go up in one `PUT`; larger ones in parts of this size.
const PART_SIZE: usize = 16 * 1024 * 1024;
/// Parts in flight at once during an upload.
const PARTS_IN_FLIGHT: usize = 4;

/// A shared store on an S3-compatible endpoint.
#[derive(Debug, Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: StoreConfig,
    s3: AmazonS3,
    describe: String,
}

impl S3Store {
    /// A client for the store `config` names. Nothing is sent yet (see
    /// [`honours_create_only`](crate::honours_create_only) for a first contact that checks
    /// the bucket and the key).
    pub fn new(config: StoreConfig) -> Result<S3Store, StoreError> {
        let describe = config.describe();
        let client = ClientOptions::new()
            .with_allow_http(config.allow_http)
            .with_timeout(config.request_timeout)
            .with_connect_timeout(Duration::from_secs(5));
        let retry = RetryConfig {
            max_retries: config.max_retries,
            retry_timeout: config.request_timeout.saturating_mul(2),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(config.url.bucket())
            .with_region(&config.region)
            .with_access_key_id(config.access_key_id.expose())
            .with_secret_access_key(config.secret_access_key.expose())
            // The payload is not hashed for the signature: that was a second full sha256 pass
            // over every published blob. Blobs are named by their digest and verified by every
            // reader, so a payload damaged on the way is caught where it matters.
            .with_unsigned_payload(true)
            .with_client_options(client)
            .with_retry(retry);
        if let Some(endpoint) = &config.endpoint {
            // Path-style requests (`endpoint/bucket/key`): what self-hosted stores serve.
            builder = builder
                .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                .with_virtual_hosted_style_request(false);
        }
        let s3 = builder.build().map_err(|e| StoreError::Config {
            store: describe.clone(),
            message: config.redact(&e.to_string()),
        })?;
        Ok(S3Store {
            inner: Arc::new(Inner {
                config,
                s3,
                describe,
            }),
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(self.inner.config.url.key(key))
    }

    /// Uploads `len` bytes from `source` as `key` (one `PUT` when small, else parts with
    /// several in flight), hashing them as they are read; completes the object only when
    /// they hash to `sha256`, else abandons it. `what` names the source in messages.
    async fn upload(
        &self,
        key: &str,
        what: &str,
        len: u64,
        source: &mut dyn BlobBytes,
        sha256: &Sha256Digest,
        cancel: &CancellationToken,
    ) -> Result<u64, StoreError> {
        let local_error = |e: std::io::Error| StoreError::Corrupt {
            store: self.inner.describe.clone(),
            what: what.to_string(),
            reason: format!("it cannot be read ({e})"),
        };
        let wrong_bytes = |actual: Sha256Digest| StoreError::Corrupt {
            store: self.inner.describe.clone(),
            what: what.to_string(),
            reason: format!("it hashes to {actual}, not {sha256}; it was not published"),
        };
        let mut hasher = Sha256Hasher::new();
        let mut buffer = vec![0u8; PART_SIZE];
        if len <= PART_SIZE as u64 {
            let n = source.fill(&mut buffer).await.map_err(local_error)?;
            hasher.update(&buffer[..n]);
            let actual = hasher.finalize();
            if actual != *sha256 {
                return Err(wrong_bytes(actual));
            }
            buffer.truncate(n);
            self.put(key, Bytes::from(buffer), false).await?;
            return Ok(n as u64);
        }
        let upload = self
            .inner
            .s3
            .put_multipart(&self.path(key))
            .await
            .map_err(|e| self.failed(format!("starting the upload of {key}"), &e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut sent = 0u64;
        let outcome: Result<(), StoreError> = async {
            loop {
                if cancel.is_cancelled() {
                    return Err(StoreError::Failed {
                        store: self.inner.describe.clone(),
                        operation: format!("uploading {key}"),
                        cause: "cancelled".into(),
                        hint: "nothing was published",
                        kind: FailureKind::Other,
                    });
                }
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.failed(format!("uploading {key}"), &e))?;
                let n = source.fill(&mut buffer).await.map_err(local_error)?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buffer[..n]);
                writer.write(&buffer[..n]);
                sent += n as u64;
            }
        }
        .await;
        let outcome = outcome.and_then(|()| {
            let actual = hasher.finalize();
            if actual == *sha256 && sent == len {
                Ok(())
            } else {
                Err(wrong_bytes(actual))
            }
        });
        match outcome {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|e| self.failed(format!("finishing the upload of {key}"), &e))?;
                Ok(sent)
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %self.inner.config.redact(&abort.to_string()), key, "could not abandon an upload; the store keeps its parts until it cleans up");
                }
                Err(e)
            }
        }
    }

    fn failed(&self, operation: String, e: &object_store::Error) -> StoreError {
        let cause = self.inner.config.redact(&error_chain(e));
        let (kind, hint) = classify(e, &cause);
        StoreError::Failed {
            store: self.inner.describe.clone(),
            operation,
            cause,
            hint,
            kind,
        }
    }
}

/// The error and its causes on one line (object_store puts the HTTP status in a source).
fn error_chain(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

fn classify(e: &object_store::Error, cause: &str) -> (FailureKind, &'static str) {
    let status = match e {
        object_store::Error::PermissionDenied { .. } => Some(403),
        object_store::Error::Unauthenticated { .. } => Some(401),
        // The S3 error code in the cause tells a missing bucket from a missing object.
        object_store::Error::NotFound { .. } => Some(404),
        _ => None,
    };
    diagnose(status, cause)
}

#[async_trait]
impl SharedStore for S3Store {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    async fn get(&self, key: &str, limit: u64) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key);
        let mut stream = match self.inner.s3.get(&path).await {
            Ok(got) => got.into_stream(),
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed(format!("reading {key}"), &e)),
        };
        // Counted as it arrives, not taken from the announced size, which the store may get
        // wrong.
        let mut bytes = bytes::BytesMut::new();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| self.failed(format!("reading {key}"), &e))?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(StoreError::Corrupt {
                    store: self.inner.describe.clone(),
                    what: key.to_string(),
                    reason: format!(
                        "it is larger than {}, more than such an object can be; remove it from the bucket",
                        rbee_artifact::human_bytes(limit)
                    ),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes.freeze()))
    }

    async fn put(&self, key: &str, bytes: Bytes, create_only: bool) -> Result<bool, StoreError> {
        let options = PutOptions {
            mode: if create_only {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            ..PutOptions::default()
        };
        match self
            .inner
            .s3
            .put_opts(&self.path(key), PutPayload::from_bytes(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) if create_only => Ok(false),
            Err(e) => Err(self.failed(format!("writing {key}"), &e)),
        }
    }

    async fn put_file(
        &self,
        key: &str,
        file: &Path,
        sha256: &Sha256Digest,
        cancel: &CancellationToken,
    ) -> Result<u64, StoreError> {
        let what = format!("the local copy {}", file.display());
        let local_error = |e: std::io::Error| StoreError::Corrupt {
            store: self.inner.describe.clone(),
            what: what.clone(),
            reason: format!("it cannot be read ({e})"),
        };
        let mut reader = tokio::fs::File::open(file).await.map_err(local_error)?;
        let len = reader.metadata().await.map_err(local_error)?.len();
        self.upload(key, &what, len, &mut reader, sha256, cancel)
            .await
    }

    async fn put_growing(
        &self,
        key: &str,
        dest: &Path,
        size: u64,
        sha256: &Sha256Digest,
        cancel: &CancellationToken,
        download_ended: &CancellationToken,
    ) -> Result<u64, StoreError> {
        let what = format!("the download to {}", dest.display());
        let mut source = GrowingFile::new(dest, size, cancel.clone(), download_ended.clone());
        self.upload(key, &what, size, &mut source, sha256, cancel)
            .await
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.inner.s3.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed(format!("looking up {key}"), &e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.s3.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed(format!("removing {key}"), &e)),
        }
    }

    async fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let prefix = self.path(dir);
        let base = self.inner.config.url.prefix();
        let metas: Vec<_> = self
            .inner
            .s3
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.failed(format!("listing {dir}"), &e))?;
        Ok(metas
            .into_iter()
            .map(|m| {
                let key = m.location.to_string();
                match base {
                    "" => key,
                    base => key
                        .strip_prefix(base)
                        .map(|k| k.trim_start_matches('/').to_string())
                        .unwrap_or(key),
                }
            })
            .collect())
    }

    async fn read_url(&self, key: &str, valid_for: Duration) -> Result<Url, StoreError> {
        self.inner
            .s3
            .signed_url(http::Method::GET, &self.path(key), valid_for)
            .await
            .map_err(|e| self.failed(format!("signing a read of {key}"), &e))
    }
}
