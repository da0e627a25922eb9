//! `fake-hub`: serve a folder as a HuggingFace-, GitHub- and CDN-like server for tests and
//! benchmarks. Prints one JSON line with its URLs, then serves until SIGINT or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};

/// Serve DIR over HTTP: plain files with Range, redirects to a second "CDN" address, the
/// HuggingFace Hub and GitHub releases APIs, fault injection and byte counters.
#[derive(Debug, Parser)]
#[command(name = "fake-hub", version)]
struct Args {
    /// The folder to serve (see the crate README for its layout).
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Address of the hub listener.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port of the hub listener (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address of the CDN listener (falls back to 127.0.0.1, named localhost, if unavailable).
    #[arg(long, default_value = "127.0.0.2")]
    cdn_bind: IpAddr,
    /// Port of the CDN listener (0: any free port).
    #[arg(long, default_value_t = 0)]
    cdn_port: u16,
    /// Cap every response body at this many bytes per second.
    #[arg(long, value_name = "BYTES/S")]
    rate_limit: Option<u64>,
    /// A fault as JSON, e.g. '{"path":"*.gguf","times":1,"kind":"drop","after_bytes":1048576}'
    /// (repeatable).
    #[arg(long = "fault", value_name = "JSON")]
    faults: Vec<String>,
    /// A bearer token accepted for private and gated HuggingFace repos (repeatable).
    #[arg(long = "hf-token", value_name = "TOKEN")]
    hf_tokens: Vec<String>,
    /// A bearer token accepted for private GitHub repos (repeatable).
    #[arg(long = "gh-token", value_name = "TOKEN")]
    gh_tokens: Vec<String>,
    /// Lifetime of signed redirect targets in seconds.
    #[arg(long, default_value_t = 300)]
    signed_url_ttl: u64,
    /// Size of the disk reads feeding response bodies.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    read_chunk: usize,
    /// Serve every HuggingFace LFS file over Xet too (see the README's Xet section).
    #[arg(long)]
    xet: bool,
    /// Lifetime of Xet tokens in seconds.
    #[arg(long, default_value_t = 3600)]
    xet_token_ttl: u64,
    /// Largest xorb in bytes (at most 64 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = rbee_xet::MAX_XORB_BYTES)]
    xet_xorb_bytes: usize,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("fake-hub: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if !args.root.is_dir() {
        bail!(
            "--root {} is not a directory; create it or point at the folder to serve",
            args.root.display()
        );
    }
    let mut config = FakeHubConfig::new(&args.root)
        .with_signed_url_ttl(Duration::from_secs(args.signed_url_ttl));
    config.hub_addr = SocketAddr::new(args.bind, args.port);
    config.cdn_addr = SocketAddr::new(args.cdn_bind, args.cdn_port);
    config.rate_limit = args.rate_limit.filter(|&r| r > 0);
    for json in &args.faults {
        let fault: Fault = serde_json::from_str(json)
            .with_context(|| format!("--fault {json:?} is not a valid fault"))?;
        config.faults.push(fault);
    }
    config.hf_tokens = args.hf_tokens;
    config.read_chunk = args.read_chunk.max(4096);
    config.gh_tokens = args.gh_tokens;
    config.xet = args.xet;
    config.xet_token_ttl = Duration::from_secs(args.xet_token_ttl);
    config.xet_xorb_bytes = args.xet_xorb_bytes.max(1);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let hub = FakeHub::start(config)
            .await
            .context("cannot start the fake hub")?;
        let line = serde_json::json!({
            "hub": hub.url().as_str(),
            "cdn": hub.cdn_url().as_str(),
            "admin": hub.url().join("_admin/").map(|u| u.to_string()).unwrap_or_default(),
            "root": hub.root(),
            "xorbs": hub.xorb_dir(),
        });
        #[allow(clippy::print_stdout)]
        {
            println!("{line}");
        }
        wait_for_signal().await?;
        hub.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot watch SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot watch Ctrl-C")?;
    Ok(())
}
