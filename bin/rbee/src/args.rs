//! Command-line arguments: raw flags parsed by clap, then validated into typed values.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// rbee: get models onto this machine — fast, verified, resumable — and keep a catalog of them.
#[derive(Debug, Parser)]
#[command(name = "rbee", version, propagate_version = true)]
#[command(after_help = "References:\n  \
    hf:ORG/REPO[:QUANT]          a HuggingFace GGUF repo, one quantization (default Q4_K_M)\n  \
    hf:ORG/REPO[@REV]/PATH       one file of a HuggingFace repo\n  \
    ORG/REPO, hf.co/ORG/REPO     the same, as llama.cpp and Ollama write it\n  \
    gh:OWNER/REPO[@TAG][/ASSET]  a GitHub release asset\n  \
    file:PATH                    a file or folder on this machine\n  \
    https://HOST/PATH            any file over HTTP(S); #sha256=HEX to verify it\n\n\
Exit codes: 0 ok, 1 failure, 2 usage error, 130 cancelled (Ctrl-C).")]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Catalog folder [default: $RBEE_CACHE_DIR, else ~/.cache/rbee/models]
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Machine-readable output: JSON lines for progress, a JSON document otherwise
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log what happens (repeat for more detail); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// No progress bars
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Work through the rbee-hive daemon at this URL (e.g. http://127.0.0.1:8600) instead of
    /// in this process; its catalog is used
    #[arg(long, global = true, env = "RBEE_HIVE_URL", value_name = "URL")]
    pub(crate) hive: Option<String>,
    /// Bearer token of the rbee-hive daemon (needed when it listens beyond loopback)
    #[arg(
        long,
        global = true,
        env = "RBEE_HIVE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) hive_token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Models and other artifacts in the catalog
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ModelCommand {
    /// Download a model (or make sure it is present) and print its local path
    #[command(visible_alias = "pull")]
    Download(DownloadArgs),
    /// List the catalog
    #[command(visible_alias = "ls")]
    List,
    /// What a model is and whether it fits this machine, from its headers alone (nothing is
    /// downloaded)
    Inspect(crate::inspect::InspectArgs),
    /// Show one entry: files, sizes, digests, status, paths, and the model's summary
    Info {
        /// Catalog id or reference
        model: String,
    },
    /// Re-hash files against their recorded SHA-256 digests
    Verify {
        /// Catalog ids or references (default: every entry)
        models: Vec<String>,
    },
    /// Remove entries with their files and partial downloads
    #[command(visible_alias = "remove")]
    Rm {
        /// Catalog ids or references
        #[arg(required = true)]
        models: Vec<String>,
    },
    /// Disk use of the catalog
    Du,
}

#[derive(Debug, Default, Args)]
pub(crate) struct DownloadArgs {
    /// What to download (see "References" in `rbee --help`)
    pub(crate) reference: String,
    /// GGUF quantization, e.g. Q4_K_M (same as REF:QUANT)
    #[arg(long)]
    pub(crate) quant: Option<String>,
    /// Branch, tag or commit (hf:), or release tag (gh:) (same as REF@REV)
    #[arg(long, value_name = "REV")]
    pub(crate) revision: Option<String>,
    /// Only files matching this glob (repeatable; replaces the default choice of files)
    #[arg(long, value_name = "GLOB")]
    pub(crate) include: Vec<String>,
    /// Leave out files matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    /// Parallel connections per large file, exactly [default: 8, growing up to 32 while each
    /// connection is slow and the total still rises]
    #[arg(long, value_name = "N")]
    pub(crate) connections: Option<usize>,
    /// Total bandwidth cap, e.g. 20MB, 500KiB (per second)
    #[arg(long, value_name = "RATE")]
    pub(crate) rate_limit: Option<String>,
    /// Show what would be downloaded, and the free space, without fetching anything
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Use only what is already on this machine
    #[arg(long, env = "RBEE_OFFLINE")]
    pub(crate) offline: bool,
    /// Ask the vendor again even when a pinned model is ready
    #[arg(long)]
    pub(crate) refresh: bool,
    /// Also place HuggingFace files in the HuggingFace cache layout (for huggingface_hub,
    /// llama.cpp -hf)
    #[arg(long)]
    pub(crate) hf_cache: bool,
}
