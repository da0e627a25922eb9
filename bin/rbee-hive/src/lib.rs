//! rbee-hive: the daemon that provisions models for the machine it runs on, over HTTP.
//!
//! It is a thin layer over [`rbee_model_provisioner`]: requests become *jobs* (download, list,
//! get, delete, verify), each job's progress is the provisioner's [`ProgressEvent`]s, streamed
//! as Server-Sent Events, and jobs can be cancelled, paused and resumed. The API is described
//! in `docs/http-api.md`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use rbee_catalog::Catalog;
//! use rbee_hive::{HiveConfig, HiveState, hive_vendors};
//! use rbee_model_provisioner::{Provisioner, ProvisionerConfig, VendorSettings};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let catalog = Arc::new(Catalog::open("/tmp/rbee-models")?);
//! let config = HiveConfig::default();
//! let vendors = hive_vendors(&VendorSettings::default(), &config)?;
//! let provisioner = Provisioner::new(catalog, vendors, ProvisionerConfig::default());
//! let state = HiveState::new(provisioner, config);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8600").await?;
//! rbee_hive::serve(listener, state, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! [`ProgressEvent`]: rbee_artifact::ProgressEvent
#![deny(missing_docs)]

pub use api::{ErrorBody, JobState, JobView};
pub use config::{
    BindError, DEFAULT_ADDR, DEFAULT_MAX_CONNECTIONS, HiveConfig, bind_addr, check_bind,
    connection_cap, descriptors_for_downloads, raise_open_files_limit,
};
pub use error::ApiError;
pub use hub::HubUpstream;
pub use routes::app;
pub use serve::serve;
pub use state::HiveState;
pub use vendors::hive_vendors;

pub mod api;
mod auth;
pub mod client;
mod config;
mod connections;
mod error;
mod feed;
mod hub;
mod inspect;
mod jobs;
mod mirror;
mod ops;
mod request;
mod routes;
mod serve;
mod sse;
mod state;
mod vendors;
mod web;
