//! Command-line arguments: raw flags parsed by clap, then validated into typed values.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

/// rbee: get models onto this machine — fast, verified, resumable — and keep a catalog of them.
#[derive(Debug, Parser)]
#[command(name = "rbee", version = crate::build_info::VERSION, propagate_version = true)]
#[command(after_help = "References:\n  \
    hf:ORG/REPO[:QUANT]          a HuggingFace GGUF repo, one quantization (default Q4_K_M)\n  \
    hf:ORG/REPO[@REV]/PATH       one file of a HuggingFace repo\n  \
    ORG/REPO, hf.co/ORG/REPO     the same, as llama.cpp and Ollama write it (also hf://ORG/REPO;\n                               \
    :latest means the default quantization)\n  \
    gh:OWNER/REPO[@TAG][/ASSET]  a GitHub release asset\n  \
    file:PATH, /PATH, ./PATH     a file or folder on this machine\n  \
    https://HOST/PATH            any file over HTTP(S); #sha256=HEX to verify it\n\n\
Exit codes: 0 ok, 1 failure, 2 usage error, 130 cancelled (Ctrl-C), 143 terminated (SIGTERM).")]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// Catalog folder [default: $RBEE_CACHE_DIR, else ~/.cache/rbee/models]
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Machine-readable output: JSON lines for downloads, one JSON document otherwise
    /// (see docs/cli.md)
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log what happens, and show the full cause of errors (repeat for more detail); RUST_LOG
    /// overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// No progress
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Work through the rbee-hive daemon at this URL (e.g. http://127.0.0.1:8600) instead of
    /// in this process; its catalog is used
    #[arg(
        long,
        global = true,
        env = "RBEE_HIVE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
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
    /// The cluster's shared store, s3://BUCKET[/PREFIX] on any S3-compatible endpoint
    /// (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION): read before the
    /// origin, written after it (see docs/cluster.md)
    #[arg(
        long,
        global = true,
        env = "RBEE_SHARED_STORE",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(crate) shared_store: Option<String>,
    /// Fail instead of falling back to the origin when the shared store cannot be used
    #[arg(
        long,
        global = true,
        env = "RBEE_SHARED_STORE_REQUIRED",
        hide_env_values = true,
        action = clap::ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pub(crate) shared_store_required: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Models and other artifacts in the catalog
    #[command(subcommand)]
    Model(ModelCommand),
    /// Download a model (or make sure it is present) and print its local path (= model download)
    Pull(DownloadArgs),
    /// List the catalog (= model list)
    Ls,
    /// Remove entries with their files and partial downloads (= model rm)
    Rm(RmArgs),
    /// Remove old partial downloads, failed entries and orphaned files (= model prune)
    Prune(PruneArgs),
    /// Jobs of a rbee-hive daemon (needs --hive): list them, or cancel, pause or resume one
    Ps {
        #[command(subcommand)]
        action: Option<PsAction>,
    },
    /// Print a shell completion script, e.g. `rbee completions bash > ~/.local/share/bash-completion/completions/rbee`
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `rbee man | man -l -`
    Man,
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum PsAction {
    /// Cancel a job (its partial files stay for a later download)
    Cancel {
        /// The job id (`rbee ps` lists them)
        job: String,
    },
    /// Pause a download (it keeps its place and its partial files)
    Pause {
        /// The job id
        job: String,
    },
    /// Resume a paused download
    Resume {
        /// The job id
        job: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ModelCommand {
    /// Download a model (or make sure it is present) and print its local path
    #[command(visible_alias = "pull")]
    Download(DownloadArgs),
    /// List the catalog
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Publish a ready catalog entry to the shared store (--shared-store), so other hives
    /// fetch it from there
    Push {
        /// Catalog id or reference
        model: String,
    },
    /// What a model is and whether it fits this machine, from its headers alone (nothing is
    /// downloaded)
    Inspect(InspectArgs),
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
    Rm(RmArgs),
    /// Disk use of the catalog
    Du,
    /// Register every model another tool keeps, without downloading (hard links on the same
    /// file system, else copies): `--from ollama` reads Ollama's store ($OLLAMA_MODELS, else
    /// ~/.ollama/models)
    Import {
        /// Where from
        #[arg(long, value_name = "TOOL")]
        from: ImportSource,
    },
    #[command(flatten)]
    Tidy(TidyCommand),
}

/// Another tool's model store that `rbee model import` reads.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ImportSource {
    /// Ollama's store: $OLLAMA_MODELS, else ~/.ollama/models
    Ollama,
}

/// Keeping the cache tidy and within a size; these work on the local catalog only.
#[derive(Debug, Subcommand)]
pub(crate) enum TidyCommand {
    /// Remove old partial downloads, failed entries and orphaned files (never what a running
    /// download holds)
    Prune(PruneArgs),
    /// Keep a model from being evicted to meet the cache size budget (--max-cache-size)
    Pin {
        /// Catalog id or reference
        model: String,
    },
    /// Let a pinned model be evicted again
    Unpin {
        /// Catalog id or reference
        model: String,
    },
}

impl TidyCommand {
    /// The command's name, for messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            TidyCommand::Prune(_) => "prune",
            TidyCommand::Pin { .. } => "pin",
            TidyCommand::Unpin { .. } => "unpin",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Remove unfinished downloads untouched for this long, e.g. 7d, 12h, 2w
    #[arg(long, value_name = "AGE", default_value = "7d")]
    pub(crate) older_than: String,
    /// List what would be removed, and the bytes, without removing anything
    #[arg(long)]
    pub(crate) dry_run: bool,
}

impl Command {
    /// The catalog command a top-level verb stands for (`pull` is `model download`, …).
    pub(crate) fn into_model_command(self) -> Result<ModelCommand, Box<Command>> {
        match self {
            Command::Model(cmd) => Ok(cmd),
            Command::Pull(args) => Ok(ModelCommand::Download(args)),
            Command::Ls => Ok(ModelCommand::List(ListArgs::default())),
            Command::Rm(args) => Ok(ModelCommand::Rm(args)),
            Command::Prune(args) => Ok(ModelCommand::Tidy(TidyCommand::Prune(args))),
            other => Err(Box::new(other)),
        }
    }
}

impl ModelCommand {
    /// Whether `--json` output is a stream of event lines (else one document).
    pub(crate) fn streams(&self) -> bool {
        matches!(self, ModelCommand::Download(args) if !args.dry_run)
    }
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// Catalog ids or references
    #[arg(required = true)]
    pub(crate) models: Vec<String>,
    /// Remove them from the shared store (--shared-store) instead of this machine's catalog
    /// (refused while a hive is fetching one)
    #[arg(long)]
    pub(crate) shared: bool,
}

#[derive(Debug, Default, Args)]
pub(crate) struct ListArgs {
    /// List the shared store (--shared-store) instead of this machine's catalog
    #[arg(long)]
    pub(crate) shared: bool,
}

#[derive(Debug, Default, Args)]
pub(crate) struct DownloadArgs {
    /// What to download (see "References" in `rbee --help`)
    pub(crate) reference: String,
    /// GGUF quantization, e.g. Q4_K_M (same as REF:QUANT)
    #[arg(long)]
    pub(crate) quant: Option<String>,
    /// The largest GGUF quantization that fits the GPUs (or --vram) at --ctx, judged from the
    /// headers of the candidates (same as REF:fit)
    #[arg(long, conflicts_with = "quant")]
    pub(crate) fit: bool,
    /// Branch, tag or commit (hf:), or release tag (gh:) (same as REF@REV)
    #[arg(long, value_name = "REV")]
    pub(crate) revision: Option<String>,
    /// Only files matching this glob (repeatable; replaces the default choice of files)
    #[arg(long, value_name = "GLOB")]
    pub(crate) include: Vec<String>,
    /// Leave out files matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    /// Parallel connections per file, exactly N for every file large enough to split (smaller
    /// files use one) [default: 8, growing up to 32 while each connection is slow and the
    /// total still rises]
    #[arg(long, value_name = "N")]
    pub(crate) connections: Option<usize>,
    /// Total bandwidth cap, e.g. 20MB, 500KiB (per second)
    #[arg(long, value_name = "RATE")]
    pub(crate) rate_limit: Option<String>,
    /// A HuggingFace Hub mirror, such as another rbee-hive (repeatable): tried in order before
    /// the origin (HF_ENDPOINT); one that fails is passed over [default: $RBEE_MIRRORS]
    #[arg(long = "mirror", value_name = "URL")]
    pub(crate) mirrors: Vec<String>,
    /// Show what would be downloaded, and the free space, without fetching anything
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Use only what is already on this machine (RBEE_OFFLINE accepts 1/0, true/false, yes/no)
    #[arg(
        long,
        env = "RBEE_OFFLINE",
        hide_env_values = true,
        action = clap::ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pub(crate) offline: bool,
    /// Ask the vendor again even when a pinned model is ready
    #[arg(long)]
    pub(crate) refresh: bool,
    /// Also place HuggingFace files in the HuggingFace cache layout (for huggingface_hub,
    /// llama.cpp -hf)
    #[arg(long)]
    pub(crate) hf_cache: bool,
    /// Fetch HuggingFace files over the plain download, never natively from the Hub's Xet
    /// store (as HF_HUB_DISABLE_XET=1 does)
    #[arg(long)]
    pub(crate) no_xet: bool,
    /// Also place Ollama models, and HuggingFace GGUFs as hf.co/ORG/REPO:QUANT, in Ollama's
    /// store ($OLLAMA_MODELS, else ~/.ollama/models), so `ollama list` and `ollama run` see
    /// them without pulling
    #[arg(long)]
    pub(crate) ollama_store: bool,
    /// Where registry.ollama.ai is reached (a mirror), or HOST=URL pairs separated by commas
    /// [default: $OLLAMA_REGISTRY, else https://registry.ollama.ai]
    #[arg(long, value_name = "URL")]
    pub(crate) ollama_registry: Option<String>,
    /// Also place the files under DIR (hard links to the catalog's copies when DIR is on the
    /// same file system, else copies), like `hf download --local-dir`; prints the path there
    #[arg(long, value_name = "DIR")]
    pub(crate) local_dir: Option<PathBuf>,
    /// Keep the catalog within this size, e.g. 200GB: least recently used, unpinned models are
    /// evicted before a download that would exceed it [default: $RBEE_MAX_CACHE_SIZE, else no
    /// limit]
    #[arg(long, value_name = "SIZE")]
    pub(crate) max_cache_size: Option<String>,
    /// With --dry-run or --fit: the memory estimate and GPU fit of the model it would fetch
    #[command(
        flatten,
        next_help_heading = "Memory estimate (with --dry-run or --fit)"
    )]
    pub(crate) estimate: EstimateArgs,
}

