//! Tuning knobs of a [`Transfer`](crate::Transfer).

use std::time::Duration;

/// How a [`Transfer`](crate::Transfer) fetches: connections, chunking, retries, timeouts, rate.
///
/// `Default` gives values that suit both a laptop on Wi-Fi and a server next to a CDN; it reads
/// no environment and touches no files. Build one with `TransferConfig { connections: 4,
/// ..TransferConfig::default() }`.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// Parallel ranged connections per large file at the start (default 8).
    pub connections: usize,
    /// Upper bound when the engine adds connections because each one is slow but the total
    /// still grows (per-connection throttling, as CDNs do). Default 32 (800 MB/s at a 25 MB/s
    /// per-connection cap); set it equal to `connections` to turn growth off.
    pub max_connections: usize,
    /// Size of one ranged request (default 16 MiB). Near the end of a file ranges shrink so
    /// that every connection stays busy until the last byte.
    pub chunk_size: u64,
    /// Files smaller than this use one connection (default 32 MiB).
    pub parallel_threshold: u64,
    /// Large files of one artifact fetched at once by
    /// [`Transfer::fetch_all`](crate::Transfer::fetch_all) (default 4); small files (below
    /// `parallel_threshold`, one connection each) run up to `files_in_parallel × connections`
    /// at once.
    pub files_in_parallel: usize,
    /// Attempts per request before giving up (default 6). An attempt that moved bytes does not
    /// count against this: only failures without progress do.
    pub max_attempts: u32,
    /// No byte for this long on a connection: drop it and reconnect, keeping what arrived
    /// (default 30 s).
    pub stall_timeout: Duration,
    /// Time allowed to open a connection (default 15 s).
    pub connect_timeout: Duration,
    /// Time allowed for each read of a response (headers or body) before the request fails as
    /// transient (default 60 s).
    pub read_timeout: Duration,
    /// Time allowed between sending a request and receiving its response headers (default
    /// 30 s). A server that accepts connections but never answers is given one more try, so it
    /// holds a download for about twice this long, not for every attempt.
    pub response_timeout: Duration,
    /// Bytes per second across all transfers of this `Transfer`, `None` for no limit.
    pub rate_limit: Option<u64>,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Refuse to start when the file system has less free space than the bytes still to fetch
    /// (default true).
    pub check_disk_space: bool,
    /// First retry delay; each further retry doubles it, with jitter (default 250 ms).
    pub initial_backoff: Duration,
    /// Longest delay between two attempts, and the longest `Retry-After` honoured; a server
    /// asking for more ends the attempts (default 30 s).
    pub max_backoff: Duration,
    /// How often the resume state of a partial file is written at most (default 250 ms). It is
    /// also written when a range completes and when the transfer stops.
    pub state_interval: Duration,
    /// Use proxies from `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` (and lowercase forms), except
    /// for hosts in `NO_PROXY` and loopback addresses (default true).
    pub use_env_proxy: bool,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            connections: 8,
            max_connections: 32,
            chunk_size: 16 << 20,
            parallel_threshold: 32 << 20,
            files_in_parallel: 4,
            max_attempts: 6,
            stall_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            response_timeout: Duration::from_secs(30),
            rate_limit: None,
            user_agent: concat!("rbee/", env!("CARGO_PKG_VERSION")).to_string(),
            check_disk_space: true,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            state_interval: Duration::from_millis(250),
            use_env_proxy: true,
        }
    }
}

impl TransferConfig {
    /// Checks the values make sense together; the message names the knob.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("connections must be at least 1".into());
        }
        if self.max_connections < self.connections {
            return Err(format!(
                "max_connections ({}) must be at least connections ({})",
                self.max_connections, self.connections
            ));
        }
        if self.chunk_size < 64 * 1024 {
            return Err(format!(
                "chunk_size ({}) must be at least 64 KiB",
                self.chunk_size
            ));
        }
        if self.files_in_parallel == 0 {
            return Err("files_in_parallel must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if self.rate_limit == Some(0) {
            return Err("rate_limit must be more than 0 bytes/s (or none)".into());
        }
        if self.stall_timeout.is_zero() {
            return Err("stall_timeout must be more than zero".into());
        }
        if self.response_timeout.is_zero() {
            return Err("response_timeout must be more than zero".into());
        }
        Ok(())
    }
}

/// Parses a bandwidth such as `25MB`, `500KiB`, `1.5GB/s` or `1048576` into bytes per second.
/// The error says what was wrong and shows valid forms.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let trimmed = text.trim().trim_end_matches("/s").trim();
    let bytes: bytesize::ByteSize = trimmed.parse().map_err(|_| {
        format!("`{text}` is not a rate; write e.g. 20MB, 500KiB or 1048576 (bytes per second)")
    })?;
    match bytes.as_u64() {
        0 => Err("a rate limit must be above zero".into()),
        n => Ok(n),
    }
}

#[cfg(test)]
mod rate_tests {
    use super::parse_rate;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("25MB"), Ok(25_000_000));
        assert_eq!(parse_rate("500KiB/s"), Ok(512_000));
        assert_eq!(parse_rate("1048576"), Ok(1_048_576));
        assert!(parse_rate("fast").unwrap_err().contains("not a rate"));
        assert!(parse_rate("0").is_err());
    }
}
