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
