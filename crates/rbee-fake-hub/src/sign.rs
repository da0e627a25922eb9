//! Signed, expiring redirect targets (`?expires=<unix>&sig=<hex>`), as S3 and GitHub issue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Why a signed URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignError {
    /// `expires` is in the past.
    Expired,
    /// `sig` does not match, or `expires` is not a number.
    BadSignature,
}

/// Signs paths with a key chosen at start-up, so URLs from one run do not work on another.
#[derive(Debug)]
pub(crate) struct Signer {
    key: [u8; 32],
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Signer {
    pub(crate) fn new() -> Self {
        let mut h = Sha256::new();
        h.update(std::process::id().to_le_bytes());
        h.update(INSTANCE.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        h.update(nanos.to_le_bytes());
        Self {
            key: h.finalize().into(),
        }
    }

    fn sig(&self, path: &str, expires: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(path.as_bytes());
        h.update(b"\n");
        h.update(expires.to_string().as_bytes());
        hex::encode(&h.finalize()[..16])
    }

    /// The query string that makes `path` (as the CDN will see it, percent-decoded) valid for
    /// `ttl` from now. A zero `ttl` yields an already expired URL.
    pub(crate) fn query(&self, path: &str, ttl: Duration) -> String {
        let expires = (now_secs() + ttl.as_secs_f64()).floor() as u64;
        format!("expires={expires}&sig={}", self.sig(path, expires))
    }

    /// A bearer token for `subject` (e.g. a repo) valid until `expires` (Unix seconds):
    /// `<expires>.<signature>`; [`check_token`](Self::check_token) verifies it.
    pub(crate) fn token(&self, subject: &str, expires: u64) -> String {
        format!("{expires}.{}", self.sig(subject, expires))
    }

    /// Checks a token made by [`token`](Self::token) for `subject`.
    pub(crate) fn check_token(&self, subject: &str, token: &str) -> Result<(), SignError> {
        let (expires, sig) = token.split_once('.').ok_or(SignError::BadSignature)?;
        let expires: u64 = expires.parse().map_err(|_| SignError::BadSignature)?;
        if self.sig(subject, expires) != sig {
            Err(SignError::BadSignature)
        } else if now_secs() >= expires as f64 {
            Err(SignError::Expired)
        } else {
            Ok(())
        }
    }

    /// Checks a request's query. `Ok(false)`: the URL is not signed at all.
    pub(crate) fn check(&self, path: &str, query: Option<&str>) -> Result<bool, SignError> {
        let mut expires = None;
        let mut sig = None;
        for pair in query.unwrap_or_default().split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = Some(v),
                Some(("sig", v)) => sig = Some(v),
                _ => {}
            }
        }
        match (expires, sig) {
            (None, None) => Ok(false),
            (Some(expires), Some(sig)) => {
                let expires: u64 = expires.parse().map_err(|_| SignError::BadSignature)?;
                if self.sig(path, expires) != sig {
                    Err(SignError::BadSignature)
                } else if now_secs() >= expires as f64 {
                    Err(SignError::Expired)
                } else {
                    Ok(true)
                }
            }
            _ => Err(SignError::BadSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_expired_and_forged() {
        let s = Signer::new();
        let q = s.query("/files/a.bin", Duration::from_secs(60));
        assert_eq!(s.check("/files/a.bin", Some(&q)), Ok(true));
        assert_eq!(
            s.check("/files/b.bin", Some(&q)),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            Signer::new().check("/files/a.bin", Some(&q)),
            Err(SignError::BadSignature)
        );
        let q = s.query("/files/a.bin", Duration::ZERO);
        assert_eq!(s.check("/files/a.bin", Some(&q)), Err(SignError::Expired));
        assert_eq!(s.check("/files/a.bin", None), Ok(false));
        assert_eq!(
            s.check("/files/a.bin", Some("expires=1")),
            Err(SignError::BadSignature)
        );
    }

    #[test]
    fn tokens_are_bound_to_subject_and_expiry() {
        let s = Signer::new();
        let later = now_secs() as u64 + 60;
        let t = s.token("org/repo", later);
        assert_eq!(s.check_token("org/repo", &t), Ok(()));
        assert_eq!(s.check_token("org/other", &t), Err(SignError::BadSignature));
        let forged = t.replacen(&later.to_string(), &(later + 1000).to_string(), 1);
        assert_eq!(
            s.check_token("org/repo", &forged),
            Err(SignError::BadSignature)
        );
        let old = s.token("org/repo", 1);
        assert_eq!(s.check_token("org/repo", &old), Err(SignError::Expired));
        assert_eq!(
            s.check_token("org/repo", "garbage"),
            Err(SignError::BadSignature)
        );
    }
}