/// Flags of `rbee model inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// What to inspect (see "References" in `rbee --help`); nothing is downloaded
    pub(crate) reference: String,
    /// GGUF quantization, e.g. Q4_K_M (same as REF:QUANT)
    #[arg(long)]
    pub(crate) quant: Option<String>,
    /// Branch, tag or commit (hf:), or release tag (gh:) (same as REF@REV)
    #[arg(long, value_name = "REV")]
    pub(crate) revision: Option<String>,
    /// Only files matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub(crate) include: Vec<String>,
    /// Leave out files matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    /// With --json: every array item (token lists, merges) and every tensor, not only lengths
    #[arg(long)]
    pub(crate) full: bool,
    /// Print the chat template and nothing else
    #[arg(long)]
    pub(crate) template: bool,
    #[command(flatten)]
    pub(crate) estimate: EstimateArgs,
}

/// Flags of the memory estimate (`inspect`, and `download --dry-run`).
#[derive(Debug, Clone, Args)]
pub(crate) struct EstimateArgs {
    /// Context per sequence [default: the model's training context, at most 8192]
    #[arg(long, value_name = "TOKENS")]
    pub(crate) ctx: Option<u64>,
    /// KV cache type: f16, bf16, f32, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl
    #[arg(long, value_name = "TYPE", default_value = "f16")]
    pub(crate) kv_type: String,
    /// Repeating layers on the GPU [default: all, and the output layer]
    #[arg(long, value_name = "N")]
    pub(crate) ngl: Option<u64>,
    /// Parallel sequences, each with --ctx tokens
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) parallel: u64,
    /// GPU memory to check the fit against, e.g. 24GiB (instead of asking nvidia-smi)
    #[arg(long, value_name = "SIZE")]
    pub(crate) vram: Option<String>,
    /// Estimate without flash attention (llama.cpp's -fa off)
    #[arg(long)]
    pub(crate) no_flash_attn: bool,
}

