//! `rbee`: the command line of the rbee model provisioner.
// Printing is this binary's job; libraries log instead.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `println!` that ends the process quietly when the reader has gone (`rbee model list | head`)
/// instead of panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod args;
mod commands;
mod hive;
mod inspect;
mod render;
mod setup;

use std::process::ExitCode;

use clap::Parser;
use rbee_artifact_catalog::{Error, RefError};

use crate::args::{Cli, Command, ModelCommand};
use crate::setup::UsageError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(cli.global.verbose);
    let json = cli.global.json;
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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e, json),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    let hive_url = global.hive.as_deref().filter(|u| !u.trim().is_empty());
    if let (Some(url), Command::Model(cmd)) = (hive_url, &cli.command) {
        return hive::run(global, url, cmd).await;
    }
    match &cli.command {
        Command::Model(cmd) => match cmd {
            ModelCommand::Download(args) => commands::download(global, args).await,
            ModelCommand::List => commands::list(global),
            ModelCommand::Inspect(args) => inspect::inspect(global, args).await,
            ModelCommand::Info { model } => commands::info(global, model),
            ModelCommand::Verify { models } => commands::verify(global, models).await,
            ModelCommand::Rm { models } => commands::rm(global, models),
            ModelCommand::Du => commands::du(global),
        },
    }
}

/// Prints the error for people (and, with `--json`, as a JSON object on stdout) and picks the
/// exit code: 2 for usage mistakes, 130 for cancellation, 1 otherwise.
fn report(e: &anyhow::Error, json: bool) -> ExitCode {
    let typed = e.chain().find_map(|c| c.downcast_ref::<Error>());
    // An error the daemon answered (`--hive`) keeps its code.
    let remote = e
        .chain()
        .find_map(|c| c.downcast_ref::<hive::RemoteError>());
    let usage = e
        .chain()
        .any(|c| c.is::<UsageError>() || c.is::<RefError>())
        || typed.is_some_and(Error::is_usage)
        || remote.is_some_and(hive::RemoteError::is_usage);
    let cancelled = typed.is_some_and(Error::is_cancelled);
    let code = match (usage, cancelled) {
        (true, _) => "usage",
        (_, true) => "cancelled",
        _ => typed
            .map(Error::code)
            .or(remote.map(|r| r.code.as_str()))
            .unwrap_or("error"),
    };
    if cancelled {
        eprintln!(
            "Cancelled ({}). Partial files were kept: run the same command again to resume.",
            e
        );
    } else {
        let message = match typed {
            Some(t) if e.chain().count() == 1 => t.report(),
            _ => format!("{e:#}"),
        };
        eprintln!("error: {message}");
        if json {
            out!(
                "{}",
                serde_json::json!({"error": {"code": code, "message": message}})
            );
        }
    }
    ExitCode::from(match (usage, cancelled) {
        (true, _) => 2,
        (_, true) => 130,
        _ => 1,
    })
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,rbee=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
