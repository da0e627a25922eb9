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
mod estimate;
mod failure;
mod fit;
mod hive;
mod inspect;
mod logging;
mod render;
mod setup;
mod shared;
mod signals;
mod spelling;
mod terminal;
mod tidy;

mod build_info {
    /// `0.1.0 (commit 1a2b3c4d5e6f, built 2025-06-01)`, stamped by build.rs.
    pub(crate) const VERSION: &str = env!("RBEE_VERSION");
}

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::failure::Failure;
use crate::setup::UsageError;

fn main() -> ExitCode {
    rbee_cli_support::return_freed_memory();
    rbee_model_provisioner::register_references();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_failure(&e),
    };
    logging::init(cli.global.verbose, terminal::stderr_color());
    let json = cli.global.json;
    let verbose = cli.global.verbose > 0;
    let streams = matches!(&cli.command, Command::Model(c) if c.streams())
        || matches!(&cli.command, Command::Pull(a) if !a.dry_run);
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
        Err(e) => report(&e, json, streams, verbose),
    }
}

/// A command line clap could not parse: its own message (help and version go to stdout with
/// status 0), or with `--json` one error document.
fn usage_failure(e: &clap::Error) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if std::env::args().any(|a| a == "--json") {
        let message = e.kind().as_str().map_or_else(
            || e.to_string().trim().to_string(),
            |kind| format!("{kind}: {}", e.to_string().trim()),
        );
        print_error_document("invalid_argument", &message);
    } else {
        let _ = e.print();
    }
    ExitCode::from(2)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    let hive_url = global.hive.clone().filter(|u| !u.trim().is_empty());
    let command = match command.into_model_command() {
        Ok(model) => {
            return match &hive_url {
                Some(url) => hive::run(&global, url, &model).await,
                None => commands::run(&global, &model).await,
            };
        }
        Err(other) => other,
    };
    match *command {
        Command::Ps { action } => match &hive_url {
            Some(url) => hive::ps(&global, url, action.as_ref()).await,
            None => Err(UsageError::argument(
                "`rbee ps` shows the jobs of a rbee-hive daemon: pass --hive URL or set RBEE_HIVE_URL (a download run by this command line stops with Ctrl-C)",
            )
            .into()),
        },
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "rbee", &mut out);
            Ok(())
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            out!("{}", String::from_utf8_lossy(&page).trim_end());
            Ok(())
        }
        Command::Model(_)
        | Command::Pull(_)
        | Command::Ls
        | Command::Rm(_)
        | Command::Prune(_) => {
            unreachable!("catalog commands were dispatched above")
        }
    }
}

/// Tells the person what went wrong (on stderr), or a program (one JSON document on stdout,
/// or for a download the final JSON event, never both), and picks the exit status.
fn report(e: &anyhow::Error, json: bool, streams: bool, verbose: bool) -> ExitCode {
    let failure = Failure::of(e, verbose);
    let cancelled = failure.code == "cancelled";
    if json {
        if streams {
            render::print_final_json("", &failure.code, &failure.message);
        } else {
            print_error_document(&failure.code, &failure.message);
        }
    } else if cancelled {
        eprintln!(
            "Cancelled ({e}). Partial files were kept: run the same command again to resume."
        );
    } else {
        eprintln!("error: {}", failure.message);
    }
    ExitCode::from(failure.exit)
}

/// `{"version": 1, "error": {"code", "message"}}` on stdout.
fn print_error_document(code: &str, message: &str) {
    out!(
        "{}",
        serde_json::json!({
            "version": render::JSON_VERSION,
            "error": {"code": code, "message": message},
        })
    );
}
