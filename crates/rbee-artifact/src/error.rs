//! The error every vendor, the catalog and the provisioner speak.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::digest::ContentDigest;
use crate::grammar::RefError;

/// A cause kept as an error's source. Shared rather than boxed so that an [`Error`] can be cloned
/// for every caller of one operation without losing its causes.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong when resolving, fetching or cataloguing an artifact.
///
/// Messages are written for the person at the shell: what happened and what to do. Causes are
/// kept in [`std::error::Error::source`], not repeated in the message. [`Error::code`] gives a
/// stable machine-readable code (used by the daemon's JSON errors and `--json` output).
///
/// Cloning is cheap and keeps every cause: several callers of one shared download each get the
/// same error.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The reference did not parse.
    InvalidReference(RefError),
    /// The request is well-formed but cannot be satisfied as asked (a quant that does not
    /// exist, an ambiguous asset, …). The message lists what would work.
    InvalidRequest(String),
    /// The repository, revision, release or file does not exist (or is private).
    NotFound {
        /// What is missing and what to check.
        message: String,
    },
    /// Authentication is needed, was refused, or access must be granted first (gated models).
    Unauthorized {
        /// What was refused and what to do (never contains the token).
        message: String,
    },
    /// The vendor is rate-limiting us beyond what is worth waiting for.
    RateLimited {
        /// When it resets and what helps (a token).
        message: String,
        /// How long the vendor asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// Downloaded or stored bytes do not match the expected digest.
    Integrity {
        /// The file, relative to its artifact.
        path: String,
        /// The digest the vendor published.
        expected: ContentDigest,
        /// The digest of the bytes we have.
        actual: ContentDigest,
    },
    /// A file has a different size than the vendor said.
    SizeMismatch {
        /// The file, relative to its artifact.
        path: String,
        /// Bytes announced.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// Not enough free space for the download.
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
    OverBudget {
        /// What is needed, the budget, and what to do.
        message: String,
    },
    /// The network failed and retries did not help.
    Network {
        /// What failed (URL without credentials, attempts made).
        message: String,
        /// The last underlying error.
        source: Option<Cause>,
    },
    /// A server answered something we cannot make sense of.
    Protocol {
        /// What was unexpected.
        message: String,
    },
    /// Only local artifacts may be used, and this one is not local.
    Offline {
        /// What is missing locally.
        message: String,
    },
    /// A file-system operation failed.
    Io {
        /// What we were doing, with the path.
        context: String,
        /// The OS error.
        source: Arc<std::io::Error>,
    },
    /// A catalog entry cannot be read.
    Damaged {
        /// The entry id.
        id: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// The entry is in use (being downloaded) and cannot be changed now.
    Busy {
        /// The entry id.
        id: String,
        /// What holds it.
        reason: String,
    },
    /// The operation was cancelled; partial files are kept for a later resume.
    Cancelled,
    /// The vendor or operation is not supported.
    Unsupported(String),
    /// A bug: a task panicked or was dropped before it answered. Nothing it left half-done
    /// is marked ready.
    Internal {
        /// What rbee was doing.
        doing: String,
        /// How the task ended (`a task panicked`, `a task was cancelled`).
        cause_kind: &'static str,
        /// The task's failure.
        source: Cause,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidReference(e) => e.fmt(f),
            Error::InvalidRequest(message)
            | Error::Unsupported(message)
            | Error::NotFound { message }
            | Error::Unauthorized { message }
            | Error::RateLimited { message, .. }
            | Error::OverBudget { message }
            | Error::Network { message, .. }
            | Error::Protocol { message }
            | Error::Offline { message } => f.write_str(message),
            Error::Integrity {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{path}: the bytes do not match their published digest (expected {expected}, got {actual}); they were not kept"
            ),
            Error::SizeMismatch {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{path}: size mismatch (expected {expected} bytes, got {actual})"
            ),
            Error::InsufficientSpace {
                path,
                needed,
                available,
            } => write!(
                f,
                "not enough disk space in {}: {needed} bytes needed, {available} bytes free; free some space or choose another cache directory (--cache-dir / RBEE_CACHE_DIR)",
                path.display()
            ),
            Error::Io { context, .. } => f.write_str(context),
            Error::Damaged { id, reason } => write!(
                f,
                "catalog entry `{id}` is damaged: {reason}; remove it with `rbee model rm {id}`"
            ),
            Error::Busy { id, reason } => write!(f, "`{id}` is busy: {reason}"),
            Error::Cancelled => f.write_str(
                "cancelled; partial files were kept, run the same command again to resume",
            ),
            Error::Internal {
                doing, cause_kind, ..
            } => write!(
                f,
                "internal error while {doing}: {cause_kind}; this is a bug in rbee, please report it (partial files were kept)"
            ),
        }
    }
}

/// The causes are the errors themselves, not the `Arc`s that share them, so callers can
/// downcast them (an OS error, a task's `JoinError`).
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidReference(e) => e.source(),
            Error::Network { source, .. } => source
                .as_deref()
                .map(|c| c as &(dyn std::error::Error + 'static)),
            Error::Io { source, .. } => Some(&**source),
            Error::Internal { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

impl From<RefError> for Error {
    fn from(e: RefError) -> Self {
        Error::InvalidReference(e)
    }
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with the operation and path that failed.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source: Arc::new(source),
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
            source: Arc::new(source),
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

    #[test]
    fn a_clone_keeps_the_variant_the_message_and_every_cause() {
        let refused = std::io::Error::from_raw_os_error(111);
        let io = Error::io("reading /x", refused);
        let copy = io.clone();
        assert_eq!((copy.code(), copy.to_string()), (io.code(), io.to_string()));
        let cause = std::error::Error::source(&copy)
            .and_then(|c| c.downcast_ref::<std::io::Error>())
            .expect("the OS error is kept");
        assert_eq!(cause.raw_os_error(), Some(111));

        let network = Error::Network {
            message: "fetching m.gguf failed".into(),
            source: Some(Arc::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))),
        };
        let copy = network.clone();
        assert_eq!(copy.to_string(), "fetching m.gguf failed");
        assert_eq!(copy.report(), network.report());
        let cause = std::error::Error::source(&copy)
            .and_then(|c| c.downcast_ref::<std::io::Error>())
            .expect("the network cause is kept, not folded into the message");
        assert_eq!(cause.kind(), std::io::ErrorKind::ConnectionRefused);
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
