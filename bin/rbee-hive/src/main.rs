//! `rbee-hive`: the model-provisioning daemon. Parses flags, opens the catalog, wires the
//! vendors, prints where it listens, and serves until SIGINT or SIGTERM; meanwhile it lists the
//! catalog once (recording downloads a dead process left).
// Printing the listening line and start-up errors is this binary's job; the library logs.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use rbee_artifact::Secret;
use rbee_catalog::Catalog;
use rbee_hive::{
    DEFAULT_MAX_CONNECTIONS, HiveConfig, HiveState, HubUpstream, bind_addr, check_bind,
    connection_cap, descriptors_for_downloads, hive_vendors, raise_open_files_limit,
};
use rbee_model_provisioner::{Provisioner, ProvisionerConfig, VendorSettings};
use rbee_transfer::parse_rate;

/// rbee-hive: provisions models for this machine over HTTP (jobs, Server-Sent Events progress,
/// cancel, pause, resume). See docs/http-api.md.
#[derive(Debug, Parser)]
#[command(name = "rbee-hive", version)]
#[command(after_help = "On start it prints one JSON line on stdout: \
{\"event\":\"listening\",\"addr\":…,\"url\":…}. SIGINT or SIGTERM cancels running downloads \
(partial files are kept for a resume) and exits.")]
struct Args {
    /// Address to listen on; anything but loopback needs --token
    #[arg(
        long,
        default_value = "127.0.0.1",
        value_name = "ADDR",
        env = "RBEE_HIVE_BIND"
    )]
    bind: String,
    /// Port to listen on (0: any free port)
    #[arg(long, default_value_t = 8600, env = "RBEE_HIVE_PORT")]
    port: u16,
    /// Bearer token required on every route but /health (prefer the environment variable:
    /// command lines are visible to other users)
    #[arg(
        long,
        env = "RBEE_HIVE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// This hive's name, accepted in a job's `hive_id`
    #[arg(
        long,
        default_value = "localhost",
        env = "RBEE_HIVE_ID",
        value_name = "NAME"
    )]
    hive_id: String,
    /// Catalog folder [default: $RBEE_CACHE_DIR, else ~/.cache/rbee/models]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Downloads that run at once; further ones wait in the queue
    #[arg(long, default_value_t = 2, value_name = "N")]
    max_concurrent_downloads: usize,
    /// Download jobs accepted and not finished (queued, running or paused) at once
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_jobs: usize,
    /// Parallel connections per large file, exactly [default: 8, growing up to 32 while each
    /// connection is slow and the total still rises]
    #[arg(long, value_name = "N")]
    connections: Option<usize>,
    /// Total bandwidth cap across downloads, e.g. 20MB or 500KiB (per second)
    #[arg(long, value_name = "RATE")]
    rate_limit: Option<String>,
    /// Keep the catalog within this size, e.g. 200GB: before a download that would exceed it,
    /// least recently used unpinned models are evicted (the job's events name them); a
    /// download that cannot fit even then fails before any byte
    #[arg(long, env = "RBEE_MAX_CACHE_SIZE", value_name = "SIZE")]
    max_cache_size: Option<String>,
    /// Also place HuggingFace files in the HuggingFace cache layout
    #[arg(long)]
    hf_cache: bool,
    /// Also place Ollama models in Ollama's store ($OLLAMA_MODELS, else ~/.ollama/models), so
    /// `ollama run` finds them without pulling
    #[arg(long)]
    ollama_store: bool,
    /// Use only what is already on this machine
    #[arg(long, env = "RBEE_OFFLINE")]
    offline: bool,
    /// Let file: downloads read files inside this folder (repeatable), judged by real path: a
    /// link inside it that leads elsewhere is refused. Without it the daemon refuses file:
    /// references: it would read any file it can, for any caller
    #[arg(long = "allow-local", value_name = "DIR")]
    allow_local: Vec<PathBuf>,
    /// Time limit of each request (event streams excepted), in seconds
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    request_timeout: u64,
    /// Connections held open at once; at the cap a new one replaces the oldest that is not
    /// serving an authorized request. Lowered if the open-files limit cannot fit it beside the
    /// downloads [default: 512]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Seconds a connection may take to send its request headers, or sit idle between requests,
    /// before it is closed
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    header_timeout: u64,
    /// Do not serve the HuggingFace Hub routes (by default this hive is a pull-through Hub
    /// mirror for clients it lets in: HF_ENDPOINT=http://this-hive; see docs/mirror.md)
    #[arg(long, env = "RBEE_HIVE_NO_MIRROR")]
    no_mirror: bool,
    /// The cluster's shared store, s3://BUCKET[/PREFIX] on any S3-compatible endpoint
    /// (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION): models are read
    /// from it before the origin and published to it after (see docs/cluster.md)
    #[arg(
        long,
        env = "RBEE_SHARED_STORE",
        hide_env_values = true,
        value_name = "URL"
    )]
    shared_store: Option<String>,
    /// Fail downloads instead of falling back to the origin when the shared store cannot be used
    #[arg(long, env = "RBEE_SHARED_STORE_REQUIRED")]
    shared_store_required: bool,
    /// Log more (repeat for more); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Free space below which the daemon warns at start: no download could even write its record.
