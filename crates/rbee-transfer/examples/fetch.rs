//! Fetches one URL with the engine and reports time, speed and digest; for tuning.
//!
//! ```text
//! cargo run --release -p rbee-transfer --example fetch -- URL DEST \
//!     [--connections N] [--max-connections N] [--chunk-size BYTES] [--rate-limit BYTES/S] \
//!     [--size BYTES] [--sha256 HEX]
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use rbee_artifact::{DownloadTracker, JobId};
use rbee_transfer::{FetchRequest, Transfer, TransferConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: fetch URL DEST [options]")?;
    let dest = PathBuf::from(args.next().ok_or("usage: fetch URL DEST [options]")?);
    let mut config = TransferConfig::default();
    let mut size = None;
    let mut sha256 = None;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let num = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--connections" => {
                config.connections = num()? as usize;
                config.max_connections = config.max_connections.max(config.connections);
            }
            "--max-connections" => config.max_connections = num()? as usize,
            "--chunk-size" => config.chunk_size = num()?,
            "--rate-limit" => config.rate_limit = Some(num()?),
            "--size" => size = Some(num()?),
            "--sha256" => sha256 = Some(value.parse().map_err(|e| format!("{e}"))?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let transfer = Transfer::new(config).map_err(|e| e.to_string())?;
    let mut request = FetchRequest::new(
        dest.file_name().unwrap_or_default().to_string_lossy(),
        url.parse().map_err(|e| format!("{url}: {e}"))?,
    );
    request.expected_size = size;
    request.sha256 = sha256;
    let tracker = DownloadTracker::new(JobId::generate());
    let progress = tracker.file(request.path.clone(), size, 0);
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        c.cancel();
    });
    let start = Instant::now();
    let got = transfer
        .fetch(&request, &dest, &progress, &cancel)
        .await
        .map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} bytes in {secs:.2} s ({:.1} MB/s), sha256 {}",
        got.size,
        got.size as f64 / secs / 1e6,
        got.sha256
    );
    Ok(())
}
