//! [`GgufError`]: what can be wrong with a header, or with getting to it.

/// Why a GGUF or safetensors header could not be read.
///
/// Messages say where (byte offset, tensor or key name) and what was expected, for a person
/// deciding whether the file is damaged, truncated or simply not what they thought.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file does not start with the GGUF magic.
    #[error("not a GGUF file: it starts with {found:?}, not \"GGUF\"")]
    NotGguf {
        /// The first bytes, escaped.
        found: String,
    },
    /// A GGUF version this reader does not handle.
    #[error(
        "GGUF version {version} is not supported (versions 2 and 3 are); convert the model again with a current llama.cpp"
    )]
    UnsupportedVersion {
        /// The version in the file.
        version: u32,
    },
    /// The header needs bytes past the end of the file.
    #[error(
        "the header is cut short: {what} at byte {offset} needs {needed} bytes, but the file has {file_len}; the file is truncated or damaged (download it again)"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it starts.
        offset: u64,
        /// Bytes it needs.
        needed: u64,
        /// Bytes in the file.
        file_len: u64,
    },
    /// A value in the header breaks the format's rules.
    #[error("invalid header at byte {offset}: {message}")]
    Invalid {
        /// Where the bad value is.
        offset: u64,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The header claims more than this reader is willing to read.
    #[error(
        "{what} claims {size} bytes, more than the limit of {limit} bytes; real headers are a few MiB, so the file is damaged or hostile"
    )]
    TooLarge {
        /// What is too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The estimate cannot be made as asked (an unknown tensor type, a KV cache type the
    /// model's head sizes do not allow, …).
    #[error("{message}")]
    Estimate {
        /// What is wrong and what to do.
        message: String,
    },
    /// A safetensors header or a `config.json` is malformed.
    #[error("{message}")]
    Safetensors {
        /// What is wrong, with the file name.
        message: String,
    },
    /// Reading a local file failed.
    #[error("{context}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Resolving or reading a remote file failed (network, authorization, not found, …).
    #[error(transparent)]
    Remote(#[from] rbee_artifact::Error),
}

impl GgufError {
    pub(crate) fn invalid(offset: u64, message: impl Into<String>) -> Self {
        GgufError::Invalid {
            offset,
            message: message.into(),
        }
    }

    /// A stable machine-readable code, as [`rbee_artifact::Error::code`] gives.
    pub fn code(&self) -> &'static str {
        match self {
            GgufError::NotGguf { .. } => "not_gguf",
            GgufError::UnsupportedVersion { .. } => "unsupported_version",
            GgufError::Truncated { .. } => "truncated",
            GgufError::Invalid { .. } | GgufError::TooLarge { .. } => "invalid_header",
            GgufError::Safetensors { .. } => "invalid_safetensors",
            GgufError::Estimate { .. } => "estimate",
            GgufError::Io { .. } => "io",
            GgufError::Remote(e) => e.code(),
        }
    }

    /// Whether this is a cancellation of a remote read.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, GgufError::Remote(e) if e.is_cancelled())
    }
}

impl From<rbee_transfer::TransferError> for GgufError {
    fn from(e: rbee_transfer::TransferError) -> Self {
        GgufError::Remote(e.into())
    }
}
