//! What can go wrong with a shared store, said so that a person knows what to check.

/// A shared-store failure. Messages name the store (`s3://BUCKET/PREFIX at ENDPOINT`) and what
/// to check; they never hold a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `--shared-store` / `RBEE_SHARED_STORE` did not parse.
    #[error("invalid shared store `{url}`: {reason}; write it as {example}")]
    InvalidUrl {
        /// The text given (a user part replaced by `****`).
        url: String,
        /// What is wrong with it.
        reason: String,
        /// Valid spellings.
        example: &'static str,
    },
    /// The settings around the URL (endpoint, credentials) are unusable.
    #[error("shared store {store}: {message}")]
    Config {
        /// The store.
        store: String,
        /// What is wrong and what to set.
        message: String,
    },
    /// The store refused or failed an operation.
    #[error("shared store {store}: {operation} failed: {cause}; {hint}")]
    Failed {
        /// The store.
        store: String,
        /// What was attempted (`reading manifests/hf--a--b.json`).
        operation: String,
        /// The store's answer, with every credential removed.
        cause: String,
        /// What to check.
        hint: &'static str,
        /// Which kind of failure.
        kind: FailureKind,
    },
    /// An object is not in the store.
    #[error("shared store {store}: {what} is not in the store")]
    NotFound {
        /// The store.
        store: String,
        /// The object.
        what: String,
    },
    /// An object's bytes are not what its name or manifest promises.
    #[error("shared store {store}: {what} is corrupt: {reason}")]
    Corrupt {
        /// The store.
        store: String,
        /// The object.
        what: String,
        /// How it differs.
        reason: String,
    },
    /// A removal refused because a hive holds the artifact's lease.
    #[error(
        "shared store {store}: {id} is being fetched by {holder} (lease until {until}); try again when it is done"
    )]
    Leased {
        /// The store.
        store: String,
        /// The artifact.
        id: String,
        /// The hive holding the lease.
        holder: String,
        /// When the lease expires (RFC 3339).
        until: String,
    },
}

/// The kind of a [`StoreError::Failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// Credentials missing, wrong or without the right to do this.
    Access,
    /// The bucket does not exist.
    NoBucket,
    /// The store could not be reached, stalled, or answered 5xx.
    Unreachable,
    /// Anything else the store answered.
    Other,
}

/// What to check after a store failed, from the HTTP status it answered (if any) and the text
/// of the failure: a refused key (401/403), a missing bucket or object (404), a closed port, a
/// timeout and a server error each get their own advice. The store and its endpoint are named
/// by the message this goes into.
pub fn diagnose(status: Option<u16>, cause: &str) -> (FailureKind, &'static str) {
    const ACCESS: &str = "the store refused this key: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, that the key may read and write the bucket (Garage: `garage bucket allow --read --write --owner BUCKET --key KEY`), and that this machine's clock is right (requests are signed with the time)";
    const NO_BUCKET: &str =
        "create the bucket (Garage: `garage bucket create BUCKET`) or correct --shared-store";
    const NO_OBJECT: &str = "the object went away while it was read (removed by `rbee model rm --shared` or another hive); the download continues from the origin";
    const REFUSED: &str = "nothing answers at that address: start the store, or correct AWS_ENDPOINT_URL (Garage's S3 API: port 3900)";
    const TIMEOUT: &str = "the store did not answer in time: check that it is not stopped or overloaded, and that this hive reaches AWS_ENDPOINT_URL";
    const SERVER: &str =
        "the store answered with a server error: see the store's own log (Garage: its journal)";
    const UNREACHABLE: &str = "check that the store is running and that AWS_ENDPOINT_URL points at its S3 API (Garage: port 3900)";
    let has = |needle: &str| cause.to_ascii_lowercase().contains(needle);
    match status {
        _ if cause.contains("NoSuchBucket") => (FailureKind::NoBucket, NO_BUCKET),
        _ if cause.contains("InvalidAccessKeyId")
            || cause.contains("SignatureDoesNotMatch")
            || cause.contains("AccessDenied") =>
        {
            (FailureKind::Access, ACCESS)
        }
        Some(401 | 403) => (FailureKind::Access, ACCESS),
        Some(404) => (FailureKind::Other, NO_OBJECT),
        Some(500..=599) => (FailureKind::Unreachable, SERVER),
        _ if has("connection refused") => (FailureKind::Unreachable, REFUSED),
        _ if has("timed out") || has("timeout") || has("stalled") => {
            (FailureKind::Unreachable, TIMEOUT)
        }
        _ => (FailureKind::Unreachable, UNREACHABLE),
    }
}

impl StoreError {
    /// Whether the store itself is not usable right now (as opposed to one missing or corrupt
    /// object): provisioning then goes to the origin, with a warning.
    pub fn is_store_fault(&self) -> bool {
        matches!(self, StoreError::Failed { .. } | StoreError::Config { .. })
    }
}

impl From<StoreError> for rbee_artifact::Error {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::InvalidUrl { .. } | StoreError::Config { .. } => {
                rbee_artifact::Error::InvalidRequest(message)
            }
            StoreError::NotFound { .. } => rbee_artifact::Error::NotFound { message },
            StoreError::Failed {
                kind: FailureKind::Access,
                ..
            } => rbee_artifact::Error::Unauthorized { message },
            StoreError::Corrupt { .. } => rbee_artifact::Error::Protocol { message },
            StoreError::Leased {
                store,
                id,
                holder,
                until,
            } => rbee_artifact::Error::Busy {
                id,
                reason: format!(
                    "{holder} is fetching it into the shared store {store} (lease until {until}); try again when it is done"
                ),
            },
            StoreError::Failed { .. } => rbee_artifact::Error::Network {
                message,
                source: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_says_what_to_check() {
        let cases = [
            (
                Some(403),
                "Forbidden",
                FailureKind::Access,
                "AWS_SECRET_ACCESS_KEY",
            ),
            (Some(401), "", FailureKind::Access, "clock"),
            (
                None,
                "<Code>NoSuchBucket</Code>",
                FailureKind::NoBucket,
                "bucket create",
            ),
            (Some(404), "NoSuchKey", FailureKind::Other, "went away"),
            // A bucket whose name says "bucket" is still there when one of its objects is not.
            (
                Some(404),
                "<Code>NoSuchKey</Code><Resource>/rbee-bucket/blobs/ab</Resource>",
                FailureKind::Other,
                "went away",
            ),
            (
                Some(404),
                "<Code>NoSuchBucket</Code>",
                FailureKind::NoBucket,
                "bucket create",
            ),
            (
                None,
                "error sending request: tcp connect error: Connection refused (os error 111)",
                FailureKind::Unreachable,
                "nothing answers",
            ),
            (
                None,
                "operation timed out",
                FailureKind::Unreachable,
                "in time",
            ),
            (
                Some(503),
                "Service Unavailable",
                FailureKind::Unreachable,
                "server error",
            ),
        ];
        for (status, cause, kind, says) in cases {
            let (got, hint) = diagnose(status, cause);
            assert_eq!(got, kind, "{status:?} {cause}");
            assert!(hint.contains(says), "{status:?} {cause}: {hint}");
        }
        // A 403 and a 404 are not the same advice, and neither is a closed port.
        assert_ne!(diagnose(Some(403), "").1, diagnose(Some(404), "").1);
        assert_ne!(
            diagnose(Some(404), "").1,
            diagnose(None, "Connection refused").1
        );
    }
}
