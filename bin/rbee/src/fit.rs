//! `hf:ORG/REPO:fit` (`--fit`) in this process: the largest GGUF quantization of a repository
//! that fits this machine's GPUs (or `--vram`) at the asked context. The choosing itself is
//! [`rbee_model_provisioner::choose_fit`], which rbee-hive uses with its own GPUs.

use anyhow::Result;
use rbee_artifact::{ArtifactRef, Error};
pub(crate) use rbee_model_provisioner::asks_for_fit;
use rbee_model_provisioner::choose_fit;
use rbee_transfer::Transfer;
use tokio_util::sync::CancellationToken;

use crate::args::DownloadArgs;
use crate::estimate;
use crate::setup::{self, TransferSettings};

/// Replaces a `:fit` selector by the chosen quantization, with notes saying what was picked
/// and what did not fit; any other reference comes back as it is.
pub(crate) async fn choose(
    reference: ArtifactRef,
    args: &DownloadArgs,
    settings: &TransferSettings,
    cancel: &CancellationToken,
) -> Result<(ArtifactRef, Vec<String>)> {
    if !asks_for_fit(&reference) {
        return Ok((reference, Vec::new()));
    }
    if args.offline {
        return Err(Error::InvalidRequest(format!(
            "{reference} reads the headers of the candidates from the network, which --offline forbids; name a quantization (`rbee ls` shows what is here)"
        ))
        .into());
    }
    let estimate_options = args.estimate.options()?;
    let (gpus, no_gpu) = estimate::gpus(&args.estimate).await?;
    if gpus.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "{reference} needs GPUs to fit: {}; pass --vram SIZE (e.g. --vram 24GiB), or name a quantization",
            no_gpu.unwrap_or_else(|| "none found".into())
        ))
        .into());
    }
    let vendor_settings = setup::vendor_settings(settings);
    let vendors = rbee_model_provisioner::standard_vendors(&vendor_settings)?;
    let vendor = vendors.get(reference.scheme())?;
    let transfer = Transfer::new(vendor_settings.transfer.clone())?;
    Ok(choose_fit(
        vendor.as_ref(),
        &transfer,
        &reference,
        &args.exclude,
        &estimate_options,
        &gpus,
        cancel,
    )
    .await?)
}