const FULL_DISK_BYTES: u64 = 1 << 20;

/// Says so when the catalog's file system is full: the daemon still starts (listing, info and
/// removal work), but downloads will fail until there is room.
fn warn_if_full(root: &std::path::Path) {
    if let Ok(free) = rbee_artifact::available_space(root)
        && free < FULL_DISK_BYTES
    {
        let message = format!(
            "the file system of the catalog {} is full ({free} bytes free): downloads will fail until space is freed; remove models with `rbee model rm ID` or DELETE /v1/models/ID",
            root.display()
        );
        tracing::warn!("{message}");
        eprintln!("warning: {message}");
    }
}

/// A mistake in how the daemon was started; exits with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn main() -> ExitCode {
    rbee_cli_support::return_freed_memory();
    rbee_model_provisioner::register_references();
    let args = Args::parse();
    init_logging(args.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(if e.is::<UsageError>() { 2 } else { 1 })
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let addr = bind_addr(&args.bind, args.port).map_err(UsageError)?;
    let token = args.token.as_deref().and_then(Secret::new);
    check_bind(&addr, token.as_ref()).map_err(|e| UsageError(e.to_string()))?;
    if args.connections == Some(0)
        || args.max_concurrent_downloads == 0
        || args.max_jobs == 0
        || args.max_connections == Some(0)
        || args.header_timeout == 0
    {
        return Err(UsageError(
            "--connections, --max-concurrent-downloads, --max-jobs, --max-connections and --header-timeout must be at least 1".into(),
        )
        .into());
    }

    for dir in &args.allow_local {
        if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(UsageError(format!(
                "--allow-local {}: there is no folder there; name an existing folder",
                dir.display()
            ))
            .into());
        }
    }

    let root = Catalog::resolve_root(args.cache_dir.as_deref())?;
    let catalog = Arc::new(Catalog::open(&root)?);
    let first_listing = catalog.clone();
    warn_if_full(&root);

    let rate_limit = args
        .rate_limit
        .as_deref()
        .map(|text| parse_rate(text).map_err(|e| UsageError(format!("--rate-limit: {e}"))))
        .transpose()?;
    let max_cache_bytes = args
        .max_cache_size
        .as_deref()
        .map(|text| {
            rbee_catalog::parse_cache_size(text)
                .map_err(|e| UsageError(format!("--max-cache-size: {e}")))
        })
        .transpose()?;
    let mut config = HiveConfig::default();
    config.token = token;
    config.hive_id = args.hive_id.clone();
    config.max_jobs = args.max_jobs;
    config.local_roots = args.allow_local.clone();
    config.request_timeout = Duration::from_secs(args.request_timeout.max(1));
    config.header_timeout = Duration::from_secs(args.header_timeout);

    if !args.no_mirror {
        // The mirror pulls from where this hive's own HF downloads go, with the same token.
        match rbee_vendor_huggingface::HfConfig::from_env() {
            Ok(hf) => config.mirror = Some(HubUpstream::new(hf.endpoint, hf.token)),
            Err(e) => {
                tracing::warn!(error = %e, "the Hub mirror is off: the HuggingFace settings cannot be read")
            }
        }
    }

    let mut vendors =
        VendorSettings::from_options(args.connections, rate_limit, args.hf_cache, args.offline)
            .with_xet_cache_in(&root);
    vendors.write_ollama_store = args.ollama_store;
    let wanted = args.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let open_files = raise_open_files_limit();
    let reserve = descriptors_for_downloads(
        args.max_concurrent_downloads,
        vendors.transfer.max_connections,
    );
    config.max_connections = connection_cap(wanted, open_files, reserve);
    config.transfer = vendors.transfer.clone();
    if let Some(program) = std::env::var_os("RBEE_NVIDIA_SMI").filter(|p| !p.is_empty()) {
        config.nvidia_smi = program.into();
    }
    if config.max_connections < wanted {
        tracing::warn!(
            wanted,
            cap = config.max_connections,
            open_files_limit = open_files,
            reserved_for_downloads = reserve,
            "the open-files limit cannot fit that many connections beside the downloads; holding fewer (raise it with `ulimit -n`)"
        );
    }
    let provisioner = Provisioner::new(
        catalog,
        hive_vendors(&vendors, &config)?,
        ProvisionerConfig {
            max_concurrent_downloads: args.max_concurrent_downloads,
            max_cache_bytes,
            ..ProvisionerConfig::default()
        },
    );
    if let Some(url) = args
        .shared_store
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        let store = rbee_shared_store::StoreConfig::from_vars(url, |k| std::env::var(k).ok())
            .and_then(rbee_shared_store::S3Store::new)
            .map_err(|e| anyhow::anyhow!("--shared-store: {e}"))?;
        let tier = rbee_model_provisioner::SharedTier::connect(
            std::sync::Arc::new(store),
            format!("{} ({})", args.hive_id, rbee_shared_store::host_name()),
            rbee_transfer::Transfer::new(vendors.transfer.clone())?,
            args.shared_store_required,
            rbee_shared_store::LeaseConfig::default(),
        )
        .await?;
        tracing::info!(store = %tier.name(), "shared store");
        provisioner.set_shared_store(tier);
    }
    let state = HiveState::new(provisioner, config);

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    announce(local, &root)?;
    tracing::info!(%local, catalog = %root.display(), "rbee-hive listening");
    // After the listening line, so that start-up never waits for a walk of the catalog: records
    // downloads a dead process left `downloading` as `incomplete`, and loads the catalog index.
    tokio::task::spawn_blocking(move || {
        if let Err(e) = first_listing.list() {
            tracing::warn!(error = %e.report(), "could not list the catalog");
        }
    });

    rbee_hive::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("rbee-hive stopped");
    Ok(())
}

/// One JSON line on stdout, so scripts and tests can find the port (`--port 0`).
fn announce(addr: SocketAddr, root: &std::path::Path) -> Result<()> {
    let line = serde_json::json!({
        "event": "listening",
        "addr": addr.to_string(),
        "url": format!("http://{addr}"),
        "catalog": root,
        "pid": std::process::id(),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")?;
    out.flush().context("writing to stdout")?;
    Ok(())
}

/// Completes on the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    let stop = rbee_cli_support::stop_on_signals(
        |_| {},
        |_| {
            eprintln!("rbee-hive: second signal; exiting without waiting");
            130
        },
    );
    stop.cancelled().await;
    tracing::info!("signal received: cancelling downloads and stopping (again to exit at once)");
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug,hyper=info,reqwest=info",
        _ => "trace",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(rbee_cli_support::log_filter(default))
        .with_writer(std::io::stderr)
        .try_init();
}
