//! The `gh:` vendor: GitHub release assets.
#![deny(missing_docs)]

pub use config::{DEFAULT_API_BASE, DEFAULT_MAX_RATE_LIMIT_WAIT, GitHubConfig};

#[allow(dead_code)]
mod api;
mod config;
#[allow(dead_code)]
mod rate_limit;
#[allow(dead_code)]
mod select;
// wired once rbee-transfer lands
// mod vendor;
