//! The subcommands, one module a resource; each takes its parsed arguments and a
//! [`Context`](crate::target::Context).

mod approvals;
mod audit;
mod keys;
mod migrate;
mod runs;
mod serve;

use crate::cli::Command;
use crate::exit::Outcome;
use crate::target::Context;

/// Carries out `command`.
pub async fn run(command: Command, ctx: &Context) -> Outcome {
    match command {
        Command::Approvals(command) => approvals::run(command, ctx).await,
        Command::Runs(command) => runs::run(command, ctx).await,
        Command::Keys(command) => keys::run(command, ctx).await,
        Command::Audit(command) => audit::run(command, ctx).await,
        Command::Serve(args) => serve::run(args, ctx).await,
        Command::Migrate => migrate::run(ctx).await,
    }
}
