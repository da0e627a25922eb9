//! The memory-estimate flags, checked: the estimate they ask for, the GPUs to judge a fit
//! against, and the same flags in a request to rbee-hive.

use std::path::PathBuf;

use anyhow::Result;
use rbee_gguf::{EstimateOptions, Gpu, KV_CACHE_TYPES, find_gpus, kv_cache_type};
use rbee_hive::api::InspectRequest;

use crate::args::EstimateArgs;
use crate::setup::UsageError;

impl EstimateArgs {
    /// The flags that were set, for refusing them where they would be ignored.
    pub(crate) fn set_flags(&self) -> Vec<&'static str> {
        let default = EstimateArgs::default();
        [
            (self.ctx.is_some(), "--ctx"),
            (self.kv_type != default.kv_type, "--kv-type"),
            (self.ngl.is_some(), "--ngl"),
            (self.parallel != default.parallel, "--parallel"),
            (self.vram.is_some(), "--vram"),
            (self.no_flash_attn, "--no-flash-attn"),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect()
    }

    pub(crate) fn options(&self) -> Result<EstimateOptions> {
        let kv_type = kv_cache_type(&self.kv_type).map_err(|_| {
            UsageError::argument(format!(
                "--kv-type {}: not a KV cache type; use one of {}",
                self.kv_type,
                KV_CACHE_TYPES.join(", ")
            ))
        })?;
        if self.parallel == 0 {
            return Err(UsageError::argument("--parallel must be at least 1").into());
        }
        if self.ctx == Some(0) {
            return Err(UsageError::argument("--ctx must be at least 1").into());
        }
        Ok(EstimateOptions {
            context: self.ctx,
            kv_type,
            gpu_layers: self.ngl,
            parallel: self.parallel,
            flash_attention: !self.no_flash_attn,
            ..EstimateOptions::default()
        })
    }

    fn vram(&self) -> Result<Option<u64>> {
        let Some(text) = &self.vram else {
            return Ok(None);
        };
        let size = rbee_catalog::parse_cache_size(text.trim()).map_err(|_| {
            UsageError::argument(format!(
                "--vram {text}: not a size above 0; write e.g. 24GiB or 8000MiB"
            ))
        })?;
        Ok(Some(size))
    }
}

/// The GPUs to judge a fit against: `--vram`, else what nvidia-smi (or `RBEE_NVIDIA_SMI`)
/// lists.
pub(crate) async fn gpus(args: &EstimateArgs) -> Result<(Vec<Gpu>, Option<String>)> {
    let vram = args.vram()?;
    let program = std::env::var_os("RBEE_NVIDIA_SMI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nvidia-smi"));
    Ok(find_gpus(vram, &program).await)
}

impl EstimateArgs {
    /// Puts the estimate flags into a request to rbee-hive, checked here first (so a mistake
    /// is a usage error, as without the daemon).
    pub(crate) fn set_in(&self, request: &mut InspectRequest) -> Result<()> {
        self.check()?;
        request.ctx = self.ctx;
        request.kv_type = Some(self.kv_type.clone());
        request.ngl = self.ngl;
        request.parallel = Some(self.parallel);
        request.vram = self.vram()?;
        request.flash_attn = self.no_flash_attn.then_some(false);
        Ok(())
    }

    /// Refuses bad flag values up front, so a dry run fails before it resolves anything.
    pub(crate) fn check(&self) -> Result<()> {
        self.options()?;
        self.vram()?;
        Ok(())
    }
}
