//! How a failure is reported: its stable code, its exit status, and what the person at the
//! shell is told (what happened and what to do; the whole cause chain only with `-v`).

use rbee_artifact::{Error, RefError};

use crate::setup::{CliError, UsageError};
use crate::signals::signal_exit;

/// A failure, classified.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Stable code for programs (`not_found`, `network`, `invalid_reference`, …).
    pub(crate) code: String,
    /// The exit status.
    pub(crate) exit: u8,
    /// For people: the message, plus what to do.
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn of(e: &anyhow::Error, verbose: bool) -> Self {
        let typed = e.chain().find_map(|c| c.downcast_ref::<Error>());
        let remote = e.chain().find_map(|c| c.downcast_ref::<RemoteError>());
        let usage = e.chain().find_map(|c| c.downcast_ref::<UsageError>());
        let own = e.chain().find_map(|c| c.downcast_ref::<CliError>());
        let header = e
            .chain()
            .find_map(|c| c.downcast_ref::<rbee_gguf::GgufError>());
        let bad_reference = e.chain().any(|c| c.is::<RefError>());
        let cancelled = typed.is_some_and(Error::is_cancelled)
            || remote.is_some_and(|r| r.code == "cancelled")
            || header.is_some_and(rbee_gguf::GgufError::is_cancelled);
        let code = if let Some(u) = usage {
            u.code.to_string()
        } else if bad_reference {
            "invalid_reference".to_string()
        } else if let Some(t) = typed {
            t.code().to_string()
        } else if let Some(r) = remote {
            r.code.clone()
        } else if let Some(c) = own {
            c.code.to_string()
        } else if let Some(h) = header {
            h.code().to_string()
        } else {
            "internal".to_string()
        };
        let is_usage = usage.is_some()
            || bad_reference
            || typed.is_some_and(Error::is_usage)
            || remote.is_some_and(RemoteError::is_usage);
        let exit = if is_usage {
            2
        } else if cancelled {
            signal_exit()
        } else {
            1
        };
        let message = if verbose {
            // Everything: the message and each cause once.
            match typed {
                Some(t) if e.chain().count() == 1 => t.report(),
                _ => format!("{e:#}"),
            }
        } else {
            match typed {
                // A shared store's message already names it and what to check.
                Some(Error::Network { message, .. }) if !message.starts_with("shared store ") => {
                    network_advice(message, e)
                }
                Some(t) if e.chain().count() == 1 => t.to_string(),
                _ => format!("{e:#}"),
            }
        };
        Self {
            code,
            exit,
            message,
        }
    }
}

/// An error the daemon answered: its stable code and its message.
#[derive(Debug)]
pub(crate) struct RemoteError {
    /// The daemon's error code (`not_found`, `busy`, `invalid_reference`, …).
    pub(crate) code: String,
    /// What happened and what to do.
    pub(crate) message: String,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

impl RemoteError {
    /// Whether the request itself was wrong (exit status 2, as in embedded mode).
    pub(crate) fn is_usage(&self) -> bool {
        self.code == "invalid_reference"
    }
}

/// What to do when a server cannot be reached: the host, the short reason, and the ways out.
fn network_advice(message: &str, e: &anyhow::Error) -> String {
    let host = message
        .split_whitespace()
        .find_map(|word| reqwest::Url::parse(word.trim_end_matches(':')).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    let reason = e.chain().find_map(|c| {
        if c.is::<rbee_transfer::NameNotResolved>() {
            Some("the host name does not resolve")
        } else {
            c.downcast_ref::<std::io::Error>()
                .and_then(|io| match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => Some("the connection was refused"),
                    std::io::ErrorKind::TimedOut => Some("the connection timed out"),
                    _ => None,
                })
        }
    });
    let Some(host) = host else {
        return format!(
            "{message}\n  check the network or proxy, or use --offline for what is on disk"
        );
    };
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .and_then(|e| reqwest::Url::parse(&e).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    let mirror = if endpoint.as_deref() == Some(host.as_str()) {
        ", check HF_ENDPOINT (the HuggingFace endpoint in use)"
    } else if host.ends_with("huggingface.co") || host == "hf.co" {
        ", set HF_ENDPOINT for a mirror"
    } else {
        ""
    };
    format!(
        "cannot reach {host}{} — check the network or proxy{mirror}, or use --offline for what is on disk (-v shows the full error)",
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    )
}
