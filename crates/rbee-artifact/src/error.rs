//! The error every vendor, the catalog and the provisioner speak.

use std::path::PathBuf;
use std::time::Duration;

use crate::reference::RefError;

/// A boxed cause kept in `#[source]`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong when resolving, fetching or cataloguing an artifact.
///
/// Messages are written for the person at the shell: what happened and what to do. Causes are
/// kept in [`std::error::Error::source`], not repeated in the message. [`Error::code`] gives a
/// stable machine-readable code (used by the daemon's JSON errors and `--json` output).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The reference did not parse.
    #[error(transparent)]
    InvalidReference(#[from] RefError),
    /// The request is well-formed but cannot be satisfied as asked (a quant that does not
    /// exist, an ambiguous asset, …). The message lists what would work.
    #[error("{0}")]
    InvalidRequest(String),
    /// The repository, revision, release or file does not exist (or is private).
    #[error("{message}")]
    NotFound {
        /// What is missing and what to check.
        message: String,
    },
    /// Authentication is needed, was refused, or access must be granted first (gated models).
    #[error("{message}")]
    Unauthorized {
        /// What was refused and what to do (never contains the token).
        message: String,
    },
    /// The vendor is rate-limiting us beyond what is worth waiting for.
    #[error("{message}")]
    RateLimited {
        /// When it resets and what helps (a token).
        message: String,
        /// How long the vendor asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// Downloaded or stored bytes do not match the expected digest.
    #[error(
        "{path}: the bytes do not match their published digest (expected {expected}, got {actual}); they were not kept"
    )]
    Integrity {
        /// The file, relative to its artifact.
        path: String,
        /// The digest the vendor published.
        expected: String,
        /// The digest of the bytes we have.
        actual: String,
    },
    /// A file has a different size than the vendor said.
    #[error("{path}: size mismatch (expected {expected} bytes, got {actual})")]
    SizeMismatch {
        /// The file, relative to its artifact.
        path: String,
        /// Bytes announced.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// Not enough free space for the download.
    #[error(
        "not enough disk space in {}: {needed} bytes needed, {available} bytes free; free some space or choose another cache directory (--cache-dir / RBEE_CACHE_DIR)",
        path.display()
    )]
    InsufficientSpace {
        /// Where the bytes would go.
        path: PathBuf,
        /// Bytes still to write.
        needed: u64,
        /// Bytes free there.
        available: u64,
    },
    /// A download would take the cache past its size budget, even after evicting every
    /// model that may be evicted.
    #[error("{message}")]
    OverBudget {
        /// What is needed, the budget, and what to do.
        message: String,
    },
    /// The network failed and retries did not help.
    #[error("{message}")]
    Network {
        /// What failed (URL without credentials, attempts made).
        message: String,
        /// The last underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A server answered something we cannot make sense of.
    #[error("{message}")]
    Protocol {
        /// What was unexpected.
        message: String,
    },
    /// Only local artifacts may be used, and this one is not local.
    #[error("{message}")]
    Offline {
        /// What is missing locally.
        message: String,
    },
    /// A file-system operation failed.
    #[error("{context}")]
    Io {
        /// What we were doing, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A catalog entry cannot be read.
    #[error("catalog entry `{id}` is damaged: {reason}; remove it with `rbee model rm {id}`")]
    Damaged {
        /// The entry id.
        id: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// The entry is in use (being downloaded) and cannot be changed now.
    #[error("`{id}` is busy: {reason}")]
    Busy {
        /// The entry id.
        id: String,
        /// What holds it.
        reason: String,
    },
    /// The operation was cancelled; partial files are kept for a later resume.
    #[error("cancelled; partial files were kept, run the same command again to resume")]
    Cancelled,
    /// The vendor or operation is not supported.
    #[error("{0}")]
    Unsupported(String),
    /// A bug: a task panicked or was dropped before it answered. Nothing it left half-done
    /// is marked ready.
    #[error(
        "internal error while {doing}: {cause_kind}; this is a bug in rbee, please report it (partial files were kept)"
    )]
    Internal {
        /// What rbee was doing.
        doing: String,
        /// How the task ended (`a task panicked`, `a task was cancelled`).
        cause_kind: &'static str,
        /// The task's failure.
        #[source]
        source: BoxError,
    },
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with the operation and path that failed.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A background task (`spawn` or `spawn_blocking`) that did not answer: it panicked or was
    /// cancelled. A bug, never the user's input or the network.
    pub fn task_failed(doing: impl Into<String>, source: tokio::task::JoinError) -> Self {
        Error::Internal {
            doing: doing.into(),
            cause_kind: if source.is_panic() {
                "a task panicked"
            } else {
                "a task was cancelled"
            },
            source: Box::new(source),
        }
    }

    /// A stable, machine-readable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidReference(_) => "invalid_reference",
            Error::InvalidRequest(_) => "invalid_request",
            Error::NotFound { .. } => "not_found",
            Error::Unauthorized { .. } => "unauthorized",
            Error::RateLimited { .. } => "rate_limited",
            Error::Integrity { .. } => "integrity",
            Error::SizeMismatch { .. } => "size_mismatch",
            Error::InsufficientSpace { .. } => "insufficient_space",
            Error::OverBudget { .. } => "over_budget",
            Error::Network { .. } => "network",
            Error::Protocol { .. } => "protocol",
            Error::Offline { .. } => "offline",
            Error::Io { .. } => "io",
            Error::Damaged { .. } => "damaged",
            Error::Busy { .. } => "busy",
            Error::Cancelled => "cancelled",
            Error::Unsupported(_) => "unsupported",
            Error::Internal { .. } => "internal",
        }
    }

    /// Whether the user's input (rather than the world) is at fault; the CLI exits 2 for these.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::InvalidReference(_))
    }

    /// Whether this is a cancellation rather than a failure.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// An equivalent error for a second caller of a shared operation (errors are not `Clone`
    /// because their causes are not): same variant and message; an I/O cause keeps its kind and
    /// text, other causes are folded into the message.
    pub fn duplicate(&self) -> Error {
        match self {
            Error::InvalidReference(e) => Error::InvalidReference(e.clone()),
            Error::InvalidRequest(m) => Error::InvalidRequest(m.clone()),
            Error::NotFound { message } => Error::NotFound {
                message: message.clone(),
            },
            Error::OverBudget { message } => Error::OverBudget {
                message: message.clone(),
            },
            Error::Unauthorized { message } => Error::Unauthorized {
                message: message.clone(),
            },
            Error::RateLimited {
                message,
                retry_after,
            } => Error::RateLimited {
                message: message.clone(),
                retry_after: *retry_after,
            },
            Error::Integrity {
                path,
                expected,
                actual,
            } => Error::Integrity {
                path: path.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            },
            Error::SizeMismatch {
                path,
                expected,
                actual,
            } => Error::SizeMismatch {
                path: path.clone(),
                expected: *expected,
                actual: *actual,
            },
            Error::InsufficientSpace {
                path,
                needed,
                available,
            } => Error::InsufficientSpace {
                path: path.clone(),
                needed: *needed,
                available: *available,
            },
            Error::Network { .. } => Error::Network {
                message: self.report(),
                source: None,
            },
            Error::Protocol { message } => Error::Protocol {
                message: message.clone(),
            },
            Error::Offline { message } => Error::Offline {
                message: message.clone(),
            },
            Error::Io { context, source } => Error::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Damaged { id, reason } => Error::Damaged {
                id: id.clone(),
                reason: reason.clone(),
            },
            Error::Busy { id, reason } => Error::Busy {
                id: id.clone(),
                reason: reason.clone(),
            },
            Error::Cancelled => Error::Cancelled,
            Error::Unsupported(m) => Error::Unsupported(m.clone()),
            Error::Internal {
                doing,
                cause_kind,
                source,
            } => Error::Internal {
                doing: doing.clone(),
                cause_kind,
                source: source.to_string().into(),
            },
        }
    }

    /// The message followed by each cause, one per line — for people, never containing secrets
    /// as long as the causes do not.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !out.contains(&text) {
                out.push_str("\n  caused by: ");
                out.push_str(&text);
            }
            source = cause.source();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_includes_causes_once() {
        let e = Error::io(
            "reading /x",
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        );
        assert_eq!(e.report(), "reading /x\n  caused by: no such file");
        assert_eq!(e.code(), "io");
        assert!(Error::Cancelled.is_cancelled());
    }

    #[tokio::test]
    async fn a_panicked_task_is_an_internal_error_with_its_cause() {
        let join = tokio::spawn(async { panic!("boom") }).await.unwrap_err();
        let e = Error::task_failed("hashing m.gguf", join);
        assert_eq!(e.code(), "internal");
        assert!(e.to_string().contains("hashing m.gguf"), "{e}");
        assert!(e.to_string().contains("panicked"), "{e}");
        let source = std::error::Error::source(&e).expect("the cause is kept");
        assert!(source.downcast_ref::<tokio::task::JoinError>().is_some());
    }
}
