//! Daemon settings, and the rule that keeps an unprotected daemon on loopback.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rbee_artifact::Secret;
use rbee_vendor_local::LocalAccess;

/// The address rbee-hive listens on unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8600";

/// Settings of one daemon. Build with [`HiveConfig::default`] and change what you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HiveConfig {
    /// Bearer token required on every route but `/health`. Required for a non-loopback bind
    /// (see [`check_bind`]); optional on loopback.
    pub token: Option<Secret>,
    /// This hive's name, accepted in a job's `hive_id` (default `localhost`).
    pub hive_id: String,
    /// Time limit of every request except the event streams (default 30 s).
    pub request_timeout: Duration,
    /// Largest request body accepted (default 64 KiB).
    pub body_limit: usize,
    /// Download jobs accepted and not finished (queued, running or paused) at one time; more are
    /// refused with `queue_full` (default 1024). How many run at once is the provisioner's
    /// `max_concurrent_downloads`.
    pub max_jobs: usize,
    /// Finished jobs kept so their state can still be read; the oldest are forgotten first
    /// (default 1000).
    pub max_finished_jobs: usize,
    /// Interval of keep-alive comments on event streams (default 15 s).
    pub keep_alive: Duration,
    /// How long shutdown waits for cancelled downloads to record their state (default 5 s).
    pub shutdown_grace: Duration,
    /// Folders whose files `file:` downloads may read (default none). The daemon reads with its
    /// own rights on behalf of whoever calls it, so local files are refused unless their real
    /// path (links resolved) lies inside one of these: a request is checked when it arrives,
    /// and the provisioner's `file:` vendor must hold every file it reads to the same folders
    /// ([`crate::hive_vendors`] builds it so).
    pub local_roots: Vec<std::path::PathBuf>,
    /// Connections held open at once (default 512). At the cap, a new connection takes the
    /// place of the oldest one that is not serving an authorized request (silent, idle between
    /// requests, or unauthenticated); when every one is, the new one is answered `503` and
    /// closed. See [`connection_cap`] for fitting it under the open-files limit.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, and may sit idle between
    /// requests, before it is closed (default 10 s).
    pub header_timeout: Duration,
}

impl Default for HiveConfig {
    fn default() -> Self {
        Self {
            token: None,
            hive_id: "localhost".into(),
            request_timeout: Duration::from_secs(30),
            body_limit: 64 * 1024,
            max_jobs: 1024,
            max_finished_jobs: 1000,
            keep_alive: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(5),
            local_roots: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(10),
        }
    }
}

impl HiveConfig {
    /// What `file:` downloads may read: the real paths inside [`HiveConfig::local_roots`].
    pub fn local_access(&self) -> LocalAccess {
        LocalAccess::within(self.local_roots.iter().cloned())
    }
}

/// Connections held open at once unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The connection cap that fits under an open-files limit: `wanted`, lowered when fewer than
/// `wanted + reserve` files may be open, so that clients alone can never use the descriptors a
/// running download needs for its sockets, its files and the catalog's metadata. Never below
/// one.
///
/// ```
/// use rbee_hive::connection_cap;
///
/// assert_eq!(connection_cap(512, Some(1_048_576), 200), 512);
/// assert_eq!(connection_cap(512, Some(600), 200), 400);
/// assert_eq!(connection_cap(512, Some(100), 200), 1);
/// ```
pub fn connection_cap(wanted: usize, open_files_limit: Option<u64>, reserve: usize) -> usize {
    let Some(limit) = open_files_limit else {
        return wanted;
    };
    let available = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserve);
    wanted.min(available).max(1)
}

/// Why the daemon refuses to listen where it was asked to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// A non-loopback address without a token would let anyone on the network download into,
    /// and delete from, this machine's catalog.
    #[error(
        "refusing to listen on {addr} without a token: anyone who can reach it could download and delete models on this machine; set a bearer token with --token or RBEE_HIVE_TOKEN, or bind a loopback address (--bind 127.0.0.1)"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
}

/// Accepts `addr` when it is a loopback address or a token is set.
///
/// ```
/// use rbee_artifact::Secret;
/// use rbee_hive::check_bind;
///
/// assert!(check_bind(&"127.0.0.1:8600".parse().unwrap(), None).is_ok());
/// assert!(check_bind(&"0.0.0.0:8600".parse().unwrap(), None).is_err());
/// let token = Secret::new("s3cret");
/// assert!(check_bind(&"0.0.0.0:8600".parse().unwrap(), token.as_ref()).is_ok());
/// ```
pub fn check_bind(addr: &SocketAddr, token: Option<&Secret>) -> Result<(), BindError> {
    if addr.ip().is_loopback() || token.is_some() {
        Ok(())
    } else {
        Err(BindError::TokenRequired { addr: *addr })
    }
}

/// File descriptors kept free for the downloads: each running one holds its connections to the
/// hub, its files and the catalog's metadata; the process needs some of its own (catalog
/// lease, logs, the listener).
pub fn descriptors_for_downloads(downloads: usize, connections_per_download: usize) -> usize {
    64 + downloads.saturating_mul(connections_per_download.saturating_add(16))
}

/// Raises the soft open-files limit to the hard one (the soft one is often 1024, far below
/// what the system allows), and returns the soft limit in force, if it can be read.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    // `None` is "unlimited", which `Option`'s order would put below any number.
    let below_hard = match (limit.current, limit.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below_hard {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "could not raise the open-files limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The address to listen on: an IP, `localhost`, or an `IP:PORT` (whose port wins over
/// `port`); the error says how to write one.
pub fn bind_addr(bind: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(addr) = bind.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if bind.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let ip: IpAddr = bind.trim_matches(['[', ']']).parse().map_err(|_| {
        format!(
            "--bind {bind} is not an address; write e.g. 127.0.0.1, 0.0.0.0, ::1 or 127.0.0.1:8600"
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_needs_no_token_but_other_addresses_do() {
        for ok in ["127.0.0.1:1", "[::1]:1", "127.1.2.3:8600"] {
            assert!(check_bind(&ok.parse().unwrap(), None).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:1", "[::]:1", "192.168.1.5:8600"] {
            let err = check_bind(&bad.parse().unwrap(), None).unwrap_err();
            assert!(err.to_string().contains("RBEE_HIVE_TOKEN"), "{err}");
        }
        assert_eq!(DEFAULT_ADDR.parse::<SocketAddr>().unwrap().port(), 8600);
    }

    #[test]
    fn bind_addresses() {
        assert_eq!(
            bind_addr("127.0.0.1", 1).unwrap().to_string(),
            "127.0.0.1:1"
        );
        assert_eq!(
            bind_addr("localhost", 2).unwrap().to_string(),
            "127.0.0.1:2"
        );
        assert_eq!(bind_addr("::1", 3).unwrap().to_string(), "[::1]:3");
        assert_eq!(bind_addr("0.0.0.0:9", 3).unwrap().to_string(), "0.0.0.0:9");
        assert!(bind_addr("nowhere", 1).is_err());
    }
}
