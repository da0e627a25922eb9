//! `rbee model …`: each command builds its inputs and makes one library call.

mod download;
mod du;
mod import;
mod info;
mod list;
mod plan;
mod rm;
mod verify;

pub(crate) use download::{print_ready, refuse_estimate_flags};
pub(crate) use info::print_info;
pub(crate) use list::print_listing;
pub(crate) use rm::{finish_rm, print_removed};
pub(crate) use verify::{finish_verify, print_verified, verifiable};

use anyhow::Result;

use crate::args::{GlobalArgs, ModelCommand};
use download::download;
use du::du;
use import::import;
use info::info;
use list::list;
use plan::dry_run;
use rm::rm;
use verify::verify;

/// Runs a catalog command in this process.
pub(crate) async fn run(global: &GlobalArgs, command: &ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Download(args) if args.dry_run => dry_run(global, args).await,
        ModelCommand::Download(args) => download(global, args).await,
        ModelCommand::List(args) if args.shared => crate::shared::list(global).await,
        ModelCommand::List(_) => list(global),
        ModelCommand::Push { model } => crate::shared::push(global, model).await,
        ModelCommand::Info { model } => info(global, model),
        ModelCommand::Verify { models } => verify(global, models).await,
        ModelCommand::Rm(args) if args.shared => crate::shared::rm(global, &args.models).await,
        ModelCommand::Rm(args) => rm(global, &args.models),
        ModelCommand::Inspect(args) => crate::inspect::inspect(global, args).await,
        ModelCommand::Du => du(global),
        ModelCommand::Import { from } => import(global, *from).await,
        ModelCommand::Tidy(cmd) => crate::tidy::run(global, cmd),
    }
}
