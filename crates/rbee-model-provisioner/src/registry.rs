//! Scheme → vendor.

use std::collections::BTreeMap;
use std::sync::Arc;

use rbee_artifact::{Error, Result, Scheme, VendorSource};

/// The vendors a provisioner can use, one per scheme.
///
/// ```
/// use std::sync::Arc;
/// use rbee_artifact::Scheme;
/// use rbee_model_provisioner::VendorRegistry;
///
/// let registry = VendorRegistry::new();
/// let err = registry.get(Scheme::new("gh")).unwrap_err();
/// assert!(err.to_string().contains("gh:"));
/// ```
#[derive(Debug, Default, Clone)]
pub struct VendorRegistry {
    vendors: BTreeMap<Scheme, Arc<dyn VendorSource>>,
}

impl VendorRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a vendor under its scheme, replacing any earlier one.
    pub fn register(&mut self, vendor: Arc<dyn VendorSource>) -> &mut Self {
        self.vendors.insert(vendor.scheme(), vendor);
        self
    }

    /// Builder form of [`register`](Self::register).
    pub fn with(mut self, vendor: Arc<dyn VendorSource>) -> Self {
        self.register(vendor);
        self
    }

    /// The vendor for a scheme, or a typed error naming what is available.
    pub fn get(&self, scheme: Scheme) -> Result<&Arc<dyn VendorSource>> {
        self.vendors.get(&scheme).ok_or_else(|| {
            let known: Vec<String> = self.vendors.keys().map(|s| format!("{s}:")).collect();
            Error::Unsupported(format!(
                "no vendor for `{scheme}:` references is available here (available: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The schemes with a vendor.
    pub fn schemes(&self) -> impl Iterator<Item = Scheme> + '_ {
        self.vendors.keys().copied()
    }
}
