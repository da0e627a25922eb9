//! The daemon's vendors: the standard set, with local files confined to `--allow-local`.

use std::sync::Arc;

use rbee_artifact::Result;
use rbee_model_provisioner::{VendorRegistry, VendorSettings, standard_vendors};
use rbee_vendor_local::LocalVendor;

use crate::config::HiveConfig;

/// Every vendor of this build, as the daemon must use them: the `file:` vendor reads only files
/// whose real path lies inside [`HiveConfig::local_roots`] (and nothing when there are none),
/// because the daemon reads with its own rights on behalf of whoever calls it.
///
/// ```
/// use rbee_hive::{HiveConfig, hive_vendors};
/// use rbee_model_provisioner::VendorSettings;
///
/// let vendors = hive_vendors(&VendorSettings::default(), &HiveConfig::default()).unwrap();
/// assert!(vendors.get(rbee_vendor_local::SCHEME).is_ok());
/// ```
pub fn hive_vendors(settings: &VendorSettings, config: &HiveConfig) -> Result<VendorRegistry> {
    let mut vendors = standard_vendors(settings)?;
    vendors.register(Arc::new(LocalVendor::with_access(config.local_access())));
    Ok(vendors)
}