/// The values clap gives when no flag is passed.
impl Default for EstimateArgs {
    fn default() -> Self {
        EstimateArgs {
            ctx: None,
            kv_type: "f16".into(),
            ngl: None,
            parallel: 1,
            vram: None,
            no_flash_attn: false,
        }
    }
}
#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn top_level_verbs_are_the_catalog_commands() {
        let cli = Cli::try_parse_from(["rbee", "pull", "hf:o/r", "--local-dir", "m"]).unwrap();
        let Ok(ModelCommand::Download(args)) = cli.command.into_model_command() else {
            panic!()
        };
        assert_eq!(args.local_dir, Some(PathBuf::from("m")));
        let cli = Cli::try_parse_from(["rbee", "rm", "x", "y"]).unwrap();
        assert!(
            matches!(cli.command.into_model_command(), Ok(ModelCommand::Rm(a)) if a.models == ["x", "y"])
        );
        let cli =
            Cli::try_parse_from(["rbee", "prune", "--older-than", "2d", "--dry-run"]).unwrap();
        assert!(matches!(
            cli.command.into_model_command(),
            Ok(ModelCommand::Tidy(TidyCommand::Prune(a))) if a.dry_run && a.older_than == "2d"
        ));
        let cli = Cli::try_parse_from(["rbee", "model", "pin", "x"]).unwrap();
        assert!(matches!(
            cli.command.into_model_command(),
            Ok(ModelCommand::Tidy(TidyCommand::Pin { model })) if model == "x"
        ));
        let cli = Cli::try_parse_from(["rbee", "ps", "cancel", "job-1"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Ps { action: Some(PsAction::Cancel { ref job }) } if job == "job-1"
        ));
    }
}
