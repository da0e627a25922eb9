//! The standard set of vendors, wired once for every binary: adding a vendor is one line here.

use std::sync::Arc;

use rbee_artifact_catalog::Result;
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_local::LocalVendor;

use crate::registry::VendorRegistry;

/// Settings shared by the vendors of one process.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VendorSettings {
    /// The download engine's tuning (connections, rate limit, timeouts…).
    pub transfer: TransferConfig,
    /// Also place HuggingFace downloads in the HuggingFace cache layout.
    pub write_hf_cache: bool,
    /// Never touch the network.
    pub offline: bool,
}

impl VendorSettings {
    /// Defaults, with the download engine tuned by `transfer`.
    pub fn new(transfer: TransferConfig) -> Self {
        Self {
            transfer,
            ..Self::default()
        }
    }
}

/// Every vendor of this build, sharing one download engine (so a rate limit holds across them).
pub fn standard_vendors(settings: &VendorSettings) -> Result<VendorRegistry> {
    let _transfer = Transfer::new(settings.transfer.clone())?;
    let mut registry = VendorRegistry::new();
    registry.register(Arc::new(LocalVendor::new()));
    Ok(registry)
}
